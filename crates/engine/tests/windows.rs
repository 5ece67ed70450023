//! Keyed windows: count windows (tumbling, sliding, partial at end of input) and
//! processing-time windows driven by a test clock.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ferroflow_engine::functions::closures::ApplyFn;
use ferroflow_engine::functions::{SourceReader, SourceStatus, WindowApply, WindowContext, WorkerContext};
use ferroflow_engine::process::{lock, SharedContext};
use ferroflow_engine::state::{KeyedStateBackend, StateDescriptor, StateKind};
use ferroflow_engine::{ApplyFactory, ExecConfig, NodeKind, Plan, UdfResult, WindowFunction, WindowSpec};

/// Key 1: values 1..=7; key 2: values 10..=14; key 3: 20..=25 (6 values), interleaved.
fn input() -> Vec<V> {
    let mut v = Vec::new();
    let (mut a, mut b, mut c) = (1..=7, 10..=14, 20..=25);
    loop {
        let mut any = false;
        for (k, it) in [(1, &mut a), (2, &mut b), (3, &mut c)] {
            if let Some(x) = it.next() {
                v.push(V::KV(k, x));
                any = true;
            }
        }
        if !any {
            return v;
        }
    }
}

fn window_plan(spec: WindowSpec<V>, function: WindowFunction<V>, items: Vec<V>, out: &Out<V>) -> (Plan<V>, usize) {
    let mut plan = Plan::new();
    // One producer per key, so each key's values arrive in input order.
    let src = plan.add(
        "source",
        vec![],
        NodeKind::Source { factory: partitioned_source(items, part_by_key), parallel: true },
    );
    let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
    let win = plan.add("window", vec![keyed], NodeKind::Window { spec, function });
    plan.add("sink", vec![win], NodeKind::Sink(sink(out)));
    (plan, win)
}

/// Window outputs grouped by key in arrival order; asserts each key stays on one worker.
fn per_key_windows(out: &Out<V>) -> BTreeMap<i64, Vec<(Option<(i64, i64)>, Vec<i64>)>> {
    let mut m: BTreeMap<i64, Vec<_>> = BTreeMap::new();
    let mut owner: HashMap<i64, usize> = HashMap::new();
    for (w, v) in out.lock().unwrap().iter() {
        let V::Win { key, window, values } = v else { panic!("not a window: {v:?}") };
        let k = key.int();
        assert_eq!(*owner.entry(k).or_insert(*w), *w, "key {k} on two workers");
        let vals: Vec<i64> = values
            .iter()
            .map(|x| {
                let (kk, xx) = x.kv();
                assert_eq!(kk, k, "window of key {k} holds a value of key {kk}");
                xx
            })
            .collect();
        m.entry(k).or_default().push((*window, vals));
    }
    m
}

fn per_key_sums(out: &Out<V>) -> BTreeMap<i64, Vec<i64>> {
    let mut m: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut owner: HashMap<i64, usize> = HashMap::new();
    for (w, v) in out.lock().unwrap().iter() {
        let (k, x) = v.kv();
        assert_eq!(*owner.entry(k).or_insert(*w), *w, "key {k} on two workers");
        m.entry(k).or_default().push(x);
    }
    m
}

fn global(windows: &[&[i64]]) -> Vec<(Option<(i64, i64)>, Vec<i64>)> {
    windows.iter().map(|w| (None, w.to_vec())).collect()
}

