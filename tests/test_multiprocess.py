"""Multi-process runs through the launcher: ``ferroflow run -p N`` (local processes under
a supervisor) and ``--addresses``/``--hosts-file`` + ``--process-id`` (one process per
host, here all on 127.0.0.1): same results as one process, failures reported once and
promptly, nothing left running, clear errors for every way the processes can fail to
find each other, and usage errors.

Every run is a subprocess in its own session with a timeout (its whole process group is
killed if a test fails half-way). The job scripts live in tests/mp_scripts/.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest
from conftest import printed_records
from ferroflow._cluster import free_ports

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPTS = HERE / "mp_scripts"
JOB = SCRIPTS / "job.py"
WORD_COUNT = ROOT / "examples" / "word_count.py"
HAMLET = ROOT / "examples" / "data" / "hamlet.txt"
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(ROOT / ".venv" / "bin" / "ferroflow")

#: One window for the whole input (a day, aligned to the epoch), so that a run crossing
#: a window boundary cannot split a word's count and the outputs compare exactly.
ONE_WINDOW = ["-", "--window-ms", str(24 * 3600 * 1000)]

SECRET = "3f1c9a7e5b2d4c6e8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d"


def clean_env(**extra: str) -> Dict[str, str]:
    """The test's environment without any ferroflow cluster setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FERROFLOW_") and k not in ("RUST_BACKTRACE", "PYTHONUNBUFFERED")}
    env.update(extra)
    return env


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str, seconds: float) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds

    def __repr__(self) -> str:
        return (f"<rc={self.returncode} after {self.seconds:.2f} s\nstdout:\n{self.stdout[-3000:]}\n"
                f"stderr:\n{self.stderr[-3000:]}>")


