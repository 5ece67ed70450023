"""Checkpointing settings with PyFlink's names: ``env.enable_checkpointing(interval)``
and ``env.get_checkpoint_config()``.

A checkpoint is written to ``<storage dir>/chk-<n>/``; without
``set_checkpoint_storage_dir`` the storage directory is
``./ferroflow-checkpoints/<job name>`` under the working directory the job starts in
(``DEFAULT_STORAGE_ROOT``; the job name's characters other than letters, digits,
``-``, ``_`` and ``.`` become ``_``).
"""

from __future__ import annotations

import enum
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Optional

__all__ = ["CheckpointConfig", "CheckpointingMode", "ExternalizedCheckpointRetention",
           "ExternalizedCheckpointCleanup", "DEFAULT_STORAGE_ROOT"]

#: Where checkpoints go when no storage directory is set: ``<this>/<job name>``,
#: relative to the working directory.
DEFAULT_STORAGE_ROOT = "ferroflow-checkpoints"

#: Flink's defaults (``CheckpointConfig``'s own): 10 minutes' timeout, no pause, one
#: checkpoint at a time, one retained (``state.checkpoints.num-retained``).
DEFAULT_TIMEOUT_MS = 600_000
DEFAULT_NUM_RETAINED = 1


class CheckpointingMode(str, enum.Enum):
    """``enable_checkpointing(interval, mode)``. ``EXACTLY_ONCE`` (the default): state
    and replayable sources restore to one consistent cut. ``AT_LEAST_ONCE`` is accepted
    and runs the same way: exactly-once state is a superset of at-least-once, and the
    aligned checkpoints cost nothing extra here. Members equal their names as strings."""

    EXACTLY_ONCE = "EXACTLY_ONCE"
    AT_LEAST_ONCE = "AT_LEAST_ONCE"

    def __str__(self) -> str:
        return self.value


class ExternalizedCheckpointRetention(str, enum.Enum):
    """What happens to completed checkpoints when the job is cancelled (Ctrl-C, SIGTERM):
    ``DELETE_ON_CANCELLATION`` (the default) removes them, ``RETAIN_ON_CANCELLATION``
    keeps them for ``ferroflow run --from-checkpoint``. A job that fails always keeps
    them, so that it can restart from them. ``NO_EXTERNALIZED_CHECKPOINTS`` is
    PyFlink's third value: refused here, where every checkpoint is on disk."""

    DELETE_ON_CANCELLATION = "DELETE_ON_CANCELLATION"
    RETAIN_ON_CANCELLATION = "RETAIN_ON_CANCELLATION"
    NO_EXTERNALIZED_CHECKPOINTS = "NO_EXTERNALIZED_CHECKPOINTS"

    def __str__(self) -> str:
        return self.value


#: PyFlink 1.x's name of the same enum (``set_externalized_checkpoint_cleanup``).
ExternalizedCheckpointCleanup = ExternalizedCheckpointRetention


def _millis(value: Any, what: str, least: int) -> int:
    """A duration in ms (an int, or a ``datetime.timedelta`` as PyFlink takes), at least ``least``."""
    if hasattr(value, "total_seconds") and not isinstance(value, (int, float)):
        value = int(value.total_seconds() * 1000)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} takes milliseconds as an int (or a datetime.timedelta), got {value!r}")
    if value < least:
        raise ValueError(f"{what} must be at least {least} ms, got {value}")
    return value


def storage_path(path: Any) -> str:
    """A storage directory as given to ``set_checkpoint_storage_dir`` or the CLI: a path or
    a ``file://`` URI (``file:///abs`` or ``file:/abs``). Other schemes are refused."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"a checkpoint storage directory must be a non-empty path, got {path!r}")
    scheme, sep, rest = path.partition("://")
    # A URI scheme (RFC 3986: a letter, then letters, digits, "+", "-", "."); one letter
    # is a Windows drive, not a scheme.
    if sep and len(scheme) > 1 and scheme[0].isalpha() and all(c.isalnum() or c in "+-." for c in scheme):
        if scheme.lower() != "file":
            raise ValueError(f"checkpoint storage {path!r}: only local paths and file:// URIs are supported")
        if rest.startswith("localhost/"):
            rest = rest[len("localhost"):]
        elif not rest.startswith("/"):
            raise ValueError(f"checkpoint storage {path!r}: a file:// URI needs an absolute path (file:///dir)")
        return rest
    if path.startswith("file:/"):
        return path[len("file:"):]
    return path


def default_storage_dir(job_name: str) -> str:
    """``./ferroflow-checkpoints/<job name>`` (absolute, from the working directory now)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_name).strip(".") or "job"
    return os.path.abspath(os.path.join(DEFAULT_STORAGE_ROOT, safe))


