"""The function classes talk-era scripts subclass.

They are ferroflow's own (``ferroflow.functions``), which already accept the Java-style
method names (``flatMap(value, collector)``, ``getKey``, ``invoke``...). The only new
one is ``PythonIterator``, and the ``Rich*`` names:
every ferroflow function gets ``open()``/``close()`` called, so they are aliases.
"""

from __future__ import annotations

from ..functions import (DeserializationSchema, FilterFunction, FlatMapFunction, Function, KeySelector,
                         MapFunction, OutputSelector, ReduceFunction, SerializationSchema, SimpleStringSchema,
                         SinkFunction, SourceFunction, WindowFunction, iterate_java_style)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Iterator

__all__ = [
    "Function", "MapFunction", "FlatMapFunction", "FilterFunction", "ReduceFunction", "KeySelector",
    "SourceFunction", "SinkFunction", "OutputSelector", "WindowFunction", "SerializationSchema",
    "SimpleStringSchema", "DeserializationSchema", "PythonIterator", "RichFunction", "RichMapFunction",
    "RichFlatMapFunction", "RichFilterFunction", "RichReduceFunction", "RichSinkFunction",
    "RichSourceFunction", "RichWindowFunction",
]

RichFunction = Function
RichMapFunction = MapFunction
RichFlatMapFunction = FlatMapFunction
RichFilterFunction = FilterFunction
RichReduceFunction = ReduceFunction
RichSinkFunction = SinkFunction
RichSourceFunction = SourceFunction
RichWindowFunction = WindowFunction


class PythonIterator:
    """A source for ``env.from_collection(iterator)``: implement ``hasNext()`` and
    ``next()``. ``next()`` may also end the stream by raising
    ``java.util.NoSuchElementException``. Instances are Python iterators as well."""

    def hasNext(self) -> bool:
        raise NotImplementedError("implement hasNext()")

    def next(self) -> Any:
        raise NotImplementedError("implement next()")

    def __iter__(self) -> Iterator[Any]:
        return iterate_java_style(self)
