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
    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError>;

    /// The record's event timestamp in ms ([`NO_TIME`] if it has none). Types that carry
    /// no metadata have none; wrap them in [`Stamped`] for event time.
    fn timestamp(&self) -> i64 {
        NO_TIME
    }

    /// Sets the event timestamp (ignored by types that cannot carry one).
    fn set_timestamp(&mut self, _ts: i64) {}

    /// Asks the CPU to bring the record into cache before it is used (keyed state
    /// reads a rare key's record a few records ahead). A hint: the default does nothing.
    #[inline]
    fn prefetch(&self) {}

    /// Which item of this record `part` is, if it is one of them (the same value, not
    /// an equal one): a key selected as a field of its record then crosses to another
    /// process as that index instead of being encoded and decoded a second time. The
    /// default finds none.
    fn item_index_of(&self, _part: &Self) -> Option<u8> {
        None
    }

    /// Item `index` of this record, as a record of its own sharing the value: what
    /// [`Record::item_index_of`] named. `None` if there is no such item.
    fn item(&self, _index: u8) -> Option<Self> {
        None
    }

    /// Makes the record its holder's own. With object reuse off (the default, as in
    /// Flink) no user function may see another's changes to a record, yet a record
    /// can be reachable from two places: two operators reading one stream, a reduce's
    /// state and what it emitted, two windows, a function that kept what it returned.
    /// The engine calls this wherever that can happen; a record one of whose parts
    /// that can change is reachable from elsewhere is then replaced by a copy that
    /// shares none of them. Plain Rust values share nothing: the default does nothing.
    /// The error says why the record cannot be copied.
    fn make_private(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// [`Record::make_private`] for each of `records` (an implementation may take a
    /// lock once for all); the error gives the index of the record that failed.
    fn make_all_private(records: &mut [Self]) -> Result<(), (usize, String)> {
        for (i, r) in records.iter_mut().enumerate() {
            r.make_private().map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

use crate::time::NO_TIME;

/// Why a batch from another process could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchReadError {
    /// The bytes are not what [`Record::encode_batch`] writes: ferroflow's bug (or two
    /// versions of it in one job).
    Corrupt(String),
    /// The bytes are fine but a record could not be rebuilt from them by the record's
    /// own code (for Python: unpickling it raised, e.g. its class is not importable).
    Record(String),
}

impl std::fmt::Display for BatchReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchReadError::Corrupt(m) | BatchReadError::Record(m) => f.write_str(m),
        }
    }
}

/// Format errors (`?` on a bounds check) are corruption.
impl From<String> for BatchReadError {
    fn from(message: String) -> Self {
        BatchReadError::Corrupt(message)
    }
}

impl From<&str> for BatchReadError {
    fn from(message: &str) -> Self {
        BatchReadError::Corrupt(message.to_string())
    }
}

/// A record with an event timestamp beside it: event time for record types that have
/// no room for one (tests, pure-Rust jobs).
#[derive(Clone, Debug, PartialEq)]
pub struct Stamped<T> {
    pub value: T,
    pub ts: i64,
}

impl<T> Stamped<T> {
    pub fn new(value: T) -> Self {
        Stamped { value, ts: NO_TIME }
    }

    pub fn at(value: T, ts: i64) -> Self {
        Stamped { value, ts }
    }
}

impl<T: Record> Record for Stamped<T> {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        let mut values = Vec::with_capacity(lines.len());
        T::from_lines(lines, &mut values);
        out.extend(values.into_iter().map(Stamped::new));
    }

    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        let mut values = Vec::new();
        T::from_ints(range, &mut values);
        out.extend(values.into_iter().map(Stamped::new));
    }

    fn describe(&self) -> String {
        self.value.describe()
    }

    /// The timestamps (8 bytes each, after their count), then the values' encoding.
    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        let records: Vec<&Self> = records.collect();
        out.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for r in &records {
            out.extend_from_slice(&r.ts.to_le_bytes());
        }
        T::encode_batch(records.iter().map(|r| &r.value), out)
    }

    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError> {
        let (count, rest) = bytes.split_at_checked(4).ok_or("truncated batch")?;
        let count = u32::from_le_bytes(count.try_into().map_err(|_| "bad count")?) as usize;
        let (stamps, rest) =
            rest.split_at_checked(count.checked_mul(8).ok_or("bad count")?).ok_or("truncated batch")?;
        let mut values = Vec::with_capacity(count);
        T::decode_batch(rest, &mut values)?;
        if values.len() != count {
            return Err(format!("batch says {count} records but holds {}", values.len()).into());
        }
        let ts = stamps.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        out.extend(values.into_iter().zip(ts).map(|(value, ts)| Stamped { value, ts }));
        Ok(())
    }

    fn timestamp(&self) -> i64 {
        self.ts
    }

    fn set_timestamp(&mut self, ts: i64) {
        self.ts = ts;
    }

    fn make_private(&mut self) -> Result<(), String> {
        self.value.make_private()
    }
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

    fn decode_batch(mut bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError> {
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
