//! Canonical key encoding and a stable routing hash.
//!
//! Keys decide which worker owns a record and index keyed state. Python's `hash()` is
//! salted per process, so routing instead hashes a canonical byte encoding that is
//! identical on every host, every process and every build.
//!
//! # Wire format
//!
//! This format is persisted (state, routing across hosts): **never change it silently**;
//! the pinned-hash tests below exist to catch that. Every value is one tag byte, then
//! its payload; all integers are little-endian.
//!
//! | tag    | value   | payload                                                          |
//! |--------|---------|------------------------------------------------------------------|
//! | `0x00` | None    | nothing                                                          |
//! | `0x01` | int     | `i64`, 8 bytes                                                   |
//! | `0x02` | big int | length `u32`, then the two's complement bytes (minimal length)   |
//! | `0x03` | float   | the IEEE-754 bits, 8 bytes (`u64`)                               |
//! | `0x04` | str     | byte length `u64`, then the UTF-8 bytes                          |
//! | `0x05` | bytes   | length `u64`, then the bytes                                     |
//! | `0x06` | tuple   | element count `u64`, then each element encoded the same way      |
//!
//! Equal keys must encode equally where Python's `==` says so and that is cheap:
//! - `bool` encodes exactly as the int `0` / `1` (`True == 1`).
//! - A float with an integral value encodes as that integer: as an int if it fits in
//!   `i64` (`-0.0` becomes `0`), otherwise as a big int (`1e20 == 10**20`).
//!   Other floats use the float tag; every NaN becomes the single pattern
//!   `0x7ff8_0000_0000_0000`, so a NaN key finds its state again.
//! - A big int that actually fits in `i64` is encoded as an int, and redundant sign
//!   bytes are trimmed, so an int has exactly one encoding.
//! - A big int longer than `u32::MAX - 1` bytes writes `u32::MAX` and then a `u64`
//!   length (never reached in practice; it keeps the encoding unambiguous without panics).
//! - Lengths prefix strings, bytes and tuples, so `("ab", "c")` and `("a", "bc")` differ.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};

const TAG_NONE: u8 = 0x00;
const TAG_INT: u8 = 0x01;
const TAG_BIG_INT: u8 = 0x02;
const TAG_FLOAT: u8 = 0x03;
const TAG_STR: u8 = 0x04;
const TAG_BYTES: u8 = 0x05;
const TAG_TUPLE: u8 = 0x06;

/// The one NaN bit pattern all NaNs are stored as (Python's `float('nan')`).
const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Builds the canonical encoding of one key; reuse it (with [`KeyEncoder::clear`]) to
/// avoid an allocation per record.
#[derive(Clone, Debug, Default)]
pub struct KeyEncoder {
    buf: Vec<u8>,
}

impl KeyEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self { buf: Vec::new() }
    }

    /// Forgets what was encoded, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Python's `None`.
    pub fn none(&mut self) {
        self.buf.push(TAG_NONE);
    }

    /// A bool, encoded as the int 0 or 1 because `True == 1` in Python.
    pub fn bool(&mut self, v: bool) {
        self.int(i64::from(v));
    }

    /// An int that fits in `i64`.
    pub fn int(&mut self, v: i64) {
        self.buf.push(TAG_INT);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An int given as two's complement little-endian bytes, for ints outside `i64`.
    ///
    /// Redundant sign bytes are trimmed and a value that fits in `i64` is encoded as an
    /// int, so each integer has one encoding even if the caller's bytes are not minimal.
    pub fn big_int(&mut self, signed_le: &[u8]) {
        let b = &signed_le[..minimal_len(signed_le)];
        if b.len() <= 8 {
            self.int(sign_extend_i64(b));
            return;
        }
        self.buf.push(TAG_BIG_INT);
        match u32::try_from(b.len()) {
            Ok(n) if n != u32::MAX => self.buf.extend_from_slice(&n.to_le_bytes()),
            _ => {
                self.buf.extend_from_slice(&u32::MAX.to_le_bytes());
                self.buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
            }
        }
        self.buf.extend_from_slice(b);
    }

    /// A float; integral values encode as the equal integer (see the module doc).
    pub fn float(&mut self, v: f64) {
        // 2^63 is exact as an f64; integral floats in [-2^63, 2^63) fit in i64.
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        if v.is_finite() && v.trunc() == v {
            if (-TWO_63..TWO_63).contains(&v) {
                // Exact: v is integral and in range (`-0.0 as i64` is 0).
                self.int(v as i64);
            } else {
                let mut tmp = Vec::with_capacity(24);
                integral_float_to_signed_le(v, &mut tmp);
                self.big_int(&tmp);
            }
            return;
        }
        let bits = if v.is_nan() { CANONICAL_NAN } else { v.to_bits() };
        self.buf.push(TAG_FLOAT);
        self.buf.extend_from_slice(&bits.to_le_bytes());
    }

    /// A text string (distinct from bytes, as in Python 3).
    pub fn str(&mut self, s: &str) {
        self.buf.push(TAG_STR);
        self.len_prefixed(s.as_bytes());
    }

    /// A byte string.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.push(TAG_BYTES);
        self.len_prefixed(b);
    }

    /// Starts a tuple of `len` elements; encode exactly `len` values next.
    pub fn begin_tuple(&mut self, len: usize) {
        self.buf.push(TAG_TUPLE);
        self.buf.extend_from_slice(&(len as u64).to_le_bytes());
    }

    /// The encoding so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The finished key: a copy of the bytes plus their stable hash.
    pub fn finish(&self) -> Key {
        Key::from_encoded(&self.buf)
    }

    fn len_prefixed(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(b);
    }
}

