//! The keys' table: one value per key, in a table that can fetch a key's place ahead of use.
//!
//! A keyed operator looks a key up for every record. With tens of thousands of keys a
//! rare key's place is rarely in cache, and waiting for it is most of the lookup. A
//! batch's keys are all known before the batch is processed, so the operator asks for
//! a key's index slot a few records ahead ([`KeyedState::prefetch`]), then for its
//! entry ([`KeyedState::prefetch_entry`]), and the misses overlap. `std`'s map cannot
//! say where a key lives; this table can.
//!
//! Memory (state can hold millions of keys): the entries sit in one dense vector, in
//! insertion order, and an index of 8-byte slots (open addressing, linear probing, at
//! most 3/4 full) points into it, so a key costs its entry plus 11 to 21 bytes of index.
//! A table of entries kept at most half full would cost two to four entries per key,
//! and while growing it holds its old and new arrays at once. The vector grows by
//! reallocation (which moves the pages of a large one rather than copying them); the
//! index is rebuilt from the entries' hashes when it grows.

use crate::key::Key;

/// A map from [`Key`] to `V` with [`KeyedState::prefetch`]. A rolling aggregate keeps
/// every key; the state backend ([`super::HeapBackend`]) removes a key whose state was
/// all cleared ([`KeyedState::swap_remove_at`]), and uses an entry's position as the
/// key's slot in its per-state columns.
pub struct KeyedState<V> {
    entries: Vec<(Key, V)>,
    /// 0 for an empty slot, else [`tag`] of the key's hash | (its entry's position + 1).
    index: Vec<u64>,
    /// 64 minus log2 of the index's length: the slot of a hash is its top bits (after
    /// a multiply), because routing already used its low bits (`hash % workers`).
    shift: u32,
}

const MIN_CAPACITY: usize = 16;
/// The low bits of an index slot: an entry's position + 1 (room for 2^40 - 1 entries,
/// far more than fit in memory).
const ENTRY_BITS: u32 = 40;
const ENTRY_MASK: u64 = (1 << ENTRY_BITS) - 1;

/// The top 24 bits of a hash, where an index slot keeps them: a probe compares keys
/// only on a slot whose tag matches (one in 16M for another key).
#[inline]
fn tag(hash: u64) -> u64 {
    hash & !ENTRY_MASK
}

impl<V> Default for KeyedState<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> KeyedState<V> {
    /// An empty table (it allocates on the first insert).
    pub fn new() -> Self {
        KeyedState { entries: Vec::new(), index: Vec::new(), shift: 64 }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index slot where a probe for `hash` starts (the index is not empty).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        home(hash, self.shift)
    }

