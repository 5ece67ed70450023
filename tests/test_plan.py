"""The plan's contract between the API and the binding (``ferroflow/_nodes.py``): every
node the API records has a declared, typed kind; the binding knows every declared kind
and rejects anything else as ferroflow's bug; user values the binding could not read
are refused at the user's call. Also: the package has no import cycles."""

from __future__ import annotations

import ast
import os
from typing import Any, Dict, List, Optional, Set

import pytest

import ferroflow
from ferroflow import InternalError, OutputTag, StreamExecutionEnvironment, _engine, _nodes
from ferroflow.connectors import FixedPartitionedSink, FixedPartitionedSource
from ferroflow.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink, KafkaSource
from ferroflow.connectors.nexmark import NexmarkSource
from ferroflow.testing import TestSource, Watermark
from ferroflow.watermarks import WatermarkStrategy
from ferroflow.window import CountEvictor, CountTrigger, TumblingEventTimeWindows

def declared(base: type) -> List[type]:
    return [cls for cls in vars(_nodes).values() if isinstance(cls, type) and issubclass(cls, base) and cls.KIND]


DECLARED = declared(_nodes.NodeKind)
SETTINGS = {_nodes.AssignerSpec: declared(_nodes.AssignerSpec), _nodes.TriggerSpec: declared(_nodes.TriggerSpec),
            _nodes.EvictorSpec: declared(_nodes.EvictorSpec)}


def test_kinds_are_declared_once():
    for classes in [DECLARED, *SETTINGS.values()]:
        kinds = [cls.KIND for cls in classes]
        assert len(kinds) == len(set(kinds)), kinds
    typed = declared(_nodes.Typed)
    assert sorted(typed, key=str) == sorted(DECLARED + [c for cs in SETTINGS.values() for c in cs], key=str)
    bases = ["Typed", "NodeKind", "Source", "Sink", "AssignerSpec", "TriggerSpec", "EvictorSpec"]
    assert sorted(_nodes.__all__) == sorted(bases + [cls.__name__ for cls in typed])


def every_api_node() -> StreamExecutionEnvironment:
    """A plan using every API method that records a node."""
    env = StreamExecutionEnvironment.get_execution_environment()
    s = env.from_collection([("a", 1)])
    keyed = s.key_by(0)
    keyed.sum(1).print()
    keyed.min_by(1).add_sink(lambda x: None)
    s.key_by(lambda x: x[0]).count().write_as_text("/nonexistent/out")
    s.key_by(lambda x: x[0]).reduce(lambda a, b: a).filter(bool).flat_map(lambda x: [x]).print()
    s.map_batch(lambda b: b).filter_batch(lambda b: [True] * len(b)).flat_map_batch(lambda b: b).print()
    ts = env.add_source(TestSource([("a", 1), Watermark(5)])).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(10).with_timestamp_field(1))
    tag = OutputTag("late")
    w = (ts.key_by(0).window(TumblingEventTimeWindows.of(10)).trigger(CountTrigger.of(2))
         .evictor(CountEvictor.of(3)).side_output_late_data(tag).sum(1))
    w.get_side_output(tag).union(w).print()
    ts.window_all(TumblingEventTimeWindows.of(10)).apply(lambda window, values: values).print()
    loop = env.generate_sequence(1, 3).iterate(1000)
    loop.close_with(loop.map(lambda x: x - 1).filter(lambda x: x > 0)).write_to_socket("localhost", 9, str)
    env.read_json_lines("/nonexistent/in.jsonl").print()
    env.read_text_file("/nonexistent/in").union(env.socket_text_stream("localhost", 9)).add_sink(
        ferroflow.DiscardingSink())
    s.rebalance().connect(s.broadcast()).map(_CoMap()).print()
    side = OutputTag("side")
    processed = keyed.process(_Process(side))
    processed.get_side_output(side).union(processed).print()
    env.from_source(_Parts(), WatermarkStrategy.no_watermarks(), "parts").sink_to(_PartsSink())
    kafka = KafkaSource.builder().set_bootstrap_servers("localhost:9092").set_topics("t") \
        .set_value_only_deserializer(ferroflow.SimpleStringSchema()).build()
    env.from_source(kafka, WatermarkStrategy.no_watermarks()).sink_to(
        KafkaSink.builder().set_bootstrap_servers("localhost:9092").set_record_serializer(
            KafkaRecordSerializationSchema.builder().set_topic("u")
            .set_value_serialization_schema(ferroflow.SimpleStringSchema()).build()).build())
    env.from_source(NexmarkSource(10), WatermarkStrategy.no_watermarks(), "nexmark").print()
    env.from_source(NexmarkSource.from_json_lines(__file__), WatermarkStrategy.no_watermarks()).print()
    return env


