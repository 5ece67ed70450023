"""The talk-era (2017 Flink Python Streaming API) compatibility layer: ferroflow.compat,
examples/legacy/ and the fixture scripts in tests/legacy_scripts/."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from typing import Any, List

import pytest

import ferroflow
import ferroflow.compat as compat
from ferroflow import functions as ff_functions
from ferroflow.cli import run_script
from ferroflow.compat import (Configuration, ParameterError, ParameterTool, PythonEnvironmentFactory,
                              PythonIterator, PythonStreamExecutionEnvironment, UnsupportedApiError)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEGACY_EXAMPLES = os.path.join(ROOT, "examples", "legacy")
SCRIPTS = os.path.join(ROOT, "tests", "legacy_scripts")
HAMLET = os.path.join(ROOT, "examples", "data", "hamlet.txt")

_BIN = os.path.join(os.path.dirname(sys.executable), "ferroflow")
FERROFLOW = [_BIN] if os.path.exists(_BIN) else [sys.executable, "-m", "ferroflow"]

PARALLELISMS = [1, 2]
_PREFIX = re.compile(r"^(\d+)> (.*)$")


# -- helpers ---------------------------------------------------------------------------------

def ferroflow_run(script: str, *args: str, cwd: Any = ROOT) -> subprocess.CompletedProcess:
    """``ferroflow run SCRIPT - ARGS`` in a child process."""
    return subprocess.run(FERROFLOW + ["run", script, "-", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def records(stdout: str, parallelism: int) -> List[Any]:
    """The printed records (lines that are Python literals), ``k> `` prefixes removed;
    asserts the prefix is there exactly when parallelism > 1."""
    out = []
    for line in stdout.splitlines():
        m = _PREFIX.match(line)
        if parallelism > 1 and m:
            assert 1 <= int(m.group(1)) <= parallelism, line
            line = m.group(2)
        elif line and (line[0] in "('\"" or line[0].isdigit()):
            assert parallelism == 1, f"missing 'k> ' prefix with parallelism {parallelism}: {line!r}"
        else:
            continue  # a plain print() of the script
        out.append(ast.literal_eval(line))
    return out


def fib_rounds(a: int, b: int, target: int = 100) -> int:
    """Fibonacci steps until the current value reaches ``target`` (at least one step)."""
    x, y, n = a, b, 0
    while True:
        x, y, n = y, x + y, n + 1
        if y >= target:
            return n


class Shared(list):
    """A list that per-worker copies of a function object share (deepcopy returns it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def add(self, value: Any) -> None:
        with self.lock:
            self.append(value)

    def __deepcopy__(self, memo: dict) -> "Shared":
        return self


@pytest.fixture(params=PARALLELISMS, ids=lambda p: f"p{p}")
def parallelism(request) -> int:
    return request.param


# -- examples/legacy/fibonacci.py ----------------------------------------------------------

FIB = os.path.join(LEGACY_EXAMPLES, "fibonacci.py")

WORKED_INPUT = "1, 1\n2, 3\n10, 20\n49, 49\n1, 49\n5, 8\n"
WORKED_OUTPUT = ["((1, 1), 10)", "((2, 3), 8)", "((10, 20), 4)", "((49, 49), 2)", "((1, 49), 3)", "((5, 8), 6)"]


def test_fibonacci_worked_example(tmp_path, parallelism):
    """The six pairs of the research doc give exactly its six output lines."""
    f = tmp_path / "fib_in.txt"
    f.write_text(WORKED_INPUT)
    stdout = ok(ferroflow_run(FIB, "--local", "--input", str(f), "--parallelism", str(parallelism)))
    printed = [_PREFIX.sub(r"\2", line) for line in stdout.splitlines() if not line.startswith("Fibonacci job")]
    assert sorted(printed) == sorted(WORKED_OUTPUT)  # the exact text of the lines
    assert len(records(stdout, parallelism)) == 6  # and the k> prefixes are right
    assert re.search(r"^Fibonacci job completed, job_id=\w+$", stdout, re.M)


def test_fibonacci_more_cases(tmp_path, parallelism):
    """Edge pairs: zero starts and pairs at or near the bound."""
    f = tmp_path / "fib_in.txt"
    f.write_text("0, 1\n7, 0\n50, 50\n99, 1\n 3 ,  4 \n")
    stdout = ok(ferroflow_run(FIB, "--local", "--input", str(f), "--parallelism", str(parallelism)))
    assert Counter(records(stdout, parallelism)) == Counter(
        [((0, 1), 11), ((7, 0), 8), ((50, 50), 1), ((99, 1), 1), ((3, 4), fib_rounds(3, 4))])


def test_fibonacci_generator(parallelism):
    """Without --input, the Python source emits 50 random pairs from 1..49."""
    stdout = ok(ferroflow_run(FIB, "--local", "--parallelism", str(parallelism)))
    out = records(stdout, parallelism)
    assert len(out) == 50
    for (a, b), n in out:
        assert 1 <= a <= 49 and 1 <= b <= 49
        assert n == fib_rounds(a, b), (a, b, n)


def test_fibonacci_output_file(tmp_path):
    """--output writes the results to a file instead of stdout."""
    f = tmp_path / "fib_in.txt"
    f.write_text(WORKED_INPUT)
    target = tmp_path / "out.txt"
    stdout = ok(ferroflow_run(FIB, "--input", str(f), "--output", str(target)))
    assert records(stdout, 1) == []
    assert sorted(target.read_text().splitlines()) == sorted(WORKED_OUTPUT)


def test_fibonacci_bad_input_fails_cleanly(tmp_path):
    """A line that is not a pair fails the job: exit 1 and a message naming the map."""
    f = tmp_path / "fib_in.txt"
    f.write_text("1, 1\nnot a pair\n")
    proc = ferroflow_run(FIB, "--input", str(f))
    assert proc.returncode == 1
    assert "job 'Fibonacci Example (py)' failed: map 'InPut'" in proc.stderr
    assert "'not a pair'" in proc.stderr


# -- examples/legacy/word_count.py ---------------------------------------------------------

WORD_COUNT = os.path.join(LEGACY_EXAMPLES, "word_count.py")

TEXT = """To be or not to be
That is the question
Whether tis nobler in the mind to suffer
BE be bE to TO
"""


def word_totals(stdout: str, parallelism: int) -> Counter:
    """Sums the (count, word) records per word: processing-time windows may split a
    word's count over several windows."""
    totals: Counter = Counter()
    for count, word in records(stdout, parallelism):
        totals[word] += count
    return totals


def test_word_count(tmp_path, parallelism):
    f = tmp_path / "book.txt"
    f.write_text(TEXT * 20)
    stdout = ok(ferroflow_run(WORD_COUNT, "--local", "--input", str(f), "--parallelism", str(parallelism)))
    assert word_totals(stdout, parallelism) == Counter((TEXT * 20).lower().split())


@pytest.mark.skipif(not os.path.exists(HAMLET), reason="examples/data/hamlet.txt is not there")
def test_word_count_default_input():
    """Without --input the script reads the bundled hamlet.txt."""
    stdout = ok(ferroflow_run(WORD_COUNT, "--local"))
    with open(HAMLET, encoding="utf-8") as f:
        assert word_totals(stdout, 1) == Counter(f.read().lower().split())


# -- fixture scripts: entry points and API forms -------------------------------------------

def script(name: str) -> str:
    return os.path.join(SCRIPTS, name)


def test_main_factory_script(parallelism):
    """main(factory), factory.get_execution_environment(), create_python_source, output()."""
    stdout = ok(ferroflow_run(script("factory_main.py"), "--parallelism", str(parallelism)))
    assert sorted(records(stdout, parallelism)) == [("square", n, n * n) for n in range(0, 21, 2)]
    assert re.search(r"^job id: \w+$", stdout, re.M)


def test_top_level_script(parallelism, tmp_path):
    """A script without main(): keyed rolling reduce, count window apply with a
    collector, split/select, enable_checkpointing(interval, CheckpointingMode). It runs
    in a scratch directory, where its default checkpoint storage goes."""
    stdout = ok(ferroflow_run(script("toplevel.py"), "--parallelism", str(parallelism), cwd=tmp_path))
    out = records(stdout, parallelism)
    words = ["apple", "bean", "apple", "corn", "bean", "apple", "date", "corn", "apple"]
    per_word = Counter(words)
    # Keyed by first letter, which here is one word per key: counts 1..n per word.
    rolling = Counter((r[2], r[1]) for r in out if r[0] == "rolling")
    assert rolling == Counter((w, i) for w, n in per_word.items() for i in range(1, n + 1))
    assert sorted(r for r in out if r[0] == "window") == sorted(("window", w[0], n) for w, n in per_word.items())
    assert Counter(r[1] for r in out if r[0] == "long") == Counter(w for w in words if len(w) > 4)
    assert Counter(r[1] for r in out if r[0] == "any") == per_word


def test_python_iterator_script():
    """from_collection(PythonIterator): ends on hasNext() false and on
    java.util.NoSuchElementException raised by next()."""
    stdout = ok(ferroflow_run(script("iterator_source.py")))
    out = records(stdout, 1)
    assert [r for r in out if r[0] == "countdown"] == [("countdown", 3), ("countdown", 2), ("countdown", 1)]
    assert [r for r in out if r[0] == "letter"] == [("letter", "x"), ("letter", "y"), ("letter", "z")]


def test_execute_forms():
    """execute(), execute(True), execute(name), execute(name, False) all run the job and
    return a result with a jobID."""
    stdout = ok(ferroflow_run(script("execute_forms.py")))
    assert records(stdout, 1) == ["plain", "local", "named", "named local"]
    assert re.findall(r"^result: (.*)$", stdout, re.M) == [
        "name=ferroflow job id_ok=True", "name=ferroflow job id_ok=True",
        "name=named job id_ok=True", "name=named local job id_ok=True"]


def test_job_failure_caught_as_java_exception():
    """A failing job raises org.apache.flink.runtime.client.JobExecutionException,
    which the script catches (and so exits 0)."""
    stdout = ok(ferroflow_run(script("catch_failure.py")))
    assert "caught JobExecutionException: kind=udf zero_division=True operator=True" in stdout


def test_write_mode_overwrite(tmp_path):
    """WriteMode.OVERWRITE replaces an existing file; the default NO_OVERWRITE fails
    the job and leaves the file alone."""
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    proc = ferroflow_run(script("write_mode.py"), "--output", str(target))
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert target.read_text() == "old\n"
    ok(ferroflow_run(script("write_mode.py"), "--output", str(target), "--mode", "OVERWRITE"))
    assert target.read_text().splitlines() == ["new 1", "new 2", "new 3"]


@pytest.mark.parametrize("what, names", [
    ("consumer", ["PythonFlinkKafkaConsumer09", "add_source", "SourceFunction", "socket_text_stream"]),
    ("producer", ["PythonFlinkKafkaProducer09", "add_sink", "SinkFunction"]),
    ("java_source", ["add_java_source", "add_source", "socket_text_stream"]),
    ("remote", ["create_remote_execution_environment", "get_execution_environment"]),
])
def test_unsupported_features_fail_with_one_clear_message(what, names):
    proc = ferroflow_run(script("unsupported.py"), "--what", what)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ferroflow: ") and "Traceback" not in proc.stderr
    for name in names:
        assert name in lines[0]


def test_importing_unsupported_connectors_is_fine():
    """Only using them fails: a script that imports the Kafka classes still runs."""
    assert records(ok(ferroflow_run(script("unsupported.py"), "--what", "nothing")), 1) == [1]


def test_same_named_classes_in_one_process(capsys):
    """Two scripts defining Transform/Selector differently, run one after the other
    (and the first again) in this process, each use their own classes."""
    expected = {"same_name_a.py": [("a", 10), ("a", 20), ("a", 30)],
                "same_name_b.py": [("b", 2), ("b", 3), ("b", 4)]}
    for name in ["same_name_a.py", "same_name_b.py", "same_name_a.py"]:
        run_script(script(name))
        assert sorted(records(capsys.readouterr().out, 1)) == expected[name], name


# -- the import hook -------------------------------------------------------------------------

@pytest.mark.parametrize("module", sorted(compat.MODULES))
def test_java_modules_import(module):
    mod = importlib.import_module(module)
    provided = compat.MODULES[module][1]
    assert provided and set(mod.__all__) == set(provided)
    for name in provided:
        assert getattr(mod, name) is not None


def test_java_names_are_ferroflow_objects():
    """The function bases are ferroflow's own; the exceptions are the ones ferroflow raises."""
    from java.util import NoSuchElementException
    from org.apache.flink.api.common.functions import FilterFunction, FlatMapFunction, MapFunction, ReduceFunction
    from org.apache.flink.api.java.functions import KeySelector
    from org.apache.flink.runtime.client import JobExecutionException
    from org.apache.flink.streaming.api.collector.selector import OutputSelector
    from org.apache.flink.streaming.api.functions.source import SourceFunction
    from org.apache.flink.streaming.api.functions.windowing import WindowFunction
    from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment as Env
    from org.apache.flink.streaming.util.serialization import SerializationSchema

    assert (MapFunction, FlatMapFunction, FilterFunction, ReduceFunction, KeySelector, SourceFunction,
            OutputSelector, WindowFunction, SerializationSchema) == (
        ff_functions.MapFunction, ff_functions.FlatMapFunction, ff_functions.FilterFunction,
        ff_functions.ReduceFunction, ff_functions.KeySelector, ff_functions.SourceFunction,
        ff_functions.OutputSelector, ff_functions.WindowFunction, ff_functions.SerializationSchema)
    assert JobExecutionException is ferroflow.JobExecutionException
    from ferroflow._java import NoSuchElementException as engine_nse
    assert NoSuchElementException is engine_nse
    assert Env is PythonStreamExecutionEnvironment and issubclass(Env, ferroflow.StreamExecutionEnvironment)


def test_time_module_both_import_styles():
    from org.apache.flink.streaming.api.windowing.time import Time
    from org.apache.flink.streaming.api.windowing.time.Time import milliseconds, seconds
    from java.util.concurrent import TimeUnit

    assert milliseconds(50) == ferroflow.Time.milliseconds(50)
    assert isinstance(seconds(2), ferroflow.Time) and seconds(2).to_milliseconds() == 2000
    assert Time.milliseconds(50).to_milliseconds() == 50
    assert [Time.minutes(1), Time.hours(1), Time.days(1)] == [ferroflow.Time(60_000), ferroflow.Time(3_600_000),
                                                              ferroflow.Time(86_400_000)]
    assert Time.of(3, TimeUnit.SECONDS) == ferroflow.Time(3000)
    with pytest.raises(TypeError):
        Time.of(3, "seconds")


def test_write_mode_matches_core():
    from org.apache.flink.core.fs.FileSystem import WriteMode

    assert WriteMode.OVERWRITE.name == "OVERWRITE" and WriteMode.NO_OVERWRITE.name == "NO_OVERWRITE"
    assert WriteMode.OVERWRITE == ferroflow.WriteMode.OVERWRITE
    env = ferroflow.StreamExecutionEnvironment.get_execution_environment()
    stream = env.from_elements(1)
    stream.write_as_text("/nonexistent/a", WriteMode.OVERWRITE)
    stream.write_as_text("/nonexistent/b", WriteMode.NO_OVERWRITE)
    assert [n.kind.overwrite for n in env._nodes if n.api == "write_text"] == [True, False]


def test_unknown_java_module_is_not_found():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("org.apache.flink.streaming.api.no_such_thing")
    with pytest.raises(ImportError):
        exec("from org.apache.flink.api.java.utils import NoSuchClass", {})


def test_install_is_idempotent_and_appends():
    compat.install()
    finder = compat.install()
    ours = [f for f in sys.meta_path if getattr(f, "ferroflow_compat_finder", False)]
    assert ours == [finder]
    # Nothing but us serves these names, so any finder after ours would be another hook.
    assert sys.meta_path.index(finder) > sys.meta_path.index(importlib.machinery.PathFinder)


def test_real_org_package_wins(tmp_path):
    """The hook comes last: a real ``org`` package on sys.path is imported instead."""
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "__init__.py").write_text("REAL = True\n")
    code = textwrap.dedent("""
        import sys
        import ferroflow.compat
        assert getattr(sys.meta_path[-1], "ferroflow_compat_finder", False)
        import org
        print(getattr(org, "REAL", False))
        from org.apache.flink.api.java.utils import ParameterTool  # still served below it
        print(ParameterTool.__module__)
    """)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "ferroflow.compat.params"]


