//! The Kafka source: each reader consumes the partitions it owns ([`partition_owner`])
//! with one librdkafka consumer, assigned (not subscribed: the assignment is ours, so
//! checkpoints hold it), and polled without blocking from the worker thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use super::client::{self, Context, Properties};
use super::{parse_split_name, partition_owner, split_name, Decode, MakeDecode, Message};
use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateReader, StateWriter};
use crate::connectors::splits::{owned_splits, write_splits};
use crate::error::{UdfError, UdfResult};
use crate::functions::{
    Checkpointing, SourceFactory, SourceReader, SourceStatus, TimestampAssigner, TimestampFactory, WorkerContext,
};
use crate::plan::WatermarkSpec;
use crate::record::Record;
use crate::time::{FINISHED, IDLE, NO_TIME};
use crate::watermarks::WatermarkGenerator;

/// Which topics to read.
#[derive(Clone)]
pub enum Topics {
    /// These topics; each must exist.
    Named(Vec<String>),
    /// Every topic whose name the predicate takes (Flink's topic pattern), including
    /// topics created later (see [`KafkaSourceSpec::discovery`]).
    Matching(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

/// Where a partition starts when no checkpoint says (Flink's `OffsetsInitializer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starting {
    Earliest,
    Latest,
    /// The group's committed offset; where there is none, `reset`'s (earliest or latest).
    Committed {
        reset_to_earliest: bool,
    },
    /// The first message with a timestamp at or after this (ms); the end if none.
    Timestamp(i64),
}

/// Where a bounded source stops (each partition on its own): before the first offset
/// not below the stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopping {
    /// The partition's end when the reader started.
    Latest,
    /// The first message with a timestamp after this (ms).
    Timestamp(i64),
}

/// Event time from inside the source, per partition (Flink's per-split watermarks).
pub struct SourceWatermarks<R> {
    pub spec: WatermarkSpec,
    pub idleness_ms: Option<i64>,
    /// Makes, per reader, the user's timestamp assigner (it is handed the message's
    /// timestamp as the previous one); `None`: the messages' own timestamps.
    pub assigner: Option<TimestampFactory<R>>,
}

impl<R> Clone for SourceWatermarks<R> {
    fn clone(&self) -> Self {
        SourceWatermarks { spec: self.spec, idleness_ms: self.idleness_ms, assigner: self.assigner.clone() }
    }
}

/// Everything a Kafka source is built from.
pub struct KafkaSourceSpec<R> {
    pub bootstrap: String,
    pub topics: Topics,
    /// The consumer group offsets are committed to on checkpoints (and read from by
    /// [`Starting::Committed`]); `None`: nothing is committed.
    pub group_id: Option<String>,
    pub starting: Starting,
    /// `Some`: bounded, the source ends once every partition reached its stop.
    pub stopping: Option<Stopping>,
    pub properties: Properties,
    /// Skip (and count) messages that do not deserialize instead of failing.
    pub skip_malformed: bool,
    pub decode: MakeDecode<R>,
    pub watermarks: Option<SourceWatermarks<R>>,
}

impl<R> Clone for KafkaSourceSpec<R> {
    fn clone(&self) -> Self {
        KafkaSourceSpec {
            bootstrap: self.bootstrap.clone(),
            topics: self.topics.clone(),
            group_id: self.group_id.clone(),
            starting: self.starting,
            stopping: self.stopping,
            properties: self.properties.clone(),
            skip_malformed: self.skip_malformed,
            decode: self.decode.clone(),
            watermarks: self.watermarks.clone(),
        }
    }
}

impl<R> KafkaSourceSpec<R> {
    /// How often an unbounded source looks for new partitions and topics
    /// (`partition.discovery.interval.ms`, Flink's default of 5 minutes; 0: never).
    pub fn discovery(&self) -> Result<Option<Duration>, String> {
        if self.stopping.is_some() {
            return Ok(None);
        }
        let every = self.properties.millis("partition.discovery.interval.ms")?.unwrap_or(Duration::from_secs(300));
        Ok((!every.is_zero()).then_some(every))
    }
}

