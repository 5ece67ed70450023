#!/usr/bin/env python3
"""Record latency through socket source -> map -> socket sink, at a fixed input rate.

    .venv/bin/python benches/latency.py [--rate 50000] [--seconds 10] [--warmup 1]
                                        [--rates 10000,50000,100000] [--systems ferroflow,relay]
                                        [--parallelism 1] [--detail] [--json FILE]

This script opens two TCP servers on 127.0.0.1 (ports picked by the OS): a feeder that
sends "SEQ SEND_NS" lines at a fixed rate, paced by an absolute schedule in 1 ms
bursts, to whatever connects to it, and a collector that reads lines back and notes
when each arrived. Between the two runs either

  ferroflow  `ferroflow run benches/jobs/latency_job.py - 127.0.0.1 IN OUT`
             (socket_text_stream -> map(parse, count, re-serialize) -> write_to_socket)
  relay      a plain Python relay in a process of its own (one thread that reads lines
             from one socket and writes them to the other, TCP_NODELAY on its output):
             the transport alone.
  relay-nagle  the same relay with Nagle's algorithm left on (no TCP_NODELAY) on its
             output socket, as ferroflow's write_to_socket leaves it: a diagnostic,
             not in the default set.

Latency is collector receive time minus the send timestamp carried in the record
(time.perf_counter_ns in this process, so both ends use the same clock). The first
--warmup seconds of records are sent and checked but left out of the statistics.
Every record must come back exactly once; missing, duplicated or garbled records are
reported as errors (exit status 1). Prints one table: p50/p90/p99/p99.9/max in ms,
records sent and received, and the achieved input rate. The figures are printed, not
asserted; the target from the issue (p99 <= 5 ms at 50k records/s) is shown beside them.
"""
import argparse
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
JOB = os.path.join(HERE, "jobs", "latency_job.py")
PY = sys.executable
FERROFLOW = os.path.join(os.path.dirname(PY), "ferroflow")
HOST = "127.0.0.1"
TICK_NS = 1_000_000          # the feeder sends one burst per millisecond
TARGET_P99_MS = 5.0          # from the issue: p99 <= 5 ms at 50k records/s
clock = time.perf_counter_ns


class BenchError(Exception):
    pass


# -- collector ------------------------------------------------------------------------------

class Collector:
    """Accepts the sink's connections (one per ferroflow worker) and keeps every chunk it
    reads with the time it arrived. Lines are parsed after the run so that the reader
    threads do as little as possible while the clock matters."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.conns = []            # [(socket, [(recv_ns, bytes), ...], thread)]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.open_conns = 0
        self.thread = threading.Thread(target=self._accept, name="collector-accept", daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(0.5)
            chunks = []
            t = threading.Thread(target=self._read, args=(conn, chunks), name="collector-read", daemon=True)
            with self.lock:
                self.conns.append((conn, chunks, t))
                self.open_conns += 1
            t.start()

    def _read(self, conn, chunks):
        append = chunks.append
        buf = bytearray(1 << 20)
        try:
            while not self.stop.is_set():
                try:
                    n = conn.recv_into(buf)
                except socket.timeout:
                    continue
                t = clock()
                if not n:
                    break
                append((t, bytes(buf[:n])))
        except OSError:
            pass
        finally:
            with self.lock:
                self.open_conns -= 1

    def connections(self):
        with self.lock:
            return len(self.conns), self.open_conns

    def close(self):
        self.stop.set()
        try:
            self.listener.close()
        except OSError:
            pass
        self.thread.join(2)
        for conn, _, t in list(self.conns):
            t.join(2)
            try:
                conn.close()
            except OSError:
                pass


# -- feeder ---------------------------------------------------------------------------------

class Feed:
    """Sends records 0..total-1 at `rate` records/s. Record i is due at start + i/rate;
    every millisecond the records that are due go out in one send, stamped with the
    time just before it. Keeps the bursts [(first seq, stamp_ns)], the records sent so
    far and the largest lateness of a record behind its due time (ns; up to one tick
    is by design), so a run cut short can still be analysed."""

    def __init__(self, rate, total):
        self.rate, self.total = rate, total
        self.bursts = []
        self.late_max = 0
        self.sent = 0
        self.start = self.end = None

    def run(self, conn):
        rate, total, bursts = self.rate, self.total, self.bursts
        max_burst = max(1, rate // 100)   # when behind, catch up in pieces of 10 ms
        seq = 0
        start = self.start = clock()
        try:
            while seq < total:
                now = clock()
                due = min(total, (now - start) * rate // 1_000_000_000 + 1)
                if due > seq:
                    n = min(due - seq, max_burst)
                    stamp = clock()
                    data = "".join([f"{i} {stamp}\n" for i in range(seq, seq + n)]).encode()
                    conn.sendall(data)
                    bursts.append((seq, stamp))
                    self.late_max = max(self.late_max, stamp - (start + seq * 1_000_000_000 // rate))
                    seq += n
                    self.sent = seq
                    if seq < due:
                        continue
                # sleep to the next tick on the grid at or after the next record's due time
                next_due = start + seq * 1_000_000_000 // rate
                wake = start + -(-(next_due - start) // TICK_NS) * TICK_NS
                pause = wake - clock()
                if pause > 0:
                    time.sleep(pause / 1e9)
        finally:
            self.end = clock()


# -- one run --------------------------------------------------------------------------------

def stop_process(proc):
    """Ends the child's process group: SIGTERM, then SIGKILL after 3 s."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 3)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass


