//! Writing an operator's state into the bytes of one checkpoint section, and reading it
//! back from bytes that may be corrupt.
//!
//! The format is positional: a reader calls the same methods in the same order as the
//! writer did, so the operator that owns the state owns its layout. Integers are
//! little-endian. Records are never written one by one: values go through
//! [`Record::encode_batch`] in batches (for Python, one GIL pass and the binding's fast
//! codec per batch).
//!
//! | item | bytes |
//! |---|---|
//! | `u8` / `u32` / `u64` / `i64` / bool | 1 / 4 / 8 / 8 / 1, fixed width |
//! | bytes, str | length `u64`, then the bytes (a str is checked to be UTF-8) |
//! | [`Key`] | as bytes: its canonical encoding (the hash is recomputed on read) |
//! | records | count `u64`, blob length `u64`, one [`Record::encode_batch`] blob |
//! | keyed entries | chunks, then `0u32`; a chunk is `n u32` (1..=[`MAX_CHUNK`]), `n` entry heads, then the values of its `n` entries as one records batch |
//! | entry head | key length varint, key bytes, meta length varint, meta bytes, value count varint |
//!
//! A keyed entry is a key, a few bytes of the caller's own (`meta`: TTL stamps, a
//! window's bounds, map keys' positions) and any number of records (one for a value
//! state, n for a list, 2n for a map's keys and values). Varints (unsigned LEB128) keep
//! the common entry, one value and no meta, at three bytes more than its key and value:
//! a checkpoint of a million keys is mostly keys and values.
//!
//! The reader trusts nothing: every length is checked against the bytes left before it
//! is used, so it never panics and never allocates more than the input could fill.
//! The section's checksum (see [`super::format`]) catches corruption; these checks make
//! sure that what slips past it (a bug, a different build) is an error, not a crash.

use std::fmt;
use std::marker::PhantomData;

use crate::error::UdfError;
use crate::key::Key;
use crate::record::{BatchReadError, Record};

/// Most keyed entries in one chunk, and the number of values after which a chunk is
/// closed: bounds the batch handed to [`Record::encode_batch`]/[`Record::decode_batch`]
/// (memory, GIL hold time) and lets a restore drop the keys it does not own as it goes.
/// One entry's values are never split, so a chunk of one huge list can hold more.
pub const MAX_CHUNK: usize = 1024;

/// Why state could not be written or read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// A value could not be encoded (for Python: it does not pickle). It would fail at
    /// every checkpoint, so the job fails, naming the value.
    Encode(String),
    /// The bytes are not what a [`StateWriter`] wrote (the offset is in the section).
    Corrupt { offset: usize, what: String },
    /// The bytes are fine but a record's own code could not rebuild it (for Python:
    /// unpickling raised, e.g. its class is not importable).
    Record(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Encode(m) => write!(f, "state could not be encoded: {m}"),
            StateError::Corrupt { offset, what } => write!(f, "state is corrupt at byte {offset}: {what}"),
            StateError::Record(m) => write!(f, "a record of the state could not be rebuilt: {m}"),
        }
    }
}

impl std::error::Error for StateError {}

/// For operators' snapshot/restore hooks, which return [`crate::UdfResult`]: a value
/// that does not encode or decode is the user's; corrupt state that passed its checksum
/// is ferroflow's bug.
impl From<StateError> for UdfError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Corrupt { .. } => UdfError::internal(e.to_string()),
            StateError::Encode(_) | StateError::Record(_) => UdfError::new(e.to_string()),
        }
    }
}

/// Appends state to a byte buffer (the body of one checkpoint section).
///
/// Generic over the record type so that a section written for one record type cannot be
/// handed to code expecting another by mistake.
pub struct StateWriter<R: Record> {
    buf: Vec<u8>,
    _record: PhantomData<fn() -> R>,
}

impl<R: Record> Default for StateWriter<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Record> StateWriter<R> {
    /// An empty writer.
    pub fn new() -> Self {
        Self::from_vec(Vec::new())
    }

