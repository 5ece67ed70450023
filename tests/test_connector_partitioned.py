"""Partitioned sources and sinks written in Python (``ferroflow.connectors.partitioned``):
parts spread over the workers by their names' hash, every item once, part states in
checkpoints restored at another parallelism, and user errors reported as the user's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SubtaskTagger, bag, collect, run
from ferroflow import JobExecutionException, _engine
from ferroflow.connectors import (DynamicSource, FixedPartitionedSink, FixedPartitionedSource,
                                  StatefulSinkPartition, StatefulSourcePartition, StatelessSourcePartition)
from ferroflow.connectors.partitioned import _SourceParts
from ferroflow.watermarks import WatermarkStrategy

NO_WM = WatermarkStrategy.no_watermarks()


class Counting(StatefulSourcePartition):
    """Part ``name``: ``(name, 0)`` .. ``(name, length - 1)`` in batches of ``batch``;
    its state is the next index."""

    def __init__(self, name: str, length: int, batch: int, state) -> None:
        self.name, self.length, self.batch = name, length, batch
        self.next = 0 if state is None else state

    def next_batch(self):
        if self.next >= self.length:
            raise StopIteration
        end = min(self.length, self.next + self.batch)
        items = [(self.name, i) for i in range(self.next, end)]
        self.next = end
        return items

    def snapshot(self):
        return self.next


class Parts(FixedPartitionedSource):
    def __init__(self, lengths: dict, batch: int = 7) -> None:
        self.lengths, self.batch = lengths, batch

    def list_parts(self):
        return list(self.lengths)

    def build_part(self, step_id, for_part, resume_state):
        return Counting(for_part, self.lengths[for_part], self.batch, resume_state)


def everything(lengths: dict) -> Counter:
    return Counter((name, i) for name, n in lengths.items() for i in range(n))


LENGTHS = {f"part-{i}": 20 + 13 * i for i in range(9)}


def test_every_item_of_every_part_once_and_each_part_on_its_owner(env, parallelism):
    tagged = env.from_source(Parts(LENGTHS), NO_WM, "parts").map(SubtaskTagger())
    out = run(env, tagged)
    assert bag(item for _, item in out) == everything(LENGTHS)
    workers = {}
    for worker, (name, _) in out:
        workers.setdefault(name, set()).add(worker)
    for name, seen in workers.items():
        assert seen == {_engine.split_owner(name, parallelism)}, name
    if parallelism > 1:
        assert len({w for seen in workers.values() for w in seen}) > 1, "the parts were not spread"


WRITTEN: list = []
BUILT: list = []


class Recording(StatefulSinkPartition):
    def __init__(self, name: str) -> None:
        self.name = name

    def write_batch(self, items):
        WRITTEN.extend((self.name, item) for item in items)


class ByNumber(FixedPartitionedSink):
    PARTS = ("even", "odd", "x", "y", "z")

    def list_parts(self):
        return list(self.PARTS)

    def part_fn(self, item):
        return item  # taken modulo the parts' number

    def build_part(self, step_id, for_part, resume_state):
        BUILT.append((step_id, for_part, resume_state))
        return Recording(for_part)


def test_a_sink_writes_each_item_once_to_its_part(env):
    WRITTEN.clear()
    BUILT.clear()
    env.from_collection(list(range(500))).rebalance().sink_to(ByNumber())
    env.execute("sink")
    assert sorted(item for _, item in WRITTEN) == list(range(500))
    assert all(name == ByNumber.PARTS[item % 5] for name, item in WRITTEN)
    assert sorted(b[1] for b in BUILT) == sorted(ByNumber.PARTS), "each part built once, on one worker"
    assert {b[0] for b in BUILT} == {"ByNumber"} and {b[2] for b in BUILT} == {None}


class Ticking(StatelessSourcePartition):
    """A worker's partition: 3 batches spaced by next_awake, then the end."""

    def __init__(self, index: int) -> None:
        self.index, self.batches, self.times = index, 0, []

    def next_batch(self):
        if self.batches == 3:
            raise StopIteration
        self.times.append(time.monotonic())
        self.batches += 1
        return [(self.index, self.batches)]

    def next_awake(self):
        return datetime.now(timezone.utc) + timedelta(milliseconds=50)


