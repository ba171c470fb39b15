"""Analysis: pure functions over traces and numpy arrays (no I/O, no model loading)."""
