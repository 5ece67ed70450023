//! What a bounded job emits: the execution mode (Flink's `RuntimeExecutionMode`) and
//! the end-of-input rules where ferroflow's defaults and Flink's differ, each a named
//! option (the table in `docs/semantics.md`). The plan carries them; operators read
//! them from [`crate::operators::OpEnv::semantics`], resolved ([`Plan::semantics`]).
//!
//! # Batch mode (Flink's rules, on a bounded job)
//!
//! - A rolling reduce (and `sum`, `min`, `max`, `min_by`, `max_by`) emits one record
//!   per key when its input ends, its final value, at timestamp `i64::MAX`.
//! - Watermarks are ignored while the input runs: event-time windows and timers fire
//!   at its end only (the watermark jumps to +infinity), so no record is late.
//! - Processing-time timers (windows, process functions) wait for the end and fire
//!   there, as Flink's batch mode fires every timer at the end of its input.
//! - A keyed process function takes its records grouped by key (and by timestamp
//!   within a key), each key's timers firing after its records.
//! - What a keyed operator emits at the end comes key by key, in the order of the
//!   keys' canonical encodings (`Key::bytes`), on each worker.
//!
//! [`Plan::semantics`]: crate::plan::Plan::semantics

use crate::windows::event_time::EndOfInput;

/// How a job runs (Flink's `RuntimeExecutionMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuntimeMode {
    /// Results as records arrive (a rolling reduce emits for every record).
    #[default]
    Streaming,
    /// Final results only, for a bounded job (see the module docs).
    Batch,
    /// Batch when every source is bounded, else streaming.
    Automatic,
}

/// The job's execution mode and end-of-input options. [`Semantics::default`] is
/// ferroflow's own; [`Semantics::flink`] is Flink's, which the `pyflink` names use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semantics {
    pub mode: RuntimeMode,
    /// At the end of a bounded input, a window holding records no trigger has fired
    /// yet (a count window's partial count, a global window) fires once more.
    /// Flink: no, they are dropped.
    pub fire_partial_windows_at_end: bool,
    /// At the end of a bounded input, pending processing-time timers fire (processing-
    /// time windows, process functions' timers). Flink's streaming mode: no, it stops
    /// its timer service first. In batch mode they always fire (Flink's batch rule).
    pub fire_processing_timers_at_end: bool,
}

impl Default for Semantics {
    fn default() -> Self {
        Semantics {
            mode: RuntimeMode::Streaming,
            fire_partial_windows_at_end: true,
            fire_processing_timers_at_end: true,
        }
    }
}

impl Semantics {
    /// Flink's end-of-input rules, in streaming mode.
    pub fn flink() -> Self {
        Semantics {
            mode: RuntimeMode::Streaming,
            fire_partial_windows_at_end: false,
            fire_processing_timers_at_end: false,
        }
    }

    /// Whether the job runs in batch mode (once resolved: `Automatic` counts as not).
    pub fn batch(&self) -> bool {
        self.mode == RuntimeMode::Batch
    }

    /// Whether processing-time timers pending at the end of input fire.
    pub fn processing_timers_at_end(&self) -> bool {
        self.fire_processing_timers_at_end || self.batch()
    }

    /// What a window core does at the end of input. Firing partial windows fires
    /// every window with unfired records, processing-time ones included.
    pub fn window_end_of_input(&self) -> EndOfInput {
        match (self.fire_partial_windows_at_end, self.processing_timers_at_end()) {
            (true, _) => EndOfInput::FirePending,
            (false, true) => EndOfInput::Timers,
            (false, false) => EndOfInput::Flink,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_end_of_input_follows_the_options_and_the_mode() {
        let ferroflow = Semantics::default();
        assert_eq!(ferroflow.window_end_of_input(), EndOfInput::FirePending);
        assert_eq!(Semantics { mode: RuntimeMode::Batch, ..ferroflow }.window_end_of_input(), EndOfInput::FirePending);
        let flink = Semantics::flink();
        assert_eq!(flink.window_end_of_input(), EndOfInput::Flink);
        assert!(!flink.processing_timers_at_end());
        let flink_batch = Semantics { mode: RuntimeMode::Batch, ..flink };
        assert_eq!(flink_batch.window_end_of_input(), EndOfInput::Timers, "batch fires every timer at the end");
        assert!(flink_batch.processing_timers_at_end());
        let timers_only = Semantics { fire_partial_windows_at_end: false, ..ferroflow };
        assert_eq!(timers_only.window_end_of_input(), EndOfInput::Timers);
    }
}