def test_plain_python_with_import_compat(tmp_path):
    """Outside `ferroflow run`: `import ferroflow.compat`, then the Java imports work."""
    job = tmp_path / "job.py"
    job.write_text(textwrap.dedent("""
        import ferroflow.compat
        from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment
        env = PythonStreamExecutionEnvironment.get_execution_environment()
        env.from_elements(("plain", 1)).print()
        env.execute(True)
    """))
    proc = subprocess.run([sys.executable, str(job)], capture_output=True, text=True, timeout=60)
    assert records(ok(proc), 1) == [("plain", 1)]


# -- ParameterTool ---------------------------------------------------------------------------

def test_parameter_tool_from_args():
    p = ParameterTool.fromArgs(["--input", "in.txt", "--local", "-n", "-5", "--ratio=0.5", "--verbose", "TRUE"])
    assert p.has("input") and p.get("input") == "in.txt"
    assert p.has("local") and not p.has("output")
    assert p.get("output") is None and p.get("output", "out.txt") == "out.txt"
    assert p.getInt("n") == -5 and p.getLong("n") == -5
    assert p.getFloat("ratio") == 0.5 and p.getDouble("ratio") == 0.5
    assert p.getBoolean("verbose") is True and p.getBoolean("local") is True
    assert p.getBoolean("missing", False) is False and p.getInt("missing", 7) == 7
    assert p.getNumberOfParameters() == 5 and len(p) == 5 and "n" in p
    assert p.toMap()["local"] == compat.params.NO_VALUE_KEY


