//! Object reuse off (the default): no function sees another's changes to a record.
//!
//! `Cell` behaves like a Python list: clones share its contents (as references do),
//! a function may change it in place, and `make_private` copies it when anything else
//! still holds it (as the binding does with reference counts). Each test changes
//! records in place where sharing would show, and checks what everyone else saw.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use ferroflow_engine::functions::closures::MapFn;
use ferroflow_engine::functions::{Transform, WorkerContext};
use ferroflow_engine::key::key_of;
use ferroflow_engine::record::describe_truncated;
use ferroflow_engine::{ExecConfig, NodeKind, Plan, Record, WindowFunction, WindowSpec};

#[derive(Clone, Debug)]
struct Cell(Arc<Mutex<Vec<i64>>>);

impl Cell {
    fn of(items: &[i64]) -> Cell {
        Cell(Arc::new(Mutex::new(items.to_vec())))
    }

    fn get(&self) -> Vec<i64> {
        self.0.lock().unwrap().clone()
    }

    fn push(&self, x: i64) {
        self.0.lock().unwrap().push(x);
    }
}

impl Record for Cell {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        out.extend(lines.drain(..).map(|l| Cell::of(&[l.len() as i64])));
    }

    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        out.extend(range.map(|i| Cell::of(&[i])));
    }

    fn describe(&self) -> String {
        describe_truncated(&format!("{:?}", self.get()))
    }

    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        let values: Vec<Vec<i64>> = records.map(Cell::get).collect();
        encode_bincode_batch(values.iter(), out)
    }

    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), String> {
        let mut values: Vec<Vec<i64>> = Vec::new();
        decode_bincode_batch(bytes, &mut values)?;
        out.extend(values.iter().map(|v| Cell::of(v)));
        Ok(())
    }

    fn make_private(&mut self) -> Result<(), String> {
        if Arc::strong_count(&self.0) > 1 {
            *self = Cell::of(&self.get());
        }
        Ok(())
    }
}

fn config(workers: usize, object_reuse: bool) -> ExecConfig {
    ExecConfig { workers, object_reuse, ..ExecConfig::default() }
}

fn cells(items: &[&[i64]]) -> Vec<Cell> {
    items.iter().map(|v| Cell::of(v)).collect()
}

fn contents(out: &Out<Cell>) -> Vec<Vec<i64>> {
    let mut v: Vec<Vec<i64>> = values(out).iter().map(Cell::get).collect();
    v.sort();
    v
}

/// Changes its input in place and passes it on.
fn push(x: i64) -> NodeKind<Cell> {
    NodeKind::Transform(map(move |c: Cell| {
        c.push(x);
        c
    }))
}

fn all_one_key() -> NodeKind<Cell> {
    NodeKind::KeyBy(key_by(|_c: &Cell| (key_of(&0i64), Cell::of(&[0]))))
}

/// A reduce that appends to its accumulator in place and returns it.
fn append_in_place() -> NodeKind<Cell> {
    NodeKind::Reduce(reducer(|acc: &Cell, c: &Cell| {
        for x in c.get() {
            acc.push(x);
        }
        acc.clone()
    }))
}

#[test]
fn each_reader_of_a_stream_gets_records_of_its_own() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src =
            plan.add("src", vec![], NodeKind::Source { factory: vec_source(cells(&[&[1], &[2]])), parallel: false });
        let changed = plan.add("change", vec![src], push(100));
        let seen = plan.add("look", vec![src], NodeKind::Transform(map(|c: Cell| c)));
        let (a, b) = (new_out(), new_out());
        plan.add("sink a", vec![changed], NodeKind::Sink(sink(&a)));
        plan.add("sink b", vec![seen], NodeKind::Sink(sink(&b)));
        run_ok(plan, config(workers, false));
        assert_eq!(contents(&a), vec![vec![1, 100], vec![2, 100]], "workers={workers}");
        assert_eq!(contents(&b), vec![vec![1], vec![2]], "workers={workers}: the other reader's change showed");
    }
}

#[test]
fn a_stream_unioned_with_itself_is_two_streams() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add("src", vec![], NodeKind::Source { factory: vec_source(cells(&[&[1]])), parallel: false });
        let both = plan.add("union", vec![src, src], NodeKind::Union);
        let changed = plan.add("change", vec![both], push(7));
        let out = new_out();
        plan.add("sink", vec![changed], NodeKind::Sink(sink(&out)));
        run_ok(plan, config(workers, false));
        assert_eq!(contents(&out), vec![vec![1, 7], vec![1, 7]], "workers={workers}");
    }
}

