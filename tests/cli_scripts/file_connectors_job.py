"""The FileSource/FileSink kill test's job (tests/test_file_connectors.py).

    ferroflow run file_connectors_job.py [-p N] [--from-checkpoint DIR] - STORAGE OUT SLOW INPUT...

Reads the lines of every INPUT (files and folders) with a ``FileSource``, keys them by
``int(line) % 101``, counts per key with a rolling reduce (keyed state) and writes
``"<key> <count>"`` per record with a ``FileSink`` rolled every 4 KiB into hourly
buckets. The committed lines are fixed by the input alone: for each key, the counts
1..n once each, however often the job is killed and restored. Checkpoints every 100 ms
to STORAGE; SLOW: ms to sleep every 1000 lines, so that a test can kill it while it runs.
"""

import sys
import time

from ferroflow import Encoder, StreamExecutionEnvironment, WatermarkStrategy
from ferroflow.connectors.file_system import FileSink, FileSource, RollingPolicy, StreamFormat
from ferroflow.restart_strategy import RestartStrategies

storage, out, slow, inputs = sys.argv[1], sys.argv[2], int(sys.argv[3]) / 1000, sys.argv[4:]

env = StreamExecutionEnvironment.get_execution_environment()
env.enable_checkpointing(100)
env.get_checkpoint_config().set_checkpoint_storage_dir(storage)
env.set_restart_strategy(RestartStrategies.no_restart())


def throttle(line):
    value = int(line)
    if slow and value % 1000 == 0:
        time.sleep(slow)
    return (value % 101, 1)


source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), *inputs).build()
counts = env.from_source(source, WatermarkStrategy.no_watermarks(), "numbers") \
    .map(throttle).key_by(lambda t: t[0]).reduce(lambda a, b: (a[0], a[1] + b[1]))
counts.map(lambda t: f"{t[0]} {t[1]}").sink_to(
    FileSink.for_row_format(out, Encoder.simple_string_encoder())
    .with_rolling_policy(RollingPolicy.default_rolling_policy(part_size=4096))
    .build())
env.execute("file connectors, exactly-once")
