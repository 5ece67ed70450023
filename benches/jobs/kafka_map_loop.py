"""Kafka → map → Kafka as a plain confluent-kafka consume-transform-produce loop in
Python (benches/kafka.py's baseline): the same topic, records and transform as
kafka_map_ferroflow.py, at-least-once (flushed at the end), one process.

    python kafka_map_loop.py BOOTSTRAP IN OUT PARTITIONS

Like the ferroflow job's bounded source, it reads each partition up to its end when it
started (ListOffsets, as librdkafka answers it).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_map_udf import transform  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

bootstrap, src, dst, partitions = sys.argv[1:5]
partitions = int(partitions)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-loop", "enable.auto.commit": False,
                     "enable.partition.eof": True})
producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
ends = {p: consumer.get_watermark_offsets(TopicPartition(src, p), timeout=30, cached=False)[1]
        for p in range(partitions)}
consumer.assign([TopicPartition(src, p, 0) for p in range(partitions)])
done = {p for p, end in ends.items() if end == 0}
while len(done) < partitions:
    for m in consumer.consume(1000, 0.1):
        if m.error() or m.partition() in done:
            continue
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
        out = transform(m.value().decode("utf-8")).encode("utf-8")
        while True:
            try:
                producer.produce(dst, out)
                break
            except BufferError:
                producer.poll(0.01)
    producer.poll(0)
assert producer.flush(60) == 0, "records not acknowledged"
consumer.close()
