"""The reference window model (tests/window_model.py) on hand-worked examples of Flink's
window semantics. No engine involved: these check the model itself, so that the property
tests in test_event_time_model.py compare the engine with something trustworthy."""

from __future__ import annotations

import pytest

from window_model import (GLOBAL, MAX_TIME, ContinuousEventTimeTrigger, CountEvictor, CountTrigger,
                          EventTimeTrigger, Global, ProcessingTime, ProcessingTimeTrigger, PurgingTrigger,
                          Record, Session, Sliding, TimeEvictor, TimeWindow, Tumbling, Watermark, WindowSpec,
                          fold, run_model)

PROC = "processing"


def rec(key, value, ts=None):
    return Record(key, value, ts)


def rows(result):
    """The firings as (key, start, end, values) in the order the model produced them."""
    return [f.row() for f in result.firings]


# -- assigners ----------------------------------------------------------------------------------


def test_tumbling_windows_and_offsets():
    assert Tumbling(10).windows(0, None) == [TimeWindow(0, 10)]
    assert Tumbling(10).windows(9, None) == [TimeWindow(0, 10)]
    assert Tumbling(10).windows(10, None) == [TimeWindow(10, 20)]
    # negative timestamps: a floor modulo
    assert Tumbling(10).windows(-1, None) == [TimeWindow(-10, 0)]
    assert Tumbling(10).windows(-10, None) == [TimeWindow(-10, 0)]
    assert Tumbling(10).windows(-13, None) == [TimeWindow(-20, -10)]
    # offset: windows start at 3 + multiples of 10
    assert Tumbling(10, 3).windows(12, None) == [TimeWindow(3, 13)]
    assert Tumbling(10, 3).windows(2, None) == [TimeWindow(-7, 3)]
    assert Tumbling(10, -3).windows(8, None) == [TimeWindow(7, 17)]
    with pytest.raises(ValueError):
        Tumbling(10, 10)
    with pytest.raises(ValueError):
        Tumbling(0)


def test_sliding_windows():
    # latest start first, as Flink lists them
    assert Sliding(10, 5).windows(7, None) == [TimeWindow(5, 15), TimeWindow(0, 10)]
    assert Sliding(10, 5).windows(10, None) == [TimeWindow(10, 20), TimeWindow(5, 15)]
    assert Sliding(10, 3).windows(0, None) == [TimeWindow(0, 10), TimeWindow(-3, 7), TimeWindow(-6, 4),
                                              TimeWindow(-9, 1)]
    assert Sliding(10, 5, 2).windows(7, None) == [TimeWindow(7, 17), TimeWindow(2, 12)]
    # slide > size: gaps
    assert Sliding(5, 10).windows(3, None) == [TimeWindow(0, 5)]
    assert Sliding(5, 10).windows(7, None) == []
    with pytest.raises(ValueError):
        Sliding(10, 5, 5)


def test_session_windows():
    assert Session(gap=5).windows(3, None) == [TimeWindow(3, 8)]
    assert Session(gap_fn=lambda v: v).windows(3, 2) == [TimeWindow(3, 5)]
    with pytest.raises(ValueError):
        Session(gap_fn=lambda v: 0).windows(3, "x")
    assert TimeWindow(0, 5).touches(TimeWindow(5, 9))
    assert not TimeWindow(0, 5).touches(TimeWindow(6, 9))
    assert Global().windows(123, None) == [GLOBAL]
    assert GLOBAL.max_timestamp == MAX_TIME


# -- event time: tumbling, lateness, late data ----------------------------------------------------


def test_tumbling_event_time_fires_when_the_watermark_passes_the_end():
    events = [rec("a", 1, 3), rec("a", 2, 12), rec("b", 3, 5), Watermark(8), rec("a", 4, 1), Watermark(9),
              rec("a", 5, 7), Watermark(19)]
    r = run_model(events, WindowSpec(Tumbling(10)))
    # Watermark 8 fires nothing (the window's max timestamp is 9); 9 fires [0, 10);
    # record 5 is then late (lateness 0) and dropped; the end fires nothing more.
    assert rows(r) == [("a", 0, 10, (1, 4)), ("b", 0, 10, (3,)), ("a", 10, 20, (2,))]
    assert r.late_dropped == 1 and r.late == [] and r.no_window == 0
    assert r.ambiguous == []


