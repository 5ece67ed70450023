"""``DataStream.execute_and_collect()``: the job runs on a thread of its own while the
caller iterates over the records of one stream.

The stream gets a sink of parallelism 1: it runs on worker 0 (of process 0 in a
multi-process run), and its input is routed there from every worker of every process,
so the iterator there sees every record. The sink hands records to the iterator through
a bounded buffer: a consumer that stops reading holds the job back (as Flink's collect
does) instead of filling memory.

Stopping early (``close()``, a ``limit``, leaving a ``with`` block, Ctrl-C while waiting)
cancels the job through the engine's ``CancelToken`` (``execute()`` of the job's thread
passes it to ``run_job``, see ``cancel_token``): the job stops within about 20 ms plus
its workers' stop, whether or not records still arrive, and ends as cancelled, not
failed. In a multi-process run the other processes are told that process 0 cancelled
the job; their jobs end with ``kind == "cancelled"``, which their iterators take for
the normal end, so every process exits cleanly.
"""

from __future__ import annotations

import collections
import threading

from ._errors import JobExecutionException

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Deque, Optional, Set, Tuple

    from .datastream import DataStream

__all__ = ["CloseableIterator", "execute_and_collect"]

#: Records the sink may hand over before the consumer has taken them.
BUFFER = 4096

#: The cancel token of the job that ``execute()`` runs on this thread (see ``cancel_token``).
_thread_token = threading.local()


def cancel_token() -> Any:
    """The ``CancelToken`` ``execute()`` hands to the engine: the one of the
    execute_and_collect() job whose thread this is, else None."""
    return getattr(_thread_token, "token", None)


class _Buffer:
    """Between the sink (a worker thread) and the iterator (the caller's thread)."""

    def __init__(self, capacity: int) -> None:
        from ._engine import CancelToken

        self.cond = threading.Condition()
        #: Stops the job (``run_job``'s ``cancel``).
        self.token = CancelToken()
        self.items: Deque[Any] = collections.deque()
        self.capacity = capacity
        #: The iterator wants no more records: the job is cancelled.
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
                return  # the job is being cancelled: nobody takes this record
            self.items.append(value)
            self.cond.notify_all()

    def stop(self) -> None:
        """The iterator wants no more records: drop those waiting, stop the job."""
        with self.cond:
            if not self.ended:
                self.stopped = True
                self.token.cancel()
            self.items.clear()
            self.cond.notify_all()

    def end(self, error: Optional[BaseException]) -> None:
        with self.cond:
            self.ended = True
            if error is not None and not self.stopped and not _is_stop(error):
                self.error = error
            self.cond.notify_all()


def _is_stop(error: BaseException) -> bool:
    """Whether the job ended because it was cancelled: in another process of a
    multi-process run, process 0 whose iterator was closed (this thread's own cancel
    ends ``execute()`` normally)."""
    return isinstance(error, JobExecutionException) and error.kind == "cancelled"


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
        """Cancels the job if it still runs and waits for it to end (promptly, even if
        no record arrives any more). Records not yet taken are dropped."""
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
        _thread_token.token = buffer.token
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
        # range first: zip would otherwise ask for one record more, which on an idle
        # stream never comes.
        return [value for _, value in zip(range(limit), iterator)]
