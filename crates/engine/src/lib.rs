//! The ferroflow engine: a stream processor on Timely Dataflow, with no Python in it.
//!
//! A job is a [`plan::Plan`]: sources, stateless steps, keyed operators, windows,
//! iterations and sinks, with user functions behind the traits in [`functions`].
//! [`execute::start`] runs it on timely workers. The engine is generic over the
//! record type (see [`record::Record`]); the Python binding plugs in Python objects,
//! the tests plug in plain Rust values.

pub mod checkpoint;
pub mod clock;
pub mod cluster;
pub mod codec;
pub mod connectors;
pub mod control;
pub mod dataflow;
pub mod error;
pub mod exchange;
pub mod execute;
pub mod functions;
pub mod key;
pub mod operators;
pub mod plan;
pub mod process;
pub mod record;
pub mod rolling;
pub mod semantics;
pub mod state;
#[cfg(test)]
mod temp_dir;
pub mod time;
pub mod timers;
pub mod watermarks;
pub mod windows;

pub use error::{ErrorKind, JobError, UdfError, UdfResult, BUG_REPORT};
pub use execute::{run, start, ExecConfig, JobSummary, Running};
pub use plan::{ApplyFactory, NodeKind, Partitioning, Plan, WatermarkSpec, WindowFunction, WindowSpec};
pub use record::Record;
pub use semantics::{RuntimeMode, Semantics};
