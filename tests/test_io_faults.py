"""Sources and sinks under faults: print keeps lines whole on a slow pipe, text sources
reject bytes that are not UTF-8 with their place (or replace them when asked), a file
sink publishes its output only when the job succeeds, and Ctrl-C stops a job whose
sink is blocked."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ferroflow import JobExecutionException
from conftest import LOCALHOST, LineServer, make_env, run

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "cli_scripts"
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(HERE.parent / ".venv" / "bin" / "ferroflow")
ENV = {k: v for k, v in os.environ.items() if k not in ("FERROFLOW_DEBUG", "RUST_BACKTRACE", "PYTHONUNBUFFERED")}

# -- print ----------------------------------------------------------------------------------

PRINTED = re.compile(r"^[1-4]> \('W', 'w\d+-\d', 'x{40}'\)$")


def read_slowly(proc: subprocess.Popen, timeout: float) -> bytes:
    """All of `proc`'s stdout, read 8 KiB at a time with a pause after each read, so
    its writes keep blocking on a full pipe (a reader slower than the job)."""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            pytest.fail(f"the job did not finish within {timeout} s")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            continue
        chunk = os.read(fd, 8192)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        time.sleep(0.001)


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("how", ["threads", "processes"])
def test_print_keeps_lines_whole_on_a_slow_pipe(how, unbuffered):
    """With several workers writing to one stdout whose reader lags, every line stays
    whole: none spliced into another, none lost. Unbuffered stdout (PYTHONUNBUFFERED,
    as many container images set) is where Python's own stream mixed them up."""
    n = 50_000
    options = ["-", str(n), "2"] if how == "threads" else ["-p", "2", "-w", "2", "-", str(n)]
    env = dict(ENV, PYTHONUNBUFFERED="1") if unbuffered else ENV
    proc = subprocess.Popen([FERROFLOW, "run", "print_lines.py", *options], cwd=str(SCRIPTS), env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = read_slowly(proc, timeout=120)
        err = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    lines = out.decode(errors="replace").splitlines()
    bad = [line for line in lines if not PRINTED.match(line)]
    assert bad == [], f"{len(bad)} garbled lines, e.g. {bad[:3]}"
    assert len(lines) == n
    assert len(set(lines)) == n


# -- text sources: bytes that are not UTF-8 ---------------------------------------------------


def test_read_text_file_invalid_utf8_names_file_line_and_offset(env, tmp_path, parallelism):
    """Under any split of the file across workers (a file over 1 MiB is cut into byte
    ranges), the error names the line in the file and the offset of the bad byte."""
    lines = [f"line {i:07d} " + "y" * (i % 31) for i in range(150_000)]
    bad_line = 140_000  # 0-based: in the last worker's range
    data = bytearray()
    for i, line in enumerate(lines):
        if i == bad_line:
            bad_byte = len(data) + 3
            data += b"caf\xe9 "  # Latin-1, not UTF-8
        data += line.encode() + b"\n"
    p = tmp_path / "latin.txt"
    p.write_bytes(bytes(data))
    assert len(data) > 2 * 1024 * 1024
    with pytest.raises(JobExecutionException) as info:
        run(env, env.read_text_file(str(p)))
    e = info.value
    assert e.kind == "source", e
    assert f"{p}: line {bad_line + 1} is not valid UTF-8 (bad byte at offset {bad_byte})" in str(e), str(e)
    assert "encoding_errors='replace'" in str(e)


@pytest.mark.parametrize("errors,fixed", [("replace", "caf\ufffd au lait"), ("ignore", "caf au lait")])
def test_read_text_file_encoding_errors_when_asked(env, tmp_path, errors, fixed):
    p = tmp_path / "latin.txt"
    p.write_bytes(b"first\ncaf\xe9 au lait\nlast\n")
    out = run(env, env.read_text_file(str(p), encoding_errors=errors))
    assert sorted(out) == sorted(["first", fixed, "last"])


def test_text_sources_refuse_unknown_encoding_errors():
    env = make_env(1)
    for make in (lambda: env.read_text_file("x.txt", encoding_errors="surrogateescape"),
                 lambda: env.socket_text_stream(LOCALHOST, 9, encoding_errors="Replace")):
        with pytest.raises(ValueError, match="encoding_errors must be 'strict', 'replace' or 'ignore'"):
            make()


def test_socket_text_stream_invalid_utf8_is_an_error(env):
    """The socket source follows the file source's rule: an error with the place,
    never a silent U+FFFD."""
    with LineServer(b"one\ntwo\nca\xffe\nfour\n") as server:
        with pytest.raises(JobExecutionException) as info:
            run(env, env.socket_text_stream(LOCALHOST, server.port))
    e = info.value
    assert e.kind == "source", e
    assert f"{LOCALHOST}:{server.port}: line 3 is not valid UTF-8 (bad byte at offset 10)" in str(e), str(e)


@pytest.mark.parametrize("errors,fixed", [("replace", "ca\ufffde"), ("ignore", "cae")])
def test_socket_text_stream_encoding_errors_when_asked(env, errors, fixed):
    with LineServer(b"one\nca\xffe\nlast without newline \xff") as server:
        out = run(env, env.socket_text_stream(LOCALHOST, server.port, encoding_errors=errors))
    last = "last without newline " + ("\ufffd" if errors == "replace" else "")
    assert sorted(out) == sorted(["one", fixed, last])


# -- write_as_text: published on success only -------------------------------------------------

N_LINES = 200_000
BAD = 199_000


def _fail_late(x: int) -> int:
    if x == BAD:
        raise ValueError("bad record")
    return x


def _listing(path: Path) -> list:
    return sorted(os.listdir(path))


def _files(target: Path, parallelism: int) -> list:
    """The final names a successful job leaves."""
    return [target] if parallelism == 1 else [target / "1", target / "2"]


def test_write_as_text_failed_job_leaves_nothing_that_looks_complete(env, tmp_path, parallelism):
    target = tmp_path / "out.txt"
    env.generate_sequence(1, N_LINES).map(_fail_late).write_as_text(str(target))
    with pytest.raises(JobExecutionException, match="bad record"):
        env.execute("fails late")
    # No final name, and no in-progress file left behind either.
    if parallelism == 1:
        assert _listing(tmp_path) == []
    else:
        assert _listing(target) == []


def test_write_as_text_failed_overwrite_keeps_the_earlier_output(tmp_path, parallelism):
    target = tmp_path / "out.txt"
    env = make_env(parallelism)
    env.generate_sequence(1, N_LINES).write_as_text(str(target))
    env.execute("first")
    files = _files(target, parallelism)
    before = [f.read_bytes() for f in files]
    assert sum(b.count(b"\n") for b in before) == N_LINES
    listing = _listing(target.parent if parallelism == 1 else target)

    env = make_env(parallelism)
    env.generate_sequence(1, N_LINES).map(_fail_late).write_as_text(str(target), overwrite=True)
    with pytest.raises(JobExecutionException, match="bad record"):
        env.execute("fails late")
    assert _listing(target.parent if parallelism == 1 else target) == listing
    assert [f.read_bytes() for f in files] == before


# -- Ctrl-C while a sink is blocked -----------------------------------------------------------


@pytest.mark.parametrize("parallelism", [1, 2])
def test_ctrl_c_stops_a_job_whose_socket_sink_is_blocked(parallelism):
    """write_to_socket into a listener that never reads: the sink's writes block, and
    Ctrl-C still stops the job at once (exit 130)."""
    listener = socket.socket()
    listener.bind((LOCALHOST, 0))
    listener.listen(4)  # connections complete in the backlog; nobody accepts or reads
    proc = subprocess.Popen([FERROFLOW, "run", "blocked_sink.py", "-", "socket", str(parallelism),
                             str(listener.getsockname()[1])], cwd=str(SCRIPTS), env=ENV, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # Started, then long enough for the socket buffers to fill and the sink to block.
        assert proc.stderr.readline() == b"started\n"
        time.sleep(3)
        assert proc.poll() is None, proc.stderr.read()
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the job did not stop within 20 s of Ctrl-C")
        elapsed = time.monotonic() - signalled
        err = proc.stderr.read().decode(errors="replace")
        assert code == 130, err
        assert elapsed < 5, f"Ctrl-C took {elapsed:.2f} s (promise: 1 s)"
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        listener.close()
