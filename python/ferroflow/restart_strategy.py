"""Restart strategies with PyFlink's names: ``env.set_restart_strategy(RestartStrategies
.fixed_delay_restart(3, 1000))``.

When a job fails, its strategy decides whether it runs again and after how long. A
restart runs the whole job again from the latest completed checkpoint under its
storage directory (from the start if there is none yet); each failure's cause is
printed to stderr on one line, then ``restarting (attempt k of n) in d ms``. When the
strategy gives up, the job fails with the last cause.

Without a strategy: no restart when checkpointing is off; with checkpointing on,
Flink's default since 1.19, exponential delay: 1 s, times 1.5 after each failure up to
1 minute, reset after an hour without failure, with 10% jitter, without limit.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, List, Optional

__all__ = ["RestartStrategies", "RestartStrategyConfiguration"]

#: Java's Integer.MAX_VALUE: Flink's "no limit" for restart attempts.
UNLIMITED = 2**31 - 1


def _ms(value: Any, what: str) -> int:
    """Milliseconds from an int or a ``datetime.timedelta`` (PyFlink takes both), >= 0."""
    if hasattr(value, "total_seconds") and not isinstance(value, (int, float)):
        value = int(value.total_seconds() * 1000)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} takes milliseconds as an int or a datetime.timedelta, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value}")
    return value


def _count(value: Any, what: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} takes an int, got {value!r}")
    if value < least:
        raise ValueError(f"{what} must be at least {least}, got {value}")
    return value


class RestartStrategyConfiguration:
    """A restart strategy, made by ``RestartStrategies``."""

    def get_description(self) -> str:
        raise NotImplementedError

    def _tracker(self) -> "_Tracker":
        raise NotImplementedError

    def _key(self) -> tuple:
        return (type(self).__name__,) + tuple(sorted(vars(self).items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RestartStrategyConfiguration) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_description()})"


class _Tracker:
    """One job run's failures under a strategy: ``on_failure(now_ms)`` gives the delay
    before the next attempt, or None to give up. Pure (the clock and the random draw
    come in), so the rules are tested without running jobs."""

    def __init__(self) -> None:
        self.restarts = 0

    def on_failure(self, now_ms: int, random: float = 0.5) -> Optional[int]:
        raise NotImplementedError

    def describe(self) -> str:
        """The "(attempt k of n)" part of the restart line, after ``on_failure``."""
        return f"attempt {self.restarts + 1}"


class RestartStrategies:
    """The restart strategies (PyFlink's ``pyflink.common.RestartStrategies``)."""

    class NoRestartStrategyConfiguration(RestartStrategyConfiguration):
        """The job fails at its first failure."""

        def get_description(self) -> str:
            return "Restart deactivated."

        def _tracker(self) -> _Tracker:
            return _NoRestart()

    class FixedDelayRestartStrategyConfiguration(RestartStrategyConfiguration):
        """Up to ``restart_attempts`` restarts, each after the same delay."""

        def __init__(self, restart_attempts: int, delay_between_attempts_interval: Any) -> None:
            self.restart_attempts = _count(restart_attempts, "fixed_delay_restart(): restart_attempts", 0)
            self.delay_ms = _ms(delay_between_attempts_interval, "fixed_delay_restart(): delay_between_attempts")

        def get_restart_attempts(self) -> int:
            return self.restart_attempts

        def get_delay_between_attempts_interval(self) -> Any:
            import datetime

            return datetime.timedelta(milliseconds=self.delay_ms)

        def get_description(self) -> str:
            return f"Restart with fixed delay ({self.delay_ms} ms). #{self.restart_attempts} restart attempts."

        def _tracker(self) -> _Tracker:
            return _FixedDelay(self.restart_attempts, self.delay_ms)

    class FailureRateRestartStrategyConfiguration(RestartStrategyConfiguration):
        """Restarts after ``delay_between_attempts_interval`` as long as no more than
        ``max_failure_rate`` failures fell within any ``failure_interval``; the failure
        that makes it ``max_failure_rate + 1`` fails the job (Flink's rule)."""

        def __init__(self, max_failure_rate: int, failure_interval: Any, delay_between_attempts_interval: Any) -> None:
            self.max_failure_rate = _count(max_failure_rate, "failure_rate_restart(): failure_rate", 1)
            self.failure_interval_ms = _ms(failure_interval, "failure_rate_restart(): failure_interval")
            if self.failure_interval_ms == 0:
                raise ValueError("failure_rate_restart(): failure_interval must be at least 1 ms")
            self.delay_ms = _ms(delay_between_attempts_interval, "failure_rate_restart(): delay_interval")

        def get_max_failure_rate(self) -> int:
            return self.max_failure_rate

        def get_failure_interval(self) -> Any:
            import datetime

            return datetime.timedelta(milliseconds=self.failure_interval_ms)

        def get_delay_between_attempts_interval(self) -> Any:
            import datetime

            return datetime.timedelta(milliseconds=self.delay_ms)

        def get_description(self) -> str:
            return (f"Failure rate restart with maximum of {self.max_failure_rate} failures within interval "
                    f"{self.failure_interval_ms} ms and fixed delay {self.delay_ms} ms.")

        def _tracker(self) -> _Tracker:
            return _FailureRate(self.max_failure_rate, self.failure_interval_ms, self.delay_ms)

    class ExponentialDelayRestartStrategyConfiguration(RestartStrategyConfiguration):
        """Restarts without limit; the delay starts at ``initial_backoff``, is multiplied
        by ``backoff_multiplier`` after each failure up to ``max_backoff``, goes back to
        ``initial_backoff`` once the job ran ``reset_backoff_threshold`` without failing,
        and varies by +/- ``jitter_factor`` of itself."""

        def __init__(self, initial_backoff: Any, max_backoff: Any, backoff_multiplier: float,
                     reset_backoff_threshold: Any, jitter_factor: float) -> None:
            what = "exponential_delay_restart()"
            self.initial_ms = _ms(initial_backoff, f"{what}: initial_backoff")
            self.max_ms = _ms(max_backoff, f"{what}: max_backoff")
            if not isinstance(backoff_multiplier, (int, float)) or not backoff_multiplier >= 1:
                raise ValueError(f"{what}: backoff_multiplier must be a number >= 1, got {backoff_multiplier!r}")
            self.multiplier = float(backoff_multiplier)
            self.reset_ms = _ms(reset_backoff_threshold, f"{what}: reset_backoff_threshold")
            if not isinstance(jitter_factor, (int, float)) or not 0 <= jitter_factor <= 1:
                raise ValueError(f"{what}: jitter_factor must be between 0 and 1, got {jitter_factor!r}")
            self.jitter = float(jitter_factor)
            if self.max_ms < self.initial_ms:
                raise ValueError(f"{what}: max_backoff ({self.max_ms} ms) is below initial_backoff "
                                 f"({self.initial_ms} ms)")

        def get_description(self) -> str:
            return (f"Restart with exponential delay: initial {self.initial_ms} ms, max {self.max_ms} ms, "
                    f"multiplier {self.multiplier:g}, reset after {self.reset_ms} ms, jitter {self.jitter:g}.")

        def _tracker(self) -> _Tracker:
            return _ExponentialDelay(self)

    class FallbackRestartStrategyConfiguration(RestartStrategyConfiguration):
        """The default: exponential delay when checkpointing is on, no restart otherwise."""

        def get_description(self) -> str:
            return "Cluster level default restart strategy"

        def _tracker(self) -> _Tracker:
            raise AssertionError("resolved by default_strategy()")

    @staticmethod
    def no_restart() -> "RestartStrategies.NoRestartStrategyConfiguration":
        """The job fails at its first failure."""
        return RestartStrategies.NoRestartStrategyConfiguration()

    @staticmethod
    def fall_back_restart() -> "RestartStrategies.FallbackRestartStrategyConfiguration":
        """The default strategy (as if none was set)."""
        return RestartStrategies.FallbackRestartStrategyConfiguration()

    @staticmethod
    def fixed_delay_restart(restart_attempts: int, delay_between_attempts: Any
                            ) -> "RestartStrategies.FixedDelayRestartStrategyConfiguration":
        """Up to ``restart_attempts`` restarts, ``delay_between_attempts`` ms (or a
        ``datetime.timedelta``) after each failure."""
        return RestartStrategies.FixedDelayRestartStrategyConfiguration(restart_attempts, delay_between_attempts)

    @staticmethod
    def failure_rate_restart(failure_rate: int, failure_interval: Any, delay_interval: Any
                             ) -> "RestartStrategies.FailureRateRestartStrategyConfiguration":
        """Restarts ``delay_interval`` ms after each failure, until more than
        ``failure_rate`` failures fall within ``failure_interval`` ms."""
        return RestartStrategies.FailureRateRestartStrategyConfiguration(failure_rate, failure_interval,
                                                                         delay_interval)

    @staticmethod
    def exponential_delay_restart(initial_backoff: Any = 1000, max_backoff: Any = 60_000,
                                  backoff_multiplier: float = 1.5, reset_backoff_threshold: Any = 3_600_000,
                                  jitter_factor: float = 0.1
                                  ) -> "RestartStrategies.ExponentialDelayRestartStrategyConfiguration":
        """Java's ``exponentialDelayRestart`` (PyFlink has no method for it); the
        defaults are Flink's, which is also the strategy of a checkpointing job that
        sets none."""
        return RestartStrategies.ExponentialDelayRestartStrategyConfiguration(
            initial_backoff, max_backoff, backoff_multiplier, reset_backoff_threshold, jitter_factor)


def effective_strategy(strategy: Optional[RestartStrategyConfiguration],
                       checkpointing: bool) -> RestartStrategyConfiguration:
    """The strategy a job runs with: its own, else Flink's default (see the module doc)."""
    if strategy is None or isinstance(strategy, RestartStrategies.FallbackRestartStrategyConfiguration):
        return RestartStrategies.exponential_delay_restart() if checkpointing else RestartStrategies.no_restart()
    return strategy


class _NoRestart(_Tracker):
    def on_failure(self, now_ms: int, random: float = 0.5) -> Optional[int]:
        return None


class _FixedDelay(_Tracker):
    def __init__(self, attempts: int, delay_ms: int) -> None:
        super().__init__()
        self.attempts, self.delay_ms = attempts, delay_ms

    def on_failure(self, now_ms: int, random: float = 0.5) -> Optional[int]:
        if self.restarts >= self.attempts:
            return None
        self.restarts += 1
        return self.delay_ms

    def describe(self) -> str:
        return f"attempt {self.restarts} of {self.attempts}"


class _FailureRate(_Tracker):
    def __init__(self, rate: int, interval_ms: int, delay_ms: int) -> None:
        super().__init__()
        self.rate, self.interval_ms, self.delay_ms = rate, interval_ms, delay_ms
        self.failures: List[int] = []

    def on_failure(self, now_ms: int, random: float = 0.5) -> Optional[int]:
        self.failures = [t for t in self.failures if now_ms - t < self.interval_ms] + [now_ms]
        if len(self.failures) > self.rate:
            return None
        self.restarts += 1
        return self.delay_ms

    def describe(self) -> str:
        return (f"attempt {self.restarts}, failure {len(self.failures)} of at most {self.rate} "
                f"within {self.interval_ms} ms")


class _ExponentialDelay(_Tracker):
    def __init__(self, c: RestartStrategies.ExponentialDelayRestartStrategyConfiguration) -> None:
        super().__init__()
        self.c = c
        self.backoff = 0.0
        self.last_failure: Optional[int] = None

    def on_failure(self, now_ms: int, random: float = 0.5) -> Optional[int]:
        quiet = self.last_failure is not None and now_ms - self.last_failure >= self.c.reset_ms + self.backoff
        if self.last_failure is None or quiet:
            self.backoff = float(self.c.initial_ms)
        else:
            self.backoff = min(self.backoff * self.c.multiplier, float(self.c.max_ms))
        self.last_failure = now_ms
        self.restarts += 1
        jitter = self.backoff * self.c.jitter * (2 * random - 1)
        return max(0, round(self.backoff + jitter))

    def describe(self) -> str:
        return f"attempt {self.restarts} of unlimited"


def cause_line(error: BaseException) -> str:
    """A failure on one line: the message's first line and, for a user function's
    exception, the exception's own line (the traceback's last)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) == 1:
        return lines[0]
    return f"{lines[0].rstrip(':')}: {lines[-1].strip()}"


def restartable(error: BaseException) -> bool:
    """Failures a restart may cure: the job's (a user function, a source, a sink, a lost
    peer, ferroflow's own). Not a cancellation (Ctrl-C), a mistake in the plan, nor a
    failure before the job ran (a checkpoint that cannot be restored), which would fail
    the same way again."""
    from ._errors import JobExecutionException

    return isinstance(error, JobExecutionException) and error.kind not in ("cancelled", "plan") \
        and not error.at_start


class Restarts:
    """The restart loop's bookkeeping for one ``execute()`` (or one ``-p`` run): the
    strategy's tracker, the clock, and the lines it prints."""

    def __init__(self, strategy: RestartStrategyConfiguration) -> None:
        self.tracker = strategy._tracker()

    def may_restart(self) -> bool:
        """False for ``no_restart()`` (nothing needs keeping for another attempt)."""
        return not isinstance(self.tracker, _NoRestart)

    def next_delay(self, cause: str, out: Any = None) -> Optional[int]:
        """Called on a failure with its cause (one line): if the strategy restarts,
        prints the cause and the restart line to stderr and returns the delay in ms;
        None when the job must fail (with this cause, shown by the caller)."""
        import random
        import sys

        delay = self.tracker.on_failure(int(time.monotonic() * 1000), random.random())
        if delay is None:
            return None
        out = out or sys.stderr
        # One write for both lines: the processes of a job share stderr, and print()'s
        # separate writes of text and newline interleave with theirs when it is unbuffered.
        out.write(f"ferroflow: {cause}\nferroflow: restarting ({self.tracker.describe()}) in {delay} ms\n")
        out.flush()
        return delay
