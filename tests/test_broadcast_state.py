"""Broadcast state (issue 12 part D): ``stream.broadcast(MapStateDescriptor)``,
``connect(broadcast_stream).process(BroadcastProcessFunction)`` and, on a keyed stream,
``KeyedBroadcastProcessFunction`` with keyed state and timers, and
``ctx.apply_to_keyed_state`` visiting every key's state. Every worker sees every
broadcast element, so each keeps the same broadcast state (checked against a dict);
``process_element`` may only read it. Time is driven by ``TestSource`` (records of both inputs in watermark order);
every test runs at 1 worker, 2 threads and 2 processes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferroflow import (BroadcastProcessFunction, JobExecutionException, KeyedBroadcastProcessFunction,
                       ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor)
from ferroflow.testing import TestSource, Timestamped, Watermark

from conftest import JOB_SETTINGS, bag, collect, make_env, run

LIMITS = MapStateDescriptor("limits")


class Limit(BroadcastProcessFunction):
    """Items above the limit their kind has in the broadcast state pass."""

    def open(self, runtime_context):
        self.worker = runtime_context.get_index_of_this_subtask()

    def process_element(self, value, ctx):
        kind, amount = value
        limit = ctx.get_broadcast_state(LIMITS).get(kind)
        if limit is not None and amount > limit:
            yield value, ctx.timestamp()

    def process_broadcast_element(self, value, ctx):
        kind, limit = value
        ctx.get_broadcast_state(LIMITS).put(kind, limit)
        yield ("rule", self.worker, kind, limit)


def test_every_worker_keeps_the_broadcast_state_and_filters_with_it(env, parallelism):
    rules = env.add_source(TestSource([Timestamped(("a", 5), 1), Timestamped(("b", 1), 2), Watermark(20),
                                       Timestamped(("a", 2), 25), Watermark(40)]))
    items = env.add_source(TestSource([Watermark(10), Timestamped(("a", 3), 11), Timestamped(("a", 7), 12),
                                       Timestamped(("b", 2), 13), Timestamped(("c", 9), 14), Watermark(30),
                                       Timestamped(("a", 3), 31), Watermark(40)]))
    out = run(env, items.connect(rules.broadcast(LIMITS)).process(Limit()))
    # Each rule reached every worker once.
    got_rules = [r for r in out if r[0] == "rule"]
    assert bag(got_rules) == bag(("rule", w, k, n) for w in range(parallelism) for k, n in
                                 [("a", 5), ("b", 1), ("a", 2)])
    # Items sent under watermark 10 saw the first two rules (sent before any); the one
    # sent under 30 also saw a's new limit (sent under 20).
    assert bag(r for r in out if r[0] != "rule") == bag([(("a", 7), 12), (("b", 2), 13), (("a", 3), 31)])


class Writer(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        ctx.get_broadcast_state(LIMITS).put("x", value)
        yield value

    def process_broadcast_element(self, value, ctx):
        return ()


def test_writing_broadcast_state_from_process_element_fails_the_job(env):
    rules = env.from_collection([("a", 1)])
    collect(env.from_collection([1, 2]).connect(rules.broadcast(LIMITS)).process(Writer()).name("writer"))
    with pytest.raises(JobExecutionException) as info:
        env.execute("read-only")
    text = str(info.value) + info.value.detail
    assert "writer" in text and "read-only" in text and "'limits'" in text


class Unknown(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        ctx.get_broadcast_state(MapStateDescriptor("other"))
        return ()

    def process_broadcast_element(self, value, ctx):
        return ()


def test_an_undeclared_descriptor_is_an_error_naming_the_declared_ones(env):
    rules = env.from_collection([("a", 1)])
    collect(env.from_collection([1]).connect(rules.broadcast(LIMITS)).process(Unknown()))
    with pytest.raises(JobExecutionException) as info:
        env.execute("unknown")
    assert "not a descriptor given to broadcast()" in str(info.value) + info.value.detail


def test_broadcast_takes_map_state_descriptors_and_functions_are_checked_at_the_call(env):
    stream = env.from_collection([1])
    with pytest.raises(TypeError, match="MapStateDescriptor"):
        stream.broadcast(ValueStateDescriptor("v"))
    connected = stream.connect(env.from_collection([2]).broadcast(LIMITS))
    with pytest.raises(TypeError, match="needs a keyed stream"):
        connected.process(Keyed())
    with pytest.raises(TypeError, match="process_broadcast_element"):
        connected.process(lambda value, ctx: [value])


class Keyed(KeyedBroadcastProcessFunction):
    """Counts each key's items in keyed state; an event-time timer 15 ms after each
    item reports the count with the key's limit (read-only broadcast state)."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        self.count.update((self.count.value() or 0) + 1)
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 15)
        return ()

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(LIMITS).put(*value)
        return ()

    def on_timer(self, timestamp, ctx):
        key = ctx.get_current_key()
        yield key, timestamp, self.count.value(), ctx.get_broadcast_state(LIMITS).get(key)