def test_late_side_output_takes_the_late_records():
    events = [rec("a", 1, 3), Watermark(9), rec("a", 2, 7), rec("b", 3, 9), rec("a", 4, 10)]
    r = run_model(events, WindowSpec(Tumbling(10), late_output=True))
    assert rows(r) == [("a", 0, 10, (1,)), ("a", 10, 20, (4,))]
    assert r.late == [rec("a", 2, 7), rec("b", 3, 9)]
    assert r.late_dropped == 0


def test_allowed_lateness_refires_then_cleans_up():
    events = [rec("a", 1, 3), Watermark(9), rec("a", 2, 4), Watermark(13), rec("a", 3, 5), Watermark(14),
              rec("a", 4, 6)]
    r = run_model(events, WindowSpec(Tumbling(10), allowed_lateness=5))
    # Fires at 9; each record within the lateness fires it again with everything; at
    # watermark 14 (= 9 + 5) the window is gone and record 4 is late.
    assert rows(r) == [("a", 0, 10, (1,)), ("a", 0, 10, (1, 2)), ("a", 0, 10, (1, 2, 3))]
    assert r.late_dropped == 1


def test_a_record_is_late_only_if_no_window_takes_it():
    # Watermark 20, lateness 5: the record at 9 is late ([0, 10) went at 9 + 5 = 14).
    # The one at 15 is behind the watermark by more than the lateness, but its window
    # [10, 20) is kept until 19 + 5 = 24: it takes the record and fires at once.
    events = [Watermark(20), rec("a", 1, 9), rec("a", 2, 15)]
    r = run_model(events, WindowSpec(Tumbling(10), allowed_lateness=5))
    assert rows(r) == [("a", 10, 20, (2,))]
    assert r.late_dropped == 1


def test_watermarks_only_move_forward():
    events = [Watermark(10), Watermark(5), rec("a", 1, 7), rec("a", 2, 11)]
    r = run_model(events, WindowSpec(Tumbling(10)))
    assert r.late_dropped == 1
    assert rows(r) == [("a", 10, 20, (2,))]


def test_sliding_windows_each_fire_and_gaps_drop_silently():
    r = run_model([rec("a", 1, 7), rec("a", 2, 12), Watermark(9), Watermark(14)], WindowSpec(Sliding(10, 5)))
    assert rows(r) == [("a", 0, 10, (1,)), ("a", 5, 15, (1, 2)), ("a", 10, 20, (2,))]
    # size 5, slide 10: [0, 5), [10, 15)...; 7 falls in a gap: not late, no window.
    r = run_model([rec("a", 1, 3), rec("a", 2, 7), Watermark(20), rec("a", 3, 8)], WindowSpec(Sliding(5, 10)))
    assert rows(r) == [("a", 0, 5, (1,))]
    assert r.no_window == 1
    assert r.late_dropped == 1  # in a gap too, but behind the watermark: late


def test_sliding_window_is_added_to_where_not_late():
    # Watermark 12 fires 3's windows [-5, 5) and [0, 10). Of 7's windows, [0, 10) is
    # gone but [5, 15) is open and takes it: the record is not late.
    events = [rec("a", 1, 3), rec("a", 2, 11), Watermark(12), rec("a", 3, 7)]
    r = run_model(events, WindowSpec(Sliding(10, 5)))
    assert rows(r) == [("a", -5, 5, (1,)), ("a", 0, 10, (1,)), ("a", 5, 15, (2, 3)), ("a", 10, 20, (2,))]
    assert r.late_dropped == 0


# -- sessions ---------------------------------------------------------------------------------


def test_sessions_merge_when_they_touch():
    events = [rec("a", 1, 1), rec("a", 2, 10), rec("b", 9, 3), rec("a", 3, 4), rec("a", 4, 9), Watermark(100)]
    r = run_model(events, WindowSpec(Session(gap=5)))
    # a: [1, 6) + [4, 9) = [1, 9); then [9, 14) touches [1, 9) and [10, 15): [1, 15).
    assert sorted(rows(r)) == [("a", 1, 15, (1, 2, 3, 4)), ("b", 3, 8, (9,))]


