//! Partition nodes (rebalance, shuffle, rescale, forward, broadcast, custom): where each
//! record lands, at 1 to 3 workers of one process.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use ferroflow_engine::functions::closures::PartitionFn;
use ferroflow_engine::functions::{Partitioner, PartitionerFactory, WorkerContext};
use ferroflow_engine::{ErrorKind, NodeKind, Partitioning, Plan, UdfError};

/// `source -> partition(how) -> sink` (the sink on `sink_parallelism` workers); what
/// each worker's sink received.
fn run_partitioned(
    how: Partitioning<V>,
    parallel_source: bool,
    n: i64,
    workers: usize,
    sink_parallelism: Option<usize>,
) -> BTreeMap<usize, Vec<V>> {
    let out = new_out();
    let mut plan = Plan::new();
    let items = ints(&(0..n).collect::<Vec<_>>());
    let factory = if parallel_source { partitioned_source(items, |v| v.int() as usize) } else { vec_source(items) };
    let src = plan.add("source", vec![], NodeKind::Source { factory, parallel: parallel_source });
    let part = plan.add(how.name(), vec![src], NodeKind::Partition(how));
    let sink = plan.add("sink", vec![part], NodeKind::Sink(sink(&out)));
    if let Some(p) = sink_parallelism {
        plan.set_parallelism(sink, p);
    }
    run_ok(plan, cfg(workers));
    by_worker(&out)
}

fn all_of(received: &BTreeMap<usize, Vec<V>>) -> Vec<V> {
    let mut all: Vec<V> = received.values().flatten().cloned().collect();
    all.sort();
    all
}

fn custom(f: fn(&V, usize) -> i64) -> PartitionerFactory<V> {
    Arc::new(move |_ctx: &WorkerContext| {
        Ok(Box::new(PartitionFn(move |r: &V, n| Ok(f(r, n)))) as Box<dyn Partitioner<V>>)
    })
}

#[test]
fn rebalance_deals_records_round_robin_to_every_worker() {
    for workers in [1, 2, 3] {
        let got = run_partitioned(Partitioning::Rebalance, false, 30, workers, None);
        assert_eq!(all_of(&got), ints(&(0..30).collect::<Vec<_>>()), "workers={workers}");
        assert_eq!(got.len(), workers, "workers={workers}: {got:?}");
        // One sender dealing in turn: each worker gets every workers-th record, in order.
        for list in got.values() {
            assert_eq!(list.len(), 30 / workers, "workers={workers}: {got:?}");
            let steps: Vec<i64> = list.windows(2).map(|w| w[1].int() - w[0].int()).collect();
            assert!(steps.iter().all(|&s| s == workers as i64), "workers={workers}: {list:?}");
        }
    }
}

#[test]
fn rebalance_to_a_reader_on_fewer_workers_uses_only_those() {
    let got = run_partitioned(Partitioning::Rebalance, true, 40, 3, Some(2));
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(all_of(&got).len(), 40);
}

#[test]
fn rescale_in_one_process_is_a_round_robin_over_its_workers() {
    for workers in [1, 3] {
        let got = run_partitioned(Partitioning::Rescale, false, 30, workers, None);
        assert_eq!(all_of(&got).len(), 30);
        assert!(got.values().all(|l| l.len() == 30 / workers), "workers={workers}: {got:?}");
    }
}

#[test]
fn shuffle_keeps_every_record_and_reaches_every_worker() {
    for workers in [1, 3] {
        let got = run_partitioned(Partitioning::Shuffle, false, 600, workers, None);
        assert_eq!(all_of(&got), ints(&(0..600).collect::<Vec<_>>()), "workers={workers}");
        // 600 records over 3 workers: each gets some (a miss has odds below 1e-100).
        assert_eq!(got.len(), workers, "workers={workers}");
    }
}

