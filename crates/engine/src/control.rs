//! Shared between the workers of one process and the thread that started the job:
//! the abort flag, the first error, and the job's counters.
//!
//! A failure anywhere sets the abort flag; every worker checks it between steps and
//! drops its dataflow, so the whole job stops promptly instead of finishing with
//! partial results.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::error::{ErrorKind, JobError, UdfError};
use crate::functions::SinkCommit;

pub struct JobControl {
    abort: AtomicBool,
    error: Mutex<Option<JobError>>,
    running: AtomicUsize,
    /// Signalled when the last worker of this process returns (see `wait_finished`).
    finished: (Mutex<()>, Condvar),
    /// Records emitted, per plan node.
    counts: Mutex<Vec<u64>>,
    /// Records an iteration gave up on (see `NodeKind::Iterate`).
    dropped: AtomicU64,
    /// Records windows dropped because they were late (and had no side output).
    late_dropped: AtomicU64,
    /// The highest epoch any source of this process has reached (idle sources follow it).
    source_epoch: AtomicU64,
    /// The checkpoint segment sources are asked to move to (see [`crate::time`]).
    segment: AtomicU64,
    /// The segment sources may emit in: every operator has snapshotted the checkpoint
    /// before it (see [`crate::checkpoint::coordinator`]).
    released: AtomicU64,
    /// A savepoint asked for from outside (0: none, 1: take one, 2: take one and stop).
    savepoint: AtomicU8,
    /// Where the savepoint the job was stopped with went.
    stopped_with: Mutex<Option<std::path::PathBuf>>,
    /// Savepoints written and not yet announced (see [`JobControl::take_savepoints_written`]).
    savepoints_written: Mutex<Vec<std::path::PathBuf>>,
    warnings: Mutex<Vec<String>>,
    /// Sinks' finished output (with the sink's name), published once the job succeeded.
    commits: Mutex<Vec<(String, Box<dyn SinkCommit>)>>,
}

impl JobControl {
    pub fn new(nodes: usize) -> Self {
        JobControl {
            abort: AtomicBool::new(false),
            error: Mutex::new(None),
            running: AtomicUsize::new(0),
            finished: (Mutex::new(()), Condvar::new()),
            counts: Mutex::new(vec![0; nodes]),
            dropped: AtomicU64::new(0),
            late_dropped: AtomicU64::new(0),
            source_epoch: AtomicU64::new(0),
            segment: AtomicU64::new(0),
            released: AtomicU64::new(0),
            savepoint: AtomicU8::new(0),
            stopped_with: Mutex::new(None),
            savepoints_written: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            commits: Mutex::new(Vec::new()),
        }
    }

    /// The abort flag itself, for waits that poll it (connecting to the cluster).
    pub fn abort_flag(&self) -> &AtomicBool {
        &self.abort
    }

    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Records `err` (the first one wins) and stops the job.
    pub fn fail(&self, err: JobError) {
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        // A cancellation does not hide a real error that came first, and a real error
        // reported after a cancellation is usually its consequence.
        if slot.is_none() {
            *slot = Some(err);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Stops the job as cancelled (Ctrl-C).
    pub fn cancel(&self) {
        self.fail(JobError::new(ErrorKind::Cancelled, "the job was cancelled"));
    }

    pub fn error(&self) -> Option<JobError> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn worker_started(&self) {
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn worker_finished(&self) {
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Under the lock, so a waiter between its check and its wait cannot miss it.
            let _guard = self.finished.0.lock().unwrap_or_else(|e| e.into_inner());
            self.finished.1.notify_all();
        }
    }

    /// Workers of this process still running.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits until every worker of this process has returned, or `timeout` passed;
    /// true if they have. A job's caller wakes as its last worker ends, not on a timer.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let guard = self.finished.0.lock().unwrap_or_else(|e| e.into_inner());
        let _guard = self
            .finished
            .1
            .wait_timeout_while(guard, timeout, |_| self.running() > 0)
            .unwrap_or_else(|e| e.into_inner());
        self.running() == 0
    }

    pub(crate) fn add_counts(&self, counts: &[u64]) {
        let mut total = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (t, c) in total.iter_mut().zip(counts) {
            *t += c;
        }
    }

    /// Replaces the counts with the whole job's (a multi-process run's tally).
    pub(crate) fn set_counts(&self, totals: Vec<u64>, dropped: u64, late_dropped: u64) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = totals;
        self.dropped.store(dropped, Ordering::Relaxed);
        self.late_dropped.store(late_dropped, Ordering::Relaxed);
    }

    pub(crate) fn saw_source_epoch(&self, epoch: u64) {
        self.source_epoch.fetch_max(epoch, Ordering::Relaxed);
    }

    pub(crate) fn source_epoch(&self) -> u64 {
        self.source_epoch.load(Ordering::Relaxed)
    }

    /// Asks every source of this process to move on to checkpoint segment `segment` at
    /// its next batch boundary (recording its position first); segments it skips are
    /// empty. A lower request than one already made is ignored.
    pub fn request_segment(&self, segment: u64) {
        self.segment.fetch_max(segment, Ordering::Relaxed);
    }

