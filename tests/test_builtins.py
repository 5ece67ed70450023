"""Built-in keyed aggregations: ``key_by(field)``, ``sum``, ``min``, ``max``, ``min_by``,
``max_by``, ``count``.

Every fast path is checked against the Python path on the same input: the same job
also runs ``key_by(lambda ...)`` + ``reduce(lambda ...)`` written independently here,
and the two outputs must match record for record (per key, in order), including the
exact types (``3`` is not ``3.0``) and float bits (``-0.0``, ``nan``, ``inf``)."""

from __future__ import annotations

import dataclasses
import math
from collections import namedtuple
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Dict, List, Tuple

import pytest
from hypothesis import given, strategies as st

from ferroflow import DiscardingSink, JobExecutionException, KeySelector
from conftest import JOB_SETTINGS, SUM_FIELD_0, flink_semantics, make_env, per_key, run

OPS = ("sum", "min", "max", "min_by", "max_by")


# -- records of every shape ---------------------------------------------------------------


@dataclasses.dataclass
class Rec:
    k: Any
    v: Any
    t: int


@dataclasses.dataclass(frozen=True)
class FrozenRec:
    k: Any
    v: Any
    t: int


class Plain:
    """An object with attributes and nothing else (no __eq__, no dataclass)."""

    def __init__(self, k: Any, v: Any, t: int) -> None:
        self.k, self.v, self.t = k, v, t


class Slotted:
    __slots__ = ("k", "v", "t")

    def __init__(self, k: Any, v: Any, t: int) -> None:
        self.k, self.v, self.t = k, v, t


NT = namedtuple("NT", "k v t")


class Shape:
    """How to build, read and copy-with-a-new-value one kind of record, written
    independently of ferroflow (the Python path and the checks use these)."""

    def __init__(self, name: str, make: Callable, key_field: Any, value_field: Any,
                 key: Callable, value: Callable, replace: Callable) -> None:
        self.name, self.make, self.key_field, self.value_field = name, make, key_field, value_field
        self.key, self.value, self.replace = key, value, replace

    def __repr__(self) -> str:
        return self.name


SHAPES = [
    Shape("tuple", lambda k, v, t: (k, v, t), 0, 1,
          lambda r: r[0], lambda r: r[1], lambda r, x: (r[0], x, r[2])),
    Shape("list", lambda k, v, t: [k, v, t], 0, 1,
          lambda r: r[0], lambda r: r[1], lambda r, x: [r[0], x, r[2]]),
    Shape("dict", lambda k, v, t: {"k": k, "v": v, "t": t}, "k", "v",
          lambda r: r["k"], lambda r: r["v"], lambda r, x: {**r, "v": x}),
    Shape("dataclass", Rec, "k", "v",
          lambda r: r.k, lambda r: r.v, lambda r, x: dataclasses.replace(r, v=x)),
    Shape("frozen", FrozenRec, "k", "v",
          lambda r: r.k, lambda r: r.v, lambda r, x: dataclasses.replace(r, v=x)),
    Shape("namedtuple", NT, "k", "v",
          lambda r: r.k, lambda r: r.v, lambda r, x: r._replace(v=x)),
    Shape("namedtuple_index", NT, 0, 1,
          lambda r: r.k, lambda r: r.v, lambda r, x: r._replace(v=x)),
    Shape("plain_object", Plain, "k", "v",
          lambda r: r.k, lambda r: r.v, lambda r, x: _plain_with(r, x)),
    Shape("slotted_object", Slotted, "k", "v",
          lambda r: r.k, lambda r: r.v, lambda r, x: Slotted(r.k, x, r.t)),
]

# `(key, value)` pairs keyed by the other position: the engine keeps a number per key
# while records keep that shape (and their key's type), and must give the same results.
PAIRS = [
    Shape("pair", lambda k, v, t: (k, v), 0, 1,
          lambda r: r[0], lambda r: r[1], lambda r, x: (r[0], x)),
    Shape("pair_reversed", lambda k, v, t: (v, k), 1, 0,
          lambda r: r[1], lambda r: r[0], lambda r, x: (x, r[1])),
    Shape("pair_negative_index", lambda k, v, t: (k, v), -2, -1,
          lambda r: r[0], lambda r: r[1], lambda r, x: (r[0], x)),
]
SHAPES += PAIRS


