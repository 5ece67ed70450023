"""Connectors with PyFlink's builders: ``env.from_source(source, ...)`` and
``stream.sink_to(sink)`` take what these build.

- ``ferroflow.connectors.file_system``: ``FileSource`` (text lines of files and folders,
  split across workers) and ``FileSink`` (part files, rolled and bucketed, committed
  exactly-once with checkpoints).
"""

from .file_system import (BucketAssigner, DefaultRollingPolicy, FileSink, FileSource, FileSourceBuilder,
                          OnCheckpointRollingPolicy, OutputFileConfig, RollingPolicy, StreamFormat)

__all__ = ["FileSource", "FileSourceBuilder", "StreamFormat", "FileSink", "OutputFileConfig", "RollingPolicy",
           "DefaultRollingPolicy", "OnCheckpointRollingPolicy", "BucketAssigner"]