class PerWorker(DynamicSource):
    def build(self, step_id, worker_index, worker_count):
        return Ticking(worker_index)


def test_a_dynamic_source_has_one_partition_per_worker_and_waits_as_next_awake_says(env, parallelism):
    started = time.monotonic()
    out = run(env, env.from_source(PerWorker(), NO_WM, "ticks"))
    assert sorted(out) == [(w, b) for w in range(parallelism) for b in (1, 2, 3)]
    assert time.monotonic() - started >= 0.1, "next_awake was not waited for"


# -- snapshot and restore of part states, with a rescale ------------------------------------


def drain(probe, n=10**6):
    return probe.poll(n)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(0, 60), min_size=0, max_size=8),
       before=st.lists(st.integers(0, 80), min_size=2, max_size=2),
       lost=st.integers(0, 30), batch=st.integers(1, 9), peers=st.sampled_from([1, 2, 3]))
def test_parts_resume_exactly_once_at_another_parallelism(lengths, before, lost, batch, peers):
    """The model: every item of every part, once. Two readers read some, mark (the
    checkpoint), read on (lost in a failure) and snapshot; ``peers`` readers restored
    from both snapshots read the rest."""
    parts = {f"p{i}": n for i, n in enumerate(lengths)}
    got: Counter = Counter()
    sections = []
    for index in range(2):
        probe = _engine._SourceProbe(_SourceParts(Parts(parts, batch), "s"), index, 2)
        got.update(probe.poll(before[index]))
        probe.mark(1)
        after = probe.poll(lost)
        if probe.done:
            got.update(after)  # an ended reader stands at its end in later checkpoints
        sections.append(probe.snapshot())
        probe.cancel()
    for index in range(peers):
        probe = _engine._SourceProbe(_SourceParts(Parts(parts, batch), "s"), index, peers)
        probe.restore(sections, index, peers)
        got.update(drain(probe))
        probe.cancel()
    assert got == everything(parts)


def test_a_restored_state_reaches_build_part():
    seen = []

    class Spy(Parts):
        def build_part(self, step_id, for_part, resume_state):
            seen.append((step_id, for_part, resume_state))
            return super().build_part(step_id, for_part, resume_state)

    probe = _engine._SourceProbe(_SourceParts(Spy({"a": 10}), "step"), 0, 1)
    probe.poll(5)
    probe.mark(1)
    section = probe.snapshot()
    probe.cancel()
    probe = _engine._SourceProbe(_SourceParts(Spy({"a": 10}), "step"), 0, 1)
    probe.restore([section], 0, 1)
    # Items 5 and 6 had come from next_batch (a batch of 7) but were not emitted: the
    # checkpoint kept them, and they come first.
    assert probe.poll(100) == [("a", i) for i in range(5, 10)]
    assert seen == [("step", "a", None), ("step", "a", 7)]


RESCALE_JOB = '''
import sys, time
from ferroflow import StreamExecutionEnvironment
from ferroflow.connectors import FixedPartitionedSource, StatefulSourcePartition
from ferroflow.watermarks import WatermarkStrategy

class Slow(StatefulSourcePartition):
    def __init__(self, name, state):
        self.name, self.next = name, state or 0
    def next_batch(self):
        if self.next >= 400:
            raise StopIteration
        time.sleep(SLOW)
        self.next += 1
        return [f"{self.name} {self.next - 1}"]
    def snapshot(self):
        return self.next

class Src(FixedPartitionedSource):
    def list_parts(self):
        return [f"p{i}" for i in range(6)]
    def build_part(self, step_id, for_part, resume_state):
        return Slow(for_part, resume_state)

SLOW = float(sys.argv[2])
env = StreamExecutionEnvironment.get_execution_environment()
env.enable_checkpointing(50)
env.get_checkpoint_config().set_checkpoint_storage_dir(sys.argv[1])
env.from_source(Src(), WatermarkStrategy.no_watermarks(), "slow").write_as_text("out")
env.execute("rescale")
'''


