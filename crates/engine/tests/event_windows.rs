//! The event-time window core (`windows::event_time::WindowCore`) on hand-computed
//! examples: every assigner, trigger and evictor, lateness, late data, merging sessions,
//! end of input, and state clean-up. Flink's semantics; see the module docs.

mod common;

use common::{show, tw};

use ferroflow_engine::windows::event_time::*;
use ferroflow_engine::UdfError;

type Core = WindowCore<&'static str, i64>;
type F = Firing<&'static str, i64, std::convert::Infallible>;

fn el(c: &mut Core, k: &'static str, ts: i64, v: i64) -> Vec<F> {
    match c.on_element(k, ts, v).unwrap() {
        ElementOutcome::Assigned(f) => f,
        other => panic!("record {v} not assigned: {other:?}"),
    }
}

fn wm(c: &mut Core, w: i64) -> Vec<(&'static str, i64, i64, Vec<i64>, bool)> {
    show(&c.on_watermark(w).unwrap())
}

fn core(config: WindowConfig<i64, &'static str>) -> Core {
    WindowCore::new(config).unwrap()
}

#[test]
fn tumbling_event_time_fires_in_order_and_cleans_up() {
    let mut c = core(WindowConfig::new(Assigner::tumbling_event_time(10, 0)));
    assert!(el(&mut c, "b", 12, 1).is_empty());
    assert!(el(&mut c, "a", 3, 2).is_empty());
    assert!(el(&mut c, "a", 15, 3).is_empty());
    assert!(el(&mut c, "a", 1, 4).is_empty()); // out of order
    assert!(el(&mut c, "b", 9, 5).is_empty());
    assert_eq!(c.open_windows(), 4);
    assert_eq!(c.next_event_timer(), Some(9));
    assert_eq!(wm(&mut c, 8), vec![]);
    assert_eq!(wm(&mut c, 9), vec![("a", 0, 10, vec![2, 4], false), ("b", 0, 10, vec![5], false)]);
    // Lateness 0: the fired windows are gone, their records now late.
    assert_eq!(c.open_windows(), 2);
    assert_eq!(c.on_element("a", 9, 6).unwrap(), ElementOutcome::Dropped(DropReason::Late));
    assert_eq!(c.late_count(), 1);
    // The same watermark again does nothing; a smaller one neither.
    assert_eq!(wm(&mut c, 9), vec![]);
    assert_eq!(wm(&mut c, 3), vec![]);
    assert_eq!(wm(&mut c, 100), vec![("a", 10, 20, vec![3], false), ("b", 10, 20, vec![1], false)]);
    assert!(c.is_empty());
    assert_eq!(c.finish().unwrap(), vec![]);
    assert_eq!(c.stats(), WindowStats { late_dropped: 1, ..Default::default() });
}

#[test]
fn tumbling_with_offset_and_late_side_output() {
    let mut c = core(WindowConfig::new(Assigner::tumbling_event_time(10, 3)).side_output_late_data());
    el(&mut c, "a", 12, 1); // [3, 13)
    el(&mut c, "a", 13, 2); // [13, 23)
    assert_eq!(wm(&mut c, 12), vec![("a", 3, 13, vec![1], false)]);
    assert_eq!(c.on_element("a", 5, 3).unwrap(), ElementOutcome::Late(LateRecord { key: "a", timestamp: 5, value: 3 }));
    assert_eq!(c.stats().late_side_output, 1);
    assert_eq!(c.late_count(), 0);
    let f = c.finish().unwrap();
    assert_eq!(show(&f), vec![("a", 13, 23, vec![2], false)]);
    assert_eq!(f[0].cause, Cause::EventTime(22));
}

#[test]
fn sliding_event_time() {
    let mut c = core(WindowConfig::new(Assigner::sliding_event_time(10, 5, 0)));
    el(&mut c, "a", 7, 1); // [0,10) [5,15)
    el(&mut c, "b", 3, 2); // [-5,5) [0,10)
    el(&mut c, "a", 12, 3); // [5,15) [10,20)
    assert_eq!(c.open_windows(), 5);
    assert_eq!(
        wm(&mut c, 14),
        vec![
            ("b", -5, 5, vec![2], false),
            ("a", 0, 10, vec![1], false),
            ("b", 0, 10, vec![2], false),
            ("a", 5, 15, vec![1, 3], false),
        ]
    );
    assert_eq!(show(&c.finish().unwrap()), vec![("a", 10, 20, vec![3], false)]);
}

