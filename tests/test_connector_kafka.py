"""The Kafka connector (issue 15) against a real broker (the session fixture ``kafka``,
tests/services/kafka.py): KafkaSource and KafkaSink with PyFlink's builders, checked with
confluent-kafka, an independent client, on the other side of each job.

Reading and writing run at 1 worker, 2 threads and 2 processes; the rest at the
parallelisms where it matters. Event time (per-partition watermarks) is in
test_connector_kafka_time.py; jobs killed and restored from checkpoints, and PyFlink's
own Kafka examples, are in test_connector_kafka_jobs.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import JOB_SETTINGS, bag, collect, make_env
from ferroflow import (DeserializationSchema, JobExecutionException, SimpleStringSchema, StreamExecutionEnvironment,
                       Types, WatermarkStrategy)
from ferroflow.connectors.kafka import (DeliveryGuarantee, KafkaOffsetResetStrategy, KafkaOffsetsInitializer,
                                        KafkaRecordSerializationSchema, KafkaSink, KafkaSource)
from ferroflow.formats.csv import CsvRowDeserializationSchema, CsvRowSerializationSchema
from ferroflow.formats.json import JsonRowDeserializationSchema, JsonRowSerializationSchema
from ferroflow.functions import ByteArraySchema, RowFieldExtractorSchema
from services.kafka import produce

#: A bounded read's default stop: the partitions' ends when the job starts.
LATEST = KafkaOffsetsInitializer.latest()
#: A realistic epoch (ms) for message timestamps (2023-11-14).
T0 = 1_700_000_000_000


# -- helpers -----------------------------------------------------------------------------------


def source(kafka, topic: Optional[str], deserializer: Any = None, *, start: Optional[KafkaOffsetsInitializer] = None,
           stop: Optional[KafkaOffsetsInitializer] = LATEST, group: Optional[str] = None,
           pattern: Optional[str] = None, **properties: str) -> KafkaSource:
    """A KafkaSource on the test broker, bounded at the partitions' ends by default."""
    b = KafkaSource.builder().set_bootstrap_servers(kafka.bootstrap) \
        .set_value_only_deserializer(deserializer if deserializer is not None else SimpleStringSchema())
    b = b.set_topic_pattern(pattern) if pattern is not None else b.set_topics(topic)
    if start is not None:
        b.set_starting_offsets(start)
    if stop is not None:
        b.set_bounded(stop)
    if group is not None:
        b.set_group_id(group)
    for k, v in properties.items():
        b.set_property(k.replace("_", "."), v)
    return b.build()


def sink(bootstrap: str, topic: Optional[str], value_schema: Any = None, *, key_schema: Any = None,
         selector: Any = None, delivery: DeliveryGuarantee = DeliveryGuarantee.AT_LEAST_ONCE,
         **properties: str) -> KafkaSink:
    rs = KafkaRecordSerializationSchema.builder() \
        .set_value_serialization_schema(value_schema if value_schema is not None else SimpleStringSchema())
    rs = rs.set_topic_selector(selector) if selector is not None else rs.set_topic(topic)
    if key_schema is not None:
        rs.set_key_serialization_schema(key_schema)
    b = KafkaSink.builder().set_bootstrap_servers(bootstrap).set_record_serializer(rs.build()) \
        .set_delivery_guarantee(delivery)
    for k, v in properties.items():
        b.set_property(k.replace("_", "."), v)
    return b.build()


