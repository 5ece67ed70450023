//! What a job asked of checkpoints (PyFlink's `CheckpointConfig`), as the engine takes it.

use std::path::PathBuf;
use std::time::Duration;

/// Checkpointing for one run; absent from [`crate::ExecConfig`] when it is off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointSettings {
    /// The storage directory (checkpoints go to `chk-<n>/` under it).
    pub dir: PathBuf,
    /// How often a checkpoint is triggered.
    pub interval: Duration,
    /// Least time from the end of one checkpoint to the start of the next.
    pub min_pause: Duration,
    /// A checkpoint not complete after this long is discarded and the job goes on.
    pub timeout: Duration,
    /// Completed checkpoints kept (the newest ones); at least 1.
    pub retained: usize,
    /// Keep the checkpoints when the job is cancelled (Flink's
    /// `RETAIN_ON_CANCELLATION`); otherwise they are deleted then. A job that fails
    /// keeps them, so a restart can use them.
    pub retain_on_cancel: bool,
    /// Start from this checkpoint or savepoint directory (`chk-<n>/` or a savepoint)
    /// instead of from nothing.
    pub restore_from: Option<PathBuf>,
    /// The job's name, recorded in each checkpoint's manifest.
    pub job: String,
}

impl CheckpointSettings {
    /// Flink's defaults for everything but the directory and the interval: no pause,
    /// 10 minutes' timeout, one retained checkpoint, deleted on cancellation.
    pub fn new(dir: PathBuf, interval: Duration) -> Self {
        CheckpointSettings {
            dir,
            interval,
            min_pause: Duration::ZERO,
            timeout: Duration::from_secs(600),
            retained: 1,
            retain_on_cancel: false,
            restore_from: None,
            job: "job".to_string(),
        }
    }
}
