//! The wire format for record batches that cross a process boundary.
//!
//! Inside a process records are never converted. Between processes a whole batch is
//! encoded at once (one call per batch, not per record: per-record serialisation was
//! measured at 4x the cost). This module is the format only, in pure Rust with no
//! Python: a [`Writer`] that appends tagged values to a `Vec<u8>`, and a [`Reader`]
//! that pulls them back out of untrusted bytes. The Python binding drives both
//! directly from and to CPython objects, with no intermediate value model.
//!
//! # Format (version 1)
//!
//! ```text
//! batch  = version:u8 (= 1)  count:varint  value{count}
//! value  = tag:u8 payload
//! ```
//!
//! | tag  | value    | payload                                                     |
//! |------|----------|-------------------------------------------------------------|
//! | 0x00 | None     | -                                                           |
//! | 0x01 | False    | -                                                           |
//! | 0x02 | True     | -                                                           |
//! | 0x03 | int      | zigzag varint (fits in i64)                                 |
//! | 0x04 | big int  | len:varint, len bytes of little-endian two's complement     |
//! | 0x05 | float    | 8 bytes, IEEE-754 binary64, little-endian (bits kept: -0.0, NaN payloads) |
//! | 0x06 | str      | len:varint, len bytes of UTF-8                              |
//! | 0x07 | bytes    | len:varint, len bytes                                       |
//! | 0x08 | tuple    | n:varint, n values                                          |
//! | 0x09 | list     | n:varint, n values                                          |
//! | 0x0A | dict     | n:varint, n (key, value) pairs, in insertion order          |
//! | 0x0B | pickle   | len:varint, len bytes of `pickle.dumps(obj, 5)`             |
//! | 0x0C | named tuple | class:varint, [name], n:varint, n values (see below)     |
//!
//! A named tuple (a `collections.namedtuple` or `typing.NamedTuple` instance, such as
//! the Nexmark records) keeps its class without pickle. Classes are numbered per batch
//! in order of first use: `class` is either a number already defined in this batch, or
//! the next one, which is then defined by `name` (len:varint, len bytes of UTF-8
//! `module:qualname`, for the receiver to import). Tag 0x0C was added after version 1
//! shipped; batches without it read as before.
//!
//! `varint` is unsigned LEB128 (7 bits per byte, least significant first, at most 10
//! bytes for a u64). Nothing depends on the host: no native-endian or `usize` fields.
//! Containers nest at most [`MAX_DEPTH`] deep; the writer's caller falls back to the
//! pickle tag for anything deeper, so a well-formed batch never needs more.
//!
//! # Decoding untrusted input
//!
//! The [`Reader`] checks every tag and length: it never panics, never recurses (the
//! consumer recurses, and the reader refuses to open container [`MAX_DEPTH`] + 1), and
//! never lets a consumer allocate more than the input can fill: every count it hands
//! out is checked against the bytes left, counting all values still owed by open
//! containers (each value takes at least one byte), so `Vec::with_capacity(n)` on a
//! reported count is always safe.

mod reader;
mod writer;

pub use reader::{DecodeError, DecodeErrorKind, Item, Reader};
pub use writer::Writer;

/// The format version, first byte of every batch. Bump it on any incompatible change;
/// all processes of a job run the same build, so there is no negotiation.
pub const VERSION: u8 = 1;

/// Deepest container nesting a batch may hold. Bounds the consumer's recursion (its
/// stack) when decoding; the encoder pickles records nested deeper than this.
pub const MAX_DEPTH: usize = 64;

/// The tag bytes (see the module documentation for the payloads).
pub mod tag {
    pub const NONE: u8 = 0x00;
    pub const FALSE: u8 = 0x01;
    pub const TRUE: u8 = 0x02;
    pub const INT: u8 = 0x03;
    pub const BIG_INT: u8 = 0x04;
    pub const FLOAT: u8 = 0x05;
    pub const STR: u8 = 0x06;
    pub const BYTES: u8 = 0x07;
    pub const TUPLE: u8 = 0x08;
    pub const LIST: u8 = 0x09;
    pub const DICT: u8 = 0x0A;
    pub const PICKLE: u8 = 0x0B;
    pub const NAMED_TUPLE: u8 = 0x0C;
}

/// Checks that `bytes` is one well-formed batch (structure, lengths, UTF-8, no trailing
/// bytes) without building anything; returns its record count. For tests, fuzzing and
/// diagnostics: decoders check as they go and need not call it first.
pub fn validate(bytes: &[u8]) -> Result<usize, DecodeError> {
    let mut reader = Reader::new(bytes)?;
    while reader.values_owed() > 0 {
        reader.read()?;
    }
    reader.finish()?;
    Ok(reader.record_count())
}

/// Maps a signed integer to an unsigned one with small magnitudes first
/// (0, -1, 1, -2, ... → 0, 1, 2, 3, ...), so small negative ints stay one byte.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
