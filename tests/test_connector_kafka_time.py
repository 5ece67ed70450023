"""The Kafka source's event time (issue 15) against the test broker: records carry
their message's timestamp; watermarks are made per partition inside the source (Flink's
per-split watermarks), so a window fires only once every partition passed it, and with
``with_idleness`` an empty partition stops holding it back.

The jobs are unbounded (a bounded source fires everything at its end, which would hide
when windows fire); ``take`` cancels each after the records it waits for, or after a
deadline, so that a watermark that never comes fails the test instead of hanging it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, List, Tuple

import pytest

from conftest import collect
from ferroflow import ProcessFunction, WatermarkStrategy
from ferroflow.window import TumblingEventTimeWindows
from services.kafka import produce
from test_connector_kafka import T0, env_at, per_partition, source, take


class StampOf(ProcessFunction):
    def process_element(self, value, ctx):
        yield (value, ctx.timestamp())


@pytest.mark.parametrize("strategy", [WatermarkStrategy.no_watermarks(), WatermarkStrategy.for_monotonous_timestamps()],
                         ids=["no_watermarks", "monotonous"])
def test_records_carry_the_message_timestamp_without_an_assigner(kafka, strategy):
    topic = kafka.topic(2)
    per_partition(kafka, topic, 2, 8, timestamps=True)
    env = env_at(2)
    got = collect(env.from_source(source(kafka, topic), strategy, "k").process(StampOf()))
    env.execute("timestamps")
    assert sorted(got) == sorted((f"p{p}-{i}", T0 + 1000 * i) for p in (0, 1) for i in range(8))


def window_counts(stream):
    """(window start offset from T0 in s, count) per tumbling 1 s event-time window."""
    return stream.map(lambda v: 1).key_by(lambda _: 0).window(TumblingEventTimeWindows.of(1000)) \
        .apply(lambda key, window, values: [((window.start - T0) // 1000, len(list(values)))])


@pytest.mark.parametrize("parallelism", [1, 2])
def test_windows_fire_only_once_every_partition_passed_them(kafka, parallelism):
    """Per-partition watermarks: partition 0 runs 9 s ahead of partition 1; windows
    fire as partition 1 catches up, never before (the watermark of one reader is the
    least of its partitions')."""
    topic = kafka.topic(2)
    produce(kafka.bootstrap, topic, [f"a{i}".encode() for i in range(10)], partition=0,
            timestamps=[T0 + 1000 * i for i in range(10)])
    produce(kafka.bootstrap, topic, [b"b0"], partition=1, timestamps=[T0 + 500])
    env = env_at(parallelism)
    seen: List[str] = []
    stream = env.from_source(source(kafka, topic, stop=None), WatermarkStrategy.for_monotonous_timestamps(), "k") \
        .map(lambda v: seen.append(v) or v)
    phase = [0]
    received: List[Tuple[int, int, int]] = []
    problems: List[str] = []

    def control() -> None:
        def wait(cond, what) -> bool:
            deadline = time.monotonic() + 8
            while not cond():
                if time.monotonic() > deadline:
                    problems.append(f"timed out waiting for {what}")
                    return False
                time.sleep(0.02)
            return True
        if not wait(lambda: len(seen) >= 11, "all 11 records to be read"):
            return
        time.sleep(0.7)  # a window fired too early would reach the test meanwhile
        phase[0] = 1
        produce(kafka.bootstrap, topic, [b"b1"], partition=1, timestamps=[T0 + 3500])
        if not wait(lambda: len(received) >= 3, "windows 0-2 to fire"):
            return
        time.sleep(0.7)
        phase[0] = 2
        produce(kafka.bootstrap, topic, [b"b2"], partition=1, timestamps=[T0 + 20_000])

    controller = threading.Thread(target=control, daemon=True)
    controller.start()
    # Window 9 (a9 at T0 + 9 s) cannot fire: partition 0's watermark stays below its end.
    take(window_counts(stream), 9, timeout=15, on_record=lambda r: received.append((phase[0],) + tuple(r)))
    controller.join(30)
    assert received == [(1, 0, 2), (1, 1, 1), (1, 2, 1), (2, 3, 2)] + [(2, s, 1) for s in range(4, 9)], \
        (received, problems)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_with_idleness_an_empty_partition_does_not_hold_the_watermark_back(kafka, parallelism):
    topic = kafka.topic(2)
    produce(kafka.bootstrap, topic, [f"a{i}".encode() for i in range(10)], partition=0,
            timestamps=[T0 + 1000 * i for i in range(10)])
    env = env_at(parallelism)
    # 20 ms is shorter than connecting and the first fetch: a partition with records
    # still to read must not count as idle meanwhile (that would drop all of them).
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_idleness(20)
    stream = env.from_source(source(kafka, topic, stop=None), strategy, "k")
    # Partition 1 never gets a record: with idleness windows 0-8 fire from partition 0's
    # watermark alone (window 9 waits for a later record).
    got = take(window_counts(stream), 9, timeout=10)
    assert got == [(s, 1) for s in range(9)]


def test_without_idleness_an_empty_partition_holds_the_watermark_back(kafka):
    topic = kafka.topic(2)
    produce(kafka.bootstrap, topic, [f"a{i}".encode() for i in range(10)], partition=0,
            timestamps=[T0 + 1000 * i for i in range(10)])
    env = env_at(1)
    seen: List[str] = []
    stream = env.from_source(source(kafka, topic, stop=None), WatermarkStrategy.for_monotonous_timestamps(), "k") \
        .map(lambda v: seen.append(v) or v)
    fired_before: List[int] = []

    def release() -> None:
        deadline = time.monotonic() + 8
        while len(seen) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.0)
        fired_before.append(len(got))
        produce(kafka.bootstrap, topic, [b"b"], partition=1, timestamps=[T0 + 20_000])

    got: List[Any] = []
    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    take(window_counts(stream), 9, timeout=12, on_record=got.append)
    releaser.join(20)
    assert fired_before == [0], "a window fired while partition 1 had no record"
    assert got == [(s, 1) for s in range(9)]
