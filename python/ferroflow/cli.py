"""The ``ferroflow`` command.

    ferroflow run [options] job.py [extra.py|dir ...] [options] [- arg ...]

runs a job script on the embedded engine. Options go before or after the script (as
in ``flink run -p 2 job.py``). Everything after a lone ``-`` (or ``--``)
becomes the script's ``sys.argv[1:]``, so the talk's
``pyflink-stream.sh fibonacci.py - --local`` is ``ferroflow run fibonacci.py - --local``.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

from ._errors import Terminated, quiet_broken_pipe

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    import ast
    from typing import Any, Dict, List, Optional, Sequence

USAGE = """\
usage: ferroflow run SCRIPT [PATH ...] [- ARG ...]
       ferroflow savepoint PID [--stop]
       ferroflow --version

Runs a ferroflow (or talk-era Flink Python) job script on the embedded engine.
No server, JVM or configuration is needed.

commands:
  run SCRIPT       run the job script SCRIPT (see `ferroflow run --help`)
  savepoint PID    ask the running `ferroflow run` with process id PID for a
                   savepoint (it prints where it wrote it); with --stop the job
                   stops once it is written (same as: kill -USR1 PID, -USR2 to stop)

options:
  -h, --help       show this help
  --version        show the version
"""

RUN_USAGE = """\
usage: ferroflow run SCRIPT [PATH ...] [OPTIONS] [- ARG ...]
       ferroflow run [OPTIONS] SCRIPT [PATH ...] [- ARG ...]

Runs SCRIPT as the main program. The script either builds a job and calls
env.execute() itself, or defines main() / main(factory), which is then called (the
talk-era style). The script's own folder is importable.

arguments:
  SCRIPT           the job script (a .py file)
  PATH ...         extra modules or package folders to make importable
  - ARG ...        everything after a lone '-' (or '--') is passed to the script
                   as sys.argv[1:]

options:
  -p, --processes N     run on N local processes, started and supervised here
  -w, --workers N       worker threads per process (default 1; threads share
                        one Python interpreter lock, so processes scale better)
  --oversubscribe       allow more than 4 workers (-p x -w) per CPU
  --addresses A,B,...   one host:port per process of a multi-host run; run the
                        same command on every host with its own --process-id
  --hosts-file FILE     the addresses, one host:port per line
  --process-id I        this host's index in the addresses (0-based)
  --connect-timeout S   how long to wait for the other processes (default 30)
  --heartbeat-timeout S fail the job when another process sends nothing, not
                        even a heartbeat, for S seconds (default 30)
  --from-checkpoint DIR start from the latest completed checkpoint under the
                        checkpoint storage directory DIR
  -s, --from-savepoint PATH
                        start from the checkpoint or savepoint directory PATH
                        (a chk-<n> directory, or a savepoint)
  A multi-host run needs the same secret on every host: FERROFLOW_SECRET or a file
  named by FERROFLOW_SECRET_FILE, read alike (an even number of hex digits is hex,
  anything else text; 16 bytes at least). `-p` makes one up for its own processes.

examples:
  ferroflow run examples/word_count.py
  ferroflow run -p 2 examples/word_count.py
  ferroflow run examples/fibonacci.py - --input pairs.txt
  ferroflow run examples/legacy/fibonacci.py - --local

