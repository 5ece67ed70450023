"""Batch UDFs: map_batch, filter_batch, flat_map_batch (one Python call per batch),
in list, pyarrow and pandas formats; their timestamps, errors, and a property test
against per-record models over random inputs and batch sizes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from hypothesis import given, strategies as st

from ferroflow import (Duration, JobExecutionException, ProcessFunction, StreamExecutionEnvironment,
                       WatermarkStrategy)
from ferroflow.window import TumblingEventTimeWindows
from conftest import JOB_SETTINGS, bag, collect, make_env, run

RECORDS = [(i, f"w{i % 7}", i * 0.5) for i in range(300)]


def _double_first(batch):
    return [(r[0] * 2, r[1], r[2]) for r in batch]


# -- list format: each op equals its per-record equivalent --------------------------------


def test_map_batch_equals_map(env, parallelism):
    batched = collect(env.from_collection(RECORDS).map_batch(_double_first))
    plain = collect(env.from_collection(RECORDS).map(lambda r: (r[0] * 2, r[1], r[2])))
    env.execute("map_batch")
    assert bag(batched) == bag(plain) and len(batched) == len(RECORDS)
    if parallelism == 1:
        assert batched == plain


def test_filter_batch_equals_filter(env, parallelism):
    batched = collect(env.from_collection(RECORDS).filter_batch(lambda b: [r[0] % 3 == 0 for r in b]))
    plain = collect(env.from_collection(RECORDS).filter(lambda r: r[0] % 3 == 0))
    env.execute("filter_batch")
    assert bag(batched) == bag(plain) and len(batched) == 100
    if parallelism == 1:
        assert batched == plain


def test_flat_map_batch_equals_flat_map(env, parallelism):
    def split_all(lines):
        return [w for line in lines for w in line.split()]

    lines = [f"a b{i % 5} c{i % 3}" for i in range(200)]
    batched = collect(env.from_collection(lines).flat_map_batch(split_all))
    plain = collect(env.from_collection(lines).flat_map(str.split))
    env.execute("flat_map_batch")
    assert bag(batched) == bag(plain) and len(batched) == 600


def test_flat_map_batch_word_count_with_counter(env, parallelism):
    """The benchmark's shape: a per-batch Counter, then the built-in keyed sum."""
    lines = [f"x y{i % 4} z{i % 9}" for i in range(500)]
    counts = run(env, env.from_collection(lines)
                 .flat_map_batch(lambda b: Counter(w for line in b for w in line.split()).items())
                 .key_by(0).sum(1))
    final = {}
    for word, n in counts:
        final[word] = max(final.get(word, 0), n)
    assert final == dict(Counter(w for line in lines for w in line.split()))


def test_batches_are_whole_engine_batches(env, parallelism):
    """Each call gets one batch: the sizes add up to the input, none above the source
    batch size, and a 1-worker collection of 300 comes in 128-record batches."""
    sizes = run(env, env.from_collection(list(range(300))).flat_map_batch(lambda b: [len(b)]))
    assert sum(sizes) == 300 and max(sizes) <= 128
    if parallelism == 1:
        assert sorted(sizes) == [44, 128, 128]


def test_generators_and_none(env):
    gen = collect(env.from_collection(list(range(10))).flat_map_batch(lambda b: (x + 1 for x in b)))
    nothing = collect(env.from_collection(list(range(10))).flat_map_batch(lambda b: None))
    env.execute("generators")
    assert bag(gen) == bag(range(1, 11)) and nothing == []


def test_numpy_mask(env):
    np = pytest.importorskip("numpy")
    out = run(env, env.from_collection(list(range(20))).filter_batch(lambda b: np.array(b) >= 15))
    assert bag(out) == bag(range(15, 20))


def test_keyed_stream_has_them_as_plain_stream_ops(env):
    out = run(env, env.from_collection(RECORDS).key_by(1).map_batch(lambda b: [r[0] for r in b]))
    assert bag(out) == bag(r[0] for r in RECORDS)


def test_function_objects_are_opened_and_closed(env):
    class Scale:
        def open(self, ctx):
            self.k = 3

        def map_batch(self, batch):
            return [x * self.k for x in batch]

    out = run(env, env.from_collection(list(range(10))).map_batch(Scale()))
    assert bag(out) == bag(x * 3 for x in range(10))


# -- columnar formats give the list format's results -------------------------------------


