"""``DataStream.execute_and_collect()``: every record of the stream (from every worker
and process), closing and ``limit`` stop the job with nothing left running, errors
surface from the iterator. Run at 1 worker, 2 threads and 2 processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import bag, collect, make_env

from ferroflow import FerroflowError, JobExecutionException, SourceFunction
from ferroflow._collect import CloseableIterator


def threads() -> tuple:
    """Python threads and OS threads of this process (the engine's workers are OS threads)."""
    return threading.active_count(), len(os.listdir("/proc/self/task"))


def settled(before: tuple, timeout: float = 5.0) -> tuple:
    """Thread counts once they are back to ``before`` (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    now = threads()
    while (now[0] > before[0] or now[1] > before[1]) and time.monotonic() < deadline:
        time.sleep(0.02)
        now = threads()
    return now


def quiet() -> tuple:
    """Thread counts once they have stopped changing for 0.2 s (threads of an earlier
    job may still be exiting)."""
    last, since = threads(), time.monotonic()
    deadline = since + 5.0
    while time.monotonic() - since < 0.2 and time.monotonic() < deadline:
        time.sleep(0.02)
        now = threads()
        if now != last:
            last, since = now, time.monotonic()
    return last


def assert_no_thread_left(before: tuple) -> None:
    now = settled(before)
    assert now[0] <= before[0] and now[1] <= before[1], f"threads (Python, OS) before {before}, now {now}"


@pytest.fixture
def baseline(env) -> tuple:
    """Thread counts after one job ran (lazily started process-wide threads exist then)."""
    list(env.from_collection([1]).execute_and_collect())
    return quiet()


def test_collects_every_record_of_every_worker(env):
    records = env.generate_sequence(1, 5000).map(lambda x: (x % 7, x)).execute_and_collect()
    assert isinstance(records, CloseableIterator)
    assert bag(records) == bag((x % 7, x) for x in range(1, 5001))


def test_keyed_results_from_all_workers(env):
    words = ["a", "b", "c", "a", "b", "a"] * 50
    counts = env.from_collection(words).map(lambda w: (w, 1)).key_by(lambda p: p[0]).sum(1)
    final = {}
    for word, n in counts.execute_and_collect():
        final[word] = max(final.get(word, 0), n)
    assert final == {"a": 150, "b": 100, "c": 50}


def test_runs_the_environments_other_sinks_too(env):
    side = collect(env.from_collection([10, 20]).map(lambda x: x + 1))
    assert sorted(env.from_collection([1, 2, 3]).execute_and_collect()) == [1, 2, 3]
    assert sorted(side) == [11, 21]
    # the environment starts empty afterwards, as after execute()
    assert list(env.from_collection(["again"]).execute_and_collect()) == ["again"]
    assert sorted(side) == [11, 21]  # that job did not run the earlier sink again


def test_limit_returns_a_list_of_that_many_records(env, baseline):
    got = env.generate_sequence(1, 3000).execute_and_collect(limit=5)
    assert isinstance(got, list) and len(got) == 5 and set(got) <= set(range(1, 3001))
    assert_no_thread_left(baseline)


def test_limit_larger_than_the_stream_returns_everything(env):
    assert sorted(env.from_collection([3, 1, 2]).execute_and_collect("named", limit=10)) == [1, 2, 3]


@pytest.mark.parametrize("parallelism", [1, 2], ids=["p1", "p2"])
def test_limit_stops_a_job_that_would_run_for_hours(parallelism):
    env = make_env(parallelism)
    list(env.from_collection([1]).execute_and_collect())
    before = quiet()
    started = time.monotonic()
    got = env.generate_sequence(1, 10**12).execute_and_collect(limit=3)
    assert len(got) == 3
    assert time.monotonic() - started < 30
    assert_no_thread_left(before)


@pytest.mark.parametrize("parallelism", [1, 2], ids=["p1", "p2"])
def test_close_and_with_stop_the_job(parallelism):
    env = make_env(parallelism)
    list(env.from_collection([1]).execute_and_collect())
    before = quiet()
    it = env.generate_sequence(1, 10**12).execute_and_collect()
    first = next(it)
    it.close()
    assert first >= 1
    assert_no_thread_left(before)
    with env.generate_sequence(1, 10**12).execute_and_collect() as it:
        assert next(it) >= 1
    assert_no_thread_left(before)
    with pytest.raises(StopIteration):
        next(it)  # a closed iterator is exhausted


def test_close_after_the_end_and_twice_is_harmless(env, baseline):
    it = env.from_collection([1, 2]).execute_and_collect()
    assert sorted(it) == [1, 2]
    it.close()
    it.close()
    assert_no_thread_left(baseline)


def test_with_block_on_a_bounded_job(env, baseline):
    with env.generate_sequence(1, 2000).execute_and_collect() as it:
        head = [next(it) for _ in range(3)]
    assert len(head) == 3
    assert_no_thread_left(baseline)


def explode(x):
    if x == 400:
        raise ValueError("bad record 400")
    return x


def test_a_failing_job_raises_its_usual_error_from_the_iterator(env, baseline):
    it = env.generate_sequence(1, 1000).map(explode).execute_and_collect()
    seen = []
    with pytest.raises(JobExecutionException) as info:
        for x in it:
            seen.append(x)  # noqa: PERF402 - keeps what came before the error
    assert "map 'explode'" in info.value.operator
    assert "bad record 400" in info.value.detail
    assert 400 not in seen
    assert_no_thread_left(baseline)
    with pytest.raises(StopIteration):
        next(it)  # the error is raised once


def test_a_job_that_cannot_start_raises_from_next(env):
    it = env.from_collection([1]).key_by(lambda v: [v]).execute_and_collect()
    with pytest.raises((JobExecutionException, FerroflowError)):
        list(it)


def test_limit_must_be_positive(env):
    stream = env.from_collection([1])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="limit"):
            stream.execute_and_collect(limit=bad)


def test_next_is_pyflinks_name(env):
    it = env.from_collection(["x"]).execute_and_collect()
    assert it.next() == "x"
    with pytest.raises(StopIteration):
        it.next()


EXIT_WITHOUT_CLOSE = """
from ferroflow import StreamExecutionEnvironment
env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(2)
print(next(env.generate_sequence(1, 10**12).map(lambda x: x + 1).execute_and_collect()))  # dropped at once
kept = env.generate_sequence(1, 10**12).map(lambda x: x + 1).execute_and_collect()
print(next(kept))  # never closed: the job still runs when the script ends
"""


def test_a_script_ending_without_close_stops_its_jobs_and_exits_cleanly(tmp_path):
    # Without the exit hook the workers of the still-running job called into a
    # finalizing interpreter: "Fatal Python error", exit 134, about one run in four.
    import subprocess
    import sys

    script = tmp_path / "no_close.py"
    script.write_text(EXIT_WITHOUT_CLOSE)
    for _ in range(6):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["2", "2"]


class IdleAfter(SourceFunction):
    """Emits ``n`` records, then nothing until cancelled: an unbounded source gone idle."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.running = True

    def run(self, ctx) -> None:
        for i in range(self.n):
            ctx.collect(i)
        while self.running:
            time.sleep(0.01)

    def cancel(self) -> None:
        self.running = False


def close_within(it: CloseableIterator, seconds: float) -> float:
    """Closes ``it`` on another thread (so a close() that never returns fails the test
    instead of hanging it) and returns how long it took."""
    started = time.monotonic()
    closer = threading.Thread(target=it.close, daemon=True)
    closer.start()
    closer.join(seconds)
    assert not closer.is_alive(), f"close() did not return within {seconds} s"
    return time.monotonic() - started


def test_close_on_an_idle_stream_returns_promptly_and_leaves_no_thread(env, baseline):
    it = env.add_source(IdleAfter(3)).map(lambda x: x * 10).execute_and_collect()
    assert sorted(next(it) for _ in range(3)) == [0, 10, 20]
    time.sleep(0.2)  # the source is idle now: no record will reach the sink again
    assert close_within(it, 5.0) < 1.5
    assert_no_thread_left(baseline)
    with pytest.raises(StopIteration):
        next(it)


def test_leaving_a_with_block_on_an_idle_stream_is_prompt(env, baseline):
    first: list = []

    def body() -> None:
        with env.add_source(IdleAfter(1)).execute_and_collect() as it:
            first.append(next(it))

    started = time.monotonic()
    block = threading.Thread(target=body, daemon=True)  # so a hang fails the test, not the run
    block.start()
    block.join(5.0)
    assert not block.is_alive(), "leaving the with block did not return within 5 s"
    assert first == [0]
    assert time.monotonic() - started < 3.0
    assert_no_thread_left(baseline)


def test_limit_on_an_idle_unbounded_source_returns_the_first_records(env, baseline):
    result: list = []
    runner = threading.Thread(target=lambda: result.append(
        env.add_source(IdleAfter(4)).execute_and_collect(limit=4)), daemon=True)
    runner.start()
    runner.join(10.0)
    assert not runner.is_alive(), "execute_and_collect(limit=4) did not return within 10 s"
    assert sorted(result[0]) == [0, 1, 2, 3]
    assert_no_thread_left(baseline)


class FailsWhenIdle(SourceFunction):
    """Emits two records, idles a moment, then fails."""

    def run(self, ctx) -> None:
        ctx.collect("a")
        ctx.collect("b")
        time.sleep(0.3)
        raise RuntimeError("source broke while idle")

    def cancel(self) -> None:
        pass


def test_an_error_after_an_idle_spell_surfaces_from_the_iterator(env, baseline):
    it = env.add_source(FailsWhenIdle()).execute_and_collect()
    seen = []
    with pytest.raises(JobExecutionException) as info:
        for x in it:
            seen.append(x)  # noqa: PERF402 - keeps what came before the error
    assert seen == ["a", "b"]
    assert "source broke while idle" in info.value.detail
    assert_no_thread_left(baseline)


ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(ROOT / ".venv" / "bin" / "ferroflow")

CLOSE_EARLY_UNDER_THE_LAUNCHER = """
import os, threading, time
from ferroflow import SourceFunction, StreamExecutionEnvironment

class IdleAfter(SourceFunction):
    def __init__(self):
        self.running = True

    def run(self, ctx):
        for i in range(3):
            ctx.collect(i)
        while self.running:
            time.sleep(0.01)

    def cancel(self):
        self.running = False

env = StreamExecutionEnvironment.get_execution_environment()
it = env.add_source(IdleAfter()).map(lambda x: x * 10).execute_and_collect()
got = []
for x in it:  # process 1's iterator yields nothing and ends when process 0 cancels
    got.append(x)
    if len(got) == 3:
        break
started = time.monotonic()
it.close()
took = time.monotonic() - started
limited = env.generate_sequence(1, 10**12).execute_and_collect(limit=3)
time.sleep(0.3)  # threads of the jobs end
names = sorted(t.name for t in threading.enumerate())
# os.write: every process's line (sys.stdout shows a -p run's lines outside a job once).
os.write(1, f"RESULT pid={os.getpid()} got={sorted(got)} close={took:.2f} limited={len(limited)} threads={names}\\n"
         .encode())
"""


def test_closing_early_under_ferroflow_run_p2_exits_0_and_leaves_nothing(tmp_path):
    script = tmp_path / "close_early.py"
    script.write_text(textwrap.dedent(CLOSE_EARLY_UNDER_THE_LAUNCHER))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    try:
        p = subprocess.run([FERROFLOW, "run", str(script), "-p", "2"], check=False, capture_output=True, text=True,
                           timeout=60, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"ferroflow run -p 2 did not finish within 60 s: {e}")
    assert p.returncode == 0, p
    results = re.findall(r"RESULT pid=(\d+) got=(\[.*?\]) close=([\d.]+) limited=(\d+) threads=(\[.*?\])", p.stdout)
    assert len(results) == 2, p
    by_got = {got: (int(pid), float(took), int(limited), names) for pid, got, took, limited, names in results}
    assert set(by_got) == {"[0, 10, 20]", "[]"}, p  # process 0 has every record, process 1 none
    _, took, limited, _ = by_got["[0, 10, 20]"]
    assert took < 1.5, p
    assert limited == 3, p
    assert by_got["[]"][2] == 0, p
    for pid, _, _, names in by_got.values():
        assert names == "['MainThread']", p
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} is still there"
    assert "lost the connection" not in p.stderr and "Traceback" not in p.stderr, p.stderr