def test_parameter_tool_errors():
    with pytest.raises(ParameterError, match="prefix keys"):
        ParameterTool.fromArgs(["input.txt"])
    with pytest.raises(ParameterError):
        ParameterTool.fromArgs(["--"])
    p = ParameterTool.fromArgs(["--n", "x", "--flag"])
    with pytest.raises(ParameterError, match="--n must be an integer"):
        p.getInt("n")
    with pytest.raises(ParameterError, match="required parameter --output"):
        p.getRequired("output")
    with pytest.raises(ParameterError, match="required parameter --flag"):
        p.getRequired("flag")
    with pytest.raises(ParameterError):
        p.getInt("missing")
    assert p.getRequired("n") == "x"
    assert issubclass(ParameterError, ferroflow.FerroflowError) and issubclass(ParameterError, ValueError)


def test_parameter_tool_conversions(tmp_path):
    p = ParameterTool.fromArgs(["--a", "1", "--b", "2"])
    config = p.getConfiguration()
    assert isinstance(config, Configuration) and config.getInteger("a") == 1 and config.getString("b") == "2"
    assert config.getInteger("missing", 9) == 9 and config.containsKey("a")
    props = p.getProperties()
    props.setProperty("bootstrap.servers", "localhost:9092")
    assert props.getProperty("a") == "1" and props.getProperty("bootstrap.servers") == "localhost:9092"
    assert not p.has("bootstrap.servers")  # a copy
    merged = p.mergeWith(ParameterTool.fromMap({"b": 3, "c": "x"}))
    assert merged.toMap() == {"a": "1", "b": "3", "c": "x"}
    f = tmp_path / "job.properties"
    f.write_text("# comment\ninput = in.txt\nlevel: 3\n\n")
    assert ParameterTool.fromPropertiesFile(str(f)).toMap() == {"input": "in.txt", "level": "3"}


