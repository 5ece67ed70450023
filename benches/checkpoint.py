#!/usr/bin/env python3
"""Checkpoints side by side (issue 13): what a checkpoint every second costs word count,
how long a restore of 1M keys takes, and Bytewax's recovery on the same word count.

    .venv/bin/python benches/checkpoint.py [--size large | --input FILE] [--runs 5]
                                          [--keys 1000000] [--restore-runs 5]
                                          [--peer-runs 1] [--no-peers]

1. Word count (benches/wordcount_ferroflow.py, the shared UDFs, a running count per word
   into a discarding sink) on ../shared/bench/gen_words.py's input (`large`: 20M words),
   without checkpointing and with a checkpoint every second into a temp dir, in paired
   rounds. Goal: the checkpoints cost <= 5% of the throughput (the median of the
   round-by-round ratios, harness.paired_ratio). Printed: each run's checkpoint count
   (the last checkpoint's id: ids count from 1 and every one completed here), the
   size of the last checkpoint on disk, its keys (counted in the reduce's section of the
   part files) and bytes per key.
2. Restore of N keys (benches/jobs/restore_keys_job.py): a rolling Python reduce over N
   distinct keys is checkpointed (untimed), then the same job with nothing left to read
   is started from that checkpoint (`ferroflow run -s CHK`) and without it, in paired
   rounds. Nothing outside the engine reports when a restore ends, so the restore time
   is the restored run's wall time minus the unrestored run's, median over the rounds
   (it includes reading and checking the part file, decoding the values into Python
   objects, and dropping them at the end). Goal: <= 1 s. Checked once, untimed: the
   checkpoint holds N keys, and a restored job fed the first and last key again counts
   2 for each.
3. Bytewax 0.21.1 on the same word count and input, without recovery (the shared
   ../shared/bench/wordcount_bytewax.py, its default 10 s epochs) and with recovery
   (benches/wordcount_bytewax_recovery.py: SQLite snapshots every second), when its
   virtualenv exists (`bash ../shared/bench/setup_anchors.sh`); its cost ratio is printed
   next to ours, with its snapshot count and store size. If it cannot run, one line
   says why.

Every command runs under ../shared/bench/measure.py (wall time, peak RSS summed over the
process tree), in rounds (harness.measure_interleaved); Bytewax's two commands run after
the rounds, one after the other. Writes bench-data/checkpoint-results.json (or --json);
exits 1 if a run or a check failed or a goal was missed (--ignore-goals: only the
former, for tiny inputs). In a git worktree beside the main checkout, point
FERROFLOW_BENCH_DIR at the shared bench directory.
"""
import argparse
import json
import os
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile

from harness import BENCH, DATA, FERROFLOW, HERE, PY, anchor, compile_sources, measure_interleaved, paired_ratio
from wordcount import make_input

RESTORE_JOB = os.path.join(HERE, "jobs", "restore_keys_job.py")
#: Goals of issue 13.
MAX_COST = 0.05
MAX_RESTORE_S = 1.0

# The part file's framing (crates/engine/src/checkpoint/format.rs) and a keyed section's
# entries (checkpoint/state_io.rs), read only as far as counting entries needs.
PART_MAGIC, PART_END = b"FFCKPT\0\x01", b"FFCKEND\x01"