    /// A writer that appends to `buf` (reuses its allocation; keeps what it holds).
    pub fn from_vec(buf: Vec<u8>) -> Self {
        StateWriter { buf, _record: PhantomData }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// How many bytes have been written.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes, for a section of a part file.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// `true` as 1, `false` as 0 (the reader refuses anything else).
    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// A length-prefixed UTF-8 string (file paths, descriptor names).
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A key, as its canonical encoding: routing hashes are recomputed from it on
    /// restore, so a rescaled job routes it as `key_by` does.
    pub fn key(&mut self, k: &Key) {
        self.bytes(k.bytes());
    }

    /// A batch of records in one [`Record::encode_batch`] call. On an error the writer
    /// holds what was written before this call.
    pub fn records<'a>(&mut self, records: impl ExactSizeIterator<Item = &'a R>) -> Result<(), StateError>
    where
        R: 'a,
    {
        let start = self.buf.len();
        self.u64(records.len() as u64);
        let len_at = self.buf.len();
        self.u64(0);
        let blob_at = self.buf.len();
        if let Err(e) = R::encode_batch(records, &mut self.buf) {
            self.buf.truncate(start);
            return Err(StateError::Encode(e));
        }
        let blob_len = (self.buf.len() - blob_at) as u64;
        self.buf[len_at..blob_at].copy_from_slice(&blob_len.to_le_bytes());
        Ok(())
    }

    /// Keyed entries of one value each and no meta, from state held as a map: borrows
    /// the values, encodes a chunk at a time. After an error the entries are not ended:
    /// the section must be discarded (the job fails anyway).
    pub fn keyed<'a>(&mut self, entries: impl IntoIterator<Item = (&'a Key, &'a R)>) -> Result<(), StateError>
    where
        R: 'a,
    {
        let mut chunk: Vec<(&Key, &R)> = Vec::with_capacity(MAX_CHUNK);
        for entry in entries {
            chunk.push(entry);
            if chunk.len() == MAX_CHUNK {
                self.plain_chunk(&chunk)?;
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            self.plain_chunk(&chunk)?;
        }
        self.u32(0);
        Ok(())
    }

    fn plain_chunk(&mut self, entries: &[(&Key, &R)]) -> Result<(), StateError> {
        self.u32(entries.len() as u32);
        for (k, _) in entries {
            put_head(&mut self.buf, k, &[], 1);
        }
        self.records(entries.iter().map(|(_, v)| *v))
    }

    /// Starts keyed entries produced one at a time, by value (a state backend's snapshot
    /// callback), with meta bytes and any number of values each; end them with
    /// [`KeyedWriter::finish`]. They read back with [`StateReader::keyed_entries`] (or
    /// [`StateReader::keyed`] if each has one value and no meta).
    pub fn begin_keyed(&mut self) -> KeyedWriter<'_, R> {
        KeyedWriter { out: self, heads: Vec::new(), entries: 0, values: Vec::new() }
    }
}

/// Appends a keyed entry's head (see the module doc).
fn put_head(buf: &mut Vec<u8>, key: &Key, meta: &[u8], values: usize) {
    put_varint(buf, key.bytes().len() as u64);
    buf.extend_from_slice(key.bytes());
    put_varint(buf, meta.len() as u64);
    buf.extend_from_slice(meta);
    put_varint(buf, values as u64);
}

/// Unsigned LEB128: 7 bits a byte, least significant first.
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Keyed entries pushed one by one, written a chunk at a time (see
/// [`StateWriter::begin_keyed`]).
#[must_use = "keyed entries are ended by `finish`; without it the section cannot be read"]
pub struct KeyedWriter<'w, R: Record> {
    out: &'w mut StateWriter<R>,
    /// The pending entries' heads, already encoded.
    heads: Vec<u8>,
    entries: usize,
    values: Vec<R>,
}

