"""``RuntimeExecutionMode``: how a job runs (as ``pyflink.datastream.RuntimeExecutionMode``).

Set it with ``env.set_runtime_mode(RuntimeExecutionMode.BATCH)``. The rules of each mode
live in the engine (``crates/engine/src/semantics.rs``); ``docs/semantics.md`` lists them.
"""

from __future__ import annotations

import enum

__all__ = ["RuntimeExecutionMode"]


class RuntimeExecutionMode(enum.Enum):
    """``STREAMING`` (the default): results as records arrive. ``BATCH``: a bounded job
    gives final results only: a rolling ``reduce``/``sum``/``min``/``max``/``min_by``/
    ``max_by`` emits one record per key at the end, watermarks are ignored and every
    window and timer fires at the end of input (as Flink's batch mode); a job with a
    source that need not end (a socket, ``add_source``) is refused. ``AUTOMATIC``:
    ``BATCH`` when every source is bounded, else ``STREAMING``."""

    STREAMING = 0
    BATCH = 1
    AUTOMATIC = 2
