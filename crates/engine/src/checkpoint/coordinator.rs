//! Taking checkpoints while the job runs: who triggers them, who writes what, and
//! when one counts as complete.
//!
//! # The protocol, on timely
//!
//! Checkpoint `c` is the cut "every record of segment < c" (see [`crate::time`]).
//! 1. Worker 0 (the coordinator) triggers it: a `Trigger(c)` broadcast over a small
//!    control dataflow beside the job's; every process asks its sources to move to
//!    segment `c`.
//! 2. Each source, at its next batch boundary, snapshots its position, moves its
//!    capability to segment `c`, and then waits (emits nothing) until `c` is released.
//!    So no record of segment `c` exists until every operator has snapshotted `c`.
//! 3. Each operator snapshots when timely's progress tracking says its input has passed
//!    segment `c - 1` (the driver calls its `snapshot` hook before any later batch). The
//!    worker's [`Tracker`] collects the sections; once all are in, the worker reports
//!    `Snapshotted` and hands the sections to its writer thread (the job goes on while
//!    the part file is written and synced).
//! 4. Once every worker snapshotted, the coordinator broadcasts `Release(c)`: sources go
//!    on. Once every worker's part is written, it commits the `_MANIFEST` (the
//!    checkpoint is complete), applies retention, and broadcasts `Complete(c)`.
//! 5. A checkpoint that fails to write or outlives its timeout is given up (`Abort(c)`:
//!    released, its directory removed, a warning) and the job goes on.
//! 6. A worker whose part of the job has ended (every operator retired with its last
//!    section) reports `Finished` and stays for one more checkpoint: once every worker
//!    has, the coordinator takes a final one (Flink's checkpoint after tasks finish),
//!    then broadcasts `Done` and the workers leave. So a finished job's latest
//!    checkpoint says every source is at its end, and a run restored from it reads
//!    nothing again.
//!
//! Holding the sources until every operator has snapshotted is what makes the cut
//! consistent without buffering: an operator never sees a record of segment `c` before
//! its input has passed segment `c - 1`, even across processes whose progress reaches
//! it late. The price is a short pause per checkpoint (the records in flight drain and
//! the state is encoded); the file writes are not in it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::scheduling::Activator;

use crate::checkpoint::format::{PartHeader, PartSummary, PartWriter};
use crate::checkpoint::restore::{Restore, Restored};
use crate::checkpoint::settings::CheckpointSettings;
use crate::checkpoint::storage::{self, CheckpointKind, Manifest, PartEntry};
use crate::checkpoint::tracker::Tracker;
use crate::control::JobControl;
use crate::error::{ErrorKind, JobError};

/// What travels on the control dataflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Worker to coordinator: every operator of `worker` has snapshotted `checkpoint`.
    Snapshotted { checkpoint: u64, worker: u32 },
    /// Worker to coordinator: `worker`'s part of `checkpoint` is on disk.
    Written { checkpoint: u64, worker: u32, size: u64, crc: u32 },
    /// Worker to coordinator: `worker` could not write its part.
    WriteFailed { checkpoint: u64, worker: u32, error: String },
    /// Worker to coordinator: `worker`'s part of the job has ended (its operators all
    /// retired); it waits for the final checkpoint.
    Finished { worker: u32 },
    /// Coordinator to all: move the sources to `segment`. `savepoint`: it is a savepoint
    /// (written under `savepoints/`, never removed by retention), `Some(true)` one the job
    /// stops with once it completes (every process stops then).
    Trigger { segment: u64, savepoint: Option<bool> },
    /// Coordinator to all: every operator has snapshotted `.0`; sources go on.
    Release(u64),
    /// Coordinator to all: `.0` is complete (committed).
    Complete(u64),
    /// Coordinator to all: `.0` was given up.
    Abort(u64),
    /// Coordinator to all: the final checkpoint is over (complete or given up); the
    /// workers may leave.
    Done,
}

