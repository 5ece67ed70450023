//! User triggers and evictors ([`TriggerFunction`], [`EvictorFunction`]) driven by the
//! window core: re-implementations of the built-in triggers give the built-ins'
//! firings on any input (property tests), and a trigger with state and timers, purging,
//! clean-up, merging and eviction behave as Flink's window operator does with a user's
//! trigger. Pure Rust: the Python binding only adapts calls to these traits.

mod common;

use common::{show, tw};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use ferroflow_engine::key::key_of;
use ferroflow_engine::state::{HeapBackend, KeyedStateBackend, Namespace, StateDescriptor, StateKind};
use ferroflow_engine::windows::event_time::*;
use ferroflow_engine::{UdfError, UdfResult};
use proptest::prelude::*;

type K = &'static str;
type Core = WindowCore<K, i64>;

/// What the user functions were asked, in order.
type Log = Rc<RefCell<Vec<String>>>;

/// Per-(key, window) state of a test trigger, as the binding keeps it in keyed state.
type Counts = Rc<RefCell<BTreeMap<(K, Window), u64>>>;

/// `CountTrigger.of(n)` (wrapped in `PurgingTrigger` with `purge`) as a user's trigger.
struct CountFn {
    n: u64,
    purge: bool,
    counts: Counts,
}

impl TriggerFunction<K, i64> for CountFn {
    fn can_merge(&self) -> bool {
        true
    }
    fn on_element(&mut self, key: &K, _: &i64, _: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        let mut counts = self.counts.borrow_mut();
        let c = counts.entry((*key, ctx.window())).or_default();
        *c += 1;
        if *c >= self.n {
            *c = 0;
            return Ok(if self.purge { TriggerResult::FIRE_AND_PURGE } else { TriggerResult::FIRE });
        }
        Ok(TriggerResult::CONTINUE)
    }
    fn on_event_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(TriggerResult::CONTINUE)
    }
    fn on_processing_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(TriggerResult::CONTINUE)
    }
    fn on_merge(&mut self, key: &K, merged: &[Window], ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        let mut counts = self.counts.borrow_mut();
        let sum: u64 = merged.iter().filter_map(|w| counts.remove(&(*key, *w))).sum();
        *counts.entry((*key, ctx.window())).or_default() += sum;
        Ok(())
    }
    fn clear(&mut self, key: &K, ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        self.counts.borrow_mut().remove(&(*key, ctx.window()));
        Ok(())
    }
}

/// `EventTimeTrigger` as a user's trigger.
struct EventTimeFn;

impl TriggerFunction<K, i64> for EventTimeFn {
    fn can_merge(&self) -> bool {
        true
    }
    fn on_element(&mut self, _: &K, _: &i64, _: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        let end = ctx.window().max_timestamp();
        if end <= ctx.current_watermark() {
            return Ok(TriggerResult::FIRE);
        }
        ctx.register_event_time_timer(end);
        Ok(TriggerResult::CONTINUE)
    }
    fn on_event_time(&mut self, _: &K, time: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(if time == ctx.window().max_timestamp() { TriggerResult::FIRE } else { TriggerResult::CONTINUE })
    }
    fn on_processing_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(TriggerResult::CONTINUE)
    }
    fn on_merge(&mut self, _: &K, _: &[Window], ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        let end = ctx.window().max_timestamp();
        if end > ctx.current_watermark() {
            ctx.register_event_time_timer(end);
        }
        Ok(())
    }
    fn clear(&mut self, _: &K, ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        let end = ctx.window().max_timestamp();
        ctx.delete_event_time_timer(end);
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Op {
    El(K, i64),
    Wm(i64),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (prop::sample::select(vec!["a", "b", "c"]), 0i64..60).prop_map(|(k, ts)| Op::El(k, ts)),
            1 => (0i64..70).prop_map(Op::Wm),
        ],
        0..40,
    )
}

/// Every step's firings (sorted within the step: the order of one call's firings for
/// one key follows window order, across keys it is the core's), then the end's.
fn run(mut core: Core, ops: &[Op]) -> Vec<Vec<(K, i64, i64, Vec<i64>, bool)>> {
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let fired = match *op {
            Op::El(k, ts) => core.on_element(k, ts, i as i64).unwrap().firings(),
            Op::Wm(w) => core.on_watermark(w).unwrap(),
        };
        out.push(show(&fired));
    }
    out.push(show(&core.finish().unwrap()));
    assert!(core.is_empty());
    out
}

fn assigners() -> impl Strategy<Value = (u8, i64)> {
    (0u8..4, 0i64..8)
}

