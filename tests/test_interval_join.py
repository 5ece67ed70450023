"""``KeyedStream.interval_join(other).between(lower, upper).process(ProcessJoinFunction)``
(issue 12 part D): each pair of one key with ``right.ts`` within ``[left.ts + lower,
left.ts + upper]`` (bounds inclusive unless made exclusive), pair timestamps the larger
of the two, state cleaned up as the watermark passes; checked against a plain-Python
model with hypothesis, at 1 worker, 2 threads and 2 processes."""

from __future__ import annotations

from typing import Any, List, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferroflow import JobExecutionException, ProcessFunction, ProcessJoinFunction, Time
from ferroflow.testing import TestSource, Timestamped, Watermark

from conftest import JOB_SETTINGS, bag, collect, make_env, run


class Pairs(ProcessJoinFunction):
    def process_element(self, left, right, ctx):
        yield left, right, ctx.get_left_timestamp(), ctx.get_right_timestamp(), ctx.timestamp()


class Stamp(ProcessFunction):
    """The timestamp each record carries."""

    def process_element(self, value, ctx):
        yield value, ctx.timestamp()


def joined(env, left_events, right_events, lower, upper, lower_exclusive=False, upper_exclusive=False):
    left = env.add_source(TestSource(left_events)).key_by(lambda r: r[0])
    right = env.add_source(TestSource(right_events)).key_by(lambda r: r[0])
    between = left.interval_join(right).between(lower, upper)
    if lower_exclusive:
        between = between.lower_bound_exclusive()
    if upper_exclusive:
        between = between.upper_bound_exclusive()
    return between.process(Pairs()).process(Stamp())


def test_pairs_within_the_bounds_carry_the_later_timestamp(env):
    lefts = [Timestamped(("a", "l1"), 10), Timestamped(("b", "l2"), 20), Watermark(15), Timestamped(("a", "l3"), 30)]
    rights = [Timestamped(("a", "r1"), 8), Timestamped(("a", "r2"), 13), Watermark(25), Timestamped(("a", "r3"), 30),
              Timestamped(("b", "r4"), 40)]
    out = run(env, joined(env, lefts, rights, Time.milliseconds(-2), Time.milliseconds(3)))
    l1, l3 = ("a", "l1"), ("a", "l3")
    assert bag(out) == bag([
        ((l1, ("a", "r1"), 10, 8, 10), 10),   # 8 - 10 = -2: the lower bound, inclusive
        ((l1, ("a", "r2"), 10, 13, 13), 13),  # 13 - 10 = 3: the upper bound, inclusive
        ((l3, ("a", "r3"), 30, 30, 30), 30),
    ])


def test_exclusive_bounds_leave_out_pairs_at_the_bounds(env):
    lefts = [Timestamped(("a", "l1"), 10)]
    rights = [Timestamped(("a", "r1"), 8), Timestamped(("a", "r2"), 13), Timestamped(("a", "r3"), 11)]
    out = run(env, joined(env, lefts, rights, -2, 3, lower_exclusive=True, upper_exclusive=True))
    assert out == [((("a", "l1"), ("a", "r3"), 10, 11, 11), 11)]


def test_records_without_timestamps_fail_the_job(env):
    left = env.from_collection([("a", 1)]).key_by(lambda r: r[0])
    right = env.from_collection([("a", 2)]).key_by(lambda r: r[0])
    collect(left.interval_join(right).between(-1, 1).process(Pairs()))
    with pytest.raises(JobExecutionException) as info:
        env.execute("no timestamps")
    assert "event-time timestamps" in str(info.value) + info.value.detail


def test_bounds_and_functions_are_checked_at_the_call(env):
    left = env.from_collection([("a", 1)]).key_by(lambda r: r[0])
    right = env.from_collection([("a", 2)]).key_by(lambda r: r[0])
    with pytest.raises(ValueError, match="lower bound"):
        left.interval_join(right).between(5, 1)
    with pytest.raises(TypeError, match="ProcessJoinFunction"):
        left.interval_join(right).between(0, 1).process(ProcessJoinFunction())
    with pytest.raises(TypeError, match="keyed stream"):
        left.interval_join(env.from_collection([1]))


# -- the model -------------------------------------------------------------------------------


@st.composite
def side(draw, tag: str) -> List[Any]:
    """One input: records at or after its watermark (never late), and watermarks."""
    events: List[Any] = []
    watermark = 0
    for i in range(draw(st.integers(0, 10))):
        if draw(st.integers(0, 3)) == 0:
            watermark += draw(st.integers(1, 30))
            events.append(Watermark(watermark))
        else:
            key = draw(st.sampled_from(["a", "b", 1]))
            events.append(Timestamped((key, f"{tag}{i}"), watermark + draw(st.integers(0, 30))))
    return events


def join_model(lefts: List[Any], rights: List[Any], lower: int, upper: int, lower_exclusive: bool,
               upper_exclusive: bool) -> List[Tuple[Any, int]]:
    out = []
    for l in (e for e in lefts if isinstance(e, Timestamped)):
        for r in (e for e in rights if isinstance(e, Timestamped)):
            d = r.timestamp - l.timestamp
            if (l.value[0] == r.value[0] and (lower < d if lower_exclusive else lower <= d)
                    and (d < upper if upper_exclusive else d <= upper)):
                ts = max(l.timestamp, r.timestamp)
                out.append(((l.value, r.value, l.timestamp, r.timestamp, ts), ts))
    return out


@JOB_SETTINGS
@given(lefts=side("l"), rights=side("r"), lower=st.integers(-20, 10), width=st.integers(0, 20),
       lower_exclusive=st.booleans(), upper_exclusive=st.booleans())
def test_interval_join_matches_the_model(parallelism, lefts, rights, lower, width, lower_exclusive,
                                         upper_exclusive):
    upper = lower + width
    if (lower_exclusive or upper_exclusive) and width < 2:
        upper = lower + 2
    env = make_env(parallelism)
    out = collect(joined(env, lefts, rights, lower, upper, lower_exclusive, upper_exclusive))
    env.execute("interval join model")
    assert bag(out) == bag(join_model(lefts, rights, lower, upper, lower_exclusive, upper_exclusive))