def _plain_with(r: Plain, x: Any) -> Plain:
    return Plain(r.k, x, r.t)


def python_reducer(op: str, shape: Shape) -> Callable:
    """The Python path: Flink's semantics as plain reduce functions."""
    get, put = shape.value, shape.replace
    if op == "sum":
        return lambda a, b: put(a, get(a) + get(b))
    if op == "min":
        return lambda a, b: a if get(a) < get(b) else put(a, get(b))
    if op == "max":
        return lambda a, b: a if get(a) > get(b) else put(a, get(b))
    if op == "min_by":
        return lambda a, b: b if get(b) < get(a) else a
    if op == "max_by":
        return lambda a, b: b if get(b) > get(a) else a
    raise AssertionError(op)


def canon(x: Any) -> Any:
    """A comparable, reference-free image of a record: exact types and float bits."""
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, int):
        return ("int", x)
    if isinstance(x, float):
        return ("float", repr(x))
    if isinstance(x, tuple):
        return (type(x).__name__, tuple(canon(i) for i in x))
    if isinstance(x, list):
        return ("list", tuple(canon(i) for i in x))
    if isinstance(x, dict):
        return ("dict", tuple((canon(k), canon(v)) for k, v in x.items()))
    if isinstance(x, (Rec, FrozenRec, Plain, Slotted)):
        return (type(x).__name__, canon(x.k), canon(x.v), canon(x.t))
    return (type(x).__name__, repr(x))


def canon_sink(stream, key: Callable) -> List[Tuple[Any, Any]]:
    """Collects ``(key(record), canon(record))``; keeps no reference to the records,
    so the aggregation may reuse a record no one else holds (its in-place path)."""
    out: List[Tuple[Any, Any]] = []
    stream.add_sink(lambda r: out.append((key(r), canon(r))))
    return out


def grouped(pairs: List[Tuple[Any, Any]]) -> Dict[Any, List[Any]]:
    return {k: [c for _, c in v] for k, v in per_key(pairs, lambda p: p[0]).items()}


def assert_same(builtin: List, python: List, parallelism: int, what: str) -> None:
    """Same records, per key in the same order; with one worker, the same sequence."""
    assert len(builtin) == len(python), what
    if parallelism == 1:
        assert builtin == python, what
    else:
        assert grouped(builtin) == grouped(python), what


# -- value strategies ---------------------------------------------------------------------

EDGE_INTS = st.sampled_from([2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**62, 2**53, 2**53 + 1, -(2**53) - 1,
                             10**30, 255, 256, 257, -5, -6, 0])
INTS = st.one_of(st.integers(-300, 300), st.integers(-2**64, 2**64), EDGE_INTS)
EDGE_FLOATS = st.sampled_from([0.0, -0.0, 1.5, -2.5, math.inf, -math.inf, math.nan, 2.0**53, 2.0**63, -2.0**63,
                               9.3e18, 1e308])
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), EDGE_FLOATS)
NUMS = st.one_of(INTS, FLOATS)
VALUES = st.one_of(st.lists(INTS, max_size=40), st.lists(FLOATS, max_size=40), st.lists(NUMS, max_size=40),
                   st.lists(st.one_of(EDGE_INTS, EDGE_FLOATS), max_size=40))
KEYS = st.sampled_from(["a", "b", "c", 1, 2.5, (0, "t"), 2**70, True, b"a", 1.0, 0, -0.0])


def records_of(shape: Shape, keys: List[Any], values: List[Any]) -> List[Any]:
    return [shape.make(k, v, i) for i, (k, v) in enumerate(zip(keys, values))]


def run_all_ops(parallelism: int, shape: Shape, records: List[Any], ops=OPS) -> None:
    """One job: every aggregation (of ``ops``) through the built-in path and the Python path."""
    env = make_env(parallelism)
    outs = {}
    for op in ops:
        built = getattr(env.from_collection(records).key_by(shape.key_field), op)(shape.value_field)
        python = env.from_collection(records).key_by(shape.key).reduce(python_reducer(op, shape))
        outs[op] = (canon_sink(built, shape.key), canon_sink(python, shape.key))
    built = env.from_collection(records).key_by(shape.key_field).count()
    # Keyed before the map, so that records keep their order per key with 2 workers.
    python = (env.from_collection(records).key_by(shape.key).map(lambda r: (shape.key(r), 1))
              .key_by(lambda p: p[0]).reduce(lambda a, b: (a[0], a[1] + b[1])))
    outs["count"] = (canon_sink(built, lambda p: p[0]), canon_sink(python, lambda p: p[0]))
    env.execute("builtins vs python")
    for op, (b, p) in outs.items():
        assert_same(b, p, parallelism, f"{op} on {shape.name}")
        assert len(b) == len(records)


