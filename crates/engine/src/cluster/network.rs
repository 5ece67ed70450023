//! Handing the connected sockets to timely, and watching them while the job runs.
//!
//! Each socket is wrapped in a [`PeerStream`] before timely gets it. The wrapper frames
//! what timely writes (see [`frames`](#frames)), so that heartbeats can travel between
//! timely's bytes; notes when anything arrives from the peer; notes when the connection
//! breaks *before* timely's end-of-stream marker (a peer that crashed or was killed) so
//! the engine can name it ([`PeerMonitor::lost`]); retries reads interrupted by a signal
//! (timely would panic on `EINTR`); and lets the engine close every connection at once
//! ([`PeerMonitor::disconnect`]) so the other processes notice an abort.
//!
//! # Heartbeats
//!
//! A peer that stops without closing its sockets (SIGSTOP, a network partition) sends no
//! end of stream and no error: only silence. One thread per process (`ferroflow:heartbeat`)
//! sends every peer a heartbeat every [`beat_interval`] and declares a peer from which
//! nothing at all arrived for the heartbeat time-out silent: [`PeerMonitor::lost`] then
//! names it ([`ClusterError::PeerSilent`]) and its connection is shut down, which stops
//! timely's network threads and this process's workers. The thread needs neither the
//! workers nor Python's GIL, and timely's receive threads read (and so hear the
//! heartbeats) whatever the workers do, so a process busy in a long user function is
//! never taken for a dead one. A peer that sent timely's end marker has finished and is
//! no longer watched; this process stops beating to a peer once it sent it its own.
//!
//! # Frames
//!
//! On the wire, after the start barrier, each direction of a connection is a sequence of
//! `DATA u8 | length u32 (big-endian, > 0) | length bytes of timely's stream` and
//! `HEARTBEAT u8` and `CANCEL u8`. `CANCEL` is the last thing a process sends when its
//! job was cancelled ([`PeerMonitor::disconnect_cancelled`]): the peer then stops as
//! cancelled ([`ClusterError::PeerCancelled`]) instead of reporting a crash, even when a
//! write of its own fails first on the reset the cancelled peer answers it with (the
//! writer lets the reading side, which gets the `CANCEL` before the break, give the
//! verdict). A frame is written whole under the link's lock, so a heartbeat never
//! lands inside one; timely's own framing is carried unchanged inside the data frames.

use std::any::Any;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use timely::communication::allocator::thread::ThreadBuilder;
use timely::communication::allocator::zero_copy::initialize::{initialize_networking_from_sockets, CommsGuard};
use timely::communication::allocator::zero_copy::stream::Stream;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::Hooks;

use super::error::ClusterError;
use super::ClusterConfig;

/// What [`allocators`] returns: everything `timely::execute::execute_from` needs, and a
/// monitor on the connections.
pub struct Network {
    /// One allocator builder per local worker thread: `execute_from`'s `builders`.
    pub builders: Vec<AllocatorBuilder>,
    /// `execute_from`'s `others`: owns timely's network threads and the heartbeat
    /// thread. Dropped (by timely's `WorkerGuards`, after the workers) it ends them
    /// without ever panicking.
    pub guard: Box<dyn Any + Send>,
    pub monitor: PeerMonitor,
}

