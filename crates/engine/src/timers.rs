//! Timers of a keyed operator (Flink's `TimerService`), without the operator.
//!
//! A timer is a key, a timestamp and a time domain: registering the same one twice
//! keeps one (it fires once), as in Flink. Timers fire in timestamp order once the
//! watermark (event time) or the processing-time clock reaches their timestamp, and
//! timers with equal timestamps fire in the order of their keys, so a job's output
//! does not depend on the order timers were registered in. The operator asks for
//! the earliest pending time of each domain to know when it must be woken (hold a
//! capability, ask for an activation), and takes all remaining timers at the end of a
//! bounded input (ferroflow fires them, as it fires pending windows).
//!
//! Generic over the key `K` (ordered: it decides the order of equal timestamps) and a
//! value `V` kept with each timer: the keyed process operator keeps the key's
//! encoding as `K` and the key itself (a record) as `V`, for `ctx.get_current_key()`.

use std::collections::BTreeMap;

use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::key::Key;
use crate::record::Record;
use crate::time::TimeDomain;

/// A due timer, as the operator fires it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer<K, V> {
    pub domain: TimeDomain,
    pub timestamp: i64,
    pub key: K,
    pub value: V,
}

/// The pending timers of one operator instance.
#[derive(Clone, Debug)]
pub struct TimerService<K, V> {
    event: BTreeMap<i64, BTreeMap<K, V>>,
    processing: BTreeMap<i64, BTreeMap<K, V>>,
    len: usize,
}

impl<K: Ord + Clone, V> Default for TimerService<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone, V> TimerService<K, V> {
    pub fn new() -> Self {
        TimerService { event: BTreeMap::new(), processing: BTreeMap::new(), len: 0 }
    }

    fn queue(&self, domain: TimeDomain) -> &BTreeMap<i64, BTreeMap<K, V>> {
        match domain {
            TimeDomain::EventTime => &self.event,
            TimeDomain::ProcessingTime => &self.processing,
        }
    }

    fn queue_mut(&mut self, domain: TimeDomain) -> &mut BTreeMap<i64, BTreeMap<K, V>> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Registers a timer; false (and `value` dropped) if it was already registered.
    pub fn register(&mut self, domain: TimeDomain, timestamp: i64, key: K, value: V) -> bool {
        let at = self.queue_mut(domain).entry(timestamp).or_default();
        if at.contains_key(&key) {
            return false;
        }
        at.insert(key, value);
        self.len += 1;
        true
    }

    /// Deletes a timer; false if there was none.
    pub fn delete(&mut self, domain: TimeDomain, timestamp: i64, key: &K) -> bool {
        let queue = self.queue_mut(domain);
        let Some(at) = queue.get_mut(&timestamp) else { return false };
        let removed = at.remove(key).is_some();
        if at.is_empty() {
            queue.remove(&timestamp);
        }
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Whether a timer is registered.
    pub fn contains(&self, domain: TimeDomain, timestamp: i64, key: &K) -> bool {
        self.queue(domain).get(&timestamp).is_some_and(|at| at.contains_key(key))
    }

    /// The earliest pending timestamp of `domain`: when the operator must be woken.
    pub fn next(&self, domain: TimeDomain) -> Option<i64> {
        self.queue(domain).first_key_value().map(|(&t, _)| t)
    }

    /// Removes and returns the first timer of `domain` due at `time` (its timestamp
    /// `<= time`). Firing one at a time lets a timer's callback register another one
    /// that is already due: it fires in the same advance, in its place (Flink's order).
    pub fn pop_due(&mut self, domain: TimeDomain, time: i64) -> Option<Timer<K, V>> {
        let queue = self.queue_mut(domain);
        let mut first = queue.first_entry()?;
        let timestamp = *first.key();
        if timestamp > time {
            return None;
        }
        let (key, value) = first.get_mut().pop_first()?;
        if first.get().is_empty() {
            first.remove();
        }
        self.len -= 1;
        Some(Timer { domain, timestamp, key, value })
    }

    /// Appends every timer of `domain` due at `time` to `out`, in firing order.
    pub fn take_due(&mut self, domain: TimeDomain, time: i64, out: &mut Vec<Timer<K, V>>) {
        while let Some(t) = self.pop_due(domain, time) {
            out.push(t);
        }
    }

    /// Appends every timer of `domain` to `out`, in firing order (the end of input).
    pub fn take_all(&mut self, domain: TimeDomain, out: &mut Vec<Timer<K, V>>) {
        self.take_due(domain, i64::MAX, out);
    }

    /// How many timers are pending (both domains).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every pending timer, event time first, each domain in firing order: what a
    /// checkpoint saves. A restore registers them again ([`TimerService::register`]).
    pub fn iter(&self) -> impl Iterator<Item = (TimeDomain, i64, &K, &V)> + '_ {
        [TimeDomain::EventTime, TimeDomain::ProcessingTime].into_iter().flat_map(move |domain| {
            self.queue(domain).iter().flat_map(move |(&t, at)| at.iter().map(move |(k, v)| (domain, t, k, v)))
        })
    }
}

/// A keyed operator's timers in a checkpoint section: one keyed entry per timer (the
/// key's encoding as the entry's key, so a restore at another parallelism keeps its
/// own; the domain and timestamp as meta; the key itself as the value).
impl<R: Record> TimerService<Key, R> {
    /// Writes every pending timer.
    pub fn snapshot(&self, w: &mut StateWriter<R>) -> Result<(), StateError> {
        let mut out = w.begin_keyed();
        let mut meta = [0u8; 9];
        for (domain, timestamp, key, value) in self.iter() {
            meta[0] = match domain {
                TimeDomain::EventTime => 0,
                TimeDomain::ProcessingTime => 1,
            };
            meta[1..].copy_from_slice(&timestamp.to_le_bytes());
            out.push_entry(key, &meta, [value.clone()])?;
        }
        out.finish()
    }

    /// Registers the timers [`TimerService::snapshot`] wrote whose key `owns` says is
    /// this instance's.
    pub fn restore(&mut self, r: &mut StateReader<'_, R>, owns: &dyn Fn(&Key) -> bool) -> Result<(), StateError> {
        r.keyed_entries(|key, meta, values| {
            if !owns(&key) {
                return Ok(());
            }
            let corrupt = |what: &str| StateError::Corrupt { offset: 0, what: format!("a timer {what}") };
            let (Some(&d), Some(ts), Some(value), None) = (meta.first(), meta.get(1..9), values.next(), values.next())
            else {
                return Err(corrupt("of another shape"));
            };
            let domain = match d {
                0 => TimeDomain::EventTime,
                1 => TimeDomain::ProcessingTime,
                _ => return Err(corrupt(&format!("in domain {d}"))),
            };
            if meta.len() != 9 {
                return Err(corrupt("with meta bytes left over"));
            }
            let timestamp = i64::from_le_bytes(ts.try_into().expect("8 bytes"));
            self.register(domain, timestamp, key, value);
            Ok(())
        })
    }
}
