"""Property tests (hypothesis) against plain-Python models, beyond test_state_model.py:

- map, list, reducing and aggregating state driven by random operations per key,
  against a dict per key;
- processing-time timers on the ``TestSource``'s manual clock and event-time timers on
  its watermarks (register, delete, register twice, firing in timestamp order once
  time passes them, and at the end of input: event time, then processing time);
- time-to-live of value, list and map state on the manual clock, for every update
  type, visibility and cleanup, against Flink's rules.

One job per example runs many keys; a key's outputs come in order from one worker,
so outputs are compared per key. At 1 worker, 2 threads and 2 processes (the
``parallelism`` fixture)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferroflow import (AggregateFunction, AggregatingStateDescriptor, KeyedProcessFunction, ListStateDescriptor,
                       MapStateDescriptor, ReducingStateDescriptor, StateTtlConfig, Time, ValueStateDescriptor)
from ferroflow.testing import ProcessingTime, TestSource, Watermark

from conftest import collect, make_env

KEYS = ["a", "b", 3]
MAP_KEYS = [0, 1, 2, "x", "y"]
NO_WATERMARK = -(2 ** 63)  # current_watermark() before the first one (Java's Long.MIN_VALUE)

JOBS = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def run_per_key(parallelism: int, events: List[Any], function: KeyedProcessFunction) -> Dict[Any, List[Any]]:
    """Runs ``function`` on ``events`` (records ``(key, ...)`` and markers) and returns
    its outputs ``(key, row)`` grouped by key, in the order each key got them."""
    env = make_env(parallelism)
    out = collect(env.add_source(TestSource(events, processing_time_start=0))
                  .key_by(lambda r: r[0]).process(function))
    env.execute("model")
    got: Dict[Any, List[Any]] = {}
    for key, row in out:
        got.setdefault(key, []).append(row)
    return got


def by_repr(values: Any) -> List[Any]:
    """A collection in a fixed order whatever its types (map keys mix ints and strs)."""
    return sorted(values, key=repr)


# -- map, list, reducing and aggregating state ------------------------------------------------


class Tally(AggregateFunction):
    """Sum, count and the values in the order added: ``add``'s argument order shows."""

    def create_accumulator(self):
        return (0, 0, ())

    def add(self, value, accumulator):
        return (accumulator[0] + value, accumulator[1] + 1, accumulator[2] + (value,))

    def get_result(self, accumulator):
        return accumulator


class Collections(KeyedProcessFunction):
    """Runs the operation a record names, then yields its result and everything the
    key's four states hold."""

    def open(self, runtime_context):
        self.map = runtime_context.get_map_state(MapStateDescriptor("map"))
        self.list = runtime_context.get_list_state(ListStateDescriptor("list"))
        # Concatenating strings shows reduce(current, new)'s argument order.
        self.reducing = runtime_context.get_reducing_state(ReducingStateDescriptor("reducing", lambda a, b: a + b))
        self.aggregating = runtime_context.get_aggregating_state(AggregatingStateDescriptor("aggregating", Tally()))

    def process_element(self, record, ctx):
        key, op, arg = record
        m, lst = self.map, self.list
        result: Any = None
        if op == "map.put":
            m.put(*arg)
        elif op == "map.setitem":
            m[arg[0]] = arg[1]
        elif op == "map.put_all":
            m.put_all(dict(arg))
        elif op == "map.remove":
            m.remove(arg)
        elif op == "map.delitem":
            del m[arg]
        elif op == "map.get":
            result = m.get(arg)
        elif op == "map.getitem":
            result = m[arg]
        elif op == "map.contains":
            result = (m.contains(arg), arg in m)
        elif op == "map.keys":
            result = by_repr(m.keys())
        elif op == "map.values":
            result = by_repr(m.values())
        elif op == "map.iter":
            result = by_repr(m)
        elif op == "map.is_empty":
            result = m.is_empty()
        elif op == "map.clear":
            m.clear()
        elif op == "list.add":
            lst.add(arg)
        elif op == "list.add_all":
            lst.add_all(list(arg))
        elif op == "list.update":
            lst.update(list(arg))
        elif op == "list.iter":
            result = list(lst)
        elif op == "list.clear":
            lst.clear()
        elif op == "reducing.add":
            self.reducing.add(arg)
        elif op == "reducing.clear":
            self.reducing.clear()
        elif op == "aggregating.add":
            self.aggregating.add(arg)
        elif op == "aggregating.clear":
            self.aggregating.clear()
        yield key, (op, result, by_repr(m.items()), list(lst.get()), self.reducing.get(), self.aggregating.get())


