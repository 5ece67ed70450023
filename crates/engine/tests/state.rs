//! Keyed state (`state::HeapBackend`): every kind's operations on hand-computed
//! cases, the errors, what a key costs, and a property test against a plain model of
//! state with time-to-live (maps per key and namespace, no slots, no columns),
//! including window namespaces, snapshot and restore and the keys of each state.
//! Broadcast state (`state::HeapOperatorState`, operator state): against a plain map,
//! through snapshot and restore; the process context's rules for it and for visiting
//! every key (`apply_to_keyed_state`).

use std::collections::BTreeMap;
use std::sync::Arc;

use ferroflow_engine::functions::WindowAggregate;
use ferroflow_engine::key::{key_of, Key, KeyValue, Scalar};
use ferroflow_engine::process::ProcessContext;
use ferroflow_engine::state::*;
use ferroflow_engine::windows::TimeWindow;
use ferroflow_engine::windows::Window;
use ferroflow_engine::UdfResult;
use proptest::prelude::*;

/// AggregatingState's function: the accumulator is a sum, the result ten times it.
struct SumTimesTen;
impl WindowAggregate<i64> for SumTimesTen {
    fn create_accumulator(&mut self) -> UdfResult<i64> {
        Ok(0)
    }
    fn add(&mut self, value: &i64, acc: i64) -> UdfResult<i64> {
        Ok(acc + value)
    }
    fn get_result(&mut self, acc: &i64) -> UdfResult<i64> {
        Ok(acc * 10)
    }
    fn merge(&mut self, a: i64, b: i64) -> UdfResult<i64> {
        Ok(a + b)
    }
}

fn sum(a: &i64, b: &i64) -> UdfResult<i64> {
    Ok(a + b)
}

fn uk(k: i64) -> Key {
    key_of(&k)
}

#[test]
fn every_kind_keeps_each_keys_state_apart() {
    let mut s = HeapBackend::<i64>::new();
    let v = s.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
    let l = s.register(&StateDescriptor::new("l", StateKind::List)).unwrap();
    let m = s.register(&StateDescriptor::new("m", StateKind::Map)).unwrap();
    let r = s.register(&StateDescriptor::new("r", StateKind::Reducing)).unwrap();
    let a = s.register(&StateDescriptor::new("a", StateKind::Aggregating)).unwrap();
    assert_eq!(s.register(&StateDescriptor::new("v", StateKind::Value)).unwrap(), v, "get_state twice: one state");

    s.set_current_key(key_of("x"));
    assert_eq!(s.value(v, 0).unwrap(), None);
    s.update(v, 1, 0).unwrap();
    s.list_add(l, 1, 0).unwrap();
    s.list_add_all(l, vec![2, 3], 0).unwrap();
    s.map_put(m, uk(1), 1, 10, 0).unwrap();
    s.map_put_all(m, vec![(uk(2), 2, 20), (uk(1), 1, 11)], 0).unwrap();
    s.reducing_add(r, 5, &mut sum, 0).unwrap();
    s.reducing_add(r, 6, &mut sum, 0).unwrap();
    s.aggregating_add(a, 5, &mut SumTimesTen, 0).unwrap();
    s.aggregating_add(a, 6, &mut SumTimesTen, 0).unwrap();

    s.set_current_key(key_of("y"));
    assert_eq!(s.value(v, 0).unwrap(), None);
    assert_eq!(s.list_get(l, 0).unwrap(), Vec::<i64>::new());
    assert!(s.map_is_empty(m, 0).unwrap());
    assert_eq!(s.reducing_get(r, 0).unwrap(), None);
    assert_eq!(s.aggregating_get(a, &mut SumTimesTen, 0).unwrap(), None);
    s.update(v, 2, 0).unwrap();
    assert_eq!(s.key_count(), 2);

    s.set_current_key(key_of("x"));
    assert_eq!(s.value(v, 0).unwrap(), Some(1));
    assert_eq!(s.list_get(l, 0).unwrap(), vec![1, 2, 3]);
    s.list_update(l, vec![9], 0).unwrap();
    assert_eq!(s.list_get(l, 0).unwrap(), vec![9]);
    assert_eq!(s.map_get(m, &uk(1), 0).unwrap(), Some(11));
    assert!(s.map_contains(m, &uk(2), 0).unwrap() && !s.map_contains(m, &uk(3), 0).unwrap());
    let mut keys = s.map_keys(m, 0).unwrap();
    keys.sort();
    assert_eq!(keys, vec![1, 2]);
    let mut values = s.map_values(m, 0).unwrap();
    values.sort();
    assert_eq!(values, vec![11, 20]);
    s.map_remove(m, &uk(1), 0).unwrap();
    assert_eq!(s.map_items(m, 0).unwrap(), vec![(2, 20)]);
    assert_eq!(s.reducing_get(r, 0).unwrap(), Some(11));
    assert_eq!(s.aggregating_get(a, &mut SumTimesTen, 0).unwrap(), Some(110));

    // Clearing every state of a key drops the key (its slot goes to another key).
    for id in [v, l, m, r, a] {
        s.clear(id, 0).unwrap();
    }
    assert_eq!(s.key_count(), 1);
    assert_eq!(s.value(v, 0).unwrap(), None);
    s.set_current_key(key_of("y"));
    assert_eq!(s.value(v, 0).unwrap(), Some(2), "the key that moved into the freed slot kept its state");
    s.list_update(l, vec![], 0).unwrap();
    s.clear(v, 0).unwrap();
    assert_eq!(s.key_count(), 0);
}

/// The operator holds its backend as a trait object (heap now, on disk later).
#[test]
fn the_backend_trait_is_object_safe() {
    let mut s: Box<dyn KeyedStateBackend<i64>> = Box::new(HeapBackend::new());
    let v = s.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
    s.set_current_key(key_of("k"));
    s.update(v, 3, 0).unwrap();
    assert_eq!((s.value(v, 0).unwrap(), s.key_count(), s.current_key()), (Some(3), 1, Some(&key_of("k"))));
    assert_eq!(s.descriptors()[v.0].name, "v");
}