/// Builds timely's allocators on top of the sockets [`super::connect`] returned (the
/// same as timely's `Config::Cluster`, minus its own connection code), and starts the
/// heartbeats. With a single process there are no sockets and this gives thread or
/// process allocators.
pub fn allocators(config: &ClusterConfig, sockets: Vec<Option<TcpStream>>) -> Result<Network, ClusterError> {
    config.validate()?;
    let (me, n, threads) = (config.process, config.addresses.len(), config.threads);
    if sockets.len() != n || sockets[me].is_some() || sockets.iter().enumerate().any(|(p, s)| p != me && s.is_none()) {
        return Err(ClusterError::Config(format!(
            "allocators needs one connected socket per other process ({n} processes, this is process {me})"
        )));
    }
    let hooks = Hooks::default();
    if n == 1 {
        let builders = if threads == 1 {
            vec![AllocatorBuilder::Thread(ThreadBuilder)]
        } else {
            ProcessBuilder::new_typed_vector(threads, hooks.refill, hooks.spill)
                .into_iter()
                .map(AllocatorBuilder::Process)
                .collect()
        };
        let monitor = PeerMonitor::new(config, Vec::new());
        return Ok(Network { builders, guard: Box::new(()), monitor });
    }

    let io_error = |source| ClusterError::Io { context: "cannot start the network threads".into(), source };
    let mut links = Vec::new();
    for socket in &sockets {
        links.push(match socket {
            Some(socket) => Some(Link::new(socket.try_clone().map_err(io_error)?)),
            None => None,
        });
    }
    let monitor = PeerMonitor::new(config, links);
    let beating = monitor.inner.clone();
    let heartbeat = std::thread::Builder::new()
        .name("ferroflow:heartbeat".into())
        .spawn(move || heartbeats(&beating))
        .map_err(io_error)?;
    let streams: Vec<Option<PeerStream>> = sockets
        .into_iter()
        .enumerate()
        .map(|(p, s)| s.map(|inner| PeerStream::new(inner, p, monitor.inner.clone())))
        .collect();
    let process_allocators = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, comms) = initialize_networking_from_sockets(process_allocators, streams, me, threads, hooks)
        .map_err(|e| {
            monitor.inner.stop_heartbeats();
            io_error(e)
        })?;
    let guard = NetGuard { comms: Some(comms), monitor: monitor.clone(), heartbeat: Some(heartbeat) };
    Ok(Network { builders: builders.into_iter().map(AllocatorBuilder::Tcp).collect(), guard: Box::new(guard), monitor })
}

// ---------------------------------------------------------------------------------------

/// Tags of the frames on a connection (see the module docs).
const DATA: u8 = b'D';
const HEARTBEAT: u8 = b'H';
const CANCEL: u8 = b'C';
/// Longest data frame: a longer write from timely is sent in several.
const MAX_FRAME: usize = 1 << 30;
/// Most heartbeats per time-out, and the longest pause between two.
const BEATS_PER_TIMEOUT: u32 = 4;
const MAX_BEAT_INTERVAL: Duration = Duration::from_millis(500);
/// Longest a heartbeat waits for room in a full send buffer, so that the heartbeat
/// thread keeps watching the other peers. (The buffer is full only while data is in
/// flight to the peer, which then hears that instead, or when the peer is gone.)
const BEAT_WRITE: Duration = Duration::from_millis(50);
/// Longest a failed write waits for the reading side's verdict on the peer before it
/// gives its own (see [`PeerStream::write`]).
const READER_VERDICT: Duration = Duration::from_secs(1);

/// How often heartbeats go out for a given time-out: at least [`BEATS_PER_TIMEOUT`] per
/// time-out, at most every [`MAX_BEAT_INTERVAL`], so that processes given different
/// time-outs of a second or more still satisfy each other.
fn beat_interval(timeout: Duration) -> Duration {
    (timeout / BEATS_PER_TIMEOUT).clamp(Duration::from_millis(1), MAX_BEAT_INTERVAL)
}

/// One connection's shared state: the writers' lock and when the peer was last heard.
struct Link {
    /// A clone of the socket, for heartbeats and shutting it down.
    socket: TcpStream,
    /// Held while a whole frame is written (timely's data or a heartbeat). `true` once
    /// timely sent its end marker and shut down writing: no heartbeat may follow it.
    write_closed: Mutex<bool>,
    /// When anything last arrived from the peer, in ms since [`MonitorInner::epoch`].
    heard: AtomicU64,
}

impl Link {
    fn new(socket: TcpStream) -> Link {
        Link { socket, write_closed: Mutex::new(false), heard: AtomicU64::new(0) }
    }

    fn writing(&self) -> MutexGuard<'_, bool> {
        self.write_closed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a heartbeat unless a frame is being written (the peer hears that instead).
    /// Waits at most [`BEAT_WRITE`] for room; a failure is left to the reading side.
    fn beat(&self) {
        let Ok(closed) = self.write_closed.try_lock() else { return };
        if *closed {
            return;
        }
        if self.socket.set_write_timeout(Some(BEAT_WRITE)).is_ok() {
            // One byte: it is either sent whole or not at all.
            let _ = (&self.socket).write(&[HEARTBEAT]);
            let _ = self.socket.set_write_timeout(None);
        }
    }
}

