"""A local S3-compatible server for the tests: moto's server (PyPI ``moto[server]``,
pinned in requirements-dev.txt), run as a subprocess on a free port of 127.0.0.1 (not
in-process: its threads would contend for this interpreter's GIL with the jobs under
test). Session fixture ``s3``: an :class:`S3Server` with ``endpoint``, credentials and
``bucket(name)``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Dict, Iterator, Optional

import pytest

from services import dying_with_us
from services.kafka import _accepts, _free_port

#: moto accepts any credentials; these are what the clients are given.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 30.0) -> "S3Server":
        self.process = subprocess.Popen(dying_with_us([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                                       "-p", str(self.port)]),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto's S3 server did not start on {self.endpoint}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def env(self) -> Dict[str, str]:
        """Environment variables that point S3 clients (object_store, tansu) here."""
        return dict(CREDENTIALS, AWS_ENDPOINT=self.endpoint, AWS_ENDPOINT_URL=self.endpoint, AWS_ALLOW_HTTP="true")

    def bucket(self, name: str) -> str:
        """Creates bucket ``name`` (once) and returns it."""
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                          region_name=CREDENTIALS["AWS_DEFAULT_REGION"])
        try:
            s3.create_bucket(Bucket=name)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        return name


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()
