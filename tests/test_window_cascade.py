"""A window reading another window's results: Flink sends results before the watermark
that fired them, so the second window never finds them late — whatever the batching."""

from __future__ import annotations

import pytest

from ferroflow import WatermarkStrategy
from ferroflow.window import TumblingEventTimeWindows

from conftest import bag, run


@pytest.mark.parametrize("batch", ["1", "128"])
def test_window_results_are_not_late_for_the_next_window(env, monkeypatch, batch):
    monkeypatch.setenv("FERROFLOW_BATCH_SIZE", batch)
    events = [("k", t, 1) for t in range(0, 2000, 7)]
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field(1)
    first = (env.from_collection(events).assign_timestamps_and_watermarks(strategy)
             .key_by(0).window(TumblingEventTimeWindows.of(100)).sum(2))
    second = first.key_by(0).window(TumblingEventTimeWindows.of(500)).sum(2)
    out = run(env, second)
    # Every event counted once: 2000 ms / 7 ms per event, in four 500 ms windows.
    assert sum(r[2] for r in out) == len(events)
    assert bag(r[2] for r in out) == bag([72, 71, 72, 71])