exit status: 0 when every job succeeded, 1 when a job or the script failed
(including a syntax error, or a script that runs no job), 2 for a usage error
(bad options, missing script), 130 when interrupted (Ctrl-C), 143 when stopped
by SIGTERM, 141 when stdout's reader went away. The processes of `-p` stop with
the launcher, even if it is killed.
"""


class UsageError(Exception):
    """Bad command line: print the message and exit 2."""


class ScriptError(Exception):
    """The script cannot run as a job (syntax error, nothing to run): message, exit 1."""


def split_args(args: Sequence[str]) -> tuple[List[str], List[str]]:
    """Splits at the first lone ``-`` or ``--``: (launcher arguments, script arguments)."""
    for i, a in enumerate(args):
        if a in ("-", "--"):
            return list(args[:i]), list(args[i + 1:])
    return list(args), []


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        from . import __version__
        print(f"ferroflow {__version__}")
        return 0
    if args[0] == "savepoint":
        return savepoint_command(args[1:])
    if args[0] != "run":
        print(f"ferroflow: unknown command '{args[0]}'\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    own, script_args = split_args(args[1:])
    if not own or "-h" in own or "--help" in own:
        print(RUN_USAGE, end="", file=sys.stdout if own else sys.stderr)
        return 0 if own else 2
    try:
        script, extra, options = parse_run_options(own)
        restore = restore_point(options)
    except UsageError as e:
        print(f"ferroflow run: {e}", file=sys.stderr)
        return 2
    # Ctrl-C must reach the job even if our parent told us to ignore SIGINT; SIGTERM
    # (kill, systemd, a CI time-out) stops it the same way and exits 143.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    # `ferroflow savepoint PID [--stop]`: a savepoint of the running job (the -p
    # supervisor replaces these by forwarding to process 0, where the coordinator is).
    signal.signal(signal.SIGUSR1, _savepoint)
    signal.signal(signal.SIGUSR2, _savepoint)
    if restore is not None:
        from ._cluster import ENV_RESTORE
        os.environ[ENV_RESTORE] = restore  # execute() reads it, in this process or the -p ones
    if options.get("processes", 1) > 1:
        from ._cluster import Supervisor
        if not os.path.isfile(script):
            print(f"ferroflow: no such file: {script}", file=sys.stderr)
            return 2
        apply_cluster_options(options)  # the processes inherit the settings
        return Supervisor(script, script_args, extra, options["processes"], options.get("workers", 1)).run()
    from ._cluster import die_with_launcher
    die_with_launcher()
    try:
        apply_cluster_options(options)
        run_script(script, script_args, extra)
    except UsageError as e:
        print(f"ferroflow: {e}", file=sys.stderr)
        return 2
    except ScriptError as e:
        if not _report_to_supervisor(e):
            print(f"ferroflow: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        code = 143 if isinstance(e, Terminated) else 130
        if not os.environ.get("FERROFLOW_REPORT"):  # under -p the supervisor says it once
            print(f"ferroflow: {'terminated (SIGTERM)' if code == 143 else 'interrupted'}", file=sys.stderr)
        _hard_exit(code)
    except BrokenPipeError:
        quiet_broken_pipe()
    except SystemExit as e:
        return _exit_code(e.code)
    except BaseException as e:  # noqa: BLE001 - every failure ends in a message and exit 1
        if _is_broken_pipe(e):
            quiet_broken_pipe()
        if not _report_to_supervisor(e):
            report(e, script)
        return 1
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _savepoint(signum: int, frame: object) -> None:
    """SIGUSR1: take a savepoint; SIGUSR2: take one and stop the job."""
    from . import _engine

    _engine.request_savepoint(stop=signum == signal.SIGUSR2)


def savepoint_command(args: Sequence[str]) -> int:
    """``ferroflow savepoint PID [--stop]``: signals the ``ferroflow run`` with that pid."""
    usage = "usage: ferroflow savepoint PID [--stop]"
    stop = "--stop" in args
    rest = [a for a in args if a != "--stop"]
    if len(rest) != 1 or not rest[0].isdigit():
        print(f"ferroflow savepoint: give the process id of a running `ferroflow run`\n{usage}", file=sys.stderr)
        return 2
    pid = int(rest[0])
    try:
        os.kill(pid, signal.SIGUSR2 if stop else signal.SIGUSR1)
    except ProcessLookupError:
        print(f"ferroflow savepoint: no process {pid}", file=sys.stderr)
        return 1
    except PermissionError:
        print(f"ferroflow savepoint: process {pid} belongs to another user", file=sys.stderr)
        return 1
    what = "a savepoint, then to stop" if stop else "a savepoint"
    print(f"ferroflow: asked process {pid} for {what}; it prints where the savepoint is written "
          "(a job without checkpointing ignores it)", file=sys.stderr)
    return 0


_OPTIONS = {"-p": "processes", "--processes": "processes", "-w": "workers", "--workers": "workers",
            "--addresses": "addresses", "--hosts-file": "hosts_file", "--process-id": "process_id",
            "--connect-timeout": "connect_timeout", "--heartbeat-timeout": "heartbeat_timeout",
            "--from-checkpoint": "from_checkpoint", "-s": "from_savepoint", "--from-savepoint": "from_savepoint"}
_INT_OPTIONS = {"processes", "workers", "process_id"}
#: Options without a value.
_FLAGS = {"--oversubscribe": "oversubscribe"}
#: Worker threads allowed per CPU of this machine without --oversubscribe (see _check_oversubscription).
WORKERS_PER_CPU = 4
#: No -p or -w above this, even with --oversubscribe: far beyond any machine, and it
#: keeps the numbers within what the engine's integers hold.
MAX_COUNT = 10_000


def parse_run_options(own: Sequence[str]) -> tuple:
    """[OPTIONS] SCRIPT [PATH ...] [OPTIONS] -> (script, extra paths, options).

    Options may come before the script (``flink run -p 2 job.py``) as well as after it;
    the first other word is the script and the rest are extra paths."""
    options: Dict[str, Any]  # flags, numbers and strings
    script, extra, options = None, [], {}
    i = 0
    while i < len(own):
        token = own[i]
        name, eq, inline = token.partition("=")
        if token in _FLAGS:
            options[_FLAGS[token]] = True
        elif name in _OPTIONS:
            key = _OPTIONS[name]
            if eq:
                value = inline
            elif i + 1 < len(own):
                i += 1
                value = own[i]
            else:
                raise UsageError(f"{name} needs a value")
            if key in _INT_OPTIONS:
                options[key] = _whole_number(name, value, 0 if key == "process_id" else 1)
            elif key in ("connect_timeout", "heartbeat_timeout"):
                from ._cluster import parse_timeout
                try:
                    options[key] = parse_timeout(value)
                except ValueError as e:
                    raise UsageError(f"{name} {e}") from None
            else:
                options[key] = value
        elif token.startswith("-"):
            hint = "; the script's own arguments go after a lone '-'" if script is not None else ""
            raise UsageError(f"unknown option '{token}'{hint}")
        elif script is None:
            script = token
        else:
            extra.append(token)
        i += 1
    if script is None:
        raise UsageError("no job script given (ferroflow run [OPTIONS] SCRIPT ...)")
    if "hosts_file" in options:
        if "addresses" in options:
            raise UsageError("give either --addresses or --hosts-file, not both")
        try:
            with open(options["hosts_file"], encoding="utf-8") as f:
                options["addresses"] = ",".join(l.strip() for l in f if l.strip() and not l.startswith("#"))
        except OSError as e:
            raise UsageError(f"cannot read the hosts file {options['hosts_file']}: {e.strerror}") from None
    if "addresses" in options:
        if options.get("processes", 1) > 1:
            raise UsageError("-p starts local processes; --addresses runs one process per host: use one of them")
        if "process_id" not in options:
            raise UsageError("--addresses needs --process-id (this host's index in the list)")
        count = len([a for a in options["addresses"].split(",") if a.strip()])
        if options["process_id"] >= count:
            raise UsageError(f"--process-id {options['process_id']} is out of range for {count} addresses")
    elif "process_id" in options:
        raise UsageError("--process-id goes with --addresses (or --hosts-file)")
    if "from_checkpoint" in options and "from_savepoint" in options:
        raise UsageError("give either --from-checkpoint or -s/--from-savepoint, not both")
    _check_oversubscription(options)
    return script, extra, options


def restore_point(options: dict) -> Optional[str]:
    """The checkpoint directory ``--from-checkpoint``/``-s`` name, checked by the engine's
    rules (UsageError in one line if ``-s`` is not a complete checkpoint), or None.
    ``--from-checkpoint DIR`` with no complete checkpoint under DIR yet (a job killed
    before its first one) starts the job from the beginning, with a warning: a restart
    loop may pass it every time."""
    from . import _engine
    from .checkpoint_config import storage_path

    if "from_checkpoint" in options:
        try:
            root = storage_path(options["from_checkpoint"])
            found, warnings = _engine.checkpoint_find_latest(root)
        except ValueError as e:
            raise UsageError(f"--from-checkpoint: {e}") from None
        for w in warnings:
            print(f"ferroflow: warning: {w}", file=sys.stderr)
        if found is None:
            why = "does not exist" if not os.path.exists(root) else "has no complete checkpoint (chk-<n> with a _MANIFEST)"
            print(f"ferroflow: warning: --from-checkpoint {root} {why} yet: the job starts from the beginning",
                  file=sys.stderr)
            return None
        return os.path.abspath(found)
    if "from_savepoint" in options:
        try:
            path = storage_path(options["from_savepoint"])
        except ValueError as e:
            raise UsageError(f"-s: {e}") from None
        if not os.path.isdir(path):
            raise UsageError(f"-s {path}: {'no such directory' if not os.path.exists(path) else 'not a directory'}")
        try:
            _engine.checkpoint_verify(path)
        except ValueError as e:
            raise UsageError(f"-s {path} is not a complete checkpoint or savepoint: {e}") from None
        return os.path.abspath(path)
    return None


def _whole_number(name: str, text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} takes a whole number, got {text!r}") from None
    if value < least:
        raise UsageError(f"{name} must be at least {least}, got {value}")
    if value > MAX_COUNT and name != "--process-id":
        raise UsageError(f"{name} must be at most {MAX_COUNT}, got {value}")
    return value


def _check_oversubscription(options: dict) -> None:
    """Refuses far more worker threads on this machine than it has CPUs.

    Each process is a whole interpreter with its own copy of the job, and under the
    GIL a process uses about one core: past a few per CPU they only queue for the CPUs
    and memory, while connecting them takes ever longer (every pair of processes gets a
    connection), so `-p 1000` on 2 cores never finishes starting. Four per CPU still
    lets a laptop try a job on more workers than it has cores; --oversubscribe lifts
    the limit, as in MPI launchers."""
    processes, threads = options.get("processes", 1), options.get("workers", 1)
    cpus = _cpus()
    if options.get("oversubscribe") or processes * threads <= WORKERS_PER_CPU * cpus:
        return
    asked = " ".join(f"{flag} {n}" for flag, n in (("-p", processes), ("-w", threads)) if n > 1)
    raise UsageError(f"{asked} runs {processes * threads} workers on this machine's {cpus} CPU(s), more than "
                     f"{WORKERS_PER_CPU} per CPU ({WORKERS_PER_CPU * cpus}): use fewer, or add --oversubscribe "
                     f"to start them anyway")


def _cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. in a container or under
    taskset), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def apply_cluster_options(options: dict) -> None:
    """Hands --addresses/--process-id/-w to the environment variables execute() reads."""
    from . import _cluster

    if "addresses" in options:
        os.environ[_cluster.ENV_ADDRESSES] = options["addresses"]
        os.environ[_cluster.ENV_PROCESS] = str(options["process_id"])
    if "workers" in options:
        os.environ[_cluster.ENV_THREADS] = str(options["workers"])
    if "connect_timeout" in options:
        os.environ[_cluster.ENV_TIMEOUT] = str(options["connect_timeout"])
    if "heartbeat_timeout" in options:
        os.environ[_cluster.ENV_HEARTBEAT] = str(options["heartbeat_timeout"])


def _report_to_supervisor(e: BaseException) -> bool:
    """In a process started by `-p`: leave the report to the supervisor."""
    from ._cluster import write_report

    return write_report(e)


class _JobOnlyOutput:
    """``sys.stdout`` of the processes after the first of a ``-p`` run (whose outputs the
    supervisor merges into one). Every process runs the
    whole script, but the script's own prints outside a job (its driver part, which Flink's
    client runs once) should show once: here they are dropped, and only what the job prints
    (``print()`` sinks, prints in functions) passes."""

    def __init__(self, stream: Any) -> None:
        from . import environment

        self._stream = stream
        self._environment = environment  # bound once: write() is on the path of every print

    def write(self, text: str) -> int:
        return self._stream.write(text) if self._environment._jobs_running else len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _print_driver_output_once() -> None:
    from ._cluster import ENV_PROCESS, ENV_REPORT

    # Only under the -p supervisor, which merges every process's stdout into one; processes
    # started one by one (--process-id) each keep their own output.
    supervised = bool(os.environ.get(ENV_REPORT))
    if supervised and os.environ.get(ENV_PROCESS, "0") != "0" and not isinstance(sys.stdout, _JobOnlyOutput):
        sys.stdout = _JobOnlyOutput(sys.stdout)


def run_script(script: str, args: Sequence[str] = (), extra_paths: Sequence[str] = ()) -> None:
    """Runs ``script`` in this process as ``__main__`` with ``sys.argv[1:] = args``,
    then calls its ``main()`` / ``main(factory)`` if it ran no job itself. Each call
    gets a fresh namespace, so several scripts with same-named classes do not clash."""
    from . import environment
    from .compat import install as install_compat
    from .compat.pyflink import prefer_ferroflow

    if not os.path.isfile(script):
        raise UsageError(f"no such file: {script}" if not os.path.exists(script) else f"not a file: {script}")
    install_compat()
    prefer_ferroflow()
    _print_driver_output_once()
    script_dir = os.path.dirname(os.path.abspath(script))
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script] + list(args)
    sys.path.insert(0, script_dir)
    for p in extra_paths:
        if not os.path.exists(p):
            raise UsageError(f"no such file or folder: {p}")
        sys.path.insert(1, os.path.dirname(os.path.abspath(p)) if os.path.isfile(p) or os.path.isdir(p) else p)
    jobs_before = environment._jobs_run
    modules_before = set(sys.modules)
    try:
        try:
            namespace = runpy.run_path(script, run_name="__main__")
        except SyntaxError:
            # The script is parsed (importing ast) only if it is needed: a syntax error
            # in the script itself, raised by run_path before any of it runs, becomes a
            # one-line ScriptError; one raised while it ran (in a module it imports, say)
            # goes on as it is.
            _parse(script)
            raise
        # A script with an `if __name__ == "__main__":` block runs itself; only scripts
        # without one (the talk-era style) get their main() called by us.
        if environment._jobs_run == jobs_before and not _has_main_guard(_parse(script)):
            entry = namespace.get("main")
            if not callable(entry):
                raise ScriptError(f"{script} ran no job: it neither called env.execute() nor defined a main() function")
            call_main(entry)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        _forget_script_modules(modules_before, [script_dir] + [os.path.abspath(p) for p in extra_paths])


def _forget_script_modules(before: set, roots: List[str]) -> None:
    """Unloads the modules a script imported from its own folders, so the next script
    run in this process gets its own ``utils`` even if the name is the same."""
    for name in set(sys.modules) - before:
        path = getattr(sys.modules.get(name), "__file__", None) or ""
        if any(os.path.abspath(path).startswith(root + os.sep) for root in roots):
            del sys.modules[name]


def _parse(script: str) -> ast.Module:
    """The script's syntax tree; ScriptError if it has a syntax error."""
    import ast

    try:
        with open(script, "rb") as f:
            return ast.parse(f.read(), script)
    except SyntaxError as e:
        raise ScriptError(f"{e.filename or script}:{e.lineno}: syntax error: {e.msg}") from None


