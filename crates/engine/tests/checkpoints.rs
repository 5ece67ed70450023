//! Checkpoints while a job runs (issue 13): the coordinator triggers them on the
//! interval, every operator's section and every source's position is written, the
//! manifest commits each one, retention keeps the newest, and a job with checkpoints
//! gives exactly the output of one without. Bad storage and another job's checkpoint
//! fail the job at start, in one line.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferroflow_engine::checkpoint::settings::CheckpointSettings;
use ferroflow_engine::checkpoint::storage;
use ferroflow_engine::connectors::sinks;
use ferroflow_engine::functions::{SourceReader, SourceStatus, WorkerContext};
use ferroflow_engine::{ExecConfig, NodeKind, Plan, UdfResult};

/// Emits `(key, i + 1)` for its share of `i` in `0..n`, a few records per poll with a
/// pause, so the job lasts long enough for several checkpoints.
struct Paced {
    next: i64,
    step: i64,
    n: i64,
    keys: i64,
}

impl SourceReader<V> for Paced {
    fn poll(&mut self, max: usize, out: &mut Vec<V>) -> UdfResult<SourceStatus> {
        std::thread::sleep(Duration::from_micros(300));
        for _ in 0..max.min(8) {
            if self.next >= self.n {
                return Ok(SourceStatus::Done);
            }
            // Each instance has keys of its own (so every key's order, and so the
            // rolling sums, are the same in every run) and values above 0 (so a
            // key's sums never repeat).
            let key = self.next % self.step + self.step * ((self.next / self.step) % self.keys);
            out.push(V::KV(key, self.next + 1));
            self.next += self.step;
        }
        Ok(SourceStatus::More)
    }
}

fn paced(n: i64, keys: i64) -> NodeKind<V> {
    let factory = Arc::new(move |ctx: &WorkerContext| {
        Ok(Box::new(Paced { next: ctx.index as i64, step: ctx.peers as i64, n, keys }) as Box<dyn SourceReader<V>>)
    });
    NodeKind::Source { factory, parallel: true }
}

fn plan(n: i64, out: &Out<V>) -> Plan<V> {
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], paced(n, 7));
    let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
    let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(sum_kv()));
    plan.add("sink", vec![red], NodeKind::Sink(sink(out)));
    plan
}

fn checkpointing(workers: usize, dir: &Path, interval_ms: u64) -> ExecConfig {
    let mut settings = CheckpointSettings::new(dir.to_path_buf(), Duration::from_millis(interval_ms));
    settings.retained = 2;
    ExecConfig { workers, batch_size: 8, checkpoint: Some(settings), ..ExecConfig::default() }
}

/// What the job gives without checkpoints at `workers`: how many records the sink got,
/// and every key's final sum.
fn uncheckpointed(n: i64, workers: usize) -> (usize, std::collections::BTreeMap<i64, i64>) {
    let out = new_out();
    run_ok(plan(n, &out), cfg_batch(workers, 8));
    let len = out.lock().unwrap().len();
    (len, finals(&out))
}

/// Every key's final sum, from the rolling reduce's last output per key.
fn finals(out: &Out<V>) -> std::collections::BTreeMap<i64, i64> {
    out.lock().unwrap().iter().map(|(_, v)| v.kv()).collect()
}

