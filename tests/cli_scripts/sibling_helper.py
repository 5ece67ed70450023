"""A module next to argv_and_imports.py, imported by it."""

NAME = "sibling module"


def shout(value):
    return str(value).upper() + "!"
