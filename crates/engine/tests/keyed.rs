//! Keyed streams: rolling reduce against a model, the "unkey" path, and key ownership.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferroflow_engine::functions::{ReduceFactory, Reducer, WorkerContext};
use ferroflow_engine::key::{key_of, Key, Scalar};
use ferroflow_engine::rolling::{Number, RollingState};
use ferroflow_engine::UdfResult;
use ferroflow_engine::{NodeKind, Plan};

/// Deterministic pseudo-random (key, value) pairs.
fn input(n: usize, keys: i64) -> Vec<(i64, i64)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % keys as u64) as i64, (x >> 20) as i64 % 1000 - 500)
        })
        .collect()
}

/// Per key, the running sums in input order.
fn rolling_sums(pairs: &[(i64, i64)]) -> BTreeMap<i64, Vec<i64>> {
    let mut acc: HashMap<i64, i64> = HashMap::new();
    let mut out: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &(k, v) in pairs {
        let s = acc.entry(k).or_insert(0);
        *s += v;
        out.entry(k).or_default().push(*s);
    }
    out
}

/// Groups sink output (`V::KV`) by key, keeping arrival order, and checks every key
/// was seen on one worker only.
fn per_key(out: &Out<V>) -> BTreeMap<i64, Vec<i64>> {
    let mut m: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut owner: HashMap<i64, usize> = HashMap::new();
    for (w, v) in out.lock().unwrap().iter() {
        let (k, x) = v.kv();
        let o = *owner.entry(k).or_insert(*w);
        assert_eq!(o, *w, "key {k} was seen on workers {o} and {w}");
        m.entry(k).or_default().push(x);
    }
    m
}

fn reduce_plan(source: NodeKind<V>, out: &Out<V>) -> (Plan<V>, usize, usize) {
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], source);
    let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
    let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(sum_kv()));
    plan.add("sink", vec![red], NodeKind::Sink(sink(out)));
    (plan, keyed, red)
}

#[test]
fn rolling_reduce_matches_a_model() {
    let pairs = input(2000, 23);
    let want = rolling_sums(&pairs);
    for workers in [1, 2] {
        for batch in [5, 1024] {
            let out = new_out();
            // All records of a key come from one source instance, in input order.
            let source = NodeKind::Source { factory: partitioned_source(kvs(&pairs), part_by_key), parallel: true };
            let (plan, keyed, red) = reduce_plan(source, &out);
            let summary = run_ok(plan, cfg_batch(workers, batch));
            assert_eq!(per_key(&out), want, "workers={workers} batch={batch}");
            assert_eq!(summary.counts[keyed], 2000);
            assert_eq!(summary.counts[red], 2000);
            if workers == 2 {
                assert_eq!(by_worker(&out).len(), 2, "23 keys should land on both workers");
            }
        }
    }
}

/// A sum that keeps a running number per key while values are above -490 and falls
/// back to records for good when one is not, as the Python built-ins leave their fast
/// path for a record of another shape. Counts how often each path ran.
struct RunningSum {
    fast: Arc<AtomicUsize>,
    fallbacks: Arc<AtomicUsize>,
}

impl Reducer<V> for RunningSum {
    fn reduce(&mut self, a: &V, b: &V) -> UdfResult<V> {
        let ((k, x), (_, y)) = (a.kv(), b.kv());
        Ok(V::KV(k, x + y))
    }

    fn start(&mut self, first: &V) -> UdfResult<RollingState<V>> {
        let (_, x) = first.kv();
        Ok(if x > -490 { RollingState::Running { value: Number::Int(x) } } else { RollingState::Record(first.clone()) })
    }

    fn update(&mut self, key: &Key, state: &mut RollingState<V>, value: &V) -> UdfResult<V> {
        let (k, y) = value.kv();
        if let RollingState::Running { value: Number::Int(acc) } = state {
            if y > -490 {
                self.fast.fetch_add(1, Ordering::Relaxed);
                *acc += y;
                return Ok(V::KV(k, *acc));
            }
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            // The key's record, rebuilt from its key alone (the state keeps no record).
            let Some(Scalar::Int(first_k)) = key.scalar() else { panic!("the key of {k} is not an int: {key:?}") };
            *state = RollingState::Record(V::KV(first_k, *acc));
        }
        let RollingState::Record(acc) = state else { unreachable!("made a record above") };
        let next = self.reduce(acc, value)?;
        *acc = next.clone();
        Ok(next)
    }