impl Message {
    /// Whether it goes to the coordinator (else to every worker).
    pub fn is_report(&self) -> bool {
        matches!(
            self,
            Message::Snapshotted { .. }
                | Message::Written { .. }
                | Message::WriteFailed { .. }
                | Message::Finished { .. }
        )
    }
}

/// A part to write, for the writer thread.
struct PartJob {
    checkpoint: u64,
    savepoint: bool,
    sections: Vec<(u32, Vec<u8>)>,
}

/// One worker's side of checkpointing: its tracker, its writer thread, what it
/// restored from, and (worker 0) the coordinator.
pub struct Checkpoints {
    pub settings: CheckpointSettings,
    /// Checkpoint ids are `base + segment`: after those already in the directory.
    base: u64,
    worker: u32,
    threads: u32,
    pub tracker: RefCell<Tracker>,
    restored: Option<Arc<Restored>>,
    jobs: mpsc::Sender<PartJob>,
    written: mpsc::Receiver<Message>,
    coordinator: Option<RefCell<Coordinator>>,
    /// Messages for the control dataflow, sent by the worker loop.
    outbox: RefCell<Vec<Message>>,
    /// The id of the checkpoint operators are snapshotting for (a sink's pre-commit
    /// names its files by it).
    snapshotting: Cell<u64>,
    /// The newest complete checkpoint's id (sinks commit up to it).
    completed: Cell<u64>,
    /// Operators to wake when a checkpoint completes (sinks).
    on_complete: RefCell<Vec<Activator>>,
    /// The checkpoints in progress that are savepoints.
    savepoints: RefCell<BTreeSet<u64>>,
    /// The savepoint the job stops with once it completes.
    stop_at: Cell<Option<u64>>,
    /// Each plan node's own parallelism, if set (see [`Checkpoints::restore_for`]).
    parallelism: Arc<Vec<Option<usize>>>,
    /// Whether the final checkpoint is over (`Done` arrived).
    done: Cell<bool>,
}

impl Checkpoints {
    /// Worker `worker` of `workers` (`threads` per process)' side of the run `start`
    /// prepared; starts its writer thread.
    fn new(start: &CheckpointStart, worker: usize, workers: usize, threads: usize) -> std::io::Result<Self> {
        let (settings, base) = (start.settings.clone(), start.base);
        let (jobs, job_rx) = mpsc::channel::<PartJob>();
        let (done_tx, written) = mpsc::channel();
        let root = settings.dir.clone();
        let (w, n) = (worker as u32, workers as u32);
        std::thread::Builder::new().name(format!("ferroflow checkpoint writer {worker}")).spawn(move || {
            for job in job_rx {
                let id = base + job.checkpoint;
                let message = match write_part(&target_dir(&root, id, job.savepoint), id, w, n, &job.sections) {
                    Ok((size, crc)) => Message::Written { checkpoint: job.checkpoint, worker: w, size, crc },
                    Err(e) => Message::WriteFailed { checkpoint: job.checkpoint, worker: w, error: e.to_string() },
                };
                if done_tx.send(message).is_err() {
                    break;
                }
            }
        })?;
        let coordinator =
            (worker == 0).then(|| RefCell::new(Coordinator::new(&settings, workers, start.signature.clone())));
        Ok(Checkpoints {
            settings,
            base,
            worker: w,
            threads: threads.max(1) as u32,
            tracker: RefCell::new(Tracker::new()),
            restored: start.restored.clone(),
            jobs,
            written,
            coordinator,
            outbox: RefCell::new(Vec::new()),
            snapshotting: Cell::new(0),
            completed: Cell::new(0),
            on_complete: RefCell::new(Vec::new()),
            savepoints: RefCell::new(BTreeSet::new()),
            stop_at: Cell::new(None),
            parallelism: start.parallelism.clone(),
            done: Cell::new(false),
        })
    }

