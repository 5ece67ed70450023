"""Running one job on several processes: the settings each process runs with, and
the supervisor behind ``ferroflow run -p N``.

Every process runs the same script (SPMD, as timely expects); process ``i`` listens
on ``addresses[i]``. The engine connects them itself, authenticating every peer with
an HMAC over a shared secret before any record flows.
"""

from __future__ import annotations

import os
import sys
import time

# Every execute() imports this module, for settings_from_env() and the ENV_ names; a
# single-process run needs nothing else from it, so the modules only multi-process
# runs use (hashlib, json, signal, socket, subprocess, tempfile, threading) are imported
# in the functions that use them.

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    import subprocess
    from typing import IO, Any, List, Optional, Sequence

#: Environment variables a process of a cluster run reads (set by the supervisor, or
#: by the user for ``--addresses`` runs through the command line).
ENV_PROCESS = "FERROFLOW_PROCESS_ID"
ENV_ADDRESSES = "FERROFLOW_ADDRESSES"
ENV_SECRET = "FERROFLOW_SECRET"
ENV_SECRET_FILE = "FERROFLOW_SECRET_FILE"
ENV_THREADS = "FERROFLOW_THREADS"
ENV_REPORT = "FERROFLOW_REPORT"
ENV_TIMEOUT = "FERROFLOW_CONNECT_TIMEOUT"
#: Set by the supervisor: its pid, so that a process it started can tell whether it
#: still lives (see die_with_launcher).
ENV_LAUNCHER = "FERROFLOW_LAUNCHER_PID"
ENV_HEARTBEAT = "FERROFLOW_HEARTBEAT_TIMEOUT"
#: The checkpoint or savepoint directory a job starts from (``ferroflow run
#: --from-checkpoint`` / ``-s``, or the supervisor's restart).
ENV_RESTORE = "FERROFLOW_RESTORE_FROM"
#: Set by the supervisor on a restart: the attempt number (``RuntimeContext.get_attempt_number``).
ENV_ATTEMPT = "FERROFLOW_ATTEMPT"
#: Set by the supervisor: where process 0 leaves the job's restart strategy for it.
ENV_RESTART_INFO = "FERROFLOW_RESTART_INFO"

#: Longest time-out accepted, in seconds (a day): longer is a typo, not a wait.
MAX_TIMEOUT_S = 86400.0


# A plain class rather than a @dataclass: dataclasses imports inspect, which would cost
# every single-process run, where this class is defined but never used.
class ClusterSettings:
    """Where this process sits in a multi-process run."""

    def __init__(self, process: int, addresses: List[str], secret: bytes, threads: int = 1,
                 connect_timeout_s: float = 30.0, heartbeat_timeout_s: float = 30.0) -> None:
        self.process = process
        self.addresses = addresses
        self.secret = secret
        self.threads = threads
        self.connect_timeout_s = connect_timeout_s
        #: A process that sends nothing (not even a heartbeat) this long fails the job.
        self.heartbeat_timeout_s = heartbeat_timeout_s

    @property
    def processes(self) -> int:
        return len(self.addresses)

    @property
    def workers(self) -> int:
        return self.processes * self.threads


class ClusterConfigError(Exception):
    """The cluster settings are incomplete or inconsistent."""


