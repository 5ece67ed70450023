"""The plan a job records: a list of nodes that the engine turns into a dataflow
(each node's kind and settings: ``_nodes``), and the wrappers of user functions.

Building a job only appends nodes here; nothing runs until ``execute()``.
"""

from __future__ import annotations

import os
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple

    from ._nodes import NodeKind

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class Node:
    """One operator of the plan: what it is (``kind``, one of ``_nodes``' typed kinds,
    the binding's contract), where it reads from, and how it is shown."""

    __slots__ = ("id", "kind", "api", "label", "site", "inputs", "custom_name", "parallelism", "type_info")

    def __init__(self, id: int, kind: NodeKind, label: str, inputs: List[int], api: str) -> None:
        self.id = id
        self.kind = kind
        #: The API's name for the operator, which its name starts with (``map``,
        #: ``from_collection``, ``sum``...).
        self.api = api
        self.label = label
        self.site = call_site()
        self.inputs = inputs
        self.custom_name: Optional[str] = None
        #: Workers this operator runs on (the first ones); None: all of them.
        self.parallelism: Optional[int] = None
        #: The declared type of its records (``type_info=``, ``output_type=``; see
        #: ``ferroflow.typeinfo``), kept by the operators that pass records on; None: undeclared.
        self.type_info: Any = None

    @property
    def name(self) -> str:
        """Shown in errors and metrics: ``map 'tokenize' (job.py:12)``."""
        label = self.custom_name or self.label
        text = f"{self.api} '{label}'" if label else self.api
        return f"{text} ({self.site})" if self.site else text


def call_site() -> str:
    """``file.py:line`` of the user code that called into the API."""
    frame: Optional[types.FrameType] = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return ""
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def label_of(fn: Any) -> str:
    """A short name for a user function: its class or function name."""
    if _is_plain_function(fn):
        return getattr(fn, "__qualname__", getattr(fn, "__name__", "function"))
    return type(fn).__name__


class Collector:
    """What collector-style functions (``flatMap(value, collector)``) emit into."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out: List[Any] = []

    def collect(self, value: Any) -> None:
        """Emits ``value``."""
        self.out.append(value)


def positional_arity(fn: Callable) -> Optional[int]:
    """How many positional parameters ``fn`` takes (bound methods without self), or
    None if it cannot be told (or it takes *args)."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


def with_collector(fn: Callable, fixed: int) -> Callable:
    """Adapts ``fn(*args, collector)`` to a function returning the collected list."""
    collector = Collector()
    out = collector.out

    if fixed == 1:
        def call1(a: Any) -> List[Any]:
            out.clear()
            fn(a, collector)
            return out
        return call1

    def call(*args: Any) -> List[Any]:
        out.clear()
        fn(*args, collector)
        return out
    return call


class RuntimeContext:
    """What a rich function's ``open()`` is told about where it runs."""

    #: The attempt of the job running in this process: 0, then 1, 2... after each
    #: restart (set by ``execute()``; one job runs at a time per process).
    _attempt_number = 0

    def __init__(self, index: int, count: int, task_name: str = "") -> None:
        self._index = index
        self._count = count
        self._task_name = task_name

    def get_index_of_this_subtask(self) -> int:
        return self._index

    def get_number_of_parallel_subtasks(self) -> int:
        return self._count

    def get_task_name(self) -> str:
        return self._task_name

    def get_attempt_number(self) -> int:
        """0 on the job's first run, k after its k-th restart (a restart strategy's)."""
        return RuntimeContext._attempt_number

    # -- keyed state (ferroflow.state): the engine's keyed runtime context overrides these --

    def _no_state(self, getter: str, state_descriptor: Any) -> Any:
        from ._errors import InvalidUseError

        raise InvalidUseError(f"{getter}({state_descriptor!r}): state is only available on a keyed stream "
                             "(a function applied after key_by())")

    def get_state(self, state_descriptor: Any) -> Any:
        """The ``ValueState`` a ``ValueStateDescriptor`` names, for the current key."""
        return self._no_state("get_state", state_descriptor)

    def get_list_state(self, state_descriptor: Any) -> Any:
        """The ``ListState`` a ``ListStateDescriptor`` names, for the current key."""
        return self._no_state("get_list_state", state_descriptor)

    def get_map_state(self, state_descriptor: Any) -> Any:
        """The ``MapState`` a ``MapStateDescriptor`` names, for the current key."""
        return self._no_state("get_map_state", state_descriptor)

    def get_reducing_state(self, state_descriptor: Any) -> Any:
        """The ``ReducingState`` a ``ReducingStateDescriptor`` names, for the current key."""
        return self._no_state("get_reducing_state", state_descriptor)

    def get_aggregating_state(self, state_descriptor: Any) -> Any:
        """The ``AggregatingState`` an ``AggregatingStateDescriptor`` names, for the current key."""
        return self._no_state("get_aggregating_state", state_descriptor)

    # Java-style names for talk-era scripts.
    getIndexOfThisSubtask = get_index_of_this_subtask
    getNumberOfParallelSubtasks = get_number_of_parallel_subtasks


