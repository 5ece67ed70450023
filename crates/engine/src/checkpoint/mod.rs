//! Checkpoints: consistent snapshots of a running job's state, written to disk so that a
//! job killed at any moment restarts from its last completed checkpoint (issue 13).
//!
//! This module holds the parts that know nothing of the dataflow, pure Rust:
//! - [`state_io`]: how an operator writes its state into the bytes of one section and
//!   reads it back, bounds-checked (keys, primitives, record batches through
//!   [`crate::Record::encode_batch`]);
//! - [`mod@format`]: the part file one worker writes per checkpoint: a header, one
//!   checksummed section per stateful plan node, an index;
//! - [`storage`]: the storage directory's layout, atomic commits, the `_MANIFEST` that
//!   makes a checkpoint complete, finding the newest whole checkpoint (falling back past
//!   damaged ones), retention, and the writable probe;
//! - [`restore`]: what an operator restores from, and which keys are its own after a
//!   change of parallelism;
//! - [`settings`]: what the job asked for (interval, storage directory, retention).
//!
//! Later steps add here the per-worker tracker of which operators have delivered their
//! section, the coordinator that triggers checkpoints and the control dataflow it talks
//! over, the writer thread, and restore (loading a checkpoint, checking it belongs to
//! this plan, rescaling). Operators snapshot and restore through hooks in the driver.

pub mod coordinator;
pub mod format;
pub mod restore;
pub mod settings;
pub mod state_io;
pub mod storage;
pub mod tracker;
