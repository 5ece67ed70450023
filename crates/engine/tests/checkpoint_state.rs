//! Checkpoints of keyed operators that are not windows (issue 13): restore(snapshot(x))
//! behaves as x, and a checkpoint written by 2 instances restores into 1 or 3 with every
//! key on exactly one instance, with its state.
//!
//! - A rolling reduce's state ([`RollingReduce`]: records and running numbers), fed
//!   random keyed batches, snapshotted, restored, then fed the same further batches as
//!   the original: the outputs and every key's state agree.
//! - A keyed process function's context ([`ProcessContext`]: keyed state of every kind
//!   with time-to-live stamps, timers of both domains, broadcast state, the watermark),
//!   driven by random operations as a function would, then the same further operations
//!   on the original and the restored copy: every answer agrees.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;

use common::V;
use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::checkpoint::state_io::{StateReader, StateWriter};
use ferroflow_engine::control::JobControl;
use ferroflow_engine::functions::{BatchScope, Reducer, WorkerContext};
use ferroflow_engine::key::{key_of, Key};
use ferroflow_engine::operators::{Keyed, OpEnv, RollingReduce};
use ferroflow_engine::process::ProcessContext;
use ferroflow_engine::rolling::{Number, RollingState};
use ferroflow_engine::state::{
    KeyedStateBackend, OperatorStateBackend, StateDescriptor, StateKind, StateValue, TtlConfig,
};
use ferroflow_engine::time::TimeDomain;
use ferroflow_engine::UdfResult;

// ---------------------------------------------------------------------------------------
// Rolling reduce

struct NoScope;

impl BatchScope for NoScope {
    fn enter(&self, work: &mut dyn FnMut()) {
        work();
    }
}

fn env() -> OpEnv {
    let worker = WorkerContext { index: 0, peers: 1, waker: None, checkpointing: Default::default() };
    OpEnv {
        batch_size: 16,
        object_reuse: false,
        ..OpEnv::for_worker(Arc::new(JobControl::new(1)), Arc::new(NoScope), worker, 1)
    }
}

/// Sums `KV(k, v)`'s `v` per key, keeping each of the three kinds of rolling state: a
/// key whose first value is `0 mod 3` keeps an int, `1 mod 3` a float, else the record;
/// a negative value moves a running number back to a record (as a built-in
/// aggregation leaves its fast path).
struct Sum;

fn v_of(r: &V) -> i64 {
    match r {
        V::KV(_, v) => *v,
        other => panic!("not a KV: {other:?}"),
    }
}

impl Reducer<V> for Sum {
    fn reduce(&mut self, acc: &V, value: &V) -> UdfResult<V> {
        match (acc, value) {
            (V::KV(k, a), V::KV(_, b)) => Ok(V::KV(*k, a + b)),
            _ => Ok(V::S(format!("{acc:?}+{value:?}"))),
        }
    }

    fn start(&mut self, first: &V) -> UdfResult<RollingState<V>> {
        Ok(match v_of(first).rem_euclid(3) {
            0 => RollingState::Running { value: Number::Int(v_of(first)) },
            1 => RollingState::Running { value: Number::Float(v_of(first) as f64 / 4.0) },
            _ => RollingState::Record(first.clone()),
        })
    }

    fn update(&mut self, _key: &Key, state: &mut RollingState<V>, value: &V) -> UdfResult<V> {
        let (k, v) = match value {
            V::KV(k, v) => (*k, *v),
            other => panic!("not a KV: {other:?}"),
        };
        let running = match state {
            RollingState::Running { value } => Some(*value),
            RollingState::Record(_) => None,
        };
        match running {
            Some(Number::Int(n)) if v >= 0 => {
                *state = RollingState::Running { value: Number::Int(n + v) };
                Ok(V::KV(k, n + v))
            }
            Some(Number::Float(f)) if v >= 0 => {
                *state = RollingState::Running { value: Number::Float(f + v as f64) };
                Ok(V::S(format!("{k}:{}", f + v as f64)))
            }
            Some(n) => {
                let n = match n {
                    Number::Int(n) => n,
                    Number::Float(f) => f as i64,
                };
                *state = RollingState::Record(V::KV(k, n));
                ferroflow_engine::functions::update_record(self, state, value)
            }
            None => ferroflow_engine::functions::update_record(self, state, value),
        }
    }
}

