//! The Python plan turned into the engine's plan. Each Python node has a `name`,
//! `inputs`, `parallelism` and a `kind`: one of the typed node kinds declared in
//! `python/ferroflow/_nodes.py`, the contract between the API and this module.
//! [`node_kind`] dispatches on the kind's `KIND` and reads its fields through a struct
//! below of the same name (deriving `FromPyObject`: fields are read as attributes).
//! The API made every node, so a node this module cannot read is ferroflow's bug: the
//! job fails with an internal error naming the node.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use ferroflow_engine::connectors::testing::{TestEvent, TestingSource};
use ferroflow_engine::connectors::text::EncodingErrors;
use ferroflow_engine::connectors::{files, formats, sinks, sources, text_file};
use ferroflow_engine::functions::*;
use ferroflow_engine::key::KeyEncoder;
use ferroflow_engine::process::SharedContext;
use ferroflow_engine::windows::event_time::{Assigner, Evictor, GapFn, SessionGap, TimeDomain, Trigger, WindowConfig};
use ferroflow_engine::{
    ApplyFactory, ErrorKind, JobError, NodeKind, Partitioning, Plan, RuntimeMode, Semantics, UdfError, UdfResult,
    WatermarkSpec, WindowFunction, WindowSpec,
};

use crate::batch::{BatchFormat, PyBatchTransform};
use crate::errors::udf_error;
use crate::process::{Ns, StateStore};
use crate::record::{describe, type_name, PyRec};
use crate::sources::{FunctionSource, IteratorSource};
use crate::triggers::{PyEvictor, PyTrigger};
use crate::udf::*;

// -- the node kinds, as `_nodes.py` declares them -------------------------------------------

#[derive(FromPyObject)]
struct Collection {
    make: Py<PyAny>,
}

#[derive(FromPyObject)]
struct FunctionSourceKind {
    runner: Py<PyAny>,
    parallel: bool,
}

#[derive(FromPyObject)]
struct TextFile {
    paths: Vec<String>,
    recursive: bool,
    encoding_errors: String,
    monitor_ms: Option<u64>,
}

#[derive(FromPyObject)]
struct CsvSpec {
    delimiter: String,
    quote: Option<String>,
    escape: Option<String>,
    header: bool,
    skip_first_data_row: bool,
    comment: Option<String>,
    null_value: Option<String>,
    columns: Vec<(String, String)>,
}

#[derive(FromPyObject)]
struct FormatFiles {
    paths: Vec<String>,
    recursive: bool,
    format: String,
    csv: Option<CsvSpec>,
    rows: bool,
    batch_rows: Option<usize>,
    skip_malformed: bool,
    monitor_ms: Option<u64>,
}

#[derive(FromPyObject)]
struct Sequence {
    start: i64,
    end: i64,
}

#[derive(FromPyObject)]
struct Socket {
    host: String,
    port: u16,
    delimiter: String,
    encoding_errors: String,
}

#[derive(FromPyObject)]
struct TestingSourceKind<'py> {
    events: Bound<'py, PyAny>,
    processing_time_start: i64,
}

/// `PartitionedSource` and `PartitionedSink`: the API's `_Parts` object.
#[derive(FromPyObject)]
struct Partitioned {
    parts: Py<PyAny>,
}

/// `Map`, `Filter`, `FlatMap`, `KeyBy`, `Reduce` and `SinkFunction`: a user function.
#[derive(FromPyObject)]
struct WithUdf {
    udf: Py<PyAny>,
}

#[derive(FromPyObject)]
struct Batch {
    udf: Py<PyAny>,
    batch_format: String,
}

#[derive(FromPyObject)]
struct KeyByField<'py> {
    field: Bound<'py, PyAny>,
}

#[derive(FromPyObject)]
struct Aggregate<'py> {
    op: String,
    field: Bound<'py, PyAny>,
    what: Option<String>,
    key_field: Option<isize>,
}

#[derive(FromPyObject)]
struct CountPairs<'py> {
    field: Bound<'py, PyAny>,
    udf: Option<Py<PyAny>>,
}

/// Its `assigner`, `trigger` and `evictor` are typed too (`TumblingSpec`... below).
#[derive(FromPyObject)]
struct Window<'py> {
    assigner: Bound<'py, PyAny>,
    trigger: Option<Bound<'py, PyAny>>,
    evictor: Option<Bound<'py, PyAny>>,
    allowed_lateness: i64,
    late_output_tag: Option<String>,
    reduce: Option<Py<PyAny>>,
    builtin: Option<Aggregate<'py>>,
    aggregate: Option<Py<PyAny>>,
    process: Option<Py<PyAny>>,
    then: Option<Py<PyAny>>,
}

#[derive(FromPyObject)]
pub(crate) struct AssignTimestamps<'py> {
    assigner: Option<Py<PyAny>>,
    field: Option<Bound<'py, PyAny>>,
    out_of_orderness: Option<i64>,
    idleness: Option<i64>,
}

#[derive(FromPyObject)]
struct Print {
    text: Option<Py<PyAny>>,
}