@pytest.mark.parametrize("shape", SHAPES, ids=repr)
@JOB_SETTINGS
@given(data=st.data())
def test_aggregations_match_python_path(parallelism, shape, data):
    values = data.draw(VALUES, label="values")
    keys = data.draw(st.lists(KEYS, min_size=len(values), max_size=len(values)), label="keys")
    records = records_of(shape, keys, values)
    before = [canon(r) for r in records]
    run_all_ops(parallelism, shape, records)
    assert [canon(r) for r in records] == before, "the input records were changed"


@JOB_SETTINGS
@given(values=st.lists(st.one_of(INTS, FLOATS), max_size=40))
def test_bare_numbers_without_field(parallelism, values):
    """``sum()`` etc. with no field aggregate the records themselves; ``sum(0)`` too
    (Flink's position 0 of a basic value)."""
    env = make_env(parallelism)
    key = (lambda x: 0 if isinstance(x, float) and math.isnan(x) else int(x % 3) if math.isfinite(x) else 7)
    pyops = {"sum": lambda a, b: a + b,
             "min": lambda a, b: a if a < b else b,
             "max": lambda a, b: a if a > b else b,
             "min_by": lambda a, b: b if b < a else a,
             "max_by": lambda a, b: b if b > a else a}
    outs = {}
    for op in OPS:
        for args in ((), (0,), ("*",)):
            built = getattr(env.from_collection(values).key_by(key), op)(*args)
            python = env.from_collection(values).key_by(key).reduce(pyops[op])
            outs[(op, args)] = (canon_sink(built, lambda r: None), canon_sink(python, lambda r: None))
    env.execute()
    for what, (b, p) in outs.items():
        if parallelism == 1:
            assert b == p, what
        else:
            assert sorted(map(repr, b)) == sorted(map(repr, p)), what


# The edge cases below run on 3-tuples and on pairs (the running-number path).
EDGE_SHAPES = pytest.mark.parametrize("shape", [SHAPES[0], *PAIRS[:2]], ids=repr)


def shaped(shape: Shape, triples: List[Tuple[Any, Any, int]]) -> List[Any]:
    return [shape.make(k, v, t) for k, v, t in triples]


@EDGE_SHAPES
@JOB_SETTINGS
@given(words=st.lists(st.text(alphabet="abc", max_size=3), max_size=40),
       values=st.lists(st.text(alphabet="xyz", max_size=3), max_size=40))
def test_strings_use_python_operators(parallelism, shape, words, values):
    """Non-numbers go through Python's <: min/max/min_by/max_by compare str (sum takes
    numbers only, see test_first_record_of_a_key_is_checked_too)."""
    records = [(w, v, i) for i, (w, v) in enumerate(zip(words, values))]
    run_all_ops(parallelism, shape, shaped(shape, records), ops=[op for op in OPS if op != "sum"])


@EDGE_SHAPES
def test_decimal_and_fraction_fall_back(parallelism, shape):
    dec = [("a", Decimal("1.10"), 0), ("b", Decimal("-3"), 1), ("a", Decimal("2.205"), 2), ("a", Decimal("0"), 3)]
    frac = [("a", Fraction(1, 3), 0), ("a", 2, 1), ("b", 0.5, 2), ("a", Fraction(-7, 2), 3), ("b", Fraction(1, 2), 4),
            ("a", 1.25, 5)]
    bools = [("a", True, 0), ("a", True, 1), ("a", False, 2), ("b", 2**63 - 1, 3), ("b", True, 4)]
    for records in (dec, frac, bools):
        run_all_ops(parallelism, shape, shaped(shape, records))


