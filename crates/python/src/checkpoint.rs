//! Checkpoint settings and storage for the Python API: `run_job`'s `checkpoint`
//! argument read into the engine's `CheckpointSettings`, and the storage functions
//! the API and the CLI check a directory with before a job starts (the engine's
//! `checkpoint::storage`, so that Python never parses a manifest itself).

use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use ferroflow_engine::checkpoint::settings::CheckpointSettings;
use ferroflow_engine::checkpoint::storage;

/// `run_job`'s `checkpoint` argument: `checkpoint_config._EngineSettings`, read by
/// attribute (the API validated every value when the user set it).
#[derive(FromPyObject)]
pub struct CheckpointArg {
    dir: PathBuf,
    interval_ms: u64,
    min_pause_ms: u64,
    timeout_ms: u64,
    retained: usize,
    retain_on_cancel: bool,
    restore_from: Option<PathBuf>,
    job: String,
}

impl From<CheckpointArg> for CheckpointSettings {
    fn from(a: CheckpointArg) -> Self {
        CheckpointSettings {
            min_pause: Duration::from_millis(a.min_pause_ms),
            timeout: Duration::from_millis(a.timeout_ms),
            retained: a.retained.max(1),
            retain_on_cancel: a.retain_on_cancel,
            restore_from: a.restore_from,
            job: a.job,
            ..CheckpointSettings::new(a.dir, Duration::from_millis(a.interval_ms))
        }
    }
}

/// Creates the storage directory if need be and checks that it can be written;
/// `ValueError` with the one line to show if not.
#[pyfunction]
pub fn checkpoint_probe_writable(dir: PathBuf) -> PyResult<()> {
    storage::probe_writable(&dir).map_err(PyValueError::new_err)
}

/// The newest complete and whole checkpoint directory under the storage directory
/// `root` (`None` if there is none, or `root` does not exist), and one warning per newer
/// one that had to be skipped as damaged. `ValueError` if `root` cannot be read.
#[pyfunction]
pub fn checkpoint_find_latest(root: PathBuf) -> PyResult<(Option<PathBuf>, Vec<String>)> {
    let latest = storage::find_latest(&root).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((latest.found.map(|f| f.dir), latest.warnings))
}

/// Checks that `dir` holds a complete and whole checkpoint or savepoint; `ValueError`
/// saying why not, in one line.
#[pyfunction]
pub fn checkpoint_verify(dir: PathBuf) -> PyResult<()> {
    storage::verify(&dir).map(|_| ()).map_err(|why| PyValueError::new_err(why.to_string()))
}