impl Link {
    /// Sends a `CANCEL` frame between timely's frames, unless timely already ended its
    /// side (the peer then needs no telling). Waits at most [`BEAT_WRITE`] for timely's
    /// writer and for room, so a peer that reads nothing cannot hold up the cancel.
    fn send_cancel(&self) {
        let deadline = Instant::now() + BEAT_WRITE;
        let closed = loop {
            match self.write_closed.try_lock() {
                Ok(closed) => break closed,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(std::sync::TryLockError::WouldBlock) => return,
            }
        };
        if !*closed && self.socket.set_write_timeout(Some(BEAT_WRITE)).is_ok() {
            let _ = (&self.socket).write(&[CANCEL]);
        }
    }
}

/// Why a peer is lost.
#[derive(Clone)]
enum Loss {
    /// Its connection broke (the error, or that it closed).
    Broken(String),
    /// Nothing came from it for the heartbeat time-out.
    Silent,
    /// It cancelled the job and said so (a `CANCEL` frame).
    Cancelled,
}

#[derive(Default)]
struct PeerState {
    /// Timely's end-of-stream marker arrived: the peer finished its side cleanly.
    finished: bool,
    /// When and why the connection broke (or fell silent) before that.
    lost: Option<(Instant, Loss)>,
}

struct MonitorInner {
    addresses: Vec<String>,
    peers: Vec<Mutex<PeerState>>,
    /// Notified when a peer is settled (`peers[p]` got `finished` or `lost`).
    settled_wake: Vec<Condvar>,
    /// One per other process (`None` for this one).
    links: Vec<Option<Link>>,
    disconnected: AtomicBool,
    /// Time zero of [`Link::heard`].
    epoch: Instant,
    heartbeat_timeout: Duration,
    /// Set (and `wake` notified) to end the heartbeat thread.
    stop: Mutex<bool>,
    wake: Condvar,
}

impl MonitorInner {
    fn lost(&self, peer: usize, why: Loss) -> bool {
        if self.disconnected.load(Ordering::SeqCst) {
            return false; // our own doing
        }
        let mut state = self.peers[peer].lock().unwrap_or_else(PoisonError::into_inner);
        if state.finished || state.lost.is_some() {
            return false;
        }
        state.lost = Some((Instant::now(), why));
        self.settled_wake[peer].notify_all();
        true
    }

    /// Timely's end-of-stream marker arrived from `peer`.
    fn finished(&self, peer: usize) {
        self.peers[peer].lock().unwrap_or_else(PoisonError::into_inner).finished = true;
        self.settled_wake[peer].notify_all();
    }

    /// Waits up to `limit` until `peer` is settled, unless this process disconnected.
    fn await_settled(&self, peer: usize, limit: Duration) {
        let state = self.peers[peer].lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self.settled_wake[peer].wait_timeout_while(state, limit, |s| {
            !(s.finished || s.lost.is_some() || self.disconnected.load(Ordering::SeqCst))
        });
    }