class _Parts(FixedPartitionedSource):
    def list_parts(self) -> Any:
        return ["a"]


class _PartsSink(FixedPartitionedSink):
    def list_parts(self) -> Any:
        return ["a"]


class _CoMap(ferroflow.CoMapFunction):
    def map1(self, value: Any) -> Any:
        return value

    def map2(self, value: Any) -> Any:
        return value


class _Process(ferroflow.KeyedProcessFunction):
    def __init__(self, tag: OutputTag) -> None:
        self.tag = tag

    def process_element(self, value: Any, ctx: Any) -> Any:
        yield self.tag, value


def test_every_api_node_has_a_declared_kind():
    env = every_api_node()
    used = {type(n.kind) for n in env._nodes}
    assert used <= set(DECLARED)
    # This plan covers nearly every kind (FunctionSource and friends have tests of their own).
    assert len(used) >= len(DECLARED) - 3, set(DECLARED) - used


class _EngineNode:
    def __init__(self, kind: Any, inputs: Optional[List[int]] = None) -> None:
        self.kind = kind
        self.name = "the node (job.py:1)"
        self.inputs = inputs or []
        self.parallelism = None


def run_nodes(*nodes: _EngineNode) -> str:
    """The binding's answer to a plan: the text of the error it fails with ("" if none)."""
    try:
        _engine.run_job(list(nodes))
    except _engine.JobFailed as e:
        text, kind = e.args[0], e.args[1]
        return f"{kind}: {text}"
    return ""


@pytest.mark.parametrize("cls", DECLARED, ids=lambda c: c.KIND)
def test_the_binding_knows_every_declared_kind(cls):
    # A kind without its fields: the binding must know it and say what it could not read.
    kind = object.__new__(cls)
    answer = run_nodes(_EngineNode(kind))
    assert "unknown node kind" not in answer, answer


@pytest.mark.parametrize("cls", [c for cs in SETTINGS.values() for c in cs], ids=lambda c: c.__name__)
def test_the_binding_knows_every_declared_window_setting(cls):
    setting = object.__new__(cls)  # without its fields, as above
    defaults = {"assigner": _nodes.GlobalSpec(), "trigger": None, "evictor": None}
    role = {_nodes.AssignerSpec: "assigner", _nodes.TriggerSpec: "trigger", _nodes.EvictorSpec: "evictor"}
    field = next(role[base] for base in role if issubclass(cls, base))
    window = _nodes.Window(**dict(defaults, **{field: setting}), allowed_lateness=0, late_output_tag=None,
                           reduce=ferroflow._plan.Udf(lambda a, b: a, ("reduce",)))
    answer = run_nodes(_EngineNode(window))
    assert f"unknown {'window ' if field == 'assigner' else ''}{field}" not in answer, answer
    # A setting with fields was dispatched to its reader, which missed them.
    assert ("could not be read" in answer) == bool(cls.__slots__), answer