fn check_count_windows(size: usize, slide: usize, want: BTreeMap<i64, Vec<Vec<i64>>>) {
    for workers in [1, 2] {
        for batch in [2, 1024] {
            let what = format!("size={size} slide={slide} workers={workers} batch={batch}");
            // apply: each firing sees exactly the window's values, in order, and no window info.
            let out = new_out();
            let spec = WindowSpec::Count { size, slide };
            let (plan, win) = window_plan(spec.clone(), WindowFunction::Apply(describe_window()), input(), &out);
            let summary = run_ok(plan, cfg_batch(workers, batch));
            let want_apply: BTreeMap<i64, _> =
                want.iter().map(|(k, ws)| (*k, global(&ws.iter().map(|w| w.as_slice()).collect::<Vec<_>>()))).collect();
            assert_eq!(per_key_windows(&out), want_apply, "apply {what}");
            let fired: u64 = want.values().map(|ws| ws.len() as u64).sum();
            assert_eq!(summary.counts[win], fired, "{what}");
            // reduce: the sum of each window.
            let out = new_out();
            let (plan, _) = window_plan(spec, WindowFunction::Reduce(sum_kv()), input(), &out);
            run_ok(plan, cfg_batch(workers, batch));
            let want_sums: BTreeMap<i64, Vec<i64>> =
                want.iter().map(|(k, ws)| (*k, ws.iter().map(|w| w.iter().sum()).collect())).collect();
            assert_eq!(per_key_sums(&out), want_sums, "reduce {what}");
        }
    }
}

#[test]
fn count_window_tumbling_with_partial_windows_at_end() {
    let want = BTreeMap::from([
        (1, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]),
        (2, vec![vec![10, 11, 12], vec![13, 14]]),
        // Six values: no partial window.
        (3, vec![vec![20, 21, 22], vec![23, 24, 25]]),
    ]);
    check_count_windows(3, 3, want);
}

#[test]
fn count_window_sliding() {
    // Every 2 elements, the last 4; at the end, the last 4 if any arrived since the last firing.
    let want = BTreeMap::from([
        (1, vec![vec![1, 2], vec![1, 2, 3, 4], vec![3, 4, 5, 6], vec![4, 5, 6, 7]]),
        (2, vec![vec![10, 11], vec![10, 11, 12, 13], vec![11, 12, 13, 14]]),
        (3, vec![vec![20, 21], vec![20, 21, 22, 23], vec![22, 23, 24, 25]]),
    ]);
    check_count_windows(4, 2, want);
}

#[test]
fn count_window_slide_larger_than_size() {
    // Every 3 elements, the last 2.
    let want = BTreeMap::from([
        (1, vec![vec![2, 3], vec![5, 6], vec![6, 7]]),
        (2, vec![vec![11, 12], vec![13, 14]]),
        (3, vec![vec![21, 22], vec![24, 25]]),
    ]);
    check_count_windows(2, 3, want);
}

#[test]
fn count_window_of_one() {
    let want: BTreeMap<i64, Vec<Vec<i64>>> = BTreeMap::from([
        (1, (1..=7).map(|x| vec![x]).collect()),
        (2, (10..=14).map(|x| vec![x]).collect()),
        (3, (20..=25).map(|x| vec![x]).collect()),
    ]);
    check_count_windows(1, 1, want);
}

fn clock_cfg(workers: usize, clock: Arc<TestClock>) -> ExecConfig {
    ExecConfig { workers, clock, ..ExecConfig::default() }
}

#[test]
fn processing_time_tumbling_window_with_a_fixed_clock() {
    for workers in [1, 2] {
        let out = new_out();
        let spec = WindowSpec::ProcessingTime { size_ms: 1000, slide_ms: 1000 };
        let (plan, win) = window_plan(spec, WindowFunction::Apply(describe_window()), input(), &out);
        let summary = run_ok(plan, clock_cfg(workers, TestClock::at(12_345)));
        let w = Some((12_000, 13_000));
        let want = BTreeMap::from([
            (1, vec![(w, (1..=7).collect::<Vec<_>>())]),
            (2, vec![(w, (10..=14).collect())]),
            (3, vec![(w, (20..=25).collect())]),
        ]);
        assert_eq!(per_key_windows(&out), want, "workers={workers}");
        assert_eq!(summary.counts[win], 3);
    }
}

