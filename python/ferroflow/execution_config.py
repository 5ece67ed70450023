"""``ExecutionConfig``: settings of how a job runs, from ``env.get_config()`` (PyFlink's
``pyflink.common.ExecutionConfig``)."""

from __future__ import annotations

__all__ = ["ExecutionConfig"]


class ExecutionConfig:
    """How the environment's jobs run. Get it with ``env.get_config()``.

    **Object reuse** (off by default, as in Flink): with it off, no function sees
    another function's changes to a record: each operator reading a stream, each
    window and each rolling ``reduce``'s state has records of its own. Records that
    cannot change (str, int, float, bytes, None, bool, tuples and frozensets of
    these, namedtuples, datetime and Decimal values, Enum members) are never copied,
    so this costs a few type checks per record. A record
    that can change (a list, a dict, an object) is copied (``copy.deepcopy``;
    lists, dicts, sets and tuples of plain values are copied in Rust) only where
    something else still refers to it: a stream read by several operators, a value a
    ``reduce`` keeps and emits, a window that keeps its contents after firing, a
    function that returns an object it keeps (or one object twice), a collection's
    items. Turning object reuse on lets operators share such records as they are:
    faster, but a function that changes its input or what it emitted changes it for
    everyone else who holds it.
    """

    def __init__(self) -> None:
        self._object_reuse = False

    def enable_object_reuse(self) -> "ExecutionConfig":
        """Let operators share records instead of giving each its own (see the class docs)."""
        self._object_reuse = True
        return self

    def disable_object_reuse(self) -> "ExecutionConfig":
        """Give every operator records of its own (the default)."""
        self._object_reuse = False
        return self

    def is_object_reuse_enabled(self) -> bool:
        """Whether operators share records."""
        return self._object_reuse

    def __repr__(self) -> str:
        return f"ExecutionConfig(object_reuse={self._object_reuse})"
