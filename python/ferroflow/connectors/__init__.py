"""Connectors with PyFlink's builders: ``env.from_source(source, ...)`` and
``stream.sink_to(sink)`` take what these build.

- ``ferroflow.connectors.file_system``: ``FileSource`` (text lines of files and folders,
  split across workers) and ``FileSink`` (part files, rolled and bucketed, committed
  exactly-once with checkpoints).
- ``ferroflow.connectors.partitioned``: your own connector in Python, with parts that
  resume from checkpoints: ``FixedPartitionedSource``, ``DynamicSource``,
  ``FixedPartitionedSink``.
"""

from .file_system import (BucketAssigner, DefaultRollingPolicy, FileSink, FileSource, FileSourceBuilder,
                          OnCheckpointRollingPolicy, OutputFileConfig, RollingPolicy, StreamFormat)
from .partitioned import (DynamicSource, FixedPartitionedSink, FixedPartitionedSource, StatefulSinkPartition,
                          StatefulSourcePartition, StatelessSourcePartition)

__all__ = ["FileSource", "FileSourceBuilder", "StreamFormat", "FileSink", "OutputFileConfig", "RollingPolicy",
           "DefaultRollingPolicy", "OnCheckpointRollingPolicy", "BucketAssigner", "FixedPartitionedSource",
           "StatefulSourcePartition", "DynamicSource", "StatelessSourcePartition", "FixedPartitionedSink",
           "StatefulSinkPartition"]