def collections_model(events: List[Any]) -> Dict[Any, List[Any]]:
    """What ``Collections`` yields per key: Flink's state semantics on plain dicts."""
    maps: Dict[Any, Dict[Any, Any]] = {}
    lists: Dict[Any, List[Any]] = {}
    reduced: Dict[Any, str] = {}
    tallies: Dict[Any, Tuple[int, int, Tuple[int, ...]]] = {}
    out: Dict[Any, List[Any]] = {}
    for key, op, arg in events:
        m = maps.setdefault(key, {})
        lst = lists.setdefault(key, [])
        result: Any = None
        if op in ("map.put", "map.setitem"):
            m[arg[0]] = arg[1]
        elif op == "map.put_all":
            m.update(dict(arg))
        elif op in ("map.remove", "map.delitem"):
            m.pop(arg, None)
        elif op in ("map.get", "map.getitem"):
            result = m.get(arg)
        elif op == "map.contains":
            result = (arg in m, arg in m)
        elif op in ("map.keys", "map.iter"):
            result = by_repr(m)
        elif op == "map.values":
            result = by_repr(m.values())
        elif op == "map.is_empty":
            result = not m
        elif op == "map.clear":
            m.clear()
        elif op == "list.add":
            lst.append(arg)
        elif op == "list.add_all":
            lst.extend(arg)
        elif op == "list.update":
            lst[:] = list(arg)
        elif op == "list.iter":
            result = list(lst)
        elif op == "list.clear":
            lst.clear()
        elif op == "reducing.add":
            reduced[key] = reduced[key] + arg if key in reduced else arg
        elif op == "reducing.clear":
            reduced.pop(key, None)
        elif op == "aggregating.add":
            s, n, seen = tallies.get(key, (0, 0, ()))
            tallies[key] = (s + arg, n + 1, seen + (arg,))
        elif op == "aggregating.clear":
            tallies.pop(key, None)
        out.setdefault(key, []).append(
            (op, result, by_repr(m.items()), list(lst), reduced.get(key), tallies.get(key)))
    return out


MAP_VALUES = st.integers(0, 9)
SMALL_LISTS = st.lists(st.integers(0, 9), max_size=3).map(tuple)
COLLECTION_OPS = {
    "map.put": st.tuples(st.sampled_from(MAP_KEYS), MAP_VALUES),
    "map.setitem": st.tuples(st.sampled_from(MAP_KEYS), MAP_VALUES),
    "map.put_all": st.lists(st.tuples(st.sampled_from(MAP_KEYS), MAP_VALUES), max_size=3).map(tuple),
    "map.remove": st.sampled_from(MAP_KEYS),
    "map.delitem": st.sampled_from(MAP_KEYS),
    "map.get": st.sampled_from(MAP_KEYS),
    "map.getitem": st.sampled_from(MAP_KEYS),
    "map.contains": st.sampled_from(MAP_KEYS),
    "map.keys": st.none(),
    "map.values": st.none(),
    "map.iter": st.none(),
    "map.is_empty": st.none(),
    "map.clear": st.none(),
    "list.add": st.integers(0, 9),
    "list.add_all": SMALL_LISTS,
    "list.update": SMALL_LISTS,
    "list.iter": st.none(),
    "list.clear": st.none(),
    "reducing.add": st.sampled_from(["p", "q", "r"]),
    "reducing.clear": st.none(),
    "aggregating.add": st.integers(0, 9),
    "aggregating.clear": st.none(),
}


