//! The Python plan (a list of nodes recorded by the DataStream API) turned into the
//! engine's plan. Each node has `kind`, `name`, `inputs` and a `params` dict.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use ferroflow_engine::connectors::testing::{TestEvent, TestingSource};
use ferroflow_engine::connectors::text::EncodingErrors;
use ferroflow_engine::connectors::{sinks, sources};
use ferroflow_engine::functions::*;
use ferroflow_engine::key::KeyEncoder;
use ferroflow_engine::windows::event_time::{Assigner, Evictor, GapFn, SessionGap, TimeDomain, Trigger, WindowConfig};
use ferroflow_engine::{NodeKind, Plan, UdfError, UdfResult, WatermarkSpec, WindowFunction, WindowSpec};

use crate::errors::udf_error;
use crate::record::{type_name, PyRec};
use crate::sources::{FunctionSource, IteratorSource};
use crate::udf::*;

pub(crate) fn param<'py, T: FromPyObjectOwned<'py>>(
    params: &Bound<'py, PyDict>,
    name: &str,
    node: &str,
) -> PyResult<T> {
    match params.get_item(name)? {
        Some(v) => v.extract::<T>().map_err(|e| {
            pyo3::exceptions::PyValueError::new_err(format!("{node}: parameter '{name}': {}", Into::<PyErr>::into(e)))
        }),
        None => Err(pyo3::exceptions::PyValueError::new_err(format!("{node}: missing parameter '{name}'"))),
    }
}

use pyo3::conversion::FromPyObjectOwned;

fn bind_udf(udf: &Arc<Py<PyAny>>, ctx: &WorkerContext) -> UdfResult<BoundUdf> {
    Python::attach(|py| BoundUdf::new(py, udf, ctx))
}

