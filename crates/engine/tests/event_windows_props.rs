//! Property tests of the window core (`windows::event_time::WindowCore`): random
//! out-of-order streams of (key, timestamp, value) interleaved with non-decreasing
//! watermarks and clock readings, for every assigner x trigger (x purging), against plain
//! reference models written here:
//!
//! - `Model`: a direct simulation per window. Windows are assigned by brute force,
//!   sessions are re-derived by scanning, and there is no timer queue: at each watermark
//!   or clock step, every window works out which of its fire points the step passes.
//! - `definitional_*`: for the default event-time trigger, the firings computed from the
//!   whole history at each step (which windows' ends the watermark passed, and which
//!   records each window took).
//!
//! Also checked: the core is empty after `finish()`, and nothing is lost: every record is
//! in some firing, late (side output or counted), or counted as discarded / evicted.

use std::collections::{BTreeMap, BTreeSet};

use ferroflow_engine::windows::event_time::*;
use ferroflow_engine::UdfResult;
use proptest::prelude::*;

// ---------------------------------------------------------------- the setup

#[derive(Clone, Copy, Debug, PartialEq)]
enum A {
    Tumbling {
        size: i64,
        offset: i64,
    },
    Sliding {
        size: i64,
        slide: i64,
        offset: i64,
    },
    /// `None`: dynamic gap, [`gap_of`].
    Session(Option<i64>),
    Global,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum T {
    Default,
    EventTime,
    ProcessingTime,
    Count(u64),
    Continuous(i64),
    Never,
}

#[derive(Clone, Copy, Debug)]
struct Setup {
    a: A,
    /// Event-time assigner (ignored for `Global`, which is not event time).
    event: bool,
    t: T,
    purging: bool,
    evictor: Option<Evictor>,
    lateness: i64,
    late_output: bool,
    end: EndOfInput,
    aggregate: bool,
}

impl Setup {
    fn event_time(&self) -> bool {
        self.event && self.a != A::Global
    }

    /// The trigger in force, without the purging wrapper.
    fn base(&self) -> T {
        match self.t {
            T::Default if self.a == A::Global => T::Never,
            T::Default if self.event_time() => T::EventTime,
            T::Default => T::ProcessingTime,
            t => t,
        }
    }

    fn lateness(&self) -> i64 {
        if self.event_time() {
            self.lateness
        } else {
            0
        }
    }
}

/// The dynamic session gap of a value: 1..=9.
fn gap_of(v: i64) -> i64 {
    1 + (v * 7).rem_euclid(9)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    El { key: u8, ts: i64 },
    Wm(i64),
    Clock(i64),
}

/// One firing, comparable: (key, start, end, values, purged, cause). Values are the ids
/// in arrival order, or sorted for the aggregate (a sorted-multiset accumulator).
type Out = (u8, i64, i64, Vec<i64>, bool, Cause);

/// A firing with the timer it came from, to sort by: (time, key, start, end, 0 fire / 1 clean-up).
type Tagged = ((i64, u8, i64, i64, u8), Out);

/// The records taken so far: (key, ts, id, the windows that took it).
type Taken = Vec<(u8, i64, i64, Vec<(i64, i64)>)>;

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Assigned(Vec<Out>),
    Late(i64),
    DroppedLate,
    NoWindow,
}

// ---------------------------------------------------------------- the core under test

/// Collects ids into a sorted list: merging and adding in any order give the same result.
struct SortedIds;

impl AggregateFunction<i64> for SortedIds {
    type Acc = Vec<i64>;
    type Out = Vec<i64>;
    fn create_accumulator(&mut self) -> UdfResult<Vec<i64>> {
        Ok(Vec::new())
    }
    fn add(&mut self, v: &i64, mut acc: Vec<i64>) -> UdfResult<Vec<i64>> {
        let at = acc.partition_point(|x| x < v);
        acc.insert(at, *v);
        Ok(acc)
    }
    fn get_result(&mut self, acc: &Vec<i64>) -> UdfResult<Vec<i64>> {
        Ok(acc.clone())
    }
    fn merge(&mut self, mut a: Vec<i64>, b: Vec<i64>) -> UdfResult<Vec<i64>> {
        a.extend(b);
        a.sort();
        Ok(a)
    }
}

