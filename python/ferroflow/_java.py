"""The one Java exception talk-era scripts use, shared by the compatibility modules."""


class NoSuchElementException(Exception):
    """Raised by a ``PythonIterator.next()`` when it has no more elements."""
