"""The core never imports a task module; the CLI layer (vitrestore/cli.py, __main__.py) may. The
layers import downwards only."""
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


def _absolute(path: Path, name: str) -> str:
    """An import as an absolute module name (relative ones resolved from the file's package)."""
    if not name.startswith("."):
        return name
    level = len(name) - len(name.lstrip("."))
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    return ".".join(package[: len(package) - level + 1] + tuple(p for p in name.lstrip(".").split(".") if p))


def test_layers_say_what_they_hold():
    """The model layers (nn, ops, engine, io) never reach up to the applications (the CLI, the
    studio, the batch of files); the batch of files holds no model code and no torch."""
    apps = ("vitrestore.cli", "vitrestore.studio", "vitrestore.batch")
    for layer in ("nn", "ops", "engine", "io"):
        for path in (ROOT / "vitrestore" / layer).rglob("*.py"):
            for name in imported_modules(path):
                assert not _absolute(path, name).startswith(apps), f"{path.relative_to(ROOT)} imports {name}"
    for path in (ROOT / "vitrestore" / "batch").rglob("*.py"):
        for name in map(lambda n: _absolute(path, n), imported_modules(path)):
            assert not name.startswith(("torch", "vitrestore.engine", "vitrestore.nn", "vitrestore.ops")), \
                f"{path.relative_to(ROOT)} imports {name}"


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
