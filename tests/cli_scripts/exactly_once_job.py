"""The exactly-once kill test's job (tests/test_exactly_once.py).

    ferroflow run exactly_once_job.py [-p N] [--from-checkpoint DIR] - STORAGE OUT N [RESTARTS [MARKS [SLOW]]]

The ints 0..N-1 (a replayable sequence), stamped with themselves as event time (ms),
keyed by ``i % 97``, go two ways, each into ``write_as_text``:
- ``OUT/state``: a KeyedProcessFunction keeps each key's count and sum per second in
  MapState and emits them from an event-time timer at the second's end;
- ``OUT/window``: a tumbling 1 s event-time window sums each key's values.
Both outputs are fixed by the input alone, so any run, killed and restored any number
of times, must commit exactly the lines of the model in the test. Checkpoints every
200 ms to STORAGE. RESTARTS: a fixed-delay restart strategy with that many attempts
(default: none, the test restarts the job itself). MARKS: a directory; the job then
raises once at each of a few values (a file there records that it did), so the
restart strategy restarts it from its latest checkpoint in the same process ("-": none).
SLOW: ms to sleep every 1000 values, so that a test can kill the job many times while
it runs.
"""

import os
import sys
import time

from ferroflow import (KeyedProcessFunction, MapStateDescriptor, StreamExecutionEnvironment,
                       WatermarkStrategy)
from ferroflow.restart_strategy import RestartStrategies
from ferroflow.window import TumblingEventTimeWindows

storage, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
restarts = int(sys.argv[4]) if len(sys.argv) > 4 else 0
marks = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
slow = int(sys.argv[6]) / 1000 if len(sys.argv) > 6 else 0
FAIL_AT = (n // 5, n // 2, n * 4 // 5)
KEYS = 97
SECOND = 1000


class SecondTotals(KeyedProcessFunction):
    """Per key and second: count and sum in MapState, emitted by an event-time timer
    when the watermark passes the second (records of later seconds may come first)."""

    def open(self, runtime_context):
        self.totals = runtime_context.get_map_state(MapStateDescriptor("totals"))

    def process_element(self, value, ctx):
        if marks is not None and value in FAIL_AT:
            mark = os.path.join(marks, str(value))
            if not os.path.exists(mark):
                open(mark, "w").close()
                raise RuntimeError(f"injected failure at {value}")
        second = ctx.timestamp() // SECOND
        count, total = self.totals.get(second) or (0, 0)
        self.totals.put(second, (count + 1, total + value))
        ctx.timer_service().register_event_time_timer(second * SECOND + SECOND - 1)

    def on_timer(self, timestamp, ctx):
        second = timestamp // SECOND
        count, total = self.totals.get(second)
        self.totals.remove(second)
        yield f"state {ctx.get_current_key()} {second} {count} {total}"


env = StreamExecutionEnvironment.get_execution_environment()
env.enable_checkpointing(200)
env.get_checkpoint_config().set_checkpoint_storage_dir(storage)
env.get_checkpoint_config().set_num_retained_checkpoints(2)
env.set_restart_strategy(RestartStrategies.fixed_delay_restart(restarts, 0) if restarts
                         else RestartStrategies.no_restart())


def throttle(value):
    if slow and value % 1000 == 0:
        time.sleep(slow)
    return value


stamped = env.generate_sequence(0, n - 1).map(throttle).assign_timestamps_and_watermarks(
    WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda v, _ts: v))
keyed = stamped.key_by(lambda v: v % KEYS)
keyed.process(SecondTotals()).write_as_text(f"{out}/state")
keyed.window(TumblingEventTimeWindows.of(SECOND)).reduce(lambda a, b: a + b) \
    .map(lambda total: f"window {total}").write_as_text(f"{out}/window")
env.execute("exactly-once")