    /// The id of checkpoint `segment` (the segment the sources moved to for it).
    pub fn id_of(&self, segment: u64) -> u64 {
        self.base + segment
    }

    /// The segment checkpoint `id` was taken for (see [`Checkpoints::id_of`]).
    pub fn segment_of(&self, id: u64) -> u64 {
        id.saturating_sub(self.base)
    }

    /// Operators are about to snapshot for checkpoint `segment`.
    pub fn begin_snapshot(&self, segment: u64) {
        self.snapshotting.set(self.id_of(segment));
    }

    /// The id of the checkpoint being snapshotted (see [`Checkpoints::begin_snapshot`]).
    pub fn snapshot_id(&self) -> u64 {
        self.snapshotting.get()
    }

    /// The newest complete checkpoint's id (0: none yet in this run).
    pub fn completed(&self) -> u64 {
        self.completed.get()
    }

    /// Wakes `activator` whenever a checkpoint completes.
    pub fn wake_on_complete(&self, activator: Activator) {
        self.on_complete.borrow_mut().push(activator);
    }

    /// After the job was aborted: if every process was stopping with a savepoint and
    /// a peer, having seen it complete, stopped first (heard here as a cancellation),
    /// this process stops with it too.
    pub fn stopped_by_peer(&self, control: &JobControl) {
        let peer_cancelled = control.error().is_some_and(|e| e.kind == crate::error::ErrorKind::Cancelled);
        if let (Some(c), true, None) = (self.stop_at.get(), peer_cancelled, control.stopped_with()) {
            control.stop_with_savepoint(target_dir(&self.settings.dir, self.id_of(c), true));
        }
    }

    /// After the job ended: a job cancelled (Ctrl-C, SIGTERM; not stopped with a
    /// savepoint) removes the checkpoints it wrote, unless asked to retain them
    /// (`RETAIN_ON_CANCELLATION`). Done once, by the coordinator. A failed job keeps
    /// them: a restart resumes from them.
    pub fn on_job_end(&self, control: &JobControl) {
        let Some(co) = &self.coordinator else { return };
        let cancelled = control.error().is_some_and(|e| e.kind == crate::error::ErrorKind::Cancelled);
        if !cancelled || self.settings.retain_on_cancel || control.stopped_with().is_some() {
            return;
        }
        for segment in 1..co.borrow().next {
            let _ = storage::remove_checkpoint(&self.settings.dir, self.id_of(segment));
        }
    }

    /// The id of the checkpoint the job restored from (0: none).
    pub fn restored_id(&self) -> u64 {
        self.restored.as_ref().map_or(0, |r| r.id)
    }

