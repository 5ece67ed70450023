//! What an operator restores from: its sections in a checkpoint's part files, one per
//! worker that wrote the checkpoint, and which keys are now its own.
//!
//! A checkpoint taken at one parallelism restores at any other (Flink's rescaling): a
//! keyed operator reads every old worker's section and keeps the keys that route to it
//! by the same hash the keyed exchange uses ([`Restore::owns`]), so each key lands on
//! exactly one worker. State that is not keyed says itself how it is shared out (a
//! broadcast state's copies are identical: any one will do; a source's pending splits
//! are dealt to the new readers).

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