#[derive(FromPyObject)]
struct Iterate {
    max_wait_ms: Option<u64>,
    feedback: Option<usize>,
}

#[derive(FromPyObject)]
struct WriteText {
    path: String,
    overwrite: bool,
}

#[derive(FromPyObject)]
struct WriteFiles {
    path: String,
    prefix: String,
    suffix: String,
    part_size: Option<u64>,
    rollover_interval: Option<u64>,
    inactivity_interval: Option<u64>,
    bucket: Option<Py<PyAny>>,
    format: String,
    csv: Option<CsvSpec>,
    parquet: Option<Vec<(String, String)>>,
}

#[derive(FromPyObject)]
struct WriteSocket {
    host: String,
    port: u16,
    serialize: Py<PyAny>,
}

#[derive(FromPyObject)]
struct TumblingSpec {
    event_time: bool,
    size: i64,
    offset: i64,
}

#[derive(FromPyObject)]
struct SlidingSpec {
    event_time: bool,
    size: i64,
    slide: i64,
    offset: i64,
}

#[derive(FromPyObject)]
struct SessionSpec {
    event_time: bool,
    gap: Option<i64>,
    gap_fn: Option<Py<PyAny>>,
}

#[derive(FromPyObject)]
struct CountTriggerSpec {
    count: u64,
}

/// `ContinuousEventTimeTriggerSpec` and `ContinuousProcessingTimeTriggerSpec`.
#[derive(FromPyObject)]
struct ContinuousTriggerSpec {
    interval: i64,
}

#[derive(FromPyObject)]
struct PurgingTriggerSpec<'py> {
    inner: Bound<'py, PyAny>,
}

/// `CustomTriggerSpec`: a user's `Trigger` subclass (its `TriggerUdf`).
#[derive(FromPyObject)]
struct CustomTriggerSpec {
    udf: Py<PyAny>,
    can_merge: bool,
}

/// `CustomEvictorSpec`: a user's `Evictor` subclass (its `EvictorUdf`).
#[derive(FromPyObject)]
struct CustomEvictorSpec {
    udf: Py<PyAny>,
}

#[derive(FromPyObject)]
struct CountEvictorSpec {
    count: usize,
    do_evict_after: bool,
}

#[derive(FromPyObject)]
struct TimeEvictorSpec {
    window_size: i64,
    do_evict_after: bool,
}

#[derive(FromPyObject)]
struct Partition {
    how: String,
    partitioner: Option<Py<PyAny>>,
}

#[derive(FromPyObject)]
struct CoTransformKind {
    udf: Py<PyAny>,
    step: String,
}

#[derive(FromPyObject)]
struct ProcessKind {
    udf: Py<PyAny>,
    side_tags: Vec<String>,
}

#[derive(FromPyObject)]
struct ProcessSideOutput {
    index: usize,
}

/// The `KIND` of a typed value of `_nodes.py` (a node kind or a window setting).
fn kind_of(value: &Bound<'_, PyAny>) -> PyResult<String> {
    value.getattr(pyo3::intern!(value.py(), "KIND"))?.extract()
}

fn bind_udf(udf: &Arc<Py<PyAny>>, ctx: &WorkerContext) -> UdfResult<BoundUdf> {
    Python::attach(|py| BoundUdf::new(py, udf, ctx))
}

/// Why a node could not be read: always ferroflow's bug (the API made the node).
pub(crate) fn bug(message: impl Into<String>) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(message.into())
}