#[test]
fn sliding_with_gaps_counts_records_in_no_window() {
    let mut c = core(WindowConfig::new(Assigner::sliding_event_time(5, 10, 0)));
    el(&mut c, "a", 3, 1);
    assert_eq!(c.on_element("a", 7, 2).unwrap(), ElementOutcome::Dropped(DropReason::NoWindow));
    assert_eq!(c.stats().no_window, 1);
    assert_eq!(show(&c.finish().unwrap()), vec![("a", 0, 5, vec![1], false)]);
}

#[test]
fn allowed_lateness_refires_and_then_cleans_up() {
    let mut c = core(WindowConfig::new(Assigner::tumbling_event_time(10, 0)).allowed_lateness(5));
    el(&mut c, "a", 2, 1);
    assert_eq!(c.pending_timers(), (2, 0)); // fire at 9, clean-up at 14
    assert_eq!(wm(&mut c, 10), vec![("a", 0, 10, vec![1], false)]);
    assert_eq!(c.open_windows(), 1);
    // Late but allowed: fires again at once, with everything.
    let f = el(&mut c, "a", 4, 2);
    assert_eq!(show(&f), vec![("a", 0, 10, vec![1, 2], false)]);
    assert_eq!(f[0].cause, Cause::Element);
    assert_eq!(wm(&mut c, 13), vec![]);
    assert_eq!(show(&el(&mut c, "a", 9, 3)), vec![("a", 0, 10, vec![1, 2, 3], false)]);
    // watermark == max_timestamp + lateness: cleaned up (Flink's cleanupTime <= watermark).
    assert_eq!(wm(&mut c, 14), vec![]);
    assert!(c.is_empty());
    assert_eq!(c.on_element("a", 9, 4).unwrap(), ElementOutcome::Dropped(DropReason::Late));
    // A record whose window is open is taken even though ts + lateness <= watermark
    // (lateness is per window: [10,20) is cleaned up at 24).
    assert_eq!(wm(&mut c, 16), vec![]);
    el(&mut c, "a", 10, 5);
    assert_eq!(c.open_windows(), 1);
    assert_eq!(c.stats(), WindowStats { late_dropped: 1, ..Default::default() });
}

#[test]
fn purging_event_time_trigger_refires_only_new_elements() {
    let mut c = core(
        WindowConfig::new(Assigner::tumbling_event_time(10, 0))
            .trigger(Trigger::purging(Trigger::EventTime))
            .allowed_lateness(100),
    );
    el(&mut c, "a", 2, 1);
    el(&mut c, "a", 3, 2);
    assert_eq!(wm(&mut c, 9), vec![("a", 0, 10, vec![1, 2], true)]);
    assert_eq!(show(&el(&mut c, "a", 4, 3)), vec![("a", 0, 10, vec![3], true)]);
    assert_eq!(c.open_windows(), 1); // purged, still open until the lateness passes
    assert_eq!(wm(&mut c, 109), vec![]);
    assert!(c.is_empty());
}

#[test]
fn sessions_merge_out_of_order() {
    let mut c = core(WindowConfig::new(Assigner::event_time_session(5)));
    el(&mut c, "a", 1, 1); // [1,6)
    el(&mut c, "a", 10, 2); // [10,15)
    el(&mut c, "b", 3, 3); // [3,8)
    assert_eq!(c.windows_of(&"a"), vec![tw(1, 6), tw(10, 15)]);
    el(&mut c, "a", 5, 4); // [5,10) touches both: [1,15)
    assert_eq!(c.windows_of(&"a"), vec![tw(1, 15)]);
    assert_eq!(c.pending_timers(), (2, 0)); // a@14, b@7
    el(&mut c, "a", 12, 5); // inside
    assert_eq!(c.windows_of(&"a"), vec![tw(1, 17)]);
    el(&mut c, "a", 22, 6); // [22,27): separate (17 < 22)
    el(&mut c, "a", 17, 7); // [17,22) touches [1,17) and [22,27)
    assert_eq!(c.windows_of(&"a"), vec![tw(1, 27)]);
    assert_eq!(wm(&mut c, 20), vec![("b", 3, 8, vec![3], false)]);
    assert_eq!(wm(&mut c, 26), vec![("a", 1, 27, vec![1, 2, 4, 5, 6, 7], false)]);
    assert!(c.is_empty());
}