def test_arrow_and_pandas_map_batch_equal_list(env, parallelism):
    pc = pytest.importorskip("pyarrow.compute")
    pytest.importorskip("pandas")
    by_list = collect(env.from_collection(RECORDS).map_batch(lambda b: [(r[0], r[1], r[2] * 2) for r in b]))
    by_arrow = collect(env.from_collection(RECORDS).map_batch(
        lambda rb: rb.set_column(2, "f2", pc.multiply(rb.column(2), 2)), batch_format="arrow"))
    by_pandas = collect(env.from_collection(RECORDS).map_batch(
        lambda df: df.assign(f2=df.f2 * 2), batch_format="pandas"))
    env.execute("columnar map")
    assert bag(by_arrow) == bag(by_list) == bag(by_pandas)
    assert all(type(r) is tuple and type(r[0]) is int and type(r[1]) is str for r in by_arrow + by_pandas)
    if parallelism == 1:
        assert by_arrow == by_list == by_pandas


def test_arrow_and_pandas_filter_and_flat_map_equal_list(env, parallelism):
    pc = pytest.importorskip("pyarrow.compute")
    pytest.importorskip("pandas")
    keep = collect(env.from_collection(RECORDS).filter_batch(lambda b: [r[2] > 40 for r in b]))
    keep_arrow = collect(env.from_collection(RECORDS).filter_batch(
        lambda rb: pc.greater(rb.column("f2"), 40), batch_format="arrow"))
    keep_pandas = collect(env.from_collection(RECORDS).filter_batch(lambda df: df.f2 > 40, batch_format="pandas"))
    many = collect(env.from_collection(RECORDS).flat_map_batch(lambda b: [(r[1],) for r in b if r[0] % 2]))
    many_arrow = collect(env.from_collection(RECORDS).flat_map_batch(
        lambda rb: rb.filter(pc.equal(pc.bit_wise_and(rb.column(0), 1), 1)).select(["f1"]), batch_format="arrow"))
    many_pandas = collect(env.from_collection(RECORDS).flat_map_batch(
        lambda df: df[df.f0 % 2 == 1][["f1"]], batch_format="pandas"))
    env.execute("columnar filter")
    assert bag(keep) == bag(keep_arrow) == bag(keep_pandas) and len(keep) == 219
    assert bag(many) == bag(many_arrow) == bag(many_pandas) and len(many) == 150


def test_dict_records_and_nulls_round_trip(env):
    pytest.importorskip("pyarrow")
    recs = [{"a": i, "b": None if i % 3 == 0 else f"s{i}", "c": i % 2 == 0, "d": i if i % 2 else i + 0.5}
            for i in range(20)]
    out = run(env, env.from_collection(recs).map_batch(lambda rb: rb, batch_format="arrow"))
    # Equal values (an int column meeting a float in one batch becomes a float column).
    assert sorted(out, key=lambda r: r["a"]) == recs
    assert all(list(r) == ["a", "b", "c", "d"] and type(r["c"]) is bool for r in out)


@pytest.mark.parametrize("records, words", [
    ([1, 2, 3], "tuples or dicts"),
    ([(1, [2])], "list in column f1"),
    ([(1, "a"), (2, 3)], "column f1 mixes str and int"),
    ([(1, 2), (3,)], "first record's shape"),
])
def test_columnar_refuses_records_that_are_not_plain(records, words):
    env = make_env(1)
    collect(env.from_collection(records).map_batch(lambda rb: rb, batch_format="arrow"))
    with pytest.raises(JobExecutionException) as info:
        env.execute("not plain")
    text = str(info.value)
    assert words in text and "map_batch" in text and "\n" not in info.value.detail.strip(), text


def test_bad_batch_format_is_refused_at_the_call():
    env = make_env(1)
    with pytest.raises(ValueError, match='batch_format must be "list", "arrow" or "pandas"'):
        env.from_collection([1]).map_batch(lambda b: b, batch_format="numpy")


# -- timestamps ---------------------------------------------------------------------------


def _stamped(env, records):
    strategy = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0))
                .with_timestamp_assigner(lambda r, _ts: r[2]))
    return env.from_collection(records).assign_timestamps_and_watermarks(strategy)


