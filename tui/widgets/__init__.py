"""Reusable console widgets (one module each)."""