/// The source: each reader consumes its partitions of `spec`'s topics.
pub fn kafka_source<R: Record>(spec: KafkaSourceSpec<R>) -> SourceFactory<R> {
    Arc::new(move |ctx| {
        let reader = KafkaReader::open(spec.clone(), ctx)?;
        Ok(Box::new(reader) as Box<dyn SourceReader<R>>)
    })
}

/// One partition a reader consumes.
struct Partition {
    topic: String,
    partition: i32,
    /// The offset of the next message to read (`None`: not known yet; the start offset
    /// librdkafka resolves, e.g. the end).
    next: Option<i64>,
    /// Bounded: the offset it stops before, once known.
    stop: Option<i64>,
    /// Started at a timestamp: messages before the first one at or after it are
    /// skipped (the brokers' offset for the time is where the search starts; a broker
    /// whose time index answers 0 is so still read right).
    from_ts: Option<i64>,
    /// Bounded at a timestamp: the partition ends at its first message after it.
    until_ts: Option<i64>,
    watermark: Option<WatermarkGenerator>,
    /// With idleness: the partition's end when it was assigned. It cannot go idle
    /// before it has read that far (a slow first fetch is not a quiet partition).
    backlog_end: Option<i64>,
    done: bool,
}

impl Partition {
    /// The partition has ended: nothing more is read from it and its watermark holds
    /// nothing back.
    fn finish(&mut self) {
        self.done = true;
        if let Some(w) = self.watermark.as_mut() {
            w.finish();
        }
    }

    /// Whether it has read what it had when assigned (an unknown start counts as
    /// caught up).
    fn caught_up(&self) -> bool {
        match (self.next, self.backlog_end) {
            (Some(next), Some(end)) => next >= end,
            _ => true,
        }
    }
}

pub struct KafkaReader<R> {
    spec: KafkaSourceSpec<R>,
    consumer: BaseConsumer<Context>,
    reading: Reading<R>,
    index: usize,
    peers: usize,
    /// Each partition's next offset at the marks not yet committed to the group, by
    /// segment.
    marked: BTreeMap<u64, Vec<(String, i32, i64)>>,
    /// At the last mark: every partition's next offset and highest timestamp.
    snapshot: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether to commit offsets when checkpoints complete.
    commit_on_checkpoint: bool,
    next_discovery: Option<Instant>,
    discovery: Option<Duration>,
    api_timeout: Duration,
    started: bool,
    restored: bool,
}

