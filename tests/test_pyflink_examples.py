"""PyFlink 2.3.0's own DataStream examples run unchanged on ferroflow and print what they print on PyFlink.

The scripts ship in the apache-flink 2.3.0 wheel under ``pyflink/examples/datastream/``. Their
licence lets us run them, not copy them here: ``tests/pyflink_examples.py`` downloads the pinned
wheel with pip, checks its sha256 and each script's, and extracts them into
``~/.cache/ferroflow/pyflink-examples/`` (``FERROFLOW_PYFLINK_EXAMPLES`` names a local copy). No
line of a script is changed: its ``from pyflink... import`` lines get ferroflow's names through the
``pyflink`` namespace (ferroflow.compat.pyflink). What PyFlink itself printed is stored in
``tests/data/pyflink_examples/2.3.0/`` with PROVENANCE.md saying how it was taken.

Each script runs three ways: ``python script.py`` (1 worker), the same on 2 worker threads, and
``ferroflow run script.py -p 2`` (2 processes). The comparison (``compare``):

- the three lines PyFlink's runtime (Apache Beam) prints before a job are not the script's output;
- ``k> `` prefixes are dropped: they name the worker a record was printed by, which depends on
  how each system hashes keys (PyFlink's default parallelism is the number of cores, ferroflow's 1);
- the lines must be the same multiset, and each key's lines (a line's key is its text before the
  first comma) in the same order; on 1 worker the whole output must be in PyFlink's order, except
  for the scripts in ``UNORDERED`` (each with its reason).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from typing import Dict, List, Tuple

import pytest
import pyflink_examples
from test_docs_event_time import PYTHON, ROOT, _clean_env

from ferroflow._cluster import ENV_THREADS

EXPECTED = os.path.join(ROOT, "tests", "data", "pyflink_examples", pyflink_examples.VERSION)
FERROFLOW = os.path.join(os.path.dirname(PYTHON), "ferroflow")

#: Printed by PyFlink's runtime before a job with Python functions, not by the script.
RUNTIME_LINES = (
    "Using Any for unsupported type: typing.Sequence[~T]",
    ("No module named google.cloud.bigquery_storage_v1. As a result, the ReadFromBigQuery transform *CANNOT* be "
     "used with `method=DIRECT_READ`."),
    "PYFLINK_CYTHON_ENABLED: True",
)
#: Scripts whose line order across keys PyFlink itself does not fix, and why.
UNORDERED = {
    "process_json_data.py": "PyFlink's own order varies from run to run (PROVENANCE.md)",
    "word_count.py": "BATCH mode sorts keys by their serialized bytes; words with commas make the key rule "
                     "below ambiguous, so only the lines are compared",
    "event_time_timer.py": "two keys' timers are due at the same timestamp (5000): Flink fires ties in its "
                           "timer heap's order, ferroflow in key order (docs/pyflink.md)",
}
#: Scripts compared as multisets only (a line's key is ambiguous).
LINES_ONLY = {"word_count.py"}
WAYS = ["1worker", "2threads", "2proc"]
_PREFIX = re.compile(r"^\d+> ")


def expected_lines(name: str) -> List[str]:
    with open(os.path.join(EXPECTED, f"{name}.out"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    return [_PREFIX.sub("", line) for line in lines if line not in RUNTIME_LINES]


def _key(line: str) -> str:
    return line.split(",", 1)[0]


def _by_key(lines: List[str]) -> Dict[str, List[str]]:
    groups: Dict[str, List[str]] = {}
    for line in lines:
        groups.setdefault(_key(line), []).append(line)
    return groups


def compare(name: str, got: List[str], want: List[str], ordered: bool) -> List[str]:
    """What differs between ``got`` (ferroflow's lines, prefixes dropped) and ``want`` (PyFlink's);
    empty if they match by the rules of the module docstring."""
    problems = []
    if Counter(got) != Counter(want):
        missing = list((Counter(want) - Counter(got)).elements())
        extra = list((Counter(got) - Counter(want)).elements())
        problems.append(f"lines PyFlink printed and ferroflow did not: {missing[:10]}; "
                        f"lines only ferroflow printed: {extra[:10]}")
    elif ordered and name not in UNORDERED and got != want:
        problems.append("same lines in another order than PyFlink's")
    elif name not in LINES_ONLY and _by_key(got) != _by_key(want):
        problems.append("some key's lines are in another order than PyFlink's")
    return problems


def run(examples: str, name: str, way: str) -> Tuple[int, List[str], str]:
    env = _clean_env()
    if way == "2threads":
        env[ENV_THREADS] = "2"
    cmd = [FERROFLOW, "run", name, "-p", "2"] if way == "2proc" else [PYTHON, name]
    r = subprocess.run(cmd, cwd=examples, env=env, capture_output=True, text=True, timeout=180, check=False)
    return r.returncode, [_PREFIX.sub("", line) for line in r.stdout.splitlines()], r.stderr


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("name", pyflink_examples.PLAIN)
def test_pyflink_example_prints_what_pyflink_printed(name, way, pyflink_scripts):
    code, got, stderr = run(pyflink_scripts, name, way)
    where = f"PyFlink's {name} on ferroflow ({way})"
    assert code == 0, f"{where} exited {code}:\n{stderr[-3000:]}"
    problems = compare(name, got, expected_lines(name), ordered=(way == "1worker"))
    assert not problems, f"{where}: " + "; ".join(problems) + "\nferroflow printed:\n" + "\n".join(got[:60])


def test_all_ten_plain_examples_are_compared():
    """The issue's goal counts the plain examples; the wheel has ten (the issue said eleven)."""
    assert len(pyflink_examples.PLAIN) == 10
    assert all(os.path.isfile(os.path.join(EXPECTED, f"{name}.out")) for name in pyflink_examples.PLAIN)


