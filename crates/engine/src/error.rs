//! Errors a job can end with. They are written for the person who runs the job:
//! what failed, where, and on which record.

use std::fmt;

/// An error raised by user code (a UDF), before the engine knows which operator ran it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdfError {
    /// A short description of the record being processed (truncated), when there was one.
    pub record: Option<String>,
    /// What went wrong: for Python UDFs, the exception and its traceback.
    pub message: String,
    /// Not the user's code but a broken invariant of ferroflow, found while running an
    /// operator: the job fails as [`ErrorKind::Internal`] whichever operator reports it.
    pub internal: bool,
}

impl UdfError {
    pub fn new(message: impl Into<String>) -> Self {
        UdfError { record: None, message: message.into(), internal: false }
    }

    /// A bug in ferroflow (an invariant that does not hold), not in the job.
    pub fn internal(message: impl Into<String>) -> Self {
        UdfError { record: None, message: message.into(), internal: true }
    }

    pub fn with_record(mut self, record: String) -> Self {
        if self.record.is_none() {
            self.record = Some(record);
        }
        self
    }
}

pub type UdfResult<T> = Result<T, UdfError>;

/// A batch from another process that could not be read: corrupt bytes are ferroflow's
/// bug; a record whose own code would not rebuild it (unpickling) is the record's.
impl From<crate::record::BatchReadError> for UdfError {
    fn from(e: crate::record::BatchReadError) -> Self {
        match e {
            crate::record::BatchReadError::Corrupt(m) => {
                UdfError::internal(format!("a batch from another process is corrupt: {m}"))
            }
            crate::record::BatchReadError::Record(m) => UdfError::new(m),
        }
    }
}

/// What kind of failure ended a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A user function raised.
    Udf,
    /// A source could not read its input (missing file, refused connection, ...).
    Source,
    /// A sink could not write its output.
    Sink,
    /// The plan itself is invalid.
    Plan,
    /// The job was cancelled (Ctrl-C or an explicit cancel).
    Cancelled,
    /// The network or the machine failed the job, not its code: a peer process was
    /// lost or refused, the cluster did not start, no thread could be started.
    System,
    /// A bug in ferroflow: a broken invariant, a worker that panicked, a corrupt batch
    /// between processes. Reported with [`BUG_REPORT`].
    Internal,
}

/// What an internal error adds: it is ferroflow's bug, and what to report.
pub const BUG_REPORT: &str = concat!(
    "This is a bug in ferroflow ",
    env!("CARGO_PKG_VERSION"),
    ", not in the job: please report it on ferroflow's issue tracker with this message, the job script ",
    "and the command that ran it (FERROFLOW_DEBUG=1 shows Rust's panic messages)."
);

/// The error a job fails with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobError {
    pub kind: ErrorKind,
    /// The operator's display name, e.g. `map 'Tokenizer' (job.py:12)`.
    pub operator: Option<String>,
    pub record: Option<String>,
    pub message: String,
    /// The worker the error happened on.
    pub worker: Option<usize>,
}

impl JobError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        JobError { kind, operator: None, record: None, message: message.into(), worker: None }
    }

    /// Attributes a UDF error to the operator that called the UDF (as `kind`, or as
    /// [`ErrorKind::Internal`] for an internal one).
    pub fn from_udf(kind: ErrorKind, operator: &str, err: UdfError) -> Self {
        JobError {
            kind: if err.internal { ErrorKind::Internal } else { kind },
            operator: Some(operator.to_string()),
            record: err.record,
            message: err.message,
            worker: None,
        }
    }

    pub fn plan(message: impl Into<String>) -> Self {
        JobError::new(ErrorKind::Plan, message)
    }

    pub fn cancelled() -> Self {
        JobError::new(ErrorKind::Cancelled, "the job was cancelled")
    }

    pub fn on_worker(mut self, worker: usize) -> Self {
        self.worker.get_or_insert(worker);
        self
    }

    /// The first line of the report: what failed and where.
    pub fn headline(&self) -> String {
        let what = match (self.kind, &self.operator) {
            (ErrorKind::Udf, Some(op)) => format!("{op} raised an exception"),
            (ErrorKind::Source, Some(op)) => format!("{op} could not read its input"),
            (ErrorKind::Sink, Some(op)) => format!("{op} could not write its output"),
            (ErrorKind::Internal, Some(op)) => format!("internal error in {op}"),
            (_, Some(op)) => format!("{op} failed"),
            (ErrorKind::Cancelled, None) => "the job was cancelled".to_string(),
            (ErrorKind::Internal, None) => "internal error".to_string(),
            (_, None) => "the job failed".to_string(),
        };
        match &self.record {
            Some(r) => format!("{what} on record {r}"),
            None => what,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headline = self.headline();
        let message = self.message.trim_end();
        let internal = self.kind == ErrorKind::Internal;
        if message.is_empty() || (self.operator.is_none() && self.record.is_none()) && headline == message {
            write!(f, "{headline}")?;
        } else if self.operator.is_none() && self.record.is_none() && !internal {
            write!(f, "{message}")?;
        } else if message.contains('\n') {
            write!(f, "{headline}:\n{message}")?;
        } else {
            write!(f, "{headline}: {message}")?;
        }
        if internal {
            write!(f, "\n{BUG_REPORT}")?;
        }
        Ok(())
    }
}

impl std::error::Error for JobError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_udf_error_is_an_internal_job_error_that_says_it_is_a_bug() {
        let e = JobError::from_udf(ErrorKind::Udf, "window 'w' (job.py:3)", UdfError::internal("a broken invariant"));
        assert_eq!(e.kind, ErrorKind::Internal);
        let text = e.to_string();
        assert!(text.starts_with("internal error in window 'w' (job.py:3): a broken invariant\n"), "{text}");
        assert!(text.ends_with(BUG_REPORT) && BUG_REPORT.contains("bug in ferroflow"), "{text}");
        // Without an operator (a panicked worker), the wording is there too.
        let panic = JobError::new(ErrorKind::Internal, "worker 0 crashed: oops").to_string();
        assert_eq!(panic, format!("internal error: worker 0 crashed: oops\n{BUG_REPORT}"));
    }

    #[test]
    fn a_user_error_does_not_say_it_is_a_bug() {
        let e = JobError::from_udf(ErrorKind::Udf, "map 'f'", UdfError::new("ValueError: boom"));
        assert_eq!(e.kind, ErrorKind::Udf);
        assert_eq!(e.to_string(), "map 'f' raised an exception: ValueError: boom");
        let lost = JobError::new(ErrorKind::System, "lost the connection to process 1").to_string();
        assert_eq!(lost, "lost the connection to process 1");
    }
}
