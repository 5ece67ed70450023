//! Checkpoints of the window core (`WindowCore::snapshot` / `restore`, issue 13):
//! random out-of-order streams of (key, timestamp) interleaved with watermarks and clock
//! readings, for every assigner x trigger (x purging, evictors, lateness, values or an
//! aggregate), cut at a random point.
//!
//! - `restore_mid_stream_changes_nothing`: a core restored from a snapshot at the cut,
//!   fed the rest of the stream, fires exactly what the core that was never stopped
//!   fires (which `event_windows_props.rs` checks against its model), element outcomes,
//!   end of input included; and taking the snapshot leaves the running core as it was.
//! - `rescale_2_to_1_and_3`: two cores, each fed the keys `Restore::owns` gives it,
//!   snapshot at the cut and restore into one and into three; every key's windows land
//!   on exactly one instance, and together they fire what one core fed everything does.
//! - corrupt sections are errors, never panics.

mod common;

use std::collections::BTreeSet;

use common::V;
use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::checkpoint::state_io::{StateReader, StateWriter};
use ferroflow_engine::key::{key_of, Key};
use ferroflow_engine::windows::event_time::*;
use ferroflow_engine::UdfResult;
use proptest::prelude::*;

/// The dynamic session gap of a record: 1..=9.
fn gap_of(v: &V) -> i64 {
    1 + (v.int() * 7).rem_euclid(9)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    El { key: u8, ts: i64 },
    Wm(i64),
    Clock(i64),
}

/// One firing, comparable: (key, start, end, ids, purged, cause).
type Out = (Key, i64, i64, Vec<i64>, bool, Cause);

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Assigned(Vec<Out>),
    Late(i64),
    Dropped(DropReason),
}

/// Collects ids sorted in an accumulator that is a record (the operator's shape:
/// `Option<R>`), so adding and merging in any order agree.
struct SortedIds;

fn ids_of(v: &V) -> Vec<i64> {
    match v {
        V::Win { values, .. } => values.iter().map(V::int).collect(),
        other => panic!("not an accumulator: {other:?}"),
    }
}

fn acc_of(ids: Vec<i64>) -> V {
    V::Win { key: Box::new(V::I(0)), window: None, values: ids.into_iter().map(V::I).collect() }
}

