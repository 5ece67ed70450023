"""PyFlink's ``Types`` and ``Row`` (ferroflow.typeinfo, ferroflow.row): the values, and
what a declared type changes in a job (issue 14).

Checked against PyFlink 2.3's behaviour (its ``pyflink/common/types.py``, ``typeinfo.py``,
``datastream/data_stream.py`` and the coders of ``fn_execution``) and the stored outputs of
its own examples (tests/data/pyflink_examples/2.3.0/). The API tests run on 1 worker, 2
threads and 2 processes (conftest's ``env``); rows must cross between them unchanged.
"""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal
from typing import Any, Iterable, List

import pytest

import ferroflow
from conftest import bag, collect, printed
from ferroflow import KeyedProcessFunction, OutputTag, ProcessWindowFunction, SourceFunction, WatermarkStrategy
from ferroflow._errors import InvalidUseError
from ferroflow.row import Row, RowKind
from ferroflow.typeinfo import (RowTypeInfo, TupleTypeInfo, TypeInformation, Types, converter_of, java_text,
                                print_text)
from ferroflow.watermarks import TimestampAssigner
from ferroflow.window import TumblingEventTimeWindows

# -- Row ---------------------------------------------------------------------------------------


def test_row_positional_fields():
    row = Row(1, "a")
    assert row[0] == 1 and row[1] == "a" and row[-1] == "a" and row[0:1] == [1]
    assert len(row) == 2 and list(row) == [1, "a"]
    assert repr(row) == "<Row(1, 'a')>" and str(row) == repr(row)
    assert "a" in row  # a positional row searches its values
    with pytest.raises(TypeError, match="no field names"):
        row.as_dict()
    with pytest.raises(AttributeError):
        row.id  # noqa: B018 - no names, no attributes


def test_row_named_fields_keep_their_order():
    row = Row(name="Alice", id=1)
    assert repr(row) == "Row(name='Alice', id=1)"  # PyFlink 2.3 keeps the order given
    assert row.name == "Alice" and row["id"] == 1 and row[0] == "Alice"
    assert row.as_dict() == {"name": "Alice", "id": 1}
    assert "name" in row and "Alice" not in row  # a named row searches its names
    with pytest.raises(AttributeError, match="no field 'age'"):
        row.age  # noqa: B018
    with pytest.raises(ValueError):
        row["age"]


def test_row_of_names_is_a_factory():
    person = Row("id", "name")
    assert repr(person) == "<Row('id', 'name')>"
    alice = person(1, "Alice")
    assert repr(alice) == "Row(id=1, name='Alice')" and alice.name == "Alice"
    with pytest.raises(ValueError, match="2 fields, got 3"):
        person(1, 2, 3)
    with pytest.raises(ValueError, match="not both"):
        Row(1, name="a")


def test_row_as_dict_recursive():
    row = Row(key=1, value=Row(name="a", age=2), items=[Row(x=1)], more={"k": Row(y=2)})
    assert row.as_dict() == {"key": 1, "value": Row(name="a", age=2), "items": [Row(x=1)], "more": {"k": Row(y=2)}}
    assert row.as_dict(True) == {"key": 1, "value": {"name": "a", "age": 2}, "items": [{"x": 1}], "more": {"k": {"y": 2}}}


def test_row_kind_and_its_short_form():
    row = Row(1)
    assert row.get_row_kind() is RowKind.INSERT
    row.set_row_kind(RowKind.DELETE)
    assert row.get_row_kind() is RowKind.DELETE
    assert [str(k) for k in RowKind] == ["+I", "-U", "+U", "-D"]
    assert Row.of_kind(RowKind.UPDATE_AFTER, a=1).get_row_kind() is RowKind.UPDATE_AFTER


def test_row_setting_fields():
    row = Row(a=1, b=2)
    row["a"] = 10
    row[1] = 20
    assert row.as_dict() == {"a": 10, "b": 20}
    with pytest.raises(AttributeError, match="set fields by index or name"):
        row.a = 5
    row.set_field_names(["x", "y"])
    assert row.x == 10


