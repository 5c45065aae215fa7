"""vitrestore: photo restoration with a conditional ViT-GAN."""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path


class _CheckoutTasks(importlib.abc.MetaPathFinder):
    """Imported from a source checkout, `vitrestore.tasks` is that checkout's top-level tasks/
    folder, as installation maps it (pyproject's package-dir): `python -m pytest` and
    `python cli.py` work without installing, and never mix a checkout's core with another
    copy's tasks. Only that one name is served."""

    def __init__(self, folder: Path):
        self.folder = folder

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "vitrestore.tasks":
            return None
        return importlib.util.spec_from_file_location(fullname, self.folder / "__init__.py",
                                                      submodule_search_locations=[str(self.folder)])


def _serve_checkout_tasks() -> None:
    root = Path(__file__).resolve().parent.parent
    folder = root / "tasks"
    if not ((root / "pyproject.toml").is_file() and (folder / "__init__.py").is_file()):
        return  # an installed package: site-packages has no pyproject.toml beside it
    if not any(isinstance(f, _CheckoutTasks) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutTasks(folder))


_serve_checkout_tasks()
