"""Uses a talk-era feature ferroflow cannot offer, chosen with --what."""

import sys

from org.apache.flink.api.java.utils import ParameterTool
from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment
from org.apache.flink.streaming.python.connectors import PythonFlinkKafkaConsumer09, PythonFlinkKafkaProducer09
from org.apache.flink.streaming.util.serialization import DeserializationSchema, SerializationSchema


class Text(DeserializationSchema):
    def deserialize(self, message):
        return message.decode("utf-8")


class ToBytes(SerializationSchema):
    def serialize(self, value):
        return str(value).encode("utf-8")


def main():
    what = ParameterTool.fromArgs(sys.argv[1:]).getRequired("what")
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    if what == "consumer":
        props = ParameterTool.fromArgs([]).getProperties()
        props.setProperty("bootstrap.servers", "localhost:9092")
        env.add_java_source(PythonFlinkKafkaConsumer09("topic", Text(), props)).print()
    elif what == "producer":
        env.from_elements(1, 2).add_sink(PythonFlinkKafkaProducer09("localhost:9092", "topic", ToBytes()))
    elif what == "java_source":
        env.add_java_source(object()).print()
    elif what == "remote":
        env = PythonStreamExecutionEnvironment.create_remote_execution_environment("jobmanager", 6123)
        env.from_elements(1).print()
    else:
        env.from_elements(1).print()  # imports alone are fine
    env.execute()