#[test]
fn broadcast_gives_every_worker_every_record_in_order() {
    for workers in [1, 2, 3] {
        for parallel in [false, true] {
            let got = run_partitioned(Partitioning::Broadcast, parallel, 25, workers, None);
            assert_eq!(got.len(), workers);
            for list in got.values() {
                let mut list = list.clone();
                if !parallel {
                    // One sender: its order is kept.
                    assert_eq!(list, ints(&(0..25).collect::<Vec<_>>()));
                }
                list.sort();
                assert_eq!(list, ints(&(0..25).collect::<Vec<_>>()), "workers={workers} parallel={parallel}");
            }
        }
    }
}

#[test]
fn a_custom_partitioner_picks_each_records_worker() {
    for workers in [1, 2, 3] {
        let how = Partitioning::Custom(custom(|r, n| r.int() % n as i64));
        let got = run_partitioned(how, false, 30, workers, None);
        for (w, list) in &got {
            assert!(list.iter().all(|r| r.int() as usize % workers == *w), "workers={workers}: {got:?}");
        }
        assert_eq!(all_of(&got).len(), 30);
    }
}

#[test]
fn a_custom_partition_out_of_range_names_the_operator_and_the_record() {
    for (workers, bad) in [(2, 2i64), (2, -1), (1, 5)] {
        let out = new_out();
        let mut plan = Plan::new();
        let src =
            plan.add("source", vec![], NodeKind::Source { factory: vec_source(ints(&[1, 7, 3])), parallel: false });
        let factory: PartitionerFactory<V> = Arc::new(move |_ctx: &WorkerContext| {
            Ok(Box::new(PartitionFn(move |r: &V, _n| Ok(if r.int() == 7 { bad } else { 0 })))
                as Box<dyn Partitioner<V>>)
        });
        let part =
            plan.add("partition_custom 'p' (job.py:3)", vec![src], NodeKind::Partition(Partitioning::Custom(factory)));
        plan.add("sink", vec![part], NodeKind::Sink(sink(&out)));
        let err = run_err(plan, cfg(workers));
        let text = err.to_string();
        assert_eq!(err.kind, ErrorKind::Udf, "{text}");
        assert!(text.contains("partition_custom 'p' (job.py:3)"), "{text}");
        assert!(text.contains(&format!("returned {bad}, but there are {workers} partitions")), "{text}");
        assert!(text.contains("I(7)"), "{text}");
    }
}

#[test]
fn a_partitioners_own_error_is_reported_in_its_name() {
    let out = new_out();
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], NodeKind::Source { factory: vec_source(ints(&[1])), parallel: false });
    let factory: PartitionerFactory<V> = Arc::new(|_ctx: &WorkerContext| {
        Ok(Box::new(PartitionFn(|_r: &V, _n| Err(UdfError::new("boom")))) as Box<dyn Partitioner<V>>)
    });
    let part = plan.add("partition_custom 'p'", vec![src], NodeKind::Partition(Partitioning::Custom(factory)));
    plan.add("sink", vec![part], NodeKind::Sink(sink(&out)));
    let text = run_err(plan, cfg(2)).to_string();
    assert!(text.contains("partition_custom 'p'") && text.contains("boom"), "{text}");
}

#[test]
fn forward_keeps_records_on_their_worker_in_order() {
    for workers in [1, 2, 3] {
        let got = run_partitioned(Partitioning::Forward, true, 60, workers, None);
        for (w, list) in &got {
            // The parallel source put record i on worker i % workers.
            assert!(list.iter().all(|r| r.int() as usize % workers == *w), "workers={workers}: {got:?}");
            assert!(list.windows(2).all(|p| p[0] < p[1]), "order lost: {list:?}");
        }
        assert_eq!(all_of(&got).len(), 60);
    }
}

