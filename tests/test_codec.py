"""The cross-process record codec (crates/python/src/codec.rs), through its test hooks
`ferroflow._engine._codec_encode(list) -> bytes` and `_codec_decode(bytes) -> list`.

Round trips must give back equal values of the *same exact types* (bool stays bool,
a namedtuple stays a namedtuple via the pickle fallback, -0.0 and NaN keep their bits);
unpicklable records must fail with a message naming the type; corrupt bytes must raise
ValueError, never crash the interpreter.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import math
import struct
import typing
from fractions import Fraction

import pytest

from ferroflow import _engine

if not hasattr(_engine, "_codec_encode"):  # pragma: no cover
    pytest.skip("ferroflow._engine has no _codec_encode: codec::register(m) is not in lib.rs yet",
                allow_module_level=True)

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

encode = _engine._codec_encode
decode = _engine._codec_decode

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- helpers ------------------------------------------------------------------------

def same(a, b) -> bool:
    """Deep equality that also requires identical types, float bits and dict order."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, (tuple, list)):  # namedtuples too (types already match)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return len(a) == len(b) and all(same(ka, kb) and same(va, vb)
                                        for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    return a == b


def round_trip(records):
    data = encode(records)
    assert isinstance(data, bytes)
    return decode(data)


def assert_round_trips(records):
    out = round_trip(records)
    assert same(out, records), (records, out)


# Module-level so pickle can find them by name.
Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass(frozen=True)
class Account:
    owner: str
    balance: int


class Color(enum.IntEnum):
    RED = 1


class Tagged(str):
    pass


