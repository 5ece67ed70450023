//! Keyed state: one value per key, in a table that can fetch a key's slot ahead of use.
//!
//! A keyed operator looks a key up for every record. With tens of thousands of keys
//! the slot of a rare key is rarely in cache, and waiting for it is most of the
//! lookup. A batch's keys are all known before the batch is processed, so the operator
//! calls [`KeyedState::prefetch`] a few records ahead and the misses overlap.
//! `std`'s map cannot say where a key lives; this table (open addressing, linear
//! probing, at most half full) can.

use crate::key::Key;

/// A map from [`Key`] to `V` with [`KeyedState::prefetch`]. Entries are never removed
/// (a rolling aggregate keeps every key); an operator that stops drops the table.
pub struct KeyedState<V> {
    slots: Vec<Option<(Key, V)>>,
    /// 64 minus log2 of the capacity: the slot of a hash is its top bits (after a
    /// multiply), because routing already used its low bits (`hash % workers`).
    shift: u32,
    len: usize,
}

const MIN_CAPACITY: usize = 16;

impl<V> Default for KeyedState<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> KeyedState<V> {
    /// An empty table (it allocates on the first insert).
    pub fn new() -> Self {
        KeyedState { slots: Vec::new(), shift: 64, len: 0 }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        // Fibonacci hashing: spreads any bits of the hash over the top ones.
        (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// Asks the CPU to bring the slot where `hash`'s key would live into cache; a
    /// no-op on an empty table and on targets without a prefetch instruction.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        let slot: *const Option<(Key, V)> = &self.slots[self.home(hash)];
        prefetch_read(slot.cast());
    }

    /// Where `key` is, or the empty slot where it would go.
    #[inline]
    fn position(&self, key: &Key) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key.hash());
        loop {
            match &self.slots[i] {
                Some((k, _)) if k == key => return Ok(i),
                Some(_) => i = (i + 1) & mask,
                None => return Err(i),
            }
        }
    }

    /// The value of `key`, if it has one.
    #[inline]
    pub fn get(&self, key: &Key) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let i = self.position(key).ok()?;
        self.slots[i].as_ref().map(|(_, v)| v)
    }

    /// The value of `key` to update in place, if it has one.
    #[inline]
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let i = self.position(key).ok()?;
        self.slots[i].as_mut().map(|(_, v)| v)
    }

    /// Sets `key`'s value, returning the one it replaces.
    pub fn insert(&mut self, key: Key, value: V) -> Option<V> {
        // One probe when the key is there or the table has room; a second after growing.
        let mut at = if self.slots.is_empty() { None } else { Some(self.position(&key)) };
        match at {
            Some(Ok(i)) => return self.slots[i].as_mut().map(|(_, v)| std::mem::replace(v, value)),
            Some(Err(_)) if (self.len + 1) * 2 <= self.slots.len() => {}
            _ => {
                self.grow();
                at = Some(self.position(&key));
            }
        }
        let Some(Err(i)) = at else { unreachable!("the key is not in the table") };
        self.slots[i] = Some((key, value));
        self.len += 1;
        None
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.slots, (0..capacity).map(|_| None).collect());
        self.shift = 64 - capacity.trailing_zeros();
        for (key, value) in old.into_iter().flatten() {
            let Err(i) = self.position(&key) else { unreachable!("a key is in the table once") };
            self.slots[i] = Some((key, value));
        }
    }
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
        assert_eq!(s.insert(key_of("a"), 1), None);
        assert_eq!(s.insert(key_of(&7i64), 2), None);
        assert_eq!(s.insert(key_of("a"), 3), Some(1));
        *s.get_mut(&key_of(&7.0f64)).unwrap() += 10;
        assert_eq!(s.get(&key_of("a")), Some(&3));
        assert_eq!(s.get(&key_of(&7i64)), Some(&12));
        assert_eq!(s.len(), 2);
        assert!(!s.is_empty() && s.get(&key_of("b")).is_none());
    }

    proptest! {
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
