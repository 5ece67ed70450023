"""``DataStream.execute_and_collect()``: every record of the stream (from every worker
and process), closing and ``limit`` stop the job with nothing left running, errors
surface from the iterator. Run at 1 worker, 2 threads and 2 processes."""

from __future__ import annotations

import os
import threading
import time

import pytest
from conftest import bag, collect, make_env

from ferroflow import FerroflowError, JobExecutionException
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
