"""Kafka with PyFlink's builders (``pyflink.datastream.connectors.kafka``), on a native
client (librdkafka) in the engine.

``env.from_source(KafkaSource.builder()....build(), watermark_strategy, name)`` reads:
the topics' partitions are spread over every worker of every process; each partition's
offset is kept in checkpoints (a restored job resumes exactly there, at any parallelism)
and committed to the consumer group when a checkpoint completes; watermarks are made per
partition, inside the source. ``stream.sink_to(KafkaSink.builder()....build())`` writes:
``AT_LEAST_ONCE`` waits at each checkpoint until the brokers acknowledged everything
sent; ``NONE`` (Flink's default) waits only at the end of input. See docs/connectors.md.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import _nodes
from ..functions import ByteArraySchema, SerializationSchema, SimpleStringSchema

__all__ = ["KafkaSource", "KafkaSourceBuilder", "KafkaOffsetsInitializer", "KafkaOffsetResetStrategy",
           "KafkaSink", "KafkaSinkBuilder", "KafkaRecordSerializationSchema",
           "KafkaRecordSerializationSchemaBuilder", "DeliveryGuarantee"]


#: The sink property that opts in to the transactional sink (see docs/connectors.md).
EXACTLY_ONCE_OPT_IN = "ferroflow.exactly-once"


class DeliveryGuarantee(Enum):
    """What a sink promises when the job fails and restarts (Flink's names)."""

    #: Every record is in the output once, even across failures (needs checkpointing).
    EXACTLY_ONCE = "exactly_once"
    #: No record is lost; some may be written twice after a failure (needs checkpointing
    #: to be more than best effort).
    AT_LEAST_ONCE = "at_least_once"
    #: Nothing is waited for: records may be lost on a failure.
    NONE = "none"


class KafkaOffsetResetStrategy(Enum):
    """Where ``committed_offsets()`` starts a partition the group has no offset for."""

    EARLIEST = "earliest"
    LATEST = "latest"
    #: Fail the job (Flink's NONE): the group must have committed offsets.
    NONE = "none"


class KafkaOffsetsInitializer:
    """Where partitions start (``set_starting_offsets``) or stop (``set_bounded``)."""

    __slots__ = ("_kind", "_timestamp", "_reset")

    def __init__(self, kind: str, timestamp: int = 0, reset: KafkaOffsetResetStrategy = KafkaOffsetResetStrategy.NONE
                 ) -> None:
        self._kind = kind
        self._timestamp = timestamp
        self._reset = reset

    @staticmethod
    def earliest() -> "KafkaOffsetsInitializer":
        """The oldest message each partition still has."""
        return KafkaOffsetsInitializer("earliest")

    @staticmethod
    def latest() -> "KafkaOffsetsInitializer":
        """The end of each partition when the job starts (only newer messages)."""
        return KafkaOffsetsInitializer("latest")

    @staticmethod
    def committed_offsets(
            offset_reset_strategy: KafkaOffsetResetStrategy = KafkaOffsetResetStrategy.NONE
    ) -> "KafkaOffsetsInitializer":
        """The consumer group's committed offsets (``set_group_id``); a partition without
        one starts as ``offset_reset_strategy`` says (``NONE``: at the earliest, as
        ferroflow's reading of "no reset": see docs/connectors.md)."""
        if not isinstance(offset_reset_strategy, KafkaOffsetResetStrategy):
            raise TypeError(f"committed_offsets() takes a KafkaOffsetResetStrategy, got {offset_reset_strategy!r}")
        return KafkaOffsetsInitializer("committed", reset=offset_reset_strategy)

    @staticmethod
    def timestamp(timestamp: int) -> "KafkaOffsetsInitializer":
        """The first message whose timestamp is at or after ``timestamp`` (ms since the
        epoch); as a stop (``set_bounded``): messages up to ``timestamp`` included."""
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError(f"KafkaOffsetsInitializer.timestamp() takes milliseconds as an int, got {timestamp!r}")
        return KafkaOffsetsInitializer("timestamp", timestamp)

    @staticmethod
    def offsets(offsets: Any, offset_reset_strategy: Any = None) -> "KafkaOffsetsInitializer":
        raise ValueError("KafkaOffsetsInitializer.offsets() (per-partition offsets) is not supported; use "
                         "committed_offsets() with a consumer group, or timestamp()")

    def __repr__(self) -> str:
        if self._kind == "timestamp":
            return f"KafkaOffsetsInitializer.timestamp({self._timestamp})"
        if self._kind == "committed":
            return f"KafkaOffsetsInitializer.committed_offsets({self._reset})"
        return f"KafkaOffsetsInitializer.{self._kind}()"


def _str_property(name: str, value: Any) -> Tuple[str, str]:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a Kafka property's name is a non-empty str, got {name!r}")
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise TypeError(f"Kafka property {name}: the value is a str or a number, got {value!r}")
    return name, str(value)


class _Properties:
    """Kafka client properties in the order set; ``bootstrap.servers`` and ``group.id``
    given this way count as their setters."""

    def __init__(self) -> None:
        self.items: List[Tuple[str, str]] = []

    def set(self, key: str, value: Any) -> None:
        self.items.append(_str_property(key, value))

    def get(self, key: str) -> Optional[str]:
        for k, v in reversed(self.items):
            if k == key:
                return v
        return None

    def others(self, *taken: str) -> List[Tuple[str, str]]:
        return [(k, v) for k, v in self.items if k not in taken]


def _value_decoding(schema: Any) -> Tuple[str, Optional[Callable[[Any], Any]], bool]:
    """How the binding turns a value into a record: ``"string"``, ``"bytes"`` (in Rust),
    or ``"call"`` with the schema's ``deserialize``; and whether malformed values are
    skipped (the schema's ``ignore_parse_errors``)."""
    if type(schema) is SimpleStringSchema:
        return "string", None, False
    if type(schema) is ByteArraySchema:
        return "bytes", None, False
    deserialize = getattr(schema, "deserialize", None)
    if not callable(deserialize):
        raise TypeError("set_value_only_deserializer() takes a DeserializationSchema (SimpleStringSchema(), "
                        "JsonRowDeserializationSchema..., or an object with deserialize(bytes)), got "
                        f"{type(schema).__name__}")
    return "call", deserialize, bool(getattr(schema, "ignore_parse_errors", False))


class KafkaSource:
    """A Kafka source; make one with ``KafkaSource.builder()``."""

    def __init__(self, builder: "KafkaSourceBuilder") -> None:
        b = builder
        assert b._bootstrap is not None, "build() checked it"
        self._bootstrap: str = b._bootstrap
        self._topics = b._topics
        self._pattern = b._pattern
        self._group_id = b._group_id
        self._starting = b._starting
        self._stopping = b._stopping
        self._properties = list(b._properties.others("bootstrap.servers", "group.id"))
        self._deserializer = b._deserializer
        self._format, self._deserialize, self._skip = _value_decoding(b._deserializer)

    @staticmethod
    def builder() -> "KafkaSourceBuilder":
        return KafkaSourceBuilder()

    def _type_info(self) -> Any:
        """The records' type when the deserializer declares one (JSON/CSV rows)."""
        produced = getattr(self._deserializer, "get_produced_type", None)
        return produced() if callable(produced) else None

    def _kind(self, watermarks: Optional[_nodes.AssignTimestamps]) -> _nodes.KafkaSource:
        s, stop = self._starting, self._stopping
        reset = s._reset is not KafkaOffsetResetStrategy.LATEST
        matcher = None
        if self._pattern is not None:
            compiled = self._pattern

            def matcher(topic: str) -> bool:
                return compiled.fullmatch(topic) is not None
        return _nodes.KafkaSource(
            self._bootstrap, self._topics, matcher, self._group_id, s._kind, s._timestamp, reset,
            None if stop is None else stop._kind, 0 if stop is None else stop._timestamp, self._properties,
            self._skip, self._format, self._deserialize, watermarks)

    def _label(self) -> str:
        what = ", ".join(self._topics) if self._topics else f"topics matching {self._pattern.pattern!r}"  # type: ignore[union-attr]
        return f"Kafka {what} @ {self._bootstrap}"


class KafkaSourceBuilder:
    """PyFlink's ``KafkaSourceBuilder``: bootstrap servers, topics (or a pattern) and a
    value deserializer are needed; the rest has Flink's defaults (start at the
    earliest offset, unbounded)."""

    def __init__(self) -> None:
        self._bootstrap: Optional[str] = None
        self._topics: Optional[List[str]] = None
        self._pattern: Optional["re.Pattern[str]"] = None
        self._group_id: Optional[str] = None
        self._starting = KafkaOffsetsInitializer.earliest()
        self._stopping: Optional[KafkaOffsetsInitializer] = None
        self._properties = _Properties()
        self._deserializer: Any = None

    def set_bootstrap_servers(self, bootstrap_servers: str) -> "KafkaSourceBuilder":
        """``host:port[,host:port...]`` of brokers to start from."""
        self._bootstrap = _servers(bootstrap_servers, "set_bootstrap_servers")
        return self

    def set_topics(self, *topics: str) -> "KafkaSourceBuilder":
        """Reads these topics (each must exist)."""
        names = [t for t in topics]
        if not names or not all(isinstance(t, str) and t for t in names):
            raise ValueError(f"set_topics() takes one or more topic names, got {topics!r}")
        self._topics, self._pattern = names, None
        return self

    def set_topic_pattern(self, topic_pattern: str) -> "KafkaSourceBuilder":
        """Reads every topic whose whole name matches the regular expression (Python's
        ``re``, which reads Java's common patterns alike), including topics created
        while the job runs (found every ``partition.discovery.interval.ms``)."""
        try:
            self._pattern = re.compile(topic_pattern)
        except (re.error, TypeError) as e:
            raise ValueError(f"set_topic_pattern({topic_pattern!r}): not a regular expression ({e})") from None
        self._topics = None
        return self

    def set_partitions(self, partitions: Any) -> "KafkaSourceBuilder":
        raise ValueError("set_partitions() is not supported; read whole topics with set_topics()")

    def set_group_id(self, group_id: str) -> "KafkaSourceBuilder":
        """The consumer group offsets are committed to when checkpoints complete."""
        if not isinstance(group_id, str) or not group_id:
            raise ValueError(f"set_group_id() takes a non-empty str, got {group_id!r}")
        self._group_id = group_id
        return self

    def set_client_id_prefix(self, prefix: str) -> "KafkaSourceBuilder":
        """Accepted for PyFlink scripts; librdkafka names its clients itself."""
        return self

    def set_property(self, key: str, value: str) -> "KafkaSourceBuilder":
        """A Kafka client property (librdkafka's names, which are Kafka's for the common
        ones); ``bootstrap.servers`` and ``group.id`` count as their setters."""
        self._properties.set(key, value)
        return self

    def set_properties(self, props: Dict[str, str]) -> "KafkaSourceBuilder":
        """``set_property`` for each item."""
        for k, v in dict(props).items():
            self._properties.set(k, v)
        return self

    def set_starting_offsets(self, starting_offsets_initializer: KafkaOffsetsInitializer) -> "KafkaSourceBuilder":
        """Where partitions start when no checkpoint says (default: earliest)."""
        self._starting = _initializer(starting_offsets_initializer, "set_starting_offsets")
        return self

    def set_unbounded(self, stopping_offsets_initializer: KafkaOffsetsInitializer) -> "KafkaSourceBuilder":
        raise ValueError("set_unbounded(stopping offsets) is not supported: a source runs unbounded unless "
                         "set_bounded(...) is called")

    def set_bounded(self, stopping_offsets_initializer: KafkaOffsetsInitializer) -> "KafkaSourceBuilder":
        """Makes the source end: each partition stops at ``latest()`` (its end when the
        job starts) or ``timestamp(t)``."""
        stop = _initializer(stopping_offsets_initializer, "set_bounded")
        if stop._kind not in ("latest", "timestamp"):
            raise ValueError(f"set_bounded() takes KafkaOffsetsInitializer.latest() or timestamp(t), got {stop!r}")
        self._stopping = stop
        return self

    def set_value_only_deserializer(self, deserialization_schema: Any) -> "KafkaSourceBuilder":
        """How a message's value becomes a record: ``SimpleStringSchema()``,
        ``ByteArraySchema()``, ``JsonRowDeserializationSchema``,
        ``CsvRowDeserializationSchema``, or any object with ``deserialize(bytes)``."""
        _value_decoding(deserialization_schema)
        self._deserializer = deserialization_schema
        return self

    def build(self) -> KafkaSource:
        servers = self._bootstrap or self._properties.get("bootstrap.servers")
        if not servers:
            raise ValueError("KafkaSource.builder(): set_bootstrap_servers('host:9092') (or the property "
                             "bootstrap.servers) before build()")
        self._bootstrap = _servers(servers, "bootstrap.servers")
        self._group_id = self._group_id or self._properties.get("group.id")
        if self._topics is None and self._pattern is None:
            raise ValueError("KafkaSource.builder(): set_topics(...) or set_topic_pattern(...) before build()")
        if self._deserializer is None:
            raise ValueError("KafkaSource.builder(): set_value_only_deserializer(SimpleStringSchema()) (or another "
                             "deserializer) before build()")
        if self._starting._kind == "committed" and self._group_id is None:
            raise ValueError("KafkaSource.builder(): committed_offsets() reads a consumer group's offsets: "
                             "set_group_id(...)")
        return KafkaSource(self)


def _servers(servers: Any, what: str) -> str:
    if not isinstance(servers, str) or not servers.strip():
        raise ValueError(f"{what}() takes 'host:port[,host:port...]', got {servers!r}")
    return servers.strip()


def _initializer(value: Any, what: str) -> KafkaOffsetsInitializer:
    if not isinstance(value, KafkaOffsetsInitializer):
        raise TypeError(f"{what}() takes a KafkaOffsetsInitializer, e.g. KafkaOffsetsInitializer.earliest(), "
                        f"got {value!r}")
    return value


# -- sink -------------------------------------------------------------------------------------


class KafkaRecordSerializationSchema:
    """How a record becomes a Kafka message: its topic, key and value. Make one with
    ``KafkaRecordSerializationSchema.builder()``."""

    def __init__(self, topic: Optional[str], topic_selector: Optional[Callable[[Any], str]],
                 key_schema: Optional[SerializationSchema], value_schema: SerializationSchema) -> None:
        self._topic = topic
        self._topic_selector = topic_selector
        self._key = key_schema
        self._value = value_schema

    @staticmethod
    def builder() -> "KafkaRecordSerializationSchemaBuilder":
        return KafkaRecordSerializationSchemaBuilder()

    def _plain_strings(self) -> bool:
        """Values as ``str(record)`` to one topic, no key: done in Rust."""
        return (self._key is None and self._topic_selector is None
                and type(self._value) is SimpleStringSchema)

    def _to_message(self) -> Callable[[Any], Tuple[Any, Any, Any, None, None]]:
        value = _serializer(self._value)
        key = None if self._key is None else _serializer(self._key)
        topic_of = self._topic_selector

        def to_message(record: Any) -> Tuple[Any, Any, Any, None, None]:
            topic = None if topic_of is None else topic_of(record)
            return topic, None if key is None else key(record), value(record), None, None
        return to_message


def _serializer(schema: SerializationSchema) -> Callable[[Any], Optional[bytes]]:
    serialize = schema.serialize

    def to_bytes(record: Any) -> Optional[bytes]:
        out = serialize(record)
        if out is None or isinstance(out, bytes):
            return out
        if isinstance(out, str):
            return out.encode("utf-8")
        if isinstance(out, (bytearray, memoryview)):
            return bytes(out)
        raise TypeError(f"{type(schema).__name__}.serialize() must return bytes or str, got {type(out).__name__}")
    return to_bytes


class KafkaRecordSerializationSchemaBuilder:
    """PyFlink's builder: a topic (or a topic selector) and a value serialization schema
    are needed; a key serialization schema is optional."""

    def __init__(self) -> None:
        self._topic: Optional[str] = None
        self._selector: Optional[Callable[[Any], str]] = None
        self._key: Optional[SerializationSchema] = None
        self._value: Optional[SerializationSchema] = None

    def set_topic(self, topic: str) -> "KafkaRecordSerializationSchemaBuilder":
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"set_topic() takes a topic name, got {topic!r}")
        self._topic, self._selector = topic, None
        return self

    def set_topic_selector(self, topic_selector: Callable[[Any], str]) -> "KafkaRecordSerializationSchemaBuilder":
        """``topic_selector(record)`` names each record's topic."""
        if not callable(topic_selector):
            raise TypeError(f"set_topic_selector() takes a function of the record, got {topic_selector!r}")
        self._selector, self._topic = topic_selector, None
        return self

    def set_key_serialization_schema(self, key_serialization_schema: SerializationSchema
                                     ) -> "KafkaRecordSerializationSchemaBuilder":
        self._key = _serialization_schema(key_serialization_schema, "set_key_serialization_schema")
        return self

    def set_value_serialization_schema(self, value_serialization_schema: SerializationSchema
                                       ) -> "KafkaRecordSerializationSchemaBuilder":
        self._value = _serialization_schema(value_serialization_schema, "set_value_serialization_schema")
        return self

    def build(self) -> KafkaRecordSerializationSchema:
        if self._topic is None and self._selector is None:
            raise ValueError("KafkaRecordSerializationSchema.builder(): set_topic(...) or set_topic_selector(...) "
                             "before build()")
        if self._value is None:
            raise ValueError("KafkaRecordSerializationSchema.builder(): set_value_serialization_schema(...) before "
                             "build()")
        return KafkaRecordSerializationSchema(self._topic, self._selector, self._key, self._value)