# -- environments ----------------------------------------------------------------------------

def test_environment_factories():
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    assert type(env) is PythonStreamExecutionEnvironment
    config = ParameterTool.fromArgs(["--parallelism.default", "2"]).getConfiguration()
    assert PythonStreamExecutionEnvironment.create_local_execution_environment(config).get_parallelism() == 2
    assert PythonStreamExecutionEnvironment.create_local_execution_environment(3, Configuration()) \
        .get_parallelism() == 3
    assert PythonStreamExecutionEnvironment.create_local_execution_environment(Configuration()) \
        .get_parallelism() == ferroflow.StreamExecutionEnvironment.default_parallelism
    local = PythonStreamExecutionEnvironment.create_local_execution_environment(ParameterTool.fromArgs(["--x", "1"]))
    assert local.get_configuration().getString("x") == "1"
    with pytest.raises(TypeError):
        PythonStreamExecutionEnvironment.create_local_execution_environment(1, Configuration(), "extra")
    with pytest.raises(UnsupportedApiError) as info:
        PythonStreamExecutionEnvironment.create_remote_execution_environment("host", 6123)
    assert isinstance(info.value, ferroflow.FerroflowError) and isinstance(info.value, NotImplementedError)

    factory = compat.environment_factory()
    assert isinstance(factory, PythonEnvironmentFactory)
    assert type(factory.get_execution_environment()) is PythonStreamExecutionEnvironment
    assert factory.create_local_execution_environment(2, Configuration()).get_parallelism() == 2
    with pytest.raises(UnsupportedApiError):
        factory.create_remote_execution_environment("host", 6123, Configuration())


