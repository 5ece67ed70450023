//! Which operators of one worker still owe their section of a checkpoint.
//!
//! Every operator that may hold state registers when the dataflow is built, under its
//! plan node. It delivers one section per checkpoint, in order, as its input passes the
//! checkpoint's segment (a source: as it moves to the segment). An operator that has
//! finished (its input ended, or a source ran out) retires with its last section, which
//! then stands for it in every later checkpoint: an ended source's position is "at the
//! end", so a restore does not read it again. A checkpoint is ready on this worker once
//! every registered operator has delivered or retired.

use std::collections::{BTreeMap, BTreeSet};

/// One worker's collection of sections, checkpoint by checkpoint. Pure bookkeeping: the
/// caller writes what [`Tracker::take_ready`] returns.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Operators that deliver a section per checkpoint.
    live: BTreeSet<u32>,
    /// Operators that finished, with the section that stands for them from then on.
    retired: BTreeMap<u32, Vec<u8>>,
    /// Sections delivered, per checkpoint, per node.
    pending: BTreeMap<u64, BTreeMap<u32, Vec<u8>>>,
    /// Checkpoints up to this one are handed on or aborted: later deliveries are dropped.
    closed: u64,
}

impl Tracker {
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Operator `node` will deliver a section per checkpoint.
    pub fn register(&mut self, node: u32) {
        self.live.insert(node);
    }

    /// Checkpoint `checkpoint` was triggered. It gets an entry now, so that a worker
    /// whose operators all retire before delivering it (or had retired already) still
    /// hands it on, with their last sections.
    pub fn request(&mut self, checkpoint: u64) {
        if checkpoint > self.closed {
            self.pending.entry(checkpoint).or_default();
        }
    }

    /// Operator `node`'s section of `checkpoint`.
    pub fn deliver(&mut self, checkpoint: u64, node: u32, section: Vec<u8>) {
        if checkpoint > self.closed {
            self.pending.entry(checkpoint).or_default().insert(node, section);
        }
    }

    /// Operator `node` has finished: `last` stands for it in every checkpoint it has not
    /// delivered.
    pub fn retire(&mut self, node: u32, last: Vec<u8>) {
        if self.live.remove(&node) {
            self.retired.insert(node, last);
        }
    }

    /// Whether any operator is still registered or retired (a worker with none has no
    /// part to write).
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.retired.is_empty()
    }

    /// The oldest checkpoint every operator has delivered, with its sections in node
    /// order (empty ones left out), if it is ready. Earlier checkpoints that were never
    /// completed cannot be: sections arrive in order.
    pub fn take_ready(&mut self) -> Option<(u64, Vec<(u32, Vec<u8>)>)> {
        let (&checkpoint, got) = self.pending.iter().next()?;
        if !self.live.iter().all(|n| got.contains_key(n)) {
            return None;
        }
        let mut got = self.pending.remove(&checkpoint).unwrap_or_default();
        for (node, last) in &self.retired {
            got.entry(*node).or_insert_with(|| last.clone());
        }
        self.closed = self.closed.max(checkpoint);
        Some((checkpoint, got.into_iter().filter(|(_, s)| !s.is_empty()).collect()))
    }

    /// Checkpoint `checkpoint` was given up: drops what was delivered for it and before.
    pub fn abort(&mut self, checkpoint: u64) {
        self.pending.retain(|c, _| *c > checkpoint);
        self.closed = self.closed.max(checkpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_every_live_operator_delivered() {
        let mut t = Tracker::new();
        t.register(1);
        t.register(2);
        t.deliver(1, 1, b"a".to_vec());
        assert_eq!(t.take_ready(), None);
        t.deliver(1, 2, Vec::new());
        assert_eq!(t.take_ready(), Some((1, vec![(1, b"a".to_vec())])));
        assert_eq!(t.take_ready(), None);
    }

    #[test]
    fn a_retired_operator_stands_in_with_its_last_section() {
        let mut t = Tracker::new();
        t.register(1);
        t.register(7);
        t.retire(7, b"end".to_vec());
        t.deliver(1, 1, b"x".to_vec());
        assert_eq!(t.take_ready(), Some((1, vec![(1, b"x".to_vec()), (7, b"end".to_vec())])));
        // A retired operator's delivery (a race with its end) does not count twice.
        t.retire(7, b"other".to_vec());
        t.deliver(2, 1, Vec::new());
        assert_eq!(t.take_ready(), Some((2, vec![(7, b"end".to_vec())])));
    }

    #[test]
    fn a_checkpoint_requested_after_every_operator_retired_is_ready_with_their_last_sections() {
        let mut t = Tracker::new();
        t.register(1);
        t.register(2);
        t.request(1);
        t.deliver(1, 1, b"a".to_vec());
        // Node 2 ends before delivering checkpoint 1: its last section stands in.
        t.retire(2, b"end2".to_vec());
        assert_eq!(t.take_ready(), Some((1, vec![(1, b"a".to_vec()), (2, b"end2".to_vec())])));
        t.retire(1, b"end1".to_vec());
        assert_eq!(t.take_ready(), None, "nothing was requested");
        t.request(2);
        assert_eq!(t.take_ready(), Some((2, vec![(1, b"end1".to_vec()), (2, b"end2".to_vec())])));
        t.request(2);
        assert_eq!(t.take_ready(), None, "a checkpoint is handed on once");
    }

    #[test]
    fn an_aborted_checkpoint_is_dropped_and_late_sections_for_it_ignored() {
        let mut t = Tracker::new();
        t.register(1);
        t.register(2);
        t.deliver(1, 1, b"a".to_vec());
        t.abort(1);
        t.deliver(1, 2, b"late".to_vec());
        assert_eq!(t.take_ready(), None);
        t.deliver(2, 1, Vec::new());
        t.deliver(2, 2, Vec::new());
        assert_eq!(t.take_ready(), Some((2, vec![])));
    }
}
