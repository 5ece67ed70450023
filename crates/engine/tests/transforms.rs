//! Stateless steps: fused chains, fan-out, unions, and spreading a non-parallel source.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use ferroflow_engine::connectors::sources;
use ferroflow_engine::functions::{Sink, Transform, WorkerContext};
use ferroflow_engine::{NodeKind, Plan, UdfResult};

fn seq(plan: &mut Plan<V>, start: i64, end: i64) -> usize {
    plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(start, end), parallel: true })
}

#[test]
fn fused_chain_counts_every_step_exactly() {
    for workers in [1, 2] {
        for batch in [3, 1024] {
            let out = new_out();
            let mut plan = Plan::new();
            let src = seq(&mut plan, 1, 100);
            let doubled = plan.add("map", vec![src], NodeKind::Transform(map(|v: V| V::I(v.int() * 2))));
            let kept = plan.add("filter", vec![doubled], NodeKind::Transform(filter(|v: &V| v.int() % 3 != 0)));
            let spread = plan.add(
                "flat_map",
                vec![kept],
                NodeKind::Transform(flat_map(|v: V| {
                    let x = v.int();
                    if x % 4 == 0 {
                        vec![V::I(x), V::I(-x), V::I(x + 10_000)]
                    } else {
                        vec![V::I(x)]
                    }
                })),
            );
            let snk = plan.add("sink", vec![spread], NodeKind::Sink(sink(&out)));
            let summary = run_ok(plan, cfg_batch(workers, batch));
            let mut want = Vec::new();
            for i in 1..=100i64 {
                let x = i * 2;
                if x % 3 == 0 {
                    continue;
                }
                want.push(V::I(x));
                if x % 4 == 0 {
                    want.push(V::I(-x));
                    want.push(V::I(x + 10_000));
                }
            }
            want.sort();
            assert_eq!(sorted(&out), want, "workers={workers} batch={batch}");
            let kept_n = (1..=100).filter(|i| (i * 2) % 3 != 0).count() as u64;
            let fours = (1..=100).filter(|i| (i * 2) % 3 != 0 && (i * 2) % 4 == 0).count() as u64;
            let mut counts = vec![0u64; 5];
            counts[src] = 100;
            counts[doubled] = 100;
            counts[kept] = kept_n;
            counts[spread] = kept_n + 2 * fours;
            counts[snk] = kept_n + 2 * fours;
            assert_eq!(summary.counts, counts, "workers={workers} batch={batch}");
            assert_eq!(summary.dropped, 0);
            assert!(summary.warnings.is_empty());
        }
    }
}

#[test]
fn chain_with_two_consumers_feeds_both() {
    for workers in [1, 2] {
        let (out_a, out_b) = (new_out(), new_out());
        let mut plan = Plan::new();
        let src = seq(&mut plan, 1, 50);
        let plus = plan.add("plus", vec![src], NodeKind::Transform(map(|v: V| V::I(v.int() + 1))));
        let odd = plan.add("odd", vec![plus], NodeKind::Transform(filter(|v: &V| v.int() % 2 == 1)));
        // `odd` is read twice: by a sink and by another step.
        let neg = plan.add("neg", vec![odd], NodeKind::Transform(map(|v: V| V::I(-v.int()))));
        let sink_a = plan.add("sink a", vec![odd], NodeKind::Sink(sink(&out_a)));
        let sink_b = plan.add("sink b", vec![neg], NodeKind::Sink(sink(&out_b)));
        let summary = run_ok(plan, cfg(workers));
        let odds: Vec<i64> = (2..=51).filter(|x| x % 2 == 1).collect();
        assert_eq!(sorted(&out_a), ints(&odds), "workers={workers}");
        let mut negs: Vec<i64> = odds.iter().map(|x| -x).collect();
        negs.sort();
        assert_eq!(sorted(&out_b), ints(&negs), "workers={workers}");
        let n = odds.len() as u64;
        // Each node counts its own output once, however many read it.
        assert_eq!(summary.counts[plus], 50);
        assert_eq!(summary.counts[odd], n, "counts {:?}", summary.counts);
        assert_eq!(summary.counts[neg], n);
        assert_eq!(summary.counts[sink_a], n);
        assert_eq!(summary.counts[sink_b], n);
    }
}

