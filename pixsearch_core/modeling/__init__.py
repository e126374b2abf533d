"""PixSearch modeling (placeholder docstring; replaced below)."""