/// The keys of one state: those holding a value of it, whatever other states hold.
#[test]
fn each_state_lists_the_keys_that_hold_it() {
    let mut s = HeapBackend::<i64>::new();
    let v = s.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
    let l = s.register(&StateDescriptor::new("l", StateKind::List)).unwrap();
    let keys = |s: &HeapBackend<i64>, id| {
        let mut out = Vec::new();
        s.for_each_key(id, &mut |k| out.push(k.clone())).unwrap();
        out.sort();
        out
    };
    for k in 0..4i64 {
        s.set_current_key(uk(k));
        s.update(v, k, 0).unwrap();
        if k % 2 == 0 {
            s.list_add(l, k, 0).unwrap();
        }
    }
    assert_eq!(keys(&s, v), sorted(vec![uk(0), uk(1), uk(2), uk(3)]));
    assert_eq!(keys(&s, l), sorted(vec![uk(0), uk(2)]));
    s.set_current_key(uk(2));
    s.clear(v, 0).unwrap();
    s.set_current_key(uk(1));
    s.clear(v, 0).unwrap();
    assert_eq!(keys(&s, v), sorted(vec![uk(0), uk(3)]));
    assert_eq!(keys(&s, l), sorted(vec![uk(0), uk(2)]), "key 2 keeps its list");
    assert_eq!(s.key_count(), 3, "key 1 held nothing else: it left the table");
    assert!(s.for_each_key(StateId(9), &mut |_| {}).unwrap_err().internal);
}

/// Broadcast state: a map per name, in the user keys' encoding order, registered once.
#[test]
fn broadcast_state_is_a_map_per_name() {
    let mut b = HeapOperatorState::<i64>::new();
    let x = b.register_broadcast("x").unwrap();
    let y = b.register_broadcast("y").unwrap();
    assert_eq!(b.register_broadcast("x").unwrap(), x);
    assert_eq!(b.broadcast_names(), vec!["x", "y"]);
    b.put(x, uk(1), 1, 10).unwrap();
    b.put_all(x, vec![(uk(2), 2, 20), (uk(1), 1, 11)]).unwrap();
    assert_eq!((b.get(x, &uk(1)).unwrap(), b.get(y, &uk(1)).unwrap()), (Some(11), None));
    assert!(b.contains(x, &uk(2)).unwrap() && !b.contains(x, &uk(3)).unwrap());
    assert!(b.is_empty(y).unwrap() && !b.is_empty(x).unwrap());
    let mut items = b.items(x).unwrap();
    items.sort();
    assert_eq!(items, vec![(1, 11), (2, 20)]);
    b.remove(x, &uk(1)).unwrap();
    assert_eq!(b.items(x).unwrap(), vec![(2, 20)]);
    b.clear(x).unwrap();
    assert!(b.is_empty(x).unwrap());
    assert!(b.get(BroadcastStateId(5), &uk(1)).unwrap_err().internal);
}

/// What the checkpoint issue relies on: a snapshot names every state, even an empty
/// one, and restoring it into a fresh instance (at any parallelism, each new
/// instance gets one copy) gives the same state back.
#[test]
fn a_broadcast_snapshot_restores_into_a_fresh_instance() {
    let mut b: Box<dyn OperatorStateBackend<i64>> = Box::new(HeapOperatorState::new());
    let x = b.register_broadcast("x").unwrap();
    b.register_broadcast("empty").unwrap();
    b.put(x, uk(3), 3, 30).unwrap();
    b.put(x, uk(4), 4, 40).unwrap();
    let mut snap = Vec::new();
    b.snapshot(&mut |name, entries| snap.push((name.to_string(), entries)));
    assert_eq!(snap.iter().map(|(n, e)| (n.as_str(), e.len())).collect::<Vec<_>>(), vec![("x", 2), ("empty", 0)]);
    for _copy in 0..2 {
        let mut fresh = HeapOperatorState::<i64>::new();
        let (fx, fe) = (fresh.register_broadcast("x").unwrap(), fresh.register_broadcast("empty").unwrap());
        fresh.put(fe, uk(9), 9, 9).unwrap();
        for (name, entries) in snap.clone() {
            fresh.restore(&name, entries).unwrap();
        }
        assert_eq!(fresh.items(fx).unwrap(), b.items(x).unwrap());
        assert!(fresh.is_empty(fe).unwrap(), "a restore replaces what the state held");
    }
    let e = HeapOperatorState::<i64>::new().restore("x", vec![]).unwrap_err();
    assert!(e.message.contains("'x'") && e.message.contains("does not declare"), "{}", e.message);
}

/// The process context's rules: broadcast state is read anywhere and written only in
/// `process_broadcast_element`; there, `keys_of_state` lists the keys holding a keyed
/// state, each of which can be made current and changed.
#[test]
fn the_process_context_writes_broadcast_state_and_visits_keys_only_for_broadcast_elements() {
    let mut c = ProcessContext::<i64>::new(true);
    let count = c.state.register(&StateDescriptor::new("count", StateKind::Value)).unwrap();
    let rules = c.broadcast.register_broadcast("rules").unwrap();
    for k in [1i64, 2] {
        c.set_key(uk(k), k);
        let (state, now) = c.state_for_access().unwrap();
        state.update(count, 10 * k, now).unwrap();
    }
    // A keyed record: reads only; no visiting keys.
    let e = c.broadcast_for_write(rules).err().unwrap();
    assert!(e.message.contains("'rules'") && e.message.contains("read-only"), "{}", e.message);
    assert!(c.broadcast_for_read().unwrap().is_empty(rules).unwrap());
    let e = c.keys_of_state("count").unwrap_err();
    assert!(e.message.contains("only available in process_broadcast_element"), "{}", e.message);

    // A broadcast element: no key, writes, visits every key of "count".
    c.clear_key();
    c.set_in_broadcast_element(true);
    c.broadcast_for_write(rules).unwrap().put(rules, uk(7), 7, 70).unwrap();
    let e = c.keys_of_state("nope").unwrap_err();
    assert!(e.message.contains("'nope'") && e.message.contains("\"count\""), "{}", e.message);
    let keys = c.keys_of_state("count").unwrap();
    assert_eq!(sorted(keys.clone()), sorted(vec![uk(1), uk(2)]));
    for k in keys {
        let Some(KeyValue::Scalar(Scalar::Int(v))) = k.value() else { panic!("an int key reads back") };
        c.set_key(k, v);
        let (state, now) = c.state_for_access().unwrap();
        if v == 1 {
            state.clear(count, now).unwrap();
        } else {
            state.update(count, 99, now).unwrap();
        }
    }
    c.clear_key();
    assert_eq!(c.keys_of_state("count").unwrap(), vec![uk(2)], "cleared through the visit");
    c.set_in_broadcast_element(false);
    c.set_key(uk(2), 2);
    let (state, now) = c.state_for_access().unwrap();
    assert_eq!(state.value(count, now).unwrap(), Some(99), "updated through the visit");
    assert_eq!(c.broadcast_for_read().unwrap().get(rules, &uk(7)).unwrap(), Some(70));
    c.close();
    assert!(c.broadcast_for_read().is_err() && c.keys_of_state("count").is_err());
}

