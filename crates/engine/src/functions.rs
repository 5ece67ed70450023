//! The traits user functions are adapted to. The engine calls them record by record;
//! an implementation that must take a lock to run (the GIL) takes it once per batch
//! through [`BatchScope`], which the engine wraps around every operator activation.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::checkpoint::restore::Restore;
use crate::error::UdfResult;
use crate::key::Key;
use crate::rolling::RollingState;
/// The window types a window function sees belong to the windows; they are named here
/// too because user-function adapters reach everything they implement through this module.
pub use crate::windows::{WindowContext, WindowInfo};

/// Runs `work` in the context user functions need (for Python: with the GIL held).
/// The engine enters it once per operator activation, never per record.
pub trait BatchScope: Send + Sync + 'static {
    fn enter(&self, work: &mut dyn FnMut());

    /// Wraps a worker thread's whole life, e.g. to keep one Python thread state per
    /// worker instead of creating one per batch.
    fn run_worker(&self, work: &mut dyn FnMut()) {
        work()
    }
}

/// For engines whose user functions need no context (pure Rust).
pub struct NoScope;

impl BatchScope for NoScope {
    fn enter(&self, work: &mut dyn FnMut()) {
        work()
    }
}

/// One stateless step: zero or more outputs per input (map, filter, flat_map, select).
/// Consecutive steps are fused into one operator.
pub trait Transform<R>: 'static {
    fn apply(&mut self, input: R, out: &mut Vec<R>) -> UdfResult<()>;

    /// `Some` for a step that takes whole batches (a batch UDF: one call per batch,
    /// through [`Transform::apply_batch`]), saying what its outputs are; `None` (the
    /// default) for a step called record by record through [`Transform::apply`].
    fn batch_shape(&self) -> Option<BatchShape> {
        None
    }

    /// A batch step: appends its outputs for the whole of `input` (left as it is) to
    /// `out`. The operator checks the count and sets timestamps as the step's
    /// [`BatchShape`] says. The default calls `apply` per record.
    fn apply_batch(&mut self, input: &[R], out: &mut Vec<R>) -> UdfResult<()>
    where
        R: Clone,
    {
        input.iter().try_for_each(|r| self.apply(r.clone(), out))
    }

    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// What a batch step's outputs are ([`Transform::batch_shape`]), hence their timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchShape {
    /// One output per input, in order (`map_batch`): output i takes input i's
    /// timestamp; another count fails the job.
    OneToOne,
    /// Some of the inputs themselves, in order (`filter_batch`): they keep their own
    /// timestamps.
    Subset,
    /// Any number of outputs (`flat_map_batch`): each takes the batch's greatest
    /// timestamp (none if no input has one). Windows after it thus place an output
    /// with the batch's latest record: never later than the watermark allows when any
    /// input was on time.
    Any,
}

/// Extracts a record's key: its canonical encoding (for routing and state) and
/// the key value itself (handed back to window functions).
pub trait KeySelector<R>: 'static {
    fn key(&mut self, record: &R) -> UdfResult<(Key, R)>;

    /// Keys a batch (emptied), appending `(key, key value, record)` to `out`. On an
    /// error `out` may hold part of the batch.
    fn key_all(&mut self, records: &mut Vec<R>, out: &mut Vec<(Key, R, R)>) -> UdfResult<()> {
        for record in records.drain(..) {
            let (key, value) = self.key(&record)?;
            out.push((key, value, record));
        }
        Ok(())
    }

    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// Combines two values of one key into one.
pub trait Reducer<R>: 'static {
    fn reduce(&mut self, acc: &R, value: &R) -> UdfResult<R>;

    /// Checks a key's (or a window's) first record, which becomes the state without
    /// meeting `reduce`: a built-in aggregation refuses a field it could not aggregate
    /// there as it would in a later record. The default takes any record.
    fn check_first(&mut self, _first: &R) -> UdfResult<()> {
        Ok(())
    }

    /// A rolling reduce's state for a key's first record (which it emits as it is,
    /// once [`Reducer::check_first`] took it). The default keeps the record; a built-in
    /// aggregation may keep a number.
    fn start(&mut self, first: &R) -> UdfResult<RollingState<R>>
    where
        R: Clone,
    {
        self.check_first(first)?;
        Ok(RollingState::Record(first.clone()))
    }

    /// Folds `value` into the state of `key` (its canonical encoding); returns the
    /// record to emit.
    fn update(&mut self, _key: &Key, state: &mut RollingState<R>, value: &R) -> UdfResult<R>
    where
        R: Clone,
    {
        update_record(self, state, value)
    }

    /// The record a key's state stands for: its final result in batch mode. A record
    /// state is that record; a reducer that keeps running numbers rebuilds the record
    /// from the key and the number.
    fn result(&mut self, _key: &Key, state: &RollingState<R>) -> UdfResult<R>
    where
        R: Clone,
    {
        match state {
            RollingState::Record(r) => Ok(r.clone()),
            RollingState::Running { .. } => {
                Err(crate::UdfError::internal("a running number in the state of a reduce that keeps records"))
            }
        }
    }

    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// [`Reducer::update`] for a state that is a record: `reduce(acc, value)` becomes the