#[test]
fn sessions_late_records_merge_into_open_windows() {
    let mut c = core(WindowConfig::new(Assigner::event_time_session(10)).allowed_lateness(3));
    el(&mut c, "a", 0, 1); // [0,10)
    assert_eq!(wm(&mut c, 9), vec![("a", 0, 10, vec![1], false)]);
    // [2,12) merges with the fired [0,10) into [0,12), which ends after the watermark:
    // it waits for its new end.
    assert_eq!(show(&el(&mut c, "a", 2, 2)), vec![]);
    assert_eq!(c.windows_of(&"a"), vec![tw(0, 12)]);
    assert_eq!(wm(&mut c, 11), vec![("a", 0, 12, vec![1, 2], false)]);
    // A record whose own window [-20,-10) is late and touches nothing: late.
    assert_eq!(c.on_element("a", -20, 3).unwrap(), ElementOutcome::Dropped(DropReason::Late));
    // [1,11) is late on its own (10 + 3 <= 13) but lies inside the open [0,12): taken,
    // and the window fires again at once.
    assert_eq!(wm(&mut c, 13), vec![]);
    assert_eq!(show(&el(&mut c, "a", 1, 4)), vec![("a", 0, 12, vec![1, 2, 4], false)]);
    assert_eq!(wm(&mut c, 14), vec![]);
    assert!(c.is_empty());
}

#[test]
fn dynamic_gap_sessions() {
    let mut c = core(WindowConfig::new(Assigner::event_time_session_dynamic(|v: &i64| Ok(*v))));
    el(&mut c, "a", 0, 3); // [0,3)
    el(&mut c, "a", 10, 2); // [10,12)
    el(&mut c, "a", 4, 6); // [4,10) touches [10,12)
    assert_eq!(c.windows_of(&"a"), vec![tw(0, 3), tw(4, 12)]);
    el(&mut c, "a", 3, 1); // [3,4) bridges
    assert_eq!(c.windows_of(&"a"), vec![tw(0, 12)]);
    assert_eq!(wm(&mut c, 11), vec![("a", 0, 12, vec![3, 2, 6, 1], false)]);
    let mut c = core(WindowConfig::new(Assigner::event_time_session_dynamic(|v: &i64| {
        if *v < 0 {
            Err(UdfError::new("negative"))
        } else {
            Ok(*v)
        }
    })));
    assert_eq!(c.on_element("a", 0, -1).unwrap_err().message, "negative");
    assert!(c.on_element("a", 0, 0).unwrap_err().message.contains("gap must be > 0"));
}

/// Sum with a count of merges, to see accumulators merge.
struct SumMerges;
impl AggregateFunction<i64> for SumMerges {
    type Acc = (i64, u32);
    type Out = (i64, u32);
    fn create_accumulator(&mut self) -> Result<(i64, u32), UdfError> {
        Ok((0, 0))
    }
    fn add(&mut self, v: &i64, acc: (i64, u32)) -> Result<(i64, u32), UdfError> {
        if *v == 666 {
            return Err(UdfError::new("boom"));
        }
        Ok((acc.0 + v, acc.1))
    }
    fn get_result(&mut self, acc: &(i64, u32)) -> Result<(i64, u32), UdfError> {
        Ok(*acc)
    }
    fn merge(&mut self, a: (i64, u32), b: (i64, u32)) -> Result<(i64, u32), UdfError> {
        Ok((a.0 + b.0, a.1 + b.1 + 1))
    }
}

#[test]
fn aggregates_merge_with_sessions() {
    let mut c: WindowCore<&str, i64, SumMerges> =
        WindowCore::with_aggregate(WindowConfig::new(Assigner::event_time_session(5)), SumMerges).unwrap();
    c.on_element("a", 0, 1).unwrap();
    c.on_element("a", 20, 10).unwrap();
    c.on_element("a", 10, 100).unwrap();
    c.on_element("a", 5, 1000).unwrap(); // [5,10) bridges [0,5) and [10,15)
    c.on_element("a", 15, 10000).unwrap(); // [15,20) bridges [0,15) and [20,25)
    let f = c.finish().unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].window, tw(0, 25));
    // Two merges: the first of 2 accumulators (1 merge), the second of 2 (1 + 0 + 1).
    assert_eq!(f[0].contents, Contents::Aggregate((11111, 2)));

    // Reduce.
    let mut c: WindowCore<&str, i64, _> = WindowCore::with_aggregate(
        WindowConfig::new(Assigner::tumbling_event_time(10, 0)),
        Reduce(|a: &i64, b: &i64| Ok(a.max(b).to_owned())),
    )
    .unwrap();
    for (ts, v) in [(1, 5), (2, 9), (3, 2)] {
        c.on_element("k", ts, v).unwrap();
    }
    let f = c.on_watermark(9).unwrap();
    assert_eq!(f[0].contents, Contents::Aggregate(9));
    // An aggregate that fails.
    let mut c: WindowCore<&str, i64, SumMerges> =
        WindowCore::with_aggregate(WindowConfig::new(Assigner::tumbling_event_time(10, 0)), SumMerges).unwrap();
    assert_eq!(c.on_element("a", 1, 666).unwrap_err().message, "boom");
}

