//! The Kafka sink: one librdkafka producer per sink instance.
//!
//! - At least once: an idempotent producer (no duplicates from its own retries); every
//!   checkpoint waits until all that was sent is acknowledged, so a completed checkpoint
//!   never stands for a message the brokers do not have. After a restore, what was sent
//!   between the checkpoint and the failure is sent again.
//! - Exactly once: see [`super::transactions`].

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::client::{self, Properties};
use super::{Encode, MakeEncode, OutMessage};
use crate::error::{UdfError, UdfResult};
use crate::functions::{Sink, SinkFactory};

/// Flink's `DeliveryGuarantee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Checkpoints do not wait for acknowledgements (the end of input does).
    None,
    AtLeastOnce,
    ExactlyOnce,
}

/// Everything a Kafka sink is built from.
pub struct KafkaSinkSpec<R> {
    pub bootstrap: String,
    /// Where messages whose encoder names no topic go.
    pub topic: Option<String>,
    pub properties: Properties,
    pub delivery: Delivery,
    /// Exactly once: the prefix of the transactional ids (Flink's
    /// `set_transactional_id_prefix`).
    pub transactional_id_prefix: Option<String>,
    pub encode: MakeEncode<R>,
}

impl<R> Clone for KafkaSinkSpec<R> {
    fn clone(&self) -> Self {
        KafkaSinkSpec {
            bootstrap: self.bootstrap.clone(),
            topic: self.topic.clone(),
            properties: self.properties.clone(),
            delivery: self.delivery,
            transactional_id_prefix: self.transactional_id_prefix.clone(),
            encode: self.encode.clone(),
        }
    }
}

/// The sink: messages go out as they come; acknowledgements are awaited at checkpoints
/// and at the end.
pub fn kafka_sink<R: 'static>(spec: KafkaSinkSpec<R>) -> SinkFactory<R> {
    Arc::new(move |ctx| {
        if spec.delivery == Delivery::ExactlyOnce {
            if spec.properties.get(super::transactions::OPT_IN) != Some(super::transactions::OPT_IN_VALUE) {
                return Err(UdfError::new(super::transactions::REFUSAL));
            }
            return super::transactions::exactly_once_sink(spec.clone(), ctx);
        }
        let producer = Sender::open(&spec, &[("enable.idempotence", "true"), ("linger.ms", "5")])?;
        Ok(Box::new(KafkaSink { sender: producer, encode: (spec.encode)()?, spec: spec.clone(), messages: Vec::new() })
            as Box<dyn Sink<R>>)
    })
}

/// What the producer's delivery reports said, read by the worker that sends.
#[derive(Default)]
pub struct Deliveries {
    /// The first message the brokers refused for good.
    failed: Mutex<Option<String>>,
    client: client::Context,
}

impl ClientContext for Deliveries {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.client.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }
}

impl AsRef<client::Context> for Deliveries {
    fn as_ref(&self) -> &client::Context {
        &self.client
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            if let Ok(mut failed) = self.failed.lock() {
                if failed.is_none() {
                    use rdkafka::message::Message as _;
                    *failed = Some(format!("a message to topic {:?} was not delivered: {e}", m.topic()));
                }
            }
        }
    }
}

/// A producer with the sink's error reporting.
pub struct Sender {
    pub producer: BaseProducer<Deliveries>,
    pub bootstrap: String,
    pub topic: Option<String>,
    pub api_timeout: Duration,
}

impl Sender {
    /// A producer for `spec` with `defaults` (unless the user set them).
    pub fn open<R>(spec: &KafkaSinkSpec<R>, defaults: &[(&str, &str)]) -> UdfResult<Self> {
        Sender::open_logging(spec, defaults, None)
    }