fn complete_checkpoints(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
        .filter(|id| storage::verify(&storage::checkpoint_dir(dir, *id)).is_ok())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_job_with_checkpoints_gives_the_same_output_and_commits_them() {
    let n = 6000;
    for workers in [1, 2] {
        let want = uncheckpointed(n, workers);
        let dir = TempDir::new("same");
        let out = new_out();
        let p = plan(n, &out);
        let signature = p.signature();
        run_ok(p, checkpointing(workers, &dir.0, 5));
        let len = out.lock().unwrap().len();
        assert_eq!((len, finals(&out)), want, "workers={workers}");
        let done = complete_checkpoints(&dir.0);
        assert!(!done.is_empty(), "workers={workers}: no checkpoint completed");
        assert!(done.len() <= 2, "workers={workers}: retention keeps 2, found {done:?}");
        let latest = storage::find_latest(&dir.0).unwrap().found.expect("a complete checkpoint");
        assert_eq!(latest.manifest.parts.len(), workers);
        assert_eq!(latest.manifest.plan, signature);
        assert!(latest.id >= 2, "workers={workers}: only checkpoint {} in a job of many intervals", latest.id);
    }
}

#[test]
fn checkpoint_ids_continue_after_those_already_in_the_directory() {
    let dir = TempDir::new("ids");
    let out = new_out();
    run_ok(plan(3000, &out), checkpointing(1, &dir.0, 5));
    let first = storage::last_id(&dir.0).unwrap();
    assert!(first >= 1);
    run_ok(plan(3000, &new_out()), checkpointing(1, &dir.0, 5));
    let after = complete_checkpoints(&dir.0);
    assert!(after.iter().all(|id| *id > first), "{after:?} should all come after the first run's {first}");
}

#[test]
fn an_unwritable_storage_directory_fails_the_job_at_start_in_one_line() {
    let dir = TempDir::new("unwritable");
    let file = dir.0.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = run_err(plan(10, &new_out()), checkpointing(1, &file.join("below"), 5));
    assert!(err.message.contains("is not writable"), "{}", err.message);
    assert!(!err.message.contains('\n'), "{}", err.message);
}

#[test]
fn a_checkpoint_of_another_plan_is_refused_naming_the_difference() {
    let dir = TempDir::new("other");
    run_ok(plan(3000, &new_out()), checkpointing(1, &dir.0, 5));
    let latest = storage::find_latest(&dir.0).unwrap().found.expect("a checkpoint");
    let mut other = Plan::new();
    let src = other.add("source", vec![], paced(10, 3));
    other.add("sink", vec![src], NodeKind::Sink(sink(&new_out())));
    let mut config = checkpointing(1, &dir.0, 5);
    config.checkpoint.as_mut().unwrap().restore_from = Some(latest.dir.clone());
    let err = run_err(other, config);
    assert!(err.message.contains("another job"), "{}", err.message);
    assert!(err.message.contains("1 sink sink <- [0]"), "names the differing node: {}", err.message);
}

fn lines() -> sinks::Encode<V> {
    Arc::new(|batch: &[V], buf: &mut Vec<u8>| {
        for v in batch {
            let (k, x) = v.kv();
            buf.extend_from_slice(format!("{k} {x}\n").as_bytes());
        }
        Ok(())
    })
}

/// source -> key_by -> rolling sum -> text file (part files under checkpoints).
fn file_plan(n: i64, target: &Path) -> Plan<V> {
    let mut plan = Plan::new();
    let src = plan.add("source", vec![], paced(n, 7));
    let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(key_by_k()));
    let red = plan.add("reduce", vec![keyed], NodeKind::Reduce(sum_kv()));
    plan.add("file", vec![red], NodeKind::Sink(sinks::text_file(target, false, lines())));
    plan
}

#[test]
fn a_file_sink_under_checkpoints_commits_part_files_and_everything_at_the_end() {
    let n = 4000;
    for workers in [1, 2] {
        let want = {
            let out = new_out();
            run_ok(plan(n, &out), cfg_batch(workers, 8));
            let mut lines: Vec<String> =
                out.lock().unwrap().iter().map(|(_, v)| v.kv()).map(|(k, x)| format!("{k} {x}")).collect();
            lines.sort();
            lines
        };
        let store = TempDir::new("sinkstore");
        let outdir = TempDir::new("sinkout");
        let target = outdir.0.join("out");
        run_ok(file_plan(n, &target), checkpointing(workers, &store.0, 5));
        let mut names: Vec<String> =
            std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        names.sort();
        let got = visible_lines(&target);
        assert_eq!((got.len(), &got), (want.len(), &want), "workers={workers}: {names:?}");
        let names: Vec<String> =
            std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        assert!(names.iter().all(|n| n.starts_with("part-")), "workers={workers}: {names:?}");
        assert!(names.len() > workers, "workers={workers}: one file per checkpoint expected, got {names:?}");
    }
}