def test_row_equality_and_hash_as_pyflink():
    assert Row(a=1, b=2) == Row(a=1, b=2)
    assert Row(a=1, b=2) == Row(b=2, a=1)  # named rows compare by name
    assert Row(a=1, b=2) != Row(a=2, b=1)
    assert Row(1, 2) == Row(1, 2) and Row(1, 2) != Row(2, 1)
    assert Row(a=1) != Row(1)  # named never equals positional
    assert Row(1) != (1,) and Row(1) != [1]
    assert Row.of_kind(RowKind.DELETE, 1) != Row(1)  # the kind counts
    assert hash(Row(a=1, b=2)) == hash(Row(a=1, b=2)) == hash((1, 2))
    assert len({Row(1, 2), Row(1, 2), Row(3)}) == 2


@pytest.mark.parametrize("row", [Row(1, "a"), Row(id=1, name="a"), Row.of_kind(RowKind.UPDATE_BEFORE, x=[1, 2])])
def test_row_pickles_and_copies_with_names_and_kind(row):
    for other in (pickle.loads(pickle.dumps(row, 5)), copy.deepcopy(row), copy.copy(row)):
        assert type(other) is Row and other == row and repr(other) == repr(row)
        assert other.get_row_kind() is row.get_row_kind()
        assert other is not row
    deep = copy.deepcopy(row)
    deep[0] = "changed"
    assert row[0] != "changed"


def test_row_survives_the_engines_codec():
    """Records that cross processes go through the binding's codec; a Row, not a tuple
    subclass, must come back a Row with its names and kind."""
    from ferroflow import _engine

    rows = [Row(1, "a"), Row(id=2, name="b"), Row.of_kind(RowKind.DELETE, k=(1, 2.5)), (Row(x=1), [Row(2)])]
    back = _engine._codec_decode(_engine._codec_encode(rows))
    assert back == rows
    assert [repr(r) for r in back] == [repr(r) for r in rows]
    assert back[2].get_row_kind() is RowKind.DELETE and type(back[3][0]) is Row


def test_ferroflow_exports_row_and_types():
    assert ferroflow.Row is Row and ferroflow.Types is Types and ferroflow.RowKind is RowKind
    assert ferroflow.TypeInformation is TypeInformation


# -- Types ---------------------------------------------------------------------------------------

REPRS = [
    (Types.STRING(), "String"), (Types.BYTE(), "Byte"), (Types.BOOLEAN(), "Boolean"), (Types.SHORT(), "Short"),
    (Types.INT(), "Integer"), (Types.LONG(), "Long"), (Types.FLOAT(), "Float"), (Types.DOUBLE(), "Double"),
    (Types.CHAR(), "Char"), (Types.BIG_INT(), "BigInteger"), (Types.BIG_DEC(), "BigDecimal"),
    (Types.INSTANT(), "Instant"), (Types.SQL_DATE(), "DateTypeInfo"), (Types.SQL_TIME(), "TimeTypeInfo"),
    (Types.SQL_TIMESTAMP(), "TimestampTypeInfo"), (Types.PICKLED_BYTE_ARRAY(), "PickledByteArrayTypeInfo"),
    (Types.ROW([Types.INT(), Types.STRING()]), "RowTypeInfo(Integer, String)"),
    (Types.ROW_NAMED(["id", "x"], [Types.INT(), Types.DOUBLE()]), "RowTypeInfo(id: Integer, x: Double)"),
    (Types.TUPLE([Types.STRING(), Types.INT()]), "TupleTypeInfo(String, Integer)"),
    (Types.PRIMITIVE_ARRAY(Types.INT()), "PrimitiveArrayTypeInfo<Integer>"),
    (Types.BASIC_ARRAY(Types.STRING()), "BasicArrayTypeInfo<String>"),
    (Types.OBJECT_ARRAY(Types.ROW([Types.INT()])), "ObjectArrayTypeInfo<RowTypeInfo(Integer)>"),
    (Types.MAP(Types.STRING(), Types.LIST(Types.INT())), "MapTypeInfo<String, ListTypeInfo<Integer>>"),
    (Types.LIST(Types.DOUBLE()), "ListTypeInfo<Double>"),
]


