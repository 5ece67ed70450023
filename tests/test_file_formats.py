"""JSON lines, CSV and Parquet through FileSource/FileSink (issue 15): files written by an
independent writer (Python's json and csv modules, pyarrow) and read back by one, at 1
worker, 2 threads and 2 processes; splitting across workers checked against a plain
model; malformed input failing with its file and line (or row group) or skipped and
counted; a restarted job resuming mid-file; monitor_continuously picking up a file
written after the job started.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, strategies as st

from conftest import JOB_SETTINGS, bag, run
from ferroflow import Duration, JobExecutionException, StreamExecutionEnvironment, WatermarkStrategy
from ferroflow.connectors.file_formats import (AvroParquetReaders, CsvBulkWriters, CsvReaderFormat, CsvSchema,
                                               JsonLinesEncoder, JsonLinesFormat, ParquetBulkWriters,
                                               ParquetColumnarRowInputFormat, ParquetRecordBatchFormat)
from ferroflow.connectors.file_system import BucketAssigner, FileSink, FileSource
from ferroflow.row import Row
from ferroflow.typeinfo import Types


def canon(x) -> str:
    return json.dumps(x, sort_keys=True)


def read(env, fmt, *paths, bulk=False):
    builder = (FileSource.for_bulk_file_format if bulk else FileSource.for_record_stream_format)(
        fmt, *[str(p) for p in paths])
    return env.from_source(builder.build(), WatermarkStrategy.no_watermarks(), "files")


def visible_files(base: Path) -> list:
    return sorted(p for p in base.rglob("*") if p.is_file()
                  and not any(part.startswith((".", "_")) for part in p.relative_to(base).parts))


# -- JSON lines -----------------------------------------------------------------------------


def test_json_lines_are_read_as_dicts_once_each_split_across_workers(env, tmp_path):
    records = [{"id": i, "name": f"n{i}", "tags": ["a", i % 3], "score": i / 4, "ok": i % 2 == 0, "none": None}
               for i in range(200)]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:100]))
    (tmp_path / "d" / "b.jsonl").write_text("\n".join(json.dumps(r) for r in records[100:]) + "\n\n")
    # Over 1 MiB: cut into byte ranges, one per worker.
    big = [{"i": i, "pad": "x" * 40} for i in range(25_000)]
    (tmp_path / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in big))
    got = run(env, read(env, JsonLinesFormat(), tmp_path / "d", tmp_path / "big.jsonl"))
    assert all(isinstance(r, dict) for r in got)
    assert Counter(map(canon, got)) == Counter(map(canon, records + big))
    # Field order is the file's, as json.loads keeps it.
    assert list(next(r for r in got if "id" in r)) == ["id", "name", "tags", "score", "ok", "none"]


def test_read_json_lines_shorthand(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n[1, 2]\n"s"\n')
    env = StreamExecutionEnvironment.get_execution_environment()
    assert run(env, env.read_json_lines(str(tmp_path / "x.jsonl"))) == [{"a": 1}, [1, 2], "s"]


def test_a_malformed_json_line_fails_naming_file_and_line_or_is_skipped_and_counted(tmp_path, capfd):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": oops}\n{"a": 4}\n')
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(JobExecutionException) as e:
        run(env, read(env, JsonLinesFormat(), path))
    message = str(e.value)
    assert f"{path}: line 3: not valid JSON" in message
    assert "ignore_parse_errors()" in message
    env = StreamExecutionEnvironment.get_execution_environment()
    got = run(env, read(env, JsonLinesFormat().ignore_parse_errors(), path))
    assert got == [{"a": 1}, {"a": 2}, {"a": 4}]
    assert "JSON lines source" in capfd.readouterr().err
    env = StreamExecutionEnvironment.get_execution_environment()
    run(env, env.read_json_lines(str(path), skip_malformed=True))
    assert "skipped 1 malformed record(s)" in capfd.readouterr().err


def test_json_lines_sink_writes_what_json_reads(env, tmp_path):
    records = [{"k": i, "v": [i, "x"], "f": 0.5} for i in range(50)] + [Row(a=1, b="c"), Row(1, None), (2, True)]
    out = tmp_path / "out"
    env.from_collection(records).sink_to(
        FileSink.for_row_format(str(out), JsonLinesEncoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner()).build())
    env.execute()
    got = [json.loads(line) for f in visible_files(out) for line in f.read_text().splitlines()]
    want = [{"k": i, "v": [i, "x"], "f": 0.5} for i in range(50)] + [{"a": 1, "b": "c"}, [1, None], [2, True]]
    assert Counter(map(canon, got)) == Counter(map(canon, want))


# -- CSV ------------------------------------------------------------------------------------


def schema() -> CsvSchema:
    return CsvSchema.builder().add_string_column("name").add_number_column("n") \
        .add_number_column("x", number_type="DOUBLE").add_boolean_column("ok") \
        .set_column_separator(";").set_use_header().set_null_value("NULL").build()


def test_csv_rows_with_header_quotes_and_newlines_in_fields(env, tmp_path):
    rows = [(f'name "{i}"\nsecond line' if i % 7 == 0 else f"n;{i}", i, i / 2, i % 2 == 0) for i in range(300)]
    for k in range(3):
        with open(tmp_path / f"part{k}.csv", "w", newline="") as f:
            w = csv.writer(f, delimiter=";")
            w.writerow(["name", "n", "x", "ok"])
            for r in rows[k::3]:
                w.writerow([r[0], r[1], r[2], "true" if r[3] else "false"])
    got = run(env, read(env, CsvReaderFormat.for_schema(schema()), tmp_path))
    assert all(isinstance(r, Row) for r in got)
    assert bag(tuple(r.as_dict().items()) for r in got) == \
        bag((("name", a), ("n", b), ("x", c), ("ok", d)) for a, b, c, d in rows)


def test_csv_without_columns_is_named_by_its_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n1,x\n2,\n")
    env = StreamExecutionEnvironment.get_execution_environment()
    got = run(env, env.read_csv(str(tmp_path / "h.csv")))
    assert [r.as_dict() for r in got] == [{"a": "1", "b": "x"}, {"a": "2", "b": ""}]


def test_a_malformed_csv_row_fails_naming_file_and_line_or_is_skipped(tmp_path, capfd):
    path = tmp_path / "bad.csv"
    path.write_text('name;n;x;ok\n"multi\nline";1;1.5;true\nb;two;2;false\nc;3;3;true\nd;4\n')
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(JobExecutionException) as e:
        run(env, read(env, CsvReaderFormat.for_schema(schema()), path))
    assert f"{path}: line 4: malformed CSV row: field 2 (n) is not an integer" in str(e.value)
    env = StreamExecutionEnvironment.get_execution_environment()
    got = run(env, read(env, CsvReaderFormat.for_schema(schema()).ignore_parse_errors(), path))
    assert [r.as_dict()["name"] for r in got] == ["multi\nline", "c"]
    assert "skipped 2 malformed record(s)" in capfd.readouterr().err


def test_csv_sink_writes_what_csv_reads(env, tmp_path):
    records = [Row(name=f"a,{i}" if i % 5 else f'q"{i}', n=i, x=i / 2, ok=i % 2 == 0) for i in range(100)]
    out = tmp_path / "out"
    s = CsvSchema.builder().add_string_column("name").add_number_column("n").build()
    env.from_collection(records).sink_to(
        FileSink.for_bulk_format(str(out), CsvBulkWriters.for_schema(s))
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner()).build())
    env.execute()
    got = [tuple(row) for f in visible_files(out) for row in csv.reader(f.read_text().splitlines())]
    assert bag(got) == bag((r.name, str(r.n), str(r.x), "true" if r.ok else "false") for r in records)


# -- Parquet --------------------------------------------------------------------------------


def write_parquet(path: Path, n: int, start: int = 0, row_group_size: int = 100) -> list:
    table = pa.table({
        "id": pa.array(range(start, start + n), pa.int64()),
        "name": pa.array([f"r{i}" if i % 10 else None for i in range(start, start + n)], pa.string()),
        "score": pa.array([i * 0.25 for i in range(start, start + n)], pa.float64()),
        "small": pa.array([i % 100 for i in range(start, start + n)], pa.int8()),
        "tags": pa.array([[i, i + 1] for i in range(start, start + n)], pa.list_(pa.int32())),
        "point": pa.array([{"x": i, "y": str(i)} for i in range(start, start + n)],
                          pa.struct([("x", pa.int64()), ("y", pa.string())])),
    })
    pq.write_table(table, path, row_group_size=row_group_size, compression="snappy")
    return pq.read_table(path).to_pylist()


def test_parquet_rows_come_as_named_rows_row_groups_dealt_across_workers(env, tmp_path):
    want = write_parquet(tmp_path / "a.parquet", 1000) + write_parquet(tmp_path / "b.parquet", 55, 1000, 7)
    got = run(env, read(env, ParquetColumnarRowInputFormat(), tmp_path, bulk=True))
    assert all(isinstance(r, Row) for r in got)
    assert Counter(canon(r.as_dict()) for r in got) == Counter(map(canon, want))


def test_parquet_as_dicts_and_compressed_with_zstd_and_gzip(tmp_path):
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    pq.write_table(table, tmp_path / "z.parquet", compression="zstd")
    pq.write_table(table, tmp_path / "g.parquet", compression="gzip")
    env = StreamExecutionEnvironment.get_execution_environment()
    got = run(env, read(env, AvroParquetReaders.for_generic_record(None), tmp_path, bulk=True))
    assert Counter(map(canon, got)) == Counter(map(canon, table.to_pylist() * 2))


def test_parquet_record_batches_reach_python_as_pyarrow(env, tmp_path):
    want = write_parquet(tmp_path / "a.parquet", 500, row_group_size=200)
    stream = read(env, ParquetRecordBatchFormat(batch_size=64), tmp_path / "a.parquet", bulk=True)
    got = run(env, stream.map(lambda b: (type(b).__name__, b.num_rows, canon(b.to_pylist()))))
    assert all(kind == "RecordBatch" and 0 < n <= 64 for kind, n, _ in got)
    assert Counter(canon(r) for _, _, rows in got for r in json.loads(rows)) == Counter(map(canon, want))


def test_read_parquet_shorthand_batches(tmp_path):
    write_parquet(tmp_path / "a.parquet", 300)
    env = StreamExecutionEnvironment.get_execution_environment()
    got = run(env, env.read_parquet(str(tmp_path / "a.parquet"), batches=True).map(lambda b: b.num_rows))
    assert sum(got) == 300


def test_a_file_that_is_not_parquet_fails_naming_it(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all" * 10)
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(JobExecutionException) as e:
        run(env, read(env, ParquetColumnarRowInputFormat(), tmp_path / "x.parquet", bulk=True))
    assert f"{tmp_path / 'x.parquet'}: not a readable Parquet file" in str(e.value)


def test_parquet_sink_writes_rows_that_pyarrow_reads(env, tmp_path):
    row_type = Types.ROW_NAMED(["id", "name", "score", "ok", "small", "raw"],
                               [Types.LONG(), Types.STRING(), Types.DOUBLE(), Types.BOOLEAN(), Types.INT(),
                                Types.PRIMITIVE_ARRAY(Types.BYTE())])
    records = [Row(id=i, name=None if i % 9 == 0 else f"n{i}", score=i / 8, ok=i % 2 == 0, small=i % 50,
                   raw=bytes([i % 256])) for i in range(2000)]
    records += [{"id": 5000, "name": "dict", "score": 1, "ok": True, "small": None, "raw": b""},
                (5001, "tuple", 2.5, False, 3, b"xy")]
    out = tmp_path / "out"
    env.from_collection(records).sink_to(
        FileSink.for_bulk_format(str(out), ParquetBulkWriters.for_row_type(row_type))
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner()).build())
    env.execute()
    files = visible_files(out)
    assert files
    got = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert pq.read_schema(files[0]).names == ["id", "name", "score", "ok", "small", "raw"]
    want = [r.as_dict() for r in records[:2000]]
    want += [{"id": 5000, "name": "dict", "score": 1.0, "ok": True, "small": None, "raw": b""},
             {"id": 5001, "name": "tuple", "score": 2.5, "ok": False, "small": 3, "raw": b"xy"}]
    assert Counter(map(repr, sorted(got, key=lambda r: r["id"]))) == Counter(map(repr, want))


def test_parquet_sink_names_a_value_of_the_wrong_type(tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment()
    row_type = Types.ROW_NAMED(["id"], [Types.LONG()])
    env.from_collection([Row(id=1), Row(id="two")]).sink_to(
        FileSink.for_bulk_format(str(tmp_path), ParquetBulkWriters.for_row_type(row_type)).build())
    with pytest.raises(JobExecutionException, match="column id takes ints, got two"):
        env.execute()


@JOB_SETTINGS
@given(groups=st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=4), min_size=1, max_size=3),
       workers=st.integers(1, 3))
def test_row_groups_split_across_workers_neither_lose_nor_duplicate_rows(tmp_path_factory, groups, workers):
    """The plain model: every row of every file once, whatever the row groups and workers."""
    d = tmp_path_factory.mktemp("pq")
    want = []
    start = 0
    for k, sizes in enumerate(groups):
        writer = None
        for size in sizes:
            t = pa.table({"id": pa.array(range(start, start + size), pa.int64())})
            writer = writer or pq.ParquetWriter(d / f"f{k}.parquet", t.schema)
            writer.write_table(t)
            want.extend(range(start, start + size))
            start += size
        writer.close()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(workers)
    got = run(env, read(env, AvroParquetReaders.for_generic_record(), d, bulk=True).map(lambda r: r["id"]))
    assert sorted(got) == sorted(want)


# -- checkpoints and monitoring ---------------------------------------------------------------

RESUME_JOB = '''
import sys, time
from ferroflow import RestartStrategies, StreamExecutionEnvironment, WatermarkStrategy
from ferroflow.connectors.file_formats import JsonLinesFormat, ParquetColumnarRowInputFormat
from ferroflow.connectors.file_system import FileSource
from ferroflow.functions import MapFunction


class FailsOnce(MapFunction):
    def open(self, runtime_context):
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value):
        if value % 25 == 0:
            time.sleep(0.01)
        if self.attempt == 0 and value == 3900:
            raise ValueError("first attempt")
        if self.attempt > 0 and value == 0:
            print("read id 0 again", file=sys.stderr)
        return value


env = StreamExecutionEnvironment.get_execution_environment()
if sys.argv[2] != "-":
    env.set_parallelism(int(sys.argv[2]))
env.enable_checkpointing(20)
env.get_checkpoint_config().set_checkpoint_storage_dir("ck")
env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
if sys.argv[1] == "parquet":
    source = FileSource.for_bulk_file_format(ParquetColumnarRowInputFormat(), "in").build()
    key = lambda r: r["id"]
else:
    source = FileSource.for_record_stream_format(JsonLinesFormat(), "in").build()
    key = lambda r: r["id"]
env.from_source(source, WatermarkStrategy.no_watermarks(), "in").map(key).map(FailsOnce()).write_as_text("out")
env.execute("resume")
'''


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("way", ["1", "2", "2proc"])
def test_a_restarted_job_resumes_mid_file_exactly_once(tmp_path, way, fmt):
    (tmp_path / "in").mkdir()
    if fmt == "parquet":
        for k in range(2):
            pq.write_table(pa.table({"id": pa.array(range(k * 2000, (k + 1) * 2000), pa.int64())}),
                           tmp_path / "in" / f"{k}.parquet", row_group_size=700)
    else:
        for k in range(2):
            (tmp_path / "in" / f"{k}.jsonl").write_text(
                "".join(json.dumps({"id": i}) + "\n" for i in range(k * 2000, (k + 1) * 2000)))
    script = tmp_path / "job.py"
    script.write_text(RESUME_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    if way == "2proc":
        cmd = [str(Path(sys.executable).parent / "ferroflow"), "run", "-p", "2", str(script), "-", fmt, "-"]
    else:
        cmd = [sys.executable, str(script), fmt, way]
    p = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "restarting (attempt 1 of 1)" in p.stderr, p.stderr
    # The restart resumed from a checkpoint inside the files, not from their start...
    assert "read id 0 again" not in p.stderr, p.stderr
    # ...and what the job committed is every record once.
    lines = [line for f in sorted((tmp_path / "out").iterdir()) if not f.name.startswith((".", "_"))
             for line in f.read_text().splitlines()]
    assert sorted(map(int, lines)) == list(range(4000))


def test_monitor_continuously_reads_a_file_written_after_the_job_started(tmp_path):
    import threading
    import time

    folder = tmp_path / "watch"
    folder.mkdir()
    (folder / "first.jsonl").write_text('{"n": 1}\n{"n": 2}\n')

    def later():
        time.sleep(1.0)
        (folder / ".second.jsonl").write_text('{"n": 3}\n{"n": 4}\n{"n": 5}\n')
        os.rename(folder / ".second.jsonl", folder / "second.jsonl")

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    source = FileSource.for_record_stream_format(JsonLinesFormat(), str(folder)) \
        .monitor_continuously(Duration.of_millis(100)).build()
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "watch").map(lambda r: r["n"])
    writer = threading.Thread(target=later)
    writer.start()
    got = stream.execute_and_collect(limit=5)
    writer.join()
    assert sorted(got) == [1, 2, 3, 4, 5]