def test_merged_session_contents_in_arrival_order():
    events = [rec("a", 1, 20), rec("a", 2, 10), rec("a", 3, 14), rec("a", 4, 19)]
    r = run_model(events, WindowSpec(Session(gap=5)))
    assert rows(r) == [("a", 10, 25, (1, 2, 3, 4))]


def test_session_fired_and_cleaned_then_a_new_one():
    events = [rec("a", 1, 1), Watermark(5), rec("a", 2, 3), Watermark(7), rec("a", 3, 0)]
    r = run_model(events, WindowSpec(Session(gap=5)))
    # [1, 6) fires at 5 and goes; 3's own session [3, 8) is not over at watermark 5.
    assert rows(r) == [("a", 1, 6, (1,)), ("a", 3, 8, (2,))]
    assert r.late_dropped == 1


def test_a_late_session_merging_into_an_open_one_is_taken():
    # At watermark 8, the record at 4 has a session [4, 9) that is over, but it touches
    # the open [9, 14): they merge and the record is not late. The one at 3 ([3, 8)) is.
    events = [rec("a", 1, 9), Watermark(8), rec("a", 2, 3), rec("a", 3, 4), Watermark(13)]
    r = run_model(events, WindowSpec(Session(gap=5)))
    assert rows(r) == [("a", 4, 14, (1, 3))]
    assert r.late_dropped == 1


def test_dynamic_session_gap():
    events = [rec("a", ("x", 3), 0), rec("a", ("y", 2), 5), rec("a", ("z", 4), 2)]
    r = run_model(events, WindowSpec(Session(gap_fn=lambda v: v[1])))
    # [0, 3) and [5, 7), then [2, 6) bridges them
    assert rows(r) == [("a", 0, 7, (("x", 3), ("y", 2), ("z", 4)))]


def test_sessions_with_a_count_trigger_add_their_counts():
    events = [rec("a", 1, 0), rec("a", 2, 20), rec("a", 3, 10)]
    r = run_model(events, WindowSpec(Session(gap=10), trigger=CountTrigger(3), allowed_lateness=100))
    # counts 1 and 1 merge to 2 ([0, 30)), the third record makes 3: fires
    assert rows(r) == [("a", 0, 30, (1, 2, 3))]


def test_processing_time_sessions():
    events = [rec("a", 1), ProcessingTime(3), rec("a", 2), ProcessingTime(7), ProcessingTime(8), rec("a", 3)]
    r = run_model(events, WindowSpec(Session(gap=5, domain=PROC)))
    # [0, 5) + [3, 8) = [0, 8): its timer at 7 fires once the clock reads 8
    assert rows(r) == [("a", 0, 8, (1, 2)), ("a", 8, 13, (3,))]


# -- triggers -------------------------------------------------------------------------------------


def test_count_trigger_keeps_contents_purging_does_not():
    events = [rec("a", i, i) for i in range(1, 6)]
    spec = WindowSpec(Tumbling(10), trigger=CountTrigger(2))
    assert rows(run_model(events, spec)) == [("a", 0, 10, (1, 2)), ("a", 0, 10, (1, 2, 3, 4)),
                                             ("a", 0, 10, (1, 2, 3, 4, 5))]  # the last: end of input
    spec = WindowSpec(Tumbling(10), trigger=PurgingTrigger(CountTrigger(2)))
    assert rows(run_model(events, spec)) == [("a", 0, 10, (1, 2)), ("a", 0, 10, (3, 4)), ("a", 0, 10, (5,))]


def test_count_trigger_partial_window_is_lost_at_clean_up():
    events = [rec("a", 1, 1), rec("a", 2, 2), rec("a", 3, 3), Watermark(9)]
    r = run_model(events, WindowSpec(Tumbling(10), trigger=CountTrigger(2)))
    assert rows(r) == [("a", 0, 10, (1, 2))]
    assert r.discarded == 1