def messages(bootstrap: str, topic: str, partitions: int, expect: int, timeout: float = 20.0,
             settle: float = 0.3) -> List[Tuple[Optional[bytes], Optional[bytes], int, int, int]]:
    """Every message of ``topic`` as (key, value, partition, offset, timestamp), read with
    confluent-kafka from the start: waits until ``expect`` came (failing after
    ``timeout``), then ``settle`` seconds more so that extra messages show too."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: list = []
        deadline = time.monotonic() + timeout
        settled: Optional[float] = None
        while True:
            now = time.monotonic()
            if len(got) >= expect:
                settled = settled or now + settle
                if now >= settled:
                    return got
            assert now < deadline, f"{topic}: {len(got)} of {expect} messages within {timeout} s"
            m = c.poll(0.05)
            if m is None or m.error():
                continue
            got.append((m.key(), m.value(), m.partition(), m.offset(), m.timestamp()[1]))
    finally:
        c.close()


def per_partition(kafka, topic: str, partitions: int, n: int, timestamps: bool = False) -> Dict[int, List[str]]:
    """Writes ``n`` values ``p<partition>-<i>`` to each partition (with ``timestamps``:
    message timestamps ``T0 + 1000 * i``) and returns them by partition."""
    written = {}
    for p in range(partitions):
        values = [f"p{p}-{i}" for i in range(n)]
        produce(kafka.bootstrap, topic, [v.encode() for v in values], partition=p,
                timestamps=[T0 + 1000 * i for i in range(n)] if timestamps else None)
        written[p] = values
    return written


def commit(bootstrap: str, group: str, topic: str, offsets: Dict[int, int]) -> None:
    """Commits ``offsets`` (partition -> next offset) for ``group`` with confluent-kafka."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> Dict[int, int]:
    """The group's committed offsets (partition -> offset, -1001 for none), read with
    confluent-kafka's ``committed()``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def copy_of(kafka, got: list, partitions: int) -> str:
    """A new topic holding the values of ``got`` (as ``messages`` returns them) in the
    same partitions, written by confluent-kafka one per batch (tests/services/kafka.py
    says why: tansu's ListOffsets, which a bounded read's end comes from)."""
    topic = kafka.topic(partitions)
    for p in range(partitions):
        values = [v for _, v, part, _, _ in sorted(got, key=lambda m: (m[2], m[3])) if part == p]
        if values:
            produce(kafka.bootstrap, topic, values, partition=p)
    return topic


def take(stream, n: int, timeout: float = 30.0, on_record: Any = None) -> List[Any]:
    """The first ``n`` records of the unbounded job of ``stream`` (then it is
    cancelled); fewer if they did not come within ``timeout`` s, so that a test fails
    on what it got instead of hanging."""
    results = stream.execute_and_collect("kafka test")
    timer = threading.Timer(timeout, results.close)
    timer.daemon = True
    timer.start()
    got: List[Any] = []
    try:
        for record in results:
            got.append(record)
            if on_record is not None:
                on_record(record)
            if len(got) >= n:
                break
    finally:
        timer.cancel()
        results.close()
    return got


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_at(parallelism: int) -> StreamExecutionEnvironment:
    return make_env(parallelism)


# -- 1. reading and writing ---------------------------------------------------------------------


def test_bounded_read_gets_exactly_the_records_written_each_partition_in_offset_order(env, kafka):
    topic = kafka.topic(3)
    written = per_partition(kafka, topic, 3, 40)
    got = collect(env.from_source(source(kafka, topic), WatermarkStrategy.no_watermarks(), "k"))
    env.execute("read")
    assert bag(got) == bag(v for vs in written.values() for v in vs)
    for p, values in written.items():
        assert [v for v in got if v.startswith(f"p{p}-")] == values, f"partition {p} out of offset order"


@pytest.mark.parametrize("delivery", [DeliveryGuarantee.NONE, DeliveryGuarantee.AT_LEAST_ONCE],
                         ids=["none", "at_least_once"])
def test_sink_writes_exactly_the_records(env, kafka, delivery):
    topic = kafka.topic(2)
    values = [f"v{i} é" for i in range(300)]
    env.from_collection(list(range(300))).map(lambda i: f"v{i} é").sink_to(sink(kafka.bootstrap, topic,
                                                                                  delivery=delivery))
    env.execute("write")
    got = messages(kafka.bootstrap, topic, 2, len(values))
    assert Counter(v.decode("utf-8") for _, v, _, _, _ in got) == Counter(values)
    assert all(k is None for k, _, _, _, _ in got)


def test_read_map_write_between_two_topics(kafka):
    src, dst = kafka.topic(3), kafka.topic(2)
    written = per_partition(kafka, src, 3, 30)
    env = env_at(2)
    env.from_source(source(kafka, src), WatermarkStrategy.no_watermarks(), "k").map(str.upper) \
        .sink_to(sink(kafka.bootstrap, dst))
    env.execute("read-map-write")
    got = messages(kafka.bootstrap, dst, 2, 90)
    assert Counter(v.decode() for _, v, _, _, _ in got) == Counter(v.upper() for vs in written.values() for v in vs)


# -- 2. formats -----------------------------------------------------------------------------------


def test_byte_array_schema_both_ways_keeps_any_bytes(kafka):
    topic = kafka.topic(1)
    values = [bytes([i, 255 - i, 0]) + b"\xff\xfe" for i in range(50)] + [b""]
    env = env_at(2)
    env.from_collection(values).sink_to(sink(kafka.bootstrap, topic, ByteArraySchema()))
    env.execute("write bytes")
    written = messages(kafka.bootstrap, topic, 1, len(values))
    assert Counter(v for _, v, _, _, _ in written) == Counter(values)
    env = env_at(2)
    got = collect(env.from_source(source(kafka, copy_of(kafka, written, 1), ByteArraySchema()),
                                  WatermarkStrategy.no_watermarks()))
    env.execute("read bytes")
    assert got == [v for _, v, _, _, _ in written] and all(type(v) is bytes for v in got)


JSON_ROW = Types.ROW_NAMED(["id", "name", "score", "ok"], [Types.INT(), Types.STRING(), Types.DOUBLE(),
                                                          Types.BOOLEAN()])


def test_json_rows_both_ways_with_the_declared_types(kafka):
    topic = kafka.topic(2)
    rows = [(i, f"n\"{i}", i / 4, i % 2 == 0) for i in range(40)]
    env = env_at(2)
    env.from_collection(rows, type_info=JSON_ROW).sink_to(
        sink(kafka.bootstrap, topic, JsonRowSerializationSchema.builder().with_type_info(JSON_ROW).build()))
    env.execute("write json")
    msgs = messages(kafka.bootstrap, topic, 2, len(rows))
    written = [json.loads(v) for _, v, _, _, _ in msgs]
    assert sorted(written, key=lambda o: o["id"]) == [{"id": i, "name": n, "score": s, "ok": ok}
                                                       for i, n, s, ok in rows]
    env = env_at(2)
    deser = JsonRowDeserializationSchema.builder().type_info(JSON_ROW).build()
    got = collect(env.from_source(source(kafka, copy_of(kafka, msgs, 2), deser), WatermarkStrategy.no_watermarks()))
    env.execute("read json")
    assert sorted((r["id"], r["name"], r["score"], r["ok"]) for r in got) == rows
    assert all(type(r[0]) is int and type(r[1]) is str and type(r[2]) is float and type(r[3]) is bool for r in got)


CSV_ROW = Types.ROW([Types.INT(), Types.STRING(), Types.DOUBLE()])


def test_csv_rows_both_ways_with_delimiter_and_quoting(kafka):
    topic = kafka.topic(1)
    rows = [(1, "plain", 1.5), (2, "semi;colon", 2.0), (3, 'say "hi"', -0.25), (4, "", 0.0)]
    ser = CsvRowSerializationSchema.Builder(CSV_ROW).set_field_delimiter(";").build()
    env = env_at(1)
    env.from_collection(rows, type_info=CSV_ROW).sink_to(sink(kafka.bootstrap, topic, ser))
    env.execute("write csv")
    msgs = messages(kafka.bootstrap, topic, 1, len(rows))
    lines = [v.decode() for _, v, _, _, _ in msgs]
    assert sorted(lines) == sorted( ["1;plain;1.5", '2;"semi;colon";2.0', '3;"say ""hi""";-0.25', "4;;0.0"])
    deser = CsvRowDeserializationSchema.Builder(CSV_ROW).set_field_delimiter(";").build()
    env = env_at(2)
    got = collect(env.from_source(source(kafka, copy_of(kafka, msgs, 1), deser), WatermarkStrategy.no_watermarks()))
    env.execute("read csv")
    # An empty field reads as None (the schema's rule).
    assert sorted(tuple(r) for r in got) == [(1, "plain", 1.5), (2, "semi;colon", 2.0), (3, 'say "hi"', -0.25),
                                      (4, None, 0.0)]


