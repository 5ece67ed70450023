"""``TimerService``: the clocks and timers a process function reaches through
``ctx.timer_service()`` (as ``pyflink.datastream.timerservice``). The engine supplies
the implementation; this class declares what it offers."""

from __future__ import annotations

import abc

__all__ = ["TimerService"]


class TimerService(abc.ABC):
    """Reads the clocks and registers timers for the current key. Timers are per key
    and timestamp: registering one twice fires it once."""

    @abc.abstractmethod
    def current_processing_time(self) -> int:
        """The processing time in ms (a ``TestSource``'s manual clock under one)."""

    @abc.abstractmethod
    def current_watermark(self) -> int:
        """The operator's event-time watermark in ms."""

    @abc.abstractmethod
    def register_processing_time_timer(self, timestamp: int) -> None:
        """Calls ``on_timer`` once the processing time reaches ``timestamp``."""

    @abc.abstractmethod
    def register_event_time_timer(self, timestamp: int) -> None:
        """Calls ``on_timer`` once the watermark reaches ``timestamp``."""

    @abc.abstractmethod
    def delete_processing_time_timer(self, timestamp: int) -> None:
        """Forgets the processing-time timer at ``timestamp`` (nothing if there is none)."""

    @abc.abstractmethod
    def delete_event_time_timer(self, timestamp: int) -> None:
        """Forgets the event-time timer at ``timestamp`` (nothing if there is none)."""
