"""ferroflow: Flink-style stream processing in plain Python, on a Rust engine.

    from ferroflow import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_elements("a b", "b").flat_map(str.split).print()
    env.execute("words")
"""

from ._errors import CheckpointingWarning, FerroflowError, InternalError, InvalidUseError, JobExecutionException
from ._plan import RuntimeContext
from .checkpoint_config import CheckpointConfig, CheckpointingMode, ExternalizedCheckpointRetention
from .datastream import (AllWindowedStream, DataStream, DataStreamSink, IterativeStream, KeyedStream, OutputTag,
                         SplitStream, WindowedStream, WriteMode)
from .connected import ConnectedStreams
from .environment import JobExecutionResult, StreamExecutionEnvironment
from .execution_config import ExecutionConfig
from .execution_mode import RuntimeExecutionMode
from .functions import (AggregateFunction, AllWindowFunction, BroadcastProcessFunction, CoFlatMapFunction,
                        CoGroupFunction, CoMapFunction, CoProcessFunction, DiscardingSink, FilterFunction,
                        FlatMapFunction, Function, JoinFunction, KeyedBroadcastProcessFunction,
                        KeyedCoProcessFunction, KeyedProcessFunction, KeySelector, MapFunction, OutputSelector,
                        ParallelSourceFunction, Partitioner, ProcessAllWindowFunction, ProcessFunction, ProcessJoinFunction,
                        ProcessWindowFunction, ReduceFunction, SerializationSchema, DeserializationSchema,
                        SimpleStringSchema, ByteArraySchema, SinkFunction, Encoder,
                        SourceFunction, TwoPhaseCommitSinkFunction, WindowFunction)
from .joins import CoGroupedStreams, JoinedStreams
from .restart_strategy import RestartStrategies
from .row import Row, RowKind
from .semantics import Semantics
from .state import (AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
                    StateTtlConfig, ValueStateDescriptor)
from .time_domain import TimeDomain
from .timerservice import TimerService
from .typeinfo import TypeInformation, Types
from .watermarks import TimeCharacteristic, TimestampAssigner, WatermarkStrategy
from .windowing import Duration, GlobalWindow, Time, TimeWindow

__version__ = "0.1.0"

__all__ = [
    "StreamExecutionEnvironment", "JobExecutionResult", "ExecutionConfig", "DataStream", "KeyedStream", "WindowedStream",
    "AllWindowedStream", "SplitStream", "IterativeStream", "DataStreamSink", "WriteMode", "OutputTag", "Time",
    "Duration", "TimeWindow", "GlobalWindow", "TimeCharacteristic", "TimestampAssigner", "WatermarkStrategy",
    "Function", "MapFunction", "FlatMapFunction", "FilterFunction", "KeySelector", "ReduceFunction",
    "WindowFunction", "AllWindowFunction", "ProcessWindowFunction", "ProcessAllWindowFunction", "AggregateFunction",
    "OutputSelector", "SinkFunction", "TwoPhaseCommitSinkFunction", "DiscardingSink", "SourceFunction", "ParallelSourceFunction",
    "SerializationSchema", "DeserializationSchema", "SimpleStringSchema", "ByteArraySchema", "Encoder", "RuntimeContext", "FerroflowError", "JobExecutionException",
    "InternalError", "InvalidUseError", "CheckpointingWarning", "ProcessFunction", "KeyedProcessFunction",
    "CoMapFunction", "CoFlatMapFunction", "CoProcessFunction", "KeyedCoProcessFunction", "BroadcastProcessFunction",
    "KeyedBroadcastProcessFunction", "ProcessJoinFunction", "JoinFunction", "CoGroupFunction", "JoinedStreams",
    "CoGroupedStreams", "ValueStateDescriptor", "ListStateDescriptor", "MapStateDescriptor", "ReducingStateDescriptor",
    "AggregatingStateDescriptor", "StateTtlConfig", "TimeDomain", "TimerService", "ConnectedStreams", "Partitioner",
    "CheckpointConfig", "CheckpointingMode", "ExternalizedCheckpointRetention", "RestartStrategies",
    "Row", "RowKind", "Types", "TypeInformation",
    "RuntimeExecutionMode", "Semantics",
]