class Launched:
    """A ``ferroflow`` command started in its own session; ``finish()`` waits for it
    (bounded) and always leaves nothing of it running."""

    def __init__(self, args: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Path = ROOT) -> None:
        self.args = [FERROFLOW, *map(str, args)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.args, cwd=str(cwd), env=env or clean_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def finish(self, timeout: float) -> Result:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate(timeout=10)
            pytest.fail(f"{self.args} did not finish within {timeout} s (hang?)\nstdout:\n{out[-3000:]}\n"
                        f"stderr:\n{err[-3000:]}")
        return Result(self.proc.returncode, out, err, time.monotonic() - self.started)

    def kill(self) -> None:
        """Kills the process group this command started (its supervisor and children)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "Launched":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.kill()
            try:
                self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def ferroflow(*args, env: Optional[Dict[str, str]] = None, timeout: float = 20.0) -> Result:
    with Launched(args, env) as launched:
        return launched.finish(timeout)


def wait_for_files(folder: Path, names: Sequence[str], timeout: float, launched: Launched) -> None:
    deadline = time.monotonic() + timeout
    while not all((folder / n).exists() for n in names):
        if launched.proc.poll() is not None:
            res = launched.finish(5)
            pytest.fail(f"the run ended before {names} appeared: {res!r}")
        if time.monotonic() > deadline:
            pytest.fail(f"{names} did not appear in {folder} within {timeout} s: {sorted(os.listdir(folder))}")
        time.sleep(0.02)
    time.sleep(0.05)  # the pid written in full


def alive(pid: int) -> bool:
    """True if ``pid`` still runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def assert_all_gone(pids: Sequence[int], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = [p for p in pids if alive(p)]
    if left:
        for p in left:  # our own children: do not leave them behind
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pytest.fail(f"processes {left} were still running {timeout} s after the launcher exited")


def assert_clean(text: str) -> None:
    assert "panicked" not in text and "RUST_BACKTRACE" not in text, text
    assert "MergeQueue" not in text and "timely communication error" not in text, text


# -- word count: same results on 1, 2 and 2x2 workers ------------------------------------------


def parse_word_counts(stdout: str, workers: int) -> tuple:
    """``(Counter of (count, word) records, set of k> prefixes)`` from word_count.py's output."""
    records, prefixes = printed_records(stdout, workers)
    return Counter(records), prefixes


def expected_word_counts() -> Counter:
    with open(HAMLET, encoding="utf-8") as f:
        words = Counter(w for line in f for w in line.lower().split())
    return Counter((n, w) for w, n in words.items())


@pytest.fixture(scope="module")
def one_process_word_count() -> Counter:
    r = ferroflow("run", WORD_COUNT, *ONE_WINDOW)
    assert r.returncode == 0 and r.stderr == "", r
    records, _ = parse_word_counts(r.stdout, 1)
    assert records == expected_word_counts()
    return records


def test_word_count_two_processes_equals_one(one_process_word_count):
    r = ferroflow("run", WORD_COUNT, "-p", "2", *ONE_WINDOW)
    assert r.returncode == 0, r
    assert r.stderr == "", r
    records, prefixes = parse_word_counts(r.stdout, 2)
    assert records == one_process_word_count
    assert prefixes == {1, 2}  # both processes' workers printed, numbered job-wide


def test_word_count_two_processes_two_workers_each(one_process_word_count):
    r = ferroflow("run", WORD_COUNT, "-p", "2", "-w", "2", *ONE_WINDOW)
    assert r.returncode == 0, r
    assert r.stderr == "", r
    records, prefixes = parse_word_counts(r.stdout, 4)
    assert records == one_process_word_count
    assert prefixes == {1, 2, 3, 4}  # 2 processes x 2 threads = 4 workers


@pytest.mark.parametrize("how", ["addresses", "hosts-file"])
def test_word_count_one_process_per_address(one_process_word_count, tmp_path, how):
    """The multi-host form on one machine: the same command on each "host", with its own
    --process-id. Each process prints its own workers' records; together they are the
    one-process result."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    if how == "addresses":
        where = ["--addresses", ",".join(addresses)]
    else:
        hosts = tmp_path / "hosts"
        hosts.write_text("# one host:port per process\n" + "\n".join(addresses) + "\n")
        where = ["--hosts-file", str(hosts)]
    env = clean_env(FERROFLOW_SECRET=SECRET)
    runs = [Launched(["run", WORD_COUNT, *where, "--process-id", str(i), "--connect-timeout", "10", *ONE_WINDOW],
                     env) for i in range(2)]
    try:
        results = [r.finish(30) for r in runs]
    finally:
        for r in runs:
            r.__exit__()
    union: Counter = Counter()
    for i, r in enumerate(results):
        assert r.returncode == 0, r
        assert r.stderr == "", r
        records, prefixes = parse_word_counts(r.stdout, 2)
        assert prefixes == {i + 1}, r  # process i runs worker i
        union += records
    assert union == one_process_word_count


# -- a user function fails in process 1 -----------------------------------------------------------


def test_udf_failure_in_process_1_is_reported_once(tmp_path):
    """Worker 1 (process 1 of 2) raises on the 50th record of an endless job: the run
    stops at once, exit 1, one report naming the process, the operator, the record and
    the user's traceback; nothing of the run is left."""
    with Launched(["run", JOB, "-p", "2", "-", "fail_on_worker_1", tmp_path]) as launched:
        r = launched.finish(20)
    assert r.returncode == 1, r
    assert r.seconds < 10, r
    assert "job finished" not in r.stdout, r
    err = r.stderr
    assert err.count("UserBoom: worker 1 refuses 'rec-") == 1, r  # reported once
    assert err.count("Traceback (most recent call last)") == 1, r
    assert "process 1 of 2" in err, r
    assert "map 'Tracked'" in err, r
    assert re.search(r"on record 'rec-\d+'", err), r
    assert "RAISE-LINE" in err and "in map" in err, r  # the user's traceback, with the raising line
    assert "process 0" not in err, r  # no echo of process 0 losing its peer
    assert "lost the connection" not in err, r
    assert_clean(err)
    pids = [int((tmp_path / f"worker-{i}").read_text()) for i in range(2)]
    assert len(set(pids)) == 2 and launched.proc.pid not in pids  # really two processes
    assert_all_gone(pids)


def test_udf_failure_reported_while_its_process_is_still_busy(tmp_path):
    """-p 2 -w 2: worker 2 (process 1) fails while worker 3, in the same process, is
    inside a slow user call (1 s). Process 1 closes its connections at once, so process
    0 stops first with "lost the connection to process 1"; that echo must not replace
    the user's error, which process 1 reports once its busy worker returned."""
    with Launched(["run", JOB, "-p", "2", "-w", "2", "-", "fail_busy_peer", tmp_path]) as launched:
        r = launched.finish(20)
    assert r.returncode == 1, r
    assert r.seconds < 10, r
    err = r.stderr
    assert err.count("UserBoom: worker 2 refuses 'rec-") == 1, r
    assert "process 1 of 2" in err and "map 'Tracked'" in err and "RAISE-LINE" in err, r
    assert "lost the connection" not in err, r
    assert "job finished" not in r.stdout, r
    pids = {int((tmp_path / f"worker-{i}").read_text()) for i in range(4)}
    assert len(pids) == 2, pids  # two processes of two workers
    assert_all_gone(sorted(pids))


def test_udf_failure_stops_the_other_address_process(tmp_path):
    """Without a supervisor (--addresses): the failing process reports the user's error;
    the other one stops by itself, naming the process it lost."""
    ports = free_ports(2)
    addresses = ",".join(f"127.0.0.1:{p}" for p in ports)
    env = clean_env(FERROFLOW_SECRET=SECRET)
    runs = [Launched(["run", JOB, "--addresses", addresses, "--process-id", str(i), "--connect-timeout", "10",
                      "-", "fail_on_worker_1", tmp_path], env) for i in range(2)]
    try:
        r0, r1 = [r.finish(20) for r in runs]
    finally:
        for r in runs:
            r.__exit__()
    assert r1.returncode == 1, r1
    assert "UserBoom: worker 1 refuses 'rec-" in r1.stderr and "map 'Tracked'" in r1.stderr, r1
    assert r0.returncode == 1, r0
    assert r0.seconds < 10 and r1.seconds < 10, (r0, r1)
    assert f"process 1 at 127.0.0.1:{ports[1]}" in r0.stderr, r0
    assert "job finished" not in r0.stdout + r1.stdout
    assert_clean(r0.stderr + r1.stderr)


# -- a process is killed ---------------------------------------------------------------------------


@pytest.mark.parametrize("victim", [1, 0])
def test_sigkill_of_one_process(tmp_path, victim):
    with Launched(["run", JOB, "-p", "2", "-", "endless", tmp_path]) as launched:
        wait_for_files(tmp_path, ["running-0", "running-1"], 15, launched)
        pids = [int((tmp_path / f"worker-{i}").read_text()) for i in range(2)]
        killed_at = time.monotonic()
        os.kill(pids[victim], signal.SIGKILL)
        r = launched.finish(15)
    assert r.returncode not in (0, None), r
    assert time.monotonic() - killed_at < 5, r
    assert f"process {victim} of 2 was killed by SIGKILL" in r.stderr, r
    assert_clean(r.stderr)
    assert_all_gone(pids)


@pytest.mark.parametrize("target", ["launcher", "process group"])
def test_ctrl_c_stops_everything(tmp_path, target):
    """SIGINT to the launcher alone, or to its whole process group (as a terminal's
    Ctrl-C does): exit 130 within ~1.5 s, no process left."""
    with Launched(["run", JOB, "-p", "2", "-", "endless", tmp_path]) as launched:
        wait_for_files(tmp_path, ["running-0", "running-1"], 15, launched)
        pids = [int((tmp_path / f"worker-{i}").read_text()) for i in range(2)]
        sent = time.monotonic()
        if target == "launcher":
            launched.proc.send_signal(signal.SIGINT)
        else:
            os.killpg(launched.proc.pid, signal.SIGINT)
        r = launched.finish(10)
        took = time.monotonic() - sent
    assert r.returncode == 130, r
    assert took < 1.5, r
    assert "interrupted" in r.stderr, r
    assert "Traceback" not in r.stderr, r
    assert_clean(r.stderr)
    assert_all_gone(pids, timeout=0.5)


# -- the processes cannot find each other -------------------------------------------------------


@pytest.mark.parametrize("me", [0, 1])
def test_peer_that_never_starts(me):
    """Only one of two processes runs: it gives up after --connect-timeout, naming the
    missing process and its address."""
    ports = free_ports(2)
    addresses = [f"127.0.0.1:{p}" for p in ports]
    other = 1 - me
    r = ferroflow("run", JOB, "--addresses", ",".join(addresses), "--process-id", str(me), "--connect-timeout", "1",
                  "-", "small", env=clean_env(FERROFLOW_SECRET=SECRET))
    assert r.returncode == 1, r
    assert f"process {other} at {addresses[other]}" in r.stderr, r
    assert "never connected" in r.stderr, r
    assert r.seconds < 1 + 3, r
    assert r.seconds >= 0.9, r  # it did wait for the peer
    assert "job finished" not in r.stdout and "'a'" not in r.stdout, r
    assert "Traceback" not in r.stderr, r
    assert_clean(r.stderr)


def test_peer_with_the_wrong_secret():
    ports = free_ports(2)
    addresses = ",".join(f"127.0.0.1:{p}" for p in ports)
    runs = [Launched(["run", JOB, "--addresses", addresses, "--process-id", str(i), "--connect-timeout", "2",
                      "-", "small"], clean_env(FERROFLOW_SECRET=secret))
            for i, secret in enumerate([SECRET, SECRET[::-1]])]
    try:
        r0, r1 = [r.finish(15) for r in runs]
    finally:
        for r in runs:
            r.__exit__()
    for r in (r0, r1):
        assert r.returncode not in (0, None), r
        assert r.seconds < 2 + 4, r
        assert "secret" in r.stderr, r
        assert "job finished" not in r.stdout and "'a'" not in r.stdout, r  # no record flowed
        assert "Traceback" not in r.stderr, r
        assert_clean(r.stderr)
    # the dialling process is refused at once, the listening one says what it refused
    assert "failed authentication" in r1.stderr and f"127.0.0.1:{ports[0]}" in r1.stderr, r1
    assert "failed authentication" in r0.stderr and "process 1" in r0.stderr, r0


def test_addresses_without_a_secret():
    addresses = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    r = ferroflow("run", JOB, "--addresses", addresses, "--process-id", "0", "--connect-timeout", "10", "-", "small")
    assert r.returncode in (1, 2), r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r  # one line ...
    assert "FERROFLOW_SECRET" in lines[0] and "secret" in lines[0], r  # ... telling how to set it
    assert r.seconds < 5, r  # refused at once, not after waiting for the other process
    assert r.stdout == "", r


# -- records that cannot cross processes -----------------------------------------------------


def test_unpicklable_record_crossing_processes():
    r = ferroflow("run", JOB, "-p", "2", "-", "generators")
    assert r.returncode == 1, r
    assert "generator" in r.stderr and "pickle" in r.stderr, r
    assert "another process" in r.stderr, r
    assert "job finished" not in r.stdout, r
    assert r.seconds < 10, r
    assert_clean(r.stderr)


def test_a_record_that_cannot_be_unpickled_is_not_called_a_bug_in_ferroflow():
    """Unpickling runs the record's own code: its failure is the record's, not a corrupt
    batch (which would be ferroflow's bug)."""
    r = ferroflow("run", JOB, "-p", "2", "-", "unrebuildable")
    assert r.returncode == 1, r
    assert "cannot unpickle a record received from another process" in r.stderr, r
    assert "RuntimeError: this record refuses to be rebuilt" in r.stderr, r
    assert "bug in ferroflow" not in r.stderr and "corrupt" not in r.stderr, r
    assert "job finished" not in r.stdout, r
    assert_clean(r.stderr)


# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("args, phrase", [
    (["-p", "0"], "-p must be at least 1"),
    (["-w", "0"], "-w must be at least 1"),
    (["--addresses", "127.0.0.1:1,127.0.0.1:2"], "--addresses needs --process-id"),
    (["--addresses", "127.0.0.1:1,127.0.0.1:2", "--process-id", "2"], "--process-id 2 is out of range"),
    (["-p", "2", "--addresses", "127.0.0.1:1,127.0.0.1:2", "--process-id", "0"], "use one of them"),
    (["--process-id", "0"], "--process-id goes with --addresses"),
], ids=["p0", "w0", "no-process-id", "process-id-out-of-range", "p-and-addresses", "process-id-alone"])
def test_usage_errors(args, phrase):
    r = ferroflow("run", JOB, *args, "-", "small", env=clean_env(FERROFLOW_SECRET=SECRET))
    assert r.returncode == 2, r
    first = r.stderr.splitlines()[0]
    assert first.startswith("ferroflow run: ") and phrase in first, r
    assert r.stdout == "", r
    assert "Traceback" not in r.stderr, r