@pytest.mark.filterwarnings("ignore::ferroflow.CheckpointingWarning")  # checked in test_api_environment.py
def test_enable_checkpointing_is_chainable():
    from org.apache.flink.streaming.api import CheckpointingMode

    env = PythonStreamExecutionEnvironment.get_execution_environment()
    assert env.enable_checkpointing(500, CheckpointingMode.AT_LEAST_ONCE).set_parallelism(2) is env
    assert env.get_parallelism() == 2


# -- Java-style user functions through the engine --------------------------------------------

def test_java_style_functions_run(parallelism):
    """Every Java-style method name the talk-era scripts use, on the real engine."""
    from org.apache.flink.api.common.functions import FilterFunction, FlatMapFunction, MapFunction, ReduceFunction
    from org.apache.flink.api.java.functions import KeySelector
    from org.apache.flink.streaming.api.collector.selector import OutputSelector
    from org.apache.flink.streaming.api.functions.sink import SinkFunction
    from org.apache.flink.streaming.api.functions.source import SourceFunction
    from org.apache.flink.streaming.api.functions.windowing import WindowFunction

    class Lines(SourceFunction):
        def run(self, ctx):
            for line in ["a b a", "c b a"]:
                ctx.collect(line)

    class Split(FlatMapFunction):
        def flatMap(self, value, collector):
            for w in value.split():
                collector.collect((1, w))

    class NotC(FilterFunction):
        def filter(self, value):
            return value[1] != "c"

    class Word(KeySelector):
        def getKey(self, value):
            return value[1]

    class Add(ReduceFunction):
        def reduce(self, a, b):
            return (a[0] + b[0], a[1])

    class Size(WindowFunction):
        def apply(self, key, window, values, collector):
            collector.collect((key, len(values)))

    class IsA(OutputSelector):
        def select(self, value):
            return ["a"] if value[1] == "a" else ["other"]

    class Tag(MapFunction):
        def __init__(self, tag):
            self.tag = tag

        def map(self, value):
            return (self.tag,) + tuple(value)

    class Sink(SinkFunction):
        def __init__(self, out):
            self.out = out

        def invoke(self, value):
            self.out.add(value)

    class SinkWithContext(SinkFunction):
        def __init__(self, out):
            self.out = out

        def invoke(self, value, context):
            self.out.add((value, context))

    class Items(PythonIterator):
        def __init__(self):
            self.left = [1, 2]

        def hasNext(self):
            return bool(self.left)

        def next(self):
            return self.left.pop(0)

    out, with_ctx = Shared(), Shared()
    env = PythonStreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    words = env.create_python_source(Lines()).flat_map(Split()).filter(NotC())
    keyed = words.key_by(Word())
    keyed.reduce(Add()).map(Tag("rolling")).add_sink(Sink(out))
    keyed.count_window(10).apply(Size()).map(Tag("window")).add_sink(Sink(out))
    keyed.count_window(10).reduce(Add()).map(Tag("window reduce")).add_sink(Sink(out))
    words.split(IsA()).select("a").map(Tag("selected")).add_sink(Sink(out))
    env.from_collection(Items()).add_sink(SinkWithContext(with_ctx))
    env.execute("java style", True)

    got = Counter(out)
    assert got == Counter([("rolling", 1, "a"), ("rolling", 2, "a"), ("rolling", 3, "a"), ("rolling", 1, "b"),
                           ("rolling", 2, "b"), ("window", "a", 3), ("window", "b", 2), ("window reduce", 3, "a"),
                           ("window reduce", 2, "b")] + [("selected", 1, "a")] * 3)
    assert sorted(with_ctx) == [(1, None), (2, None)]