def _serialization_schema(schema: Any, what: str) -> SerializationSchema:
    if not callable(getattr(schema, "serialize", None)):
        raise TypeError(f"{what}() takes a SerializationSchema (SimpleStringSchema(), JsonRowSerializationSchema..., "
                        f"or an object with serialize(record)), got {type(schema).__name__}")
    return schema


class KafkaSink:
    """A Kafka sink; make one with ``KafkaSink.builder()``."""

    def __init__(self, bootstrap: str, serializer: KafkaRecordSerializationSchema, delivery: DeliveryGuarantee,
                 transactional_id_prefix: Optional[str], properties: List[Tuple[str, str]]) -> None:
        self._bootstrap = bootstrap
        self._serializer = serializer
        self._delivery = delivery
        self._prefix = transactional_id_prefix
        self._properties = properties

    @staticmethod
    def builder() -> "KafkaSinkBuilder":
        return KafkaSinkBuilder()

    def _kind(self) -> _nodes.KafkaSink:
        s = self._serializer
        if s._plain_strings():
            fmt, serialize = "string", None
        else:
            fmt, serialize = "call", s._to_message()
        return _nodes.KafkaSink(self._bootstrap, s._topic, self._properties, self._delivery.value, self._prefix,
                                fmt, serialize)

    def _label(self) -> str:
        topic = self._serializer._topic or "selected topics"
        return f"Kafka {topic} @ {self._bootstrap}"


