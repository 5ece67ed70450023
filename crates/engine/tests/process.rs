//! The process operator (`operators::process`) with a Rust process function: keyed
//! ValueState, event-time and processing-time timers (manual clock), their order,
//! outputs' timestamps, the end of input, and the errors of a plain stream's timers.
//! Every job runs on 1 and 3 workers and must give the same result.

mod common;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use common::*;
use ferroflow_engine::connectors::testing::{TestEvent, TestingSource};
use ferroflow_engine::functions::*;
use ferroflow_engine::key::key_of;
use ferroflow_engine::process::{lock, Emit, ProcessFactory, Processor, SharedContext};
use ferroflow_engine::record::{describe_truncated, BatchReadError, Stamped};
use ferroflow_engine::state::{KeyedStateBackend, StateDescriptor, StateId, StateKind};
use ferroflow_engine::time::{TimeDomain, NO_TIME};
use ferroflow_engine::{NodeKind, Plan, Record, RuntimeMode, Semantics, UdfError, UdfResult};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum E {
    /// (key, value)
    Kv(i64, i64),
    Key(i64),
    /// What process_element emitted: key, running count, watermark seen.
    Count {
        key: i64,
        count: i64,
        watermark: i64,
    },
    /// What on_timer emitted: key, timer timestamp, domain (0 event, 1 processing), count.
    Fired {
        key: i64,
        at: i64,
        processing: bool,
        count: i64,
    },
}

impl Record for E {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        out.extend(lines.drain(..).map(|l| E::Key(l.len() as i64)));
    }
    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        out.extend(range.map(E::Key));
    }
    fn describe(&self) -> String {
        describe_truncated(&format!("{self:?}"))
    }
    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        encode_bincode_batch(records, out)
    }
    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError> {
        decode_bincode_batch(bytes, out)
    }
}

type S = Stamped<E>;

fn rec(k: i64, v: i64, ts: i64) -> TestEvent<S> {
    TestEvent::Record(Stamped::at(E::Kv(k, v), ts))
}

/// A running count per key in a ValueState; each record registers an event-time timer
/// at `ts + event_after` (twice: it must fire once) and, if `processing_after` is set,
/// a processing-time timer that far after the clock. Timers emit the key's count.
struct Counter {
    ctx: SharedContext<S>,
    count: StateId,
    event_after: i64,
    processing_after: Option<i64>,
}

fn count_of(ctx: &SharedContext<S>, id: StateId) -> UdfResult<i64> {
    let mut c = lock(ctx);
    let (state, now) = c.state_for_access()?;
    Ok(match state.value(id, now)? {
        Some(Stamped { value: E::Key(n), .. }) => n,
        _ => 0,
    })
}

impl Processor<S> for Counter {
    fn process(&mut self, value: S, out: &mut Emit<'_, S>) -> UdfResult<()> {
        let E::Kv(k, _) = value.value else { panic!("not a Kv") };
        let count = count_of(&self.ctx, self.count)? + 1;
        let mut c = lock(&self.ctx);
        let (state, now) = c.state_for_access()?;
        state.update(self.count, Stamped::new(E::Key(count)), now)?;
        if c.current_key().map(|r| r.value.clone()) != Some(E::Key(k)) {
            return Err(UdfError::new("the current key is not the record's"));
        }
        let ts = c.timestamp;
        c.register_timer(TimeDomain::EventTime, ts + self.event_after)?;
        c.register_timer(TimeDomain::EventTime, ts + self.event_after)?;
        if let Some(after) = self.processing_after {
            let at = c.processing_time + after;
            c.register_timer(TimeDomain::ProcessingTime, at)?;
        }
        out.main.push(Stamped::new(E::Count { key: k, count, watermark: c.watermark }));
        Ok(())
    }

    fn on_timer(&mut self, timestamp: i64, domain: TimeDomain, out: &mut Emit<'_, S>) -> UdfResult<()> {
        let count = count_of(&self.ctx, self.count)?;
        let c = lock(&self.ctx);
        let Some(E::Key(key)) = c.current_key().map(|r| r.value.clone()) else { panic!("no key in on_timer") };
        assert_eq!(c.domain, Some(domain));
        out.main.push(Stamped::new(E::Fired {
            key,
            at: timestamp,
            processing: domain == TimeDomain::ProcessingTime,
            count,
        }));
        // Side output 1: keys whose timer found 3 records; side output 2 is not read.
        if count >= 3 {
            out.side.push((1, Stamped::new(E::Key(key))));
        }
        out.side.push((2, Stamped::new(E::Key(-key))));
        Ok(())
    }
}

