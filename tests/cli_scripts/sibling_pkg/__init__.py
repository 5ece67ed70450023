"""A package next to argv_and_imports.py, imported by it."""

NAME = "sibling package"
