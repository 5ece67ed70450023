"""The ``pyflink`` namespace: PyFlink's module layout served by ferroflow (ferroflow.compat.pyflink).

What a PyFlink script imports resolves to ferroflow's own classes; what ferroflow does not have
refuses at the use with one line; a real apache-flink installation is never shadowed by
``python job.py``, and ``ferroflow run`` says when it prefers its own names."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ferroflow.compat import UnsupportedApiError
from ferroflow.compat import pyflink as namespace
from test_docs_event_time import PYTHON, _clean_env

FERROFLOW = os.path.join(os.path.dirname(PYTHON), "ferroflow")


def _is_stand_in(value: object) -> bool:
    return type(value).__name__ == "_StandIn"


@pytest.mark.parametrize("module", sorted(namespace.MODULES))
def test_every_served_name_is_ferroflows_own_or_a_refusing_stand_in(module):
    served = importlib.import_module(module)
    names = namespace.served_names(module)
    for name, source in names.items():
        if name == "*":
            continue
        value = getattr(served, name)
        if source.startswith("!"):
            assert _is_stand_in(value), f"{module}.{name} should refuse ({source})"
        else:
            assert not _is_stand_in(value), f"{module}.{name}"
            assert value is getattr(importlib.import_module(source), name)
    assert sorted(served.__all__) == sorted(n for n in names if n != "*")


def test_names_are_the_same_objects_under_both_namespaces():
    import ferroflow
    from pyflink.datastream import KeyedProcessFunction, StreamExecutionEnvironment
    from pyflink.datastream.window import TumblingEventTimeWindows
    from pyflink.common import WatermarkStrategy, Duration

    assert KeyedProcessFunction is ferroflow.KeyedProcessFunction
    assert WatermarkStrategy is ferroflow.WatermarkStrategy and Duration is ferroflow.Duration
    assert TumblingEventTimeWindows is ferroflow.window.TumblingEventTimeWindows
    assert issubclass(StreamExecutionEnvironment, ferroflow.StreamExecutionEnvironment)


def test_a_missing_name_is_an_import_error_as_in_any_module():
    with pytest.raises(ImportError, match="NoSuchThing"):
        exec("from pyflink.datastream import NoSuchThing", {})
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pyflink.no_such_module")


@pytest.mark.parametrize("use, what", [
    ("from pyflink.table import StreamTableEnvironment\nStreamTableEnvironment.create(env)",
     "pyflink.table.StreamTableEnvironment.create"),
    ("from pyflink.datastream.connectors.elasticsearch import Elasticsearch7SinkBuilder\n"
     "Elasticsearch7SinkBuilder()", "pyflink.datastream.connectors.elasticsearch.Elasticsearch7SinkBuilder"),
    ("from pyflink.datastream import AsyncFunction\nclass Lookup(AsyncFunction):\n    pass",
     "pyflink.datastream.AsyncFunction"),
    ("from pyflink.datastream import EmbeddedRocksDBStateBackend\nEmbeddedRocksDBStateBackend()",
     "pyflink.datastream.EmbeddedRocksDBStateBackend"),
    ("env.set_python_requirements('requirements.txt')", "StreamExecutionEnvironment.set_python_requirements()"),
    ("env.from_collection([1]).cache()", "DataStream.cache()"),
])
def test_what_ferroflow_lacks_refuses_at_the_use_with_one_line(use, what):
    from pyflink.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(UnsupportedApiError) as info:
        exec(use, {"env": env})
    message = str(info.value)
    assert message.startswith(f"{what} is not supported by ferroflow: ") and "\n" not in message
    assert len(message) < 260


def test_jars_are_ignored_with_one_notice_each(capsys):
    from pyflink.datastream import StreamExecutionEnvironment
    from ferroflow.compat import pyflink_environment

    pyflink_environment._jar_notices.clear()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.add_jars("file:///opt/flink-sql-connector-kafka.jar")
    env.add_jars("file:///opt/other.jar")
    env.add_classpaths("file:///opt/x.jar")
    err = capsys.readouterr().err.splitlines()
    assert [line.split("(")[0] for line in err] == ["ferroflow: add_jars", "ferroflow: add_classpaths"]
    assert all("ignored" in line for line in err)


def test_flinks_runtime_hints_are_accepted_and_change_nothing(env):
    from pyflink.datastream import StreamExecutionEnvironment

    penv = StreamExecutionEnvironment.get_execution_environment()
    penv.set_max_parallelism(128).set_buffer_timeout(5).disable_operator_chaining()
    out = []
    (penv.from_collection([1, 2, 3]).map(lambda x: x * 10).set_uid_hash("a" * 32).set_max_parallelism(8)
         .start_new_chain().disable_chaining().slot_sharing_group("g").set_description("tens")
         .set_buffer_timeout(10).force_non_parallel()
         .add_sink(out.append))
    penv.execute()
    assert sorted(out) == [10, 20, 30]


def test_project_picks_fields(env):
    out = []
    env.from_collection([(1, "a", 2.0), (2, "b", 3.0)]).project(2, 0).add_sink(out.append)
    env.execute()
    assert sorted(out) == [(2.0, 1), (3.0, 2)]
    with pytest.raises(TypeError, match="field indexes"):
        env.from_collection([(1,)]).project("a")


def test_function_classes_take_type_parameters_as_pyflinks_generics():
    from pyflink.datastream import ProcessWindowFunction, WindowFunction, KeyedProcessFunction
    from pyflink.datastream.window import CountWindow, TimeWindow

    class Count(ProcessWindowFunction[tuple, tuple, str, TimeWindow]):
        def process(self, key, context: ProcessWindowFunction.Context[TimeWindow], elements):
            return [(key, len(list(elements)))]

    assert Count.__mro__[1] is ProcessWindowFunction
    assert WindowFunction[tuple, tuple, str, CountWindow] is WindowFunction
    assert KeyedProcessFunction.Context[str] is KeyedProcessFunction.Context


def test_execution_plan_is_flinks_json():
    from pyflink.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2]).key_by(lambda x: x % 2).reduce(lambda a, b: a + b).print()
    nodes = json.loads(env.get_execution_plan())["nodes"]
    assert [n["pact"] for n in (nodes[0], nodes[-1])] == ["Data Source", "Data Sink"]
    assert any(p["ship_strategy"] == "HASH" for n in nodes for p in n.get("predecessors", []))


def test_session_gap_extractor_and_count_window_classes():
    from pyflink.datastream.window import (CountWindow, DynamicEventTimeSessionWindows, EventTimeSessionWindows,
                                           MergingWindowAssigner, SessionWindowTimeGapExtractor, Window)

    class Gap(SessionWindowTimeGapExtractor):
        def extract(self, element):
            return element[1]

    assigner = EventTimeSessionWindows.with_dynamic_gap(Gap())
    assert isinstance(assigner, MergingWindowAssigner)
    assert isinstance(DynamicEventTimeSessionWindows.with_dynamic_gap(Gap()), EventTimeSessionWindows)
    assert CountWindow(3) == CountWindow(3) != CountWindow(4) and isinstance(CountWindow(1), Window)
    assert CountWindow(3).max_timestamp() == 2**63 - 1


def test_configuration_has_pyflinks_method_names():
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    config = Configuration()
    config.set_integer("parallelism.default", 3)
    config.set_string("pipeline.name", "x")
    assert config.get_integer("parallelism.default", 1) == 3 and config.contains_key("pipeline.name")
    assert StreamExecutionEnvironment.get_execution_environment(config).get_parallelism() == 3


# -- coexistence with a real apache-flink ------------------------------------------------------


@pytest.fixture
def real_pyflink(tmp_path):
    """A stand-in for an installed apache-flink: a ``pyflink`` package on PYTHONPATH."""
    (tmp_path / "site" / "pyflink").mkdir(parents=True)
    (tmp_path / "site" / "pyflink" / "__init__.py").write_text("REAL = True\n")
    env = _clean_env()
    env["PYTHONPATH"] = str(tmp_path / "site")
    return env


def test_python_imports_ferroflows_names_without_importing_ferroflow_first(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("from pyflink.datastream import StreamExecutionEnvironment\n"
                      "print(StreamExecutionEnvironment.__module__)\n")
    r = subprocess.run([PYTHON, str(script)], env=_clean_env(), capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ferroflow.compat.pyflink_environment"


def test_python_never_shadows_an_installed_apache_flink(tmp_path, real_pyflink):
    code = "import pyflink; print(getattr(pyflink, 'REAL', False))"
    r = subprocess.run([PYTHON, "-c", code], env=real_pyflink, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
    # Nor is a module the real package lacks filled in from ferroflow's.
    code = "import pyflink\ntry:\n    import pyflink.datastream\nexcept ImportError:\n    print('absent')"
    r = subprocess.run([PYTHON, "-c", code], env=real_pyflink, capture_output=True, text=True, timeout=60, check=False)
    assert r.stdout.strip() == "absent", r.stderr


def test_ferroflow_run_uses_its_own_names_and_says_so_when_apache_flink_is_installed(tmp_path, real_pyflink):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import pyflink
        from pyflink.datastream import StreamExecutionEnvironment
        print(getattr(pyflink, "REAL", False))
        env = StreamExecutionEnvironment.get_execution_environment()
        env.from_collection([1, 2]).map(lambda x: x + 1).print()
        env.execute()
    """))
    r = subprocess.run([FERROFLOW, "run", str(script)], env=real_pyflink, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "2", "3"]
    notes = [line for line in r.stderr.splitlines() if "apache-flink" in line]
    assert len(notes) == 1 and "ferroflow's pyflink names" in notes[0] and str(tmp_path / "site") in notes[0]


def test_ferroflow_run_reports_an_unsupported_api_in_one_line(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("from pyflink.datastream import StreamExecutionEnvironment\n"
                      "env = StreamExecutionEnvironment.get_execution_environment()\n"
                      "env.set_python_requirements('requirements.txt')\n")
    r = subprocess.run([FERROFLOW, "run", str(script)], env=_clean_env(), capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "set_python_requirements() is not supported by ferroflow" in lines[0], r.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