fn keyed(k: i64, v: i64) -> Keyed<V> {
    (key_of(&k), V::I(k), V::KV(k, v))
}

fn fold(r: &mut RollingReduce<V>, input: &[(i64, i64)]) -> Vec<V> {
    let mut batch: Vec<Keyed<V>> = input.iter().map(|&(k, v)| keyed(k, v)).collect();
    let mut out = Vec::new();
    r.fold(&env(), &mut Sum, &mut batch, Some(&mut out)).expect("fold");
    out
}

fn snapshot_reduce(r: &RollingReduce<V>) -> Vec<u8> {
    let mut w = StateWriter::<V>::new();
    r.snapshot(&mut w).expect("snapshot");
    w.into_bytes()
}

fn restore_reduce(sections: &[&[u8]], worker: usize, peers: usize) -> RollingReduce<V> {
    let mut r = RollingReduce::new();
    r.restore(&Restore::new(sections.to_vec(), worker, peers)).expect("restore");
    r
}

fn records() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((0i64..40, -5i64..50), 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) })]

    /// Fed the same records after a restore, the copy emits what the original does and
    /// ends with the same state for every key.
    #[test]
    fn rolling_reduce_restores_as_itself(before in records(), after in records()) {
        let mut original = RollingReduce::new();
        fold(&mut original, &before);
        let bytes = snapshot_reduce(&original);
        let mut restored = restore_reduce(&[&bytes], 0, 1);
        prop_assert_eq!(restored.len(), original.len());
        prop_assert_eq!(fold(&mut restored, &after), fold(&mut original, &after));
        for k in 0..40i64 {
            prop_assert_eq!(restored.get(&key_of(&k)), original.get(&key_of(&k)));
        }
    }

    /// Written by 2 instances (keys routed by hash), restored into 1 and 3: each key
    /// is on the one instance that owns it now, with its state.
    #[test]
    fn rolling_reduce_rescales(before in records()) {
        let owner = |k: i64, n: u64| (key_of(&k).hash() % n) as usize;
        let mut old = [RollingReduce::new(), RollingReduce::new()];
        for (w, r) in old.iter_mut().enumerate() {
            let mine: Vec<(i64, i64)> = before.iter().copied().filter(|&(k, _)| owner(k, 2) == w).collect();
            fold(r, &mine);
        }
        let sections = [snapshot_reduce(&old[0]), snapshot_reduce(&old[1])];
        let sections: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
        let keys: BTreeSet<i64> = before.iter().map(|&(k, _)| k).collect();
        for peers in [1usize, 3] {
            let new: Vec<RollingReduce<V>> = (0..peers).map(|w| restore_reduce(&sections, w, peers)).collect();
            prop_assert_eq!(new.iter().map(|r| r.len()).sum::<usize>(), keys.len());
            for &k in &keys {
                let key = key_of(&k);
                let was = old[owner(k, 2)].get(&key);
                prop_assert!(was.is_some());
                for (w, r) in new.iter().enumerate() {
                    let want = if w == owner(k, peers as u64) { was } else { None };
                    prop_assert_eq!(r.get(&key), want, "key {} at {} instances", k, peers);
                }
            }
        }
    }
}

#[test]
fn a_corrupt_rolling_reduce_section_is_an_internal_error() {
    let mut r = RollingReduce::new();
    fold(&mut r, &[(1, 3), (2, 4), (3, 5)]);
    let bytes = snapshot_reduce(&r);
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        let mut fresh = RollingReduce::<V>::new();
        let err = fresh.restore(&Restore::new(vec![&bytes[..cut]], 0, 1)).unwrap_err();
        assert!(err.internal, "{err:?}");
        assert!(err.message.contains("state is corrupt"), "{}", err.message);
    }
}

// ---------------------------------------------------------------------------------------
// Keyed process function: state, timers, broadcast state, watermark

/// What a process function does to its context: the calls state objects, timer
/// services and the operator make.
#[derive(Clone, Debug)]
enum Op {
    /// The clock moves on (time-to-live runs on it).
    Clock(i64),
    Watermark(i64),
    ValueUpdate(i64, i64),
    ValueGet(i64),
    ValueClear(i64),
    ListAdd(i64, i64),
    ListGet(i64),
    MapPut(i64, i64, i64),
    MapRemove(i64, i64),
    MapItems(i64),
    Reduce(i64, i64),
    Timer(i64, bool, i64),
    DeleteTimer(i64, bool, i64),
    /// Fires the timers of a domain due at a time (popped in order).
    Fire(bool, i64),
    BroadcastPut(i64, i64),
    BroadcastItems,
}

