//! The timer service (`timers::TimerService`): hand-computed cases and a property test
//! against a plain model (a sorted set of (timestamp, key) per domain).

use std::collections::BTreeMap;

use ferroflow_engine::time::TimeDomain::{self, EventTime, ProcessingTime};
use ferroflow_engine::timers::{Timer, TimerService};
use proptest::prelude::*;

fn fired<K: Clone, V: Clone>(ts: &[Timer<K, V>]) -> Vec<(i64, K)> {
    ts.iter().map(|t| (t.timestamp, t.key.clone())).collect()
}

#[test]
fn timers_fire_once_in_timestamp_then_key_order() {
    let mut s = TimerService::<u32, &str>::new();
    assert!(s.register(EventTime, 20, 2, "a"));
    assert!(s.register(EventTime, 10, 3, "b"));
    assert!(s.register(EventTime, 10, 1, "c"));
    assert!(!s.register(EventTime, 10, 1, "again"), "registering twice keeps one");
    assert!(s.register(ProcessingTime, 10, 1, "p"));
    assert_eq!(s.len(), 4);
    assert_eq!((s.next(EventTime), s.next(ProcessingTime)), (Some(10), Some(10)));
    let mut out = Vec::new();
    s.take_due(EventTime, 9, &mut out);
    assert!(out.is_empty());
    s.take_due(EventTime, 10, &mut out);
    assert_eq!(fired(&out), vec![(10, 1), (10, 3)]);
    assert_eq!(out[0].value, "c", "the first registration's value");
    assert!(out.iter().all(|t| t.domain == EventTime));
    assert!(s.delete(EventTime, 20, &2) && !s.delete(EventTime, 20, &2));
    assert_eq!(s.next(EventTime), None);
    assert!(s.contains(ProcessingTime, 10, &1));
    let all: Vec<_> = s.iter().map(|(d, t, k, v)| (d, t, *k, *v)).collect();
    assert_eq!(all, vec![(ProcessingTime, 10, 1, "p")]);
    out.clear();
    s.take_all(ProcessingTime, &mut out);
    assert_eq!(fired(&out), vec![(10, 1)]);
    assert!(s.is_empty());
}

#[test]
fn a_timer_registered_while_firing_fires_in_the_same_advance() {
    let mut s = TimerService::<u32, ()>::new();
    s.register(EventTime, 5, 1, ());
    s.register(EventTime, 8, 1, ());
    let mut order = Vec::new();
    while let Some(t) = s.pop_due(EventTime, 10) {
        order.push(t.timestamp);
        if t.timestamp == 5 {
            s.register(EventTime, 6, 2, ());
            s.register(EventTime, 11, 2, ());
        }
    }
    assert_eq!(order, vec![5, 6, 8]);
    assert_eq!(s.next(EventTime), Some(11));
}

#[derive(Clone, Debug)]
enum Op {
    Register(bool, i64, u8, u16),
    Delete(bool, i64, u8),
    Advance(bool, i64),
    Checkpoint,
}

fn domain(event: bool) -> TimeDomain {
    if event {
        EventTime
    } else {
        ProcessingTime
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), -5i64..40, 0u8..5, any::<u16>()).prop_map(|(d, t, k, v)| Op::Register(d, t, k, v)),
        2 => (any::<bool>(), -5i64..40, 0u8..5).prop_map(|(d, t, k)| Op::Delete(d, t, k)),
        2 => (any::<bool>(), -5i64..45).prop_map(|(d, t)| Op::Advance(d, t)),
        1 => Just(Op::Checkpoint),
    ]
}

type Model = BTreeMap<(bool, i64, u8), u16>;

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Registration, deletion, firing, the earliest pending time, a checkpoint (iterate,
    /// then register into a fresh service) and the end of input agree with the model.
    #[test]
    fn timers_agree_with_a_model(ops in proptest::collection::vec(op(), 0..120)) {
        let mut s = TimerService::<u8, u16>::new();
        let mut m: Model = BTreeMap::new();
        for op in ops {
            match op {
                Op::Register(d, t, k, v) => {
                    let new = !m.contains_key(&(d, t, k));
                    m.entry((d, t, k)).or_insert(v);
                    prop_assert_eq!(s.register(domain(d), t, k, v), new);
                }
                Op::Delete(d, t, k) => prop_assert_eq!(s.delete(domain(d), t, &k), m.remove(&(d, t, k)).is_some()),
                Op::Advance(d, to) => {
                    let mut out = Vec::new();
                    s.take_due(domain(d), to, &mut out);
                    let due: Vec<_> = m.range((d, i64::MIN, 0)..=(d, to, u8::MAX)).map(|(&k, &v)| (k, v)).collect();
                    for (k, _) in &due {
                        m.remove(k);
                    }
                    let got: Vec<_> = out.iter().map(|t| ((t.domain == EventTime, t.timestamp, t.key), t.value)).collect();
                    prop_assert_eq!(got, due);
                }
                Op::Checkpoint => {
                    let mut back = TimerService::new();
                    for (d, t, k, v) in s.iter() {
                        back.register(d, t, *k, *v);
                    }
                    s = back;
                }
            }
            prop_assert_eq!(s.len(), m.len());
            for d in [true, false] {
                let want = m.range((d, i64::MIN, 0)..=(d, i64::MAX, u8::MAX)).next().map(|(&(_, t, _), _)| t);
                prop_assert_eq!(s.next(domain(d)), want);
            }
        }
        for d in [true, false] {
            let mut out = Vec::new();
            s.take_all(domain(d), &mut out);
            let want: Vec<_> = m.range((d, i64::MIN, 0)..=(d, i64::MAX, u8::MAX)).map(|(&(_, t, k), _)| (t, k)).collect();
            prop_assert_eq!(fired(&out), want);
        }
        prop_assert!(s.is_empty());
    }
}