/// Converts one Python node kind (see `_nodes.py`) into an engine node kind. `tag` is
/// its `KIND`, `name` the node's name. `own`: object reuse is off, so sources make
/// each record their own as they take it (see `copies`). Errors are ferroflow's bugs
/// (see [`from_python`]); None: no such kind.
fn node_kind(kind: &Bound<'_, PyAny>, tag: &str, name: &str, own: bool) -> PyResult<Option<NodeKind<PyRec>>> {
    let udf = || -> PyResult<Arc<Py<PyAny>>> { Ok(Arc::new(kind.extract::<WithUdf>()?.udf)) };
    Ok(Some(match tag {
        "collection" => {
            let make = Arc::new(kind.extract::<Collection>()?.make);
            NodeKind::Source {
                factory: Arc::new(move |_ctx| {
                    Python::attach(|py| {
                        // Calling `make` may raise for the user's collection; what it returns
                        // is the API's own iterator, so anything else is ferroflow's bug.
                        let made = make.bind(py).call0().map_err(|e| udf_error(py, e, None))?;
                        let items = made.try_iter().map_err(|e| UdfError::internal(e.to_string()))?;
                        Ok(Box::new(IteratorSource::new(items.unbind(), own)) as Box<dyn SourceReader<PyRec>>)
                    })
                }),
                parallel: false,
            }
        }
        "function_source" => {
            let FunctionSourceKind { runner, parallel } = kind.extract()?;
            let runner = Arc::new(runner);
            NodeKind::Source {
                factory: Arc::new(move |ctx| {
                    Python::attach(|py| {
                        let f = runner.clone_ref(py);
                        let source = FunctionSource::start(py, f, ctx.waker.clone(), (ctx.index, ctx.peers), own)?;
                        Ok(Box::new(source) as Box<dyn SourceReader<PyRec>>)
                    })
                }),
                parallel,
            }
        }
        "kafka_source" => NodeKind::Source { factory: crate::kafka::source(kind, name)?, parallel: true },
        "kafka_sink" => NodeKind::Sink(crate::kafka::sink(kind)?),
        "nexmark" => NodeKind::Source { factory: crate::nexmark::source(kind)?, parallel: true },
        "nexmark_files" => NodeKind::Source { factory: crate::nexmark::files(kind)?, parallel: true },
        "text_file" => {
            let TextFile { paths, recursive, encoding_errors: errors, monitor_ms } = kind.extract()?;
            let listing = files::Listing {
                paths: paths.into_iter().map(Into::into).collect(),
                recursive,
                monitor: monitor_ms.map(Duration::from_millis),
            };
            let format = formats::text_lines(encoding_errors(&errors)?, text_file::SPLIT_MIN_BYTES);
            NodeKind::Source { factory: files::files_source(listing, format), parallel: true }
        }
        "format_files" => {
            let f: FormatFiles = kind.extract()?;
            let listing = files::Listing {
                paths: f.paths.into_iter().map(Into::into).collect(),
                recursive: f.recursive,
                monitor: f.monitor_ms.map(Duration::from_millis),
            };
            let malformed = if f.skip_malformed { formats::Malformed::Skip } else { formats::Malformed::Fail };
            let values = crate::files::from_values(f.rows);
            let format = match f.format.as_str() {
                "json_lines" => formats::json_lines(values, malformed, text_file::SPLIT_MIN_BYTES),
                "csv" => formats::csv::csv_format(csv_options(f.csv)?, values, malformed),
                "parquet" => {
                    let output = match f.batch_rows {
                        Some(rows) => {
                            formats::parquet::ParquetOutput::Batches { convert: crate::files::from_batches(), rows }
                        }
                        None => formats::parquet::ParquetOutput::Rows(values),
                    };
                    formats::parquet::parquet_format(output, malformed)
                }
                other => return Err(bug(format!("unknown file format {other:?}"))),
            };
            NodeKind::Source { factory: files::files_source(listing, format), parallel: true }
        }
        "sequence" => {
            let Sequence { start, end } = kind.extract()?;
            NodeKind::Source { factory: sources::sequence(start, end), parallel: true }
        }
        "socket" => {
            let Socket { host, port, delimiter, encoding_errors: errors } = kind.extract()?;
            let delimiter = *delimiter.as_bytes().first().unwrap_or(&b'\n');
            NodeKind::Source {
                factory: sources::socket_text(host, port, delimiter, encoding_errors(&errors)?),
                parallel: false,
            }
        }
        "partitioned_source" => {
            let parts = Arc::new(kind.extract::<Partitioned>()?.parts);
            NodeKind::Source {
                factory: Arc::new(move |ctx| {
                    Python::attach(|py| {
                        let source = crate::partitioned::PartitionedSource::new(py, parts.clone_ref(py), ctx, own)?;
                        Ok(Box::new(source) as Box<dyn SourceReader<PyRec>>)
                    })
                }),
                parallel: true,
            }
        }
        "map" | "filter" | "flat_map" => {
            let udf = udf()?;
            let step = match tag {
                "map" => Step::Map,
                "filter" => Step::Filter,
                _ => Step::FlatMap,
            };
            NodeKind::Transform(Arc::new(move |ctx| {
                Ok(Box::new(PyTransform { f: bind_udf(&udf, ctx)?, step }) as Box<dyn Transform<PyRec>>)
            }))
        }
        "map_batch" | "filter_batch" | "flat_map_batch" => {
            let batch = kind.extract::<Batch>()?;
            let udf = Arc::new(batch.udf);
            let step = match tag {
                "map_batch" => Step::Map,
                "filter_batch" => Step::Filter,
                _ => Step::FlatMap,
            };
            let format = BatchFormat::parse(&batch.batch_format)
                .ok_or_else(|| bug(format!("unknown batch format {:?}", batch.batch_format)))?;
            NodeKind::Transform(Arc::new(move |ctx| {
                Ok(Box::new(PyBatchTransform { f: bind_udf(&udf, ctx)?, step, format }) as Box<dyn Transform<PyRec>>)
            }))
        }
        "key_by" => {
            let udf = udf()?;
            NodeKind::KeyBy(Arc::new(move |ctx| {
                Ok(Box::new(PyKeySelector { f: bind_udf(&udf, ctx)?, enc: KeyEncoder::new() })
                    as Box<dyn KeySelector<PyRec>>)
            }))
        }
        "key_by_field" => {
            NodeKind::KeyBy(crate::builtins::field_key_factory(name, &kind.extract::<KeyByField>()?.field)?)
        }
        "aggregate" => NodeKind::Reduce(aggregate(name, kind.extract()?)?),
        "count_pairs" => {
            let CountPairs { field, udf } = kind.extract()?;
            NodeKind::Transform(crate::builtins::count_pairs_factory(name, &field, udf)?)
        }
        "reduce" => NodeKind::Reduce(reducer(udf()?)),
        "window" => window(kind.py(), name, kind.extract()?)?,
        "side_output" => NodeKind::LateOutput,
        "assign_timestamps" => {
            let (assigner, watermarks, idleness_ms) = timestamps(name, kind.extract()?)?;
            NodeKind::AssignTimestamps { assigner, watermarks, idleness_ms }
        }
        "testing_source" => {
            let TestingSourceKind { events, processing_time_start: start } = kind.extract()?;
            let events = Arc::new(test_events(&events)?);
            NodeKind::Source {
                factory: Arc::new(move |_ctx| {
                    let events: Vec<TestEvent<PyRec>> = Python::attach(|py| {
                        events
                            .iter()
                            .map(|e| match e {
                                TestEvent::Record(r) => TestEvent::Record(PyRec(r.0.clone_ref(py), r.1)),
                                TestEvent::Watermark(t) => TestEvent::Watermark(*t),
                                TestEvent::ProcessingTime(t) => TestEvent::ProcessingTime(*t),
                            })
                            .collect()
                    });
                    Ok(Box::new(TestingSource::new(events, start)) as Box<dyn SourceReader<PyRec>>)
                }),
                parallel: false,
            }
        }
        "union" => NodeKind::Union,
        "iterate" => {
            let Iterate { max_wait_ms, feedback } = kind.extract()?;
            NodeKind::Iterate { feedback, max_wait: max_wait_ms.filter(|&m| m > 0).map(Duration::from_millis) }
        }
        "print" => {
            let Print { text } = kind.extract()?;
            let text_of = text.map(Arc::new);
            NodeKind::Sink(Arc::new(move |ctx| {
                let prefix = (ctx.peers > 1).then(|| format!("{}> ", ctx.index + 1));
                Ok(Box::new(PrintSink { prefix, text_of: text_of.clone(), text: String::new() })
                    as Box<dyn Sink<PyRec>>)
            }))
        }
        "discard" => NodeKind::Sink(Arc::new(|_ctx| {
            Ok(Box::new(closures::SinkFn(|batch: &mut Vec<PyRec>| {
                batch.clear();
                Ok(())
            })) as Box<dyn Sink<PyRec>>)
        })),
        "sink_function" => {
            let udf = udf()?;
            NodeKind::Sink(Arc::new(move |ctx| {
                Ok(Box::new(PyFunctionSink { f: bind_udf(&udf, ctx)? }) as Box<dyn Sink<PyRec>>)
            }))
        }
        "two_phase_sink" => {
            let udf = udf()?;
            NodeKind::Sink(Arc::new(move |ctx| {
                Ok(Box::new(crate::two_phase::TwoPhaseSink::new(bind_udf(&udf, ctx)?)?) as Box<dyn Sink<PyRec>>)
            }))
        }
        "partitioned_sink" => {
            let parts = Arc::new(kind.extract::<Partitioned>()?.parts);
            NodeKind::Sink(Arc::new(move |ctx| {
                Python::attach(|py| {
                    let sink = crate::partitioned::PartitionedSink::new(py, parts.clone_ref(py), ctx)?;
                    Ok(Box::new(sink) as Box<dyn Sink<PyRec>>)
                })
            }))
        }
        "write_text" => {
            let WriteText { path, overwrite } = kind.extract()?;
            NodeKind::Sink(sinks::text_file(path, overwrite, str_lines()))
        }
        "write_files" => {
            let WriteFiles {
                path,
                prefix,
                suffix,
                part_size,
                rollover_interval,
                inactivity_interval,
                bucket,
                format,
                csv,
                parquet,
            } = kind.extract()?;
            let bulk = match (format.as_str(), parquet) {
                ("parquet", Some(columns)) => {
                    Some(formats::writers::parquet_encoder(crate::files::to_values(), parquet_columns(columns)?))
                }
                _ => None,
            };
            let encode = match format.as_str() {
                "text" | "parquet" => str_lines(),
                "json_lines" => formats::writers::json_lines_encoder(crate::files::to_values()),
                "csv" => formats::writers::csv_encoder(crate::files::to_values(), csv_options(csv)?),
                other => return Err(bug(format!("unknown file sink format {other:?}"))),
            };
            let bucket = bucket.map(|f| {
                let f = Arc::new(f);
                Arc::new(move |now: i64| {
                    Python::attach(|py| {
                        let b = f.bind(py).call1((now,)).map_err(|e| udf_error(py, e, None))?;
                        b.extract::<String>().map_err(|_| {
                            UdfError::new(format!("a FileSink bucket must be a str, got {}", type_name(&b)))
                        })
                    })
                }) as sinks::BucketFn
            });
            let rolling =
                sinks::RollingPolicy { part_size, rollover_ms: rollover_interval, inactivity_ms: inactivity_interval };
            let config = sinks::PartFileConfig { prefix, suffix, rolling, bucket };
            NodeKind::Sink(match bulk {
                Some(bulk) => sinks::bulk_part_files(path, config, bulk),
                None => sinks::part_files(path, config, encode),
            })
        }
        "write_socket" => {
            let WriteSocket { host, port, serialize } = kind.extract()?;
            let serializer = Arc::new(serialize);
            let encode: sinks::Encode<PyRec> = Arc::new(move |batch, out| {
                Python::attach(|py| {
                    let f = serializer.bind(py);
                    for r in batch {
                        let x = r.0.bind(py);
                        let b = f.call1((x,)).map_err(|e| udf_error(py, e, Some(x)))?;
                        if let Ok(bytes) = b.cast::<PyBytes>() {
                            out.extend_from_slice(bytes.as_bytes());
                        } else if let Ok(s) = b.cast::<PyString>() {
                            out.extend_from_slice(s.to_string_lossy().as_bytes());
                        } else if let Ok(v) = b.extract::<Vec<u8>>() {
                            out.extend_from_slice(&v);
                        } else {
                            return Err(UdfError::new(format!(
                                "serialize() must return bytes or str, got {}",
                                type_name(&b)
                            ))
                            .with_record(crate::record::describe(x)));
                        }
                    }
                    Ok(())
                })
            });
            NodeKind::Sink(sinks::socket(host, port, encode))
        }
        "partition" => {
            let Partition { how, partitioner } = kind.extract()?;
            NodeKind::Partition(match (how.as_str(), partitioner) {
                ("rebalance", None) => Partitioning::Rebalance,
                ("shuffle", None) => Partitioning::Shuffle,
                ("rescale", None) => Partitioning::Rescale,
                ("forward", None) => Partitioning::Forward,
                ("broadcast", None) => Partitioning::Broadcast,
                ("custom", Some(p)) => {
                    let udf = Arc::new(p);
                    Partitioning::Custom(Arc::new(move |ctx| {
                        Ok(Box::new(PyPartitioner { f: bind_udf(&udf, ctx)? }) as Box<dyn Partitioner<PyRec>>)
                    }))
                }
                (other, p) => return Err(bug(format!("partitioning '{other}' with partitioner {}", p.is_some()))),
            })
        }
        "co_transform" => {
            let CoTransformKind { udf, step } = kind.extract()?;
            let step = match step.as_str() {
                "map" => CoStep::Map,
                "flat_map" => CoStep::FlatMap,
                other => return Err(bug(format!("unknown co-function step '{other}'"))),
            };
            let udf = Arc::new(udf);
            NodeKind::CoTransform(Arc::new(move |ctx| {
                Ok(Box::new(PyCoTransform::new(bind_udf(&udf, ctx)?, step)?) as Box<dyn CoTransform<PyRec>>)
            }))
        }
        "process" => {
            let ProcessKind { udf, side_tags } = kind.extract()?;
            NodeKind::Process(crate::process::process_factory(Arc::new(udf), side_tags))
        }
        "process_side_output" => NodeKind::ProcessSideOutput(kind.extract::<ProcessSideOutput>()?.index),
        _ => return Ok(None),
    }))
}