def _varint(buf, pos):
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def part_sections(path):
    """{plan node: section bytes} of a part file."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != PART_MAGIC or buf[-8:] != PART_END:
        raise ValueError(f"{path} is not a finished part file of format 1")
    (index_at,) = struct.unpack_from("<Q", buf, len(buf) - 16)
    (count,) = struct.unpack_from("<I", buf, index_at)
    sections = {}
    for i in range(count):
        node, offset, length, _crc = struct.unpack_from("<IQQI", buf, index_at + 4 + i * 24)
        sections[node] = buf[offset:offset + length]
    return sections


def keyed_entries(section):
    """How many keyed entries a section of keyed entries only (a rolling reduce's) holds."""
    pos = total = 0
    while True:
        (n,) = struct.unpack_from("<I", section, pos)
        pos += 4
        if n == 0:
            if pos != len(section):
                raise ValueError(f"{len(section) - pos} bytes after the keyed entries")
            return total
        for _ in range(n):
            for _field in ("key", "meta"):
                length, pos = _varint(section, pos)
                pos += length
            _values, pos = _varint(section, pos)
        _records, blob = struct.unpack_from("<QQ", section, pos)
        pos += 16 + blob
        total += n


def checkpoint_summary(storage):
    """The newest complete checkpoint under `storage` (one with its manifest: a job that
    ends while a checkpoint is being taken leaves it unfinished): {"id", "bytes" (every
    file of it), "keys" (entries of the reduce node's sections)}, or None if there is none."""
    ids = [int(n[4:]) for n in os.listdir(storage) if n.startswith("chk-") and n[4:].isdigit()
           and os.path.exists(os.path.join(storage, n, "_MANIFEST"))]
    if not ids:
        return None
    chk = os.path.join(storage, f"chk-{max(ids)}")
    with open(os.path.join(chk, "_MANIFEST"), encoding="utf-8") as f:
        plan = [line.split()[1:3] for line in f if line.startswith("plan ")]
    reduce_nodes = {int(node) for node, kind in plan if kind == "reduce"}
    files = [os.path.join(chk, n) for n in os.listdir(chk)]
    keys = sum(keyed_entries(section) for path in files if path.endswith(".part")
               for node, section in part_sections(path).items() if node in reduce_nodes)
    return {"id": max(ids), "dir": chk, "bytes": sum(os.path.getsize(p) for p in files), "keys": keys}


def bytewax_store_summary(db_dir):
    """{"snapshots": the last committed epoch (epochs count from 1 and each ends with a
    snapshot), "rows": snapshot rows kept (older epochs' are dropped once a newer one
    commits), "bytes"} of a Bytewax recovery directory."""
    out = {"snapshots": 0, "rows": 0, "bytes": 0}
    for name in os.listdir(db_dir):
        path = os.path.join(db_dir, name)
        out["bytes"] += os.path.getsize(path)
        if name.endswith(".sqlite3"):
            db = sqlite3.connect(path)
            try:
                out["snapshots"] += db.execute("SELECT COALESCE(MAX(commit_epoch), 0) FROM commits").fetchone()[0]
                out["rows"] += db.execute("SELECT COUNT(*) FROM snaps").fetchone()[0]
            finally:
                db.close()
    return out


def last_error(p):
    lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {p.returncode}"


def bytewax_recovery_why_not(bytewax, root):
    """None if Bytewax runs the recovery word count on a 10-line input, else why not."""
    tiny, _ = make_input("tiny")
    p = subprocess.run([bytewax, os.path.join(HERE, "wordcount_bytewax_recovery.py"), tiny, os.path.join(root, "probe")],
                       capture_output=True, text=True, check=False)
    return None if p.returncode == 0 else last_error(p)


def wordcount_part(a, root, bytewax):
    """Part 1 and 3: {label: result}, {"ferroflow": [checkpoint summaries], "bytewax": [...]}, notes."""
    path, words = (a.input, count_words(a.input)) if a.input else make_input(a.size)
    ff_root, bw_root = os.path.join(root, "ferroflow"), os.path.join(root, "bytewax")
    script = os.path.join(HERE, "wordcount_ferroflow.py")
    systems = [("ferroflow, no checkpoints", [PY, script, path], a.runs),
               (f"ferroflow, checkpoint every {a.interval_ms} ms",
                [PY, script, path, "--checkpoint-ms", str(a.interval_ms), "--checkpoint-root", ff_root], a.runs)]
    notes = {}
    if bytewax:
        why = bytewax_recovery_why_not(bytewax, os.path.join(root, "bytewax-probe"))
        if why is None:
            systems += [("bytewax 0.21.1, no recovery", [bytewax, os.path.join(BENCH, "wordcount_bytewax.py"), path],
                         a.peer_runs),
                        (f"bytewax 0.21.1, recovery: SQLite snapshot every {a.interval_ms} ms",
                         [bytewax, os.path.join(HERE, "wordcount_bytewax_recovery.py"), path, bw_root,
                          "--snapshot-s", str(a.interval_ms / 1000)], a.peer_runs)]
        else:
            notes["bytewax"] = f"Bytewax's recovery cannot run: {why}"
    else:
        notes["bytewax"] = ("Bytewax skipped: --no-peers" if a.no_peers else
                            "Bytewax skipped: no virtualenv (bash ../shared/bench/setup_anchors.sh)")
    results = measure_interleaved(systems, words)
    stores = {"ferroflow": [checkpoint_summary(os.path.join(ff_root, d)) for d in sorted(os.listdir(ff_root))]
              if os.path.isdir(ff_root) else [],
              "bytewax": [bytewax_store_summary(os.path.join(bw_root, d)) for d in sorted(os.listdir(bw_root))]
              if os.path.isdir(bw_root) else []}
    return path, words, systems, results, stores, notes


def count_words(path):
    with open(path, encoding="utf-8") as f:
        return sum(len(line.split()) for line in f)


def restore_part(a, root):
    """Part 2: (the checkpoint's summary, the check's verdict, {label: result}) or an error."""
    storage = os.path.join(root, "restore-source")
    run = [FERROFLOW, "run", RESTORE_JOB]
    p = subprocess.run(run + ["-", storage, "--keys", str(a.keys)], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return None, f"the job that makes the checkpoint failed: {last_error(p)}", {}
    chk = checkpoint_summary(storage)
    if chk is None or chk["keys"] != a.keys:
        return chk, f"the last checkpoint holds {chk and chk['keys']} keys, not {a.keys}", {}
    after = os.path.join(root, "restore-after")
    p = subprocess.run(run + ["-s", chk["dir"], "-", after, "--keys", "0", "--only", f"0,{a.keys - 1}"],
                       capture_output=True, text=True, check=False)
    want = [repr((f"k{i:07d}", 2)) for i in (0, a.keys - 1)]
    got = p.stdout.split("\n")[:-1]
    if p.returncode != 0 or got != want:
        return chk, f"MISMATCH: the restored job printed {got!r}, not {want!r} ({last_error(p)})", {}
    systems = [(f"restored from {a.keys:,} keys", run + ["-s", chk["dir"], "-", after, "--keys", "0"], a.restore_runs),
               ("not restored", run + ["-", after, "--keys", "0"], a.restore_runs)]
    return chk, "MATCH", {"systems": systems, "results": measure_interleaved(systems)}


def paired_difference(slow, fast):
    """Median of `slow`'s wall time minus `fast`'s over the rounds both ran."""
    pairs = [s - f for s, f in zip(slow["walls"], fast["walls"]) if s and f]
    return statistics.median(pairs) if pairs else slow["wall_s"] - fast["wall_s"]


def human_bytes(n):
    return f"{n:,} B ({n / 2**20:.1f} MiB)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="large", help="gen_words.py size: tiny, small (2M words), large (20M)")
    ap.add_argument("--input", help="a text file instead of --size's")
    ap.add_argument("--runs", type=int, default=5, help="rounds of ferroflow's word count")
    ap.add_argument("--interval-ms", type=int, default=1000, help="checkpoint (and Bytewax snapshot) interval")
    ap.add_argument("--keys", type=int, default=1_000_000, help="distinct keys of the restore job")
    ap.add_argument("--restore-runs", type=int, default=5, help="rounds of the restore")
    ap.add_argument("--peer-runs", type=int, default=1, help="runs of each Bytewax command")
    ap.add_argument("--no-peers", action="store_true", help="skip Bytewax")
    ap.add_argument("--json", default=os.path.join(DATA, "checkpoint-results.json"))
    ap.add_argument("--ignore-goals", action="store_true", help="exit 0 when only a goal is missed (tiny inputs)")
    a = ap.parse_args()
    if a.keys < 2:
        ap.error("--keys must be at least 2")
    compile_sources()
    root = tempfile.mkdtemp(prefix="ferroflow-ckbench-")
    try:
        bytewax = None if a.no_peers else anchor("bytewax")
        path, words, wc_systems, wc, stores, notes = wordcount_part(a, root, bytewax)
        chk, verdict, restore = restore_part(a, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    ok, goals_met, out = True, True, {"input": path, "words": words, "interval_ms": a.interval_ms}
    print(f"\n1. word count, {words:,} words ({os.path.basename(path)}), running counts into a discarding sink; "
          f"ratios are medians of round-by-round ratios\n")
    print(f"| {'system':58} | {'wall s':>7} | {'M words/s':>9} | {'peak RSS MB':>11} |")
    print(f"|{'-' * 60}|{'-' * 9}|{'-' * 11}|{'-' * 13}|")
    for label, _, _ in wc_systems:
        r = wc[label]
        if r is None:
            ok = False
            print(f"| {label:58} | failed")
        else:
            print(f"| {label:58} | {r['wall_s']:7.2f} | {words / r['wall_s'] / 1e6:9.3f} | {r['rss_mb']:11.0f} |")
    plain, ckpt = wc[wc_systems[0][0]], wc[wc_systems[1][0]]
    if plain and ckpt:
        ratio = paired_ratio(ckpt, plain)
        cost = 1 - 1 / ratio
        met = cost <= MAX_COST
        goals_met &= met
        out["ferroflow"] = {"wall_ratio": ratio, "cost": cost, "plain": plain, "checkpointed": ckpt}
        print(f"\nferroflow: checkpointed / plain wall {ratio:.3f}x, throughput cost {cost * 100:+.1f}% "
              f"(goal <= {MAX_COST * 100:.0f}%: {'met' if met else 'NOT MET, by %.1f points' % ((cost - MAX_COST) * 100)})")
    summaries = [s for s in stores["ferroflow"] if s]
    out["ferroflow_checkpoints"] = stores["ferroflow"]
    if summaries:
        last = summaries[-1]
        print(f"ferroflow checkpoints per run: {', '.join(str(s['id']) for s in stores['ferroflow'] if s)}; "
              f"the last one: {human_bytes(last['bytes'])}, {last['keys']:,} keys, "
              f"{last['bytes'] / max(last['keys'], 1):.1f} B a key")
    elif ckpt:
        print("ferroflow: no checkpoint was completed (the job ended before the first interval)")
    if len(wc_systems) > 2:
        bw_plain, bw_rec = wc[wc_systems[2][0]], wc[wc_systems[3][0]]
        if bw_plain and bw_rec:
            bw_ratio = paired_ratio(bw_rec, bw_plain)
            out["bytewax"] = {"wall_ratio": bw_ratio, "cost": 1 - 1 / bw_ratio, "plain": bw_plain, "recovery": bw_rec,
                              "stores": stores["bytewax"]}
            print(f"bytewax:   recovery / plain wall {bw_ratio:.3f}x, throughput cost {(1 - 1 / bw_ratio) * 100:+.1f}%"
                  + (f" ({a.peer_runs} run{'s' * (a.peer_runs > 1)} each)"))
            if stores["bytewax"]:
                s = stores["bytewax"][-1]
                print(f"bytewax snapshots (last run): {s['snapshots']}, store {human_bytes(s['bytes'])}, "
                      f"{s['rows']:,} snapshot rows kept, {s['bytes'] / max(s['rows'], 1):.1f} B a row")
            if plain and ckpt:
                print(f"ferroflow checkpointed / bytewax with recovery, throughput: {paired_ratio(bw_rec, ckpt):.1f}x")
        else:
            ok = False
    if "bytewax" in notes:
        print(notes["bytewax"])

    print(f"\n2. restore of {a.keys:,} keys (rolling Python reduce, `ferroflow run -s CHK`, nothing left to read)\n")
    out["restore"] = {"keys": a.keys, "checkpoint": chk, "check": verdict}
    if chk:
        print(f"checkpoint: {human_bytes(chk['bytes'])}, {chk['keys']:,} keys, {chk['bytes'] / max(chk['keys'], 1):.1f} B a key")
    print(f"restored job fed the first and last key again (untimed): {verdict}")
    if verdict != "MATCH":
        ok = False
    else:
        results = restore["results"]
        for label, _, _ in restore["systems"]:
            r = results[label]
            print(f"| {label:28} | " + (f"{r['wall_s']:7.3f} s | peak RSS {r['rss_mb']:5.0f} MB |" if r else "failed |"))
        restored, unrestored = (results[label] for label, _, _ in restore["systems"])
        if restored and unrestored:
            restore_s = paired_difference(restored, unrestored)
            met = restore_s <= MAX_RESTORE_S
            goals_met &= met
            out["restore"].update(restore_s=restore_s, restored=restored, unrestored=unrestored)
            print(f"restore time (restored wall - unrestored wall, median of {len(restored['walls'])} rounds): "
                  f"{restore_s:.3f} s (goal <= {MAX_RESTORE_S:g} s: "
                  f"{'met' if met else 'NOT MET, by %.3f s' % (restore_s - MAX_RESTORE_S)})")
        else:
            ok = False

    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    if not ok:
        print("\nfailed: a run or a check failed", file=sys.stderr)
        sys.exit(1)
    if not goals_met and not a.ignore_goals:
        print("\nfailed: a goal was missed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
