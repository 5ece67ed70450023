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

/// Where a key value went in [`encode_keyed`]: into the key values' section, rather
/// than being an item of its record.
const KEY_VALUE_ENCODED: u8 = u8::MAX;

/// Keyed records: the keys' canonical bytes; per record, the index of the record's
/// item its key value is ([`Record::item_index_of`], e.g. `key_by(lambda r: r[0])`)
/// or [`KEY_VALUE_ENCODED`]; the key values that are not items, then the values, as
/// two record batches. A key value that is an item is not encoded twice, and the
/// receiver gets the item itself back, as the sender had it.
pub fn encode_keyed<R: Record>(items: &[(Key, R, R)], out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (key, _, _) in items {
        let bytes = key.bytes();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let mut encoded = Vec::new();
    for (_, kv, v) in items {
        match v.item_index_of(kv) {
            Some(i) if i != KEY_VALUE_ENCODED => out.push(i),
            _ => {
                out.push(KEY_VALUE_ENCODED);
                encoded.push(kv);
            }
        }
    }
    // The key values' section, preceded by its length (patched in once known).
    let at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    if !encoded.is_empty() {
        R::encode_batch(encoded.into_iter(), out)?;
    }
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
    let wheres = cursor.take(count)?;
    let encoded = wheres.iter().filter(|&&w| w == KEY_VALUE_ENCODED).count();
    let section = cursor.u64()?;
    let section = usize::try_from(section).map_err(|_| "bad section length")?;
    let mut key_values = Vec::with_capacity(encoded);
    let section = cursor.take(section)?;
    if encoded > 0 {
        R::decode_batch(section, &mut key_values)?;
    }
    let mut values = Vec::with_capacity(count.min(bytes.len()));
    R::decode_batch(cursor.rest(), &mut values)?;
    if key_values.len() != encoded || values.len() != count {
        return Err(format!(
            "batch says {count} records and {encoded} key values but holds {} and {}",
            values.len(),
            key_values.len()
        )
        .into());
    }
    out.reserve(count);
    let start = out.len();
    let mut key_values = key_values.into_iter();
    for ((key, value), &w) in keys.into_iter().zip(values).zip(wheres) {
        let kv = if w == KEY_VALUE_ENCODED { key_values.next() } else { value.item(w) };
        let Some(kv) = kv else {
            out.truncate(start);
            return Err(format!("a key value is item {w} of a record that has none").into());
        };
        out.push((key, kv, value));
    }
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

    /// A record whose items are shared values, as Python's tuples are: a word alone,
    /// or a (word, count) pair.
    #[derive(Clone, Debug)]
    enum Shared {
        Word(std::sync::Arc<str>),
        Pair(std::sync::Arc<str>, i64),
    }

    impl Record for Shared {
        fn from_lines(_: &mut Vec<String>, _: &mut Vec<Self>) {}
        fn from_ints(_: std::ops::RangeInclusive<i64>, _: &mut Vec<Self>) {}
        fn describe(&self) -> String {
            format!("{self:?}")
        }

        /// One line per record: a word, or a word, a tab and a count.
        fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
            for r in records {
                let line = match r {
                    Shared::Word(w) => format!("{w}\n"),
                    Shared::Pair(w, n) => format!("{w}\t{n}\n"),
                };
                out.extend_from_slice(line.as_bytes());
            }
            Ok(())
        }

        fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError> {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            for line in text.lines() {
                out.push(match line.split_once('\t') {
                    None => Shared::Word(line.into()),
                    Some((w, n)) => Shared::Pair(w.into(), n.parse().map_err(|_| "bad count")?),
                });
            }
            Ok(())
        }

        fn item_index_of(&self, part: &Self) -> Option<u8> {
            match (self, part) {
                (Shared::Pair(w, _), Shared::Word(p)) if std::sync::Arc::ptr_eq(w, p) => Some(0),
                _ => None,
            }
        }

        fn item(&self, index: u8) -> Option<Self> {
            match (self, index) {
                (Shared::Pair(w, _), 0) => Some(Shared::Word(w.clone())),
                _ => None,
            }
        }
    }

    #[test]
    fn a_key_value_that_is_an_item_of_its_record_crosses_as_that_item() {
        // Records 0, 3, 6..: the key value is the pair's own word; the others an equal
        // but separate word, which must be encoded.
        let items: Vec<(Key, Shared, Shared)> = (0..30)
            .map(|i| {
                let w: std::sync::Arc<str> = format!("w{}", i % 4).into();
                let kv = if i % 3 == 0 { w.clone() } else { format!("w{}", i % 4).into() };
                (key_of(&*w.to_string()), Shared::Word(kv), Shared::Pair(w, i))
            })
            .collect();
        let mut bytes = Vec::new();
        encode_keyed(&items, &mut bytes).unwrap();
        let mut back = Vec::new();
        decode_keyed::<Shared>(&bytes, &mut back).unwrap();
        assert_eq!(back.len(), items.len());
        for (i, (key, kv, v)) in back.iter().enumerate() {
            assert_eq!(key, &items[i].0);
            let (Shared::Word(kv), Shared::Pair(w, n)) = (kv, v) else { panic!("shapes changed: {kv:?} {v:?}") };
            assert_eq!((&**kv, *n), (&*format!("w{}", i % 4), i as i64));
            assert_eq!(std::sync::Arc::ptr_eq(kv, w), i % 3 == 0, "record {i}");
        }
        // Only the separate key values were encoded, each as its own line: of the 8
        // records of "w1" (1, 5, .., 29), 9 and 21 share theirs.
        assert_eq!(String::from_utf8_lossy(&bytes).matches("w1\n").count(), 6);

        // A record that lost the item its key value was said to be is refused.
        let only = &items[..1];
        let mut bytes = Vec::new();
        encode_keyed(only, &mut bytes).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let broken = text.replace("w0\t0\n", "w0\n").into_bytes();
        let err = decode_keyed::<Shared>(&broken, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("item 0"), "{err}");
    }

    proptest::proptest! {
        /// Any mix of key values that are their record's item, equal copies, and
        /// records without items comes back equal and shared exactly where it was.
        #[test]
        fn keyed_batches_round_trip_with_their_sharing(
            records in proptest::collection::vec((0u8..6, -5i64..5, 0u8..3), 0..40),
            cut in 0usize..1000,
        ) {
            // kind 0: the key value is the pair's own word; 1: an equal copy; 2: the
            // record is a bare word, which has no items.
            let items: Vec<(Key, Shared, Shared)> = records
                .iter()
                .map(|&(w, n, kind)| {
                    let word: std::sync::Arc<str> = format!("w{w}").into();
                    let kv = if kind == 0 { word.clone() } else { format!("w{w}").into() };
                    let value = if kind == 2 { Shared::Word(word.clone()) } else { Shared::Pair(word.clone(), n) };
                    (key_of(&*word.to_string()), Shared::Word(kv), value)
                })
                .collect();
            let mut bytes = Vec::new();
            encode_keyed(&items, &mut bytes).unwrap();
            let mut back = Vec::new();
            decode_keyed::<Shared>(&bytes, &mut back).unwrap();
            proptest::prop_assert_eq!(back.len(), items.len());
            for ((key, kv, value), (&(w, n, kind), item)) in back.iter().zip(records.iter().zip(&items)) {
                proptest::prop_assert!(key == &item.0);
                let Shared::Word(kv) = kv else { panic!("key value {kv:?}") };
                let expected = format!("w{w}");
                proptest::prop_assert_eq!(&**kv, expected.as_str());
                match value {
                    Shared::Pair(word, m) => {
                        proptest::prop_assert!(kind != 2 && *m == n && **word == **kv);
                        proptest::prop_assert_eq!(std::sync::Arc::ptr_eq(kv, word), kind == 0);
                    }
                    Shared::Word(word) => proptest::prop_assert!(kind == 2 && **word == **kv),
                }
            }
            // Any cut: an error or (this test's line format is not self-delimiting)
            // fewer items; never a panic.
            let _ = decode_keyed::<Shared>(&bytes[..cut % (bytes.len() + 1)], &mut Vec::new());
        }
    }
}