/// A built-in aggregation (rolling, or a window's reduce).
fn aggregate(name: &str, a: Aggregate<'_>) -> PyResult<ReduceFactory<PyRec>> {
    crate::builtins::aggregate_factory(name, &a.op, &a.field, a.what, a.key_field)
}

/// The window node: its settings and its one window function.
fn window(py: Python<'_>, name: &str, w: Window<'_>) -> PyResult<NodeKind<PyRec>> {
    let windows = Arc::new(WindowObjects::new(py)?);
    let apply = |udf: Py<PyAny>| -> ApplyFactory<PyRec> {
        let (udf, windows) = (Arc::new(udf), windows.clone());
        Arc::new(move |ctx: &WorkerContext, state: &SharedContext<PyRec>| {
            Python::attach(|py| {
                let store = Py::new(py, StateStore { ctx: state.clone(), ns: Ns::Key })
                    .map_err(|e| UdfError::internal(format!("a window function could not be set up: {e}")))?;
                let (f, clear) = BoundUdf::window(py, &udf, ctx, store.into_any())?;
                Ok(Box::new(PyWindowApply { f, clear, windows: windows.clone_ref(py) }) as Box<dyn WindowApply<PyRec>>)
            })
        })
    };
    let aggregate_fn = |udf: Py<PyAny>| -> AggregateFactory<PyRec> {
        let udf = Arc::new(udf);
        Arc::new(move |ctx| Ok(Box::new(PyAggregate { f: bind_udf(&udf, ctx)? }) as Box<dyn WindowAggregate<PyRec>>))
    };
    let spec = WindowSpec::Custom(window_config(&w)?);
    let reduce = match (w.reduce, w.builtin) {
        (Some(udf), None) => Some(reducer(Arc::new(udf))),
        // Built-in aggregations (`window(...).sum(2)`) reduce in Rust.
        (None, Some(b)) => Some(aggregate(name, b)?),
        (None, None) => None,
        (Some(_), Some(_)) => return Err(bug("a window node with both reduce and builtin")),
    };
    let then = w.then.map(apply);
    let function =
        match (reduce, w.aggregate.map(aggregate_fn), w.process.map(apply), then) {
            (Some(r), None, None, None) => WindowFunction::Reduce(r),
            (Some(r), None, None, Some(t)) => WindowFunction::ReduceThen(r, t),
            (None, Some(a), None, None) => WindowFunction::Aggregate(a),
            (None, Some(a), None, Some(t)) => WindowFunction::AggregateThen(a, t),
            (None, None, Some(p), None) => WindowFunction::Apply(p),
            _ => return Err(bug(
                "a window node needs one of reduce, builtin, aggregate or process (then only after the first three)",
            )),
        };
    Ok(NodeKind::Window { spec, function })
}