def settings_from_env(environ=os.environ) -> Optional[ClusterSettings]:
    """The cluster settings from the environment, or None for a single-process run."""
    addresses = environ.get(ENV_ADDRESSES)
    if not addresses:
        return None
    addrs = [a.strip() for a in addresses.split(",") if a.strip()]
    if ENV_PROCESS not in environ:
        raise ClusterConfigError(f"{ENV_ADDRESSES} is set but {ENV_PROCESS} is not: which process is this?")
    try:
        process = int(environ[ENV_PROCESS])
    except ValueError:
        raise ClusterConfigError(f"{ENV_PROCESS} must be an integer, got {environ[ENV_PROCESS]!r}") from None
    if not 0 <= process < len(addrs):
        raise ClusterConfigError(f"process id {process} is out of range: there are {len(addrs)} addresses")
    try:
        threads = int(environ.get(ENV_THREADS) or 1)
    except ValueError:
        raise ClusterConfigError(f"{ENV_THREADS} must be a whole number, got {environ[ENV_THREADS]!r}") from None
    seconds = {}
    for name in (ENV_TIMEOUT, ENV_HEARTBEAT):
        try:
            seconds[name] = parse_timeout(environ.get(name) or "30")
        except ValueError as e:
            raise ClusterConfigError(f"{name} {e}") from None
    return ClusterSettings(process, addrs, read_secret(environ), max(1, threads), seconds[ENV_TIMEOUT],
                           seconds[ENV_HEARTBEAT])


def parse_timeout(text: str) -> float:
    """A time-out in seconds, from ``--connect-timeout``, ``--heartbeat-timeout`` or their
    variables: a number above 0 and at most a day (so not inf or nan). ValueError says
    what is wrong, to follow the option's name."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"takes seconds, got {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:  # also false for nan
        raise ValueError(f"takes seconds above 0 and at most {MAX_TIMEOUT_S:g}, got {text!r}")
    return value


def die_with_launcher(environ=os.environ) -> None:
    """In a process started by ``ferroflow run -p``: asks Linux to SIGKILL this process
    when the launcher dies (PR_SET_PDEATHSIG), so that ``kill -9`` of the launcher, or
    its crash, leaves no worker running the job on its own. Done here, after exec,
    rather than between fork and exec (subprocess's preexec_fn is unsafe while the
    launcher's output threads run); a launcher that died before this exits us now."""
    launcher = environ.get(ENV_LAUNCHER)
    if not launcher:
        return
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if str(os.getppid()) != launcher:
        os._exit(1)


def read_secret(environ=os.environ) -> bytes:
    """The shared secret: FERROFLOW_SECRET (hex, or any text), or the file named by
    FERROFLOW_SECRET_FILE. The engine decodes both by one rule (an even number of hex
    digits is hex, anything else raw bytes), refusing short or guessable secrets and a
    multi-host run without one."""
    from . import _engine

    try:
        return _engine.resolve_secret(environ.get(ENV_SECRET), environ.get(ENV_SECRET_FILE))
    except ValueError as e:
        raise ClusterConfigError(str(e)) from None


def plan_fingerprint(nodes) -> int:
    """A hash of the plan's shape, identical in every process running the same script,
    so that processes running different jobs refuse each other."""
    import hashlib

    h = hashlib.sha256()
    for n in nodes:
        h.update(f"{n.api}|{n.label}|{n.inputs}\n".encode())
        h.update(n.kind.fingerprint() if hasattr(n.kind, "fingerprint") else b"")  # a connector's parts
    return int.from_bytes(h.digest()[:8], "little")


def attempt_number(environ=os.environ) -> int:
    """The attempt this process runs (0 unless the supervisor restarted the job)."""
    try:
        return max(0, int(environ.get(ENV_ATTEMPT) or 0))
    except ValueError:
        return 0


def note_start_point(settings: Any) -> None:
    """Remembers the newest complete checkpoint in the storage directory as the job
    starts: an earlier run's, which a restart must not pick up as this run's."""
    settings.baseline = _latest(settings.dir)


def _latest(root: str, warn: bool = False) -> Optional[str]:
    from . import _engine

    try:
        found, warnings = _engine.checkpoint_find_latest(root)
    except ValueError as e:
        print(f"ferroflow: warning: cannot read the checkpoint storage: {e}", file=sys.stderr)
        return None
    if warn:
        for w in warnings:
            print(f"ferroflow: warning: {w}", file=sys.stderr)
    return None if found is None else os.fspath(found)


def restore_point(settings: Any, initial: Optional[str] = None) -> Optional[str]:
    """Where a restart starts from: the latest completed checkpoint this run wrote under
    the storage directory, else where the run started (its ``--from-checkpoint``, or
    nothing)."""
    latest = _latest(settings.dir, warn=True)
    if latest is not None and latest != settings.baseline:
        return latest
    return initial if initial is not None else os.environ.get(ENV_RESTORE) or None


def announce_restarts(strategy: Any, settings: Any) -> None:
    """In process 0 of a ``-p`` run: leaves the job's restart strategy and storage for
    the supervisor, which restarts every process when one fails (written before the
    job runs, so a process killed outright still gets restarted)."""
    path = os.environ.get(ENV_RESTART_INFO)
    if not path or os.environ.get(ENV_PROCESS, "0") != "0":
        return
    import pickle

    info = {"strategy": strategy, "dir": None if settings is None else settings.dir,
            "baseline": None if settings is None else settings.baseline,
            "restore": os.environ.get(ENV_RESTORE) or None}
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(info, f)
    os.replace(tmp, path)


def free_ports(n: int) -> List[int]:
    """n ports on 127.0.0.1 that were free a moment ago."""
    import socket

    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def write_report(error: BaseException) -> bool:
    """In a supervised process: hands the failure to the supervisor (which reports it
    once for the whole job) instead of printing it. False if not supervised."""
    path = os.environ.get(ENV_REPORT)
    if not path:
        return False
    import json

    from ._errors import JobExecutionException, format_user_exception

    if isinstance(error, JobExecutionException):
        report = {"text": str(error), "kind": error.kind, "operator": error.operator, "at_start": error.at_start}
    else:
        report = {"text": format_user_exception(error) + f"\n{type(error).__name__}: {error}", "kind": "script"}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f)
    return True


