"""The launcher under the faults an operator meets: the launcher itself killed or
terminated (kill -9, systemd, a CI time-out), far more processes than CPUs, a secret
given by two routes or a guessable one, and stdout's reader going away while the job's
own functions print.

Runs are subprocesses in their own session with time-outs (see test_multiprocess.py,
whose helpers these tests share); the job scripts are tests/mp_scripts/job.py and
tests/cli_scripts/endless.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ferroflow import _cluster, cli
from ferroflow._cluster import free_ports
from test_multiprocess import (FERROFLOW, JOB, ROOT, SECRET, Launched, alive, assert_all_gone, clean_env,
                               ferroflow, wait_for_files)

ENDLESS = Path(__file__).resolve().parent / "cli_scripts" / "endless.py"


def start_endless(tmp_path: Path, *options: str) -> tuple:
    """``ferroflow run job.py OPTIONS - endless``, once every worker is inside the job:
    (the launched command, the workers' pids)."""
    launched = Launched(["run", JOB, *options, "-", "endless", tmp_path])
    workers = 2 if "-p" in options else 1
    wait_for_files(tmp_path, [f"running-{i}" for i in range(workers)], 20, launched)
    return launched, [int((tmp_path / f"worker-{i}").read_text()) for i in range(workers)]


# -- the launcher is killed or terminated --------------------------------------------------


def test_sigkill_of_the_launcher_leaves_no_worker_running(tmp_path):
    """kill -9 of the launcher gives it no chance to stop anything: the workers must die
    with it (parent-death signal) instead of running the job on under init."""
    launched, pids = start_endless(tmp_path, "-p", "2")
    with launched:
        assert launched.proc.pid not in pids
        os.kill(launched.proc.pid, signal.SIGKILL)
        launched.proc.wait(timeout=10)
        assert_all_gone(pids, timeout=5)


def test_sigterm_to_the_launcher_stops_the_job_everywhere_and_exits_143(tmp_path):
    launched, pids = start_endless(tmp_path, "-p", "2")
    with launched:
        sent = time.monotonic()
        launched.proc.send_signal(signal.SIGTERM)
        r = launched.finish(15)
    assert_all_gone(pids, timeout=2)
    assert r.returncode == 143, r
    assert time.monotonic() - sent < 5, r
    assert "terminated" in r.stderr and "Traceback" not in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1, r  # said once, not once per process


def test_sigterm_to_the_launcher_also_stops_what_the_workers_started(tmp_path):
    """Each worker runs in its own process group, and the launcher signals the group:
    a helper process a user function started does not outlive the job."""
    script = tmp_path / "spawns.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        "from ferroflow import MapFunction, StreamExecutionEnvironment\n"
        "class Spawns(MapFunction):\n"
        "    def open(self, ctx):\n"
        "        helper = subprocess.Popen(['sleep', '120'])\n"
        "        path = os.path.join(sys.argv[1], f'helper-{ctx.get_index_of_this_subtask()}')\n"
        "        with open(path + '.tmp', 'w') as f:\n"
        "            f.write(f'{helper.pid} {os.getpid()}')\n"
        "        os.rename(path + '.tmp', path)\n"
        "    def map(self, value):\n"
        "        time.sleep(0.001)\n"
        "        return value\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "env.generate_sequence(0, 10 ** 15).map(Spawns()).add_sink(lambda v: None)\n"
        "env.execute()\n")
    with Launched(["run", "-p", "2", script, "-", tmp_path]) as launched:
        wait_for_files(tmp_path, ["helper-0", "helper-1"], 20, launched)
        helpers_and_workers = [int(pid) for i in range(2) for pid in (tmp_path / f"helper-{i}").read_text().split()]
        launched.proc.send_signal(signal.SIGTERM)
        r = launched.finish(15)
    assert_all_gone(helpers_and_workers, timeout=5)
    assert r.returncode == 143, r


def test_sigterm_to_one_worker_is_reported_as_such(tmp_path):
    """A worker now stops on SIGTERM by itself (exit 143): the launcher still says which
    process was stopped by what, and stops the others."""
    launched, pids = start_endless(tmp_path, "-p", "2")
    with launched:
        os.kill(pids[1], signal.SIGTERM)
        r = launched.finish(15)
    assert_all_gone(pids, timeout=2)
    assert r.returncode == 1, r
    assert "process 1 of 2 was killed by SIGTERM" in r.stderr, r


def test_sigterm_to_a_single_process_run_stops_the_job_and_exits_143(tmp_path):
    launched, pids = start_endless(tmp_path)
    with launched:
        sent = time.monotonic()
        launched.proc.send_signal(signal.SIGTERM)
        r = launched.finish(15)
    assert_all_gone(pids, timeout=2)
    assert r.returncode == 143, r
    assert time.monotonic() - sent < 3, r
    assert r.stderr.strip() == "ferroflow: terminated (SIGTERM)", r


def test_a_worker_whose_launcher_is_already_gone_exits_at_once():
    """The launcher may die between starting a process and that process asking to die
    with it: the process sees it has another parent and stops before running the job."""
    env = clean_env(FERROFLOW_LAUNCHER_PID="1" if os.getppid() != 1 else "2")
    r = ferroflow("run", JOB, "-", "small", env=env)
    assert r.returncode == 1 and r.stdout == "", r


