"""Shared harness for the DataStream API tests (tests/test_api_*.py).

Fixtures and helpers only: nothing here is autouse, so other test files in this
directory are unaffected.
"""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from ferroflow import StreamExecutionEnvironment
from ferroflow.functions import MapFunction

try:  # hypothesis is a dev dependency; tests that need it import it themselves too.
    from hypothesis import HealthCheck, settings

    #: Each example runs a whole job, so keep the counts modest.
    JOB_SETTINGS = settings(max_examples=25, deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
except ImportError:  # pragma: no cover
    JOB_SETTINGS = None


PARALLELISMS = [1, 2]


@pytest.fixture(params=PARALLELISMS, ids=lambda p: f"p{p}")
def parallelism(request) -> int:
    return request.param


@pytest.fixture
def env(parallelism) -> StreamExecutionEnvironment:
    """A fresh environment with the test's parallelism."""
    return make_env(parallelism)


def make_env(parallelism: int) -> StreamExecutionEnvironment:
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(parallelism)
    return e


def collect(stream) -> List[Any]:
    """Adds a sink collecting into a plain list and returns the list (filled by execute()).

    ``list.append`` is a builtin method, so it is shared by all workers (no deep copy);
    workers are threads in one process and append is atomic under the GIL."""
    out: List[Any] = []
    stream.add_sink(out.append)
    return out


def run(env: StreamExecutionEnvironment, stream, job_name: Optional[str] = None) -> List[Any]:
    """Collects ``stream``, runs the job, returns the records the sink received."""
    out = collect(stream)
    env.execute(job_name or "test")
    return out


def bag(xs) -> Counter:
    """Multiset of records (for when order is not defined)."""
    return Counter(xs)


def per_key(records, key: Callable[[Any], Any]) -> Dict[Any, List[Any]]:
    """Records grouped by key, each group in arrival order."""
    groups: Dict[Any, List[Any]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return groups


class SubtaskTagger(MapFunction):
    """A map that tags each record with the 0-based index of the worker that saw it:
    ``value -> (index, value)``."""

    def open(self, runtime_context) -> None:
        self.index = runtime_context.get_index_of_this_subtask()

    def map(self, value):
        return (self.index, value)


_PREFIX = re.compile(r"^(\d+)> (.*)$")


def printed(text: str, parallelism: int) -> List[Tuple[Optional[int], str]]:
    """Parses print() output into ``(worker 1-based index or None, repr)`` per line,
    asserting that the ``k> `` prefix is there exactly when parallelism > 1."""
    lines = text.splitlines()
    result = []
    for line in lines:
        m = _PREFIX.match(line)
        if parallelism > 1:
            assert m is not None, f"missing 'k> ' prefix with parallelism {parallelism}: {line!r}"
            k = int(m.group(1))
            assert 1 <= k <= parallelism, f"prefix {k} out of range in {line!r}"
            result.append((k, m.group(2)))
        else:
            assert m is None, f"unexpected prefix with parallelism 1: {line!r}"
            result.append((None, line))
    return result


# -- sockets ---------------------------------------------------------------------------------

LOCALHOST = "127.0.0.1"


class LineServer:
    """A TCP server on 127.0.0.1 (port 0) that sends ``payload`` to the first client
    and closes the connection. Bounded: gives up after ``timeout`` seconds."""

    def __init__(self, payload: bytes, timeout: float = 10.0, chunks: int = 1) -> None:
        self.payload = payload
        self.chunks = max(1, chunks)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOCALHOST, 0))
        self.sock.listen(4)
        self.sock.settimeout(timeout)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            self.connections += 1
            with conn:
                step = max(1, -(-len(self.payload) // self.chunks))
                for i in range(0, len(self.payload), step):
                    conn.sendall(self.payload[i:i + step])
        except BaseException as e:  # noqa: BLE001 - reported by close()
            self.error = e
        finally:
            self.sock.close()

    def close(self) -> None:
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "line server thread did not finish"
        if self.error is not None:
            raise self.error

    def __enter__(self) -> "LineServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ReceiveServer:
    """A TCP server on 127.0.0.1 (port 0) accepting any number of clients and reading
    each until it closes. ``stop()`` (after the job) returns the bytes of each
    connection, in accept order. Bounded by ``timeout`` seconds."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOCALHOST, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.timeout = timeout
        self.received: List[bytearray] = []
        self.readers: List[threading.Thread] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        import time

        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                try:
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    if self.done.is_set():
                        return
                    continue
                buf = bytearray()
                self.received.append(buf)
                t = threading.Thread(target=self._read, args=(conn, buf), daemon=True)
                t.start()
                self.readers.append(t)
        finally:
            self.sock.close()

    def _read(self, conn: socket.socket, buf: bytearray) -> None:
        conn.settimeout(self.timeout)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf.extend(data)

    def stop(self) -> List[bytes]:
        self.done.set()
        self.thread.join(timeout=self.timeout)
        for t in self.readers:
            t.join(timeout=self.timeout)
        assert not self.thread.is_alive() and not any(t.is_alive() for t in self.readers), "receive server hung"
        return [bytes(b) for b in self.received]