def test_row_field_extractor_writes_keys_and_values(kafka):
    topic = kafka.topic(3)
    rows = [(f"user-{i % 4}".encode(), json.dumps({"n": i}).encode()) for i in range(30)]
    row_type = Types.ROW([Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE())])
    env = env_at(2)
    env.from_collection(rows, type_info=row_type).sink_to(
        sink(kafka.bootstrap, topic, RowFieldExtractorSchema(1), key_schema=RowFieldExtractorSchema(0)))
    env.execute("write keyed")
    got = messages(kafka.bootstrap, topic, 3, len(rows))
    assert Counter((k, v) for k, v, _, _, _ in got) == Counter(rows)
    # Kafka's partitioner puts one key in one partition.
    partition_of: Dict[bytes, set] = {}
    for k, _, p, _, _ in got:
        partition_of.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for ps in partition_of.values()), partition_of


class Tagged(DeserializationSchema):
    """A user's schema: ``b"3:abc"`` -> ``(3, "ABC")``."""

    def deserialize(self, message: bytes) -> Any:
        n, _, text = message.decode().partition(":")
        return (int(n), text.upper())


def test_a_custom_deserialization_schema_subclass(kafka):
    topic = kafka.topic(2)
    produce(kafka.bootstrap, topic, [f"{i}:v{i}".encode() for i in range(20)])
    env = env_at(2)
    got = collect(env.from_source(source(kafka, topic, Tagged()), WatermarkStrategy.no_watermarks()))
    env.execute("custom")
    assert sorted(got) == [(i, f"V{i}") for i in range(20)]