/// Converts one Python node's settings into an engine node kind.
/// `own`: object reuse is off, so sources make each record their own as they take it
/// (see `copies`).
fn node_kind(
    py: Python<'_>,
    kind: &str,
    name: &str,
    params: &Bound<'_, PyDict>,
    own: bool,
) -> PyResult<NodeKind<PyRec>> {
    let udf = || -> PyResult<Arc<Py<PyAny>>> { Ok(Arc::new(param::<Py<PyAny>>(params, "udf", name)?)) };
    Ok(match kind {
        "collection" => {
            let make = Arc::new(param::<Py<PyAny>>(params, "make", name)?);
            NodeKind::Source {
                factory: Arc::new(move |_ctx| {
                    Python::attach(|py| {
                        // Calling `make` may raise for the user's collection; what it returns
                        // is the API's own iterator, so anything else is ferroflow's bug.
                        let made = make.bind(py).call0().map_err(|e| udf_error(py, e, None))?;
                        let items = made.try_iter().map_err(|e| UdfError::internal(e.to_string()))?;
                        Ok(Box::new(IteratorSource { items: items.unbind(), own }) as Box<dyn SourceReader<PyRec>>)
                    })
                }),
                parallel: false,
            }
        }
        "function_source" => {
            let function = Arc::new(param::<Py<PyAny>>(params, "function", name)?);
            let parallel: bool = param(params, "parallel", name).unwrap_or(false);
            NodeKind::Source {
                factory: Arc::new(move |ctx| {
                    Python::attach(|py| {
                        let f = function.clone_ref(py);
                        let source = FunctionSource::start(py, f, ctx.waker.clone(), (ctx.index, ctx.peers), own)?;
                        Ok(Box::new(source) as Box<dyn SourceReader<PyRec>>)
                    })
                }),
                parallel,
            }
        }
        "text_file" => NodeKind::Source {
            factory: sources::text_file(param::<String>(params, "path", name)?, encoding_errors(params, name)?),
            parallel: true,
        },
        "sequence" => NodeKind::Source {
            factory: sources::sequence(param::<i64>(params, "start", name)?, param::<i64>(params, "end", name)?),
            parallel: true,
        },
        "socket" => {
            let delimiter: String = param(params, "delimiter", name)?;
            let delimiter = *delimiter.as_bytes().first().unwrap_or(&b'\n');
            NodeKind::Source {
                factory: sources::socket_text(
                    param(params, "host", name)?,
                    param(params, "port", name)?,
                    delimiter,
                    encoding_errors(params, name)?,
                ),
                parallel: false,
            }
        }
        "map" | "filter" | "flat_map" => {
            let udf = udf()?;
            let step = match kind {
                "map" => Step::Map,
                "filter" => Step::Filter,
                _ => Step::FlatMap,
            };
            NodeKind::Transform(Arc::new(move |ctx| {
                Ok(Box::new(PyTransform { f: bind_udf(&udf, ctx)?, step }) as Box<dyn Transform<PyRec>>)
            }))
        }
        "key_by" => {
            let udf = udf()?;
            NodeKind::KeyBy(Arc::new(move |ctx| {
                Ok(Box::new(PyKeySelector { f: bind_udf(&udf, ctx)?, enc: KeyEncoder::new() })
                    as Box<dyn KeySelector<PyRec>>)
            }))
        }
        "key_by_field" => NodeKind::KeyBy(crate::builtins::field_key_factory(name, params)?),
        "sum" | "min" | "max" | "min_by" | "max_by" | "count" => {
            NodeKind::Reduce(crate::builtins::aggregate_factory(name, params)?)
        }
        "count_pairs" => NodeKind::Transform(crate::builtins::count_pairs_factory(name, params)?),
        "reduce" => {
            let udf = udf()?;
            NodeKind::Reduce(reducer(udf))
        }
        "window" => {
            let spec = WindowSpec::Custom(window_config(name, params)?);
            let function: String = param(params, "function", name)?;
            let time_window = Arc::new(param::<Py<PyAny>>(params, "time_window", name)?);
            let global_window = Arc::new(param::<Py<PyAny>>(params, "global_window", name)?);
            let apply = |udf: Arc<Py<PyAny>>| -> ApplyFactory<PyRec> {
                let (time_window, global_window) = (time_window.clone(), global_window.clone());
                Arc::new(move |ctx| {
                    let f = bind_udf(&udf, ctx)?;
                    Python::attach(|py| {
                        Ok(Box::new(PyWindowApply {
                            f,
                            time_window: time_window.clone_ref(py),
                            global_window: global_window.clone_ref(py),
                        }) as Box<dyn WindowApply<PyRec>>)
                    })
                })
            };
            let then = opt_param(params, "window_udf")?.map(|w| apply(Arc::new(w.unbind())));
            // Built-in aggregations (`window(...).sum(2)`) reduce in Rust.
            let reduce = || match opt_param(params, "builtin")? {
                Some(b) => crate::builtins::aggregate_factory(name, b.cast::<PyDict>()?),
                None => Ok(reducer(udf()?)),
            };
            let aggregate = |udf: Arc<Py<PyAny>>| -> AggregateFactory<PyRec> {
                Arc::new(move |ctx| {
                    Ok(Box::new(PyAggregate { f: bind_udf(&udf, ctx)? }) as Box<dyn WindowAggregate<PyRec>>)
                })
            };
            let function = match (function.as_str(), then) {
                ("reduce", None) => WindowFunction::Reduce(reduce()?),
                ("reduce", Some(t)) => WindowFunction::ReduceThen(reduce()?, t),
                ("aggregate", None) => WindowFunction::Aggregate(aggregate(udf()?)),
                ("aggregate", Some(t)) => WindowFunction::AggregateThen(aggregate(udf()?), t),
                ("process", None) => WindowFunction::Apply(apply(udf()?)),
                (other, _) => return Err(value_error(format!("{name}: unknown window function '{other}'"))),
            };
            NodeKind::Window { spec, function }
        }
        "side_output" => NodeKind::LateOutput,
        "assign_timestamps" => {
            let assigner = match (opt_param(params, "timestamp_field")?, opt_param(params, "assigner")?) {
                (Some(field), _) => Some(crate::builtins::field_timestamp_factory(name, &field)?),
                (None, Some(a)) => {
                    let udf = Arc::new(a.unbind());
                    let f: TimestampFactory<PyRec> = Arc::new(move |ctx| {
                        Ok(Box::new(PyTimestampAssigner { f: bind_udf(&udf, ctx)? })
                            as Box<dyn TimestampAssigner<PyRec>>)
                    });
                    Some(f)
                }
                (None, None) => None,
            };
            let kind: String = param(params, "watermarks", name)?;
            let watermarks = match kind.as_str() {
                "none" => WatermarkSpec::None,
                "monotonous" => WatermarkSpec::BoundedOutOfOrderness { bound_ms: 0 },
                "bounded" => {
                    WatermarkSpec::BoundedOutOfOrderness { bound_ms: param(params, "max_out_of_orderness", name)? }
                }
                other => return Err(value_error(format!("{name}: unknown watermark strategy '{other}'"))),
            };
            let idleness_ms: Option<i64> = get(params, "idleness", name)?;
            NodeKind::AssignTimestamps { assigner, watermarks, idleness_ms }
        }
        "testing_source" => {
            let start: i64 = get(params, "processing_time_start", name)?.unwrap_or(0);
            let events = Arc::new(test_events(name, params)?);
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
            let max_wait: Option<u64> = param(params, "max_wait_ms", name)?;
            let feedback: Option<usize> = param(params, "feedback", name)?;
            NodeKind::Iterate { feedback, max_wait: max_wait.filter(|&m| m > 0).map(Duration::from_millis) }
        }
        "print" => NodeKind::Sink(Arc::new(|ctx| {
            let prefix = (ctx.peers > 1).then(|| format!("{}> ", ctx.index + 1));
            Ok(Box::new(PrintSink { prefix, text: String::new() }) as Box<dyn Sink<PyRec>>)
        })),
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
        "write_text" => {
            let encode: sinks::Encode<PyRec> = Arc::new(|batch, out| {
                Python::attach(|py| {
                    for r in batch {
                        let x = r.0.bind(py);
                        let s = x.str().map_err(|e| udf_error(py, e, Some(x)))?;
                        out.extend_from_slice(s.to_string_lossy().as_bytes());
                        out.push(b'\n');
                    }
                    Ok(())
                })
            });
            NodeKind::Sink(sinks::text_file(
                param::<String>(params, "path", name)?,
                param(params, "overwrite", name)?,
                encode,
            ))
        }
        "write_socket" => {
            let serializer = Arc::new(param::<Py<PyAny>>(params, "serialize", name)?);
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
            NodeKind::Sink(sinks::socket(param(params, "host", name)?, param(params, "port", name)?, encode))
        }
        other => {
            let _ = py;
            return Err(pyo3::exceptions::PyValueError::new_err(format!("{name}: unknown node kind '{other}'")));
        }
    })
}

