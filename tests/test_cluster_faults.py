"""Multi-process runs when the network misbehaves: a process that stops answering
without closing its connections (SIGSTOP, as in a network partition) fails the job
within the heartbeat time-out, naming it and its address; a process that is merely busy
in Python does not; a burst of strangers on a cluster port neither floods stderr nor
blocks the start when nobody reads stderr.

The runs are started as in tests/test_multiprocess.py (each in its own session, with a
timeout, nothing left running)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest
from ferroflow._cluster import free_ports
from test_multiprocess import (FERROFLOW, JOB, ROOT, SCRIPTS, SECRET, Launched, assert_clean, clean_env,
                               wait_for_files)


def release(pids) -> None:
    """Lets stopped processes go and kills them (they are ours)."""
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def test_a_stopped_process_fails_the_job_naming_it(tmp_path):
    """-p 2 with a 3 s heartbeat time-out: process 1 gets SIGSTOP mid-job. Process 0
    fails ~3 s later naming process 1 and its address, the launcher stops the rest and
    exits 1."""
    pids = []
    try:
        with Launched(["run", JOB, "-p", "2", "-", "endless", tmp_path],
                      clean_env(FERROFLOW_HEARTBEAT_TIMEOUT="3")) as launched:
            wait_for_files(tmp_path, ["running-0", "running-1"], 15, launched)
            pids = [int((tmp_path / f"worker-{i}").read_text()) for i in range(2)]
            os.kill(pids[1], signal.SIGSTOP)
            stopped_at = time.monotonic()
            r = launched.finish(40)
            took = time.monotonic() - stopped_at
    finally:
        release(pids)
    assert r.returncode == 1, r
    assert took < 3 + 12, (took, r)  # the time-out, then the launcher's grace period
    assert re.search(r"process 0 of 2: .*no heartbeat from process 1 at 127\.0\.0\.1:\d+ for 3 s", r.stderr), r
    assert "--heartbeat-timeout" in r.stderr, r
    assert "job finished" not in r.stdout, r
    assert_clean(r.stderr)


def test_a_stopped_address_process_is_named_by_the_other(tmp_path):
    """--addresses (no supervisor), --heartbeat-timeout 3: process 0 itself stops within
    a few seconds of process 1's SIGSTOP, naming its address."""
    ports = free_ports(2)
    addresses = [f"127.0.0.1:{p}" for p in ports]
    env = clean_env(FERROFLOW_SECRET=SECRET)
    runs = [Launched(["run", JOB, "--addresses", ",".join(addresses), "--process-id", str(i), "--connect-timeout",
                      "10", "--heartbeat-timeout", "3", "-", "endless", tmp_path], env) for i in range(2)]
    pids = []
    try:
        for run in runs:
            wait_for_files(tmp_path, ["running-0", "running-1"], 15, run)
        pids = [int((tmp_path / f"worker-{i}").read_text()) for i in range(2)]
        os.kill(pids[1], signal.SIGSTOP)
        stopped_at = time.monotonic()
        r0 = runs[0].finish(20)
        took = time.monotonic() - stopped_at
    finally:
        release(pids)
        for run in runs:
            run.__exit__()
    assert r0.returncode == 1, r0
    assert 2.5 <= took < 3 + 5, (took, r0)
    assert f"no heartbeat from process 1 at {addresses[1]} for 3 s" in r0.stderr, r0
    assert r0.stderr.count("no heartbeat") == 1, r0
    assert_clean(r0.stderr)


def test_a_process_busy_in_python_is_not_taken_for_dead():
    """Worker 1 spends 6 s in a pure-Python loop, with a 2 s heartbeat time-out: the
    heartbeats do not wait for it, the job succeeds."""
    with Launched(["run", SCRIPTS / "busy.py", "-p", "2", "-", "6"],
                  clean_env(FERROFLOW_HEARTBEAT_TIMEOUT="2")) as launched:
        r = launched.finish(60)
    assert r.returncode == 0, r
    assert r.stdout.count("job finished") == 2, r
    assert r.stderr == "", r
    assert r.seconds >= 6, r


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
def test_a_bad_heartbeat_timeout_is_a_usage_error(value):
    r = Launched(["run", JOB, "--heartbeat-timeout", value, "-", "small"]).finish(20)
    assert r.returncode == 2, r
    first = r.stderr.splitlines()[0]
    assert first.startswith("ferroflow run: --heartbeat-timeout takes seconds"), r
    assert "Traceback" not in r.stderr, r


def test_a_bad_heartbeat_timeout_variable_is_one_line():
    addresses = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    env = clean_env(FERROFLOW_SECRET=SECRET, FERROFLOW_HEARTBEAT_TIMEOUT="soon")
    r = Launched(["run", JOB, "--addresses", addresses, "--process-id", "0", "-", "small"], env).finish(20)
    assert r.returncode == 1, r
    assert len(r.stderr.strip().splitlines()) == 1, r
    assert "FERROFLOW_HEARTBEAT_TIMEOUT takes seconds" in r.stderr, r
    assert "Traceback" not in r.stderr, r


def test_a_burst_of_strangers_neither_floods_stderr_nor_blocks_the_start():
    """2,000 connections that are not ferroflow processes hit process 0's port while it
    waits for process 1, and nobody reads process 0's stderr (a full pipe blocks its
    writer). The job still starts and completes; stderr holds a few lines counting them."""
    burst = 2000
    ports = free_ports(2)
    addresses = ",".join(f"127.0.0.1:{p}" for p in ports)
    env = clean_env(FERROFLOW_SECRET=SECRET)

    def command(i: int, timeout: int):
        return [FERROFLOW, "run", str(JOB), "--addresses", addresses, "--process-id", str(i), "--connect-timeout",
                str(timeout), "-", "small"]

    started = time.monotonic()
    p0 = subprocess.Popen(command(0, 30), cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:  # until process 0 listens
            try:
                socket.create_connection(("127.0.0.1", ports[0]), timeout=1).close()
                break
            except OSError:
                assert p0.poll() is None and time.monotonic() < deadline, "process 0 never listened"
                time.sleep(0.02)
        for _ in range(burst - 1):
            socket.create_connection(("127.0.0.1", ports[0]), timeout=5).close()
        r1 = Launched(command(1, 10)[1:], env).finish(30)
        assert r1.returncode == 0, r1
        try:
            p0.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("process 0 is stuck (writing to its stderr?)")
        out, err = p0.communicate(timeout=10)
    finally:
        if p0.poll() is None:
            os.killpg(p0.pid, signal.SIGKILL)
            p0.communicate(timeout=10)
    took = time.monotonic() - started
    out, err = out.decode(), err.decode()
    assert p0.returncode == 0, err[-3000:]
    assert "job finished" in out, out
    lines = err.splitlines()
    # The first refusal, then one count at most every 5 s and the total: bounded by the
    # time the start took (longer on a loaded machine), never by the 2,000 connections.
    assert 2 <= len(lines) <= 2 + int(took // 5) + 1, (took, err[-3000:])
    assert all(line.startswith("ferroflow: process 0: refused ") for line in lines), err
    assert lines[0].startswith("ferroflow: process 0: refused a connection from 127.0.0.1:"), err
    total = re.search(r"\((\d+) in all while the cluster started\)", lines[-1])
    assert total, err
    counted = 1 + sum(int(re.match(r"ferroflow: process 0: refused (\d+) more", line).group(1))
                      for line in lines[1:])
    assert counted == int(total.group(1)) >= burst // 2, err
