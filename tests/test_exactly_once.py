"""Exactly-once under SIGKILL (issue 13): a 1M-record job with keyed state and timers,
a window and ``write_as_text``, checkpointing every 200 ms, is killed at random moments
and restarted from its latest checkpoint each time; what it committed at the end must
be the model's lines exactly: none lost, none twice. Also: one process of two killed,
the -p supervisor's restart strategy restarting it, failures restarted inside one
process, and restores at another number of processes (2 -> 1 -> 3).

The job is tests/cli_scripts/exactly_once_job.py; its output is fixed by its input, so
the model below is what a failure-free run commits (checked too).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
JOB = HERE / "cli_scripts" / "exactly_once_job.py"
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(HERE.parent / ".venv" / "bin" / "ferroflow")
N = 1_000_000
KEYS, SECOND = 97, 1000
KILLS = 20
#: No single run of the job may take longer (it takes ~2 s on a quiet machine).
RUN_TIMEOUT = 120
#: For the kill tests, ms the job sleeps every 1000 values: ~25 s of work in all, so
#: that each kill lands while it runs and each restore has work left (the last restore
#: runs at full speed).
SLOW = ["0", "-", "25"]


def model(n: int) -> Counter:
    count: Counter = Counter()
    total: Counter = Counter()
    for v in range(n):
        at = (v % KEYS, v // SECOND)
        count[at] += 1
        total[at] += v
    lines = Counter(f"state {k} {s} {count[k, s]} {total[k, s]}" for k, s in count)
    lines.update(f"window {total[at]}" for at in count)
    return lines


@pytest.fixture(scope="module")
def expected() -> Counter:
    return model(N)


def committed(out: Path) -> Counter:
    """The lines of every visible (committed) part file of both sinks."""
    lines: Counter = Counter()
    for sink in ("state", "window"):
        d = out / sink
        for f in sorted(d.iterdir()) if d.exists() else ():
            if not f.name.startswith((".", "_")):
                lines.update(f.read_text().splitlines())
    return lines


def has_checkpoint(storage: Path) -> bool:
    return any((d / "_MANIFEST").exists() for d in storage.glob("chk-*"))


def command(storage: Path, out: Path, processes: int = 1, *job_args: str) -> list:
    """The job's command line; as a plain restart loop would, every run is asked to start
    from the latest checkpoint (before the first one, it starts from the beginning)."""
    cmd = [FERROFLOW, "run", str(JOB)]
    if processes > 1:
        cmd += ["-p", str(processes)]
    return cmd + ["--from-checkpoint", str(storage), "-", str(storage), str(out), str(N), *job_args]


def start(cmd: list, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def children(pid: int) -> list:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def finish(p: subprocess.Popen, what: str) -> None:
    try:
        _, err = p.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"{what} did not finish within {RUN_TIMEOUT} s")
    assert p.returncode == 0, f"{what}: exit {p.returncode}\n{err}"


def kill_at_random(p: subprocess.Popen, rng: random.Random, *, one_of: int = 0) -> bool:
    """Waits a random moment, then SIGKILLs the job (with ``one_of``, one of its
    ``one_of`` worker processes, picked at random). False if it had finished first."""
    deadline = time.monotonic() + rng.uniform(0.15, 1.2)
    while time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.01)
    if p.poll() is not None:
        return False
    if one_of:
        workers = children(p.pid)
        while len(workers) < one_of and p.poll() is None:
            time.sleep(0.01)
            workers = children(p.pid)
        if p.poll() is not None:
            return False
        os.kill(rng.choice(workers), signal.SIGKILL)
    else:
        os.killpg(p.pid, signal.SIGKILL)
    try:
        p.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("the job did not stop after one of its processes was killed")
    return True


def check(out: Path, expected: Counter) -> None:
    got = committed(out)
    lost = expected - got
    twice = got - expected
    assert not lost and not twice, f"{sum(lost.values())} lines lost (e.g. {list(lost)[:3]}), " \
                                   f"{sum(twice.values())} extra (e.g. {list(twice)[:3]})"


def test_a_failure_free_run_commits_the_model(tmp_path, expected):
    p = start(command(tmp_path / "ck", tmp_path / "out"), tmp_path)
    finish(p, "the failure-free run")
    check(tmp_path / "out", expected)


@pytest.mark.parametrize("processes", [1, 2], ids=["the process", "one process of two"])
def test_killed_at_twenty_random_moments_and_restored_commits_each_line_once(tmp_path, expected, processes):
    rng = random.Random(1300 + processes)
    storage, out = tmp_path / "ck", tmp_path / "out"
    kills = 0
    while kills < KILLS:
        p = start(command(storage, out, processes, *SLOW), tmp_path)
        if kill_at_random(p, rng, one_of=processes if processes > 1 else 0):
            kills += 1
        else:
            assert p.returncode == 0, p.stderr.read() if p.stderr else p.returncode
            break  # it finished before the kill: nothing left to kill
    assert kills == KILLS, f"only {kills} kills landed while the job ran"
    finish(start(command(storage, out, processes), tmp_path), "the last restore")
    check(out, expected)


def test_the_supervisors_restart_strategy_restores_killed_processes(tmp_path, expected):
    rng = random.Random(7)
    storage, out = tmp_path / "ck", tmp_path / "out"
    p = start(command(storage, out, 2, "100", "-", "10"), tmp_path)
    for _ in range(5):
        time.sleep(rng.uniform(0.4, 1.0))
        workers = children(p.pid)
        if p.poll() is not None or not workers:
            break
        os.kill(rng.choice(workers), signal.SIGKILL)
    finish(p, "the supervised job")
    check(out, expected)


@pytest.mark.parametrize("workers", [1, 2])
def test_failures_inside_one_process_restart_from_the_latest_checkpoint(tmp_path, expected, workers):
    storage, out, marks = tmp_path / "ck", tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    cmd = command(storage, out, 1, "10", str(marks))
    cmd[3:3] = ["-w", str(workers)]
    p = start(cmd, tmp_path)
    finish(p, "the job with injected failures")
    assert len(list(marks.iterdir())) == 3, "every injected failure happened"
    assert p.stderr is not None
    check(out, expected)


def test_restores_rescale_from_two_processes_to_one_then_three(tmp_path, expected):
    rng = random.Random(23)
    storage, out = tmp_path / "ck", tmp_path / "out"
    for processes in (2, 1):
        while True:
            p = start(command(storage, out, processes, *SLOW), tmp_path)
            assert kill_at_random(p, rng), "the job finished before it could be killed"
            if has_checkpoint(storage):
                break
    finish(start(command(storage, out, 3), tmp_path), "the restore at 3 processes")
    check(out, expected)


OTHER_JOB = """
import sys
from ferroflow import StreamExecutionEnvironment

env = StreamExecutionEnvironment.get_execution_environment()
env.enable_checkpointing(200)
env.get_checkpoint_config().set_checkpoint_storage_dir(sys.argv[1])
env.generate_sequence(0, 10).map(lambda v: v + 1).print()
env.execute("another")
"""


def test_a_checkpoint_of_another_job_is_refused_naming_the_difference(tmp_path):
    storage, out = tmp_path / "ck", tmp_path / "out"
    finish(start(command(storage, out), tmp_path), "the first job")
    latest = max(storage.glob("chk-*"), key=lambda d: int(d.name[4:]))
    other = tmp_path / "other.py"
    other.write_text(OTHER_JOB)
    p = subprocess.run([FERROFLOW, "run", str(other), "-s", str(latest), "-", str(tmp_path / "ck2")],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path, stdin=subprocess.DEVNULL,
                       check=False)
    assert p.returncode == 1, p
    lines = [line for line in p.stderr.splitlines() if line.startswith("ferroflow:")]
    assert len(lines) == 1, p.stderr
    assert "was taken from another job (plan differs: its node 0 source generate_sequence '0..999999'" in lines[0], lines[0]
    assert "restarting" not in p.stderr, "a checkpoint that does not fit is not retried"