#[test]
fn count_trigger_on_global_windows_and_end_of_input() {
    for (policy, last) in [(EndOfInput::FirePending, true), (EndOfInput::Flink, false)] {
        // count_window(3): GlobalWindows + PurgingTrigger(CountTrigger(3)).
        let mut c = core(
            WindowConfig::new(Assigner::global()).trigger(Trigger::purging(Trigger::Count(3))).end_of_input(policy),
        );
        let mut fired = Vec::new();
        for v in 1..=7 {
            fired.extend(show(&el(&mut c, if v % 2 == 0 { "e" } else { "o" }, 0, v)));
        }
        assert_eq!(
            fired,
            vec![("o", i64::MIN, i64::MAX, vec![1, 3, 5], true), ("e", i64::MIN, i64::MAX, vec![2, 4, 6], true)]
        );
        let f = c.finish().unwrap();
        if last {
            assert_eq!(show(&f), vec![("o", i64::MIN, i64::MAX, vec![7], true)]);
            assert!(f.iter().all(|f| f.cause == Cause::EndOfInput && f.window == Window::Global));
            assert_eq!(c.stats().discarded, 0);
        } else {
            assert_eq!(f, vec![]);
            assert_eq!(c.stats().discarded, 1);
        }
        assert!(c.is_empty());
    }
    // Non-purging count: a sliding count window over everything so far.
    let mut c = core(WindowConfig::new(Assigner::global()).trigger(Trigger::Count(2)));
    let fired: Vec<_> = (1..=5).flat_map(|v| show(&el(&mut c, "k", 0, v))).map(|f| f.3).collect();
    assert_eq!(fired, vec![vec![1, 2], vec![1, 2, 3, 4]]);
    assert_eq!(show(&c.finish().unwrap())[0].3, vec![1, 2, 3, 4, 5]);
}

#[test]
fn global_windows_without_trigger() {
    let mut c = core(WindowConfig::new(Assigner::global()));
    el(&mut c, "a", 5, 1);
    el(&mut c, "a", -5, 2);
    assert_eq!(wm(&mut c, 1000), vec![]);
    assert_eq!(c.on_processing_time(1000).unwrap(), vec![]);
    assert_eq!(c.pending_timers(), (0, 0));
    assert_eq!(show(&c.finish().unwrap()), vec![("a", i64::MIN, i64::MAX, vec![1, 2], true)]);
    let mut c = core(WindowConfig::new(Assigner::global()).end_of_input(EndOfInput::Flink));
    el(&mut c, "a", 5, 1);
    assert_eq!(c.finish().unwrap(), vec![]);
    assert_eq!(c.stats().discarded, 1);
    // An event-time trigger on the global window fires at the final watermark, in Flink too.
    let mut c = core(WindowConfig::new(Assigner::global()).trigger(Trigger::EventTime).end_of_input(EndOfInput::Flink));
    el(&mut c, "a", 5, 1);
    let f = c.finish().unwrap();
    assert_eq!(show(&f), vec![("a", i64::MIN, i64::MAX, vec![1], false)]);
    assert_eq!(f[0].cause, Cause::EventTime(i64::MAX));
}

#[test]
fn count_trigger_on_event_time_windows_discards_at_cleanup() {
    let mut c =
        core(WindowConfig::new(Assigner::tumbling_event_time(10, 0)).trigger(Trigger::Count(2)).allowed_lateness(2));
    el(&mut c, "a", 1, 1);
    assert_eq!(show(&el(&mut c, "a", 2, 2)), vec![("a", 0, 10, vec![1, 2], false)]);
    el(&mut c, "a", 3, 3);
    assert_eq!(wm(&mut c, 9), vec![]); // no event-time firing with a count trigger
    assert_eq!(wm(&mut c, 11), vec![]); // clean-up: record 3 never fired
    assert!(c.is_empty());
    assert_eq!(c.stats().discarded, 1);
}