@pytest.mark.parametrize("type_info, text", REPRS, ids=[t for _, t in REPRS])
def test_types_repr_and_equality(type_info, text):
    assert repr(type_info) == text and str(type_info) == text
    assert isinstance(type_info, TypeInformation)
    twin = {t: i for i, (t, _) in enumerate(REPRS)}
    assert twin[type_info] == [r for _, r in REPRS].index(text)  # hashable, equal to itself only
    assert [other == type_info for other, _ in REPRS].count(True) == 1


def test_types_equality_follows_pyflink():
    assert Types.INT() == Types.INT() and Types.INT() != Types.LONG()
    assert Types.ROW([Types.INT()]) == Types.ROW_NAMED(["a"], [Types.INT()])  # names do not count
    assert Types.TUPLE([Types.INT()]) != Types.ROW([Types.INT()])
    assert Types.MAP(Types.INT(), Types.STRING()) != Types.MAP(Types.STRING(), Types.STRING())
    assert Types.INT() != "Integer"


def test_row_type_field_names():
    named = Types.ROW_NAMED(["id", "name"], [Types.INT(), Types.STRING()])
    assert isinstance(named, RowTypeInfo) and named.get_field_names() == ["id", "name"]
    assert named.get_field_index("name") == 1 and named.get_field_index("x") == -1
    assert named.get_field_types() == [Types.INT(), Types.STRING()]
    assert Types.ROW([Types.INT(), Types.INT()]).get_field_names() == ["f0", "f1"]  # Java's default names
    assert isinstance(Types.TUPLE([Types.INT()]), TupleTypeInfo)
    with pytest.raises(ValueError, match="as many names as types"):
        Types.ROW_NAMED(["a"], [Types.INT(), Types.INT()])


def test_no_jvm_type_info_says_so_in_one_line():
    with pytest.raises(InvalidUseError, match="without a JVM") as e:
        Types.INT().get_java_type_info()
    assert "\n" not in str(e.value)


# -- conversions -------------------------------------------------------------------------------


@pytest.mark.parametrize("type_info", [None, object(), Types.STRING(), Types.INT(), Types.LONG(), Types.BOOLEAN(),
                                       Types.PICKLED_BYTE_ARRAY(), Types.TUPLE([Types.STRING(), Types.INT()]),
                                       Types.LIST(Types.STRING()), Types.MAP(Types.STRING(), Types.INT())],
                         ids=repr)
def test_types_that_change_nothing_have_no_converter(type_info):
    """Records pass through at no cost: no function to call per record."""
    assert converter_of(type_info) is None


def test_row_conversion_from_every_record_shape():
    to_row = converter_of(Types.ROW_NAMED(["id", "name"], [Types.INT(), Types.STRING()]))
    assert to_row is not None

    class Person:
        def __init__(self) -> None:
            self.name, self.id = "b", 2

    for record in [(2, "b"), [2, "b"], {"name": "b", "id": 2}, Row(2, "b"), Row(name="b", id=2), Person()]:
        row = to_row(record)
        assert type(row) is Row and repr(row) == "Row(id=2, name='b')" and row.id == 2, record
    kept = to_row(Row.of_kind(RowKind.DELETE, 1, "a"))
    assert kept.get_row_kind() is RowKind.DELETE
    assert to_row(None) is None
    with pytest.raises(ValueError, match="takes 2 fields, got 3"):
        to_row((1, "a", "extra"))
    with pytest.raises(TypeError, match="takes rows, tuples, lists or dicts, got int 5"):
        to_row(5)
    assert repr(converter_of(Types.ROW([Types.INT(), Types.STRING()]))((1, "a"))) == "Row(f0=1, f1='a')"