#[test]
fn forward_refuses_a_reader_with_another_parallelism() {
    // A non-parallel source (1 worker) forwarded to a sink on every worker, and a
    // parallel one forwarded to a sink on one.
    for (parallel, sink_parallelism, from, to) in [(false, None, 1, 3), (true, Some(1), 3, 1)] {
        let out = new_out();
        let mut plan = Plan::new();
        let factory = if parallel { partitioned_source(ints(&[1]), |_| 0) } else { vec_source(ints(&[1])) };
        let src = plan.add("source", vec![], NodeKind::Source { factory, parallel });
        let fwd = plan.add("forward (job.py:4)", vec![src], NodeKind::Partition(Partitioning::Forward));
        let sink = plan.add("sink", vec![fwd], NodeKind::Sink(sink(&out)));
        if let Some(p) = sink_parallelism {
            plan.set_parallelism(sink, p);
        }
        let err = run_err(plan, cfg(3));
        let text = err.to_string();
        assert_eq!(err.kind, ErrorKind::Plan, "{text}");
        assert!(text.contains("forward (job.py:4)"), "{text}");
        assert!(text.contains(&format!("as many workers as its input ({from}), not {to}")), "{text}");
    }
    // With one worker there is nothing to change.
    let got = run_partitioned(Partitioning::Forward, false, 5, 1, None);
    assert_eq!(all_of(&got).len(), 5);
}

#[test]
fn a_partitioned_stream_read_twice_is_spread_for_each_reader() {
    for workers in [2, 3] {
        let (a, b) = (new_out(), new_out());
        let mut plan = Plan::new();
        let items = ints(&(0..12).collect::<Vec<_>>());
        let src = plan.add("source", vec![], NodeKind::Source { factory: vec_source(items), parallel: false });
        let part = plan.add("broadcast", vec![src], NodeKind::Partition(Partitioning::Broadcast));
        plan.add("sink a", vec![part], NodeKind::Sink(sink(&a)));
        let one = plan.add("sink b", vec![part], NodeKind::Sink(sink(&b)));
        plan.set_parallelism(one, 1);
        run_ok(plan, cfg(workers));
        assert_eq!(by_worker(&a).len(), workers);
        assert!(by_worker(&a).values().all(|l| l.len() == 12));
        assert_eq!(by_worker(&b).keys().copied().collect::<Vec<_>>(), vec![0]);
        assert_eq!(sorted(&b).len(), 12);
    }
}

#[test]
fn a_key_by_right_after_a_partitioning_replaces_it() {
    // broadcast() then key_by: the key exchange decides, so no record is duplicated.
    for workers in [1, 3] {
        let out = new_out();
        let mut plan = Plan::new();
        let items = kvs(&(0..20).map(|i| (i % 4, 1)).collect::<Vec<_>>());
        let src = plan.add("source", vec![], NodeKind::Source { factory: vec_source(items), parallel: false });
        let part = plan.add("broadcast", vec![src], NodeKind::Partition(Partitioning::Broadcast));
        let keyed = plan.add("key", vec![part], NodeKind::KeyBy(key_by_k()));
        let sum = plan.add("sum", vec![keyed], NodeKind::Reduce(sum_kv()));
        plan.add("sink", vec![sum], NodeKind::Sink(sink(&out)));
        run_ok(plan, cfg(workers));
        let got = values(&out);
        assert_eq!(got.len(), 20, "workers={workers}");
        let mut finals = BTreeMap::new();
        for r in got {
            let (k, n) = r.kv();
            let e = finals.entry(k).or_insert(0);
            *e = (*e).max(n);
        }
        assert_eq!(finals, (0..4).map(|k| (k, 5)).collect::<BTreeMap<_, _>>());
    }
}

#[test]
fn of_two_partitionings_in_a_row_the_last_decides() {
    // rebalance() then forward(): forward, so records stay where the parallel source put them.
    let out = new_out();
    let mut plan = Plan::new();
    let items = ints(&(0..30).collect::<Vec<_>>());
    let src = plan.add(
        "source",
        vec![],
        NodeKind::Source { factory: partitioned_source(items, |v| v.int() as usize), parallel: true },
    );
    let rebalanced = plan.add("rebalance", vec![src], NodeKind::Partition(Partitioning::Rebalance));
    let forwarded = plan.add("forward", vec![rebalanced], NodeKind::Partition(Partitioning::Forward));
    plan.add("sink", vec![forwarded], NodeKind::Sink(sink(&out)));
    run_ok(plan, cfg(3));
    for (w, list) in by_worker(&out) {
        assert!(list.iter().all(|r| r.int() as usize % 3 == w), "{w}: {list:?}");
    }
}
