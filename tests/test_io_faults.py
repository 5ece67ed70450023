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
