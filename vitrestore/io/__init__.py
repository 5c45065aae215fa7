"""Files: reading and writing images as users have them (images.py), the formats and limits
(formats.py) and writes that never leave a half-written file (atomic.py)."""
