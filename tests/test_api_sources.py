"""Sources: from_collection, from_elements, generate_sequence, read_text_file,
socket_text_stream, add_source."""

from __future__ import annotations

import threading
import time

import pytest

from ferroflow import FerroflowError, JobExecutionException, SourceFunction
from conftest import LOCALHOST, LineServer, SubtaskTagger, bag, collect, make_env, run

# -- from_collection -----------------------------------------------------------------------


def test_from_collection_list(env, parallelism):
    data = list(range(1, 101))
    out = run(env, env.from_collection(data))
    assert bag(out) == bag(data)
    if parallelism == 1:
        assert out == data


def test_from_collection_keeps_order_with_parallelism_1():
    env = make_env(1)
    data = ["x", 3, (1, 2), None, 2.5, b"raw", [1, [2]], {"k": "v"}]
    assert run(env, env.from_collection(data)) == data


def test_from_collection_iterator_read_once(env, parallelism):
    it = iter(range(1000))
    out = run(env, env.from_collection(it))
    assert bag(out) == bag(range(1000))
    assert next(it, "exhausted") == "exhausted"
    if parallelism == 1:
        assert out == list(range(1000))


def test_from_collection_generator(env):
    def gen():
        for i in range(5):
            yield ("item", i)

    out = run(env, env.from_collection(gen()))
    assert bag(out) == bag(("item", i) for i in range(5))


def test_from_collection_other_iterables(env):
    out = run(env, env.from_collection(range(3, 8)))
    assert bag(out) == bag([3, 4, 5, 6, 7])
    env2 = make_env(env.get_parallelism())
    out2 = run(env2, env2.from_collection((c for c in "abc")))
    assert bag(out2) == bag("abc")


class JavaStyleIterator:
    """The original suite's iterator source: hasNext()/next()."""

    def __init__(self, n):
        self.i = 0
        self.n = n

    def hasNext(self):
        return self.i < self.n

    def next(self):
        self.i += 1
        return self.i


def test_from_collection_java_style_iterator(env, parallelism):
    out = run(env, env.from_collection(JavaStyleIterator(20)))
    assert bag(out) == bag(range(1, 21))
    if parallelism == 1:
        assert out == list(range(1, 21))


def test_from_collection_empty(env):
    out = run(env, env.from_collection([]))
    assert out == []


def test_from_collection_rejects_string(env):
    with pytest.raises(TypeError):
        env.from_collection("abc")
    with pytest.raises(TypeError):
        env.from_collection(42)