/// state and is emitted. (A reducer that keeps running numbers calls this once its
/// key has left them.)
pub fn update_record<R: Clone, F: Reducer<R> + ?Sized>(
    red: &mut F,
    state: &mut RollingState<R>,
    value: &R,
) -> UdfResult<R> {
    match state {
        RollingState::Record(acc) => {
            let next = red.reduce(acc, value)?;
            *acc = next.clone();
            Ok(next)
        }
        RollingState::Running { .. } => {
            Err(crate::UdfError::internal("a running number in the state of a reduce that keeps records"))
        }
    }
}

/// Called with a key's window contents when it fires: all its values, or the single
/// result of the window's reduce/aggregate.
pub trait WindowApply<R>: 'static {
    fn apply(&mut self, key: &R, ctx: &WindowContext, values: Vec<R>, out: &mut Vec<R>) -> UdfResult<()>;

    /// The window `ctx.window` of `key` is cleared (its clean-up time passed, or the
    /// input ended): Flink's `ProcessWindowFunction.clear`, the last moment its
    /// per-window state can be read.
    fn clear(&mut self, _key: &R, _ctx: &WindowContext) -> UdfResult<()> {
        Ok(())
    }

    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// Flink's `AggregateFunction` over records: the accumulator is a record too.
pub trait WindowAggregate<R>: 'static {
    fn create_accumulator(&mut self) -> UdfResult<R>;
    fn add(&mut self, value: &R, acc: R) -> UdfResult<R>;
    fn get_result(&mut self, acc: &R) -> UdfResult<R>;
    fn merge(&mut self, a: R, b: R) -> UdfResult<R>;

    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// Extracts a record's event timestamp (ms); `previous` is the timestamp it carries
/// ([`crate::time::NO_TIME`] if none), as Flink's `TimestampAssigner`.
pub trait TimestampAssigner<R>: 'static {
    fn timestamp(&mut self, record: &R, previous: i64) -> UdfResult<i64>;

    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// Receives the records that reach the end of the dataflow.
///
/// `write` and `close` run inside the batch scope (user code, turning records into
/// bytes); `flush` and `prepare_commit` run outside it, so output that blocks (a socket
/// whose reader stopped reading) never holds what the job's caller needs to cancel it.
pub trait Sink<R>: 'static {
    fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()>;

    /// Outputs what `write` took, after each activation's writes. Output that may block
    /// for long gives up once `abort` (the job's abort flag) is set.
    fn flush(&mut self, _abort: &AtomicBool) -> UdfResult<()> {
        Ok(())
    }

    /// Called once when the input has ended (not on cancellation).
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }

    /// After `close` and a last `flush`: output written but not yet visible, which the
    /// job publishes once all of it has succeeded (see [`SinkCommit`]).
    fn prepare_commit(&mut self) -> UdfResult<Option<Box<dyn SinkCommit>>> {
        Ok(None)
    }

    /// Checkpoints (Flink's two-phase commit): everything written so far belongs to
    /// checkpoint `id`: make it durable and ready to commit, and append to `out` what a
    /// restore needs to commit it or throw it away. Default: nothing; the sink is then
    /// at-least-once (print, socket).
    fn pre_commit(&mut self, _id: u64, _out: &mut Vec<u8>) -> UdfResult<()> {
        Ok(())
    }

    /// Checkpoint `id` is complete: make visible what was pre-committed up to it.
    fn commit_checkpoint(&mut self, _id: u64) -> UdfResult<()> {
        Ok(())
    }

    /// The job restarts from checkpoint `id` (complete): commit what its pre-commits
    /// list, throw away what was written after it. `from` holds every old worker's
    /// section; old worker `i`'s is this instance's to handle if `from.deals(i)`.
    fn restore(&mut self, _from: &crate::checkpoint::restore::Restore<'_>, _id: u64) -> UdfResult<()> {
        Ok(())
    }
}

/// A sink's finished output, waiting for the job's success to be published (Flink's
/// committable). Dropped without `commit` (the job failed or was cancelled), it takes
/// back what it can, so nothing that looks complete is left.
pub trait SinkCommit: Send {
    fn commit(self: Box<Self>) -> Result<(), String>;
}

