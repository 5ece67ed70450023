"""Shared harness for the DataStream API tests (tests/test_api_*.py).

Fixtures and helpers only: nothing here is autouse, so other test files in this
directory are unaffected.

Every test taking the ``parallelism`` fixture (directly or through ``env``) runs three
ways: 1 worker, 2 worker threads in one process, and ``2proc``: two *processes* of one
worker each (see ``TwoProcessEnvironment``). ``2proc`` is the int 2 as far as the tests
can tell (comparisons, ``range``, ``printed()``, ``get_parallelism()``), so tests whose
expectations depend on the worker count treat it as 2 workers. What process 1 appends
to the lists a test reads (``collect()`` lists, module-level logs, lists a job's
functions close over) and writes to capsys comes back to process 0 after the job;
the few tests that cannot hold across processes are listed in ``TWO_PROC_SKIPS``.

The API test files run a second time through PyFlink's names (``pyflink_names.py`` says
how and which): there ``env`` and ``make_env`` give ``pyflink.datastream``'s environment,
and ``flink_semantics(env)`` tells a test which semantics to expect.
"""

from __future__ import annotations

import inspect
import os
import pickle
import ast
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from ferroflow import StreamExecutionEnvironment
from ferroflow._cluster import free_ports
from ferroflow.functions import MapFunction

import pyflink_names
from pyflink_examples import DATASTREAM, OVERRIDE, FetchError
from pyflink_examples import examples_dir as pyflink_examples_dir

# Fixtures of the real servers the connector tests talk to (tests/services/).
pytest_plugins = ["services.kafka", "services.postgres", "services.s3"]

try:  # hypothesis is a dev dependency; tests that need it import it themselves too.
    from hypothesis import HealthCheck, settings

    #: Each example runs a whole job, so keep the counts modest.
    JOB_SETTINGS = settings(max_examples=25, deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
except ImportError:  # pragma: no cover
    JOB_SETTINGS = None


class TwoProcesses(int):
    """The ``2proc`` parallelism: 2 workers, one in each of two processes. It *is* the
    int 2 for arithmetic and comparisons, so tests computing expectations from the
    parallelism treat it as 2 workers; ``make_env`` turns it into a
    ``TwoProcessEnvironment``."""

    def __new__(cls) -> "TwoProcesses":
        return super().__new__(cls, 2)

    def __repr__(self) -> str:
        return "2proc"

    __str__ = __repr__


TWO_PROC = TwoProcesses()

PARALLELISMS = [1, 2, TWO_PROC]
#: The parallelisms of the pyflink pass (pyflink_names.py says why not 2 threads).
PYFLINK_PARALLELISMS = [1, TWO_PROC]

#: API tests that cannot hold with two processes for a reason other than a ferroflow
#: bug, keyed by "module::test". Kept short: everything else runs as "2proc" too.
TWO_PROC_SKIPS: Dict[str, str] = {
    "test_api_transformations::test_user_defined_class_identity_preserved":
        "checks object identity of records, which only holds inside one process: records that "
        "cross to the other process are pickled copies by design",
    "test_api_sinks::test_print_user_objects_uses_repr":
        "its records are instances of a class defined inside the test function, which pickle cannot "
        "serialize, so they cannot cross to the other process (the engine refuses them with a clear "
        "error, checked in test_multiprocess.py::test_unpicklable_record_crossing_processes)",
    "test_api_functions::test_each_worker_gets_its_own_copy":
        "compares id() of the per-worker copies, and ids from two forked processes are not comparable "
        "(the same address is routinely reused); the per-worker counts are checked by "
        "test_worker_copies_start_from_the_pristine_function and test_function_state_is_per_worker_for_sinks",
}


@pytest.fixture(params=PARALLELISMS, ids=lambda p: f"p{p}")
def parallelism(request) -> int:
    if request.param is TWO_PROC:
        module = pyflink_names.original_module_name(request.node.module.__name__)
        key = f"{module}::{getattr(request.node, 'originalname', request.node.name)}"
        if key in TWO_PROC_SKIPS:
            pytest.skip(f"2proc: {TWO_PROC_SKIPS[key]}")
    return request.param


@pytest.fixture
def env(parallelism, request) -> StreamExecutionEnvironment:
    """A fresh environment with the test's parallelism (PyFlink's in the pyflink pass)."""
    return make_pyflink_env(parallelism) if pyflink_names.in_pass(request.node) else make_env(parallelism)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", f"{pyflink_names.MARKER}: the test's run through PyFlink's names "
                                       "(tests/pyflink_names.py)")
    config.addinivalue_line("markers", f"{pyflink_names.FLINK_MARKER}(what): the test expects Flink's semantics "
                                       "under PyFlink's names, where ferroflow's defaults differ in `what`")