enum Core {
    Values(WindowCore<u8, i64>),
    Agg(WindowCore<u8, i64, SortedIds>),
}

fn outs_v(fs: Vec<Firing<u8, i64, std::convert::Infallible>>) -> Vec<Out> {
    fs.into_iter()
        .map(|f| {
            let Contents::Values(v) = f.contents;
            (f.key, f.window.start(), f.window.end(), v, f.purged, f.cause)
        })
        .collect()
}

fn outs_a(fs: Vec<Firing<u8, i64, Vec<i64>>>) -> Vec<Out> {
    fs.into_iter()
        .map(|f| {
            let Contents::Aggregate(v) = f.contents else { panic!("values from an aggregating core") };
            (f.key, f.window.start(), f.window.end(), v, f.purged, f.cause)
        })
        .collect()
}

fn outcome<O>(o: ElementOutcome<u8, i64, O>, conv: impl Fn(Vec<Firing<u8, i64, O>>) -> Vec<Out>) -> Outcome {
    match o {
        ElementOutcome::Assigned(f) => Outcome::Assigned(conv(f)),
        ElementOutcome::Late(r) => Outcome::Late(r.value),
        ElementOutcome::Dropped(DropReason::Late) => Outcome::DroppedLate,
        ElementOutcome::Dropped(DropReason::NoWindow) => Outcome::NoWindow,
    }
}