@EDGE_SHAPES
def test_int_overflow_beyond_i64(parallelism, shape):
    """Sums leave i64 (Python ints are unbounded) and come back; exact every step."""
    big = 2**63 - 1
    values = [big, big, 1, -big, -big, -big, -big, 5, 2**64, -(2**64), 0.5, 3]
    records = [("k", v, i) for i, v in enumerate(values)] + [("j", -2**63, 99), ("j", -1, 100)]
    run_all_ops(parallelism, shape, shaped(shape, records))


@EDGE_SHAPES
def test_int_float_comparisons_are_exact(parallelism, shape):
    """Python compares an int and a float exactly (2**53 + 1 > 2.0**53), not by
    converting the int to a float; so must the fast path."""
    edge = [2**53 + 1, 2.0**53, 2**53, -(2**53) - 1, -2.0**53, 2**63 - 1, 2.0**63, -2**63, -2.0**63, 2**64,
            2**53 - 1, 9007199254740993.0]
    records = []
    for i, a in enumerate(edge):
        for j, b in enumerate(edge):
            records += [(f"{i}-{j}", a, 2 * len(records)), (f"{i}-{j}", b, 2 * len(records) + 1)]
    run_all_ops(parallelism, shape, shaped(shape, records))


@pytest.mark.parametrize("shape", PAIRS[:2], ids=repr)
def test_pairs_leaving_the_running_number_get_their_first_key_back(parallelism, shape):
    """A pair's state is a running number and the key's encoding, no record: a record
    that leaves that path (here a value beyond i64) gets the key of the key's first
    record back from the encoding, equal and of its type (1 stays 1 after True or 1.0)."""
    keys = ["a", "é😀", "a key too long to be kept inline", b"raw\xff", 7, -2**63, 2**63, 2**70, -(2**80)]
    records = [(k, v, t) for k in keys for t, v in enumerate([1, 2, 2**64, 3])]
    records += [(1, 5, 0), (True, 2, 1), (1.0, 2**70, 2), (1, 1, 3)]
    run_all_ops(parallelism, shape, shaped(shape, records))


def test_first_record_fields_and_tie_rules():
    """Flink: sum/min/max keep the first record's other fields; min_by/max_by emit a
    whole record, keeping the earlier one on ties."""
    env = make_env(1)
    data = [("a", 3, "first"), ("a", 1, "second"), ("a", 1, "third"), ("a", 5, "fourth"), ("a", 5, "fifth")]
    outs = {op: run_collect(getattr(env.from_collection(data).key_by(0), op)(1)) for op in OPS}
    outs["count"] = run_collect(env.from_collection(data).key_by(0).count())
    env.execute()
    assert outs["sum"] == [("a", 3, "first"), ("a", 4, "first"), ("a", 5, "first"), ("a", 10, "first"),
                           ("a", 15, "first")]
    assert outs["min"] == [("a", 3, "first"), ("a", 1, "first"), ("a", 1, "first"), ("a", 1, "first"),
                           ("a", 1, "first")]
    assert outs["max"] == [("a", 3, "first"), ("a", 3, "first"), ("a", 3, "first"), ("a", 5, "first"),
                           ("a", 5, "first")]
    assert outs["min_by"] == [("a", 3, "first"), ("a", 1, "second"), ("a", 1, "second"), ("a", 1, "second"),
                              ("a", 1, "second")]
    assert outs["max_by"] == [("a", 3, "first"), ("a", 3, "first"), ("a", 3, "first"), ("a", 5, "fourth"),
                              ("a", 5, "fourth")]
    assert outs["count"] == [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5)]


def run_collect(stream) -> List[Any]:
    out: List[Any] = []
    stream.add_sink(out.append)
    return out


def test_negative_index_and_lists(env, parallelism):
    data = [["a", 1, 10], ["b", 2, 20], ["a", 3, 30]]
    out = run(env, env.from_collection(data).key_by(-3).sum(-2))
    expected = [["a", 1, 10], ["b", 2, 20], ["a", 4, 10]]
    assert per_key(out, lambda r: r[0]) == per_key(expected, lambda r: r[0])


# -- many records: batches, in-place reuse, references kept by the sink ---------------------


