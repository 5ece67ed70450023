//! Appending values to a batch.

use super::{tag, zigzag, VERSION};

/// Appends one batch to a byte buffer, value by value.
///
/// The caller drives the structure: after `tuple(n)`/`list(n)` it writes exactly `n`
/// values, after `dict(n)` exactly `n` key/value pairs, and at top level exactly the
/// `count` given to [`Writer::begin_batch`]. The writer does not check this (it is on
/// the hot path); the [`Reader`](super::Reader) rejects a batch that gets it wrong.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Starts a batch of `count` records at the end of `out` (which may already hold
    /// other data: several batches can share one buffer).
    pub fn begin_batch(out: &'a mut Vec<u8>, count: usize) -> Self {
        out.push(VERSION);
        put_varint(out, count as u64);
        Writer { out }
    }

    /// Current end of the buffer, to [`rewind`](Self::rewind) to if a record has to be
    /// written another way (the Python encoder pickles records nested too deep).
    #[inline]
    pub fn position(&self) -> usize {
        self.out.len()
    }

    /// Drops everything written after `position` (a value from [`position`](Self::position)).
    pub fn rewind(&mut self, position: usize) {
        self.out.truncate(position);
    }

    /// Reserves room for `additional` more bytes, to avoid regrowing in a loop.
    pub fn reserve(&mut self, additional: usize) {
        self.out.reserve(additional);
    }

    #[inline]
    pub fn none(&mut self) {
        self.out.push(tag::NONE);
    }

    #[inline]
    pub fn bool(&mut self, v: bool) {
        self.out.push(if v { tag::TRUE } else { tag::FALSE });
    }

    #[inline]
    pub fn int(&mut self, v: i64) {
        self.head(tag::INT, zigzag(v));
    }

    /// An integer of any size, as little-endian two's complement bytes (Python's
    /// `int.to_bytes(n, "little", signed=True)`). Use [`int`](Self::int) when it fits i64.
    pub fn big_int(&mut self, le_twos_complement: &[u8]) {
        self.blob(tag::BIG_INT, le_twos_complement);
    }

    #[inline]
    pub fn float(&mut self, v: f64) {
        self.out.push(tag::FLOAT);
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    #[inline]
    pub fn str(&mut self, v: &str) {
        self.blob(tag::STR, v.as_bytes());
    }

    #[inline]
    pub fn bytes(&mut self, v: &[u8]) {
        self.blob(tag::BYTES, v);
    }

    /// Opens a tuple; the next `len` values are its items.
    #[inline]
    pub fn tuple(&mut self, len: usize) {
        self.head(tag::TUPLE, len as u64);
    }

    /// Opens a list; the next `len` values are its items.
    #[inline]
    pub fn list(&mut self, len: usize) {
        self.head(tag::LIST, len as u64);
    }

    /// Opens a dict; the next `2 * len` values are its keys and values, alternating.
    #[inline]
    pub fn dict(&mut self, len: usize) {
        self.head(tag::DICT, len as u64);
    }

    /// Opens a named tuple of class number `class` (numbered per batch in order of
    /// first use); the next `len` values are its items. The first use of a number must
    /// give the class's `module:qualname` as `name`, later uses `None`.
    pub fn named_tuple(&mut self, class: usize, name: Option<&str>, len: usize) {
        self.head(tag::NAMED_TUPLE, class as u64);
        if let Some(name) = name {
            put_varint(self.out, name.len() as u64);
            self.out.extend_from_slice(name.as_bytes());
        }
        put_varint(self.out, len as u64);
    }

    /// An object the format has no tag for, as `pickle.dumps(obj, 5)` output.
    pub fn pickle(&mut self, pickled: &[u8]) {
        self.blob(tag::PICKLE, pickled);
    }

    #[inline(always)]
    fn blob(&mut self, tag: u8, bytes: &[u8]) {
        self.head(tag, bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }

    /// A tag followed by a varint, in one append for the common one-byte case.
    #[inline(always)]
    fn head(&mut self, tag: u8, v: u64) {
        if v < 0x80 {
            self.out.extend_from_slice(&[tag, v as u8]);
        } else {
            put_head_slow(self.out, tag, v);
        }
    }
}

#[inline(never)]
fn put_head_slow(out: &mut Vec<u8>, tag: u8, v: u64) {
    out.push(tag);
    put_varint(out, v);
}

/// Unsigned LEB128.
#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 10];
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    out.extend_from_slice(&buf[..=i]);
}
