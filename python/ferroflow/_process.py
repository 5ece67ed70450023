"""User functions run as process functions: ``KeyedProcessFunction`` /
``ProcessFunction`` (``ProcessUdf``, bound per worker with a runtime context that
reaches the engine's keyed state), and map/flat_map/filter functions with ``open()``
on a keyed stream, which run as keyed process functions to get keyed state
(``KeyedStep``; ``KeyedCoStep`` for co-map/co-flat-map functions of keyed connected
streams)."""

from __future__ import annotations

from ._plan import (RuntimeContext, Udf, _is_function_object, find_method, positional_arity,
                    with_collector)
from .functions import _OnTimerContext
from .state import KeyedRuntimeContext
from .timerservice import TimerService

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn, Optional, Tuple

__all__ = ["ProcessUdf", "CoProcessUdf", "KeyedStep", "KeyedCoStep", "opens"]


class ProcessUdf(Udf):
    """A ``KeyedProcessFunction`` or ``ProcessFunction`` (or a plain
    ``f(value, ctx)``): ``process_element`` and ``on_timer``, each also in the collector
    style (``processElement(value, ctx, out)``)."""

    def __init__(self, fn: Any) -> None:
        super().__init__(fn, ("process_element", "processElement"), collector_arity=2)

    def bind_process(self, index: int, count: int,
                     store: Any) -> Tuple[Callable, Optional[Callable], Optional[Callable], Optional[Callable]]:
        """``process_element``, ``on_timer`` (None without one), ``close`` and the second
        input's ``process_element2`` (None but on connected streams) of worker
        ``index``'s copy, opened with a runtime context whose state getters reach
        ``store`` (the engine's ``StateStore``) on a keyed stream."""
        _register_context_class()
        context = KeyedRuntimeContext(index, count, store) if store.keyed else RuntimeContext(index, count)
        obj, closer = self._open(index, context)
        process, on_timer, second = self.methods_of(obj, store, context)
        return process, on_timer, closer, second

    def methods_of(self, obj: Any, store: Any = None,
                   context: Any = None) -> Tuple[Callable, Optional[Callable], Optional[Callable]]:
        """An opened copy's ``process_element``, ``on_timer`` (None without one) and
        second input's method (None but on connected streams), as the engine calls them;
        ``store`` and ``context`` are the worker's (None when checked at plan time)."""
        on_timer = find_method(obj, ("on_timer", "onTimer")) if _is_function_object(obj) else None
        if on_timer is not None and positional_arity(on_timer) == 3:
            on_timer = with_collector(on_timer, 2)
        if on_timer is not None and self.wrap is not None:
            on_timer = self.wrap(on_timer)  # a declared output type converts what timers emit too
        return self.resolve(obj), on_timer, None


class CoProcessUdf(ProcessUdf):
    """A ``KeyedCoProcessFunction`` of connected keyed streams: ``process_element1``
    and ``process_element2`` (each also in the collector style) share ``on_timer``,
    keyed state and timers (one process operator with two inputs); or a
    ``CoProcessFunction`` of plain ones (``kind``: which, for errors)."""

    def __init__(self, fn: Any, kind: str = "KeyedCoProcessFunction") -> None:
        self.kind = kind
        if find_method(fn, ("process_element1", "processElement1")) is None:
            self._refuse(fn)
        Udf.__init__(self, fn, ("process_element1", "processElement1"), collector_arity=2)
        self.methods_of(fn)  # fail at plan time

    def methods_of(self, obj: Any, store: Any = None,
                   context: Any = None) -> Tuple[Callable, Optional[Callable], Optional[Callable]]:
        process, on_timer, _ = super().methods_of(obj)
        call = find_method(obj, ("process_element2", "processElement2"))
        if call is None:
            self._refuse(obj)
        return process, on_timer, with_collector(call, 2) if positional_arity(call) == 3 else call

    def _refuse(self, obj: Any) -> NoReturn:
        raise TypeError(f"connect(...).process() takes a {self.kind} (an object with "
                        f"process_element1(value, ctx) and process_element2(value, ctx)), got {type(obj).__name__}")


_context_registered = False