#[test]
fn a_cancelled_run_leaves_only_committed_lines_visible_each_once() {
    let store = TempDir::new("cancelstore");
    let outdir = TempDir::new("cancelout");
    let target = outdir.0.join("out");
    let running = ferroflow_engine::start(Arc::new(file_plan(20_000, &target)), checkpointing(2, &store.0, 5)).unwrap();
    // Let a few checkpoints complete, then stop it as a crash would leave it.
    let deadline = std::time::Instant::now() + HANG;
    while storage::last_id(&store.0).unwrap() < 4 {
        assert!(std::time::Instant::now() < deadline, "no checkpoints");
        std::thread::sleep(Duration::from_millis(2));
    }
    running.control.cancel();
    let _ = running.join();
    let seen = visible_lines(&target);
    let mut unique = seen.clone();
    unique.dedup();
    let dups: Vec<&String> = seen.windows(2).filter(|w| w[0] == w[1]).map(|w| &w[0]).take(5).collect();
    assert!(dups.is_empty(), "committed lines appear twice: {dups:?}");
    assert!(!seen.is_empty(), "the completed checkpoints committed nothing");
    // Every visible line is a line of the full run.
    let full = {
        let out = new_out();
        run_ok(plan(20_000, &out), cfg_batch(2, 8));
        let lines: std::collections::BTreeSet<String> =
            out.lock().unwrap().iter().map(|(_, v)| v.kv()).map(|(k, x)| format!("{k} {x}")).collect();
        lines
    };
    assert!(seen.iter().all(|l| full.contains(l)));
}

