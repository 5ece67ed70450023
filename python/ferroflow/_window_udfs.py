"""How the window operator calls user functions: adapters from the API's window
functions to the two callables the engine knows (see the ``window`` node in
``_plan``'s users, ``datastream.WindowedStream``):

* *process*: ``call(key, window, elements, watermark, processing_time) -> iterable or None``,
  once per firing; ``apply``-style and ``process``-style functions, keyed or all-window,
  are all turned into this. A process-style function with a ``clear(context)`` also
  gets ``clear(key, window, watermark, processing_time)``, called once when its window
  is cleared (clean-up time, or the end of the input).
* *aggregate*: ``call(op, *args)``: ``call(0)`` creates an accumulator,
  ``call(1, value, acc)`` adds, ``call(2, acc)`` gives the result, ``call(3, a, b)``
  merges (session windows).

Each is a ``Udf``, so function objects get per-worker copies and ``open``/``close``,
Java-style method names and collector-style signatures work as everywhere else.
"""

from __future__ import annotations

from ._plan import RuntimeContext, Udf, find_method
from .functions import WindowContext

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple

__all__ = ["WindowUdf", "ReduceUdf", "apply_udf", "process_udf", "window_function_udf", "is_process_style",
           "AggregateUdf", "has_merge"]


def _drop_clocks(apply: Callable, state: Any, window_state: Any) -> Callable:
    """``apply(key, window, values)`` as a process callable."""
    def call(key: Any, window: Any, elements: List[Any], watermark: int, processing_time: int) -> Any:
        return apply(key, window, elements)
    return call


def _drop_key_and_clocks(apply: Callable, state: Any, window_state: Any) -> Callable:
    """``apply(window, values)`` (all-window functions) as a process callable."""
    def call(key: Any, window: Any, elements: List[Any], watermark: int, processing_time: int) -> Any:
        return apply(window, elements)
    return call


def _with_context(process: Callable, state: Any, window_state: Any) -> Callable:
    """``process(key, context, elements)`` as a process callable; the context's
    ``global_state()`` is ``state``, its ``window_state()`` is ``window_state``."""
    def call(key: Any, window: Any, elements: List[Any], watermark: int, processing_time: int) -> Any:
        return process(key, WindowContext(window, watermark, processing_time, state, window_state), elements)
    return call


def _with_context_no_key(process: Callable, state: Any, window_state: Any) -> Callable:
    """``process(context, elements)`` (all-window functions) as a process callable."""
    def call(key: Any, window: Any, elements: List[Any], watermark: int, processing_time: int) -> Any:
        return process(WindowContext(window, watermark, processing_time, None), elements)
    return call


def _clear_callable(clear: Callable, state: Any, window_state: Any) -> Callable:
    """A process-style function's ``clear(context)`` as the engine calls it."""
    def call(key: Any, window: Any, watermark: int, processing_time: int) -> None:
        clear(WindowContext(window, watermark, processing_time, state, window_state))
    return call


class WindowUdf(Udf):
    """A window function (``apply``- or ``process``-style), bound per worker into the
    window operator's process callable by ``adapt(call, state, window_state)``. On keyed
    windows its ``open(runtime_context)`` gets keyed state scoped to the key whose window
    fires (the engine's ``store``), which ``Context.global_state()`` also returns, and
    ``Context.window_state()`` the same store scoped to the firing window; on
    ``window_all`` it gets none (as the issue asks: "state is only available on a
    keyed stream")."""

    def __init__(self, fn: Any, method: str, collector_arity: int,
                 adapt: Callable[[Callable, Any, Any], Callable], keyed: bool) -> None:
        self.adapt = adapt
        self.keyed = keyed
        self.method = method
        super().__init__(fn, (method,), collector_arity=collector_arity)

    def bind(self, index: int, count: int) -> Tuple[Callable, Optional[Callable]]:
        call, closer, _ = self.bind_window(index, count, None)
        return call, closer

    def bind_window(self, index: int, count: int,
                    store: Any) -> Tuple[Callable, Optional[Callable], Optional[Callable]]:
        state: Optional[RuntimeContext] = None
        window_state: Optional[RuntimeContext] = None
        if self.keyed and store is not None:
            from .state import KeyedRuntimeContext

            state = KeyedRuntimeContext(index, count, store)
            window_state = KeyedRuntimeContext(index, count, store.window_scope())
        obj, closer = self._open(index, state or RuntimeContext(index, count))
        # Only process-style functions have a clear(context) (Flink's WindowFunction has none).
        clear = find_method(obj, ("clear",)) if self.method == "process" else None
        clear_call = _clear_callable(clear, state, window_state) if clear is not None else None
        return self.adapt(self.resolve(obj), state, window_state), closer, clear_call