/// What a source has to say after being polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// It may have more right away: poll again soon.
    More,
    /// Nothing now; it calls its [`Waker`] when there is.
    Idle,
    /// It has ended.
    Done,
}

/// Produces the records of one source partition.
pub trait SourceReader<R>: 'static {
    /// Appends up to `max` records to `out`.
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus>;

    /// The job is stopping early: let go of any thread or connection.
    fn cancel(&mut self) {}

    /// The partition's event-time watermark for the records of the next poll, if the
    /// source makes watermarks (a batch must end where the watermark changes).
    fn watermark(&self) -> Option<i64> {
        None
    }

    /// Manual processing time, if this source drives it (testing sources).
    fn processing_time(&self) -> Option<i64> {
        None
    }

    /// Checkpoints (issue 13): everything polled so far belongs to the segments below
    /// `segment`, and the next poll's records to `segment`. A reader that can resume
    /// records here where `segment` starts (a byte offset, an index, a Python source's
    /// `snapshot_state`): restoring the checkpoint that completes the segments below
    /// `segment` resumes from it. Segments skipped on the way are empty, so one mark
    /// serves them all. Called between polls, inside the batch scope. Default: the
    /// reader keeps no position (it cannot resume).
    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        Ok(())
    }

    /// Checkpoints: appends the position recorded at the last
    /// [`SourceReader::mark_position`] (before any: where the reader started; once a
    /// poll said [`SourceStatus::Done`]: the end, which stands for the reader in every
    /// later checkpoint) to `out`, through [`crate::checkpoint::state_io`]. Called inside
    /// the batch scope. Default: writes nothing (the reader cannot resume; a restore
    /// starts it afresh).
    fn snapshot(&mut self, _out: &mut Vec<u8>) -> UdfResult<()> {
        Ok(())
    }

    /// Checkpoints: the checkpoint that completes the segments below `segment` is
    /// complete (every operator's snapshot is durable). A reader that tells an outside
    /// system how far it got (Kafka's committed group offsets) does it here, with the
    /// position marked for `segment`, never earlier: before completion the checkpoint
    /// may still be abandoned. Called inside the batch scope, between polls; a reader
    /// that already ended hears of no later checkpoint.
    fn checkpoint_complete(&mut self, _segment: u64) -> UdfResult<()> {
        Ok(())
    }

    /// Checkpoints: seeks to the positions the old readers' snapshots recorded, once, on
    /// a freshly made reader before its first poll. After a rescale a reader says how the
    /// old positions are shared out (splits dealt with [`Restore::deals`]). Default:
    /// restores from nothing, as a reader that cannot resume wrote nothing.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        if from.non_empty().next().is_none() {
            Ok(())
        } else {
            Err(crate::UdfError::internal("a source position restored into a source that cannot resume"))
        }
    }
}

/// Which input of a two-input operator a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    First,
    Second,
}

/// What a two-input function is told with each record besides the record: the
/// operator's clocks (its watermark is the least of both inputs'; `i64::MIN` before the
/// first one) and processing time (ms).
#[derive(Clone, Copy, Debug)]
pub struct CoContext {
    pub watermark: i64,
    pub processing_time: i64,
}

/// The function of a connected pair of streams (Flink's `CoMapFunction`,
/// `CoFlatMapFunction`, `CoProcessFunction`): zero or more outputs per record of
/// either input.
pub trait CoTransform<R>: 'static {
    fn apply(&mut self, side: Side, input: R, ctx: &CoContext, out: &mut Vec<R>) -> UdfResult<()>;

    /// Called once when both inputs have ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// Flink's `Partitioner` with its key selector folded in: the index (`0..num_partitions`)
/// of the worker a record goes to. Any other value fails the job, naming the record.
pub trait Partitioner<R>: 'static {
    fn partition(&mut self, record: &R, num_partitions: usize) -> UdfResult<i64>;

    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// Wakes an idle source's operator from another thread.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Where an operator instance runs.
#[derive(Clone)]
pub struct WorkerContext {
    pub index: usize,
    pub peers: usize,
    /// Set for sources: wakes the source's operator.
    pub waker: Option<Waker>,
    /// Whether the job takes checkpoints: a file sink then writes part files it commits
    /// with them.
    pub checkpointing: Checkpointing,
}

/// How a job takes checkpoints, as functions whose output depends on it see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checkpointing {
    #[default]
    Off,
    /// Checkpoint ids of this run start at `first_id`; `restoring`: the run starts from
    /// a checkpoint (output of the run before it is there).
    On { first_id: u64, restoring: bool },
}