#[test]
fn continuous_event_time_trigger() {
    let mut c =
        core(WindowConfig::new(Assigner::tumbling_event_time(100, 0)).trigger(Trigger::ContinuousEventTime(10)));
    el(&mut c, "a", 13, 1); // first fire at 20
    assert_eq!(wm(&mut c, 19), vec![]);
    assert_eq!(wm(&mut c, 20), vec![("a", 0, 100, vec![1], false)]);
    el(&mut c, "a", 50, 2);
    assert_eq!(wm(&mut c, 35), vec![("a", 0, 100, vec![1, 2], false)]); // at 30
                                                                        // A jump over 40..=70: one firing (Flink would fire 4 identical times), next at 80.
    let f = c.on_watermark(75).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].cause, Cause::EventTime(40));
    assert_eq!(c.next_event_timer(), Some(80));
    let f = c.on_watermark(1000).unwrap();
    assert_eq!(f.iter().map(|f| f.cause).collect::<Vec<_>>(), vec![Cause::EventTime(80), Cause::EventTime(99)]);
    assert!(c.is_empty());

    // With a purging variant, repeated firings of an unchanged window emit nothing.
    let mut c = core(
        WindowConfig::new(Assigner::tumbling_event_time(100, 0))
            .trigger(Trigger::purging(Trigger::ContinuousEventTime(10))),
    );
    el(&mut c, "a", 13, 1);
    el(&mut c, "a", 14, 2);
    assert_eq!(wm(&mut c, 20), vec![("a", 0, 100, vec![1, 2], true)]);
    assert_eq!(wm(&mut c, 40), vec![]);
    el(&mut c, "a", 45, 3);
    assert_eq!(wm(&mut c, 99), vec![("a", 0, 100, vec![3], true)]);

    // On the global window it never ends at the final watermark: one periodic and one final firing.
    let mut c = core(WindowConfig::new(Assigner::global()).trigger(Trigger::ContinuousEventTime(7)));
    el(&mut c, "a", 3, 1);
    let f = c.finish().unwrap();
    assert_eq!(f.iter().map(|f| f.cause).collect::<Vec<_>>(), vec![Cause::EventTime(7), Cause::EventTime(i64::MAX)]);
}

#[test]
fn processing_time_windows() {
    let mut c = core(WindowConfig::new(Assigner::tumbling_processing_time(10, 0)));
    c.on_processing_time(3).unwrap();
    el(&mut c, "a", 999, 1); // [0,10) by the clock, whatever the timestamp
    el(&mut c, "b", -999, 2);
    assert_eq!(c.next_processing_wakeup(), Some(10));
    assert_eq!(c.next_timer(), Some((TimeDomain::ProcessingTime, 10)));
    assert_eq!(c.on_processing_time(9).unwrap(), vec![]);
    el(&mut c, "a", 0, 3); // clock 9: still [0,10)
                           // Watermarks do nothing for processing-time windows, and nothing is ever late.
    assert_eq!(wm(&mut c, 1000), vec![]);
    let f = c.on_processing_time(10).unwrap();
    assert_eq!(show(&f), vec![("a", 0, 10, vec![1, 3], false), ("b", 0, 10, vec![2], false)]);
    assert_eq!(f[0].cause, Cause::ProcessingTime(9));
    assert!(c.is_empty());
    el(&mut c, "a", 0, 4); // [10,20)
    assert_eq!(c.on_processing_time(5).unwrap(), vec![]); // the clock does not go back
    assert_eq!(c.processing_time(), 10);
    // End of input fires pending processing-time windows (not in Flink mode).
    assert_eq!(show(&c.finish().unwrap()), vec![("a", 10, 20, vec![4], false)]);
    let mut c = core(WindowConfig::new(Assigner::tumbling_processing_time(10, 0)).end_of_input(EndOfInput::Flink));
    el(&mut c, "a", 0, 1);
    assert_eq!(c.finish().unwrap(), vec![]);
    assert_eq!(c.stats().discarded, 1);
}

#[test]
fn processing_time_sliding_and_sessions() {
    let mut c = core(WindowConfig::new(Assigner::sliding_processing_time(10, 5, 0)));
    c.on_processing_time(7).unwrap();
    el(&mut c, "a", 0, 1); // [0,10) [5,15)
    c.on_processing_time(12).unwrap();
    el(&mut c, "a", 0, 2); // [5,15) [10,20) ([0,10) fired at 10)
    assert_eq!(show(&c.on_processing_time(15).unwrap()), vec![("a", 5, 15, vec![1, 2], false)]);

    let mut c = core(WindowConfig::new(Assigner::processing_time_session(5)));
    c.on_processing_time(0).unwrap();
    el(&mut c, "a", 0, 1); // [0,5)
    c.on_processing_time(4).unwrap();
    el(&mut c, "a", 0, 2); // [4,9) -> [0,9)
    assert_eq!(c.windows_of(&"a"), vec![tw(0, 9)]);
    assert_eq!(c.pending_timers(), (0, 1));
    assert_eq!(c.on_processing_time(8).unwrap(), vec![]);
    assert_eq!(show(&c.on_processing_time(9).unwrap()), vec![("a", 0, 9, vec![1, 2], false)]);
    assert!(c.is_empty());
}