impl<R: Record> KeyedWriter<'_, R> {
    /// Adds an entry of one value and no meta (a value, reducing or aggregating state).
    pub fn push(&mut self, key: &Key, value: R) -> Result<(), StateError> {
        self.push_entry(key, &[], [value])
    }

    /// Adds an entry: the key, the caller's `meta` bytes (read back as they are) and
    /// its values in order. A chunk is written once [`MAX_CHUNK`] entries or values
    /// are pending.
    pub fn push_entry(
        &mut self,
        key: &Key,
        meta: &[u8],
        values: impl IntoIterator<Item = R>,
    ) -> Result<(), StateError> {
        let before = self.values.len();
        self.values.extend(values);
        put_head(&mut self.heads, key, meta, self.values.len() - before);
        self.entries += 1;
        if self.entries == MAX_CHUNK || self.values.len() >= MAX_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is pending and the end of the entries. Without it (an error
    /// returned early), the entries are not ended and the section must be discarded.
    pub fn finish(mut self) -> Result<(), StateError> {
        self.flush()?;
        self.out.u32(0);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StateError> {
        if self.entries == 0 {
            return Ok(());
        }
        self.out.u32(self.entries as u32);
        self.out.buf.extend_from_slice(&self.heads);
        self.out.records(self.values.iter())?;
        self.heads.clear();
        self.entries = 0;
        self.values.clear();
        Ok(())
    }
}

/// Reads back what a [`StateWriter`] wrote, in the same order, from untrusted bytes.
pub struct StateReader<'a, R: Record> {
    buf: &'a [u8],
    pos: usize,
    _record: PhantomData<fn() -> R>,
}

/// One entry head of a keyed chunk, before its values are decoded.
struct Head<'a> {
    key: Key,
    meta: &'a [u8],
    values: u64,
}

impl<'a, R: Record> StateReader<'a, R> {
    pub fn new(buf: &'a [u8]) -> Self {
        StateReader { buf, pos: 0, _record: PhantomData }
    }

