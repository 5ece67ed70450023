//! Opening, authenticating and confirming the connections between the processes.
//!
//! Phase 1 (the mesh): process `me` accepts processes `> me` on its listener and dials
//! processes `< me`, each dial on its own thread, retrying every [`RETRY`] until the
//! deadline; every accepted connection is authenticated on its own thread, so a silent
//! or hostile client cannot hold up the real peers.
//!
//! Phase 2 (the start barrier), over the authenticated connections to process 0: every
//! other process reports "ready" or why it failed; process 0 answers all of them with
//! "go", or with the first failure, which every process then reports. So either every
//! process starts the job or none does, and each says why.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::error::{ClusterError, MissingPeer, REFUSED_NAMED};
use super::handshake::{
    connector_tag, listener_tag, verify_connector, verify_listener, DeadlineIo, Hello, HelloError, HELLO_LEN, MAC_LEN,
    PROTOCOL,
};
use super::log::{self, log, Refusals};
use super::ClusterConfig;

/// Pause between two attempts to dial a process that is not up yet.
pub(crate) const RETRY: Duration = Duration::from_millis(50);
/// How often the accept loop looks for new connections, the cancel flag and the deadline.
const POLL: Duration = Duration::from_millis(10);
/// Longest single TCP connect attempt (a host that drops packets makes it last this long).
const CONNECT_ATTEMPT: Duration = Duration::from_secs(1);
/// Longest handshake on one connection.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most handshakes in progress at once on the listener; more connections are dropped.
const MAX_HANDSHAKES: usize = 32;
/// Extra time process 0 gives the others to report, beyond the connect timeout.
const BARRIER_SLACK: Duration = Duration::from_secs(5);
/// Longest wait for stderr to take the start-up's log lines.
const LOG_FLUSH: Duration = Duration::from_millis(200);

// Start barrier messages (code u8 | length u16 | text).
const READY: u8 = b'R';
const FAILED: u8 = b'F';
const GO: u8 = b'G';
const ABORT: u8 = b'A';

struct Ctx<'a> {
    config: &'a ClusterConfig,
    cancel: &'a AtomicBool,
    deadline: Instant,
    slots: Mutex<Vec<Option<TcpStream>>>,
    last_error: Mutex<Vec<Option<String>>>,
    refusals: Refusals,
    /// Connections that failed authentication: the first addresses, and how many.
    auth_failed: Mutex<(Vec<String>, usize)>,
    fatal: Mutex<Option<ClusterError>>,
    stop: AtomicBool,
    handshakes: AtomicUsize,
}

impl Ctx<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.cancel.load(Ordering::SeqCst)
    }

    fn fail(&self, error: ClusterError) {
        let mut fatal = self.fatal.lock().unwrap();
        if fatal.is_none() {
            *fatal = Some(error);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Sleeps up to `pause` (not past the deadline), waking early when stopped.
    fn pause(&self, pause: Duration) {
        let until = (Instant::now() + pause).min(self.deadline);
        while !self.stopped() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            thread::sleep((until - now).min(POLL));
        }
    }

    fn address(&self, process: usize) -> &str {
        &self.config.addresses[process]
    }

    fn missing(&self) -> Vec<MissingPeer> {
        let slots = self.slots.lock().unwrap();
        let last_error = self.last_error.lock().unwrap();
        (0..slots.len())
            .filter(|&p| p != self.config.process && slots[p].is_none())
            .map(|p| MissingPeer {
                process: p,
                address: self.config.addresses[p].clone(),
                last_error: last_error[p].clone(),
            })
            .collect()
    }
}