#[test]
fn processing_time_trigger_on_event_time_windows() {
    let mut c = core(
        WindowConfig::new(Assigner::tumbling_event_time(10, 0)).trigger(Trigger::ProcessingTime).allowed_lateness(5),
    );
    c.on_processing_time(0).unwrap();
    el(&mut c, "a", 1, 1);
    el(&mut c, "a", 21, 2);
    // The clock passes 9: [0,10) fires; [20,30) waits for clock 30.
    assert_eq!(show(&c.on_processing_time(10).unwrap()), vec![("a", 0, 10, vec![1], false)]);
    // The watermark passes 29 + 5: [20,30) is cleaned up before its timer: discarded.
    assert_eq!(wm(&mut c, 34), vec![]);
    assert_eq!(c.stats().discarded, 1);
    assert!(c.is_empty());
}

#[test]
fn evictors_before_the_function() {
    let mut c =
        core(WindowConfig::new(Assigner::tumbling_event_time(100, 0)).evictor(Evictor::Count(2)).allowed_lateness(50));
    for (ts, v) in [(5, 1), (1, 2), (9, 3)] {
        el(&mut c, "a", ts, v);
    }
    assert_eq!(wm(&mut c, 99), vec![("a", 0, 100, vec![2, 3], false)]);
    // Evicted for good: a late record re-fires with the last 2 of what is left.
    assert_eq!(show(&el(&mut c, "a", 7, 4)), vec![("a", 0, 100, vec![3, 4], false)]);
    assert_eq!(c.stats().evicted, 2);

    let mut c = core(WindowConfig::new(Assigner::tumbling_event_time(100, 0)).evictor(Evictor::Time(10)));
    for (ts, v) in [(50, 1), (40, 2), (45, 3), (41, 4), (30, 5)] {
        el(&mut c, "a", ts, v);
    }
    // Keeps ts > 50 - 10.
    assert_eq!(wm(&mut c, 99), vec![("a", 0, 100, vec![1, 3, 4], false)]);
    assert_eq!(c.stats().evicted, 2);

    // With an aggregate: the values are kept and aggregated after eviction.
    let mut c: WindowCore<&str, i64, _> = WindowCore::with_aggregate(
        WindowConfig::new(Assigner::global()).trigger(Trigger::Count(3)).evictor(Evictor::Count(2)),
        Reduce(|a: &i64, b: &i64| Ok(a + b)),
    )
    .unwrap();
    let mut out = Vec::new();
    for v in [1, 10, 100, 1000, 10000, 100000] {
        out.extend(c.on_element("a", 0, v).unwrap().firings().into_iter().map(|f| f.contents));
    }
    // Fires [1,10,100] -> evict to [10,100]; then [10,100,1000,10000,100000] -> [10000,100000].
    assert_eq!(out, vec![Contents::Aggregate(110), Contents::Aggregate(110000)]);
}

#[test]
fn sessions_with_count_trigger_add_counts_up() {
    let mut c = core(WindowConfig::new(Assigner::event_time_session(5)).trigger(Trigger::Count(3)));
    el(&mut c, "a", 0, 1); // [0,5) count 1
    el(&mut c, "a", 10, 2); // [10,15) count 1
                            // [5,10) merges both: 1 + 1, +1 for this record = 3: fires.
    assert_eq!(show(&el(&mut c, "a", 5, 3)), vec![("a", 0, 15, vec![1, 2, 3], false)]);
    el(&mut c, "a", 1, 4);
    assert_eq!(show(&c.finish().unwrap()), vec![("a", 0, 15, vec![1, 2, 3, 4], true)]);
}

