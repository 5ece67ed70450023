//! Feedback loops and plan validation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferroflow_engine::{ErrorKind, NodeKind, Plan, WindowFunction, WindowSpec};

/// Input n circulates as n, n-1, ..., 1 and leaves the loop as 0.
#[test]
fn countdown_loop() {
    let inputs = [3i64, 0, 5, 1, 2];
    for workers in [1, 2] {
        for parallel in [false, true] {
            let (done, seen) = (new_out(), new_out());
            let mut plan = Plan::new();
            let factory = if parallel {
                partitioned_source(kvs(&inputs.map(|n| (n, n))), part_by_key)
            } else {
                vec_source(kvs(&inputs.map(|n| (n, n))))
            };
            let src = plan.add("source", vec![], NodeKind::Source { factory, parallel });
            let values = plan.add("values", vec![src], NodeKind::Transform(map(|v: V| V::I(v.kv().1))));
            let head = plan.add("iterate", vec![values], NodeKind::Iterate { feedback: None, max_wait: None });
            // `head` is read by a sink (everything that circulates) and by the loop body.
            plan.add("sink seen", vec![head], NodeKind::Sink(sink(&seen)));
            let minus = plan.add("minus one", vec![head], NodeKind::Transform(map(|v: V| V::I(v.int() - 1))));
            let back = plan.add("positive", vec![minus], NodeKind::Transform(filter(|v: &V| v.int() > 0)));
            let exit = plan.add("zero", vec![minus], NodeKind::Transform(filter(|v: &V| v.int() <= 0)));
            plan.close_loop(head, back);
            plan.add("sink done", vec![exit], NodeKind::Sink(sink(&done)));
            let summary = run_ok(plan, cfg(workers));
            let what = format!("workers={workers} parallel={parallel}");
            // 0 enters, becomes -1 and leaves; every other n leaves as 0.
            assert_eq!(sorted(&done), ints(&[-1, 0, 0, 0, 0]), "{what}");
            let mut want_seen: Vec<i64> =
                inputs.iter().flat_map(|&n| if n == 0 { vec![0] } else { (1..=n).collect() }).collect();
            want_seen.sort();
            assert_eq!(sorted(&seen), ints(&want_seen), "{what}");
            assert_eq!(summary.counts[head], want_seen.len() as u64, "{what}");
            assert_eq!(summary.counts[minus], want_seen.len() as u64);
            assert_eq!(summary.counts[back], want_seen.len() as u64 - 5);
            assert_eq!(summary.counts[exit], 5);
            assert_eq!(summary.dropped, 0);
            assert!(summary.warnings.is_empty());
        }
    }
}

/// The feedback node is the end of a fused chain (minus one -> positive), read by
/// nothing but the loop.
#[test]
fn loop_whose_feedback_is_a_fused_chain() {
    for workers in [1, 2] {
        let seen = new_out();
        let mut plan = Plan::new();
        let src =
            plan.add("source", vec![], NodeKind::Source { factory: vec_source(ints(&[3, 1, 2, 40])), parallel: false });
        let head = plan.add("iterate", vec![src], NodeKind::Iterate { feedback: None, max_wait: None });
        plan.add("sink", vec![head], NodeKind::Sink(sink(&seen)));
        let minus = plan.add("minus one", vec![head], NodeKind::Transform(map(|v: V| V::I(v.int() - 1))));
        let half = plan.add(
            "halve evens",
            vec![minus],
            NodeKind::Transform(map(|v: V| {
                let x = v.int();
                V::I(if x % 2 == 0 && x > 2 { x / 2 } else { x })
            })),
        );
        let back = plan.add("positive", vec![half], NodeKind::Transform(filter(|v: &V| v.int() > 0)));
        plan.close_loop(head, back);
        let summary = run_ok(plan, cfg(workers));
        // 3 -> 2 -> 1; 1; 2 -> 1; 40 -> 39 -> 38/2=19 -> 18/2=9 -> 8/2=4 -> 3 -> 2 -> 1.
        let mut want = vec![3, 2, 1, 1, 2, 1, 40, 39, 19, 9, 4, 3, 2, 1];
        want.sort();
        assert_eq!(sorted(&seen), ints(&want), "workers={workers}");
        assert_eq!(summary.counts[head], 14);
        assert_eq!(summary.counts[minus], 14);
        assert_eq!(summary.counts[half], 14);
        assert_eq!(summary.counts[back], 10);
    }
}