#[test]
fn processing_time_windows_fire_at_end_of_input_without_waiting_for_their_end() {
    for workers in [1, 2] {
        let out = new_out();
        let hour = 3_600_000;
        let spec = WindowSpec::ProcessingTime { size_ms: hour, slide_ms: hour };
        let (plan, _) = window_plan(spec, WindowFunction::Apply(describe_window()), input(), &out);
        let t = Instant::now();
        run_ok(plan, clock_cfg(workers, TestClock::at(hour + 1)));
        assert!(t.elapsed() < Duration::from_secs(5), "workers={workers}: took {:?}", t.elapsed());
        let w = Some((hour, 2 * hour));
        let want = BTreeMap::from([
            (1, vec![(w, (1..=7).collect::<Vec<_>>())]),
            (2, vec![(w, (10..=14).collect())]),
            (3, vec![(w, (20..=25).collect())]),
        ]);
        assert_eq!(per_key_windows(&out), want, "workers={workers}");
    }
}

#[test]
fn processing_time_sliding_windows_with_a_fixed_clock() {
    for workers in [1, 2] {
        let out = new_out();
        let spec = WindowSpec::ProcessingTime { size_ms: 1000, slide_ms: 250 };
        let (plan, win) = window_plan(spec.clone(), WindowFunction::Apply(describe_window()), input(), &out);
        let summary = run_ok(plan, clock_cfg(workers, TestClock::at(12_345)));
        // 12345 lies in the windows starting at 11500, 11750, 12000 and 12250; they fire
        // at the end of input, earliest end first.
        let windows = [(11_500, 12_500), (11_750, 12_750), (12_000, 13_000), (12_250, 13_250)];
        let mut want = BTreeMap::new();
        for (k, vals) in [(1, (1..=7).collect::<Vec<i64>>()), (2, (10..=14).collect()), (3, (20..=25).collect())] {
            want.insert(k, windows.iter().map(|w| (Some(*w), vals.clone())).collect::<Vec<_>>());
        }
        assert_eq!(per_key_windows(&out), want, "workers={workers}");
        assert_eq!(summary.counts[win], 12);
        // Reduce over the same windows: one sum per key and window.
        let out = new_out();
        let (plan, _) = window_plan(spec, WindowFunction::Reduce(sum_kv()), input(), &out);
        run_ok(plan, clock_cfg(workers, TestClock::at(12_345)));
        let want: BTreeMap<i64, Vec<i64>> = BTreeMap::from([(1, vec![28; 4]), (2, vec![60; 4]), (3, vec![135; 4])]);
        assert_eq!(per_key_sums(&out), want, "workers={workers}");
    }
}

#[test]
fn processing_time_window_with_negative_time() {
    // Window starts round down also before the epoch.
    let out = new_out();
    let spec = WindowSpec::ProcessingTime { size_ms: 1000, slide_ms: 1000 };
    let (plan, _) = window_plan(spec, WindowFunction::Apply(describe_window()), kvs(&[(5, 1), (5, 2)]), &out);
    run_ok(plan, clock_cfg(2, TestClock::at(-1)));
    assert_eq!(per_key_windows(&out), BTreeMap::from([(5, vec![(Some((-1000, 0)), vec![1, 2])])]));
}

/// Emits a first pair of values at t=1050, waits until the window reduce has combined
/// them, moves the clock past the window's end, waits for the window's result to reach
/// the sink, then emits a second pair and ends.
struct Stepper {
    clock: Arc<TestClock>,
    combined: Arc<AtomicBool>,
    out: Out<V>,
    step: u32,
    since: Instant,
}