#[test]
fn sessions_with_continuous_trigger_merge_fire_timestamps() {
    let mut c = core(WindowConfig::new(Assigner::event_time_session(10)).trigger(Trigger::ContinuousEventTime(4)));
    el(&mut c, "a", 30, 1); // [30,40), fire at 32
    el(&mut c, "a", 1, 2); // [1,11), fire at 4
    el(&mut c, "a", 15, 3); // [15,25), fire at 16
    el(&mut c, "a", 9, 4); // [9,19) bridges [1,11) and [15,25): fire at min(4, 16) = 4
    assert_eq!(c.windows_of(&"a"), vec![tw(1, 25), tw(30, 40)]);
    let f = c.on_watermark(5).unwrap();
    assert_eq!(show(&f), vec![("a", 1, 25, vec![2, 3, 4], false)]);
    assert_eq!(f[0].cause, Cause::EventTime(4));
    assert_eq!(c.next_event_timer(), Some(8));
}

#[test]
fn finish_leaves_nothing_and_orders_by_end_key_start() {
    let mut c = core(WindowConfig::new(Assigner::tumbling_event_time(10, 0)).allowed_lateness(1000));
    el(&mut c, "b", 5, 1);
    el(&mut c, "a", 15, 2);
    el(&mut c, "a", 5, 3);
    let f = c.finish().unwrap();
    assert_eq!(
        show(&f),
        vec![("a", 0, 10, vec![3], false), ("b", 0, 10, vec![1], false), ("a", 10, 20, vec![2], false)]
    );
    assert!(c.is_empty() && c.open_windows() == 0 && c.pending_timers() == (0, 0));
    assert_eq!(c.watermark(), i64::MAX);
    assert_eq!(c.on_element("a", 5, 9).unwrap(), ElementOutcome::Dropped(DropReason::Late));
}

#[test]
fn extreme_timestamps_do_not_panic() {
    let mut c = core(WindowConfig::new(Assigner::tumbling_event_time(10, 0)).allowed_lateness(i64::MAX));
    el(&mut c, "a", i64::MAX, 1);
    el(&mut c, "a", i64::MIN + 1, 2);
    assert!(c.on_element("a", i64::MIN, 3).is_err()); // no timestamp
    assert_eq!(c.finish().unwrap().len(), 2);
    let mut c =
        core(WindowConfig::new(Assigner::event_time_session(i64::MAX)).trigger(Trigger::ContinuousEventTime(1)));
    el(&mut c, "a", 0, 1); // [0, MAX), first fire at 1
    el(&mut c, "a", i64::MAX - 1, 2); // inside
    assert_eq!(c.windows_of(&"a"), vec![tw(0, i64::MAX)]);
    let f = c.on_watermark(i64::MAX - 3).unwrap();
    assert_eq!(f.iter().map(|f| f.cause).collect::<Vec<_>>(), vec![Cause::EventTime(1)]);
    assert_eq!(c.next_event_timer(), Some(i64::MAX - 2));
    let f = c.finish().unwrap();
    assert_eq!(
        f.iter().map(|f| f.cause).collect::<Vec<_>>(),
        vec![Cause::EventTime(i64::MAX - 2), Cause::EventTime(i64::MAX - 1)]
    );
    assert!(c.is_empty());
}

#[test]
fn config_validation() {
    let bad: Vec<WindowConfig<i64, &str>> = vec![
        WindowConfig::new(Assigner::tumbling_event_time(0, 0)),
        WindowConfig::new(Assigner::tumbling_event_time(10, 10)),
        WindowConfig::new(Assigner::sliding_event_time(10, 5, -5)),
        WindowConfig::new(Assigner::event_time_session(0)),
        WindowConfig::new(Assigner::global()).trigger(Trigger::Count(0)),
        WindowConfig::new(Assigner::global()).trigger(Trigger::purging(Trigger::ContinuousEventTime(0))),
        WindowConfig::new(Assigner::global()).evictor(Evictor::Count(0)),
        WindowConfig::new(Assigner::global()).evictor(Evictor::Time(-1)),
        WindowConfig::new(Assigner::global()).evictor(Evictor::Time(0)),
        WindowConfig::new(Assigner::tumbling_event_time(10, 0)).allowed_lateness(-1),
    ];
    for config in bad {
        let text = format!("{config:?}");
        assert!(Core::new(config).is_err(), "{text}");
    }
    assert_eq!(Core::new(WindowConfig::new(Assigner::global())).unwrap().trigger(), &Trigger::Never);
    assert_eq!(
        Core::new(WindowConfig::new(Assigner::sliding_processing_time(10, 5, 0))).unwrap().trigger(),
        &Trigger::ProcessingTime
    );
    assert_eq!(Core::new(WindowConfig::new(Assigner::event_time_session(3))).unwrap().trigger(), &Trigger::EventTime);
}