/// A text source's `encoding_errors` ("strict" when not given).
fn encoding_errors(params: &Bound<'_, PyDict>, name: &str) -> PyResult<EncodingErrors> {
    match opt_param(params, "encoding_errors")? {
        Some(v) => EncodingErrors::parse(&v.extract::<String>()?).map_err(|e| value_error(format!("{name}: {e}"))),
        None => Ok(EncodingErrors::Strict),
    }
}

fn value_error(message: String) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(message)
}

/// A dict's entry, `None` if missing or Python `None`.
pub(crate) fn opt_param<'py>(params: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(params.get_item(key)?.filter(|v| !v.is_none()))
}

/// [`opt_param`] as `T`.
fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str, node: &str) -> PyResult<Option<T>> {
    opt_param(d, key)?
        .map(|v| v.extract::<T>().map_err(|e| value_error(format!("{node}: '{key}': {}", Into::<PyErr>::into(e)))))
        .transpose()
}

/// The testing source's events: `("record", value, ts or None)`, `("watermark", t)`,
/// `("processing_time", t)`.
fn test_events(name: &str, params: &Bound<'_, PyDict>) -> PyResult<Vec<TestEvent<PyRec>>> {
    let events = params.get_item("events")?.ok_or_else(|| value_error(format!("{name}: missing 'events'")))?;
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
            other => return Err(value_error(format!("{name}: unknown testing event '{other}'"))),
        });
    }
    Ok(out)
}