/// A loop with a key_by + reduce inside: the state survives rounds.
#[test]
fn loop_through_a_keyed_reduce() {
    for workers in [1, 2] {
        let out = new_out();
        let mut plan = Plan::new();
        let src = plan.add(
            "source",
            vec![],
            NodeKind::Source { factory: partitioned_source(kvs(&[(1, 3), (2, 1)]), part_by_key), parallel: true },
        );
        let head = plan.add("iterate", vec![src], NodeKind::Iterate { feedback: None, max_wait: None });
        let keyed = plan.add("key_by", vec![head], NodeKind::KeyBy(key_by_k()));
        // Running count of visits per key, as (key, count).
        let ones = plan.add("one", vec![keyed], NodeKind::Transform(map(|v: V| V::KV(v.kv().0, 1))));
        let k2 = plan.add("key_by again", vec![ones], NodeKind::KeyBy(key_by_k()));
        let visits = plan.add("visits", vec![k2], NodeKind::Reduce(sum_kv()));
        // Key 1 goes round 3 times, key 2 once.
        let back = plan.add(
            "again",
            vec![visits],
            NodeKind::Transform(filter(|v: &V| {
                let (k, n) = v.kv();
                (k == 1 && n < 3) || (k == 2 && n < 1)
            })),
        );
        plan.close_loop(head, back);
        plan.add("sink", vec![visits], NodeKind::Sink(sink(&out)));
        run_ok(plan, cfg(workers));
        assert_eq!(sorted(&out), kvs(&[(1, 1), (1, 2), (1, 3), (2, 1)]), "workers={workers}");
    }
}

#[test]
fn max_wait_cuts_a_loop_that_never_converges() {
    for workers in [1, 2] {
        let out = new_out();
        let mut plan = Plan::new();
        let src = plan.add(
            "source",
            vec![],
            NodeKind::Source { factory: vec_source(ints(&[1, 2, 3, 4, 5])), parallel: false },
        );
        let head = plan.add(
            "iterate 'forever'",
            vec![src],
            NodeKind::Iterate { feedback: None, max_wait: Some(Duration::from_millis(150)) },
        );
        // A fused chain that sends every record back unchanged.
        let same = plan.add("same", vec![head], NodeKind::Transform(map(|v: V| v)));
        let back = plan.add("all", vec![same], NodeKind::Transform(filter(|_v: &V| true)));
        plan.close_loop(head, back);
        plan.add("sink", vec![head], NodeKind::Sink(sink(&out)));
        let t = Instant::now();
        let summary = run_ok(plan, cfg(workers));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(150), "workers={workers}: ended before max_wait: {took:?}");
        assert!(took < Duration::from_secs(3), "workers={workers}: took {took:?}");
        // Each of the 5 records is dropped once, when it comes back after max_wait.
        assert_eq!(summary.dropped, 5, "workers={workers}");
        assert!(!summary.warnings.is_empty(), "workers={workers}");
        assert!(summary.warnings.len() <= workers, "workers={workers}: {:?}", summary.warnings);
        for w in &summary.warnings {
            assert!(w.starts_with("iterate 'forever': "), "{w}");
            assert!(w.contains("150 ms"), "{w}");
        }
        // Every record circulated at least once before being dropped.
        let got = values(&out);
        for x in 1..=5 {
            assert!(got.iter().filter(|v| v.int() == x).count() >= 2, "workers={workers}: {x} did not circulate");
        }
        assert_eq!(summary.counts[head], got.len() as u64);
    }
}

#[test]
fn max_wait_does_not_drop_a_converging_loop() {
    for workers in [1, 2] {
        let done = new_out();
        let mut plan = Plan::new();
        let src =
            plan.add("source", vec![], NodeKind::Source { factory: vec_source(ints(&[50, 20])), parallel: false });
        let head = plan.add(
            "iterate",
            vec![src],
            NodeKind::Iterate { feedback: None, max_wait: Some(Duration::from_secs(5)) },
        );
        let minus = plan.add("minus", vec![head], NodeKind::Transform(map(|v: V| V::I(v.int() - 1))));
        let back = plan.add("positive", vec![minus], NodeKind::Transform(filter(|v: &V| v.int() > 0)));
        let exit = plan.add("zero", vec![minus], NodeKind::Transform(filter(|v: &V| v.int() == 0)));
        plan.close_loop(head, back);
        plan.add("sink", vec![exit], NodeKind::Sink(sink(&done)));
        let t = Instant::now();
        let summary = run_ok(plan, cfg(workers));
        assert!(t.elapsed() < Duration::from_secs(2), "a converged loop must not wait for max_wait");
        assert_eq!(values(&done), ints(&[0, 0]));
        assert_eq!(summary.dropped, 0);
        assert!(summary.warnings.is_empty());
    }
}

fn plan_error(plan: Plan<V>) -> String {
    let e = plan.validate().expect_err("invalid plan");
    assert_eq!(e.kind, ErrorKind::Plan);
    // Running it fails the same way, before any worker starts.
    let e2 = run_err(plan, cfg(2));
    assert_eq!(e2, e);
    e.message
}

