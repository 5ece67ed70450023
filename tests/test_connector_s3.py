"""``s3://`` paths for the file sources and sinks (issue 15), against a real
S3-compatible server (moto's, tests/services/s3.py), with boto3 putting and getting the
objects on the other side: every format read from S3 at 1 worker, 2 threads and 2
processes gives what the same files read locally give; a big object is cut into byte
ranges among readers; a monitored prefix picks up a new object; the sinks' objects are
what boto3 reads back; a checkpointed job writing to S3, killed with SIGKILL and
restored, commits each record once; a missing bucket or an unreachable endpoint fails
in seconds with one line naming the URL and the fix.
"""

from __future__ import annotations

import io
import json
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import bag, run
from ferroflow import Duration, Encoder, JobExecutionException, StreamExecutionEnvironment, WatermarkStrategy
from ferroflow.connectors.file_formats import (CsvReaderFormat, CsvSchema, JsonLinesEncoder, JsonLinesFormat,
                                               ParquetBulkWriters, ParquetColumnarRowInputFormat)
from ferroflow.connectors.file_system import FileSink, FileSource, RollingPolicy, StreamFormat
from ferroflow.functions import MapFunction
from ferroflow.typeinfo import Types
from services.kafka import _free_port
from services.s3 import CREDENTIALS
from test_exactly_once import FERROFLOW, finish, kill_at_random, start
from test_file_connectors import kill_test_inputs, kill_test_model

BUCKET = "ferroflow-tests"


@pytest.fixture
def s3env(s3, monkeypatch):
    """The server's endpoint and credentials in the environment (what the engine, in
    this process and in the ones a job starts, configures S3 from), and a fresh prefix."""
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    s3.bucket(BUCKET)
    return s3


def client(s3):
    import boto3

    return boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        region_name=CREDENTIALS["AWS_DEFAULT_REGION"])


def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def upload(s3, local: Path, key_prefix: str) -> None:
    """Every file under ``local`` as an object under ``key_prefix``, by relative path."""
    c = client(s3)
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
        c.put_object(Bucket=BUCKET, Key=f"{key_prefix}/{f.relative_to(local).as_posix()}", Body=f.read_bytes())


def objects(s3, key_prefix: str) -> dict:
    """The visible objects under ``key_prefix``: key -> bytes."""
    c = client(s3)
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=key_prefix + "/"):
        for o in page.get("Contents", []):
            rel = o["Key"][len(key_prefix) + 1:]
            if not any(seg.startswith((".", "_")) for seg in rel.split("/")):
                out[o["Key"]] = c.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
    return out


def canon(x) -> str:
    return json.dumps(x, sort_keys=True)


def source(env, fmt, path: str, bulk: bool = False):
    builder = (FileSource.for_bulk_file_format if bulk else FileSource.for_record_stream_format)(fmt, path)
    return env.from_source(builder.build(), WatermarkStrategy.no_watermarks(), "files")


def make_inputs(root: Path, fmt: str) -> None:
    (root / "sub").mkdir(parents=True)
    if fmt == "text":
        (root / "a.txt").write_text("".join(f"line {i}\n" for i in range(300)))
        (root / "sub" / "b.txt").write_text("".join(f"sub {i}\r\n" for i in range(50)))
        # Over 1 MiB: cut into byte ranges, one per reader.
        (root / "big.txt").write_text("".join(f"big {i} {'x' * 30}\n" for i in range(40_000)))
    elif fmt == "jsonl":
        (root / "a.jsonl").write_text("".join(json.dumps({"i": i, "t": [i, "x"]}) + "\n" for i in range(300)))
        (root / "big.jsonl").write_text("".join(json.dumps({"b": i, "pad": "y" * 30}) + "\n" for i in range(30_000)))
    elif fmt == "csv":
        for k in range(3):
            (root / f"p{k}.csv").write_text("name,n\n" + "".join(f'"v,{i}",{i}\n' for i in range(k, 500, 3)))
    else:
        for k in range(2):
            pq.write_table(pa.table({"id": pa.array(range(k * 1000, (k + 1) * 1000), pa.int64()),
                                     "s": pa.array([f"s{i}" for i in range(1000)], pa.string())}),
                           root / f"{k}.parquet", row_group_size=150)
    # Hidden names are not inputs, locally or in S3.
    (root / "_SUCCESS").write_text("not an input\n")


