//! End-to-end runs of small plans on String records, 1 and 2 workers.

use std::sync::{Arc, Mutex};

use ferroflow_engine::functions::closures::*;
use ferroflow_engine::functions::{SinkFactory, SourceFactory, TransformFactory};
use ferroflow_engine::key::key_of;
use ferroflow_engine::{run, ErrorKind, ExecConfig, NodeKind, Plan, UdfError};

fn vec_source(items: Vec<&str>) -> SourceFactory<String> {
    let items: Vec<String> = items.into_iter().map(String::from).collect();
    Arc::new(move |_ctx| Ok(Box::new(VecSource(items.clone().into_iter())) as _))
}

fn collect_sink(into: Arc<Mutex<Vec<String>>>) -> SinkFactory<String> {
    Arc::new(move |_ctx| {
        let into = into.clone();
        Ok(Box::new(SinkFn(move |batch: &mut Vec<String>| {
            into.lock().unwrap().extend(batch.drain(..));
            Ok(())
        })) as _)
    })
}

fn map(f: fn(String) -> Option<String>) -> TransformFactory<String> {
    Arc::new(move |_ctx| Ok(Box::new(MapFn(move |s: String| Ok(f(s)))) as _))
}

fn sorted(v: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    let mut v = v.lock().unwrap().clone();
    v.sort();
    v
}

fn config(workers: usize) -> ExecConfig {
    ExecConfig { workers, ..ExecConfig::default() }
}

#[test]
fn rolling_word_count_on_one_and_two_workers() {
    for workers in [1, 2] {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut plan = Plan::new();
        let src = plan.add(
            "source",
            vec![],
            NodeKind::Source { factory: vec_source(vec!["a b", "b c", "b"]), parallel: false },
        );
        let words = plan.add(
            "flat_map",
            vec![src],
            NodeKind::Transform(Arc::new(|_ctx| {
                Ok(Box::new(FlatMapFn(|s: String| Ok(s.split(' ').map(|w| format!("{w}:1")).collect()))) as _)
            })),
        );
        let keyed = plan.add(
            "key_by",
            vec![words],
            NodeKind::KeyBy(Arc::new(|_ctx| {
                Ok(Box::new(KeyFn(|s: &String| {
                    let w = s.split(':').next().unwrap_or_default().to_string();
                    Ok((key_of(w.as_str()), w))
                })) as _)
            })),
        );
        let counts = plan.add(
            "reduce",
            vec![keyed],
            NodeKind::Reduce(Arc::new(|_ctx| {
                Ok(Box::new(ReduceFn(|a: &String, b: &String| {
                    let (w, n) = a.split_once(':').unwrap();
                    let m: u64 = b.split_once(':').unwrap().1.parse().unwrap();
                    Ok(format!("{w}:{}", n.parse::<u64>().unwrap() + m))
                })) as _)
            })),
        );
        plan.add("sink", vec![counts], NodeKind::Sink(collect_sink(out.clone())));
        let summary = run(plan, config(workers)).expect("job runs");
        assert_eq!(sorted(&out), vec!["a:1", "b:1", "b:2", "b:3", "c:1"], "workers={workers}");
        assert_eq!(summary.counts[counts], 5);
    }
}

#[test]
fn iteration_runs_until_nothing_circulates() {
    for workers in [1, 2] {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut plan = Plan::new();
        let src = plan.add("source", vec![], NodeKind::Source { factory: vec_source(vec!["2"; 5]), parallel: false });
        let head = plan.add("iterate", vec![src], NodeKind::Iterate { feedback: None, max_wait: None });
        let minus = plan.add(
            "minus",
            vec![head],
            NodeKind::Transform(map(|s| Some((s.parse::<i64>().unwrap() - 1).to_string()))),
        );
        let back = plan.add(
            "positive",
            vec![minus],
            NodeKind::Transform(map(|s| (s.parse::<i64>().unwrap() > 0).then_some(s))),
        );
        let done = plan.add("zero", vec![minus], NodeKind::Transform(map(|s| (s == "0").then_some(s))));
        plan.close_loop(head, back);
        plan.add("sink", vec![done], NodeKind::Sink(collect_sink(out.clone())));
        run(plan, config(workers)).expect("job runs");
        assert_eq!(sorted(&out), vec!["0"; 5], "workers={workers}");
    }
}

#[test]
fn a_loop_that_never_converges_is_cut_after_max_wait() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], NodeKind::Source { factory: vec_source(vec!["x"]), parallel: false });
    let head = plan.add(
        "iterate",
        vec![src],
        NodeKind::Iterate { feedback: None, max_wait: Some(std::time::Duration::from_millis(200)) },
    );
    let same = plan.add("same", vec![head], NodeKind::Transform(map(Some)));
    plan.close_loop(head, same);
    plan.add("sink", vec![same], NodeKind::Sink(collect_sink(out.clone())));
    let summary = run(plan, config(1)).expect("job ends");
    assert_eq!(summary.dropped, 1);
    assert_eq!(summary.warnings.len(), 1);
    assert!(!out.lock().unwrap().is_empty());
}

#[test]
fn a_failing_udf_stops_the_job_with_its_operator_named() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add(
            "source",
            vec![],
            NodeKind::Source {
                factory: Arc::new(|_ctx| {
                    Ok(Box::new(VecSource((0..100_000).map(|i| i.to_string()).collect::<Vec<_>>().into_iter())) as _)
                }),
                parallel: true,
            },
        );
        let bad = plan.add(
            "map 'boom'",
            vec![src],
            NodeKind::Transform(Arc::new(|_ctx| {
                Ok(Box::new(MapFn(|s: String| {
                    if s == "500" {
                        Err(UdfError::new("ValueError: boom").with_record(s))
                    } else {
                        Ok(Some(s))
                    }
                })) as _)
            })),
        );
        plan.add("sink", vec![bad], NodeKind::Sink(collect_sink(Arc::new(Mutex::new(Vec::new())))));
        let err = run(plan, config(workers)).expect_err("job fails");
        assert_eq!(err.kind, ErrorKind::Udf);
        assert_eq!(err.operator.as_deref(), Some("map 'boom'"));
        assert_eq!(err.record.as_deref(), Some("500"));
        assert!(err.to_string().contains("ValueError: boom"), "{err}");
    }
}
