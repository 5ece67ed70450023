"""Sinks: print, write_as_text, write_to_socket, add_sink."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from ferroflow import (FerroflowError, JobExecutionException, SimpleStringSchema, SerializationSchema,
                       SinkFunction, WriteMode)
from conftest import (LOCALHOST, PRINT_STR, ReceiveServer, SubtaskTagger, bag, collect, flink_semantics, make_env, printed,
                      run, shown)

# -- print ----------------------------------------------------------------------------------


@pytest.mark.flink_semantics(PRINT_STR)
def test_print(env, parallelism, capsys):
    data = ["a", 1, (2, "b"), None, 2.5, b"x", [1, 2]]
    env.from_collection(data).print()
    env.execute("print")
    lines = printed(capsys.readouterr().out, parallelism)
    assert bag(r for _, r in lines) == bag(shown(env, x) for x in data)
    if parallelism == 1:
        assert [r for _, r in lines] == [shown(env, x) for x in data]
    else:
        assert {k for k, _ in lines} == {1, 2}  # round-robin: both workers print


def test_print_prefix_is_the_worker(env, parallelism, capsys):
    """The ``k> `` prefix is the 1-based index of the worker holding the record."""
    env.generate_sequence(1, 60).key_by(lambda x: x % 6).map(SubtaskTagger()).print()
    env.execute("print prefixes")
    lines = printed(capsys.readouterr().out, parallelism)
    assert len(lines) == 60
    values = []
    for k, text in lines:
        index, value = eval(text)
        values.append(value)
        if parallelism > 1:
            assert k == index + 1, text
    assert sorted(values) == list(range(1, 61))


@pytest.mark.flink_semantics(PRINT_STR)
def test_print_user_objects_uses_repr(env, parallelism, capsys):
    class Thing:
        def __init__(self, n):
            self.n = n

        def __repr__(self):
            return f"<Thing {self.n}>"

        def __str__(self):
            return "str-not-used"

    env.from_collection([Thing(1), Thing(2)]).print()
    env.execute()
    lines = printed(capsys.readouterr().out, parallelism)
    assert bag(r for _, r in lines) == bag(["str-not-used"] * 2 if flink_semantics(env) else ["<Thing 1>", "<Thing 2>"])


def test_print_word_count(env, parallelism, capsys):
    env.from_elements("b a", "a").flat_map(str.split).map(lambda w: (w, 1)) \
        .key_by(lambda t: t[0]).reduce(lambda x, y: (x[0], x[1] + y[1])).print()
    env.execute()
    lines = printed(capsys.readouterr().out, parallelism)
    assert bag(r for _, r in lines) == bag(["('a', 1)", "('a', 2)", "('b', 1)"])


def test_print_nothing(env, parallelism, capsys):
    env.from_collection([]).print()
    env.execute()
    assert capsys.readouterr().out == ""


def test_print_returns_sink_and_counts(env):
    sink = env.from_elements(1, 2, 3).print()
    sink.name("console")
    result = env.execute()
    keys = [k for k in result.operator_counts if "console" in k]
    assert len(keys) == 1 and result.operator_counts[keys[0]] == 3


# -- write_as_text ---------------------------------------------------------------------------


def read_output(path, parallelism):
    """Lines written by write_as_text: a file, or (parallelism > 1) a directory of
    files named 1, 2, ... Returns {file name: lines}."""
    if parallelism == 1:
        assert os.path.isfile(path)
        with open(path, encoding="utf-8") as f:
            return {"": f.read()}
    assert os.path.isdir(path)
    names = sorted(os.listdir(path))
    assert names == [str(i) for i in range(1, parallelism + 1)]
    out = {}
    for n in names:
        with open(os.path.join(path, n), encoding="utf-8") as f:
            out[n] = f.read()
    return out


def all_lines(files):
    lines = []
    for text in files.values():
        assert text == "" or text.endswith("\n")
        lines += text.splitlines()
    return lines


def test_write_as_text(env, tmp_path, parallelism):
    path = str(tmp_path / "out.txt")
    data = ["alpha", 1, (2, "b"), None, "ünï ✓"]
    env.from_collection(data).write_as_text(path)
    env.execute("write")
    files = read_output(path, parallelism)
    assert bag(all_lines(files)) == bag(map(str, data))
    if parallelism == 1:
        assert files[""] == "alpha\n1\n(2, 'b')\nNone\nünï ✓\n"


def test_write_as_text_per_worker_files(env, tmp_path, parallelism):
    """With parallelism > 1, file k holds the records of worker k (1-based)."""
    path = str(tmp_path / "out")
    env.generate_sequence(1, 100).map(SubtaskTagger()).map(lambda t: f"{t[0]} {t[1]}").write_as_text(path)
    env.execute()
    files = read_output(path, parallelism)
    numbers = []
    for name, text in files.items():
        for line in text.splitlines():
            w, v = line.split()
            numbers.append(int(v))
            if parallelism > 1:
                assert int(w) + 1 == int(name)
    assert sorted(numbers) == list(range(1, 101))


def test_write_as_text_large_exact(env, tmp_path, parallelism):
    path = str(tmp_path / "big")
    n = 20_000
    env.generate_sequence(1, n).write_as_text(path)
    env.execute()
    lines = all_lines(read_output(path, parallelism))
    assert len(lines) == n
    assert sorted(map(int, lines)) == list(range(1, n + 1))


def test_write_as_text_existing_file_fails_without_overwrite(env, tmp_path, parallelism):
    path = tmp_path / "exists.txt"
    path.write_text("keep me\n")
    env.from_elements(1, 2).write_as_text(str(path))
    with pytest.raises(FerroflowError):
        env.execute()
    assert path.is_file() and path.read_text() == "keep me\n"


def test_write_as_text_overwrite(env, tmp_path, parallelism):
    path = tmp_path / "exists.txt"
    path.write_text("old\n")
    env.from_elements("new1", "new2").write_as_text(str(path), overwrite=True)
    env.execute()
    assert bag(all_lines(read_output(str(path), parallelism))) == bag(["new1", "new2"])


def test_write_as_text_write_mode_overwrite(env, tmp_path, parallelism):
    path = tmp_path / "w.txt"
    for round_ in range(2):
        e = make_env(parallelism)
        e.from_elements(f"round {round_}").write_as_text(str(path), WriteMode.OVERWRITE)
        e.execute()
    assert all_lines(read_output(str(path), parallelism)) == ["round 1"]


def test_write_as_text_empty_stream(env, tmp_path, parallelism):
    path = str(tmp_path / "empty")
    env.from_collection([]).write_as_text(path)
    env.execute()
    assert all_lines(read_output(path, parallelism)) == []


def test_write_as_text_then_read_text_file(env, tmp_path, parallelism):
    path = str(tmp_path / "roundtrip")
    data = [f"line {i}" for i in range(50)]
    env.from_collection(data).write_as_text(path)
    env.execute()
    e2 = make_env(parallelism)
    out = run(e2, e2.read_text_file(path))
    assert bag(out) == bag(data)


# -- write_to_socket ---------------------------------------------------------------------------


def test_write_to_socket(env, parallelism):
    server = ReceiveServer()
    data = list(range(1, 11))
    env.from_collection(data).write_to_socket(LOCALHOST, server.port, SimpleStringSchema())
    env.execute("to socket")
    received = server.stop()
    # every worker opens its own connection
    assert len(received) == parallelism
    payload = b"".join(received)
    if parallelism == 1:
        assert payload == b"12345678910"  # no delimiter added
    else:
        assert len(payload) == len(b"12345678910")


def test_write_to_socket_no_delimiter_multiset(env, parallelism):
    server = ReceiveServer()
    letters = list("abcdefghijklmnopqrstuvwxyz")
    env.from_collection(letters).write_to_socket(LOCALHOST, server.port, SimpleStringSchema())
    env.execute()
    received = server.stop()
    assert len(received) == parallelism
    assert bag(b"".join(received).decode()) == bag(letters)


class Framed(SerializationSchema):
    def serialize(self, value):
        return f"<{value}>\n".encode()


def test_write_to_socket_serialization_schema_lines(env, parallelism):
    server = ReceiveServer()
    env.generate_sequence(1, 500).write_to_socket(LOCALHOST, server.port, Framed())
    env.execute()
    received = server.stop()
    lines = []
    for conn in received:
        assert conn == b"" or conn.endswith(b"\n")
        lines += conn.decode().splitlines()
    assert sorted(lines, key=lambda s: int(s[1:-1])) == [f"<{i}>" for i in range(1, 501)]


def test_write_to_socket_str_and_callable_serializer(env, parallelism):
    server = ReceiveServer()
    env.from_elements("x", "y").write_to_socket(LOCALHOST, server.port, lambda v: v.upper() + ";")
    env.execute()
    payload = b"".join(server.stop())
    assert sorted(payload.decode().split(";")[:-1]) == ["X", "Y"] and payload.count(b";") == 2


def test_write_to_socket_bad_serializer_result_fails(env):
    server = ReceiveServer()
    env.from_elements(1).write_to_socket(LOCALHOST, server.port, lambda v: 123)
    with pytest.raises(JobExecutionException):
        env.execute()
    server.stop()


def test_write_to_socket_word_count(env, parallelism):
    server = ReceiveServer()
    env.from_elements("a b", "b").flat_map(str.split).map(lambda w: (w, 1)).key_by(lambda t: t[0]) \
        .reduce(lambda x, y: (x[0], x[1] + y[1])) \
        .write_to_socket(LOCALHOST, server.port, lambda t: f"{t[0]}={t[1]}\n")
    env.execute()
    text = b"".join(server.stop()).decode()
    assert bag(text.splitlines()) == bag(["a=1", "b=1", "b=2"])


# -- add_sink ----------------------------------------------------------------------------------

SEEN: list = []
EVENTS: list = []


def test_add_sink_lambda(env, parallelism):
    out = []
    env.from_collection(list(range(30))).add_sink(lambda v: out.append(v))
    env.execute()
    assert bag(out) == bag(range(30))
    if parallelism == 1:
        assert out == list(range(30))


def test_add_sink_plain_function(env):
    SEEN.clear()

    def sink(value):
        SEEN.append(value * 2)

    env.from_elements(1, 2, 3).add_sink(sink)
    env.execute()
    assert bag(SEEN) == bag([2, 4, 6])


class RecordingSink(SinkFunction):
    def __init__(self):
        self.mine = []
        self.index = None

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        EVENTS.append(("open", self.index, runtime_context.get_number_of_parallel_subtasks()))

    def invoke(self, value):
        assert self.index is not None, "invoke before open"
        self.mine.append(value)
        SEEN.append((self.index, value))

    def close(self):
        EVENTS.append(("close", self.index, sorted(self.mine)))


def test_add_sink_function_class(env, parallelism):
    SEEN.clear()
    EVENTS.clear()
    sink = RecordingSink()
    env.from_collection(list(range(20))).add_sink(sink)
    env.execute()
    assert bag(v for _, v in SEEN) == bag(range(20))
    opens = sorted(e for e in EVENTS if e[0] == "open")
    assert opens == [("open", i, parallelism) for i in range(parallelism)]
    closes = sorted(e for e in EVENTS if e[0] == "close")
    assert [c[1] for c in closes] == list(range(parallelism))
    if parallelism == 2:
        # round-robin: each worker's sink got half of the records
        assert Counter(i for i, _ in SEEN) == {0: 10, 1: 10}
    # (that each worker's copy holds only its own records is checked deterministically
    # in test_api_functions.py::test_function_state_is_per_worker_for_sinks)


def test_add_sink_invoke_with_context(env):
    SEEN.clear()

    class CtxSink(SinkFunction):
        def invoke(self, value, context=None):
            SEEN.append(value)

    class TwoArgSink(SinkFunction):
        def invoke(self, value, context):
            SEEN.append(("ctx", value))

    s = env.from_elements(1, 2)
    s.add_sink(CtxSink())
    s.add_sink(TwoArgSink())
    env.execute()
    assert bag(SEEN) == bag([1, 2, ("ctx", 1), ("ctx", 2)])


def test_add_sink_exception_fails_job(env):
    def bad(v):
        if v == 3:
            raise RuntimeError("sink failed")

    env.from_elements(1, 2, 3).add_sink(bad).name("bad sink")
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    e = info.value
    assert "sink failed" in e.detail
    assert e.record == "3"
    assert "bad sink" in e.operator


def test_add_sink_rejects_non_function(env):
    with pytest.raises(TypeError):
        env.from_elements(1).add_sink("not a sink")


def test_several_sinks_on_one_stream(env, parallelism, capsys, tmp_path):
    s = env.from_elements(3, 1, 2)
    out = collect(s)
    s.print()
    s.write_as_text(str(tmp_path / "t"))
    env.execute()
    assert bag(out) == bag([3, 1, 2])
    assert bag(r for _, r in printed(capsys.readouterr().out, parallelism)) == bag(["3", "1", "2"])
    assert bag(all_lines(read_output(str(tmp_path / "t"), parallelism))) == bag(["3", "1", "2"])
