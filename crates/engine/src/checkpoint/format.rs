//! The part file: what one worker wrote for one checkpoint, one section per stateful
//! plan node, checksummed so that nothing in it is trusted blindly on restore.
//!
//! ```text
//! header  = magic "FFCKPT\0\x01" | version u32 | checkpoint u64 | worker u32 | workers u32 | crc32 u32 (of the 28 bytes before it)
//! section = node u32 | len u64 | crc32 u32 (of the bytes) | bytes
//! index   = count u32 | count × (node u32 | offset u64 | len u64 | crc32 u32)
//! footer  = index crc32 u32 | index offset u64 | end magic "FFCKEND\x01"
//! ```
//!
//! Integers are little-endian. The sections follow the header back to back and the
//! index follows the last one, so every byte of the file is covered by a check: the
//! header and the index by their checksums, each section's header by its index entry,
//! each section's bytes by their checksum, and the footer by the file's length. A part
//! that is cut short, flipped or written by an incompatible build is a [`PartError`].
//! Sections are written as they come ([`PartWriter`] streams to any `Write`), and the
//! index at the end lets a reader find them without scanning.

use std::fmt;
use std::io::{self, Write};

/// First 8 bytes of every part file.
pub const MAGIC: [u8; 8] = *b"FFCKPT\0\x01";
/// Last 8 bytes of a finished part file: a file without them was not finished.
pub const END_MAGIC: [u8; 8] = *b"FFCKEND\x01";
/// The version this build writes and reads. Bump it on any incompatible change.
pub const VERSION: u32 = 1;

const HEADER_LEN: usize = 8 + 4 + 8 + 4 + 4 + 4;
const SECTION_HEADER_LEN: usize = 4 + 8 + 4;
const INDEX_ENTRY_LEN: usize = 4 + 8 + 8 + 4;
const FOOTER_LEN: usize = 4 + 8 + 8;

/// Who wrote a part: checked on restore against the manifest and the file's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartHeader {
    /// The checkpoint id (the segment the sources moved to).
    pub checkpoint: u64,
    /// The writing worker's global index.
    pub worker: u32,
    /// How many workers the job had: a restore at another count rescales.
    pub workers: u32,
}

/// One section as the index lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionEntry {
    /// The plan node whose state the section holds.
    pub node: u32,
    /// Where its bytes start in the file (after its section header).
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

/// Size and checksum of a finished part file, for the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartSummary {
    pub size: u64,
    pub crc: u32,
}

/// Why a part file could not be read. The message names the part's problem; the caller
/// adds the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartError {
    /// The file ends early: no complete header, no end marker, or an index or section
    /// reaching past the end.
    Truncated(String),
    /// The first bytes are not a part file's.
    BadMagic,
    /// Written by a build with another format version.
    UnsupportedVersion(u32),
    /// The header's or the index's checksum does not match.
    HeaderChecksum,
    IndexChecksum,
    /// A section's bytes do not match their checksum.
    SectionChecksum {
        node: u32,
    },
    /// The structure is inconsistent (an index entry that does not match its section,
    /// sections that do not follow each other, a node listed twice).
    Corrupt(String),
}

impl fmt::Display for PartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::Truncated(m) => write!(f, "truncated: {m}"),
            PartError::BadMagic => write!(f, "not a ferroflow checkpoint part (bad magic)"),
            PartError::UnsupportedVersion(v) => {
                write!(f, "format version {v} is not supported (this build reads version {VERSION})")
            }
            PartError::HeaderChecksum => write!(f, "checksum mismatch in the header"),
            PartError::IndexChecksum => write!(f, "checksum mismatch in the section index"),
            PartError::SectionChecksum { node } => write!(f, "checksum mismatch in the section of node {node}"),
            PartError::Corrupt(m) => write!(f, "corrupt: {m}"),
        }
    }
}

impl std::error::Error for PartError {}

/// Writes a part file section by section to `W` (a temp file, in the writer thread),
/// keeping the whole file's size and checksum for the manifest.
pub struct PartWriter<W: Write> {
    out: W,
    pos: u64,
    crc: crc32fast::Hasher,
    index: Vec<SectionEntry>,
}

