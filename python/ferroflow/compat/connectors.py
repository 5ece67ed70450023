"""The talk-era Kafka 0.9 connectors (``org.apache.flink.streaming.python.connectors``).

They wrapped Flink's Java Kafka classes, and ferroflow has no JVM, so creating one
raises ``UnsupportedApiError`` naming what to use instead. Importing them is fine, so a
script that only imports them still runs.
"""

from __future__ import annotations

from typing import Any, NoReturn

from .errors import UnsupportedApiError

__all__ = ["PythonFlinkKafkaConsumer09", "PythonFlinkKafkaProducer09"]

CONSUMER_HINT = ("PythonFlinkKafkaConsumer09 (a Java Kafka 0.9 source) is not available in ferroflow, which has "
                 "no JVM: read Kafka in Python instead, with env.add_source(source) where source is a "
                 "SourceFunction whose run(ctx) polls a Python Kafka client (kafka-python, confluent-kafka) and "
                 "calls ctx.collect(record); for newline-separated text over TCP use "
                 "env.socket_text_stream(host, port)")

PRODUCER_HINT = ("PythonFlinkKafkaProducer09 (a Java Kafka 0.9 sink) is not available in ferroflow, which has "
                 "no JVM: write to Kafka in Python instead, with stream.add_sink(sink) where sink is a "
                 "SinkFunction whose invoke(value) sends with a Python Kafka client (kafka-python, "
                 "confluent-kafka); for raw bytes over TCP use stream.write_to_socket(host, port, schema)")


class PythonFlinkKafkaConsumer09:
    """Unavailable: raises ``UnsupportedApiError`` explaining the replacement."""

    def __init__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise UnsupportedApiError(CONSUMER_HINT)


class PythonFlinkKafkaProducer09:
    """Unavailable: raises ``UnsupportedApiError`` explaining the replacement."""

    def __init__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise UnsupportedApiError(PRODUCER_HINT)