    /// The peer is done with, cleanly or not: no more watching it.
    fn settled(&self, peer: usize) -> bool {
        let state = self.peers[peer].lock().unwrap_or_else(PoisonError::into_inner);
        state.finished || state.lost.is_some()
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn heard(&self, peer: usize) {
        if let Some(link) = &self.links[peer] {
            link.heard.store(self.millis(), Ordering::Relaxed);
        }
    }

    fn shutdown_sockets(&self) {
        for link in self.links.iter().flatten() {
            let _ = link.socket.shutdown(Shutdown::Both);
        }
    }

    fn stop_heartbeats(&self) {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }
}

/// The heartbeat thread's loop (see the module docs).
fn heartbeats(inner: &MonitorInner) {
    let every = beat_interval(inner.heartbeat_timeout);
    // A pause this long between two rounds means this process was not running (stopped
    // itself, or starved): the silence is then ours, not the peers'.
    let stalled = (inner.heartbeat_timeout / 2).max(every * 4);
    let mut last_round = Instant::now();
    loop {
        let stop = inner.stop.lock().unwrap_or_else(PoisonError::into_inner);
        let (stop, _) =
            inner.wake.wait_timeout_while(stop, every, |stop| !*stop).unwrap_or_else(PoisonError::into_inner);
        if *stop || inner.disconnected.load(Ordering::SeqCst) {
            return;
        }
        drop(stop);
        if last_round.elapsed() > stalled {
            let now = inner.millis();
            for link in inner.links.iter().flatten() {
                link.heard.store(now, Ordering::Relaxed);
            }
        }
        last_round = Instant::now();
        for (peer, link) in inner.links.iter().enumerate() {
            let Some(link) = link else { continue };
            if inner.settled(peer) {
                continue;
            }
            link.beat();
            let silent = inner.millis().saturating_sub(link.heard.load(Ordering::Relaxed));
            if Duration::from_millis(silent) >= inner.heartbeat_timeout && inner.lost(peer, Loss::Silent) {
                // Ends timely's threads for this peer, then (MergeQueue poisoned) the workers.
                let _ = link.socket.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Watches the connections to the other processes while the job runs. Cheap to clone.
#[derive(Clone)]
pub struct PeerMonitor {
    inner: Arc<MonitorInner>,
}

impl PeerMonitor {
    fn new(config: &ClusterConfig, links: Vec<Option<Link>>) -> PeerMonitor {
        let n = config.addresses.len();
        PeerMonitor {
            inner: Arc::new(MonitorInner {
                addresses: config.addresses.clone(),
                peers: (0..n).map(|_| Mutex::new(PeerState::default())).collect(),
                settled_wake: (0..n).map(|_| Condvar::new()).collect(),
                links: if links.is_empty() { (0..n).map(|_| None).collect() } else { links },
                disconnected: AtomicBool::new(false),
                epoch: Instant::now(),
                heartbeat_timeout: config.heartbeat_timeout,
                stop: Mutex::new(false),
                wake: Condvar::new(),
            }),
        }
    }

    /// The peer lost first before it finished the job: its connection broke (it
    /// crashed, was killed, or aborted and disconnected) or nothing came from it for the
    /// heartbeat time-out (it is stopped or hung, or the network is down). `None` while
    /// every peer is fine, and for breaks caused by [`PeerMonitor::disconnect`].
    ///
    /// When a peer dies, timely's network threads and then the workers of this process
    /// panic ("timely communication error: ...", "MergeQueue poisoned."): report this
    /// error instead of those panics.
    pub fn lost(&self) -> Option<ClusterError> {
        let (process, _, loss) = self
            .inner
            .peers
            .iter()
            .enumerate()
            .filter_map(|(p, s)| {
                s.lock().unwrap_or_else(PoisonError::into_inner).lost.clone().map(|(at, loss)| (p, at, loss))
            })
            .min_by_key(|(_, at, _)| *at)?;
        let address = self.inner.addresses[process].clone();
        Some(match loss {
            Loss::Broken(detail) => ClusterError::PeerLost { process, address, detail },
            Loss::Silent => ClusterError::PeerSilent { process, address, timeout: self.inner.heartbeat_timeout },
            Loss::Cancelled => ClusterError::PeerCancelled { process },
        })
    }

    /// True once `process` has sent timely's end-of-stream marker: it finished cleanly.
    pub fn finished(&self, process: usize) -> bool {
        self.inner.peers.get(process).is_some_and(|s| s.lock().unwrap_or_else(PoisonError::into_inner).finished)
    }

    /// Shuts down every connection of this process. Call it when this process aborts
    /// the job (an error, Ctrl-C): the other processes then fail at once with
    /// [`ClusterError::PeerLost`] naming this one, instead of waiting for it, and this
    /// process's own network threads end instead of waiting for theirs: from then on
    /// they hand the workers nothing, not even a clean end a peer sent meanwhile, so a
    /// worker still waiting on a peer fails (timely's "MergeQueue poisoned").
    pub fn disconnect(&self) {
        self.inner.disconnected.store(true, Ordering::SeqCst);
        self.inner.shutdown_sockets();
        self.inner.stop_heartbeats();
    }

    /// [`PeerMonitor::disconnect`] for a job this process cancelled: each peer first gets
    /// a `CANCEL` frame, so it stops as cancelled rather than reporting this process lost.
    pub fn disconnect_cancelled(&self) {
        if !self.inner.disconnected.swap(true, Ordering::SeqCst) {
            for link in self.inner.links.iter().flatten() {
                link.send_cancel();
            }
        }
        self.disconnect();
    }

    /// True once [`PeerMonitor::disconnect`] was called.
    pub fn disconnected(&self) -> bool {
        self.inner.disconnected.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------

/// Timely's framing: six big-endian u64 per message header, the fifth is the payload
/// length; a header with length 0 marks the end of the stream (timely_communication
/// 0.32 `networking::MessageHeader`).
const HEADER_BYTES: usize = 48;
const LENGTH_AT: usize = 32;

/// Follows timely's message framing on the receiving side, to see the end marker.
struct FrameTracker {
    header: [u8; HEADER_BYTES],
    filled: usize,
    skip: u64,
    ended: bool,
}

impl Default for FrameTracker {
    fn default() -> Self {
        FrameTracker { header: [0; HEADER_BYTES], filled: 0, skip: 0, ended: false }
    }
}

impl FrameTracker {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.ended {
            if self.skip > 0 {
                let k = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= k as u64;
                data = &data[k..];
                continue;
            }
            let k = (HEADER_BYTES - self.filled).min(data.len());
            self.header[self.filled..self.filled + k].copy_from_slice(&data[..k]);
            self.filled += k;
            data = &data[k..];
            if self.filled == HEADER_BYTES {
                self.filled = 0;
                let length = u64::from_be_bytes(self.header[LENGTH_AT..LENGTH_AT + 8].try_into().expect("8 bytes"));
                if length == 0 {
                    self.ended = true;
                } else {
                    self.skip = length;
                }
            }
        }
    }
}

/// What the reading side expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Tag,
    Length { bytes: [u8; 4], got: usize },
    Payload(usize),
}

/// Takes our frames off the bytes read from a connection and hands on timely's bytes.
struct Deframer {
    expect: Expect,
    /// Bytes read ahead while looking for a frame's head.
    stash: [u8; 64],
    lo: usize,
    hi: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer { expect: Expect::Tag, stash: [0; 64], lo: 0, hi: 0 }
    }
}

/// The error [`Deframer::read`] returns for a `CANCEL` frame.
#[derive(Debug)]
struct PeerCancelled;

impl std::fmt::Display for PeerCancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the peer cancelled the job")
    }
}

impl std::error::Error for PeerCancelled {}

fn garbled(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("garbled data from the peer: {what}"))
}

impl Deframer {
    /// Reads timely's next bytes into `buf` from `source` (heartbeats are skipped);
    /// `Ok(0)` at the end of the stream.
    fn read(&mut self, source: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            while self.lo < self.hi {
                let byte = self.stash[self.lo];
                match &mut self.expect {
                    Expect::Tag => {
                        self.lo += 1;
                        match byte {
                            HEARTBEAT => {}
                            CANCEL => return Err(io::Error::new(io::ErrorKind::ConnectionAborted, PeerCancelled)),
                            DATA => self.expect = Expect::Length { bytes: [0; 4], got: 0 },
                            other => return Err(garbled(format!("unknown frame tag {other:#04x}"))),
                        }
                    }
                    Expect::Length { bytes, got } => {
                        bytes[*got] = byte;
                        *got += 1;
                        self.lo += 1;
                        if *got == 4 {
                            let length = u32::from_be_bytes(*bytes) as usize;
                            if length == 0 {
                                return Err(garbled("an empty data frame".into()));
                            }
                            self.expect = Expect::Payload(length);
                        }
                    }
                    Expect::Payload(left) => {
                        let k = (*left).min(self.hi - self.lo).min(buf.len());
                        buf[..k].copy_from_slice(&self.stash[self.lo..self.lo + k]);
                        self.lo += k;
                        self.take(k);
                        return Ok(k);
                    }
                }
            }
            if let Expect::Payload(left) = self.expect {
                // Straight into the caller's buffer, up to the end of the frame.
                let k = left.min(buf.len());
                let n = source.read(&mut buf[..k])?;
                self.take(n);
                return Ok(n);
            }
            self.lo = 0;
            self.hi = source.read(&mut self.stash)?;
            if self.hi == 0 {
                return Ok(0);
            }
        }
    }

