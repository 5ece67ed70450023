//! The exactly-once Kafka sink: Kafka transactions committed with checkpoints (Flink's
//! two-phase commit on Kafka transactions), built so that no transaction ever holds
//! records unless a complete checkpoint records it.
//!
//! At checkpoint `k` the open transaction is flushed and left open ("pre-committed"),
//! and the next one, `{prefix}-{worker}-{k+1}`, is opened (not yet written to). The
//! checkpoint records both by name, producer id and epoch, and the records that came
//! meanwhile and are not in a transaction yet ("held"). When checkpoint `k` completes,
//! the pre-committed transaction commits (readers with `isolation.level=read_committed`
//! see its records then) and the held records go into the next one, which takes the
//! records that follow until checkpoint `k+1`. A record so waits for one checkpoint to
//! complete before it is sent, and is visible after the next: up to two checkpoint
//! intervals.
//!
//! After a failure the job restores its last complete checkpoint `c`: the transactions
//! it pre-committed are committed, the one it opened next is aborted (each from its
//! producer id and epoch, by an `EndTxn` request sent here: librdkafka cannot take over
//! another producer's transaction; ending one that already ended is harmless), and the
//! held records are sent again, after the restored run's first checkpoint. A transaction
//! name is never written to by two runs, so nothing depends on how a broker treats a
//! new producer of an old name. Brokers abort a transaction left open longer than
//! `transaction.timeout.ms` (15 minutes here, Kafka's default ceiling): a job down longer
//! than that loses what its last checkpoint pre-committed.
//!
//! Without checkpointing, the job writes one transaction per sink instance, committed
//! when the whole job succeeded.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::producer::Producer;

use super::client;
use super::sink::{Deliveries, KafkaSinkSpec, Sender};
use super::{Encode, OutMessage};
use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{UdfError, UdfResult};
use crate::functions::{Checkpointing, Sink, SinkCommit, WorkerContext};

/// The sink property that opts in to this sink, which no test could verify under
/// failures: the broker the tests can have (tansu 0.6.0) leaves an aborted
/// transaction's records visible to `read_committed` readers, and recovery aborts the
/// transaction a failed run opened after its last checkpoint. On Kafka brokers abort
/// works; the design is Flink's, with the recovery written out above.
pub const OPT_IN: &str = "ferroflow.exactly-once";
pub const OPT_IN_VALUE: &str = "accept-unverified";
/// Why `EXACTLY_ONCE` is refused without [`OPT_IN`].
pub const REFUSAL: &str = "Kafka sink: DeliveryGuarantee.EXACTLY_ONCE is not verified: the broker ferroflow's tests \
                           run (tansu 0.6.0) shows aborted transactions to read_committed readers, so recovery \
                           after a failure could not be proven; use AT_LEAST_ONCE, or opt in with \
                           set_property('ferroflow.exactly-once', 'accept-unverified') (docs/connectors.md)";

/// How long a transaction may stay open on the brokers (ms).
const TRANSACTION_TIMEOUT_MS: &str = "900000";

pub fn exactly_once_sink<R: 'static>(spec: KafkaSinkSpec<R>, ctx: &WorkerContext) -> UdfResult<Box<dyn Sink<R>>> {
    let prefix = spec
        .transactional_id_prefix
        .clone()
        .ok_or_else(|| UdfError::new("Kafka sink: EXACTLY_ONCE needs set_transactional_id_prefix(...)"))?;
    let (first, checkpointed) = match ctx.checkpointing {
        Checkpointing::On { first_id, .. } => (first_id, true),
        Checkpointing::Off => (1, false),
    };
    let encode = (spec.encode)()?;
    Ok(Box::new(TransactionalSink {
        spec,
        prefix,
        worker: ctx.index,
        encode,
        messages: Vec::new(),
        held: Vec::new(),
        current: None,
        next: None,
        next_checkpoint: first,
        pending: BTreeMap::new(),
        checkpointed,
        ended: false,
    }))
}

/// What a checkpoint records of a pre-committed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TxnInfo {
    name: String,
    producer_id: i64,
    epoch: i16,
    checkpoint: u64,
}

struct Txn {
    sender: Sender,
    info: TxnInfo,
}

