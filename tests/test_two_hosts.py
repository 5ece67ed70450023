"""Two "hosts": two network namespaces joined by a veth pair, one ferroflow process in
each, running the word-count example with --addresses/--process-id and a shared
secret. Together they must count exactly what one process counts.

The addresses (10.213.7.1 and 10.213.7.2) exist only inside the two namespaces, which
the test creates and always deletes. Skipped, with the reason, only where namespaces
(or the veth pair) cannot be created: no iproute2, no privileges, no veth support.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from conftest import printed_records

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORD_COUNT = ROOT / "examples" / "word_count.py"
HAMLET = ROOT / "examples" / "data" / "hamlet.txt"
BIN = Path(sys.executable).parent
FERROFLOW = str(BIN / "ferroflow") if (BIN / "ferroflow").exists() else str(ROOT / ".venv" / "bin" / "ferroflow")

HOSTS = ("10.213.7.1", "10.213.7.2")
PORT = 47017
SECRET = "9b8a7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f3021"


def ip(*args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def two_namespaces():
    """(namespace 1, namespace 2, veth 1, veth 2), 10.213.7.1/24 and 10.213.7.2/24 on
    the veth ends, lo and the veths up. Deleted afterwards, whatever happened."""
    if shutil.which("ip") is None:
        pytest.skip("two hosts need network namespaces: iproute2's `ip` command is not installed")
    tag = uuid.uuid4().hex[:6]
    namespaces = (f"fftest-{tag}-a", f"fftest-{tag}-b")
    veths = (f"ffv{tag}a", f"ffv{tag}b")  # at most 15 characters
    created: List[str] = []
    try:
        for ns in namespaces:
            r = ip("netns", "add", ns)
            if r.returncode != 0:
                pytest.skip(f"cannot create a network namespace (`ip netns add` failed: {r.stderr.strip()})")
            created.append(ns)
        # Both ends are created straight inside the namespaces: nothing appears on the host.
        r = ip("link", "add", veths[0], "netns", namespaces[0], "type", "veth",
               "peer", "name", veths[1], "netns", namespaces[1])
        if r.returncode != 0:
            pytest.skip(f"cannot create a veth pair between namespaces: {r.stderr.strip()}")
        for ns, veth, host in zip(namespaces, veths, HOSTS):
            for args in (("addr", "add", f"{host}/24", "dev", veth), ("link", "set", "lo", "up"),
                         ("link", "set", veth, "up")):
                r = ip("-n", ns, *args)
                assert r.returncode == 0, f"ip -n {ns} {' '.join(args)}: {r.stderr}"
        yield namespaces, veths
    finally:
        failures = []
        for ns in created:
            r = ip("netns", "del", ns)  # also destroys the veth pair
            if r.returncode != 0:
                failures.append(f"{ns}: {r.stderr.strip()}")
        left = ip("netns", "list").stdout
        assert not failures and not any(ns in left for ns in created), \
            f"namespaces not deleted: {failures} / {left}"


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FERROFLOW_") and k not in ("RUST_BACKTRACE", "PYTHONUNBUFFERED")}
    env.update(extra)
    return env


def word_totals(stdout: str, workers: int) -> Tuple[Counter, set]:
    """Sum of the counts per word (a run may cut a word's count into several
    processing-time windows), and the set of ``k> `` prefixes."""
    records, prefixes = printed_records(stdout, workers)
    totals: Counter = Counter()
    for count, word in records:
        totals[word] += count
    return totals, prefixes


def tx_bytes(ns: str, veth: str) -> int:
    r = ip("-j", "-s", "-n", ns, "link", "show", "dev", veth)
    assert r.returncode == 0, r.stderr
    return int(json.loads(r.stdout)[0]["stats64"]["tx"]["bytes"])


def test_word_count_on_two_hosts(two_namespaces):
    namespaces, veths = two_namespaces
    single = subprocess.run([FERROFLOW, "run", str(WORD_COUNT)], capture_output=True, text=True, timeout=30,
                            env=clean_env(), cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert single.returncode == 0, single.stderr
    expected, _ = word_totals(single.stdout, 1)
    with open(HAMLET, encoding="utf-8") as f:
        assert expected == Counter(w for line in f for w in line.lower().split())

    sent_before = [tx_bytes(ns, v) for ns, v in zip(namespaces, veths)]
    addresses = ",".join(f"{h}:{PORT}" for h in HOSTS)
    env = clean_env(FERROFLOW_SECRET=SECRET)
    procs = []
    try:
        for i, ns in enumerate(namespaces):
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, FERROFLOW, "run", str(WORD_COUNT), "--addresses", addresses,
                 "--process-id", str(i), "--connect-timeout", "15"],
                cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, start_new_session=True))
        outputs = []
        deadline = time.monotonic() + 40
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pytest.fail("a process of the two-host run did not finish within 40 s")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate(timeout=10)

    union: Counter = Counter()
    for i, (p, (out, err)) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"process {i}: rc={p.returncode}\nstdout:\n{out}\nstderr:\n{err}"
        assert err == "", f"process {i}: {err}"
        totals, prefixes = word_totals(out, 2)
        assert prefixes == {i + 1}, f"process {i} printed prefixes {prefixes}"  # 1> on host 1, 2> on host 2
        union += totals
    assert union == expected
    # The records really crossed the veth pair, both ways.
    sent_after = [tx_bytes(ns, v) for ns, v in zip(namespaces, veths)]
    assert all(after > before for before, after in zip(sent_before, sent_after)), (sent_before, sent_after)
