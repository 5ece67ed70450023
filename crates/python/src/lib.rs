//! `ferroflow._engine`: runs a plan recorded by the Python API on the Rust engine.
//!
//! The binding owns the GIL discipline (one attach per operator activation, one
//! thread state per worker), adapts Python callables to the engine's traits, and
//! turns engine errors into Python exceptions.

mod batch;
mod broadcast;
mod builtins;
mod checkpoint;
mod codec;
mod columnar;
mod copies;
mod errors;
mod files;
mod kafka;
mod keys;
mod nexmark;
mod partitioned;
mod plan;
mod process;
mod record;
mod sink_probe;
mod source_probe;
mod sources;
mod triggers;
mod two_phase;
mod udf;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use ferroflow_engine::cluster::ClusterConfig;
use ferroflow_engine::control::JobControl;
use ferroflow_engine::{start, ErrorKind, ExecConfig, JobError};

use crate::record::GilScope;

create_exception!(
    _engine,
    JobFailed,
    PyException,
    "A job failed; args: (text, kind, operator, record, message, worker, at_start)."
);

/// How often the calling thread wakes to check for Ctrl-C while a job runs.
const POLL: Duration = Duration::from_millis(20);
/// How long a cancelled job may take to stop before we stop waiting for it (a worker
/// stuck in a long user call cannot be interrupted; Ctrl-C must still act in < 1 s).
const CANCEL_GRACE: Duration = Duration::from_millis(500);

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Udf => "udf",
        ErrorKind::Source => "source",
        ErrorKind::Sink => "sink",
        ErrorKind::Plan => "plan",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::System => "system",
        ErrorKind::Internal => "internal",
    }
}

/// `at_start`: the job failed before it ran (its plan, or loading the checkpoint it
/// restores from), so running it again would fail alike: a restart strategy does not apply.
fn job_failed(e: &JobError, at_start: bool) -> PyErr {
    JobFailed::new_err((
        e.to_string(),
        kind_name(e.kind),
        e.operator.clone(),
        e.record.clone(),
        e.message.clone(),
        e.worker,
        at_start,
    ))
}

/// Cancels a running `run_job` from another thread (`execute_and_collect`'s `close()`):
/// only the main thread sees Ctrl-C, so the wait loop also polls this flag.
#[pyclass(frozen)]
struct CancelToken {
    cancelled: AtomicBool,
}

#[pymethods]
impl CancelToken {
    #[new]
    fn new() -> Self {
        CancelToken { cancelled: AtomicBool::new(false) }
    }

    /// Asks the job to stop; `run_job` then returns within about 20 ms plus the
    /// workers' stop. Safe from any thread, any number of times.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// `run_job`'s `cluster` argument, as `environment.py` builds it.
type ClusterArg = (usize, Vec<String>, Vec<u8>, u64, u64, u64);

/// Runs the plan `nodes` on `workers` threads of this process and blocks until it
/// ends. Returns `{"counts": [...per node], "dropped": int, "warnings": [...]}`.
/// Raises `JobFailed` if the job fails and `KeyboardInterrupt` on Ctrl-C.
/// `cancel`: a `CancelToken`; once cancelled, the job stops (as on Ctrl-C, and in a
/// multi-process run the other processes are told) and the dict has `"cancelled": True`
/// instead of an error.
/// `cluster`: `(process, addresses, secret, connect_timeout_ms, job_fingerprint,
/// heartbeat_timeout_ms)` for a multi-process run; `workers` is then the worker threads
/// of this process.
/// `object_reuse`: operators may share records (Flink's object reuse; off: each gets
/// records of its own, see `copies`).
/// `checkpoint`: the job's checkpointing (see `checkpoint::CheckpointArg`); off when `None`.
/// `runtime_mode`: `"streaming"`, `"batch"` or `"automatic"`; `semantics`: the
/// end-of-input options (`plan::SemanticsArg`), ferroflow's defaults when `None`.
#[pyfunction]
#[pyo3(signature = (nodes, workers=1, batch_size=128, cluster=None, object_reuse=false, cancel=None, checkpoint=None,
                    runtime_mode="streaming", semantics=None))]
