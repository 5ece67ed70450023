//! Handing the connected sockets to timely, and watching them while the job runs.
//!
//! Each socket is wrapped in a [`PeerStream`] before timely gets it. The wrapper notes
//! when a peer's connection breaks *before* timely's end-of-stream marker (a peer that
//! crashed or was killed) so the engine can name it ([`PeerMonitor::lost`]), retries reads
//! interrupted by a signal (timely would panic on `EINTR`), and lets the engine close every
//! connection at once ([`PeerMonitor::disconnect`]) so the other processes notice an abort.

use std::any::Any;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Instant;

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
    /// `execute_from`'s `others`: owns timely's network threads. Dropped (by timely's
    /// `WorkerGuards`, after the workers) it joins them without ever panicking.
    pub guard: Box<dyn Any + Send>,
    pub monitor: PeerMonitor,
}

/// Builds timely's allocators on top of the sockets [`super::connect`] returned (the
/// same as timely's `Config::Cluster`, minus its own connection code). With a single
/// process there are no sockets and this gives thread or process allocators.
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
    let mut kept = Vec::new();
    for (p, socket) in sockets.iter().enumerate() {
        if let Some(socket) = socket {
            kept.push((p, socket.try_clone().map_err(io_error)?));
        }
    }
    let monitor = PeerMonitor::new(config, kept);
    let streams: Vec<Option<PeerStream>> = sockets
        .into_iter()
        .enumerate()
        .map(|(p, s)| s.map(|inner| PeerStream::new(inner, p, monitor.inner.clone())))
        .collect();
    let process_allocators = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, comms) =
        initialize_networking_from_sockets(process_allocators, streams, me, threads, hooks).map_err(io_error)?;
    let guard = NetGuard { comms: Some(comms), monitor: monitor.clone() };
    Ok(Network { builders: builders.into_iter().map(AllocatorBuilder::Tcp).collect(), guard: Box::new(guard), monitor })
}

// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct PeerState {
    /// Timely's end-of-stream marker arrived: the peer finished its side cleanly.
    finished: bool,
    /// When and why the connection broke before that.
    lost: Option<(Instant, String)>,
}

struct MonitorInner {
    addresses: Vec<String>,
    peers: Vec<Mutex<PeerState>>,
    /// Clones of the sockets, to shut them down.
    sockets: Vec<(usize, TcpStream)>,
    disconnected: AtomicBool,
}

impl MonitorInner {
    fn lost(&self, peer: usize, why: String) {
        if self.disconnected.load(Ordering::SeqCst) {
            return; // our own doing
        }
        let mut state = self.peers[peer].lock().unwrap();
        if !state.finished && state.lost.is_none() {
            state.lost = Some((Instant::now(), why));
        }
    }

    fn shutdown_sockets(&self) {
        for (_, socket) in &self.sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Watches the connections to the other processes while the job runs. Cheap to clone.
#[derive(Clone)]
pub struct PeerMonitor {
    inner: Arc<MonitorInner>,
}

impl PeerMonitor {
    fn new(config: &ClusterConfig, sockets: Vec<(usize, TcpStream)>) -> PeerMonitor {
        let n = config.addresses.len();
        PeerMonitor {
            inner: Arc::new(MonitorInner {
                addresses: config.addresses.clone(),
                peers: (0..n).map(|_| Mutex::new(PeerState::default())).collect(),
                sockets,
                disconnected: AtomicBool::new(false),
            }),
        }
    }

    /// The peer whose connection broke first before it finished the job (it crashed,
    /// was killed, or aborted and disconnected), as the error to report. `None` while
    /// every connection is fine, and for breaks caused by [`PeerMonitor::disconnect`].
    ///
    /// When a peer dies, timely's network threads and then the workers of this process
    /// panic ("timely communication error: ...", "MergeQueue poisoned."): report this
    /// error instead of those panics.
    pub fn lost(&self) -> Option<ClusterError> {
        let (process, _, detail) = self
            .inner
            .peers
            .iter()
            .enumerate()
            .filter_map(|(p, s)| s.lock().unwrap().lost.clone().map(|(at, why)| (p, at, why)))
            .min_by_key(|(_, at, _)| *at)?;
        Some(ClusterError::PeerLost { process, address: self.inner.addresses[process].clone(), detail })
    }

    /// True once `process` has sent timely's end-of-stream marker: it finished cleanly.
    pub fn finished(&self, process: usize) -> bool {
        self.inner.peers.get(process).is_some_and(|s| s.lock().unwrap().finished)
    }

    /// Shuts down every connection of this process. Call it when this process aborts
    /// the job (an error, Ctrl-C): the other processes then fail at once with
    /// [`ClusterError::PeerLost`] naming this one, instead of waiting for it, and this
    /// process's own network threads end instead of waiting for theirs.
    pub fn disconnect(&self) {
        self.inner.disconnected.store(true, Ordering::SeqCst);
        self.inner.shutdown_sockets();
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

/// A connection to one peer as timely uses it (see the module docs).
struct PeerStream {
    inner: TcpStream,
    peer: usize,
    monitor: Arc<MonitorInner>,
    frames: FrameTracker,
}

impl PeerStream {
    fn new(inner: TcpStream, peer: usize, monitor: Arc<MonitorInner>) -> PeerStream {
        PeerStream { inner, peer, monitor, frames: FrameTracker::default() }
    }
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(0) => {
                    if !self.frames.ended && !buf.is_empty() {
                        self.monitor.lost(self.peer, "the connection closed before the job finished".into());
                    }
                    return Ok(0);
                }
                Ok(n) => {
                    self.frames.feed(&buf[..n]);
                    if self.frames.ended {
                        self.monitor.peers[self.peer].lock().unwrap().finished = true;
                    }
                    return Ok(n);
                }
                Err(e) => {
                    self.monitor.lost(self.peer, e.to_string());
                    return Err(e);
                }
            }
        }
    }
}

impl Write for PeerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf);
        if let Err(e) = &written {
            if e.kind() != io::ErrorKind::Interrupted {
                self.monitor.lost(self.peer, e.to_string());
            }
        }
        written
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

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }
}

/// Owns timely's network threads. Timely's own guard joins them on drop and panics when
/// one of them panicked (any broken connection). This one never panics: when a peer was
/// lost or the job disconnected, it shuts the sockets down and leaves the threads to end
/// by themselves (so nothing waits on a peer that will never finish); otherwise it joins
/// them, swallowing a panic (the monitor knows why).
struct NetGuard {
    comms: Option<CommsGuard>,
    monitor: PeerMonitor,
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        let Some(comms) = self.comms.take() else { return };
        if std::thread::panicking() {
            // A second panic would abort the process: do not join, just cut the threads loose.
            self.monitor.inner.shutdown_sockets();
            std::mem::forget(comms);
            return;
        }
        if self.monitor.disconnected() || self.monitor.lost().is_some() {
            // The network threads have panicked or will as soon as the sockets are shut:
            // let them end on their own rather than join them (timely's guard would
            // re-panic with "Send thread panic", or wait on a peer that will never finish).
            self.monitor.inner.shutdown_sockets();
            std::mem::forget(comms);
            return;
        }
        let _ = catch_unwind(AssertUnwindSafe(move || drop(comms)));
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
    use super::FrameTracker;

    fn header(length: u64) -> Vec<u8> {
        let mut h = vec![0u8; 48];
        h[32..40].copy_from_slice(&length.to_be_bytes());
        h[0..8].copy_from_slice(&7u64.to_be_bytes());
        h
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
