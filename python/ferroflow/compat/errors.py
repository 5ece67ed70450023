"""The error the compatibility layer raises for talk-era features ferroflow does not have."""

from __future__ import annotations

from .._errors import FerroflowError

__all__ = ["UnsupportedApiError"]


class UnsupportedApiError(FerroflowError, NotImplementedError):
    """A talk-era API that needs a JVM or a Flink cluster (``add_java_source``, the
    Kafka 0.9 connectors, remote environments). The message names the ferroflow
    replacement. ``ferroflow run`` prints it as one line and exits 1."""
