"""Stand-ins for the PyFlink names ferroflow does not have.

Importing one works, so a script's import lines pass; using it (calling it, reading an
attribute such as ``KafkaSource.builder``, or subclassing it) raises ``UnsupportedApiError``
with one line naming it and what to use instead, at the user's own line, never an
``AttributeError`` from deep inside."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Dict, NoReturn, Tuple

from .errors import UnsupportedApiError

__all__ = ["REASONS", "stand_in", "refuse"]

#: Why a group of PyFlink names is missing, and what to use instead (one sentence each).
REASONS: Dict[str, str] = {
    "jvm": "it is part of Flink's Java runtime, and ferroflow runs without a JVM; "
           "nothing replaces it (see docs/pyflink.md)",
    "table": "ferroflow has no Table API or SQL; write the job with the DataStream API "
             "(docs/pyflink.md, 'Table API')",
    "kafka": "this part of PyFlink's Kafka connector is not in ferroflow; use KafkaSource/KafkaSink with "
             "their builders, the JSON/CSV row schemas, SimpleStringSchema or ByteArraySchema "
             "(docs/connectors.md)",
    "connector": "this connector is Flink's Java connector; write to the system from a SinkFunction "
                 "(or read it from a SourceFunction) with its Python client",
    "connector_base": "ferroflow's sources and sinks are FileSource/FileSink, add_source(SourceFunction), "
                      "from_collection, from_sequence and add_sink(SinkFunction)",
    "bulk": "ORC and Avro formats and file compaction are not in ferroflow; Parquet, CSV and JSON lines "
            "are (docs/connectors.md)",
    "async": "async I/O is not in ferroflow; call the service from a map or process function "
             "(run the job with more workers for concurrency)",
    "state_backend": "ferroflow keeps keyed state in its engine and snapshots it into checkpoints; "
                     "drop the set_state_backend(...) call",
    "checkpoint_storage": "set the checkpoint directory with "
                          "env.get_checkpoint_config().set_checkpoint_storage_dir(path)",
    "slots": "ferroflow has no slots: each worker runs every operator; drop the call",
    "operator_state": "ferroflow has no operator state store; snapshot a source's state with "
                      "snapshot_state()/initialize_state() (docs/fault_tolerance.md)",
    "window_internals": "this is one of Flink's internal window classes; use "
                        "KeyedStream.count_window(size[, slide]) or a Trigger subclass",
    "python_env": "ferroflow runs your functions in the interpreter that runs the job; install packages "
                  "into it with pip and drop the call",
    "execute_async": "run the job with env.execute(), or in a thread of your own",
    "java_input": "Java input formats need a JVM; use FileSource, add_source(SourceFunction) "
                  "or from_collection",
    "cache": "ferroflow does not cache streams between jobs; write the stream to files with FileSink "
             "and read them in the next job",
}


def refuse(what: str, reason: str) -> NoReturn:
    """Raises the one-line ``UnsupportedApiError`` for ``what`` (a PyFlink name)."""
    raise UnsupportedApiError(f"{what} is not supported by ferroflow: {REASONS[reason]}")


class _StandIn:
    """What a PyFlink name ferroflow lacks is bound to: any use of it refuses."""

    __slots__ = ("_what", "_reason")

    def __init__(self, what: str, reason: str) -> None:
        object.__setattr__(self, "_what", what)
        object.__setattr__(self, "_reason", reason)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        refuse(self._what, self._reason)

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)  # the import system and pickle probe dunders
        refuse(f"{self._what}.{name}", self._reason)

    def __mro_entries__(self, bases: Tuple[Any, ...]) -> NoReturn:
        refuse(self._what, self._reason)  # `class MyFunction(AsyncFunction):`

    def __getitem__(self, item: Any) -> NoReturn:
        refuse(self._what, self._reason)  # `AsyncFunction[IN, OUT]`

    def __repr__(self) -> str:
        return f"<{self._what}: not supported by ferroflow>"


def stand_in(what: str, reason: str) -> Any:
    """The stand-in for the PyFlink name ``what`` (e.g. ``pyflink.table.TableEnvironment``)."""
    if reason not in REASONS:
        raise KeyError(f"ferroflow bug: no reason {reason!r} for {what}")
    return _StandIn(what, reason)