class KafkaSinkBuilder:
    """PyFlink's ``KafkaSinkBuilder``: bootstrap servers and a record serializer are
    needed. The delivery guarantee defaults to Flink's ``NONE``: checkpoints do not
    wait for the brokers (the end of input still does)."""

    def __init__(self) -> None:
        self._bootstrap: Optional[str] = None
        self._serializer: Optional[KafkaRecordSerializationSchema] = None
        self._delivery = DeliveryGuarantee.NONE
        self._prefix: Optional[str] = None
        self._properties = _Properties()

    def set_bootstrap_servers(self, bootstrap_servers: str) -> "KafkaSinkBuilder":
        self._bootstrap = _servers(bootstrap_servers, "set_bootstrap_servers")
        return self

    def set_record_serializer(self, record_serializer: KafkaRecordSerializationSchema) -> "KafkaSinkBuilder":
        if not isinstance(record_serializer, KafkaRecordSerializationSchema):
            raise TypeError("set_record_serializer() takes KafkaRecordSerializationSchema.builder()...build(), got "
                            f"{type(record_serializer).__name__}")
        self._serializer = record_serializer
        return self

    def set_delivery_guarantee(self, delivery_guarantee: DeliveryGuarantee) -> "KafkaSinkBuilder":
        if not isinstance(delivery_guarantee, DeliveryGuarantee):
            raise TypeError(f"set_delivery_guarantee() takes a DeliveryGuarantee, got {delivery_guarantee!r}")
        self._delivery = delivery_guarantee
        return self

    def set_transactional_id_prefix(self, transactional_id_prefix: str) -> "KafkaSinkBuilder":
        """Exactly once: the prefix of the sink's transactional ids (unique per job on a
        cluster)."""
        if not isinstance(transactional_id_prefix, str) or not transactional_id_prefix:
            raise ValueError(f"set_transactional_id_prefix() takes a non-empty str, got {transactional_id_prefix!r}")
        self._prefix = transactional_id_prefix
        return self

    def set_property(self, key: str, value: str) -> "KafkaSinkBuilder":
        self._properties.set(key, value)
        return self

    def build(self) -> KafkaSink:
        servers = self._bootstrap or self._properties.get("bootstrap.servers")
        if not servers:
            raise ValueError("KafkaSink.builder(): set_bootstrap_servers('host:9092') before build()")
        if self._serializer is None:
            raise ValueError("KafkaSink.builder(): set_record_serializer(KafkaRecordSerializationSchema.builder()"
                             "...build()) before build()")
        if self._delivery is DeliveryGuarantee.EXACTLY_ONCE:
            if self._properties.get(EXACTLY_ONCE_OPT_IN) != "accept-unverified":
                raise ValueError(
                    "KafkaSink: DeliveryGuarantee.EXACTLY_ONCE is not verified: the broker ferroflow's tests run "
                    "(tansu 0.6.0) shows aborted transactions to read_committed readers, so recovery after a "
                    "failure could not be proven; use AT_LEAST_ONCE, or opt in with "
                    f"set_property('{EXACTLY_ONCE_OPT_IN}', 'accept-unverified') (docs/connectors.md)")
            if self._prefix is None:
                raise ValueError("KafkaSink.builder(): EXACTLY_ONCE needs set_transactional_id_prefix(...)")
        return KafkaSink(_servers(servers, "bootstrap.servers"), self._serializer, self._delivery, self._prefix,
                         self._properties.others("bootstrap.servers"))