fn counter(event_after: i64, processing_after: Option<i64>) -> ProcessFactory<S> {
    Arc::new(move |_w: &WorkerContext, ctx: &SharedContext<S>| {
        let count = lock(ctx).state.register(&StateDescriptor::new("count", StateKind::Value))?;
        Ok(Box::new(Counter { ctx: ctx.clone(), count, event_after, processing_after }) as Box<dyn Processor<S>>)
    })
}

fn by_k() -> KeyFactory<S> {
    key_by(|r: &S| {
        let E::Kv(k, _) = r.value else { panic!("not a Kv") };
        (key_of(&k), Stamped::new(E::Key(k)))
    })
}

/// testing source -> key_by -> process -> sink, and its side output 1 -> `side`;
/// returns (value, timestamp) sorted.
fn run_keyed(
    events: Vec<TestEvent<S>>,
    f: ProcessFactory<S>,
    workers: usize,
    manual: bool,
    side: &Out<S>,
) -> Vec<(E, i64)> {
    let mut got = run_keyed_with(events, f, workers, manual, side, Semantics::default());
    got.sort();
    got
}

/// [`run_keyed`] with `semantics`; the output in arrival order, by worker.
fn run_keyed_with(
    events: Vec<TestEvent<S>>,
    f: ProcessFactory<S>,
    workers: usize,
    manual: bool,
    side: &Out<S>,
    semantics: Semantics,
) -> Vec<(E, i64)> {
    let out = new_out();
    let mut plan = Plan::new();
    plan.semantics = semantics;
    plan.manual_processing_time = manual;
    let src = plan.add(
        "source",
        vec![],
        NodeKind::Source {
            factory: reader_source(move |_ctx| Ok(TestingSource::new(events.clone(), 0))),
            parallel: false,
        },
    );
    let k = plan.add("key_by", vec![src], NodeKind::KeyBy(by_k()));
    let p = plan.add("process 'Counter'", vec![k], NodeKind::Process(f));
    plan.add("sink", vec![p], NodeKind::Sink(sink(&out)));
    let s = plan.add("side output 1", vec![p], NodeKind::ProcessSideOutput(1));
    plan.add("side sink", vec![s], NodeKind::Sink(sink(side)));
    run_ok(plan, cfg(workers));
    by_worker(&out).into_values().flatten().map(|s| (s.value, s.ts)).collect()
}

#[test]
fn keyed_state_counts_and_event_timers_fire_once_in_order_with_their_timestamp() {
    let events = vec![
        rec(1, 0, 1000),
        rec(2, 0, 4000),
        rec(1, 0, 3000),
        TestEvent::Watermark(2500),
        rec(2, 0, 2000),
        rec(1, 0, 5000),
        TestEvent::Watermark(4500),
        rec(2, 0, 7000),
    ];
    for workers in [1, 3] {
        let side = new_out();
        let got = run_keyed(events.clone(), counter(2000, None), workers, true, &side);
        // Timers that saw a count of 3 (all but key 2's at 4000) sent their key; a side
        // output's records carry the timer's timestamp too.
        let mut side: Vec<(E, i64)> = values(&side).into_iter().map(|s| (s.value, s.ts)).collect();
        side.sort();
        assert_eq!(
            side,
            vec![(E::Key(1), 3000), (E::Key(1), 5000), (E::Key(1), 7000), (E::Key(2), 6000), (E::Key(2), 9000)]
        );
        let count = |key, count, watermark| (E::Count { key, count, watermark }, 0);
        let fired = |key, at, count| (E::Fired { key, at, processing: false, count }, at);
        let mut want = vec![
            // Records carry their timestamps; each saw the watermark it was sent under.
            (count(1, 1, NO_TIME).0, 1000),
            (count(2, 1, NO_TIME).0, 4000),
            (count(1, 2, NO_TIME).0, 3000),
            (count(2, 2, 2500).0, 2000),
            (count(1, 3, 2500).0, 5000),
            (count(2, 3, 4500).0, 7000),
            // Watermark 4500 fires key 1's timer at 3000 (count 2 then: the record at
            // 5000 came after it) and key 2's at 4000; the rest fire at the end.
            fired(1, 3000, 3),
            fired(2, 4000, 2),
            fired(1, 5000, 3),
            fired(1, 7000, 3),
            fired(2, 6000, 3),
            fired(2, 9000, 3),
        ];
        want.sort();
        assert_eq!(got, want, "{workers} workers");
    }
}

