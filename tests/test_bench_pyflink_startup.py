"""Smoke test of benches/pyflink_startup.py: the start-up benchmark of PyFlink's example
scripts runs end to end in its tiny mode (one run, ferroflow only) and prints its table;
with --all every example gets a time or one "failed:" line. Speed is never asserted."""
import json
import os
import re
import subprocess
import sys

import pytest
import pyflink_examples

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.abspath(os.environ.get("FERROFLOW_BENCH_DIR", os.path.join(ROOT, "..", "shared", "bench")))
SCRIPT = os.path.join(ROOT, "benches", "pyflink_startup.py")

needs_bench = pytest.mark.skipif(not os.path.exists(os.path.join(BENCH, "measure.py")),
                                reason=f"the shared bench scripts are not at {BENCH} (set FERROFLOW_BENCH_DIR)")

#: A table cell with a time: median (min–max) in seconds.
TIME = r"\d+\.\d{3} \(\d+\.\d{3}–\d+\.\d{3}\)"


def bench(pyflink_scripts, tmp_path, *args):
    out = tmp_path / "results.json"
    p = subprocess.run([sys.executable, SCRIPT, "--runs", "1", "--no-pyflink", "--json", str(out), *args],
                       capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
                       env={**os.environ, "FERROFLOW_BENCH_DIR": BENCH, pyflink_examples.OVERRIDE: pyflink_scripts})
    return p, (json.loads(out.read_text()) if out.exists() else None)


@needs_bench
def test_tiny_run_prints_the_table(pyflink_scripts, tmp_path):
    p, r = bench(pyflink_scripts, tmp_path, "--importtime")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "| job | ferroflow `python` | `ferroflow run` |" in p.stdout, p.stdout
    assert re.search(rf"^\| `python -c pass` \| {TIME} \| – \|$", p.stdout, re.MULTILINE), p.stdout
    assert re.search(rf"^\| empty job \| {TIME} \| {TIME} \|$", p.stdout, re.MULTILINE), p.stdout
    assert re.search(rf"^\| `process_json_data.py` \| {TIME} \| {TIME} \|$", p.stdout, re.MULTILINE), p.stdout
    cpu = p.stdout.split("CPU seconds (user + system, the whole process tree), median", 1)
    assert len(cpu) == 2, p.stdout
    assert re.search(r"^\| `process_json_data.py` \| \d+\.\d\d \| \d+\.\d\d \|$", cpu[1], re.MULTILINE), p.stdout
    assert "PyFlink skipped: --no-pyflink" in p.stdout
    assert re.search(r"^machine: \d+ cores, .*Java: ", p.stdout, re.MULTILINE), p.stdout
    # Every timed command ran once and exited 0; nothing is reported as failed.
    assert r["examples"] == ["process_json_data.py"] and r["failed"] == {}
    assert len(r["results"]) == 5 and all(v["runs"] == 1 for v in r["results"].values()), r["results"]
    assert "failed" not in p.stdout
    # --importtime: the script's imports, ferroflow's pyflink names among them.
    assert "ferroflow `python process_json_data.py`, `python -X importtime`" in p.stdout
    assert re.search(r"^ +\d+\.\d  pyflink\.datastream$", p.stdout, re.MULTILINE), p.stdout
    total, top = r["importtime"]
    assert total > 0 and "pyflink.datastream" in dict(top)


@needs_bench
def test_all_gives_each_example_a_time_or_one_failed_line(pyflink_scripts, tmp_path):
    p, r = bench(pyflink_scripts, tmp_path, "--all")
    assert p.returncode == 0, p.stdout + p.stderr
    assert r["examples"] == list(pyflink_examples.PLAIN)
    for name in pyflink_examples.PLAIN:
        row = re.search(rf"^\| `{re.escape(name)}` \| (.*) \| (.*) \|$", p.stdout, re.MULTILINE)
        assert row, (name, p.stdout)
        for system, got in zip(("ferroflow `python`", "`ferroflow run`"), row.groups()):
            if got == "failed":
                # One line saying why, the script's own last stderr line.
                lines = [line for line in p.stdout.splitlines() if line.startswith(f"{system} {name}: failed: ")]
                assert len(lines) == 1 and len(lines[0]) > len(f"{system} {name}: failed: "), (name, p.stdout)
                assert f"{system} | {name}" in r["failed"]
            else:
                assert re.fullmatch(TIME, got), (name, got)
                assert r["results"][f"{system} | {name}"]["runs"] == 1


def test_an_unknown_example_is_refused_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, SCRIPT, "--example", "nope.py", "--no-pyflink"], capture_output=True,
                       text=True, timeout=60, check=False, cwd=tmp_path)
    assert p.returncode == 2
    assert "no example 'nope.py' in PyFlink 2.3.0; the ones that need no server: basic_operations.py" in p.stderr
    assert "Traceback" not in p.stderr
