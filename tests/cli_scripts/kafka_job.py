"""The Kafka kill test's job (tests/test_connector_kafka_jobs.py).

    ferroflow run kafka_job.py [-p N] [--from-checkpoint DIR] - BOOTSTRAP TOPIC GROUP STORAGE OUT SLOW

Reads TOPIC (from the earliest offsets to the partitions' ends, bounded) with a
KafkaSource in consumer group GROUP, and writes each value as a line with a FileSink
(exactly once: part files committed with checkpoints) to OUT. Checkpoints every 100 ms to
STORAGE; SLOW: ms to sleep every 100 records, so that a test can kill it while it runs.
The committed lines are fixed by the topic alone: each value once, however often the
job is killed and restored.
"""

import sys
import time

from ferroflow import Encoder, SimpleStringSchema, StreamExecutionEnvironment, WatermarkStrategy
from ferroflow.connectors.file_system import FileSink
from ferroflow.connectors.kafka import KafkaOffsetsInitializer, KafkaSource
from ferroflow.restart_strategy import RestartStrategies

bootstrap, topic, group, storage, out, slow = sys.argv[1:7]
slow_s = int(slow) / 1000

env = StreamExecutionEnvironment.get_execution_environment()
env.enable_checkpointing(100)
env.get_checkpoint_config().set_checkpoint_storage_dir(storage)
env.set_restart_strategy(RestartStrategies.no_restart())

source = KafkaSource.builder().set_bootstrap_servers(bootstrap).set_topics(topic).set_group_id(group) \
    .set_value_only_deserializer(SimpleStringSchema()).set_bounded(KafkaOffsetsInitializer.latest()).build()


def throttle(value):
    if slow_s and int(value.rsplit("-", 1)[1]) % 100 == 0:
        time.sleep(slow_s)
    return value


env.from_source(source, WatermarkStrategy.no_watermarks(), "kafka").map(throttle) \
    .sink_to(FileSink.for_row_format(out, Encoder.simple_string_encoder()).build())
env.execute("kafka, exactly-once")
