"""ParallelSourceFunction: a Python source on every worker, each reading its share."""

from collections import Counter

from ferroflow import ParallelSourceFunction, SourceFunction
from conftest import run


class Striped(ParallelSourceFunction):
    """Worker i of n emits i, i+n, i+2n, ... below 100, tagged with the index open() saw."""

    def open(self, runtime_context):
        self.opened_as = runtime_context.get_index_of_this_subtask()

    def run(self, ctx):
        for x in range(ctx.worker_index, 100, ctx.worker_count):
            ctx.collect((self.opened_as, ctx.worker_index, x))


def test_every_worker_reads_its_own_share(env, parallelism):
    out = run(env, env.add_source(Striped()))
    assert sorted(x for _, _, x in out) == list(range(100))
    assert all(opened == index for opened, index, _ in out)
    assert Counter(index for _, index, _ in out) == Counter(
        {i: len(range(i, 100, parallelism)) for i in range(parallelism)})


class Once(SourceFunction):
    def run(self, ctx):
        for x in range(10):
            ctx.collect(x)


def test_a_plain_source_function_still_runs_once(env):
    assert sorted(run(env, env.add_source(Once()))) == list(range(10))
