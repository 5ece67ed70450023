"""ferroflow: Flink-style stream processing in plain Python, on a Rust engine.

    from ferroflow import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_elements("a b", "b").flat_map(str.split).print()
    env.execute("words")
"""

from ._errors import FerroflowError, JobExecutionException
from ._plan import RuntimeContext
from .datastream import (DataStream, DataStreamSink, IterativeStream, KeyedStream, SplitStream, WindowedStream,
                         WriteMode)
from .environment import JobExecutionResult, StreamExecutionEnvironment
from .functions import (DiscardingSink, FilterFunction, FlatMapFunction, Function, KeySelector, MapFunction, OutputSelector,
                        ParallelSourceFunction, ReduceFunction, SerializationSchema, SimpleStringSchema, SinkFunction,
                        SourceFunction,
                        WindowFunction)
from .windowing import GlobalWindow, Time, TimeWindow

__version__ = "0.1.0"

__all__ = [
    "StreamExecutionEnvironment", "JobExecutionResult", "DataStream", "KeyedStream", "WindowedStream",
    "SplitStream", "IterativeStream", "DataStreamSink", "WriteMode", "Time", "TimeWindow", "GlobalWindow",
    "Function", "MapFunction", "FlatMapFunction", "FilterFunction", "KeySelector", "ReduceFunction",
    "WindowFunction", "OutputSelector", "SinkFunction", "DiscardingSink", "SourceFunction", "ParallelSourceFunction", "SerializationSchema",
    "SimpleStringSchema", "RuntimeContext", "FerroflowError", "JobExecutionException",
]
