"""The test servers (tests/services/) end with the process that started them, even when
that process is killed: a pytest killed mid-run (a CI time-out, Ctrl-C twice) leaves no
broker, S3 or PostgreSQL server running."""

import os
import subprocess
import sys
import time

from services.kafka import _accepts

TESTS = os.path.dirname(os.path.abspath(__file__))

#: Stands in for pytest: starts moto's S3 server as the ``s3`` fixture does, says
#: where, and waits to be killed.
STARTER = f"""
import sys, time
sys.path.insert(0, {TESTS!r})
from services.s3 import S3Server
server = S3Server().start()
print(server.port, flush=True)
time.sleep(120)
"""


def test_a_server_dies_with_the_process_that_started_it_even_by_sigkill():
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(starter.stdout.readline())
        assert _accepts(port)
        starter.kill()
        starter.wait()
        deadline = time.monotonic() + 10
        while _accepts(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _accepts(port), f"the S3 server on port {port} outlived the process that started it"
    finally:
        starter.kill()
        starter.wait()
