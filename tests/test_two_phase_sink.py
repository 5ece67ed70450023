"""Python sinks under checkpoints (issue 13): ``TwoPhaseCommitSinkFunction``.

- A job with checkpoints, a map that fails once after a checkpoint was committed and a
  fixed-delay restart: a sink writing one file per transaction (commit = rename) holds
  every input record exactly once (1 worker, 2 threads, 2 processes).
- A sink whose ``commit`` raises fails the job with one line naming the sink, no record.
- The order of the user's calls (begin, invoke, pre_commit, commit, abort) across
  checkpoints, completions, restores from the last completed checkpoint and the job's
  end, against a plain model (hypothesis), driven by ``_engine._SinkProbe`` through the
  sink's checkpoint hooks as the sink operator calls them.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferroflow import (CheckpointingWarning, JobExecutionException, RestartStrategies, SinkFunction,
                       TwoPhaseCommitSinkFunction, _engine, _nodes)
from ferroflow.functions import MapFunction
from conftest import make_env


@pytest.fixture(autouse=True)
def quiet_checkpointing_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointingWarning)
        yield


class FileTxnSink(TwoPhaseCommitSinkFunction):
    """One file per transaction in ``out``: written as ``.inprogress-<txn>``, renamed
    ``.pending-<txn>`` when pre-committed, ``part-<txn>`` when committed."""

    def __init__(self, out: str) -> None:
        self.out = out

    def open(self, runtime_context) -> None:
        self.files: Dict[str, Any] = {}
        self.attempt = runtime_context.get_attempt_number()

    def path(self, state: str, txn: str) -> str:
        return os.path.join(self.out, f"{state}-{txn}")

    def begin_transaction(self) -> str:
        return f"{self.attempt}-{os.getpid()}-{os.urandom(6).hex()}"

    def invoke(self, txn, value, context) -> None:
        f = self.files.get(txn)
        if f is None:
            f = self.files[txn] = open(self.path(".inprogress", txn), "w")
        f.write(f"{value}\n")

    def pre_commit(self, txn) -> None:
        f = self.files.pop(txn, None)
        if f is None:
            return  # nothing written: nothing to commit
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.rename(self.path(".inprogress", txn), self.path(".pending", txn))

    def commit(self, txn) -> None:
        try:
            os.rename(self.path(".pending", txn), self.path("part", txn))
        except FileNotFoundError:
            pass  # committed already (or empty)

    def abort(self, txn) -> None:
        f = self.files.pop(txn, None)
        if f is not None:
            f.close()
        for state in (".inprogress", ".pending"):
            try:
                os.remove(self.path(state, txn))
            except FileNotFoundError:
                pass


class FailsOnceAfterACommit(MapFunction):
    """Raises once (a marker file shared by every worker and process) at the first record
    from ``at`` on that it sees once the sink has committed a file: a restore then has a
    committed checkpoint to start from. Sleeps now and then (and on each record from
    ``at`` until then) so checkpoints happen."""

    def __init__(self, marks: str, out: str, at: int) -> None:
        self.marks, self.out, self.at = marks, out, at

    def map(self, value):
        if value % 50 == 0:
            time.sleep(0.005)
        if value >= self.at and not os.path.exists(os.path.join(self.marks, "failed")):
            if not any(n.startswith("part-") for n in os.listdir(self.out)):
                time.sleep(0.002)  # gives a checkpoint time to complete
                return value
            try:
                os.close(os.open(os.path.join(self.marks, "failed"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return value
            raise ValueError("failing once")
        return value


def committed(out: Path) -> List[int]:
    values = []
    for p in out.iterdir():
        if p.name.startswith("part-"):
            values += [int(line) for line in p.read_text().splitlines()]
    return sorted(values)


def test_file_transactions_are_exactly_once_across_a_restart(tmp_path, parallelism, capfd):
    out, marks = tmp_path / "out", tmp_path / "marks"
    out.mkdir()
    marks.mkdir()
    n = 3000
    env = make_env(parallelism)
    env.enable_checkpointing(20)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "chk"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    (env.from_collection(list(range(n)))
        .map(FailsOnceAfterACommit(str(marks), str(out), n // 2))
        .add_sink(FileTxnSink(str(out))))
    env.execute("two-phase")
    assert (marks / "failed").exists(), "the job never failed: no checkpoint committed before its end"
    assert "restarting (attempt 1 of 1)" in capfd.readouterr().err
    assert committed(out) == list(range(n))
    # The first attempt's checkpoints committed files, and nothing is left pre-committed.
    names = os.listdir(out)
    assert any(name.startswith("part-0-") for name in names), names
    assert not [name for name in names if name.startswith(".pending-")], names


def test_without_checkpoints_the_job_is_one_transaction_per_worker(tmp_path, parallelism):
    out = tmp_path / "out"
    out.mkdir()
    env = make_env(parallelism)
    env.from_collection(list(range(100))).add_sink(FileTxnSink(str(out)))
    env.execute()
    assert committed(out) == list(range(100))
    assert len(os.listdir(out)) <= 2


class CommitRaises(TwoPhaseCommitSinkFunction):
    def begin_transaction(self):
        return "t"

    def invoke(self, txn, value, context):
        pass

    def pre_commit(self, txn):
        pass

    def commit(self, txn):
        raise ValueError("the store is read-only")

    def abort(self, txn):
        pass


@pytest.mark.parametrize("checkpointing", [False, True])
def test_a_commit_that_raises_names_the_sink_and_no_record(tmp_path, checkpointing):
    env = make_env(1)
    if checkpointing:
        env.enable_checkpointing(10)
        env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "chk"))
        env.set_restart_strategy(RestartStrategies.no_restart())
    (env.from_collection(list(range(2000))).map(lambda x: time.sleep(0.001) or x if x % 20 == 0 else x)
        .add_sink(CommitRaises()))
    with pytest.raises(JobExecutionException) as e:
        env.execute("j")
    first = str(e.value).splitlines()[0]
    assert first.startswith("job 'j' failed: two_phase_sink 'CommitRaises' (test_two_phase_sink.py:"), first
    assert "on record" not in first and e.value.record is None, str(e.value)
    assert str(e.value).splitlines()[-1] == "ValueError: the store is read-only"


def test_a_missing_method_fails_at_add_sink():
    class NoAbort(TwoPhaseCommitSinkFunction):
        def begin_transaction(self):
            return 1

        def invoke(self, txn, value, context):
            pass

        def pre_commit(self, txn):
            pass

        def commit(self, txn):
            pass

    env = make_env(1)
    with pytest.raises(TypeError, match=r"NoAbort must implement abort\(\)"):
        env.from_collection([1]).add_sink(NoAbort())


def test_a_plain_sink_function_says_it_is_at_least_once():
    assert "at-least-once" in (SinkFunction.__doc__ or "")


# -- the call order against a model ------------------------------------------------------------------


class Recorder(TwoPhaseCommitSinkFunction):
    """Logs every call; transactions are numbered across incarnations (``counter``)."""

    def __init__(self, log: list, counter: list) -> None:
        self.log, self.counter = log, counter

    def begin_transaction(self):
        self.counter[0] += 1
        self.log.append(("begin", self.counter[0]))
        return self.counter[0]

    def invoke(self, txn, value):  # the two-argument form
        self.log.append(("invoke", txn, value))

    def pre_commit(self, txn):
        self.log.append(("pre_commit", txn))

    def commit(self, txn):
        self.log.append(("commit", txn))

    def abort(self, txn):
        self.log.append(("abort", txn))


class Model:
    """The sink's contract, written out plainly."""

    def __init__(self) -> None:
        self.log: list = []
        self.next_txn = 0
        self.current: Optional[int] = None
        self.pending: List[Tuple[int, int]] = []
        self.snapshots: Dict[int, Tuple[List[Tuple[int, int]], int]] = {}

    def begin(self) -> int:
        if self.current is None:
            self.next_txn += 1
            self.current = self.next_txn
            self.log.append(("begin", self.current))
        return self.current

    def write(self, values) -> None:
        if values:
            txn = self.begin()
            self.log += [("invoke", txn, v) for v in values]

    def checkpoint(self, cid: int) -> None:
        txn = self.begin()
        self.log.append(("pre_commit", txn))
        self.pending.append((cid, txn))
        self.current = None
        self.snapshots[cid] = (list(self.pending), self.begin())

    def complete(self, cid: int) -> None:
        self.log += [("commit", t) for c, t in self.pending if c <= cid]
        self.pending = [(c, t) for c, t in self.pending if c > cid]

    def restart(self, cid: Optional[int]) -> None:
        self.current, self.pending = None, []
        if cid is not None:
            pending, current = self.snapshots[cid]
            self.log += [("commit" if c <= cid else "abort", t) for c, t in pending]
            self.log.append(("abort", current))

    def end(self, succeed: bool) -> None:
        txn = self.begin()
        self.log.append(("pre_commit", txn))
        if succeed:
            self.log += [("commit", t) for _, t in self.pending] + [("commit", txn)]
        else:
            self.log.append(("abort", txn))