    /// What operator `node` restores from, if the job restores, as instance `worker` of
    /// the `peers` workers: an operator set to run on fewer (`set_parallelism`) routes
    /// keys over those only, and so keeps the keys that route to it among them.
    pub fn restore_for(&self, node: u32, worker: usize, peers: usize) -> Option<Restore<'_>> {
        let peers = self.parallelism.get(node as usize).copied().flatten().map_or(peers, |p| p.clamp(1, peers));
        self.restored.as_ref().map(|r| r.for_node(node, worker, peers))
    }

    /// The worker loop's turn: hands ready checkpoints to the writer, collects what it
    /// wrote, lets the coordinator trigger or time out; returns what to send.
    pub fn poll(&self, control: &JobControl, now: Instant) -> Vec<Message> {
        let mut out = std::mem::take(&mut *self.outbox.borrow_mut());
        while let Some((checkpoint, sections)) = self.tracker.borrow_mut().take_ready() {
            out.push(Message::Snapshotted { checkpoint, worker: self.worker });
            let savepoint = self.savepoints.borrow_mut().remove(&checkpoint);
            // The writer thread only ends with this worker.
            let _ = self.jobs.send(PartJob { checkpoint, savepoint, sections });
        }
        while let Ok(m) = self.written.try_recv() {
            out.push(m);
        }
        if let Some(c) = &self.coordinator {
            c.borrow_mut().tick(now, control, &mut out);
        }
        out
    }

    /// This worker's part of the job has ended: tells the coordinator, which takes the
    /// final checkpoint once every worker's has (see [`Checkpoints::final_checkpoint_over`]).
    pub fn finished(&self) {
        self.outbox.borrow_mut().push(Message::Finished { worker: self.worker });
    }

    /// Whether the final checkpoint is over: the worker may leave.
    pub fn final_checkpoint_over(&self) -> bool {
        self.done.get()
    }

    /// How long the worker may park before [`Checkpoints::poll`] has something to do.
    pub fn park_limit(&self, now: Instant) -> Duration {
        match &self.coordinator {
            Some(c) => c.borrow().next_due(now),
            None => Duration::from_millis(5),
        }
    }

    /// A message from the control dataflow: reports (on worker 0), commands (everywhere).
    pub fn receive(&self, message: Message, control: &JobControl) {
        match message {
            Message::Trigger { segment, savepoint } => {
                if let Some(stop) = savepoint {
                    self.savepoints.borrow_mut().insert(segment);
                    if stop {
                        self.stop_at.set(Some(segment));
                    }
                }
                self.tracker.borrow_mut().request(segment);
                control.request_segment(segment)
            }
            Message::Done => self.done.set(true),
            Message::Release(c) => control.release_segment(c),
            Message::Abort(c) => {
                self.tracker.borrow_mut().abort(c);
                control.release_segment(c);
            }
            Message::Complete(c) => {
                self.completed.set(self.completed.get().max(self.id_of(c)));
                for a in self.on_complete.borrow().iter() {
                    a.activate();
                }
                if self.stop_at.get() == Some(c) {
                    control.stop_with_savepoint(target_dir(&self.settings.dir, self.id_of(c), true));
                }
            }
            report => {
                if let Some(co) = &self.coordinator {
                    let mut co = co.borrow_mut();
                    let mut out = self.outbox.borrow_mut();
                    co.report(report, self.base, self.threads, control, &mut out);
                }
            }
        }
    }
}

/// Where checkpoint or savepoint `id` goes under the storage directory `root`.
fn target_dir(root: &Path, id: u64, savepoint: bool) -> PathBuf {
    if savepoint {
        storage::savepoint_dir(root, id)
    } else {
        storage::checkpoint_dir(root, id)
    }
}

/// Writes worker `worker`'s part of checkpoint `id` into `dir`: temp file, then committed.
fn write_part(
    dir: &Path,
    id: u64,
    worker: u32,
    workers: u32,
    sections: &[(u32, Vec<u8>)],
) -> std::io::Result<(u64, u32)> {
    storage::create_dir_durably(dir)?;
    let tmp = dir.join(storage::part_temp_name(worker));
    let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let mut part = PartWriter::new(file, PartHeader { checkpoint: id, worker, workers })?;
    for (node, bytes) in sections {
        part.section(*node, bytes)?;
    }
    let (file, summary) = part.finish()?;
    file.into_inner().map_err(|e| e.into_error())?;
    storage::commit_file(&tmp, &dir.join(storage::part_file_name(worker)))?;
    Ok((summary.size, summary.crc))
}

/// The checkpoint in progress, as the coordinator sees it.
struct InFlight {
    checkpoint: u64,
    /// `Some(stop)` for a savepoint: stop the job once it is written.
    savepoint: Option<bool>,
    started: Instant,
    snapshotted: BTreeSet<u32>,
    written: BTreeMap<u32, PartEntry>,
}

