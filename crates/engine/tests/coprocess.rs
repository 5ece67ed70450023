//! The process operator on two connected keyed streams (`KeyedCoProcessFunction`):
//! both inputs of a key reach one state and one timer service, at any worker count;
//! keyed state is out of reach of a broadcast input's records, which every worker
//! sees and which alone write the broadcast state (the same on every worker); a
//! process node on a plain and a keyed input is refused.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use ferroflow_engine::functions::WorkerContext;
use ferroflow_engine::key::key_of;
use ferroflow_engine::process::{lock, Emit, ProcessFactory, Processor, SharedContext};
use ferroflow_engine::state::{KeyedStateBackend, OperatorStateBackend, StateDescriptor, StateId, StateKind};
use ferroflow_engine::time::TimeDomain;
use ferroflow_engine::{NodeKind, Plan, UdfError, UdfResult};

/// Adds the first input's values and 1000x the second's to one ValueState per key; the
/// second input registers an event-time timer (at 7, once per key) that emits the sum.
struct Shared {
    ctx: SharedContext<V>,
    sum: StateId,
}

impl Shared {
    fn add(&mut self, value: V, factor: i64, timer: bool) -> UdfResult<()> {
        let (k, v) = value.kv();
        let mut c = lock(&self.ctx);
        if c.current_key() != Some(&V::I(k)) {
            return Err(UdfError::new("the current key is not the record's"));
        }
        let (state, now) = c.state_for_access()?;
        let sum = state.value(self.sum, now)?.map_or(0, |s| s.int());
        state.update(self.sum, V::I(sum + factor * v), now)?;
        if timer {
            c.register_timer(TimeDomain::EventTime, 7)?;
        }
        Ok(())
    }
}

impl Processor<V> for Shared {
    fn process(&mut self, value: V, _out: &mut Emit<'_, V>) -> UdfResult<()> {
        self.add(value, 1, false)
    }

    fn process_second(&mut self, value: V, _out: &mut Emit<'_, V>) -> UdfResult<()> {
        self.add(value, 1000, true)
    }

    fn on_timer(&mut self, _ts: i64, _domain: TimeDomain, out: &mut Emit<'_, V>) -> UdfResult<()> {
        let mut c = lock(&self.ctx);
        let Some(V::I(k)) = c.current_key().cloned() else { panic!("no key in on_timer") };
        let (state, now) = c.state_for_access()?;
        let sum = state.value(self.sum, now)?.map_or(0, |s| s.int());
        out.main.push(V::KV(k, sum));
        Ok(())
    }
}

fn shared() -> ProcessFactory<V> {
    Arc::new(|_w: &WorkerContext, ctx: &SharedContext<V>| {
        let sum = lock(ctx).state.register(&StateDescriptor::new("sum", StateKind::Value))?;
        Ok(Box::new(Shared { ctx: ctx.clone(), sum }) as Box<dyn Processor<V>>)
    })
}

#[test]
fn both_inputs_of_a_key_share_its_state_and_timers() {
    let lefts: Vec<(i64, i64)> = (0..40).map(|i| (i % 7, i)).collect();
    let rights: Vec<(i64, i64)> = (0..30).map(|i| (i % 5, i + 1)).collect();
    let mut want: BTreeMap<i64, i64> = BTreeMap::new();
    for &(k, v) in &lefts {
        *want.entry(k).or_default() += v;
    }
    for &(k, v) in &rights {
        *want.entry(k).or_default() += 1000 * v;
    }
    // Only keys the second input saw have a timer.
    let want: Vec<V> = want.into_iter().filter(|(k, _)| *k < 5).map(|(k, s)| V::KV(k, s)).collect();
    for workers in [1, 2, 3] {
        let out = new_out();
        let mut plan = Plan::new();
        let a = plan.add("a", vec![], NodeKind::Source { factory: vec_source(kvs(&lefts)), parallel: false });
        let b = plan.add("b", vec![], NodeKind::Source { factory: vec_source(kvs(&rights)), parallel: false });
        let ka = plan.add("key a", vec![a], NodeKind::KeyBy(key_by_k()));
        let kb = plan.add("key b", vec![b], NodeKind::KeyBy(key_by_k()));
        let p = plan.add("process 'Shared'", vec![ka, kb], NodeKind::Process(shared()));
        plan.add("sink", vec![p], NodeKind::Sink(sink(&out)));
        run_ok(plan, cfg(workers));
        assert_eq!(sorted(&out), want, "{workers} workers");
    }
}