#[test]
fn a_keyed_stream_read_twice_gives_each_reader_its_own_records() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src =
            plan.add("src", vec![], NodeKind::Source { factory: vec_source(cells(&[&[1], &[2]])), parallel: false });
        let keyed = plan.add("key", vec![src], all_one_key());
        let rolled = plan.add("reduce", vec![keyed], append_in_place());
        let plain = plan.add("values", vec![keyed], NodeKind::Transform(map(|c: Cell| c)));
        let (a, b) = (new_out(), new_out());
        plan.add("sink a", vec![rolled], NodeKind::Sink(sink(&a)));
        plan.add("sink b", vec![plain], NodeKind::Sink(sink(&b)));
        run_ok(plan, config(workers, false));
        assert_eq!(contents(&a), vec![vec![1], vec![1, 2]], "workers={workers}");
        assert_eq!(contents(&b), vec![vec![1], vec![2]], "workers={workers}: the reduce's change showed");
    }
}

/// The reduce's state is what it emitted last: without a copy, the next in-place
/// update rewrites the updates already emitted.
fn rolling_job(object_reuse: bool, workers: usize) -> Vec<Vec<i64>> {
    let mut plan = Plan::new();
    let src =
        plan.add("src", vec![], NodeKind::Source { factory: vec_source(cells(&[&[1], &[2], &[3]])), parallel: false });
    let keyed = plan.add("key", vec![src], all_one_key());
    let rolled = plan.add("reduce", vec![keyed], append_in_place());
    let out = new_out();
    plan.add("sink", vec![rolled], NodeKind::Sink(sink(&out)));
    run_ok(plan, config(workers, object_reuse));
    values(&out).iter().map(Cell::get).collect()
}

#[test]
fn a_reduce_emits_copies_of_its_state() {
    for workers in [1, 2] {
        assert_eq!(rolling_job(false, workers), vec![vec![1], vec![1, 2], vec![1, 2, 3]], "workers={workers}");
    }
}

#[test]
fn object_reuse_shares_records() {
    assert_eq!(rolling_job(true, 1), vec![vec![1, 2, 3]; 3], "object reuse makes no copies");
}

/// Flink's object-reuse pattern: a function that returns the same object each time,
/// changed in between.
#[test]
fn a_function_that_keeps_what_it_returned() {
    let reuse: TransformFactory = Arc::new(|_ctx: &WorkerContext| {
        let out = Cell::of(&[]);
        Ok(Box::new(MapFn(move |c: Cell| {
            *out.0.lock().unwrap() = c.get();
            Ok(Some(out.clone()))
        })) as Box<dyn Transform<Cell>>)
    });
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add(
            "src",
            vec![],
            NodeKind::Source { factory: vec_source(cells(&[&[1], &[2], &[3]])), parallel: false },
        );
        let reused = plan.add("reuse", vec![src], NodeKind::Transform(reuse.clone()));
        let out = new_out();
        plan.add("sink", vec![reused], NodeKind::Sink(sink(&out)));
        run_ok(plan, config(workers, false));
        assert_eq!(contents(&out), vec![vec![1], vec![2], vec![3]], "workers={workers}");
    }
}

type TransformFactory = ferroflow_engine::functions::TransformFactory<Cell>;

/// Sliding windows put a record in two windows; a reduce that changes its first value
/// in place must not change the other window's.
#[test]
fn sliding_windows_reduce_their_own_values() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add(
            "src",
            vec![],
            NodeKind::Source { factory: vec_source(cells(&[&[1], &[2], &[3]])), parallel: false },
        );
        let keyed = plan.add("key", vec![src], all_one_key());
        let NodeKind::Reduce(f) = append_in_place() else { unreachable!() };
        let spec = WindowSpec::ProcessingTime { size_ms: 10_000, slide_ms: 5_000 };
        let windows = plan.add("windows", vec![keyed], NodeKind::Window { spec, function: WindowFunction::Reduce(f) });
        let out = new_out();
        plan.add("sink", vec![windows], NodeKind::Sink(sink(&out)));
        let clock = TestClock::at(12_345);
        run_ok(plan, ExecConfig { clock, ..config(workers, false) });
        assert_eq!(contents(&out), vec![vec![1, 2, 3], vec![1, 2, 3]], "workers={workers}");
    }
}

/// `countWindow(2, 1)` fires at every record and keeps the window's values: a window
/// function changing the values it gets must not change the next firing's.
#[test]
fn a_window_that_keeps_its_values_hands_out_copies() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let apply = try_apply(move |_key: &Cell, _w, values: Vec<Cell>| {
        log.lock().unwrap().push(values.iter().map(Cell::get).collect::<Vec<_>>());
        for v in &values {
            v.push(99);
        }
        Ok(values)
    });
    let mut plan = Plan::new();
    let src =
        plan.add("src", vec![], NodeKind::Source { factory: vec_source(cells(&[&[1], &[2], &[3]])), parallel: false });
    let keyed = plan.add("key", vec![src], all_one_key());
    let spec = WindowSpec::Count { size: 2, slide: 1 };
    let windows = plan.add("windows", vec![keyed], NodeKind::Window { spec, function: WindowFunction::Apply(apply) });
    let out = new_out();
    plan.add("sink", vec![windows], NodeKind::Sink(sink(&out)));
    run_ok(plan, config(1, false));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![vec![vec![1]], vec![vec![1], vec![2]], vec![vec![2], vec![3]]]);
}