def test_topic_selector_sends_each_record_to_its_topic(kafka):
    even, odd = kafka.topic(1), kafka.topic(2)
    env = env_at(2)
    env.from_collection(list(range(40))).sink_to(
        sink(kafka.bootstrap, None, selector=lambda i: even if i % 2 == 0 else odd))
    env.execute("selector")
    assert sorted(int(v) for _, v, _, _, _ in messages(kafka.bootstrap, even, 1, 20)) == list(range(0, 40, 2))
    assert sorted(int(v) for _, v, _, _, _ in messages(kafka.bootstrap, odd, 2, 20)) == list(range(1, 40, 2))


# -- 3. starting and stopping offsets -------------------------------------------------------------


def read_all(kafka, src: KafkaSource, parallelism: int = 2) -> List[Any]:
    env = env_at(parallelism)
    got = collect(env.from_source(src, WatermarkStrategy.no_watermarks(), "k"))
    env.execute("read")
    return got


def test_earliest_reads_from_the_start(kafka):
    topic = kafka.topic(2)
    written = per_partition(kafka, topic, 2, 10)
    got = read_all(kafka, source(kafka, topic, start=KafkaOffsetsInitializer.earliest()))
    assert bag(got) == bag(written[0] + written[1])


def test_latest_reads_only_records_produced_after_the_job_started(kafka):
    topic = kafka.topic(2)
    produce(kafka.bootstrap, topic, [f"old-{i}".encode() for i in range(20)])
    stop = threading.Event()

    def keep_producing() -> None:  # the job's start is not observable: produce until it reads
        i = 0
        while not stop.is_set():
            produce(kafka.bootstrap, topic, [f"new-{i}".encode()], partition=i % 2)
            i += 1
            time.sleep(0.05)

    env = env_at(2)
    stream = env.from_source(source(kafka, topic, start=KafkaOffsetsInitializer.latest(), stop=None),
                             WatermarkStrategy.no_watermarks(), "k")
    producer = threading.Thread(target=keep_producing, daemon=True)
    producer.start()
    try:
        got = take(stream, 10)
    finally:
        stop.set()
        producer.join(10)
    assert len(got) == 10 and all(v.startswith("new-") for v in got), got
    # What it read of each partition is a run of consecutive records (nothing skipped).
    for p in (0, 1):
        ns = sorted(int(v[4:]) for v in got if int(v[4:]) % 2 == p)
        assert ns == list(range(ns[0], ns[0] + 2 * len(ns), 2)) if ns else True, got


@pytest.mark.parametrize("reset, p1_expected", [
    (KafkaOffsetResetStrategy.EARLIEST, list(range(10))),
    (KafkaOffsetResetStrategy.LATEST, []),
    # Documented (committed_offsets' docstring): NONE starts such a partition at the earliest.
    (KafkaOffsetResetStrategy.NONE, list(range(10))),
], ids=["earliest", "latest", "none"])
def test_committed_offsets_of_a_group_and_the_reset_strategy(kafka, reset, p1_expected):
    topic = kafka.topic(2)
    per_partition(kafka, topic, 2, 10)
    group = f"g-{topic}"
    commit(kafka.bootstrap, group, topic, {0: 4})  # partition 1: nothing committed
    got = read_all(kafka, source(kafka, topic, start=KafkaOffsetsInitializer.committed_offsets(reset),
                                 group=group))
    assert sorted(v for v in got if v.startswith("p0-")) == sorted(f"p0-{i}" for i in range(4, 10))
    assert sorted(v for v in got if v.startswith("p1-")) == sorted(f"p1-{i}" for i in p1_expected)


