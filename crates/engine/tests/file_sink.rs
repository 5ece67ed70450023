//! Flink's `FileSink` (`sinks::part_files`): part files named `<prefix>-<uid>-<worker>-<counter><suffix>`,
//! rolled by size, in bucket directories; committed at the job's end without
//! checkpoints (a failed job leaves nothing), and exactly-once across a stop and a
//! restore (at another parallelism) with them.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferroflow_engine::checkpoint::settings::CheckpointSettings;
use ferroflow_engine::connectors::sinks::{self, PartFileConfig, RollingPolicy};
use ferroflow_engine::connectors::sources;
use ferroflow_engine::functions::closures::MapFn;
use ferroflow_engine::{ExecConfig, NodeKind, Plan, UdfError};

const N: i64 = 20_000;

fn lines() -> sinks::Encode<V> {
    Arc::new(|batch: &[V], buf: &mut Vec<u8>| {
        for v in batch {
            buf.extend_from_slice(format!("line {}\n", v.int()).as_bytes());
        }
        Ok(())
    })
}

fn config(part_size: Option<u64>, bucket: Option<sinks::BucketFn>) -> PartFileConfig {
    PartFileConfig {
        prefix: "pre-fix".into(),
        suffix: ".ext".into(),
        rolling: RollingPolicy { part_size, ..RollingPolicy::default() },
        bucket,
    }
}

/// Two buckets taken in turn, each for `every` batches written (as the clock would move on).
fn alternating_buckets(every: u64) -> sinks::BucketFn {
    // Counted per worker thread: with one counter shared by two workers whose batches
    // take turns, each worker could draw the same parity every time and never change
    // bucket.
    std::thread_local! { static CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) }; }
    Arc::new(move |_now| Ok(format!("b/{}", CALLS.with(|c| c.replace(c.get() + 1)) / every % 2)))
}

/// `sequence(0..n)` (slowed down with `pause_us` per record) -> a file sink at `target`;
/// fails on record `fail_at`.
fn plan(n: i64, target: &Path, config: PartFileConfig, pause_us: u64, fail_at: Option<i64>) -> Plan<V> {
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], NodeKind::Source { factory: sources::sequence(0, n - 1), parallel: true });
    let slow = plan.add(
        "slow",
        vec![src],
        NodeKind::Transform(Arc::new(move |_ctx| {
            Ok(Box::new(MapFn(move |v: V| {
                if Some(v.int()) == fail_at {
                    return Err(UdfError::new("bad record"));
                }
                std::thread::sleep(Duration::from_micros(pause_us));
                Ok(Some(v))
            })) as _)
        })),
    );
    plan.add("file", vec![slow], NodeKind::Sink(sinks::part_files(target, config, lines())));
    plan
}

/// Every file under `dir`, recursively: (path relative to `dir`, contents).
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap()) {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.push((e.path().strip_prefix(dir).unwrap().to_path_buf(), text));
            }
        }
    }
    out.sort();
    out
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().unwrap().to_string_lossy().starts_with('.')
}

