"""Checkpointing and restart settings as users write them (PyFlink's names): the
``CheckpointConfig`` and its validation, the default storage directory, the one-line
error for storage that cannot be written, restart strategies (a job whose map fails on
its first attempt only restarts, prints the cause, and ends with the right output;
``no_restart`` fails; failure-rate counting), the ``-p`` supervisor's restarts and the
CLI's ``--from-checkpoint`` / ``-s`` flags.

Until the engine writes checkpoints a restart starts from the beginning, so these tests
check what holds either way: the restart happens, its cause is printed, and the last
attempt's output (a sink keyed by ``get_attempt_number()``, so idempotent) is complete.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import textwrap
import zlib
import time
from pathlib import Path
from typing import Any, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferroflow import FerroflowError, JobExecutionException, StreamExecutionEnvironment
from ferroflow.checkpoint_config import (CheckpointConfig, CheckpointingMode, ExternalizedCheckpointCleanup,
                                         ExternalizedCheckpointRetention, storage_path)
from ferroflow.functions import MapFunction, ParallelSourceFunction, SourceFunction
from ferroflow.restart_strategy import RestartStrategies, cause_line, effective_strategy
from conftest import TWO_PROC, collect, make_env

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(HERE.parent / ".venv" / "bin" / "ferroflow")


@pytest.fixture(autouse=True)
def quiet_checkpointing_warning(monkeypatch):
    import warnings

    from ferroflow import CheckpointingWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointingWarning)
        yield


# -- CheckpointConfig ------------------------------------------------------------------------------


def test_enable_checkpointing_and_the_config_getters():
    env = StreamExecutionEnvironment.get_execution_environment()
    config = env.get_checkpoint_config()
    assert not config.is_checkpointing_enabled() and env.get_checkpoint_interval() == -1
    assert env.enable_checkpointing(500) is env
    assert config.is_checkpointing_enabled() and config.get_checkpoint_interval() == 500
    assert env.get_checkpointing_mode() is CheckpointingMode.EXACTLY_ONCE
    assert env.get_checkpointing_consistency_mode() is CheckpointingMode.EXACTLY_ONCE  # PyFlink 2's name
    env.enable_checkpointing(200, CheckpointingMode.AT_LEAST_ONCE)
    assert (env.get_checkpoint_interval(), config.get_checkpointing_mode()) == (200, CheckpointingMode.AT_LEAST_ONCE)
    # Flink's defaults.
    assert config.get_checkpoint_timeout() == 600_000
    assert config.get_min_pause_between_checkpoints() == 0
    assert config.get_max_concurrent_checkpoints() == 1
    assert config.get_num_retained_checkpoints() == 1
    assert config.get_externalized_checkpoint_retention() is ExternalizedCheckpointRetention.DELETE_ON_CANCELLATION
    assert config.get_checkpoint_storage_dir() is None
    # Setters chain and take ms or a timedelta.
    assert (config.set_checkpoint_timeout(datetime.timedelta(seconds=3)).set_min_pause_between_checkpoints(50)
            .set_max_concurrent_checkpoints(1).set_num_retained_checkpoints(3)
            .set_externalized_checkpoint_retention(ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION)
            .set_checkpoint_storage_dir("file:///tmp/ck")) is config
    assert (config.get_checkpoint_timeout(), config.get_min_pause_between_checkpoints(),
            config.get_num_retained_checkpoints(), config.get_checkpoint_storage_dir()) == (3000, 50, 3, "/tmp/ck")
    assert config.get_externalized_checkpoint_retention() is ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    assert config.is_externalized_checkpoints_enabled()


def test_pyflink_1x_names_are_accepted():
    config = CheckpointConfig()
    assert ExternalizedCheckpointCleanup is ExternalizedCheckpointRetention
    config.set_externalized_checkpoint_cleanup(ExternalizedCheckpointCleanup.RETAIN_ON_CANCELLATION)
    assert config.get_externalized_checkpoint_cleanup() is ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    config.enable_externalized_checkpoints(ExternalizedCheckpointCleanup.DELETE_ON_CANCELLATION)
    assert config.get_externalized_checkpoint_retention() is ExternalizedCheckpointRetention.DELETE_ON_CANCELLATION
    # The talk-era enum of org.apache.flink.streaming.api is the same one.
    from ferroflow.compat.javatypes import CheckpointingMode as Legacy

    assert Legacy is CheckpointingMode


@pytest.mark.parametrize("call, error, phrase", [
    (lambda c: c.set_max_concurrent_checkpoints(2), ValueError, "one checkpoint at a time, so only 1 is supported"),
    (lambda c: c.set_max_concurrent_checkpoints(0), ValueError, "only 1 is supported"),
    (lambda c: c.set_checkpoint_interval(5), ValueError, "the checkpoint interval must be at least 10 ms, got 5"),
    (lambda c: c.set_checkpoint_interval("1s"), TypeError, "takes milliseconds as an int"),
    (lambda c: c.set_checkpoint_timeout(0), ValueError, "the checkpoint timeout must be at least 1 ms"),
    (lambda c: c.set_min_pause_between_checkpoints(-1), ValueError, "must be at least 0 ms"),
    (lambda c: c.set_num_retained_checkpoints(0), ValueError, "takes 1 or more, got 0"),
    (lambda c: c.set_checkpointing_mode("SOMETIMES"), ValueError, "EXACTLY_ONCE or AT_LEAST_ONCE"),
    (lambda c: c.set_externalized_checkpoint_retention(ExternalizedCheckpointRetention.NO_EXTERNALIZED_CHECKPOINTS),
     ValueError, "always written to disk"),
    (lambda c: c.set_checkpoint_storage_dir("s3://bucket/ck"), ValueError, "only local paths and file:// URIs"),
    (lambda c: c.set_checkpoint_storage_dir("file://relative/ck"), ValueError, "needs an absolute path"),
    (lambda c: c.set_checkpoint_storage_dir(""), ValueError, "non-empty path"),
])
def test_bad_settings_say_what_is_wrong(call, error, phrase):
    with pytest.raises(error, match=phrase.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call(CheckpointConfig())


def test_storage_paths_and_file_uris():
    assert storage_path("ck") == "ck"
    assert storage_path(Path("/a/b")) == "/a/b"
    assert storage_path("file:///a/b") == "/a/b"
    assert storage_path("file:/a/b") == "/a/b"
    assert storage_path("file://localhost/a/b") == "/a/b"


# -- where checkpoints go ----------------------------------------------------------------------------


def test_the_default_storage_dir_is_under_the_working_directory(tmp_path, monkeypatch, parallelism):
    monkeypatch.chdir(tmp_path)
    env = make_env(parallelism)
    env.enable_checkpointing(1000)
    out = collect(env.from_collection([1, 2, 3]).map(lambda x: x * 10))
    env.execute("daily totals/v2")
    assert sorted(out) == [10, 20, 30]
    # Made (and probed) when the job started; the name's '/' and ' ' become '_'.
    assert (tmp_path / "ferroflow-checkpoints" / "daily_totals_v2").is_dir()
    assert os.listdir(tmp_path / "ferroflow-checkpoints") == ["daily_totals_v2"]


def test_a_storage_dir_that_cannot_be_written_fails_the_job_at_start(tmp_path, parallelism):
    (tmp_path / "file").write_text("")
    bad = tmp_path / "file" / "checkpoints"
    env = make_env(parallelism)
    env.enable_checkpointing(1000).get_checkpoint_config().set_checkpoint_storage_dir(str(bad))
    ran: List[int] = []
    env.from_collection([1]).add_sink(ran.append)
    with pytest.raises(FerroflowError) as caught:
        env.execute()
    assert str(caught.value) == f"checkpoint storage {bad} is not writable: Not a directory (os error 20)"
    assert ran == []


def test_the_storage_error_from_the_cli_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        from ferroflow import StreamExecutionEnvironment
        env = StreamExecutionEnvironment.get_execution_environment()
        env.enable_checkpointing(1000).get_checkpoint_config().set_checkpoint_storage_dir({str(tmp_path)!r} + "/file/ck")
        env.from_elements(1).print()
        env.execute()
    """))
    p = ferroflow_run(script, cwd=tmp_path)
    assert p.returncode == 1
    lines = [line for line in p.stderr.splitlines() if "CheckpointingWarning" not in line and "enable_checkpointing" not in line]
    assert lines == [f"ferroflow: {script}: checkpoint storage {tmp_path}/file/ck is not writable: "
                     "Not a directory (os error 20)"], p.stderr