const KEYS: i64 = 12;

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS;
    prop_oneof![
        (1i64..30).prop_map(Op::Clock),
        (-10i64..200).prop_map(Op::Watermark),
        (k.clone(), any::<i64>()).prop_map(|(k, v)| Op::ValueUpdate(k, v)),
        k.clone().prop_map(Op::ValueGet),
        k.clone().prop_map(Op::ValueClear),
        (k.clone(), 0i64..100).prop_map(|(k, v)| Op::ListAdd(k, v)),
        k.clone().prop_map(Op::ListGet),
        (k.clone(), 0i64..5, 0i64..100).prop_map(|(k, m, v)| Op::MapPut(k, m, v)),
        (k.clone(), 0i64..5).prop_map(|(k, m)| Op::MapRemove(k, m)),
        k.clone().prop_map(Op::MapItems),
        (k.clone(), -100i64..100).prop_map(|(k, v)| Op::Reduce(k, v)),
        (k.clone(), any::<bool>(), 0i64..200).prop_map(|(k, d, t)| Op::Timer(k, d, t)),
        (k.clone(), any::<bool>(), 0i64..200).prop_map(|(k, d, t)| Op::DeleteTimer(k, d, t)),
        (any::<bool>(), 0i64..200).prop_map(|(d, t)| Op::Fire(d, t)),
        (0i64..5, 0i64..100).prop_map(|(m, v)| Op::BroadcastPut(m, v)),
        Just(Op::BroadcastItems),
    ]
}

fn descriptors() -> Vec<StateDescriptor> {
    vec![
        StateDescriptor::new("value", StateKind::Value).with_ttl(TtlConfig::new(40)),
        StateDescriptor::new("list", StateKind::List).with_ttl(TtlConfig::new(60)),
        StateDescriptor::new("map", StateKind::Map),
        StateDescriptor::new("sum", StateKind::Reducing),
    ]
}

/// A context as a keyed process function's `open()` leaves it: its states registered
/// (all, or the first `registered` of them: the others are registered on first use),
/// the broadcast state not yet (PyFlink gets it in `process_*`).
fn context(registered: usize) -> ProcessContext<V> {
    let mut c = ProcessContext::new(true);
    for d in descriptors().iter().take(registered) {
        c.state.register(d).unwrap();
    }
    c.processing_time = 0;
    c
}

fn domain(processing: bool) -> TimeDomain {
    if processing {
        TimeDomain::ProcessingTime
    } else {
        TimeDomain::EventTime
    }
}