@pytest.mark.parametrize("shape", SHAPES[:3] + PAIRS[:1], ids=repr)
@pytest.mark.parametrize("keep_references", [False, True], ids=["canon_sink", "list_sink"])
def test_long_stream_matches_python_path(parallelism, keep_references, shape):
    """Thousands of records across many batches. A sink that keeps no reference lets
    the aggregation update its own records in place; one that keeps every record
    must see each exactly as it was emitted."""
    n = 6000
    values = [(i % 5) if i % 3 else i * 0.5 for i in range(n)] + [2**62, 2**62, -5, 1.5]
    keys = [f"w{(i * 7919) % 13}" for i in range(n)] + ["big"] * 4
    records = records_of(shape, keys, values)
    env = make_env(parallelism)
    outs = {}
    for op in OPS + ("count",):
        if op == "count":
            built = env.from_collection(records).key_by(shape.key_field).count()
            python = (env.from_collection(records).key_by(shape.key).map(lambda r: (shape.key(r), 1))
                      .key_by(lambda p: p[0]).reduce(lambda a, b: (a[0], a[1] + b[1])))
            key = (lambda p: p[0])
        else:
            built = getattr(env.from_collection(records).key_by(shape.key_field), op)(shape.value_field)
            python = env.from_collection(records).key_by(shape.key).reduce(python_reducer(op, shape))
            key = shape.key
        if keep_references:
            outs[op] = (run_collect(built), canon_sink(python, key), key)
        else:
            outs[op] = (canon_sink(built, key), canon_sink(python, key), key)
    env.execute()
    for op, (b, p, key) in outs.items():
        if keep_references:
            b = [(key(r), canon(r)) for r in b]
        assert_same(b, p, parallelism, op)


def test_discarding_sink_word_count_shape(parallelism):
    """The benchmark's shape (flat_map -> key_by(0) -> sum(1) -> DiscardingSink) runs,
    and a second branch ending in a collecting sink gives the right final counts."""
    lines = [" ".join(f"w{(i * j) % 17}" for j in range(9)) for i in range(400)]
    env = make_env(parallelism)

    def tokenize(line):
        for w in line.split():
            yield (w, 1)
    env.from_collection(lines).flat_map(tokenize).key_by(0).sum(1).add_sink(DiscardingSink())
    updates = canon_sink(env.from_collection(lines).flat_map(tokenize).key_by(0).sum(1), lambda r: r[0])
    result = env.execute()
    expected: Dict[str, int] = {}
    for line in lines:
        for w in line.split():
            expected[w] = expected.get(w, 0) + 1
    assert len(updates) == 9 * 400
    final = {k: v[-1] for k, v in grouped(updates).items()}
    assert final == {w: ("tuple", (("str", repr(w)), ("int", n))) for w, n in expected.items()}
    if type(parallelism) is int:  # all workers in this process: their counts are all here
        assert sum(c for n, c in result.operator_counts.items() if n.startswith("sum")) == 2 * 9 * 400


# -- key_by(field) ------------------------------------------------------------------------


@JOB_SETTINGS
@given(keys=st.lists(st.one_of(KEYS, st.integers(-2**70, 2**70), st.floats(allow_nan=False), st.text(max_size=3),
                               st.none(), st.binary(max_size=2)), max_size=30))
def test_key_by_field_routes_like_a_key_selector(parallelism, keys):
    """Same groups as ``key_by(lambda r: r[0])``: a rolling count per key agrees."""
    records = [(k, 1, i) for i, k in enumerate(keys)]
    env = make_env(parallelism)
    built = canon_sink(env.from_collection(records).key_by(0).sum(1), lambda r: r[0])
    python = canon_sink(env.from_collection(records).key_by(lambda r: r[0]).reduce(lambda a, b: (a[0], a[1] + b[1], a[2])),
                        lambda r: r[0])
    counts: List[Tuple[Any, int]] = []
    env.from_collection([{"name": k, "n": 1} for k in keys]).key_by("name").sum("n").add_sink(
        lambda r: counts.append((r["name"], r["n"])))
    env.execute()
    assert_same(built, python, parallelism, "key_by(0)")
    assert {k: [n for _, n in v] for k, v in per_key(counts, lambda p: p[0]).items()} == \
        {k: list(range(1, len(v) + 1)) for k, v in per_key(keys, lambda k: k).items()}


