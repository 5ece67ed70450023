"""The environment across jobs: each ``execute()`` runs what was added since the last
one (as in Flink, which clears its transformations once it has built a job), and
settings ferroflow accepts without implementing them say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from ferroflow import CheckpointingWarning, FerroflowError, JobExecutionException, StreamExecutionEnvironment
from ferroflow import environment as environment_module
from ferroflow.functions import SourceFunction
from conftest import PRINT_STR, TwoProcessEnvironment, bag, collect, flink_semantics, make_env, shown
import pyflink_names

# -- the names the tests run through ---------------------------------------------------------


def test_the_environment_follows_the_names_of_the_pass(env, parallelism, request):
    """In the pyflink pass (tests/pyflink_names.py) both ``env`` and this file's
    ``StreamExecutionEnvironment`` are PyFlink's (``pyflink.datastream``), 2proc included;
    in the first pass both are ferroflow's."""
    pyflink = pyflink_names.in_pass(request.node)
    assert (StreamExecutionEnvironment.__module__ == "ferroflow.compat.pyflink_environment") is pyflink
    assert isinstance(env, StreamExecutionEnvironment) and flink_semantics(env) is pyflink
    assert isinstance(make_env(parallelism), StreamExecutionEnvironment)
    assert isinstance(env, TwoProcessEnvironment) is (repr(parallelism) == "2proc")
    assert SourceFunction.__module__ == "ferroflow.functions"  # served as it is: the same class

# -- execute() twice --------------------------------------------------------------------------


def test_each_execute_runs_its_own_job_once(env, parallelism):
    """PyFlink's basic_operations.py: one source, a job per operation on it, each ended
    by execute(). A later job runs the source again, but not the earlier jobs' sinks."""
    ds = env.from_collection([1, 2, 3])
    doubled = collect(ds.map(lambda x: x * 2))
    env.execute("map")
    odd = collect(ds.filter(lambda x: x % 2 == 1))
    env.execute("filter")
    total = collect(ds.map(lambda x: ("all", x)).key_by(lambda kv: kv[0]).reduce(lambda a, b: (a[0], a[1] + b[1])))
    env.execute("reduce")
    assert bag(doubled) == bag([2, 4, 6])
    assert bag(odd) == bag([1, 3])
    assert len(total) == 3 and max(total) == ("all", 6)


@pytest.mark.flink_semantics(PRINT_STR)
def test_print_runs_once_per_job(capsys):
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection(["a", "b", "c"])
    ds.print()
    env.execute()
    ds.map(str.upper).print()
    env.execute()
    assert capsys.readouterr().out.splitlines() == [shown(env, x) for x in ["a", "b", "c", "A", "B", "C"]]


def test_results_count_only_the_job_that_ran():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([1, 2, 3]).name("numbers")
    ds.map(lambda x: x).name("first").add_sink(lambda x: None)
    env.execute()
    ds.map(lambda x: x).name("second").add_sink(lambda x: None)
    result = env.execute()
    names = " ".join(result.operator_counts)
    assert "second" in names and "first" not in names and "numbers" in names


def test_a_failed_job_is_not_run_again():
    """The environment starts empty after execute() also when the job failed."""
    env = StreamExecutionEnvironment.get_execution_environment()
    calls = []

    def boom(x):
        calls.append(x)
        raise ValueError("boom")
    env.from_elements(1).map(boom).add_sink(lambda x: None)
    with pytest.raises(JobExecutionException):
        env.execute()
    out = collect(env.from_elements("fine"))
    env.execute()
    assert out == ["fine"] and calls == [1]


def test_execute_with_nothing_added_since_says_why():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_elements(1).add_sink(lambda x: None)
    env.execute()
    with pytest.raises(FerroflowError, match=r"nothing to run: the previous execute\(\) ran this environment's job"):
        env.execute()


def test_execution_plan_shows_the_next_job_only():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_elements(1, 2).name("source")
    ds.map(lambda x: x).name("old").print()
    env.execute()
    ds.map(lambda x: x).name("new").print()
    plan = json.loads(env.get_execution_plan())["nodes"]
    assert [n["id"] for n in plan] == [1, 2, 3]
    assert "source" in plan[0]["contents"] and plan[0]["pact"] == "Data Source" and "predecessors" not in plan[0]
    assert "new" in plan[1]["contents"] and plan[1]["predecessors"] == [{"id": 1, "ship_strategy": "FORWARD",
                                                                        "side": "second"}]
    assert plan[2]["pact"] == "Data Sink" and plan[2]["predecessors"][0]["id"] == 2
    assert "old" not in env.get_execution_plan()


