//! Multi-process mode: connecting the processes of a job, and handing the connections
//! to timely.
//!
//! A job on `N` processes is started as `--addresses h0:p0,h1:p1,... --process-id i` on
//! each (one address per process). Process `i` listens on `addresses[i]`, binding exactly
//! that address, accepts the processes with higher ids and dials the ones with lower ids.
//! Unlike timely's own `Config::Cluster` start-up, this never prints to stdout, retries
//! every 50 ms instead of every second, gives up after a timeout naming the processes
//! that never came, can be cancelled (Ctrl-C), and lets no record flow before the peer
//! proved it knows the job's shared secret (HMAC-SHA256 challenge-response, see
//! `handshake.rs`) and runs the same job (the same plan fingerprint, process and worker
//! counts). Refused connections are summarised on stderr (the first with its address,
//! then counts), never blocking the start when nobody reads stderr.
//!
//! ```ignore
//! use std::sync::atomic::AtomicBool;
//! use ferroflow_engine::cluster::{self, ClusterConfig};
//!
//! let config = ClusterConfig::new(process_id, addresses, cluster::secret_from_env_or_file(None)?)
//!     .fingerprint(plan_hash);
//! let cancel = AtomicBool::new(false); // set it from the Ctrl-C poll
//! let sockets = cluster::connect(&config, &cancel)?; // blocks until every process is in, or an error
//! let network = cluster::allocators(&config, sockets)?;
//! let monitor = network.monitor.clone();
//! let guards = timely::execute::execute_from(network.builders, network.guard, timely::WorkerConfig::default(),
//!     move |worker| { /* the same worker body as a single-process run */ })?;
//! // While running: when this process aborts the job, call monitor.disconnect() so the others stop too.
//! // After guards.join(): if a worker crashed and monitor.lost() is Some(e), report e (it names the dead peer).
//! ```
//!
//! Worker `w` of process `p` has index `p * threads + w` of `N * threads` workers.
//!
//! # When a peer dies
//!
//! timely has no recovery. When a peer process dies (SIGKILL included: the kernel closes
//! its sockets), within milliseconds timely's network thread for it panics ("timely
//! communication error: reading data: socket closed"), and every local worker panics with
//! "MergeQueue poisoned." at its next step (a parked worker is woken). The engine's
//! `catch_unwind` around the worker body catches that; the worker thread then panics once
//! more when timely drops its allocator after the closure returned, so `WorkerGuards::join`
//! gives `Err` for it. Report [`PeerMonitor::lost`] (it names the dead peer) rather than
//! those panics; [`quiet_network_panics`] keeps them off stderr. The guard passed to
//! `execute_from` never panics and never waits on a dead peer.
//!
//! A peer that stops without closing its sockets (SIGSTOP, a network partition) is found
//! by heartbeats (see `network.rs`): after [`ClusterConfig::heartbeat_timeout`] without
//! a byte from it, its connection is shut down, which fails the workers the same way,
//! and [`PeerMonitor::lost`] gives [`ClusterError::PeerSilent`] naming it.

mod error;
mod handshake;
mod log;
mod mesh;
mod network;
mod secret;

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use error::{ClusterError, MissingPeer, REFUSED_NAMED};
pub use network::{allocators, quiet_network_panics, Network, PeerMonitor};
pub use secret::{
    generate_secret, parse_secret, resolve_secret, secret_from_env_or_file, secret_to_hex, MIN_SECRET_BYTES,
    SECRET_ENV, SECRET_FILE_ENV,
};