/// Length of the shortest two's complement form of `b` (0 for an empty slice).
fn minimal_len(b: &[u8]) -> usize {
    let mut n = b.len();
    while n > 1 {
        let (last, next) = (b[n - 1], b[n - 2]);
        let redundant = (last == 0x00 && next & 0x80 == 0) || (last == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        n -= 1;
    }
    n
}

/// Reads up to 8 two's complement little-endian bytes as an `i64`.
fn sign_extend_i64(b: &[u8]) -> i64 {
    let negative = b.last().is_some_and(|&x| x & 0x80 != 0);
    let mut full = if negative { [0xff; 8] } else { [0; 8] };
    for (dst, src) in full.iter_mut().zip(b) {
        *dst = *src;
    }
    i64::from_le_bytes(full)
}

/// Writes the exact integer value of a finite integral float with `|v| >= 2^63` as
/// two's complement little-endian bytes, so it can share the big-int encoding.
fn integral_float_to_signed_le(v: f64, out: &mut Vec<u8>) {
    let bits = v.to_bits();
    let biased_exp = ((bits >> 52) & 0x7ff) as i64;
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    // v = ±mantissa * 2^shift; |v| >= 2^63 implies shift >= 11, so it is never negative.
    let shift = usize::try_from(biased_exp - 1075).unwrap_or(0);
    out.clear();
    out.resize(shift / 8, 0);
    let widened = u128::from(mantissa) << (shift % 8);
    out.extend_from_slice(&widened.to_le_bytes());
    // A zero top byte keeps the magnitude non-negative before negation.
    out.push(0);
    if v < 0.0 {
        let mut carry = true;
        for byte in out.iter_mut() {
            let (sum, overflow) = (!*byte).overflowing_add(u8::from(carry));
            *byte = sum;
            carry = overflow;
        }
    }
    let n = minimal_len(out);
    out.truncate(n);
}

/// An encoded key with its precomputed stable hash.
///
/// Ordering is by hash, then bytes: arbitrary but identical everywhere. Short keys
/// (most words and ids) are stored inline, so making a key allocates nothing.
#[derive(Clone)]
pub struct Key {
    hash: u64,
    bytes: KeyBytes,
}

/// Longest encoding kept inline in a [`Key`].
const INLINE: usize = 22;

#[derive(Clone)]
enum KeyBytes {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    /// Wraps bytes produced by [`KeyEncoder`], computing their hash.
    pub fn from_encoded(bytes: &[u8]) -> Key {
        Key::with_hash(stable_hash(bytes), bytes)
    }

    /// A key of `bytes` with `hash`, which must be their [`stable_hash`] (tests of
    /// tables give keys colliding hashes with it).
    pub(crate) fn with_hash(hash: u64, bytes: &[u8]) -> Key {
        let bytes = if bytes.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            KeyBytes::Inline { len: bytes.len() as u8, data }
        } else {
            KeyBytes::Heap(bytes.into())
        };
        Key { hash, bytes }
    }

    /// The key of a string: what [`KeyEncoder::str`] then [`KeyEncoder::finish`] make,
    /// without the encoder's buffer (string keys are the common case).
    pub fn of_str(s: &str) -> Key {
        let b = s.as_bytes();
        if 1 + 8 + b.len() > INLINE {
            let mut enc = KeyEncoder::new();
            enc.str(s);
            return enc.finish();
        }
        let mut data = [0u8; INLINE];
        data[0] = TAG_STR;
        data[1..9].copy_from_slice(&(b.len() as u64).to_le_bytes());
        data[9..9 + b.len()].copy_from_slice(b);
        let len = 9 + b.len();
        Key { hash: str_hash(b), bytes: KeyBytes::Inline { len: len as u8, data } }
    }

    /// The stable routing hash ([`stable_hash`] of the bytes).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The canonical encoding.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            KeyBytes::Inline { len, data } => &data[..*len as usize],
            KeyBytes::Heap(b) => b,
        }
    }
}

/// A key that is one value (not a tuple), as [`Key::scalar`] reads it back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    None,
    Int(i64),
    /// An int outside `i64`: its shortest two's complement, little-endian.
    BigInt(&'a [u8]),
    /// A float that is not integral (an integral one is an `Int` or a `BigInt`).
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
}

impl Key {
    /// The value this key encodes when it is one value; None for a tuple (or bytes no
    /// encoder wrote). Keyed state can keep a key's encoding alone, without the value.
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        let (&tag, rest) = self.bytes().split_first()?;
        let word = |b: &[u8]| -> Option<[u8; 8]> { b.try_into().ok() };
        Some(match tag {
            TAG_NONE if rest.is_empty() => Scalar::None,
            TAG_INT => Scalar::Int(i64::from_le_bytes(word(rest)?)),
            TAG_FLOAT => Scalar::Float(f64::from_bits(u64::from_le_bytes(word(rest)?))),
            TAG_BIG_INT => {
                let (n, b) = rest.split_first_chunk::<4>()?;
                let (n, b) = match u32::from_le_bytes(*n) {
                    u32::MAX => {
                        let (n, b) = b.split_first_chunk::<8>()?;
                        (u64::from_le_bytes(*n), b)
                    }
                    n => (u64::from(n), b),
                };
                Scalar::BigInt((n == b.len() as u64).then_some(b)?)
            }
            TAG_STR => Scalar::Str(std::str::from_utf8(length_prefixed(rest)?).ok()?),
            TAG_BYTES => Scalar::Bytes(length_prefixed(rest)?),
            _ => return None,
        })
    }
}