def test_float_rounds_to_32_bits_wherever_it_is_declared():
    assert converter_of(Types.FLOAT())(110.1) == 110.0999984741211
    assert converter_of(Types.TUPLE([Types.STRING(), Types.FLOAT()]))(["Alice", 110.1]) == ("Alice", 110.0999984741211)
    assert converter_of(Types.LIST(Types.FLOAT()))([0.1]) == [0.10000000149011612]
    assert converter_of(Types.MAP(Types.STRING(), Types.FLOAT()))({"a": 0.1}) == {"a": 0.10000000149011612}
    row = converter_of(Types.ROW([Types.FLOAT()]))((30.2,))
    assert row[0] == 30.200000762939453
    assert converter_of(Types.FLOAT())(1e300) == float("inf")
    with pytest.raises(TypeError, match="FLOAT\\(\\) takes numbers, got str"):
        converter_of(Types.FLOAT())("x")


def test_double_and_big_dec_conversions():
    assert converter_of(Types.DOUBLE())(3) == 3.0 and type(converter_of(Types.DOUBLE())(3)) is float
    assert converter_of(Types.DOUBLE())(2.5) == 2.5
    assert converter_of(Types.BIG_DEC())(1.5) == Decimal("1.5")


# -- what print() shows --------------------------------------------------------------------------

PRINTS = [
    (Types.TUPLE([Types.STRING(), Types.INT(), Types.INT(), Types.INT()]), ("hi", 1, 30, 7), "(hi,1,30,7)"),
    (Types.TUPLE([Types.STRING(), Types.INT()]), ["a", 5], "(a,5)"),
    (Types.ROW_NAMED(["id", "name"], [Types.INT(), Types.STRING()]), (1, "Flink"), "+I[1,Flink]"),
    (Types.ROW([Types.FLOAT(), Types.STRING()]), Row(110.1, None), "+I[110.0999984741211,None]"),
    (Types.BOOLEAN(), True, "true"),
    (Types.STRING(), "plain", "plain"),
    (Types.STRING(), None, "null"),
    (Types.INT(), 7, "7"),
    (Types.FLOAT(), 110.1, "110.1"),
    (Types.DOUBLE(), 3, "3.0"),
    (Types.DOUBLE(), 1e10, "1.0E10"),
    (Types.DOUBLE(), 1e7, "1.0E7"),
    (Types.DOUBLE(), 9999999.0, "9999999.0"),
    (Types.DOUBLE(), 0.001, "0.001"),
    (Types.DOUBLE(), 0.0001, "1.0E-4"),
    (Types.DOUBLE(), -2.5e-10, "-2.5E-10"),
    (Types.DOUBLE(), float("nan"), "NaN"),
    (Types.DOUBLE(), float("-inf"), "-Infinity"),
    (Types.PICKLED_BYTE_ARRAY(), "text", "text"),
    (Types.PICKLED_BYTE_ARRAY(), ("a", 1), "('a', 1)"),
    (Types.TUPLE([Types.BOOLEAN(), Types.DOUBLE(), Types.STRING(), Types.ROW([Types.INT(), Types.STRING()]),
                  Types.LIST(Types.INT()), Types.MAP(Types.STRING(), Types.INT())]),
     (False, 2.0, None, (1, "x"), [1, 2], {"k": 3}), "(false,2.0,null,+I[1, x],[1, 2],{k=3})"),
]


@pytest.mark.parametrize("type_info, value, text", PRINTS, ids=[t for _, _, t in PRINTS])
def test_print_text_is_pyflinks(type_info, value, text):
    assert print_text(type_info)(value) == text


def test_java_text_of_a_row_is_javas_row_to_string():
    """A Java string encoder (a FileSink's) writes Java's Row.toString: ", " between fields."""
    assert java_text(Types.ROW([Types.INT(), Types.STRING()]))((1, "Flink")) == "+I[1, Flink]"
    assert java_text(None) is None and print_text(None) is None and print_text(object()) is None


# -- in jobs -------------------------------------------------------------------------------------

PEOPLE = Types.ROW_NAMED(["id", "name"], [Types.INT(), Types.STRING()])