# -- restart strategies: the rules ---------------------------------------------------------------------


def test_the_default_strategy_is_flinks():
    assert effective_strategy(None, checkpointing=False) == RestartStrategies.no_restart()
    default = effective_strategy(None, checkpointing=True)
    assert default == RestartStrategies.exponential_delay_restart(1000, 60_000, 1.5, 3_600_000, 0.1)
    assert effective_strategy(RestartStrategies.fall_back_restart(), checkpointing=True) == default
    mine = RestartStrategies.fixed_delay_restart(2, 10)
    assert effective_strategy(mine, checkpointing=True) is mine


def test_strategy_arguments_are_checked():
    with pytest.raises(ValueError, match="restart_attempts must be at least 0"):
        RestartStrategies.fixed_delay_restart(-1, 10)
    with pytest.raises(TypeError, match="takes milliseconds"):
        RestartStrategies.fixed_delay_restart(1, "10 s")
    with pytest.raises(ValueError, match="failure_rate must be at least 1"):
        RestartStrategies.failure_rate_restart(0, 1000, 10)
    with pytest.raises(ValueError, match="max_backoff .* is below initial_backoff"):
        RestartStrategies.exponential_delay_restart(1000, 10)
    s = RestartStrategies.fixed_delay_restart(3, datetime.timedelta(seconds=2))
    assert (s.get_restart_attempts(), s.get_delay_between_attempts_interval()) == (3, datetime.timedelta(seconds=2))
    with pytest.raises(TypeError, match="set_restart_strategy"):
        StreamExecutionEnvironment.get_execution_environment().set_restart_strategy("fixed")


