"""The keyed-state benchmark's records and user logic, shared by every system
(benches/keyed_state.py runs them). Imports no stream processor: each system's script
subclasses the logic here with its own ``KeyedProcessFunction`` and state descriptor,
so all of them run the same Python body per record.

Records are made from the integers 0..N-1 by the same function everywhere
(``make_record``, ``make_event``): each system reads its own integer sequence (ferroflow
``generate_sequence``, PyFlink ``NumberSequenceSource``, Bytewax ``TestingSource(range)``, the
loop ``range``) and maps it with that function. So every system pays the same Python
call to make a record and none pays for parsing a file differently (PyFlink would read
one in Java, the others in Python).
"""

#: Distinct keys of the running count (keys are skewed: the hottest gets ~2.7% of records).
COUNT_KEYS = 50_000
#: Users of the sessionization (skewed, u²), and its session gap: 1M events make
#: ~74k sessions of 1 to ~22k events.
SESSION_KEYS = 2_000
GAP_MS = 30_000
#: Events are 5 ms apart from 2024-01-01T00:00:00Z: 1M events span ~83 minutes.
START_MS = 1_704_067_200_000
STEP_MS = 5


def _unit(i):
    """A deterministic scramble of i into [0, 1) (a splitmix64-style mix: no pattern
    across consecutive i, so a key's arrivals are irregular, as real users' are)."""
    h = (i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 31
    h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 29
    return h / 18446744073709551616.0


def make_record(i):
    """Record i of the running count: (key, i), keys skewed toward user0 (u³): 1M
    records touch ~50k keys, the hottest 2.7% of them."""
    u = _unit(i)
    return f"user{int(COUNT_KEYS * u * u * u)}", i


def make_event(i):
    """Event i of the sessionization: (user, event time ms), times ascending."""
    u = _unit(i)
    return f"user{int(SESSION_KEYS * u * u)}", START_MS + i * STEP_MS


def key_of(record):
    return record[0]


def event_time(event):
    return event[1]


class RunningCountLogic:
    """A running count per key in a ValueState, emitting (key, count) per record.
    Mixed into each system's KeyedProcessFunction; ``descriptor(name)`` makes that
    system's ValueStateDescriptor."""

    def descriptor(self, name):
        raise NotImplementedError

    def open(self, runtime_context):
        self.count = runtime_context.get_state(self.descriptor("count"))

    def process_element(self, value, ctx):
        count = self.count.value()
        count = 1 if count is None else count + 1
        self.count.update(count)
        yield value[0], count


class SessionizeLogic:
    """Sessions per key with a gap of GAP_MS: the session's (start, last, count) in a
    ValueState and an event-time timer at last + gap, moved on every event; emits
    (key, start, last, count) when the timer fires, or when an event comes a gap or
    more after the last one before the timer could fire (the watermark trails the
    records). Events of a key come in time order (the input is ascending)."""

    def descriptor(self, name):
        raise NotImplementedError

    def open(self, runtime_context):
        self.session = runtime_context.get_state(self.descriptor("session"))

    def process_element(self, value, ctx):
        ts = ctx.timestamp()
        timers = ctx.timer_service()
        session = self.session.value()
        if session is not None:
            start, last, count = session
            timers.delete_event_time_timer(last + GAP_MS)
            if ts - last >= GAP_MS:
                yield ctx.get_current_key(), start, last, count
                session = None
        if session is None:
            start, count = ts, 0
        self.session.update((start, ts, count + 1))
        timers.register_event_time_timer(ts + GAP_MS)

    def on_timer(self, timestamp, ctx):
        start, last, count = self.session.value()
        self.session.clear()
        yield ctx.get_current_key(), start, last, count


def session_line(session):
    """A session as the line every system writes: key<TAB>start<TAB>last<TAB>count."""
    return f"{session[0]}\t{session[1]}\t{session[2]}\t{session[3]}"


def digest(counts):
    """What a run of the running count must agree on, from the (key, count) records it
    emitted: records, distinct keys, sum of counts (order-independent)."""
    n = keys = total = 0
    seen = set()
    for key, c in counts:
        n += 1
        total += c
        if key not in seen:
            seen.add(key)
            keys += 1
    return f"records={n} keys={keys} sum_of_counts={total}"
