"""Type stubs for the Rust extension (crates/python)."""

from typing import Any, Dict, Optional, Sequence

class JobFailed(Exception):
    """args: (text, kind, operator, record, message, worker)."""

class SourceCancelled(BaseException):
    """Raised by ctx.collect() when the job stops."""

class SourceContext:
    def collect(self, record: Any) -> None: ...
    def collect_with_timestamp(self, record: Any, timestamp: int) -> None: ...

def run_job(nodes: Sequence[Any], workers: int = 1, batch_size: int = 1024) -> Dict[str, Any]:
    """Runs the plan; returns {"counts": [...], "dropped": int, "warnings": [...]}."""