OPS = st.lists(st.one_of(st.tuples(st.just("write"), st.lists(st.integers(0, 99), max_size=4)),
                         st.tuples(st.just("checkpoint")), st.tuples(st.just("complete")),
                         st.tuples(st.just("restart"))), max_size=25)


def sink_udf(function: TwoPhaseCommitSinkFunction):
    """The ``udf`` of the node ``add_sink(function)`` makes, prepared for one worker."""
    env = make_env(1)
    sink = env.from_collection([0]).add_sink(function)
    kind = env._nodes[sink._node].kind
    assert isinstance(kind, _nodes.TwoPhaseSink), kind
    kind.udf.prepare(1)
    return kind.udf


def probe_of(log: list, counter: list):
    return _engine._SinkProbe(sink_udf(Recorder(log, counter)), 0, 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, succeed=st.booleans())
def test_calls_follow_the_model_across_checkpoints_and_restores(ops, succeed):
    log: list = []
    counter = [0]
    model = Model()
    probe = probe_of(log, counter)
    cid, taken, completed = 0, [], None
    sections: Dict[int, bytes] = {}
    for op in ops:
        if op[0] == "write":
            probe.write(op[1])
            model.write(op[1])
        elif op[0] == "checkpoint":
            cid += 1
            sections[cid] = probe.pre_commit(cid)
            model.checkpoint(cid)
            taken.append(cid)
        elif op[0] == "complete" and taken and taken[-1] != completed:
            completed = taken[-1]
            probe.commit_checkpoint(completed)
            model.complete(completed)
        elif op[0] == "restart":
            probe = probe_of(log, counter)
            if completed is not None:
                probe.restore([sections[completed]], completed, 0, 1)
            model.restart(completed)
            # Checkpoint ids go on after the restored one, as the engine's do.
            taken = [c for c in taken if completed is not None and c <= completed]
        assert log == model.log
    probe.finish(succeed)
    model.end(succeed)
    assert log == model.log
    # What is committed (the last commit of each transaction wins) holds no
    # transaction twice over and nothing aborted after its commit.
    aborted_after_commit = [t for i, (call, *rest) in enumerate(log) if call == "abort"
                            for t in rest if ("commit", t) in log[:i]]
    assert not aborted_after_commit