def _register_context_class() -> None:
    """Makes the engine's process context count as the declared contexts and timer
    service (``KeyedProcessFunction.Context``, ``OnTimerContext``, ``TimerService``)
    for ``isinstance``: it is all of them."""
    global _context_registered
    if not _context_registered:
        from . import _engine

        _OnTimerContext.register(_engine.ProcessContext)
        TimerService.register(_engine.ProcessContext)
        _context_registered = True


#: The methods of each stateless step's function, as ``DataStream`` resolves them.
STEP_METHODS = {"map": ("map",), "flat_map": ("flat_map", "flatMap"), "filter": ("filter",), "reduce": ("reduce",)}

#: The state a stateful reduce keeps its running value in (a name users are unlikely to take).
REDUCE_STATE = "__ferroflow_reduce__"


def opens(fn: Any) -> bool:
    """Whether ``fn`` is a function object with an ``open()`` of its own (not the base
    class's empty one): one that may ask its runtime context for keyed state."""
    if not _is_function_object(fn):
        return False
    opener = getattr(type(fn), "open", None)
    return callable(opener) and getattr(opener, "__qualname__", "") != "Function.open"


class KeyedStep:
    """``map``/``flat_map``/``filter``/``reduce`` on a keyed stream with a function that
    has ``open()``: run as a keyed process function, so that ``open(runtime_context)``
    gets keyed state scoped to each record's key (as in Flink). A reduce keeps its
    running value in a ValueState of its own (``REDUCE_STATE``)."""

    def __init__(self, fn: Any, step: str) -> None:
        self.fn = fn
        self.step = step
        self.udf = Udf(fn, STEP_METHODS[step], collector_arity=1 if step == "flat_map" else None)
        self.call: Optional[Callable] = None
        self.acc: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.fn.open(runtime_context)
        self.call = self.udf.resolve(self.fn)
        if self.step == "reduce":
            from .state import ValueStateDescriptor

            self.acc = runtime_context.get_state(ValueStateDescriptor(REDUCE_STATE))

    def close(self) -> None:
        closer = getattr(self.fn, "close", None)
        if callable(closer):
            closer()

    def process_element(self, value: Any, ctx: Any) -> Any:
        assert self.call is not None, "opened before the first record"
        if self.step == "reduce":
            # A key's first record goes out as it is (Flink's rolling reduce); None is
            # a value too, so the state holds the running value in a 1-tuple.
            held = self.acc.value()
            current = value if held is None else self.call(held[0], value)
            self.acc.update((current,))
            return (current,)
        result = self.call(value)
        if self.step == "map":
            return (result,)
        if self.step == "filter":
            return (value,) if result else ()
        return result


class KeyedCoStep:
    """``map``/``flat_map`` of keyed connected streams with a function that has
    ``open()``: run as a ``KeyedCoProcessFunction``, so that ``open(runtime_context)``
    gets keyed state shared by both inputs' records of a key (as in Flink).

    ``udf`` is the API's ``connected.CoUdf`` (taken as an argument, not imported:
    ``connected`` builds on this module); its ``resolve`` gives the two methods, in the
    collector style too. ``single``: one output per record (``map``)."""

    def __init__(self, udf: Any, single: bool) -> None:
        self.udf = udf
        self.fn = udf.fn
        self.single = single
        # What the process operator calls per record of each input, set in open() to
        # closures over the user's bound methods: ~370 instructions a record fewer
        # than methods that look them up and branch on the step (callgrind).
        self.process_element1: Callable[[Any, Any], Any] = _unopened
        self.process_element2: Callable[[Any, Any], Any] = _unopened

    def open(self, runtime_context: RuntimeContext) -> None:
        self.fn.open(runtime_context)
        first, second = self.udf.resolve(self.fn)
        if self.single:
            self.process_element1 = lambda value, ctx: (first(value),)
            self.process_element2 = lambda value, ctx: (second(value),)
        else:
            self.process_element1 = lambda value, ctx: first(value)
            self.process_element2 = lambda value, ctx: second(value)

    def close(self) -> None:
        closer = getattr(self.fn, "close", None)
        if callable(closer):
            closer()


def _unopened(value: Any, ctx: Any) -> NoReturn:
    raise AssertionError("a KeyedCoStep is called before open()")
