//! Moving records between workers: per-destination batches that stay live objects
//! within a process and are encoded once, as a whole, when they go to another one.
//!
//! Timely's exchange would serialize every record on its own (and twice: once to
//! size it, once to write it). Instead the sending operator partitions a batch by
//! destination itself, encodes only the parts bound for other processes, and the
//! exchange routes whole batches by destination index.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::key::Key;
use crate::record::{BatchReadError, Record};

/// Records bound for one worker.
#[derive(Clone)]
pub enum Batch<T> {
    /// For a worker of this process: the records themselves.
    Local(Vec<T>),
    /// For a worker of another process: their encoding.
    Remote(Vec<u8>),
}

/// A batch with the index of the worker it goes to (the exchange routes on it).
pub type Routed<T> = (u64, Batch<T>);

impl<T> Serialize for Batch<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Batch::Remote(bytes) => serializer.serialize_bytes(bytes),
            // Never happens: local batches are addressed to workers of this process,
            // whose channels move them without serializing.
            Batch::Local(_) => Err(serde::ser::Error::custom("live records cannot leave their process")),
        }
    }
}

impl<'de, T> Deserialize<'de> for Batch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an encoded batch")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(v)
            }
        }
        Ok(Batch::Remote(deserializer.deserialize_bytes(BytesVisitor)?))
    }
}

/// Keyed records: the keys' canonical bytes, then the key values and the values as
/// two record batches.
pub fn encode_keyed<R: Record>(items: &[(Key, R, R)], out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (key, _, _) in items {
        let bytes = key.bytes();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    // The key values' section, preceded by its length (patched in once known).
    let at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    R::encode_batch(items.iter().map(|(_, k, _)| k), out)?;
    let section = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&section.to_le_bytes());
    R::encode_batch(items.iter().map(|(_, _, v)| v), out)
}

/// [`Record::encode_batch`] over a slice, as [`partition`] takes it.
pub fn encode_records<R: Record>(records: &[R], out: &mut Vec<u8>) -> Result<(), String> {
    R::encode_batch(records.iter(), out)
}

/// Reads what [`encode_keyed`] wrote; malformed input is an error, never a panic.
pub fn decode_keyed<R: Record>(bytes: &[u8], out: &mut Vec<(Key, R, R)>) -> Result<(), BatchReadError> {
    let mut cursor = Cursor { bytes, at: 0 };
    let count = cursor.u32()? as usize;
    let mut keys = Vec::with_capacity(count.min(bytes.len() / 4));
    for _ in 0..count {
        let len = cursor.u32()? as usize;
        keys.push(Key::from_encoded(cursor.take(len)?));
    }
    let section = cursor.u64()?;
    let section = usize::try_from(section).map_err(|_| "bad section length")?;
    let mut key_values = Vec::with_capacity(count.min(bytes.len()));
    R::decode_batch(cursor.take(section)?, &mut key_values)?;
    let mut values = Vec::with_capacity(count.min(bytes.len()));
    R::decode_batch(cursor.rest(), &mut values)?;
    if key_values.len() != count || values.len() != count {
        return Err(format!("batch says {count} records but holds {} and {}", key_values.len(), values.len()).into());
    }
    out.extend(keys.into_iter().zip(key_values).zip(values).map(|((k, kv), v)| (k, kv, v)));
    Ok(())
}

/// Bounds-checked reading of a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("truncated batch")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }
}

/// Which workers live in this process: timely numbers workers process by process.
#[derive(Clone, Copy, Debug)]
pub struct Locality {
    pub first: usize,
    pub count: usize,
}

impl Locality {
    pub fn is_local(&self, worker: usize) -> bool {
        worker >= self.first && worker < self.first + self.count
    }
}

/// Splits `records` into one batch per destination, encoding the remote ones with
/// `encode`. `dest` picks each record's worker.
pub fn partition<T: Clone>(
    records: &mut Vec<T>,
    peers: usize,
    locality: Locality,
    mut dest: impl FnMut(&T) -> usize,
    encode: fn(&[T], &mut Vec<u8>) -> Result<(), String>,
    out: &mut Vec<Routed<T>>,
) -> Result<(), String> {
    if peers == 1 {
        out.push((0, Batch::Local(std::mem::take(records))));
        return Ok(());
    }
    let mut parts: Vec<Vec<T>> = (0..peers).map(|_| Vec::new()).collect();
    for r in records.drain(..) {
        let d = dest(&r) % peers;
        parts[d].push(r);
    }
    for (d, part) in parts.into_iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if locality.is_local(d) {
            out.push((d as u64, Batch::Local(part)));
        } else {
            let mut bytes = Vec::new();
            encode(&part, &mut bytes)?;
            out.push((d as u64, Batch::Remote(bytes)));
        }
    }
    Ok(())
}

/// The records of a received batch, decoding it if it came from another process.
pub fn unpack<T>(
    batch: Batch<T>,
    decode: fn(&[u8], &mut Vec<T>) -> Result<(), BatchReadError>,
    out: &mut Vec<T>,
) -> Result<(), BatchReadError> {
    match batch {
        // Take the vector itself when there is nothing to append to (one worker:
        // every batch), rather than copying its records.
        Batch::Local(v) if out.is_empty() => {
            *out = v;
            Ok(())
        }
        Batch::Local(mut v) => {
            out.append(&mut v);
            Ok(())
        }
        Batch::Remote(bytes) => decode(&bytes, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::key_of;

    #[test]
    fn keyed_batches_round_trip_and_reject_truncation() {
        let items: Vec<(Key, String, String)> =
            (0..50).map(|i| (key_of(&format!("k{}", i % 7)), format!("k{}", i % 7), "v".repeat(i))).collect();
        let mut bytes = Vec::new();
        encode_keyed(&items, &mut bytes).unwrap();
        let mut back = Vec::new();
        decode_keyed::<String>(&bytes, &mut back).unwrap();
        assert_eq!(back.len(), items.len());
        for (a, b) in items.iter().zip(&back) {
            assert_eq!((&a.0, &a.1, &a.2), (&b.0, &b.1, &b.2));
        }
        for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_keyed::<String>(&bytes[..cut], &mut Vec::new()).is_err(), "cut at {cut}");
        }
    }
}