struct TransactionalSink<R> {
    spec: KafkaSinkSpec<R>,
    prefix: String,
    worker: usize,
    encode: Box<dyn Encode<R>>,
    messages: Vec<OutMessage>,
    /// Records not in a transaction yet: they wait for the checkpoint that opened
    /// `next` to complete (and are in the checkpoints taken meanwhile).
    held: Vec<OutMessage>,
    /// The transaction records go into now (checkpointed: the `next` of a checkpoint
    /// that completed).
    current: Option<Txn>,
    /// Opened at the last checkpoint, recorded by it; `current` once it completes.
    next: Option<Txn>,
    /// The checkpoint the open transaction belongs to.
    next_checkpoint: u64,
    /// Pre-committed, waiting for their checkpoint to complete.
    pending: BTreeMap<u64, Txn>,
    checkpointed: bool,
    /// The input ended: no transaction opens any more.
    ended: bool,
}

fn txn_name(prefix: &str, worker: usize, checkpoint: u64) -> String {
    format!("{prefix}-{worker}-{checkpoint}")
}

/// A transactional producer named `name`, its transactions initialised (which fences
/// and aborts any earlier producer's open transaction of that name).
fn transactional<R>(spec: &KafkaSinkSpec<R>, name: &str) -> UdfResult<(Sender, i64, i16)> {
    let sender = Sender::open_with(
        spec,
        &[
            ("transactional.id", name),
            ("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS),
            ("linger.ms", "5"),
            // The producer id and epoch are only in the eos debug log (see Context).
            ("debug", "eos"),
        ],
        RDKafkaLogLevel::Debug,
    )?;
    sender
        .producer
        .init_transactions(sender.api_timeout)
        .map_err(|e| UdfError::new(format!("Kafka sink ({}): transactions of {name}: {e}", spec.bootstrap)))?;
    // The log reaches the context as events of the producer's queue: served by polls.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (pid, epoch) = loop {
        sender.producer.poll(Duration::from_millis(1));
        if let Some(pid) = sender.producer.context().client_context().producer_id() {
            break pid;
        }
        if std::time::Instant::now() > deadline {
            return Err(UdfError::internal(format!(
                "the Kafka producer {name} started a transaction without telling its producer id"
            )));
        }
    };
    Ok((sender, pid, epoch))
}

impl<R: 'static> TransactionalSink<R> {
    /// A new transaction for the records up to checkpoint `checkpoint`, begun.
    fn begin(&self, checkpoint: u64) -> UdfResult<Txn> {
        let name = txn_name(&self.prefix, self.worker, checkpoint);
        let (sender, producer_id, epoch) = transactional(&self.spec, &name)?;
        sender
            .producer
            .begin_transaction()
            .map_err(|e| UdfError::new(format!("Kafka sink ({}): {name}: {e}", self.spec.bootstrap)))?;
        let info = TxnInfo { name, producer_id, epoch, checkpoint };
        trace(&format!("open {} {:?}", info.name, (producer_id, epoch)));
        Ok(Txn { sender, info })
    }

    /// Sends `messages` (taken) in the current transaction; without checkpoints the
    /// job's one transaction opens at its first record.
    fn send(&mut self, messages: &mut Vec<OutMessage>) -> UdfResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            debug_assert!(!self.checkpointed, "sending with no transaction a checkpoint recorded");
            self.current = Some(self.begin(self.next_checkpoint)?);
        }
        self.current.as_ref().expect("opened above").sender.send(messages)
    }

    /// Flushes the current transaction and sets it aside as pre-committed for
    /// `checkpoint`.
    fn set_aside(&mut self, checkpoint: u64) -> UdfResult<()> {
        if let Some(mut txn) = self.current.take() {
            txn.sender.wait_acknowledged(None)?;
            txn.info.checkpoint = checkpoint;
            self.pending.insert(checkpoint, txn);
        }
        Ok(())
    }
}

