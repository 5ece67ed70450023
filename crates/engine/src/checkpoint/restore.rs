//! What an operator restores from: its sections in a checkpoint's part files, one per
//! worker that wrote the checkpoint, and which keys are now its own.
//!
//! A checkpoint taken at one parallelism restores at any other (Flink's rescaling): a
//! keyed operator reads every old worker's section and keeps the keys that route to it
//! by the same hash the keyed exchange uses ([`Restore::owns`]), so each key lands on
//! exactly one worker. State that is not keyed says itself how it is shared out (a
//! broadcast state's copies are identical: any one will do; a source's pending splits
//! are dealt to the new readers).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::checkpoint::format::PartReader;
use crate::checkpoint::storage::{self, Unusable};
use crate::key::Key;

/// One operator's view of the checkpoint it restores from.
#[derive(Clone, Debug)]
pub struct Restore<'a> {
    sections: Vec<&'a [u8]>,
    worker: usize,
    peers: usize,
}

impl<'a> Restore<'a> {
    /// `sections[w]`: what old worker `w` wrote for this operator (empty if nothing);
    /// `worker` of `peers`: this operator instance now (its own parallelism, which the
    /// keyed exchange routes by).
    pub fn new(sections: Vec<&'a [u8]>, worker: usize, peers: usize) -> Self {
        debug_assert!(worker < peers.max(1));
        Restore { sections, worker, peers: peers.max(1) }
    }

    /// Every old worker's section, in old worker order.
    pub fn sections(&self) -> &[&'a [u8]] {
        &self.sections
    }

    /// The sections that hold anything.
    pub fn non_empty(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.sections.iter().copied().filter(|s| !s.is_empty())
    }

    /// Whether `key` belongs to this instance now: the keyed exchange's rule.
    pub fn owns(&self, key: &Key) -> bool {
        key.hash() % self.peers as u64 == self.worker as u64
    }

    /// This instance's index among [`Restore::peers`].
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// How many instances of the operator run now.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// How many workers wrote the checkpoint.
    pub fn old_peers(&self) -> usize {
        self.sections.len()
    }

    /// Whether the parallelism is the one the checkpoint was written at: then old worker
    /// `i`'s section is this instance's own ([`Restore::own`]).
    pub fn same_parallelism(&self) -> bool {
        self.sections.len() == self.peers
    }

    /// The section this instance wrote itself, if the parallelism is unchanged.
    pub fn own(&self) -> Option<&'a [u8]> {
        if self.same_parallelism() {
            self.sections.get(self.worker).copied()
        } else {
            None
        }
    }

    /// Items numbered `0..n` dealt round-robin over the instances now: whether item `i`
    /// is this instance's (a source's pending splits after a rescale).
    pub fn deals(&self, i: usize) -> bool {
        i % self.peers == self.worker
    }
}

/// A checkpoint loaded for a restore: every part's bytes, checked end to end, with
/// where each operator's section lies in it. Loaded once per process and shared by
/// its workers.
#[derive(Debug)]
pub struct Restored {
    /// The checkpoint's id: new checkpoints of the restored job number after it.
    pub id: u64,
    pub dir: PathBuf,
    parts: Vec<Vec<u8>>,
    /// Per part: node -> (offset, len) of its section.
    index: Vec<HashMap<u32, (usize, usize)>>,
}

impl Restored {
    /// Loads the checkpoint or savepoint in `dir`, refusing a damaged one and one taken
    /// from another plan (`signature`: [`crate::plan::Plan::signature`]): the error is
    /// the one line to show.
    pub fn load(dir: &Path, signature: &[String]) -> Result<Restored, String> {
        let manifest = storage::verify(dir).map_err(|e| match e {
            Unusable::Incomplete => {
                format!("{} is not a complete checkpoint (no {})", dir.display(), storage::MANIFEST)
            }
            Unusable::Damaged(why) => format!("cannot restore from {}: {why}", dir.display()),
        })?;
        if manifest.plan != signature {
            let first = manifest.plan.iter().zip(signature).position(|(a, b)| a != b);
            let what = match first {
                Some(i) => format!("its node {}, the job's node {}", manifest.plan[i], signature[i]),
                None => format!("it has {} nodes, the job {}", manifest.plan.len(), signature.len()),
            };
            return Err(format!(
                "checkpoint {} was taken from another job (plan differs: {what}); restore it into the job that wrote it",
                dir.display()
            ));
        }
        let mut parts = Vec::with_capacity(manifest.parts.len());
        let mut index = Vec::with_capacity(manifest.parts.len());
        for entry in &manifest.parts {
            let path = dir.join(&entry.name);
            let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let reader =
                PartReader::parse(&bytes).map_err(|e| format!("cannot restore from {}: {e}", path.display()))?;
            index.push(
                reader
                    .sections()
                    .iter()
                    .map(|s| (s.node, (s.offset as usize, s.len as usize)))
                    .collect::<HashMap<_, _>>(),
            );
            parts.push(bytes);
        }
        Ok(Restored { id: manifest.segment, dir: dir.to_path_buf(), parts, index })
    }

    /// What operator `node` restores from, as instance `worker` of `peers`.
    pub fn for_node(&self, node: u32, worker: usize, peers: usize) -> Restore<'_> {
        let sections = self
            .parts
            .iter()
            .zip(&self.index)
            .map(|(bytes, index)| index.get(&node).map_or(&[][..], |&(at, len)| &bytes[at..at + len]))
            .collect();
        Restore::new(sections, worker, peers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyEncoder;

    fn key(i: u64) -> Key {
        let mut e = KeyEncoder::new();
        e.int(i as i64);
        e.finish()
    }

    #[test]
    fn every_key_is_owned_by_exactly_one_instance_at_any_parallelism() {
        for peers in 1..5 {
            for i in 0..200 {
                let k = key(i);
                let owners = (0..peers).filter(|w| Restore::new(vec![], *w, peers).owns(&k)).count();
                assert_eq!(owners, 1, "key {i} at {peers} instances");
            }
        }
    }

    #[test]
    fn own_section_only_when_the_parallelism_is_unchanged() {
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert_eq!(Restore::new(vec![a, b], 1, 2).own(), Some(b));
        assert_eq!(Restore::new(vec![a, b], 0, 3).own(), None);
        assert_eq!(Restore::new(vec![a, b], 0, 3).old_peers(), 2);
        assert_eq!(Restore::new(vec![a, &[], b], 0, 1).non_empty().count(), 2);
    }
}
