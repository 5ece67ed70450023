"""The Kafka connector (issue 15) in whole jobs run as ``ferroflow run`` / ``python``
subprocesses, against the session's broker (tests/services/kafka.py):

- a Kafka -> FileSink job (tests/cli_scripts/kafka_job.py) killed with SIGKILL while it
  runs and restored from its checkpoint, also at another number of processes: the
  committed part files hold every record of the topic exactly once;
- PyFlink's own Kafka examples (from the ``pyflink_scripts`` fixture, never copied
  here), each on a temporary copy pointed at the test broker: what their read part
  prints is what their write part wrote; Ctrl-C stops the unbounded read promptly.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import List, Tuple

import pytest

from services.kafka import produce
from test_connector_kafka import messages
from test_docs_event_time import PYTHON, _clean_env
from test_exactly_once import FERROFLOW, finish, start

HERE = Path(__file__).resolve().parent
JOB = HERE / "cli_scripts" / "kafka_job.py"

# -- 7. SIGKILL and restore -------------------------------------------------------------------------

PARTITIONS, PER_PARTITION = 3, 1000
#: ms the job sleeps every 100 records: ~4 s of work in all, so kills land while it runs.
SLOW = "130"


def fill(kafka) -> Tuple[str, Counter]:
    topic = kafka.topic(PARTITIONS)
    values: List[str] = []
    for p in range(PARTITIONS):
        vs = [f"p{p}-{i}" for i in range(PER_PARTITION)]
        produce(kafka.bootstrap, topic, [v.encode() for v in vs], partition=p)
        values += vs
    return topic, Counter(values)


def command(kafka, topic: str, storage: Path, out: Path, processes: int = 1, slow: str = SLOW) -> list:
    cmd = [FERROFLOW, "run", str(JOB)]
    if processes > 1:
        cmd += ["-p", str(processes)]
    return cmd + ["--from-checkpoint", str(storage), "-", kafka.bootstrap, topic, f"g-{topic}", str(storage),
                  str(out), slow]


def committed_lines(out: Path) -> Counter:
    """The lines of the visible (committed) part files under ``out``."""
    lines: Counter = Counter()
    for f in sorted(out.rglob("*")) if out.exists() else ():
        if f.is_file() and not any(part.startswith((".", "_")) for part in f.relative_to(out).parts):
            lines.update(f.read_text().splitlines())
    return lines


def check(out: Path, expected: Counter) -> None:
    got = committed_lines(out)
    lost, twice = expected - got, got - expected
    assert not lost and not twice, f"{sum(lost.values())} records lost (e.g. {list(lost)[:3]}), " \
                                   f"{sum(twice.values())} extra (e.g. {list(twice)[:3]})"


def checkpoints(storage: Path) -> set:
    return {d.name for d in storage.glob("chk-*") if (d / "_MANIFEST").exists()}


def kill_after_a_checkpoint(cmd: list, storage: Path, cwd: Path, rng: random.Random) -> None:
    """Runs ``cmd`` and SIGKILLs it at a random moment (up to 0.3 s) after it completed
    a checkpoint of its own."""
    before = checkpoints(storage)
    p = start(cmd, cwd)
    deadline = time.monotonic() + 60
    while not checkpoints(storage) - before:
        if p.poll() is not None:
            err = p.stderr.read() if p.stderr else ""
            pytest.fail(f"the job ended ({p.returncode}) before completing a checkpoint; raise SLOW\n{err[-2000:]}")
        if time.monotonic() > deadline:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            pytest.fail("the job completed no checkpoint within 60 s")
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.3))
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)


def test_a_killed_job_resumes_from_its_checkpointed_offsets_nothing_lost_or_twice(kafka, tmp_path):
    topic, expected = fill(kafka)
    storage, out = tmp_path / "ck", tmp_path / "out"
    rng = random.Random(15)
    for _ in range(3):
        kill_after_a_checkpoint(command(kafka, topic, storage, out), storage, tmp_path, rng)
    assert sum(committed_lines(out).values()) < sum(expected.values()), "the killed runs left work to do"
    finish(start(command(kafka, topic, storage, out, slow="0"), tmp_path), "the restored run")
    check(out, expected)


def test_a_checkpoint_of_two_processes_restores_at_one_then_three(kafka, tmp_path):
    topic, expected = fill(kafka)
    storage, out = tmp_path / "ck", tmp_path / "out"
    rng = random.Random(16)
    kill_after_a_checkpoint(command(kafka, topic, storage, out, processes=2), storage, tmp_path, rng)
    kill_after_a_checkpoint(command(kafka, topic, storage, out, processes=1), storage, tmp_path, rng)
    finish(start(command(kafka, topic, storage, out, processes=3, slow="0"), tmp_path), "the restore at 3")
    check(out, expected)


@pytest.mark.parametrize("first, again", [(1, 1), (2, 3)], ids=["1-then-1", "2-then-3"])
def test_a_finished_job_run_again_from_its_latest_checkpoint_adds_nothing(kafka, tmp_path, first, again):
    """A restart loop (``ferroflow run --from-checkpoint``, as test_exactly_once.py's)
    may run a job once more after it finished: the final checkpoint, taken once every
    source ended, says every partition is done, so the output does not change."""
    topic, expected = fill(kafka)
    storage, out = tmp_path / "ck", tmp_path / "out"
    finish(start(command(kafka, topic, storage, out, processes=first, slow="0"), tmp_path), "the first run")
    assert checkpoints(storage), "the first run took no final checkpoint"
    check(out, expected)
    finish(start(command(kafka, topic, storage, out, processes=again, slow="0"), tmp_path), "the run again")
    check(out, expected)


# -- 9. PyFlink's Kafka examples ---------------------------------------------------------------------

EXAMPLES = {
    "connectors/kafka_json_format.py": "test_json_topic",
    "connectors/kafka_csv_format.py": "test_csv_topic",
    "connectors/kafka_bytearray_format.py": "test_bytearray_topic",
}
#: What the JSON and CSV examples write: rows of (INT, STRING).
ROWS = [(1, 'hi'), (2, 'hello'), (3, 'hi'), (4, 'hello'), (5, 'hi'), (6, 'hello'), (6, 'hello')]
#: What the bytearray example writes (and prints back decoded).
BYTEARRAY = [json.dumps({"id": 1, "country": "USA"}), json.dumps({"id": 2, "country": "Canada"}),
             json.dumps({"id": 3, "country": "Germany"})]
WAYS = ["ferroflow run", "python"]


def pointed_at(kafka, scripts: str, name: str, tmp_path: Path, topic: str) -> Path:
    """A temporary copy of the example whose broker is the test broker and whose topic
    (``topic`` in the script) is a new one of this session."""
    text = Path(scripts, name).read_text(encoding="utf-8")
    assert "localhost:9092" in text and topic in text, f"{name} changed: no localhost:9092 or {topic}"
    fresh = kafka.topic(1, prefix=topic.replace("_", "-"))
    copy = tmp_path / Path(name).name
    copy.write_text(text.replace("localhost:9092", kafka.bootstrap).replace(topic, fresh), encoding="utf-8")
    return copy


def launch(way: str, script: Path) -> subprocess.Popen:
    env = _clean_env()
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [FERROFLOW, "run", str(script)] if way == "ferroflow run" else [PYTHON, str(script)]
    return subprocess.Popen(cmd, cwd=script.parent, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def read_until(p: subprocess.Popen, enough, timeout: float = 60.0) -> List[str]:
    """stdout lines of ``p`` until ``enough(lines)`` holds; fails after ``timeout`` or
    if ``p`` exits first."""
    assert p.stdout is not None
    lines: List[str] = []
    buf = b""
    deadline = time.monotonic() + timeout
    while not enough(lines):
        left = deadline - time.monotonic()
        if left <= 0:
            stop(p)
            pytest.fail(f"the example printed only {lines[-20:]} within {timeout} s")
        ready, _, _ = select.select([p.stdout], [], [], min(left, 0.2))
        if not ready:
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            err = p.stderr.read().decode(errors="replace") if p.stderr else ""
            p.wait(10)
            pytest.fail(f"the example exited ({p.returncode}) before printing what it wrote; printed "
                        f"{lines[-20:]}\n{err[-3000:]}")
        buf += chunk
        *done, buf = buf.split(b"\n")
        lines += [line.decode(errors="replace") for line in done]
    return lines


def stop(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(10)


def interrupt_and_check_prompt_exit(p: subprocess.Popen) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it): the example exits
    within 10 s and leaves no process behind."""
    began = time.monotonic()
    os.killpg(p.pid, signal.SIGINT)
    try:
        p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        stop(p)
        pytest.fail("the example did not exit within 10 s of Ctrl-C")
    took = time.monotonic() - began
    deadline = time.monotonic() + 5
    while True:
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            stop(p)
            pytest.fail("processes of the example were left running after it exited")
        time.sleep(0.05)
    assert took < 10 and p.returncode != 0, (took, p.returncode)


def row_of(line: str) -> Tuple[int, str]:
    """A printed (INT, STRING) row: PyFlink's ``+I[1,hi]`` (Java's ``+I[1, hi]``) or
    ``Row(f0=1, f1='hi')``."""
    m = re.fullmatch(r"(?:\d+> )?\+I\[(\d+), ?(.*)\]", line)
    if m:
        return int(m.group(1)), m.group(2)
    m = re.fullmatch(r"(?:\d+> )?Row\(f0=(\d+), f1=(.*)\)", line)
    assert m, f"not a printed row: {line!r}"
    return int(m.group(1)), ast.literal_eval(m.group(2))


def printed_rows(lines: List[str]) -> List[str]:
    return [line for line in lines if re.match(r"^(\d+> )?(\+I\[|Row\()", line)]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_pyflink_kafka_example_reads_back_what_it_wrote(kafka, pyflink_scripts, tmp_path, name, way):
    script = pointed_at(kafka, pyflink_scripts, name, tmp_path, EXAMPLES[name])
    p = launch(way, script)
    if "bytearray" in name:
        want = Counter(BYTEARRAY)
        lines = read_until(p, lambda ls: Counter(l for l in ls if l.startswith("{")) == want
                           or sum(l.startswith("{") for l in ls) > len(want))
        interrupt_and_check_prompt_exit(p)
        assert Counter(l for l in lines if l.startswith("{")) == want, lines
    else:
        want = Counter(ROWS)
        lines = read_until(p, lambda ls: len(printed_rows(ls)) >= len(ROWS))
        interrupt_and_check_prompt_exit(p)
        assert Counter(row_of(l) for l in printed_rows(lines)) == want, lines
    assert lines[0] == "start writing data to kafka" and "start reading data from kafka" in lines, lines


def finished(p: subprocess.Popen) -> Tuple[bytes, bytes]:
    """The example's stdout and stderr once it ends (within 120 s, else it is stopped
    and the test fails)."""
    try:
        return p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stop(p)
        pytest.fail("the example did not finish within 120 s")



@pytest.mark.parametrize("way", WAYS)
def test_pyflink_row_field_extractor_example_writes_keys_and_values(kafka, pyflink_scripts, tmp_path, way):
    name = "connectors/kafka_row_field_extractor_example.py"
    script = pointed_at(kafka, pyflink_scripts, name, tmp_path, "row-extractor-example")
    topic = re.search(r'set_topic\("([^"]+)"\)', script.read_text()).group(1)
    p = launch(way, script)
    out, err = finished(p)
    assert p.returncode == 0, err.decode(errors="replace")[-3000:]
    got = messages(kafka.bootstrap, topic, 1, 4)
    want = [(b"user-001", {"type": "purchase", "item": "laptop", "price": 999.99}),
            (b"user-002", {"type": "view", "item": "phone", "timestamp": "2024-01-07T10:30:00"}),
            (b"user-001", {"type": "add_to_cart", "item": "mouse", "quantity": 2}),
            (b"user-003", {"type": "purchase", "item": "keyboard", "price": 79.99})]
    assert [(k, json.loads(v)) for k, v, _, _, _ in got] == want
    assert out.decode().count("Sending: User=") == 4


@pytest.mark.parametrize("way", WAYS)
def test_pyflink_avro_example_stops_at_its_first_avro_use_in_one_line(kafka, pyflink_scripts, tmp_path, way):
    script = pointed_at(kafka, pyflink_scripts, "connectors/kafka_avro_format.py", tmp_path, "test_avro_topic")
    p = launch(way, script)
    out, err = finished(p)
    text = err.decode(errors="replace")
    # Besides the add_jars() notice (the script adds the Kafka jar first), one line.
    lines = [line for line in text.splitlines() if line.strip() and "add_jars() ignored" not in line]
    assert p.returncode == 1, text
    # `ferroflow run` says it in one line; plain `python` prints its traceback above it.
    assert len(lines) == 1 if way == "ferroflow run" else "AvroRowSerializationSchema(" in text, text
    assert "pyflink.datastream.formats.avro.AvroRowSerializationSchema is not supported by ferroflow" in lines[-1]
    assert out.decode().splitlines() == ["start writing data to kafka"]


def test_the_examples_are_the_wheels_five_kafka_scripts():
    import pyflink_examples

    kafka_scripts = {n for n in pyflink_examples.DATASTREAM if "kafka" in n}
    assert kafka_scripts == set(EXAMPLES) | {"connectors/kafka_row_field_extractor_example.py",
                                             "connectors/kafka_avro_format.py"}
    assert shutil.which(FERROFLOW) or os.path.exists(FERROFLOW)