impl Core {
    fn new(s: &Setup) -> Core {
        let domain_event = s.event_time();
        let assigner: Assigner<i64> = match (s.a, domain_event) {
            (A::Tumbling { size, offset }, true) => Assigner::tumbling_event_time(size, offset),
            (A::Tumbling { size, offset }, false) => Assigner::tumbling_processing_time(size, offset),
            (A::Sliding { size, slide, offset }, true) => Assigner::sliding_event_time(size, slide, offset),
            (A::Sliding { size, slide, offset }, false) => Assigner::sliding_processing_time(size, slide, offset),
            (A::Session(Some(g)), true) => Assigner::event_time_session(g),
            (A::Session(Some(g)), false) => Assigner::processing_time_session(g),
            (A::Session(None), true) => Assigner::event_time_session_dynamic(|v: &i64| Ok(gap_of(*v))),
            (A::Session(None), false) => Assigner::processing_time_session_dynamic(|v: &i64| Ok(gap_of(*v))),
            (A::Global, _) => Assigner::global(),
        };
        let base = match s.base() {
            T::EventTime => Trigger::EventTime,
            T::ProcessingTime => Trigger::ProcessingTime,
            T::Count(n) => Trigger::Count(n),
            T::Continuous(i) => Trigger::ContinuousEventTime(i),
            T::Never => Trigger::Never,
            T::Default => unreachable!(),
        };
        let mut config = WindowConfig::new(assigner).allowed_lateness(s.lateness).end_of_input(s.end);
        if s.purging {
            config = config.trigger(Trigger::purging(base));
        } else if s.t != T::Default {
            config = config.trigger(base);
        }
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
        match self {
            Core::Values(c) => outcome(c.on_element(key, ts, id).unwrap(), outs_v),
            Core::Agg(c) => outcome(c.on_element(key, ts, id).unwrap(), outs_a),
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

    fn open_windows(&self) -> usize {
        match self {
            Core::Values(c) => c.open_windows(),
            Core::Agg(c) => c.open_windows(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Core::Values(c) => c.is_empty(),
            Core::Agg(c) => c.is_empty(),
        }
    }

    fn stats(&self) -> WindowStats {
        match self {
            Core::Values(c) => c.stats(),
            Core::Agg(c) => c.stats(),
        }
    }
}

// ---------------------------------------------------------------- the reference model

/// One window's state in the model.
#[derive(Clone, Debug, Default)]
struct W {
    /// (id, ts) in arrival order.
    elems: Vec<(i64, i64)>,
    /// Records added since the last firing.
    fresh: u64,
    /// CountTrigger's count.
    count: u64,
    /// ContinuousEventTimeTrigger's next fire timestamp (set by the first record).
    fire_ts: Option<i64>,
    /// Whether a periodic fire point is pending, and where.
    periodic: Option<i64>,
    /// Whether ProcessingTimeTrigger's end-of-window timer is pending.
    proc_pending: bool,
}

struct Model {
    s: Setup,
    wm: i64,
    clock: i64,
    /// (key, start, end) -> state.
    wins: BTreeMap<(u8, i64, i64), W>,
    stats: WindowStats,
}

/// Brute force: the start of the tumbling window of `t`.
fn naive_tumbling(t: i64, size: i64, offset: i64) -> (i64, i64) {
    let mut s = t;
    while (s - offset).rem_euclid(size) != 0 {
        s -= 1;
    }
    (s, s + size)
}

/// Brute force: every window `[s, s + size)` with `s = offset + k * slide` containing `t`.
fn naive_sliding(t: i64, size: i64, slide: i64, offset: i64) -> Vec<(i64, i64)> {
    (t - size + 1..=t).filter(|s| (s - offset).rem_euclid(slide) == 0).map(|s| (s, s + size)).collect()
}

impl Model {
    fn new(s: Setup) -> Model {
        Model { s, wm: i64::MIN, clock: i64::MIN, wins: BTreeMap::new(), stats: WindowStats::default() }
    }

    fn max_ts(&self, w: (i64, i64)) -> i64 {
        if self.s.a == A::Global {
            i64::MAX
        } else {
            w.1 - 1
        }
    }

    /// When the window's state goes: its end plus the lateness (event time), its end
    /// (processing time); never for the global window.
    fn cleanup(&self, w: (i64, i64)) -> i64 {
        if self.s.a == A::Global {
            i64::MAX
        } else {
            self.max_ts(w) + self.s.lateness()
        }
    }

    fn late(&self, w: (i64, i64)) -> bool {
        self.s.event_time() && self.cleanup(w) <= self.wm
    }

    /// Fires a window: evict, hand out, maybe purge. Nothing if it holds nothing.
    fn fire(&mut self, key: u8, w: (i64, i64), purge: bool, cause: Cause, out: &mut Vec<Out>) {
        let evictor = self.s.evictor;
        let aggregate = self.s.aggregate;
        let st = self.wins.get_mut(&(key, w.0, w.1)).unwrap();
        if st.elems.is_empty() {
            return;
        }
        let before = st.elems.len();
        match evictor {
            Some(Evictor::Count(n)) => {
                while st.elems.len() > n {
                    st.elems.remove(0);
                }
            }
            Some(Evictor::Time(span)) => {
                let max = st.elems.iter().map(|e| e.1).max().unwrap();
                st.elems.retain(|e| e.1 > max - span);
            }
            None => {}
        }
        self.stats.evicted += (before - st.elems.len()) as u64;
        let mut ids: Vec<i64> = st.elems.iter().map(|e| e.0).collect();
        if aggregate {
            ids.sort();
        }
        st.fresh = 0;
        if purge {
            st.elems.clear();
        }
        out.push((key, w.0, w.1, ids, purge, cause));
    }

    fn remove(&mut self, key: u8, w: (i64, i64)) {
        let st = self.wins.remove(&(key, w.0, w.1)).unwrap();
        self.stats.discarded += st.fresh;
    }

    fn element(&mut self, key: u8, ts: i64, id: i64) -> Outcome {
        let t = if self.s.event_time() { ts } else { self.clock };
        let windows: Vec<(i64, i64)> = match self.s.a {
            A::Tumbling { size, offset } => vec![naive_tumbling(t, size, offset)],
            A::Sliding { size, slide, offset } => naive_sliding(t, size, slide, offset),
            A::Global => vec![(i64::MIN, i64::MAX)],
            A::Session(gap) => {
                let new = (t, t + gap.unwrap_or_else(|| gap_of(id)));
                // The key's open windows touching the new one, transitively.
                let mut cover = new;
                let mut group: Vec<(i64, i64)> = Vec::new();
                loop {
                    let touching: Vec<(i64, i64)> = self
                        .wins
                        .keys()
                        .filter(|k| k.0 == key)
                        .map(|k| (k.1, k.2))
                        .filter(|w| !group.contains(w) && w.0 <= cover.1 && w.1 >= cover.0)
                        .collect();
                    if touching.is_empty() {
                        break;
                    }
                    for w in touching {
                        cover = (cover.0.min(w.0), cover.1.max(w.1));
                        group.push(w);
                    }
                }
                if group.is_empty() {
                    vec![new]
                } else if group == vec![cover] {
                    vec![cover]
                } else {
                    let mut merged = W::default();
                    for w in group {
                        let old = self.wins.remove(&(key, w.0, w.1)).unwrap();
                        merged.elems.extend(old.elems);
                        merged.fresh += old.fresh;
                        merged.count += old.count;
                        merged.fire_ts = match (merged.fire_ts, old.fire_ts) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    merged.elems.sort();
                    merged.periodic = merged.fire_ts;
                    self.wins.insert((key, cover.0, cover.1), merged);
                    vec![cover]
                }
            }
        };
        let mut out = Vec::new();
        let mut accepted = false;
        for w in windows {
            if self.late(w) {
                continue;
            }
            accepted = true;
            let max = self.max_ts(w);
            let wm = self.wm;
            let st = self.wins.entry((key, w.0, w.1)).or_default();
            st.elems.push((id, ts));
            st.fresh += 1;
            let fire = match self.s.base() {
                T::EventTime => max <= wm,
                T::Continuous(i) => {
                    if max <= wm {
                        true
                    } else {
                        if st.fire_ts.is_none() {
                            let f = (ts - ts % i + i).min(max);
                            st.fire_ts = Some(f);
                            st.periodic = Some(f);
                        }
                        false
                    }
                }
                T::Count(n) => {
                    st.count += 1;
                    if st.count >= n {
                        st.count = 0;
                        true
                    } else {
                        false
                    }
                }
                T::ProcessingTime => {
                    st.proc_pending = true;
                    false
                }
                T::Never => false,
                T::Default => unreachable!(),
            };
            if fire {
                self.fire(key, w, self.s.purging, Cause::Element, &mut out);
            }
        }
        if accepted {
            out.sort_by_key(|o| (o.2, o.1));
            return Outcome::Assigned(out);
        }
        if self.s.event_time() && ts + self.s.lateness() <= self.wm {
            if self.s.late_output {
                self.stats.late_side_output += 1;
                Outcome::Late(id)
            } else {
                self.stats.late_dropped += 1;
                Outcome::DroppedLate
            }
        } else {
            self.stats.no_window += 1;
            Outcome::NoWindow
        }
    }

    /// The watermark goes from `self.wm` to `w2`: each window fires at the fire points in
    /// between and is cleaned up if its clean-up time is in between.
    fn watermark(&mut self, w2: i64, finishing: bool) -> Vec<Out> {
        if w2 <= self.wm {
            return vec![];
        }
        let w1 = self.wm;
        self.wm = w2;
        let mut tagged: Vec<Tagged> = Vec::new();
        let keys: Vec<(u8, i64, i64)> = self.wins.keys().copied().collect();
        for (key, s, e) in keys {
            let w = (s, e);
            let max = self.max_ts(w);
            let mut points = BTreeSet::new();
            let base = self.s.base();
            if matches!(base, T::EventTime | T::Continuous(_)) && w1 < max && max <= w2 {
                points.insert(max);
            }
            if let Some(p) = self.wins[&(key, s, e)].periodic {
                if p <= w2 {
                    points.insert(p);
                }
            }
            while let Some(t) = points.pop_first() {
                let st = self.wins.get_mut(&(key, s, e)).unwrap();
                if t == max {
                    if st.periodic == Some(max) {
                        st.periodic = None;
                    }
                } else if let T::Continuous(i) = base {
                    // Next point: t + i, or if the watermark is already past it, the first
                    // t + k * i above the watermark; never beyond the window's end.
                    let mut next = t as i128 + i as i128;
                    if next <= w2 as i128 && next < max as i128 {
                        next = t as i128 + ((w2 as i128 - t as i128) / i as i128 + 1) * i as i128;
                    }
                    let next = next.min(max as i128) as i64;
                    st.fire_ts = Some(next);
                    st.periodic = Some(next);
                    if next <= w2 {
                        points.insert(next);
                    }
                }
                let mut out = Vec::new();
                self.fire(key, w, self.s.purging, Cause::EventTime(t), &mut out);
                tagged.extend(out.into_iter().map(|o| ((t, key, s, e, 0), o)));
            }
            let c = self.cleanup(w);
            if self.s.event_time() && !finishing && c != i64::MAX && w1 < c && c <= w2 {
                self.remove(key, w);
            }
        }
        tagged.sort_by_key(|t| t.0);
        tagged.into_iter().map(|t| t.1).collect()
    }

    /// The clock goes to `now` (`None`: +infinity, at the end of input).
    fn clock(&mut self, now: Option<i64>, finishing: bool) -> Vec<Out> {
        if let Some(n) = now {
            self.clock = self.clock.max(n);
        }
        let passed = |t: i64, clock: i64| now.is_none() || t < clock;
        let mut tagged: Vec<Tagged> = Vec::new();
        let keys: Vec<(u8, i64, i64)> = self.wins.keys().copied().collect();
        for (key, s, e) in keys {
            let w = (s, e);
            let max = self.max_ts(w);
            if self.s.base() == T::ProcessingTime && self.wins[&(key, s, e)].proc_pending && passed(max, self.clock) {
                self.wins.get_mut(&(key, s, e)).unwrap().proc_pending = false;
                let mut out = Vec::new();
                self.fire(key, w, self.s.purging, Cause::ProcessingTime(max), &mut out);
                tagged.extend(out.into_iter().map(|o| ((max, key, s, e, 0), o)));
            }
            let c = self.cleanup(w);
            if !self.s.event_time() && !finishing && c != i64::MAX && passed(c, self.clock) {
                self.remove(key, w);
            }
        }
        tagged.sort_by_key(|t| t.0);
        tagged.into_iter().map(|t| t.1).collect()
    }

    fn finish(&mut self) -> Vec<Out> {
        let mut out = self.watermark(i64::MAX, true);
        if self.s.end == EndOfInput::FirePending {
            out.extend(self.clock(None, true));
            let mut pending: Vec<(u8, i64, i64)> =
                self.wins.iter().filter(|(_, st)| st.fresh > 0).map(|(k, _)| *k).collect();
            pending.sort_by_key(|&(key, s, e)| (e, key, s));
            for (key, s, e) in pending {
                self.fire(key, (s, e), true, Cause::EndOfInput, &mut out);
            }
        }
        for st in std::mem::take(&mut self.wins).into_values() {
            self.stats.discarded += st.fresh;
        }
        out
    }
}

// ---------------------------------------------------------------- running both

fn run(s: Setup, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut core = Core::new(&s);
    let mut model = Model::new(s);
    prop_assert_eq!(core.clock(0), model.clock(Some(0), false));
    let (mut wm, mut now) = (0i64, 0i64);
    let mut in_firings: BTreeSet<i64> = BTreeSet::new();
    let mut late: BTreeSet<i64> = BTreeSet::new();
    let mut n = 0i64;
    for (i, op) in ops.iter().enumerate() {
        let outs = match *op {
            Op::El { key, ts } => {
                let id = n;
                n += 1;
                let got = core.element(key, ts, id);
                prop_assert_eq!(&got, &model.element(key, ts, id), "{:?}\nop {} {:?}\n{:?}", s, i, op, ops);
                match got {
                    Outcome::Assigned(f) => f,
                    _ => {
                        late.insert(id);
                        vec![]
                    }
                }
            }
            Op::Wm(d) => {
                wm += d;
                let got = core.watermark(wm);
                prop_assert_eq!(&got, &model.watermark(wm, false), "{:?}\nop {} {:?}\n{:?}", s, i, op, ops);
                got
            }
            Op::Clock(d) => {
                now += d;
                let got = core.clock(now);
                prop_assert_eq!(&got, &model.clock(Some(now), false), "{:?}\nop {} {:?}\n{:?}", s, i, op, ops);
                got
            }
        };
        in_firings.extend(outs.into_iter().flat_map(|o| o.3));
        prop_assert_eq!(core.open_windows(), model.wins.len(), "{:?}\nafter op {} {:?}\n{:?}", s, i, op, ops);
    }
    let got = core.finish();
    prop_assert_eq!(&got, &model.finish(), "{:?}\nfinish\n{:?}", s, ops);
    in_firings.extend(got.into_iter().flat_map(|o| o.3));
    prop_assert!(core.is_empty(), "state left after finish: {:?}", s);
    let stats = core.stats();
    prop_assert_eq!(stats, model.stats, "{:?}\n{:?}", s, ops);
    // Nothing is lost: every record is in a firing or late/unassigned, or was counted
    // as discarded or evicted.
    let missing = (0..n).filter(|id| !in_firings.contains(id) && !late.contains(id)).count() as u64;
    prop_assert!(missing <= stats.discarded + stats.evicted, "{} records lost: {:?}", missing, s);
    prop_assert_eq!(late.len() as u64, stats.late_dropped + stats.late_side_output + stats.no_window);
    if s.end == EndOfInput::FirePending && s.evictor.is_none() {
        // Event-time triggers on event-time windows always fire before the clean-up, and
        // global windows are never cleaned up before the end: nothing may be discarded.
        let safe = match s.base() {
            T::EventTime | T::Continuous(_) => s.event_time() || s.a == A::Global,
            T::Never => s.a == A::Global,
            _ => false,
        };
        if safe {
            prop_assert_eq!(missing, 0);
            prop_assert_eq!(stats.discarded, 0);
        }
    }
    Ok(())
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, 0i64..60).prop_map(|(key, ts)| Op::El { key, ts }),
        2 => (0i64..12).prop_map(Op::Wm),
        2 => (0i64..12).prop_map(Op::Clock),
    ]
}

/// Parameters shared by all assigner x trigger runs of one case.
#[derive(Clone, Debug)]
struct Params {
    size: i64,
    slide: i64,
    offset_raw: i64,
    gap: i64,
    count: u64,
    interval: i64,
    evictor: Option<Evictor>,
    lateness: i64,
    late_output: bool,
    end: EndOfInput,
    aggregate: bool,
}

fn params() -> impl Strategy<Value = Params> {
    (
        (1i64..16, 1i64..20, -50i64..50, 1i64..12),
        (1u64..5, 1i64..9),
        prop_oneof![2 => Just(None), 1 => (1usize..4).prop_map(|n| Some(Evictor::Count(n))), 1 => (1i64..10).prop_map(|s| Some(Evictor::Time(s)))],
        prop_oneof![Just(0i64), 0i64..15],
        any::<bool>(),
        prop_oneof![Just(EndOfInput::FirePending), Just(EndOfInput::Flink)],
        any::<bool>(),
    )
        .prop_map(|((size, slide, offset_raw, gap), (count, interval), evictor, lateness, late_output, end, aggregate)| {
            Params { size, slide, offset_raw, gap, count, interval, evictor, lateness, late_output, end, aggregate }
        })
}

/// `raw` folded into `(-m, m)`.
fn fold(raw: i64, m: i64) -> i64 {
    raw.rem_euclid(2 * m - 1) - (m - 1)
}

fn assigners(p: &Params) -> Vec<(A, bool)> {
    let mut v = Vec::new();
    for event in [true, false] {
        v.push((A::Tumbling { size: p.size, offset: fold(p.offset_raw, p.size) }, event));
        v.push((A::Sliding { size: p.size, slide: p.slide, offset: fold(p.offset_raw, p.slide) }, event));
        v.push((A::Session(Some(p.gap)), event));
        v.push((A::Session(None), event));
    }
    v.push((A::Global, false));
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every assigner x trigger x purging against the model, on the same stream.
    #[test]
    fn core_matches_model(p in params(), ops in prop::collection::vec(op_strategy(), 0..40)) {
        let triggers = [T::Default, T::EventTime, T::ProcessingTime, T::Count(p.count), T::Continuous(p.interval), T::Never];
        for (a, event) in assigners(&p) {
            for t in triggers {
                for purging in [false, true] {
                    let s = Setup {
                        a, event, t, purging,
                        evictor: p.evictor,
                        lateness: p.lateness,
                        late_output: p.late_output,
                        end: p.end,
                        aggregate: p.aggregate,
                    };
                    run(s, &ops)?;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- definitional checks

/// The default event-time trigger on tumbling/sliding event-time windows, from the
/// definition: a record is taken by each of its windows that is not late when it arrives
/// (`end - 1 + lateness > watermark`); at a watermark step the windows whose last
/// timestamp the step passes fire with every record they took; a record arriving when
/// its window's end has passed fires that window at once. End of input = watermark +inf.
fn definitional_tumbling_sliding(size: i64, slide: i64, offset: i64, lateness: i64, ops: &[Op]) -> Vec<Vec<Out>> {
    let mut taken: Taken = Vec::new();
    let mut wm = i64::MIN;
    let mut gen_wm = 0;
    let mut steps = Vec::new();
    let contents = |taken: &Taken, key: u8, w: (i64, i64)| -> Vec<i64> {
        taken.iter().filter(|r| r.0 == key && r.3.contains(&w)).map(|r| r.2).collect()
    };
    let fire_between = |taken: &Taken, w1: i64, w2: i64| -> Vec<Out> {
        let mut ws: BTreeSet<(i64, u8, i64)> = BTreeSet::new();
        for r in taken {
            for w in &r.3 {
                if w1 < w.1 - 1 && w.1 - 1 <= w2 {
                    ws.insert((w.1, r.0, w.0));
                }
            }
        }
        ws.into_iter()
            .map(|(end, key, start)| {
                (key, start, end, contents(taken, key, (start, end)), false, Cause::EventTime(end - 1))
            })
            .collect()
    };
    let mut n = 0;
    for op in ops {
        match *op {
            Op::El { key, ts } => {
                let ws: Vec<(i64, i64)> =
                    naive_sliding(ts, size, slide, offset).into_iter().filter(|w| w.1 - 1 + lateness > wm).collect();
                taken.push((key, ts, n, ws.clone()));
                n += 1;
                let mut out: Vec<Out> = ws
                    .iter()
                    .filter(|w| w.1 - 1 <= wm)
                    .map(|w| (key, w.0, w.1, contents(&taken, key, *w), false, Cause::Element))
                    .collect();
                out.sort_by_key(|o| (o.2, o.1));
                steps.push(out);
            }
            Op::Wm(d) => {
                gen_wm += d;
                if gen_wm > wm {
                    steps.push(fire_between(&taken, wm, gen_wm));
                    wm = gen_wm;
                } else {
                    steps.push(vec![]);
                }
            }
            Op::Clock(_) => steps.push(vec![]),
        }
    }
    steps.push(fire_between(&taken, wm, i64::MAX));
    steps
}

/// Event-time sessions with the default trigger and a lateness so large that nothing is
/// ever late or cleaned up: the sessions of a key are the connected components of its
/// records' windows `[ts, ts + gap)` (touching ones connect); after each record its
/// session fires if its end has passed; at a watermark step, the sessions whose last
/// timestamp the step passes fire, with all their records.
fn definitional_sessions(gap: i64, ops: &[Op]) -> Vec<Vec<Out>> {
    let mut recs: Vec<(u8, i64, i64)> = Vec::new(); // key, ts, id
    let sessions = |recs: &Vec<(u8, i64, i64)>| -> Vec<(u8, i64, i64, Vec<i64>)> {
        let mut out = Vec::new();
        let keys: BTreeSet<u8> = recs.iter().map(|r| r.0).collect();
        for key in keys {
            let mut spans: Vec<(i64, i64)> = recs.iter().filter(|r| r.0 == key).map(|r| (r.1, r.1 + gap)).collect();
            spans.sort();
            let mut comps: Vec<(i64, i64)> = Vec::new();
            for sp in spans {
                match comps.last_mut() {
                    Some(last) if sp.0 <= last.1 => last.1 = last.1.max(sp.1),
                    _ => comps.push(sp),
                }
            }
            for (s, e) in comps {
                let ids = recs.iter().filter(|r| r.0 == key && s <= r.1 && r.1 < e).map(|r| r.2).collect();
                out.push((key, s, e, ids));
            }
        }
        out
    };
    let mut wm = i64::MIN;
    let mut gen_wm = 0;
    let mut steps = Vec::new();
    let mut n = 0;
    let step = |recs: &Vec<(u8, i64, i64)>, w1: i64, w2: i64| -> Vec<Out> {
        let mut v: Vec<Out> = sessions(recs)
            .into_iter()
            .filter(|c| w1 < c.2 - 1 && c.2 - 1 <= w2)
            .map(|(key, s, e, ids)| (key, s, e, ids, false, Cause::EventTime(e - 1)))
            .collect();
        v.sort_by_key(|o| (o.2, o.0, o.1));
        v
    };
    for op in ops {
        match *op {
            Op::El { key, ts } => {
                recs.push((key, ts, n));
                let out = sessions(&recs)
                    .into_iter()
                    .filter(|c| c.0 == key && c.1 <= ts && ts < c.2 && c.2 - 1 <= wm)
                    .map(|(key, s, e, ids)| (key, s, e, ids, false, Cause::Element))
                    .collect();
                n += 1;
                steps.push(out);
            }
            Op::Wm(d) => {
                gen_wm += d;
                if gen_wm > wm {
                    steps.push(step(&recs, wm, gen_wm));
                    wm = gen_wm;
                } else {
                    steps.push(vec![]);
                }
            }
            Op::Clock(_) => steps.push(vec![]),
        }
    }
    steps.push(step(&recs, wm, i64::MAX));
    steps
}

/// Runs the core over `ops`: the firings of each step, then of `finish()`.
fn core_steps(mut core: WindowCore<u8, i64>, ops: &[Op]) -> Vec<Vec<Out>> {
    let mut steps = Vec::new();
    let (mut wm, mut n) = (0, 0);
    for op in ops {
        steps.push(match *op {
            Op::El { key, ts } => {
                n += 1;
                outs_v(core.on_element(key, ts, n - 1).unwrap().firings())
            }
            Op::Wm(d) => {
                wm += d;
                outs_v(core.on_watermark(wm).unwrap())
            }
            Op::Clock(_) => vec![],
        });
    }
    steps.push(outs_v(core.finish().unwrap()));
    assert!(core.is_empty());
    steps
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn event_time_windows_match_definition(
        size in 1i64..16,
        slide_pick in 0i64..20,
        offset_raw in -50i64..50,
        lateness in prop_oneof![Just(0i64), 0i64..20],
        ops in prop::collection::vec(op_strategy(), 0..50),
    ) {
        // slide 0 stands for tumbling (slide == size).
        let slide = if slide_pick == 0 { size } else { slide_pick };
        let offset = fold(offset_raw, slide);
        let assigner = if slide == size {
            Assigner::tumbling_event_time(size, offset)
        } else {
            Assigner::sliding_event_time(size, slide, offset)
        };
        let core = WindowCore::new(WindowConfig::new(assigner).allowed_lateness(lateness)).unwrap();
        prop_assert_eq!(core_steps(core, &ops), definitional_tumbling_sliding(size, slide, offset, lateness, &ops));
    }

    #[test]
    fn sessions_match_definition(gap in 1i64..12, ops in prop::collection::vec(op_strategy(), 0..50)) {
        let core = WindowCore::new(WindowConfig::new(Assigner::event_time_session(gap)).allowed_lateness(1 << 40)).unwrap();
        prop_assert_eq!(core_steps(core, &ops), definitional_sessions(gap, &ops));
    }
}
