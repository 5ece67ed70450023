#!/usr/bin/env python3
"""Kafka → map → Kafka throughput (issue 15), side by side in one run:

    .venv/bin/python benches/kafka.py [--records 500000] [--partitions 2] [--runs 3] [--json FILE]

One broker (tansu, as the tests use: tests/services/kafka.py) on 127.0.0.1; one input
topic of `--partitions` partitions prefilled with `--records` values by confluent-kafka
(each partition's last record in a batch of its own, as tansu's ListOffsets needs: see
tests/services/kafka.py). Each system reads every partition from the start to its end
when the job started, applies benches/jobs/kafka_map_udf.py's `transform` to every value
and writes the results to its own output topic, at least once, and ends when the brokers
acknowledged everything:

- ferroflow (benches/jobs/kafka_map_ferroflow.py): KafkaSource (bounded at the latest
  offsets) → map → KafkaSink, at parallelism 1 and at `--partitions`;
- the baseline (benches/jobs/kafka_map_loop.py): a plain confluent-kafka
  consume-transform-produce loop in Python, one process;
- Bytewax 0.21.1's Kafka connectors (benches/jobs/kafka_map_bytewax.py), when the
  virtualenv of `ANCHORS=bytewax bash ../shared/bench/setup_anchors.sh` exists with
  confluent-kafka installed in it (its Kafka connector needs it); otherwise a note.

Every command runs once first, and its output topic is read back with confluent-kafka:
a system whose output is not exactly the transformed input is reported as wrong and not
timed. Then `--runs` rounds under ../shared/bench/measure.py (harness.measure_interleaved).
Printed: median wall time (whole process: start-up, connect, read, map, write, acks),
records/s, and each system's speed over the loop's (harness.paired_ratio). The goal of
issue 15 is ferroflow at parallelism 1 ≥ 1.5x the loop. Writes
bench-data/kafka-results.json (or --json).
"""
import argparse
import json
import os
import platform
import sys
from collections import Counter

from harness import DATA, HERE, PY, ROOT, anchor, compile_sources, measure_interleaved, paired_ratio

sys.path.insert(0, os.path.join(ROOT, "tests"))
from services.kafka import Broker, consume_all  # noqa: E402  the one home of the test broker

sys.path.insert(0, os.path.join(HERE, "jobs"))
from kafka_map_udf import transform  # noqa: E402

JOBS = os.path.join(HERE, "jobs")
def prefill(bootstrap, topic, records, partitions):
    """`records` values spread round-robin over the partitions, each partition's last
    one in a batch of its own; returns the values."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1_000_000})
    values = [f"record {i:08d} of the kafka benchmark" for i in range(records)]

    def send(i):
        while True:
            try:
                p.produce(topic, values[i].encode(), partition=i % partitions)
                return
            except BufferError:
                p.poll(0.05)
    last = max(0, records - partitions)
    for i in range(last):
        send(i)
    assert p.flush(120) == 0, "prefill not acknowledged"
    for i in range(last, records):
        send(i)
        assert p.flush(30) == 0, "prefill not acknowledged"
    return values


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default=os.path.join(DATA, "kafka-results.json"))
    args = ap.parse_args()
    compile_sources()
    broker = Broker().start()
    try:
        src = broker.topic(args.partitions, prefix="bench-in")
        values = prefill(broker.bootstrap, src, args.records, args.partitions)
        want = Counter(transform(v).encode() for v in values)
        systems = [("confluent-kafka loop", "kafka_map_loop.py", args.partitions),
                   ("ferroflow -p 1", "kafka_map_ferroflow.py", 1)]
        if args.partitions > 1:
            systems.append((f"ferroflow -p {args.partitions}", "kafka_map_ferroflow.py", args.partitions))
        bytewax = anchor("bytewax")
        if bytewax:
            systems.append(("Bytewax 0.21.1", "kafka_map_bytewax.py", args.partitions))
        commands, notes = [], []
        for label, script, arg in systems:
            dst = broker.topic(args.partitions, prefix="bench-out")
            python = bytewax if label.startswith("Bytewax") else PY
            cmd = [python, os.path.join(JOBS, script), broker.bootstrap, src, dst, str(arg)]
            import subprocess
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                notes.append(f"{label}: failed ({last[:200]})")
                continue
            got = Counter(consume_all(broker.bootstrap, dst, args.partitions, idle=2.0, timeout=300))
            if got != want:
                notes.append(f"{label}: wrong output ({sum(got.values())} records, {len(got - want)} unexpected, "
                             f"{len(want - got)} missing): not timed")
                continue
            commands.append((label, cmd, args.runs))
        if not bytewax:
            notes.append("Bytewax: no virtualenv (ANCHORS=bytewax bash ../shared/bench/setup_anchors.sh, then "
                         "its pip install confluent-kafka)")
        results = measure_interleaved(commands)
    finally:
        broker.stop()
    loop = results.get("confluent-kafka loop")
    print(f"\nKafka → map → Kafka, {args.records:,} records, {args.partitions} partitions, tansu broker; "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, medians of {args.runs}")
    print(f"{'system':<24} {'wall s':>8} {'records/s':>12} {'x loop':>8}")
    for label, _, _ in commands:
        r = results.get(label)
        if r is None:
            print(f"{label:<24} {'failed':>8}")
            continue
        ratio = paired_ratio(loop, r) if loop else float("nan")
        print(f"{label:<24} {r['wall_s']:8.2f} {args.records / r['wall_s']:12,.0f} {ratio:8.2f}")
    for n in notes:
        print(f"note: {n}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"records": args.records, "partitions": args.partitions, "results": results, "notes": notes}, f,
                  indent=1)


if __name__ == "__main__":
    main()