def test_key_by_name_on_dicts_objects_namedtuples(env, parallelism):
    dicts = [{"user": "ann", "n": 1}, {"user": "bob", "n": 2}, {"user": "ann", "n": 3}]
    objs = [Plain("ann", 1, 0), Plain("bob", 2, 1), Plain("ann", 3, 2)]
    nts = [NT("ann", 1, 0), NT("bob", 2, 1), NT("ann", 3, 2)]
    a = run_collect(env.from_collection(dicts).key_by("user").map(lambda d: d["n"]))
    b = run_collect(env.from_collection(objs).key_by("k").count())
    c = run_collect(env.from_collection(nts).key_by("k").max_by("v"))
    env.execute()
    assert sorted(a) == [1, 2, 3]
    assert per_key(b, lambda p: p[0]) == {"ann": [("ann", 1), ("ann", 2)], "bob": [("bob", 1)]}
    assert per_key(c, lambda r: r.k) == {"ann": [NT("ann", 1, 0), NT("ann", 3, 2)], "bob": [NT("bob", 2, 1)]}


def test_count_after_python_key_selector(env, parallelism):
    class ByParity(KeySelector):
        def get_key(self, value):
            return value % 2

    out = run(env, env.from_collection(list(range(7))).key_by(ByParity()).count())
    assert per_key(out, lambda p: p[0]) == {0: [(0, 1), (0, 2), (0, 3), (0, 4)], 1: [(1, 1), (1, 2), (1, 3)]}


def test_aggregation_after_python_key_selector(env, parallelism):
    data = [("x", 1), ("y", 2), ("x", 3)]
    out = run(env, env.from_collection(data).key_by(lambda r: r[0]).sum(1))
    assert per_key(out, lambda r: r[0]) == {"x": [("x", 1), ("x", 4)], "y": [("y", 2)]}


def test_java_style_names(env):
    data = [("a", 2), ("a", 1)]
    out = run(env, env.from_collection(data).key_by(0).minBy(1))
    assert out == [("a", 2), ("a", 1)]


# -- errors -------------------------------------------------------------------------------


def failure(env, stream) -> JobExecutionException:
    stream.add_sink(DiscardingSink())
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    return info.value


@pytest.mark.parametrize("python_path", [False, True], ids=["builtin", "python"])
def test_missing_key_field_fails_in_both_paths(parallelism, python_path):
    env = make_env(parallelism)
    data = [("a", 1), ("b", 2, 3)]
    s = env.from_collection(data)
    err = failure(env, s.key_by(lambda r: r[2]) if python_path else s.key_by(2))
    assert err.kind == "udf"
    if not python_path:
        assert "key_by(2)" in str(err) and "no field 2" in str(err)
        assert "('a', 1)" in str(err) and err.record == "('a', 1)"


def test_missing_name_on_dict_and_object(parallelism):
    env = make_env(parallelism)
    err = failure(env, env.from_collection([{"user": "x"}, {"usr": "y"}]).key_by("user"))
    assert "key_by('user')" in str(err) and "no field 'user'" in str(err) and "{'usr': 'y'}" in str(err)
    env = make_env(parallelism)
    err = failure(env, env.from_collection([Plain("a", 1, 0)]).key_by("name"))
    assert "no field 'name'" in str(err) and "Plain" in str(err)
    env = make_env(parallelism)
    err = failure(env, env.from_collection([("a", 1)]).key_by("name"))
    assert "no field 'name'" in str(err) and "field index" in str(err)


def test_missing_value_field(parallelism):
    """A reduce emits a key's first record as it is and fails on the second; a built-in
    aggregation finds the field missing in the first already."""
    for python_path in (False, True):
        env = make_env(parallelism)
        s = env.from_collection([("a", 1), ("a", 2)]).key_by(0)
        err = failure(env, s.reduce(lambda a, b: (a[0], a[5] + b[5])) if python_path else s.sum(5))
        if python_path:
            assert "IndexError" in str(err)
        else:
            assert "sum(5)" in str(err) and "no field 5" in str(err) and err.record == "('a', 1)"


@pytest.mark.parametrize("op,values,error,builtin_error", [
    ("sum", [1, "x"], "TypeError", "'x' (a str), not a number"),
    ("min", [1, "x"], "TypeError", "TypeError"),
    ("sum", [Decimal(1), 0.5], "TypeError", "TypeError"),
    ("sum", [2**1100, 1.0], "OverflowError", "OverflowError"),
])
def test_non_numeric_values_fail_like_python(parallelism, op, values, error, builtin_error):
    shape = SHAPES[0]
    records = [("k", v, i) for i, v in enumerate(values)]
    for python_path in (False, True):
        env = make_env(parallelism)
        s = env.from_collection(records)
        stream = (s.key_by(lambda r: r[0]).reduce(python_reducer(op, shape)) if python_path
                  else getattr(s.key_by(0), op)(1))
        err = failure(env, stream)
        assert (error if python_path else builtin_error) in str(err), str(err)
        if not python_path:
            assert f"{op}(1)" in str(err)
            assert err.record == repr(records[1])