/// A key's value read back from its encoding ([`Key::value`]): one value, or a tuple
/// of them.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyValue<'a> {
    Scalar(Scalar<'a>),
    Tuple(Vec<KeyValue<'a>>),
}

impl Key {
    /// The value this key encodes, tuples included; None for bytes no encoder wrote.
    /// Keyed state keeps a key's encoding alone, so this is how a function that visits
    /// every key (`apply_to_keyed_state`) gets the keys: as equal values, each in the
    /// type its encoding keeps (`True` reads back as 1, `2.0` as 2).
    pub fn value(&self) -> Option<KeyValue<'_>> {
        let (value, rest) = read_value(self.bytes())?;
        rest.is_empty().then_some(value)
    }
}

/// The first value encoded in `b`, and the bytes after it.
fn read_value(b: &[u8]) -> Option<(KeyValue<'_>, &[u8])> {
    fn word(b: &[u8]) -> Option<(u64, &[u8])> {
        let (w, rest) = b.split_first_chunk::<8>()?;
        Some((u64::from_le_bytes(*w), rest))
    }
    fn payload(b: &[u8], n: u64) -> Option<(&[u8], &[u8])> {
        let n = usize::try_from(n).ok()?;
        (n <= b.len()).then(|| b.split_at(n))
    }
    let (&tag, rest) = b.split_first()?;
    let (scalar, rest) = match tag {
        TAG_NONE => (Scalar::None, rest),
        TAG_INT => word(rest).map(|(w, rest)| (Scalar::Int(w as i64), rest))?,
        TAG_FLOAT => word(rest).map(|(w, rest)| (Scalar::Float(f64::from_bits(w)), rest))?,
        TAG_BIG_INT => {
            let (n, rest) = rest.split_first_chunk::<4>()?;
            let (n, rest) = match u32::from_le_bytes(*n) {
                u32::MAX => word(rest)?,
                n => (u64::from(n), rest),
            };
            let (digits, rest) = payload(rest, n)?;
            (Scalar::BigInt(digits), rest)
        }
        TAG_STR => {
            let (n, rest) = word(rest)?;
            let (text, rest) = payload(rest, n)?;
            (Scalar::Str(std::str::from_utf8(text).ok()?), rest)
        }
        TAG_BYTES => {
            let (n, rest) = word(rest)?;
            let (bytes, rest) = payload(rest, n)?;
            (Scalar::Bytes(bytes), rest)
        }
        TAG_TUPLE => {
            let (n, mut rest) = word(rest)?;
            // Every element takes at least one byte: a count beyond that is not ours.
            let mut items = Vec::with_capacity(usize::try_from(n).ok().filter(|&n| n <= rest.len())?);
            for _ in 0..n {
                let (item, next) = read_value(rest)?;
                items.push(item);
                rest = next;
            }
            return Some((KeyValue::Tuple(items), rest));
        }
        _ => return None,
    };
    Some((KeyValue::Scalar(scalar), rest))
}

/// The payload after a `u64` length, if the length is the payload's.
fn length_prefixed(b: &[u8]) -> Option<&[u8]> {
    let (n, payload) = b.split_first_chunk::<8>()?;
    (u64::from_le_bytes(*n) == payload.len() as u64).then_some(payload)
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        if self.hash != other.hash {
            return false;
        }
        match (&self.bytes, &other.bytes) {
            // Fixed-size compare, no call: unused inline bytes are always zero.
            (KeyBytes::Inline { len: a, data: x }, KeyBytes::Inline { len: b, data: y }) => a == b && x == y,
            _ => self.bytes() == other.bytes(),
        }
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.hash, self.bytes()).cmp(&(other.hash, other.bytes()))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("hash", &self.hash).field("bytes", &self.bytes()).finish()
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(&self.hash)?;
        t.serialize_element(&serde_bytes_ref(self.bytes()))?;
        t.end()
    }
}

/// Serialises a byte slice as serde bytes (not a sequence of u8).
fn serde_bytes_ref(bytes: &[u8]) -> BytesRef<'_> {
    BytesRef(bytes)
}

struct BytesRef<'a>(&'a [u8]);

impl serde::Serialize for BytesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key: (hash, bytes)")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Key, A::Error> {
                let hash: u64 = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let bytes: ByteBuf = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(1, &self))?;
                if stable_hash(&bytes.0) != hash {
                    return Err(serde::de::Error::custom("key hash does not match its bytes"));
                }
                Ok(Key::with_hash(hash, &bytes.0))
            }
        }
        deserializer.deserialize_tuple(2, KeyVisitor)
    }
}

/// Owned bytes deserialised from serde bytes or a sequence of u8.
struct ByteBuf(Vec<u8>);

impl<'de> serde::Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(ByteBuf(v))
            }
        }
        deserializer.deserialize_bytes(V)
    }
}

impl Hash for Key {
    /// Only the precomputed hash, so maps keyed by `Key` never rehash the bytes.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The routing hash: the bytes 8 at a time (multiply-rotate, seeded with the length),
/// then murmur3's fmix64 so the low bits are well mixed (timely routes with
/// `hash % peers` or `hash & (peers - 1)`). Pinned: every process and every build
/// must agree, so the tests below fix its values.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    mix_words(bytes.len(), |k| load_le(&bytes[8 * k..bytes.len().min(8 * k + 8)]))
}