def test_from_collection_row_named_gives_rows(env):
    """PyFlink's basic_operations.py: ``data.id`` on a ROW_NAMED collection."""
    ds = env.from_collection([(1, "a"), (2, "b"), (3, "c")], type_info=PEOPLE)
    assert ds.get_type() == PEOPLE
    out = collect(ds.rebalance().map(lambda data: (data.id * 10, data.name, type(data).__name__)))
    env.execute()
    assert bag(out) == bag([(10, "a", "Row"), (20, "b", "Row"), (30, "c", "Row")])


def test_rows_cross_workers_and_processes_unchanged(env, parallelism):
    """Rows keyed to every worker (another process under 2proc) keep their class, names and kind."""
    rows = [Row.of_kind(RowKind.UPDATE_AFTER, id=i, name=f"n{i}") for i in range(20)]

    def inspect_row(row: Any) -> tuple:
        return type(row).__name__, tuple(row._fields), str(row.get_row_kind()), row.id, row["name"]

    out = collect(env.from_collection(rows).key_by(lambda r: r.id).map(inspect_row))
    seen = collect(env.from_collection(rows).key_by(lambda r: r.id).map(lambda r: 0).map(_worker_of))
    env.execute()
    assert bag(out) == bag(("Row", ("id", "name"), "+U", i, f"n{i}") for i in range(20))
    assert len(set(seen)) == parallelism  # the rows really went to every worker


class _Worker:
    def open(self, runtime_context: Any) -> None:
        self.index = runtime_context.get_index_of_this_subtask()

    def map(self, value: Any) -> int:
        return self.index


_worker_of = _Worker()


def test_map_output_type_row_and_float(env):
    src = env.from_collection([("Alice", 110.1), ("Bob", 30.2)])
    assert src.get_type() == Types.PICKLED_BYTE_ARRAY()
    rows = src.map(lambda v: v, output_type=Types.ROW_NAMED(["name", "score"], [Types.STRING(), Types.FLOAT()]))
    assert rows.get_type() == Types.ROW([Types.STRING(), Types.FLOAT()])
    out = collect(rows.map(lambda r: (r.name, r.score, repr(r))))
    env.execute()
    assert bag(out) == bag([("Alice", 110.0999984741211, "Row(name='Alice', score=110.0999984741211)"),
                            ("Bob", 30.200000762939453, "Row(name='Bob', score=30.200000762939453)")])


def test_flat_map_and_process_output_types_convert(env):
    tag = OutputTag("side")

    class Split(KeyedProcessFunction):
        def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
            yield value, 0.1
            yield tag, ("untouched", 0.1)

    src = env.from_collection(["a", "b"])
    flat = src.flat_map(lambda v: [[v, 1], [v, 2]], output_type=Types.ROW([Types.STRING(), Types.INT()]))
    processed = src.key_by(lambda v: v).process(Split(), output_type=Types.TUPLE([Types.STRING(), Types.FLOAT()]))
    out_flat = collect(flat.map(repr))
    out_processed = collect(processed)
    out_side = collect(processed.get_side_output(tag))
    env.execute()
    assert bag(out_flat) == bag(["Row(f0='a', f1=1)", "Row(f0='a', f1=2)", "Row(f0='b', f1=1)", "Row(f0='b', f1=2)"])
    assert bag(out_processed) == bag([("a", 0.10000000149011612), ("b", 0.10000000149011612)])
    assert bag(out_side) == bag([("untouched", 0.1)] * 2)  # a side output has its tag's type, not the main one's


def test_side_output_of_a_typed_tag_converts(env):
    tag = OutputTag("rows", Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.INT()]))

    class Tagger(KeyedProcessFunction):
        def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
            yield tag, (value, len(value))

    side = env.from_collection(["a", "bb"]).key_by(lambda v: v).process(Tagger()).get_side_output(tag)
    assert side.get_type() == tag.type_info
    out = collect(side.map(lambda r: (r.k, r.v)))
    env.execute()
    assert bag(out) == bag([("a", 1), ("bb", 2)])


