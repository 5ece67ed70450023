//! Connected streams: a function with one method per input, on plain inputs and on
//! two keyed inputs (a key's records of both meet on one worker).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use ferroflow_engine::functions::closures::CoFn;
use ferroflow_engine::functions::{CoContext, CoTransform, CoTransformFactory, Side, WorkerContext};
use ferroflow_engine::{ErrorKind, NodeKind, Plan, UdfError, UdfResult};

/// A co-function made per worker from `f(worker index, side, record)`.
fn co(f: fn(usize, Side, V) -> UdfResult<Vec<V>>) -> CoTransformFactory<V> {
    Arc::new(move |ctx: &WorkerContext| {
        let index = ctx.index;
        Ok(Box::new(CoFn(move |side, r, _ctx: &CoContext| f(index, side, r))) as Box<dyn CoTransform<V>>)
    })
}

#[test]
fn each_input_goes_to_its_own_method() {
    for workers in [1, 2, 3] {
        for parallel in [false, true] {
            let out = new_out();
            let mut plan = Plan::new();
            let source = |items: Vec<V>| {
                if parallel {
                    partitioned_source(items, |v| v.int().unsigned_abs() as usize)
                } else {
                    vec_source(items)
                }
            };
            let a = plan.add("a", vec![], NodeKind::Source { factory: source(ints(&[1, 2, 3])), parallel });
            let b = plan.add("b", vec![], NodeKind::Source { factory: source(ints(&[10, 20])), parallel });
            let f = co(|_w, side, r| {
                Ok(match side {
                    // map1: one output; flat_map2: two.
                    Side::First => vec![V::I(-r.int())],
                    Side::Second => vec![V::I(r.int() + 1), V::I(r.int() + 2)],
                })
            });
            let c = plan.add("co_map", vec![a, b], NodeKind::CoTransform(f));
            plan.add("sink", vec![c], NodeKind::Sink(sink(&out)));
            let summary = run_ok(plan, cfg(workers));
            assert_eq!(sorted(&out), ints(&[-3, -2, -1, 11, 12, 21, 22]), "workers={workers} parallel={parallel}");
            assert_eq!(summary.counts[c], 7);
        }
    }
}

#[test]
fn keyed_inputs_meet_on_the_worker_owning_their_key() {
    for workers in [1, 2, 3] {
        let out = new_out();
        let mut plan = Plan::new();
        let lefts: Vec<(i64, i64)> = (0..40).map(|i| (i % 7, i)).collect();
        let rights: Vec<(i64, i64)> = (0..30).map(|i| (i % 7, 100 + i)).collect();
        let a = plan.add("a", vec![], NodeKind::Source { factory: vec_source(kvs(&lefts)), parallel: false });
        let b = plan.add(
            "b",
            vec![],
            NodeKind::Source { factory: partitioned_source(kvs(&rights), part_by_key), parallel: true },
        );
        let ka = plan.add("key a", vec![a], NodeKind::KeyBy(key_by_k()));
        let kb = plan.add("key b", vec![b], NodeKind::KeyBy(key_by_k()));
        // Tags each record with the worker that saw it: (key, worker * 1000 + value).
        let f = co(|w, _side, r| {
            let (k, v) = r.kv();
            Ok(vec![V::KV(k, w as i64 * 1000 + v)])
        });
        let c = plan.add("co_map", vec![ka, kb], NodeKind::CoTransform(f));
        plan.add("sink", vec![c], NodeKind::Sink(sink(&out)));
        run_ok(plan, cfg(workers));
        let mut worker_of: BTreeMap<i64, i64> = BTreeMap::new();
        let mut seen = Vec::new();
        for r in values(&out) {
            let (k, tagged) = r.kv();
            let w = *worker_of.entry(k).or_insert(tagged / 1000);
            assert_eq!(w, tagged / 1000, "workers={workers}: key {k} seen on two workers");
            seen.push(tagged % 1000);
        }
        seen.sort();
        let mut want: Vec<i64> = lefts.iter().chain(&rights).map(|p| p.1).collect();
        want.sort();
        assert_eq!(seen, want, "workers={workers}");
        assert_eq!(worker_of.len(), 7);
    }
}

#[test]
fn a_keyed_connect_on_fewer_workers_routes_both_sides_there() {
    let out = new_out();
    let mut plan = Plan::new();
    let items: Vec<(i64, i64)> = (0..50).map(|i| (i, i)).collect();
    let a = plan.add(
        "a",
        vec![],
        NodeKind::Source { factory: partitioned_source(kvs(&items), part_by_key), parallel: true },
    );
    let b = plan.add("b", vec![], NodeKind::Source { factory: vec_source(kvs(&items)), parallel: false });
    let ka = plan.add("key a", vec![a], NodeKind::KeyBy(key_by_k()));
    let kb = plan.add("key b", vec![b], NodeKind::KeyBy(key_by_k()));
    let c = plan.add("co", vec![ka, kb], NodeKind::CoTransform(co(|w, _s, r| Ok(vec![V::KV(r.kv().0, w as i64)]))));
    plan.set_parallelism(c, 2);
    plan.add("sink", vec![c], NodeKind::Sink(sink(&out)));
    run_ok(plan, cfg(3));
    let got = values(&out);
    assert_eq!(got.len(), 100);
    let mut worker_of: BTreeMap<i64, i64> = BTreeMap::new();
    for r in got {
        let (k, w) = r.kv();
        assert!(w < 2, "{k} on worker {w}");
        assert_eq!(*worker_of.entry(k).or_insert(w), w, "key {k} on two workers");
    }
}

#[test]
fn an_error_in_the_function_names_the_operator_and_the_record() {
    for workers in [1, 2] {
        let out = new_out();
        let mut plan = Plan::new();
        let a = plan.add("a", vec![], NodeKind::Source { factory: vec_source(ints(&[1])), parallel: false });
        let b = plan.add("b", vec![], NodeKind::Source { factory: vec_source(ints(&[66])), parallel: false });
        let f = co(|_w, side, r| match side {
            Side::Second => Err(UdfError::new("map2 failed").with_record(format!("{r:?}"))),
            Side::First => Ok(vec![r]),
        });
        let c = plan.add("co_map 'F' (job.py:9)", vec![a, b], NodeKind::CoTransform(f));
        plan.add("sink", vec![c], NodeKind::Sink(sink(&out)));
        let err = run_err(plan, cfg(workers));
        let text = err.to_string();
        assert_eq!(err.kind, ErrorKind::Udf);
        assert!(text.contains("co_map 'F' (job.py:9)") && text.contains("map2 failed"), "{text}");
        assert!(text.contains("I(66)"), "{text}");
    }
}

#[test]
fn a_connect_node_takes_two_inputs() {
    let mut plan: Plan<V> = Plan::new();
    let a = plan.add("a", vec![], NodeKind::Source { factory: vec_source(ints(&[1])), parallel: false });
    plan.add("co 'x'", vec![a], NodeKind::CoTransform(co(|_w, _s, r| Ok(vec![r]))));
    let text = plan.validate().unwrap_err().to_string();
    assert!(text.contains("co 'x' takes 2 input(s), got 1"), "{text}");
}
