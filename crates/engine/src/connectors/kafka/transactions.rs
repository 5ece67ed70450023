//! The exactly-once Kafka sink: a Kafka transaction per checkpoint.

use super::sink::KafkaSinkSpec;
use crate::error::{UdfError, UdfResult};
use crate::functions::{Sink, WorkerContext};

/// Not built yet: refuses, so a job never believes it writes exactly once.
pub fn exactly_once_sink<R: 'static>(_spec: KafkaSinkSpec<R>, _ctx: &WorkerContext) -> UdfResult<Box<dyn Sink<R>>> {
    Err(UdfError::new(
        "the Kafka sink's DeliveryGuarantee.EXACTLY_ONCE is not available yet; use AT_LEAST_ONCE",
    ))
}
