"""Task modules, installed as `vitrestore.tasks`. Importing this package registers every task."""
from . import denoise, inpaint, restore, style_transfer, super_resolution  # noqa: F401  (registers the tasks)
from .model import Model, load_model

__all__ = ["Model", "load_model"]