impl<R: Record> KafkaReader<R> {
    fn open(spec: KafkaSourceSpec<R>, ctx: &WorkerContext) -> UdfResult<Self> {
        let (index, peers) = (ctx.index, ctx.peers);
        let api_timeout = spec.properties.api_timeout().map_err(UdfError::new)?;
        let discovery = spec.discovery().map_err(UdfError::new)?;
        let commit_on_checkpoint =
            spec.properties.flag("commit.offsets.on.checkpoint").map_err(UdfError::new)?.unwrap_or(true)
                && spec.group_id.is_some()
                && ctx.checkpointing != Checkpointing::Off;
        let group = spec.group_id.clone().unwrap_or_else(|| "ferroflow".to_string());
        let config = client::config(
            &spec.bootstrap,
            &[
                ("group.id", &group),
                // Offsets are ours: kept in checkpoints, committed when they complete.
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                // Kafka's (and Flink's) default; librdkafka's own is read_committed.
                ("isolation.level", "read_uncommitted"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
            ],
            &spec.properties,
        );
        let consumer: BaseConsumer<Context> =
            config.create_with_context(Context::default()).map_err(|e| UdfError::new(client::config_error(e)))?;
        let decode = (spec.decode)()?;
        let skip_malformed = spec.skip_malformed;
        let assigner = match spec.watermarks.as_ref().and_then(|w| w.assigner.as_ref()) {
            Some(make) => Some(make(ctx)?),
            None => None,
        };
        Ok(KafkaReader {
            spec,
            reading: Reading {
                decode,
                assigner,
                partitions: BTreeMap::new(),
                reassign: false,
                skip_malformed,
                skipped: 0,
            },
            consumer,
            index,
            peers,
            marked: BTreeMap::new(),
            snapshot: Vec::new(),
            commit_on_checkpoint,
            next_discovery: None,
            discovery,
            api_timeout,
            started: false,
            restored: false,
        })
    }

    fn fail(&self, message: String) -> UdfError {
        UdfError::new(format!("Kafka source ({}): {message}", self.spec.bootstrap))
    }

    /// The partitions of the topics read, from the brokers' metadata.
    fn discover(&self) -> UdfResult<Vec<(String, i32)>> {
        let boot = &self.spec.bootstrap;
        let mut found = Vec::new();
        match &self.spec.topics {
            Topics::Named(names) => {
                for topic in names {
                    let md =
                        client::metadata(&self.consumer, boot, Some(topic), self.api_timeout).map_err(UdfError::new)?;
                    for t in md.topics() {
                        if let Some(e) = t.error() {
                            let code = RDKafkaErrorCode::from(e);
                            return Err(if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                                self.fail(format!(
                                    "topic {topic:?} does not exist; create it first (or let the broker \
                                     create topics on first use)"
                                ))
                            } else {
                                self.fail(format!("topic {topic:?}: {code}"))
                            });
                        }
                        found.extend(t.partitions().iter().map(|p| (t.name().to_string(), p.id())));
                    }
                }
            }
            Topics::Matching(take) => {
                let md = client::metadata(&self.consumer, boot, None, self.api_timeout).map_err(UdfError::new)?;
                for t in md.topics() {
                    if t.error().is_none() && !t.name().starts_with("__") && take(t.name()) {
                        found.extend(t.partitions().iter().map(|p| (t.name().to_string(), p.id())));
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// Takes the owned partitions among `found` that it does not read yet, starting at
    /// `starting` (new partitions found later start at the earliest offset, as Flink's).
    fn add_partitions(&mut self, found: Vec<(String, i32)>, starting: Starting) -> UdfResult<()> {
        let new: Vec<(String, i32)> = found
            .into_iter()
            .filter(|(t, p)| partition_owner(t, *p, self.peers) == self.index)
            .filter(|k| !self.reading.partitions.contains_key(k))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let starts = self.start_offsets(&new, starting)?;
        let stops = match self.spec.stopping {
            Some(stopping) => Some(self.stop_offsets(&new, stopping)?),
            None => None,
        };
        let now = now_ms();
        let from_ts = match starting {
            Starting::Timestamp(t) => Some(t),
            _ => None,
        };
        let until_ts = self.until_ts();
        for (i, (topic, partition)) in new.into_iter().enumerate() {
            let watermark = self.spec.watermarks.as_ref().map(|w| WatermarkGenerator::new(w.spec, w.idleness_ms, now));
            let stop = stops.as_ref().map(|s| s[i]);
            // The partition's end, where just fetched: a stop is it, and so is a start
            // at the latest offset (see `note_backlog_ends` for the others).
            let backlog_end = stop.or(if starting == Starting::Latest { starts[i] } else { None });
            self.reading.partitions.insert(
                (topic.clone(), partition),
                Partition {
                    topic,
                    partition,
                    next: starts[i],
                    stop,
                    from_ts,
                    until_ts,
                    watermark,
                    backlog_end,
                    done: false,
                },
            );
        }
        self.reading.reassign = true;
        Ok(())
    }

    /// The offsets `starting` gives the partitions (`None`: librdkafka resolves it).
    fn start_offsets(&self, parts: &[(String, i32)], starting: Starting) -> UdfResult<Vec<Option<i64>>> {
        let boot = &self.spec.bootstrap;
        match starting {
            Starting::Earliest | Starting::Latest => parts
                .iter()
                .map(|(t, p)| {
                    let (low, high) =
                        self.consumer.fetch_watermarks(t, *p, self.api_timeout).map_err(|e| self.unreachable(e))?;
                    Ok(Some(if starting == Starting::Earliest { low } else { high }))
                })
                .collect(),
            Starting::Committed { reset_to_earliest } => {
                if self.spec.group_id.is_none() {
                    return Err(self
                        .fail("committed offsets are those of a consumer group: set_group_id(...) is needed".into()));
                }
                let mut tpl = TopicPartitionList::new();
                for (t, p) in parts {
                    tpl.add_partition(t, *p);
                }
                let got = self.consumer.committed_offsets(tpl, self.api_timeout).map_err(|e| self.unreachable(e))?;
                let committed: HashMap<(String, i32), Offset> =
                    got.elements().iter().map(|e| ((e.topic().to_string(), e.partition()), e.offset())).collect();
                let reset = if reset_to_earliest { Starting::Earliest } else { Starting::Latest };
                parts
                    .iter()
                    .map(|k| match committed.get(k) {
                        Some(Offset::Offset(o)) if *o >= 0 => Ok(Some(*o)),
                        _ => Ok(self.start_offsets(std::slice::from_ref(k), reset)?[0]),
                    })
                    .collect()
            }
            Starting::Timestamp(ts) => {
                let found = self.offsets_for_time(parts, ts)?;
                let _ = boot;
                Ok(found.into_iter().map(Some).collect())
            }
        }
    }

    /// Per partition, the first offset whose message has a timestamp at or after `ts`
    /// (the end if none).
    fn offsets_for_time(&self, parts: &[(String, i32)], ts: i64) -> UdfResult<Vec<i64>> {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in parts {
            tpl.add_partition_offset(t, *p, Offset::Offset(ts)).map_err(|e| self.fail(e.to_string()))?;
        }
        let got = self.consumer.offsets_for_times(tpl, self.api_timeout).map_err(|e| self.unreachable(e))?;
        let by: HashMap<(String, i32), Offset> =
            got.elements().iter().map(|e| ((e.topic().to_string(), e.partition()), e.offset())).collect();
        parts
            .iter()
            .map(|(t, p)| match by.get(&(t.clone(), *p)) {
                Some(Offset::Offset(o)) if *o >= 0 => Ok(*o),
                // No message that late: the end.
                _ => self
                    .consumer
                    .fetch_watermarks(t, *p, self.api_timeout)
                    .map(|(_, high)| high)
                    .map_err(|e| self.unreachable(e)),
            })
            .collect()
    }

    /// Bounded at a timestamp: the time after which partitions end.
    fn until_ts(&self) -> Option<i64> {
        match self.spec.stopping {
            Some(Stopping::Timestamp(t)) => Some(t),
            _ => None,
        }
    }

    /// Where each partition stops at the latest: its end when the reader started (a
    /// timestamp stop ends it earlier, at its first later message: see `until_ts`).
    fn stop_offsets(&self, parts: &[(String, i32)], stopping: Stopping) -> UdfResult<Vec<i64>> {
        match stopping {
            Stopping::Latest | Stopping::Timestamp(_) => parts
                .iter()
                .map(|(t, p)| {
                    self.consumer
                        .fetch_watermarks(t, *p, self.api_timeout)
                        .map(|(_, high)| high)
                        .map_err(|e| self.unreachable(e))
                })
                .collect(),
        }
    }

    fn unreachable(&self, e: KafkaError) -> UdfError {
        UdfError::new(client::unreachable_brokers(&self.spec.bootstrap, self.api_timeout, self.consumer.context(), e))
    }

    /// Hands librdkafka the partitions not done, each at its next offset.
    fn assign(&mut self) -> UdfResult<()> {
        self.note_backlog_ends()?;
        let mut tpl = TopicPartitionList::new();
        let bootstrap = &self.spec.bootstrap;
        let fail = |e: KafkaError| UdfError::new(format!("Kafka source ({bootstrap}): {e}"));
        for part in self.reading.partitions.values_mut() {
            if part.done || part.next.zip(part.stop).is_some_and(|(next, stop)| next >= stop) {
                part.finish();
                continue;
            }
            let offset = part.next.map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(&part.topic, part.partition, offset).map_err(fail)?;
        }
        self.consumer.assign(&tpl).map_err(fail)?;
        self.reading.reassign = false;
        Ok(())
    }

    /// With idleness, the end of each new partition whose end was not fetched with its
    /// offsets (unbounded from the earliest, committed or a timestamp; restored): see
    /// [`Partition::caught_up`].
    fn note_backlog_ends(&mut self) -> UdfResult<()> {
        if self.spec.watermarks.as_ref().is_none_or(|w| w.idleness_ms.is_none()) {
            return Ok(());
        }
        let new: Vec<(String, i32)> = self
            .reading
            .partitions
            .iter()
            .filter(|(_, p)| !p.done && p.backlog_end.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for key in new {
            let (_, high) =
                self.consumer.fetch_watermarks(&key.0, key.1, self.api_timeout).map_err(|e| self.unreachable(e))?;
            if let Some(p) = self.reading.partitions.get_mut(&key) {
                p.backlog_end = Some(high);
            }
        }
        Ok(())
    }

    fn fail_e(&self, e: KafkaError) -> UdfError {
        self.fail(e.to_string())
    }

    /// Connects, finds its partitions and where each starts (from the checkpoint, if
    /// restored, else as `starting` says).
    fn start(&mut self) -> UdfResult<()> {
        self.started = true;
        let found = self.discover()?;
        self.add_partitions(found, self.spec.starting)?;
        if let Some(every) = self.discovery {
            self.next_discovery = Some(Instant::now() + every);
        }
        self.assign()
    }

    fn rediscover(&mut self) -> UdfResult<()> {
        let Some(every) = self.discovery else { return Ok(()) };
        if self.next_discovery.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        self.next_discovery = Some(Instant::now() + every);
        let found = self.discover()?;
        self.add_partitions(found, Starting::Earliest)?;
        if self.reading.reassign {
            self.assign()?;
        }
        Ok(())
    }

    fn all_done(&self) -> bool {
        self.spec.stopping.is_some() && self.reading.partitions.values().all(|p| p.done)
    }

    /// Commits the offsets of the newest mark at or below `segment` to the group.
    fn commit(&mut self, segment: u64) -> UdfResult<()> {
        let newest = self.marked.range(..=segment).next_back().map(|(s, _)| *s);
        let Some(newest) = newest else { return Ok(()) };
        let offsets = self.marked.remove(&newest).unwrap_or_default();
        self.marked = self.marked.split_off(&newest);
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in &offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o)).map_err(|e| self.fail_e(e))?;
        }
        // Asynchronous: a commit that fails (the broker is away) is made good by the next
        // checkpoint's; the checkpoint, not the group, is what a restore reads.
        match self.consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = e;
                Ok(())
            }
        }
    }
}

impl<R: Record> KafkaReader<R> {
    /// Records every partition's next offset, highest timestamp and whether it is done
    /// as the position a snapshot writes; returns the offsets to commit to the group.
    fn record_positions(&mut self) -> Vec<(String, i32, i64)> {
        self.snapshot.clear();
        let mut offsets = Vec::new();
        for p in self.reading.partitions.values() {
            let mut state = StateWriter::<R>::new();
            // -1: not known yet (start where `starting` says).
            state.i64(p.next.unwrap_or(-1));
            state.i64(p.watermark.as_ref().map_or(NO_TIME, |w| w.max_timestamp()));
            state.bool(p.done);
            state.i64(p.from_ts.unwrap_or(NO_TIME));
            self.snapshot.push((split_name(&p.topic, p.partition), state.into_bytes()));
            if let Some(next) = p.next {
                offsets.push((p.topic.clone(), p.partition, next));
            }
        }
        offsets
    }
}

/// What reading changes, apart from the consumer (whose messages borrow it).
struct Reading<R> {
    decode: Box<dyn Decode<R>>,
    assigner: Option<Box<dyn TimestampAssigner<R>>>,
    /// The partitions this reader owns, by (topic, partition).
    partitions: BTreeMap<(String, i32), Partition>,
    /// The assignment changed since it was last handed to librdkafka.
    reassign: bool,
    /// Skip (and count) messages that do not deserialize instead of failing.
    skip_malformed: bool,
    /// Messages skipped because they did not deserialize.
    skipped: u64,
}

impl<R: Record> Reading<R> {
    /// Takes one message: its records, stamped, are appended to `out`. `now`: the
    /// poll's wall-clock time, for idleness (read once per poll, not per message).
    fn take(&mut self, msg: &rdkafka::message::BorrowedMessage<'_>, now: i64, out: &mut Vec<R>) -> UdfResult<()> {
        let key = (msg.topic().to_string(), msg.partition());
        let Some(part) = self.partitions.get_mut(&key) else { return Ok(()) };
        if part.done {
            return Ok(());
        }
        let offset = msg.offset();
        if let Some(stop) = part.stop {
            if offset >= stop {
                part.finish();
                self.reassign = true;
                return Ok(());
            }
        }
        part.next = Some(offset + 1);
        let timestamp = match msg.timestamp() {
            Timestamp::NotAvailable => None,
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
        };
        let ts_or_none = timestamp.unwrap_or(NO_TIME);
        if part.until_ts.is_some_and(|u| ts_or_none > u) {
            part.finish();
            self.reassign = true;
            return Ok(());
        }
        if let Some(from) = part.from_ts {
            if ts_or_none < from {
                if part.stop.is_some_and(|stop| offset + 1 >= stop) {
                    part.finish();
                    self.reassign = true;
                }
                return Ok(());
            }
            part.from_ts = None;
        }
        let message = Message {
            topic: msg.topic(),
            partition: msg.partition(),
            offset,
            key: msg.key(),
            value: msg.payload(),
            timestamp,
        };
        let from = out.len();
        if let Err(e) = self.decode.decode(&message, out) {
            out.truncate(from);
            if self.skip_malformed {
                self.skipped += 1;
                return Ok(());
            }
            return Err(UdfError::new(format!(
                "Kafka source: the message at topic {:?}, partition {}, offset {offset} does not deserialize: {e} \
                 (to skip such messages and count them, ask the deserializer to ignore parse errors)",
                message.topic, message.partition
            )));
        }
        let part = self.partitions.get_mut(&key).expect("taken above");
        for record in &mut out[from..] {
            let ts = match self.assigner.as_mut() {
                Some(a) => a.timestamp(record, timestamp.unwrap_or(NO_TIME))?,
                None => timestamp.unwrap_or(NO_TIME),
            };
            record.set_timestamp(ts);
            if let Some(w) = part.watermark.as_mut() {
                if ts != NO_TIME {
                    w.on_event(ts, now);
                }
            }
        }
        if let Some(stop) = part.stop {
            if offset + 1 >= stop {
                part.finish();
                self.reassign = true;
            }
        }
        Ok(())
    }
}

impl<R: Record> SourceReader<R> for KafkaReader<R> {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        if !self.started {
            self.start()?;
        }
        self.rediscover()?;
        if self.reading.reassign {
            self.assign()?;
        }
        let before = out.len();
        let now = now_ms();
        while out.len() - before < max && !self.all_done() {
            let polled = self.consumer.poll(Duration::ZERO);
            match polled {
                None => break,
                Some(Ok(msg)) => self.reading.take(&msg, now, out)?,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    if is_fatal(&e) {
                        return Err(self.fail_e(e));
                    }
                    // Transient (a broker away, a leader moving): librdkafka reconnects.
                }
            }
            if self.reading.reassign {
                self.assign()?;
            }
        }
        if self.all_done() {
            // The end stands for the reader in every later checkpoint (a finished job
            // restored from one reads nothing again).
            self.record_positions();
            return Ok(SourceStatus::Done);
        }
        for p in self.reading.partitions.values_mut() {
            let caught_up = p.caught_up();
            if let Some(w) = p.watermark.as_mut().filter(|_| caught_up) {
                w.check_idle(now);
            }
        }
        Ok(if out.len() > before { SourceStatus::More } else { SourceStatus::Idle })
    }

    /// The least watermark of its partitions that are neither idle nor ended; with
    /// none left, ended ([`FINISHED`]) or idle ([`IDLE`]); a reader without
    /// partitions is idle (it holds nothing back, as Flink's reader without splits).
    fn watermark(&self) -> Option<i64> {
        self.spec.watermarks.as_ref()?;
        if !self.started {
            // Its partitions are not known yet: nothing may pass.
            return Some(NO_TIME);
        }
        let gens = self.reading.partitions.values().filter_map(|p| p.watermark.as_ref());
        let mut least: Option<i64> = None;
        let mut any_finished = false;
        for g in gens {
            let w = g.watermark();
            if w == IDLE {
                continue;
            }
            if w == FINISHED {
                any_finished = true;
                continue;
            }
            least = Some(least.map_or(w, |l| l.min(w)));
        }
        Some(least.unwrap_or(if any_finished && self.spec.stopping.is_some() { FINISHED } else { IDLE }))
    }

    fn mark_position(&mut self, segment: u64) -> UdfResult<()> {
        let offsets = self.record_positions();
        if self.commit_on_checkpoint {
            self.marked.insert(segment, offsets);
        }
        Ok(())
    }

    /// Per partition it owns: its split name, then next offset, highest timestamp and
    /// whether it is done.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        write_splits::<R>(out, self.snapshot.iter().map(|(n, s)| (n.as_slice(), s.as_slice())));
        Ok(())
    }

    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        let (index, peers) = (self.index, self.peers);
        let owns = |name: &[u8]| parse_split_name(name).is_some_and(|(t, p)| partition_owner(&t, p, peers) == index);
        let Some(splits) = owned_splits::<R>(from, owns)? else { return Ok(()) };
        self.restored = true;
        let now = now_ms();
        for (name, state) in splits {
            let (topic, partition) = parse_split_name(&name).ok_or_else(|| UdfError::internal("a Kafka split name"))?;
            let mut r = StateReader::<R>::new(&state);
            let next = r.i64()?;
            let max_ts = r.i64()?;
            let done = r.bool()?;
            let from_ts = r.i64()?;
            r.finish()?;
            let watermark = self.spec.watermarks.as_ref().map(|w| {
                let mut g = WatermarkGenerator::new(w.spec, w.idleness_ms, now);
                g.resume(max_ts, false);
                g
            });
            self.reading.partitions.insert(
                (topic.clone(), partition),
                Partition {
                    topic,
                    partition,
                    next: (next >= 0).then_some(next),
                    stop: None,
                    from_ts: (from_ts != NO_TIME).then_some(from_ts),
                    until_ts: self.until_ts(),
                    watermark,
                    backlog_end: None,
                    done,
                },
            );
        }
        // Bounded: the stops of the restored partitions are where they are now, as the
        // job's first run would have seen them had it started now.
        if let Some(stopping) = self.spec.stopping {
            let keys: Vec<(String, i32)> =
                self.reading.partitions.iter().filter(|(_, p)| !p.done).map(|(k, _)| k.clone()).collect();
            let stops = self.stop_offsets(&keys, stopping)?;
            for (k, s) in keys.iter().zip(stops) {
                if let Some(p) = self.reading.partitions.get_mut(k) {
                    p.stop = Some(s);
                    p.backlog_end = Some(s);
                }
            }
        }
        Ok(())
    }

    fn checkpoint_complete(&mut self, segment: u64) -> UdfResult<()> {
        if self.commit_on_checkpoint {
            self.commit(segment)?;
        }
        Ok(())
    }

    fn cancel(&mut self) {
        let _ = self.consumer.unassign();
    }
}

impl<R> Drop for KafkaReader<R> {
    fn drop(&mut self) {
        if self.reading.skipped > 0 {
            eprintln!(
                "ferroflow: Kafka source ({}) skipped {} message(s) that did not deserialize",
                self.spec.bootstrap, self.reading.skipped
            );
        }
    }
}

/// Errors a consumer cannot go on from (librdkafka retries the others itself).
fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SSL
        )
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