    fn take(&mut self, n: usize) {
        if let Expect::Payload(left) = &mut self.expect {
            *left -= n;
            if *left == 0 {
                self.expect = Expect::Tag;
            }
        }
    }
}

/// Writes `head` then `body`, whole, in as few system calls as the kernel allows.
fn write_frame(mut stream: &TcpStream, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        match stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let from_head = n.min(head.len());
                head = &head[from_head..];
                body = &body[n - from_head..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A connection to one peer as timely uses it (see the module docs).
struct PeerStream {
    inner: TcpStream,
    peer: usize,
    monitor: Arc<MonitorInner>,
    deframer: Deframer,
    frames: FrameTracker,
}

/// The socket as the [`Deframer`] reads it: every arrival is news from the peer, and a
/// read interrupted by a signal is retried.
struct Hearing<'a> {
    stream: &'a TcpStream,
    peer: usize,
    monitor: &'a MonitorInner,
}

impl Read for Hearing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match (&mut &*self.stream).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(n) => {
                    if n > 0 {
                        self.monitor.heard(self.peer);
                    }
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl PeerStream {
    fn new(inner: TcpStream, peer: usize, monitor: Arc<MonitorInner>) -> PeerStream {
        PeerStream { inner, peer, monitor, deframer: Deframer::default(), frames: FrameTracker::default() }
    }

    fn link(&self) -> &Link {
        self.monitor.links[self.peer].as_ref().expect("a link per peer")
    }
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut source = Hearing { stream: &self.inner, peer: self.peer, monitor: &self.monitor };
        let read = self.deframer.read(&mut source, buf);
        if self.monitor.disconnected.load(Ordering::SeqCst) {
            // Once this process disconnected, its workers get nothing more, not even the
            // clean end a peer may have sent meanwhile (a peer answers our CANCEL with
            // one, which can arrive before our shutdown): timely's receive thread fails
            // instead, and that stops the workers still waiting on the peer.
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "this process disconnected"));
        }
        match read {
            Ok(0) => {
                if !self.frames.ended && !buf.is_empty() {
                    self.monitor.lost(self.peer, Loss::Broken("the connection closed before the job finished".into()));
                }
                Ok(0)
            }
            Ok(n) => {
                self.frames.feed(&buf[..n]);
                if self.frames.ended {
                    self.monitor.finished(self.peer);
                }
                Ok(n)
            }
            Err(e) => {
                let cancelled = e.get_ref().is_some_and(|inner| inner.is::<PeerCancelled>());
                self.monitor.lost(self.peer, if cancelled { Loss::Cancelled } else { Loss::Broken(e.to_string()) });
                Err(e)
            }
        }
    }
}