/// Applies `op` as the operator and a function would; returns what the function sees.
fn apply(c: &mut ProcessContext<V>, op: &Op) -> String {
    let ids: Vec<_> = descriptors().iter().map(|d| c.state.register(d).unwrap()).collect();
    let key = |c: &mut ProcessContext<V>, k: i64| c.set_key(key_of(&k), V::I(k));
    let seen = match op {
        Op::Clock(d) => {
            c.processing_time += d;
            Ok(String::new())
        }
        Op::Watermark(w) => {
            c.watermark = c.watermark.max(*w);
            Ok(String::new())
        }
        Op::ValueUpdate(k, v) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            s.update(ids[0], V::I(*v), now).map(|()| String::new())
        }
        Op::ValueGet(k) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            s.value(ids[0], now).map(|v| format!("{v:?}"))
        }
        Op::ValueClear(k) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            s.clear(ids[0], now).map(|()| String::new())
        }
        Op::ListAdd(k, v) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            s.list_add(ids[1], V::I(*v), now).map(|()| String::new())
        }
        Op::ListGet(k) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            s.list_get(ids[1], now).map(|v| format!("{v:?}"))
        }
        Op::MapPut(k, m, v) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            s.map_put(ids[2], key_of(m), V::I(*m), V::I(*v), now).map(|()| String::new())
        }
        Op::MapRemove(k, m) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            s.map_remove(ids[2], &key_of(m), now).map(|()| String::new())
        }
        Op::MapItems(k) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            s.map_items(ids[2], now).map(|v| format!("{v:?}"))
        }
        Op::Reduce(k, v) => {
            key(c, *k);
            let (s, now) = c.state_for_access().unwrap();
            let mut add = |a: &V, b: &V| match (a, b) {
                (V::I(a), V::I(b)) => Ok(V::I(a + b)),
                _ => unreachable!(),
            };
            s.reducing_add(ids[3], V::I(*v), &mut add, now)
                .and_then(|()| s.reducing_get(ids[3], now))
                .map(|v| format!("{v:?}"))
        }
        Op::Timer(k, d, t) => {
            key(c, *k);
            c.register_timer(domain(*d), *t).map(|()| String::new())
        }
        Op::DeleteTimer(k, d, t) => {
            key(c, *k);
            c.delete_timer(domain(*d), *t).map(|()| String::new())
        }
        Op::Fire(d, t) => {
            let mut fired = Vec::new();
            while let Some(timer) = c.timers.pop_due(domain(*d), *t) {
                fired.push((timer.timestamp, timer.value));
            }
            Ok(format!("{fired:?}"))
        }
        Op::BroadcastPut(m, v) => {
            c.set_in_broadcast_element(true);
            let id = c.broadcast_for_read().unwrap().register_broadcast("rules").unwrap();
            let put = c.broadcast_for_write(id).unwrap().put(id, key_of(m), V::I(*m), V::I(*v));
            c.set_in_broadcast_element(false);
            put.map(|()| String::new())
        }
        Op::BroadcastItems => {
            let b = c.broadcast_for_read().unwrap();
            let id = b.register_broadcast("rules").unwrap();
            b.items(id).map(|v| format!("{v:?}"))
        }
    };
    seen.unwrap_or_else(|e| format!("error: {}", e.message))
}

/// Everything the context holds, in a canonical order: keyed state entries (at the
/// context's clock), timers, broadcast state, watermark.
fn observe(c: &ProcessContext<V>) -> String {
    let mut entries: Vec<(String, Vec<u8>, String, String)> = Vec::new();
    c.state.snapshot(c.processing_time, &mut |d, k, ns, v: StateValue<V>| {
        entries.push((d.name.clone(), k.bytes().to_vec(), format!("{ns:?}"), format!("{v:?}")))
    });
    entries.sort();
    let timers: BTreeSet<String> =
        c.timers.iter().map(|(d, t, k, v)| format!("{d:?}{t}{:?}{v:?}", k.bytes())).collect();
    let mut broadcast = Vec::new();
    c.broadcast.snapshot(&mut |name, es| broadcast.push(format!("{name}{es:?}")));
    format!("{entries:?}\n{timers:?}\n{broadcast:?}\n{}", c.watermark)
}

fn snapshot_context(c: &ProcessContext<V>) -> Vec<u8> {
    let mut w = StateWriter::<V>::new();
    c.snapshot(&mut w).expect("snapshot");
    w.into_bytes()
}