class Clears:
    """Pickling it empties `target` (a container being encoded)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        self.target.clear()
        return (int, (0,))


# -- strategies ---------------------------------------------------------------------

# All of Unicode, lone surrogates included: they have no UTF-8 form, so the codec sends
# such strs pickled; the round trip must still be exact.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.integers(min_value=-(2 ** 300), max_value=2 ** 300),
    st.sampled_from([0, -1, 2 ** 63 - 1, 2 ** 63, -(2 ** 63), -(2 ** 63) - 1, 2 ** 64, 255, -256]),
)
floats = st.one_of(
    st.floats(),  # includes nan, inf, -0.0
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324]),
    st.integers(0, 2 ** 64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]),
)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, any_text, st.binary(max_size=40))
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3).map(tuple),
                         max_leaves=6)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6).map(tuple),
        st.lists(inner, max_size=6),
        st.dictionaries(hashables, inner, max_size=5),
        st.builds(Point, inner, inner),
    ),
    max_leaves=20,
)


# -- round trips --------------------------------------------------------------------

@SETTINGS
@given(st.lists(values, max_size=10))
def test_round_trip_any_values(records):
    assert_round_trips(records)


@SETTINGS
@given(st.lists(any_text, max_size=50))
def test_round_trip_strings(records):
    assert_round_trips(records)


def test_scalars_keep_their_exact_types():
    records = [None, True, False, 0, 1, -1, 1.0, -0.0, math.inf, -math.inf, "", "x", b"", b"\x00\xff",
               (), [], {}, (1,), [True], {1: 1.0, "1": b"1", True: None}]
    out = round_trip(records)
    assert same(out, records)
    assert [type(x) for x in out] == [type(x) for x in records]
    nan = round_trip([math.nan])[0]
    assert type(nan) is float and math.isnan(nan)


def test_big_ints():
    records = [2 ** 63 - 1, 2 ** 63, -(2 ** 63), -(2 ** 63) - 1, 2 ** 64, -(2 ** 64), 10 ** 100, -(10 ** 100),
               2 ** 4000 + 1, -(2 ** 4000)]
    assert_round_trips(records)


def test_unicode_including_lone_surrogates():
    records = ["héllo", "日本語", "🦀 crab", "\x00", "\ud800", "a\udfffb", "\U0010ffff", "é" * 40, "x" * 10_000]
    assert_round_trips(records)


def test_equal_strings_in_a_batch_and_strings_differing_in_one_byte():
    # Decoding shares equal short strs within a batch; near-equal ones must stay distinct.
    records = []
    for n in range(0, 42):
        base = "a" * n
        records.append(base)
        for i in range(n):
            records.append(base[:i] + "b" + base[i + 1:])
            records.append(base[:i] + "é" + base[i + 1:])
    records += records[:50]
    assert_round_trips(records)


def test_subclasses_and_other_types_go_through_pickle_and_keep_their_type():
    od = collections.OrderedDict([("b", 1), ("a", 2)])
    dd = collections.defaultdict(int, {"x": 3})
    records = [
        Point(1, "a"),
        (Point(1, 2), [Point(3, 4)]),
        Account("ann", 10),
        {"acct": Account("bob", -1)},
        Color.RED,
        Tagged("tag"),
        od,
        dd,
        {1, 2, 3},
        frozenset({"a"}),
        decimal.Decimal("1.10"),
        Fraction(1, 3),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        complex(1, -2),
        bytearray(b"ab"),
        range(3),
    ]
    out = round_trip(records)
    assert out == records
    assert [type(x) for x in out] == [type(x) for x in records]
    assert type(out[1][0]) is Point and type(out[1][1][0]) is Point
    assert type(out[5]) is Tagged
    assert type(out[7]) is collections.defaultdict and out[7]["missing"] == 0


def test_shared_references_arrive_as_equal_copies():
    x = [1, 2]
    (out,) = round_trip([(x, x)])
    assert out == (x, x)


def test_deep_and_self_referencing_records_are_pickled_whole():
    deep = 0
    for _ in range(200):
        deep = [deep]
    assert round_trip([deep]) == [deep]
    at_limit = 0
    for _ in range(64):
        at_limit = (at_limit,)
    assert round_trip([at_limit]) == [at_limit]

    loop = [1]
    loop.append(loop)
    (out,) = round_trip([loop])
    assert out[0] == 1 and out[1] is out
    d = {}
    d["self"] = d
    (out,) = round_trip([d])
    assert out["self"] is out


def test_many_records_and_empty_batch():
    words = ["the", "quick", "brown", "fox", "é", ""]
    records = [(words[i % len(words)], i) for i in range(20_000)]
    assert round_trip(records) == records
    assert encode([]) == b"\x01\x00"
    assert decode(b"\x01\x00") == []


def test_format_is_compact_and_pinned():
    # version 1, 1 record, tuple(2), str(2) "hi", int zigzag(1) = 2
    assert encode([("hi", 1)]) == b"\x01\x01\x08\x02\x06\x02hi\x03\x02"
    assert len(encode([("hello", 1)] * 1000)) < 11 * 1000 + 4
    assert encode([-1.5]) == b"\x01\x01\x05" + struct.pack("<d", -1.5)


# -- errors -------------------------------------------------------------------------

def test_unpicklable_record_names_its_type():
    with pytest.raises(ValueError) as e:
        encode([1, (x for x in [])])
    assert str(e.value).startswith(
        "cannot send a record of type 'generator' to another process: it cannot be pickled (")
    assert "TypeError" in str(e.value)


def test_unpicklable_value_inside_a_record_names_both_types():
    with pytest.raises(ValueError) as e:
        encode([("key", {"f": lambda: 1})])
    msg = str(e.value)
    assert msg.startswith("cannot send a record of type 'tuple' to another process: it contains a 'function'")
    assert "cannot be pickled" in msg


def test_container_changed_while_encoding_is_an_error_not_a_crash():
    lst = [None, 1]
    lst[0] = Clears(lst)
    with pytest.raises(ValueError, match="changed size"):
        encode([lst])
    d = {"a": None, "b": 1}
    d["a"] = Clears(d)
    with pytest.raises(ValueError, match="changed size"):
        encode([d])


def test_unpickling_an_unknown_class_is_a_clear_error():
    blob = b"cno_such_module_for_ferroflow\nThing\n."  # pickle protocol 0: a global
    data = b"\x01\x01\x0b" + bytes([len(blob)]) + blob
    with pytest.raises(ValueError, match="cannot unpickle a record received from another process"):
        decode(data)


def test_corrupt_batches_raise_value_error():
    cases = [
        (b"", "corrupt record batch"),
        (b"\x02\x00", "version 2 is not supported"),
        (b"\x01\x01\x3f", "unknown tag 0x3f"),
        (b"\x01\x01\x06\x02\xc3\x28", "not valid UTF-8"),
        (b"\x01\x01\x09\xff\xff\xff\xff\x0f", "exceeds"),
        (b"\x01\x01\x00\x00", "bytes after the last value"),
        (b"\x01\x01\x0a\x01\x09\x00\x00", "bad dict key"),  # a list as a dict key
        (b"\x01\x01" + b"\x09\x01" * 100 + b"\x00", "nested more than 64 deep"),
    ]
    for data, message in cases:
        with pytest.raises(ValueError, match=message):
            decode(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=3), st.data())
def test_damaged_batches_fail_cleanly(records, data):
    good = encode(records)
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(ValueError):
        decode(good[:cut])
    i = data.draw(st.integers(0, len(good) - 1))
    flipped = bytearray(good)
    flipped[i] = data.draw(st.integers(0, 255))
    try:
        decode(bytes(flipped))
    except ValueError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_fail_cleanly(data):
    for blob in (data, b"\x01" + data):
        try:
            out = decode(blob)
        except ValueError:
            continue
        assert isinstance(out, list)


def test_tuples_of_values_that_refer_to_nothing_leave_the_garbage_collector():
    """Decoded tuples holding only str/int/float/bytes/None/bool (or such tuples) are
    untracked at birth, as CPython's collector would untrack them on its first pass;
    a tuple holding anything that can form a cycle stays tracked."""
    import gc

    flat, nested, with_list, with_dict, empty = decode(encode(
        [("word", 1, 2.5, b"x", None, True), (("a", 1), "b"), ("a", [1]), (1, {"k": 2}), ()]))
    assert not gc.is_tracked(flat)
    assert not gc.is_tracked(nested) and not gc.is_tracked(nested[0])
    assert gc.is_tracked(with_list) and gc.is_tracked(with_list[1])
    assert gc.is_tracked(with_dict)
    assert not gc.is_tracked(empty)


class Reading(typing.NamedTuple):
    sensor: str
    value: float


class CheckedPoint(Point):
    """Overrides __new__: must go through pickle, so that __new__ runs on arrival."""

    __slots__ = ()
    made = 0

    def __new__(cls, x, y):
        CheckedPoint.made += 1
        return super().__new__(cls, x, y)


def test_named_tuples_travel_with_their_class_named_once_per_batch():
    from ferroflow.connectors.nexmark import Bid

    bid = Bid(1, 2, 300, "web", "http://x", 1_700_000_000_000, "")
    records = [Point(1, "a"), Reading("s1", 2.5), bid, (Point(3, 4), [Reading("s2", -1.0)]), Point(5, 6)]
    data = encode(records)
    out = decode(data)
    assert out == records
    assert [type(x) for x in out] == [type(x) for x in records]
    assert type(out[3][0]) is Point and type(out[3][1][0]) is Reading
    assert out[2].price == 300
    # No pickle: each class's name appears once in the batch.
    assert b"pickle" not in data and data.count(b"test_codec:Point") == 1
    assert data.count(b"ferroflow.connectors.nexmark:Bid") == 1


def test_named_tuple_subclass_overriding_new_is_pickled_and_its_new_runs():
    before = CheckedPoint.made
    (out,) = round_trip([CheckedPoint(1, 2)])
    assert type(out) is CheckedPoint and out == (1, 2)
    assert CheckedPoint.made == before + 2  # made here, and again by unpickling


def test_named_tuple_class_missing_on_arrival_is_a_clear_error():
    data = encode([Reading("s", 1.0)])
    bad = data.replace(b"test_codec:Reading", b"test_codec:Readinx")
    with pytest.raises(ValueError, match="cannot rebuild a record of class test_codec:Readinx"):
        decode(bad)
    not_named = data.replace(b"test_codec:Reading", b"test_codec:Account")
    with pytest.raises(ValueError, match="not the same named tuple class"):
        decode(not_named)