def read_format(env, fmt: str, path: str) -> list:
    if fmt == "text":
        return run(env, source(env, StreamFormat.text_line_format(), path))
    if fmt == "jsonl":
        return [canon(r) for r in run(env, source(env, JsonLinesFormat(), path))]
    if fmt == "csv":
        schema = CsvSchema.builder().add_string_column("name").add_number_column("n").set_use_header().build()
        return [canon(r.as_dict()) for r in run(env, source(env, CsvReaderFormat.for_schema(schema), path))]
    return [canon(r.as_dict()) for r in run(env, source(env, ParquetColumnarRowInputFormat(), path, bulk=True))]


@pytest.mark.parametrize("fmt", ["text", "jsonl", "csv", "parquet"])
def test_each_format_read_from_s3_gives_what_the_same_files_give_locally(s3env, env, tmp_path, fmt, parallelism):
    local = tmp_path / "in"
    make_inputs(local, fmt)
    key = prefix()
    upload(s3env, local, key)
    from conftest import make_env

    want = read_format(make_env(1), fmt, str(local))
    got = read_format(env, fmt, f"s3://{BUCKET}/{key}/")
    assert len(want) >= 500
    assert bag(got) == bag(want)
    # One object by its key, and a folder named without its trailing '/'.
    one = "a.txt" if fmt == "text" else "a.jsonl" if fmt == "jsonl" else "p0.csv" if fmt == "csv" else "0.parquet"
    want_one = read_format(make_env(1), fmt, str(local / one))
    assert bag(read_format(make_env(parallelism), fmt, f"s3://{BUCKET}/{key}/{one}")) == bag(want_one)
    assert bag(read_format(make_env(1), fmt, f"s3://{BUCKET}/{key}")) == bag(want)


class WhoReads(MapFunction):
    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()

    def map(self, value):
        return (self.index, value)


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_a_big_object_is_cut_into_byte_ranges_every_line_read_once(s3env, tmp_path, fmt):
    key = f"{prefix()}/big"
    lines = [json.dumps({"n": i, "pad": "z" * (i % 97)}) if fmt == "jsonl" else f"{i} {'z' * (i % 97)}"
             for i in range(60_000)]
    body = ("\n".join(lines) + "\n").encode()
    assert len(body) > 3 << 20
    client(s3env).put_object(Bucket=BUCKET, Key=key, Body=body)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    fmt_ = JsonLinesFormat() if fmt == "jsonl" else StreamFormat.text_line_format()
    got = run(env, source(env, fmt_, f"s3://{BUCKET}/{key}").map(
        lambda r: json.dumps(r) if isinstance(r, dict) else r).map(WhoReads()))
    assert Counter(line for _, line in got) == Counter(
        json.dumps(json.loads(line)) if fmt == "jsonl" else line for line in lines)
    readers = Counter(i for i, _ in got)
    assert set(readers) == {0, 1} and min(readers.values()) > 10_000, readers