@settings(JOB_SETTINGS, max_examples=6)  # each example is a job and a topic: keep them few
@given(st.data())
def test_committed_offsets_against_a_model(kafka, data):
    """Any partitions, any committed offsets (or none), any reset: each partition is
    read from its committed offset, or from where the reset says, to its end."""
    sizes = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=4), label="records per partition")
    topic = kafka.topic(len(sizes))
    for p, n in enumerate(sizes):
        if n:
            produce(kafka.bootstrap, topic, [f"p{p}-{i}".encode() for i in range(n)], partition=p)
    offsets = {p: data.draw(st.integers(0, n), label=f"committed {p}") for p, n in enumerate(sizes)
               if data.draw(st.booleans(), label=f"commits {p}")}
    reset = data.draw(st.sampled_from([KafkaOffsetResetStrategy.EARLIEST, KafkaOffsetResetStrategy.LATEST]))
    group = f"g-{topic}"
    if offsets:
        commit(kafka.bootstrap, group, topic, offsets)
    got = read_all(kafka, source(kafka, topic, start=KafkaOffsetsInitializer.committed_offsets(reset),
                                 group=group))
    model = []
    for p, n in enumerate(sizes):
        start = offsets.get(p, 0 if reset is KafkaOffsetResetStrategy.EARLIEST else n)
        model += [f"p{p}-{i}" for i in range(start, n)]
    assert bag(got) == bag(model)


def test_timestamp_start_reads_from_the_first_message_at_or_after_it(kafka):
    topic = kafka.topic(2)
    per_partition(kafka, topic, 2, 10, timestamps=True)  # timestamps T0 + 0 s .. T0 + 9 s
    got = read_all(kafka, source(kafka, topic, start=KafkaOffsetsInitializer.timestamp(T0 + 3500)))
    assert bag(got) == bag(f"p{p}-{i}" for p in (0, 1) for i in range(4, 10))
    got = read_all(kafka, source(kafka, topic, start=KafkaOffsetsInitializer.timestamp(T0 + 60_000)))
    assert got == [], "a start after every message reads nothing"


def test_bounded_timestamp_stop_includes_its_timestamp(kafka):
    topic = kafka.topic(2)
    per_partition(kafka, topic, 2, 10, timestamps=True)
    got = read_all(kafka, source(kafka, topic, stop=KafkaOffsetsInitializer.timestamp(T0 + 6000)))
    assert bag(got) == bag(f"p{p}-{i}" for p in (0, 1) for i in range(7))
    got = read_all(kafka, source(kafka, topic, start=KafkaOffsetsInitializer.timestamp(T0 + 2000),
                                 stop=KafkaOffsetsInitializer.timestamp(T0 + 4999)))
    assert bag(got) == bag(f"p{p}-{i}" for p in (0, 1) for i in (2, 3, 4))


# -- 4. topic pattern -------------------------------------------------------------------------------


def test_topic_pattern_reads_every_matching_topic_and_no_other(kafka):
    tag = f"pat{time.monotonic_ns() % 10**9}"
    a, b = kafka.topic(2, prefix=tag), kafka.topic(1, prefix=tag)
    other, inside = kafka.topic(1, prefix=f"no{tag}"), kafka.topic(1, prefix=f"{tag}x")
    for t in (a, b, other, inside):
        produce(kafka.bootstrap, t, [f"{t}/{i}".encode() for i in range(5)])
    got = read_all(kafka, source(kafka, None, pattern=rf"{tag}-\d+-\d+"))
    assert bag(got) == bag(f"{t}/{i}" for t in (a, b) for i in range(5))


# -- 5. malformed messages ------------------------------------------------------------------------


def test_a_message_that_does_not_deserialize_fails_naming_topic_partition_and_offset(kafka):
    topic = kafka.topic(1)
    produce(kafka.bootstrap, topic, [b'{"id": 1}', b'{"id": 2}', b"not json", b'{"id": 4}'])
    deser = JsonRowDeserializationSchema.builder().type_info(Types.ROW_NAMED(["id"], [Types.INT()])).build()
    with pytest.raises(JobExecutionException) as info:
        read_all(kafka, source(kafka, topic, deser), parallelism=1)
    message = str(info.value)
    assert "\n" not in message, message
    assert f'topic "{topic}"' in message and "partition 0" in message and "offset 2" in message, message
    assert "does not deserialize" in message and "ignore parse errors" in message, message


class Picky(DeserializationSchema):
    """A user's schema that refuses some messages."""

    def deserialize(self, message: bytes) -> Any:
        if message.startswith(b"bad"):
            raise ValueError(f"no bad records please: {message!r}")
        return message.decode()