/// [`stable_hash`] of a string's encoding (tag, u64 length, bytes), read from the
/// string itself: hashing a buffer just written byte by byte stalls the CPU on every
/// 8-byte read (the stores cannot be forwarded to a wider load).
fn str_hash(b: &[u8]) -> u64 {
    let n = b.len() as u64;
    // The encoding's 8-byte word `k`, zero-padded past its end.
    mix_words(9 + b.len(), |k| match k {
        0 => u64::from(TAG_STR) | n << 8,
        1 => (n >> 56) | load_le(&b[..b.len().min(7)]) << 8,
        _ => load_le(&b[8 * k - 9..b.len().min(8 * k - 1)]),
    })
}

/// The hash of [`stable_hash`] over `len` bytes given as their 8-byte words
/// (`word(k)`: bytes `8k..8k+8`, zero-padded past the end): each full word
/// multiply-rotated in, the partial last one with other constants, then fmix64.
#[inline]
fn mix_words(len: usize, word: impl Fn(usize) -> u64) -> u64 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
    let mut h = FNV_OFFSET ^ (len as u64).wrapping_mul(K1);
    for k in 0..len / 8 {
        h = (h ^ word(k)).wrapping_mul(K1).rotate_left(31);
    }
    if !len.is_multiple_of(8) {
        h = (h ^ word(len / 8)).wrapping_mul(K2).rotate_left(29);
    }
    fmix64(h)
}

/// Up to 8 bytes as a little-endian word, zero-padded: at most two overlapping reads
/// (their shared bytes are equal, so OR-ing them is exact), no loop over bytes.
#[inline]
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    if let Some(full) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*full);
    }
    let u32_at = |i: usize| u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    match n {
        4..=7 => u32_at(0) | u32_at(n - 4) << (8 * (n - 4)),
        1..=3 => u64::from(b[0]) | u64::from(b[n / 2]) << (8 * (n / 2)) | u64::from(b[n - 1]) << (8 * (n - 1)),
        _ => 0,
    }
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A [`Hasher`] for maps keyed by [`Key`]: a single `write_u64` (what `Key` writes) is
/// passed through untouched, since it already is a good hash; any other sequence of
/// writes falls back to FNV-1a + fmix64.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHasher {
    state: u64,
    mode: HasherMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum HasherMode {
    #[default]
    Empty,
    /// Exactly one `write_u64` so far; `state` is that value.
    Single,
    /// Anything else; `state` is the running FNV-1a.
    Fnv,
}

impl KeyHasher {
    fn switch_to_fnv(&mut self) {
        match self.mode {
            HasherMode::Empty => self.state = FNV_OFFSET,
            HasherMode::Single => self.state = fnv1a(FNV_OFFSET, &self.state.to_le_bytes()),
            HasherMode::Fnv => {}
        }
        self.mode = HasherMode::Fnv;
    }
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        match self.mode {
            HasherMode::Empty => fmix64(FNV_OFFSET),
            HasherMode::Single => self.state,
            HasherMode::Fnv => fmix64(self.state),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.switch_to_fnv();
        self.state = fnv1a(self.state, bytes);
    }

    fn write_u64(&mut self, v: u64) {
        if self.mode == HasherMode::Empty {
            self.state = v;
            self.mode = HasherMode::Single;
        } else {
            self.write(&v.to_le_bytes());
        }
    }
}

/// Builds [`KeyHasher`]s for [`KeyMap`].
pub type BuildKeyHasher = BuildHasherDefault<KeyHasher>;

/// A hash map keyed by [`Key`] that reuses the key's precomputed hash.
pub type KeyMap<V> = HashMap<Key, V, BuildKeyHasher>;

/// Encodes a Rust value the way the equal Python value would be encoded.
/// For Rust-side records and tests.
pub trait EncodeKey {
    /// Appends this value's canonical encoding.
    fn encode_key(&self, enc: &mut KeyEncoder);
}

impl<T: EncodeKey + ?Sized> EncodeKey for &T {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        (**self).encode_key(enc);
    }
}

impl EncodeKey for i64 {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.int(*self);
    }
}

impl EncodeKey for i32 {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.int(i64::from(*self));
    }
}

impl EncodeKey for u32 {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.int(i64::from(*self));
    }
}

impl EncodeKey for u64 {
    /// Values above `i64::MAX` use the big-int form, as the equal Python int would.
    fn encode_key(&self, enc: &mut KeyEncoder) {
        match i64::try_from(*self) {
            Ok(v) => enc.int(v),
            Err(_) => {
                let mut b = [0u8; 9];
                b[..8].copy_from_slice(&self.to_le_bytes());
                enc.big_int(&b);
            }
        }
    }
}

impl EncodeKey for bool {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.bool(*self);
    }
}

impl EncodeKey for f64 {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.float(*self);
    }
}

impl EncodeKey for str {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.str(self);
    }
}

impl EncodeKey for String {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.str(self);
    }
}

impl EncodeKey for () {
    /// The empty tuple, like Python's `()`.
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.begin_tuple(0);
    }
}

impl<T: EncodeKey> EncodeKey for Option<T> {
    /// `None` is Python's `None`; `Some(v)` is just `v`, as an `Optional` value would be.
    fn encode_key(&self, enc: &mut KeyEncoder) {
        match self {
            None => enc.none(),
            Some(v) => v.encode_key(enc),
        }
    }
}

impl<A: EncodeKey, B: EncodeKey> EncodeKey for (A, B) {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.begin_tuple(2);
        self.0.encode_key(enc);
        self.1.encode_key(enc);
    }
}