@st.composite
def collection_ops(draw) -> List[Tuple[Any, str, Any]]:
    ops = []
    for _ in range(draw(st.integers(0, 60))):
        op = draw(st.sampled_from(sorted(COLLECTION_OPS)))
        ops.append((draw(st.sampled_from(KEYS)), op, draw(COLLECTION_OPS[op])))
    return ops


@JOBS
@given(ops=collection_ops())
def test_map_list_reducing_and_aggregating_state_match_a_dict_model(parallelism, ops):
    assert run_per_key(parallelism, ops, Collections()) == collections_model(ops)


# -- timers -----------------------------------------------------------------------------------


class Timers(KeyedProcessFunction):
    """Registers or deletes the timer a record names; yields what the record saw (the
    clocks, the key's record count) and each firing (domain, timestamp, the key's count,
    the watermark)."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, record, ctx):
        key, action, t = record
        service = ctx.timer_service()
        self.count.update((self.count.value() or 0) + 1)
        if action == "event":
            service.register_event_time_timer(t)
        elif action == "event twice":
            service.register_event_time_timer(t)
            service.register_event_time_timer(t)
        elif action == "delete event":
            service.delete_event_time_timer(t)
        elif action == "processing":
            service.register_processing_time_timer(t)
        elif action == "processing twice":
            service.register_processing_time_timer(t)
            service.register_processing_time_timer(t)
        elif action == "delete processing":
            service.delete_processing_time_timer(t)
        yield key, ("record", action, t, service.current_processing_time(), service.current_watermark(),
                    self.count.value())

    def on_timer(self, timestamp, ctx):
        watermark = ctx.timer_service().current_watermark()
        yield ctx.get_current_key(), ("timer", ctx.time_domain().name, timestamp, self.count.value(),
                                      watermark if ctx.time_domain().name == "EVENT_TIME" else None)


def timers_model(events: List[Any]) -> Dict[Any, List[Any]]:
    """What ``Timers`` yields per key: a timer is one per (key, domain, timestamp); it
    fires once its clock reaches it, in timestamp order; at the end of input every
    event-time timer fires (watermark +infinity), then every processing-time one."""
    timers: Dict[str, set] = {"EVENT_TIME": set(), "PROCESSING_TIME": set()}
    count: Dict[Any, int] = {}
    out: Dict[Any, List[Any]] = {}
    watermark, clock = NO_WATERMARK, 0

    def fire(domain: str, upto: int, watermark: Optional[int]) -> None:
        for ts, key in sorted((t for t in timers[domain] if t[0] <= upto), key=lambda t: (t[0], repr(t[1]))):
            timers[domain].discard((ts, key))
            out.setdefault(key, []).append(("timer", domain, ts, count.get(key), watermark))

    for e in events:
        if isinstance(e, Watermark):
            watermark = max(watermark, e.timestamp)
            fire("EVENT_TIME", watermark, watermark)
        elif isinstance(e, ProcessingTime):
            clock = max(clock, e.time)
            fire("PROCESSING_TIME", clock, None)
        else:
            key, action, t = e
            count[key] = count.get(key, 0) + 1
            domain = "EVENT_TIME" if "event" in action else "PROCESSING_TIME"
            if action.startswith("delete"):
                timers[domain].discard((t, key))
            elif action != "none":
                timers[domain].add((t, key))
            out.setdefault(key, []).append(("record", action, t, clock, watermark, count[key]))
    end = 2 ** 63 - 1
    fire("EVENT_TIME", end, end)
    fire("PROCESSING_TIME", end, None)
    return out


@st.composite
def timer_streams(draw) -> List[Any]:
    """Records registering timers strictly after their clock's current time (a timer
    already due would fire at the next step, which the model cannot place), deleting
    timers some key registered, rising watermarks and clock steps."""
    events: List[Any] = []
    watermark, clock = 0, 0
    used: List[int] = [5]
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["record"] * 4 + ["watermark", "clock"]))
        if kind == "watermark":
            watermark += draw(st.integers(1, 60))
            events.append(Watermark(watermark))
        elif kind == "clock":
            clock += draw(st.integers(1, 60))
            events.append(ProcessingTime(clock))
        else:
            action = draw(st.sampled_from(["event", "event twice", "delete event", "processing",
                                           "processing twice", "delete processing", "none"]))
            now = watermark if "event" in action else clock
            if action.startswith("delete"):
                t = draw(st.sampled_from(used))
            else:
                # Small steps ahead, so timers often share timestamps across keys and
                # registrations.
                t = now + draw(st.integers(1, 80))
                used.append(t)
            events.append((draw(st.sampled_from(KEYS)), action, t))
    return events


@JOBS
@given(events=timer_streams())
def test_event_and_processing_time_timers_match_the_model(parallelism, events):
    assert run_per_key(parallelism, events, Timers()) == timers_model(events)


# -- time to live -------------------------------------------------------------------------------

TTL_MS = 20

#: Cleanups, as (name, builder step). With background cleanup (Flink's default: an
#: incremental cleanup of 5 entries per state access) or an explicit incremental one
#: at least as large as the number of keys, every access to a state first removes
#: every expired entry of it for every key of the worker; the model applies that to
#: the accessed key only, which is all a read can tell.
CLEANUPS: Dict[str, Callable[[Any], Any]] = {
    "on read": lambda b: b.disable_cleanup_in_background(),
    "on read, full snapshot": lambda b: b.disable_cleanup_in_background().cleanup_full_snapshot(),
    "background (default)": lambda b: b,
    "background, full snapshot": lambda b: b.cleanup_full_snapshot(),
    "incremental": lambda b: b.cleanup_incrementally(len(KEYS), False),
    "incremental every record": lambda b: b.cleanup_incrementally(len(KEYS) + 2, True),
}


def ttl_config(read_and_write: bool, return_expired: bool, cleanup: str) -> StateTtlConfig:
    b = StateTtlConfig.new_builder(Time.milliseconds(TTL_MS))
    b = b.update_ttl_on_read_and_write() if read_and_write else b.update_ttl_on_create_and_write()
    b = b.return_expired_if_not_cleaned_up() if return_expired else b.never_return_expired()
    return CLEANUPS[cleanup](b).build()


class Expiring(KeyedProcessFunction):
    """Runs the operation a record names on a TTL'd value, list or map state; yields
    its result and the processing time it ran at."""

    def __init__(self, read_and_write: bool, return_expired: bool, cleanup: str) -> None:
        self.settings = (read_and_write, return_expired, cleanup)

    def open(self, runtime_context):
        config = ttl_config(*self.settings)
        value, items, entries = ValueStateDescriptor("value"), ListStateDescriptor("list"), MapStateDescriptor("map")
        for d in (value, items, entries):
            d.enable_time_to_live(config)
        self.value = runtime_context.get_state(value)
        self.list = runtime_context.get_list_state(items)
        self.map = runtime_context.get_map_state(entries)

    def process_element(self, record, ctx):
        key, op, arg = record
        v, lst, m = self.value, self.list, self.map
        result: Any = None
        if op == "value.get":
            result = v.value()
        elif op == "value.update":
            v.update(arg)
        elif op == "value.clear":
            v.clear()
        elif op == "list.get":
            result = list(lst.get())
        elif op == "list.add":
            lst.add(arg)
        elif op == "list.add_all":
            lst.add_all(list(arg))
        elif op == "list.update":
            lst.update(list(arg))
        elif op == "list.clear":
            lst.clear()
        elif op == "map.get":
            result = m.get(arg)
        elif op == "map.contains":
            result = m.contains(arg)
        elif op == "map.put":
            m.put(*arg)
        elif op == "map.put_all":
            m.put_all(dict(arg))
        elif op == "map.remove":
            m.remove(arg)
        elif op == "map.items":
            result = by_repr(m.items())
        elif op == "map.keys":
            result = by_repr(m.keys())
        elif op == "map.values":
            result = by_repr(m.values())
        elif op == "map.is_empty":
            result = m.is_empty()
        elif op == "map.clear":
            m.clear()
        yield key, (op, result, ctx.timer_service().current_processing_time())


class TtlModel:
    """Flink's time-to-live on processing time for one key's value, list and map: an
    entry (a list element, a map entry) stamped at ``s`` has expired at ``now`` iff
    ``s + ttl <= now``. A read of an expired entry removes it and returns it only with
    ReturnExpiredIfNotCleanedUp (so it is returned by that one read); a read of a live
    entry restarts its time with OnReadAndWrite. Every write stamps what it writes.
    With background or incremental cleanup, every access to a state (read or write)
    first removes its expired entries, so no read ever sees one."""

    def __init__(self, read_and_write: bool, return_expired: bool, cleanup: str) -> None:
        self.read_and_write = read_and_write
        self.return_expired = return_expired
        self.incremental = not cleanup.startswith("on read")
        self.value: Optional[List[Any]] = None  # [value, stamp]
        self.list: List[List[Any]] = []  # [element, stamp]
        self.map: Dict[Any, List[Any]] = {}  # key -> [value, stamp]

    def expired(self, stamp: int, now: int) -> bool:
        return stamp + TTL_MS <= now

    def cleanup(self, state: str, now: int) -> None:
        if not self.incremental:
            return
        if state == "value" and self.value is not None and self.expired(self.value[1], now):
            self.value = None
        elif state == "list":
            self.list = [e for e in self.list if not self.expired(e[1], now)]
        elif state == "map":
            self.map = {k: e for k, e in self.map.items() if not self.expired(e[1], now)}

    def read(self, entry: List[Any], now: int) -> Tuple[bool, bool]:
        """(whether the read sees ``entry``, whether it stays stored)."""
        if self.expired(entry[1], now):
            return self.return_expired, False
        if self.read_and_write:
            entry[1] = now
        return True, True

    def read_map(self, now: int) -> List[Tuple[Any, Any]]:
        seen = []
        for k, entry in list(self.map.items()):
            visible, stays = self.read(entry, now)
            if visible:
                seen.append((k, entry[0]))
            if not stays:
                del self.map[k]
        return seen

    def apply(self, op: str, arg: Any, now: int) -> Any:
        self.cleanup(op.split(".")[0], now)
        if op == "value.get":
            if self.value is None:
                return None
            visible, stays = self.read(self.value, now)
            result = self.value[0] if visible else None
            if not stays:
                self.value = None
            return result
        if op == "value.update":
            self.value = [arg, now]
        elif op == "value.clear":
            self.value = None
        elif op == "list.get":
            seen = []
            for entry in self.list:
                visible, _ = self.read(entry, now)
                if visible:
                    seen.append(entry[0])
            self.list = [e for e in self.list if not self.expired(e[1], now)]
            return seen
        elif op == "list.add":
            self.list.append([arg, now])
        elif op == "list.add_all":
            self.list.extend([x, now] for x in arg)
        elif op == "list.update":
            self.list = [[x, now] for x in arg]
        elif op == "list.clear":
            self.list = []
        elif op in ("map.get", "map.contains"):
            entry = self.map.get(arg)
            result = None
            if entry is not None:
                visible, stays = self.read(entry, now)
                result = entry[0] if visible else None
                if not stays:
                    del self.map[arg]
            return result is not None if op == "map.contains" else result
        elif op == "map.put":
            self.map[arg[0]] = [arg[1], now]
        elif op == "map.put_all":
            for k, x in arg:
                self.map[k] = [x, now]
        elif op == "map.remove":
            self.map.pop(arg, None)
        elif op == "map.items":
            return by_repr(self.read_map(now))
        elif op == "map.keys":
            return by_repr(k for k, _ in self.read_map(now))
        elif op == "map.values":
            return by_repr(x for _, x in self.read_map(now))
        elif op == "map.is_empty":
            return not self.read_map(now)
        elif op == "map.clear":
            self.map = {}
        return None


def ttl_model(events: List[Any], settings_: Tuple[bool, bool, str]) -> Dict[Any, List[Any]]:
    keys: Dict[Any, TtlModel] = {}
    out: Dict[Any, List[Any]] = {}
    now = 0
    for e in events:
        if isinstance(e, ProcessingTime):
            now = max(now, e.time)
            continue
        key, op, arg = e
        state = keys.setdefault(key, TtlModel(*settings_))
        out.setdefault(key, []).append((op, state.apply(op, arg, now), now))
    return out


TTL_OPS = {
    "value.get": st.none(),
    "value.update": st.integers(0, 9),
    "value.clear": st.none(),
    "list.get": st.none(),
    "list.add": st.integers(0, 9),
    "list.add_all": SMALL_LISTS,
    "list.update": SMALL_LISTS,
    "list.clear": st.none(),
    "map.get": st.sampled_from(MAP_KEYS),
    "map.contains": st.sampled_from(MAP_KEYS),
    "map.put": st.tuples(st.sampled_from(MAP_KEYS), MAP_VALUES),
    "map.put_all": st.lists(st.tuples(st.sampled_from(MAP_KEYS), MAP_VALUES), max_size=3).map(tuple),
    "map.remove": st.sampled_from(MAP_KEYS),
    "map.items": st.none(),
    "map.keys": st.none(),
    "map.values": st.none(),
    "map.is_empty": st.none(),
    "map.clear": st.none(),
}
#: Reads weigh more than writes: expiry shows only on reads.
TTL_OP_NAMES = sorted(TTL_OPS) + ["value.get", "list.get", "map.items", "map.get"] * 2


@st.composite
def ttl_streams(draw) -> List[Any]:
    """Operations on a few keys, with clock steps around the time to live."""
    events: List[Any] = []
    clock = 0
    for _ in range(draw(st.integers(0, 80))):
        if draw(st.integers(0, 3)) == 0:
            # Steps below the time to live let a read restart it (OnReadAndWrite)
            # before it runs out; steps at its edge check ``<=``.
            clock += draw(st.sampled_from([3, 7, 12, TTL_MS - 1, TTL_MS, TTL_MS + 1]))
            events.append(ProcessingTime(clock))
        else:
            op = draw(st.sampled_from(TTL_OP_NAMES))
            events.append((draw(st.sampled_from(KEYS)), op, draw(TTL_OPS[op])))
    return events


@settings(JOBS, max_examples=50)
@given(events=ttl_streams(), read_and_write=st.booleans(), return_expired=st.booleans(),
       cleanup=st.sampled_from(sorted(CLEANUPS)))
def test_time_to_live_matches_flinks_rules(parallelism, events, read_and_write, return_expired, cleanup):
    settings_ = (read_and_write, return_expired, cleanup)
    assert run_per_key(parallelism, events, Expiring(*settings_)) == ttl_model(events, settings_)


def test_return_expired_is_seen_once_with_cleanup_on_read_only(parallelism):
    """The discrepancy an earlier model had, pinned: written at 0 with a TTL of 20 ms
    and read at 25, a value is returned by the read that finds it expired (and removed
    by it) when expired entries are cleaned up on read only; with Flink's default
    background cleanup the access's incremental cleanup removes it before the read."""
    events = [("a", "value.update", 5), ("a", "list.add", 5), ("a", "map.put", ("x", 5)), ProcessingTime(25),
              ("a", "value.get", None), ("a", "list.get", None), ("a", "map.items", None),
              ("a", "value.get", None), ("a", "list.get", None), ("a", "map.items", None)]

    def reads(got: Dict[Any, List[Any]]) -> List[Any]:
        return [row[1] for row in got["a"][3:]]

    on_read = (False, True, "on read, full snapshot")
    assert reads(run_per_key(parallelism, events, Expiring(*on_read))) == [5, [5], [("x", 5)], None, [], []]
    background = (False, True, "background, full snapshot")
    assert reads(run_per_key(parallelism, events, Expiring(*background))) == [None, [], [], None, [], []]
    for settings_ in (on_read, background):
        assert ttl_model(events, settings_) == run_per_key(parallelism, events, Expiring(*settings_))