    /// How many bytes are left unread.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Checks that everything was read: bytes left over mean reader and writer disagree
    /// about the layout.
    pub fn finish(&self) -> Result<(), StateError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.corrupt(format!("{n} bytes left after the last item"))),
        }
    }

    /// A [`StateError::Corrupt`] at the current offset: for a caller whose own layout
    /// check failed (a tag it does not know, a count that does not fit).
    pub fn corrupt(&self, what: impl Into<String>) -> StateError {
        StateError::Corrupt { offset: self.pos, what: what.into() }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], StateError> {
        if n > self.remaining() {
            return Err(self.corrupt(format!("{what} needs {n} bytes, {} are left", self.remaining())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], StateError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.array::<1>("a u8")?[0])
    }

    pub fn u32(&mut self) -> Result<u32, StateError> {
        self.array("a u32").map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, StateError> {
        self.array("a u64").map(u64::from_le_bytes)
    }

    pub fn i64(&mut self) -> Result<i64, StateError> {
        self.array("an i64").map(i64::from_le_bytes)
    }

    pub fn bool(&mut self) -> Result<bool, StateError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => {
                self.pos -= 1;
                Err(self.corrupt(format!("{b} is not a bool")))
            }
        }
    }

    fn varint(&mut self) -> Result<u64, StateError> {
        let at = self.pos;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StateError::Corrupt { offset: at, what: "a varint longer than 64 bits".into() })
    }

    /// `n` (a length just read) bytes, which must fit in what is left: a corrupt length
    /// can make the caller neither allocate nor slice past the end.
    fn sized(&mut self, n: u64, at: usize, what: &str) -> Result<&'a [u8], StateError> {
        if n > self.remaining() as u64 {
            let left = self.remaining();
            return Err(StateError::Corrupt { offset: at, what: format!("{what} of {n} bytes, {left} are left") });
        }
        self.take(n as usize, what)
    }

    /// Bytes written by [`StateWriter::bytes`], borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let at = self.pos;
        let n = self.u64()?;
        self.sized(n, at, "bytes")
    }

    pub fn str(&mut self) -> Result<&'a str, StateError> {
        let at = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|e| StateError::Corrupt { offset: at, what: format!("a str is not UTF-8: {e}") })
    }

    /// A key; its routing hash is recomputed from the bytes.
    pub fn key(&mut self) -> Result<Key, StateError> {
        self.bytes().map(Key::from_encoded)
    }

    /// Appends the records of one [`StateWriter::records`] batch to `out`.
    pub fn records(&mut self, out: &mut Vec<R>) -> Result<(), StateError> {
        let at = self.pos;
        let count = self.u64()?;
        let blob = self.bytes()?;
        let before = out.len();
        R::decode_batch(blob, out).map_err(|e| match e {
            BatchReadError::Corrupt(m) => StateError::Corrupt { offset: at, what: m },
            BatchReadError::Record(m) => StateError::Record(m),
        })?;
        let got = out.len() - before;
        if got as u64 != count {
            out.truncate(before);
            return Err(StateError::Corrupt {
                offset: at,
                what: format!("a batch says {count} records but holds {got}"),
            });
        }
        Ok(())
    }

    fn head(&mut self) -> Result<Head<'a>, StateError> {
        let at = self.pos;
        let n = self.varint()?;
        let key = Key::from_encoded(self.sized(n, at, "a key")?);
        let at = self.pos;
        let n = self.varint()?;
        let meta = self.sized(n, at, "an entry's meta")?;
        Ok(Head { key, meta, values: self.varint()? })
    }

    /// Every keyed entry up to the end marker, in the written order: its key, its meta
    /// bytes and an iterator over its values (values `f` leaves unread are dropped). A
    /// restore that rescales skips the keys it does not own by not reading them. The
    /// first error, `f`'s included, stops the reading and is returned.
    pub fn keyed_entries<E: From<StateError>>(
        &mut self,
        mut f: impl FnMut(Key, &'a [u8], &mut dyn Iterator<Item = R>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut heads = Vec::new();
        let mut values = Vec::new();
        loop {
            let at = self.pos;
            let n = self.u32()? as usize;
            if n == 0 {
                return Ok(());
            }
            if n > MAX_CHUNK {
                return Err(StateError::Corrupt {
                    offset: at,
                    what: format!("a chunk of {n} entries (most is {MAX_CHUNK})"),
                }
                .into());
            }
            heads.clear();
            let mut total = 0u64;
            for _ in 0..n {
                let h = self.head()?;
                total = total.saturating_add(h.values);
                heads.push(h);
            }
            values.clear();
            self.records(&mut values)?;
            if values.len() as u64 != total {
                let what = format!("the entries of a chunk have {total} values, its batch {}", values.len());
                return Err(StateError::Corrupt { offset: at, what }.into());
            }
            let mut it = values.drain(..);
            for h in heads.drain(..) {
                let mut vals = it.by_ref().take(h.values as usize);
                f(h.key, h.meta, &mut vals)?;
                vals.for_each(drop);
            }
        }
    }

    /// Keyed entries written by [`StateWriter::keyed`] or [`KeyedWriter::push`]: one
    /// value each, no meta (anything else is an error).
    pub fn keyed<E: From<StateError>>(&mut self, mut f: impl FnMut(Key, R) -> Result<(), E>) -> Result<(), E> {
        let at = self.pos;
        self.keyed_entries(|key, meta, values| {
            let (Some(v), None, true) = (values.next(), values.next(), meta.is_empty()) else {
                let what = "an entry that is not one value without meta".into();
                return Err(StateError::Corrupt { offset: at, what }.into());
            };
            f(key, v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::key_of;
    use crate::record::Stamped;
    use crate::UdfError;
    use proptest::prelude::*;

    /// One item of a section, for generated write/read scripts.
    #[derive(Clone, Debug, PartialEq)]
    enum Item {
        U8(u8),
        U32(u32),
        U64(u64),
        I64(i64),
        Bool(bool),
        Bytes(Vec<u8>),
        Str(String),
        Key(Key),
        Records(Vec<Stamped<String>>),
        Keyed(Vec<(Key, Stamped<String>)>),
        /// Entries with meta bytes and any number of values.
        Entries(Vec<(Key, Vec<u8>, Vec<Stamped<String>>)>),
    }

    type W = StateWriter<Stamped<String>>;
    type Rd<'a> = StateReader<'a, Stamped<String>>;

    fn write(items: &[Item], by_push: bool) -> Vec<u8> {
        let mut w = W::new();
        for item in items {
            match item {
                Item::U8(v) => w.u8(*v),
                Item::U32(v) => w.u32(*v),
                Item::U64(v) => w.u64(*v),
                Item::I64(v) => w.i64(*v),
                Item::Bool(v) => w.bool(*v),
                Item::Bytes(v) => w.bytes(v),
                Item::Str(v) => w.str(v),
                Item::Key(k) => w.key(k),
                Item::Records(rs) => w.records(rs.iter()).unwrap(),
                Item::Keyed(es) if by_push => {
                    let mut k = w.begin_keyed();
                    for (key, v) in es {
                        k.push(key, v.clone()).unwrap();
                    }
                    k.finish().unwrap();
                }
                Item::Keyed(es) => w.keyed(es.iter().map(|(k, v)| (k, v))).unwrap(),
                Item::Entries(es) => {
                    let mut k = w.begin_keyed();
                    for (key, meta, vs) in es {
                        k.push_entry(key, meta, vs.iter().cloned()).unwrap();
                    }
                    k.finish().unwrap();
                }
            }
        }
        w.into_bytes()
    }

    /// Reads the items `script` says are there (a script's shape, its values ignored).
    fn read(bytes: &[u8], script: &[Item]) -> Result<Vec<Item>, StateError> {
        let mut r = Rd::new(bytes);
        let mut out = Vec::new();
        for item in script {
            out.push(match item {
                Item::U8(_) => Item::U8(r.u8()?),
                Item::U32(_) => Item::U32(r.u32()?),
                Item::U64(_) => Item::U64(r.u64()?),
                Item::I64(_) => Item::I64(r.i64()?),
                Item::Bool(_) => Item::Bool(r.bool()?),
                Item::Bytes(_) => Item::Bytes(r.bytes()?.to_vec()),
                Item::Str(_) => Item::Str(r.str()?.to_string()),
                Item::Key(_) => Item::Key(r.key()?),
                Item::Records(_) => {
                    let mut v = Vec::new();
                    r.records(&mut v)?;
                    Item::Records(v)
                }
                Item::Keyed(_) => {
                    let mut v = Vec::new();
                    r.keyed(|k, x| {
                        v.push((k, x));
                        Ok::<_, StateError>(())
                    })?;
                    Item::Keyed(v)
                }
                Item::Entries(_) => {
                    let mut v = Vec::new();
                    r.keyed_entries(|k, meta, vs| {
                        v.push((k, meta.to_vec(), vs.collect()));
                        Ok::<_, StateError>(())
                    })?;
                    Item::Entries(v)
                }
            });
        }
        r.finish()?;
        Ok(out)
    }

    fn record() -> impl Strategy<Value = Stamped<String>> {
        (".{0,6}", any::<i64>()).prop_map(|(s, ts)| Stamped::at(s, ts))
    }

    fn key() -> impl Strategy<Value = Key> {
        prop_oneof![any::<i64>().prop_map(|i| key_of(&i)), ".{0,30}".prop_map(|s| key_of(s.as_str()))]
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            any::<u8>().prop_map(Item::U8),
            any::<u32>().prop_map(Item::U32),
            any::<u64>().prop_map(Item::U64),
            any::<i64>().prop_map(Item::I64),
            any::<bool>().prop_map(Item::Bool),
            prop::collection::vec(any::<u8>(), 0..20).prop_map(Item::Bytes),
            ".{0,10}".prop_map(Item::Str),
            key().prop_map(Item::Key),
            prop::collection::vec(record(), 0..5).prop_map(Item::Records),
            // Up to three chunks, so chunk boundaries are crossed.
            prop::collection::vec((key(), record()), 0..(2 * MAX_CHUNK + 3)).prop_map(Item::Keyed),
            prop::collection::vec(
                (key(), prop::collection::vec(any::<u8>(), 0..4), prop::collection::vec(record(), 0..300)),
                0..12
            )
            .prop_map(Item::Entries),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever is written reads back as itself, in order, with nothing left over,
        /// whether keyed entries were borrowed or pushed by value.
        #[test]
        fn round_trip(items in prop::collection::vec(item(), 0..8), by_push: bool) {
            let bytes = write(&items, by_push);
            prop_assert_eq!(read(&bytes, &items).unwrap(), items.clone());
            // The two keyed writers write the same bytes.
            prop_assert_eq!(bytes, write(&items, !by_push));
        }

        /// A section cut short is an error, never a panic or a shorter value.
        #[test]
        fn truncation_is_an_error(items in prop::collection::vec(item(), 1..5), cut in any::<prop::sample::Index>()) {
            let bytes = write(&items, false);
            prop_assume!(!bytes.is_empty());
            let at = cut.index(bytes.len());
            prop_assert!(read(&bytes[..at], &items).is_err());
        }

        /// Arbitrary bytes read with any script: an error or some values, never a panic
        /// or a huge allocation.
        #[test]
        fn garbage_does_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), items in prop::collection::vec(item(), 1..6)) {
            let _ = read(&bytes, &items);
        }
    }

    /// The entry counts of the chunks in `bytes` (one keyed item), read with the
    /// reader's own pieces.
    fn chunk_sizes(bytes: &[u8]) -> Vec<(u32, usize)> {
        let mut r = Rd::new(bytes);
        let mut sizes = Vec::new();
        loop {
            let n = r.u32().unwrap();
            if n == 0 {
                break;
            }
            (0..n).for_each(|_| drop(r.head().unwrap()));
            let mut v = Vec::new();
            r.records(&mut v).unwrap();
            sizes.push((n, v.len()));
        }
        r.finish().unwrap();
        sizes
    }

    fn rec(i: usize) -> Stamped<String> {
        Stamped::at(i.to_string(), i as i64)
    }

    #[test]
    fn chunks_close_at_max_chunk_entries_or_values() {
        let plain: Vec<(Key, Stamped<String>)> =
            (0..2 * MAX_CHUNK + 1).map(|i| (key_of(&(i as i64)), rec(i))).collect();
        let bytes = write(&[Item::Keyed(plain.clone())], false);
        assert_eq!(chunk_sizes(&bytes), [(1024, 1024), (1024, 1024), (1, 1)]);
        assert_eq!(bytes, write(&[Item::Keyed(plain)], true));
        // 600 values an entry: a chunk closes after two; one list of 3000 is not split.
        let lists = |sizes: &[usize]| {
            Item::Entries(sizes.iter().map(|&n| (key_of(&(n as i64)), vec![], (0..n).map(rec).collect())).collect())
        };
        assert_eq!(chunk_sizes(&write(&[lists(&[600, 600, 600])], false)), [(2, 1200), (1, 600)]);
        assert_eq!(chunk_sizes(&write(&[lists(&[3000, 0])], false)), [(1, 3000), (1, 0)]);
        // Entries without values take no batch space but still count.
        assert_eq!(chunk_sizes(&write(&[lists(&[0; 1500])], false)), [(1024, 0), (476, 0)]);
    }

    /// A restore reads some values of some entries and skips the rest: the next entry
    /// still gets its own values.
    #[test]
    fn unread_values_are_skipped() {
        let entries: Vec<(Key, Vec<u8>, Vec<Stamped<String>>)> =
            (0..40).map(|i| (key_of(&(i as i64)), vec![i as u8; i % 3], (0..i * 30).map(rec).collect())).collect();
        let bytes = write(&[Item::Entries(entries.clone())], false);
        let mut r = Rd::new(&bytes);
        let mut got = Vec::new();
        r.keyed_entries(|k, meta, vs| {
            if k.hash() % 2 == 0 {
                got.push((k, meta.to_vec(), vs.next()));
            }
            Ok::<_, StateError>(())
        })
        .unwrap();
        r.finish().unwrap();
        let want: Vec<_> = entries
            .into_iter()
            .filter(|(k, ..)| k.hash() % 2 == 0)
            .map(|(k, meta, vs)| (k, meta, vs.into_iter().next()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_callback_error_stops_the_reading() {
        let entries: Vec<(Key, Stamped<String>)> = (0..5).map(|i| (key_of(&(i as i64)), rec(i))).collect();
        let bytes = write(&[Item::Keyed(entries)], false);
        let mut seen = 0;
        let err = Rd::new(&bytes)
            .keyed(|_, v| {
                seen += 1;
                match v.ts {
                    2 => Err(UdfError::new("key 2 is refused")),
                    _ => Ok(()),
                }
            })
            .unwrap_err();
        assert_eq!((err, seen), (UdfError::new("key 2 is refused"), 3));
        // Entries of another shape are not read as plain ones.
        let bytes = write(&[Item::Entries(vec![(key_of(&1i64), vec![7], vec![rec(1)])])], false);
        let err = Rd::new(&bytes).keyed(|_, _| Ok::<_, StateError>(())).unwrap_err();
        assert!(err.to_string().contains("not one value without meta"), "{err}");
        let bytes = write(&[Item::Entries(vec![(key_of(&1i64), vec![], vec![rec(1), rec(2)])])], false);
        assert!(Rd::new(&bytes).keyed(|_, _| Ok::<_, StateError>(())).is_err());
    }

    #[test]
    fn corrupt_lengths_and_counts_are_named() {
        // A bytes length past the end.
        let mut w = StateWriter::<String>::new();
        w.u64(1 << 40);
        let err = StateReader::<String>::new(w.as_bytes()).bytes().unwrap_err();
        assert!(matches!(&err, StateError::Corrupt { offset: 0, what } if what.contains("1099511627776")), "{err}");
        // A chunk larger than the most a writer makes.
        let mut w = StateWriter::<String>::new();
        w.u32(MAX_CHUNK as u32 + 1);
        let err = StateReader::<String>::new(w.as_bytes()).keyed(|_, _| Ok::<_, StateError>(())).unwrap_err();
        assert!(err.to_string().contains("a chunk of 1025 entries"), "{err}");
        // A varint that runs past 64 bits.
        let mut w = StateWriter::<String>::new();
        w.u32(1);
        w.buf.extend_from_slice(&[0xff; 10]);
        let err = StateReader::<String>::new(w.as_bytes()).keyed(|_, _| Ok::<_, StateError>(())).unwrap_err();
        assert_eq!(err, StateError::Corrupt { offset: 4, what: "a varint longer than 64 bits".into() });
        // Entry heads promising more values than the batch holds.
        let mut w = StateWriter::<String>::new();
        w.u32(1);
        put_head(&mut w.buf, &key_of(&1i64), &[], 2);
        w.records(["a".to_string()].iter()).unwrap();
        let err = StateReader::<String>::new(w.as_bytes()).keyed(|_, _| Ok::<_, StateError>(())).unwrap_err();
        assert!(err.to_string().contains("the entries of a chunk have 2 values, its batch 1"), "{err}");
        // A batch whose count disagrees with its blob.
        let mut w = StateWriter::<String>::new();
        w.records(["a".to_string()].iter()).unwrap();
        let mut bytes = w.into_bytes();
        bytes[0] = 2;
        let err = StateReader::<String>::new(&bytes).records(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("says 2 records but holds 1"), "{err}");
        // A str that is not UTF-8; a bool that is neither 0 nor 1; bytes left over.
        let mut w = StateWriter::<String>::new();
        w.bytes(&[0xff]);
        w.u8(7);
        let mut r = StateReader::<String>::new(w.as_bytes());
        assert!(r.str().unwrap_err().to_string().contains("not UTF-8"));
        let mut r = StateReader::<String>::new(&w.as_bytes()[9..]);
        assert!(r.bool().unwrap_err().to_string().contains("7 is not a bool"));
        assert!(r.finish().unwrap_err().to_string().contains("1 bytes left"));
    }

    /// A record type whose encoding fails for one value, and whose decoding fails as
    /// user code does (a class that is not importable).
    #[derive(Clone, Debug, PartialEq)]
    struct Picky(i64);

    impl Record for Picky {
        fn from_lines(_: &mut Vec<String>, _: &mut Vec<Self>) {}
        fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
            out.extend(range.map(Picky));
        }
        fn describe(&self) -> String {
            format!("{self:?}")
        }
        fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
            for r in records {
                if r.0 < 0 {
                    return Err(format!("cannot encode {}", r.0));
                }
                out.extend_from_slice(&r.0.to_le_bytes());
            }
            Ok(())
        }
        fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError> {
            for c in bytes.chunks(8) {
                let v = i64::from_le_bytes(c.try_into().map_err(|_| "ragged batch")?);
                if v == 13 {
                    return Err(BatchReadError::Record("class Thirteen is not importable".into()));
                }
                out.push(Picky(v));
            }
            Ok(())
        }
    }

    #[test]
    fn encode_and_record_errors_are_reported() {
        let mut w = StateWriter::<Picky>::new();
        w.u8(1);
        let err = w.records([Picky(1), Picky(-5)].iter()).unwrap_err();
        assert_eq!(err, StateError::Encode("cannot encode -5".into()));
        assert_eq!(w.as_bytes(), &[1], "a failed batch leaves nothing behind");
        let err = w.keyed([(&key_of(&1i64), &Picky(-1))]).unwrap_err();
        assert!(err.to_string().contains("cannot encode -1"), "{err}");

        let mut w = StateWriter::<Picky>::new();
        w.keyed([(&key_of(&1i64), &Picky(13))]).unwrap();
        let err = StateReader::<Picky>::new(w.as_bytes()).keyed(|_, _| Ok::<_, StateError>(())).unwrap_err();
        assert_eq!(err, StateError::Record("class Thirteen is not importable".into()));
    }
}
