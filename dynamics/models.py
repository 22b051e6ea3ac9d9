"""Objective families registered by name (filled in by the next commit)."""