/// Phase 1 then phase 2; see the module docs.
pub(crate) fn establish(
    config: &ClusterConfig,
    listener: Option<TcpListener>,
    cancel: &AtomicBool,
) -> Result<Vec<Option<TcpStream>>, ClusterError> {
    let n = config.addresses.len();
    let ctx = Ctx {
        config,
        cancel,
        deadline: Instant::now() + config.connect_timeout,
        slots: Mutex::new((0..n).map(|_| None).collect()),
        last_error: Mutex::new(vec![None; n]),
        refusals: Refusals::new(config.process),
        auth_failed: Mutex::new((Vec::new(), 0)),
        fatal: Mutex::new(None),
        stop: AtomicBool::new(false),
        handshakes: AtomicUsize::new(0),
    };
    let mesh = mesh(&ctx, listener);
    ctx.refusals.finish();
    log::flush(LOG_FLUSH);
    let mut sockets = std::mem::take(&mut *ctx.slots.lock().unwrap());
    let outcome = if config.process == 0 {
        coordinate(config, cancel, &sockets, mesh)
    } else {
        report(config, cancel, &sockets, mesh)
    };
    outcome?;
    for socket in sockets.iter_mut().flatten() {
        let restore = socket
            .set_read_timeout(None)
            .and_then(|_| socket.set_write_timeout(None))
            .and_then(|_| socket.set_nonblocking(false))
            .and_then(|_| socket.set_nodelay(true));
        restore
            .map_err(|source| ClusterError::Io { context: "cannot configure a cluster connection".into(), source })?;
    }
    Ok(sockets)
}

fn mesh(ctx: &Ctx<'_>, listener: Option<TcpListener>) -> Result<(), ClusterError> {
    let me = ctx.config.process;
    if let Some(listener) = &listener {
        listener
            .set_nonblocking(true)
            .map_err(|source| ClusterError::Io { context: "cannot poll the cluster listener".into(), source })?;
    }
    thread::scope(|scope| {
        for peer in 0..me {
            let spawned = thread::Builder::new()
                .name(format!("ferroflow:dial-{peer}"))
                .spawn_scoped(scope, move || dial(ctx, peer));
            if let Err(source) = spawned {
                ctx.fail(ClusterError::Io { context: "cannot start a connection thread".into(), source });
            }
        }
        let mut accept_error: Option<String> = None;
        let outcome = loop {
            if let Some(error) = ctx.fatal.lock().unwrap().take() {
                break Err(error);
            }
            if ctx.slots.lock().unwrap().iter().enumerate().all(|(p, s)| p == me || s.is_some()) {
                break Ok(());
            }
            if ctx.cancel.load(Ordering::SeqCst) {
                break Err(ClusterError::Cancelled { waiting_for: ctx.missing() });
            }
            if Instant::now() >= ctx.deadline {
                let (refused, refused_count) = ctx.auth_failed.lock().unwrap().clone();
                break Err(ClusterError::Timeout {
                    timeout: ctx.config.connect_timeout,
                    missing: ctx.missing(),
                    refused,
                    refused_count,
                });
            }
            if let Some(listener) = &listener {
                match listener.accept() {
                    Ok((stream, from)) => {
                        if ctx.handshakes.load(Ordering::SeqCst) >= MAX_HANDSHAKES {
                            ctx.refusals.refused(from, "too many handshakes in progress");
                            continue;
                        }
                        ctx.handshakes.fetch_add(1, Ordering::SeqCst);
                        let spawned = thread::Builder::new()
                            .name("ferroflow:accept".into())
                            .spawn_scoped(scope, move || answer(ctx, stream, from));
                        if spawned.is_err() {
                            ctx.handshakes.fetch_sub(1, Ordering::SeqCst);
                        }
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        // e.g. out of file descriptors: say it once, not every poll.
                        let message = format!("accepting a connection failed: {e}");
                        if accept_error.as_ref() != Some(&message) {
                            log(me, &message);
                            accept_error = Some(message);
                        }
                    }
                }
            }
            thread::sleep(POLL);
        };
        ctx.stop.store(true, Ordering::SeqCst);
        outcome
    })
    // The listener is dropped here: nothing can connect any more.
}

// ---------------------------------------------------------------------------------------
// Dialling a lower process.

enum Attempt {
    /// Worth trying again (not up yet, connection reset, ...): why, for the timeout message.
    Retry(String),
    Fatal(ClusterError),
    Stopped,
}