/// A text source's `encoding_errors`.
/// `str(record)` and a newline per record, UTF-8 (`write_as_text`, Flink's
/// `SimpleStringEncoder`).
fn str_lines() -> sinks::Encode<PyRec> {
    Arc::new(|batch, out| {
        Python::attach(|py| {
            for r in batch {
                let x = r.0.bind(py);
                let s = x.str().map_err(|e| udf_error(py, e, Some(x)))?;
                out.extend_from_slice(s.to_string_lossy().as_bytes());
                out.push(b'\n');
            }
            Ok(())
        })
    })
}

/// The engine's CSV options from the API's `CsvSpec` (checked there: one-character
/// strings, known column types).
fn csv_options(spec: Option<CsvSpec>) -> PyResult<formats::csv::CsvOptions> {
    use formats::csv::{Column, CsvOptions};
    let Some(spec) = spec else { return Ok(CsvOptions::default()) };
    let byte = |what: &str, s: &str| -> PyResult<u8> {
        match s.as_bytes() {
            [b] => Ok(*b),
            _ => Err(bug(format!("CSV {what} must be one ASCII character, got {s:?}"))),
        }
    };
    let opt = |what: &str, s: Option<String>| s.map(|s| byte(what, &s)).transpose();
    let columns = spec
        .columns
        .into_iter()
        .map(|(name, kind)| {
            let column = match kind.as_str() {
                "string" => Column::String,
                "int" => Column::Int,
                "float" => Column::Float,
                "bool" => Column::Bool,
                other => return Err(bug(format!("unknown CSV column type {other:?}"))),
            };
            Ok((name, column))
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(CsvOptions {
        delimiter: byte("delimiter", &spec.delimiter)?,
        quote: opt("quote", spec.quote)?,
        escape: opt("escape", spec.escape)?,
        header: spec.header,
        skip_first_data_row: spec.skip_first_data_row,
        comment: opt("comment", spec.comment)?,
        null_value: spec.null_value,
        columns,
    })
}

/// The engine's Parquet columns from the API's (name, type) pairs.
fn parquet_columns(columns: Vec<(String, String)>) -> PyResult<Vec<(String, formats::writers::ParquetColumn)>> {
    use formats::writers::ParquetColumn as C;
    columns
        .into_iter()
        .map(|(name, kind)| {
            let c = match kind.as_str() {
                "bool" => C::Bool,
                "int32" => C::Int32,
                "int64" => C::Int64,
                "float32" => C::Float32,
                "float64" => C::Float64,
                "string" => C::String,
                "bytes" => C::Bytes,
                other => return Err(bug(format!("unknown Parquet column type {other:?}"))),
            };
            Ok((name, c))
        })
        .collect()
}

fn encoding_errors(name: &str) -> PyResult<EncodingErrors> {
    EncodingErrors::parse(name).map_err(|e| bug(e.to_string()))
}

/// The testing source's events: `("record", value, ts or None)`, `("watermark", t)`,
/// `("processing_time", t)`.
fn test_events(events: &Bound<'_, PyAny>) -> PyResult<Vec<TestEvent<PyRec>>> {
    let mut out = Vec::new();
    for e in events.try_iter()? {
        let e = e?;
        let tag: String = e.get_item(0)?.extract()?;
        out.push(match tag.as_str() {
            "record" => {
                let ts: Option<i64> = e.get_item(2)?.extract()?;
                TestEvent::Record(PyRec(e.get_item(1)?.unbind(), ts.unwrap_or(ferroflow_engine::time::NO_TIME)))
            }
            "watermark" => TestEvent::Watermark(e.get_item(1)?.extract()?),
            "processing_time" => TestEvent::ProcessingTime(e.get_item(1)?.extract()?),
            other => return Err(bug(format!("unknown testing event '{other}'"))),
        });
    }
    Ok(out)
}

/// A window's trigger: a built-in one, or a user's (its `TriggerUdf`, `can_merge()`).
enum TriggerOf {
    Builtin(Trigger),
    Custom(Arc<Py<PyAny>>, bool),
}

fn trigger_setting(t: &Bound<'_, PyAny>) -> PyResult<TriggerOf> {
    if kind_of(t)? == "custom" {
        let CustomTriggerSpec { udf, can_merge } = t.extract()?;
        return Ok(TriggerOf::Custom(Arc::new(udf), can_merge));
    }
    trigger_of(t).map(TriggerOf::Builtin)
}

fn trigger_of(t: &Bound<'_, PyAny>) -> PyResult<Trigger> {
    Ok(match kind_of(t)?.as_str() {
        "event_time" => Trigger::EventTime,
        "processing_time" => Trigger::ProcessingTime,
        "count" => Trigger::Count(t.extract::<CountTriggerSpec>()?.count),
        "continuous_event_time" => Trigger::ContinuousEventTime(t.extract::<ContinuousTriggerSpec>()?.interval),
        "continuous_processing_time" => {
            Trigger::ContinuousProcessingTime(t.extract::<ContinuousTriggerSpec>()?.interval)
        }
        "purging" => Trigger::purging(trigger_of(&t.extract::<PurgingTriggerSpec>()?.inner)?),
        other => return Err(bug(format!("unknown trigger '{other}'"))),
    })
}

/// Assigner, trigger, evictor and lateness of a window node; per worker, because a
/// dynamic session gap is a user function.
fn window_config(w: &Window<'_>) -> PyResult<WindowConfigFactory<PyRec>> {
    let domain = |event_time: bool| if event_time { TimeDomain::EventTime } else { TimeDomain::ProcessingTime };
    let a = &w.assigner;
    let (shape, domain, gap_fn) = match kind_of(a)?.as_str() {
        "tumbling" => {
            let TumblingSpec { event_time, size, offset } = a.extract()?;
            (Shape::Tumbling(size, offset), domain(event_time), None)
        }
        "sliding" => {
            let SlidingSpec { event_time, size, slide, offset } = a.extract()?;
            (Shape::Sliding(size, slide, offset), domain(event_time), None)
        }
        "session" => {
            let SessionSpec { event_time, gap, gap_fn } = a.extract()?;
            if gap.is_none() && gap_fn.is_none() {
                return Err(bug("a session window needs 'gap' or 'gap_fn'"));
            }
            (Shape::Session(gap), domain(event_time), gap_fn.map(Arc::new))
        }
        "global" => (Shape::Global, TimeDomain::EventTime, None),
        other => return Err(bug(format!("unknown window assigner '{other}'"))),
    };
    let trigger = w.trigger.as_ref().map(trigger_setting).transpose()?;
    let mut custom_evictor: Option<Arc<Py<PyAny>>> = None;
    let (evictor, evict_after) = match &w.evictor {
        Some(e) => match kind_of(e)?.as_str() {
            "count" => {
                let CountEvictorSpec { count, do_evict_after } = e.extract()?;
                (Some(Evictor::Count(count)), do_evict_after)
            }
            "time" => {
                let TimeEvictorSpec { window_size, do_evict_after } = e.extract()?;
                (Some(Evictor::Time(window_size)), do_evict_after)
            }
            "custom" => {
                custom_evictor = Some(Arc::new(e.extract::<CustomEvictorSpec>()?.udf));
                (None, false)
            }
            other => return Err(bug(format!("unknown evictor '{other}'"))),
        },
        None => (None, false),
    };
    let lateness = w.allowed_lateness;
    let late_output = w.late_output_tag.is_some();
    Ok(Arc::new(move |ctx, state| {
        let assigner = match (shape, &gap_fn) {
            (Shape::Tumbling(size, offset), _) => Assigner::Tumbling { domain, size, offset },
            (Shape::Sliding(size, slide, offset), _) => Assigner::Sliding { domain, size, slide, offset },
            (Shape::Session(Some(gap)), _) => Assigner::Session { domain, gap: SessionGap::Static(gap) },
            (Shape::Session(None), Some(f)) => {
                let f = bind_udf(f, ctx)?;
                let gap: GapFn<PyRec> = Box::new(move |r: &PyRec| {
                    Python::attach(|py| {
                        let x = r.0.bind(py);
                        let g = f.call.bind(py).call1((x,)).map_err(|e| udf_error(py, e, Some(x)))?;
                        crate::udf::int_ms(&g, "the session gap extractor")
                            .map_err(|e| e.with_record(crate::record::describe(x)))
                    })
                });
                Assigner::Session { domain, gap: SessionGap::Dynamic(gap) }
            }
            (Shape::Session(None), None) | (Shape::Global, _) => Assigner::Global,
        };
        let mut config = WindowConfig::new(assigner).allowed_lateness(lateness).evict_after(evict_after);
        match &trigger {
            Some(TriggerOf::Builtin(t)) => config = config.trigger(t.clone()),
            Some(TriggerOf::Custom(udf, can_merge)) => {
                let t = Python::attach(|py| PyTrigger::new(py, udf, *can_merge, ctx, state))?;
                config = config.trigger_function(Box::new(t));
            }
            None => {}
        }
        if let Some(e) = evictor {
            config = config.evictor(e);
        }
        if let Some(udf) = &custom_evictor {
            let e = Python::attach(|py| PyEvictor::new(py, udf, ctx))?;
            config = config.evictor_function(Box::new(e));
        }
        if late_output {
            config = config.side_output_late_data();
        }
        Ok(config)
    }))
}

/// The assigner's shape, parsed once; the assigner itself is made per worker.
#[derive(Clone, Copy)]
enum Shape {
    Tumbling(i64, i64),
    Sliding(i64, i64, i64),
    Session(Option<i64>),
    Global,
}

fn reducer(udf: Arc<Py<PyAny>>) -> ReduceFactory<PyRec> {
    Arc::new(move |ctx| Ok(Box::new(PyReducer { f: bind_udf(&udf, ctx)? }) as Box<dyn Reducer<PyRec>>))
}

/// The node fields besides its kind, as `environment._EngineNode` has them.
#[derive(FromPyObject)]
struct Node<'py> {
    name: String,
    inputs: Vec<usize>,
    parallelism: Option<usize>,
    kind: Bound<'py, PyAny>,
}

/// Builds the engine plan from the Python node list. The API built the list, so a
/// node that cannot be read is ferroflow's bug: an internal error naming the node.
pub fn from_python(nodes: &Bound<'_, PyAny>, object_reuse: bool) -> Result<Plan<PyRec>, JobError> {
    let internal = |operator: Option<&str>, message: String| JobError {
        operator: operator.map(str::to_string),
        ..JobError::new(ErrorKind::Internal, message)
    };
    let mut plan = Plan::new();
    for node in nodes.try_iter().map_err(|e| internal(None, format!("the plan could not be read: {e}")))? {
        let node: Node = node
            .and_then(|n| n.extract())
            .map_err(|e| internal(None, format!("a plan node could not be read: {e}")))?;
        let name = node.name.as_str();
        let Ok(tag) = kind_of(&node.kind) else {
            return Err(internal(Some(name), format!("unknown node kind: {}", describe(&node.kind))));
        };
        let kind = match node_kind(&node.kind, &tag, name, !object_reuse) {
            Ok(Some(kind)) => kind,
            Ok(None) => return Err(internal(Some(name), format!("unknown node kind '{tag}'"))),
            Err(e) => return Err(internal(Some(name), format!("its node kind '{tag}' could not be read: {e}"))),
        };
        plan.manual_processing_time |= tag == "testing_source";
        // A source kind says whether it ends by itself (`_nodes.Source.bounded`).
        let unbounded = matches!(kind, NodeKind::Source { .. })
            && !node.kind.getattr("bounded").and_then(|b| b.extract::<bool>()).unwrap_or(true);
        let id = plan.add(node.name, node.inputs, kind);
        if unbounded {
            plan.set_unbounded(id);
        }
        if let Some(p) = node.parallelism {
            plan.set_parallelism(id, p);
        }
    }
    Ok(plan)
}

/// `run_job`'s `semantics`: a `ferroflow.semantics.Semantics`, read by its attributes.
#[derive(FromPyObject)]
pub struct SemanticsArg {
    fire_partial_windows_at_end: bool,
    fire_processing_timers_at_end: bool,
}

/// The engine's semantics from `run_job`'s `runtime_mode` (a `RuntimeExecutionMode`'s
/// lower-case name) and `semantics` (None: ferroflow's defaults).
pub fn semantics(mode: &str, options: Option<SemanticsArg>) -> Result<Semantics, JobError> {
    let mode = match mode {
        "streaming" => RuntimeMode::Streaming,
        "batch" => RuntimeMode::Batch,
        "automatic" => RuntimeMode::Automatic,
        other => return Err(JobError::new(ErrorKind::Internal, format!("unknown runtime mode '{other}'"))),
    };
    let defaults = Semantics::default();
    Ok(match options {
        Some(o) => Semantics {
            mode,
            fire_partial_windows_at_end: o.fire_partial_windows_at_end,
            fire_processing_timers_at_end: o.fire_processing_timers_at_end,
        },
        None => Semantics { mode, ..defaults },
    })
}

/// A `WatermarkStrategy` as the API declares it (`AssignTimestamps`): the timestamp
/// assigner (per worker), the watermarks and the idleness timeout. Shared by the
/// `assign_timestamps` node and sources that make event time themselves (Kafka's).
pub(crate) fn timestamps(
    name: &str,
    a: AssignTimestamps<'_>,
) -> PyResult<(Option<TimestampFactory<PyRec>>, WatermarkSpec, Option<i64>)> {
    let AssignTimestamps { assigner, field, out_of_orderness, idleness } = a;
    let assigner = match (field, assigner) {
        (Some(field), _) => Some(crate::builtins::field_timestamp_factory(name, &field)?),
        (None, Some(a)) => {
            let udf = Arc::new(a);
            let f: TimestampFactory<PyRec> = Arc::new(move |ctx| {
                Ok(Box::new(PyTimestampAssigner { f: bind_udf(&udf, ctx)? }) as Box<dyn TimestampAssigner<PyRec>>)
            });
            Some(f)
        }
        (None, None) => None,
    };
    let watermarks = match out_of_orderness {
        None => WatermarkSpec::None,
        Some(bound_ms) => WatermarkSpec::BoundedOutOfOrderness { bound_ms },
    };
    Ok((assigner, watermarks, idleness))
}