class Udf:
    """A user function as given to the API, resolved per worker by the engine.

    ``methods`` lists the method names to look for on function objects, modern name
    first (``flat_map``) then the Java-style one (``flatMap``). ``collector_arity`` is
    the number of arguments before a trailing collector, for functions written in the
    collector style.
    """

    def __init__(self, fn: Any, methods: Tuple[str, ...], collector_arity: Optional[int] = None,
                 wrap: Optional[Callable[[Callable], Callable]] = None) -> None:
        self.fn = fn
        self.methods = methods
        self.collector_arity = collector_arity
        self.wrap = wrap
        self.copies: List[Any] = []
        #: The function object as the user gave it, kept for restarts (``keep_pristine``).
        self.pristine: Any = None
        if isinstance(fn, type) and _is_function_class(fn):
            raise TypeError(f"pass an instance of {fn.__name__}, e.g. {fn.__name__}(), not the class itself")
        self.resolve(fn)  # fail at plan time, pointing at the user's call

    def resolve(self, obj: Any) -> Callable:
        call = find_method(obj, self.methods)
        if call is None:
            if callable(obj):
                call = obj
            else:
                names = " or ".join(f"{m}()" for m in self.methods)
                raise TypeError(f"expected a function or an object with a {names} method, got {type(obj).__name__}")
        if self.collector_arity is not None and positional_arity(call) == self.collector_arity + 1:
            call = with_collector(call, self.collector_arity)
        if self.wrap is not None:
            call = self.wrap(call)
        return call

    def prepare(self, count: int) -> None:
        """Copies a function object for workers 1..count-1 before the job starts, so
        every worker begins from the object as the user gave it (worker 0 uses the
        original)."""
        self.copies = []
        if _is_function_object(self.fn):
            import copy

            for _ in range(count - 1):
                try:
                    self.copies.append(copy.deepcopy(self.fn))
                except Exception:  # noqa: BLE001 - an object that cannot be copied is shared
                    self.copies.append(self.fn)

    def keep_pristine(self) -> None:
        """Before a job that may restart: keeps a copy of the function object as the
        user gave it, since an attempt changes it (``open()``, fields, ``cancel()``)."""
        if _is_function_object(self.fn):
            import copy

            try:
                self.pristine = copy.deepcopy(self.fn)
            except Exception:  # noqa: BLE001 - an object that cannot be copied is reused as it is
                self.pristine = None

    def renew(self) -> None:
        """Before a restart: the function object again as the user gave it (as Flink,
        which deserializes its functions anew for every attempt)."""
        if self.pristine is not None:
            import copy

            self.fn = copy.deepcopy(self.pristine)

    def bind(self, index: int, count: int) -> Tuple[Callable, Optional[Callable]]:
        """The callable worker ``index`` runs, and what to call when it is done.
        Function objects get their own copy per worker (as Flink's subtasks do) and
        their ``open()`` is called here."""
        obj, closer = self._open(index, RuntimeContext(index, count))
        return self.resolve(obj), closer

    def bind_window(self, index: int, count: int,
                    store: Any) -> Tuple[Callable, Optional[Callable], Optional[Callable]]:
        """``bind`` for a window function, with the window operator's keyed state
        ``store``, and its ``clear`` callable; functions without keyed state (a join's)
        ignore the store and have no ``clear`` (see ``_window_udfs.WindowUdf``)."""
        call, closer = self.bind(index, count)
        return call, closer, None

    def _open(self, index: int, context: RuntimeContext) -> Tuple[Any, Optional[Callable]]:
        """Worker ``index``'s function object (opened with ``context``) and its ``close``."""
        obj = self.fn
        if not _is_function_object(obj):
            return obj, None
        if index > 0:
            import copy

            obj = self.copies[index - 1] if index - 1 < len(self.copies) else copy.deepcopy(obj)
        opener = getattr(obj, "open", None)
        if callable(opener):
            opener(context)
        closer = getattr(obj, "close", None)
        return obj, closer if callable(closer) else None


def find_method(obj: Any, names: Tuple[str, ...]) -> Optional[Callable]:
    """The first of ``names`` that ``obj`` implements (base-class stubs do not count)."""
    for m in names:
        method = getattr(obj, m, None)
        if method is not None and callable(method) and not _is_base_stub(method):
            return method
    return None


def _is_function_class(cls: type) -> bool:
    """A subclass of ferroflow's function base classes (passed where an instance
    belongs): ``functions.Function`` carries the marker, so this module, which
    ``functions`` builds on, need not import it."""
    return getattr(cls, "_ferroflow_function", False) is True


def _is_function_object(obj: Any) -> bool:
    """Instances of user classes (as opposed to plain functions and lambdas)."""
    return not (_is_plain_function(obj) or isinstance(obj, type))


def _is_plain_function(obj: Any) -> bool:
    """``inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isbuiltin(obj)``:
    the same isinstance tests, without importing inspect in every job."""
    return isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType))


def _is_base_stub(method: Any) -> bool:
    """True for the base classes' own placeholder methods, so that a subclass that
    implements only the Java-style name is found."""
    func = getattr(method, "__func__", None)
    return bool(getattr(func, "_ferroflow_stub", False))


def stub(fn: Callable) -> Callable:
    """Marks a base-class method that subclasses are meant to override."""
    fn._ferroflow_stub = True  # type: ignore[attr-defined]
    return fn