def test_keyed_reduce_and_aggregations_keep_the_streams_type(env):
    scores = Types.ROW_NAMED(["name", "score"], [Types.STRING(), Types.INT()])
    src = env.from_collection([("a", 1), ("a", 2), ("b", 5)], type_info=scores)
    reduced = src.key_by(lambda r: r.name).reduce(lambda x, y: (x.name, x.score + y.score))
    summed = src.key_by(lambda r: r.name).sum("score")
    assert reduced.get_type() == scores and summed.get_type() == scores
    out_reduced = collect(reduced.map(repr))
    out_summed = collect(summed.map(repr))
    env.execute()
    want = ["Row(name='a', score=1)", "Row(name='a', score=3)", "Row(name='b', score=5)"]
    assert bag(out_reduced) == bag(want) and bag(out_summed) == bag(want)


class _Stamp(TimestampAssigner):
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return int(value[1])


class _Count(ProcessWindowFunction):
    def process(self, key: Any, context: Any, elements: Iterable[Any]) -> List[Any]:
        return [[key, context.window().start, context.window().end, len(list(elements))]]


def test_window_functions_output_types(env, parallelism, capsys):
    """PyFlink's windowing examples: a process window function declared TUPLE prints
    Java's tuple form; reduce and aggregate outputs convert too."""
    src = env.from_collection([("hi", 1), ("hi", 2), ("hi", 6)], type_info=Types.TUPLE([Types.STRING(), Types.INT()]))
    windowed = src.assign_timestamps_and_watermarks(
        WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(_Stamp())) \
        .key_by(lambda x: x[0], key_type=Types.STRING()).window(TumblingEventTimeWindows.of(5))
    windowed.process(_Count(), Types.TUPLE([Types.STRING(), Types.INT(), Types.INT(), Types.INT()])).print()
    reduced = collect(windowed.reduce(lambda a, b: [a[0], a[1] + b[1]],
                                      output_type=Types.ROW_NAMED(["w", "n"], [Types.STRING(), Types.INT()])))
    applied = collect(windowed.apply(lambda k, w, vs: [(k, 0.1)], Types.TUPLE([Types.STRING(), Types.FLOAT()])))
    env.execute()
    lines = printed(capsys.readouterr().out, parallelism)
    assert bag(text for _, text in lines) == bag(["(hi,0,5,2)", "(hi,5,10,1)"])
    assert bag(reduced) == bag([Row(w="hi", n=3), Row(w="hi", n=6)])
    assert bag(applied) == bag([("hi", 0.10000000149011612)] * 2)


class _Avg:
    def create_accumulator(self) -> List[int]:
        return [0, 0]

    def add(self, value: Any, acc: List[int]) -> List[int]:
        return [acc[0] + value[1], acc[1] + 1]

    def get_result(self, acc: List[int]) -> float:
        return acc[0] / acc[1] + 0.1

    def merge(self, a: List[int], b: List[int]) -> List[int]:
        return [a[0] + b[0], a[1] + b[1]]


def test_window_aggregate_output_type_converts_the_result_only(env):
    src = env.from_collection([("k", 1), ("k", 2)]).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(_Stamp()))
    out = collect(src.key_by(lambda x: x[0]).window(TumblingEventTimeWindows.of(10))
                  .aggregate(_Avg(), output_type=Types.FLOAT()))
    env.execute()
    assert out == [1.600000023841858]


def test_print_of_typed_streams(env, parallelism, capsys):
    env.from_collection([(1, "Flink")], type_info=PEOPLE).print()
    env.from_collection([True], type_info=Types.BOOLEAN()).print()
    env.from_collection([("a", 1.5)], type_info=Types.TUPLE([Types.STRING(), Types.DOUBLE()])) \
        .key_by(lambda t: t[0]).print()  # a keyed stream prints its records, of the same type
    env.from_collection(["s"], type_info=Types.PICKLED_BYTE_ARRAY()).print()
    env.from_collection(["s"]).print()  # undeclared: ferroflow's repr, as before
    env.execute()
    lines = printed(capsys.readouterr().out, parallelism)
    assert bag(text for _, text in lines) == bag(["+I[1,Flink]", "true", "(a,1.5)", "s", "'s'"])


class _Numbers(SourceFunction):
    def run(self, ctx: Any) -> None:
        for i in range(3):
            ctx.collect((i, i * 1.1))

    def cancel(self) -> None:
        pass