def pytest_pycollect_makemodule(module_path, parent):
    return pyflink_names.make_module(module_path, parent)


def pytest_collection_modifyitems(config, items) -> None:
    left_out = pyflink_names.deselected(items, PYFLINK_PARALLELISMS)
    if left_out:
        dropped = set(map(id, left_out))
        items[:] = [item for item in items if id(item) not in dropped]
        config.hook.pytest_deselected(items=left_out)


@pytest.fixture(scope="session")
def pyflink_scripts() -> str:
    """The directory of PyFlink's DataStream example scripts (every one of tests/pyflink_examples.py's
    DATASTREAM), fetched from the pinned apache-flink wheel on first use. A failed fetch fails the
    test with one line: never a skip, since CI can reach PyPI and a skip would hide that the
    examples stopped running."""
    try:
        return pyflink_examples_dir(DATASTREAM)
    except FetchError as e:
        why = str(e)
    pytest.fail(f"PyFlink's examples could not be fetched ({OVERRIDE} names a local copy): {why}", pytrace=False)


def make_env(parallelism: int) -> StreamExecutionEnvironment:
    if isinstance(parallelism, TwoProcesses):
        e: StreamExecutionEnvironment = TwoProcessEnvironment()
    else:
        e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(parallelism)
    return e


def pyflink_environment() -> type:
    """``pyflink.datastream.StreamExecutionEnvironment``, imported on first use."""
    from pyflink.datastream import StreamExecutionEnvironment as PyflinkEnvironment

    return PyflinkEnvironment


_PYFLINK_TWO_PROCESSES: List[type] = []


def make_pyflink_env(parallelism: int) -> StreamExecutionEnvironment:
    """``make_env`` of the pyflink pass: PyFlink's environment (for ``2proc``, a
    ``TwoProcessEnvironment`` whose base is PyFlink's)."""
    base = pyflink_environment()
    if isinstance(parallelism, TwoProcesses):
        if not _PYFLINK_TWO_PROCESSES:
            _PYFLINK_TWO_PROCESSES.append(type("PyflinkTwoProcessEnvironment", (TwoProcessEnvironment, base), {}))
        e: StreamExecutionEnvironment = _PYFLINK_TWO_PROCESSES[0]()
    else:
        e = base.get_execution_environment()
    e.set_parallelism(parallelism)
    return e


def flink_semantics(env: StreamExecutionEnvironment) -> bool:
    """Whether ``env`` runs with Flink's semantics where ferroflow's defaults differ
    (docs/semantics.md): PyFlink's environment selects them."""
    return isinstance(env, pyflink_environment())


# What Flink's semantics change, for ``@pytest.mark.flink_semantics(...)`` on a test whose
# expectation follows them under PyFlink's names.
PARTIAL_WINDOWS = "a count window's or global window's partial contents do not fire at the end of input"
PROCESSING_TIME_AT_END = "processing-time windows and timers pending at the end of input do not fire"
SUM_FIELD_0 = "sum() with no field sums field 0"
PRINT_STR = "print() shows a record of an undeclared stream by str(), not repr()"