    fn result(&mut self, key: &Key, state: &RollingState<V>) -> UdfResult<V> {
        Ok(match state {
            RollingState::Record(r) => r.clone(),
            RollingState::Running { value: Number::Int(acc) } => {
                let Some(Scalar::Int(k)) = key.scalar() else { panic!("the key is not an int: {key:?}") };
                V::KV(k, *acc)
            }
            RollingState::Running { value } => panic!("not an int: {value:?}"),
        })
    }
}

/// A reduce whose state is a running number gives the running values of one that
/// keeps records, including keys that leave the number for records midway.
#[test]
fn rolling_reduce_with_running_numbers_matches_a_model() {
    let pairs = input(3000, 31);
    let want = rolling_sums(&pairs);
    for workers in [1, 2] {
        let (fast, fallbacks) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (f, b) = (fast.clone(), fallbacks.clone());
        let factory: ReduceFactory<V> = Arc::new(move |_ctx: &WorkerContext| {
            Ok(Box::new(RunningSum { fast: f.clone(), fallbacks: b.clone() }) as Box<dyn Reducer<V>>)
        });
        let out = new_out();
        let mut plan = Plan::new();
        let src = plan.add(
            "source",
            vec![],
            NodeKind::Source { factory: partitioned_source(kvs(&pairs), part_by_key), parallel: true },
        );
        let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
        let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(factory));
        plan.add("sink", vec![red], NodeKind::Sink(sink(&out)));
        run_ok(plan, cfg_batch(workers, 64));
        assert_eq!(per_key(&out), want, "workers={workers}");
        assert!(fast.load(Ordering::Relaxed) > 500, "the running path ran");
        assert!(fallbacks.load(Ordering::Relaxed) > 5, "keys left the running path");
    }
}

/// Flink keeps the order of a key's records from one upstream instance: a collection
/// source read by key_by + reduce gives the same running values at any parallelism.
#[test]
fn rolling_reduce_after_a_non_parallel_source_keeps_per_key_order() {
    let pairs = input(2000, 23);
    let want = rolling_sums(&pairs);
    for workers in [1, 2] {
        for batch in [5, 1024] {
            let out = new_out();
            let source = NodeKind::Source { factory: vec_source(kvs(&pairs)), parallel: false };
            let (plan, _, _) = reduce_plan(source, &out);
            run_ok(plan, cfg_batch(workers, batch));
            let got = per_key(&out);
            let bad: Vec<_> = got.iter().filter(|(k, v)| want.get(k) != Some(v)).map(|(k, _)| *k).collect();
            assert!(bad.is_empty(), "workers={workers} batch={batch}: running sums out of order for keys {bad:?}");
        }
    }
}

/// The smallest case of the above: one key, three values, a collection source.
#[test]
fn rolling_reduce_small_collection_two_workers() {
    for workers in [1, 2] {
        let out = new_out();
        let source = NodeKind::Source { factory: vec_source(kvs(&[(7, 1), (7, 10), (7, 100)])), parallel: false };
        let (plan, _, _) = reduce_plan(source, &out);
        run_ok(plan, cfg(workers));
        assert_eq!(values(&out), kvs(&[(7, 1), (7, 11), (7, 111)]), "workers={workers}");
    }
}

#[test]
fn key_by_then_plain_step_gets_all_values_partitioned_by_key() {
    let pairs = input(1500, 17);
    for workers in [1, 2] {
        for parallel in [true, false] {
            let (out_step, out_direct) = (new_out(), new_out());
            let mut plan = Plan::new();
            let factory = if parallel { partitioned_source(kvs(&pairs), part_by_key) } else { vec_source(kvs(&pairs)) };
            let src = plan.add("source", vec![], NodeKind::Source { factory, parallel });
            let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
            // A plain step and a sink reading the keyed stream directly.
            let step = plan.add(
                "times 2",
                vec![keyed],
                NodeKind::Transform(map(|v: V| {
                    let (k, x) = v.kv();
                    V::KV(k, x * 2)
                })),
            );
            let s1 = plan.add("sink step", vec![step], NodeKind::Sink(sink(&out_step)));
            let s2 = plan.add("sink direct", vec![keyed], NodeKind::Sink(sink(&out_direct)));
            let summary = run_ok(plan, cfg(workers));
            let what = format!("workers={workers} parallel={parallel}");
            let mut want_step: Vec<V> = pairs.iter().map(|&(k, v)| V::KV(k, v * 2)).collect();
            want_step.sort();
            let mut want_direct = kvs(&pairs);
            want_direct.sort();
            assert_eq!(sorted(&out_step), want_step, "{what}");
            assert_eq!(sorted(&out_direct), want_direct, "{what}");
            // Partitioned by key: `per_key` asserts each key stays on one worker.
            let a = per_key(&out_step);
            let b = per_key(&out_direct);
            assert_eq!(a.len(), 17);
            assert_eq!(b.len(), 17);
            if parallel {
                // One producer per key: the values keep their order.
                let mut model: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
                for &(k, v) in &pairs {
                    model.entry(k).or_default().push(v);
                }
                assert_eq!(b, model, "{what}");
            }
            assert_eq!(summary.counts[keyed], 1500);
            assert_eq!(summary.counts[step], 1500);
            assert_eq!(summary.counts[s1], 1500);
            assert_eq!(summary.counts[s2], 1500);
        }
    }
}