def test_count_trigger_partial_window_fires_at_the_end():
    events = [rec("a", 1, 1), rec("a", 2, 2), rec("a", 3, 3), Watermark(8)]
    spec = WindowSpec(Tumbling(10), trigger=CountTrigger(2))
    assert rows(run_model(events, spec)) == [("a", 0, 10, (1, 2)), ("a", 0, 10, (1, 2, 3))]
    # Flink's end of input: the final watermark cleans the window up, the partial is lost
    assert rows(run_model(events, spec, end_of_input="flink")) == [("a", 0, 10, (1, 2))]


def test_event_time_trigger_on_processing_time_windows():
    events = [rec("a", 1, 100), Watermark(8), Watermark(9), rec("a", 2, 100), ProcessingTime(10), rec("a", 3, 5)]
    r = run_model(events, WindowSpec(Tumbling(10, domain=PROC), trigger=EventTimeTrigger()))
    # [0, 10) by the clock; the event-time trigger fires it at watermark 9, the record
    # after that fires it at once; the clock reaching 10 cleans it up.
    assert rows(r) == [("a", 0, 10, (1,)), ("a", 0, 10, (1, 2)), ("a", 10, 20, (3,))]


def test_continuous_event_time_trigger():
    spec = WindowSpec(Tumbling(20), trigger=ContinuousEventTimeTrigger(5))
    events = [rec("a", 1, 3), Watermark(4), Watermark(5), rec("a", 2, 7), Watermark(12), Watermark(40)]
    r = run_model(events, spec)
    # points 5, 10, then 15 at watermark 40, and the window's end (19)
    assert rows(r) == [("a", 0, 20, (1,)), ("a", 0, 20, (1, 2)), ("a", 0, 20, (1, 2)), ("a", 0, 20, (1, 2))]


def test_continuous_trigger_fires_once_per_watermark_advance():
    spec = WindowSpec(Global(), trigger=ContinuousEventTimeTrigger(5))
    events = [rec("a", 1, 3), Watermark(100), Watermark(104), Watermark(105), rec("a", 2, 200)]
    r = run_model(events, spec)
    # 100 passes the points 5..100: one firing, next point 105. The end: 105 then the end.
    assert rows(r) == [("a", None, None, (1,)), ("a", None, None, (1,)), ("a", None, None, (1, 2)),
                       ("a", None, None, (1, 2))]


def test_continuous_trigger_aligns_with_java_remainder():
    # -3 - (-3 % 5) + 5 = 5 in Java (the remainder has the sign of -3), not 0
    spec = WindowSpec(Global(), trigger=PurgingTrigger(ContinuousEventTimeTrigger(5)))
    r = run_model([rec("a", 1, -3), Watermark(0), Watermark(4), Watermark(5)], spec)
    assert rows(r) == [("a", None, None, (1,))]
    r = run_model([rec("a", 1, -3), Watermark(4)], spec)
    assert rows(r) == [("a", None, None, (1,))]  # at the end, not at 4
    r = run_model([rec("a", 1, -7), Watermark(0), rec("a", 2, 1)], spec)
    assert rows(r) == [("a", None, None, (1,)), ("a", None, None, (2,))]  # -7 -> 0


def test_continuous_trigger_point_behind_the_watermark_waits_for_the_next_advance():
    spec = WindowSpec(Tumbling(100), trigger=PurgingTrigger(ContinuousEventTimeTrigger(10)))
    events = [Watermark(50), rec("a", 1, 13), rec("a", 2, 14), Watermark(51), rec("a", 3, 15), Watermark(59),
              Watermark(60)]
    r = run_model(events, spec)
    # point 20 was due at registration: fires at 51, then the next point above 51 is 60
    assert rows(r) == [("a", 0, 100, (1, 2)), ("a", 0, 100, (3,))]


def test_continuous_trigger_sessions_keep_the_earliest_point():
    spec = WindowSpec(Session(gap=10), trigger=PurgingTrigger(ContinuousEventTimeTrigger(4)))
    events = [rec("a", 1, 9), rec("a", 2, 1), rec("a", 3, 5), Watermark(4)]
    r = run_model(events, spec)
    # [9, 19) point 12; [1, 11) point 4; merged [1, 19) keeps 4
    assert rows(r) == [("a", 1, 19, (1, 2, 3))]