#[test]
fn a_name_reused_with_another_kind_is_an_error_naming_both() {
    let mut s = HeapBackend::<i64>::new();
    s.register(&StateDescriptor::new("count", StateKind::Value)).unwrap();
    let e = s.register(&StateDescriptor::new("count", StateKind::List)).unwrap_err();
    assert!(
        e.message.contains("'count'") && e.message.contains("ValueState") && e.message.contains("ListState"),
        "{}",
        e.message
    );
    assert!(!e.internal);
    let e = s.register(&StateDescriptor::new("t", StateKind::Value).with_ttl(TtlConfig::new(0))).unwrap_err();
    assert!(e.message.contains("'t'") && e.message.contains("at least 1 ms"), "{}", e.message);
}

#[test]
fn state_without_a_current_key_or_of_another_kind_is_an_error() {
    let mut s = HeapBackend::<i64>::new();
    let v = s.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
    let e = s.value(v, 0).unwrap_err();
    assert!(e.message.contains("no current key"), "{}", e.message);
    s.set_current_key(key_of(&1i64));
    let e = s.list_get(v, 0).unwrap_err();
    assert!(e.internal && e.message.contains("'v'"), "{}", e.message);
}

#[test]
fn ttl_expires_restarts_and_cleans_as_configured() {
    let mut s = HeapBackend::<i64>::new();
    let write = s.register(&StateDescriptor::new("w", StateKind::Value).with_ttl(TtlConfig::new(10))).unwrap();
    let read = s
        .register(
            &StateDescriptor::new("r", StateKind::Value)
                .with_ttl(TtlConfig { update: TtlUpdate::OnReadAndWrite, ..TtlConfig::new(10) }),
        )
        .unwrap();
    let stale = s
        .register(&StateDescriptor::new("s", StateKind::Value).with_ttl(TtlConfig {
            visibility: TtlVisibility::ReturnExpiredIfNotCleanedUp,
            on_read: false,
            ..TtlConfig::new(10)
        }))
        .unwrap();
    let list = s.register(&StateDescriptor::new("l", StateKind::List).with_ttl(TtlConfig::new(10))).unwrap();
    s.set_current_key(key_of("k"));
    for id in [write, read, stale] {
        s.update(id, 1, 0).unwrap();
    }
    s.list_add(list, 1, 0).unwrap();
    s.list_add(list, 2, 5).unwrap();
    assert_eq!(s.value(write, 9).unwrap(), Some(1));
    assert_eq!(s.value(read, 9).unwrap(), Some(1), "restarts at 9");
    assert_eq!(s.value(write, 10).unwrap(), None, "expires at stamp + ttl");
    assert_eq!(s.value(read, 18).unwrap(), Some(1));
    assert_eq!(s.value(stale, 30).unwrap(), Some(1), "expired but not cleaned up: returned");
    assert_eq!(s.value(stale, 31).unwrap(), Some(1));
    assert_eq!(s.list_get(list, 12).unwrap(), vec![2], "per element");
    assert_eq!(s.list_get(list, 15).unwrap(), Vec::<i64>::new());
}

#[test]
fn incremental_cleanup_removes_expired_keys_without_reading_them() {
    let mut s = HeapBackend::<i64>::new();
    let ttl = TtlConfig { incremental: Some(IncrementalCleanup { size: 4, every_record: true }), ..TtlConfig::new(10) };
    let v = s.register(&StateDescriptor::new("v", StateKind::Value).with_ttl(ttl)).unwrap();
    for k in 0..100i64 {
        s.set_current_key(key_of(&k));
        s.update(v, k, 0).unwrap();
    }
    assert_eq!(s.key_count(), 100);
    for _ in 0..30 {
        s.on_record(1000);
    }
    assert_eq!(s.key_count(), 0, "30 records x 4 entries reach all 100 keys");
}