impl<W: Write> PartWriter<W> {
    /// Writes the header.
    pub fn new(out: W, header: PartHeader) -> io::Result<Self> {
        let mut w = PartWriter { out, pos: 0, crc: crc32fast::Hasher::new(), index: Vec::new() };
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&MAGIC);
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&header.checkpoint.to_le_bytes());
        h.extend_from_slice(&header.worker.to_le_bytes());
        h.extend_from_slice(&header.workers.to_le_bytes());
        h.extend_from_slice(&crc32fast::hash(&h).to_le_bytes());
        w.put(&h)?;
        Ok(w)
    }

    /// Appends the section of `node`. One per node: a second one is refused (the reader
    /// would not know which to use).
    pub fn section(&mut self, node: u32, bytes: &[u8]) -> io::Result<()> {
        if self.index.iter().any(|e| e.node == node) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("node {node} has a section already")));
        }
        let crc = crc32fast::hash(bytes);
        let mut h = [0u8; SECTION_HEADER_LEN];
        h[..4].copy_from_slice(&node.to_le_bytes());
        h[4..12].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        h[12..].copy_from_slice(&crc.to_le_bytes());
        self.put(&h)?;
        self.index.push(SectionEntry { node, offset: self.pos, len: bytes.len() as u64, crc });
        self.put(bytes)
    }

    /// How many bytes are written so far (the writer thread reports checkpoint sizes).
    pub fn written(&self) -> u64 {
        self.pos
    }

    /// Writes the index and the footer and flushes; the caller fsyncs and renames.
    pub fn finish(mut self) -> io::Result<(W, PartSummary)> {
        let index_offset = self.pos;
        let mut index = Vec::with_capacity(4 + self.index.len() * INDEX_ENTRY_LEN);
        index.extend_from_slice(&(self.index.len() as u32).to_le_bytes());
        for e in &self.index {
            index.extend_from_slice(&e.node.to_le_bytes());
            index.extend_from_slice(&e.offset.to_le_bytes());
            index.extend_from_slice(&e.len.to_le_bytes());
            index.extend_from_slice(&e.crc.to_le_bytes());
        }
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&crc32fast::hash(&index).to_le_bytes());
        footer.extend_from_slice(&index_offset.to_le_bytes());
        footer.extend_from_slice(&END_MAGIC);
        self.put(&index)?;
        self.put(&footer)?;
        self.out.flush()?;
        let summary = PartSummary { size: self.pos, crc: self.crc.clone().finalize() };
        Ok((self.out, summary))
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.crc.update(bytes);
        self.pos += bytes.len() as u64;
        Ok(())
    }
}