#: ``Supervisor._run_once``'s answer for a run to restart.
_RESTART = -1

#: Seconds the other processes get to stop by themselves after one failed.
GRACE_S = 2.0

# How important a failure is, to pick the one to report: the cause, not its echoes.
_RANK = {"udf": 0, "source": 0, "sink": 0, "plan": 0, "script": 0, "internal": 1, "system": 2, "cancelled": 3}


class Supervisor:
    """Starts the processes of a ``-p N`` run, forwards their output line by line,
    stops them all when one fails, and reports the failure once."""

    def __init__(self, script: str, script_args: Sequence[str], extra: Sequence[str], processes: int,
                 threads: int) -> None:
        import threading

        self.script = script
        self.script_args = list(script_args)
        self.extra = list(extra)
        self.processes = processes
        self.threads = threads
        self.children: List[subprocess.Popen] = []
        self.lock = threading.Lock()

    def _forward(self, stream: IO[bytes], out: IO[bytes]) -> None:
        import signal

        # Whole lines, so the output of two processes never interleaves mid-line.
        reader_gone = False
        for line in iter(stream.readline, b""):
            if reader_gone:
                continue  # keep draining, so that no process blocks on a full pipe while it stops
            with self.lock:
                try:
                    out.write(line)
                    out.flush()
                except BrokenPipeError:
                    reader_gone = self._broken_pipe = True
                    self._stop_all(signal.SIGTERM)
        stream.close()

    def run(self) -> int:
        """Runs the job's processes; when one fails and the job's restart strategy (left
        by process 0, see ``announce_restarts``) allows, stops them all and starts them
        all again, from the latest checkpoint this run completed."""
        import shutil
        import tempfile

        tmp = tempfile.mkdtemp(prefix="ferroflow-")
        info_path = os.path.join(tmp, "restart.pickle")
        restarts = None
        attempt = 0
        restore = os.environ.get(ENV_RESTORE) or None
        try:
            while True:
                extra_env = {ENV_RESTART_INFO: info_path, ENV_ATTEMPT: str(attempt)}
                if restore:
                    extra_env[ENV_RESTORE] = restore
                code = self._run_once(tmp, extra_env)
                if code != _RESTART:
                    return code
                info = self._restart_info(info_path)
                if restarts is None:
                    from .restart_strategy import Restarts

                    restarts = Restarts(info["strategy"])
                delay = restarts.next_delay(self.cause)
                if delay is None:
                    print(f"ferroflow: {self.report_line}", file=sys.stderr)
                    return 1
                time.sleep(delay / 1000)
                attempt += 1
                if info.get("dir"):
                    latest = _latest(info["dir"], warn=True)
                    restore = latest if latest is not None and latest != info.get("baseline") else info.get("restore")
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM while waiting to restart
            from ._errors import Terminated

            terminated = isinstance(e, Terminated)
            print(f"ferroflow: {'terminated (SIGTERM)' if terminated else 'interrupted'}", file=sys.stderr)
            return 143 if terminated else 130
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _restart_info(path: str) -> Any:
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)

    def _run_once(self, tmp: str, extra_env: dict) -> int:
        """One run of every process: its exit status, or ``_RESTART`` when it failed in
        a way the job's restart strategy may cure (``self.cause`` and
        ``self.report_line`` then say how it failed)."""
        import signal
        import subprocess
        import threading

        from ._errors import Terminated, quiet_broken_pipe

        self._broken_pipe = False
        self.first_failure = None
        self.children = []
        self.stopped: set = set()
        ports = free_ports(self.processes)
        addresses = ",".join(f"127.0.0.1:{p}" for p in ports)
        secret = os.urandom(32).hex()
        reports = [os.path.join(tmp, f"report-{i}.json") for i in range(self.processes)]
        cmd = [sys.executable, "-m", "ferroflow", "run", self.script, *self.extra, "-", *self.script_args]
        threads = []
        terminated = False

        def forward(signum: int, frame: object) -> None:
            # Savepoints are process 0's to take (its worker 0 coordinates checkpoints).
            if self.children and self.children[0].poll() is None:
                self.children[0].send_signal(signum)

        signal.signal(signal.SIGUSR1, forward)
        signal.signal(signal.SIGUSR2, forward)
        try:
            try:
                for i in range(self.processes):
                    env = dict(os.environ)
                    env.update(extra_env)
                    env.update({ENV_ADDRESSES: addresses, ENV_PROCESS: str(i), ENV_SECRET: secret,
                                ENV_THREADS: str(self.threads), ENV_REPORT: reports[i],
                                ENV_LAUNCHER: str(os.getpid())})
                    env.pop(ENV_SECRET_FILE, None)
                    # Its own process group: signals to the job reach whatever the
                    # process started too, and a terminal's Ctrl-C reaches only us (we
                    # pass it on once). The process also dies with us (die_with_launcher).
                    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
                    self.children.append(child)
                    for stream, out in ((child.stdout, sys.stdout.buffer), (child.stderr, sys.stderr.buffer)):
                        t = threading.Thread(target=self._forward, args=(stream, out), daemon=True)
                        t.start()
                        threads.append(t)
                failed_at = None
                while True:
                    codes = [c.poll() for c in self.children]
                    if all(code is not None for code in codes):
                        break
                    if failed_at is None and any(code not in (None, 0) for code in codes):
                        # One process failed. The others notice (their peer closed its
                        # connections) and stop by themselves, the one with the cause
                        # writing its report; only then are stragglers signalled.
                        failed_at = time.monotonic()
                        self.first_failure = next(
                            (i, code) for i, code in enumerate(codes) if code not in (None, 0))
                    elif failed_at is not None and time.monotonic() - failed_at > GRACE_S + 2:
                        self._stop_all(signal.SIGKILL)
                    elif failed_at is not None and time.monotonic() - failed_at > GRACE_S:
                        self._stop_all(signal.SIGTERM)
                    time.sleep(0.02)
            except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated)
                terminated = isinstance(e, Terminated)
                # Ignore a second signal while we stop: the children must not be left.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                self._stop_all(signal.SIGTERM if terminated else signal.SIGINT)
                deadline = time.monotonic() + 0.8
                while time.monotonic() < deadline and any(c.poll() is None for c in self.children):
                    time.sleep(0.02)
                self._stop_all(signal.SIGKILL)
                for t in threads:
                    t.join(timeout=2)
                for c in self.children:
                    c.wait()
                if self._broken_pipe:
                    quiet_broken_pipe()
                print(f"ferroflow: {'terminated (SIGTERM)' if terminated else 'interrupted'}", file=sys.stderr)
                return 143 if terminated else 130
            for t in threads:
                t.join(timeout=2)
            exit_codes = [c.wait() for c in self.children]
            if self._broken_pipe:
                quiet_broken_pipe()
            if all(code == 0 for code in exit_codes):
                return 0
            self.report_line, kind = self._failure(exit_codes, reports)
            if kind not in ("cancelled", "plan", "script", "at_start") and os.path.exists(extra_env[ENV_RESTART_INFO]):
                from .restart_strategy import cause_line

                self.cause = cause_line(self.report_line)
                return _RESTART
            print(f"ferroflow: {self.report_line}", file=sys.stderr)
            return 1
        finally:
            for c in self.children:
                if c.poll() is None:
                    self._signal(c, signal.SIGKILL)
                    c.wait()
            for r in reports:
                try:
                    os.unlink(r)
                except OSError:
                    pass

    def _stop_all(self, sig: int) -> None:
        for i, c in enumerate(self.children):
            if c.poll() is None:
                # Stopped by us: its end is not the cause of the failure.
                self.stopped.add(i)
                self._signal(c, sig)

    @staticmethod
    def _signal(child: subprocess.Popen, sig: int) -> None:
        """Signals the child's process group: the child and whatever it started. Only
        while the child is not reaped, so its id (the group's) cannot have been reused."""
        try:
            os.killpg(child.pid, sig)
        except OSError:
            try:
                child.send_signal(sig)
            except OSError:
                pass

    def _failure(self, codes: List[int], reports: List[str]) -> tuple:
        """How the run failed, to report once: ``(line, kind)``, the kind of the report
        it comes from (``"killed"`` for a process ended by a signal without one)."""
        import json
        import signal

        # A process stopped by SIGTERM or SIGINT exits 143 or 130 (cli.main): report
        # it as the signal it was.
        by_signal = {128 + signal.SIGTERM: -signal.SIGTERM, 128 + signal.SIGINT: -signal.SIGINT}
        codes = [by_signal.get(code, code) for code in codes]
        if self.first_failure is not None:
            self.first_failure = (self.first_failure[0], by_signal.get(self.first_failure[1], self.first_failure[1]))
        if self.first_failure is not None and self.first_failure[1] < 0 \
                and not os.path.exists(reports[self.first_failure[0]]):
            i, code = self.first_failure
            name = signal.Signals(-code).name
            return f"process {i} of {self.processes} was killed by {name}; the other processes were stopped", "killed"
        found = []
        for i, path in enumerate(reports):
            try:
                with open(path, encoding="utf-8") as f:
                    found.append((i, json.load(f)))
            except (OSError, ValueError):
                pass
        reported = {i for i, _ in found}
        if found:
            i, report = min(found, key=lambda r: (_RANK.get(r[1].get("kind"), 1), r[0]))
            # A lost peer is the echo of a process killed without a word: name that one.
            # (Not one we stopped ourselves, after another failed or while it hung.)
            killed = [j for j, code in enumerate(codes)
                      if code < 0 and j not in reported and j not in self.stopped]
            if report.get("kind") != "system" or not killed:
                kind = "at_start" if report.get("at_start") else report.get("kind", "script")
                return f"process {i} of {self.processes}: {report['text']}", kind
        for i, code in enumerate(codes):
            if code < 0:
                name = signal.Signals(-code).name
                return f"process {i} of {self.processes} was killed by {name}; the other processes were stopped", \
                    "killed"
        i = next(i for i, code in enumerate(codes) if code != 0)
        return f"process {i} of {self.processes} exited with status {codes[i]}", "exited"
