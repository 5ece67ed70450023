"""``DataStream.execute_and_collect()``: the job runs on a thread of its own while the
caller iterates over the records of one stream.

The stream gets a sink of parallelism 1: it runs on worker 0 (of process 0 in a
multi-process run), and its input is routed there from every worker of every process,
so the iterator there sees every record. The sink hands records to the iterator through
a bounded buffer: a consumer that stops reading holds the job back (as Flink's collect
does) instead of filling memory.

Stopping early (``close()``, a ``limit``, leaving a ``with`` block, Ctrl-C while waiting)
has no engine call to cancel a job from another thread yet, so the sink stops it: the
next record it receives raises ``_Stopped``, which fails the job, and the thread running
it takes that failure for the normal end it is. A job whose collected stream receives no
further record (an idle unbounded source) therefore stops only when one arrives or the
job ends by itself; ``close()`` waits for that.
"""

from __future__ import annotations

import collections
import os
import threading

from ._cluster import ENV_ADDRESSES
from ._errors import JobExecutionException

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Deque, Optional, Set, Tuple

    from .datastream import DataStream

__all__ = ["CloseableIterator", "execute_and_collect"]

#: Records the sink may hand over before the consumer has taken them.
BUFFER = 4096

#: In the text of the job failure ``_Stopped`` causes, also as other processes see it.
STOP_MARK = "execute_and_collect() stopped the job: its iterator was closed"


class _Stopped(Exception):
    """Raised by the collecting sink once the iterator wants no more records."""

    def __init__(self) -> None:
        super().__init__(STOP_MARK)


class _Buffer:
    """Between the sink (a worker thread) and the iterator (the caller's thread)."""

    def __init__(self, capacity: int) -> None:
        self.cond = threading.Condition()
        self.items: Deque[Any] = collections.deque()
        self.capacity = capacity
        #: The iterator wants no more records: the sink stops the job.
        self.stopped = False
        #: The job has ended; ``error`` is how, if it failed.
        self.ended = False
        self.error: Optional[BaseException] = None

    def invoke(self, value: Any) -> None:
        """The sink: called on worker 0 for every record of the stream."""
        with self.cond:
            while len(self.items) >= self.capacity and not self.stopped:
                self.cond.wait()
            if self.stopped:
                if os.environ.get(ENV_ADDRESSES):
                    return  # several processes: see the module's documentation
                raise _Stopped
            self.items.append(value)
            self.cond.notify_all()

    def stop(self) -> None:
        """The iterator wants no more records: drop those waiting, stop the job."""
        with self.cond:
            if not self.ended:
                self.stopped = True
            self.items.clear()
            self.cond.notify_all()

    def end(self, error: Optional[BaseException]) -> None:
        with self.cond:
            self.ended = True
            if error is not None and not self.stopped and not _is_stop(error):
                self.error = error
            self.cond.notify_all()


def _is_stop(error: BaseException) -> bool:
    """Whether the job failed because a collecting sink stopped it (here, or in process
    0 of a multi-process run, as the other processes see it)."""
    return isinstance(error, JobExecutionException) and STOP_MARK in f"{error} {error.detail}"


class CloseableIterator:
    """The records of a stream while its job runs (``DataStream.execute_and_collect()``).

    Iterate it; ``close()`` (or leaving a ``with`` block) stops the job if it still
    runs and waits for it to end. An error of the job is raised by ``next()`` after the
    records that came before it. In a multi-process run the records arrive in process 0;
    the iterators of the other processes yield nothing and end when the job does."""

    def __init__(self, buffer: _Buffer, thread: threading.Thread) -> None:
        self._buffer = buffer
        self._thread = thread

    def __iter__(self) -> "CloseableIterator":
        return self

    def __next__(self) -> Any:
        buffer = self._buffer
        try:
            with buffer.cond:
                while not buffer.items and not buffer.ended:
                    buffer.cond.wait()
                if buffer.items:
                    value = buffer.items.popleft()
                    buffer.cond.notify_all()
                    return value
                error, buffer.error = buffer.error, None
        except BaseException:  # Ctrl-C while waiting: the job must not run on unseen
            self.close()
            raise
        self._thread.join()
        if error is not None:
            raise error
        raise StopIteration

    def next(self) -> Any:
        """PyFlink's name of ``next(iterator)``."""
        return self.__next__()

    def close(self) -> None:
        """Stops the job if it still runs (at the next record it delivers) and waits for
        it to end. Records not yet taken are dropped."""
        self._buffer.stop()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> "CloseableIterator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Dropped without close(): stop the job, without waiting (this may run anywhere).
        buffer = getattr(self, "_buffer", None)
        if buffer is not None:
            buffer.stop()


#: Jobs of execute_and_collect() still running: stopped at interpreter exit (see ``_stop_at_exit``).
_running: "Optional[Set[Tuple[_Buffer, threading.Thread]]]" = None


def _stop_at_exit(job: "Tuple[_Buffer, threading.Thread]") -> None:
    """Stops ``job`` at exit if it still runs then (its iterator never closed, or
    dropped): a job running while the interpreter finalizes would have its workers
    call into a dying interpreter (an abort), so it is stopped first."""
    global _running
    if _running is None:
        import atexit

        _running = set()
        atexit.register(_stop_all)
    _running.add(job)


def _stop_all() -> None:
    for buffer, thread in list(_running or ()):
        buffer.stop()
        thread.join()


def execute_and_collect(stream: "DataStream", job_name: Optional[str], limit: Optional[int]) -> Any:
    """See ``DataStream.execute_and_collect``."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"execute_and_collect(): limit must be an int >= 1 or None, got {limit!r}")
    from . import _nodes
    from ._plan import Udf

    buffer = _Buffer(BUFFER)
    env = stream._env
    sink = env._add(_nodes.SinkFunction(Udf(buffer.invoke, ("invoke",))), "execute_and_collect", [stream._node])
    env._nodes[sink].parallelism = 1

    def run() -> None:
        try:
            env.execute(job_name)
        except BaseException as e:  # noqa: BLE001 - handed to the iterator
            buffer.end(e)
        else:
            buffer.end(None)
        finally:
            if _running is not None:
                _running.discard(job)

    # Started before anything can fail here, so execute()'s own errors (no sink...) reach next().
    thread = threading.Thread(target=run, name="ferroflow execute_and_collect", daemon=True)
    job = (buffer, thread)
    _stop_at_exit(job)
    thread.start()
    iterator = CloseableIterator(buffer, thread)
    if limit is None:
        return iterator
    with iterator:
        return [value for value, _ in zip(iterator, range(limit))]