/// How long [`connect`] waits for the other processes by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a peer may send nothing, not even a heartbeat, before the job fails, by
/// default. Heartbeats go out every 0.5 s; only a stopped or cut-off process is silent
/// that long (a busy one still answers: no worker or GIL is involved).
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that sets the heartbeat time-out, in seconds (read by the
/// launcher, named in [`ClusterError::PeerSilent`]'s message).
pub const HEARTBEAT_TIMEOUT_ENV: &str = "FERROFLOW_HEARTBEAT_TIMEOUT";

/// How this process joins the cluster.
#[derive(Clone)]
pub struct ClusterConfig {
    /// This process's id: its index in `addresses`.
    pub process: usize,
    /// `host:port` of every process, the same list on every process.
    pub addresses: Vec<String>,
    /// The shared secret (see [`generate_secret`], [`secret_from_env_or_file`]).
    pub secret: Vec<u8>,
    /// How long to wait for every other process to connect.
    pub connect_timeout: Duration,
    /// Worker threads per process; must be the same on every process.
    pub threads: usize,
    /// Identifies the job (e.g. a hash of the plan): processes whose fingerprints differ
    /// refuse each other, so processes running different scripts cannot join.
    pub fingerprint: u64,
    /// How long a peer may stay silent while the job runs before it is declared lost.
    pub heartbeat_timeout: Duration,
}

impl ClusterConfig {
    /// One worker thread, fingerprint 0, [`DEFAULT_CONNECT_TIMEOUT`],
    /// [`DEFAULT_HEARTBEAT_TIMEOUT`].
    pub fn new(process: usize, addresses: Vec<String>, secret: Vec<u8>) -> ClusterConfig {
        ClusterConfig {
            process,
            addresses,
            secret,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            threads: 1,
            fingerprint: 0,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }

    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    pub fn fingerprint(mut self, fingerprint: u64) -> Self {
        self.fingerprint = fingerprint;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }

    /// Checks the settings that need no network.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let n = self.addresses.len();
        if n == 0 {
            return Err(ClusterError::Config("--addresses lists no address".into()));
        }
        if self.process >= n {
            return Err(ClusterError::Config(format!(
                "--process-id {} is out of range: --addresses lists {n} processes, so ids go from 0 to {}",
                self.process,
                n - 1
            )));
        }
        if self.threads == 0 {
            return Err(ClusterError::Config("a process needs at least one worker thread".into()));
        }
        if self.heartbeat_timeout.is_zero() {
            return Err(ClusterError::Config("the heartbeat time-out must be above 0 s".into()));
        }
        if n > 1 && self.secret.len() < MIN_SECRET_BYTES {
            return Err(ClusterError::Secret(format!(
                "the shared secret is {} bytes long, at least {MIN_SECRET_BYTES} are needed",
                self.secret.len()
            )));
        }
        for (i, address) in self.addresses.iter().enumerate() {
            let port_ok =
                address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(ClusterError::Config(format!(
                    "address {i} in --addresses, {address:?}, is not of the form host:port"
                )));
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("process", &self.process)
            .field("addresses", &self.addresses)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("connect_timeout", &self.connect_timeout)
            .field("threads", &self.threads)
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .finish()
    }
}

/// Binds this process's own address, `addresses[process]` (exactly that address). Call
/// it early to report a taken port before doing anything else, then pass the listener to
/// [`connect_with`]. Only processes with a higher-numbered peer need to listen.
pub fn listen(config: &ClusterConfig) -> Result<TcpListener, ClusterError> {
    config.validate()?;
    let address = &config.addresses[config.process];
    TcpListener::bind(address.as_str()).map_err(|source| ClusterError::Bind {
        process: config.process,
        address: address.clone(),
        source,
    })
}

/// Connects this process to all others and authenticates them. Process `i` listens on
/// `addresses[i]` (if any process has a higher id), accepts the processes with higher
/// ids, and dials the ones with lower ids, retrying every 50 ms until
/// `config.connect_timeout`. Setting `cancel` aborts the wait within ~50 ms
/// ([`ClusterError::Cancelled`]). Returns once every process is connected *and* every
/// process confirmed it is (so either all processes start the job or none does), with
/// one blocking, `TCP_NODELAY` socket per process (`None` for this one), ready for
/// [`allocators`]. Nothing is printed to stdout; refused connections go to stderr.
pub fn connect(config: &ClusterConfig, cancel: &AtomicBool) -> Result<Vec<Option<TcpStream>>, ClusterError> {
    connect_with(config, None, cancel)
}

/// [`connect`], listening on `listener` (bound by [`listen`], or by a test on port 0)
/// instead of binding `addresses[process]` itself.
pub fn connect_with(
    config: &ClusterConfig,
    listener: Option<TcpListener>,
    cancel: &AtomicBool,
) -> Result<Vec<Option<TcpStream>>, ClusterError> {
    config.validate()?;
    let n = config.addresses.len();
    if n == 1 {
        return Ok(vec![None]);
    }
    let listener = match listener {
        Some(listener) => Some(listener),
        None if config.process + 1 < n => Some(listen(config)?),
        None => None,
    };
    mesh::establish(config, listener, cancel)
}