fn trigger_of(d: &Bound<'_, PyDict>, node: &str) -> PyResult<Trigger> {
    let kind: String = param(d, "kind", node)?;
    Ok(match kind.as_str() {
        "event_time" => Trigger::EventTime,
        "processing_time" => Trigger::ProcessingTime,
        "count" => Trigger::Count(param(d, "count", node)?),
        "continuous_event_time" => Trigger::ContinuousEventTime(param(d, "interval", node)?),
        "continuous_processing_time" => Trigger::ContinuousProcessingTime(param(d, "interval", node)?),
        "purging" => {
            let inner =
                d.get_item("inner")?.ok_or_else(|| value_error(format!("{node}: purging trigger without 'inner'")))?;
            Trigger::purging(trigger_of(inner.cast::<PyDict>()?, node)?)
        }
        "never" => Trigger::Never,
        other => {
            return Err(value_error(format!(
                "{node}: unknown trigger '{other}' (known: event time, processing time, count, \
                 continuous event time, continuous processing time, purging)"
            )))
        }
    })
}

/// Assigner, trigger, evictor and lateness of a window node; per worker, because a
/// dynamic session gap is a user function.
fn window_config(name: &str, params: &Bound<'_, PyDict>) -> PyResult<WindowConfigFactory<PyRec>> {
    let a = param::<Bound<'_, PyAny>>(params, "assigner", name)?;
    let a = a.cast::<PyDict>()?;
    let kind: String = param(a, "kind", name)?;
    let domain: String = get(a, "domain", name)?.unwrap_or_else(|| "event".to_string());
    let domain = match domain.as_str() {
        "event" => TimeDomain::EventTime,
        "processing" => TimeDomain::ProcessingTime,
        other => return Err(value_error(format!("{name}: unknown time domain '{other}'"))),
    };
    let offset: i64 = get(a, "offset", name)?.unwrap_or(0);
    let gap: Option<i64> = get(a, "gap", name)?;
    let gap_fn: Option<Arc<Py<PyAny>>> = get::<Py<PyAny>>(a, "gap_fn", name)?.map(Arc::new);
    let shape = match kind.as_str() {
        "tumbling" => Shape::Tumbling(param(a, "size", name)?, offset),
        "sliding" => Shape::Sliding(param(a, "size", name)?, param(a, "slide", name)?, offset),
        "session" => Shape::Session(gap),
        "global" => Shape::Global,
        other => return Err(value_error(format!("{name}: unknown window assigner '{other}'"))),
    };
    if matches!(shape, Shape::Session(None)) && gap_fn.is_none() {
        return Err(value_error(format!("{name}: a session window needs 'gap' or 'gap_fn'")));
    }
    let trigger = opt_param(params, "trigger")?.map(|t| trigger_of(t.cast::<PyDict>()?, name)).transpose()?;
    let mut evict_after = false;
    let evictor = match opt_param(params, "evictor")? {
        Some(e) => {
            let e = e.cast::<PyDict>()?;
            evict_after = get::<bool>(e, "do_evict_after", name)?.unwrap_or(false);
            let kind: String = param(e, "kind", name)?;
            Some(match kind.as_str() {
                "count" => Evictor::Count(param(e, "count", name)?),
                "time" => Evictor::Time(param(e, "window_size", name)?),
                other => return Err(value_error(format!("{name}: unknown evictor '{other}'"))),
            })
        }
        _ => None,
    };
    let lateness: i64 = get(params, "allowed_lateness", name)?.unwrap_or(0);
    let late_output: bool = get(params, "late_output", name)?.unwrap_or(false);
    Ok(Arc::new(move |ctx| {
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
        if let Some(t) = &trigger {
            config = config.trigger(t.clone());
        }
        if let Some(e) = evictor {
            config = config.evictor(e);
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

/// Builds the engine plan from the Python node list.
pub fn from_python(py: Python<'_>, nodes: &Bound<'_, PyAny>, object_reuse: bool) -> PyResult<Plan<PyRec>> {
    let mut plan = Plan::new();
    for node in nodes.try_iter()? {
        let node = node?;
        let kind: String = node.getattr("kind")?.extract()?;
        let name: String = node.getattr("name")?.extract()?;
        let inputs: Vec<usize> = node.getattr("inputs")?.extract()?;
        let params = node.getattr("params")?;
        let params = params.cast::<PyDict>()?;
        let parallelism: Option<usize> = node.getattr("parallelism")?.extract()?;
        plan.manual_processing_time |= kind == "testing_source";
        let k = node_kind(py, &kind, &name, params, !object_reuse)?;
        let id = plan.add(name, inputs, k);
        if let Some(p) = parallelism {
            plan.set_parallelism(id, p);
        }
    }
    Ok(plan)
}