#[test]
fn processing_time_timers_follow_the_manual_clock() {
    let events = vec![
        rec(1, 0, 10),
        rec(2, 0, 20),
        TestEvent::ProcessingTime(40),
        rec(1, 0, 30),
        TestEvent::ProcessingTime(100),
    ];
    for workers in [1, 3] {
        // Event timers far away (they fire at the end); processing timers 50 ms after
        // the clock: 0 + 50 for the first two records, 40 + 50 for the third (one per
        // key and time: key 1's two records register 50 and 90).
        let side = new_out();
        let got = run_keyed(events.clone(), counter(1_000_000, Some(50)), workers, true, &side);
        let processing: Vec<(E, i64)> =
            got.into_iter().filter(|(e, _)| matches!(e, E::Fired { processing: true, .. })).collect();
        let fired = |key, at, count| (E::Fired { key, at, processing: true, count }, NO_TIME);
        // Nothing is due at 40; at 100 all three fire, after key 1's second record.
        // Outputs of processing-time timers carry no timestamp.
        let mut want = vec![fired(1, 50, 2), fired(2, 50, 1), fired(1, 90, 2)];
        want.sort();
        assert_eq!(processing, want, "{workers} workers");
    }
}

/// A plain stream's process function that tries to register a timer.
struct TimerOnPlain(SharedContext<S>);

impl Processor<S> for TimerOnPlain {
    fn process(&mut self, value: S, out: &mut Emit<'_, S>) -> UdfResult<()> {
        lock(&self.0).register_timer(TimeDomain::EventTime, 5)?;
        out.main.push(value);
        Ok(())
    }
}

#[test]
fn timers_on_a_plain_stream_fail_the_job_with_a_clear_error() {
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], NodeKind::Source { factory: vec_source(vec![rec_value(1)]), parallel: false });
    let f: ProcessFactory<S> = Arc::new(|_w: &WorkerContext, ctx: &SharedContext<S>| {
        Ok(Box::new(TimerOnPlain(ctx.clone())) as Box<dyn Processor<S>>)
    });
    let p = plan.add("process 'TimerOnPlain'", vec![src], NodeKind::Process(f));
    let out = new_out();
    plan.add("sink", vec![p], NodeKind::Sink(sink(&out)));
    let err = run_err(plan, cfg(2));
    assert_eq!(err.operator.as_deref(), Some("process 'TimerOnPlain'"));
    assert!(err.message.contains("timers are only available on keyed streams"), "{}", err.message);
}

fn rec_value(k: i64) -> S {
    Stamped::new(E::Kv(k, 0))
}

/// Sends `Kv(k, _)` to side output `k` (0: the main output).
struct BySide;

impl Processor<S> for BySide {
    fn process(&mut self, value: S, out: &mut Emit<'_, S>) -> UdfResult<()> {
        match value.value {
            E::Kv(0, _) => out.main.push(value),
            E::Kv(k, _) => out.side.push((k as usize, value)),
            _ => unreachable!("Kv records only"),
        }
        Ok(())
    }
}