@given(attempts=st.integers(0, 6), failures=st.integers(1, 10))
def test_fixed_delay_restarts_exactly_its_attempts(attempts, failures):
    tracker = RestartStrategies.fixed_delay_restart(attempts, 7)._tracker()
    delays = [tracker.on_failure(i * 1000) for i in range(failures)]
    assert delays == [7] * min(attempts, failures) + [None] * max(0, failures - attempts)


@settings(max_examples=200)
@given(rate=st.integers(1, 4), interval=st.integers(1, 50),
       gaps=st.lists(st.integers(0, 30), min_size=1, max_size=12))
def test_failure_rate_against_a_plain_model(rate, interval, gaps):
    """A failure fails the job once more than ``rate`` failures (itself included) fall
    within the last ``interval`` ms; until then each one restarts."""
    tracker = RestartStrategies.failure_rate_restart(rate, interval, 5)._tracker()
    times: List[int] = []
    now = 0
    for gap in gaps:
        now += gap
        times.append(now)
        recent = [t for t in times if now - t < interval]
        delay = tracker.on_failure(now)
        if len(recent) > rate:
            assert delay is None
            return
        assert delay == 5


@given(randoms=st.lists(st.floats(0, 1), min_size=1, max_size=15))
def test_exponential_delay_grows_to_its_cap_within_the_jitter(randoms):
    c = RestartStrategies.exponential_delay_restart(100, 1000, 2.0, 10_000, 0.1)
    tracker = c._tracker()
    backoff = 100.0
    for i, r in enumerate(randoms):
        delay = tracker.on_failure(i, r)
        assert delay is not None and abs(delay - backoff) <= backoff * 0.1 + 1
        backoff = min(backoff * 2, 1000)
    # An hour of quiet (here 10 s past the last backoff) starts over.
    assert abs(tracker.on_failure(10_000 + 2_000 + len(randoms), 0.5) - 100) <= 1


def test_cause_line_keeps_the_exception_line():
    text = "job 'j' failed: map 'f' (job.py:5) raised an exception on record 1:\nTraceback ...\n  File x\nValueError: boom"
    assert cause_line(text) == "job 'j' failed: map 'f' (job.py:5) raised an exception on record 1: ValueError: boom"
    assert cause_line("process 1 of 2 was killed by SIGKILL") == "process 1 of 2 was killed by SIGKILL"