impl<R: 'static> Sink<R> for TransactionalSink<R> {
    fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()> {
        self.encode.encode(batch, &mut self.messages)?;
        batch.clear();
        if self.checkpointed && self.current.is_none() {
            self.held.append(&mut self.messages);
            return Ok(());
        }
        let mut messages = std::mem::take(&mut self.messages);
        let sent = self.send(&mut messages);
        self.messages = messages;
        sent
    }

    fn flush(&mut self, _abort: &AtomicBool) -> UdfResult<()> {
        match &self.current {
            Some(t) => t.sender.check(),
            None => Ok(()),
        }
    }

    /// Phase one: the current transaction is flushed and set aside; the next one is
    /// opened (replacing one opened at an earlier checkpoint that has not completed:
    /// that one never took a record). Recorded: the pending transactions, the next
    /// one and the held records.
    fn pre_commit(&mut self, id: u64, out: &mut Vec<u8>) -> UdfResult<()> {
        self.set_aside(id)?;
        self.next_checkpoint = id + 1;
        if !self.ended {
            self.next = Some(self.begin(id + 1)?);
        }
        let infos: Vec<&TxnInfo> =
            self.pending.values().map(|t| &t.info).chain(self.next.as_ref().map(|t| &t.info)).collect();
        write_state(out, &infos, &self.held);
        Ok(())
    }

    /// Phase two: every transaction up to checkpoint `id` commits; the next one
    /// becomes current and takes the held records.
    fn commit_checkpoint(&mut self, id: u64) -> UdfResult<()> {
        let later = self.pending.split_off(&(id + 1));
        let done = std::mem::replace(&mut self.pending, later);
        for (_, txn) in done {
            commit(&txn)?;
        }
        if self.current.is_none() && self.next.as_ref().is_some_and(|n| n.info.checkpoint <= id + 1) {
            self.current = self.next.take();
            let mut held = std::mem::take(&mut self.held);
            self.send(&mut held)?;
        }
        Ok(())
    }

    /// Commits what checkpoint `id` pre-committed and aborts the transaction it opened
    /// next, for the old workers dealt to this instance; their held records are held
    /// here again.
    fn restore(&mut self, from: &Restore<'_>, id: u64) -> UdfResult<()> {
        for (old, section) in from.sections().iter().enumerate() {
            if !from.deals(old) || section.is_empty() {
                continue;
            }
            let (infos, held) = read_state(section)?;
            for info in infos {
                end_transaction(&self.spec.bootstrap, &info, info.checkpoint <= id, &self.spec.properties)
                    .map_err(|e| UdfError::new(format!("Kafka sink: {e}")))?;
            }
            self.held.extend(held);
        }
        self.next_checkpoint = self.next_checkpoint.max(id + 1);
        Ok(())
    }

    /// The end of input: held records go into the next transaction (or a new one), the
    /// current one is flushed; they commit with the job's success (with checkpoints, a
    /// checkpoint completing first commits them as usual, and they stay recorded).
    fn prepare_commit(&mut self) -> UdfResult<Option<Box<dyn SinkCommit>>> {
        self.ended = true;
        let last = self.next_checkpoint;
        if !self.held.is_empty() {
            if self.current.is_none() {
                self.current = match self.next.take() {
                    Some(n) => Some(n),
                    None => Some(self.begin(last)?),
                };
            }
            let mut held = std::mem::take(&mut self.held);
            self.current.as_ref().expect("set above").sender.send(&mut held)?;
        }
        self.set_aside(last)?;
        if self.checkpointed {
            let infos: Vec<TxnInfo> = self.pending.values().map(|t| t.info.clone()).collect();
            if infos.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Box::new(FinalCommit {
                bootstrap: self.spec.bootstrap.clone(),
                properties: self.spec.properties.clone(),
                infos,
                txns: Vec::new(),
            })));
        }
        let txns: Vec<Txn> = std::mem::take(&mut self.pending).into_values().collect();
        Ok((!txns.is_empty()).then(|| {
            Box::new(FinalCommit {
                bootstrap: self.spec.bootstrap.clone(),
                properties: self.spec.properties.clone(),
                infos: Vec::new(),
                txns,
            }) as Box<dyn SinkCommit>
        }))
    }
}

/// Prints a transaction's step to stderr when FERROFLOW_KAFKA_TRACE is set.
fn trace(what: &str) {
    if std::env::var_os("FERROFLOW_KAFKA_TRACE").is_some() {
        eprintln!("ferroflow kafka: {what}");
    }
}

fn commit(txn: &Txn) -> UdfResult<()> {
    trace(&format!("commit {} {:?}", txn.info.name, (txn.info.producer_id, txn.info.epoch)));
    txn.sender
        .producer
        .commit_transaction(txn.sender.api_timeout)
        .map_err(|e| UdfError::new(format!("Kafka sink ({}): committing {}: {e}", txn.sender.bootstrap, txn.info.name)))
}