impl Write for PeerStream {
    /// Sends `buf` (up to [`MAX_FRAME`] bytes of it) as one data frame.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let body = &buf[..buf.len().min(MAX_FRAME)];
        let mut head = [DATA, 0, 0, 0, 0];
        head[1..].copy_from_slice(&(body.len() as u32).to_be_bytes());
        let written = {
            let _writing = self.link().writing();
            write_frame(&self.inner, &head, body)
        };
        match written {
            Ok(()) => Ok(body.len()),
            Err(e) => {
                // The reading side first: it still gets what the peer sent before the
                // break, and so knows why. (A peer that cancelled resets the connection
                // when our next data reaches it, which fails this write before its CANCEL
                // frame is read.)
                self.monitor.await_settled(self.peer, READER_VERDICT);
                self.monitor.lost(self.peer, Loss::Broken(e.to_string()));
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Stream for PeerStream {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(PeerStream::new(self.inner.try_clone()?, self.peer, self.monitor.clone()))
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    /// Timely shuts down writing after its end marker: no heartbeat may follow that.
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let mut closed = self.link().writing();
        if how != Shutdown::Read {
            *closed = true;
        }
        self.inner.shutdown(how)
    }
}

/// Owns timely's network threads and the heartbeat thread. Timely's own guard joins its
/// threads on drop and panics when one of them panicked (any broken connection). This
/// one never panics: when a peer was lost or the job disconnected, it shuts the sockets
/// down and leaves the threads to end by themselves (so nothing waits on a peer that
/// will never finish); otherwise it joins them, swallowing a panic (the monitor knows
/// why). Heartbeats go on until timely's threads are done, so a peer that falls silent
/// before it sent its end marker cannot hang that join.
struct NetGuard {
    comms: Option<CommsGuard>,
    monitor: PeerMonitor,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        let Some(comms) = self.comms.take() else { return };
        let heartbeat = self.heartbeat.take();
        let inner = &self.monitor.inner;
        if std::thread::panicking() || self.monitor.disconnected() || self.monitor.lost().is_some() {
            // The network threads have panicked or will as soon as the sockets are shut:
            // let them end on their own rather than join them (timely's guard would
            // re-panic with "Send thread panic", or wait on a peer that will never finish;
            // and a second panic while panicking would abort the process).
            inner.shutdown_sockets();
            inner.stop_heartbeats();
            std::mem::forget(comms);
            return;
        }
        let _ = catch_unwind(AssertUnwindSafe(move || drop(comms)));
        inner.stop_heartbeats();
        if let Some(heartbeat) = heartbeat {
            let _ = heartbeat.join();
        }
    }
}

/// Installs, once per process, a panic hook that keeps the panics a broken connection
/// causes off stderr: those of timely's network threads (`timely:send-N`,
/// `timely:recv-N`), "MergeQueue poisoned." in workers (which timely raises again when a
/// worker's allocator drops, after the worker closure returned) and "Send/Recv thread
/// panic" from timely's network guard. The engine reports
/// [`PeerMonitor::lost`] instead. Every other panic goes to the hook installed before.
pub fn quiet_network_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            let network_thread = name.starts_with("timely:send-") || name.starts_with("timely:recv-");
            let expected = payload.starts_with("timely communication error:")
                || payload.starts_with("MergeQueue poisoned")
                || payload.contains("failed to send MergeQueue")
                || payload.contains("Failed to receive MergeQueue");
            // Timely's guard, when a network thread died; NetGuard catches it.
            let guard = payload.starts_with("Send thread panic") || payload.starts_with("Recv thread panic");
            if !(guard || expected && (network_thread || name.starts_with("timely:work-"))) {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::{
        Deframer, FrameTracker, Link, PeerCancelled, PeerMonitor, PeerStream, Stream, CANCEL, DATA, HEARTBEAT,
    };
    use crate::cluster::{ClusterConfig, ClusterError};
    use std::io::{self, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::Duration;

    /// Hands out its bytes `chunk` at a time, as a socket may.
    struct Chunks {
        data: Vec<u8>,
        at: usize,
        chunk: usize,
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let k = self.chunk.min(buf.len()).min(self.data.len() - self.at);
            buf[..k].copy_from_slice(&self.data[self.at..self.at + k]);
            self.at += k;
            Ok(k)
        }
    }

    fn data_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![DATA];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// Everything the deframer hands on, read `chunk` bytes at a time into buffers of `room`.
    fn deframe(wire: &[u8], chunk: usize, room: usize) -> io::Result<Vec<u8>> {
        let mut source = Chunks { data: wire.to_vec(), at: 0, chunk };
        let mut deframer = Deframer::default();
        let mut out = Vec::new();
        let mut buf = vec![0u8; room];
        loop {
            match deframer.read(&mut source, &mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn a_cancel_frame_after_data_is_a_cancelled_peer_not_garbage() {
        let mut wire = data_frame(b"records");
        wire.extend([HEARTBEAT, CANCEL, DATA]);
        for chunk in [1, 3, 64] {
            let mut source = Chunks { data: wire.clone(), at: 0, chunk };
            let mut deframer = Deframer::default();
            let mut buf = [0u8; 64];
            let mut out = Vec::new();
            let error = loop {
                match deframer.read(&mut source, &mut buf) {
                    Ok(0) => panic!("the stream ended without the cancel"),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) => break e,
                }
            };
            assert_eq!(out, b"records", "chunk {chunk}");
            assert!(error.get_ref().is_some_and(|e| e.is::<PeerCancelled>()), "chunk {chunk}: {error}");
        }
    }

    #[test]
    fn deframer_hands_on_the_data_and_drops_heartbeats_at_any_chunking() {
        let payloads: Vec<Vec<u8>> =
            vec![b"first".to_vec(), (0..=255u8).cycle().take(1000).collect(), vec![HEARTBEAT; 70], vec![DATA; 3]];
        let mut wire = vec![HEARTBEAT, HEARTBEAT];
        let mut expected = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            wire.extend(data_frame(p));
            wire.extend(std::iter::repeat_n(HEARTBEAT, i * 40));
            expected.extend_from_slice(p);
        }
        for chunk in [1, 2, 3, 5, 64, 65, 100, 4096] {
            for room in [1, 7, 64, 5000] {
                assert_eq!(deframe(&wire, chunk, room).unwrap(), expected, "chunk {chunk}, room {room}");
            }
        }
    }

    #[test]
    fn deframer_refuses_what_is_not_our_framing() {
        for wire in [b"GET / HTTP/1.1".to_vec(), vec![DATA, 0, 0, 0, 0]] {
            let error = deframe(&wire, 100, 100).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert!(error.to_string().starts_with("garbled data from the peer"), "{error}");
        }
        // The end of the stream in the middle of a frame is the end (timely then panics).
        assert_eq!(deframe(&data_frame(b"cut short")[..7], 3, 100).unwrap(), b"cu".to_vec());
    }

    fn header(length: u64) -> Vec<u8> {
        let mut h = vec![0u8; 48];
        h[32..40].copy_from_slice(&length.to_be_bytes());
        h[0..8].copy_from_slice(&7u64.to_be_bytes());
        h
    }

    /// Process 0's connection to process 1 as timely gets it, its monitor, and process
    /// 1's end of the connection, raw.
    fn connected() -> (PeerStream, PeerMonitor, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let theirs = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        let config = ClusterConfig::new(0, vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()], vec![7; 32]);
        let monitor = PeerMonitor::new(&config, vec![None, Some(Link::new(ours.try_clone().unwrap()))]);
        (PeerStream::new(ours, 1, monitor.inner.clone()), monitor, theirs)
    }

    /// The peer answers our CANCEL with timely's clean end of stream, and it arrives
    /// before our shutdown does: the workers must not take it for the end of a finished
    /// job (they would wait for the peer forever), the receive thread must fail.
    #[test]
    fn after_disconnecting_nothing_more_is_read_not_even_a_clean_end() {
        let (mut stream, monitor, mut theirs) = connected();
        theirs.write_all(&data_frame(&header(0))).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // arrived
        monitor.disconnect_cancelled();
        let mut buf = [0u8; 64];
        let error = stream.read(&mut buf).expect_err("a read after disconnecting fails");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted, "{error}");
        assert!(!monitor.finished(1) && monitor.lost().is_none());
    }

