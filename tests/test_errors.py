"""Failures: user functions that raise, bad keys, unreadable inputs, broken scripts
and Ctrl-C, seen from `ferroflow run` and from the Python API (`env.execute()`).

Every job runs in a subprocess with a timeout, so a hang fails the test instead of
blocking the suite. The jobs live in tests/cli_scripts/.
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ferroflow
from ferroflow import _nodes

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "cli_scripts"
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(HERE.parent / ".venv" / "bin" / "ferroflow")
PACKAGE_DIR = str(Path(ferroflow.__file__).resolve().parent)

#: Generous bound for "stops promptly" (the runs here take well under a second).
PROMPT_S = 10.0
#: Ctrl-C must stop a job within a second; this leaves slack for a loaded CI machine.
CTRL_C_S = 1.5

ENV = {k: v for k, v in os.environ.items() if k not in ("FERROFLOW_DEBUG", "RUST_BACKTRACE", "PYTHONUNBUFFERED")}


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str, elapsed: float) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    def __repr__(self) -> str:
        return f"<rc={self.returncode} elapsed={self.elapsed:.2f}s\nstdout:\n{self.stdout[:3000]}\nstderr:\n{self.stderr[:3000]}>"


def run(cmd, cwd=SCRIPTS, timeout: float = 20.0) -> Result:
    started = time.monotonic()
    try:
        p = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=ENV, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{cmd} did not finish within {timeout} s (hang?); stdout={e.stdout!r} stderr={e.stderr!r}")
    return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - started)


def ferroflow_run(script, *args, cwd=SCRIPTS, timeout: float = 20.0) -> Result:
    return run([FERROFLOW, "run", script, *args], cwd=cwd, timeout=timeout)


def line_of(path: Path, marker: str) -> int:
    """1-based number of the only line of ``path`` containing ``marker``."""
    hits = [i for i, text in enumerate(path.read_text().splitlines(), 1) if marker in text]
    assert len(hits) == 1, f"marker {marker!r} found on lines {hits} of {path.name}"
    return hits[0]


def assert_no_engine_internals(text: str) -> None:
    assert "panicked" not in text, text
    assert "RUST_BACKTRACE" not in text, text
    assert "thread '" not in text, text  # Rust's "thread '<name>' panicked at ..."
    assert PACKAGE_DIR not in text, f"ferroflow-internal frames in:\n{text}"


def assert_one_line(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    assert "Traceback" not in text, text
    return lines[0]


# -- a user function raises ----------------------------------------------------------------

FAILING = SCRIPTS / "failing_udf.py"

# operator -> (words the operator's name shows, marker of the line that added the operator,
#              the user frame the traceback must name, engine error kind, record shown)
OPERATORS = {
    "map": (["map", "user_map"], "stream.map(user_map)", "user_map", "udf", True),
    "flat_map": (["flat_map", "user_flat_map"], "stream.flat_map(user_flat_map)", "user_flat_map", "udf", True),
    "flat_map_generator": (["flat_map", "user_flat_map_generator"], "stream.flat_map(user_flat_map_generator)",
                           "user_flat_map_generator", "udf", True),
    "filter": (["filter", "user_filter"], "stream.filter(user_filter)", "user_filter", "udf", True),
    "key_by": (["key_by", "user_key"], "stream.key_by(user_key)", "user_key", "udf", True),
    "reduce": (["reduce", "UserReduce"], ".reduce(UserReduce())", "reduce", "udf", True),
    "window_reduce": (["window", "user_window_reduce"], ".reduce(user_window_reduce)", "user_window_reduce", "udf",
                      True),
    "window_apply": (["window", "UserWindowApply"], ".apply(UserWindowApply())", "apply", "udf", False),
    "sink": (["UserSink"], "out.add_sink(UserSink())", "invoke", "sink", True),
    "source_run": (["add_source", "UserSource"], "env.add_source(UserSource())", "run", "source", False),
    "generator": (["from_collection"], "env.from_collection(user_generator())", "user_generator", "source", False),
}
RAISE_LINE = line_of(FAILING, "# RAISE-LINE")
CASES = [(op, p) for op in OPERATORS for p in (1, 2)]
CASE_IDS = [f"{op}-p{p}" for op, p in CASES]


@functools.lru_cache(maxsize=None)
def cli_failure(op: str, parallelism: int) -> Result:
    return ferroflow_run("failing_udf.py", "-", op, str(parallelism))


@functools.lru_cache(maxsize=None)
def api_failure(op: str, parallelism: int) -> dict:
    r = run([sys.executable, "failing_udf.py", op, str(parallelism), "--catch"])
    assert r.returncode == 0, r
    return json.loads(r.stdout.strip().splitlines()[-1])


def assert_user_traceback(text: str, frame: str) -> None:
    """``text`` holds the Python traceback of the user's code: the user's function
    and the raising line, and no frame of ferroflow itself."""
    assert "Traceback (most recent call last)" in text, f"no Python traceback in:\n{text}"
    assert f'failing_udf.py", line {RAISE_LINE}, in explode' in text, text
    assert f", in {frame}\n" in text, f"the traceback does not name the user function {frame}():\n{text}"
    assert PACKAGE_DIR not in text, f"ferroflow-internal frames in:\n{text}"
    assert "UserBoom: user code failed" in text, text


@pytest.mark.parametrize("op,parallelism", CASES, ids=CASE_IDS)
def test_udf_exception_fails_the_job_with_operator_and_record(op, parallelism):
    words, site_marker, _frame, _kind, has_record = OPERATORS[op]
    r = cli_failure(op, parallelism)
    assert r.returncode == 1, r
    assert r.elapsed < PROMPT_S, r
    assert r.stderr.startswith("ferroflow: job 'failing job' failed: "), r
    for w in words:
        assert w in r.stderr, r
    assert f"(failing_udf.py:{line_of(FAILING, site_marker)})" in r.stderr, r
    if has_record:
        assert "on record 'POISON-17'" in r.stderr, r
    assert "UserBoom: user code failed" in r.stderr, r
    assert_no_engine_internals(r.stderr)


@pytest.mark.parametrize("op,parallelism", CASES, ids=CASE_IDS)
def test_udf_exception_shows_the_user_traceback(op, parallelism):
    r = cli_failure(op, parallelism)
    assert r.returncode == 1, r
    assert_user_traceback(r.stderr, OPERATORS[op][2])


@pytest.mark.parametrize("op,parallelism", CASES, ids=CASE_IDS)
def test_execute_raises_job_execution_exception_with_attributes(op, parallelism):
    words, site_marker, _frame, kind, has_record = OPERATORS[op]
    e = api_failure(op, parallelism)
    assert e["type"] == "JobExecutionException", e
    assert e["kind"] == kind, e
    for w in words:
        assert w in e["operator"], e
    assert f"failing_udf.py:{line_of(FAILING, site_marker)}" in e["operator"], e
    if has_record:
        assert e["record"] == "'POISON-17'", e
    assert "UserBoom: user code failed" in e["detail"], e
    assert e["operator"] in e["message"] and "UserBoom: user code failed" in e["message"], e
    assert isinstance(e["worker"], int) and 0 <= e["worker"] < parallelism, e


@pytest.mark.parametrize("op,parallelism", CASES, ids=CASE_IDS)
def test_execute_exception_detail_is_the_user_traceback(op, parallelism):
    e = api_failure(op, parallelism)
    assert e["type"] == "JobExecutionException", e
    assert_user_traceback(e["detail"], OPERATORS[op][2])
    assert_user_traceback(e["message"], OPERATORS[op][2])


def test_execute_raises_the_exported_exception_class():
    # The --catch script catches ferroflow.JobExecutionException: make sure it is the
    # public name, a FerroflowError, and what `python job.py` shows when uncaught.
    assert issubclass(ferroflow.JobExecutionException, ferroflow.FerroflowError)
    r = run([sys.executable, "failing_udf.py", "map", "2"])
    assert r.returncode == 1, r
    assert "JobExecutionException: job 'failing job' failed: map 'user_map'" in r.stderr, r
    assert "on record 'POISON-17'" in r.stderr, r
    assert_no_engine_internals(r.stderr.rsplit("JobExecutionException: ", 1)[1])


# -- ferroflow's own bugs --------------------------------------------------------------------

BROKEN_INVARIANT_JOB = """
from ferroflow import StreamExecutionEnvironment, _nodes