/// Restores instance `worker` of `peers` from `sections` as the process operator does
/// (least watermark, one broadcast copy).
fn restore_context(sections: &[&[u8]], worker: usize, peers: usize, registered: usize) -> ProcessContext<V> {
    let from = Restore::new(sections.to_vec(), worker, peers);
    let copy = ferroflow_engine::state::snapshot::copy_index(&from);
    let mut c = context(registered);
    let mut watermark = None;
    for (i, s) in sections.iter().enumerate() {
        let mut r = StateReader::<V>::new(s);
        let wm = c.restore(&mut r, &|k| from.owns(k), copy == Some(i)).expect("restore");
        r.finish().unwrap();
        watermark = Some(watermark.map_or(wm, |w: i64| w.min(wm)));
    }
    c.watermark = watermark.unwrap();
    c
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) })]

    /// After a restore, the same further calls see the same answers (values, lists,
    /// maps, time-to-live expiry, timers firing, broadcast state) as the original.
    #[test]
    fn process_context_restores_as_itself(
        before in prop::collection::vec(op(), 0..120),
        after in prop::collection::vec(op(), 0..120),
        registered in 0usize..=4,
    ) {
        let mut original = context(4);
        for op in &before {
            apply(&mut original, op);
        }
        let bytes = snapshot_context(&original);
        let mut restored = restore_context(&[&bytes], 0, 1, registered);
        restored.processing_time = original.processing_time;
        prop_assert_eq!(observe(&restored), observe(&original));
        for op in &after {
            prop_assert_eq!(apply(&mut restored, op), apply(&mut original, op), "{:?}", op);
        }
        prop_assert_eq!(observe(&restored), observe(&original));
    }

    /// Written by 2 instances, each with the keys it owned and the same broadcast
    /// state, restored into 1 and 3: each key's state and timers are on the instance
    /// that owns it now and nowhere else; every instance has the broadcast state; the
    /// watermark is the least of the old ones.
    #[test]
    fn process_context_rescales(ops in prop::collection::vec(op(), 0..150)) {
        let owner = |k: i64, n: u64| (key_of(&k).hash() % n) as usize;
        let key_of_op = |op: &Op| match *op {
            Op::ValueUpdate(k, _) | Op::ValueGet(k) | Op::ValueClear(k) | Op::ListAdd(k, _) | Op::ListGet(k)
            | Op::MapPut(k, _, _) | Op::MapRemove(k, _) | Op::MapItems(k) | Op::Reduce(k, _)
            | Op::Timer(k, _, _) | Op::DeleteTimer(k, _, _) => Some(k),
            _ => None,
        };
        let mut old = [context(4), context(4)];
        for (w, c) in old.iter_mut().enumerate() {
            for op in &ops {
                // Keyed calls reach the key's owner; the rest (clock, broadcast) every
                // instance, as broadcast elements do. Timers fire only where they are.
                if key_of_op(op).is_none_or(|k| owner(k, 2) == w) {
                    apply(c, op);
                }
            }
        }
        old[1].watermark = old[1].watermark.max(old[0].watermark) + 1;
        let sections = [snapshot_context(&old[0]), snapshot_context(&old[1])];
        let sections: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
        // Each key's state and timers, read through the calls a function makes.
        let probe = |c: &mut ProcessContext<V>, k: i64| {
            let reads = [Op::ValueGet(k), Op::ListGet(k), Op::MapItems(k)];
            let mut seen: Vec<String> = reads.iter().map(|op| apply(c, op)).collect();
            seen.extend(c.timers.iter().filter(|t| t.2 == &key_of(&k)).map(|t| format!("{t:?}")));
            seen
        };
        let empty = probe(&mut context(4), 0);
        for peers in [1usize, 3] {
            let mut new: Vec<ProcessContext<V>> =
                (0..peers).map(|w| restore_context(&sections, w, peers, 2)).collect();
            for c in new.iter_mut() {
                c.processing_time = old[0].processing_time;
                prop_assert_eq!(c.watermark, old[0].watermark);
                prop_assert_eq!(apply(c, &Op::BroadcastItems), apply(&mut old[0], &Op::BroadcastItems));
            }
            let timers: usize = new.iter().map(|c| c.timers.len()).sum();
            prop_assert_eq!(timers, old[0].timers.len() + old[1].timers.len());
            for k in 0..KEYS {
                let want = probe(&mut old[owner(k, 2)], k);
                for (w, c) in new.iter_mut().enumerate() {
                    let here = if w == owner(k, peers as u64) { &want } else { &empty };
                    prop_assert_eq!(&probe(c, k), here, "key {} at {} instances", k, peers);
                }
            }
        }
    }
}

#[test]
fn a_corrupt_process_section_is_an_internal_error_and_never_a_panic() {
    let mut c = context(4);
    for op in
        [Op::ValueUpdate(1, 5), Op::ListAdd(2, 3), Op::MapPut(3, 1, 1), Op::Timer(4, true, 9), Op::BroadcastPut(1, 2)]
    {
        apply(&mut c, &op);
    }
    let bytes = snapshot_context(&c);
    for cut in 0..bytes.len() {
        let mut fresh = context(4);
        let mut r = StateReader::<V>::new(&bytes[..cut]);
        let read = fresh.restore(&mut r, &|_| true, true).and_then(|_| Ok(r.finish()?));
        let err = read.expect_err("a cut section");
        assert!(err.internal, "cut at {cut}: {err:?}");
    }
    // Flipped bytes: an error or some state, never a panic.
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x5a;
        let mut fresh = context(4);
        let _ = fresh.restore(&mut StateReader::<V>::new(&bad), &|_| true, true);
    }
}
