"""The core never imports a task module; the CLI layer (vitrestore/cli.py, __main__.py) may."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_LAYER = {"cli.py", "__main__.py"}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names |= {f"{base}.{a.name}" if not base.endswith(".") else base + a.name for a in node.names}
    return names


def test_core_never_imports_tasks():
    for path in (ROOT / "vitrestore").rglob("*.py"):
        if path.name in APP_LAYER and path.parent.name == "vitrestore":
            continue
        for name in imported_modules(path):
            assert "tasks" not in name.split("."), f"{path.relative_to(ROOT)} imports {name}"


def test_no_generic_top_level_modules_installed():
    text = (ROOT / "pyproject.toml").read_text()
    assert "py-modules" not in text
    import vitrestore.tasks

    assert vitrestore.tasks.__name__ == "vitrestore.tasks"


@pytest.mark.slow
def test_a_plain_checkout_runs_without_installing(tmp_path):
    """`python cli.py` and imports from a copy of the source tree use that copy's tasks, not an
    installed or other copy's (no pip install in between)."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "checkout"
    for part in ("vitrestore", "tasks", "configs"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("cli.py", "pyproject.toml"):
        shutil.copy(ROOT / part, copy / part)
    code = "import vitrestore, vitrestore.tasks; print(vitrestore.tasks.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=copy, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == str(copy / "tasks" / "__init__.py"), done.stderr
    listed = subprocess.run([sys.executable, "cli.py", "models"], cwd=copy, capture_output=True, text=True)
    assert listed.returncode == 0 and "denoise" in listed.stdout