def test_from_collection_spread_round_robin(env, parallelism):
    """A non-parallel source runs on worker 0 and is spread round-robin over the workers."""
    out = run(env, env.from_collection(list(range(100))).map(SubtaskTagger()))
    assert sorted(v for _, v in out) == list(range(100))
    by_worker = bag(i for i, _ in out)
    assert by_worker == {i: 100 // parallelism for i in range(parallelism)}


# -- from_elements ---------------------------------------------------------------------------


def test_from_elements_tuples(env, parallelism):
    data = [(1, "one"), (2, "two"), (3, "three"), (1, "one")]
    out = run(env, env.from_elements(*data))
    assert bag(out) == bag(data)
    assert all(type(t) is tuple for t in out)
    if parallelism == 1:
        assert out == data


def test_from_elements_mixed(env):
    data = [1, "a", 2.5, None, True, b"b", (1, (2, 3)), frozenset({1})]
    out = run(env, env.from_elements(*data))
    assert len(out) == len(data)
    assert bag(map(repr, out)) == bag(map(repr, data))


def test_from_elements_single(env):
    assert run(env, env.from_elements("only")) == ["only"]


# -- generate_sequence -----------------------------------------------------------------------


def test_generate_sequence(env):
    out = run(env, env.generate_sequence(1, 100))
    assert bag(out) == bag(range(1, 101))
    assert all(type(x) is int for x in out)


def test_generate_sequence_bounds(env):
    assert run(env, env.generate_sequence(5, 5)) == [5]
    env2 = make_env(env.get_parallelism())
    assert bag(run(env2, env2.generate_sequence(-3, 3))) == bag(range(-3, 4))


def test_generate_sequence_large_exact_total(env):
    n = 20_000
    out = run(env, env.generate_sequence(1, n))
    assert len(out) == n
    assert sum(out) == n * (n + 1) // 2
    assert len(set(out)) == n


def test_generate_sequence_is_parallel(env, parallelism):
    out = run(env, env.generate_sequence(1, 1000).map(SubtaskTagger()))
    assert sorted(v for _, v in out) == list(range(1, 1001))
    workers = bag(i for i, _ in out)
    assert set(workers) == set(range(parallelism))
    # Parallel source: both workers produce a fair share.
    assert all(c >= 1000 // parallelism // 2 for c in workers.values())


# -- read_text_file --------------------------------------------------------------------------


def test_read_text_file(env, tmp_path, parallelism):
    p = tmp_path / "in.txt"
    lines = ["first line", "", "  spaced  ", "ünïcödé ✓", "last"]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run(env, env.read_text_file(str(p)))
    assert bag(out) == bag(lines)
    if parallelism == 1:
        assert out == lines


def test_read_text_file_no_trailing_newline_and_crlf(env, tmp_path):
    p = tmp_path / "crlf.txt"
    p.write_bytes(b"a\r\nb\r\nc")
    out = run(env, env.read_text_file(str(p)))
    assert bag(out) == bag(["a", "b", "c"])


def test_read_text_file_pathlike_and_file_url(env, tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("1\n2\n")
    out = run(env, env.read_text_file(p))
    assert bag(out) == bag(["1", "2"])
    env2 = make_env(env.get_parallelism())
    out2 = run(env2, env2.read_text_file("file://" + str(p)))
    assert bag(out2) == bag(["1", "2"])


def test_read_text_file_directory(env, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    expected = []
    for f in range(4):
        lines = [f"f{f} l{i}" for i in range(f * 3 + 1)]
        (d / f"part-{f}").write_text("\n".join(lines) + "\n")
        expected += lines
    out = run(env, env.read_text_file(str(d)))
    assert bag(out) == bag(expected)


def test_read_text_file_large_split_across_workers(env, tmp_path, parallelism):
    p = tmp_path / "big.txt"
    n = 40_000
    lines = [f"{i:08d} " + "x" * (i % 50) for i in range(n)]
    p.write_text("\n".join(lines) + "\n")
    assert p.stat().st_size > (1 << 20)
    out = run(env, env.read_text_file(str(p)).map(SubtaskTagger()))
    assert len(out) == n
    assert bag(v for _, v in out) == bag(lines)
    # Each worker reads a share of the bytes.
    assert set(i for i, _ in out) == set(range(parallelism))


def test_read_text_file_missing_fails(env, tmp_path):
    s = env.read_text_file(str(tmp_path / "does-not-exist.txt"))
    collect(s)
    with pytest.raises(FerroflowError) as info:
        env.execute("missing")
    assert "does-not-exist.txt" in str(info.value) + str(getattr(info.value, "detail", ""))


def test_read_text_file_empty(env, tmp_path):
    p = tmp_path / "empty.txt"
    p.write_text("")
    assert run(env, env.read_text_file(str(p))) == []


def test_read_text_file_word_count(env, tmp_path):
    p = tmp_path / "words.txt"
    p.write_text("to be or not to be\nthat is the question\nto be\n")
    counts = run(env, env.read_text_file(str(p))
                 .flat_map(str.split)
                 .map(lambda w: (w, 1))
                 .key_by(lambda t: t[0])
                 .reduce(lambda a, b: (a[0], a[1] + b[1])))
    final = {}
    for w, c in counts:
        final[w] = max(final.get(w, 0), c)
    assert final == {"to": 3, "be": 3, "or": 1, "not": 1, "that": 1, "is": 1, "the": 1, "question": 1}
    assert len(counts) == 12


# -- socket_text_stream ------------------------------------------------------------------------


def test_socket_text_stream(env, parallelism):
    lines = ["hello world", "foo", "", "bar baz", "ünï"]
    with LineServer(("\n".join(lines) + "\n").encode()) as server:
        out = run(env, env.socket_text_stream(LOCALHOST, server.port))
    assert server.connections == 1
    assert bag(out) == bag(lines)
    if parallelism == 1:
        assert out == lines


def test_socket_text_stream_last_line_without_newline_and_chunks(env):
    payload = b"alpha\r\nbeta\ngam" + b"ma\ndelta"
    with LineServer(payload, chunks=7) as server:
        out = run(env, env.socket_text_stream(LOCALHOST, server.port))
    assert bag(out) == bag(["alpha", "beta", "gamma", "delta"])


def test_socket_text_stream_many_lines(env):
    n = 5000
    with LineServer("".join(f"line {i}\n" for i in range(n)).encode(), chunks=13) as server:
        out = run(env, env.socket_text_stream(LOCALHOST, server.port))
    assert bag(out) == bag(f"line {i}" for i in range(n))


def test_socket_text_stream_delimiter(env):
    with LineServer(b"a;b;;c;") as server:
        out = run(env, env.socket_text_stream(LOCALHOST, server.port, delimiter=";"))
    assert bag(out) == bag(["a", "b", "", "c"])


def test_socket_text_stream_word_count(env):
    with LineServer(b"a b a\nc a\nb\n") as server:
        out = run(env, env.socket_text_stream(LOCALHOST, server.port)
                  .flat_map(lambda line: line.split())
                  .map(lambda w: (w, 1))
                  .key_by(lambda t: t[0])
                  .reduce(lambda x, y: (x[0], x[1] + y[1])))
    assert bag(out) == bag([("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("c", 1)])


def test_socket_text_stream_bad_port(env):
    with pytest.raises(ValueError):
        env.socket_text_stream(LOCALHOST, 0)
    with pytest.raises(ValueError):
        env.socket_text_stream(LOCALHOST, 70000)


def test_socket_text_stream_connection_refused_fails(env):
    import socket as so

    s = so.socket()
    s.bind((LOCALHOST, 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port now
    collect(env.socket_text_stream(LOCALHOST, port))
    with pytest.raises(FerroflowError):
        env.execute("refused")


# -- add_source -------------------------------------------------------------------------------

EVENTS: list = []


class CountingSource(SourceFunction):
    def __init__(self, n):
        self.n = n
        self.running = True

    def run(self, ctx):
        i = 0
        while self.running and i < self.n:
            i += 1
            ctx.collect(i)

    def cancel(self):
        self.running = False


def test_add_source(env, parallelism):
    out = run(env, env.add_source(CountingSource(100)))
    assert bag(out) == bag(range(1, 101))
    if parallelism == 1:
        assert out == list(range(1, 101))


def test_add_source_many_records(env):
    # More than the source's internal buffer, so collect() has to wait for the worker.
    n = 20_000
    out = run(env, env.add_source(CountingSource(n)))
    assert len(out) == n and sum(out) == n * (n + 1) // 2


def test_add_source_plain_object_and_name(env):
    class Src:
        def run(self, ctx):
            for w in ["x", "y", "z"]:
                ctx.collect(w)

    stream = env.add_source(Src(), "letters")
    out = collect(stream)
    result = env.execute("src")
    assert bag(out) == bag("xyz")
    named = [k for k in result.operator_counts if "letters" in k]
    assert len(named) == 1 and result.operator_counts[named[0]] == 3


def test_add_source_runs_on_one_worker_spread_round_robin(env, parallelism):
    out = run(env, env.add_source(CountingSource(40)).map(SubtaskTagger()))
    assert sorted(v for _, v in out) == list(range(1, 41))
    assert bag(i for i, _ in out) == {i: 40 // parallelism for i in range(parallelism)}


def test_add_source_rejects_non_source(env):
    with pytest.raises(TypeError):
        env.add_source(lambda ctx: None)
    with pytest.raises(TypeError):
        env.add_source([1, 2, 3])


class RichSource(SourceFunction):
    def open(self, runtime_context):
        EVENTS.append(("open", runtime_context.get_index_of_this_subtask()))

    def run(self, ctx):
        EVENTS.append(("run",))
        for i in range(3):
            ctx.collect(i)

    def close(self):
        EVENTS.append(("close",))


def test_add_source_open_close_called_once(env):
    """Rich functions: open(runtime_context) before run(), close() after, once (a
    non-parallel source runs on one worker)."""
    EVENTS.clear()
    out = run(env, env.add_source(RichSource()))
    assert bag(out) == bag([0, 1, 2])
    assert EVENTS == [("open", 0), ("run",), ("close",)]


class EndlessSource(SourceFunction):
    def __init__(self):
        self.running = True
        self.cancelled = threading.Event()
        self.finished = threading.Event()

    def run(self, ctx):
        i = 0
        try:
            while self.running:
                ctx.collect(i)
                i += 1
                if i % 100 == 0:
                    time.sleep(0.001)
        finally:
            self.finished.set()

    def cancel(self):
        self.running = False
        self.cancelled.set()

    def __deepcopy__(self, memo):  # threading.Event cannot be copied; one instance is enough
        return self


def test_add_source_cancelled_when_job_fails(env):
    src = EndlessSource()

    def boom(x):
        if x == 500:
            raise RuntimeError("stop here")
        return x

    collect(env.add_source(src).map(boom))
    started = time.monotonic()
    with pytest.raises(JobExecutionException) as info:
        env.execute("endless")
    assert time.monotonic() - started < 10
    assert "stop here" in info.value.detail
    assert info.value.record == "500"
    assert src.finished.wait(5), "run() did not return after the job failed"
    assert src.cancelled.wait(0.5), "cancel() was not called on the source"


def test_add_source_exception_fails_job(env):
    class Broken(SourceFunction):
        def run(self, ctx):
            ctx.collect(1)
            raise ValueError("source broke")

    collect(env.add_source(Broken()))
    with pytest.raises(JobExecutionException) as info:
        env.execute("broken source")
    assert "source broke" in info.value.detail


def test_sources_are_independent_per_environment():
    e1 = make_env(1)
    e2 = make_env(2)
    a = collect(e1.from_elements(1, 2))
    b = collect(e2.from_elements(3))
    e1.execute()
    e2.execute()
    assert a == [1, 2] and b == [3]
