"""split/select and iterate/close_with."""

from __future__ import annotations

import pytest

from ferroflow import OutputSelector
from conftest import bag, collect, make_env, run

# -- split / select ---------------------------------------------------------------------------


def test_split_select_at_50(env, parallelism):
    """The original suite: 1..100 split at 50 gives 49 and 51 elements."""
    split = env.generate_sequence(1, 100).split(lambda x: ["lower"] if x < 50 else ["upper"])
    lower = collect(split.select("lower"))
    upper = collect(split.select("upper"))
    env.execute("split")
    assert len(lower) == 49 and len(upper) == 51
    assert sorted(lower) == list(range(1, 50))
    assert sorted(upper) == list(range(50, 101))


def test_split_select_order_from_collection_p1():
    env = make_env(1)
    split = env.from_collection(list(range(1, 101))).split(lambda x: ["lower"] if x < 50 else ["upper"])
    lower = collect(split.select("lower"))
    upper = collect(split.select("upper"))
    env.execute()
    assert lower == list(range(1, 50)) and upper == list(range(50, 101))


def test_select_several_names(env):
    split = env.generate_sequence(1, 30).split(lambda x: ["fizz"] * (x % 3 == 0) + ["buzz"] * (x % 5 == 0))
    both = collect(split.select("fizz", "buzz"))
    fizz = collect(split.select("fizz"))
    neither = collect(split.select("other"))
    env.execute()
    assert sorted(both) == [x for x in range(1, 31) if x % 3 == 0 or x % 5 == 0]
    assert sorted(fizz) == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert neither == []


def test_split_record_in_several_outputs(env):
    split = env.from_collection(list(range(10))).split(lambda x: ["all", "even"] if x % 2 == 0 else ["all"])
    alls = collect(split.select("all"))
    evens = collect(split.select("even"))
    env.execute()
    assert bag(alls) == bag(range(10))
    assert bag(evens) == bag([0, 2, 4, 6, 8])


class Parity(OutputSelector):
    def select(self, value):
        return ("even",) if value % 2 == 0 else ("odd",)


def test_split_output_selector_class(env):
    split = env.generate_sequence(0, 19).split(Parity())
    odd = collect(split.select("odd").map(lambda x: x * 10))
    env.execute()
    assert sorted(odd) == [x * 10 for x in range(1, 20, 2)]


def test_split_selector_returning_a_string(env):
    split = env.from_elements("apple", "avocado", "banana").split(lambda s: s[0])
    a = collect(split.select("a"))
    env.execute()
    assert bag(a) == bag(["apple", "avocado"])


def test_split_stream_itself_sees_every_record(env):
    split = env.generate_sequence(1, 20).split(lambda x: ["small"] if x <= 5 else [])
    everything = collect(split)
    small = collect(split.select("small"))
    env.execute()
    assert sorted(everything) == list(range(1, 21))
    assert sorted(small) == [1, 2, 3, 4, 5]


def test_split_then_keyed_reduce_and_union(env):
    split = env.from_collection([("a", 1), ("b", 2), ("a", 3), ("b", 4)]).split(
        lambda t: ["first"] if t[0] == "a" else ["second"])
    a = split.select("first").key_by(lambda t: t[0]).reduce(lambda x, y: (x[0], x[1] + y[1]))
    b = split.select("second")
    out = run(env, a.union(b))
    assert bag(out) == bag([("a", 1), ("a", 4), ("b", 2), ("b", 4)])


# -- iterate ------------------------------------------------------------------------------


def test_iterate_five_twos_to_zeros(env, parallelism):
    """The original suite: five 2s through v-1 with feedback v>0 give five 0s."""
    iteration = env.from_elements(2, 2, 2, 2, 2).iterate(5000)
    body = iteration.map(lambda v: v - 1)
    feedback = body.filter(lambda v: v > 0)
    iteration.close_with(feedback)
    out = run(env, body.filter(lambda v: v <= 0))
    assert out == [0, 0, 0, 0, 0]