impl<A: EncodeKey, B: EncodeKey, C: EncodeKey> EncodeKey for (A, B, C) {
    fn encode_key(&self, enc: &mut KeyEncoder) {
        enc.begin_tuple(3);
        self.0.encode_key(enc);
        self.1.encode_key(enc);
        self.2.encode_key(enc);
    }
}

/// The [`Key`] of a Rust value.
pub fn key_of<T: EncodeKey + ?Sized>(v: &T) -> Key {
    let mut enc = KeyEncoder::new();
    v.encode_key(&mut enc);
    enc.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn inline_and_heap_keys_compare_by_content() {
        let short = super::Key::from_encoded(b"abc");
        let long_bytes = vec![7u8; 100];
        let long = super::Key::from_encoded(&long_bytes);
        assert_eq!(short.bytes(), b"abc");
        assert_eq!(long.bytes(), &long_bytes[..]);
        assert_eq!(long.clone(), super::Key::from_encoded(&long_bytes));
        assert_ne!(short, long);
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn load_le_pads_with_zeros() {
        for n in 0..=9 {
            let b: Vec<u8> = (1..=n as u8).collect();
            let mut want = [0u8; 8];
            let k = n.min(8);
            want[..k].copy_from_slice(&b[..k]);
            assert_eq!(load_le(&b), u64::from_le_bytes(want), "{n} bytes");
        }
    }

    #[test]
    fn scalars_read_back() {
        assert_eq!(key_of(&Option::<i64>::None).scalar(), Some(Scalar::None));
        assert_eq!(key_of(&-7i64).scalar(), Some(Scalar::Int(-7)));
        assert_eq!(key_of(&true).scalar(), Some(Scalar::Int(1)));
        assert_eq!(key_of(&2.0f64).scalar(), Some(Scalar::Int(2)));
        assert_eq!(key_of(&1.5f64).scalar(), Some(Scalar::Float(1.5)));
        assert_eq!(key_of("").scalar(), Some(Scalar::Str("")));
        assert_eq!(key_of("a long key kept on the heap").scalar(), Some(Scalar::Str("a long key kept on the heap")));
        assert_eq!(Key::from_encoded(&enc_with(|e| e.bytes(b"\xff"))).scalar(), Some(Scalar::Bytes(b"\xff")));
        let two_63 = [0, 0, 0, 0, 0, 0, 0, 0x80, 0];
        assert_eq!(Key::from_encoded(&enc_with(|e| e.big_int(&two_63))).scalar(), Some(Scalar::BigInt(&two_63)));
        // The long form of a big int's length (never written in practice) reads too.
        let mut long = vec![TAG_BIG_INT, 0xff, 0xff, 0xff, 0xff];
        long.extend_from_slice(&9u64.to_le_bytes());
        long.extend_from_slice(&two_63);
        assert_eq!(Key::from_encoded(&long).scalar(), Some(Scalar::BigInt(&two_63)));
        assert_eq!(key_of(&("a", 1i64)).scalar(), None, "a tuple is not one value");
        assert_eq!(key_of(&()).scalar(), None);
    }

    /// A key value as a test builds it (owned), to encode and compare with [`Key::value`].
    #[derive(Clone, Debug, PartialEq)]
    enum Model {
        None,
        Int(i64),
        Big(Vec<u8>),
        Float(u64),
        Str(String),
        Bytes(Vec<u8>),
        Tuple(Vec<Model>),
    }

    fn model_value() -> impl Strategy<Value = Model> {
        let leaf = prop_oneof![
            Just(Model::None),
            any::<i64>().prop_map(Model::Int),
            // Big ints as the encoder keeps them: minimal, longer than 8 bytes.
            proptest::collection::vec(any::<u8>(), 9..20).prop_map(|mut b| {
                b.push(0x01);
                Model::Big(b)
            }),
            // Non-integral floats keep the float tag.
            any::<f64>()
                .prop_filter("not integral", |f| !f.is_finite() || f.trunc() != *f)
                .prop_map(|f| { Model::Float(if f.is_nan() { CANONICAL_NAN } else { f.to_bits() }) }),
            ".{0,30}".prop_map(Model::Str),
            proptest::collection::vec(any::<u8>(), 0..30).prop_map(Model::Bytes),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| proptest::collection::vec(inner, 0..5).prop_map(Model::Tuple))
    }

    fn encode_model(v: &Model, e: &mut KeyEncoder) {
        match v {
            Model::None => e.none(),
            Model::Int(i) => e.int(*i),
            Model::Big(b) => e.big_int(b),
            Model::Float(bits) => e.float(f64::from_bits(*bits)),
            Model::Str(s) => e.str(s),
            Model::Bytes(b) => e.bytes(b),
            Model::Tuple(items) => {
                e.begin_tuple(items.len());
                items.iter().for_each(|item| encode_model(item, e));
            }
        }
    }

    fn model_of(v: &KeyValue<'_>) -> Model {
        match v {
            KeyValue::Scalar(Scalar::None) => Model::None,
            KeyValue::Scalar(Scalar::Int(i)) => Model::Int(*i),
            KeyValue::Scalar(Scalar::BigInt(b)) => Model::Big(b.to_vec()),
            KeyValue::Scalar(Scalar::Float(f)) => Model::Float(f.to_bits()),
            KeyValue::Scalar(Scalar::Str(s)) => Model::Str(s.to_string()),
            KeyValue::Scalar(Scalar::Bytes(b)) => Model::Bytes(b.to_vec()),
            KeyValue::Tuple(items) => Model::Tuple(items.iter().map(model_of).collect()),
        }
    }

    #[test]
    fn tuples_read_back_as_tuples() {
        let key = key_of(&("a", 1i64));
        assert_eq!(
            key.value(),
            Some(KeyValue::Tuple(vec![KeyValue::Scalar(Scalar::Str("a")), KeyValue::Scalar(Scalar::Int(1))]))
        );
        assert_eq!(key_of(&()).value(), Some(KeyValue::Tuple(vec![])));
        assert_eq!(key_of(&true).value(), Some(KeyValue::Scalar(Scalar::Int(1))));
        // Trailing bytes, a count larger than what follows: not a key the encoder wrote.
        let mut extra = key_of(&7i64).bytes().to_vec();
        extra.push(0);
        assert_eq!(Key::from_encoded(&extra).value(), None);
        let mut huge = vec![TAG_TUPLE];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Key::from_encoded(&huge).value(), None);
    }

    proptest! {
        /// Any string, bytes or int reads back from its key.
        #[test]
        fn scalars_round_trip(s in ".{0,40}", b in proptest::collection::vec(any::<u8>(), 0..40), i in any::<i64>(), f in any::<f64>()) {
            let (ks, kb, ki, kf) = (Key::of_str(&s), Key::from_encoded(&enc_with(|e| e.bytes(&b))), key_of(&i), key_of(&f));
            prop_assert_eq!(ks.scalar(), Some(Scalar::Str(&s)));
            prop_assert_eq!(kb.scalar(), Some(Scalar::Bytes(&b)));
            prop_assert_eq!(ki.scalar(), Some(Scalar::Int(i)));
            match kf.scalar() {
                Some(Scalar::Float(x)) => prop_assert!(x.to_bits() == f.to_bits() || (x.is_nan() && f.is_nan())),
                Some(Scalar::Int(x)) => prop_assert_eq!(x as f64, f),
                Some(Scalar::BigInt(_)) => prop_assert!(f.abs() >= 9_223_372_036_854_775_808.0),
                other => prop_assert!(false, "{:?} for {}", other, f),
            }
        }

        /// Any key, tuples nested in tuples included, reads back as the value it
        /// encodes; a one-value key reads back as its scalar.
        #[test]
        fn values_round_trip(v in model_value()) {
            let key = Key::from_encoded(&enc_with(|e| encode_model(&v, e)));
            let read = key.value();
            prop_assert_eq!(read.as_ref().map(model_of), Some(v.clone()));
            if let Some(s) = key.scalar() {
                prop_assert_eq!(read, Some(KeyValue::Scalar(s)));
            }
        }

        /// Bytes no encoder wrote (a corrupt key) read as something or nothing, never a panic.
        #[test]
        fn value_of_any_bytes_does_not_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Key::from_encoded(&b).value();
        }

        /// Bytes no encoder wrote (a corrupt key) read as something or nothing, never a panic.
        #[test]
        fn scalar_of_any_bytes_does_not_panic(b in proptest::collection::vec(any::<u8>(), 0..30)) {
            let _ = Key::from_encoded(&b).scalar();
        }

        /// `Key::of_str` is the encoder's string key, inline or not.
        #[test]
        fn of_str_matches_the_encoder(s in ".{0,40}") {
            let mut enc = KeyEncoder::new();
            enc.str(&s);
            prop_assert_eq!(str_hash(s.as_bytes()), stable_hash(enc.as_bytes()));
            let want = enc.finish();
            let got = Key::of_str(&s);
            prop_assert_eq!(got.bytes(), want.bytes());
            prop_assert_eq!(got.hash(), want.hash());
            prop_assert_eq!(got, want);
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn enc_with(f: impl FnOnce(&mut KeyEncoder)) -> Vec<u8> {
        let mut e = KeyEncoder::new();
        f(&mut e);
        e.as_bytes().to_vec()
    }

    #[test]
    fn fnv_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fmix64(0), 0);
    }

    #[test]
    fn pinned_encodings_and_hashes() {
        // If any of these change, the wire format changed: existing state and
        // routing would break. Change them only together with a format version bump.
        let k = key_of("hello");
        assert_eq!(hex(k.bytes()), "04050000000000000068656c6c6f");
        assert_eq!(k.hash(), PINNED_HELLO);

        let k = key_of(&42i64);
        assert_eq!(hex(k.bytes()), "012a00000000000000");
        assert_eq!(k.hash(), PINNED_42);

        let k = key_of(&("user", 7i64));
        assert_eq!(hex(k.bytes()), "06020000000000000004040000000000000075736572010700000000000000");
        assert_eq!(k.hash(), PINNED_TUPLE);

        let k = key_of(&Option::<i64>::None);
        assert_eq!(hex(k.bytes()), "00");
        assert_eq!(k.hash(), PINNED_NONE);

        assert_eq!(hex(&enc_with(|e| e.float(1.5))), "03000000000000f83f");
        assert_eq!(hex(&enc_with(|e| e.bytes(b"hi"))), "0502000000000000006869");
        assert_eq!(hex(&enc_with(|e| e.big_int(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]))), "0209000000000000000000008000");
    }

    const PINNED_HELLO: u64 = 0x57077dede7da84a2;
    const PINNED_42: u64 = 0x25e39c87d1ca8643;
    const PINNED_TUPLE: u64 = 0x207aa150968371dd;
    const PINNED_NONE: u64 = 0xda1279dfee32221a;

    #[test]
    fn bool_int_float_equivalence() {
        assert_eq!(key_of(&true), key_of(&1i64));
        assert_eq!(key_of(&false), key_of(&0i64));
        assert_eq!(key_of(&1.0f64), key_of(&1i64));
        assert_eq!(key_of(&-0.0f64), key_of(&0i64));
        assert_eq!(key_of(&0.0f64), key_of(&false));
        assert_eq!(key_of(&-3.0f64), key_of(&-3i64));
        assert_eq!(key_of(&(i64::MIN as f64)), key_of(&i64::MIN));
        assert_eq!(key_of(&(true, 2.0f64)), key_of(&(1i64, 2i64)));
        assert_ne!(key_of(&1.5f64), key_of(&1i64));
        assert_ne!(key_of(&1i64), key_of("1"));
        assert_ne!(key_of(&0i64), key_of(&Option::<i64>::None));
    }

    #[test]
    fn nan_is_canonical_and_inf_is_float() {
        let a = enc_with(|e| e.float(f64::NAN));
        let b = enc_with(|e| e.float(f64::from_bits(0xfff0_0000_dead_beef)));
        let c = enc_with(|e| e.float(-f64::NAN));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(hex(&a), "03000000000000f87f");
        let inf = enc_with(|e| e.float(f64::INFINITY));
        assert_eq!(hex(&inf), "03000000000000f07f");
        assert_ne!(inf, enc_with(|e| e.float(f64::NEG_INFINITY)));
    }

    #[test]
    fn big_ints_are_canonical() {
        // 2^63 does not fit in i64: big int; as a float it must encode the same way.
        let two_63 = [0, 0, 0, 0, 0, 0, 0, 0x80, 0];
        assert_eq!(enc_with(|e| e.big_int(&two_63)), enc_with(|e| e.float(9_223_372_036_854_775_808.0)));
        assert_eq!(enc_with(|e| e.big_int(&two_63)), enc_with(|e| (i64::MAX as u64 + 1).encode_key(e)));
        // -2^64 as two's complement: 0x..ff_00000000_00000000 (9 bytes).
        let neg_two_64 = [0, 0, 0, 0, 0, 0, 0, 0, 0xff];
        assert_eq!(enc_with(|e| e.big_int(&neg_two_64)), enc_with(|e| e.float(-18_446_744_073_709_551_616.0)));
        // 1e20 == 10**20.
        let ten_20 = 100_000_000_000_000_000_000u128.to_le_bytes();
        assert_eq!(enc_with(|e| e.big_int(&ten_20)), enc_with(|e| e.float(1e20)));
        // Non-minimal input and values that fit in i64 still get one encoding.
        assert_eq!(enc_with(|e| e.big_int(&[5, 0, 0, 0, 0, 0, 0, 0, 0, 0])), enc_with(|e| e.int(5)));
        assert_eq!(enc_with(|e| e.big_int(&[0xff; 12])), enc_with(|e| e.int(-1)));
        assert_eq!(enc_with(|e| e.big_int(&[])), enc_with(|e| e.int(0)));
        assert_eq!(enc_with(|e| e.big_int(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0])), enc_with(|e| e.big_int(&two_63)));
        // Huge floats do not panic.
        let _ = key_of(&f64::MAX);
        let _ = key_of(&f64::MIN);
    }

    #[test]
    fn strings_bytes_and_tuples_do_not_collide() {
        assert_ne!(key_of(&("ab", "c")), key_of(&("a", "bc")));
        assert_ne!(enc_with(|e| e.str("ab")), enc_with(|e| e.bytes(b"ab")));
        assert_ne!(key_of(&()), key_of(&Option::<i64>::None));
        assert_ne!(key_of(&((1i64, 2i64), 3i64)), key_of(&(1i64, (2i64, 3i64))));
        assert_eq!(key_of(&String::from("x")), key_of("x"));
        assert_eq!(key_of(&Some(5i64)), key_of(&5i64));
    }

    #[test]
    fn encoder_reuse() {
        let mut e = KeyEncoder::default();
        e.str("first");
        e.clear();
        e.int(42);
        assert_eq!(e.finish(), key_of(&42i64));
    }

    #[test]
    fn key_map_uses_precomputed_hash() {
        use std::hash::BuildHasher;
        let k = key_of("hello");
        assert_eq!(BuildKeyHasher::default().hash_one(&k), k.hash());
        let mut m: KeyMap<u32> = KeyMap::default();
        m.insert(key_of("a"), 1);
        m.insert(key_of(&1i64), 2);
        *m.entry(key_of(&true)).or_default() += 10;
        assert_eq!(m.get(&key_of("a")), Some(&1));
        assert_eq!(m.get(&key_of(&1.0f64)), Some(&12));
        // Other write sequences still hash deterministically.
        let h1 = BuildKeyHasher::default().hash_one("text");
        let h2 = BuildKeyHasher::default().hash_one("text");
        assert_eq!(h1, h2);
        assert_ne!(h1, BuildKeyHasher::default().hash_one("texT"));
        assert_ne!(BuildKeyHasher::default().hash_one((1u64, 2u64)), BuildKeyHasher::default().hash_one((2u64, 1u64)));
    }

    #[test]
    fn serde_derive_is_usable() {
        fn assert_serde<T: serde::Serialize + for<'de> serde::Deserialize<'de>>() {}
        assert_serde::<Key>();
    }

    fn bucket_spread(peers: u64, mask: bool) {
        let mut counts = vec![0u32; peers as usize];
        let n = 10_000i64;
        for i in 0..n {
            let h = key_of(&i).hash();
            let b = if mask { h & (peers - 1) } else { h % peers };
            counts[b as usize] += 1;
        }
        let mean = n as f64 / peers as f64;
        for c in counts {
            let c = f64::from(c);
            assert!((c - mean).abs() <= 0.15 * mean, "peers={peers}: bucket {c} vs mean {mean}");
        }
    }

    #[test]
    fn hash_spreads_sequential_ints() {
        bucket_spread(4, false);
        bucket_spread(4, true);
        bucket_spread(3, false);
        bucket_spread(2, true);
        bucket_spread(8, true);
    }

    /// A small model of Python values, to check the encoding is injective modulo `==`.
    #[derive(Clone, Debug)]
    enum Py {
        None,
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
        Bytes(Vec<u8>),
        Tuple(Vec<Py>),
    }

    /// Python's equality classes, in a form where structural equality is `==`.
    #[derive(Debug, PartialEq)]
    enum Canon {
        None,
        Int(i128),
        Float(u64),
        Str(String),
        Bytes(Vec<u8>),
        Tuple(Vec<Canon>),
    }

    fn canon(v: &Py) -> Canon {
        match v {
            Py::None => Canon::None,
            Py::Bool(b) => Canon::Int(i128::from(*b)),
            Py::Int(i) => Canon::Int(i128::from(*i)),
            Py::Float(f) if f.is_finite() && f.trunc() == *f && f.abs() < 1e30 => Canon::Int(*f as i128),
            Py::Float(f) if f.is_nan() => Canon::Float(CANONICAL_NAN),
            Py::Float(f) => Canon::Float(f.to_bits()),
            Py::Str(s) => Canon::Str(s.clone()),
            Py::Bytes(b) => Canon::Bytes(b.clone()),
            Py::Tuple(t) => Canon::Tuple(t.iter().map(canon).collect()),
        }
    }

    fn encode(v: &Py, e: &mut KeyEncoder) {
        match v {
            Py::None => e.none(),
            Py::Bool(b) => e.bool(*b),
            Py::Int(i) => e.int(*i),
            Py::Float(f) => e.float(*f),
            Py::Str(s) => e.str(s),
            Py::Bytes(b) => e.bytes(b),
            Py::Tuple(t) => {
                e.begin_tuple(t.len());
                for x in t {
                    encode(x, e);
                }
            }
        }
    }

    fn py_strategy() -> impl Strategy<Value = Py> {
        let leaf = prop_oneof![
            Just(Py::None),
            any::<bool>().prop_map(Py::Bool),
            (-3i64..3).prop_map(Py::Int),
            any::<i64>().prop_map(Py::Int),
            prop_oneof![
                Just(0.0),
                Just(-0.0),
                Just(1.0),
                Just(0.5),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(9_223_372_036_854_775_808.0),
                (-3i64..3).prop_map(|i| i as f64)
            ]
            .prop_map(Py::Float),
            "[ab]{0,3}".prop_map(Py::Str),
            prop::collection::vec(0u8..3, 0..3).prop_map(Py::Bytes),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Py::Tuple))
    }

    proptest! {
        #[test]
        fn distinct_string_int_tuples_differ(
            a in ("[ab]{0,3}", -2i64..2),
            b in ("[ab]{0,3}", -2i64..2),
        ) {
            let (ka, kb) = (key_of(&a), key_of(&b));
            prop_assert_eq!(a == b, ka.bytes() == kb.bytes());
        }

        #[test]
        fn distinct_string_pairs_differ(
            a in ("[ab]{0,3}", "[ab]{0,3}"),
            b in ("[ab]{0,3}", "[ab]{0,3}"),
        ) {
            prop_assert_eq!(a == b, key_of(&a).bytes() == key_of(&b).bytes());
        }

        #[test]
        fn same_value_same_hash(s in ".*", i in any::<i64>()) {
            let a = key_of(&(s.clone(), i));
            let b = key_of(&(s.as_str(), i));
            prop_assert_eq!(a.hash(), b.hash());
            prop_assert_eq!(a.hash(), stable_hash(a.bytes()));
            prop_assert_eq!(&a, &Key::from_encoded(b.bytes()));
        }

        #[test]
        fn encoding_equal_iff_python_equal(a in py_strategy(), b in py_strategy()) {
            let (mut ea, mut eb) = (KeyEncoder::new(), KeyEncoder::new());
            encode(&a, &mut ea);
            encode(&b, &mut eb);
            prop_assert_eq!(canon(&a) == canon(&b), ea.as_bytes() == eb.as_bytes());
        }

        #[test]
        fn integral_floats_match_big_ints(m in 1u64..(1 << 53), shift in 11i32..200, neg: bool) {
            let f = (m as f64) * 2f64.powi(shift) * if neg { -1.0 } else { 1.0 };
            // Reference: build the integer with plain shifts into a wide byte array.
            let mut mag = vec![0u8; 40];
            let (bytes, bits) = ((shift / 8) as usize, (shift % 8) as u32);
            let wide = u128::from(m) << bits;
            mag[bytes..bytes + 16].copy_from_slice(&wide.to_le_bytes());
            if neg {
                let mut carry = 1u16;
                for x in mag.iter_mut() {
                    let s = u16::from(!*x) + carry;
                    *x = s as u8;
                    carry = s >> 8;
                }
            }
            prop_assert_eq!(
                enc_with(|e| e.float(f)),
                enc_with(|e| e.big_int(&mag))
            );
        }
    }
}