impl AggregateFunction<V> for SortedIds {
    type Acc = Option<V>;
    type Out = V;
    fn create_accumulator(&mut self) -> UdfResult<Option<V>> {
        Ok(Some(acc_of(vec![])))
    }
    fn add(&mut self, v: &V, acc: Option<V>) -> UdfResult<Option<V>> {
        let mut ids = acc.as_ref().map(ids_of).unwrap_or_default();
        let at = ids.partition_point(|x| *x < v.int());
        ids.insert(at, v.int());
        Ok(Some(acc_of(ids)))
    }
    fn get_result(&mut self, acc: &Option<V>) -> UdfResult<V> {
        Ok(acc.clone().unwrap_or_else(|| acc_of(vec![])))
    }
    fn merge(&mut self, a: Option<V>, b: Option<V>) -> UdfResult<Option<V>> {
        let mut ids: Vec<i64> = a.iter().chain(b.iter()).flat_map(ids_of).collect();
        ids.sort();
        Ok(Some(acc_of(ids)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum A {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(Option<i64>),
    Global,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum T {
    Default,
    EventTime,
    ProcessingTime,
    Count(u64),
    ContinuousEvent(i64),
    ContinuousProcessing(i64),
}

#[derive(Clone, Copy, Debug)]
struct Setup {
    a: A,
    event: bool,
    t: T,
    purging: bool,
    evictor: Option<Evictor>,
    lateness: i64,
    late_output: bool,
    aggregate: bool,
}

enum Core {
    Values(WindowCore<Key, V>),
    Agg(WindowCore<Key, V, SortedIds>),
}

fn out_of(key: Key, window: Window, ids: Vec<i64>, purged: bool, cause: Cause) -> Out {
    (key, window.start(), window.end(), ids, purged, cause)
}

fn outs_v(fs: Vec<Firing<Key, V, std::convert::Infallible>>) -> Vec<Out> {
    fs.into_iter()
        .map(|f| {
            let Contents::Values(v) = f.contents;
            out_of(f.key, f.window, v.iter().map(V::int).collect(), f.purged, f.cause)
        })
        .collect()
}

fn outs_a(fs: Vec<Firing<Key, V, V>>) -> Vec<Out> {
    fs.into_iter()
        .map(|f| {
            let Contents::Aggregate(v) = f.contents else { panic!("values from an aggregating core") };
            out_of(f.key, f.window, ids_of(&v), f.purged, f.cause)
        })
        .collect()
}

fn outcome<O>(o: ElementOutcome<Key, V, O>, conv: impl Fn(Vec<Firing<Key, V, O>>) -> Vec<Out>) -> Outcome {
    match o {
        ElementOutcome::Assigned(f) => Outcome::Assigned(conv(f)),
        ElementOutcome::Late(r) => Outcome::Late(r.value.int()),
        ElementOutcome::Dropped(d) => Outcome::Dropped(d),
    }
}

impl Core {
    fn new(s: &Setup) -> Core {
        let event = s.event && s.a != A::Global;
        let assigner: Assigner<V> = match (s.a, event) {
            (A::Tumbling(size), true) => Assigner::tumbling_event_time(size, 0),
            (A::Tumbling(size), false) => Assigner::tumbling_processing_time(size, 0),
            (A::Sliding(size, slide), true) => Assigner::sliding_event_time(size, slide, 0),
            (A::Sliding(size, slide), false) => Assigner::sliding_processing_time(size, slide, 0),
            (A::Session(Some(g)), true) => Assigner::event_time_session(g),
            (A::Session(Some(g)), false) => Assigner::processing_time_session(g),
            (A::Session(None), true) => Assigner::event_time_session_dynamic(|v: &V| Ok(gap_of(v))),
            (A::Session(None), false) => Assigner::processing_time_session_dynamic(|v: &V| Ok(gap_of(v))),
            (A::Global, _) => Assigner::global(),
        };
        let base = match s.t {
            T::Default => None,
            T::EventTime => Some(Trigger::EventTime),
            T::ProcessingTime => Some(Trigger::ProcessingTime),
            T::Count(n) => Some(Trigger::Count(n)),
            T::ContinuousEvent(i) => Some(Trigger::ContinuousEventTime(i)),
            T::ContinuousProcessing(i) => Some(Trigger::ContinuousProcessingTime(i)),
        };
        let mut config = WindowConfig::new(assigner).allowed_lateness(s.lateness);
        let base = base.unwrap_or_else(|| config.assigner.default_trigger());
        config = config.trigger(if s.purging { Trigger::purging(base) } else { base });
        if let Some(e) = s.evictor {
            config = config.evictor(e);
        }
        if s.late_output {
            config = config.side_output_late_data();
        }
        if s.aggregate {
            Core::Agg(WindowCore::with_aggregate(config, SortedIds).unwrap())
        } else {
            Core::Values(WindowCore::new(config).unwrap())
        }
    }

    fn element(&mut self, key: u8, ts: i64, id: i64) -> Outcome {
        let key = key_of(&i64::from(key));
        match self {
            Core::Values(c) => outcome(c.on_element(key, ts, V::I(id)).unwrap(), outs_v),
            Core::Agg(c) => outcome(c.on_element(key, ts, V::I(id)).unwrap(), outs_a),
        }
    }

    fn watermark(&mut self, w: i64) -> Vec<Out> {
        match self {
            Core::Values(c) => outs_v(c.on_watermark(w).unwrap()),
            Core::Agg(c) => outs_a(c.on_watermark(w).unwrap()),
        }
    }

    fn clock(&mut self, now: i64) -> Vec<Out> {
        match self {
            Core::Values(c) => outs_v(c.on_processing_time(now).unwrap()),
            Core::Agg(c) => outs_a(c.on_processing_time(now).unwrap()),
        }
    }

    fn finish(&mut self) -> Vec<Out> {
        match self {
            Core::Values(c) => outs_v(c.finish().unwrap()),
            Core::Agg(c) => outs_a(c.finish().unwrap()),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut w = StateWriter::<V>::new();
        match self {
            Core::Values(c) => c.snapshot(&mut w).unwrap(),
            Core::Agg(c) => c.snapshot(&mut w).unwrap(),
        }
        w.into_bytes()
    }

    /// Reads every section of `from` as a restoring operator does.
    fn restore(&mut self, from: &Restore<'_>) -> Result<(), String> {
        for section in from.non_empty() {
            let mut r = StateReader::<V>::new(section);
            match self {
                Core::Values(c) => c.restore(&mut r, |k| from.owns(k)),
                Core::Agg(c) => c.restore(&mut r, |k| from.owns(k)),
            }
            .map_err(|e| e.to_string())?;
            r.finish().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn windows_of(&self, key: &Key) -> Vec<Window> {
        match self {
            Core::Values(c) => c.windows_of(key),
            Core::Agg(c) => c.windows_of(key),
        }
    }

    fn counts(&self) -> (usize, (usize, usize), i64, i64) {
        match self {
            Core::Values(c) => (c.open_windows(), c.pending_timers(), c.watermark(), c.processing_time()),
            Core::Agg(c) => (c.open_windows(), c.pending_timers(), c.watermark(), c.processing_time()),
        }
    }
}

/// One step's result, whatever the op.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    El(Outcome),
    Fired(Vec<Out>),
}

/// Feeds `ops` (numbered from `first_id` for elements) to the cores, each element to
/// the core `route` picks, watermarks and clock readings to all; per op, what came
/// out (firings of several cores sorted together).
fn feed(
    cores: &mut [Core],
    ops: &[Op],
    clocks: &mut (i64, i64),
    first_id: i64,
    route: &dyn Fn(u8) -> usize,
) -> Vec<Step> {
    let mut id = first_id;
    let mut steps = Vec::new();
    for op in ops {
        steps.push(match *op {
            Op::El { key, ts } => {
                id += 1;
                Step::El(cores[route(key)].element(key, ts, id))
            }
            Op::Wm(d) => {
                clocks.0 += d;
                let mut outs: Vec<Out> = cores.iter_mut().flat_map(|c| c.watermark(clocks.0)).collect();
                if cores.len() > 1 {
                    outs.sort();
                }
                Step::Fired(outs)
            }
            Op::Clock(d) => {
                clocks.1 += d;
                let mut outs: Vec<Out> = cores.iter_mut().flat_map(|c| c.clock(clocks.1)).collect();
                if cores.len() > 1 {
                    outs.sort();
                }
                Step::Fired(outs)
            }
        });
    }
    steps
}

fn finish_all(cores: &mut [Core]) -> Vec<Out> {
    let mut outs: Vec<Out> = cores.iter_mut().flat_map(Core::finish).collect();
    outs.sort();
    outs
}

fn elements_before(ops: &[Op]) -> i64 {
    ops.iter().filter(|o| matches!(o, Op::El { .. })).count() as i64
}

fn owner(key: u8, peers: usize) -> usize {
    (0..peers).find(|w| Restore::new(vec![], *w, peers).owns(&key_of(&i64::from(key)))).expect("one owner")
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..5, 0i64..60).prop_map(|(key, ts)| Op::El { key, ts }),
        2 => (0i64..12).prop_map(Op::Wm),
        2 => (0i64..12).prop_map(Op::Clock),
    ]
}

#[derive(Clone, Debug)]
struct Params {
    size: i64,
    slide: i64,
    gap: i64,
    count: u64,
    interval: i64,
    evictor: Option<Evictor>,
    lateness: i64,
    late_output: bool,
    aggregate: bool,
}

fn params() -> impl Strategy<Value = Params> {
    (
        (1i64..16, 1i64..20, 1i64..12, 1u64..5, 1i64..9),
        prop_oneof![2 => Just(None), 1 => (1usize..4).prop_map(|n| Some(Evictor::Count(n))), 1 => (1i64..10).prop_map(|s| Some(Evictor::Time(s)))],
        prop_oneof![Just(0i64), 0i64..15],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|((size, slide, gap, count, interval), evictor, lateness, late_output, aggregate)| Params {
            size,
            slide,
            gap,
            count,
            interval,
            evictor,
            lateness,
            late_output,
            aggregate,
        })
}

/// Every assigner x trigger x purging of one case.
fn setups(p: &Params) -> Vec<Setup> {
    let mut assigners = vec![(A::Global, false)];
    for event in [true, false] {
        assigners.push((A::Tumbling(p.size), event));
        assigners.push((A::Sliding(p.size, p.slide), event));
        assigners.push((A::Session(Some(p.gap)), event));
        assigners.push((A::Session(None), event));
    }
    let triggers = [
        T::Default,
        T::EventTime,
        T::ProcessingTime,
        T::Count(p.count),
        T::ContinuousEvent(p.interval),
        T::ContinuousProcessing(p.interval),
    ];
    let mut v = Vec::new();
    for (a, event) in assigners {
        for t in triggers {
            for purging in [false, true] {
                v.push(Setup {
                    a,
                    event,
                    t,
                    purging,
                    evictor: p.evictor,
                    lateness: p.lateness,
                    late_output: p.late_output,
                    aggregate: p.aggregate,
                });
            }
        }
    }
    v
}

fn restored(s: &Setup, sections: &[&[u8]], worker: usize, peers: usize) -> Core {
    let mut core = Core::new(s);
    core.restore(&Restore::new(sections.to_vec(), worker, peers)).unwrap();
    core
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn restore_mid_stream_changes_nothing(
        p in params(),
        ops in prop::collection::vec(op_strategy(), 0..40),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(ops.len() + 1);
        let (before, after) = ops.split_at(cut);
        for s in setups(&p) {
            let one = |_: u8| 0;
            let mut clocks = (0, 0);
            let mut running = [Core::new(&s)];
            running[0].clock(0);
            feed(&mut running, before, &mut clocks, 0, &one);
            let bytes = running[0].snapshot();
            let mut back = [restored(&s, &[&bytes], 0, 1)];
            prop_assert_eq!(back[0].counts(), running[0].counts(), "{:?}", s);
            // A snapshot of the restored core restores to the same again.
            let again = back[0].snapshot();
            prop_assert_eq!(restored(&s, &[&again], 0, 1).counts(), running[0].counts());
            let n = elements_before(before);
            let mut clocks_back = clocks;
            let want = feed(&mut running, after, &mut clocks, n, &one);
            let got = feed(&mut back, after, &mut clocks_back, n, &one);
            prop_assert_eq!(&got, &want, "{:?}\ncut {} of {:?}", s, cut, ops);
            prop_assert_eq!(finish_all(&mut back), finish_all(&mut running), "{:?}\ncut {} of {:?}", s, cut, ops);
        }
    }

    #[test]
    fn rescale_2_to_1_and_3(
        p in params(),
        ops in prop::collection::vec(op_strategy(), 0..40),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(ops.len() + 1);
        let (before, after) = ops.split_at(cut);
        let keys: BTreeSet<u8> = ops.iter().filter_map(|o| match o { Op::El { key, .. } => Some(*key), _ => None }).collect();
        for s in setups(&p) {
            let mut clocks = (0, 0);
            let mut whole = [Core::new(&s)];
            whole[0].clock(0);
            feed(&mut whole, before, &mut clocks, 0, &|_| 0);
            let mut two = [Core::new(&s), Core::new(&s)];
            two.iter_mut().for_each(|c| drop(c.clock(0)));
            let mut clocks_two = (0, 0);
            let by_two = |k: u8| owner(k, 2);
            feed(&mut two, before, &mut clocks_two, 0, &by_two);
            let sections: Vec<Vec<u8>> = two.iter().map(Core::snapshot).collect();
            let sections: Vec<&[u8]> = sections.iter().map(|s| &s[..]).collect();
            let n = elements_before(before);
            let want_steps = feed(&mut whole, after, &mut clocks.clone(), n, &|_| 0);
            let want_end = finish_all(&mut whole);
            for peers in [1usize, 3] {
                let mut cores: Vec<Core> = (0..peers).map(|w| restored(&s, &sections, w, peers)).collect();
                // Every key's windows are on its owner, and only there.
                for &k in &keys {
                    let key = key_of(&i64::from(k));
                    for (w, c) in cores.iter().enumerate() {
                        if w != owner(k, peers) {
                            prop_assert!(c.windows_of(&key).is_empty(), "key {} on {} of {}", k, w, peers);
                        }
                    }
                    let on_owner = cores[owner(k, peers)].windows_of(&key);
                    let before_split = two[by_two(k)].windows_of(&key);
                    prop_assert_eq!(on_owner, before_split);
                }
                let by_new = |k: u8| owner(k, peers);
                let got_steps = feed(&mut cores, after, &mut clocks.clone(), n, &by_new);
                // Firings of one op come from several cores: compare them as sets.
                let sorted = |steps: &[Step]| -> Vec<Step> {
                    steps.iter().cloned().map(|st| match st {
                        Step::Fired(mut f) => { f.sort(); Step::Fired(f) }
                        Step::El(Outcome::Assigned(mut f)) => { f.sort(); Step::El(Outcome::Assigned(f)) }
                        other => other,
                    }).collect()
                };
                prop_assert_eq!(sorted(&got_steps), sorted(&want_steps), "{:?} into {}\ncut {} of {:?}", s, peers, cut, ops);
                prop_assert_eq!(finish_all(&mut cores), want_end.clone(), "{:?} into {}", s, peers);
            }
        }
    }

    /// A section cut short or with bytes flipped is an error or some state, never a panic.
    #[test]
    fn corrupt_sections_do_not_panic(
        p in params(),
        ops in prop::collection::vec(op_strategy(), 1..30),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let s = Setup { a: A::Session(Some(p.gap)), event: true, t: T::ContinuousEvent(p.interval), ..setups(&p)[0] };
        let mut core = [Core::new(&s)];
        feed(&mut core, &ops, &mut (0, 0), 0, &|_| 0);
        let bytes = core[0].snapshot();
        let i = at.index(bytes.len());
        // A cut at 0 is an empty section, which is how an instance that held nothing
        // writes: it restores as nothing.
        prop_assert!(i == 0 || Core::new(&s).restore(&Restore::new(vec![&bytes[..i]], 0, 1)).is_err());
        let mut flipped = bytes.clone();
        flipped[i] ^= flip;
        let _ = Core::new(&s).restore(&Restore::new(vec![&flipped], 0, 1));
    }
}

#[test]
fn a_section_of_another_kind_of_core_is_refused() {
    let values = Setup {
        a: A::Tumbling(10),
        event: true,
        t: T::Default,
        purging: false,
        evictor: None,
        lateness: 0,
        late_output: false,
        aggregate: false,
    };
    let mut core = [Core::new(&values)];
    feed(&mut core, &[Op::El { key: 1, ts: 3 }], &mut (0, 0), 0, &|_| 0);
    let bytes = core[0].snapshot();
    let err = Core::new(&Setup { aggregate: true, ..values }).restore(&Restore::new(vec![&bytes], 0, 1)).unwrap_err();
    assert!(err.contains("a window storing kind 1, which this window core does not keep"), "{err}");
}