#: (op, field value a key's first record holds, why it is refused)
REFUSED_FIRST = [
    ("sum", None, "None, not a number"),
    ("sum", "x", "'x' (a str), not a number"),
    ("sum", [1], "[1] (a list), not a number"),
    ("min", None, "None, which cannot be compared"),
    ("max", None, "None, which cannot be compared"),
    ("min_by", None, "None, which cannot be compared"),
    ("max_by", None, "None, which cannot be compared"),
    ("max_by", {"a": 1}, "TypeError"),
]


@pytest.mark.parametrize("op,value,why", REFUSED_FIRST)
@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[1], SHAPES[2], *PAIRS[:1]], ids=repr)
def test_first_record_of_a_key_is_checked_too(parallelism, shape, op, value, why):
    """A key's first record is emitted without meeting another, but a field the
    aggregation cannot take fails the job there too, naming the operator, the record
    and the reason, as a later record does (sum takes numbers only, as Flink's)."""
    records = [shape.make("good", 1, 0), shape.make("bad", value, 1), shape.make("good", 2, 2)]
    env = make_env(parallelism)
    err = failure(env, getattr(env.from_collection(records).key_by(shape.key_field), op)(shape.value_field))
    assert err.kind == "udf"
    assert err.record == repr(records[1])
    assert f"{op}({shape.value_field!r})" in str(err)
    assert why in str(err), str(err)


@pytest.mark.parametrize("op", OPS)
def test_first_record_missing_the_field_fails(parallelism, op):
    env = make_env(parallelism)
    err = failure(env, getattr(env.from_collection([{"k": "a"}]).key_by("k"), op)("v"))
    assert "no field 'v'" in str(err) and err.record == "{'k': 'a'}"


@pytest.mark.flink_semantics(SUM_FIELD_0)
def test_bare_records_are_checked_too():
    """``sum()`` of the records themselves: a str is not a number, first or not. (Under
    Flink's semantics ``sum()`` is ``sum(0)``, field 0 of a bare record being the record.)"""
    env = make_env(1)
    err = failure(env, env.from_collection(["x"]).key_by(lambda r: 0).sum())
    if flink_semantics(env):
        assert "sum(0): " in str(err) and "'x' (a str)" in str(err) and "not a number" in str(err)
    else:
        assert "sum(): the record 'x' (a str) is not a number" in str(err)
    env = make_env(1)
    err = failure(env, env.from_collection([1, "x"]).key_by(lambda r: 0).sum())
    assert "'x' (a str)" in str(err) and "not a number" in str(err)
    assert flink_semantics(env) or "the record 'x' (a str) is not a number" in str(err)


@pytest.mark.parametrize("op", ["sum", "min", "max_by"])
def test_window_aggregations_check_a_windows_first_record(parallelism, op):
    """The same rule in windows: a window's first record becomes its result unreduced."""
    from ferroflow.window import TumblingProcessingTimeWindows

    env = make_env(parallelism)
    records = [("a", 1), ("b", None)]
    err = failure(env, getattr(env.from_collection(records).key_by(0)
                               .window(TumblingProcessingTimeWindows.of(60_000)), op)(1))
    assert err.record == "('b', None)" and f"{op}(1)" in str(err)


def test_plan_time_errors(env):
    s = env.from_collection([("a", 1)])
    with pytest.raises(TypeError, match="field index"):
        s.key_by(0).sum(1.5)
    with pytest.raises(TypeError, match="field index"):
        s.key_by(0).max(True)
    with pytest.raises(TypeError):
        s.key_by(True)
    with pytest.raises(TypeError):
        s.key_by(None)


def test_unhashable_key_field_value(env):
    err = failure(env, env.from_collection([([1], 2)]).key_by(0))
    assert "key_by(0)" in str(err) and "keys must be" in str(err)
