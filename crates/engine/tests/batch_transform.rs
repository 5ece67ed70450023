//! Batch steps (`Transform::batch_shape`): one call per batch; the chain checks a
//! one-to-one step's count and stamps outputs as the step's shape says.

use std::sync::{Arc, Mutex};

use ferroflow_engine::functions::closures::*;
use ferroflow_engine::functions::{BatchShape, SinkFactory, Transform};
use ferroflow_engine::record::Stamped;
use ferroflow_engine::{run, ErrorKind, ExecConfig, NodeKind, Plan, UdfResult};

type S = Stamped<String>;

/// A batch step: `f` maps the whole batch; counts its calls.
struct Batch {
    shape: BatchShape,
    f: fn(&[S]) -> Vec<S>,
    calls: Arc<Mutex<Vec<usize>>>,
}

impl Transform<S> for Batch {
    fn apply(&mut self, _input: S, _out: &mut Vec<S>) -> UdfResult<()> {
        panic!("a batch step is called per batch")
    }

    fn batch_shape(&self) -> Option<BatchShape> {
        Some(self.shape)
    }

    fn apply_batch(&mut self, input: &[S], out: &mut Vec<S>) -> UdfResult<()> {
        self.calls.lock().unwrap().push(input.len());
        out.extend((self.f)(input));
        Ok(())
    }
}

fn collect_sink(into: Arc<Mutex<Vec<(String, i64)>>>) -> SinkFactory<S> {
    Arc::new(move |_ctx| {
        let into = into.clone();
        Ok(Box::new(SinkFn(move |batch: &mut Vec<S>| {
            into.lock().unwrap().extend(batch.drain(..).map(|s| (s.value, s.ts)));
            Ok(())
        })) as _)
    })
}

/// Runs source (records `name@ts`, 1 worker) -> batch step -> sink.
fn run_step(
    shape: BatchShape,
    f: fn(&[S]) -> Vec<S>,
) -> (Result<Vec<(String, i64)>, ferroflow_engine::JobError>, Vec<usize>) {
    let records: Vec<S> =
        [("a", 30), ("b", 10), ("c", 20)].iter().map(|(v, t)| Stamped::at(v.to_string(), *t)).collect();
    let out = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut plan = Plan::new();
    let src = plan.add(
        "source",
        vec![],
        NodeKind::Source {
            factory: Arc::new(move |_ctx| Ok(Box::new(VecSource(records.clone().into_iter())) as _)),
            parallel: false,
        },
    );
    let step_calls = calls.clone();
    let step = plan.add(
        "map_batch 'f'",
        vec![src],
        NodeKind::Transform(Arc::new(move |_ctx| Ok(Box::new(Batch { shape, f, calls: step_calls.clone() }) as _))),
    );
    plan.add("sink", vec![step], NodeKind::Sink(collect_sink(out.clone())));
    let result = run(plan, ExecConfig { workers: 1, ..ExecConfig::default() });
    let calls = calls.lock().unwrap().clone();
    (result.map(|_| out.lock().unwrap().clone()), calls)
}

fn upper(batch: &[S]) -> Vec<S> {
    batch.iter().map(|s| Stamped::new(s.value.to_uppercase())).collect()
}

#[test]
fn one_to_one_outputs_keep_their_inputs_timestamps() {
    let (out, calls) = run_step(BatchShape::OneToOne, upper);
    assert_eq!(out.unwrap(), vec![("A".into(), 30), ("B".into(), 10), ("C".into(), 20)]);
    assert_eq!(calls, vec![3], "one call for the one batch");
}

#[test]
fn one_to_one_with_another_count_fails_naming_both() {
    let (out, _) = run_step(BatchShape::OneToOne, |b| upper(&b[1..]));
    let e = out.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Udf);
    assert_eq!(e.operator.as_deref(), Some("map_batch 'f'"));
    assert!(e.message.contains("returned 2 results for a batch of 3 records"), "{}", e.message);
    assert_eq!(e.record.as_deref(), Some("\"a\""));
}

#[test]
fn subset_keeps_timestamps_and_any_takes_the_greatest() {
    let (kept, _) = run_step(BatchShape::Subset, |b| b.iter().filter(|s| s.value != "b").cloned().collect());
    assert_eq!(kept.unwrap(), vec![("a".into(), 30), ("c".into(), 20)]);
    let (many, _) = run_step(BatchShape::Any, |b| vec![Stamped::new(format!("{}", b.len())), Stamped::new("x".into())]);
    assert_eq!(many.unwrap(), vec![("3".into(), 30), ("x".into(), 30)]);
}
