"""Exactly-once from one PostgreSQL table to another: your own connectors in Python.

    python examples/postgres_exactly_once.py DSN [CHECKPOINT_DIR [SLOW_SECONDS]]
    ferroflow run examples/postgres_exactly_once.py -p 2 --from-checkpoint DIR - DSN DIR

- Source: ``IdRanges``, a ``FixedPartitionedSource`` reading the table ``events``
  (``id bigint primary key, body text``) by id ranges, one part per range; each part's
  state is the last id it read, so a restore (at any parallelism) resumes each range
  after it.
- Sink: ``PostgresSink``, a ``TwoPhaseCommitSinkFunction``: each checkpoint's rows go in
  one database transaction per worker, made durable with ``PREPARE TRANSACTION`` when the
  checkpoint is taken and made visible with ``COMMIT PREPARED`` when it completes (the
  server needs ``max_prepared_transactions`` > 0). A restore commits what the checkpoint
  covers and rolls back the rest, so ``copies`` gets every row exactly once, however often
  the job is killed and restored.

With a CHECKPOINT_DIR the job checkpoints every 100 ms there; SLOW_SECONDS sleeps before
each batch (so a test can kill the job while it runs).
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any, Dict, List, Optional

import psycopg

from ferroflow import StreamExecutionEnvironment
from ferroflow.connectors import FixedPartitionedSource, StatefulSourcePartition
from ferroflow.functions import TwoPhaseCommitSinkFunction
from ferroflow.watermarks import WatermarkStrategy

#: Rows per range (part) of the source table and per batch read.
RANGE, BATCH = 500, 50
#: Prepared transactions of this sink are named with this prefix.
GID_PREFIX = "ferroflow-copies-"


class IdRange(StatefulSourcePartition):
    """Rows ``lo <= id < hi`` of ``events`` in id order; the state is the last id read."""

    def __init__(self, dsn: str, lo: int, hi: int, last: Optional[int], slow: float) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.lo, self.hi, self.slow = lo, hi, slow
        self.last = lo - 1 if last is None else last

    def next_batch(self) -> List[Any]:
        if self.slow:
            time.sleep(self.slow)
        rows = self.conn.execute("SELECT id, body FROM events WHERE id > %s AND id < %s ORDER BY id LIMIT %s",
                                 (self.last, self.hi, BATCH)).fetchall()
        if not rows:
            raise StopIteration  # the range is read
        self.last = rows[-1][0]
        return rows

    def snapshot(self) -> int:
        return self.last

    def close(self) -> None:
        self.conn.close()


class IdRanges(FixedPartitionedSource):
    """``events`` split into ranges of ``RANGE`` ids, named ``ids-<lo>``."""

    def __init__(self, dsn: str, slow: float = 0.0) -> None:
        self.dsn, self.slow = dsn, slow

    def list_parts(self) -> List[str]:
        with psycopg.connect(self.dsn) as conn:
            top = conn.execute("SELECT coalesce(max(id), -1) FROM events").fetchone()[0]
        return [f"ids-{lo}" for lo in range(0, top + 1, RANGE)]

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[int]) -> IdRange:
        lo = int(for_part.split("-")[1])
        return IdRange(self.dsn, lo, lo + RANGE, resume_state, self.slow)


class Transaction:
    """A sink transaction: its global id; rows and connection stay out of checkpoints."""

    def __init__(self) -> None:
        self.gid = f"{GID_PREFIX}{uuid.uuid4().hex}"
        self.rows: List[Any] = []

    def __getstate__(self) -> Dict[str, Any]:
        return {"gid": self.gid}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.gid, self.rows = state["gid"], []


class PostgresSink(TwoPhaseCommitSinkFunction):
    """Inserts ``(id, body)`` rows into ``copies`` exactly once (two-phase commit)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def begin_transaction(self) -> Transaction:
        return Transaction()

    def invoke(self, transaction: Transaction, value: Any, context: Any) -> None:
        transaction.rows.append(value)

    def pre_commit(self, transaction: Transaction) -> None:
        """Writes the rows and prepares the transaction: durable, not yet visible."""
        with psycopg.connect(self.dsn) as conn:
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO copies (id, body) VALUES (%s, %s)", transaction.rows)
            conn.execute(f"PREPARE TRANSACTION '{transaction.gid}'")

    def commit(self, transaction: Transaction) -> None:
        """Idempotent: a restore may commit again what was committed before a failure."""
        self._finish(transaction, "COMMIT PREPARED")

    def abort(self, transaction: Transaction) -> None:
        self._finish(transaction, "ROLLBACK PREPARED")

    def _finish(self, transaction: Transaction, how: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            prepared = conn.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", (transaction.gid,)).fetchone()
            if prepared:
                conn.execute(f"{how} '{transaction.gid}'")


def roll_back_orphans(dsn: str) -> int:
    """Rolls back this sink's prepared transactions that no checkpoint lists (prepared
    for a checkpoint that never completed, before a kill). Only once the job has
    succeeded: before, a restore may still need to commit some. Returns how many."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        gids = [g for (g,) in conn.execute("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE %s",
                                           (GID_PREFIX + "%",)).fetchall()]
        for gid in gids:
            conn.execute(f"ROLLBACK PREPARED '{gid}'")
    return len(gids)


def create_tables(dsn: str, rows: int) -> None:
    """``events`` with ``rows`` rows and an empty ``copies`` (for trying the example)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS events, copies")
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, body text NOT NULL)")
        conn.execute("CREATE TABLE copies (id bigint NOT NULL, body text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO events VALUES (%s, %s)", [(i, f"event {i}") for i in range(rows)])


def main(argv: List[str]) -> None:
    dsn = argv[1]
    checkpoints = argv[2] if len(argv) > 2 else None
    slow = float(argv[3]) if len(argv) > 3 else 0.0
    env = StreamExecutionEnvironment.get_execution_environment()
    if checkpoints:
        env.enable_checkpointing(100)
        env.get_checkpoint_config().set_checkpoint_storage_dir(checkpoints)
    rows = env.from_source(IdRanges(dsn, slow), WatermarkStrategy.no_watermarks(), "events by id range")
    rows.map(lambda row: (row[0], row[1].upper())).add_sink(PostgresSink(dsn))
    env.execute("postgres exactly once")
    import os

    # In a multi-process run the other processes may still be committing their last
    # transactions: whoever runs the job calls roll_back_orphans once they all ended.
    if not os.environ.get("FERROFLOW_PROCESS_ID"):
        roll_back_orphans(dsn)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--create":
        create_tables(sys.argv[2], int(sys.argv[3]))
    else:
        main(sys.argv)
