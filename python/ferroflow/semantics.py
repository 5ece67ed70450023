"""``Semantics``: the options where ferroflow's behaviour and Flink's differ.

ferroflow's own API keeps its defaults (``Semantics()``); ``Semantics.flink()`` is
Flink's behaviour, which the ``pyflink`` names select for their environment
(``StreamExecutionEnvironment._use_flink_semantics``). Set them with
``env.set_semantics(Semantics(...))``. The table in ``docs/semantics.md`` lists each
option; the end-of-input rules run in the engine (``crates/engine/src/semantics.rs``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Union

__all__ = ["Semantics"]


class Semantics:
    """Each option, with ferroflow's default:

    * ``fire_partial_windows_at_end`` (True): at the end of a bounded input, a window
      holding records no trigger has fired yet fires once more: a count window's
      partial count, a global window, any window whose trigger waits for more. Flink:
      False, they are dropped.
    * ``fire_processing_timers_at_end`` (True): at the end of a bounded input, pending
      processing-time timers fire (processing-time windows, process functions'
      ``on_timer``). Flink: False in streaming mode (its timer service stops first);
      in ``RuntimeExecutionMode.BATCH`` they fire either way, as in Flink.
    * ``aggregation_default_field`` (None): the field ``sum()``, ``min()``, ``max()``,
      ``min_by()`` and ``max_by()`` take when called without one. None: the record
      itself; Flink: 0, the first field of a tuple (of an atomic value, the value).
    """

    __slots__ = ("fire_partial_windows_at_end", "fire_processing_timers_at_end", "aggregation_default_field")

    def __init__(self, fire_partial_windows_at_end: bool = True, fire_processing_timers_at_end: bool = True,
                 aggregation_default_field: Union[int, str, None] = None) -> None:
        for name, value in (("fire_partial_windows_at_end", fire_partial_windows_at_end),
                            ("fire_processing_timers_at_end", fire_processing_timers_at_end)):
            if not isinstance(value, bool):
                raise TypeError(f"Semantics({name}=...) takes True or False, got {value!r}")
        if aggregation_default_field is not None:
            from . import _aggregations

            aggregation_default_field = _aggregations.check_field(aggregation_default_field,
                                                                  "Semantics(aggregation_default_field=...)")
        self.fire_partial_windows_at_end = fire_partial_windows_at_end
        self.fire_processing_timers_at_end = fire_processing_timers_at_end
        self.aggregation_default_field = aggregation_default_field

    @classmethod
    def flink(cls) -> "Semantics":
        """Flink's behaviour for every option."""
        return cls(fire_partial_windows_at_end=False, fire_processing_timers_at_end=False,
                   aggregation_default_field=0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Semantics):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __repr__(self) -> str:
        return f"Semantics({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"