def test_the_comparison_catches_a_changed_value_a_lost_line_and_a_reordered_key():
    want = ["(hi,0,5,4)", "(hi,5,10,3)", "(yo,1,2,3)"]
    assert compare("x.py", list(want), want, ordered=True) == []
    assert compare("x.py", ["(hi,0,5,4)", "(yo,1,2,3)", "(hi,5,10,3)"], want, ordered=False) == []
    assert compare("x.py", ["(hi,0,5,4)", "(yo,1,2,3)", "(hi,5,10,3)"], want, ordered=True)
    assert compare("x.py", ["(hi,5,10,3)", "(hi,0,5,4)", "(yo,1,2,3)"], want, ordered=False)
    assert compare("x.py", ["(hi,0,5,4)", "(hi,5,10,4)", "(yo,1,2,3)"], want, ordered=False)
    assert compare("x.py", ["(hi,0,5,4)", "(hi,5,10,3)"], want, ordered=False)


def test_expected_outputs_drop_only_pyflinks_runtime_lines():
    lines = expected_lines("basic_operations.py")
    assert not any(line in RUNTIME_LINES for line in lines) and len(lines) == 9
    assert expected_lines("windowing/tumbling_count_window.py")[0].startswith("Printing result to stdout")


#: The two examples that read the Table API's ``datagen`` table, and the one line each stops at.
TABLE_API = {
    "streaming_word_count.py": "pyflink.table.StreamTableEnvironment.create is not supported by ferroflow: "
                               "ferroflow has no Table API or SQL",
    "asyncio/remote_model_inference.py": "pyflink.datastream.AsyncFunction is not supported by ferroflow: "
                                         "async I/O is not in ferroflow",
}


@pytest.mark.parametrize("name", sorted(TABLE_API))
def test_the_table_api_examples_stop_at_what_ferroflow_lacks_in_one_line(name, pyflink_scripts):
    assert set(TABLE_API) == set(pyflink_examples.NEEDS_TABLE_API)
    r = subprocess.run([FERROFLOW, "run", name], cwd=pyflink_scripts, env=_clean_env(), capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 1 and r.stdout == ""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and TABLE_API[name] in lines[0], r.stderr


def test_word_count_reads_a_file_source_and_writes_a_file_sink_as_pyflink(pyflink_scripts, tmp_path):
    """``word_count.py --input F --output D``: FileSource in, FileSink out, BATCH mode. Given a
    file of the script's own default lines, D holds what PyFlink printed for them, written as
    Java's toString of the declared tuple type, in part files named with the script's prefix
    and suffix."""
    import ast

    with open(os.path.join(pyflink_scripts, "word_count.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    data = next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "word_count_data")
    (tmp_path / "in.txt").write_text("\n".join(data) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    r = subprocess.run([PYTHON, os.path.join(pyflink_scripts, "word_count.py"), "--input", str(tmp_path / "in.txt"),
                        "--output", str(out)], env=_clean_env(), capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and all(p.name.startswith("prefix-") and p.name.endswith(".ext") for p in files), files
    written = [line for p in files for line in p.read_text(encoding="utf-8").splitlines()]
    want = [line for line in expected_lines("word_count.py") if line.startswith("(")]
    assert Counter(written) == Counter(want)
    assert written.index("(a,5)") < written.index("(Be,1)")  # BATCH's key order, as PyFlink's


def test_the_ttl_builder_chain_of_the_state_examples():
    from pyflink.common import Time
    from pyflink.datastream.state import StateTtlConfig

    """The exact chain both examples build, with what each step set."""
    config = StateTtlConfig \
        .new_builder(Time.seconds(1)) \
        .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite) \
        .disable_cleanup_in_background() \
        .build()
    assert config.get_ttl() == Time.milliseconds(1000)
    assert config.get_update_type() is StateTtlConfig.UpdateType.OnReadAndWrite
    assert config.get_state_visibility() is StateTtlConfig.StateVisibility.NeverReturnExpired
    assert not config.get_cleanup_strategies().is_cleanup_in_background()
    assert config.get_cleanup_strategies().get_incremental_cleanup_strategy() is None