fn assigner(which: u8) -> Assigner<i64> {
    match which {
        0 => Assigner::tumbling_event_time(10, 0),
        1 => Assigner::sliding_event_time(10, 5, 0),
        2 => Assigner::event_time_session(4),
        _ => Assigner::global(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A user's EventTimeTrigger fires exactly as the built-in one: on time, again for
    /// late-but-allowed records, across merging sessions, and at the end.
    #[test]
    fn event_time_function_is_the_builtin((which, lateness) in assigners(), ops in ops()) {
        let config = || WindowConfig::new(assigner(which)).allowed_lateness(lateness);
        let builtin = Core::new(config().trigger(Trigger::EventTime)).unwrap();
        let function = Core::new(config().trigger_function(Box::new(EventTimeFn))).unwrap();
        prop_assert_eq!(run(function, &ops), run(builtin, &ops));
    }

    /// A user's CountTrigger (plain or purging) fires exactly as the built-in one, its
    /// counts merging with sessions, and leaves no state behind once windows are cleaned up.
    #[test]
    fn count_function_is_the_builtin((which, lateness) in assigners(), n in 1u64..4, purge: bool, ops in ops()) {
        let config = || WindowConfig::new(assigner(which)).allowed_lateness(lateness);
        let count = if purge { Trigger::purging(Trigger::Count(n)) } else { Trigger::Count(n) };
        let builtin = Core::new(config().trigger(count)).unwrap();
        let counts = Counts::default();
        let f = CountFn { n, purge, counts: counts.clone() };
        let function = Core::new(config().trigger_function(Box::new(f))).unwrap();
        let (got, want) = (run(function, &ops), run(builtin, &ops));
        prop_assert_eq!(got, want);
    }
}

/// Fires every 3rd element of a window or once 10 ms of event time passed since its
/// first element, whichever first, then starts over (state: count and deadline);
/// logs every call.
struct ThreeOrTen {
    state: Rc<RefCell<BTreeMap<(K, Window), (u64, Option<i64>)>>>,
    log: Log,
}

impl ThreeOrTen {
    fn new(log: &Log) -> ThreeOrTen {
        ThreeOrTen { state: Rc::default(), log: log.clone() }
    }
}

impl TriggerFunction<K, i64> for ThreeOrTen {
    fn can_merge(&self) -> bool {
        false
    }
    fn on_element(&mut self, key: &K, v: &i64, ts: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        self.log.borrow_mut().push(format!("element {key} {v}@{ts}"));
        let mut states = self.state.borrow_mut();
        let st = states.entry((*key, ctx.window())).or_default();
        st.0 += 1;
        if st.0 == 3 {
            if let Some(d) = st.1.take() {
                ctx.delete_event_time_timer(d);
            }
            st.0 = 0;
            return Ok(TriggerResult::FIRE_AND_PURGE);
        }
        if st.1.is_none() {
            st.1 = Some(ts + 10);
            ctx.register_event_time_timer(ts + 10);
        }
        Ok(TriggerResult::CONTINUE)
    }
    fn on_event_time(&mut self, key: &K, time: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        self.log.borrow_mut().push(format!("event_time {key} {time}"));
        let mut states = self.state.borrow_mut();
        let st = states.entry((*key, ctx.window())).or_default();
        if st.1 == Some(time) {
            *st = (0, None);
            return Ok(TriggerResult::FIRE_AND_PURGE);
        }
        Ok(TriggerResult::CONTINUE)
    }
    fn on_processing_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(TriggerResult::CONTINUE)
    }
    fn on_merge(&mut self, _: &K, _: &[Window], _: &mut dyn TriggerContext) -> UdfResult<()> {
        Err(UdfError::new("never merged"))
    }
    fn clear(&mut self, key: &K, ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        self.log.borrow_mut().push(format!("clear {key} {:?}", ctx.window()));
        if let Some((_, Some(d))) = self.state.borrow_mut().remove(&(*key, ctx.window())) {
            ctx.delete_event_time_timer(d);
        }
        Ok(())
    }
}

#[test]
fn a_trigger_with_state_and_timers() {
    let log = Log::default();
    let config = WindowConfig::new(Assigner::tumbling_event_time(100, 0))
        .allowed_lateness(5)
        .trigger_function(Box::new(ThreeOrTen::new(&log)));
    let mut c = Core::new(config).unwrap();
    let el = |c: &mut Core, ts, v| show(&c.on_element("a", ts, v).unwrap().firings());
    assert!(el(&mut c, 1, 1).is_empty());
    assert!(el(&mut c, 2, 2).is_empty());
    // The third element fires and purges; the deadline timer went with it.
    assert_eq!(el(&mut c, 3, 3), vec![("a", 0, 100, vec![1, 2, 3], true)]);
    assert_eq!(c.pending_timers(), (1, 0)); // only the clean-up timer (104)
    assert!(el(&mut c, 20, 4).is_empty());
    assert_eq!(c.next_event_timer(), Some(30));
    // 10 ms of event time after the first element: fires what is there.
    assert!(show(&c.on_watermark(29).unwrap()).is_empty());
    assert_eq!(show(&c.on_watermark(30).unwrap()), vec![("a", 0, 100, vec![4], true)]);
    assert!(el(&mut c, 95, 5).is_empty()); // its deadline (105) is past the clean-up
                                           // Clean-up at end + lateness (99 + 5): the trigger's clear() runs, the pending
                                           // element is dropped unfired (Flink's rule), and nothing is left.
    assert!(show(&c.on_watermark(103).unwrap()).is_empty());
    assert_eq!(c.open_windows(), 1);
    assert!(show(&c.on_watermark(104).unwrap()).is_empty());
    assert!(c.is_empty());
    assert_eq!(c.stats().discarded, 1);
    assert_eq!(
        log.borrow().as_slice(),
        [
            "element a 1@1",
            "element a 2@2",
            "element a 3@3",
            "element a 4@20",
            "event_time a 30",
            "element a 5@95",
            // As in Flink, the clean-up timer is the trigger's too, then clear() runs.
            "event_time a 104",
            "clear a Time(TimeWindow { start: 0, end: 100 })",
        ]
    );
}

/// PURGE alone empties the window without a firing; FIRE on an empty window emits
/// nothing; a trigger's processing-time timers call on_processing_time.
struct PurgeOnOddFireOnTimer;

impl TriggerFunction<K, i64> for PurgeOnOddFireOnTimer {
    fn can_merge(&self) -> bool {
        true
    }
    fn on_element(&mut self, _: &K, v: &i64, _: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        ctx.register_processing_time_timer(ctx.current_processing_time() + 5);
        Ok(if v % 2 == 1 { TriggerResult::PURGE } else { TriggerResult::CONTINUE })
    }
    fn on_event_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(TriggerResult::CONTINUE)
    }
    fn on_processing_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(TriggerResult::FIRE)
    }
    fn on_merge(&mut self, _: &K, _: &[Window], _: &mut dyn TriggerContext) -> UdfResult<()> {
        Ok(())
    }
    fn clear(&mut self, _: &K, _: &mut dyn TriggerContext) -> UdfResult<()> {
        Ok(())
    }
}

