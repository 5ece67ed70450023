//! Property tests: random keyed inputs through rolling reduce and count windows, against
//! plain models, on 1 and 2 workers. Few cases: each one runs timely jobs.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use ferroflow_engine::windows::CountWindowBuffer;
use ferroflow_engine::{NodeKind, Plan, WindowFunction, WindowSpec};
use proptest::prelude::*;

fn pairs_strategy() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((0i64..6, -50i64..50), 0..60)
}

fn batch_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..8, Just(1024)]
}

/// A source over `pairs`: one producer per key (`partitioned`), or a single
/// non-parallel collection source.
fn source(pairs: &[(i64, i64)], partitioned: bool) -> NodeKind<V> {
    if partitioned {
        NodeKind::Source { factory: partitioned_source(kvs(pairs), part_by_key), parallel: true }
    } else {
        NodeKind::Source { factory: vec_source(kvs(pairs)), parallel: false }
    }
}

/// The rolling-sum model: per key, the running sums in input order.
fn reduce_model(pairs: &[(i64, i64)]) -> BTreeMap<i64, Vec<i64>> {
    let mut state: HashMap<i64, i64> = HashMap::new();
    let mut out: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &(k, v) in pairs {
        let next = match state.get(&k) {
            None => v,
            Some(acc) => acc + v,
        };
        state.insert(k, next);
        out.entry(k).or_default().push(next);
    }
    out
}

fn check_reduce(pairs: &[(i64, i64)], workers: usize, batch: usize, partitioned: bool) -> Result<(), TestCaseError> {
    let out = new_out();
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], source(pairs, partitioned));
    let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
    let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(sum_kv()));
    plan.add("sink", vec![red], NodeKind::Sink(sink(&out)));
    let summary = run_ok(plan, cfg_batch(workers, batch));
    prop_assert_eq!(summary.counts[red], pairs.len() as u64);
    // As multisets.
    let mut want: Vec<V> =
        reduce_model(pairs).into_iter().flat_map(|(k, xs)| xs.into_iter().map(move |x| V::KV(k, x))).collect();
    want.sort();
    prop_assert_eq!(sorted(&out), want, "multiset, workers={}", workers);
    // Per key, in order, on one worker.
    let mut got: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut owner: HashMap<i64, usize> = HashMap::new();
    for (w, v) in out.lock().unwrap().iter() {
        let (k, x) = v.kv();
        prop_assert_eq!(*owner.entry(k).or_insert(*w), *w, "key {} on two workers", k);
        got.entry(k).or_default().push(x);
    }
    prop_assert_eq!(got, reduce_model(pairs), "per-key order, workers={}", workers);
    Ok(())
}

/// Count windows written plainly: tumbling = chunks of `size` (the last one partial);
/// otherwise every `slide` elements the last `size`, and at the end the last `size`
/// if anything arrived since the last firing.
fn count_model(xs: &[i64], size: usize, slide: usize) -> Vec<Vec<i64>> {
    if size == slide {
        return xs.chunks(size).map(|c| c.to_vec()).collect();
    }
    let n = xs.len();
    let mut out = Vec::new();
    for i in 0..n {
        if (i + 1).is_multiple_of(slide) {
            out.push(xs[(i + 1).saturating_sub(size)..=i].to_vec());
        }
    }
    if !n.is_multiple_of(slide) {
        out.push(xs[n.saturating_sub(size)..].to_vec());
    }
    out
}

/// The same through the engine's own buffer, to check the model reads it right.
fn buffer_replay(xs: &[i64], size: usize, slide: usize) -> Vec<Vec<i64>> {
    let mut b = CountWindowBuffer::new(size, slide);
    let mut out: Vec<Vec<i64>> = xs.iter().filter_map(|&x| b.push(x)).collect();
    out.extend(b.flush());
    out
}

fn check_count_windows(
    pairs: &[(i64, i64)],
    size: usize,
    slide: usize,
    workers: usize,
    batch: usize,
    partitioned: bool,
) -> Result<(), TestCaseError> {
    let mut per_key_input: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &(k, v) in pairs {
        per_key_input.entry(k).or_default().push(v);
    }
    let want: BTreeMap<i64, Vec<Vec<i64>>> =
        per_key_input.iter().map(|(k, xs)| (*k, count_model(xs, size, slide))).collect();
    for (k, xs) in &per_key_input {
        prop_assert_eq!(&buffer_replay(xs, size, slide), &want[k], "model vs CountWindowBuffer");
    }
    let out = new_out();
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], source(pairs, partitioned));
    let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
    let win = plan.add(
        "window",
        vec![keyed],
        NodeKind::Window {
            spec: WindowSpec::Count { size, slide },
            function: WindowFunction::Apply(describe_window()),
        },
    );
    plan.add("sink", vec![win], NodeKind::Sink(sink(&out)));
    let summary = run_ok(plan, cfg_batch(workers, batch));
    let mut got: BTreeMap<i64, Vec<Vec<i64>>> = BTreeMap::new();
    let mut owner: HashMap<i64, usize> = HashMap::new();
    for (w, v) in out.lock().unwrap().iter() {
        let V::Win { key, window, values } = v else { panic!("{v:?}") };
        prop_assert_eq!(*window, None);
        let k = key.int();
        prop_assert_eq!(*owner.entry(k).or_insert(*w), *w, "key {} on two workers", k);
        let mut xs = Vec::new();
        for x in values {
            let (kk, xx) = x.kv();
            prop_assert_eq!(kk, k);
            xs.push(xx);
        }
        got.entry(k).or_default().push(xs);
    }
    let fired: usize = want.values().map(|w| w.len()).sum();
    prop_assert_eq!(summary.counts[win], fired as u64);
    prop_assert_eq!(got, want, "size={} slide={} workers={}", size, slide, workers);
    Ok(())
}

fn window_shape() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![(1usize..6).prop_map(|s| (s, s)), (1usize..6, 1usize..8)]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(24) })]

    /// All of a key's records come from one source instance, in input order.
    #[test]
    fn rolling_reduce_matches_hashmap_model(pairs in pairs_strategy(), batch in batch_strategy()) {
        for workers in [1, 2] {
            check_reduce(&pairs, workers, batch, true)?;
        }
    }

    /// A single collection source (`parallel: false`) feeding key_by directly.
    #[test]
    fn rolling_reduce_after_collection_source_matches_hashmap_model(pairs in pairs_strategy(), batch in batch_strategy()) {
        for workers in [1, 2] {
            check_reduce(&pairs, workers, batch, false)?;
        }
    }

    #[test]
    fn count_windows_match_model((size, slide) in window_shape(), pairs in pairs_strategy(), batch in batch_strategy()) {
        for workers in [1, 2] {
            check_count_windows(&pairs, size, slide, workers, batch, true)?;
        }
    }

    #[test]
    fn count_windows_after_collection_source_match_model(
        (size, slide) in window_shape(),
        pairs in pairs_strategy(),
        batch in batch_strategy(),
    ) {
        for workers in [1, 2] {
            check_count_windows(&pairs, size, slide, workers, batch, false)?;
        }
    }
}