#[test]
fn keys_are_owned_by_exactly_one_worker_with_string_keys() {
    // Words as keys (String records): a rolling count per word.
    let words: Vec<String> = (0..600).map(|i| format!("w{}", (i * 7) % 31)).collect();
    for workers in [1, 2] {
        let out: Out<String> = new_out();
        let mut plan = Plan::new();
        let src = plan.add("words", vec![], NodeKind::Source { factory: vec_source(words.clone()), parallel: false });
        let ones = plan.add("pair", vec![src], NodeKind::Transform(map(|w: String| format!("{w}:1"))));
        let keyed = plan.add(
            "key_by word",
            vec![ones],
            NodeKind::KeyBy(key_by(|s: &String| {
                let w = s.split(':').next().unwrap().to_string();
                (key_of(w.as_str()), w)
            })),
        );
        let counted = plan.add(
            "count",
            vec![keyed],
            NodeKind::Reduce(reducer(|a: &String, b: &String| {
                let (w, n) = a.split_once(':').unwrap();
                let m: u64 = b.split_once(':').unwrap().1.parse().unwrap();
                format!("{w}:{}", n.parse::<u64>().unwrap() + m)
            })),
        );
        plan.add("sink", vec![counted], NodeKind::Sink(sink(&out)));
        run_ok(plan, cfg(workers));
        let mut owner: HashMap<String, usize> = HashMap::new();
        let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (w, s) in out.lock().unwrap().iter() {
            let (word, n) = s.split_once(':').unwrap();
            assert_eq!(*owner.entry(word.to_string()).or_insert(*w), *w, "word {word} on two workers");
            counts.entry(word.to_string()).or_default().push(n.parse().unwrap());
        }
        assert_eq!(counts.len(), 31);
        for (word, mut ns) in counts {
            ns.sort();
            let total = words.iter().filter(|w| **w == word).count() as u64;
            assert_eq!(ns, (1..=total).collect::<Vec<_>>(), "workers={workers} word={word}");
        }
        if workers == 2 {
            assert_eq!(owner.values().collect::<std::collections::HashSet<_>>().len(), 2);
        }
    }
}

#[test]
fn one_keyed_stream_read_by_reduce_and_window() {
    use ferroflow_engine::{WindowFunction, WindowSpec};
    let pairs: Vec<(i64, i64)> = (0..40).map(|i| (i % 4, i)).collect();
    for workers in [1, 2] {
        let (out_r, out_w) = (new_out(), new_out());
        let mut plan = Plan::new();
        let src = plan.add(
            "source",
            vec![],
            NodeKind::Source { factory: partitioned_source(kvs(&pairs), part_by_key), parallel: true },
        );
        let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
        let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(sum_kv()));
        let win = plan.add(
            "window",
            vec![keyed],
            NodeKind::Window {
                spec: WindowSpec::Count { size: 10, slide: 10 },
                function: WindowFunction::Reduce(sum_kv()),
            },
        );
        plan.add("sink r", vec![red], NodeKind::Sink(sink(&out_r)));
        plan.add("sink w", vec![win], NodeKind::Sink(sink(&out_w)));
        run_ok(plan, cfg(workers));
        assert_eq!(per_key(&out_r), rolling_sums(&pairs), "workers={workers}");
        let totals: Vec<V> = (0..4).map(|k| V::KV(k, (0..40).filter(|i| i % 4 == k).sum())).collect();
        assert_eq!(sorted(&out_w), totals, "workers={workers}");
    }
}

