//! Kafka: a source whose splits are the topics' partitions, and a sink, on librdkafka
//! (the `rdkafka` crate, polled from the worker threads: no async runtime).
//!
//! The source ([`source::kafka_source`]) spreads partitions over all readers of all
//! processes by a fixed rule ([`partition_owner`]), keeps each partition's next offset in
//! checkpoints (restored at any parallelism through [`crate::connectors::splits`]), commits
//! offsets back to the consumer group when a checkpoint completes, and makes a watermark
//! per partition. The sink ([`sink::kafka_sink`]) writes at least once (an idempotent
//! producer flushed at every checkpoint) or exactly once (a transaction per checkpoint).
//!
//! The engine stays generic over the record type: the binding supplies how a message
//! becomes records ([`Decode`]) and a record a message ([`Encode`]).

pub mod client;
pub mod sink;
pub mod source;
pub mod transactions;

use std::sync::Arc;

use crate::error::UdfResult;

/// One message as read from a partition.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The message's timestamp (ms), if it has one.
    pub timestamp: Option<i64>,
}

/// Turns one message into zero or more records (a deserializer). An `Err` is a message
/// that does not deserialize: the source fails naming topic, partition and offset, or
/// skips and counts it when asked to.
pub trait Decode<R>: 'static {
    fn decode(&mut self, message: &Message<'_>, out: &mut Vec<R>) -> Result<(), String>;
}

/// A message to write: where to (the sink's default topic if `topic` is `None`), and
/// what.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutMessage {
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
}

/// Turns a batch of records into messages (a serializer), appended to `out`.
pub trait Encode<R>: 'static {
    fn encode(&mut self, records: &[R], out: &mut Vec<OutMessage>) -> UdfResult<()>;
}

/// Makes one decoder per reader (worker), as the binding's user functions are per worker.
pub type MakeDecode<R> = Arc<dyn Fn() -> UdfResult<Box<dyn Decode<R>>> + Send + Sync>;
/// Makes one encoder per sink instance.
pub type MakeEncode<R> = Arc<dyn Fn() -> UdfResult<Box<dyn Encode<R>>> + Send + Sync>;

/// The reader (`0..readers`) that reads `partition` of `topic`: a topic's partitions go
/// to consecutive readers from a start that depends on the topic, so one topic's
/// partitions are spread evenly and several topics' do not all start at reader 0
/// (Flink's rule, with the pinned hash of the topic's name: every process agrees).
pub fn partition_owner(topic: &str, partition: i32, readers: usize) -> usize {
    let readers = readers.max(1) as u64;
    let start = crate::key::stable_hash(topic.as_bytes()) % readers;
    ((start + partition.max(0) as u64) % readers) as usize
}

/// A partition's name as a split (`topic` and partition number, which cannot be
/// confused: Kafka's topic names have no `\0`).
pub fn split_name(topic: &str, partition: i32) -> Vec<u8> {
    let mut name = topic.as_bytes().to_vec();
    name.push(0);
    name.extend_from_slice(&partition.to_le_bytes());
    name
}

/// The topic and partition of a [`split_name`].
pub fn parse_split_name(name: &[u8]) -> Option<(String, i32)> {
    let cut = name.iter().position(|&b| b == 0)?;
    let partition = i32::from_le_bytes(name.get(cut + 1..)?.try_into().ok()?);
    Some((String::from_utf8(name[..cut].to_vec()).ok()?, partition))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topics_partitions_spread_evenly_over_the_readers() {
        for readers in 1..7 {
            for topic in ["orders", "clicks", "t"] {
                let mut counts = vec![0; readers];
                for p in 0..(3 * readers as i32) {
                    counts[partition_owner(topic, p, readers)] += 1;
                }
                assert!(counts.iter().all(|&c| c == 3), "{topic} at {readers}: {counts:?}");
            }
        }
    }

    #[test]
    fn split_names_round_trip() {
        for (t, p) in [("a", 0), ("orders.v2-x", 17), ("", i32::MAX)] {
            assert_eq!(parse_split_name(&split_name(t, p)), Some((t.to_string(), p)));
        }
        assert_eq!(parse_split_name(b"no-separator"), None);
    }
}