/// The lines of the visible files under `dir`, sorted.
fn visible(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = files(dir)
        .into_iter()
        .filter(|(p, _)| !is_hidden(p))
        .flat_map(|(_, text)| text.lines().map(String::from).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}

fn all_lines(n: i64) -> Vec<String> {
    let mut want: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
    want.sort();
    want
}

/// `(worker, counter)` of a committed file named `pre-fix-<uid>-<worker>-<counter>.ext`.
fn parse_name(name: &str) -> (usize, u64) {
    let rest = name.strip_prefix("pre-fix-").and_then(|r| r.strip_suffix(".ext")).unwrap_or_else(|| panic!("{name}"));
    let (uid, rest) = rest.split_at(36);
    let dashes: Vec<usize> = uid.match_indices('-').map(|(i, _)| i).collect();
    assert_eq!(dashes, vec![8, 13, 18, 23], "a UUID-shaped uid: {name}");
    assert!(uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'), "{name}");
    let (worker, counter) = rest.strip_prefix('-').unwrap().split_once('-').unwrap();
    (worker.parse().unwrap(), counter.parse().unwrap())
}

#[test]
fn files_are_named_rolled_by_size_and_committed_at_the_end_without_checkpoints() {
    let part_size = 300;
    for workers in [1, 2] {
        let out = TempDir::new("fsink-plain");
        let target = out.path().join("out");
        run_ok(plan(4000, &target, config(Some(part_size), None), 0, None), cfg_batch(workers, 64));
        assert_eq!(visible(&target), all_lines(4000), "workers={workers}");
        let found = files(&target);
        assert!(found.iter().all(|(p, _)| !is_hidden(p)), "nothing left hidden: {found:?}");
        let mut per_worker = std::collections::BTreeMap::<usize, Vec<u64>>::new();
        for (path, text) in &found {
            let (worker, counter) = parse_name(&path.to_string_lossy());
            per_worker.entry(worker).or_default().push(counter);
            // Rolled before the record that follows once the file holds more than
            // part_size bytes: without its last line it held at most part_size.
            let last = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
            assert!(last as u64 <= part_size, "{path:?} went on past {part_size} bytes: {} bytes", text.len());
        }
        assert_eq!(per_worker.len(), workers, "{found:?}");
        for (worker, mut counters) in per_worker {
            counters.sort();
            assert_eq!(counters, (0..counters.len() as u64).collect::<Vec<_>>(), "worker {worker}: counted from 0");
            assert!(counters.len() > 10, "worker {worker}: rolled by size into many files");
        }
    }
}

#[test]
fn without_a_size_each_worker_writes_one_file_and_buckets_are_directories() {
    let out = TempDir::new("fsink-buckets");
    let target = out.path().join("out");
    run_ok(plan(3000, &target, config(None, None), 0, None), cfg_batch(2, 64));
    assert_eq!(files(&target).len(), 2, "one file per worker: {:?}", files(&target));
    let target = out.path().join("bucketed");
    run_ok(plan(3000, &target, config(None, Some(alternating_buckets(1))), 0, None), cfg_batch(2, 64));
    assert_eq!(visible(&target), all_lines(3000));
    let found = files(&target);
    let dirs: std::collections::BTreeSet<_> = found.iter().map(|(p, _)| p.parent().unwrap().to_path_buf()).collect();
    assert_eq!(dirs, [PathBuf::from("b/0"), PathBuf::from("b/1")].into_iter().collect());
    assert!(found.len() > 4, "a new bucket closes the file of the last one: {found:?}");
}

#[test]
fn a_bucket_outside_the_base_path_fails_the_job_naming_it() {
    let out = TempDir::new("fsink-badbucket");
    let bucket: sinks::BucketFn = Arc::new(|_| Ok("../escape".to_string()));
    let err = run_err(plan(10, &out.path().join("out"), config(None, Some(bucket)), 0, None), cfg(1));
    assert!(err.message.contains("\"../escape\""), "{}", err.message);
    assert!(!out.path().join("escape").exists());
}

#[test]
fn a_failed_job_without_checkpoints_leaves_no_file() {
    for workers in [1, 2] {
        let out = TempDir::new("fsink-fail");
        let target = out.path().join("out");
        let err = run_err(plan(4000, &target, config(Some(100), None), 0, Some(3500)), cfg_batch(workers, 16));
        assert_eq!(err.operator.as_deref(), Some("slow"), "{err}");
        assert_eq!(files(&target), Vec::new(), "workers={workers}");
    }
}

#[test]
fn files_already_in_the_directory_are_left_alone() {
    let out = TempDir::new("fsink-existing");
    let target = out.path().join("out");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep.txt"), "kept\n").unwrap();
    run_ok(plan(100, &target, config(None, None), 0, None), cfg(1));
    run_ok(plan(100, &target, config(None, None), 0, None), cfg(1));
    let mut want: Vec<String> = all_lines(100).into_iter().chain(all_lines(100)).chain(["kept".into()]).collect();
    want.sort();
    assert_eq!(visible(&target), want, "two runs, each with names of its own");
}

fn checkpointed(workers: usize, store: &Path, restore_from: Option<&Path>) -> ExecConfig {
    let mut settings = CheckpointSettings::new(store.to_path_buf(), Duration::from_millis(20));
    settings.retained = 2;
    settings.retain_on_cancel = true;
    settings.restore_from = restore_from.map(Path::to_path_buf);
    ExecConfig { workers, batch_size: 16, checkpoint: Some(settings), ..ExecConfig::default() }
}

#[test]
fn stopped_and_restored_at_another_parallelism_every_line_is_committed_once() {
    for workers in [1, 3] {
        let store = TempDir::new("fsink-ckpt-store");
        let out = TempDir::new("fsink-ckpt-out");
        let target = out.path().join("out");
        let make = || plan(N, &target, config(Some(8000), Some(alternating_buckets(40))), 40, None);
        let from = run_until_checkpoint(make(), checkpointed(2, store.path(), None), store.path(), 3);
        let before = visible(&target);
        assert!(!before.is_empty(), "completed checkpoints committed files");
        assert!(before.len() < N as usize, "the first run finished before it was stopped: nothing to resume");
        run_ok(make(), checkpointed(workers, store.path(), Some(&from)));
        assert_eq!(visible(&target), all_lines(N), "2 -> {workers}");
        let hidden: Vec<_> = files(&target).into_iter().filter(|(p, _)| is_hidden(p)).map(|(p, _)| p).collect();
        assert_eq!(hidden, Vec::<PathBuf>::new(), "2 -> {workers}: strays removed");
    }
}