def test_add_source_and_from_source_type_info(env):
    pairs = Types.ROW_NAMED(["i", "x"], [Types.INT(), Types.FLOAT()])
    by_source = collect(env.add_source(_Numbers(), "numbers", type_info=pairs).map(lambda r: (r.i, r.x)))
    by_from_source = collect(env.from_source([(7, "a")], WatermarkStrategy.no_watermarks(), "c", type_info=PEOPLE)
                             .map(lambda r: r.name))
    env.execute()
    assert bag(by_source) == bag([(0, 0.0), (1, 1.100000023841858), (2, 2.200000047683716)])
    assert by_from_source == ["a"]


def test_declared_types_travel_with_the_records_operators():
    env = ferroflow.StreamExecutionEnvironment.get_execution_environment()
    src = env.from_collection([(1, "a")], type_info=PEOPLE)
    assert src.filter(bool).get_type() == PEOPLE
    assert src.key_by(lambda r: r.id).get_type() == PEOPLE
    assert src.rebalance().union(src).get_type() == PEOPLE
    assert src.map(lambda r: r).get_type() == Types.PICKLED_BYTE_ARRAY()  # an undeclared result
    assert env.read_text_file(__file__).get_type() == Types.STRING()
    assert env.generate_sequence(1, 2).get_type() == Types.LONG()


def test_undeclared_and_pass_through_types_add_no_call_per_record():
    """The hot path of an untyped job is unchanged: no wrapper around the user's
    function, no text function in the print sink; the same for types that change
    nothing (a TUPLE of basic types)."""
    env = ferroflow.StreamExecutionEnvironment.get_execution_environment()
    src = env.from_collection([("a", 1)])
    for stream in (src.map(str), src.map(str, output_type=Types.TUPLE([Types.STRING(), Types.INT()])),
                   src.map(str, output_type=Types.STRING()), src.flat_map(str, output_type=Types.LONG())):
        assert env._nodes[stream._node].kind.udf.wrap is None
    src.map(str).key_by(len).filter(bool).print()
    assert env._nodes[-1].kind.text is None  # repr, in Rust
    assert env._nodes[src.map(str, output_type=Types.FLOAT())._node].kind.udf.wrap is not None


def test_a_stand_in_type_label_is_kept_and_changes_nothing(env):
    """An object that is not a TypeInformation (a script's own stand-in) is accepted."""
    label = object()
    ds = env.from_collection([(1, 2)], type_info=label).map(lambda v: v, output_type=label)
    assert ds.get_type() is label
    out = collect(ds)
    env.execute()
    assert out == [(1, 2)]


class _Both:
    def map1(self, value: Any) -> Any:
        return (value, 1)

    def map2(self, value: Any) -> Any:
        return (value, 2)


def test_connected_streams_declare_their_output_type(env, parallelism, capsys):
    """Connected, broadcast and join outputs take the declared type for ``get_type()``
    and ``print()`` (their records are converted where they are printed)."""
    pairs = Types.TUPLE([Types.STRING(), Types.BOOLEAN()])
    both = env.from_collection(["a"]).connect(env.from_collection(["b"])).map(_Both(), output_type=pairs)
    assert both.get_type() == pairs
    both.print()
    env.execute()
    lines = printed(capsys.readouterr().out, parallelism)
    assert bag(text for _, text in lines) == bag(["(a,true)", "(b,true)"])


def test_the_pyflink_print_hook_shows_undeclared_streams_as_pyflink(parallelism, capsys):
    """``_prints_undeclared_as_pyflink`` (set by the pyflink namespace's environment):
    an undeclared stream prints ``str(record)``, a text source its lines as they are."""
    from conftest import make_env

    env = make_env(parallelism)
    env._prints_undeclared_as_pyflink = True
    env.from_collection(["s", ("a", 1)]).print()
    env.from_collection([Row(x=1)]).print()
    env.execute()
    lines = printed(capsys.readouterr().out, parallelism)
    assert bag(text for _, text in lines) == bag(["s", "('a', 1)", "Row(x=1)"])