def test_execution_plan_names_the_ship_strategy():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_elements(1, 2).key_by(lambda x: x).reduce(lambda a, b: a + b).rebalance().map(str).print()
    plan = json.loads(env.get_execution_plan())["nodes"]
    strategies = [p["ship_strategy"] for n in plan for p in n.get("predecessors", [])]
    assert "HASH" in strategies and "REBALANCE" in strategies
    assert all(n["parallelism"] == 2 for n in plan)


def test_a_later_job_may_iterate(env):
    """Node numbers start again for every job: an iteration's feedback still closes."""
    first = collect(env.from_elements(7))
    env.execute()
    iteration = env.from_elements(2, 2, 2).iterate(5000)
    body = iteration.map(lambda v: v - 1)
    iteration.close_with(body.filter(lambda v: v > 0))
    out = collect(body.filter(lambda v: v <= 0))
    env.execute()
    assert first == [7] and out == [0, 0, 0]


def test_a_stream_of_an_earlier_iteration_brings_its_loop_along():
    env = make_env(1)
    iteration = env.from_elements(3).iterate(5000)
    body = iteration.map(lambda v: v - 1)
    iteration.close_with(body.filter(lambda v: v > 0))
    first = collect(body)
    env.execute()
    second = collect(body.map(lambda v: v * 10))
    env.execute()
    assert first == [2, 1, 0] and second == [20, 10, 0]


# -- checkpointing ----------------------------------------------------------------------------


@pytest.fixture
def fresh_warning_state(monkeypatch):
    """The checkpointing warning is once per process: let this test see it again."""
    monkeypatch.setattr(environment_module, "_warned_unresumable", set())
    monkeypatch.delenv("FERROFLOW_PROCESS_ID", raising=False)


class Counting(SourceFunction):
    """A source without snapshot_state: it cannot resume."""

    def run(self, ctx):
        for i in range(3):
            ctx.collect(i)

    def cancel(self):
        pass


class Resumable(Counting):
    def snapshot_state(self, checkpoint_id):
        return 0

    def initialize_state(self, state):
        pass


def test_a_checkpointed_source_that_cannot_resume_is_named_in_a_warning(fresh_warning_state, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = StreamExecutionEnvironment.get_execution_environment()
        assert env.enable_checkpointing(1000) is env
        assert caught == [], "enabling checkpoints warns of nothing"
        env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ck"))
        for _ in range(2):  # the same source twice: warned once
            env.add_source(Counting(), "counting").print()
            env.add_source(Resumable(), "resumable").print()
            env.execute()
    assert [w.category for w in caught] == [CheckpointingWarning]
    message = str(caught[0].message)
    assert "counting" in message and "no snapshot_state()" in message and "resumable" not in message
    assert caught[0].filename == __file__  # points at the user's execute()


def test_without_checkpointing_nothing_warns(fresh_warning_state):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = StreamExecutionEnvironment.get_execution_environment()
        env.add_source(Counting()).print()
        env.execute()
    assert caught == []


def test_the_checkpointing_warning_can_be_silenced(fresh_warning_state, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=CheckpointingWarning)
        env = StreamExecutionEnvironment.get_execution_environment()
        env.enable_checkpointing(1000)
        env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ck"))
        env.add_source(Counting()).print()
        env.execute()
    assert caught == []


HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(HERE.parent / ".venv" / "bin" / "ferroflow")

CHECKPOINTING_JOB = """
from ferroflow import StreamExecutionEnvironment
from ferroflow.functions import SourceFunction

class Once(SourceFunction):
    def run(self, ctx):
        ctx.collect(1)

    def cancel(self):
        pass

for n in range(2):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(1000)
    env.add_source(Once(), "once").print()
    env.execute()
"""


@pytest.mark.parametrize("processes", [1, 2])
def test_ferroflow_run_prints_the_checkpointing_warning_once(tmp_path, processes):
    """Two environments asking for checkpoints, on one or two processes: one warning."""
    script = tmp_path / "checkpointing.py"
    script.write_text(textwrap.dedent(CHECKPOINTING_JOB))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    try:
        p = subprocess.run([FERROFLOW, "run", str(script), "-p", str(processes)], capture_output=True, text=True,
                           timeout=60, env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"ferroflow run did not finish within 60 s: {e}")
    assert p.returncode == 0, p
    warned = [line for line in p.stderr.splitlines() if "CheckpointingWarning" in line]
    assert len(warned) == 1, p.stderr
    assert "checkpointing.py:16: CheckpointingWarning: add_source 'once' (checkpointing.py:15)" in warned[0], warned[0]
    assert "cannot resume from a checkpoint: its function has no snapshot_state()" in warned[0]
    assert "Traceback" not in p.stderr