def test_iterate_counts_in_result(env):
    iteration = env.from_elements(2, 2, 2, 2, 2).iterate(5000)
    body = iteration.map(lambda v: v - 1).name("decrement")
    iteration.close_with(body.filter(lambda v: v > 0))
    out = collect(body.filter(lambda v: v <= 0))
    result = env.execute("iterate")
    assert out == [0] * 5
    dec = [c for name, c in result.operator_counts.items() if "decrement" in name]
    assert dec == [10]  # each 2 passes the body twice
    assert result.dropped_records == 0


def test_iterate_without_max_wait_ends_by_itself(env):
    iteration = env.from_collection([(x, 0) for x in range(1, 65)]).iterate()
    body = iteration.map(lambda t: (t[0] // 2, t[1] + 1))
    iteration.close_with(body.filter(lambda t: t[0] > 0))
    out = run(env, body.filter(lambda t: t[0] == 0).map(lambda t: t[1]))
    # halving x until 0 takes bit_length(x) steps
    assert bag(out) == bag(x.bit_length() for x in range(1, 65))


def test_iterate_feedback_and_output_totals(env, parallelism):
    """Collatz steps for 1..30: every record leaves the loop exactly once, with its step count."""
    def step(t):
        n, start, steps = t
        return (n // 2 if n % 2 == 0 else 3 * n + 1, start, steps + 1)

    def collatz_steps(n):
        s = 0
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            s += 1
        return s

    source = env.generate_sequence(2, 30).map(lambda n: (n, n, 0))
    iteration = source.iterate(10_000)
    body = iteration.map(step)
    iteration.close_with(body.filter(lambda t: t[0] != 1))
    out = run(env, body.filter(lambda t: t[0] == 1).map(lambda t: (t[1], t[2])))
    assert sorted(out) == [(n, collatz_steps(n)) for n in range(2, 31)]


def test_iterate_keyed_inside_loop(env):
    """A keyed reduce inside the loop body."""
    iteration = env.from_elements(("a", 3), ("b", 2)).iterate(5000)
    body = iteration.map(lambda t: (t[0], t[1] - 1))
    iteration.close_with(body.filter(lambda t: t[1] > 0))
    counted = body.map(lambda t: (t[0], 1)).key_by(lambda t: t[0]).reduce(lambda x, y: (x[0], x[1] + y[1]))
    out = run(env, counted)
    finals = {}
    for k, c in out:
        finals[k] = max(finals.get(k, 0), c)
    assert finals == {"a": 3, "b": 2} and len(out) == 5


def test_iterate_never_converging_drops_after_max_wait(env):
    iteration = env.from_elements(1, 2, 3, 4, 5).iterate(50)
    body = iteration.map(lambda v: v)
    iteration.close_with(body)  # everything circulates forever
    seen = collect(body.filter(lambda v: False))
    result = env.execute("endless loop")
    assert seen == []
    assert result.dropped_records == 5
    assert result.warnings and "circulating" in result.warnings[0]
    assert result.net_runtime_ms >= 50


def test_iterate_input_passes_through_head(env):
    iteration = env.from_elements(10, 20).iterate(1000)
    head = collect(iteration)
    body = iteration.map(lambda v: v - 10)
    iteration.close_with(body.filter(lambda v: v > 0))
    env.execute()
    assert bag(head) == bag([10, 20, 10])  # inputs, then 20 - 10 fed back


def test_close_with_validation(env):
    other = env.from_elements(2)
    iteration = env.from_elements(1).iterate(100)
    body = iteration.map(lambda v: v - 1)
    with pytest.raises(ValueError):
        iteration.close_with(other)  # not computed from the iteration
    iteration.close_with(body)
    with pytest.raises(ValueError):
        iteration.close_with(body.filter(lambda v: v > 0))  # already closed
    with pytest.raises(TypeError):
        iteration.close_with(make_env(1).from_elements(1))
    with pytest.raises(ValueError):
        env.from_elements(1).iterate(-5)
