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
}

impl UdfError {
    pub fn new(message: impl Into<String>) -> Self {
        UdfError { record: None, message: message.into() }
    }

    pub fn with_record(mut self, record: String) -> Self {
        if self.record.is_none() {
            self.record = Some(record);
        }
        self
    }
}

pub type UdfResult<T> = Result<T, UdfError>;

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
    /// A bug in the engine: a worker panicked.
    Internal,
}

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

    /// Attributes a UDF error to the operator that called the UDF.
    pub fn from_udf(kind: ErrorKind, operator: &str, err: UdfError) -> Self {
        JobError { kind, operator: Some(operator.to_string()), record: err.record, message: err.message, worker: None }
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
            (_, Some(op)) => format!("{op} failed"),
            (ErrorKind::Cancelled, None) => "the job was cancelled".to_string(),
            (ErrorKind::Internal, None) => "internal engine error".to_string(),
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
        if message.is_empty() || (self.operator.is_none() && self.record.is_none()) && headline == message {
            write!(f, "{headline}")
        } else if self.operator.is_none() && self.record.is_none() {
            write!(f, "{message}")
        } else if message.contains('\n') {
            write!(f, "{headline}:\n{message}")
        } else {
            write!(f, "{headline}: {message}")
        }
    }
}

impl std::error::Error for JobError {}