# -- the "2proc" harness the API tests run on (conftest.TwoProcessEnvironment) ----------------


def test_2proc_environment_runs_on_two_processes():
    """The API tests' third parallelism really is two processes, one worker each, and
    leaves the environment and the process table as it found them."""
    from conftest import TWO_PROC, collect, make_env
    from ferroflow import MapFunction

    class WhereAmI(MapFunction):
        def open(self, runtime_context):
            self.where = (runtime_context.get_index_of_this_subtask(),
                          runtime_context.get_number_of_parallel_subtasks(), os.getpid())

        def map(self, value):
            return self.where

    saved = {k: v for k, v in os.environ.items() if k.startswith("FERROFLOW_")}
    env = make_env(TWO_PROC)
    assert env.get_parallelism() == 2
    out = collect(env.generate_sequence(1, 100).map(WhereAmI()))
    env.execute()
    assert len(out) == 100
    pids = {index: pid for index, count, pid in set(out)}
    assert sorted(pids) == [0, 1] and {count for _, count, _ in out} == {2}
    assert pids[0] == os.getpid() and pids[1] != os.getpid()
    assert not alive(pids[1])  # reaped
    assert {k: v for k, v in os.environ.items() if k.startswith("FERROFLOW_")} == saved


def test_2proc_environment_raises_the_user_error_of_process_1():
    """Process 1's user-function error reaches the test, not process 0's lost peer."""
    from conftest import TWO_PROC, collect, make_env
    from ferroflow import JobExecutionException, MapFunction

    class FailsInProcess1(MapFunction):
        def open(self, runtime_context):
            self.index = runtime_context.get_index_of_this_subtask()

        def map(self, value):
            if self.index == 1:
                raise ValueError(f"process 1 refuses {value}")
            return value

    env = make_env(TWO_PROC)
    collect(env.generate_sequence(1, 10 ** 12).map(FailsInProcess1()).name("picky"))
    started = time.monotonic()
    with pytest.raises(JobExecutionException) as info:
        env.execute("picky job")
    assert time.monotonic() - started < 10
    e = info.value
    assert e.kind == "udf" and "picky" in e.operator, e
    assert "ValueError: process 1 refuses" in e.detail and e.record is not None


