#!/usr/bin/env python3
"""Start-up of PyFlink's own example scripts (issue 14): the unchanged script run by
ferroflow and by PyFlink 2.3.0, whole-process wall time.

    .venv/bin/python benches/pyflink_startup.py [--example process_json_data.py | --all]
                                               [--runs 5] [--pyflink-runs N] [--no-pyflink]
                                               [--importtime] [--json FILE]

The scripts are PyFlink 2.3.0's DataStream examples, fetched from the pinned wheel by
tests/pyflink_examples.py (`FERROFLOW_PYFLINK_EXAMPLES` names a local copy). For each job
(the example; `--all`: every PLAIN example) and two baselines (`python -c pass`, and
benches/jobs/pyflink_empty_job.py: the environment, `from_collection([1]).print()`,
`execute()`), three commands:

- ferroflow, `python SCRIPT` with this repository's Python (its `pyflink` names);
- ferroflow, `ferroflow run SCRIPT`;
- PyFlink, `python SCRIPT` with the virtualenv of `bash ../shared/bench/setup_anchors.sh`
  (its `bin` first on PATH, as PyFlink starts its Python workers as plain `python`).
  Without that virtualenv (or with `--no-pyflink`) its column is skipped with a note.

Every command first runs once untimed (a warm-up, and the check that it runs: one that
does not is reported as `failed: <its last stderr line>` and not timed), then `--runs`
times under ../shared/bench/measure.py, in rounds (harness.measure_interleaved), from a
temporary working directory. Printed: the median wall time with min and max, and the
ratio PyFlink / ferroflow (the median of round-by-round ratios, harness.paired_ratio);
the machine (cores, load, Pythons, Java). `--importtime`: where ferroflow's start-up of
the example goes, from `python -X importtime` (least of 5 runs). Writes
bench-data/pyflink-startup-results.json (or --json). Exits 1 if a ferroflow baseline, or
the example named without `--all`, does not run. In a git worktree beside the main
checkout, point FERROFLOW_BENCH_DIR at the shared bench directory.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

from harness import DATA, FERROFLOW, HERE, PY, ROOT, anchor, compile_sources, measure_interleaved, paired_ratio

sys.path.insert(0, os.path.join(ROOT, "tests"))
import pyflink_examples  # the one home of fetching the scripts

EMPTY_JOB = os.path.join(HERE, "jobs", "pyflink_empty_job.py")
DEFAULT_EXAMPLE = "process_json_data.py"
PASS, EMPTY = "`python -c pass`", "empty job"
FF_PY, FF_RUN, PF_PY = "ferroflow `python`", "`ferroflow run`", f"PyFlink {pyflink_examples.VERSION} `python`"
#: A probe run that takes longer than this is reported as failed (a hang must not stall the bench).
PROBE_TIMEOUT_S = 600


def last_line(text, rc):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else f"exit {rc}, nothing on stderr"


def probe(cmd):
    """None if `cmd` runs (exit 0), else one line saying why not. Also the warm-up run."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"did not finish within {PROBE_TIMEOUT_S} s"
    return None if p.returncode == 0 else last_line(p.stderr, p.returncode)