class CheckpointConfig:
    """A job's checkpointing settings (``env.get_checkpoint_config()``), with PyFlink's
    method names. Durations are in milliseconds (an int or a ``datetime.timedelta``).
    Checkpointing is on once ``env.enable_checkpointing(interval)`` (or
    ``set_checkpoint_interval``) is called."""

    def __init__(self) -> None:
        self._interval = -1
        self._mode = CheckpointingMode.EXACTLY_ONCE
        self._timeout = DEFAULT_TIMEOUT_MS
        self._min_pause = 0
        self._max_concurrent = 1
        self._retention = ExternalizedCheckpointRetention.DELETE_ON_CANCELLATION
        self._num_retained = DEFAULT_NUM_RETAINED
        self._storage: Optional[str] = None

    def is_checkpointing_enabled(self) -> bool:
        """True once an interval was set (``enable_checkpointing``)."""
        return self._interval > 0

    def get_checkpointing_mode(self) -> CheckpointingMode:
        return self._mode

    def set_checkpointing_mode(self, checkpointing_mode: CheckpointingMode) -> "CheckpointConfig":
        """``EXACTLY_ONCE`` or ``AT_LEAST_ONCE`` (accepted, and run as exactly-once,
        which guarantees more). The talk-era ``CheckpointingMode`` of
        ``org.apache.flink.streaming.api`` is the same enum."""
        try:
            self._mode = CheckpointingMode(checkpointing_mode)
        except ValueError:
            raise ValueError("the checkpointing mode must be CheckpointingMode.EXACTLY_ONCE or AT_LEAST_ONCE, "
                             f"got {checkpointing_mode!r}") from None
        return self

    def get_checkpoint_interval(self) -> int:
        """Milliseconds between checkpoints, or -1 when checkpointing is off."""
        return self._interval

    def set_checkpoint_interval(self, checkpoint_interval: Any) -> "CheckpointConfig":
        """Milliseconds between checkpoints (at least 10, as in Flink); turns checkpointing on."""
        self._interval = _millis(checkpoint_interval, "the checkpoint interval", 10)
        return self

    def get_checkpoint_timeout(self) -> int:
        return self._timeout

    def set_checkpoint_timeout(self, checkpoint_timeout: Any) -> "CheckpointConfig":
        """A checkpoint not complete after this many ms is discarded; the job goes on
        (default 10 minutes)."""
        self._timeout = _millis(checkpoint_timeout, "the checkpoint timeout", 1)
        return self

    def get_min_pause_between_checkpoints(self) -> int:
        return self._min_pause

    def set_min_pause_between_checkpoints(self, min_pause_between_checkpoints: Any) -> "CheckpointConfig":
        """Least ms from the end of one checkpoint to the start of the next (default 0)."""
        self._min_pause = _millis(min_pause_between_checkpoints, "the minimum pause between checkpoints", 0)
        return self

    def get_max_concurrent_checkpoints(self) -> int:
        return self._max_concurrent

    def set_max_concurrent_checkpoints(self, max_concurrent_checkpoints: int) -> "CheckpointConfig":
        """Only 1 is supported: one checkpoint is in progress at a time."""
        if isinstance(max_concurrent_checkpoints, bool) or not isinstance(max_concurrent_checkpoints, int):
            raise TypeError(f"set_max_concurrent_checkpoints() takes an int, got {max_concurrent_checkpoints!r}")
        if max_concurrent_checkpoints != 1:
            raise ValueError(f"set_max_concurrent_checkpoints({max_concurrent_checkpoints}): ferroflow takes one "
                             "checkpoint at a time, so only 1 is supported")
        return self

    def get_num_retained_checkpoints(self) -> int:
        return self._num_retained

    def set_num_retained_checkpoints(self, num_retained: int) -> "CheckpointConfig":
        """How many completed checkpoints to keep, the newest (Flink's configuration
        ``state.checkpoints.num-retained``, which PyFlink has no method for; default 1).
        Older ones are removed once a newer one completes; savepoints are never removed."""
        if isinstance(num_retained, bool) or not isinstance(num_retained, int):
            raise TypeError(f"set_num_retained_checkpoints() takes an int, got {num_retained!r}")
        if num_retained < 1:
            raise ValueError(f"set_num_retained_checkpoints() takes 1 or more, got {num_retained}")
        self._num_retained = num_retained
        return self

    def set_externalized_checkpoint_retention(self, retention_mode: ExternalizedCheckpointRetention
                                              ) -> "CheckpointConfig":
        """``RETAIN_ON_CANCELLATION`` keeps completed checkpoints when the job is
        cancelled; ``DELETE_ON_CANCELLATION`` (the default) removes them then."""
        try:
            mode = ExternalizedCheckpointRetention(retention_mode)
        except ValueError:
            mode = None
        if mode is None or mode is ExternalizedCheckpointRetention.NO_EXTERNALIZED_CHECKPOINTS:
            raise ValueError("the retention must be ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION or "
                             f"DELETE_ON_CANCELLATION (checkpoints are always written to disk), got {retention_mode!r}")
        self._retention = mode
        return self

    def get_externalized_checkpoint_retention(self) -> ExternalizedCheckpointRetention:
        return self._retention

    def is_externalized_checkpoints_enabled(self) -> bool:
        """Always True: every checkpoint is written to the storage directory."""
        return True

    # PyFlink 1.x's deprecated names for the same setting.
    def set_externalized_checkpoint_cleanup(self, cleanup_mode: ExternalizedCheckpointRetention) -> "CheckpointConfig":
        """Deprecated name of ``set_externalized_checkpoint_retention``."""
        return self.set_externalized_checkpoint_retention(cleanup_mode)

    def enable_externalized_checkpoints(self, cleanup_mode: ExternalizedCheckpointRetention) -> "CheckpointConfig":
        """Deprecated name of ``set_externalized_checkpoint_retention``."""
        return self.set_externalized_checkpoint_retention(cleanup_mode)

    def get_externalized_checkpoint_cleanup(self) -> ExternalizedCheckpointRetention:
        """Deprecated name of ``get_externalized_checkpoint_retention``."""
        return self._retention

    def set_checkpoint_storage_dir(self, checkpoint_path: Any) -> "CheckpointConfig":
        """The directory checkpoints are written to: a path or a ``file://`` URI. Without
        one: ``./ferroflow-checkpoints/<job name>`` (see the module doc). A directory that
        cannot be written fails the job when it starts."""
        self._storage = storage_path(checkpoint_path)
        return self

    def get_checkpoint_storage_dir(self) -> Optional[str]:
        """The directory set by ``set_checkpoint_storage_dir``, or None (the default applies)."""
        return self._storage

    def _engine_settings(self, job_name: str, restore_from: Optional[str]) -> "_EngineSettings":
        storage = os.path.abspath(self._storage) if self._storage else default_storage_dir(job_name)
        return _EngineSettings(storage, self._interval, self._min_pause, self._timeout, self._num_retained,
                               self._retention is ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION,
                               restore_from, job_name)

    def __repr__(self) -> str:
        state = f"interval={self._interval} ms" if self.is_checkpointing_enabled() else "disabled"
        return f"CheckpointConfig({state}, storage={self._storage or DEFAULT_STORAGE_ROOT + '/<job name>'})"


class _EngineSettings:
    """What the binding reads (``crates/python/src/checkpoint.rs``: ``CheckpointArg``)."""

    __slots__ = ("dir", "interval_ms", "min_pause_ms", "timeout_ms", "retained", "retain_on_cancel", "restore_from",
                 "job", "baseline")

    def __init__(self, dir: str, interval_ms: int, min_pause_ms: int, timeout_ms: int, retained: int,
                 retain_on_cancel: bool, restore_from: Optional[str], job: str = "job") -> None:
        self.dir = dir
        #: The job's name, recorded in each checkpoint's manifest.
        self.job = job
        self.interval_ms = interval_ms
        self.min_pause_ms = min_pause_ms
        self.timeout_ms = timeout_ms
        self.retained = retained
        self.retain_on_cancel = retain_on_cancel
        self.restore_from = restore_from
        #: The newest complete checkpoint in ``dir`` when the job started (an earlier
        #: run's): a restart never restores it unless it was asked for.
        self.baseline: Optional[str] = None
