//! The Python plan (a list of nodes recorded by the DataStream API) turned into the
//! engine's plan. Each node has `kind`, `name`, `inputs` and a `params` dict.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use ferroflow_engine::connectors::{sinks, sources};
use ferroflow_engine::functions::*;
use ferroflow_engine::key::KeyEncoder;
use ferroflow_engine::{NodeKind, Plan, UdfError, UdfResult, WindowFunction, WindowSpec};

use crate::errors::udf_error;
use crate::record::{type_name, PyRec};
use crate::sources::{FunctionSource, IteratorSource};
use crate::udf::*;

fn param<'py, T: FromPyObjectOwned<'py>>(params: &Bound<'py, PyDict>, name: &str, node: &str) -> PyResult<T> {
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
fn node_kind(py: Python<'_>, kind: &str, name: &str, params: &Bound<'_, PyDict>) -> PyResult<NodeKind<PyRec>> {
    let udf = || -> PyResult<Arc<Py<PyAny>>> { Ok(Arc::new(param::<Py<PyAny>>(params, "udf", name)?)) };
    Ok(match kind {
        "collection" => {
            let make = Arc::new(param::<Py<PyAny>>(params, "make", name)?);
            NodeKind::Source {
                factory: Arc::new(move |_ctx| {
                    Python::attach(|py| {
                        let read = make.bind(py).call0().map_err(|e| udf_error(py, e, None))?;
                        Ok(Box::new(IteratorSource { read: read.unbind() }) as Box<dyn SourceReader<PyRec>>)
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
                        let source = FunctionSource::start(py, f, ctx.waker.clone(), ctx.index, ctx.peers)?;
                        Ok(Box::new(source) as Box<dyn SourceReader<PyRec>>)
                    })
                }),
                parallel,
            }
        }
        "text_file" => NodeKind::Source {
            factory: sources::text_file(param::<String>(params, "path", name)?),
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
                factory: sources::socket_text(param(params, "host", name)?, param(params, "port", name)?, delimiter),
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
                Ok(Box::new(PyKeySelector { f: bind_udf(&udf, ctx)?, enc: KeyEncoder::new() }) as Box<dyn KeySelector<PyRec>>)
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
            let assigner: String = param(params, "assigner", name)?;
            let size: i64 = param(params, "size", name)?;
            let slide: i64 = param(params, "slide", name)?;
            let spec = match assigner.as_str() {
                "processing_time" => WindowSpec::ProcessingTime { size_ms: size, slide_ms: slide },
                "count" => WindowSpec::Count { size: size.max(0) as usize, slide: slide.max(0) as usize },
                other => return Err(pyo3::exceptions::PyValueError::new_err(format!("{name}: unknown window assigner '{other}'"))),
            };
            let function: String = param(params, "function", name)?;
            let udf = udf()?;
            let function = if function == "reduce" {
                WindowFunction::Reduce(reducer(udf))
            } else {
                let time_window = Arc::new(param::<Py<PyAny>>(params, "time_window", name)?);
                let global_window = Arc::new(param::<Py<PyAny>>(params, "global_window", name)?);
                WindowFunction::Apply(Arc::new(move |ctx| {
                    let f = bind_udf(&udf, ctx)?;
                    Python::attach(|py| {
                        Ok(Box::new(PyWindowApply {
                            f,
                            time_window: time_window.clone_ref(py),
                            global_window: global_window.clone_ref(py),
                        }) as Box<dyn WindowApply<PyRec>>)
                    })
                }))
            };
            NodeKind::Window { spec, function }
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
            NodeKind::Sink(Arc::new(move |ctx| Ok(Box::new(PyFunctionSink { f: bind_udf(&udf, ctx)? }) as Box<dyn Sink<PyRec>>)))
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
            NodeKind::Sink(sinks::text_file(param::<String>(params, "path", name)?, param(params, "overwrite", name)?, encode))
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
                            return Err(UdfError::new(format!("serialize() must return bytes or str, got {}", type_name(&b)))
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

fn reducer(udf: Arc<Py<PyAny>>) -> ReduceFactory<PyRec> {
    Arc::new(move |ctx| Ok(Box::new(PyReducer { f: bind_udf(&udf, ctx)? }) as Box<dyn Reducer<PyRec>>))
}

/// Builds the engine plan from the Python node list.
pub fn from_python(py: Python<'_>, nodes: &Bound<'_, PyAny>) -> PyResult<Plan<PyRec>> {
    let mut plan = Plan::new();
    for node in nodes.try_iter()? {
        let node = node?;
        let kind: String = node.getattr("kind")?.extract()?;
        let name: String = node.getattr("name")?.extract()?;
        let inputs: Vec<usize> = node.getattr("inputs")?.extract()?;
        let params = node.getattr("params")?;
        let params = params.cast::<PyDict>()?;
        let parallelism: Option<usize> = node.getattr("parallelism")?.extract()?;
        let k = node_kind(py, &kind, &name, params)?;
        let id = plan.add(name, inputs, k);
        if let Some(p) = parallelism {
            plan.set_parallelism(id, p);
        }
    }
    Ok(plan)
}