def apply_udf(fn: Any, keyed: bool) -> Udf:
    """A ``WindowFunction`` (``apply(key, window, values[, collector])``), an
    ``AllWindowFunction`` (``apply(window, values[, collector])``) or a plain function
    of the same arguments."""
    if keyed:
        return WindowUdf(fn, "apply", 3, _drop_clocks, keyed)
    return WindowUdf(fn, "apply", 2, _drop_key_and_clocks, keyed)


def process_udf(fn: Any, keyed: bool) -> Udf:
    """A ``ProcessWindowFunction`` (``process(key, context, elements[, collector])``),
    a ``ProcessAllWindowFunction`` (``process(context, elements[, collector])``) or a
    plain function of the same arguments."""
    if keyed:
        return WindowUdf(fn, "process", 3, _with_context, keyed)
    return WindowUdf(fn, "process", 2, _with_context_no_key, keyed)


def is_process_style(udf: Any) -> bool:
    """Whether a window node's function (``process`` or ``then``) is a
    ``ProcessWindowFunction`` or ``ProcessAllWindowFunction``: the ones whose
    ``yield output_tag, value`` goes to a side output (as in PyFlink)."""
    return isinstance(udf, WindowUdf) and udf.methods == ("process",)


def window_function_udf(fn: Any, keyed: bool) -> Udf:
    """The window function given with ``reduce``/``aggregate``: process-style if it
    has a ``process`` method (``ProcessWindowFunction``), otherwise apply-style
    (``WindowFunction`` or a plain function ``(key, window, values)``)."""
    if find_method(fn, ("process",)) is not None and find_method(fn, ("apply",)) is None:
        return process_udf(fn, keyed)
    return apply_udf(fn, keyed)


class _IncrementalContext(RuntimeContext):
    """The runtime context of a window's reduce or aggregate function, which has no
    keyed state (as in Flink, where it cannot be a rich function)."""

    def _no_state(self, getter: str, state_descriptor: Any) -> Any:
        from ._errors import InvalidUseError

        raise InvalidUseError(f"{getter}({state_descriptor!r}): a window's reduce or aggregate function has no "
                             "keyed state (as in Flink): give reduce()/aggregate() a window_function and keep "
                             "the state there")


class _IncrementalUdf(Udf):
    """A window's reduce or aggregate function: opened without keyed state."""

    def bind(self, index: int, count: int) -> Tuple[Callable, Optional[Callable]]:
        obj, closer = self._open(index, _IncrementalContext(index, count))
        return self.resolve(obj), closer


class ReduceUdf(_IncrementalUdf):
    """A window's ``ReduceFunction`` (or ``f(value1, value2)``)."""

    def __init__(self, fn: Any) -> None:
        super().__init__(fn, ("reduce",))


class AggregateUdf(_IncrementalUdf):
    """An ``AggregateFunction`` (``create_accumulator``, ``add``, ``get_result``,
    ``merge``) as one dispatching callable ``call(op, *args)``."""

    _METHODS = (("create_accumulator", "createAccumulator"), ("add",), ("get_result", "getResult"))

    def __init__(self, fn: Any) -> None:
        super().__init__(fn, ("add",))

    def resolve(self, obj: Any) -> Callable:
        found = [find_method(obj, names) for names in self._METHODS]
        missing = [names[0] for names, m in zip(self._METHODS, found) if m is None]
        if missing:
            raise TypeError(f"aggregate() takes an AggregateFunction; {type(obj).__name__} does not implement "
                            + ", ".join(f"{m}()" for m in missing))
        from typing import Callable, List, cast

        create, add, get_result = cast(List[Callable], found)
        merge = find_method(obj, ("merge",))

        def call(op: int, a: Any = None, b: Any = None) -> Any:
            if op == 1:
                return add(a, b)
            if op == 0:
                return create()
            if op == 2:
                return get_result(a)
            if merge is None:
                raise TypeError(f"{type(obj).__name__} does not implement merge(acc_a, acc_b), "
                                "which session windows need")
            return merge(a, b)
        return call


def has_merge(fn: Any) -> bool:
    """Whether an AggregateFunction can merge accumulators (session windows need it)."""
    return find_method(fn, ("merge",)) is not None


