//! Sources resume from a checkpoint in a running job (issue 13): a job reading a text
//! file or a sequence into a file sink is stopped after some checkpoints, then run
//! again from its last one at another parallelism; the committed output is every input
//! record exactly once.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferroflow_engine::checkpoint::settings::CheckpointSettings;
use ferroflow_engine::connectors::sinks;
use ferroflow_engine::connectors::sources;
use ferroflow_engine::connectors::text::EncodingErrors;
use ferroflow_engine::functions::closures::MapFn;
use ferroflow_engine::functions::SourceFactory;
use ferroflow_engine::{ExecConfig, NodeKind, Plan};

const N: i64 = 20_000;

/// source -> a map that slows the job down (so checkpoints happen meanwhile) -> text file.
fn plan(source: SourceFactory<V>, target: &Path) -> Plan<V> {
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], NodeKind::Source { factory: source, parallel: true });
    let slow = plan.add(
        "slow",
        vec![src],
        NodeKind::Transform(Arc::new(|_ctx| {
            Ok(Box::new(MapFn(|v: V| {
                std::thread::sleep(Duration::from_micros(40));
                Ok(Some(v))
            })) as _)
        })),
    );
    let encode: sinks::Encode<V> = Arc::new(|batch: &[V], buf: &mut Vec<u8>| {
        for v in batch {
            let line = match v {
                V::I(i) => i.to_string(),
                V::S(s) => s.clone(),
                other => format!("{other:?}"),
            };
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        Ok(())
    });
    plan.add("file", vec![slow], NodeKind::Sink(sinks::text_file(target, false, encode)));
    plan
}

fn config(workers: usize, store: &Path, restore_from: Option<&Path>) -> ExecConfig {
    let mut settings = CheckpointSettings::new(store.to_path_buf(), Duration::from_millis(20));
    settings.retained = 2;
    settings.retain_on_cancel = true;
    settings.restore_from = restore_from.map(Path::to_path_buf);
    ExecConfig { workers, batch_size: 16, checkpoint: Some(settings), ..ExecConfig::default() }
}

/// Runs `make()`'s job at 2 workers until 3 checkpoints completed, stops it, and runs
/// it again from the last one at `workers`; returns the committed lines.
fn stopped_and_restored(make: impl Fn() -> SourceFactory<V>, workers: usize) -> Vec<String> {
    let store = TempDir::new("src-restore-store");
    let out = TempDir::new("src-restore-out");
    let target = out.path().join("out");
    let from = run_until_checkpoint(plan(make(), &target), config(2, store.path(), None), store.path(), 3);
    let before = visible_lines(&target).len();
    assert!(before < N as usize, "the first run finished before it was stopped: nothing to resume");
    run_ok(plan(make(), &target), config(workers, store.path(), Some(&from)));
    visible_lines(&target)
}

#[test]
fn a_sequence_resumes_from_its_checkpoint_at_one_and_three_workers() {
    let mut want: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    want.sort();
    for workers in [1, 3] {
        assert_eq!(stopped_and_restored(|| sources::sequence::<V>(0, N - 1), workers), want, "2 -> {workers}");
    }
}

#[test]
fn a_text_file_resumes_from_its_checkpoint_at_one_and_three_workers() {
    let input = TempDir::new("src-restore-in");
    let text: String = (0..N).map(|i| format!("line {i}\n")).collect();
    input.write("in.txt", text.as_bytes());
    let mut want: Vec<String> = (0..N).map(|i| format!("line {i}")).collect();
    want.sort();
    let path = input.path().to_path_buf();
    for workers in [1, 3] {
        let got = stopped_and_restored(|| sources::text_file_split::<V>(&path, EncodingErrors::Strict, 0), workers);
        assert_eq!(got, want, "2 -> {workers}");
    }
}

/// A short branch (its sink finishes early) beside a long one: a checkpoint taken after
/// the short branch finished must still bring its last files to commit on restore.
#[test]
fn a_branch_that_finished_before_the_checkpoint_commits_its_output_once_after_a_restore() {
    let store = TempDir::new("branch-store");
    let out = TempDir::new("branch-out");
    let (short_out, long_out) = (out.path().join("short"), out.path().join("long"));
    let make = || {
        let mut plan = plan(sources::sequence::<V>(0, N - 1), &long_out);
        let src =
            plan.add("short", vec![], NodeKind::Source { factory: sources::sequence::<V>(0, 99), parallel: true });
        let encode: sinks::Encode<V> = Arc::new(|batch: &[V], buf: &mut Vec<u8>| {
            for v in batch {
                buf.extend_from_slice(format!("{}\n", v.int()).as_bytes());
            }
            Ok(())
        });
        plan.add("short file", vec![src], NodeKind::Sink(sinks::text_file(&short_out, false, encode)));
        plan
    };
    let from = run_until_checkpoint(make(), config(2, store.path(), None), store.path(), 6);
    assert!(visible_lines(&long_out).len() < N as usize, "the long branch finished before it was stopped");
    run_ok(make(), config(2, store.path(), Some(&from)));
    let mut want: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(visible_lines(&short_out), want, "the short branch");
    let mut want: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(visible_lines(&long_out), want, "the long branch");
}