def test_a_section_is_the_pending_transactions_and_the_open_one():
    log: list = []
    probe = probe_of(log, [0])
    probe.write(["a"])
    section = probe.pre_commit(7)
    assert section[0] == 1 and pickle.loads(section[1:]) == ([(7, 1)], 2)


def test_a_restore_at_another_parallelism_deals_the_old_sections():
    """Two old workers' sections, restored by one instance: both are committed/aborted."""
    log: list = []
    counter = [0]
    sections = []
    for _ in range(2):
        p = probe_of(log, counter)
        p.write([1])
        sections.append(p.pre_commit(3))
        p.write([2])
        p.pre_commit(4)
    log.clear()
    probe_of(log, counter).restore(sections, 3, 0, 1)
    assert log == [("commit", 1), ("abort", 2), ("commit", 4), ("abort", 5)]
    log.clear()
    # At 2 instances, each takes its own old section.
    probe_of(log, counter).restore(sections, 3, 1, 2)
    assert log == [("commit", 4), ("abort", 5)]


def test_an_unpicklable_transaction_fails_the_checkpoint_in_one_line():
    class Unpicklable(Recorder):
        def begin_transaction(self):
            super().begin_transaction()
            return lambda: None

    probe = _engine._SinkProbe(sink_udf(Unpicklable([], [0])), 0, 1)
    with pytest.raises(RuntimeError, match="a two-phase-commit sink's transactions must be picklable to be "
                                           "checkpointed: .*Can.t pickle local object"):
        probe.pre_commit(1)


# -- docs/fault_tolerance.md ----------------------------------------------------------------------------


def test_the_documented_idempotent_sink_pattern_runs_and_prints_what_the_guide_shows(tmp_path):
    import subprocess

    from test_docs_event_time import PYTHON, ROOT, _blocks, _clean_env

    with open(os.path.join(ROOT, "docs", "fault_tolerance.md"), encoding="utf-8") as f:
        blocks = [b for b in _blocks(f.read()) if b[3] == "The idempotent-sink pattern"]
    assert [b[1] for b in blocks] == ["python", "text"], "the guide lost its idempotent-sink example"
    script = tmp_path / "idempotent.py"
    script.write_text(blocks[0][2], encoding="utf-8")
    r = subprocess.run([PYTHON, "-W", "ignore", str(script)], cwd=str(tmp_path), env=_clean_env(),
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "restarting (attempt 1 of 1)" in r.stderr, "the example's job did not fail once"
    assert r.stdout == blocks[1][2]