def _ferroflow() -> str:
    here = Path(sys.executable).parent / "ferroflow"
    return str(here)


def test_a_job_checkpointed_at_two_workers_resumes_at_one_then_three(tmp_path):
    """Killed (SIGKILL) at 2 workers after a checkpoint, then at 1, then finished at 3:
    the committed lines are every part's items once."""
    script = tmp_path / "job.py"
    script.write_text(RESCALE_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    storage = tmp_path / "ck"

    def has_checkpoint():
        return any((d / "_MANIFEST").exists() for d in storage.glob("chk-*"))

    for workers in (2, 1):
        before = {d.name for d in storage.glob("chk-*") if (d / "_MANIFEST").exists()}
        p = subprocess.Popen([_ferroflow(), "run", "-w", str(workers), str(script), "--from-checkpoint",
                              str(storage), "-", str(storage), "0.01"], cwd=tmp_path, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.poll() is None:
            now = {d.name for d in storage.glob("chk-*") if (d / "_MANIFEST").exists()}
            if now - before:
                break
            time.sleep(0.02)
        assert p.poll() is None, "the job ended before it could be killed"
        assert has_checkpoint()
        os.killpg(p.pid, 9)
        p.wait()
    p = subprocess.run(check=False, args=[_ferroflow(), "run", "-w", "3", str(script), "--from-checkpoint", str(storage), "-",
                        str(storage), "0"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = [line for f in (tmp_path / "out").iterdir() if not f.name.startswith((".", "_"))
             for line in f.read_text().splitlines()]
    assert Counter(lines) == Counter(f"p{i} {k}" for i in range(6) for k in range(400))


# -- the user's errors ------------------------------------------------------------------


class Failing(Parts):
    def build_part(self, step_id, for_part, resume_state):
        part = super().build_part(step_id, for_part, resume_state)
        if for_part == "bad":
            def broken():
                raise KeyError("the cursor went away")
            part.next_batch = broken
        return part


def test_an_exception_in_next_batch_fails_the_job_naming_the_source_and_traceback(env):
    collect(env.from_source(Failing({"ok": 5, "bad": 5}), NO_WM, "flaky"))
    with pytest.raises(JobExecutionException) as e:
        env.execute("fails")
    text = str(e.value)
    assert "flaky" in text and "the cursor went away" in text and "broken" in text, text


class BadList(FixedPartitionedSource):
    def list_parts(self):
        return ["a", 3]


def test_list_parts_of_other_than_str_is_refused_in_one_line(env):
    collect(env.from_source(BadList(), NO_WM, "bad"))
    with pytest.raises((JobExecutionException, TypeError)) as e:
        env.execute("bad")
    assert "list_parts() must return a list of str" in str(e.value)


class PerProcess(FixedPartitionedSource):
    """Lists other parts in process 1 than in process 0."""

    def list_parts(self):
        return ["a", "b"] if os.environ.get("FERROFLOW_PROCESS_ID", "0") in ("", "0") else ["a", "c"]

    def build_part(self, step_id, for_part, resume_state):
        return Counting(for_part, 3, 1, resume_state)


def test_processes_listing_other_parts_refuse_each_other():
    from conftest import TWO_PROC, make_env

    env = make_env(TWO_PROC)
    collect(env.from_source(PerProcess(), NO_WM, "disagree"))
    with pytest.raises(Exception) as e:
        env.execute("disagree")
    assert "different job" in str(e.value), str(e.value)


class Unpicklable(Counting):
    def snapshot(self):
        return lambda: self.next


def test_an_unpicklable_snapshot_names_the_problem():
    class Src(Parts):
        def build_part(self, step_id, for_part, resume_state):
            return Unpicklable(for_part, 5, 1, resume_state)

    probe = _engine._SourceProbe(_SourceParts(Src({"a": 5}), "s"), 0, 1)
    probe.poll(2)
    with pytest.raises(RuntimeError, match="snapshot\\(\\) must return a picklable value"):
        probe.mark(1)
    probe.cancel()


def test_a_checkpoint_right_after_a_restore_keeps_the_restored_positions():
    """Restored at 3 workers, checkpointed before any poll or mark, restored at 1: still
    exactly the items the first checkpoint had not emitted."""
    parts = {f"p{i}": 30 for i in range(5)}
    probe = _engine._SourceProbe(_SourceParts(Parts(parts, 4), "s"), 0, 1)
    first = probe.poll(50)
    probe.mark(1)
    sections = [probe.snapshot()]
    probe.cancel()
    again = []
    for index in range(3):
        probe = _engine._SourceProbe(_SourceParts(Parts(parts, 4), "s"), index, 3)
        probe.restore(sections, index, 3)
        again.append(probe.snapshot())
        probe.cancel()
    probe = _engine._SourceProbe(_SourceParts(Parts(parts, 4), "s"), 0, 1)
    probe.restore(again, 0, 1)
    assert Counter(first + drain(probe)) == everything(parts)


def test_a_checkpointed_job_warns_that_a_dynamic_source_cannot_resume(tmp_path):
    from ferroflow import CheckpointingWarning, StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(1000)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ck"))
    collect(env.from_source(PerWorker(), NO_WM, "ticks warned"))
    with pytest.warns(CheckpointingWarning, match="DynamicSource keeps no state"):
        env.execute("warned")


SINK_LOG: list = []


class CountingWriter(StatefulSinkPartition):
    """Its state: how many items it wrote (resumed from a checkpoint)."""

    def __init__(self, name: str, state) -> None:
        self.name, self.count = name, state or 0

    def write_batch(self, items):
        self.count += len(items)
        SINK_LOG.extend(("write", self.name, item) for item in items)

    def snapshot(self):
        return self.count


class CountingSink(FixedPartitionedSink):
    def list_parts(self):
        return ["a", "b", "c"]

    def part_fn(self, item):
        return item[1]

    def build_part(self, step_id, for_part, resume_state):
        SINK_LOG.append(("build", for_part, resume_state))
        return CountingWriter(for_part, resume_state)


class SlowParts(Parts):
    def build_part(self, step_id, for_part, resume_state):
        part = super().build_part(step_id, for_part, resume_state)
        batch = part.next_batch

        def slow():
            time.sleep(0.002)
            return batch()
        part.next_batch = slow
        return part


def test_a_sink_resumes_its_parts_states_after_a_restart_and_writes_at_least_once(tmp_path):
    from ferroflow import RestartStrategies, StreamExecutionEnvironment
    from ferroflow.functions import MapFunction

    class FailsOnce(MapFunction):
        def open(self, runtime_context):
            self.attempt = runtime_context.get_attempt_number()

        def map(self, value):
            if self.attempt == 0 and value == ("p1", 150):
                raise ValueError("first attempt")
            return value

    SINK_LOG.clear()
    lengths = {"p0": 200, "p1": 200}
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(20)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ck"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    env.from_source(SlowParts(lengths, 1), NO_WM, "slow").map(FailsOnce()).sink_to(CountingSink())
    env.execute("restarts")
    builds = [entry for entry in SINK_LOG if entry[0] == "build"]
    assert len(builds) == 6, builds  # three parts, two attempts
    resumed = {part: state for _, part, state in builds[3:]}
    assert any(state for state in resumed.values()), f"no part resumed a state: {builds}"
    written = Counter(entry[2] for entry in SINK_LOG if entry[0] == "write")
    assert set(written) == set(everything(lengths)), "an item was never written"
    # What a part's resumed count says it wrote is what it wrote before that checkpoint.
    for part, state in resumed.items():
        first_attempt = [e for e in SINK_LOG[:SINK_LOG.index(builds[3])] if e[0] == "write" and e[1] == part]
        assert (state or 0) <= len(first_attempt)
