"""Per-operator parallelism: an operator (or sink) with set_parallelism(p) runs on the
first p workers only, and its functions see p workers."""

import collections

import pytest

from ferroflow import MapFunction
from conftest import SubtaskTagger, printed, run


def test_print_with_parallelism_one_has_one_unprefixed_output(env, capsys):
    env.generate_sequence(1, 40).map(lambda x: x * 10).print().set_parallelism(1)
    env.execute()
    lines = printed(capsys.readouterr().out, 1)
    assert sorted(int(text) for _, text in lines) == [x * 10 for x in range(1, 41)]


def test_a_map_with_parallelism_one_runs_on_worker_zero_only(env, parallelism):
    tagged = env.generate_sequence(1, 50).map(SubtaskTagger()).set_parallelism(1)
    out = run(env, tagged)
    assert sorted(v for _, v in out) == list(range(1, 51))
    assert {i for i, _ in out} == {0}


OPENED = []


class CountsWorkers(MapFunction):
    def open(self, runtime_context):
        OPENED.append((runtime_context.get_index_of_this_subtask(),
                       runtime_context.get_number_of_parallel_subtasks()))

    def map(self, value):
        return value


def test_functions_see_the_operator_parallelism(env, parallelism):
    OPENED.clear()
    out = run(env, env.generate_sequence(1, 10).map(CountsWorkers()).set_parallelism(1))
    assert sorted(out) == list(range(1, 11))
    assert OPENED == [(0, 1)]


def test_a_keyed_reduce_with_parallelism_one(env, parallelism):
    words = ["a", "b", "a", "c", "b", "a"] * 5
    counts = (env.from_collection(words).map(lambda w: (w, 1))
              .key_by(lambda t: t[0]).reduce(lambda x, y: (x[0], x[1] + y[1])).set_parallelism(1))
    out = run(env, counts.map(SubtaskTagger()))
    assert {i for i, _ in out} == {0}
    finals = {}
    for _, (w, n) in out:
        finals[w] = max(finals.get(w, 0), n)
    assert finals == dict(collections.Counter(words))


def test_write_as_text_with_parallelism_one_writes_one_file(env, tmp_path):
    target = tmp_path / "out.txt"
    env.generate_sequence(1, 30).write_as_text(str(target)).set_parallelism(1)
    env.execute()
    assert target.is_file()
    assert sorted(int(line) for line in target.read_text().splitlines()) == list(range(1, 31))


def test_parallelism_must_be_positive(env):
    with pytest.raises(ValueError, match="parallelism must be an int >= 1"):
        env.from_elements(1).map(lambda x: x).set_parallelism(0)
