"""A real PostgreSQL server for the tests (``postgres_dsn`` session fixture).

Runs Debian's PostgreSQL binaries (``./dev`` installs the ``postgresql`` package when
missing and it runs as root): ``initdb`` into a fresh directory, then ``postgres`` on a
free port of 127.0.0.1 with prepared transactions enabled (two-phase commit), as the
``postgres`` user when we are root (the server refuses to run as root). Stopped at the
end of the session. Without the binaries the fixture fails in one line: never skips.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Iterator, List

import pytest

from ferroflow._cluster import free_ports
from services import dying_with_us


def _bin_dir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): run ./dev build as root, "
                    "or apt-get install postgresql", pytrace=False)
    return os.path.dirname(found[-1])


def _as_server_user(cmd: List[str]) -> List[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _server(cmd: List[str]) -> List[str]:
    """The server's command, ended with the tests: a change of user clears the
    parent-death signal, so under runuser both runuser and the server get one."""
    return dying_with_us(["runuser", "-u", "postgres", "--", *dying_with_us(cmd)]) if os.geteuid() == 0 \
        else dying_with_us(cmd)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A DSN (``host=127.0.0.1 port=... user=postgres dbname=postgres``) of a running server."""
    bin_dir = _bin_dir()
    data = tempfile.mkdtemp(prefix="ferroflow-pg-")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    os.chmod(data, 0o700)
    init = subprocess.run(check=False, args=_as_server_user([f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "-A", "trust",
                                           "--no-sync", "-E", "UTF8"]), capture_output=True, text=True)
    if init.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        pytest.fail(f"initdb failed (exit {init.returncode}): {init.stderr.strip()[-500:]}", pytrace=False)
    port = free_ports(1)[0]
    log = open(os.path.join(data, "server.log"), "w")
    server = subprocess.Popen(_server([f"{bin_dir}/postgres", "-D", data, "-p", str(port), "-k", data,
                                       "-c", "max_prepared_transactions=20",
                                       "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(dsn, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    with open(os.path.join(data, "server.log")) as f:
                        tail = f.read()[-800:]
                    pytest.fail(f"PostgreSQL did not start on 127.0.0.1:{port}: {tail}", pytrace=False)
                time.sleep(0.1)
        yield dsn
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)  # fast shutdown
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