#[test]
fn source_with_two_consumers_feeds_both() {
    for workers in [1, 2] {
        let (out_a, out_b) = (new_out(), new_out());
        let mut plan = Plan::new();
        let src =
            plan.add("source", vec![], NodeKind::Source { factory: vec_source(ints(&[1, 2, 3, 4])), parallel: false });
        let a = plan.add("a", vec![src], NodeKind::Transform(map(|v: V| V::I(v.int() * 10))));
        plan.add("sink a", vec![a], NodeKind::Sink(sink(&out_a)));
        plan.add("sink b", vec![src], NodeKind::Sink(sink(&out_b)));
        run_ok(plan, cfg(workers));
        assert_eq!(sorted(&out_a), ints(&[10, 20, 30, 40]), "workers={workers}");
        assert_eq!(sorted(&out_b), ints(&[1, 2, 3, 4]), "workers={workers}");
    }
}

fn union_of_three(out: &Out<V>) -> (Plan<V>, usize) {
    let mut plan = Plan::new();
    let a = seq(&mut plan, 1, 10);
    let b = plan.add(
        "collection",
        vec![],
        NodeKind::Source { factory: vec_source(ints(&[100, 101, 102])), parallel: false },
    );
    let c = plan.add(
        "partitioned",
        vec![],
        NodeKind::Source {
            factory: partitioned_source(kvs(&[(0, 1000), (1, 1001), (2, 1002), (3, 1003)]), part_by_key),
            parallel: true,
        },
    );
    let c_ints = plan.add("values", vec![c], NodeKind::Transform(map(|v: V| V::I(v.kv().1))));
    let u = plan.add("union", vec![a, b, c_ints], NodeKind::Union);
    let m = plan.add("negate", vec![u], NodeKind::Transform(map(|v: V| V::I(-v.int()))));
    plan.add("sink", vec![m], NodeKind::Sink(sink(out)));
    (plan, u)
}

#[test]
fn union_of_three_sources() {
    for workers in [1, 2] {
        let out = new_out();
        let (plan, _u) = union_of_three(&out);
        let summary = run_ok(plan, cfg(workers));
        let mut want: Vec<i64> = (1..=10).chain([100, 101, 102, 1000, 1001, 1002, 1003]).map(|x| -x).collect();
        want.sort();
        assert_eq!(sorted(&out), ints(&want), "workers={workers}");
        assert_eq!(summary.counts[0], 10);
        assert_eq!(summary.counts[1], 3);
        assert_eq!(summary.counts[2], 4);
        assert_eq!(*summary.counts.last().unwrap(), 17);
    }
}

/// `JobSummary::counts` is "records emitted, per plan node": a union emits all of its inputs.
#[test]
fn union_counts_the_records_it_emits() {
    for workers in [1, 2] {
        let out = new_out();
        let (plan, u) = union_of_three(&out);
        let summary = run_ok(plan, cfg(workers));
        assert_eq!(values(&out).len(), 17);
        assert_eq!(summary.counts[u], 17, "workers={workers}: counts {:?}", summary.counts);
    }
}

#[test]
fn union_of_a_stream_with_itself_doubles_it() {
    for workers in [1, 2] {
        // A fused chain unioned with itself, and a non-parallel source unioned with itself.
        let out = new_out();
        let mut plan = Plan::new();
        let src = seq(&mut plan, 1, 20);
        let m = plan.add("times 3", vec![src], NodeKind::Transform(map(|v: V| V::I(v.int() * 3))));
        let u = plan.add("union", vec![m, m], NodeKind::Union);
        let col =
            plan.add("collection", vec![], NodeKind::Source { factory: vec_source(ints(&[-1, -2])), parallel: false });
        let u2 = plan.add("union self", vec![col, col, u], NodeKind::Union);
        plan.add("sink", vec![u2], NodeKind::Sink(sink(&out)));
        let summary = run_ok(plan, cfg(workers));
        let mut want: Vec<i64> = (1..=20).flat_map(|x| [x * 3, x * 3]).chain([-1, -1, -2, -2]).collect();
        want.sort();
        assert_eq!(sorted(&out), ints(&want), "workers={workers}");
        assert_eq!(summary.counts[m], 20, "the step runs once per record");
    }
}

