"""Kafka → map → Kafka with ferroflow (benches/kafka.py): reads topic IN from the start to
its end when the job started, maps each value, writes topic OUT; the job ends once the
brokers acknowledged everything.

    python kafka_map_ferroflow.py BOOTSTRAP IN OUT PARALLELISM
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_map_udf import transform  # noqa: E402

from ferroflow import SimpleStringSchema, StreamExecutionEnvironment, WatermarkStrategy  # noqa: E402
from ferroflow.connectors.kafka import (DeliveryGuarantee, KafkaOffsetsInitializer,  # noqa: E402
                                        KafkaRecordSerializationSchema, KafkaSink, KafkaSource)

bootstrap, src, dst, parallelism = sys.argv[1:5]
env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(int(parallelism))
source = (KafkaSource.builder().set_bootstrap_servers(bootstrap).set_topics(src)
          .set_value_only_deserializer(SimpleStringSchema())
          .set_starting_offsets(KafkaOffsetsInitializer.earliest())
          .set_bounded(KafkaOffsetsInitializer.latest()).build())
sink = (KafkaSink.builder().set_bootstrap_servers(bootstrap)
        .set_record_serializer(KafkaRecordSerializationSchema.builder().set_topic(dst)
                               .set_value_serialization_schema(SimpleStringSchema()).build())
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE).build())
env.from_source(source, WatermarkStrategy.no_watermarks(), "kafka in").map(transform).sink_to(sink)
env.execute("kafka map")