#[test]
fn a_process_operator_has_as_many_side_outputs_as_the_plan_reads() {
    // Side outputs 1..=6 read (3 twice, 5 never); 7 has no reader and is dropped.
    let records: Vec<S> = (0..=7).flat_map(|k| [Stamped::new(E::Kv(k, 1)), Stamped::new(E::Kv(k, 2))]).collect();
    for workers in [1, 3] {
        let mut plan = Plan::new();
        let src =
            plan.add("source", vec![], NodeKind::Source { factory: vec_source(records.clone()), parallel: false });
        let f: ProcessFactory<S> =
            Arc::new(|_w: &WorkerContext, _ctx: &SharedContext<S>| Ok(Box::new(BySide) as Box<dyn Processor<S>>));
        let p = plan.add("process 'BySide'", vec![src], NodeKind::Process(f));
        let main = new_out();
        plan.add("sink", vec![p], NodeKind::Sink(sink(&main)));
        let mut outs = Vec::new();
        for i in [6, 1, 2, 3, 3, 4] {
            let s = plan.add(format!("side output {i}"), vec![p], NodeKind::ProcessSideOutput(i));
            let out = new_out();
            plan.add(format!("side sink {i}"), vec![s], NodeKind::Sink(sink(&out)));
            outs.push((i, out));
        }
        assert_eq!(plan.side_outputs(p), 6);
        run_ok(plan, cfg(workers));
        let sorted = |out: &Out<S>| {
            let mut v: Vec<E> = values(out).into_iter().map(|s| s.value).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&main), vec![E::Kv(0, 1), E::Kv(0, 2)], "{workers} workers");
        for (i, out) in &outs {
            let k = *i as i64;
            assert_eq!(sorted(out), vec![E::Kv(k, 1), E::Kv(k, 2)], "side output {i}, {workers} workers");
        }
    }
}

/// Batch mode: watermarks are ignored (every record sees none), each key's records
/// come together (by timestamp), then its event-time timers and its processing-time
/// timers, all at the end; keys in the order of their encodings on each worker.
#[test]
fn batch_mode_takes_each_key_at_the_end_with_its_timers_after_its_records() {
    let events = vec![
        rec(1, 0, 3000),
        rec(2, 0, 4000),
        rec(1, 0, 1000),
        TestEvent::Watermark(2500),
        TestEvent::ProcessingTime(100),
        rec(2, 0, 2000),
        TestEvent::Watermark(4500),
        rec(1, 0, 5000),
    ];
    let batch = Semantics { mode: RuntimeMode::Batch, ..Semantics::flink() };
    for workers in [1, 3] {
        let got = run_keyed_with(events.clone(), counter(2000, Some(50)), workers, true, &new_out(), batch);
        let count = |key, count, ts| (E::Count { key, count, watermark: NO_TIME }, ts);
        let fired = |key, at, processing, count| {
            (E::Fired { key, at, processing, count }, if processing { NO_TIME } else { at })
        };
        let key1 = vec![
            count(1, 1, 1000),
            count(1, 2, 3000),
            count(1, 3, 5000),
            fired(1, 3000, false, 3),
            fired(1, 5000, false, 3),
            fired(1, 7000, false, 3),
            // Records are taken at the end, the clock at its last reading (100): every
            // one registered the same processing-time timer.
            fired(1, 150, true, 3),
        ];
        let key2 = vec![
            count(2, 1, 2000),
            count(2, 2, 4000),
            fired(2, 4000, false, 2),
            fired(2, 6000, false, 2),
            fired(2, 150, true, 2),
        ];
        if workers == 1 {
            let (one, two) = (key_of(&1i64), key_of(&2i64));
            let want = if one.bytes() < two.bytes() { [key1, key2].concat() } else { [key2, key1].concat() };
            assert_eq!(got, want);
        } else {
            let mut got = got;
            got.sort();
            let mut want = [key1, key2].concat();
            want.sort();
            assert_eq!(got, want, "{workers} workers");
        }
    }
}

/// At the end of input in streaming mode, pending processing-time timers fire with
/// ferroflow's default and are dropped with Flink's rule; event-time ones fire either way.
#[test]
fn processing_time_timers_pending_at_the_end_follow_the_option() {
    let events = vec![rec(1, 0, 10), rec(2, 0, 20)];
    for workers in [1, 3] {
        for fire in [true, false] {
            let semantics = Semantics { fire_processing_timers_at_end: fire, ..Semantics::default() };
            let got = run_keyed_with(events.clone(), counter(5, Some(1_000)), workers, true, &new_out(), semantics);
            let processing = got.iter().filter(|(e, _)| matches!(e, E::Fired { processing: true, .. })).count();
            let event = got.iter().filter(|(e, _)| matches!(e, E::Fired { processing: false, .. })).count();
            assert_eq!((event, processing), (2, if fire { 2 } else { 0 }), "{workers} workers, fire={fire}");
        }
    }
}