def fired_at_end(env: StreamExecutionEnvironment, records: Any) -> List[Any]:
    """What windows or timers still pending when the input ends emit: ``records`` under
    ferroflow's rule, which fires them, nothing under Flink's (``flink_semantics``)."""
    return [] if flink_semantics(env) else list(records)


def shown(env: StreamExecutionEnvironment, record: Any) -> str:
    """How print() shows a record of a stream with no declared type: ``repr`` under
    ferroflow's names, ``str`` under PyFlink's (as PyFlink prints)."""
    return str(record) if flink_semantics(env) else repr(record)


def collect(stream) -> List[Any]:
    """Adds a sink collecting into a plain list and returns the list (filled by execute()).

    ``list.append`` is a builtin method, so it is shared by all workers (no deep copy);
    workers are threads in one process and append is atomic under the GIL. With
    ``2proc`` the environment tracks the list and gets the other process's records back."""
    out: List[Any] = []
    stream.add_sink(out.append)
    env = getattr(stream, "_env", None)
    if isinstance(env, TwoProcessEnvironment):
        env._collected.append(out)
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


# -- two processes ("2proc") -----------------------------------------------------------------

#: How long the parent waits for process 1's report once its own side of the job ended.
CHILD_REPORT_TIMEOUT = 30.0
#: The engine's wait for the other process (a broken fork must not cost 30 s).
CHILD_CONNECT_TIMEOUT = "10"

_CLUSTER_VARS = ("FERROFLOW_ADDRESSES", "FERROFLOW_PROCESS_ID", "FERROFLOW_SECRET", "FERROFLOW_SECRET_FILE",
                 "FERROFLOW_THREADS", "FERROFLOW_CONNECT_TIMEOUT", "FERROFLOW_REPORT")


class _ClusterEnv:
    """Sets the cluster variables of one process for the duration of a ``with``, then
    restores the environment exactly as it was."""

    def __init__(self, addresses: str, process: int, secret: str) -> None:
        self.values = {"FERROFLOW_ADDRESSES": addresses, "FERROFLOW_PROCESS_ID": str(process),
                       "FERROFLOW_SECRET": secret, "FERROFLOW_THREADS": "1",
                       "FERROFLOW_CONNECT_TIMEOUT": CHILD_CONNECT_TIMEOUT}
        self.saved: Dict[str, Optional[str]] = {}

    def __enter__(self) -> None:
        self.saved = {k: os.environ.get(k) for k in _CLUSTER_VARS}
        for k in _CLUSTER_VARS:
            os.environ.pop(k, None)
        os.environ.update(self.values)

    def __exit__(self, *exc) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _is_ferroflow(module: Optional[str]) -> bool:
    return bool(module) and (module == "ferroflow" or module.startswith("ferroflow."))