/// Worker 0's part: triggers checkpoints on the interval, one at a time, and commits them.
struct Coordinator {
    root: PathBuf,
    job: String,
    interval: Duration,
    min_pause: Duration,
    timeout: Duration,
    retained: usize,
    workers: usize,
    signature: Vec<String>,
    next: u64,
    last_trigger: Instant,
    last_end: Instant,
    in_flight: Option<InFlight>,
    /// A savepoint asked for while a checkpoint was in progress: taken next.
    asked: Option<bool>,
    /// The workers whose part of the job has ended.
    finished: BTreeSet<u32>,
    /// The final checkpoint, once triggered.
    last: Option<u64>,
}

impl Coordinator {
    fn new(settings: &CheckpointSettings, workers: usize, signature: Vec<String>) -> Self {
        let now = Instant::now();
        Coordinator {
            root: settings.dir.clone(),
            job: settings.job.clone(),
            interval: settings.interval,
            min_pause: settings.min_pause,
            timeout: settings.timeout,
            retained: settings.retained,
            workers,
            signature,
            next: 1,
            last_trigger: now,
            last_end: now,
            in_flight: None,
            asked: None,
            finished: BTreeSet::new(),
            last: None,
        }
    }

    fn due_at(&self) -> Instant {
        (self.last_trigger + self.interval).max(self.last_end + self.min_pause)
    }

    fn next_due(&self, now: Instant) -> Duration {
        match &self.in_flight {
            Some(f) => (f.started + self.timeout).saturating_duration_since(now).min(Duration::from_millis(5)),
            // A savepoint may be asked for at any time.
            None => self.due_at().saturating_duration_since(now).min(Duration::from_millis(20)),
        }
    }

    fn tick(&mut self, now: Instant, control: &JobControl, out: &mut Vec<Message>) {
        if self.in_flight.is_some() && self.asked.is_none() {
            self.asked = control.take_savepoint_request();
        }
        match &self.in_flight {
            Some(f) if now.duration_since(f.started) > self.timeout => {
                let c = f.checkpoint;
                control.warn(format!(
                    "checkpoint {c} expired after {} ms before completing; the job goes on",
                    self.timeout.as_millis()
                ));
                self.give_up(c, now, out);
            }
            Some(_) => {}
            None if self.last.is_some() => {}
            None => {
                let all_finished = self.finished.len() == self.workers;
                let savepoint = if all_finished {
                    // The final checkpoint stands for any savepoint asked for now.
                    None
                } else {
                    self.asked.take().or_else(|| control.take_savepoint_request())
                };
                if savepoint.is_none() && now < self.due_at() && !all_finished {
                    return;
                }
                if all_finished {
                    self.last = Some(self.next);
                }
                let c = self.next;
                self.next += 1;
                self.last_trigger = now;
                self.in_flight = Some(InFlight {
                    checkpoint: c,
                    savepoint,
                    started: now,
                    snapshotted: BTreeSet::new(),
                    written: BTreeMap::new(),
                });
                out.push(Message::Trigger { segment: c, savepoint });
            }
        }
    }

    fn give_up(&mut self, c: u64, now: Instant, out: &mut Vec<Message>) {
        self.in_flight = None;
        self.last_end = now;
        out.push(Message::Abort(c));
        self.after_final(c, out);
    }

    /// After checkpoint `c` completed or was given up: if it was the final one, the
    /// workers may leave.
    fn after_final(&self, c: u64, out: &mut Vec<Message>) {
        if self.last == Some(c) {
            out.push(Message::Done);
        }
    }