#[test]
fn a_window_namespace_is_a_scope_of_its_own_for_every_state() {
    let mut s = HeapBackend::<i64>::new();
    let v = s.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
    let l = s.register(&StateDescriptor::new("l", StateKind::List)).unwrap();
    let (w1, w2) = (
        Namespace::Window(Window::Time(TimeWindow { start: 0, end: 10 })),
        Namespace::Window(Window::Time(TimeWindow { start: 10, end: 20 })),
    );
    assert_eq!(s.current_namespace(), Namespace::Key, "the key's own namespace by default");
    s.set_current_key(key_of("a"));
    s.update(v, 1, 0).unwrap();
    s.set_current_namespace(w1);
    assert_eq!(s.value(v, 0).unwrap(), None, "the same state is empty in a window");
    s.update(v, 10, 0).unwrap();
    s.list_add(l, 5, 0).unwrap();
    s.set_current_namespace(w2);
    assert_eq!((s.value(v, 0).unwrap(), s.list_get(l, 0).unwrap()), (None, vec![]), "windows are apart");
    s.update(v, 20, 0).unwrap();
    s.set_current_key(key_of("b"));
    assert_eq!(s.value(v, 0).unwrap(), None, "keys are apart in a window");
    s.update(v, 30, 0).unwrap();
    s.set_current_namespace(Namespace::Key);
    assert_eq!(s.value(v, 0).unwrap(), None);
    s.set_current_key(key_of("a"));
    assert_eq!(s.value(v, 0).unwrap(), Some(1), "the key's own value is untouched");
    assert_eq!((s.key_count(), s.namespace_count()), (1, 3));

    let mut entries = Vec::new();
    s.snapshot(0, &mut |d, k, ns, v| entries.push((d.name.clone(), k.clone(), ns, v)));
    assert_eq!(entries.len(), 5, "{entries:?}");
    assert!(entries.contains(&("v".into(), key_of("b"), w2, StateValue::Single { value: 30, stamp: i64::MIN })));

    s.clear_namespace(&key_of("a"), w1);
    assert_eq!((s.key_count(), s.namespace_count()), (1, 2), "both states of (a, w1) went");
    s.set_current_namespace(w1);
    assert_eq!((s.value(v, 0).unwrap(), s.list_get(l, 0).unwrap()), (None, vec![]));
    s.set_current_namespace(w2);
    assert_eq!(s.value(v, 0).unwrap(), Some(20));
    // Clearing the current entry's namespace: later accesses start it afresh.
    s.clear_namespace(&key_of("a"), w2);
    assert_eq!(s.value(v, 0).unwrap(), None);
    s.update(v, 21, 0).unwrap();
    assert_eq!(s.value(v, 0).unwrap(), Some(21));
    s.clear_namespace(&key_of("nobody"), w2);
    assert_eq!((s.key_count(), s.namespace_count()), (1, 2));

    let mut back = HeapBackend::<i64>::new();
    back.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
    back.register(&StateDescriptor::new("l", StateKind::List)).unwrap();
    for (name, key, ns, value) in entries {
        back.restore(&name, key, ns, value).unwrap();
    }
    back.set_current_key(key_of("a"));
    back.set_current_namespace(w1);
    assert_eq!((back.value(v, 0).unwrap(), back.list_get(l, 0).unwrap()), (Some(10), vec![5]));
    back.set_current_namespace(Namespace::Key);
    assert_eq!(back.value(v, 0).unwrap(), Some(1));
}

#[test]
fn a_full_snapshot_leaves_expired_entries_out_and_restores_the_rest() {
    let mut s = HeapBackend::<i64>::new();
    let ttl = TtlConfig { full_snapshot: true, ..TtlConfig::new(10) };
    let descriptors = [
        StateDescriptor::new("v", StateKind::Value).with_ttl(ttl),
        StateDescriptor::new("m", StateKind::Map).with_ttl(ttl),
        StateDescriptor::new("plain", StateKind::List),
    ];
    let ids: Vec<StateId> = descriptors.iter().map(|d| s.register(d).unwrap()).collect();
    s.set_current_key(key_of("old"));
    s.update(ids[0], 1, 0).unwrap();
    s.map_put(ids[1], uk(1), 1, 1, 0).unwrap();
    s.map_put(ids[1], uk(2), 2, 2, 8).unwrap();
    s.list_add(ids[2], 7, 0).unwrap();
    s.set_current_key(key_of("new"));
    s.update(ids[0], 2, 8).unwrap();
    let mut entries = Vec::new();
    s.snapshot(12, &mut |d, k, _, v| entries.push((d.name.clone(), k.clone(), v)));
    assert_eq!(entries.len(), 3, "old's value and first map entry expired: {entries:?}");

    let mut back = HeapBackend::<i64>::new();
    for d in &descriptors {
        back.register(d).unwrap();
    }
    for (name, key, value) in entries {
        back.restore(&name, key, Namespace::Key, value).unwrap();
    }
    back.set_current_key(key_of("old"));
    assert_eq!(back.value(ids[0], 12).unwrap(), None);
    assert_eq!(back.map_items(ids[1], 12).unwrap(), vec![(2, 2)]);
    assert_eq!(back.list_get(ids[2], 100).unwrap(), vec![7]);
    back.set_current_key(key_of("new"));
    assert_eq!(back.value(ids[0], 17).unwrap(), Some(2), "the stamp came back with the value");
    assert_eq!(back.value(ids[0], 18).unwrap(), None);
    let e = back.restore("nope", key_of("k"), Namespace::Key, StateValue::Single { value: 1, stamp: 0 }).unwrap_err();
    assert!(e.message.contains("'nope'"), "{}", e.message);
}

/// The issue's budget: 5M keys of a ValueState holding an int within 1.5x a Python
/// dict of the same. A dict {int: int} of 5M keys costs ~33.5 bytes a key (2^23 4-byte
/// indices, 5.6M 24-byte entries) plus its key and value objects (32 bytes each); the
/// backend costs what this test bounds plus the value object (its key is only bytes).
#[test]
fn a_value_state_key_costs_its_key_a_pointer_and_its_index() {
    let mut s = HeapBackend::<Arc<i64>>::new();
    let v = s.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
    let n = 300_000i64;
    for k in 0..n {
        s.set_current_key(key_of(&k));
        s.update(v, Arc::new(k), 0).unwrap();
    }
    let per_key = s.bytes_used() as f64 / n as f64;
    // 32 (the key) + 8 (the value pointer) + at most 21.4 (index at 3/8 to 3/4 full).
    assert!(per_key <= 61.5, "{per_key:.1} bytes per key");
    println!("value state: {per_key:.1} bytes per key (table and column), + the value object");
}

// ---------------------------------------------------------------- model