def test_an_unknown_node_kind_is_ferroflows_bug():
    class Bogus(_nodes.NodeKind):
        KIND = "bogus"
        __slots__ = ()

    answer = run_nodes(_EngineNode(Bogus()))
    assert answer.startswith("internal: internal error in the node (job.py:1): unknown node kind 'bogus'"), answer
    assert "bug in ferroflow" in answer
    answer = run_nodes(_EngineNode({"kind": "map"}))
    assert answer.startswith("internal: internal error in the node (job.py:1): unknown node kind: {"), answer
    bogus_trigger = _nodes.Window(_nodes.GlobalSpec(), Bogus(), None, 0, None,
                                  reduce=ferroflow._plan.Udf(lambda a, b: a, ("reduce",)))
    answer = run_nodes(_EngineNode(bogus_trigger))
    assert "node kind 'window' could not be read" in answer and "unknown trigger 'bogus'" in answer, answer


def test_a_field_of_the_wrong_type_is_ferroflows_bug():
    env = StreamExecutionEnvironment.get_execution_environment()
    stream = env.generate_sequence(1, 3)
    env._nodes[stream._node].kind = _nodes.Sequence("1", 3)  # the API would never do this
    stream.print()
    with pytest.raises(InternalError) as info:
        env.execute()
    text = str(info.value)
    assert "internal error in generate_sequence '1..3'" in text and "node kind 'sequence' could not be read" in text
    assert "start" in text and "bug in ferroflow" in text


@pytest.mark.parametrize("call, message", [
    (lambda env: env.generate_sequence(0, 2**63), "generate_sequence\\(\\): end must fit in 64 bits"),
    (lambda env: env.generate_sequence(-2**63 - 1, 0), "generate_sequence\\(\\): start must fit in 64 bits"),
    (lambda env: env.from_elements(1).write_to_socket("localhost", 70000, str), "port must be an int between"),
    (lambda env: env.from_elements(1).key_by(0).window(TumblingEventTimeWindows.of(2**64)), "fit in 64 bits"),
    (lambda env: CountTrigger.of(2**64), "CountTrigger.of\\(\\): the count must fit in 64 bits"),
])
def test_values_the_binding_cannot_take_are_refused_at_the_call(call, message):
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(ValueError, match=message):
        call(env)


def test_the_largest_sequence_bounds_run():
    env = StreamExecutionEnvironment.get_execution_environment()
    out: List[int] = []
    env.generate_sequence(2**63 - 2, 2**63 - 1).add_sink(out.append)
    env.execute()
    assert sorted(out) == [2**63 - 2, 2**63 - 1]


# -- import cycles -----------------------------------------------------------------------------


def _imports(package_dir: str) -> Dict[str, Set[str]]:
    """Module -> the package's modules it imports at run time (anywhere in the module,
    functions included; not ``if TYPE_CHECKING:`` blocks)."""
    modules = {}
    for folder, _, files in os.walk(package_dir):
        for f in files:
            if f.endswith((".py", ".pyi")):
                rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(package_dir))
                name = rel.rsplit(".", 1)[0].replace(os.sep, ".").removesuffix(".__init__")
                modules[name] = os.path.join(folder, f)
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        if path.endswith(".pyi"):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        typing_only = {id(n) for block in ast.walk(tree)
                       if isinstance(block, ast.If) and isinstance(block.test, ast.Name)
                       and block.test.id == "TYPE_CHECKING" for stmt in block.body for n in ast.walk(stmt)}
        base = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets = []
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    parent = base
                    for _ in range(node.level - 1):
                        parent = parent.rsplit(".", 1)[0]
                    module = parent + ("." + module if module else "")
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph.setdefault(name, set()).update(t for t in targets if t in modules and t != name)
    return graph


def _cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """A cycle of the graph, or None."""
    state: Dict[str, int] = {}
    path: List[str] = []

    def visit(m: str) -> Optional[List[str]]:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycles():
    graph = _imports(os.path.dirname(ferroflow.__file__))
    assert "ferroflow._nodes" in graph and graph["ferroflow.datastream"]  # the graph was read
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_interval_join_function_does_not_import_the_streams():
    """The builders (IntervalJoin, IntervalJoined) live in datastream, which imports the
    join's function from interval_join; not the other way, not even for type checking."""
    with open(os.path.join(os.path.dirname(ferroflow.__file__), "interval_join.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported and "datastream" not in imported, sorted(m or "." for m in imported)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