def _has_main_guard(tree: ast.Module) -> bool:
    """True if the module has a top-level ``if __name__ == "__main__":``."""
    import ast

    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [n for n in [node.test.left, *node.test.comparators]]
            texts = {getattr(n, "id", None) for n in names} | {getattr(n, "value", None) for n in names}
            if "__name__" in texts and "__main__" in texts:
                return True
    return False


def call_main(entry) -> None:
    """``main()`` (talk era, 2017) or ``main(factory)`` (Flink 1.5-1.8)."""
    import inspect

    try:
        params = [p for p in inspect.signature(entry).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if params:
        from .compat import environment_factory
        entry(environment_factory())
    else:
        entry()


def report(e: BaseException, script: str) -> None:
    """One clear message on stderr: a job failure without our own stack, anything
    else with the user's traceback."""
    from ._errors import FerroflowError, JobExecutionException, format_user_exception

    if isinstance(e, JobExecutionException):
        print(f"ferroflow: {e}", file=sys.stderr)
    elif isinstance(e, FerroflowError):
        print(f"ferroflow: {script}: {e}", file=sys.stderr)
    else:
        print(format_user_exception(e), file=sys.stderr)
        print(f"ferroflow: {script} failed: {type(e).__name__}: {e}", file=sys.stderr)


def _is_broken_pipe(e: BaseException) -> bool:
    """A job that failed because stdout's reader went away (``ferroflow run job.py |
    head``): in a print() sink, or in any function that itself prints."""
    from ._errors import JobExecutionException

    if not isinstance(e, JobExecutionException) or "BrokenPipeError" not in (e.detail or ""):
        return False
    return (e.operator or "").startswith("print") or _stdout_reader_gone()


def _stdout_reader_gone() -> bool:
    """True if stdout is a pipe whose reading end is closed (poll reports an error on
    it), so that a broken pipe elsewhere, e.g. a socket sink's, is still reported."""
    import select

    try:
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() on this platform
        return False


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _hard_exit(code: int) -> None:
    """Exits at once: after Ctrl-C a worker may still be inside user code, and waiting
    for it at interpreter shutdown could hang."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - exiting anyway; a closed or broken stream must not stop it
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