#[test]
fn purge_and_processing_time_timers() {
    let config = WindowConfig::new(Assigner::global()).trigger_function(Box::new(PurgeOnOddFireOnTimer));
    let mut c = Core::new(config).unwrap();
    c.on_processing_time(100).unwrap();
    c.on_element("a", 0, 2).unwrap();
    c.on_element("a", 0, 4).unwrap();
    c.on_element("a", 0, 7).unwrap(); // purges 2, 4 and 7
    c.on_processing_time(102).unwrap();
    c.on_element("a", 0, 8).unwrap();
    // The timer at 105 (due at 106) fires the window with 8 only; 107's fires it again.
    assert_eq!(show(&c.on_processing_time(106).unwrap()), vec![("a", i64::MIN, i64::MAX, vec![8], false)]);
    assert_eq!(show(&c.on_processing_time(200).unwrap()), vec![("a", i64::MIN, i64::MAX, vec![8], false)]);
    c.on_element("a", 0, 9).unwrap(); // purges; its timer fires on an empty window: nothing
    assert!(c.on_processing_time(300).unwrap().is_empty());
}

/// Logs merges and clears with the windows concerned.
struct Merges {
    log: Log,
}

impl TriggerFunction<K, i64> for Merges {
    fn can_merge(&self) -> bool {
        true
    }
    fn on_element(&mut self, _: &K, v: &i64, _: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        let w = ctx.window();
        self.log.borrow_mut().push(format!("element {v} [{}, {})", w.start(), w.end()));
        ctx.register_event_time_timer(w.max_timestamp());
        Ok(TriggerResult::CONTINUE)
    }
    fn on_event_time(&mut self, _: &K, t: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(if t == ctx.window().max_timestamp() { TriggerResult::FIRE } else { TriggerResult::CONTINUE })
    }
    fn on_processing_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(TriggerResult::CONTINUE)
    }
    fn on_merge(&mut self, _: &K, merged: &[Window], ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        let w = ctx.window();
        let from: Vec<String> = merged.iter().map(|m| format!("[{}, {})", m.start(), m.end())).collect();
        self.log.borrow_mut().push(format!("merge {} into [{}, {})", from.join(" "), w.start(), w.end()));
        ctx.register_event_time_timer(w.max_timestamp());
        Ok(())
    }
    fn clear(&mut self, _: &K, ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        let w = ctx.window();
        self.log.borrow_mut().push(format!("clear [{}, {})", w.start(), w.end()));
        ctx.delete_event_time_timer(w.max_timestamp());
        Ok(())
    }
    fn merged_away(&mut self, _: &K, w: Window) -> UdfResult<()> {
        self.log.borrow_mut().push(format!("gone [{}, {})", w.start(), w.end()));
        Ok(())
    }
}

