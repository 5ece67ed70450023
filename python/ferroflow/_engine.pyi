"""Type stubs for the Rust extension (crates/python)."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, final

__all__ = ["run_job", "resolve_secret", "CancelToken", "JobFailed", "SourceCancelled", "SourceContext", "_codec_encode", "_codec_decode"]

class JobFailed(Exception):
    """args: (text, kind, operator, record, message, worker)."""

class SourceCancelled(BaseException):
    """Raised by ctx.collect() when the job stops."""

@final
class CancelToken:
    """Stops a run_job from another thread: run_job then returns {"cancelled": True, ...}."""
    def __init__(self) -> None: ...
    def cancel(self) -> None: ...
    def cancelled(self) -> bool: ...

@final
class SourceContext:
    worker_index: int
    worker_count: int
    def collect(self, record: Any) -> None: ...
    def collect_with_timestamp(self, record: Any, timestamp: int) -> None: ...

def run_job(nodes: Sequence[Any], workers: int = 1, batch_size: int = 128,
            cluster: Optional[Tuple[int, List[str], bytes, int, int, int]] = None,
            object_reuse: bool = False, cancel: Optional[CancelToken] = None) -> Dict[str, Any]:
    """Runs the plan; returns {"counts": [...], "dropped": int, "late_dropped": int, "warnings": [...],
    "cancelled": bool} ("cancelled": True, and no counts, once ``cancel`` stopped it).
    cluster: (process, addresses, secret, connect_timeout_ms, job_fingerprint, heartbeat_timeout_ms).
    object_reuse: operators may share records (off: each gets records of its own)."""

def resolve_secret(secret: Optional[str], secret_file: Optional[str]) -> bytes:
    """The shared secret from FERROFLOW_SECRET's value or FERROFLOW_SECRET_FILE's path
    (the first set), by the engine's rule; ValueError with a one-line message."""

def _codec_encode(records: List[Any]) -> bytes: ...
def _codec_decode(data: bytes) -> List[Any]: ...
