"""Kafka → map → Kafka with Bytewax 0.21.1's own Kafka connectors (benches/kafka.py): the
same topic, records and transform as kafka_map_ferroflow.py; its source reads each
partition to the end it finds (tail=False), its sink flushes at the end. One worker.

    python kafka_map_bytewax.py BOOTSTRAP IN OUT PARTITIONS
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_map_udf import transform  # noqa: E402

import bytewax.operators as op  # noqa: E402
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource  # noqa: E402
from bytewax.dataflow import Dataflow  # noqa: E402
from bytewax.testing import run_main  # noqa: E402

bootstrap, src, dst, _partitions = sys.argv[1:5]
flow = Dataflow("kafka_map")
messages = op.input("in", flow, KafkaSource([bootstrap], [src], tail=False))
out = op.map("map", messages, lambda m: KafkaSinkMessage(None, transform(m.value.decode("utf-8")).encode("utf-8")))
op.output("out", out, KafkaSink([bootstrap], dst))
run_main(flow)
