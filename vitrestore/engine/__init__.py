"""Training and inference engines."""
