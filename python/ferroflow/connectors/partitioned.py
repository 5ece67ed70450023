"""Your own connector in Python: partitioned sources and sinks whose parts resume from
checkpoints (the shape of Bytewax's ``FixedPartitionedSource`` and
``FixedPartitionedSink``).

A source lists its parts by name (``list_parts``: a table's id ranges, a queue's shards,
files) and builds a reader per part (``build_part``). Each part is read by one worker,
the one its name's pinned hash picks, in every process; a part's state (its
``snapshot()``, picklable) goes into each checkpoint, and a restore at any parallelism
hands it to the part's new owner as ``resume_state``::

    class Ranges(FixedPartitionedSource):
        def list_parts(self):
            return ["0-999", "1000-1999"]

        def build_part(self, step_id, for_part, resume_state):
            return RangeReader(for_part, resume_state)

    env.from_source(Ranges(), WatermarkStrategy.no_watermarks(), "ranges")

A sink lists its parts too; ``part_fn(item)`` picks an item's part (an index into
``list_parts()``, taken modulo its length) and the item travels to the worker that
owns that part, whose ``StatefulSinkPartition.write_batch`` writes it::

    stream.sink_to(MySink())

Delivery: a source part resumes exactly where its checkpointed ``snapshot()`` says, so
what it emitted is exactly-once in ferroflow's state. A partitioned sink is
at-least-once: after a restore, the items since the checkpoint are written again (make
``write_batch`` idempotent, e.g. an upsert, for effectively-once output). For
transactional exactly-once output use ``TwoPhaseCommitSinkFunction``
(``ferroflow.functions``) with ``add_sink``; docs/connectors.md has a PostgreSQL example
of both.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Iterable, List, Optional

__all__ = ["FixedPartitionedSource", "StatefulSourcePartition", "DynamicSource", "StatelessSourcePartition",
           "FixedPartitionedSink", "StatefulSinkPartition"]


class StatelessSourcePartition:
    """One worker's reader of a ``DynamicSource``."""

    def next_batch(self) -> Iterable[Any]:
        """The next items (any iterable; empty when none are ready). Raise
        ``StopIteration`` when the partition has ended."""
        raise NotImplementedError(f"{type(self).__name__} must implement next_batch()")

    def next_awake(self) -> Optional[datetime]:
        """When to call ``next_batch`` next (an aware ``datetime``; asked after each
        batch), or None: right away after a batch with items, after 10 ms after an empty
        one."""
        return None

    def close(self) -> None:
        """Called once when the partition has ended or the job stops."""


class StatefulSourcePartition(StatelessSourcePartition):
    """The reader of one part of a ``FixedPartitionedSource``: ``next_batch``,
    ``next_awake`` and ``close`` as ``StatelessSourcePartition``'s, and ``snapshot``."""

    def snapshot(self) -> Any:
        """The part's position (any picklable value), taken at each checkpoint after
        the batches it covers: a restore passes it to ``build_part`` as
        ``resume_state``, and the part must then go on with the item after them."""
        raise NotImplementedError(f"{type(self).__name__} must implement snapshot()")


class FixedPartitionedSource:
    """A source of named parts, each read by one worker and resumed from checkpoints."""

    def list_parts(self) -> List[str]:
        """The parts' names (distinct strings). Called once per process when the job
        starts (and again on a restart); every process must list the same parts:
        processes that do not refuse each other as running different jobs."""
        raise NotImplementedError(f"{type(self).__name__} must implement list_parts()")

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[Any]) -> StatefulSourcePartition:
        """The reader of part ``for_part`` on the worker that owns it. ``step_id`` is
        the source's name; ``resume_state`` the part's ``snapshot()`` in the checkpoint
        the job restores (None: start afresh)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_part()")


class DynamicSource:
    """A source with one stateless partition per worker (nothing resumes from a
    checkpoint: after a restore each worker's partition is built anew)."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSourcePartition:
        """Worker ``worker_index``'s (of ``worker_count``) partition."""
        raise NotImplementedError(f"{type(self).__name__} must implement build()")


class StatefulSinkPartition:
    """The writer of one part of a ``FixedPartitionedSink``."""

    def write_batch(self, items: List[Any]) -> None:
        """Writes the items routed to this part (in their order on the stream)."""
        raise NotImplementedError(f"{type(self).__name__} must implement write_batch()")

    def snapshot(self) -> Any:
        """The part's state (picklable), taken at each checkpoint after every item
        before it was written: make those durable before returning. A restore passes
        it to ``build_part`` as ``resume_state``."""
        return None

    def close(self) -> None:
        """Called once at the end of the input (after a last ``snapshot``)."""


class FixedPartitionedSink:
    """A sink of named parts: each item goes to part ``part_fn(item)``, written by the
    worker that owns that part."""

    def list_parts(self) -> List[str]:
        """The parts' names (distinct strings), as ``FixedPartitionedSource.list_parts``."""
        raise NotImplementedError(f"{type(self).__name__} must implement list_parts()")

    def part_fn(self, item: Any) -> int:
        """The index in ``list_parts()`` of ``item``'s part (taken modulo the number of
        parts, so a hash will do). Must give the same answer for the same item: it is
        asked where the item is routed and where it is written."""
        raise NotImplementedError(f"{type(self).__name__} must implement part_fn()")

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[Any]) -> StatefulSinkPartition:
        """The writer of part ``for_part``; ``resume_state`` as for sources."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_part()")


# -- what the binding calls (crates/python/src/partitioned.rs) ---------------------------


class _Parts:
    """A source's or sink's parts, listed once per process and attempt (workers share
    them: they agree by construction; processes compare them in the job fingerprint)."""

    def __init__(self, connector: Any, step_id: str) -> None:
        self.connector = connector
        self.step_id = step_id
        self._parts: Optional[List[str]] = None
        self._lock = threading.Lock()

    def parts(self) -> List[str]:
        with self._lock:
            if self._parts is None:
                got = self.connector.list_parts()
                try:
                    parts = list(got)
                except TypeError:
                    parts = None
                if parts is None or not all(isinstance(p, str) for p in parts):
                    raise TypeError(f"{type(self.connector).__name__}.list_parts() must return a list of str, "
                                    f"got {got!r}")
                if len(set(parts)) != len(parts):
                    raise ValueError(f"{type(self.connector).__name__}.list_parts() lists a part twice: {parts!r}")
                self._parts = parts
            return self._parts

    def fingerprint(self) -> bytes:
        """The parts, for the job fingerprint that processes compare."""
        return "\0".join(self.parts()).encode()

    def build(self, name: str, state: Optional[bytes]) -> Any:
        """Part ``name``'s reader or writer, from its pickled state (None: afresh)."""
        import pickle

        resume = None if state is None else pickle.loads(state)
        return self.connector.build_part(self.step_id, name, resume)

    @staticmethod
    def snapshot(part: Any) -> bytes:
        import pickle

        state = part.snapshot()
        try:
            return pickle.dumps(state, 5)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise TypeError(f"{type(part).__name__}.snapshot() must return a picklable value: {e}") from None

    # Per-process, per-attempt hooks (environment.execute calls them on per-worker functions).
    def prepare(self, count: int) -> None:
        pass

    def keep_pristine(self) -> None:
        pass

    def renew(self) -> None:
        with self._lock:
            self._parts = None