#[test]
fn two_processes_take_checkpoints_together_and_commit_one_manifest_each() {
    let n = 6000;
    let want = uncheckpointed(n, 2);
    let store = TempDir::new("procs");
    let out = new_out();
    let runs = two_processes(|| plan(n, &out), &store.0);
    let deadline = std::time::Instant::now() + HANG;
    while runs.iter().any(|r| !r.finished()) {
        if std::time::Instant::now() > deadline {
            runs.iter().for_each(|r| r.control.cancel());
            panic!("the 2-process job did not finish within {HANG:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for r in runs {
        r.join().unwrap();
    }
    let len = out.lock().unwrap().len();
    assert_eq!((len, finals(&out)), want);
    let latest = storage::find_latest(&store.0).unwrap().found.expect("a complete checkpoint");
    assert_eq!((latest.manifest.processes, latest.manifest.threads, latest.manifest.parts.len()), (2, 1, 2));
    assert!(latest.id >= 2, "only checkpoint {} in a job of many intervals", latest.id);
}

#[test]
fn a_savepoint_asked_for_is_written_apart_and_stop_with_savepoint_ends_the_job() {
    let store = TempDir::new("savepoint");
    let running = ferroflow_engine::start(Arc::new(plan(20_000, &new_out())), checkpointing(2, &store.0, 50)).unwrap();
    running.control.request_savepoint(false);
    let deadline = std::time::Instant::now() + HANG;
    let savepoints = store.0.join(storage::SAVEPOINTS);
    let written = || std::fs::read_dir(&savepoints).map(|d| d.count()).unwrap_or(0);
    let mut announced = Vec::new();
    while written() == 0 || announced.is_empty() {
        announced.extend(running.control.take_savepoints_written());
        assert!(
            std::time::Instant::now() < deadline,
            "no savepoint: {:?} {:?}",
            std::fs::read_dir(&store.0).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>(),
            running.control.warnings()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    running.control.request_savepoint(true);
    let control = running.control.clone();
    let err = running.join().expect_err("stop-with-savepoint ends the job");
    let running_stopped_with = control.stopped_with();
    assert_eq!(err.kind, ferroflow_engine::ErrorKind::Cancelled);
    assert!(err.message.contains("stopped with a savepoint at"), "{}", err.message);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&savepoints).unwrap().map(|e| e.unwrap().path()).collect();
    found.sort();
    assert_eq!(found.len(), 2, "{found:?}");
    for dir in &found {
        let m = storage::verify(dir).unwrap();
        assert_eq!(m.kind, storage::CheckpointKind::Savepoint);
        assert_eq!(m.parts.len(), 2);
    }
    assert!(err.message.contains(&found[1].display().to_string()), "names the path: {}", err.message);
    assert_eq!(announced, vec![found[0].clone()], "the first savepoint is announced once");
    assert_eq!(running_stopped_with, Some(found[1].clone()));
}

#[test]
fn stop_with_savepoint_stops_every_process_naming_the_same_savepoint() {
    let store = TempDir::new("stop2");
    let runs = two_processes(|| plan(200_000, &new_out()), &store.0);
    let deadline = std::time::Instant::now() + HANG;
    while storage::last_id(&store.0).unwrap() < 2 {
        assert!(std::time::Instant::now() < deadline, "no checkpoints");
        std::thread::sleep(Duration::from_millis(2));
    }
    runs[0].control.request_savepoint(true);
    let controls: Vec<_> = runs.iter().map(|r| r.control.clone()).collect();
    for r in runs {
        let err = r.join().expect_err("stopped");
        assert_eq!(err.kind, ferroflow_engine::ErrorKind::Cancelled, "{}", err.message);
    }
    let paths: Vec<_> = controls.iter().map(|c| c.stopped_with()).collect();
    assert!(paths[0].is_some(), "process 0 names its savepoint");
    assert_eq!(paths[0], paths[1], "both processes stop with the same savepoint");
    storage::verify(paths[0].as_ref().unwrap()).unwrap();
}

#[test]
fn a_cancelled_job_removes_its_checkpoints_unless_asked_to_retain_them() {
    for retain in [false, true] {
        let store = TempDir::new("cancel-retain");
        let mut config = checkpointing(1, &store.0, 5);
        config.checkpoint.as_mut().unwrap().retain_on_cancel = retain;
        let running = ferroflow_engine::start(Arc::new(plan(200_000, &new_out())), config).unwrap();
        let deadline = std::time::Instant::now() + HANG;
        while storage::find_latest(&store.0).unwrap().found.is_none() {
            assert!(std::time::Instant::now() < deadline, "no checkpoints");
            std::thread::sleep(Duration::from_millis(2));
        }
        running.control.cancel();
        let _ = running.join();
        let kept = storage::find_latest(&store.0).unwrap().found.is_some();
        assert_eq!(kept, retain, "retain_on_cancel={retain}");
    }
}

#[test]
fn checkpoints_that_time_out_or_cannot_be_written_are_discarded_and_the_job_goes_on() {
    let n = 6000;
    let want = uncheckpointed(n, 2);
    // Every checkpoint outlives a timeout of 0.
    let store = TempDir::new("expire");
    let out = new_out();
    let mut config = checkpointing(2, &store.0, 5);
    config.checkpoint.as_mut().unwrap().timeout = Duration::ZERO;
    let summary = run_ok(plan(n, &out), config);
    let len = out.lock().unwrap().len();
    assert_eq!((len, finals(&out)), want);
    assert!(storage::find_latest(&store.0).unwrap().found.is_none(), "an expired checkpoint was kept");
    assert!(summary.warnings.iter().any(|w| w.contains("expired")), "{:?}", summary.warnings);
    // Every checkpoint's directory is taken by a file: its parts cannot be written.
    let store = TempDir::new("unwritable-parts");
    for id in 1..2000 {
        std::fs::write(storage::checkpoint_dir(&store.0, id), b"in the way").unwrap();
    }
    let out = new_out();
    let summary = run_ok(plan(n, &out), checkpointing(2, &store.0, 5));
    let len = out.lock().unwrap().len();
    assert_eq!((len, finals(&out)), want);
    assert!(
        summary.warnings.iter().any(|w| w.contains("could not write its part") && w.contains("the job goes on")),
        "{:?}",
        summary.warnings
    );
}

/// Starts `make()`'s job on two processes (threads of this test talking over
/// 127.0.0.1) of one worker each, checkpointing every 5 ms into `store`.
fn two_processes(make: impl Fn() -> Plan<V>, store: &Path) -> Vec<ferroflow_engine::Running> {
    use ferroflow_engine::cluster::{self, ClusterConfig};
    use std::net::TcpListener;

    let listeners: Vec<TcpListener> = (0..2).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addresses: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
    drop(listeners);
    let secret = cluster::generate_secret();
    (0..2)
        .map(|p| {
            let cluster =
                ClusterConfig::new(p, addresses.clone(), secret.clone()).connect_timeout(Duration::from_secs(10));
            let config = ExecConfig { cluster: Some(cluster), ..checkpointing(1, store, 5) };
            ferroflow_engine::start(Arc::new(make()), config).unwrap()
        })
        .collect()
}