/// Batch mode: one record per key at the end, its final value, each worker's keys in
/// the order of their encodings; a running-number state gives its record back too.
#[test]
fn batch_mode_rolling_reduce_emits_each_keys_final_value_in_key_order() {
    use ferroflow_engine::{RuntimeMode, Semantics};
    let pairs = input(3000, 31);
    let want: BTreeMap<i64, i64> = rolling_sums(&pairs).into_iter().map(|(k, v)| (k, *v.last().unwrap())).collect();
    for workers in [1, 2] {
        for running in [false, true] {
            let factory: ReduceFactory<V> = if running {
                let (f, b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
                Arc::new(move |_ctx: &WorkerContext| {
                    Ok(Box::new(RunningSum { fast: f.clone(), fallbacks: b.clone() }) as Box<dyn Reducer<V>>)
                })
            } else {
                sum_kv()
            };
            let out = new_out();
            let mut plan = Plan::new();
            plan.semantics = Semantics { mode: RuntimeMode::Batch, ..Semantics::default() };
            let src =
                plan.add("source", vec![], NodeKind::Source { factory: vec_source(kvs(&pairs)), parallel: false });
            let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
            let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(factory));
            plan.add("sink", vec![red], NodeKind::Sink(sink(&out)));
            let summary = run_ok(plan, cfg_batch(workers, 7));
            let what = format!("workers={workers} running={running}");
            assert_eq!(summary.counts[red], want.len() as u64, "{what}");
            let got: BTreeMap<i64, Vec<i64>> = per_key(&out);
            let got: BTreeMap<i64, i64> = got.into_iter().map(|(k, v)| (k, v[0])).collect();
            assert_eq!(got, want, "{what}");
            for (_, records) in by_worker(&out) {
                let keys: Vec<Vec<u8>> = records.iter().map(|r| key_of(&r.kv().0).bytes().to_vec()).collect();
                let mut sorted = keys.clone();
                sorted.sort();
                assert_eq!(keys, sorted, "{what}: a worker's keys come in the order of their encodings");
            }
        }
    }
}

/// `Automatic` is batch exactly when no source is marked unbounded; batch refuses one.
#[test]
fn automatic_mode_follows_the_sources_and_batch_refuses_an_unbounded_one() {
    use ferroflow_engine::{RuntimeMode, Semantics};
    let pairs = input(10, 3);
    let build = |mode: RuntimeMode, unbounded: bool| {
        let out = new_out();
        let mut plan = Plan::new();
        plan.semantics = Semantics { mode, ..Semantics::default() };
        let src =
            plan.add("socket 'x'", vec![], NodeKind::Source { factory: vec_source(kvs(&pairs)), parallel: false });
        if unbounded {
            plan.set_unbounded(src);
        }
        let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
        let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(sum_kv()));
        plan.add("sink", vec![red], NodeKind::Sink(sink(&out)));
        (plan, red)
    };
    let (plan, _) = build(RuntimeMode::Automatic, false);
    assert_eq!(plan.semantics().mode, RuntimeMode::Batch);
    let (plan, red) = build(RuntimeMode::Automatic, true);
    assert_eq!(plan.semantics().mode, RuntimeMode::Streaming);
    assert_eq!(run_ok(plan, cfg(1)).counts[red], 10, "streaming: one record per input");
    let (plan, _) = build(RuntimeMode::Batch, true);
    let err = run_err(plan, cfg(1));
    assert!(err.message.starts_with("socket 'x': RuntimeExecutionMode.BATCH needs bounded sources"), "{err:?}");
    assert!(!err.message.contains('\n'), "one line: {err:?}");
}

/// A batch job takes no checkpoints (Flink refuses them too): refused before it starts.
#[test]
fn batch_mode_refuses_checkpointing() {
    use ferroflow_engine::checkpoint::settings::CheckpointSettings;
    use ferroflow_engine::{ExecConfig, RuntimeMode, Semantics};
    let dir = TempDir::new("batch-checkpoints");
    for mode in [RuntimeMode::Batch, RuntimeMode::Automatic] {
        let (out, pairs) = (new_out(), input(10, 3));
        let mut plan = Plan::new();
        plan.semantics = Semantics { mode, ..Semantics::default() };
        let src = plan.add("source", vec![], NodeKind::Source { factory: vec_source(kvs(&pairs)), parallel: false });
        let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
        let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(sum_kv()));
        plan.add("sink", vec![red], NodeKind::Sink(sink(&out)));
        let settings = CheckpointSettings::new(dir.0.clone(), std::time::Duration::from_millis(50));
        let err = run_err(plan, ExecConfig { checkpoint: Some(settings), ..cfg(1) });
        assert!(
            err.message.starts_with("checkpointing does not apply to a job in RuntimeExecutionMode.BATCH"),
            "{err:?}"
        );
    }
}
