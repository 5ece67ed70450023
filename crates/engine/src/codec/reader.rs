//! Pulling values out of a batch, trusting nothing about the bytes.

use std::fmt;

use super::{tag, unzigzag, MAX_DEPTH, VERSION};

/// One decoded value, or the header of a container whose items follow.
///
/// Borrowed slices point into the input, so scalars cost no allocation; building
/// the consumer's own objects is up to the consumer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Item<'a> {
    None,
    Bool(bool),
    Int(i64),
    /// Little-endian two's complement, any length (an int too large for i64).
    BigInt(&'a [u8]),
    Float(f64),
    /// Already checked to be valid UTF-8.
    Str(&'a str),
    Bytes(&'a [u8]),
    /// The next `n` items are the tuple's items.
    Tuple(usize),
    /// The next `n` items are the list's items.
    List(usize),
    /// The next `2 * n` items are the dict's keys and values, alternating.
    Dict(usize),
    /// `pickle.dumps(obj, 5)` output, for a type the format has no tag for.
    Pickle(&'a [u8]),
    /// The next `n` items are a named tuple's, of the batch's class number `class`;
    /// `name` (`module:qualname`) is given where that number is first used.
    NamedTuple {
        class: usize,
        name: Option<&'a str>,
        n: usize,
    },
}

/// Why a batch could not be decoded, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the batch where the problem was found.
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

/// The kinds of [`DecodeError`]. All but `NoValueOwed` and `Unfinished` mean the
/// bytes are corrupt (or were not a batch); those two can also mean the consumer
/// read more or fewer values than the batch holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended in the middle of a value or header.
    Truncated,
    /// The first byte is not a version this build can read.
    UnsupportedVersion(u8),
    /// A varint runs over 64 bits.
    VarintTooLong,
    UnknownTag(u8),
    /// A count or length needs more bytes than are left (after the bytes still owed to
    /// values already announced).
    LengthTooLarge {
        claimed: u64,
        available: u64,
    },
    InvalidUtf8,
    /// A container would open nesting level [`MAX_DEPTH`] + 1.
    TooDeep,
    /// `read` was called after the batch's last value.
    NoValueOwed,
    /// `finish` was called with values still unread.
    Unfinished {
        values_owed: u64,
    },
    /// Bytes left after the batch's last value.
    TrailingBytes(usize),
    /// A named tuple refers to a class number neither defined earlier in the batch
    /// nor the next one.
    UnknownClass(u64),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt record batch at byte {}: ", self.offset)?;
        match self.kind {
            DecodeErrorKind::Truncated => write!(f, "input ends in the middle of a value"),
            DecodeErrorKind::UnsupportedVersion(v) => {
                write!(f, "format version {v} is not supported (this build reads version {VERSION})")
            }
            DecodeErrorKind::VarintTooLong => write!(f, "varint longer than 64 bits"),
            DecodeErrorKind::UnknownTag(t) => write!(f, "unknown tag 0x{t:02x}"),
            DecodeErrorKind::LengthTooLarge { claimed, available } => {
                write!(f, "length {claimed} exceeds the {available} bytes left")
            }
            DecodeErrorKind::InvalidUtf8 => write!(f, "str is not valid UTF-8"),
            DecodeErrorKind::TooDeep => write!(f, "containers nested more than {MAX_DEPTH} deep"),
            DecodeErrorKind::NoValueOwed => write!(f, "read past the last value of the batch"),
            DecodeErrorKind::Unfinished { values_owed } => write!(f, "{values_owed} values left unread"),
            DecodeErrorKind::TrailingBytes(n) => write!(f, "{n} bytes after the last value"),
            DecodeErrorKind::UnknownClass(c) => write!(f, "named tuple of undefined class number {c}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads one batch, one [`Item`] at a time, checking everything.
///
/// Pull-based so the consumer can build nested objects by plain recursion: on
/// `Tuple(n)` it calls [`read`](Self::read) `n` more times (recursing into nested
/// containers). The reader tracks the open containers itself, so it enforces the depth
/// limit and the bounds on counts whatever the consumer does. After the last record,
/// [`finish`](Self::finish) checks nothing is left over. After any error the reader
/// is spent: every later call fails.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    record_count: usize,
    records_left: u64,
    /// Values still owed: unread records plus unread items of open containers.
    pending: u64,
    depth: usize,
    /// Named-tuple classes defined so far in the batch.
    classes: u64,
    /// Items still owed by each open container (innermost last); never 0 while open.
    open: [u64; MAX_DEPTH],
    failed: Option<DecodeError>,
}

impl<'a> Reader<'a> {
    /// Reads the batch header (version and record count).
    pub fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader {
            buf,
            pos: 0,
            record_count: 0,
            records_left: 0,
            pending: 0,
            depth: 0,
            classes: 0,
            open: [0; MAX_DEPTH],
            failed: None,
        };
        let version = r.byte()?;
        if version != VERSION {
            return Err(r.error_at(0, DecodeErrorKind::UnsupportedVersion(version)));
        }
        let count = r.varint()?;
        r.check_fits(count)?;
        r.record_count = count as usize; // fits: at most the input length
        r.records_left = count;
        r.pending = count;
        Ok(r)
    }

    /// How many records (top-level values) the batch holds; checked against the input
    /// length, so it is safe to preallocate.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// How many values remain to be read: records not yet started plus items still
    /// owed by open containers. Zero once the batch is fully read.
    pub fn values_owed(&self) -> u64 {
        self.pending
    }

    /// How many containers are open around the next value.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Byte offset of the next value.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next value, or the header of the next container.
    #[inline(always)]
    pub fn read(&mut self) -> Result<Item<'a>, DecodeError> {
        // Charge this value to the innermost open container (never at 0 while open),
        // or else to the batch. A failed reader has no records left and no depth.
        match self.open.get_mut(self.depth.wrapping_sub(1)) {
            Some(items_left) => *items_left -= 1,
            None if self.records_left > 0 => self.records_left -= 1,
            None => return Err(self.failed.unwrap_or_else(|| self.error(DecodeErrorKind::NoValueOwed))),
        }
        self.pending -= 1;

        let start = self.pos;
        let tag = self.byte()?;
        let item = match tag {
            tag::STR => {
                let b = self.blob()?;
                if b.is_ascii() {
                    // SAFETY: ASCII is valid UTF-8 (this check is much faster than
                    // `from_utf8` on the short strings records are made of).
                    Item::Str(unsafe { std::str::from_utf8_unchecked(b) })
                } else {
                    match std::str::from_utf8(b) {
                        Ok(s) => Item::Str(s),
                        Err(_) => return Err(self.error_at(start, DecodeErrorKind::InvalidUtf8)),
                    }
                }
            }
            tag::INT => Item::Int(unzigzag(self.varint()?)),
            tag::TUPLE => {
                let n = self.varint()?;
                self.open_container(start, n)?;
                return Ok(Item::Tuple(n as usize));
            }
            tag::NONE => Item::None,
            tag::FALSE => Item::Bool(false),
            tag::TRUE => Item::Bool(true),
            tag::FLOAT => {
                let b = self.take(8)?;
                let mut bits = [0u8; 8];
                bits.copy_from_slice(b);
                Item::Float(f64::from_bits(u64::from_le_bytes(bits)))
            }
            tag::BYTES => Item::Bytes(self.blob()?),
            tag::LIST => {
                let n = self.varint()?;
                self.open_container(start, n)?;
                return Ok(Item::List(n as usize));
            }
            tag::DICT => {
                let n = self.varint()?;
                let values = match n.checked_mul(2) {
                    Some(v) => v,
                    None => return Err(self.too_large(n)),
                };
                self.open_container(start, values)?;
                return Ok(Item::Dict(n as usize));
            }
            tag::BIG_INT => Item::BigInt(self.blob()?),
            tag::PICKLE => Item::Pickle(self.blob()?),
            tag::NAMED_TUPLE => {
                let class = self.varint()?;
                let name = match class.cmp(&self.classes) {
                    std::cmp::Ordering::Less => None,
                    std::cmp::Ordering::Equal => {
                        let b = self.blob()?;
                        let name =
                            std::str::from_utf8(b).map_err(|_| self.error_at(start, DecodeErrorKind::InvalidUtf8))?;
                        self.classes += 1;
                        Some(name)
                    }
                    std::cmp::Ordering::Greater => {
                        return Err(self.error_at(start, DecodeErrorKind::UnknownClass(class)))
                    }
                };
                let n = self.varint()?;
                self.open_container(start, n)?;
                // Fits: `class` is below `classes`, which counts names read from the input.
                return Ok(Item::NamedTuple { class: class as usize, name, n: n as usize });
            }
            other => return Err(self.error_at(start, DecodeErrorKind::UnknownTag(other))),
        };
        self.close_finished();
        Ok(item)
    }

    /// Checks the batch was read to its end: every value read, no bytes left over.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.pending > 0 {
            return Err(DecodeError {
                offset: self.pos,
                kind: DecodeErrorKind::Unfinished { values_owed: self.pending },
            });
        }
        if self.pos < self.buf.len() {
            return Err(DecodeError {
                offset: self.pos,
                kind: DecodeErrorKind::TrailingBytes(self.buf.len() - self.pos),
            });
        }
        Ok(())
    }

    /// Registers a container header owing `values` items.
    #[inline]
    fn open_container(&mut self, start: usize, values: u64) -> Result<(), DecodeError> {
        if self.depth == MAX_DEPTH {
            return Err(self.error_at(start, DecodeErrorKind::TooDeep));
        }
        self.check_fits(values)?;
        if values == 0 {
            self.close_finished();
        } else {
            self.open[self.depth] = values;
            self.depth += 1;
            self.pending += values;
        }
        Ok(())
    }

    /// Closes every innermost container whose last item has been read.
    #[inline]
    fn close_finished(&mut self) {
        while let Some(0) = self.open.get(self.depth.wrapping_sub(1)) {
            self.depth -= 1;
        }
    }

    /// Each owed value takes at least one byte, so `n` more (new values, or bytes of a
    /// blob) must fit in what is left after the values already owed.
    #[inline]
    fn check_fits(&mut self, n: u64) -> Result<(), DecodeError> {
        if n > self.available() {
            return Err(self.too_large(n));
        }
        Ok(())
    }

    fn available(&self) -> u64 {
        ((self.buf.len() - self.pos) as u64).saturating_sub(self.pending)
    }

    #[cold]
    #[inline(never)]
    fn too_large(&mut self, claimed: u64) -> DecodeError {
        let available = self.available();
        self.error(DecodeErrorKind::LengthTooLarge { claimed, available })
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.error(DecodeErrorKind::Truncated)),
        }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(b as u64)
            }
            _ => self.varint_slow(),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            // The tenth byte holds bit 63 only.
            if shift == 63 && b > 1 {
                return Err(self.error(DecodeErrorKind::VarintTooLong));
            }
            value |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// A varint length and that many bytes.
    #[inline]
    fn blob(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        // The blob's bytes plus one byte per value still owed must fit.
        self.check_fits(len)?;
        self.take(len)
    }

    #[inline]
    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let left = self.buf.len() - self.pos;
        if n > left as u64 {
            return Err(self.error(DecodeErrorKind::Truncated));
        }
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[cold]
    #[inline(never)]
    fn error(&mut self, kind: DecodeErrorKind) -> DecodeError {
        let at = self.pos;
        self.error_at(at, kind)
    }

    #[cold]
    #[inline(never)]
    fn error_at(&mut self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        let e = DecodeError { offset, kind };
        self.failed = Some(e);
        // Every later `read` fails at its first check.
        self.records_left = 0;
        self.pending = 0;
        self.depth = 0;
        e
    }
}
