"""The worked example of your own connectors (examples/postgres_exactly_once.py) on a
real PostgreSQL server (tests/services/postgres.py): a partitioned source reading a
table by id ranges, a two-phase-commit sink with PREPARE TRANSACTION / COMMIT PREPARED.
Killed with SIGKILL at random moments and restored (at 1, 2 workers and 2 processes),
the copy holds every row exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "postgres_exactly_once.py"
FERROFLOW = str(Path(sys.executable).parent / "ferroflow")
ROWS = 3000
sys.path.insert(0, str(EXAMPLE.parent))
import postgres_exactly_once as example


def fresh(dsn: str) -> None:
    example.roll_back_orphans(dsn)
    example.create_tables(dsn, ROWS)


def copied(dsn: str) -> list:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, body FROM copies ORDER BY id").fetchall()


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM copies").fetchone()[0]


def expected() -> list:
    return [(i, f"EVENT {i}") for i in range(ROWS)]


def command(storage: Path, dsn: str, way: str, slow: str) -> list:
    cmd = [FERROFLOW, "run", str(EXAMPLE)]
    if way == "2proc":
        cmd += ["-p", "2"]
    else:
        cmd += ["-w", way]
    return cmd + ["--from-checkpoint", str(storage), "-", dsn, str(storage), slow]


def job_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}


def test_a_run_without_failures_copies_every_row_once(postgres_dsn, tmp_path):
    fresh(postgres_dsn)
    p = subprocess.run(check=False, args=[sys.executable, str(EXAMPLE), postgres_dsn], env=job_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert copied(postgres_dsn) == expected()


@pytest.mark.parametrize("way", ["1", "2", "2proc"])
def test_killed_at_random_moments_and_restored_copies_every_row_exactly_once(postgres_dsn, tmp_path, way):
    fresh(postgres_dsn)
    rng = random.Random(15 + len(way))
    storage = tmp_path / "ck"
    kills = 0
    for _ in range(3):
        before = count(postgres_dsn)
        p = subprocess.Popen(command(storage, postgres_dsn, way, "0.1"), cwd=tmp_path, env=job_env(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        # Killed a random moment after this run committed a checkpoint's rows.
        deadline = time.monotonic() + 60
        while p.poll() is None and count(postgres_dsn) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.4))
        if p.poll() is not None:
            _, err = p.communicate()
            assert p.returncode == 0, err.decode()
            break
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        kills += 1
    assert kills >= 2, "the job finished before it could be killed twice"
    with psycopg.connect(postgres_dsn) as conn:
        partial = conn.execute("SELECT count(*), count(DISTINCT id) FROM copies").fetchone()
    assert partial[0] == partial[1], "a row was committed twice before the last run"
    assert 0 < partial[0] < ROWS, f"{partial[0]} rows committed before the last run: it would not resume"
    p = subprocess.run(check=False, args=command(storage, postgres_dsn, way, "0"), cwd=tmp_path, env=job_env(),
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    example.roll_back_orphans(postgres_dsn)
    assert copied(postgres_dsn) == expected()


def test_the_source_resumes_each_range_after_its_last_id(postgres_dsn):
    from ferroflow import _engine
    from ferroflow.connectors.partitioned import _SourceParts

    fresh(postgres_dsn)
    source = example.IdRanges(postgres_dsn)
    assert source.list_parts() == [f"ids-{lo}" for lo in range(0, ROWS, example.RANGE)]
    probe = _engine._SourceProbe(_SourceParts(source, "pg"), 0, 1)
    first = probe.poll(700)
    probe.mark(1)
    section = probe.snapshot()
    probe.cancel()
    probe = _engine._SourceProbe(_SourceParts(example.IdRanges(postgres_dsn), "pg"), 0, 1)
    probe.restore([section], 0, 1)
    rest = probe.poll(10**6)
    probe.cancel()
    assert sorted(first + rest) == [(i, f"event {i}") for i in range(ROWS)]
