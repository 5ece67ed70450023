//! librdkafka clients as the source and sink need them: configured from the bootstrap
//! servers and the user's properties, with errors that name the servers and the fix.

use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;

/// How long the clients wait for the brokers at start (metadata, offsets) before the
/// job fails naming the bootstrap servers; `default.api.timeout.ms` sets it (Kafka's
/// Java clients' name for it).
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);

/// Properties of Flink's connector or of Kafka's Java clients that librdkafka does not
/// know: read by ferroflow (see where each is used) or, for the Java clients'
/// class names, meaningless here; never passed to librdkafka, which would refuse them.
const NOT_FOR_LIBRDKAFKA: &[&str] = &[
    "default.api.timeout.ms",
    "partition.discovery.interval.ms",
    "commit.offsets.on.checkpoint",
    "client.id.prefix",
    "register.consumer.metrics",
    "key.deserializer",
    "value.deserializer",
    "key.serializer",
    "value.serializer",
    "flink.partition-discovery.interval-millis",
    "ferroflow.exactly-once",
];

/// The user's properties, in the order given, as the connector reads them.
#[derive(Clone, Debug, Default)]
pub struct Properties(pub Vec<(String, String)>);

impl Properties {
    /// The value last given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `default.api.timeout.ms`, or [`DEFAULT_API_TIMEOUT`].
    pub fn api_timeout(&self) -> Result<Duration, String> {
        self.millis("default.api.timeout.ms").map(|t| t.unwrap_or(DEFAULT_API_TIMEOUT))
    }

    /// A property holding milliseconds; `Err` names it when it is not a number.
    pub fn millis(&self, name: &str) -> Result<Option<Duration>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(|ms| Some(Duration::from_millis(ms)))
                .map_err(|_| format!("Kafka property {name}={v:?} is not a number of milliseconds")),
        }
    }

    /// A boolean property (`true`/`false`); `Err` names it otherwise.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v == "true" => Ok(Some(true)),
            Some(v) if v == "false" => Ok(Some(false)),
            Some(v) => Err(format!("Kafka property {name}={v:?} is neither true nor false")),
        }
    }
}

/// A librdkafka configuration: `bootstrap.servers`, then `defaults` unless the user
/// set them, then the user's properties (those librdkafka knows).
pub fn config(bootstrap: &str, defaults: &[(&str, &str)], properties: &Properties) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config.set_log_level(RDKafkaLogLevel::Error);
    for (k, v) in defaults {
        if properties.get(k).is_none() {
            config.set(*k, *v);
        }
    }
    for (k, v) in &properties.0 {
        if !NOT_FOR_LIBRDKAFKA.contains(&k.as_str()) {
            config.set(k, v);
        }
    }
    config
}

/// librdkafka's refusal of a configuration, in one line naming the property.
pub fn config_error(e: KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, description, key, value) if !key.is_empty() => {
            format!("Kafka property {key}={value:?}: {description}")
        }
        e => format!("Kafka client configuration: {e}"),
    }
}

/// The client context: librdkafka's own log lines go nowhere but into errors we raise,
/// except for the few that say why nothing connects, which are kept for that error.
#[derive(Default)]
pub struct Context {
    last_error: std::sync::Mutex<Option<String>>,
    /// The producer id and epoch a transactional producer was given (librdkafka tells
    /// it only in its `eos` debug log, as "Acquired PID{Id:..,Epoch:..}").
    producer_id: std::sync::Mutex<Option<(i64, i16)>>,
}

impl Context {
    /// The producer id and epoch last acquired (needs `debug=eos`).
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        self.producer_id.lock().ok().and_then(|p| *p)
    }

    /// The last error librdkafka reported on its own (a refused connection, a failed
    /// name lookup), if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl ClientContext for Context {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "GETPID" {
            if let Some(pid) = parse_acquired_pid(log_message) {
                if let Ok(mut p) = self.producer_id.lock() {
                    *p = Some(pid);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(if reason.is_empty() { error.to_string() } else { reason.to_string() });
        }
    }
}

impl ConsumerContext for Context {}

/// The cluster's metadata (every topic, or only `topic`), waiting at most `timeout`; an
/// error says which servers did not answer and how to start one to try.
pub fn metadata(
    consumer: &BaseConsumer<Context>,
    bootstrap: &str,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<Metadata, String> {
    consumer.fetch_metadata(topic, timeout).map_err(|e| unreachable_brokers(bootstrap, timeout, consumer.context(), e))
}

/// A producer's first contact with the brokers: the cluster's metadata, or the error of
/// [`metadata`].
pub fn producer_metadata<C: rdkafka::producer::ProducerContext + AsRef<Context>>(
    producer: &rdkafka::producer::BaseProducer<C>,
    bootstrap: &str,
    timeout: Duration,
) -> Result<(), String> {
    use rdkafka::producer::Producer;
    let client = producer.client();
    client
        .fetch_metadata(None, timeout)
        .map(|_| ())
        .map_err(|e| unreachable_brokers(bootstrap, timeout, AsRef::<Context>::as_ref(&**client.context()), e))
}

/// The one-line error of brokers that did not answer in time.
pub fn unreachable_brokers(bootstrap: &str, timeout: Duration, context: &Context, e: KafkaError) -> String {
    let why = context.last_error().unwrap_or_else(|| e.to_string());
    format!(
        "Kafka: no broker at {bootstrap} answered within {:.0} s ({why}); is the broker running and are the \
         bootstrap servers right? (`./dev kafka` starts one on 127.0.0.1:9092 to try; the property \
         default.api.timeout.ms sets the wait)",
        timeout.as_secs_f64()
    )
}

/// The id and epoch in librdkafka's "[thrd:main]: Acquired PID{Id:1000,Epoch:0}
/// (previous ...)".
pub fn parse_acquired_pid(line: &str) -> Option<(i64, i16)> {
    const ACQUIRED: &str = "Acquired PID{Id:";
    let rest = &line[line.find(ACQUIRED)? + ACQUIRED.len()..];
    let (id, rest) = rest.split_once(",Epoch:")?;
    let (epoch, _) = rest.split_once('}')?;
    Some((id.parse().ok()?, epoch.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acquired_producer_id_is_read_from_librdkafkas_log_line() {
        assert_eq!(parse_acquired_pid("Acquired PID{Id:1000,Epoch:0}"), Some((1000, 0)));
        assert_eq!(
            parse_acquired_pid("[thrd:main]: Acquired PID{Id:7,Epoch:3} (previous PID{Id:7,Epoch:2})"),
            Some((7, 3))
        );
        assert_eq!(parse_acquired_pid("Ignoring InitProduceId response (PID{Id:1,Epoch:0})"), None);
    }

    #[test]
    fn java_only_properties_stay_out_of_librdkafkas_configuration() {
        let props =
            Properties(vec![("default.api.timeout.ms".into(), "2000".into()), ("linger.ms".into(), "7".into())]);
        let c = config("h:1", &[("linger.ms", "5"), ("acks", "all")], &props);
        assert_eq!(c.get("default.api.timeout.ms"), None);
        assert_eq!(c.get("linger.ms"), Some("7"), "the user's value wins over the default");
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(props.api_timeout().unwrap(), Duration::from_millis(2000));
        assert!(Properties(vec![("default.api.timeout.ms".into(), "soon".into())]).api_timeout().is_err());
    }
}