    fn report(&mut self, message: Message, base: u64, threads: u32, control: &JobControl, out: &mut Vec<Message>) {
        let now = Instant::now();
        if let Message::Finished { worker } = message {
            self.finished.insert(worker);
            return;
        }
        let Some(f) = self.in_flight.as_mut() else { return };
        match message {
            Message::Snapshotted { checkpoint, worker } if checkpoint == f.checkpoint => {
                f.snapshotted.insert(worker);
                if f.snapshotted.len() == self.workers {
                    out.push(Message::Release(checkpoint));
                }
            }
            Message::Written { checkpoint, worker, size, crc } if checkpoint == f.checkpoint => {
                f.written.insert(worker, PartEntry::new(worker, PartSummary { size, crc }));
                if f.written.len() == self.workers {
                    let id = base + checkpoint;
                    let savepoint = f.savepoint;
                    let dir = target_dir(&self.root, id, savepoint.is_some());
                    let manifest = Manifest {
                        job: self.job.clone(),
                        kind: if savepoint.is_some() { CheckpointKind::Savepoint } else { CheckpointKind::Checkpoint },
                        segment: id,
                        processes: (self.workers as u32).div_ceil(threads),
                        threads,
                        wall_time_ms: storage::wall_time_ms(),
                        plan: self.signature.clone(),
                        parts: f.written.values().cloned().collect(),
                    };
                    let committed = storage::write_manifest(&dir, &manifest)
                        .and_then(|()| storage::retain(&self.root, self.retained).map(drop));
                    match committed {
                        Ok(()) => {
                            self.in_flight = None;
                            self.last_end = now;
                            out.push(Message::Complete(checkpoint));
                            // A stop-with-savepoint stops every worker when `Complete` reaches it.
                            if savepoint == Some(false) {
                                control.savepoint_written(dir);
                            }
                            self.after_final(checkpoint, out);
                        }
                        Err(e) => {
                            control.warn(format!("checkpoint {id} could not be committed ({e}); the job goes on"));
                            self.give_up(checkpoint, now, out);
                        }
                    }
                }
            }
            Message::WriteFailed { checkpoint, worker, error } if checkpoint == f.checkpoint => {
                control.warn(format!(
                    "checkpoint {} failed: worker {worker} could not write its part ({error}); the job goes on",
                    base + checkpoint
                ));
                let _ = std::fs::remove_dir_all(target_dir(&self.root, base + checkpoint, f.savepoint.is_some()));
                self.give_up(checkpoint, now, out);
            }
            _ => {}
        }
    }
}

/// What every worker of a process starts its checkpointing from: the settings, where
/// new checkpoint ids start, and the checkpoint restored from (loaded once).
pub struct CheckpointStart {
    settings: CheckpointSettings,
    base: u64,
    restored: Option<Arc<Restored>>,
    signature: Vec<String>,
    parallelism: Arc<Vec<Option<usize>>>,
}

impl CheckpointStart {
    /// Checks the storage directory can be written and loads the checkpoint to restore
    /// from: either failing is the job's error at start, in one line.
    pub fn prepare<R>(settings: CheckpointSettings, plan: &crate::plan::Plan<R>) -> Result<Self, JobError> {
        let system = |m: String| JobError::new(ErrorKind::System, m);
        storage::probe_writable(&settings.dir).map_err(system)?;
        let signature = plan.signature();
        let restored = match &settings.restore_from {
            Some(dir) => Some(Arc::new(Restored::load(dir, &signature).map_err(system)?)),
            None => None,
        };
        let last = storage::last_id(&settings.dir).map_err(|e| system(format!("cannot list checkpoints: {e}")))?;
        let base = last.max(restored.as_ref().map_or(0, |r| r.id));
        let parallelism = Arc::new(plan.nodes.iter().map(|n| n.parallelism).collect());
        Ok(CheckpointStart { settings, base, restored, signature, parallelism })
    }

    /// How functions see this run's checkpointing.
    pub fn mode(&self) -> crate::functions::Checkpointing {
        crate::functions::Checkpointing::On { first_id: self.base + 1, restoring: self.restored.is_some() }
    }

    /// Worker `worker` of `peers` (`threads` per process)' side.
    pub fn for_worker(&self, worker: usize, peers: usize, threads: usize) -> Result<Checkpoints, JobError> {
        Checkpoints::new(self, worker, peers, threads)
            .map_err(|e| JobError::new(ErrorKind::System, format!("cannot start the checkpoint writer: {e}")))
    }
}
