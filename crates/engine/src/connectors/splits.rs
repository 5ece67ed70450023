//! Named splits: the unit of work of a source whose input comes in named, independent
//! parts (a Kafka topic's partitions, a Python partitioned source's parts), as Flink's
//! source splits. Each split has a stable owner among the readers, computed from its
//! name alone, so every process agrees on it without talking, and a split that appears
//! later (a new Kafka partition) has an owner too.
//!
//! A reader's checkpoint section lists its splits' names and states. On restore, at any
//! parallelism, each reader takes from every old section the splits it owns now: each
//! split resumes on exactly one reader.

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::UdfResult;
use crate::key::stable_hash;
use crate::record::Record;

/// The reader (`0..peers`) that owns split `name`: the pinned key hash of its bytes, so
/// it is the same in every process and every run.
pub fn split_owner(name: &[u8], peers: usize) -> usize {
    (stable_hash(name) % peers.max(1) as u64) as usize
}

/// Appends the splits (name, state) to `out`: a count, then each name and state.
pub fn write_splits<'a, R: Record>(out: &mut Vec<u8>, splits: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>) {
    let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
    w.u64(splits.len() as u64);
    for (name, state) in splits {
        w.bytes(name);
        w.bytes(state);
    }
    *out = w.into_bytes();
}

/// The splits [`write_splits`] wrote in one section.
pub fn read_splits<R: Record>(section: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
    let mut r = StateReader::<R>::new(section);
    let n = r.u64()?;
    let mut splits = Vec::new();
    for _ in 0..n {
        let name = r.bytes()?.to_vec();
        let state = r.bytes()?.to_vec();
        splits.push((name, state));
    }
    r.finish()?;
    Ok(splits)
}

/// Every split in the old readers' sections that `owns` says is this reader's now, in
/// old worker order. `None` if no old reader wrote anything (start afresh). A split
/// found twice (a bug of the writer) fails the restore rather than resume twice.
pub fn owned_splits<R: Record>(
    from: &Restore<'_>,
    owns: impl Fn(&[u8]) -> bool,
) -> UdfResult<Option<Vec<(Vec<u8>, Vec<u8>)>>> {
    if from.non_empty().next().is_none() {
        return Ok(None);
    }
    let mut mine: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for section in from.non_empty() {
        for (name, state) in read_splits::<R>(section)? {
            if !seen.insert(name.clone()) {
                return Err(crate::UdfError::internal(format!(
                    "split {:?} is in two readers' checkpoint sections",
                    String::from_utf8_lossy(&name)
                )));
            }
            if owns(&name) {
                mine.push((name, state));
            }
        }
    }
    Ok(Some(mine))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(splits: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        write_splits::<String>(&mut out, splits.iter().map(|(n, s)| (n.as_bytes(), s.as_bytes())));
        out
    }

    #[test]
    fn every_split_resumes_on_exactly_one_reader_at_any_parallelism() {
        let names: Vec<String> = (0..40).map(|i| format!("topic-{}", i)).collect();
        let old: Vec<Vec<u8>> = (0..3)
            .map(|w| {
                let mine: Vec<(&str, &str)> =
                    names.iter().filter(|n| split_owner(n.as_bytes(), 3) == w).map(|n| (n.as_str(), "state")).collect();
                section(&mine)
            })
            .collect();
        for peers in 1..6 {
            let mut got = Vec::new();
            for w in 0..peers {
                let from = Restore::new(old.iter().map(|s| s.as_slice()).collect(), w, peers);
                let mine = owned_splits::<String>(&from, |n| split_owner(n, peers) == w).unwrap().unwrap();
                got.extend(mine.into_iter().map(|(n, s)| (String::from_utf8(n).unwrap(), s)));
            }
            got.sort();
            let mut want: Vec<(String, Vec<u8>)> = names.iter().map(|n| (n.clone(), b"state".to_vec())).collect();
            want.sort();
            assert_eq!(got, want, "at {peers} readers");
        }
    }

    #[test]
    fn nothing_written_starts_afresh_and_a_doubled_split_is_refused() {
        let empty: Vec<&[u8]> = vec![&[], &[]];
        assert!(owned_splits::<String>(&Restore::new(empty, 0, 2), |_| true).unwrap().is_none());
        let a = section(&[("p0", "1")]);
        let b = section(&[("p0", "2")]);
        let err = owned_splits::<String>(&Restore::new(vec![&a, &b], 0, 1), |_| true).unwrap_err();
        assert!(err.message.contains("p0"), "{}", err.message);
    }

    #[test]
    fn owners_spread_and_stay_put() {
        let owners: Vec<usize> = (0..64).map(|p| split_owner(format!("t-{p}").as_bytes(), 4)).collect();
        for w in 0..4 {
            assert!(owners.contains(&w), "reader {w} owns nothing of 64 splits");
        }
        assert_eq!(split_owner(b"orders-3", 4), split_owner(b"orders-3", 4));
    }
}