    /// A peer that cancelled and shut down resets the connection when our next data
    /// reaches it, so a write can fail before the receive thread has read the CANCEL
    /// frame that came first: the peer is still reported cancelled, not lost.
    #[test]
    fn a_write_failing_before_the_cancel_is_read_still_reports_a_cancelled_peer() {
        let (mut stream, monitor, theirs) = connected();
        (&theirs).write_all(&[CANCEL]).unwrap();
        theirs.shutdown(Shutdown::Both).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // This write reaches the peer, which answers with a reset.
        stream.write_all(b"data for a peer that is gone").expect("a half-closed connection takes data");
        std::thread::sleep(Duration::from_millis(50));
        let mut reader = Stream::try_clone(&stream).unwrap();
        let reading = std::thread::spawn(move || {
            // Reads only once the write below has failed (it waits for this verdict).
            std::thread::sleep(Duration::from_millis(100));
            let mut buf = [0u8; 64];
            reader.read(&mut buf)
        });
        let failed = (0..100).find_map(|_| stream.write(b"more").err());
        assert!(failed.is_some(), "writing to a reset connection fails");
        let read = reading.join().unwrap().expect_err("the CANCEL frame");
        assert!(read.get_ref().is_some_and(|e| e.is::<PeerCancelled>()), "{read}");
        let lost = monitor.lost().expect("the peer is lost");
        assert!(matches!(lost, ClusterError::PeerCancelled { process: 1 }), "{lost:?}");
    }

    #[test]
    fn frame_tracker_sees_the_end_marker_only_at_a_message_boundary() {
        let mut stream = header(5);
        stream.extend_from_slice(&[0u8; 5]); // a payload of zeros is no end marker
        stream.extend(header(100));
        stream.extend_from_slice(&[0u8; 100]);
        let end = header(0);
        for chunk in [1, 3, 47, 48, 1000] {
            let mut tracker = FrameTracker::default();
            for piece in stream.chunks(chunk) {
                tracker.feed(piece);
            }
            assert!(!tracker.ended, "chunk {chunk}");
            for piece in end.chunks(chunk) {
                tracker.feed(piece);
            }
            assert!(tracker.ended, "chunk {chunk}");
        }
    }
}