# -- restart strategies: jobs ---------------------------------------------------------------------------


class FailsOnce(MapFunction):
    """Raises at record ``at`` until it has failed ``times`` times (counted in files
    under ``marks``, shared by every worker and process); tags each record with the
    attempt it was seen in."""

    def __init__(self, marks: str, at: int = 3, times: int = 1) -> None:
        self.marks, self.at, self.times = marks, at, times

    def open(self, runtime_context) -> None:
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value):
        if value == self.at:
            for i in range(self.times):
                try:
                    os.close(os.open(os.path.join(self.marks, f"failed-{i}"), os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    continue
                raise ValueError(f"failure {i + 1}")
        return (self.attempt, value)


def last_attempt(out: List[Any]) -> List[Any]:
    """The records of the last attempt: what an idempotent sink would hold."""
    last = max(a for a, _ in out)
    return sorted(v for a, v in out if a == last)


def restart_job(env, marks: Path, strategy, times: int = 1) -> List[Any]:
    env.set_restart_strategy(strategy)
    return collect(env.from_collection(range(8)).map(FailsOnce(str(marks), times=times)))


def test_fixed_delay_restart_reruns_the_job_and_prints_the_cause(tmp_path, parallelism, capfd):
    env = make_env(parallelism)
    out = restart_job(env, tmp_path, RestartStrategies.fixed_delay_restart(3, 10))
    env.execute("restarts")
    assert last_attempt(out) == list(range(8))
    assert max(a for a, _ in out) == 1
    err = capfd.readouterr().err
    causes = [l for l in err.splitlines() if "raised an exception on record 3: ValueError: failure 1" in l]
    assert causes and all(l.startswith("ferroflow: job 'restarts' failed: map 'FailsOnce' (") for l in causes), err
    assert "ferroflow: restarting (attempt 1 of 3) in 10 ms" in err.splitlines(), err
    assert "restarting (attempt 2" not in err


def test_no_restart_fails_at_the_first_failure(tmp_path, parallelism, capfd):
    env = make_env(parallelism)
    out = restart_job(env, tmp_path, RestartStrategies.no_restart())
    with pytest.raises(JobExecutionException, match="ValueError: failure 1"):
        env.execute()
    assert all(a == 0 for a, _ in out)
    assert "restarting" not in capfd.readouterr().err


def test_attempts_run_out_and_the_job_fails_with_the_last_cause(tmp_path, parallelism, capfd):
    env = make_env(parallelism)
    restart_job(env, tmp_path, RestartStrategies.fixed_delay_restart(1, 0), times=2)
    with pytest.raises(JobExecutionException, match="ValueError: failure 2"):
        env.execute()
    err = capfd.readouterr().err
    assert "restarting (attempt 1 of 1) in 0 ms" in err and "failure 1" in err and "attempt 2" not in err


@pytest.mark.parametrize("rate, succeeds", [(2, True), (1, False)])
def test_failure_rate_counts_failures_within_the_interval(tmp_path, parallelism, capfd, rate, succeeds):
    env = make_env(parallelism)
    out = restart_job(env, tmp_path, RestartStrategies.failure_rate_restart(rate, 60_000, 0), times=2)
    if succeeds:
        env.execute()
        assert last_attempt(out) == list(range(8)) and max(a for a, _ in out) == 2
    else:
        with pytest.raises(JobExecutionException, match="ValueError: failure 2"):
            env.execute()
    err = capfd.readouterr().err
    assert "restarting (attempt 1, failure 1 of at most %d within 60000 ms) in 0 ms" % rate in err, err


def test_without_checkpointing_the_default_is_no_restart(tmp_path, capfd):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection(range(8)).map(FailsOnce(str(tmp_path))).add_sink(lambda x: None)
    with pytest.raises(JobExecutionException):
        env.execute()
    assert "restarting" not in capfd.readouterr().err


def test_with_checkpointing_the_default_restarts(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(1000)
    out = collect(env.from_collection(range(8)).map(FailsOnce(str(tmp_path))))
    env.execute()
    assert last_attempt(out) == list(range(8))
    restart = [l for l in capfd.readouterr().err.splitlines() if "restarting" in l]
    assert len(restart) == 1 and restart[0].startswith("ferroflow: restarting (attempt 1 of unlimited) in ")
    assert 900 <= int(restart[0].split(" in ")[1].split()[0]) <= 1100  # 1 s +/- 10% jitter


# -- the -p supervisor and the CLI ----------------------------------------------------------------------

RESTART_SCRIPT = """
import os, sys
from ferroflow import StreamExecutionEnvironment
from ferroflow.functions import MapFunction, ParallelSourceFunction, SourceFunction
from ferroflow.restart_strategy import RestartStrategies

marks, how = sys.argv[1], sys.argv[2]

class Once(MapFunction):
    def open(self, ctx):
        self.attempt = ctx.get_attempt_number()
    def map(self, x):
        if x == 5 and self.attempt == 0:
            if how == "kill":
                os.kill(os.getpid(), 9)
            raise ValueError("first attempt")
        return (self.attempt, x)

env = StreamExecutionEnvironment.get_execution_environment()
env.set_restart_strategy(RestartStrategies.no_restart() if how == "none" else RestartStrategies.fixed_delay_restart(2, 20))
env.from_collection(range(10)).map(Once()).print().set_parallelism(1)
env.execute("supervised")
# Every process's line (sys.stdout shows a -p run's lines outside a job once, from process 0).
os.write(1, f"restore: {os.environ.get('FERROFLOW_RESTORE_FROM')} attempt: {os.environ.get('FERROFLOW_ATTEMPT')}\\n".encode())
"""


def ferroflow_run(*args: Any, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    try:
        return subprocess.run([FERROFLOW, "run", *map(str, args)], cwd=str(cwd), env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"ferroflow run {args} did not finish within {timeout} s: {e}")


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_the_supervisor_restarts_every_process(tmp_path, how):
    script = tmp_path / "job.py"
    script.write_text(RESTART_SCRIPT)
    p = ferroflow_run("-p", 2, script, "-", tmp_path, how, cwd=tmp_path)
    assert p.returncode == 0, p
    records = [eval(line) for line in p.stdout.splitlines() if line.startswith("(")]
    assert sorted(v for a, v in records if a == 1) == list(range(10)) and {a for a, _ in records} <= {0, 1}
    # Whichever process got record 5 failed.
    cause = ("process [01] of 2: job 'supervised' failed: map 'Once' \\(job.py:21\\) raised an exception on "
             "record 5: ValueError: first attempt" if how == "raise" else
             "process [01] of 2 was killed by SIGKILL; the other processes were stopped")
    lines = p.stderr.splitlines()
    assert len(lines) == 2 and re.fullmatch(f"ferroflow: {cause}", lines[0]), p
    assert lines[1] == "ferroflow: restarting (attempt 1 of 2) in 20 ms", p
    assert p.stdout.count("restore: None attempt: 1") == 2


def test_the_supervisor_does_not_restart_under_no_restart(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(RESTART_SCRIPT)
    p = ferroflow_run("-p", 2, script, "-", tmp_path, "none", cwd=tmp_path)
    assert p.returncode == 1
    assert re.match("ferroflow: process [01] of 2: job 'supervised' failed: map 'Once'", p.stderr.splitlines()[0]), p
    assert "restarting" not in p.stderr


def write_checkpoint(root: Path, n: int, parts: int = 1) -> Path:
    """A complete checkpoint ``chk-<n>`` as storage.rs's manifest (version 1) describes
    it; the parts' bytes are not read by the checks the CLI makes."""
    d = root / f"chk-{n}"
    d.mkdir(parents=True)
    text = f"ferroflow-manifest 1\njob job\nkind checkpoint\nsegment {n}\nprocesses 1\nthreads {parts}\n"
    text += "wall_time_ms 1\nplan 0 source\n"
    for w in range(parts):
        data = f"part {w} of {n}".encode()
        (d / f"w{w}.part").write_bytes(data)
        text += f"part w{w}.part {len(data)} {zlib.crc32(data):08x}\n"
    text += f"crc32 {zlib.crc32(text.encode()):08x}\n"
    (d / "_MANIFEST").write_text(text)
    return d


RESTORE_SCRIPT = """
import os
from ferroflow import StreamExecutionEnvironment
env = StreamExecutionEnvironment.get_execution_environment()
env.enable_checkpointing(1000)
env.from_elements(1).print()
env.execute()
print("restore:", os.environ.get("FERROFLOW_RESTORE_FROM"))
"""


#: Prints where the job would start from and stops: the resolution is the CLI's, the
#: restore itself the engine's (tested there, with checkpoints it wrote).
RESOLVE_SCRIPT = """
import os, sys
# Every process's line (sys.stdout shows a -p run's lines outside a job once, from process 0).
os.write(1, f"restore: {os.environ.get('FERROFLOW_RESTORE_FROM')}\\n".encode())
sys.exit(0)
"""


@pytest.mark.parametrize("processes", [1, 2])
def test_from_checkpoint_takes_the_latest_whole_one(tmp_path, processes):
    script = tmp_path / "job.py"
    script.write_text(RESOLVE_SCRIPT)
    store = tmp_path / "store"
    write_checkpoint(store, 1)
    write_checkpoint(store, 2)
    damaged = write_checkpoint(store, 3)
    (damaged / "w0.part").write_bytes(b"torn")
    (store / "chk-4").mkdir()  # never completed: skipped silently
    p = ferroflow_run("-p", processes, script, "--from-checkpoint", f"file://{store}", cwd=tmp_path)
    assert p.returncode == 0, p
    assert p.stdout.count(f"restore: {store}/chk-2") == processes, p
    warnings = [l for l in p.stderr.splitlines() if "skipping checkpoint" in l]
    assert warnings == [f"ferroflow: warning: skipping checkpoint {store}/chk-3 (falling back to an older one): "
                        f"{store}/chk-3/w0.part is 4 bytes, the manifest says 11"], p.stderr
    # -s takes that directory as it is.
    p = ferroflow_run(script, "-s", store / "chk-1", cwd=tmp_path)
    assert p.returncode == 0 and f"restore: {store}/chk-1" in p.stdout, p


@pytest.mark.parametrize("args, message", [
    (["-s", "{t}/empty"],
     "ferroflow run: -s {t}/empty is not a complete checkpoint or savepoint: it has no _MANIFEST (never completed)"),
    (["--from-savepoint", "{t}/store/chk-1"], "ferroflow run: -s {t}/store/chk-1 is not a complete checkpoint or "
     "savepoint: {t}/store/chk-1/w0.part checksum mismatch"),
    (["-s", "{t}/none"], "ferroflow run: -s {t}/none: no such directory"),
    (["-s", "s3://b/k"], "ferroflow run: -s: checkpoint storage 's3://b/k': only local paths and file:// URIs "
     "are supported"),
    (["-s", "{t}/empty", "--from-checkpoint", "{t}/empty"],
     "ferroflow run: give either --from-checkpoint or -s/--from-savepoint, not both"),
    (["--from-checkpoint"], "ferroflow run: --from-checkpoint needs a value"),
])
def test_restore_flag_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    chk = write_checkpoint(tmp_path / "store", 1)
    (chk / "w0.part").write_bytes(b"PART 0 OF 1")  # same size, other bytes
    script = tmp_path / "job.py"
    script.write_text(RESTORE_SCRIPT)
    p = ferroflow_run(script, *[a.format(t=tmp_path) for a in args], cwd=tmp_path)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(t=tmp_path)), p.stderr


@pytest.mark.parametrize("where, why", [("none", "does not exist"),
                                        ("empty", "has no complete checkpoint (chk-<n> with a _MANIFEST)")])
def test_from_checkpoint_without_a_checkpoint_yet_starts_from_the_beginning(tmp_path, where, why):
    """A restart loop passes --from-checkpoint every time, also after a kill that came
    before the first checkpoint completed."""
    script = tmp_path / "job.py"
    script.write_text(RESOLVE_SCRIPT)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "chk-1").mkdir()  # begun, never completed
    p = ferroflow_run(script, "--from-checkpoint", tmp_path / where, cwd=tmp_path)
    assert p.returncode == 0, p
    assert "restore: None" in p.stdout, p
    assert p.stderr.splitlines() == [f"ferroflow: warning: --from-checkpoint {tmp_path}/{where} {why} yet: "
                                     "the job starts from the beginning"], p.stderr


def test_a_restore_into_a_job_without_checkpointing_is_refused(tmp_path):
    write_checkpoint(tmp_path / "store", 1)
    script = tmp_path / "job.py"
    script.write_text(RESTORE_SCRIPT.replace("env.enable_checkpointing(1000)\n", ""))
    p = ferroflow_run(script, "--from-checkpoint", tmp_path / "store", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [f"ferroflow: {script}: cannot start from the checkpoint {tmp_path}/store/chk-1: "
                                     "the job does not enable checkpointing (env.enable_checkpointing(interval))"]


class StoppableSource(SourceFunction):
    """A source as Flink's docs write them: its position in a field, and ``cancel()``
    stops its loop for good."""

    def __init__(self) -> None:
        self.running = True
        self.position = 0

    def run(self, ctx) -> None:
        while self.running and self.position < 8:
            ctx.collect(self.position)
            self.position += 1

    def cancel(self) -> None:
        self.running = False


def test_every_attempt_starts_from_the_functions_as_given(tmp_path, parallelism):
    """A restart gets fresh copies of the user's function objects (Flink deserializes them
    again): the source the failed attempt cancelled runs again in full."""
    env = make_env(parallelism)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    source = StoppableSource()
    out = collect(env.add_source(source).map(FailsOnce(str(tmp_path))))
    env.execute()
    assert last_attempt(out) == list(range(8)) and max(a for a, _ in out) == 1


@pytest.mark.parametrize("at_start, restarted", [(True, False), (False, True)])
def test_a_failure_before_the_job_ran_is_not_restarted(monkeypatch, capfd, at_start, restarted):
    """The binding says when the job failed before it ran (its plan, the checkpoint it
    restores from): the same start would fail alike, so no strategy restarts it."""
    from ferroflow import _engine

    calls: List[int] = []

    def run_job(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise _engine.JobFailed("checkpoint x was taken from another job", "system", None, None, "", None,
                                    at_start)
        return {"counts": [0, 0], "dropped": 0, "late_dropped": 0, "warnings": [], "cancelled": False}

    monkeypatch.setattr(_engine, "run_job", run_job)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    env.from_elements(1).add_sink(lambda x: None)
    if restarted:
        env.execute()
        assert len(calls) == 2 and "restarting (attempt 1 of 3)" in capfd.readouterr().err
    else:
        with pytest.raises(JobExecutionException, match="taken from another job") as caught:
            env.execute()
        assert caught.value.at_start and len(calls) == 1 and "restarting" not in capfd.readouterr().err


# -- workers whose part ended, and the final checkpoint ------------------------------------------------

class OnlyWorkerZero(ParallelSourceFunction):
    """Worker 0 emits 0..n-1 slowly; every other worker's part ends at once."""

    def __init__(self, n: int) -> None:
        self.n = n

    def run(self, ctx):
        if ctx.worker_index == 0:
            for i in range(self.n):
                ctx.collect(i)
                time.sleep(0.01)


@pytest.mark.parametrize("parallelism", [2, 3])
def test_checkpoints_complete_while_a_worker_whose_part_ended_waits(tmp_path, parallelism):
    """Workers 1.. have nothing to do: their operators all end before the first
    checkpoint. They still hand in their part of every checkpoint, so checkpoints keep
    completing (a checkpoint they never answered would hold worker 0's source until its
    timeout, here 60 s), and the job ends with a final checkpoint."""
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.enable_checkpointing(50).get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ck"))
    env.get_checkpoint_config().set_checkpoint_timeout(60_000)
    out = collect(env.add_source(OnlyWorkerZero(150)).map(lambda x: x + 1))
    started = time.monotonic()
    env.execute("one busy worker")
    took = time.monotonic() - started
    assert sorted(out) == list(range(1, 151))
    assert took < 20, f"the job took {took:.1f} s: checkpoints waited for the idle workers"
    ids = sorted(int(d.name.split("-")[1]) for d in (tmp_path / "ck").glob("chk-*") if (d / "_MANIFEST").exists())
    assert ids and ids[-1] >= 5, f"only checkpoints {ids} completed in a 1.5 s job with a 50 ms interval"