#[test]
fn merging_calls_on_merge_then_clears_the_merged_windows() {
    let log = Log::default();
    let config =
        WindowConfig::new(Assigner::event_time_session(5)).trigger_function(Box::new(Merges { log: log.clone() }));
    let mut c = Core::new(config).unwrap();
    c.on_element("a", 0, 1).unwrap();
    c.on_element("a", 10, 2).unwrap();
    c.on_element("a", 5, 3).unwrap(); // [5, 10) bridges [0, 5) and [10, 15)
    assert_eq!(c.windows_of(&"a"), vec![tw(0, 15)]);
    // Only the merged window's timer is left (with its clean-up timer, the same one).
    assert_eq!(c.pending_timers(), (1, 0));
    assert_eq!(show(&c.on_watermark(14).unwrap()), vec![("a", 0, 15, vec![1, 2, 3], false)]);
    assert_eq!(
        log.borrow().as_slice(),
        [
            "element 1 [0, 5)",
            "element 2 [10, 15)",
            "merge [0, 5) [10, 15) into [0, 15)",
            "clear [0, 5)",
            "gone [0, 5)",
            "clear [10, 15)",
            "gone [10, 15)",
            "element 3 [0, 15)",
            "clear [0, 15)",
        ]
    );
}

#[test]
fn a_trigger_that_cannot_merge_is_refused_on_sessions() {
    let log = Log::default();
    let config = WindowConfig::new(Assigner::event_time_session(5)).trigger_function(Box::new(ThreeOrTen::new(&log)));
    let err = Core::new(config).err().expect("refused");
    assert!(err.contains("does not support merging"), "{err}");
    let config =
        WindowConfig::new(Assigner::tumbling_event_time(5, 0)).trigger_function(Box::new(ThreeOrTen::new(&log)));
    assert!(Core::new(config).is_ok());
}

/// A trigger whose calls fail: the core returns the error.
struct Fails;

impl TriggerFunction<K, i64> for Fails {
    fn can_merge(&self) -> bool {
        true
    }
    fn on_element(&mut self, _: &K, _: &i64, _: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        ctx.register_event_time_timer(5);
        Ok(TriggerResult::CONTINUE)
    }
    fn on_event_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Err(UdfError::new("boom"))
    }
    fn on_processing_time(&mut self, _: &K, _: i64, _: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        Ok(TriggerResult::CONTINUE)
    }
    fn on_merge(&mut self, _: &K, _: &[Window], _: &mut dyn TriggerContext) -> UdfResult<()> {
        Ok(())
    }
    fn clear(&mut self, _: &K, _: &mut dyn TriggerContext) -> UdfResult<()> {
        Ok(())
    }
}

#[test]
fn trigger_errors_reach_the_caller() {
    let mut c = Core::new(WindowConfig::new(Assigner::global()).trigger_function(Box::new(Fails))).unwrap();
    c.on_element("a", 0, 1).unwrap();
    assert_eq!(c.on_watermark(5).unwrap_err().message, "boom");
}

/// Keeps the even values before the window function and drops the first element
/// after it; logs what it was given.
struct EvenThenDropFirst {
    log: Log,
}

impl EvictorFunction<i64> for EvenThenDropFirst {
    fn evict(
        &mut self,
        after: bool,
        window: Window,
        elements: &[(i64, &i64)],
        watermark: i64,
        _: i64,
    ) -> UdfResult<Vec<usize>> {
        let seen: Vec<String> = elements.iter().map(|(ts, v)| format!("{v}@{ts}")).collect();
        let when = if after { "after" } else { "before" };
        self.log.borrow_mut().push(format!("{when} {} {} wm={watermark}", window.end(), seen.join(",")));
        Ok(if after {
            (1..elements.len()).collect()
        } else {
            (0..elements.len()).filter(|&i| *elements[i].1 % 2 == 0).collect()
        })
    }
}

