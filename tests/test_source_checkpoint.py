"""Python sources resume from a checkpoint (issue 13): Flink's ``CheckpointedFunction``
hook on a ``SourceFunction`` (``snapshot_state(checkpoint_id)`` / ``initialize_state``)
and collections' positions, driven through the binding's test hook
``ferroflow._engine._SourceProbe`` (poll, mark, snapshot, restore, as the engine's source
operator does), without running a job.

A reader polls part of its input, marks its position, polls on (what a failure would
lose) and snapshots; a fresh reader restored from that snapshot reads the rest. What
was read before the mark plus what the restored reader reads must equal one
uninterrupted read: nothing lost, nothing twice.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferroflow import ParallelSourceFunction, SourceFunction
from ferroflow import _engine
from ferroflow.environment import _SourceRunner

Probe = _engine._SourceProbe
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Counter(SourceFunction):
    """Emits 0..n-1; its position is the next number, updated with each collect under
    the checkpoint lock."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.next = 0
        self.calls: list = []

    def initialize_state(self, state):
        self.calls.append(("initialize_state", state))
        self.next = state

    def open(self, runtime_context):
        self.calls.append(("open", self.next))

    def snapshot_state(self, checkpoint_id):
        self.calls.append(("snapshot_state", checkpoint_id))
        return self.next

    def run(self, ctx):
        while self.next < self.n:
            with ctx.get_checkpoint_lock():
                ctx.collect(self.next)
                self.next += 1