#[derive(Clone, Debug)]
enum Op {
    Key(u8),
    /// The current namespace, see [`namespace`].
    Ns(u8),
    /// Drop every state of (key, namespace).
    ClearNs(u8, u8),
    Advance(i64),
    VGet,
    VSet(i64),
    VClear,
    TGet,
    TSet(i64),
    TClear,
    LGet,
    LAdd(i64),
    LAddAll(Vec<i64>),
    LUpdate(Vec<i64>),
    LClear,
    MGet(u8),
    MPut(u8, i64),
    MPutAll(Vec<(u8, i64)>),
    MRemove(u8),
    MContains(u8),
    MItems,
    MKeys,
    MValues,
    MIsEmpty,
    MClear,
    RGet,
    RAdd(i64),
    RClear,
    AGet,
    AAdd(i64),
    Record,
    Checkpoint,
    Keys,
}

fn op() -> impl Strategy<Value = Op> {
    let x = -50i64..50;
    prop_oneof![
        3 => (0u8..6).prop_map(Op::Key),
        2 => (0u8..3).prop_map(Op::Ns),
        1 => (0u8..6, 0u8..3).prop_map(|(k, n)| Op::ClearNs(k, n)),
        3 => (0i64..7).prop_map(Op::Advance),
        1 => Just(Op::VGet),
        1 => x.clone().prop_map(Op::VSet),
        1 => Just(Op::VClear),
        2 => Just(Op::TGet),
        2 => x.clone().prop_map(Op::TSet),
        1 => Just(Op::TClear),
        2 => Just(Op::LGet),
        2 => x.clone().prop_map(Op::LAdd),
        1 => proptest::collection::vec(x.clone(), 0..3).prop_map(Op::LAddAll),
        1 => proptest::collection::vec(x.clone(), 0..3).prop_map(Op::LUpdate),
        1 => Just(Op::LClear),
        1 => (0u8..4).prop_map(Op::MGet),
        2 => (0u8..4, x.clone()).prop_map(|(k, v)| Op::MPut(k, v)),
        1 => proptest::collection::vec((0u8..4, x.clone()), 0..3).prop_map(Op::MPutAll),
        1 => (0u8..4).prop_map(Op::MRemove),
        1 => (0u8..4).prop_map(Op::MContains),
        1 => Just(Op::MItems),
        1 => Just(Op::MKeys),
        1 => Just(Op::MValues),
        1 => Just(Op::MIsEmpty),
        1 => Just(Op::MClear),
        1 => Just(Op::RGet),
        1 => x.clone().prop_map(Op::RAdd),
        1 => Just(Op::RClear),
        1 => Just(Op::AGet),
        1 => x.prop_map(Op::AAdd),
        1 => Just(Op::Record),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Keys),
    ]
}

/// A TTL configuration whose observations the model can predict: incremental cleanup
/// only where reads never return expired entries (then it changes what is stored, not
/// what is seen).
fn ttl() -> impl Strategy<Value = TtlConfig> {
    (
        1i64..12,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of((0usize..4, any::<bool>())),
        any::<bool>(),
    )
        .prop_map(|(ttl_ms, on_read_write, return_expired, on_read, incremental, full_snapshot)| {
            let visibility = if return_expired {
                TtlVisibility::ReturnExpiredIfNotCleanedUp
            } else {
                TtlVisibility::NeverReturnExpired
            };
            TtlConfig {
                ttl_ms,
                update: if on_read_write { TtlUpdate::OnReadAndWrite } else { TtlUpdate::OnCreateAndWrite },
                visibility,
                on_read,
                incremental: incremental
                    .filter(|_| !return_expired)
                    .map(|(size, every_record)| IncrementalCleanup { size, every_record }),
                full_snapshot,
            }
        })
}

/// One key's state in the model: values with their stamps.
#[derive(Clone, Debug, Default)]
struct KeyModel {
    v: Option<i64>,
    t: Option<(i64, i64)>,
    l: Vec<(i64, i64)>,
    m: BTreeMap<u8, (i64, i64)>,
    r: Option<(i64, i64)>,
    a: Option<i64>,
}

impl KeyModel {
    fn is_empty(&self) -> bool {
        self.v.is_none()
            && self.t.is_none()
            && self.l.is_empty()
            && self.m.is_empty()
            && self.r.is_none()
            && self.a.is_none()
    }
}

/// Flink's read of one entry: expired ones are removed on read (if configured) and
/// seen only if the visibility allows; live ones restart on read (if configured).
fn read_one(c: &TtlConfig, cell: &mut Option<(i64, i64)>, now: i64) -> Option<i64> {
    let (value, stamp) = (*cell)?;
    if stamp + c.ttl_ms <= now {
        if c.on_read {
            *cell = None;
        }
        (c.visibility == TtlVisibility::ReturnExpiredIfNotCleanedUp).then_some(value)
    } else {
        if c.update == TtlUpdate::OnReadAndWrite {
            *cell = Some((value, now));
        }
        Some(value)
    }
}

fn read_many<K: Clone>(c: &TtlConfig, cells: Vec<(K, (i64, i64))>, now: i64) -> (Vec<(K, i64)>, Vec<(K, (i64, i64))>) {
    let mut seen = Vec::new();
    let mut kept = Vec::new();
    for (k, cell) in cells {
        let mut cell = Some(cell);
        if let Some(v) = read_one(c, &mut cell, now) {
            seen.push((k.clone(), v));
        }
        if let Some(cell) = cell {
            kept.push((k, cell));
        }
    }
    (seen, kept)
}

fn live(c: &TtlConfig, stamp: i64, now: i64) -> bool {
    stamp + c.ttl_ms > now
}

fn model_list_get(c: &TtlConfig, km: &mut KeyModel, now: i64) -> Vec<i64> {
    let cells: Vec<(usize, (i64, i64))> = km.l.iter().copied().enumerate().collect();
    let (seen, kept) = read_many(c, cells, now);
    km.l = kept.into_iter().map(|(_, cell)| cell).collect();
    seen.into_iter().map(|(_, v)| v).collect()
}