class _SourceParts(_Parts):
    """A ``FixedPartitionedSource`` or ``DynamicSource`` as the binding reads it."""

    def __init__(self, connector: Any, step_id: str) -> None:
        super().__init__(connector, step_id)
        self.dynamic = isinstance(connector, DynamicSource)

    def parts(self) -> List[str]:
        return [] if self.dynamic else super().parts()

    def build_worker(self, index: int, count: int) -> Any:
        return self.connector.build(self.step_id, index, count)

    @staticmethod
    def batch(part: Any) -> Optional[List[Any]]:
        """The part's next batch as a list; None once it has ended."""
        try:
            items = part.next_batch()
        except StopIteration:
            return None
        return items if type(items) is list else list(items)

    @staticmethod
    def awake(part: Any) -> Optional[float]:
        """Seconds from now until ``next_awake()`` (None: not said)."""
        when = part.next_awake()
        if when is None:
            return None
        import time

        return float(when.timestamp() - time.time())


class _SinkParts(_Parts):
    """A ``FixedPartitionedSink`` as the routing before it and the binding read it."""

    def __init__(self, connector: Any, step_id: str) -> None:
        super().__init__(connector, step_id)
        self._owners: dict = {}

    def part_index(self, item: Any) -> int:
        """The index of ``item``'s part in ``parts()``."""
        index = self.connector.part_fn(item)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"{type(self.connector).__name__}.part_fn() must return an int, got {index!r}")
        return index % len(self.parts()) if self.parts() else 0

    def owner(self, index: int, workers: int) -> int:
        """The worker (of ``workers``) that writes part ``index``."""
        owners = self._owners.get(workers)
        if owners is None:
            from .. import _engine

            owners = [_engine.split_owner(name, workers) for name in self.parts()]
            self._owners[workers] = owners
        if not owners:
            raise ValueError(f"{type(self.connector).__name__}.list_parts() returned no parts: nowhere to write")
        return owners[index]

    def renew(self) -> None:
        super().renew()
        self._owners = {}

    def write(self, parts: dict, items: List[Any]) -> None:
        """Writes ``items`` to their parts (``parts``: name -> writer, this worker's)."""
        names = self.parts()
        by_part: dict = {}
        for item in items:
            by_part.setdefault(names[self.part_index(item)], []).append(item)
        for name, batch in by_part.items():
            writer = parts.get(name)
            if writer is None:
                from .._errors import InternalError

                raise InternalError(f"an item of part {name!r} reached a worker that does not own it")
            writer.write_batch(batch)


def _source_kind(source: Any, step_id: str) -> Any:
    """The plan node kind of a partitioned source, or None if ``source`` is none."""
    if not isinstance(source, (FixedPartitionedSource, DynamicSource)):
        return None
    from .._nodes import PartitionedSource

    return PartitionedSource(_SourceParts(source, step_id))


def _sink_to(stream: Any, sink: FixedPartitionedSink) -> Any:
    """``stream.sink_to(sink)``: items routed to their part's owner, then written there."""
    from .._nodes import PartitionedSink

    step_id = type(sink).__name__
    parts = _SinkParts(sink, step_id)
    # Closures, not bound methods: every worker of the process shares ``parts``.
    routed = stream.partition_custom(lambda index, workers: parts.owner(index, workers),
                                     lambda item: parts.part_index(item))
    routed.name(f"{step_id} parts")
    return routed._sink(PartitionedSink(parts), step_id)