def test_monitor_continuously_picks_up_a_new_object(s3env):
    key = prefix()
    c = client(s3env)
    c.put_object(Bucket=BUCKET, Key=f"{key}/first.jsonl", Body=b'{"n": 1}\n{"n": 2}\n')

    def later():
        time.sleep(1.0)
        c.put_object(Bucket=BUCKET, Key=f"{key}/second.jsonl", Body=b'{"n": 3}\n{"n": 4}\n{"n": 5}\n')

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    src = FileSource.for_record_stream_format(JsonLinesFormat(), f"s3://{BUCKET}/{key}/") \
        .monitor_continuously(Duration.of_millis(100)).build()
    stream = env.from_source(src, WatermarkStrategy.no_watermarks(), "watch").map(lambda r: r["n"])
    writer = threading.Thread(target=later)
    writer.start()
    got = stream.execute_and_collect(limit=5)
    writer.join()
    assert sorted(got) == [1, 2, 3, 4, 5]


def test_a_monitored_prefix_may_start_empty(s3env):
    key = prefix()
    threading.Timer(0.8, lambda: client(s3env).put_object(
        Bucket=BUCKET, Key=f"{key}/x.txt", Body=b"a\nb\n")).start()
    env = StreamExecutionEnvironment.get_execution_environment()
    src = FileSource.for_record_stream_format(StreamFormat.text_line_format(), f"s3://{BUCKET}/{key}") \
        .monitor_continuously(Duration.of_millis(100)).build()
    got = env.from_source(src, WatermarkStrategy.no_watermarks(), "watch").execute_and_collect(limit=2)
    assert sorted(got) == ["a", "b"]


# -- sinks ------------------------------------------------------------------------------------


def test_a_json_lines_file_sink_writes_objects_that_boto3_reads(s3env, env):
    key = prefix()
    records = [{"k": i, "v": [i, "x"]} for i in range(500)]
    env.from_collection(records).sink_to(
        FileSink.for_row_format(f"s3://{BUCKET}/{key}", JsonLinesEncoder())
        .with_rolling_policy(RollingPolicy.default_rolling_policy(part_size=2048)).build())
    env.execute()
    got = objects(s3env, key)
    assert len(got) > 2  # rolled by size
    lines = [json.loads(line) for body in got.values() for line in body.decode().splitlines()]
    assert Counter(map(canon, lines)) == Counter(map(canon, records))


def test_a_parquet_file_sink_writes_objects_that_pyarrow_reads(s3env, env):
    key = prefix()
    row_type = Types.ROW_NAMED(["id", "name"], [Types.LONG(), Types.STRING()])
    from ferroflow.row import Row

    records = [Row(id=i, name=f"n{i}") for i in range(1000)]
    env.from_collection(records).sink_to(
        FileSink.for_bulk_format(f"s3://{BUCKET}/{key}/out", ParquetBulkWriters.for_row_type(row_type)).build())
    env.execute()
    got = objects(s3env, f"{key}/out")
    assert got
    rows = [r for body in got.values() for r in pq.read_table(io.BytesIO(body)).to_pylist()]
    assert Counter(map(canon, rows)) == Counter(canon(r.as_dict()) for r in records)
    # And ferroflow reads them back from S3.
    again = StreamExecutionEnvironment.get_execution_environment()
    back = run(again, again.read_parquet(f"s3://{BUCKET}/{key}/out"))
    assert Counter(canon(r.as_dict()) for r in back) == Counter(canon(r.as_dict()) for r in records)


@pytest.mark.parametrize("workers", [1, 2])
def test_write_as_text_to_s3_appears_whole_after_the_job(s3env, workers):
    key = prefix()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(workers)
    env.from_collection(list(range(1000))).map(str).write_as_text(f"s3://{BUCKET}/{key}/out")
    env.execute()
    got = objects(s3env, key)
    want_keys = {f"{key}/out"} if workers == 1 else {f"{key}/out/1", f"{key}/out/2"}
    assert set(got) == want_keys
    assert sorted(int(x) for body in got.values() for x in body.decode().split()) == list(range(1000))
    # An existing object is not replaced without overwrite.
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(workers)
    env.from_collection(["x"]).write_as_text(f"s3://{BUCKET}/{key}/out")
    with pytest.raises(JobExecutionException, match="already exists: pass overwrite=True"):
        env.execute()


