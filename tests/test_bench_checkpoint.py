"""Smoke test of benches/checkpoint.py: the checkpoint benchmark runs end to end on tiny
inputs and its figures come from real checkpoints (speed is never asserted here)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.abspath(os.environ.get("FERROFLOW_BENCH_DIR", os.path.join(ROOT, "..", "shared", "bench")))

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(os.path.join(BENCH, f)) for f in ("gen_words.py", "measure.py", "wc_udfs.py")),
    reason=f"the shared bench scripts are not at {BENCH} (set FERROFLOW_BENCH_DIR)")

KEYS = 3000


def test_checkpoint_bench_runs_on_tiny_inputs(tmp_path):
    words = tmp_path / "words.txt"
    subprocess.run([sys.executable, os.path.join(BENCH, "gen_words.py"), "--lines", "20000", str(words)],
                   check=True, capture_output=True)
    distinct = {w.lower() for w in words.read_text().split()}
    out = tmp_path / "results.json"
    p = subprocess.run([sys.executable, os.path.join(ROOT, "benches", "checkpoint.py"), "--input", str(words),
                        "--runs", "2", "--interval-ms", "10", "--keys", str(KEYS), "--restore-runs", "2",
                        "--no-peers", "--ignore-goals", "--json", str(out)],
                       check=False, capture_output=True, text=True, timeout=600, env={**os.environ, "FERROFLOW_BENCH_DIR": BENCH})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "throughput cost" in p.stdout and "goal <= 5%" in p.stdout and "goal <= 1 s" in p.stdout, p.stdout
    assert "Bytewax skipped: --no-peers" in p.stdout
    r = json.loads(out.read_text())
    assert r["words"] == 200_101
    assert r["ferroflow"]["plain"]["runs"] == r["ferroflow"]["checkpointed"]["runs"] == 2
    # Every checkpointed run completed checkpoints, each holding some of the words as keys.
    checkpoints = r["ferroflow_checkpoints"]
    assert len(checkpoints) == 2 and all(c and c["id"] >= 1 for c in checkpoints), checkpoints
    assert all(0 < c["keys"] <= len(distinct) and c["bytes"] > c["keys"] * 8 for c in checkpoints), checkpoints
    restore = r["restore"]
    assert restore["check"] == "MATCH"
    assert restore["checkpoint"]["keys"] == KEYS
    assert isinstance(restore["restore_s"], float)
    assert restore["restored"]["runs"] == restore["unrestored"]["runs"] == 2