def run_once(system, rate, seconds, warmup, parallelism, timeout):
    warm_n = int(round(rate * warmup))
    total = warm_n + int(round(rate * seconds))
    feeder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    feeder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    feeder.bind((HOST, 0))
    feeder.listen(1)
    feeder.settimeout(0.2)
    port_in = feeder.getsockname()[1]
    collector = Collector()
    if system == "ferroflow":
        cmd = [FERROFLOW, "run", JOB, "-", HOST, str(port_in), str(collector.port), "--parallelism", str(parallelism)]
        want_conns = parallelism
    else:
        cmd = [PY, os.path.abspath(__file__), "--relay", HOST, str(port_in), str(collector.port),
               "nagle" if system == "relay-nagle" else "nodelay"]
        want_conns = 1
    log = tempfile.TemporaryFile()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"-- {system} at {rate} records/s for {warmup:g}+{seconds:g} s: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    conn = None
    feed = Feed(rate, total)
    result = {"system": system, "rate": rate, "seconds": seconds, "sent": 0, "received": 0, "errors": []}
    try:
        # Wait (bounded) for the source to connect to the feeder and the sink(s) to the collector.
        deadline = time.monotonic() + timeout
        while conn is None:
            if proc.poll() is not None:
                raise BenchError(f"{system} exited with status {proc.returncode} before connecting")
            if time.monotonic() > deadline:
                raise BenchError(f"{system} did not connect to the feeder within {timeout:g} s")
            try:
                conn, _ = feeder.accept()
            except socket.timeout:
                pass
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(timeout)  # a send blocked this long means the reader is stuck
        while collector.connections()[0] < want_conns:
            if proc.poll() is not None:
                raise BenchError(f"{system} exited with status {proc.returncode} before its sink connected")
            if time.monotonic() > deadline:
                raise BenchError(f"{system}'s sink did not connect to the collector within {timeout:g} s")
            time.sleep(0.01)

        try:
            feed.run(conn)
        except OSError as e:  # the reader went away or stopped reading for `timeout` s
            result["errors"].append(f"feeding {system} failed after {feed.sent} records: {e}")
        result["sent"] = feed.sent
        conn.close()  # the end of the stream: ferroflow's socket source finishes, the job ends
        conn = None

        # Wait (bounded) for the sink connection(s) to close and the process to exit.
        deadline = time.monotonic() + timeout
        while collector.connections()[1] > 0 or proc.poll() is None:
            if time.monotonic() > deadline:
                result["errors"].append(f"{system} did not finish within {timeout:g} s of the end of the input")
                break
            time.sleep(0.01)
        stop_process(proc)
        if proc.returncode not in (0, None):
            result["errors"].append(f"{system} exited with status {proc.returncode}")
    except BaseException:
        stop_process(proc)
        raise
    finally:
        if conn is not None:
            conn.close()
        feeder.close()
        collector.close()
        stop_process(proc)
        log.seek(0)
        output = log.read().decode(errors="replace").strip()
        log.close()
        if output and (result["errors"] or proc.returncode or sys.exc_info()[0] is not None):
            print(f"-- {system} output:\n{output[-3000:]}", file=sys.stderr)

    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["child_cpu_s"] = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    analyse(result, collector, feed, warm_n)
    return result