#[test]
fn an_evictor_function_before_and_after() {
    let log = Log::default();
    let config = WindowConfig::new(Assigner::global())
        .trigger(Trigger::Count(3))
        .evictor_function(Box::new(EvenThenDropFirst { log: log.clone() }));
    let mut c = Core::new(config).unwrap();
    for (i, v) in [2, 3, 4, 6, 8, 10].into_iter().enumerate() {
        let fired = show(&c.on_element("a", i as i64, v).unwrap().firings());
        match i {
            2 => assert_eq!(fired, vec![("a", i64::MIN, i64::MAX, vec![2, 4], false)]),
            5 => assert_eq!(fired, vec![("a", i64::MIN, i64::MAX, vec![4, 6, 8, 10], false)]),
            _ => assert!(fired.is_empty()),
        }
    }
    assert_eq!(c.stats().evicted, 3);
    let end = i64::MAX;
    assert_eq!(
        log.borrow().as_slice(),
        [
            format!("before {end} 2@0,3@1,4@2 wm={}", i64::MIN),
            format!("after {end} 2@0,4@2 wm={}", i64::MIN),
            format!("before {end} 4@2,6@3,8@4,10@5 wm={}", i64::MIN),
            format!("after {end} 4@2,6@3,8@4,10@5 wm={}", i64::MIN),
        ]
    );
}

/// An evictor keeping positions out of order is ferroflow's bug (the binding checks
/// what the user gives), reported as internal.
struct Backwards;

impl EvictorFunction<i64> for Backwards {
    fn evict(&mut self, _: bool, _: Window, e: &[(i64, &i64)], _: i64, _: i64) -> UdfResult<Vec<usize>> {
        Ok((0..e.len()).rev().collect())
    }
}

#[test]
fn an_evictor_keeping_positions_out_of_order_is_internal() {
    let config = WindowConfig::new(Assigner::global()).trigger(Trigger::Count(2)).evictor_function(Box::new(Backwards));
    let mut c = Core::new(config).unwrap();
    c.on_element("a", 0, 1).unwrap();
    let err = c.on_element("a", 0, 2).unwrap_err();
    assert!(err.internal, "{err:?}");
}

#[test]
fn merge_namespaces_of_keyed_state() {
    let mut b: HeapBackend<i64> = HeapBackend::new();
    let list = b.register(&StateDescriptor::new("l", StateKind::List)).unwrap();
    let sum = b.register(&StateDescriptor::new("s", StateKind::Reducing)).unwrap();
    let value = b.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
    let (w1, w2, w3) = (Namespace::Window(tw(0, 5)), Namespace::Window(tw(3, 8)), Namespace::Window(tw(0, 8)));
    let mut add = |a: &i64, b: &i64| Ok(a + b);
    b.set_current_key(key_of(&1i64));
    for (ns, v) in [(w1, 1), (w2, 2), (w3, 10)] {
        b.set_current_namespace(ns);
        b.list_add(list, v, 0).unwrap();
        b.reducing_add(sum, v, &mut add, 0).unwrap();
        b.update(value, v, 0).unwrap();
    }
    b.set_current_namespace(Namespace::Key);
    b.merge_namespaces(list, w3, &[w1, w2], &mut add, 0).unwrap();
    b.merge_namespaces(sum, w3, &[w1, w2], &mut add, 0).unwrap();
    let err = b.merge_namespaces(value, w3, &[w1, w2], &mut add, 0).unwrap_err();
    assert!(err.message.contains("cannot merge"), "{err:?}");
    assert_eq!(b.current_namespace(), Namespace::Key);
    b.set_current_namespace(w3);
    assert_eq!(b.list_get(list, 0).unwrap(), vec![10, 1, 2]);
    assert_eq!(b.reducing_get(sum, 0).unwrap(), Some(13));
    for ns in [w1, w2] {
        b.set_current_namespace(ns);
        assert!(b.list_get(list, 0).unwrap().is_empty());
        assert_eq!(b.reducing_get(sum, 0).unwrap(), None);
    }
    // A target without a value takes the merged one.
    b.set_current_namespace(Namespace::Key);
    let w4 = Namespace::Window(tw(0, 20));
    b.merge_namespaces(sum, w4, &[w3], &mut add, 0).unwrap();
    b.set_current_namespace(w4);
    assert_eq!(b.reducing_get(sum, 0).unwrap(), Some(13));
}