def test_purging_event_time_trigger_with_lateness():
    events = [rec("a", 1, 3), rec("a", 2, 4), Watermark(9), rec("a", 3, 5), Watermark(11), rec("a", 4, 6)]
    r = run_model(events, WindowSpec(Tumbling(10), trigger=PurgingTrigger(EventTimeTrigger()),
                                     allowed_lateness=3))
    assert rows(r) == [("a", 0, 10, (1, 2)), ("a", 0, 10, (3,)), ("a", 0, 10, (4,))]


def test_processing_time_windows_fire_one_ms_after_their_end():
    events = [rec("a", 1), ProcessingTime(9), rec("a", 2), ProcessingTime(10), rec("a", 3), ProcessingTime(15)]
    r = run_model(events, WindowSpec(Tumbling(10, domain=PROC)))
    assert rows(r) == [("a", 0, 10, (1, 2)), ("a", 10, 20, (3,))]  # the second at the end


def test_processing_time_starts_where_asked():
    r = run_model([rec("a", 1), ProcessingTime(20), ProcessingTime(25), rec("a", 2)],
                  WindowSpec(Tumbling(10, domain=PROC)), processing_time_start=17)
    assert rows(r) == [("a", 10, 20, (1,)), ("a", 20, 30, (2,))]


def test_processing_time_trigger_on_event_time_windows():
    spec = WindowSpec(Tumbling(10), trigger=ProcessingTimeTrigger())
    # fires once the clock passes the window's max timestamp, 9
    events = [rec("a", 1, 3), ProcessingTime(9), rec("a", 2, 4), ProcessingTime(10), rec("a", 3, 15)]
    r = run_model(events, spec)
    assert rows(r) == [("a", 0, 10, (1, 2)), ("a", 10, 20, (3,))]  # the second at the end
    assert r.ambiguous == []
    # the watermark cleans the window up first: its records are lost
    events = [rec("a", 1, 3), rec("a", 2, 4), Watermark(9), rec("a", 3, 5), ProcessingTime(10)]
    r = run_model(events, spec)
    assert rows(r) == []
    assert r.discarded == 2 and r.late_dropped == 1
    assert r.ambiguous == []


def test_overdue_processing_timer_is_reported_ambiguous():
    events = [ProcessingTime(50), rec("a", 1, 3), rec("a", 2, 4), ProcessingTime(51)]
    r = run_model(events, WindowSpec(Tumbling(10), trigger=ProcessingTimeTrigger()))
    assert rows(r) == [("a", 0, 10, (1, 2))]
    assert r.ambiguous  # Flink could fire [1] before record 2 arrives
    events = [ProcessingTime(50), rec("a", 1, 3), rec("a", 2, 14), rec("b", 3, 4), ProcessingTime(51)]
    r = run_model(events, WindowSpec(Tumbling(10), trigger=ProcessingTimeTrigger()))
    assert r.ambiguous == []  # other windows and keys do not matter
    # the clean-up would lose the record if it came first
    events = [ProcessingTime(50), rec("a", 1, 3), Watermark(9)]
    r = run_model(events, WindowSpec(Tumbling(10), trigger=ProcessingTimeTrigger()))
    assert r.ambiguous and rows(r) == [] and r.discarded == 1


# -- global windows, count windows, evictors ---------------------------------------------------------


def test_global_windows_without_trigger_fire_at_the_end_only():
    events = [rec("a", 1, 5), rec("b", 2, 6), Watermark(1000), rec("a", 3, 1)]
    r = run_model(events, WindowSpec(Global()))
    assert sorted(rows(r)) == [("a", None, None, (1, 3)), ("b", None, None, (2,))]
    assert r.late_dropped == 0  # global windows are never late
    assert rows(run_model(events, WindowSpec(Global()), end_of_input="flink")) == []


def test_global_windows_with_event_time_trigger_fire_once_at_the_end():
    r = run_model([rec("a", 1, 5), Watermark(10**12)], WindowSpec(Global(), trigger=EventTimeTrigger()))
    assert rows(r) == [("a", None, None, (1,))]


def test_count_window_tumbling():
    """count_window(3) = GlobalWindows + PurgingTrigger(CountTrigger(3))."""
    events = [rec("k", i) for i in range(1, 8)]
    r = run_model(events, WindowSpec(Global(), trigger=PurgingTrigger(CountTrigger(3))))
    assert [v for _, _, _, v in rows(r)] == [(1, 2, 3), (4, 5, 6), (7,)]