def test_keyed_broadcast_has_keyed_state_timers_and_the_broadcast_state(env):
    rules = env.add_source(TestSource([Timestamped(("a", 5), 1), Watermark(50), Timestamped(("a", 6), 55),
                                       Watermark(100)]))
    items = env.add_source(TestSource([Timestamped(("a", 0), 10), Timestamped(("b", 0), 12), Watermark(30),
                                       Timestamped(("a", 0), 40), Watermark(100)]))
    keyed = items.key_by(lambda r: r[0])
    out = run(env, keyed.connect(rules.broadcast(LIMITS)).process(Keyed()))
    # Timers at 25 and 27 fire before the item sent under watermark 30 and before the
    # rule sent under 50 changed a's limit; a's timer at 55 fires after that rule.
    assert bag(out) == bag([("a", 25, 1, 5), ("b", 27, 1, None), ("a", 55, 2, 6)])


class TouchesKeyedState(KeyedBroadcastProcessFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        return ()

    def process_broadcast_element(self, value, ctx):
        self.count.value()
        return ()


def test_keyed_state_is_out_of_reach_of_broadcast_elements(env):
    rules = env.from_collection([("a", 1)])
    keyed = env.from_collection([("a", 0)]).key_by(lambda r: r[0])
    collect(keyed.connect(rules.broadcast(LIMITS)).process(TouchesKeyedState()))
    with pytest.raises(JobExecutionException) as info:
        env.execute("keyed state on the broadcast side")
    assert "not in process_broadcast_element" in str(info.value) + info.value.detail


TOTAL = ValueStateDescriptor("total")


class Totals(KeyedBroadcastProcessFunction):
    """Sums each key's amounts in keyed state; broadcast commands visit every key's sum
    through apply_to_keyed_state: "double" doubles it, "drop c" clears c's, "visit"
    reports the keys this worker holds."""

    def open(self, runtime_context):
        self.total = runtime_context.get_state(TOTAL)
        self.worker = runtime_context.get_index_of_this_subtask()

    def process_element(self, value, ctx):
        key, amount = value
        self.total.update((self.total.value() or 0) + amount)
        yield "total", key, self.total.value()

    def process_broadcast_element(self, command, ctx):
        visited = []

        def visit(key, state):
            visited.append(key)
            if command == "double":
                state.update(state.value() * 2)
            elif command == "drop c" and key == "c":
                state.clear()

        ctx.apply_to_keyed_state(TOTAL, visit)
        yield "visited", command, self.worker, tuple(sorted(visited))


def test_apply_to_keyed_state_visits_every_key_and_its_updates_stick(env, parallelism):
    # Keys a..d get their first amounts before any watermark; the commands go out under
    # watermark 10 (in order: "visit" sees c cleared), the later amounts under 20: they
    # see what the commands left.
    items = env.add_source(TestSource([Timestamped(("a", 1), 1), Timestamped(("b", 2), 2), Timestamped(("c", 3), 3),
                                       Timestamped(("d", 4), 4), Watermark(20), Timestamped(("a", 10), 21),
                                       Timestamped(("c", 10), 22), Watermark(40)]))
    commands = env.add_source(TestSource([Watermark(10), Timestamped("double", 11), Timestamped("drop c", 12),
                                          Timestamped("visit", 13), Watermark(40)]))
    out = run(env, items.key_by(lambda r: r[0]).connect(commands.broadcast(LIMITS)).process(Totals()))
    totals = [r[1:] for r in out if r[0] == "total"]
    assert bag(totals) == bag([("a", 1), ("b", 2), ("c", 3), ("d", 4), ("a", 12), ("c", 10)])
    visited = {}
    for _, command, worker, keys in (r for r in out if r[0] == "visited"):
        visited.setdefault(command, {})[worker] = keys
    # Every worker ran every command, over its own keys: together each key once.
    for command, keys in [("double", "abcd"), ("drop c", "abcd"), ("visit", "abd")]:
        assert sorted(visited[command]) == list(range(parallelism)), command
        got = [k for w in visited[command].values() for k in w]
        assert sorted(got) == list(keys), command
    if parallelism > 1:
        assert sum(1 for keys in visited["double"].values() if keys) == 2, "the keys are spread over both workers"


class OddKeys(KeyedBroadcastProcessFunction):
    def open(self, runtime_context):
        self.seen = runtime_context.get_list_state(ListStateDescriptor("seen"))

    def process_element(self, value, ctx):
        self.seen.add(value)
        return ()

    def process_broadcast_element(self, value, ctx):
        found = []
        ctx.apply_to_keyed_state(ListStateDescriptor("seen"), lambda key, state: found.append((key, tuple(state.get()))))
        yield from found


def test_apply_to_keyed_state_hands_over_keys_equal_to_the_streams(env):
    items = env.add_source(TestSource([Timestamped((("x", 1), "p"), 1), Timestamped((7, "q"), 2),
                                       Timestamped((2**70, "r"), 3), Timestamped((None, "s"), 4), Watermark(20)]))
    go = env.add_source(TestSource([Watermark(10), Timestamped("go", 11), Watermark(20)]))
    out = run(env, items.key_by(lambda r: r[0]).connect(go.broadcast(LIMITS)).process(OddKeys()))
    assert bag(out) == bag([(("x", 1), ((("x", 1), "p"),)), (7, ((7, "q"),)), (2**70, ((2**70, "r"),)),
                            (None, ((None, "s"),))])
    assert any(type(k) is tuple for k, _ in out), "a tuple key comes back as a tuple"


class Applies(KeyedBroadcastProcessFunction):
    """apply_to_keyed_state with `descriptor`, from the broadcast side (or, with
    `keyed_side`, from process_element)."""

    def __init__(self, descriptor, keyed_side=False):
        self.descriptor = descriptor
        self.keyed_side = keyed_side

    def open(self, runtime_context):
        self.total = runtime_context.get_state(TOTAL)

    def process_element(self, value, ctx):
        self.total.update(1)
        if self.keyed_side:
            ctx.apply_to_keyed_state(self.descriptor, lambda key, state: None)
        return ()

    def process_broadcast_element(self, value, ctx):
        ctx.apply_to_keyed_state(self.descriptor, lambda key, state: None)
        return ()


@pytest.mark.parametrize("args, message", [
    ((ValueStateDescriptor("nope"),), "no keyed state named 'nope' is registered"),
    ((TOTAL, True), "only available in process_broadcast_element"),
])
def test_apply_to_keyed_state_refuses_an_unregistered_descriptor_and_the_keyed_side(env, args, message):
    items = env.add_source(TestSource([Timestamped(("a", 1), 1), Watermark(20)]))
    go = env.add_source(TestSource([Watermark(10), Timestamped("go", 11), Watermark(20)]))
    collect(items.key_by(lambda r: r[0]).connect(go.broadcast(LIMITS)).process(Applies(*args)).name("applies"))
    with pytest.raises(JobExecutionException) as info:
        env.execute("apply")
    text = str(info.value) + info.value.detail
    assert "applies" in text and message in text, text


class PlainApplies(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        return ()

    def process_broadcast_element(self, value, ctx):
        ctx.apply_to_keyed_state(TOTAL, lambda key, state: None)
        return ()


def test_apply_to_keyed_state_needs_a_keyed_stream(env):
    collect(env.from_collection([1]).connect(env.from_collection([2]).broadcast(LIMITS)).process(PlainApplies()))
    with pytest.raises(JobExecutionException) as info:
        env.execute("plain apply")
    assert "apply_to_keyed_state() needs keyed state" in str(info.value) + info.value.detail


PROBES = [0, 1, True, 1.0, 0.5, "a", "", ("a", 1), None]


class Commands(BroadcastProcessFunction):
    """Runs broadcast commands on broadcast state; "report" yields what this worker's
    state holds, read on both sides."""

    def open(self, runtime_context):
        self.worker = runtime_context.get_index_of_this_subtask()

    def process_element(self, value, ctx):
        state = ctx.get_broadcast_state(LIMITS)
        yield "read", self.worker, [(k, state.get(k), k in state) for k in PROBES]

    def process_broadcast_element(self, command, ctx):
        state = ctx.get_broadcast_state(LIMITS)
        op, *args = command
        if op == "put":
            state.put(*args)
        elif op == "put_all":
            state.put_all(dict(args[0]))
        elif op == "remove":
            state.remove(*args)
        elif op == "clear":
            state.clear()
        else:
            yield ("report", self.worker, state.items(), state.keys(), state.values(), state.is_empty(),
                   [(k, state.get(k), state.contains(k)) for k in PROBES])


KEYS = st.sampled_from([0, 1, True, 1.0, 0.5, "a", "", ("a", 1), None, 2**70])
COMMAND = st.one_of(st.tuples(st.just("put"), KEYS, st.integers(-5, 5)),
                    st.tuples(st.just("put_all"), st.lists(st.tuples(KEYS, st.integers(-5, 5)), max_size=3)),
                    st.tuples(st.just("remove"), KEYS),
                    st.tuples(st.just("clear")))


@JOB_SETTINGS
@given(commands=st.lists(COMMAND, max_size=12))
def test_broadcast_state_matches_a_dict_on_every_worker(parallelism, commands):
    model: dict = {}
    for op, *args in commands:
        if op == "put":
            model[args[0]] = args[1]
        elif op == "put_all":
            model.update(dict(args[0]))
        elif op == "remove":
            model.pop(args[0], None)
        else:
            model.clear()
    env = make_env(parallelism)
    rules = env.add_source(TestSource([Timestamped(c, 1) for c in commands] + [Watermark(10),
                                      Timestamped(("report",), 11), Watermark(20)]))
    items = env.add_source(TestSource([Watermark(20), Timestamped("probe", 21), Watermark(30)]))
    out = run(env, items.connect(rules.broadcast(LIMITS)).process(Commands()))
    reports = [r for r in out if r[0] == "report"]
    assert sorted(r[1] for r in reports) == list(range(parallelism))
    probes = [(k, model.get(k), k in model) for k in PROBES]
    for _, _, items_, keys, values, empty, got in reports:
        assert bag(items_) == bag(model.items()) and empty == (not model)
        assert [(k, v) for k, v in zip(keys, values)] == items_
        assert got == probes
        assert items_ == reports[0][2], "the same order on every worker"
    # The keyed side (here: the other input) reads the same.
    assert [r[2] for r in out if r[0] == "read"] == [probes]