/// The job's last transactions, committed once it succeeded: by their producers
/// (without checkpoints) or by producer id (with: the sink keeps its producers for
/// checkpoints that complete meanwhile, and committing twice is harmless).
struct FinalCommit {
    bootstrap: String,
    properties: client::Properties,
    infos: Vec<TxnInfo>,
    txns: Vec<Txn>,
}

impl SinkCommit for FinalCommit {
    fn commit(mut self: Box<Self>) -> Result<(), String> {
        for txn in std::mem::take(&mut self.txns) {
            commit(&txn).map_err(|e| e.message)?;
        }
        for info in std::mem::take(&mut self.infos) {
            end_transaction(&self.bootstrap, &info, true, &self.properties)?;
        }
        Ok(())
    }
}

impl Drop for FinalCommit {
    /// Not committed (the job failed or was cancelled): without checkpoints nothing
    /// will commit them, so they are aborted now rather than left to time out.
    fn drop(&mut self) {
        for txn in &self.txns {
            let _ = txn.sender.producer.abort_transaction(Duration::from_secs(5));
        }
    }
}

/// Checkpoint section: a count, then per transaction its name, producer id, epoch and
/// checkpoint; then a count of held records, each its topic, partition, key, value and
/// timestamp (each a presence flag, then the value).
fn write_state(out: &mut Vec<u8>, infos: &[&TxnInfo], held: &[OutMessage]) {
    let mut w = StateWriter::<String>::from_vec(std::mem::take(out));
    w.u64(infos.len() as u64);
    for i in infos {
        w.str(&i.name);
        w.i64(i.producer_id);
        w.i64(i64::from(i.epoch));
        w.u64(i.checkpoint);
    }
    w.u64(held.len() as u64);
    for m in held {
        w.bool(m.topic.is_some());
        if let Some(t) = &m.topic {
            w.str(t);
        }
        w.bool(m.partition.is_some());
        if let Some(p) = m.partition {
            w.i64(i64::from(p));
        }
        for b in [&m.key, &m.value] {
            w.bool(b.is_some());
            if let Some(b) = b {
                w.bytes(b);
            }
        }
        w.bool(m.timestamp.is_some());
        if let Some(t) = m.timestamp {
            w.i64(t);
        }
    }
    *out = w.into_bytes();
}

fn read_state(section: &[u8]) -> Result<(Vec<TxnInfo>, Vec<OutMessage>), StateError> {
    let mut r = StateReader::<String>::new(section);
    let n = r.u64()?;
    let mut infos = Vec::new();
    for _ in 0..n {
        let name = String::from_utf8_lossy(r.bytes()?).into_owned();
        let producer_id = r.i64()?;
        let epoch = i16::try_from(r.i64()?).map_err(|_| r.corrupt("a producer epoch beyond 16 bits"))?;
        let checkpoint = r.u64()?;
        infos.push(TxnInfo { name, producer_id, epoch, checkpoint });
    }
    let n = r.u64()?;
    let mut held = Vec::new();
    for _ in 0..n {
        let topic = if r.bool()? { Some(r.str()?.to_string()) } else { None };
        let partition = if r.bool()? {
            Some(i32::try_from(r.i64()?).map_err(|_| r.corrupt("a partition beyond 32 bits"))?)
        } else {
            None
        };
        let key = if r.bool()? { Some(r.bytes()?.to_vec()) } else { None };
        let value = if r.bool()? { Some(r.bytes()?.to_vec()) } else { None };
        let timestamp = if r.bool()? { Some(r.i64()?) } else { None };
        held.push(OutMessage { topic, partition, key, value, timestamp });
    }
    r.finish()?;
    Ok((infos, held))
}

// -- the two requests librdkafka cannot send for us -----------------------------------------
//
// Kafka's wire format: a request is its size (i32), a header (api key i16, api version
// i16, correlation id i32, client id as a nullable string) and its body; a response is
// its size, the correlation id and its body. Strings are an i16 length and UTF-8.

const FIND_COORDINATOR: i16 = 10;
const END_TXN: i16 = 26;
/// Errors of `EndTxn` that mean the transaction already ended as asked, or cannot be
/// ended because a newer producer of its name took over (which aborted it, or it
/// committed before): nothing left to do.
const INVALID_TXN_STATE: i16 = 48;

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

struct Wire<'a>(&'a [u8]);

impl Wire<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("a Kafka response ended early".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn string(&mut self) -> Result<Option<String>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(self.take(n as usize)?).into_owned()))
    }
}