fn source(plan: &mut Plan<V>) -> usize {
    plan.add("source", vec![], NodeKind::Source { factory: vec_source(ints(&[1])), parallel: false })
}

#[test]
fn validate_rejects_an_unclosed_loop() {
    let mut plan = Plan::new();
    let src = source(&mut plan);
    let head = plan.add("iterate 'open'", vec![src], NodeKind::Iterate { feedback: None, max_wait: None });
    let m = plan.add("map", vec![head], NodeKind::Transform(map(|v: V| v)));
    plan.add("sink", vec![m], NodeKind::Sink(sink(&new_out())));
    let msg = plan_error(plan);
    assert!(msg.contains("iterate 'open'") && msg.contains("never closed"), "{msg}");
}

#[test]
fn validate_rejects_feedback_from_outside_the_loop() {
    let mut plan = Plan::new();
    let src = source(&mut plan);
    let head = plan.add("iterate 'x'", vec![src], NodeKind::Iterate { feedback: None, max_wait: None });
    plan.close_loop(head, src);
    let msg = plan_error(plan);
    assert!(msg.contains("iterate 'x'") && msg.contains("inside the loop"), "{msg}");

    let mut plan = Plan::new();
    let src = source(&mut plan);
    let head = plan.add("iterate 'y'", vec![src], NodeKind::Iterate { feedback: None, max_wait: None });
    let s = plan.add("sink", vec![head], NodeKind::Sink(sink(&new_out())));
    plan.close_loop(head, s);
    let msg = plan_error(plan);
    assert!(msg.contains("iterate 'y'") && msg.contains("sink cannot be a feedback"), "{msg}");
}

#[test]
fn validate_rejects_reduce_and_window_without_key_by() {
    let mut plan = Plan::new();
    let src = source(&mut plan);
    let m = plan.add("map", vec![src], NodeKind::Transform(map(|v: V| v)));
    plan.add("reduce 'sum'", vec![m], NodeKind::Reduce(sum_kv()));
    let msg = plan_error(plan);
    assert!(msg.contains("reduce 'sum'") && msg.contains("key_by"), "{msg}");

    let mut plan = Plan::new();
    let src = source(&mut plan);
    plan.add(
        "window 'w'",
        vec![src],
        NodeKind::Window { spec: WindowSpec::Count { size: 2, slide: 2 }, function: WindowFunction::Reduce(sum_kv()) },
    );
    let msg = plan_error(plan);
    assert!(msg.contains("window 'w'") && msg.contains("key_by"), "{msg}");
}

#[test]
fn validate_rejects_zero_window_sizes() {
    let bad = [
        WindowSpec::Count { size: 0, slide: 1 },
        WindowSpec::Count { size: 3, slide: 0 },
        WindowSpec::ProcessingTime { size_ms: 0, slide_ms: 10 },
        WindowSpec::ProcessingTime { size_ms: 10, slide_ms: 0 },
        WindowSpec::ProcessingTime { size_ms: -5, slide_ms: 10 },
    ];
    for spec in bad {
        let mut plan = Plan::new();
        let src = source(&mut plan);
        let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
        plan.add(
            "window 'zero'",
            vec![keyed],
            NodeKind::Window { spec: spec.clone(), function: WindowFunction::Apply(describe_window()) },
        );
        let msg = plan_error(plan);
        assert!(msg.contains("window 'zero'"), "{spec:?}: {msg}");
        assert!(msg.contains("must be positive") || msg.contains("at least 1"), "{spec:?}: {msg}");
    }
}

#[test]
fn validate_rejects_bad_inputs() {
    // An input that is not an earlier node.
    let mut plan = Plan::new();
    let src = source(&mut plan);
    plan.add("map 'ahead'", vec![src + 5], NodeKind::Transform(map(|v: V| v)));
    let msg = plan_error(plan);
    assert!(msg.contains("map 'ahead'") && msg.contains("not an earlier node"), "{msg}");
    // Reading a sink.
    let mut plan = Plan::new();
    let src = source(&mut plan);
    let s = plan.add("sink", vec![src], NodeKind::Sink(sink(&new_out())));
    plan.add("map 'after sink'", vec![s], NodeKind::Transform(map(|v: V| v)));
    let msg = plan_error(plan);
    assert!(msg.contains("map 'after sink'") && msg.contains("no output stream"), "{msg}");
    // Wrong input counts.
    let mut plan = Plan::new();
    let src = source(&mut plan);
    let src2 = source(&mut plan);
    plan.add("map 'two'", vec![src, src2], NodeKind::Transform(map(|v: V| v)));
    let msg = plan_error(plan);
    assert!(msg.contains("map 'two'") && msg.contains("takes 1 input"), "{msg}");
}