def test_event_time_windows_after_map_batch_fire_right(env, parallelism):
    """map_batch drops the timestamp field: the windows after it still see each
    record's own timestamp (output i keeps input i's)."""
    records = [(f"k{i % 3}", i, i * 7) for i in range(200)]  # ts 0..1393
    per_record = collect(_stamped(env, records).map(lambda r: (r[0], r[1]))
                         .key_by(0).window(TumblingEventTimeWindows.of(Duration.of_millis(100))).sum(1))
    batched = collect(_stamped(env, records).map_batch(lambda b: [(r[0], r[1]) for r in b])
                      .key_by(0).window(TumblingEventTimeWindows.of(Duration.of_millis(100))).sum(1))
    env.execute("windows")
    expected = Counter()
    for k, v, ts in records:
        expected[(k, ts // 100)] += v
    assert bag(batched) == bag(per_record)
    assert sorted(v for _, v in batched) == sorted(expected.values())


class Stamp(ProcessFunction):
    def process_element(self, value, ctx):
        yield (value, ctx.timestamp())


def test_timestamps_kept_by_filter_batch_and_maxed_by_flat_map_batch():
    env = make_env(1)
    records = [(i, "x", 1000 - i) for i in range(50)]  # one batch, out of order
    kept = collect(_stamped(env, records).filter_batch(lambda b: [r[0] % 10 == 0 for r in b]).process(Stamp()))
    flat = collect(_stamped(env, records).flat_map_batch(lambda b: ["n", "m"]).process(Stamp()))
    env.execute("stamps")
    assert kept == [((i, "x", 1000 - i), 1000 - i) for i in range(0, 50, 10)]
    assert flat == [("n", 1000), ("m", 1000)]


# -- errors -------------------------------------------------------------------------------


def test_wrong_length_names_operator_and_both_lengths(env):
    collect(env.from_collection(list(range(10))).map_batch(lambda b: b[:-1]))
    with pytest.raises(JobExecutionException) as info:
        env.execute("short")
    e = info.value
    assert e.kind == "udf" and e.operator.startswith("map_batch '") and "<lambda>" in e.operator, e
    assert "results for a batch of" in str(e) and "one per record" in str(e), e
    assert e.record is not None


def test_filter_mask_of_wrong_length():
    env = make_env(1)
    collect(env.from_collection(list(range(10))).filter_batch(lambda b: [True]))
    with pytest.raises(JobExecutionException, match="returned 1 booleans for a batch of 10 records"):
        env.execute("mask")


def test_exception_reported_with_first_record_and_traceback(env):
    def boom(batch):
        raise ValueError("batch failed")

    collect(env.from_collection([("first", 1), ("second", 2)]).flat_map_batch(boom))
    with pytest.raises(JobExecutionException) as info:
        env.execute("boom")
    e = info.value
    assert e.kind == "udf" and e.operator.startswith("flat_map_batch '") and "boom'" in e.operator, e
    assert "ValueError: batch failed" in e.detail and "in boom" in e.detail, e
    assert e.record in ("('first', 1)", "('second', 2)"), e


def test_failing_job_script_exits_non_zero(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        from ferroflow import StreamExecutionEnvironment
        env = StreamExecutionEnvironment.get_execution_environment()
        env.from_collection([1, 2, 3]).map_batch(lambda b: b + b).print()
        env.execute("doubled")
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1, r
    assert "map_batch '<lambda>'" in r.stderr and "returned 6 results for a batch of 3 records" in r.stderr, r


# -- property: batch ops against per-record models ----------------------------------------


@JOB_SETTINGS
@given(xs=st.lists(st.integers(-1000, 1000), max_size=300), batch_size=st.integers(1, 64))
def test_batch_ops_match_per_record_models(xs, batch_size):
    old = os.environ.get("FERROFLOW_BATCH_SIZE")
    os.environ["FERROFLOW_BATCH_SIZE"] = str(batch_size)
    try:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(1)
        s = env.from_collection(xs)
        mapped = collect(s.map_batch(lambda b: [x * 3 - 1 for x in b]))
        kept = collect(s.filter_batch(lambda b: [x % 4 == 1 for x in b]))
        flat = collect(s.flat_map_batch(lambda b: [y for x in b for y in [x] * (x % 3)]))
        sizes = collect(s.flat_map_batch(lambda b: [len(b)]))
        env.execute("model")
    finally:
        if old is None:
            del os.environ["FERROFLOW_BATCH_SIZE"]
        else:
            os.environ["FERROFLOW_BATCH_SIZE"] = old
    assert mapped == [x * 3 - 1 for x in xs]
    assert kept == [x for x in xs if x % 4 == 1]
    assert flat == [y for x in xs for y in [x] * (x % 3)]
    assert sum(sizes) == len(xs) and all(0 < n <= batch_size for n in sizes)