fn dial(ctx: &Ctx<'_>, peer: usize) {
    while !ctx.stopped() && Instant::now() < ctx.deadline {
        match dial_once(ctx, peer) {
            Ok(stream) => {
                ctx.slots.lock().unwrap()[peer] = Some(stream);
                return;
            }
            Err(Attempt::Retry(why)) => ctx.last_error.lock().unwrap()[peer] = Some(why),
            Err(Attempt::Fatal(error)) => return ctx.fail(error),
            Err(Attempt::Stopped) => return,
        }
        ctx.pause(RETRY);
    }
}

fn dial_once(ctx: &Ctx<'_>, peer: usize) -> Result<TcpStream, Attempt> {
    let address = ctx.address(peer);
    let targets: Vec<SocketAddr> =
        address.to_socket_addrs().map_err(|e| Attempt::Retry(format!("cannot resolve {address}: {e}")))?.collect();
    let mut last = None;
    let mut stream = None;
    for target in targets {
        let left = ctx.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&target, left.min(CONNECT_ATTEMPT)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = stream.ok_or_else(|| {
        Attempt::Retry(last.map_or_else(|| format!("{address} resolves to no address"), |e| e.to_string()))
    })?;
    let _ = stream.set_nodelay(true);
    connector_handshake(ctx, peer, &stream)?;
    Ok(stream)
}

fn connector_handshake(ctx: &Ctx<'_>, peer: usize, stream: &TcpStream) -> Result<(), Attempt> {
    let config = ctx.config;
    let (me, n, address) = (config.process, config.addresses.len(), ctx.address(peer));
    let stop = || ctx.stopped();
    let io = DeadlineIo { stream, deadline: ctx.deadline.min(Instant::now() + HANDSHAKE_TIMEOUT), stop: &stop };
    let retry = |what: &str, e: io::Error| {
        if ctx.stopped() {
            Attempt::Stopped
        } else {
            Attempt::Retry(format!("{what}: {e}"))
        }
    };

    let hello_c = Hello::new(me, peer, n, config.threads, config.fingerprint)
        .map_err(|source| Attempt::Fatal(ClusterError::Io { context: "cannot start the handshake".into(), source }))?
        .encode();
    io.write_all(&hello_c).map_err(|e| retry("sending the handshake", e))?;
    let mut reply = [0u8; HELLO_LEN + MAC_LEN];
    io.read_exact(&mut reply).map_err(|e| retry("waiting for the handshake", e))?;
    let hello_l: [u8; HELLO_LEN] = reply[..HELLO_LEN].try_into().expect("hello length");
    let theirs = Hello::decode(&hello_l).map_err(|e| {
        Attempt::Fatal(ClusterError::Mismatch(match e {
            HelloError::NotFerroflow => format!(
                "{address} (process {peer} in --addresses) answered, but it is not a ferroflow process: \
                 check --addresses"
            ),
            HelloError::Version(v) => format!(
                "process {peer} at {address} speaks version {v} of the cluster protocol and this process version \
                 {PROTOCOL}: run the same ferroflow version on every process"
            ),
        }))
    })?;
    if !verify_listener(&config.secret, &hello_c, &hello_l, &reply[HELLO_LEN..]) {
        // A wrong proof, so that the listener logs the refusal rather than a dropped connection.
        let _ = io.write_all(&[0u8; MAC_LEN]);
        return Err(Attempt::Fatal(ClusterError::Auth { process: peer, address: address.to_string() }));
    }
    io.write_all(&connector_tag(&config.secret, &hello_c, &hello_l)).map_err(|e| retry("sending the proof", e))?;

    // The listener is authenticated: whatever differs now is a configuration error.
    if theirs.from as usize != peer {
        return Err(Attempt::Fatal(ClusterError::Mismatch(format!(
            "the process at {address} is process {}, not process {peer}: give every process the same \
             --addresses, in the same order",
            theirs.from
        ))));
    }
    if theirs.processes as usize != n {
        return Err(Attempt::Fatal(ClusterError::Mismatch(format!(
            "process {peer} at {address} was started with {} addresses and this process with {n}: give every \
             process the same --addresses",
            theirs.processes
        ))));
    }
    if theirs.threads as usize != config.threads {
        return Err(Attempt::Fatal(ClusterError::Mismatch(format!(
            "process {peer} at {address} runs {} worker threads and this process {}: start every process with \
             the same number of workers",
            theirs.threads, config.threads
        ))));
    }
    if theirs.fingerprint != config.fingerprint {
        return Err(Attempt::Fatal(ClusterError::JobMismatch {
            process: peer,
            address: address.to_string(),
            ours: config.fingerprint,
            theirs: theirs.fingerprint,
        }));
    }
    let (code, message) = io.read_message().map_err(|e| retry("waiting to be accepted", e))?;
    if code != 0 {
        return Err(Attempt::Fatal(ClusterError::Mismatch(format!(
            "process {peer} at {address} refused this process (process {me}): {message}"
        ))));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Answering a higher process.

enum Refusal {
    /// Refused, logged; keep waiting for the real peer.
    Log(String),
    /// Failed authentication: logged and remembered for the timeout message.
    Auth(String),
    /// An authenticated peer with an inconsistent configuration: the start fails.
    Fatal(ClusterError),
    Stopped,
}

fn answer(ctx: &Ctx<'_>, stream: TcpStream, from: SocketAddr) {
    let outcome = listener_handshake(ctx, &stream, from);
    match outcome {
        Ok(()) => {}
        Err(Refusal::Log(why)) => ctx.refusals.refused(from, &why),
        Err(Refusal::Auth(why)) => {
            {
                let mut auth_failed = ctx.auth_failed.lock().unwrap();
                if auth_failed.0.len() < REFUSED_NAMED {
                    auth_failed.0.push(from.to_string());
                }
                auth_failed.1 += 1;
            }
            ctx.refusals.refused(from, &why);
        }
        Err(Refusal::Fatal(error)) => ctx.fail(error),
        Err(Refusal::Stopped) => {}
    }
    ctx.handshakes.fetch_sub(1, Ordering::SeqCst);
}

fn listener_handshake(ctx: &Ctx<'_>, stream: &TcpStream, from: SocketAddr) -> Result<(), Refusal> {
    let config = ctx.config;
    let (me, n) = (config.process, config.addresses.len());
    // Accepted sockets inherit non-blocking mode on some platforms.
    stream.set_nonblocking(false).map_err(|e| Refusal::Log(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let stop = || ctx.stopped();
    let io = DeadlineIo { stream, deadline: ctx.deadline.min(Instant::now() + HANDSHAKE_TIMEOUT), stop: &stop };
    let refuse = |what: &str, e: io::Error| {
        if ctx.stopped() {
            Refusal::Stopped
        } else {
            Refusal::Log(format!("{what}: {e}"))
        }
    };

    let mut hello_c = [0u8; HELLO_LEN];
    io.read_exact(&mut hello_c).map_err(|e| refuse("no ferroflow handshake", e))?;
    let theirs = Hello::decode(&hello_c).map_err(|e| {
        Refusal::Log(match e {
            HelloError::NotFerroflow => "it is not a ferroflow process".to_string(),
            HelloError::Version(v) => format!(
                "it speaks version {v} of the cluster protocol and this process version {PROTOCOL}: run the same \
                 ferroflow version on every process"
            ),
        })
    })?;
    let hello_l = Hello::new(me, theirs.from as usize, n, config.threads, config.fingerprint)
        .map_err(|e| Refusal::Log(e.to_string()))?
        .encode();
    let mut reply = [0u8; HELLO_LEN + MAC_LEN];
    reply[..HELLO_LEN].copy_from_slice(&hello_l);
    reply[HELLO_LEN..].copy_from_slice(&listener_tag(&config.secret, &hello_c, &hello_l));
    io.write_all(&reply).map_err(|e| refuse("sending the handshake", e))?;
    let mut proof = [0u8; MAC_LEN];
    io.read_exact(&mut proof).map_err(|e| refuse("waiting for its proof", e))?;
    if !verify_connector(&config.secret, &hello_c, &hello_l, &proof) {
        return Err(Refusal::Auth(format!(
            "it claimed to be process {} but failed authentication (wrong or missing secret)",
            theirs.from
        )));
    }

    // Authenticated.
    let peer = theirs.from as usize;
    let known = |p: usize| config.addresses.get(p).cloned().unwrap_or_else(|| from.to_string());
    let reject = |tell_peer: String, fatal: Option<ClusterError>| {
        let _ = io.write_message(1, &tell_peer);
        match fatal {
            Some(error) => Refusal::Fatal(error),
            None => Refusal::Log(tell_peer),
        }
    };
    if theirs.processes as usize != n {
        let mine = format!(
            "process {peer} (connecting from {from}) was started with {} addresses and this process with {n}: give \
             every process the same --addresses",
            theirs.processes
        );
        return Err(reject(format!("it was started with {n} addresses"), Some(ClusterError::Mismatch(mine))));
    }
    if theirs.to as usize != me || peer <= me || peer >= n {
        let mine = format!(
            "a process connecting from {from} authenticated as process {peer} and dialled {} as process {}, but \
             this is process {me}: check --process-id and --addresses on every process",
            config.addresses[me], theirs.to
        );
        return Err(reject(mine.clone(), Some(ClusterError::Mismatch(mine))));
    }
    if theirs.threads as usize != config.threads {
        let mine = format!(
            "process {peer} at {} runs {} worker threads and this process {}: start every process with the same \
             number of workers",
            known(peer),
            theirs.threads,
            config.threads
        );
        return Err(reject(mine.clone(), Some(ClusterError::Mismatch(mine))));
    }
    if theirs.fingerprint != config.fingerprint {
        let error = ClusterError::JobMismatch {
            process: peer,
            address: known(peer),
            ours: config.fingerprint,
            theirs: theirs.fingerprint,
        };
        return Err(reject("it runs a different job".into(), Some(error)));
    }
    let mut slots = ctx.slots.lock().unwrap();
    if slots[peer].is_some() {
        drop(slots);
        return Err(reject(
            format!(
                "process {peer} is already connected to it (from another address): was --process-id {peer} given \
                 to two processes?"
            ),
            None,
        ));
    }
    let kept = stream.try_clone().map_err(|e| Refusal::Log(e.to_string()))?;
    io.write_message(0, "").map_err(|e| refuse("accepting it", e))?;
    slots[peer] = Some(kept);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Phase 2: the start barrier.

fn send_message(stream: &TcpStream, code: u8, text: &str) -> io::Result<()> {
    let never = || false;
    DeadlineIo { stream, deadline: Instant::now() + Duration::from_secs(1), stop: &never }.write_message(code, text)
}

fn abort_text(origin: usize, error: &dyn std::fmt::Display) -> String {
    format!("{origin} {error}")
}

fn parse_abort(text: &str) -> ClusterError {
    match text.split_once(' ').and_then(|(p, m)| Some((p.parse::<usize>().ok()?, m))) {
        Some((process, message)) => ClusterError::PeerFailed { process, message: message.to_string() },
        None => ClusterError::PeerFailed { process: 0, message: text.to_string() },
    }
}

fn closed_during_start(process: usize) -> ClusterError {
    ClusterError::PeerFailed {
        process,
        message: "it closed its connection while the cluster was starting; see its own error output".into(),
    }
}

/// Process 0: collects every other process's report, then tells all of them go or abort.
fn coordinate(
    config: &ClusterConfig,
    cancel: &AtomicBool,
    sockets: &[Option<TcpStream>],
    mesh: Result<(), ClusterError>,
) -> Result<(), ClusterError> {
    let abort_all = |origin: usize, error: &dyn std::fmt::Display, skip: Option<usize>| {
        let text = abort_text(origin, error);
        for (p, socket) in sockets.iter().enumerate() {
            if let (Some(socket), true) = (socket, Some(p) != skip) {
                let _ = send_message(socket, ABORT, &text);
            }
        }
    };
    if let Err(error) = mesh {
        abort_all(0, &error, None);
        return Err(error);
    }
    let deadline = Instant::now() + config.connect_timeout + BARRIER_SLACK;
    let mut pending: Vec<usize> = (1..sockets.len()).collect();
    let never = || false;
    while !pending.is_empty() {
        if cancel.load(Ordering::SeqCst) {
            let error = ClusterError::Cancelled { waiting_for: Vec::new() };
            abort_all(0, &"it was cancelled", None);
            return Err(error);
        }
        if Instant::now() >= deadline {
            let list: Vec<String> = pending.iter().map(|p| p.to_string()).collect();
            let error = ClusterError::Mismatch(format!(
                "process(es) {} connected to process 0 but did not finish connecting to the others within {} s; \
                 see their own error output",
                list.join(", "),
                (config.connect_timeout + BARRIER_SLACK).as_secs()
            ));
            abort_all(0, &error, None);
            return Err(error);
        }
        let mut still = Vec::new();
        for &p in &pending {
            let socket = sockets[p].as_ref().expect("the mesh is complete");
            let _ = socket.set_read_timeout(Some(Duration::from_millis(1)));
            let mut byte = [0u8; 1];
            let failure = match socket.peek(&mut byte) {
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    still.push(p);
                    continue;
                }
                Ok(0) | Err(_) => closed_during_start(p),
                Ok(_) => {
                    let io = DeadlineIo { stream: socket, deadline: Instant::now() + HANDSHAKE_TIMEOUT, stop: &never };
                    match io.read_message() {
                        Ok((READY, _)) => continue,
                        Ok((FAILED, message)) => ClusterError::PeerFailed { process: p, message },
                        _ => closed_during_start(p),
                    }
                }
            };
            let message = match &failure {
                ClusterError::PeerFailed { message, .. } => message.clone(),
                other => other.to_string(),
            };
            abort_all(p, &message, Some(p));
            return Err(failure);
        }
        pending = still;
        if !pending.is_empty() {
            thread::sleep(POLL);
        }
    }
    for socket in sockets.iter().flatten() {
        send_message(socket, GO, "").map_err(|source| ClusterError::Io {
            context: "cannot tell the other processes to start".into(),
            source,
        })?;
    }
    Ok(())
}

/// Any process but 0: reports to process 0 and waits for its go.
fn report(
    config: &ClusterConfig,
    cancel: &AtomicBool,
    sockets: &[Option<TcpStream>],
    mesh: Result<(), ClusterError>,
) -> Result<(), ClusterError> {
    let Some(coordinator) = sockets[0].as_ref() else {
        return mesh.and(Err(closed_during_start(0)));
    };
    if let Err(error) = mesh {
        let _ = send_message(coordinator, FAILED, &error.to_string());
        return Err(error);
    }
    send_message(coordinator, READY, "").map_err(|_| closed_during_start(0))?;
    let stop = || cancel.load(Ordering::SeqCst);
    let deadline = Instant::now() + 2 * config.connect_timeout + BARRIER_SLACK;
    let io = DeadlineIo { stream: coordinator, deadline, stop: &stop };
    match io.read_message() {
        Ok((GO, _)) => Ok(()),
        Ok((ABORT, text)) => Err(parse_abort(&text)),
        Ok(_) => Err(closed_during_start(0)),
        Err(_) if cancel.load(Ordering::SeqCst) => {
            let _ = send_message(coordinator, FAILED, "it was cancelled");
            Err(ClusterError::Cancelled { waiting_for: Vec::new() })
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(ClusterError::PeerFailed {
            process: 0,
            message: "it never confirmed that every process was connected; see its own error output".into(),
        }),
        Err(_) => Err(closed_during_start(0)),
    }
}
