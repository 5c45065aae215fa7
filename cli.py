"""Thin entry point for running from a source checkout: `python cli.py denoise photo.png`."""
from vitrestore.cli import main

if __name__ == "__main__":
    main()