    /// The segment sources are asked to be in: one relaxed load, polled once per batch.
    #[inline]
    pub fn requested_segment(&self) -> u64 {
        self.segment.load(Ordering::Relaxed)
    }

    /// Asks the job's checkpoint coordinator (worker 0, in process 0) for a savepoint as
    /// soon as no checkpoint is in progress; with `stop`, the job stops once it is
    /// written (Flink's stop-with-savepoint). Ignored by a job without checkpoints.
    pub fn request_savepoint(&self, stop: bool) {
        self.savepoint.fetch_max(if stop { 2 } else { 1 }, Ordering::SeqCst);
    }

    /// The savepoint asked for, if any (`Some(stop)`), taken off the request.
    pub(crate) fn take_savepoint_request(&self) -> Option<bool> {
        match self.savepoint.swap(0, Ordering::SeqCst) {
            0 => None,
            n => Some(n == 2),
        }
    }

    /// Stops the job after its savepoint at `path` was written: it ends as cancelled,
    /// and [`JobControl::stopped_with`] says where the savepoint is.
    pub(crate) fn stop_with_savepoint(&self, path: std::path::PathBuf) {
        let message = format!(
            "the job was stopped with a savepoint at {}: resume it with `ferroflow run <job> -s {}`",
            path.display(),
            path.display()
        );
        *self.stopped_with.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        // A peer that stopped first is heard of as a cancellation: this stop explains it.
        if slot.as_ref().is_none_or(|e| e.kind == ErrorKind::Cancelled) {
            *slot = Some(JobError::new(ErrorKind::Cancelled, message));
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    /// A savepoint was written to `path` (the job goes on).
    pub(crate) fn savepoint_written(&self, path: std::path::PathBuf) {
        self.savepoints_written.lock().unwrap_or_else(|e| e.into_inner()).push(path);
    }

    /// The savepoints written since the last call, for the caller to announce.
    pub fn take_savepoints_written(&self) -> Vec<std::path::PathBuf> {
        std::mem::take(&mut *self.savepoints_written.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Where the savepoint the job was stopped with is, if it was.
    pub fn stopped_with(&self) -> Option<std::path::PathBuf> {
        self.stopped_with.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Lets sources emit in segment `segment` (and before).
    pub fn release_segment(&self, segment: u64) {
        self.released.fetch_max(segment, Ordering::Relaxed);
    }

    /// The latest segment sources may emit in.
    #[inline]
    pub fn released_segment(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }

    pub(crate) fn add_late_dropped(&self, n: u64) {
        self.late_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn late_dropped(&self) -> u64 {
        self.late_dropped.load(Ordering::Relaxed)
    }

    pub fn counts(&self) -> Vec<u64> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Adds a warning, once (every worker may report the same one).
    pub fn warn(&self, message: String) {
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !warnings.contains(&message) {
            warnings.push(message);
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Keeps a sink's finished output until the job's outcome is known.
    pub(crate) fn add_commit(&self, operator: &str, commit: Box<dyn SinkCommit>) {
        self.commits.lock().unwrap_or_else(|e| e.into_inner()).push((operator.to_string(), commit));
    }

    /// The job succeeded: publishes every sink's output. The first failure is the job's
    /// error, and what was not published yet is taken back.
    pub(crate) fn commit_sinks(&self) -> Result<(), JobError> {
        let commits = std::mem::take(&mut *self.commits.lock().unwrap_or_else(|e| e.into_inner()));
        for (operator, commit) in commits {
            commit.commit().map_err(|e| JobError::from_udf(ErrorKind::Sink, &operator, UdfError::new(e)))?;
        }
        Ok(())
    }

    /// The job failed or was cancelled: takes back every sink's unpublished output.
    pub(crate) fn discard_commits(&self) {
        drop(std::mem::take(&mut *self.commits.lock().unwrap_or_else(|e| e.into_inner())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn segment_requests_only_move_forward() {
        let control = JobControl::new(0);
        assert_eq!(control.requested_segment(), 0);
        control.request_segment(2);
        control.request_segment(1);
        assert_eq!(control.requested_segment(), 2, "a lower request is ignored");
        control.request_segment(5);
        assert_eq!(control.requested_segment(), 5);
    }

    #[test]
    fn wait_finished_wakes_when_the_last_worker_returns() {
        let control = Arc::new(JobControl::new(0));
        control.worker_started();
        control.worker_started();
        assert!(!control.wait_finished(Duration::from_millis(5)), "two workers still run");
        let c = control.clone();
        let workers = std::thread::spawn(move || {
            c.worker_finished();
            std::thread::sleep(Duration::from_millis(20));
            c.worker_finished();
        });
        let started = Instant::now();
        // Woken by the last worker, long before the timeout.
        assert!(control.wait_finished(Duration::from_secs(60)));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(control.running(), 0);
        workers.join().unwrap();
        assert!(control.wait_finished(Duration::ZERO), "stays finished");
    }
}
