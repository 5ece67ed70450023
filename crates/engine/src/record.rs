//! What the engine needs from a record type.
//!
//! Inside a process, records are moved between operators untouched (for Python that
//! means `Py<PyAny>` pointers, never a conversion). The few places where the engine
//! itself makes records (text lines, integer sequences) or describes them (errors)
//! go through this trait, in batches, so an implementation can take a lock (the GIL)
//! once per batch.

pub trait Record: Clone + Send + 'static {
    /// Appends one record per line.
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>);

    /// Appends one record per integer of `range`.
    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>);

    /// A short, human-readable description of the record for error messages
    /// (truncated by the implementation).
    fn describe(&self) -> String;

    /// Appends the encoding of `records` for another process (one call per batch).
    /// The error says which record could not be encoded and why.
    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String>
    where
        Self: 'a;

    /// Appends the records [`Record::encode_batch`] wrote; malformed bytes are an
    /// error, never a panic.
    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), String>;
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

    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        for r in records {
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r.as_bytes());
        }
        Ok(())
    }

    fn decode_batch(mut bytes: &[u8], out: &mut Vec<Self>) -> Result<(), String> {
        while !bytes.is_empty() {
            let (len, rest) = bytes.split_at_checked(4).ok_or("truncated string batch")?;
            let len = u32::from_le_bytes(len.try_into().map_err(|_| "bad length")?) as usize;
            let (s, rest) = rest.split_at_checked(len).ok_or("truncated string batch")?;
            out.push(String::from_utf8(s.to_vec()).map_err(|e| e.to_string())?);
            bytes = rest;
        }
        Ok(())
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