/// Sends one request to `addr` and returns the response body.
fn call(addr: &str, api_key: i16, version: i16, body: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut req = Vec::with_capacity(body.len() + 32);
    req.extend_from_slice(&api_key.to_be_bytes());
    req.extend_from_slice(&version.to_be_bytes());
    req.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut req, "ferroflow");
    req.extend_from_slice(body);
    let mut framed = (req.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&req);
    stream.write_all(&framed).map_err(|e| format!("{addr}: {e}"))?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(|e| format!("{addr}: {e}"))?;
    let size = i32::from_be_bytes(size);
    if !(4..=1 << 20).contains(&size) {
        return Err(format!("{addr}: a response of {size} bytes"));
    }
    let mut resp = vec![0u8; size as usize];
    stream.read_exact(&mut resp).map_err(|e| format!("{addr}: {e}"))?;
    Ok(resp.split_off(4))
}

/// The transaction coordinator of `name`, asked of the bootstrap servers in turn.
fn coordinator(bootstrap: &str, name: &str, timeout: Duration) -> Result<String, String> {
    let mut body = Vec::new();
    put_str(&mut body, name);
    body.push(1); // key type: a transactional id
    let mut last = String::from("no bootstrap server");
    for addr in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match call(addr, FIND_COORDINATOR, 1, &body, timeout) {
            Ok(resp) => {
                let mut w = Wire(&resp);
                let _throttle = w.i32()?;
                let error = w.i16()?;
                let message = w.string()?;
                let _node = w.i32()?;
                let host = w.string()?.unwrap_or_default();
                let port = w.i32()?;
                if error != 0 {
                    last = format!("error {error} ({})", message.unwrap_or_default());
                    continue;
                }
                return Ok(format!("{host}:{port}"));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Commits (or aborts) the transaction `info` names, from its producer id and epoch.
fn end_transaction(
    bootstrap: &str,
    info: &TxnInfo,
    commit: bool,
    properties: &client::Properties,
) -> Result<(), String> {
    let timeout = properties.api_timeout()?;
    let what = if commit { "committing" } else { "aborting" };
    let fail =
        |e: String| format!("{what} transaction {} (producer {}) at {bootstrap}: {e}", info.name, info.producer_id);
    let addr = coordinator(bootstrap, &info.name, timeout).map_err(fail)?;
    let mut body = Vec::new();
    put_str(&mut body, &info.name);
    body.extend_from_slice(&info.producer_id.to_be_bytes());
    body.extend_from_slice(&info.epoch.to_be_bytes());
    body.push(u8::from(commit));
    let resp = call(&addr, END_TXN, 0, &body, timeout).map_err(fail)?;
    let mut w = Wire(&resp);
    let _throttle = w.i32().map_err(fail)?;
    let code = w.i16().map_err(fail)?;
    trace(&format!("EndTxn {} {:?} commit={commit}: error code {code}", info.name, (info.producer_id, info.epoch)));
    match code {
        0 | INVALID_TXN_STATE => Ok(()),
        code => Err(fail(format!("the broker answered error {code}"))),
    }
}

impl Sender {
    /// [`Sender::open`] logging at `level` (a transactional producer reads its producer
    /// id from the debug log).
    pub fn open_with<R>(spec: &KafkaSinkSpec<R>, defaults: &[(&str, &str)], level: RDKafkaLogLevel) -> UdfResult<Self> {
        Sender::open_logging(spec, defaults, Some(level))
    }
}

impl Deliveries {
    pub fn client_context(&self) -> &client::Context {
        self.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_and_held_records_round_trip_through_a_checkpoint_section() {
        let a = TxnInfo { name: "job-0-3".into(), producer_id: 1000, epoch: 2, checkpoint: 3 };
        let b = TxnInfo { name: "job-0-4".into(), producer_id: 1001, epoch: 0, checkpoint: 4 };
        let held = vec![
            OutMessage { value: Some(b"v".to_vec()), ..OutMessage::default() },
            OutMessage {
                topic: Some("t".into()),
                partition: Some(2),
                key: Some(vec![]),
                value: None,
                timestamp: Some(-5),
            },
        ];
        let mut out = Vec::new();
        write_state(&mut out, &[&a, &b], &held);
        assert_eq!(read_state(&out).unwrap(), (vec![a, b], held));
        assert!(read_state(&out[..out.len() - 1]).is_err(), "a cut section is refused");
    }
}