def analyse(result, collector, feed, warm_n):
    total, bursts, feed_start = feed.total, feed.bursts, feed.start
    seen = bytearray(total)
    lat = []            # ns, measured records only
    per_second = {}     # second of the run (by send time) -> [latency ns]
    dup = bad = 0
    chunks_with_data = 0
    last_recv = 0
    for _, chunks, _ in collector.conns:
        rest = b""
        for t, data in chunks:
            chunks_with_data += 1
            last_recv = max(last_recv, t)
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            for line in lines:
                parts = line.split(b" ")
                try:
                    seq, sent = int(parts[0]), int(parts[1])
                    if len(parts) > 2:
                        int(parts[2])
                except (ValueError, IndexError):
                    bad += 1
                    continue
                if not 0 <= seq < total:
                    bad += 1
                    continue
                if seen[seq]:
                    dup += 1
                    continue
                seen[seq] = 1
                if seq >= warm_n:
                    d = t - sent
                    lat.append(d)
                    per_second.setdefault((sent - feed_start) // 1_000_000_000, []).append(d)
        if rest:
            bad += 1
    received = sum(seen)
    result["received"] = received
    missing = feed.sent - sum(seen[:feed.sent])
    if missing:
        first = seen.find(0)
        result["errors"].append(f"{missing} of {feed.sent} records sent did not arrive (first missing: #{first})")
    if received > feed.sent:
        result["errors"].append(f"{received - feed.sent} records arrived that were never sent")
    if dup:
        result["errors"].append(f"{dup} duplicate records")
    if bad:
        result["errors"].append(f"{bad} garbled lines")
    measured = [b for b in bursts if b[0] >= warm_n]
    if len(measured) >= 2:
        result["achieved_rate"] = (measured[-1][0] - measured[0][0]) * 1e9 / (measured[-1][1] - measured[0][1])
    result["feeder_late_max_ms"] = feed.late_max / 1e6
    result["sends"] = len(bursts)
    result["recv_chunks"] = chunks_with_data
    result["drain_ms"] = (last_recv - feed.end) / 1e6 if last_recv and feed.end else None
    if lat:
        lat.sort()
        result["measured"] = len(lat)
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
            result[name] = percentile(lat, p) / 1e6
        result["max"] = lat[-1] / 1e6
        result["over_target"] = sum(1 for x in lat if x > TARGET_P99_MS * 1e6)
        rows = []
        for sec in sorted(per_second):
            v = sorted(per_second[sec])
            rows.append({"second": sec, "n": len(v), "p50": percentile(v, 50) / 1e6,
                         "p99": percentile(v, 99) / 1e6, "max": v[-1] / 1e6})
        result["per_second"] = rows


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


# -- the baseline relay (runs as a child process) --------------------------------------------

def relay(host, port_in, port_out, nodelay=True):
    """Reads lines from host:port_in and writes them, whole lines only, to host:port_out,
    on one thread, until the input closes."""
    src = socket.create_connection((host, port_in), timeout=10)
    dst = socket.create_connection((host, port_out), timeout=10)
    src.settimeout(None)
    dst.settimeout(None)
    if nodelay:
        dst.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pump():
        rest = b""
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut:
                dst.sendall(data[:cut])
            rest = data[cut:]
        if rest:
            dst.sendall(rest + b"\n")
        dst.close()
        src.close()

    t = threading.Thread(target=pump, name="relay")
    t.start()
    t.join()


# -- main -----------------------------------------------------------------------------------

def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def print_table(results, detail):
    print(f"\nlatency, socket source -> map -> socket sink (ms; collector receive time - send stamp;"
          f" target p99 <= {TARGET_P99_MS:g} ms at 50k/s)\n")
    head = (f"| {'system':11} | {'target/s':>8} | {'achieved/s':>10} | {'sent':>8} | {'received':>8} | {'p50':>6} | "
            f"{'p90':>6} | {'p99':>6} | {'p99.9':>6} | {'max':>7} | {'>5ms':>6} | {'status':7} |")
    print(head)
    print("|" + "|".join("-" * (len(c) + 0) for c in head.split("|")[1:-1]) + "|")
    for r in results:
        over = r.get("over_target")
        over_s = f"{100 * over / r['measured']:.2f}%" if over is not None and r.get("measured") else "-"
        status = "ERROR" if r["errors"] else "ok"
        print(f"| {r['system']:11} | {r['rate']:8d} | {fmt(r.get('achieved_rate'), '.0f'):>10} | {r['sent']:8d} | "
              f"{r['received']:8d} | {fmt(r.get('p50')):>6} | {fmt(r.get('p90')):>6} | {fmt(r.get('p99')):>6} | "
              f"{fmt(r.get('p99.9')):>6} | {fmt(r.get('max')):>7} | {over_s:>6} | {status:7} |")
    print()
    for r in results:
        print(f"{r['system']} @ {r['rate']}/s: feeder sends {r.get('sends', 0)} (max {fmt(r.get('feeder_late_max_ms'))} ms"
              f" behind schedule), collector reads {r.get('recv_chunks', 0)},"
              f" last record {fmt(r.get('drain_ms'))} ms after the last send;"
              f" {r['system']} used {fmt(r.get('child_cpu_s'))} s CPU")
        for e in r["errors"]:
            print(f"  ERROR: {e}")
        if detail and r.get("per_second"):
            for row in r["per_second"]:
                print(f"    second {row['second']:3d}: n={row['n']:7d} p50={row['p50']:7.2f}"
                      f" p99={row['p99']:7.2f} max={row['max']:7.2f}")


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--relay":
        relay(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "nodelay")
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=50_000, help="records/s (default 50000)")
    ap.add_argument("--rates", help="comma-separated rates to run one after the other (overrides --rate)")
    ap.add_argument("--seconds", type=float, default=10, help="measured seconds per run (default 10)")
    ap.add_argument("--warmup", type=float, default=1, help="seconds sent first and left out of the statistics")
    ap.add_argument("--systems", default="ferroflow,relay",
                    help="ferroflow, relay (the plain-Python baseline), relay-nagle (the relay without TCP_NODELAY)")
    ap.add_argument("--parallelism", type=int, default=1, help="ferroflow workers (default 1)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds to wait for connections and for the end")
    ap.add_argument("--detail", action="store_true", help="also print p50/p99/max for every second of each run")
    ap.add_argument("--json", help="write the results to this file")
    a = ap.parse_args()
    rates = [int(x) for x in a.rates.split(",")] if a.rates else [a.rate]
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    for s in systems:
        if s not in ("ferroflow", "relay", "relay-nagle"):
            ap.error(f"unknown system {s!r}")
    if any(r <= 0 for r in rates) or a.seconds <= 0 or a.warmup < 0 or a.parallelism < 1:
        ap.error("rates and seconds must be positive, parallelism at least 1")
    # The feeder and the collector's readers share this interpreter: keep GIL hand-overs short.
    sys.setswitchinterval(0.0005)
    results = []
    for rate in rates:
        for system in systems:
            try:
                results.append(run_once(system, rate, a.seconds, a.warmup, a.parallelism, a.timeout))
            except BenchError as e:
                results.append({"system": system, "rate": rate, "sent": 0, "received": 0, "errors": [str(e)]})
            except KeyboardInterrupt:
                print("latency: interrupted", file=sys.stderr)
                return 130
    print_table(results, a.detail)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