/// Flink's `doEvictAfter = true`: the firing sees every element, the state keeps only
/// what the evictor leaves for the next firing.
#[test]
fn evict_after_hands_out_everything_then_evicts() {
    use ferroflow_engine::windows::event_time::*;
    let config = WindowConfig::new(Assigner::<i64>::global())
        .trigger(Trigger::Count(2))
        .evictor(Evictor::Count(1))
        .evict_after(true);
    let mut core: WindowCore<i64, i64> = WindowCore::new(config).unwrap();
    let mut fired = Vec::new();
    for v in 1..=4 {
        fired.extend(core.on_element(7, v, v).unwrap().firings());
    }
    let contents: Vec<_> = fired.into_iter().map(|f| f.contents).collect();
    // Before: [1, 2] fires, 1 is evicted after; then [2, 3, 4] fires at the second count.
    assert_eq!(contents, vec![Contents::Values(vec![1, 2]), Contents::Values(vec![2, 3, 4])]);
}

/// `ContinuousProcessingTimeTrigger.of(1000)` on a global window: fire points at 1000,
/// 2000, ... once the clock passes them, a jump over several points fires once, and the
/// end of input fires only what arrived since the last firing.
#[test]
fn continuous_processing_time_fires_every_interval_of_the_clock() {
    use ferroflow_engine::windows::event_time::*;
    let config = WindowConfig::new(Assigner::<i64>::global()).trigger(Trigger::ContinuousProcessingTime(1000));
    let mut core: WindowCore<i64, i64> = WindowCore::new(config).unwrap();
    let values = |f: Vec<Firing<i64, i64, std::convert::Infallible>>| -> Vec<Vec<i64>> {
        f.into_iter()
            .map(|f| match f.contents {
                Contents::Values(v) => v,
                Contents::Aggregate(never) => match never {},
            })
            .collect()
    };
    core.on_processing_time(0).unwrap();
    assert!(core.on_element(1, 0, 1).unwrap().firings().is_empty());
    assert!(core.on_processing_time(1000).unwrap().is_empty(), "a timer at t fires once the clock reads t + 1");
    assert_eq!(values(core.on_processing_time(1001).unwrap()), vec![vec![1]]);
    core.on_element(1, 0, 2).unwrap();
    // From 1001 to 5001 the clock passes 2000..5000: one firing.
    assert_eq!(values(core.on_processing_time(5001).unwrap()), vec![vec![1, 2]]);
    core.on_element(1, 0, 4).unwrap();
    assert_eq!(values(core.finish().unwrap()), vec![vec![1, 2, 4]]);
    assert!(core.is_empty());
}

#[test]
fn continuous_processing_time_needs_a_positive_interval() {
    use ferroflow_engine::windows::event_time::*;
    let config = WindowConfig::new(Assigner::<i64>::global()).trigger(Trigger::ContinuousProcessingTime(0));
    assert!(WindowCore::<i64, i64>::new(config).is_err());
}

#[test]
fn cleared_windows_are_listed_once_at_clean_up_and_at_the_end() {
    let mut c = core(WindowConfig::new(Assigner::tumbling_event_time(10, 0)).allowed_lateness(5));
    assert!(c.take_cleared().is_empty(), "nothing is listed unless asked for");
    c.track_cleared();
    el(&mut c, "a", 1, 1);
    el(&mut c, "b", 2, 2);
    el(&mut c, "a", 12, 3);
    assert_eq!(wm(&mut c, 9).len(), 2);
    assert!(c.take_cleared().is_empty(), "fired, but not cleared before the lateness passed");
    assert_eq!(el(&mut c, "a", 3, 4).len(), 1, "a late record fires the window again");
    wm(&mut c, 14);
    assert_eq!(c.take_cleared(), vec![("a", tw(0, 10)), ("b", tw(0, 10))]);
    assert!(c.take_cleared().is_empty(), "each window once");
    c.finish().unwrap();
    assert_eq!(c.take_cleared(), vec![("a", tw(10, 20))], "what is left is cleared at the end");
}

#[test]
fn sessions_merged_into_another_are_not_cleared() {
    let mut c = core(WindowConfig::new(Assigner::event_time_session(5)));
    c.track_cleared();
    assert!(c.is_merging());
    el(&mut c, "a", 0, 1);
    el(&mut c, "a", 8, 2);
    el(&mut c, "a", 4, 3); // merges [0, 5), [4, 9) and [8, 13)
    assert!(c.take_cleared().is_empty());
    wm(&mut c, 20);
    assert_eq!(c.take_cleared(), vec![("a", tw(0, 13))]);
}