/// A part file's bytes, checked from end to end, with its sections borrowed.
#[derive(Debug)]
pub struct PartReader<'a> {
    pub header: PartHeader,
    bytes: &'a [u8],
    index: Vec<SectionEntry>,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl<'a> PartReader<'a> {
    /// Checks everything (header, index, every section's checksum) before handing out
    /// a byte, so a restore never starts on a part it would fail halfway through.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PartError> {
        let len = bytes.len();
        if len < HEADER_LEN {
            return Err(PartError::Truncated(format!("{len} bytes, shorter than a header")));
        }
        if bytes[..8] != MAGIC {
            return Err(PartError::BadMagic);
        }
        if crc32fast::hash(&bytes[..HEADER_LEN - 4]) != le_u32(bytes, HEADER_LEN - 4) {
            return Err(PartError::HeaderChecksum);
        }
        let version = le_u32(bytes, 8);
        if version != VERSION {
            return Err(PartError::UnsupportedVersion(version));
        }
        let header =
            PartHeader { checkpoint: le_u64(bytes, 12), worker: le_u32(bytes, 20), workers: le_u32(bytes, 24) };
        if header.worker >= header.workers {
            return Err(PartError::Corrupt(format!("worker {} of {}", header.worker, header.workers)));
        }
        if len < HEADER_LEN + 4 + FOOTER_LEN || bytes[len - 8..] != END_MAGIC {
            return Err(PartError::Truncated("no end marker (the part was not finished)".into()));
        }
        let footer = len - FOOTER_LEN;
        let index_crc = le_u32(bytes, footer);
        let index_offset = le_u64(bytes, footer + 4);
        if index_offset < HEADER_LEN as u64 || index_offset > (footer - 4) as u64 {
            return Err(PartError::Corrupt(format!("index offset {index_offset} outside the file")));
        }
        let index_offset = index_offset as usize;
        let index_bytes = &bytes[index_offset..footer];
        if crc32fast::hash(index_bytes) != index_crc {
            return Err(PartError::IndexChecksum);
        }
        let count = le_u32(index_bytes, 0) as usize;
        if count.checked_mul(INDEX_ENTRY_LEN) != Some(index_bytes.len() - 4) {
            return Err(PartError::Corrupt(format!("an index of {count} sections in {} bytes", index_bytes.len())));
        }
        let mut index = Vec::with_capacity(count);
        let mut next = HEADER_LEN; // where the next section must start
        for i in 0..count {
            let at = 4 + i * INDEX_ENTRY_LEN;
            let e = SectionEntry {
                node: le_u32(index_bytes, at),
                offset: le_u64(index_bytes, at + 4),
                len: le_u64(index_bytes, at + 12),
                crc: le_u32(index_bytes, at + 20),
            };
            if e.offset != (next + SECTION_HEADER_LEN) as u64 || e.len > (index_offset - next) as u64 {
                return Err(PartError::Corrupt(format!("section {i} of node {} is not where the index says", e.node)));
            }
            let start = e.offset as usize;
            let end = start.checked_add(e.len as usize).filter(|&end| end <= index_offset).ok_or_else(|| {
                PartError::Truncated(format!("the section of node {} reaches past the sections' end", e.node))
            })?;
            let h = &bytes[next..start];
            if le_u32(h, 0) != e.node || le_u64(h, 4) != e.len || le_u32(h, 12) != e.crc {
                return Err(PartError::Corrupt(format!("the header of section {i} does not match the index")));
            }
            if index.iter().any(|x: &SectionEntry| x.node == e.node) {
                return Err(PartError::Corrupt(format!("node {} has two sections", e.node)));
            }
            if crc32fast::hash(&bytes[start..end]) != e.crc {
                return Err(PartError::SectionChecksum { node: e.node });
            }
            index.push(e);
            next = end;
        }
        if next != index_offset {
            return Err(PartError::Corrupt(format!(
                "{} bytes between the last section and the index",
                index_offset - next
            )));
        }
        Ok(PartReader { header, bytes, index })
    }

    /// The sections, in the order they were written.
    pub fn sections(&self) -> &[SectionEntry] {
        &self.index
    }

    /// The bytes of `node`'s section (checked by [`Self::parse`]); `None` if the worker
    /// wrote none for it (the node was not made there, or had nothing to keep).
    pub fn section(&self, node: u32) -> Option<&'a [u8]> {
        let e = self.index.iter().find(|e| e.node == node)?;
        Some(&self.bytes[e.offset as usize..(e.offset + e.len) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
    use crate::key::{key_of, Key};
    use crate::record::Stamped;
    use proptest::prelude::*;

    fn part(header: PartHeader, sections: &[(u32, Vec<u8>)]) -> (Vec<u8>, PartSummary) {
        let mut w = PartWriter::new(Vec::new(), header).unwrap();
        for (node, bytes) in sections {
            w.section(*node, bytes).unwrap();
        }
        assert_eq!(w.written() as usize, w.out.len());
        w.finish().unwrap()
    }

    fn sections() -> impl Strategy<Value = Vec<(u32, Vec<u8>)>> {
        prop::collection::btree_map(any::<u32>(), prop::collection::vec(any::<u8>(), 0..40), 0..5)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
    }

    fn header() -> impl Strategy<Value = PartHeader> {
        (any::<u64>(), 1u32..64).prop_flat_map(|(checkpoint, workers)| {
            (0..workers).prop_map(move |worker| PartHeader { checkpoint, worker, workers })
        })
    }

    /// A part as a restore would see it: its header and every section's bytes.
    fn contents(p: &PartReader<'_>) -> (PartHeader, Vec<(u32, Vec<u8>)>) {
        (p.header, p.sections().iter().map(|e| (e.node, p.section(e.node).unwrap().to_vec())).collect())
    }

    proptest! {
        /// A part reads back as written: header, sections in order, and the summary is
        /// the file's own size and checksum.
        #[test]
        fn round_trip(h in header(), s in sections()) {
            let (bytes, summary) = part(h, &s);
            prop_assert_eq!(summary, PartSummary { size: bytes.len() as u64, crc: crc32fast::hash(&bytes) });
            let p = PartReader::parse(&bytes).unwrap();
            prop_assert_eq!(contents(&p), (h, s.clone()));
            prop_assert_eq!(p.section(u32::MAX).is_none(), !s.iter().any(|(n, _)| *n == u32::MAX));
        }

        /// Every cut of a part and every single-byte change in it is an error: never a
        /// panic, never a part that reads with other contents.
        #[test]
        fn every_truncation_and_byte_flip_is_detected(h in header(), s in sections(), xor in 1u8..=255) {
            let (bytes, _) = part(h, &s);
            for cut in 0..bytes.len() {
                prop_assert!(PartReader::parse(&bytes[..cut]).is_err(), "cut at {}", cut);
            }
            let mut flipped = bytes.clone();
            for i in 0..bytes.len() {
                flipped[i] ^= xor;
                prop_assert!(PartReader::parse(&flipped).is_err(), "byte {} ^ {:#x}", i, xor);
                flipped[i] ^= xor;
            }
        }

        /// Arbitrary bytes, or a part with garbage appended, never panic.
        #[test]
        fn garbage_does_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), h in header(), s in sections()) {
            let _ = PartReader::parse(&bytes);
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = PartReader::parse(&with_magic);
            let (mut good, _) = part(h, &s);
            good.extend_from_slice(&bytes);
            prop_assert_eq!(PartReader::parse(&good).is_err(), !bytes.is_empty());
        }

        /// State written with a StateWriter into sections comes back through a part file.
        #[test]
        fn state_round_trips_through_a_part(entries in prop::collection::vec((any::<i64>(), ".{0,8}", any::<i64>()), 0..3000), n in any::<u64>()) {
            let values: Vec<(Key, Stamped<String>)> =
                entries.iter().map(|(k, s, ts)| (key_of(k), Stamped::at(s.clone(), *ts))).collect();
            let mut w = StateWriter::<Stamped<String>>::new();
            w.u64(n);
            w.keyed(values.iter().map(|(k, v)| (k, v))).unwrap();
            let (bytes, _) = part(PartHeader { checkpoint: 3, worker: 0, workers: 1 }, &[(7, w.into_bytes()), (2, vec![])]);
            let p = PartReader::parse(&bytes).unwrap();
            let mut r = StateReader::<Stamped<String>>::new(p.section(7).unwrap());
            prop_assert_eq!(r.u64().unwrap(), n);
            let mut back = Vec::new();
            r.keyed(|k, v| {
                back.push((k, v));
                Ok::<_, StateError>(())
            })
            .unwrap();
            r.finish().unwrap();
            prop_assert_eq!(back, values);
            prop_assert_eq!(p.section(2), Some(&[][..]));
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let h = PartHeader { checkpoint: 9, worker: 1, workers: 2 };
        let (bytes, _) = part(h, &[(4, b"abc".to_vec()), (5, b"defg".to_vec())]);
        let err = |b: &[u8]| PartReader::parse(b).unwrap_err().to_string();
        assert_eq!(err(&bytes[..10]), "truncated: 10 bytes, shorter than a header");
        assert_eq!(err(&bytes[..bytes.len() - 1]), "truncated: no end marker (the part was not finished)");
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(err(&b), "not a ferroflow checkpoint part (bad magic)");
        // Another version, with a valid header checksum (a newer build's part).
        let mut b = bytes.clone();
        b[8] = 2;
        let crc = crc32fast::hash(&b[..HEADER_LEN - 4]);
        b[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(err(&b), "format version 2 is not supported (this build reads version 1)");
        // Flips in the bytes of each section name that section.
        let p = PartReader::parse(&bytes).unwrap();
        for e in p.sections() {
            let mut b = bytes.clone();
            b[e.offset as usize] ^= 1;
            assert_eq!(err(&b), format!("checksum mismatch in the section of node {}", e.node));
        }
        let mut b = bytes.clone();
        b[14] ^= 1;
        assert_eq!(err(&b), "checksum mismatch in the header");
        let mut b = bytes.clone();
        let at = b.len() - FOOTER_LEN - 1;
        b[at] ^= 1;
        assert_eq!(err(&b), "checksum mismatch in the section index");
    }

    /// The property above, exhaustively for one part: every byte, every change of it.
    #[test]
    fn every_change_of_every_byte_is_detected() {
        let h = PartHeader { checkpoint: 12, worker: 2, workers: 3 };
        let (bytes, _) = part(h, &[(0, b"first".to_vec()), (9, Vec::new()), (4, vec![0; 9])]);
        let mut b = bytes.clone();
        for i in 0..bytes.len() {
            for x in 1..=255u8 {
                b[i] ^= x;
                assert!(PartReader::parse(&b).is_err(), "byte {i} ^ {x:#x}");
                b[i] ^= x;
            }
        }
        assert_eq!(contents(&PartReader::parse(&b).unwrap()).0, h);
    }

    #[test]
    fn a_node_gets_one_section() {
        let mut w = PartWriter::new(Vec::new(), PartHeader { checkpoint: 1, worker: 0, workers: 1 }).unwrap();
        w.section(3, b"x").unwrap();
        let e = w.section(3, b"y").unwrap_err();
        assert_eq!(e.to_string(), "node 3 has a section already");
    }
}