def _shared_lists(env: "TwoProcessEnvironment") -> List[list]:
    """The lists a job can append to that the test then reads, so that process 1's
    appends can be replayed in process 0: the lists ``collect()`` made for ``env``; the
    module-level lists of the modules defining the job's functions (a test module's
    ``LOG``); the lists the job's functions close over (``seen.append`` in a local
    function, ``lambda v: out.append(v)``). Never a function object's own attributes:
    process 1's per-worker copies stay in process 1, as they would on two hosts."""
    found: Dict[int, list] = {id(l): l for l in env._collected}
    visited: set = set()

    def add(value: Any) -> None:
        if type(value) is list:
            found.setdefault(id(value), value)

    def module_lists(module_name: Optional[str]) -> None:
        module = sys.modules.get(module_name or "")
        if module is None or _is_ferroflow(module_name) or module_name == "builtins":
            return
        key = ("module", module_name)
        if key in visited:
            return
        visited.add(key)
        for value in list(vars(module).values()):
            add(value)

    def visit_function(fn: Any, depth: int) -> None:
        if id(fn) in visited:
            return
        visited.add(id(fn))
        if not _is_ferroflow(getattr(fn, "__module__", None)):
            for value in list(getattr(fn, "__globals__", {}).values()):
                add(value)
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                visit(cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                pass

    def visit_class(cls: type, depth: int) -> None:
        for klass in cls.__mro__:
            if klass.__module__ == "builtins" or id(klass) in visited:
                continue
            visited.add(id(klass))
            module_lists(klass.__module__)
            for member in list(vars(klass).values()):
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member):
                    visit_function(member, depth)

    def visit(value: Any, depth: int = 0) -> None:
        if depth > 4 or value is None:
            return
        if type(value) is list:
            add(value)
        elif inspect.isfunction(value):
            visit_function(value, depth)
        elif inspect.ismethod(value):
            visit_function(value.__func__, depth)
            visit_class(type(value.__self__), depth + 1)
        elif inspect.isbuiltin(value):
            add(getattr(value, "__self__", None))  # out.append
        elif isinstance(value, type):
            visit_class(value, depth + 1)
        elif isinstance(value, (str, bytes, int, float, bool, tuple, dict, set, frozenset)):
            return
        else:
            cls = type(value)
            if _is_ferroflow(cls.__module__):
                # the API's wrappers: a Udf's function, a source runner's SourceFunction,
                # select()'s filter (its methods close over the selector's Udf), a
                # partitioned connector's parts
                for attr in ("fn", "function", "connector"):
                    if hasattr(value, attr):
                        visit(getattr(value, attr), depth + 1)
            visit_class(cls, depth + 1)

    for node in env._nodes:
        for value in node.kind.fields().values():
            visit(value)
    return list(found.values())


def _captured_text(stream: Any) -> Optional[str]:
    """What an in-memory stdout/stderr (capsys) holds, or None for a real file."""
    getvalue = getattr(stream, "getvalue", None)
    if getvalue is None:
        return None
    try:
        stream.flush()
        return getvalue()
    except Exception:
        return None


def _pack_exception(e: BaseException) -> Tuple[str, Any]:
    try:
        data = pickle.dumps(e)
        pickle.loads(data)
        return ("pickle", data)
    except Exception:
        return ("text", f"{type(e).__module__}.{type(e).__qualname__}: {e}")


def _unpack_exception(packed: Tuple[str, Any]) -> BaseException:
    how, data = packed
    if how == "pickle":
        return pickle.loads(data)
    return RuntimeError(f"process 1 of the 2proc run raised {data}")


def _error_rank(e: BaseException) -> int:
    """Lower is more informative: the user's error over a lost peer over a cancellation."""
    from ferroflow import FerroflowError, JobExecutionException

    if isinstance(e, JobExecutionException):
        return {"udf": 0, "source": 0, "sink": 0, "plan": 0, "internal": 1, "system": 2, "cancelled": 3}.get(e.kind, 1)
    if isinstance(e, FerroflowError):
        return 1
    if isinstance(e, KeyboardInterrupt):
        return 4
    return 1