#[test]
fn a_process_node_on_a_plain_and_a_keyed_input_is_refused() {
    let mut plan = Plan::new();
    let a = plan.add("a", vec![], NodeKind::Source { factory: vec_source(ints(&[1])), parallel: false });
    let b = plan.add("b", vec![], NodeKind::Source { factory: vec_source(ints(&[2])), parallel: false });
    let kb = plan.add("key b", vec![b], NodeKind::KeyBy(key_by_k()));
    let p = plan.add("process 'Shared'", vec![a, kb], NodeKind::Process(shared()));
    plan.add("sink", vec![p], NodeKind::Sink(sink(&new_out())));
    let err = run_err(plan, cfg(1));
    assert!(
        err.to_string().contains("process 'Shared': a process function on connected streams needs both keyed"),
        "{err}"
    );
}

/// A keyed first input counted in keyed state; a broadcast second input's records are
/// echoed as `KV(-1, v)` (so once per worker), and touch keyed state if `touch`.
struct Rules {
    inner: Shared,
    touch: bool,
}

impl Processor<V> for Rules {
    fn process(&mut self, value: V, out: &mut Emit<'_, V>) -> UdfResult<()> {
        self.inner.process(value, out)
    }

    fn process_second(&mut self, value: V, out: &mut Emit<'_, V>) -> UdfResult<()> {
        let mut c = lock(&self.inner.ctx);
        if c.current_key().is_some() {
            return Err(UdfError::new("a broadcast record has a current key"));
        }
        if self.touch {
            c.state_for_access()?;
        }
        out.main.push(V::KV(-1, value.int()));
        Ok(())
    }

    fn on_timer(&mut self, ts: i64, domain: TimeDomain, out: &mut Emit<'_, V>) -> UdfResult<()> {
        self.inner.on_timer(ts, domain, out)
    }
}

fn rules(touch: bool) -> ProcessFactory<V> {
    Arc::new(move |_w: &WorkerContext, ctx: &SharedContext<V>| {
        let sum = lock(ctx).state.register(&StateDescriptor::new("sum", StateKind::Value))?;
        Ok(Box::new(Rules { inner: Shared { ctx: ctx.clone(), sum }, touch }) as Box<dyn Processor<V>>)
    })
}

fn broadcast_plan(touch: bool, out: &Out<V>) -> Plan<V> {
    let mut plan = Plan::new();
    let lefts: Vec<(i64, i64)> = (0..20).map(|i| (i % 4, i)).collect();
    let a = plan.add("a", vec![], NodeKind::Source { factory: vec_source(kvs(&lefts)), parallel: false });
    let b = plan.add("b", vec![], NodeKind::Source { factory: vec_source(ints(&[5, 6])), parallel: false });
    let ka = plan.add("key a", vec![a], NodeKind::KeyBy(key_by_k()));
    let bb = plan.add("broadcast b", vec![b], NodeKind::Partition(ferroflow_engine::Partitioning::Broadcast));
    let p = plan.add("process 'Rules'", vec![ka, bb], NodeKind::Process(rules(touch)));
    plan.add("sink", vec![p], NodeKind::Sink(sink(out)));
    plan
}

#[test]
fn every_worker_sees_every_broadcast_record_beside_its_keys() {
    for workers in [1, 2, 3] {
        let out = new_out();
        run_ok(broadcast_plan(false, &out), cfg(workers));
        let got = sorted(&out);
        let echoes: Vec<V> = got.iter().filter(|v| v.kv().0 == -1).cloned().collect();
        let mut want: Vec<V> = (0..workers).flat_map(|_| [V::KV(-1, 5), V::KV(-1, 6)]).collect();
        want.sort();
        assert_eq!(echoes, want, "{workers} workers");
        // Keyed records still reach their key's state; nothing registered a timer.
        assert_eq!(got.len(), echoes.len(), "{workers} workers");
    }
}

