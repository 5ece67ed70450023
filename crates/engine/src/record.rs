//! What the engine needs from a record type.
//!
//! Inside a process, records are moved between operators untouched (for Python that
//! means `Py<PyAny>` pointers, never a conversion). The few places where the engine
//! itself makes records (text lines, integer sequences) or describes them (errors)
//! go through this trait, in batches, so an implementation can take a lock (the GIL)
//! once per batch.

use serde::{de::DeserializeOwned, Serialize};

pub trait Record: Clone + Send + Serialize + DeserializeOwned + 'static {
    /// Appends one record per line.
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>);

    /// Appends one record per integer of `range`.
    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>);

    /// A short, human-readable description of the record for error messages
    /// (truncated by the implementation).
    fn describe(&self) -> String;
}

/// Plain strings: handy for tests and for pure-Rust jobs.
impl Record for String {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        out.append(lines);
    }

    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        out.extend(range.map(|i| i.to_string()));
    }

    fn describe(&self) -> String {
        describe_truncated(&format!("{self:?}"))
    }
}

/// Longest record description in an error message, in characters.
pub const DESCRIBE_MAX_CHARS: usize = 200;

/// Cuts a description to [`DESCRIBE_MAX_CHARS`], saying how much was left out.
pub fn describe_truncated(s: &str) -> String {
    let total = s.chars().count();
    if total <= DESCRIBE_MAX_CHARS {
        return s.to_string();
    }
    let head: String = s.chars().take(DESCRIBE_MAX_CHARS).collect();
    format!("{head}... ({} more characters)", total - DESCRIBE_MAX_CHARS)
}