    /// Asks the CPU to bring the index slot where a probe for `hash` starts into
    /// cache; a no-op on an empty table and on targets without a prefetch instruction.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if !self.index.is_empty() {
            prefetch_read((&self.index[self.home(hash)] as *const u64).cast());
        }
    }

    /// Once [`KeyedState::prefetch`]'s slot has arrived: asks for the entry of the
    /// first slot with `hash`'s tag (`hash`'s key's, almost always), without waiting.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        if let Some(e) = self.tagged(hash) {
            prefetch_read((&self.entries[e] as *const (Key, V)).cast());
        }
    }

    /// Once [`KeyedState::prefetch_entry`]'s entry has arrived: the value of the first
    /// entry with `hash`'s tag, to prefetch what it points to. Almost always the value
    /// of `hash`'s key, but the key is not compared: only a hint may rely on it.
    #[inline]
    pub fn peek(&self, hash: u64) -> Option<&V> {
        self.tagged(hash).map(|e| &self.entries[e].1)
    }

    /// The position of the first entry with `hash`'s tag in a probe for `hash`.
    #[inline]
    fn tagged(&self, hash: u64) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let (mask, want) = (self.index.len() - 1, tag(hash));
        let mut i = self.home(hash);
        loop {
            let s = self.index[i];
            if s == 0 {
                return None;
            }
            if tag(s) == want {
                return Some((s & ENTRY_MASK) as usize - 1);
            }
            i = (i + 1) & mask;
        }
    }

    /// The position of `key`'s entry, or the empty index slot where it would go (the
    /// index is not empty).
    #[inline]
    fn find(&self, key: &Key) -> Result<usize, usize> {
        let (mask, want) = (self.index.len() - 1, tag(key.hash()));
        let mut i = self.home(key.hash());
        loop {
            let s = self.index[i];
            if s == 0 {
                return Err(i);
            }
            if tag(s) == want {
                let e = (s & ENTRY_MASK) as usize - 1;
                if self.entries[e].0 == *key {
                    return Ok(e);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `key`, if it has one.
    #[inline]
    pub fn get(&self, key: &Key) -> Option<&V> {
        if self.index.is_empty() {
            return None;
        }
        let e = self.find(key).ok()?;
        Some(&self.entries[e].1)
    }

    /// The value of `key` to update in place, if it has one.
    #[inline]
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        if self.index.is_empty() {
            return None;
        }
        let e = self.find(key).ok()?;
        Some(&mut self.entries[e].1)
    }

    /// Sets `key`'s value, returning the one it replaces.
    pub fn insert(&mut self, key: Key, value: V) -> Option<V> {
        // One probe when the key is there or the index has room; a second after growing.
        let slot = match (!self.index.is_empty()).then(|| self.find(&key)) {
            Some(Ok(e)) => return Some(std::mem::replace(&mut self.entries[e].1, value)),
            Some(Err(slot)) if (self.entries.len() + 1) * 4 <= self.index.len() * 3 => slot,
            _ => {
                self.grow();
                vacant(&self.index, self.home(key.hash()))
            }
        };
        assert!(self.entries.len() < ENTRY_MASK as usize, "keyed state: more than 2^40 keys on one worker");
        self.index[slot] = tag(key.hash()) | (self.entries.len() as u64 + 1);
        self.entries.push((key, value));
        None
    }

    /// The position of `key`'s entry (positions are dense: `0..len()`).
    #[inline]
    pub fn position(&self, key: &Key) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        self.find(key).ok()
    }

    /// The key and value at `position`.
    pub fn entry_at(&self, position: usize) -> (&Key, &V) {
        let (k, v) = &self.entries[position];
        (k, v)
    }

    /// Removes the entry at `position`; the last entry moves into its place, as
    /// `Vec::swap_remove` does, so positions stay dense (a caller that keeps columns by
    /// position moves their last element the same way).
    pub fn swap_remove_at(&mut self, position: usize) -> (Key, V) {
        let hash = self.entries[position].0.hash();
        let slot = self.slot_of(hash, position);
        self.delete_slot(slot);
        let last = self.entries.len() - 1;
        if position != last {
            let moved = self.entries[last].0.hash();
            let s = self.slot_of(moved, last);
            self.index[s] = tag(moved) | (position as u64 + 1);
        }
        self.entries.swap_remove(position)
    }

    /// The index slot that points at entry `position`, whose key hashes to `hash`.
    fn slot_of(&self, hash: u64, position: usize) -> usize {
        let (mask, want) = (self.index.len() - 1, position as u64 + 1);
        let mut i = self.home(hash);
        while self.index[i] & ENTRY_MASK != want {
            i = (i + 1) & mask;
        }
        i
    }

    /// Empties index slot `hole` and shifts later slots of its probe run back, so every
    /// key stays reachable from its home without tombstones.
    fn delete_slot(&mut self, mut hole: usize) {
        let mask = self.index.len() - 1;
        let mut i = (hole + 1) & mask;
        loop {
            let s = self.index[i];
            if s == 0 {
                break;
            }
            let e = (s & ENTRY_MASK) as usize - 1;
            let h = self.home(self.entries[e].0.hash());
            // The slot may move back to the hole if its home is not after the hole.
            if (i.wrapping_sub(h) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.index[hole] = s;
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.index[hole] = 0;
    }

    /// Bytes the table holds for its keys (entries and index, by length, not spare
    /// capacity), to state what a key costs.
    pub fn bytes_used(&self) -> usize {
        self.entries.len() * std::mem::size_of::<(Key, V)>() + self.index.len() * 8
    }

    /// Doubles the index and rebuilds it from the entries (whose keys are distinct).
    fn grow(&mut self) {
        let capacity = (self.index.len() * 2).max(MIN_CAPACITY);
        // The old index goes first: the entries alone rebuild the new one.
        self.index = Vec::new();
        self.index = vec![0; capacity];
        self.shift = 64 - capacity.trailing_zeros();
        for (e, (key, _)) in self.entries.iter().enumerate() {
            let slot = vacant(&self.index, home(key.hash(), self.shift));
            self.index[slot] = tag(key.hash()) | (e as u64 + 1);
        }
    }
}

/// The index slot where a probe for `hash` starts, in an index of 2^(64 - shift) slots.
#[inline]
fn home(hash: u64, shift: u32) -> usize {
    // Fibonacci hashing: spreads any bits of the hash over the top ones.
    (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize
}

/// The first empty slot of `index` from `home` on (the index has one).
#[inline]
fn vacant(index: &[u64], home: usize) -> usize {
    let mask = index.len() - 1;
    let mut i = home;
    while index[i] != 0 {
        i = (i + 1) & mask;
    }
    i
}

/// Asks the CPU to bring the cache line at `p` in (any address: it never faults).
// A prefetch reads nothing: the pointer is a hint, so this need not be `unsafe`.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[inline(always)]
pub fn prefetch_read(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::key_of;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn inserts_finds_and_replaces() {
        let mut s = KeyedState::new();
        assert!(s.get(&key_of("a")).is_none());
        s.prefetch(key_of("a").hash());
        s.prefetch_entry(key_of("a").hash());
        assert!(s.peek(key_of("a").hash()).is_none());
        assert_eq!(s.insert(key_of("a"), 1), None);
        assert_eq!(s.insert(key_of(&7i64), 2), None);
        assert_eq!(s.insert(key_of("a"), 3), Some(1));
        *s.get_mut(&key_of(&7.0f64)).unwrap() += 10;
        assert_eq!(s.get(&key_of("a")), Some(&3));
        assert_eq!(s.get(&key_of(&7i64)), Some(&12));
        assert_eq!(s.peek(key_of("a").hash()), Some(&3));
        assert_eq!(s.len(), 2);
        assert!(!s.is_empty() && s.get(&key_of("b")).is_none());
    }

    /// What the table spends per key: its entry, once (no spare entries), and at most
    /// three 8-byte index slots, also right after the index doubled.
    #[test]
    fn a_key_costs_its_entry_and_a_few_index_slots() {
        let mut s = KeyedState::new();
        for i in 0..100_000i64 {
            s.insert(key_of(&i), i);
            assert!(s.index.len() <= (3 * s.len()).max(MIN_CAPACITY), "{} slots for {} keys", s.index.len(), s.len());
            assert_eq!(s.entries.len(), s.len());
        }
        for i in 0..100_000i64 {
            assert_eq!(s.get(&key_of(&i)), Some(&i));
        }
    }

    /// An operation on the table and on its model.
    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, i32),
        Add(u32, i32),
        Get(u32),
        Remove(u32),
    }

    /// Keys `0..n`, most of them sharing their hash with others (so probes meet equal
    /// tags and compare keys), the rest with their own stable hash.
    fn colliding_key(k: u32) -> Key {
        let bytes = format!("k{k}");
        if k.is_multiple_of(4) {
            key_of(bytes.as_str())
        } else {
            // Five hashes, each shared by ~60 keys (a probe meets equal tags and
            // compares keys); the last two share a tag but not a home.
            let hash = [0, 1 << 63, 0x00ff_ff00_0000_0001, 7 << 40, (7 << 40) | 3][(k % 5) as usize];
            Key::with_hash(hash, bytes.as_bytes())
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..400, any::<i32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u32..400, -5i32..5).prop_map(|(k, d)| Op::Add(k, d)),
            (0u32..400).prop_map(Op::Get),
            (0u32..400).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Inserts, updates in place and lookups agree with std's map, through every
        /// growth of the index and with keys whose hashes collide.
        #[test]
        fn agrees_with_a_model_when_hashes_collide(ops in proptest::collection::vec(op(), 0..1500)) {
            let mut table = KeyedState::new();
            let mut model: HashMap<Key, i32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let key = colliding_key(k);
                        table.prefetch(key.hash());
                        table.prefetch_entry(key.hash());
                        prop_assert_eq!(table.insert(key.clone(), v), model.insert(key, v));
                    }
                    Op::Add(k, d) => {
                        let key = colliding_key(k);
                        let got = table.get_mut(&key).map(|v| { *v = v.wrapping_add(d); *v });
                        let want = model.get_mut(&key).map(|v| { *v = v.wrapping_add(d); *v });
                        prop_assert_eq!(got, want);
                    }
                    Op::Remove(k) => {
                        let key = colliding_key(k);
                        let got = table.position(&key).map(|p| {
                            let last = table.len() - 1;
                            let moved = table.entry_at(last).0.clone();
                            let (gone, v) = table.swap_remove_at(p);
                            assert_eq!(gone, key);
                            if p != last {
                                assert_eq!(table.position(&moved), Some(p), "the last entry takes the removed one's place");
                            }
                            v
                        });
                        prop_assert_eq!(got, model.remove(&key));
                    }
                    Op::Get(k) => {
                        let key = colliding_key(k);
                        prop_assert_eq!(table.get(&key), model.get(&key));
                        prop_assert_eq!(table.position(&key).map(|p| table.entry_at(p).1), model.get(&key));
                        // A hint: a value with the key's tag; the key's own if no other
                        // key has that tag, none if no key has it.
                        let mut tagged = model.iter().filter(|(m, _)| tag(m.hash()) == tag(key.hash()));
                        match (tagged.next(), tagged.next()) {
                            (None, _) => prop_assert_eq!(table.peek(key.hash()), None),
                            (Some((m, v)), None) if *m == key => prop_assert_eq!(table.peek(key.hash()), Some(v)),
                            (Some(_), _) if model.contains_key(&key) => prop_assert!(table.peek(key.hash()).is_some()),
                            _ => {}
                        }
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(table.get(k), Some(v));
            }
        }

        /// The table agrees with std's map over any sequence of inserts, with keys whose
        /// hashes share their low bit (those one of two workers owns).
        #[test]
        fn agrees_with_a_hash_map(ops in proptest::collection::vec((0u32..3000, any::<i32>()), 0..2000)) {
            let mut table = KeyedState::new();
            let mut model = HashMap::new();
            for (k, v) in ops {
                let key = key_of(&format!("k{k}"));
                if key.hash() % 2 == 1 {
                    continue;
                }
                table.prefetch(key.hash());
                table.prefetch_entry(key.hash());
                prop_assert_eq!(table.insert(key.clone(), v), model.insert(key, v));
            }
            prop_assert_eq!(table.len(), model.len());
            for (k, v) in &model {
                prop_assert_eq!(table.get(k), Some(v));
            }
            prop_assert!(table.get(&key_of("absent")).is_none());
        }
    }
}
