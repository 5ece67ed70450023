//! The built-in sinks under faults: a file sink publishes its output only when the
//! job succeeded, and a socket sink whose reader stopped reading never keeps the job
//! from being cancelled.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ferroflow_engine::connectors::{sinks, sources};
use ferroflow_engine::{start, ErrorKind, NodeKind, Plan, UdfError};

const N: i64 = 100_000;
const BAD: i64 = 99_000;

fn lines() -> sinks::Encode<V> {
    Arc::new(|batch: &[V], buf: &mut Vec<u8>| {
        for v in batch {
            buf.extend(format!("{}\n", v.int()).bytes());
        }
        Ok(())
    })
}

/// `sequence(1..=N)` into a file sink at `target`, through a map that fails on `BAD`
/// when `fail` is set (late in the job, after most records were written).
fn file_plan(target: &Path, overwrite: bool, fail: bool) -> Plan<V> {
    let mut plan = Plan::new();
    let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(1, N), parallel: true });
    let checked = plan.add(
        "check",
        vec![src],
        NodeKind::Transform(try_map(move |v: V| {
            if fail && v.int() == BAD {
                return Err(UdfError::new("bad record"));
            }
            Ok(Some(v))
        })),
    );
    plan.add("file sink", vec![checked], NodeKind::Sink(sinks::text_file(target, overwrite, lines())));
    plan
}

/// Every entry of `dir`, hidden ones too, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_failed_job_leaves_no_file_sink_output() {
    for workers in [1, 2] {
        let dir = TempDir::new("sink-fails");
        let target = dir.path().join("out");
        let err = run_err(file_plan(&target, false, true), cfg(workers));
        assert_eq!(err.operator.as_deref(), Some("check"), "workers={workers}: {err}");
        if workers == 1 {
            assert_eq!(entries(dir.path()), Vec::<String>::new(), "workers={workers}");
        } else {
            // The directory of per-worker files may be there, but holds nothing.
            assert_eq!(entries(&target), Vec::<String>::new(), "workers={workers}");
        }
    }
}

#[test]
fn a_failed_job_keeps_the_output_it_would_have_overwritten() {
    for workers in [1, 2] {
        let dir = TempDir::new("sink-keeps");
        let target = dir.path().join("out");
        run_ok(file_plan(&target, false, false), cfg(workers));
        let before = if workers == 1 { vec!["out".to_string()] } else { vec!["1".to_string(), "2".to_string()] };
        let listing = if workers == 1 { dir.path().to_path_buf() } else { target.clone() };
        assert_eq!(entries(&listing), before, "workers={workers}: only the final names after success");
        let read_all = || {
            let mut text = String::new();
            for name in &before {
                text += &std::fs::read_to_string(listing.join(name)).unwrap();
            }
            text
        };
        let complete = read_all();
        assert_eq!(complete.lines().count(), N as usize);
        run_err(file_plan(&target, true, true), cfg(workers));
        assert_eq!(entries(&listing), before, "workers={workers}");
        assert_eq!(read_all(), complete, "workers={workers}: the earlier output is untouched");
        // A successful overwrite replaces it.
        run_ok(file_plan(&target, true, false), cfg(workers));
        assert_eq!(entries(&listing), before, "workers={workers}");
    }
}

#[test]
fn a_cancelled_job_leaves_no_file_sink_output() {
    let dir = TempDir::new("sink-cancel");
    let target = dir.path().join("out");
    let mut plan = Plan::new();
    let src =
        plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(1, i64::MAX), parallel: true });
    plan.add("file sink", vec![src], NodeKind::Sink(sinks::text_file(&target, false, lines())));
    let running = start(Arc::new(plan), cfg(1)).unwrap();
    // Wait until the in-progress file has some bytes, then cancel.
    let deadline = Instant::now() + HANG;
    while !entries(dir.path())
        .iter()
        .any(|n| n.starts_with(".out.inprogress.") && std::fs::metadata(dir.path().join(n)).is_ok_and(|m| m.len() > 0))
    {
        if Instant::now() > deadline {
            running.control.cancel();
            let _ = running.join();
            panic!("no in-progress file was written: {:?}", entries(dir.path()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    running.control.cancel();
    let err = running.join().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled);
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

/// A socket sink blocked on a peer that accepts and never reads: cancelling the job
/// stops it promptly.
#[test]
fn cancel_while_a_socket_sink_is_blocked() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut plan = Plan::new();
    let src =
        plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(1, i64::MAX), parallel: true });
    // 64 KiB per record: the socket's buffers are full after a few hundred records.
    let big: sinks::Encode<V> = Arc::new(|batch: &[V], buf: &mut Vec<u8>| {
        for _ in batch {
            buf.extend(std::iter::repeat_n(b'x', 1 << 16));
        }
        Ok(())
    });
    plan.add("socket sink", vec![src], NodeKind::Sink(sinks::socket("127.0.0.1".into(), port, big)));
    let running = start(Arc::new(plan), cfg(1)).unwrap();
    // Accept (so the sink connects) and never read: its writes soon block.
    let (conn, _) = listener.accept().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(!running.finished(), "the job should be blocked on the socket");
    let cancelled = Instant::now();
    running.control.cancel();
    while !running.finished() && cancelled.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stopped = running.finished();
    // Closing the connection ends a write that ignored the cancel, so a failure here
    // is reported instead of hanging the test run.
    drop(conn);
    let err = running.join().unwrap_err();
    assert!(stopped, "still blocked 5 s after cancelling");
    assert_eq!(err.kind, ErrorKind::Cancelled);
}