def test_the_scripts_own_prints_show_once_and_the_jobs_prints_from_every_process(tmp_path):
    """Every process runs the whole script; what it prints outside a job (as Flink's client
    would, once) shows once, while what the job prints (sinks and functions) shows from all."""
    script = tmp_path / "job.py"
    script.write_text(
        "from ferroflow import StreamExecutionEnvironment\n"
        "print('before the job')\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "def shout(x):\n"
        "    print('in a function', x)\n"
        "    return x\n"
        "env.set_parallelism(1)\n"
        "env.from_collection(list(range(6))).rebalance().map(shout).print()\n"
        "env.execute()\n"
        "print('after the job')\n")
    r = ferroflow("run", str(script), "-p", "2", timeout=60)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines.count("before the job") == 1 and lines.count("after the job") == 1
    assert sorted(int(line.split()[-1]) for line in lines if line.startswith("in a function")) == list(range(6))
    records = [line for line in lines if "> " in line and not line.startswith("in a function")]
    assert sorted(printed_records("\n".join(records), 2)[0]) == list(range(6))
    # The launcher's own warning about the script's settings is said once, too.
    assert r.stderr.splitlines() == ["ferroflow: warning: set_parallelism(1) is ignored: the job runs on 2 processes "
                                     "x 1 worker(s)"], r