pub type SourceFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn SourceReader<R>>> + Send + Sync>;
pub type TransformFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn Transform<R>>> + Send + Sync>;
pub type KeyFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn KeySelector<R>>> + Send + Sync>;
pub type ReduceFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn Reducer<R>>> + Send + Sync>;
pub type AggregateFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn WindowAggregate<R>>> + Send + Sync>;
pub type TimestampFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn TimestampAssigner<R>>> + Send + Sync>;
/// Window assigner, trigger, evictor and lateness, made per worker (a session gap, a
/// trigger or an evictor may be a user function; a trigger's per-window state lives in
/// the window operator's keyed state, the context given).
pub type WindowConfigFactory<R> = Arc<
    dyn Fn(&WorkerContext, &crate::process::SharedContext<R>) -> UdfResult<crate::windows::event_time::WindowConfig<R>>
        + Send
        + Sync,
>;
pub type CoTransformFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn CoTransform<R>>> + Send + Sync>;
pub type PartitionerFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn Partitioner<R>>> + Send + Sync>;
pub type SinkFactory<R> = Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<dyn Sink<R>>> + Send + Sync>;

/// Adapters so plain Rust closures serve as user functions (tests, Rust jobs).
pub mod closures {
    use super::*;

    pub struct MapFn<F>(pub F);
    impl<R: 'static, F: FnMut(R) -> UdfResult<Option<R>> + 'static> Transform<R> for MapFn<F> {
        fn apply(&mut self, input: R, out: &mut Vec<R>) -> UdfResult<()> {
            out.extend((self.0)(input)?);
            Ok(())
        }
    }

    pub struct FlatMapFn<F>(pub F);
    impl<R: 'static, F: FnMut(R) -> UdfResult<Vec<R>> + 'static> Transform<R> for FlatMapFn<F> {
        fn apply(&mut self, input: R, out: &mut Vec<R>) -> UdfResult<()> {
            out.extend((self.0)(input)?);
            Ok(())
        }
    }

    pub struct KeyFn<F>(pub F);
    impl<R: 'static, F: FnMut(&R) -> UdfResult<(Key, R)> + 'static> KeySelector<R> for KeyFn<F> {
        fn key(&mut self, record: &R) -> UdfResult<(Key, R)> {
            (self.0)(record)
        }
    }

    pub struct ReduceFn<F>(pub F);
    impl<R: 'static, F: FnMut(&R, &R) -> UdfResult<R> + 'static> Reducer<R> for ReduceFn<F> {
        fn reduce(&mut self, acc: &R, value: &R) -> UdfResult<R> {
            (self.0)(acc, value)
        }
    }

    pub struct ApplyFn<F>(pub F);
    impl<R: 'static, F: FnMut(&R, &WindowContext, Vec<R>) -> UdfResult<Vec<R>> + 'static> WindowApply<R> for ApplyFn<F> {
        fn apply(&mut self, key: &R, ctx: &WindowContext, values: Vec<R>, out: &mut Vec<R>) -> UdfResult<()> {
            out.extend((self.0)(key, ctx, values)?);
            Ok(())
        }
    }

    pub struct TimestampFn<F>(pub F);
    impl<R: 'static, F: FnMut(&R) -> UdfResult<i64> + 'static> TimestampAssigner<R> for TimestampFn<F> {
        fn timestamp(&mut self, record: &R, _previous: i64) -> UdfResult<i64> {
            (self.0)(record)
        }
    }

    pub struct SinkFn<F>(pub F);
    impl<R: 'static, F: FnMut(&mut Vec<R>) -> UdfResult<()> + 'static> Sink<R> for SinkFn<F> {
        fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()> {
            (self.0)(batch)
        }
    }

    pub struct CoFn<F>(pub F);
    impl<R: 'static, F: FnMut(Side, R, &CoContext) -> UdfResult<Vec<R>> + 'static> CoTransform<R> for CoFn<F> {
        fn apply(&mut self, side: Side, input: R, ctx: &CoContext, out: &mut Vec<R>) -> UdfResult<()> {
            out.extend((self.0)(side, input, ctx)?);
            Ok(())
        }
    }

    pub struct PartitionFn<F>(pub F);
    impl<R: 'static, F: FnMut(&R, usize) -> UdfResult<i64> + 'static> Partitioner<R> for PartitionFn<F> {
        fn partition(&mut self, record: &R, num_partitions: usize) -> UdfResult<i64> {
            (self.0)(record, num_partitions)
        }
    }

    /// A source over a fixed vector: every worker that runs it emits all of it (make it
    /// non-parallel to have worker 0 alone emit it).
    pub struct VecSource<R>(pub std::vec::IntoIter<R>);
    impl<R: 'static> SourceReader<R> for VecSource<R> {
        fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
            out.extend(self.0.by_ref().take(max));
            Ok(if self.0.len() == 0 { SourceStatus::Done } else { SourceStatus::More })
        }
    }
}