def test_count_window_sliding():
    """count_window(3, 2) = GlobalWindows + CountEvictor(3) + CountTrigger(2); the same
    expectations as test_api_windows.test_count_window_model_examples."""
    spec = WindowSpec(Global(), trigger=CountTrigger(2), evictor=CountEvictor(3))
    r = run_model([rec("k", i) for i in range(1, 8)], spec)
    assert [v for _, _, _, v in rows(r)] == [(1, 2), (2, 3, 4), (4, 5, 6), (5, 6, 7)]
    r = run_model([rec("k", i) for i in range(1, 7)], spec)
    assert [v for _, _, _, v in rows(r)] == [(1, 2), (2, 3, 4), (4, 5, 6)]


def test_count_evictor_after_the_function():
    spec = WindowSpec(Global(), trigger=CountTrigger(2), evictor=CountEvictor(1, evict_after=True))
    r = run_model([rec("k", i) for i in range(1, 6)], spec)
    # the function sees everything, then only the last record stays
    assert [v for _, _, _, v in rows(r)] == [(1, 2), (2, 3, 4), (4, 5)]


def test_time_evictor():
    spec = WindowSpec(Global(), trigger=CountTrigger(3), evictor=TimeEvictor(5))
    events = [rec("a", 1, 10), rec("a", 2, 2), rec("a", 3, 13), rec("a", 4, 20), rec("a", 5, 21), rec("a", 6, 1)]
    r = run_model(events, spec)
    # newest 13: keeps > 8 -> 1, 3; then (1, 3, 4, 5, 6): newest 21 keeps > 16 -> 4, 5
    assert [v for _, _, _, v in rows(r)] == [(1, 3), (4, 5)]
    spec = WindowSpec(Global(), trigger=CountTrigger(3), evictor=TimeEvictor(5, evict_after=True))
    r = run_model(events, spec)
    assert [v for _, _, _, v in rows(r)] == [(1, 2, 3), (1, 3, 4, 5, 6)]


def test_time_evictor_leaves_records_without_timestamps_alone():
    spec = WindowSpec(Global(), trigger=CountTrigger(2), evictor=TimeEvictor(1))
    r = run_model([rec("a", 1), rec("a", 2)], spec)
    assert [v for _, _, _, v in rows(r)] == [(1, 2)]


def test_evictor_on_event_time_windows():
    spec = WindowSpec(Tumbling(10), evictor=CountEvictor(2), allowed_lateness=10)
    events = [rec("a", 1, 1), rec("a", 2, 2), rec("a", 3, 3), Watermark(9), rec("a", 4, 4)]
    r = run_model(events, spec)
    assert rows(r) == [("a", 0, 10, (2, 3)), ("a", 0, 10, (3, 4))]


# -- end of input -------------------------------------------------------------------------------


def test_end_of_input_fires_everything_pending():
    events = [rec("a", 1, 3), rec("a", 2, 25), rec("b", 3, 14)]
    r = run_model(events, WindowSpec(Tumbling(10)))
    assert rows(r) == [("a", 0, 10, (1,)), ("b", 10, 20, (3,)), ("a", 20, 30, (2,))]
    # processing-time windows fire at the end too
    r = run_model([rec("a", 1), ProcessingTime(5), rec("a", 2)], WindowSpec(Tumbling(100, domain=PROC)))
    assert rows(r) == [("a", 0, 100, (1, 2))]
    # a window that already fired with nothing new does not fire again
    r = run_model([rec("a", 1, 3), Watermark(9)], WindowSpec(Tumbling(10), allowed_lateness=50))
    assert rows(r) == [("a", 0, 10, (1,))]


def test_fold_helper():
    assert fold([1, 2, 3], lambda a, b: a + b) == 6
    assert fold(["x"], lambda a, b: a + b) == "x"


def test_unknown_event_is_refused():
    with pytest.raises(TypeError):
        run_model([("record", 1, 2)], WindowSpec(Tumbling(10)))
    with pytest.raises(ValueError):
        run_model([rec("a", 1, None)], WindowSpec(Tumbling(10)))
