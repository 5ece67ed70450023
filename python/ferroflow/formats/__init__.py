"""Row formats for messages (PyFlink's ``pyflink.datastream.formats``): JSON and CSV
serialization schemas that turn rows of a declared ``Types.ROW`` into bytes and back,
for the Kafka connector (``ferroflow.connectors.kafka``)."""

from .csv import CsvRowDeserializationSchema, CsvRowSerializationSchema
from .json import JsonRowDeserializationSchema, JsonRowSerializationSchema

__all__ = ["JsonRowSerializationSchema", "JsonRowDeserializationSchema", "CsvRowSerializationSchema",
           "CsvRowDeserializationSchema"]
