"""Shipped model weights (package data): <name>.safetensors + <name>.md model card."""