    /// [`Sender::open`], with librdkafka's log at `level` if given.
    pub fn open_logging<R>(
        spec: &KafkaSinkSpec<R>,
        defaults: &[(&str, &str)],
        level: Option<rdkafka::config::RDKafkaLogLevel>,
    ) -> UdfResult<Self> {
        let api_timeout = spec.properties.api_timeout().map_err(UdfError::new)?;
        let mut config = client::config(&spec.bootstrap, defaults, &spec.properties);
        if let Some(level) = level {
            config.set_log_level(level);
        }
        let producer: BaseProducer<Deliveries> =
            config.create_with_context(Deliveries::default()).map_err(|e| UdfError::new(client::config_error(e)))?;
        let sender = Sender { producer, bootstrap: spec.bootstrap.clone(), topic: spec.topic.clone(), api_timeout };
        // Fail at start, not at the first record, if no broker answers.
        client::producer_metadata(&sender.producer, &spec.bootstrap, api_timeout).map_err(UdfError::new)?;
        Ok(sender)
    }

    fn fail(&self, message: impl std::fmt::Display) -> UdfError {
        UdfError::new(format!("Kafka sink ({}): {message}", self.bootstrap))
    }

    /// Queues `messages` (taken), serving delivery reports while librdkafka's queue is full.
    pub fn send(&self, messages: &mut Vec<OutMessage>) -> UdfResult<()> {
        for m in messages.drain(..) {
            let topic = match m.topic.as_deref().or(self.topic.as_deref()) {
                Some(t) => t.to_string(),
                None => {
                    return Err(self.fail(
                        "a record names no topic and the sink has none: set_topic(...) on the record serializer",
                    ))
                }
            };
            let mut record = BaseRecord::<[u8], [u8], ()>::with_opaque_to(&topic, ());
            if let Some(k) = m.key.as_deref() {
                record = record.key(k);
            }
            if let Some(v) = m.value.as_deref() {
                record = record.payload(v);
            }
            if let Some(p) = m.partition {
                record = record.partition(p);
            }
            if let Some(t) = m.timestamp {
                record = record.timestamp(t);
            }
            let mut record = record;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(self.fail(format!("topic {topic:?}: {e}"))),
                }
            }
        }
        self.check()
    }

    /// The first delivery that failed, as the sink's error.
    pub fn check(&self) -> UdfResult<()> {
        self.producer.poll(Duration::ZERO);
        let failed = self.producer.context().failed.lock().ok().and_then(|f| f.clone());
        match failed {
            Some(f) => Err(self.fail(f)),
            None => Ok(()),
        }
    }

    /// Waits until everything sent is acknowledged (or failed), giving up once `abort`
    /// is set; a broker that does not acknowledge within `message.timeout.ms` fails
    /// the messages, and so the job.
    pub fn wait_acknowledged(&self, abort: Option<&AtomicBool>) -> UdfResult<()> {
        let started = Instant::now();
        while self.producer.in_flight_count() > 0 {
            if abort.is_some_and(|a| a.load(std::sync::atomic::Ordering::Relaxed)) {
                return Ok(());
            }
            match self.producer.flush(Duration::from_millis(100)) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {}
                Err(e) => return Err(self.fail(e)),
            }
            self.check()?;
            let _ = started;
        }
        self.check()
    }
}

struct KafkaSink<R> {
    sender: Sender,
    encode: Box<dyn Encode<R>>,
    spec: KafkaSinkSpec<R>,
    messages: Vec<OutMessage>,
}

impl<R: 'static> Sink<R> for KafkaSink<R> {
    fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()> {
        self.encode.encode(batch, &mut self.messages)?;
        batch.clear();
        self.sender.send(&mut self.messages)
    }

    fn flush(&mut self, _abort: &AtomicBool) -> UdfResult<()> {
        self.sender.check()
    }

    /// The end of input waits for every acknowledgement, whatever the guarantee (as
    /// Flink's writer flushes at the end): a finished job has written its output.
    fn close(&mut self) -> UdfResult<()> {
        self.sender.wait_acknowledged(None)
    }

    /// At least once: all sent so far is acknowledged before the checkpoint completes.
    fn pre_commit(&mut self, _id: u64, _out: &mut Vec<u8>) -> UdfResult<()> {
        if self.spec.delivery != Delivery::None {
            self.sender.wait_acknowledged(None)?;
        }
        Ok(())
    }
}