#[test]
fn keyed_state_is_out_of_reach_of_broadcast_records() {
    let err = run_err(broadcast_plan(true, &new_out()), cfg(2));
    let text = err.to_string();
    assert!(text.contains("process 'Rules'") && text.contains("not in process_broadcast_element"), "{text}");
}

/// Broadcast records go into broadcast state "seen" (`write_from_keyed`: keyed records
/// try to write it too); keyed records register a timer, which fires at the end of the
/// input and emits `KV(key, v)` for every value the worker's broadcast state holds.
struct Seen {
    ctx: SharedContext<V>,
    seen: ferroflow_engine::state::BroadcastStateId,
    write_from_keyed: bool,
}

impl Processor<V> for Seen {
    fn process(&mut self, value: V, _out: &mut Emit<'_, V>) -> UdfResult<()> {
        let mut c = lock(&self.ctx);
        if self.write_from_keyed {
            c.broadcast_for_write(self.seen)?;
        }
        c.register_timer(TimeDomain::EventTime, value.kv().1)
    }

    fn process_second(&mut self, value: V, _out: &mut Emit<'_, V>) -> UdfResult<()> {
        let mut c = lock(&self.ctx);
        let v = value.int();
        c.broadcast_for_write(self.seen)?.put(self.seen, key_of(&v), V::I(v), V::I(v))
    }

    fn on_timer(&mut self, _ts: i64, _domain: TimeDomain, out: &mut Emit<'_, V>) -> UdfResult<()> {
        let mut c = lock(&self.ctx);
        let Some(V::I(k)) = c.current_key().cloned() else { panic!("no key in on_timer") };
        for (_, v) in c.broadcast_for_read()?.items(self.seen)? {
            out.main.push(V::KV(k, v.int()));
        }
        Ok(())
    }
}

fn seen_plan(write_from_keyed: bool, out: &Out<V>) -> Plan<V> {
    let factory: ProcessFactory<V> = Arc::new(move |_w: &WorkerContext, ctx: &SharedContext<V>| {
        let seen = lock(ctx).broadcast.register_broadcast("seen")?;
        Ok(Box::new(Seen { ctx: ctx.clone(), seen, write_from_keyed }) as Box<dyn Processor<V>>)
    });
    let mut plan = Plan::new();
    let lefts: Vec<(i64, i64)> = (0..6).map(|i| (i, 100 + i)).collect();
    let a = plan.add("a", vec![], NodeKind::Source { factory: vec_source(kvs(&lefts)), parallel: false });
    let b = plan.add("b", vec![], NodeKind::Source { factory: vec_source(ints(&[5, 6, 5])), parallel: false });
    let ka = plan.add("key a", vec![a], NodeKind::KeyBy(key_by_k()));
    let bb = plan.add("broadcast b", vec![b], NodeKind::Partition(ferroflow_engine::Partitioning::Broadcast));
    let p = plan.add("process 'Seen'", vec![ka, bb], NodeKind::Process(factory));
    plan.add("sink", vec![p], NodeKind::Sink(sink(out)));
    plan
}

#[test]
fn every_worker_holds_the_same_broadcast_state() {
    for workers in [1, 2, 3] {
        let out = new_out();
        run_ok(seen_plan(false, &out), cfg(workers));
        // Each key's timer (on whichever worker owns it) saw both values.
        let want: Vec<V> = (0..6).flat_map(|k| [V::KV(k, 5), V::KV(k, 6)]).collect();
        assert_eq!(sorted(&out), want, "{workers} workers");
    }
}

#[test]
fn broadcast_state_is_read_only_for_keyed_records() {
    let err = run_err(seen_plan(true, &new_out()), cfg(2));
    let text = err.to_string();
    assert!(text.contains("process 'Seen'") && text.contains("broadcast state 'seen' is read-only"), "{text}");
}