#[test]
fn non_parallel_source_is_spread_over_both_workers() {
    let n = 1000i64;
    for workers in [1, 2] {
        for batch in [1, 16, 1024] {
            let (direct, mapped) = (new_out(), new_out());
            let mut plan = Plan::new();
            let src = plan.add(
                "collection",
                vec![],
                NodeKind::Source { factory: vec_source((0..n).map(V::I).collect()), parallel: false },
            );
            plan.add("sink direct", vec![src], NodeKind::Sink(sink(&direct)));
            // A step that tags each record with the worker its instance runs on.
            let tag = plan.add(
                "tag worker",
                vec![src],
                NodeKind::Transform(Arc::new(|ctx: &WorkerContext| {
                    let w = ctx.index as i64;
                    Ok(Box::new(ferroflow_engine::functions::closures::MapFn(move |v: V| Ok(Some(V::KV(w, v.int())))))
                        as Box<dyn Transform<V>>)
                })),
            );
            plan.add("sink mapped", vec![tag], NodeKind::Sink(sink(&mapped)));
            let summary = run_ok(plan, cfg_batch(workers, batch));
            assert_eq!(summary.counts[src], n as u64);
            assert_eq!(sorted(&direct), (0..n).map(V::I).collect::<Vec<_>>(), "workers={workers} batch={batch}");
            let per_worker = by_worker(&direct);
            assert_eq!(per_worker.len(), workers, "workers={workers} batch={batch}: sink saw {:?}", per_worker.keys());
            if workers == 2 {
                // Round-robin: an even spread.
                assert_eq!(per_worker[&0].len(), per_worker[&1].len(), "batch={batch}");
            }
            let tagged = values(&mapped);
            assert_eq!(tagged.len(), n as usize);
            let mut seen: Vec<i64> = tagged.iter().map(|v| v.kv().1).collect();
            seen.sort();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
            for (w, vs) in by_worker(&mapped) {
                assert!(vs.iter().all(|v| v.kv().0 == w as i64), "a step instance ran on another worker");
            }
            assert_eq!(by_worker(&mapped).len(), workers, "workers={workers} batch={batch}: steps ran on both workers");
        }
    }
}

struct Counting {
    seen: u64,
    closed: Arc<Mutex<Vec<(usize, u64)>>>,
    index: usize,
}

impl Transform<V> for Counting {
    fn apply(&mut self, input: V, out: &mut Vec<V>) -> UdfResult<()> {
        self.seen += 1;
        out.push(input);
        Ok(())
    }

    fn close(&mut self) -> UdfResult<()> {
        self.closed.lock().unwrap().push((self.index, self.seen));
        Ok(())
    }
}

struct ClosingSink {
    seen: u64,
    closed: Arc<Mutex<Vec<(usize, u64)>>>,
    index: usize,
}

impl Sink<V> for ClosingSink {
    fn write(&mut self, batch: &mut Vec<V>) -> UdfResult<()> {
        self.seen += batch.len() as u64;
        batch.clear();
        Ok(())
    }

    fn close(&mut self) -> UdfResult<()> {
        self.closed.lock().unwrap().push((self.index, self.seen));
        Ok(())
    }
}

#[test]
fn steps_and_sinks_are_closed_once_per_worker() {
    for workers in [1, 2] {
        let step_closed = Arc::new(Mutex::new(Vec::new()));
        let sink_closed = Arc::new(Mutex::new(Vec::new()));
        let mut plan = Plan::new();
        let src = seq(&mut plan, 1, 333);
        let sc = step_closed.clone();
        let step = plan.add(
            "counting",
            vec![src],
            NodeKind::Transform(Arc::new(move |ctx: &WorkerContext| {
                Ok(Box::new(Counting { seen: 0, closed: sc.clone(), index: ctx.index }) as Box<dyn Transform<V>>)
            })),
        );
        let kc = sink_closed.clone();
        plan.add(
            "closing sink",
            vec![step],
            NodeKind::Sink(Arc::new(move |ctx: &WorkerContext| {
                Ok(Box::new(ClosingSink { seen: 0, closed: kc.clone(), index: ctx.index }) as Box<dyn Sink<V>>)
            })),
        );
        run_ok(plan, cfg(workers));
        for (what, closed) in [("step", &step_closed), ("sink", &sink_closed)] {
            let mut c = closed.lock().unwrap().clone();
            c.sort();
            assert_eq!(c.iter().map(|x| x.0).collect::<Vec<_>>(), (0..workers).collect::<Vec<_>>(), "{what}: {c:?}");
            assert_eq!(c.iter().map(|x| x.1).sum::<u64>(), 333, "{what}: {c:?}");
        }
    }
}