def test_a_users_deserializer_raising_fails_naming_its_error_and_the_message(kafka):
    topic = kafka.topic(1)
    produce(kafka.bootstrap, topic, [b"good", b"bad one", b"good"])
    with pytest.raises(JobExecutionException) as info:
        read_all(kafka, source(kafka, topic, Picky()), parallelism=1)
    message = str(info.value)
    assert "partition 0, offset 1" in message, message
    assert "ValueError: no bad records please: b'bad one'" in message, message


def test_ignore_parse_errors_skips_and_counts_the_bad_messages(kafka, capfd):
    topic = kafka.topic(1)
    produce(kafka.bootstrap, topic, [b'{"id": 1}', b"not json", b'{"id": 3}', b"[1, 2]", b'{"id": 5}'])
    deser = JsonRowDeserializationSchema.builder().type_info(Types.ROW_NAMED(["id"], [Types.INT()])) \
        .ignore_parse_errors().build()
    got = read_all(kafka, source(kafka, topic, deser), parallelism=1)
    assert [r["id"] for r in got] == [1, 3, 5]
    assert "skipped 2 message(s)" in capfd.readouterr().err


def test_csv_ignore_parse_errors_skips_a_row_of_the_wrong_shape(kafka):
    topic = kafka.topic(1)
    produce(kafka.bootstrap, topic, [b"1,a,1.0", b"2,b", b"x,c,3.0", b"4,d,4.0"])
    deser = CsvRowDeserializationSchema.Builder(CSV_ROW).set_ignore_parse_errors(True).build()
    got = read_all(kafka, source(kafka, topic, deser), parallelism=1)
    assert [tuple(r) for r in got] == [(1, "a", 1.0), (4, "d", 4.0)]


# -- 6. broker down at start ----------------------------------------------------------------------


def test_a_source_pointed_at_no_broker_fails_in_bounded_time_naming_the_servers():
    down = f"127.0.0.1:{closed_port()}"
    env = env_at(1)
    src = KafkaSource.builder().set_bootstrap_servers(down).set_topics("t").set_value_only_deserializer(
        SimpleStringSchema()).set_property("default.api.timeout.ms", "2000").build()
    collect(env.from_source(src, WatermarkStrategy.no_watermarks()))
    fails_soon_naming(env, down)


def test_a_sink_pointed_at_no_broker_fails_in_bounded_time_naming_the_servers():
    down = f"127.0.0.1:{closed_port()}"
    env = env_at(1)
    env.from_collection(["a", "b"]).sink_to(sink(down, "t", default_api_timeout_ms="2000"))
    fails_soon_naming(env, down)


def fails_soon_naming(env, servers: str) -> None:
    """Runs the job: it must fail within 10 s (its wait for brokers is 2 s), naming the
    bootstrap servers."""
    began = time.monotonic()
    with pytest.raises(JobExecutionException) as info:
        env.execute("no broker")
    took = time.monotonic() - began
    assert took < 10, f"the job took {took:.1f} s to fail"
    assert servers in str(info.value)


# -- 7. (first part) committed offsets follow completed checkpoints ---------------------------------


def test_checkpoints_commit_the_offsets_read_to_the_group(kafka, tmp_path):
    """With checkpointing on, the group's committed offsets (confluent-kafka's
    ``committed()``) advance to the end of what was read once checkpoints complete,
    never beyond, and never back."""
    topic = kafka.topic(2)
    per_partition(kafka, topic, 2, 25)
    group = f"g-{topic}"
    assert committed(kafka.bootstrap, group, topic, 2) == {0: -1001, 1: -1001}
    env = env_at(2)
    env.enable_checkpointing(100)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ck"))
    history: List[Dict[int, int]] = []

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            history.append(committed(kafka.bootstrap, group, topic, 2))
            if history[-1] == {0: 25, 1: 25}:
                break
            time.sleep(0.1)
        produce(kafka.bootstrap, topic, [b"end"], partition=0)  # lets the job reach its limit

    stream = env.from_source(source(kafka, topic, stop=None, group=group), WatermarkStrategy.no_watermarks(), "k")
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    seen = take(stream, 51, timeout=40)
    watcher.join(30)
    assert bag(seen) == bag([f"p{p}-{i}" for p in (0, 1) for i in range(25)] + ["end"])
    assert history and history[-1] == {0: 25, 1: 25}, f"committed offsets after the checkpoints: {history[-3:]}"
    for p in (0, 1):
        seen_offsets = [h[p] for h in history if h[p] >= 0]
        assert seen_offsets == sorted(seen_offsets) and all(o <= 25 for o in seen_offsets), history