fn model_map_items(c: &TtlConfig, km: &mut KeyModel, now: i64) -> Vec<(i64, i64)> {
    let cells: Vec<(u8, (i64, i64))> = km.m.iter().map(|(k, cell)| (*k, *cell)).collect();
    let (seen, kept) = read_many(c, cells, now);
    km.m = kept.into_iter().collect();
    let mut items: Vec<(i64, i64)> = seen.into_iter().map(|(k, v)| (i64::from(k), v)).collect();
    items.sort();
    items
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

struct Ids {
    v: StateId,
    t: StateId,
    l: StateId,
    m: StateId,
    r: StateId,
    a: StateId,
}

fn descriptors(c: TtlConfig) -> Vec<StateDescriptor> {
    vec![
        StateDescriptor::new("v", StateKind::Value),
        StateDescriptor::new("t", StateKind::Value).with_ttl(c),
        StateDescriptor::new("l", StateKind::List).with_ttl(c),
        StateDescriptor::new("m", StateKind::Map).with_ttl(c),
        StateDescriptor::new("r", StateKind::Reducing).with_ttl(c),
        StateDescriptor::new("a", StateKind::Aggregating),
    ]
}

fn open(c: TtlConfig) -> (HeapBackend<i64>, Ids) {
    let mut s = HeapBackend::new();
    let id: Vec<StateId> = descriptors(c).iter().map(|d| s.register(d).unwrap()).collect();
    (s, Ids { v: id[0], t: id[1], l: id[2], m: id[3], r: id[4], a: id[5] })
}

/// The model's namespaces: 0 the key's own, 1 a time window, 2 the global window.
fn namespace(n: u8) -> Namespace {
    match n {
        0 => Namespace::Key,
        1 => Namespace::Window(Window::Time(TimeWindow { start: 0, end: 10 })),
        _ => Namespace::Window(Window::Global),
    }
}

fn namespace_number(ns: Namespace) -> u8 {
    (0..3).find(|&n| namespace(n) == ns).expect("a namespace of the model")
}

/// The elements the backend would snapshot, (state, key, namespace, map key or 0,
/// value, stamp), counted (a list may hold one element twice).
type Flat = BTreeMap<(String, Vec<u8>, u8, i64, i64, i64), usize>;

fn within(a: &Flat, b: &Flat) -> bool {
    a.iter().all(|(k, n)| b.get(k).is_some_and(|m| n <= m))
}

fn flatten(s: &HeapBackend<i64>, now: i64) -> Flat {
    let mut out = BTreeMap::new();
    s.snapshot(now, &mut |d, k, ns, v| {
        let items = match v {
            StateValue::Single { value, stamp } => vec![(0, value, stamp)],
            StateValue::List(l) => l.into_iter().map(|(v, s)| (0, v, s)).collect(),
            StateValue::Map(m) => m.into_iter().map(|e| (e.user_key, e.value, e.stamp)).collect(),
        };
        assert!(!items.is_empty(), "a snapshot entry with nothing in it");
        for (u, v, st) in items {
            *out.entry((d.name.clone(), k.bytes().to_vec(), namespace_number(ns), u, v, st)).or_insert(0) += 1;
        }
    });
    out
}

/// The model's entries as [`flatten`] writes them, keeping those `keep` accepts.
fn model_flat(m: &BTreeMap<(u8, u8), KeyModel>, keep: &dyn Fn(&str, i64) -> bool) -> Flat {
    let mut out = BTreeMap::new();
    for (&(k, ns), km) in m {
        let key = key_of(&i64::from(k)).bytes().to_vec();
        let mut add = |name: &str, items: Vec<(i64, i64, i64)>| {
            for (u, v, st) in items.into_iter().filter(|&(_, _, s)| keep(name, s)) {
                *out.entry((name.to_string(), key.clone(), ns, u, v, st)).or_insert(0) += 1;
            }
        };
        add("v", km.v.map(|v| vec![(0, v, i64::MIN)]).unwrap_or_default());
        add("t", km.t.map(|(v, s)| vec![(0, v, s)]).unwrap_or_default());
        add("l", km.l.iter().map(|&(v, s)| (0, v, s)).collect());
        add("m", km.m.iter().map(|(&k, &(v, s))| (i64::from(k), v, s)).collect());
        add("r", km.r.map(|(v, s)| vec![(0, v, s)]).unwrap_or_default());
        add("a", km.a.map(|v| vec![(0, v, i64::MIN)]).unwrap_or_default());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every read of every kind sees what the model sees, through time-to-live expiry,
    /// cleanup of every kind, keys leaving and re-entering the table, namespaces
    /// (each (key, namespace) its own state, dropped at once by `clear_namespace`), and
    /// checkpoints (snapshot, then a fresh backend restored from it).
    #[test]
    fn state_agrees_with_a_model(c in ttl(), ops in proptest::collection::vec(op(), 0..160)) {
        let (mut s, ids) = open(c);
        let mut model: BTreeMap<(u8, u8), KeyModel> = BTreeMap::new();
        let mut now = 0i64;
        let mut key: Option<u8> = None;
        let mut ns = 0u8;
        for op in ops {
            if let Op::Key(k) = op {
                key = Some(k);
                s.set_current_key(key_of(&i64::from(k)));
                continue;
            }
            if let Op::Ns(n) = op {
                ns = n;
                s.set_current_namespace(namespace(n));
                prop_assert_eq!(s.current_namespace(), namespace(n));
                continue;
            }
            if let Op::ClearNs(k, n) = op {
                s.clear_namespace(&key_of(&i64::from(k)), namespace(n));
                model.remove(&(k, n));
                continue;
            }
            if let Op::Advance(d) = op {
                now += d;
                continue;
            }
            if let Op::Record = op {
                s.on_record(now);
                continue;
            }
            if let Op::Checkpoint = op {
                // Snapshot: every live entry, and nothing the model no longer stores.
                let snap = flatten(&s, now);
                let stored = model_flat(&model, &|_, _| true);
                let live_only = model_flat(&model, &|n, st| matches!(n, "v" | "a") || live(&c, st, now));
                if c.full_snapshot {
                    prop_assert_eq!(&snap, &live_only);
                } else {
                    prop_assert!(within(&snap, &stored), "{:?}\nnot within\n{:?}", snap, stored);
                }
                let mut entries = Vec::new();
                s.snapshot(now, &mut |d, k, n, v| entries.push((d.name.clone(), k.clone(), n, v)));
                let (mut back, _) = open(c);
                for (name, k, n, v) in entries {
                    back.restore(&name, k, n, v).unwrap();
                }
                back.set_current_namespace(namespace(ns));
                if let Some(k) = key {
                    back.set_current_key(key_of(&i64::from(k)));
                }
                s = back;
                if c.full_snapshot {
                    for km in model.values_mut() {
                        km.t = km.t.filter(|&(_, st)| live(&c, st, now));
                        km.r = km.r.filter(|&(_, st)| live(&c, st, now));
                        km.l.retain(|&(_, st)| live(&c, st, now));
                        km.m.retain(|_, &mut (_, st)| live(&c, st, now));
                    }
                }
                model.retain(|_, km| !km.is_empty());
                continue;
            }
            if let Op::Keys = op {
                // Each state's keys: all that hold it without time-to-live; with one, at
                // least those with a live entry, at most those still stored.
                type Held = fn(&KeyModel, &dyn Fn(i64) -> bool) -> bool;
                let states: [(StateId, Held); 6] = [
                    (ids.v, |km, _| km.v.is_some()),
                    (ids.t, |km, ok| km.t.is_some_and(|(_, st)| ok(st))),
                    (ids.l, |km, ok| km.l.iter().any(|&(_, st)| ok(st))),
                    (ids.m, |km, ok| km.m.values().any(|&(_, st)| ok(st))),
                    (ids.r, |km, ok| km.r.is_some_and(|(_, st)| ok(st))),
                    (ids.a, |km, _| km.a.is_some()),
                ];
                for (id, held) in states {
                    let mut got = Vec::new();
                    s.for_each_key(id, &mut |k| got.push(k.clone())).unwrap();
                    let got = sorted(got);
                    let with = |ok: &dyn Fn(i64) -> bool| -> Vec<Key> {
                        sorted(model.iter()
                            .filter(|((_, n), km)| namespace(*n) == Namespace::Key && held(km, ok))
                            .map(|((k, _), _)| key_of(&i64::from(*k)))
                            .collect())
                    };
                    let (least, most) = (with(&|st| live(&c, st, now)), with(&|_| true));
                    prop_assert!(least.iter().all(|k| got.contains(k)) && got.iter().all(|k| most.contains(k)),
                        "state {:?}: keys {:?}, live {:?}, stored {:?}", id, got, least, most);
                }
                continue;
            }
            let Some(k) = key else {
                prop_assert!(s.value(ids.v, now).is_err());
                continue;
            };
            let km = model.entry((k, ns)).or_default();
            match op {
                Op::VGet => prop_assert_eq!(s.value(ids.v, now).unwrap(), km.v),
                Op::VSet(x) => { s.update(ids.v, x, now).unwrap(); km.v = Some(x); }
                Op::VClear => { s.clear(ids.v, now).unwrap(); km.v = None; }
                Op::TGet => prop_assert_eq!(s.value(ids.t, now).unwrap(), read_one(&c, &mut km.t, now)),
                Op::TSet(x) => { s.update(ids.t, x, now).unwrap(); km.t = Some((x, now)); }
                Op::TClear => { s.clear(ids.t, now).unwrap(); km.t = None; }
                Op::LGet => prop_assert_eq!(s.list_get(ids.l, now).unwrap(), model_list_get(&c, km, now)),
                Op::LAdd(x) => { s.list_add(ids.l, x, now).unwrap(); km.l.push((x, now)); }
                Op::LAddAll(xs) => {
                    s.list_add_all(ids.l, xs.clone(), now).unwrap();
                    km.l.extend(xs.into_iter().map(|x| (x, now)));
                }
                Op::LUpdate(xs) => {
                    s.list_update(ids.l, xs.clone(), now).unwrap();
                    km.l = xs.into_iter().map(|x| (x, now)).collect();
                }
                Op::LClear => { s.clear(ids.l, now).unwrap(); km.l.clear(); }
                Op::MGet(u) => {
                    let mut cell = km.m.get(&u).copied();
                    let want = read_one(&c, &mut cell, now);
                    match cell { Some(cell) => { km.m.insert(u, cell); } None => { km.m.remove(&u); } }
                    prop_assert_eq!(s.map_get(ids.m, &uk(i64::from(u)), now).unwrap(), want);
                }
                Op::MContains(u) => {
                    let mut cell = km.m.get(&u).copied();
                    let want = read_one(&c, &mut cell, now).is_some();
                    match cell { Some(cell) => { km.m.insert(u, cell); } None => { km.m.remove(&u); } }
                    prop_assert_eq!(s.map_contains(ids.m, &uk(i64::from(u)), now).unwrap(), want);
                }
                Op::MPut(u, x) => {
                    s.map_put(ids.m, uk(i64::from(u)), i64::from(u), x, now).unwrap();
                    km.m.insert(u, (x, now));
                }
                Op::MPutAll(entries) => {
                    let batch = entries.iter().map(|&(u, x)| (uk(i64::from(u)), i64::from(u), x)).collect();
                    s.map_put_all(ids.m, batch, now).unwrap();
                    for (u, x) in entries {
                        km.m.insert(u, (x, now));
                    }
                }
                Op::MRemove(u) => { s.map_remove(ids.m, &uk(i64::from(u)), now).unwrap(); km.m.remove(&u); }
                Op::MItems => prop_assert_eq!(sorted(s.map_items(ids.m, now).unwrap()), model_map_items(&c, km, now)),
                Op::MKeys => {
                    let want: Vec<i64> = model_map_items(&c, km, now).into_iter().map(|(k, _)| k).collect();
                    prop_assert_eq!(sorted(s.map_keys(ids.m, now).unwrap()), want);
                }
                Op::MValues => {
                    let want = sorted(model_map_items(&c, km, now).into_iter().map(|(_, v)| v).collect());
                    prop_assert_eq!(sorted(s.map_values(ids.m, now).unwrap()), want);
                }
                Op::MIsEmpty => prop_assert_eq!(s.map_is_empty(ids.m, now).unwrap(), model_map_items(&c, km, now).is_empty()),
                Op::MClear => { s.clear(ids.m, now).unwrap(); km.m.clear(); }
                Op::RGet => prop_assert_eq!(s.reducing_get(ids.r, now).unwrap(), read_one(&c, &mut km.r, now)),
                Op::RAdd(x) => {
                    s.reducing_add(ids.r, x, &mut sum, now).unwrap();
                    let next = match read_one(&c, &mut km.r, now) { Some(acc) => acc + x, None => x };
                    km.r = Some((next, now));
                }
                Op::RClear => { s.clear(ids.r, now).unwrap(); km.r = None; }
                Op::AGet => prop_assert_eq!(s.aggregating_get(ids.a, &mut SumTimesTen, now).unwrap(), km.a.map(|a| a * 10)),
                Op::AAdd(x) => {
                    s.aggregating_add(ids.a, x, &mut SumTimesTen, now).unwrap();
                    km.a = Some(km.a.unwrap_or(0) + x);
                }
                Op::Key(_)
                | Op::Ns(_)
                | Op::ClearNs(..)
                | Op::Advance(_)
                | Op::Record
                | Op::Checkpoint
                | Op::Keys => unreachable!(),
            }
            model.retain(|_, km| !km.is_empty());
            // Entries in each table (the key's own namespace, the others): at least
            // those with something live, at most those the model still stores
            // (incremental cleanup may have dropped more).
            for (scoped, count) in [(false, s.key_count()), (true, s.namespace_count())] {
                let entries = model.iter().filter(|((_, n), _)| (*n != 0) == scoped);
                let stored = entries.clone().count();
                let with_live = entries.filter(|(_, km)| {
                    km.v.is_some() || km.a.is_some()
                        || km.t.is_some_and(|(_, st)| live(&c, st, now))
                        || km.r.is_some_and(|(_, st)| live(&c, st, now))
                        || km.l.iter().any(|&(_, st)| live(&c, st, now))
                        || km.m.values().any(|&(_, st)| live(&c, st, now))
                }).count();
                prop_assert!(with_live <= count && count <= stored,
                    "{} entries in the table (scoped: {}), {} with live state, {} stored", count, scoped, with_live, stored);
            }
        }
    }
}

/// An operation on broadcast state: on state 0 or 1, with user keys 0..4.
#[derive(Clone, Debug)]
enum BOp {
    Get(usize, u8),
    Put(usize, u8, i64),
    PutAll(usize, Vec<(u8, i64)>),
    Remove(usize, u8),
    Contains(usize, u8),
    Items(usize),
    IsEmpty(usize),
    Clear(usize),
    Checkpoint,
}

fn bop() -> impl Strategy<Value = BOp> {
    let (s, u, x) = (0usize..2, 0u8..4, -50i64..50);
    prop_oneof![
        1 => (s.clone(), u.clone()).prop_map(|(s, u)| BOp::Get(s, u)),
        3 => (s.clone(), u.clone(), x.clone()).prop_map(|(s, u, x)| BOp::Put(s, u, x)),
        1 => (s.clone(), proptest::collection::vec((u.clone(), x), 0..3)).prop_map(|(s, e)| BOp::PutAll(s, e)),
        1 => (s.clone(), u.clone()).prop_map(|(s, u)| BOp::Remove(s, u)),
        1 => (s.clone(), u).prop_map(|(s, u)| BOp::Contains(s, u)),
        1 => s.clone().prop_map(BOp::Items),
        1 => s.clone().prop_map(BOp::IsEmpty),
        1 => s.prop_map(BOp::Clear),
        1 => Just(BOp::Checkpoint),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Broadcast state agrees with a plain map per name, through checkpoints (snapshot,
    /// then a fresh instance restored from it).
    #[test]
    fn broadcast_state_agrees_with_a_map(ops in proptest::collection::vec(bop(), 0..120)) {
        let names = ["a", "b"];
        let open = || {
            let mut b = HeapOperatorState::<i64>::new();
            let ids: Vec<BroadcastStateId> = names.iter().map(|n| b.register_broadcast(n).unwrap()).collect();
            (b, ids)
        };
        let (mut b, ids) = open();
        let mut model: [BTreeMap<u8, i64>; 2] = Default::default();
        for op in ops {
            match op {
                BOp::Get(s, u) => prop_assert_eq!(b.get(ids[s], &uk(i64::from(u))).unwrap(), model[s].get(&u).copied()),
                BOp::Put(s, u, x) => { b.put(ids[s], uk(i64::from(u)), i64::from(u), x).unwrap(); model[s].insert(u, x); }
                BOp::PutAll(s, entries) => {
                    b.put_all(ids[s], entries.iter().map(|&(u, x)| (uk(i64::from(u)), i64::from(u), x)).collect()).unwrap();
                    model[s].extend(entries);
                }
                BOp::Remove(s, u) => { b.remove(ids[s], &uk(i64::from(u))).unwrap(); model[s].remove(&u); }
                BOp::Contains(s, u) => prop_assert_eq!(b.contains(ids[s], &uk(i64::from(u))).unwrap(), model[s].contains_key(&u)),
                BOp::Items(s) => {
                    let want: Vec<(i64, i64)> = model[s].iter().map(|(&u, &x)| (i64::from(u), x)).collect();
                    prop_assert_eq!(sorted(b.items(ids[s]).unwrap()), want);
                }
                BOp::IsEmpty(s) => prop_assert_eq!(b.is_empty(ids[s]).unwrap(), model[s].is_empty()),
                BOp::Clear(s) => { b.clear(ids[s]).unwrap(); model[s].clear(); }
                BOp::Checkpoint => {
                    let mut snap = Vec::new();
                    b.snapshot(&mut |name, entries| snap.push((name.to_string(), entries)));
                    prop_assert_eq!(snap.len(), 2);
                    let (mut back, _) = open();
                    for (name, entries) in snap {
                        back.restore(&name, entries).unwrap();
                    }
                    b = back;
                }
            }
        }
    }
}
