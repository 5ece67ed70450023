"""Errors ferroflow raises, and how a user function's exception is shown."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Optional

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class FerroflowError(Exception):
    """A problem with the job itself (its plan, its script or its arguments)."""


class InvalidUseError(FerroflowError):
    """A user function used ferroflow's API where or how it cannot work: keyed state or
    timers outside a keyed stream, one state name for two kinds of state, broadcast
    state written where it is read-only. A job that does not catch it fails with one
    line: the message and the user's call that raised it (no traceback)."""


class JobExecutionException(FerroflowError):
    """The job failed while running. The message names the operator, the record and
    shows the user function's traceback.

    Attributes:
        kind: ``"udf"``, ``"source"``, ``"sink"``, ``"plan"``, ``"cancelled"``, ``"system"`` (the
            network or the machine: a lost or refused peer process) or ``"internal"`` (a bug in
            ferroflow, raised as ``InternalError``).
        operator: the failing operator's name, if one failed.
        record: ``repr`` of the record being processed (truncated), if known.
        detail: the exception and its traceback, or the error message.
        worker: the worker it happened on.
        at_start: the job failed before it ran (its plan, or loading the checkpoint it
            restores from): running it again would fail alike, so it is never restarted.
    """

    def __init__(self, text: str, kind: str = "internal", operator: Optional[str] = None,
                 record: Optional[str] = None, detail: str = "", worker: Optional[int] = None) -> None:
        super().__init__(text)
        self.kind = kind
        self.operator = operator
        self.record = record
        self.detail = detail
        self.worker = worker
        self.at_start = False


class InternalError(JobExecutionException):
    """The job failed because of a bug in ferroflow itself, not in the job: a broken
    invariant of the engine, a crashed worker, a corrupt batch between processes. The
    message says so and what to report. ``kind`` is ``"internal"``."""


class CheckpointingWarning(UserWarning):
    """A checkpointed job has a source that cannot resume from a checkpoint (a socket,
    or an ``add_source`` function without ``snapshot_state``): after a restart it is
    not exactly-once."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the job stops as on Ctrl-C (every path that handles an interrupt
    handles this too), and ``ferroflow run`` exits 143 instead of 130 (the launcher of
    a ``-p`` run too)."""


def quiet_broken_pipe() -> None:
    """Ends like a command killed by SIGPIPE, once stdout's reader is gone: no
    message, exit 141 (``ferroflow run`` and the launcher of a ``-p`` run)."""
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    os._exit(141)


def job_failed(text: str, kind: str, operator: Optional[str], record: Optional[str], detail: str,
               worker: Optional[int]) -> JobExecutionException:
    """The exception for a job the engine reports failed: ``InternalError`` for
    ferroflow's own bugs, so they never look like the user's function raising."""
    cls = InternalError if kind == "internal" else JobExecutionException
    return cls(text, kind, operator, record, detail, worker)


def _is_internal(filename: str) -> bool:
    """Frames of ferroflow itself and of the machinery that runs scripts."""
    if filename.startswith("<frozen") or os.path.basename(filename) == "runpy.py":
        return True
    return os.path.dirname(os.path.abspath(filename)).startswith(_PACKAGE_DIR)


def format_user_exception(exc: BaseException, tb: Any = None) -> str:
    """The exception as Python prints it, leaving out ferroflow's own leading frames
    (and runpy's), so the traceback starts in the user's code."""
    import traceback

    if tb is None:
        tb = exc.__traceback__
    if isinstance(exc, InvalidUseError):
        return _invalid_use_line(exc, tb)
    while tb is not None and _is_internal(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    return "".join(lines).rstrip()


def _invalid_use_line(exc: InvalidUseError, tb: Any) -> str:
    """The message and where the user's code made the call ferroflow refused: the
    innermost frame outside ferroflow, as ``(job.py:12, in open)``."""
    where = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if not _is_internal(code.co_filename):
            where = f"{os.path.basename(code.co_filename)}:{tb.tb_lineno}, in {code.co_name}"
        tb = tb.tb_next
    return f"{exc} ({where})" if where else str(exc)
