//! Failures that are ferroflow's own (a corrupt batch between processes, a broken
//! invariant) fail the job as `ErrorKind::Internal`, saying it is a bug in ferroflow and
//! what to report; failures of a record's own code do not.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ferroflow_engine::cluster::{self, ClusterConfig};
use ferroflow_engine::connectors::sources;
use ferroflow_engine::key::key_of;
use ferroflow_engine::record::{describe_truncated, BatchReadError};
use ferroflow_engine::{start, ErrorKind, ExecConfig, JobError, NodeKind, Plan, Record, Running, BUG_REPORT};

/// An integer record whose batches from another process cannot be read: with
/// `CORRUPT`, as if the bytes were damaged (our bug); without, as if the record's own
/// code failed to rebuild it (in Python: unpickling raised).
#[derive(Clone, Debug)]
struct Unreadable<const CORRUPT: bool>(i64);

impl<const CORRUPT: bool> Record for Unreadable<CORRUPT> {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        out.extend(lines.drain(..).map(|l| Unreadable(l.len() as i64)));
    }

    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        out.extend(range.map(Unreadable));
    }

    fn describe(&self) -> String {
        describe_truncated(&format!("{self:?}"))
    }

    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        for r in records {
            out.extend_from_slice(&r.0.to_le_bytes());
        }
        Ok(())
    }

    fn decode_batch(_bytes: &[u8], _out: &mut Vec<Self>) -> Result<(), BatchReadError> {
        Err(if CORRUPT {
            BatchReadError::Corrupt("unknown tag 0x7f".to_string())
        } else {
            BatchReadError::Record("cannot unpickle a record: ModuleNotFoundError: No module named 'gone'".to_string())
        })
    }
}

/// A parallel sequence through `shape` ("keyed": key_by + reduce, "rebalanced": a
/// non-parallel source spread over the workers) into a sink.
fn plan<R: Record>(shape: &str) -> Plan<R> {
    let out = new_out();
    let mut plan = Plan::new();
    let last = if shape == "keyed" {
        let src =
            plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 10_000), parallel: true });
        let keyed = plan.add(
            "key_by 'k'",
            vec![src],
            NodeKind::KeyBy(key_by(|r: &R| (key_of(&(r.describe().len() as i64)), r.clone()))),
        );
        plan.add("reduce 'r'", vec![keyed], NodeKind::Reduce(reducer(|a: &R, _b: &R| a.clone())))
    } else {
        let src =
            plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 10_000), parallel: false });
        plan.add("map 'm'", vec![src], NodeKind::Transform(map(|r: R| r)))
    };
    plan.add("sink", vec![last], NodeKind::Sink(sink(&out)));
    plan
}

/// Runs `make`'s plan on two processes (threads of this test talking over 127.0.0.1)
/// of one worker each; the error of the process whose operator failed.
fn run_two_processes<R: Record>(make: impl Fn() -> Plan<R>) -> JobError {
    let listeners: Vec<TcpListener> = (0..2).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addresses: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
    drop(listeners);
    let secret = cluster::generate_secret();
    let runs: Vec<Running> = (0..2)
        .map(|p| {
            let cluster =
                ClusterConfig::new(p, addresses.clone(), secret.clone()).connect_timeout(Duration::from_secs(20));
            start(Arc::new(make()), ExecConfig { workers: 1, cluster: Some(cluster), ..ExecConfig::default() }).unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while runs.iter().any(|r| !r.finished()) {
        if Instant::now() > deadline {
            runs.iter().for_each(|r| r.control.cancel());
            panic!("the 2-process job did not stop within 60 s (hang)");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let errors: Vec<JobError> = runs.into_iter().filter_map(|r| r.join().err()).collect();
    // The other process may only have lost its peer.
    errors.iter().find(|e| e.operator.is_some()).cloned().unwrap_or_else(|| panic!("no operator failed: {errors:?}"))
}

#[test]
fn a_corrupt_batch_from_another_process_is_an_internal_error_that_says_it_is_a_bug() {
    for shape in ["keyed", "rebalanced"] {
        let err = run_two_processes(|| plan::<Unreadable<true>>(shape));
        assert_eq!(err.kind, ErrorKind::Internal, "{shape}: {err:?}");
        let text = err.to_string();
        assert!(text.starts_with("internal error in "), "{shape}: {text}");
        assert!(text.contains("a batch from another process is corrupt: unknown tag 0x7f"), "{shape}: {text}");
        assert!(text.ends_with(BUG_REPORT), "{shape}: {text}");
        assert!(text.contains("bug in ferroflow") && text.contains("please report it"), "{shape}: {text}");
    }
}

#[test]
fn a_record_that_cannot_be_rebuilt_is_not_called_a_bug() {
    for shape in ["keyed", "rebalanced"] {
        let err = run_two_processes(|| plan::<Unreadable<false>>(shape));
        assert_eq!(err.kind, ErrorKind::Udf, "{shape}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("ModuleNotFoundError: No module named 'gone'"), "{shape}: {text}");
        assert!(!text.contains("bug in ferroflow") && !text.contains("corrupt"), "{shape}: {text}");
    }
}