def test_python_iterator_is_a_python_iterator():
    from java.util import NoSuchElementException

    class Two(PythonIterator):
        def __init__(self):
            self.n = 0

        def hasNext(self):
            return True

        def next(self):
            self.n += 1
            if self.n > 2:
                raise NoSuchElementException()
            return self.n

    assert list(Two()) == [1, 2]
    with pytest.raises(NotImplementedError):
        PythonIterator().hasNext()


def test_deserialization_schema_defaults():
    from org.apache.flink.streaming.util.serialization import DeserializationSchema

    class Text(DeserializationSchema):
        def deserialize(self, message):
            return message.decode()

    assert Text().deserialize(b"hi") == "hi" and Text().isEndOfStream("hi") is False


def test_create_python_source_and_add_java_source():
    from org.apache.flink.streaming.api.functions.source import SourceFunction
    from org.apache.flink.streaming.python.connectors import PythonFlinkKafkaConsumer09, PythonFlinkKafkaProducer09

    class Three(SourceFunction):
        def run(self, ctx):
            for i in range(3):
                ctx.collect(i)

    out = Shared()
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    env.create_python_source(Three()).add_sink(out.add)
    env.execute()
    assert out == [0, 1, 2]
    with pytest.raises(UnsupportedApiError, match="add_source"):
        env.add_java_source(object())
    with pytest.raises(UnsupportedApiError, match="PythonFlinkKafkaConsumer09"):
        PythonFlinkKafkaConsumer09("topic", None, {})
    with pytest.raises(UnsupportedApiError, match="PythonFlinkKafkaProducer09"):
        PythonFlinkKafkaProducer09("localhost:9092", "topic", None)