#[allow(clippy::too_many_arguments)] // Python's keyword arguments, each with its default
fn run_job<'py>(
    py: Python<'py>,
    nodes: &Bound<'py, PyAny>,
    workers: usize,
    batch_size: usize,
    cluster: Option<ClusterArg>,
    object_reuse: bool,
    cancel: Option<Py<CancelToken>>,
    checkpoint: Option<checkpoint::CheckpointArg>,
    runtime_mode: &str,
    semantics: Option<plan::SemanticsArg>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut plan = plan::from_python(nodes, object_reuse).map_err(|e| job_failed(&e, true))?;
    plan.semantics = plan::semantics(runtime_mode, semantics).map_err(|e| job_failed(&e, true))?;
    let cluster = cluster.map(|(process, addresses, secret, timeout_ms, fingerprint, heartbeat_ms)| {
        ClusterConfig::new(process, addresses, secret)
            .threads(workers)
            .fingerprint(fingerprint)
            .connect_timeout(Duration::from_millis(timeout_ms))
            .heartbeat_timeout(Duration::from_millis(heartbeat_ms))
    });
    let config = ExecConfig {
        workers,
        batch_size,
        scope: Arc::new(GilScope),
        cluster,
        object_reuse,
        checkpoint: checkpoint.map(Into::into),
        ..ExecConfig::default()
    };
    let running = start(Arc::new(plan), config).map_err(|e| job_failed(&e, true))?;
    // Wait in slices instead of blocking in join, so Ctrl-C (or the cancel token)
    // reaches us within POLL; the wait ends as soon as the job does.
    let control = running.control.clone();
    let cancelled = || cancel.as_ref().is_some_and(|c| c.get().cancelled());
    let mut by_token = false;
    while !py.detach(|| control.wait_finished(POLL)) {
        let interrupt = py.check_signals().err();
        if let Some(stop) = take_savepoint_request() {
            control.request_savepoint(stop);
        }
        announce_savepoints(py, &control);
        by_token = interrupt.is_none() && cancelled();
        if interrupt.is_none() && !by_token {
            continue;
        }
        running.control.cancel();
        let deadline = Instant::now() + CANCEL_GRACE;
        while Instant::now() < deadline && !py.detach(|| control.wait_finished(POLL)) {}
        if !running.finished() {
            // A worker is stuck in user code; joining would hang. Leave it.
            std::mem::forget(running);
            return match interrupt {
                Some(interrupt) => Err(interrupt),
                None => cancelled_summary(py),
            };
        }
        if let Some(interrupt) = interrupt {
            let _ = py.detach(|| running.join());
            return Err(interrupt);
        }
        break;
    }
    let summary = match py.detach(|| running.join()) {
        // Cancelled by the token: that is the end asked for, unless a real error came first.
        Err(e) if by_token && e.kind == ErrorKind::Cancelled => return cancelled_summary(py),
        // Stopped with a savepoint: the end asked for too.
        Err(e) if e.kind == ErrorKind::Cancelled && control.stopped_with().is_some() => {
            announce_savepoints(py, &control);
            let out = cancelled_summary(py)?;
            out.set_item("stopped_with", control.stopped_with())?;
            return Ok(out);
        }
        other => other.map_err(|e| job_failed(&e, false))?,
    };
    announce_savepoints(py, &control);
    let out = PyDict::new(py);
    out.set_item("counts", summary.counts)?;
    out.set_item("dropped", summary.dropped)?;
    out.set_item("late_dropped", summary.late_dropped)?;
    out.set_item("warnings", summary.warnings)?;
    out.set_item("cancelled", false)?;
    Ok(out)
}

/// A savepoint asked for by `request_savepoint` (0: none, 1: take one, 2: and stop).
static SAVEPOINT_REQUEST: AtomicU8 = AtomicU8::new(0);

/// Asks the running job (of this process) for a savepoint; with `stop`, the job stops
/// once it is written. Safe to call from a signal handler: the job's wait loop passes it
/// on within its poll interval. A job without checkpointing ignores it.
#[pyfunction]
#[pyo3(signature = (stop=false))]
fn request_savepoint(stop: bool) {
    SAVEPOINT_REQUEST.fetch_max(if stop { 2 } else { 1 }, Ordering::SeqCst);
}

fn take_savepoint_request() -> Option<bool> {
    match SAVEPOINT_REQUEST.swap(0, Ordering::SeqCst) {
        0 => None,
        n => Some(n == 2),
    }
}

/// Tells the person running the job where each savepoint went, as it is written.
fn announce_savepoints(py: Python<'_>, control: &JobControl) {
    for path in control.take_savepoints_written() {
        let line = format!("ferroflow: savepoint written to {}\n", path.display());
        let _ = py.import("sys").and_then(|sys| sys.getattr("stderr")?.call_method1("write", (line,)));
    }
}

/// `run_job`'s answer for a job its cancel token stopped: no counts (partial ones would
/// mislead).
fn cancelled_summary(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("counts", Vec::<u64>::new())?;
    out.set_item("dropped", 0)?;
    out.set_item("late_dropped", 0)?;
    out.set_item("warnings", Vec::<String>::new())?;
    out.set_item("cancelled", true)?;
    Ok(out)
}

/// The shared secret of a multi-process run from `FERROFLOW_SECRET` (its value) or
/// `FERROFLOW_SECRET_FILE` (a path), decoded by the engine's one rule so that every
/// route gives the same bytes. Raises `ValueError` with a one-line message.
#[pyfunction]
fn resolve_secret<'py>(
    py: Python<'py>,
    secret: Option<std::ffi::OsString>,
    secret_file: Option<std::ffi::OsString>,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = ferroflow_engine::cluster::resolve_secret(None, secret, secret_file)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &bytes))
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_job, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_secret, m)?)?;
    m.add_function(wrap_pyfunction!(partitioned::split_owner_of, m)?)?;
    m.add_function(wrap_pyfunction!(request_savepoint, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::checkpoint_probe_writable, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::checkpoint_find_latest, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::checkpoint_verify, m)?)?;
    m.add_class::<CancelToken>()?;
    m.add("JobFailed", m.py().get_type::<JobFailed>())?;
    m.add("SourceCancelled", m.py().get_type::<sources::SourceCancelled>())?;
    m.add_class::<sources::SourceContext>()?;
    m.add_class::<process::PyProcessContext>()?;
    m.add_class::<process::StateStore>()?;
    m.add_class::<process::ValueStateImpl>()?;
    m.add_class::<process::ListStateImpl>()?;
    m.add_class::<process::MapStateImpl>()?;
    m.add_class::<process::ReducingStateImpl>()?;
    m.add_class::<process::AggregatingStateImpl>()?;
    m.add_class::<broadcast::BroadcastStateImpl>()?;
    codec::register(m)?;
    m.add_class::<source_probe::_SourceProbe>()?;
    m.add_class::<sink_probe::_SinkProbe>()?;
    quiet_panics();
    Ok(())
}

/// Engine panics become job errors (see `execute`); keep Rust's panic text off the
/// user's terminal unless FERROFLOW_DEBUG is set.
fn quiet_panics() {
    if std::env::var_os("FERROFLOW_DEBUG").is_none() {
        std::panic::set_hook(Box::new(|_info| {}));
    }
}