def _reap(pid: int, timeout: float) -> int:
    """Waits for the child (up to ``timeout``), then kills it. Returns its wait status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.002)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


class TwoProcessEnvironment(StreamExecutionEnvironment):
    """An environment whose ``execute()`` runs the job on two processes of one worker
    each: it forks once the plan is built; the parent runs process 0 and the child
    process 1 of a 127.0.0.1 cluster (free ports, a fresh secret), each with the
    cluster variables set only around its ``execute()``. The child then hands back
    through a pipe what the test observes: the records that reached the lists of
    ``collect()`` (and other shared lists, see ``_shared_lists``), what it wrote to
    an in-memory ``sys.stdout``/``sys.stderr`` (capsys), and its exception; and ends
    with ``os._exit``. The parent raises the more informative exception of the two."""

    def __init__(self) -> None:
        super().__init__()
        self._collected: List[list] = []

    def execute(self, job_name: Optional[str] = None, local: Optional[bool] = None):
        addresses = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
        secret = secrets.token_hex(32)
        shared = _shared_lists(self)
        marks = [len(l) for l in shared]
        streams = {"stdout": sys.stdout, "stderr": sys.stderr}
        text_marks = {}
        for name, stream in streams.items():
            text = _captured_text(stream)
            text_marks[name] = None if text is None else len(text)
            try:
                stream.flush()  # nothing buffered may be written twice
            except Exception:
                pass
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # process 1: never returns into pytest
            code = 70
            try:
                os.close(read_fd)
                code = self._run_child(job_name, local, addresses, secret, shared, marks, streams, text_marks,
                                       write_fd)
            except BaseException as e:  # noqa: BLE001 - report on the real stderr, then leave
                try:
                    os.write(2, f"2proc child: harness failure: {e!r}\n".encode())
                except Exception:
                    pass
            finally:
                os._exit(code)
        os.close(write_fd)
        chunks: List[bytes] = []

        def read_all() -> None:
            with os.fdopen(read_fd, "rb") as f:
                while True:
                    data = f.read(1 << 16)
                    if not data:
                        return
                    chunks.append(data)

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        result = error = None
        try:
            with _ClusterEnv(addresses, 0, secret):
                try:
                    result = super().execute(job_name, local)
                except BaseException as e:  # noqa: BLE001 - compared with process 1's below
                    error = e
        finally:
            reader.join(CHILD_REPORT_TIMEOUT)
            status = _reap(pid, 5.0 if not reader.is_alive() else 0.0)
        if reader.is_alive() or not chunks:
            why = ("did not report within %.0f s" % CHILD_REPORT_TIMEOUT) if reader.is_alive() else "reported nothing"
            raise RuntimeError(f"2proc: process 1 {why} (wait status {status}); process 0 "
                               f"{'raised ' + repr(error) if error else 'succeeded'}") from error
        report = pickle.loads(b"".join(chunks))
        if report.get("harness_error"):
            raise RuntimeError(f"2proc: process 1 could not report: {report['harness_error']}") from error
        for name, text in report["text"].items():
            if text:
                streams[name].write(text)
        for i, tail in report["lists"]:
            shared[i].extend(tail)
        child_error = _unpack_exception(report["error"]) if report["error"] is not None else None
        if error is None and child_error is None:
            return result
        if child_error is not None and (error is None or _error_rank(child_error) < _error_rank(error)):
            raise child_error
        raise error

    def _run_child(self, job_name, local, addresses, secret, shared, marks, streams, text_marks, write_fd) -> int:
        error = None
        with _ClusterEnv(addresses, 1, secret):
            try:
                super().execute(job_name, local)
            except BaseException as e:  # noqa: BLE001 - sent to the parent
                error = e
        report: Dict[str, Any] = {"error": None if error is None else _pack_exception(error), "text": {},
                                  "lists": []}
        for name, stream in streams.items():
            text = _captured_text(stream)
            if text is not None and text_marks[name] is not None:
                report["text"][name] = text[text_marks[name]:]
            else:
                try:
                    stream.flush()  # a real file: shared with the parent already
                except Exception:
                    pass
        report["lists"] = [(i, l[marks[i]:]) for i, l in enumerate(shared) if len(l) > marks[i]]
        try:
            data = pickle.dumps(report)
        except Exception as e:  # noqa: BLE001
            data = pickle.dumps({"harness_error": f"cannot pickle what process 1 observed: {e!r}"})
        with os.fdopen(write_fd, "wb") as f:
            f.write(data)
        return 0


def printed_records(text: str, workers: int) -> Tuple[List[Any], set]:
    """print() output parsed back into records (``repr`` is a Python literal), and the
    set of ``k> `` prefixes seen; asserts prefixes exactly when workers > 1."""
    lines = printed(text, workers)
    return [ast.literal_eval(t) for _, t in lines], {k for k, _ in lines if k is not None}


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
