"""What the side-by-side benchmark runners (wordcount.py, window.py) share: where the
shared scripts, the cached inputs and the peers' virtualenvs are, and running one
command under ../shared/bench/measure.py for medians.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH = os.path.abspath(os.environ.get("FERROFLOW_BENCH_DIR", os.path.join(ROOT, "..", "shared", "bench")))
DATA = os.path.join(ROOT, "bench-data")
ANCHORS = os.environ.get("ANCHOR_HOME", os.path.expanduser("~/.cache/ferroflow-anchors"))
PY = sys.executable
FERROFLOW = os.path.join(os.path.dirname(PY), "ferroflow")


def compile_sources():
    """Byte-compiles ferroflow's Python package and the benchmark scripts, as `pip
    install` does, so that no run pays for compiling them (with
    PYTHONDONTWRITEBYTECODE set, as on CI boxes, each run would otherwise recompile
    the whole package: ~75 ms of every ferroflow process)."""
    subprocess.run([PY, "-m", "compileall", "-q", os.path.join(ROOT, "python", "ferroflow"), HERE], check=True)


def measure(label, cmd, runs, words=None, stdout=None, before_run=None):
    """Median wall seconds and peak RSS (MB) of `cmd` over `runs` runs (None if no run
    succeeded). `stdout`: a file that gets the command's stdout (rewritten every run).
    `before_run`: called before every run (e.g. to clear the previous run's output);
    measure.py is then started once per run."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as tf:
        jsonl = tf.name
    args = [PY, os.path.join(BENCH, "measure.py"), "--label", label, "--jsonl", jsonl]
    if words:
        args += ["--words", str(words)]
    if stdout:
        args += ["--stdout", stdout]
    print(f"-- {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    for n in ([runs] if before_run is None else [1] * runs):
        if before_run is not None:
            before_run()
        subprocess.run(args + ["--runs", str(n), "--"] + cmd, stdout=sys.stderr, check=False)
    with open(jsonl) as f:
        rows = [json.loads(line) for line in f]
    os.unlink(jsonl)
    ok = [r for r in rows if r["rc"] == 0]
    if not ok:
        return None
    return {"wall_s": statistics.median(r["wall_s"] for r in ok),
            "rss_mb": statistics.median(r["peak_rss_sum_mb"] for r in ok), "runs": len(ok),
            # In run order, so systems run in the same rounds can be compared round by round.
            "walls": [r["wall_s"] if r["rc"] == 0 else None for r in rows]}


def measure_interleaved(systems, words=None):
    """`measure` for several commands, taking their runs in rounds (A B C, A B C, ...)
    so that a slow minute on a shared box weighs on every system alike rather than
    on whichever ran then; commands run once come last. `systems`: (label, cmd, runs);
    returns {label: result}; see `paired_ratio` for comparing two of them."""
    logs = {}
    for label, cmd, runs in systems:
        with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as tf:
            logs[label] = tf.name
        print(f"-- {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    # Commands run once (the slow peers) go after the rounds: a JVM winding down must
    # not slow the next round's first command.
    rounds = max((runs for _, _, runs in systems), default=0)
    order = [(label, cmd) for r in range(rounds) for label, cmd, runs in systems if r < runs and (runs > 1 or rounds == 1)]
    order += [(label, cmd) for label, cmd, runs in systems if runs == 1 and rounds > 1]
    for label, cmd in order:
        args = [PY, os.path.join(BENCH, "measure.py"), "--label", label, "--jsonl", logs[label], "--runs", "1"]
        if words:
            args += ["--words", str(words)]
        subprocess.run(args + ["--"] + cmd, stdout=sys.stderr, check=False)
    results = {}
    for label, _, _ in systems:
        with open(logs[label]) as f:
            rows = [json.loads(line) for line in f]
        os.unlink(logs[label])
        ok = [r for r in rows if r["rc"] == 0]
        results[label] = None if not ok else {
            "wall_s": statistics.median(r["wall_s"] for r in ok),
            "rss_mb": statistics.median(r["peak_rss_sum_mb"] for r in ok), "runs": len(ok),
            "cpu_s": statistics.median(cpu_seconds(r) for r in ok),
            # In run order, so systems run in the same rounds can be compared round by round.
            "walls": [r["wall_s"] if r["rc"] == 0 else None for r in rows]}
    return results


def cpu_seconds(row):
    """CPU seconds (user + system) of one measure.py run: the process tree's, sampled every
    0.1 s (right for a long run with children that outlive their parent, as PyFlink's JVM),
    or /usr/bin/time's for the command and the children it waited for, whichever is larger
    (a run shorter than the sampling interval has no samples)."""
    return max(row.get("tree_cpu_s", 0.0), row.get("tv_user_s", 0.0) + row.get("tv_sys_s", 0.0))


def paired_ratio(slow, fast):
    """`slow`'s wall time over `fast`'s, as the median of the ratios of runs made in the
    same round (see `measure_interleaved`), so that a machine whose speed drifts between
    rounds (a shared box can swing 1.5x within a minute) weighs on both alike. Falls back
    to the ratio of medians when the two were not run in the same rounds."""
    pairs = [(s, f) for s, f in zip(slow.get("walls", []), fast.get("walls", [])) if s and f]
    if len(pairs) < 2 or len(slow["walls"]) != len(fast["walls"]):
        return slow["wall_s"] / fast["wall_s"]
    return statistics.median(s / f for s, f in pairs)


def anchor(name):
    """The Python of a peer's virtualenv (../shared/bench/setup_anchors.sh), or None."""
    py = os.path.join(ANCHORS, name, "bin", "python")
    return py if os.path.exists(py) else None