impl SourceReader<V> for Stepper {
    fn poll(&mut self, _max: usize, out: &mut Vec<V>) -> UdfResult<SourceStatus> {
        match self.step {
            0 => {
                out.extend(kvs(&[(1, 1), (1, 2)]));
                self.step = 1;
                self.since = Instant::now();
            }
            1 if self.combined.load(Ordering::SeqCst) || self.since.elapsed() > Duration::from_secs(5) => {
                self.clock.set(1150);
                self.step = 2;
                self.since = Instant::now();
            }
            2 if !self.out.lock().unwrap().is_empty() || self.since.elapsed() > Duration::from_secs(5) => {
                out.extend(kvs(&[(1, 10), (1, 20)]));
                self.step = 3;
                return Ok(SourceStatus::Done);
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
        Ok(SourceStatus::More)
    }
}

#[test]
fn processing_time_window_fires_when_the_clock_passes_its_end() {
    for workers in [1, 2] {
        let out = new_out();
        let clock = TestClock::at(1050);
        let combined = Arc::new(AtomicBool::new(false));
        let mut plan = Plan::new();
        let (c, comb, o) = (clock.clone(), combined.clone(), out.clone());
        let src = plan.add(
            "stepper",
            vec![],
            NodeKind::Source {
                factory: reader_source(move |_ctx| {
                    Ok(Stepper {
                        clock: c.clone(),
                        combined: comb.clone(),
                        out: o.clone(),
                        step: 0,
                        since: Instant::now(),
                    })
                }),
                parallel: false,
            },
        );
        let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
        let comb = combined.clone();
        let win = plan.add(
            "window",
            vec![keyed],
            NodeKind::Window {
                spec: WindowSpec::ProcessingTime { size_ms: 100, slide_ms: 100 },
                function: WindowFunction::Reduce(reducer(move |a: &V, b: &V| {
                    comb.store(true, Ordering::SeqCst);
                    V::KV(a.kv().0, a.kv().1 + b.kv().1)
                })),
            },
        );
        plan.add("sink", vec![win], NodeKind::Sink(sink(&out)));
        let t = Instant::now();
        run_ok(plan, clock_cfg(workers, clock));
        assert!(t.elapsed() < Duration::from_secs(4), "workers={workers}: took {:?}", t.elapsed());
        // [1000, 1100) fired while the job ran; [1100, 1200) at the end of input.
        assert_eq!(values(&out), kvs(&[(1, 3), (1, 30)]), "workers={workers}");
    }
}

/// A window function counting, in keyed state, how often its key's windows fired:
/// emits `(key, count so far)` per firing (also the `then` of a reduce).
fn firing_counter() -> ApplyFactory<V> {
    Arc::new(|_w: &WorkerContext, state: &SharedContext<V>| {
        let id = lock(state).state.register(&StateDescriptor::new("firings", StateKind::Value))?;
        let state = state.clone();
        Ok(Box::new(ApplyFn(move |key: &V, _ctx: &WindowContext, _values: Vec<V>| {
            let mut c = lock(&state);
            let (backend, now) = c.state_for_access()?;
            let n = match backend.value(id, now)? {
                Some(V::I(n)) => n + 1,
                _ => 1,
            };
            backend.update(id, V::I(n), now)?;
            Ok(vec![V::KV(key.int(), n)])
        })) as Box<dyn WindowApply<V>>)
    })
}

#[test]
fn window_function_state_is_per_key_across_firings() {
    // Count windows of 2: key 1 (7 values) fires 4 times (the last at the end of
    // input), keys 2 and 3 three times; each firing sees its own key's count.
    let want = BTreeMap::from([(1, vec![1, 2, 3, 4]), (2, vec![1, 2, 3]), (3, vec![1, 2, 3])]);
    for workers in [1, 2] {
        for function in
            [WindowFunction::Apply(firing_counter()), WindowFunction::ReduceThen(sum_kv(), firing_counter())]
        {
            let out = new_out();
            let (plan, _) = window_plan(WindowSpec::Count { size: 2, slide: 2 }, function, input(), &out);
            run_ok(plan, cfg(workers));
            assert_eq!(per_key_sums(&out), want, "workers={workers}");
        }
    }
}