def test_killed_and_restored_a_checkpointed_job_to_s3_commits_each_line_once(s3env, tmp_path):
    """The SIGKILL test of tests/test_file_connectors.py with its input and output in
    S3: killed a few times, restored (the last time at 2 processes), the committed
    objects hold each line once and no staged part is left behind."""
    local = tmp_path / "local"
    local.mkdir()
    inputs = kill_test_inputs(local)
    key = prefix()
    upload(s3env, local, f"{key}/in")
    inputs = [f"s3://{BUCKET}/{key}/in/{Path(p).relative_to(local).as_posix()}" for p in inputs]
    storage, out = tmp_path / "ck", f"s3://{BUCKET}/{key}/out"

    def command(slow: int, procs: int) -> list:
        cmd = [FERROFLOW, "run", str(Path(__file__).parent / "cli_scripts" / "file_connectors_job.py")]
        if procs > 1:
            cmd += ["-p", str(procs)]
        return cmd + ["--from-checkpoint", str(storage), "-", str(storage), out, str(slow), *inputs]

    rng = random.Random(1515)
    kills = 0
    while kills < 3:
        p = start(command(15, 1), tmp_path)
        if not kill_at_random(p, rng):
            break
        kills += 1
    assert kills >= 2, f"only {kills} kills landed while the job ran"
    finish(start(command(0, 2), tmp_path), "the last restore")
    got = Counter(line for body in objects(s3env, f"{key}/out").values() for line in body.decode().splitlines())
    want = kill_test_model()
    lost, twice = want - got, got - want
    assert not lost and not twice, f"{sum(lost.values())} lines lost (e.g. {list(lost)[:3]}), " \
                                   f"{sum(twice.values())} extra (e.g. {list(twice)[:3]})"
    staging = Path(tempfile.gettempdir()) / "ferroflow-s3-staging" / BUCKET / key / "out"
    assert staging.is_dir()
    assert not [f for f in staging.rglob("*") if f.is_file()], "every staged part was uploaded and removed"


# -- errors -------------------------------------------------------------------------------------


def test_a_missing_bucket_fails_in_seconds_naming_the_url(s3env):
    env = StreamExecutionEnvironment.get_execution_environment()
    began = time.monotonic()
    with pytest.raises(JobExecutionException) as e:
        run(env, env.read_text_file("s3://no-such-bucket-here/x/"))
    assert time.monotonic() - began < 20
    message = str(e.value)
    assert "s3://no-such-bucket-here/x/" in message, message
    assert "bucket does not exist" in message or "no such file or directory" in message, message
    # A key that is not there: missing, as a missing local path is.
    with pytest.raises(JobExecutionException, match=f"no such file or directory: s3://{BUCKET}/nothing-here"):
        env = StreamExecutionEnvironment.get_execution_environment()
        run(env, env.read_text_file(f"s3://{BUCKET}/nothing-here"))


def test_an_unreachable_endpoint_fails_in_seconds_naming_it(s3env, monkeypatch):
    dead = f"http://127.0.0.1:{_free_port()}"
    for k in ("AWS_ENDPOINT", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(k, dead)
    env = StreamExecutionEnvironment.get_execution_environment()
    began = time.monotonic()
    with pytest.raises(JobExecutionException) as e:
        run(env, env.read_json_lines(f"s3://{BUCKET}/anything.jsonl"))
    assert time.monotonic() - began < 30
    message = str(e.value)
    assert f"s3://{BUCKET}/anything.jsonl" in message and f"cannot reach the S3 endpoint {dead}" in message, message


def test_paths_with_another_scheme_or_no_bucket_are_refused_at_the_call():
    with pytest.raises(ValueError, match="no bucket"):
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), "s3:///key")
    with pytest.raises(ValueError, match="s3:// URLs are supported"):
        FileSink.for_row_format("gs://b/k", Encoder.simple_string_encoder())