def version_of(cmd):
    """The first line `cmd` prints (on stdout or stderr), or why there is none."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"none ({e.__class__.__name__})"
    out = (p.stdout + p.stderr).strip().splitlines()
    return out[0] if out else "unknown"


def machine(pyflink):
    java = shutil.which("java")
    return {"cores": os.cpu_count(), "arch": platform.machine(), "system": platform.system(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "python_ferroflow": platform.python_version(),
            "python_pyflink": version_of([pyflink, "--version"]) if pyflink else None,
            "java": version_of([java, "-version"]) if java else "none on PATH"}


def importtime(script, runs=5):
    """Where `python -X importtime script` spends its imports, each figure the least of `runs` runs
    (the least is the one a busy machine disturbed least): (total ms of every import, [(top-level
    module, cumulative ms)] largest first), or None if the script does not run."""
    totals, best = [], {}
    for _ in range(runs):
        p = subprocess.run([PY, "-X", "importtime", script], capture_output=True, text=True, check=False,
                           timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            return None
        total = 0
        for line in p.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = line[len("import time:"):].split("|")
            total += int(self_us)
            if not name[1:].startswith(" "):  # indented one space per level: depth 0 has none
                best[name.strip()] = min(best.get(name.strip(), float("inf")), int(cumulative_us) / 1000)
        totals.append(total / 1000)
    return min(totals), sorted(best.items(), key=lambda t: -t[1])


def cell(r):
    if r is None:
        return "failed"
    walls = [w for w in r["walls"] if w is not None]
    return f"{r['wall_s']:.3f} ({min(walls):.3f}–{max(walls):.3f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--example", default=DEFAULT_EXAMPLE,
                       help=f"a script under pyflink/examples/datastream/ (default {DEFAULT_EXAMPLE})")
    which.add_argument("--all", action="store_true", help="every example that needs no server nor the Table API")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    ap.add_argument("--pyflink-runs", type=int, help="timed runs of each PyFlink command (default: --runs)")
    ap.add_argument("--no-pyflink", action="store_true", help="skip PyFlink")
    ap.add_argument("--importtime", action="store_true", help="also break ferroflow's start-up down by import")
    ap.add_argument("--json", default=os.path.join(DATA, "pyflink-startup-results.json"))
    a = ap.parse_args()
    a.json = os.path.abspath(a.json)
    if a.runs < 1 or (a.pyflink_runs is not None and a.pyflink_runs < 1):
        ap.error("--runs and --pyflink-runs must be at least 1")
    examples = list(pyflink_examples.PLAIN) if a.all else [a.example]
    unknown = [name for name in examples if name not in pyflink_examples.DATASTREAM]
    if unknown:
        ap.error(f"no example {unknown[0]!r} in PyFlink {pyflink_examples.VERSION}; "
                 f"the ones that need no server: {', '.join(pyflink_examples.PLAIN)}")
    try:
        where = pyflink_examples.examples_dir({name: pyflink_examples.DATASTREAM[name] for name in examples})
    except pyflink_examples.FetchError as e:
        sys.exit(f"failed: PyFlink's examples could not be fetched ({pyflink_examples.OVERRIDE} names a local copy): {e}")

    # Both are resolved now; the commands run as a user's plain `python job.py` would, without a
    # launcher's or a test's FERROFLOW_* settings.
    for key in [k for k in os.environ if k.startswith("FERROFLOW_")]:
        del os.environ[key]
    pyflink = None if a.no_pyflink else anchor("pyflink")
    if pyflink:
        note = None
        bin_dir = os.path.dirname(pyflink)
        pf = ["/usr/bin/env", f"PATH={bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", pyflink]
    else:
        note = ("PyFlink skipped: --no-pyflink" if a.no_pyflink else
                "PyFlink skipped: no virtualenv (bash ../shared/bench/setup_anchors.sh)")
    pyflink_runs = a.pyflink_runs or a.runs
    jobs = [(PASS, ["-c", "pass"]), (EMPTY, [EMPTY_JOB])] + [(name, [os.path.join(where, name)]) for name in examples]
    systems = {FF_PY: ([PY], a.runs), FF_RUN: ([FERROFLOW, "run"], a.runs)}
    if pyflink:
        systems[PF_PY] = (pf, pyflink_runs)

    compile_sources()
    info = machine(pyflink)
    cwd, work = os.getcwd(), tempfile.mkdtemp(prefix="ferroflow-pyflink-startup-")
    os.chdir(work)  # whatever an example writes lands here, not in the repository
    failures, timed = {}, []
    try:
        for job, args in jobs:
            for system, (cmd, runs) in systems.items():
                if system == FF_RUN and job == PASS:
                    continue
                print(f"-- probe: {system} {job}", file=sys.stderr, flush=True)
                why = probe(cmd + args)
                if why is None:
                    timed.append((f"{system} | {job}", cmd + args, runs))
                else:
                    failures[(system, job)] = why
        results = measure_interleaved(timed)
        breakdown = importtime(os.path.join(where, examples[0])) if a.importtime else None
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
    info["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]

    def result(system, job):
        return results.get(f"{system} | {job}")

    print(f"\nstart-up of PyFlink {pyflink_examples.VERSION}'s example scripts, unchanged: whole-process wall "
          f"seconds, median (min–max) of {a.runs} run{'s' * (a.runs > 1)}" + (f" ({pyflink_runs} for PyFlink)" if pyflink else "")
          + "; ratios are medians of round-by-round ratios\n")
    heads = [FF_PY, FF_RUN] + ([PF_PY, "PyFlink / ferroflow `python`", "PyFlink / `ferroflow run`"] if pyflink else [])
    print("| job | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * len(heads))
    for job, _ in jobs:
        cells = []
        for system in systems:
            if system == FF_RUN and job == PASS:
                cells.append("–")
            else:
                cells.append("failed" if (system, job) in failures else cell(result(system, job)))
        if pyflink:
            slow = result(PF_PY, job)
            for fast in (result(FF_PY, job), None if job == PASS else result(FF_RUN, job)):
                cells.append(f"{paired_ratio(slow, fast):.1f}x" if slow and fast else "–")
        print(f"| {job if job in (PASS, EMPTY) else f'`{job}`'} | " + " | ".join(cells) + " |")
    # CPU time depends less than wall time on what else the machine runs (a JVM's start-up is
    # mostly CPU: on a busy 2-core box its wall time grows several-fold).
    print("\nCPU seconds (user + system, the whole process tree), median\n")
    cpu_heads = list(systems) + (["PyFlink / ferroflow `python`"] if pyflink else [])
    print("| job | " + " | ".join(cpu_heads) + " |")
    print("|---|" + "---:|" * len(cpu_heads))
    for job, _ in jobs:
        cpus = [result(system, job) for system in systems]
        cells = ["–" if r is None else f"{r['cpu_s']:.2f}" for r in cpus]
        if pyflink:
            slow, fast = result(PF_PY, job), result(FF_PY, job)
            cells.append(f"{slow['cpu_s'] / fast['cpu_s']:.0f}x" if slow and fast and fast["cpu_s"] > 0 else "–")
        print(f"| {job if job in (PASS, EMPTY) else f'`{job}`'} | " + " | ".join(cells) + " |")
    print()
    for (system, job), why in failures.items():
        print(f"{system} {job}: failed: {why}")
    for label, _, _ in timed:
        if results[label] is None:
            print(f"{label.replace(' | ', ' ')}: failed: ran in the probe, but no timed run exited 0")
    if note:
        print(note)
    print(f"machine: {info['cores']} cores, {info['system']} {info['arch']}, load average {info['load_avg'][0]:.2f} "
          f"before and {info['load_avg_after'][0]:.2f} after; ferroflow's Python {info['python_ferroflow']}"
          + (f", PyFlink's {info['python_pyflink']}" if pyflink else "") + f"; Java: {info['java']}")
    if a.importtime:
        if breakdown is None:
            print(f"\n--importtime: {examples[0]} does not run on ferroflow")
        else:
            total, top = breakdown
            print(f"\nferroflow `python {examples[0]}`, `python -X importtime`, least of 5 runs: {total:.1f} ms of "
                  f"imports; the largest top-level ones (cumulative ms):")
            for name, ms in top[:8]:
                print(f"  {ms:7.1f}  {name}")

    out = {"examples": examples, "runs": a.runs, "pyflink_runs": pyflink_runs if pyflink else 0, "machine": info,
           "note": note, "results": {label: results[label] for label, _, _ in timed},
           "failed": {f"{system} | {job}": why for (system, job), why in failures.items()},
           "importtime": breakdown}
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    must_run = [PASS, EMPTY] + ([] if a.all else examples)
    broken = [f"{system} {job}" for job in must_run for system in (FF_PY, FF_RUN)
              if not (system == FF_RUN and job == PASS) and result(system, job) is None]
    if broken:
        print(f"\nfailed: {', '.join(broken)} did not run on ferroflow", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