class ParallelCounter(ParallelSourceFunction):
    """Worker i of k emits i, i+k, i+2k... below n; its position is its next number."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.next = None

    def initialize_state(self, state):
        self.next = state

    def snapshot_state(self, checkpoint_id):
        return self.next

    def run(self, ctx):
        if self.next is None:
            self.next = ctx.worker_index
        while self.next < self.n:
            with ctx.get_checkpoint_lock():
                ctx.collect(self.next)
                self.next += ctx.worker_count


class NoHook(SourceFunction):
    def run(self, ctx):
        for i in range(5):
            ctx.collect(i)


def interrupted(make, before: int, lost: int, index: int = 0, peers: int = 1):
    """(records read before the mark, the snapshot) of a reader made by ``make()``."""
    probe = Probe(make(), index, peers)
    read = probe.poll(before)
    probe.mark(1)
    after_mark = probe.poll(lost)
    if probe.done:
        # An ended source's position is its end, in every later checkpoint.
        read += after_mark
    section = probe.snapshot()
    assert probe.snapshot() == section, "a snapshot is the mark's position"
    probe.cancel()
    return read, section


def resumed(make, sections, index: int = 0, peers: int = 1, n: int = 10**6):
    probe = Probe(make(), index, peers)
    probe.restore(sections, index, peers)
    try:
        return probe.poll(n)
    finally:
        probe.cancel()


@SETTINGS
@given(n=st.integers(0, 300), before=st.integers(0, 320), lost=st.integers(0, 50))
def test_function_source_resumes_where_it_was_marked(n, before, lost):
    read, section = interrupted(lambda: _SourceRunner(Counter(n)), before, lost)
    assert section, "a source with snapshot_state has a position"
    rest = resumed(lambda: _SourceRunner(Counter(n)), [section])
    assert read + rest == list(range(n))


def test_hooks_are_called_as_flink_calls_them():
    """snapshot_state gets the checkpoint id; initialize_state gets what it returned,
    before open(); a function not yet started is asked nothing and keeps its start."""
    counter = Counter(10)
    probe = Probe(_SourceRunner(counter), 0, 1)
    probe.mark(1)  # not started yet: where it starts
    assert probe.poll(4) == [0, 1, 2, 3]
    probe.mark(7)
    section = probe.snapshot()
    probe.cancel()
    assert ("snapshot_state", 7) in counter.calls
    assert ("snapshot_state", 1) not in counter.calls
    fresh = Counter(10)
    assert resumed(lambda: _SourceRunner(fresh), [section]) == [4, 5, 6, 7, 8, 9]
    # The state covered records collected and not yet taken: they come first, once.
    assert fresh.calls[0][0] == "initialize_state" and fresh.calls[1][0] == "open"
    assert fresh.calls[0][1] >= 4


def test_a_finished_source_does_not_run_again():
    counter = Counter(5)
    probe = Probe(_SourceRunner(counter), 0, 1)
    probe.mark(1)
    assert probe.poll(100) == [0, 1, 2, 3, 4] and probe.done
    section = probe.snapshot()
    probe.cancel()
    fresh = Counter(5)
    assert resumed(lambda: _SourceRunner(fresh), [section]) == []
    assert fresh.calls == []


def test_no_restore_means_no_initialize_state():
    counter = Counter(3)
    assert resumed(lambda: _SourceRunner(counter), []) == [0, 1, 2]
    assert [c[0] for c in counter.calls] == ["open"]


def test_a_lock_held_around_many_collects_does_not_block_the_checkpoint():
    """run() holding the checkpoint lock while collecting more than the buffer holds:
    the checkpoint waits for the lock, taking the records meanwhile, and covers them."""

    class Burst(Counter):
        def run(self, ctx):
            while self.next < self.n:
                with ctx.get_checkpoint_lock():
                    for _ in range(10_000):
                        if self.next < self.n:
                            ctx.collect(self.next)
                            self.next += 1

    read, section = interrupted(lambda: _SourceRunner(Burst(25_000)), 3, 100)
    rest = resumed(lambda: _SourceRunner(Burst(25_000)), [section])
    assert read + rest == list(range(25_000))


@pytest.mark.parametrize("peers", [1, 2, 3])
def test_parallel_source_resumes_at_the_same_parallelism(peers):
    n = 200
    read, sections = [], []
    for i in range(peers):
        r, s = interrupted(lambda: _SourceRunner(ParallelCounter(n)), 7 + 5 * i, 3, i, peers)
        read += r
        sections.append(s)
    for i in range(peers):
        read += resumed(lambda: _SourceRunner(ParallelCounter(n)), sections, i, peers)
    assert sorted(read) == list(range(n))


def test_parallel_source_refuses_another_parallelism():
    sections = [interrupted(lambda: _SourceRunner(ParallelCounter(50)), 3, 0, i, 2)[1] for i in range(2)]
    with pytest.raises(RuntimeError, match="internal: a parallel Python source checkpointed at 2 workers "
                                           "cannot restore at 3"):
        resumed(lambda: _SourceRunner(ParallelCounter(50)), sections, 0, 3)


def test_non_parallel_source_restores_at_any_parallelism():
    read, section = interrupted(lambda: _SourceRunner(Counter(30)), 10, 2)
    # Worker 0 wrote the position; the other old worker ran no reader.
    assert read + resumed(lambda: _SourceRunner(Counter(30)), [section, b""], 0, 1) == list(range(30))


def test_source_without_snapshot_state_starts_over():
    _, section = interrupted(lambda: _SourceRunner(NoHook()), 2, 1)
    assert section == b""
    assert resumed(lambda: _SourceRunner(NoHook()), [section]) == [0, 1, 2, 3, 4]


def test_unpicklable_position_names_the_problem():
    class Bad(Counter):
        def snapshot_state(self, checkpoint_id):
            return lambda: self.next

    probe = Probe(_SourceRunner(Bad(5)), 0, 1)
    probe.poll(2)
    probe.mark(1)
    with pytest.raises(RuntimeError, match="state could not be encoded"):
        probe.snapshot()
    probe.cancel()


def test_snapshot_state_raising_is_the_users_error():
    class Raises(Counter):
        def snapshot_state(self, checkpoint_id):
            raise ValueError("no position today")

    probe = Probe(_SourceRunner(Raises(5)), 0, 1)
    probe.poll(2)
    with pytest.raises(RuntimeError, match="no position today"):
        probe.mark(1)
    probe.cancel()


@SETTINGS
@given(items=st.lists(st.integers(), max_size=40), before=st.integers(0, 45), lost=st.integers(0, 10))
def test_collection_resumes_by_index(items, before, lost):
    read, section = interrupted(lambda: lambda: iter(items), before, lost)
    assert read + resumed(lambda: lambda: iter(items), [section]) == items


def test_collection_that_shrank_is_refused():
    _, section = interrupted(lambda: lambda: iter(range(10)), 8, 0)
    with pytest.raises(RuntimeError, match="internal: the checkpoint had taken 8 items of the collection; it now has 5"):
        resumed(lambda: lambda: iter(range(5)), [section])


@pytest.mark.parametrize("junk", [b"\x01", b"\x00\x05", b"\x02" + bytes(20)])
def test_corrupt_position_is_an_internal_error(junk):
    with pytest.raises(RuntimeError, match="internal: state is corrupt"):
        resumed(lambda: _SourceRunner(Counter(3)), [junk])


# -- end to end: a job whose map fails once restarts from its last checkpoint -------------------

JOB = r'''
import sys, time
from ferroflow import ParallelSourceFunction, RestartStrategies, SourceFunction, StreamExecutionEnvironment
from ferroflow.functions import MapFunction

N = 3000
PARALLEL = sys.argv[1] == "parallel"


class Counter(ParallelSourceFunction if PARALLEL else SourceFunction):
    def __init__(self):
        self.next = None

    def snapshot_state(self, checkpoint_id):
        return self.next

    def initialize_state(self, state):
        print("initialize_state", state, file=sys.stderr)
        self.next = state

    def run(self, ctx):
        step = ctx.worker_count if PARALLEL else 1
        if self.next is None:
            self.next = ctx.worker_index if PARALLEL else 0
        while self.next < N:
            with ctx.get_checkpoint_lock():
                ctx.collect(self.next)
                self.next += step
            if self.next % 20 == 0:
                time.sleep(0.002)


class FailsOnce(MapFunction):
    def open(self, runtime_context):
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value):
        if self.attempt == 0 and value == 1500:
            raise ValueError("first attempt")
        return value


env = StreamExecutionEnvironment.get_execution_environment()
if len(sys.argv) > 2:
    env.set_parallelism(int(sys.argv[2]))
env.enable_checkpointing(20)
env.get_checkpoint_config().set_checkpoint_storage_dir("ck")
env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
env.add_source(Counter()).map(FailsOnce()).write_as_text("out")
env.execute("resume")
'''


@pytest.mark.parametrize("parallel", ["parallel", "single"])
@pytest.mark.parametrize("way", ["1", "2", "2proc"])
def test_a_restarted_job_resumes_its_python_source_exactly_once(tmp_path, way, parallel):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    if way == "2proc":
        ferroflow = Path(sys.executable).parent / "ferroflow"
        cmd = [str(ferroflow), "run", "-p", "2", str(script), "-", parallel]
    else:
        cmd = [sys.executable, str(script), parallel, way]
    p = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "restarting (attempt 1 of 1)" in p.stderr, p.stderr
    # The restart resumed the source from a checkpoint, not from its start...
    assert "initialize_state" in p.stderr, p.stderr
    # ...and what the job committed is every record once.
    lines = [line for f in sorted((tmp_path / "out").iterdir()) if not f.name.startswith((".", "_"))
             for line in f.read_text().splitlines()]
    assert sorted(map(int, lines)) == list(range(3000))