env = StreamExecutionEnvironment.get_execution_environment()
# Breaks an invariant between the API and the engine on purpose (a collection source's
# make() must return an iterator), to stand for a bug in ferroflow.
env._source(_nodes.Collection(lambda: 42), "broken", "from_collection").add_sink(lambda x: None)
env.execute("broken job")
"""


def test_an_internal_error_is_raised_as_internal_error_saying_it_is_a_bug(tmp_path):
    env = ferroflow.StreamExecutionEnvironment.get_execution_environment()
    env._source(_nodes.Collection(lambda: 42), "broken", "from_collection").add_sink(lambda x: None)
    with pytest.raises(ferroflow.InternalError) as info:
        env.execute("broken job")
    e = info.value
    assert isinstance(e, ferroflow.JobExecutionException) and e.kind == "internal"
    text = str(e)
    assert text.startswith("job 'broken job' failed: internal error in from_collection 'broken'"), text
    assert "This is a bug in ferroflow" in text and "not in the job: please report it" in text, text
    # and from the command line: the wording, no traceback, exit 1
    script = tmp_path / "broken.py"
    script.write_text(BROKEN_INVARIANT_JOB)
    r = ferroflow_run(str(script))
    assert r.returncode == 1, r
    assert "internal error in from_collection 'broken'" in r.stderr and "This is a bug in ferroflow" in r.stderr, r
    assert "Traceback" not in r.stderr, r


def test_a_user_exception_is_not_called_a_bug():
    e = api_failure("map", 2)
    assert e["type"] == "JobExecutionException" and e["kind"] == "udf", e
    assert "bug in ferroflow" not in e["message"], e


def test_python_job_script_failure_shows_user_traceback():
    r = run([sys.executable, "failing_udf.py", "flat_map", "1"])
    assert r.returncode == 1, r
    assert_user_traceback(r.stderr.rsplit("JobExecutionException: ", 1)[1], "user_flat_map")


def test_huge_record_is_truncated_in_the_message():
    r = ferroflow_run("failing_udf.py", "-", "map", "2", "--huge")
    assert r.returncode == 1, r
    assert "on record 'POISON-xxxxxxxx" in r.stderr, r
    assert "x" * 5000 not in r.stderr, f"record not truncated ({len(r.stderr)} characters)"
    assert len(r.stderr) < 20_000, f"message is {len(r.stderr)} characters"
    e = json.loads(run([sys.executable, "failing_udf.py", "map", "1", "--huge", "--catch"]).stdout)
    assert e["record"].startswith("'POISON-xxx"), e["record"][:200]
    assert len(e["record"]) < 2000, len(e["record"])
    assert len(e["message"]) < 20_000, len(e["message"])


@pytest.mark.parametrize("input_kind", ["endless", "endless_source", "sequence"])
@pytest.mark.parametrize("op", ["map", "key_by", "window_apply", "sink"])
def test_early_failure_stops_a_job_with_endless_input_promptly(op, input_kind):
    r = ferroflow_run("failing_udf.py", "-", op, "2", f"--input={input_kind}", timeout=30)
    assert r.returncode == 1, r
    assert r.elapsed < PROMPT_S, r
    assert "UserBoom: user code failed" in r.stderr, r
    assert_no_engine_internals(r.stderr)


# -- keys the engine cannot use ------------------------------------------------------------

BAD_KEYS = SCRIPTS / "bad_keys.py"


@pytest.mark.parametrize("parallelism", [1, 2])
@pytest.mark.parametrize("kind,type_name,shown", [
    ("list", "list", "[{n}, 'k']"),
    ("dict", "dict", "{{'k': {n}}}"),
    ("set", "set", "{{{n}}}"),
    ("object", "Point", "Point({n})"),
    ("nested", "list", "[{n}]"),
])
def test_unsupported_key_is_one_clear_line(kind, type_name, shown, parallelism):
    r = ferroflow_run("bad_keys.py", "-", kind, str(parallelism))
    assert r.returncode == 1, r
    assert r.elapsed < PROMPT_S, r
    line = assert_one_line(r.stderr)
    assert line.startswith("ferroflow: job 'bad keys' failed: key_by 'bad_key'"), line
    assert f"(bad_keys.py:{line_of(BAD_KEYS, '# KEY-BY-LINE')})" in line, line
    # With parallelism 2 the records are spread over the workers before key_by, so
    # any of them may be the first to fail; the key shown must be that record's.
    m = re.search(r"on record (\d+): ", line)
    assert m and m.group(1) in ("7", "8", "9"), line
    assert "keys must be str, int, float, bool, None, bytes or tuples of these" in line, line
    assert line.endswith(f"got {type_name} {shown.format(n=m.group(1))}"), line
    assert_no_engine_internals(r.stderr)


# -- inputs that cannot be opened ----------------------------------------------------------

BAD_INPUT = SCRIPTS / "bad_input.py"


@pytest.mark.parametrize("as_directory", [False, True], ids=["file", "in-missing-dir"])
def test_missing_input_file_is_one_clear_line(tmp_path, as_directory):
    missing = tmp_path / ("no_such_dir" if as_directory else "") / "input.txt"
    r = ferroflow_run("bad_input.py", "-", "file", missing)
    assert r.returncode == 1, r
    line = assert_one_line(r.stderr)
    assert "read_text_file" in line, line
    assert f"(bad_input.py:{line_of(BAD_INPUT, '# SOURCE-LINE-file')})" in line, line
    assert str(missing) in line, line
    assert "no such file" in line.lower(), line
    assert_no_engine_internals(r.stderr)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_refused_socket_connection_is_one_clear_line():
    port = _closed_port()
    r = ferroflow_run("bad_input.py", "-", "socket", "127.0.0.1", str(port))
    assert r.returncode == 1, r
    assert r.elapsed < PROMPT_S, r
    line = assert_one_line(r.stderr)
    assert "socket_text_stream" in line, line
    assert f"(bad_input.py:{line_of(BAD_INPUT, '# SOURCE-LINE-socket')})" in line, line
    assert f"127.0.0.1:{port}" in line, line
    assert "refused" in line.lower(), line
    assert_no_engine_internals(r.stderr)


# -- scripts that cannot run ---------------------------------------------------------------

def test_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "broken_job.py").write_text("from ferroflow import StreamExecutionEnvironment\n\n"
                                           "env = StreamExecutionEnvironment.get_execution_environment(\n"
                                           "env.execute()\n")
    r = ferroflow_run("broken_job.py", cwd=tmp_path)
    # cli.py treats a script that does not compile as a usage error (exit 2).
    assert r.returncode == 1, r  # a script failure, as python exits on a syntax error
    line = assert_one_line(r.stderr)
    assert line.startswith("ferroflow: broken_job.py:3: syntax error"), line
    assert_no_engine_internals(r.stderr)
    assert r.stdout == "", r


def test_script_without_job_or_main_is_one_clear_line(tmp_path):
    (tmp_path / "no_job.py").write_text("import ferroflow\n\nWORDS = ['a', 'b']\n\n\ndef helper():\n    pass\n")
    r = ferroflow_run("no_job.py", cwd=tmp_path)
    # cli.py treats this as a usage error (exit 2).
    assert r.returncode == 1, r  # the script failed to define a job
    line = assert_one_line(r.stderr)
    assert "no_job.py" in line and "ran no job" in line and "main()" in line, line
    assert_no_engine_internals(r.stderr)


# -- Ctrl-C --------------------------------------------------------------------------------

class Running:
    """A `ferroflow run` in its own session (so SIGINT is not inherited as ignored)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([FERROFLOW, "run", *args], cwd=str(SCRIPTS), env=ENV, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.out = b""

    def wait_for(self, needle: bytes, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while needle not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.poll() is not None else b""
                pytest.fail(f"job never printed {needle!r} (rc={self.proc.poll()}): stdout={self.out[-2000:]!r} "
                            f"stderr={err[-2000:]!r}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if ready:
                self.out += os.read(fd, 65536)

    def interrupt(self) -> tuple:
        """Sends SIGINT; returns (exit code, seconds from signal to exit, stderr)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the job did not exit within 10 s of Ctrl-C")
        elapsed = time.monotonic() - started
        _out, err = self.proc.communicate(timeout=5)
        return code, elapsed, err.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def _assert_interrupted(code: int, elapsed: float, err: str) -> None:
    assert code == 130, (code, err)
    assert elapsed < CTRL_C_S, f"Ctrl-C took {elapsed:.2f} s to stop the job (must be < 1 s; bound {CTRL_C_S} s)"
    assert "interrupted" in err, err
    assert "Traceback" not in err, err
    assert_no_engine_internals(err)


@pytest.mark.parametrize("mode,parallelism", [("source", 1), ("source", 2), ("slow_map", 1), ("slow_map", 2)])
def test_ctrl_c_stops_an_endless_job(mode, parallelism):
    job = Running("endless.py", "-", mode, str(parallelism))
    try:
        job.wait_for(b"record " if mode == "source" else b"working on ")
        _assert_interrupted(*job.interrupt())
    finally:
        job.close()


def test_ctrl_c_stops_a_socket_job_whose_server_never_closes():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            i = 0
            while not stop.is_set():
                try:
                    conn.sendall(f"line {i}\n".encode())
                except OSError:
                    return
                i += 1
                time.sleep(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    job = Running("endless.py", "-", "socket", "1", str(server.getsockname()[1]))
    try:
        job.wait_for(b"record line ")
        _assert_interrupted(*job.interrupt())
    finally:
        job.close()
        stop.set()
        server.close()
        thread.join(timeout=5)


def test_ctrl_c_stops_a_job_stuck_in_a_long_user_call():
    job = Running("endless.py", "-", "stuck", "1")
    try:
        job.wait_for(b"stuck")
        time.sleep(0.1)  # well inside the 30 s sleep
        _assert_interrupted(*job.interrupt())
    finally:
        job.close()
