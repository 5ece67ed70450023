"""A Kafka broker that crashes and comes back mid-job (issue 15): the job waits for it
and goes on; nothing is lost. The broker keeps its topics in S3 (moto's server), so
they outlive the restart, as on a real cluster. (On that storage tansu's ListOffsets is
not to be trusted, so the source here is unbounded and the job takes what it expects.)"""

import subprocess
import sys
import time

import pytest

from services.kafka import Broker, consume_all, produce


@pytest.fixture
def durable_kafka(s3):
    broker = Broker(storage=f"s3://{s3.bucket('tansu-restart')}/", env=s3.env()).start()
    try:
        yield broker
    finally:
        broker.stop()


SINK_JOB = """
import sys, time
from ferroflow import StreamExecutionEnvironment, SimpleStringSchema
from ferroflow.connectors.kafka import KafkaSink, KafkaRecordSerializationSchema, DeliveryGuarantee
bootstrap, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = StreamExecutionEnvironment.get_execution_environment()
sink = (KafkaSink.builder().set_bootstrap_servers(bootstrap)
        .set_record_serializer(KafkaRecordSerializationSchema.builder().set_topic(dst)
                               .set_value_serialization_schema(SimpleStringSchema()).build())
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE).build())

def slowly(v):
    time.sleep(0.02)
    return v

env.from_collection([f"v{i:03d}" for i in range(n)]).map(slowly).sink_to(sink)
env.execute()
print("job done", flush=True)
"""

SOURCE_JOB = """
import sys, time
from ferroflow import StreamExecutionEnvironment, WatermarkStrategy, SimpleStringSchema
from ferroflow.connectors.kafka import KafkaSource
bootstrap, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = StreamExecutionEnvironment.get_execution_environment()
source = (KafkaSource.builder().set_bootstrap_servers(bootstrap).set_topics(src)
          .set_value_only_deserializer(SimpleStringSchema()).build())

def slowly(v):
    time.sleep(0.02)
    return v

got = env.from_source(source, WatermarkStrategy.no_watermarks(), "in").map(slowly).execute_and_collect(limit=n)
print(" ".join(sorted(got)), flush=True)
"""


def run_across_a_restart(broker, tmp_path, job, *args):
    """Runs `job` (about 3 s of work); the broker dies one second in and is away for a
    second. Returns the job's stdout; it must succeed."""
    script = tmp_path / "job.py"
    script.write_text(job)
    p = subprocess.Popen([sys.executable, str(script), broker.bootstrap, *map(str, args)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert p.poll() is None, f"the job ended before the broker went away: {p.communicate()}"
    broker.kill()
    time.sleep(1.0)
    broker.start()
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-2000:]
    return out


def test_the_sink_waits_for_a_restarted_broker_and_loses_nothing(durable_kafka, tmp_path):
    dst = durable_kafka.topic(1)
    out = run_across_a_restart(durable_kafka, tmp_path, SINK_JOB, dst, 150)
    assert "job done" in out
    got = consume_all(durable_kafka.bootstrap, dst, 1, idle=6.0, timeout=90)
    assert set(got) == {f"v{i:03d}".encode() for i in range(150)}, f"{len(set(got))} of 150 records arrived"


def test_the_source_reads_on_after_a_broker_restart(durable_kafka, tmp_path):
    src = durable_kafka.topic(1)
    values = [f"v{i:03d}" for i in range(150)]
    produce(durable_kafka.bootstrap, src, [v.encode() for v in values])
    out = run_across_a_restart(durable_kafka, tmp_path, SOURCE_JOB, src, 150)
    assert out.split() == values