# -- far more processes than CPUs ------------------------------------------------------------


def on_one_cpu():
    """For preexec_fn: the launcher (and so its processes) may use only one CPU."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run_on_one_cpu(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([FERROFLOW, *map(str, args)], cwd=str(ROOT), env=clean_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=on_one_cpu)


@pytest.mark.parametrize("counts", [["-p", "5"], ["-p", "2", "-w", "3"]], ids=["p5", "p2w3"])
def test_far_more_workers_than_cpus_is_refused_with_one_line(counts):
    """One CPU allows 4 workers: 5 processes (or 2 x 3 threads) are refused before any
    process starts, saying why and how to override."""
    started = time.monotonic()
    r = run_on_one_cpu("run", *counts, JOB, "-", "small", timeout=20)
    assert r.returncode == 2, r
    assert r.stdout == "", r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("ferroflow run: "), r
    assert "1 CPU" in r.stderr and "--oversubscribe" in r.stderr, r
    assert time.monotonic() - started < 5, r


def test_oversubscribe_starts_them_anyway():
    r = run_on_one_cpu("run", "-p", "5", "--oversubscribe", JOB, "-", "small")
    assert r.returncode == 0, r
    assert r.stdout.count("job finished") == 5, r


def test_a_thousand_processes_are_refused_without_starting_any():
    with pytest.raises(cli.UsageError, match=r"-p 1000 runs 1000 workers .* --oversubscribe"):
        cli.parse_run_options(["job.py", "-p", "1000"])
    assert cli.parse_run_options(["job.py", "-p", "1000", "--oversubscribe"])[2]["processes"] == 1000


# -- the shared secret ------------------------------------------------------------------------


def test_both_secret_routes_read_the_same_bytes(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    from_env = _cluster.read_secret({"FERROFLOW_SECRET": SECRET})
    from_file = _cluster.read_secret({"FERROFLOW_SECRET_FILE": str(path)})
    assert from_env == from_file == bytes.fromhex(SECRET)
    path.write_text("correct horse battery staple\n")
    assert _cluster.read_secret({"FERROFLOW_SECRET_FILE": str(path)}) == b"correct horse battery staple" \
        == _cluster.read_secret({"FERROFLOW_SECRET": "correct horse battery staple"})


def test_processes_given_one_secret_by_the_two_routes_run_the_job(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    ports = free_ports(2)
    addresses = ",".join(f"127.0.0.1:{p}" for p in ports)
    envs = [clean_env(FERROFLOW_SECRET=SECRET), clean_env(FERROFLOW_SECRET_FILE=str(path))]
    runs = [Launched(["run", JOB, "--addresses", addresses, "--process-id", str(i), "--connect-timeout", "20",
                      "-", "small"], envs[i]) for i in range(2)]
    try:
        results = [r.finish(30) for r in runs]
    finally:
        for r in runs:
            r.__exit__()
    for r in results:
        assert r.returncode == 0, r
        assert "job finished" in r.stdout, r


@pytest.mark.parametrize("route", ["FERROFLOW_SECRET", "FERROFLOW_SECRET_FILE"])
def test_a_secret_of_one_repeated_byte_is_refused(tmp_path, route):
    zeros = "00" * 16
    path = tmp_path / "secret"
    path.write_text(zeros + "\n")
    env = clean_env(**{route: zeros if route == "FERROFLOW_SECRET" else str(path)})
    addresses = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    r = ferroflow("run", JOB, "--addresses", addresses, "--process-id", "0", "--connect-timeout", "10",
                  "-", "small", env=env)
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "one byte (0x00) repeated" in lines[0], r
    assert r.seconds < 5, r  # refused at once, not after waiting for the other process
    assert r.stdout == "", r


# -- stdout's reader goes away while the job's own functions print -------------------------


@pytest.mark.parametrize("processes", ["1", "2"])
def test_printing_function_into_a_closed_pipe_exits_141_quietly(processes):
    """``ferroflow run job.py | head -1`` where the job's map and sink call print()
    themselves: exit 141 (as if killed by SIGPIPE) and nothing on stderr."""
    proc = subprocess.Popen([FERROFLOW, "run", ENDLESS, "-p", processes, "-", "slow_map", processes], cwd=str(ROOT),
                            env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        first = proc.stdout.readline()
        proc.stdout.close()  # what head does after its line
        err = proc.stderr.read()
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert first.strip(), first
    assert code == 141, err
    assert err == b"", err


def test_a_broken_pipe_elsewhere_is_still_reported(tmp_path):
    """Only stdout's reader going away is quiet: a function that fails with a broken pipe
    of its own (here raised by hand) while stdout is fine is a failure like any other."""
    script = tmp_path / "own_pipe.py"
    script.write_text(
        "from ferroflow import StreamExecutionEnvironment\n"
        "def send(v):\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "env.from_collection([1, 2]).add_sink(send)\n"
        "env.execute()\n")
    r = ferroflow("run", script)
    assert r.returncode == 1, r
    assert "BrokenPipeError" in r.stderr, r

