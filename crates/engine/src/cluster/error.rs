//! What can go wrong while the processes of a job find each other, and later when one
//! of them disappears. Each error displays as one sentence with the fix where known.

use std::fmt;
use std::io;
use std::time::Duration;

/// How many addresses of connections that failed authentication
/// [`ClusterError::Timeout`] keeps (it counts them all).
pub const REFUSED_NAMED: usize = 5;

/// A process this one was still waiting for when it gave up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingPeer {
    pub process: usize,
    pub address: String,
    /// Why the last attempt to reach it failed, for processes this one dials
    /// (e.g. "connection refused").
    pub last_error: Option<String>,
}

/// Why the processes of a job could not be connected, or lost each other.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration itself is wrong (process id out of range, no addresses, ...).
    Config(String),
    /// No usable shared secret.
    Secret(String),
    /// This process could not listen on its own address.
    Bind { process: usize, address: String, source: io::Error },
    /// Some processes never connected within the connect timeout.
    Timeout {
        timeout: Duration,
        missing: Vec<MissingPeer>,
        /// Remote addresses of the first connections refused meanwhile because they
        /// failed authentication (at most [`REFUSED_NAMED`]).
        refused: Vec<String>,
        /// How many connections failed authentication in all.
        refused_count: usize,
    },
    /// The caller's cancel flag was set (Ctrl-C) while waiting.
    Cancelled { waiting_for: Vec<MissingPeer> },
    /// The process at `address` does not know the shared secret.
    Auth { process: usize, address: String },
    /// An authenticated peer runs a different job (its plan fingerprint differs).
    JobMismatch { process: usize, address: String, ours: u64, theirs: u64 },
    /// The processes were started with inconsistent settings (--addresses,
    /// --process-id, versions). The message is a complete sentence.
    Mismatch(String),
    /// Another process failed while the cluster was starting and told us why.
    PeerFailed { process: usize, message: String },
    /// The connection to a peer broke while the job ran (it crashed or was killed).
    PeerLost { process: usize, address: String, detail: String },
    /// Nothing, not even a heartbeat, came from a peer for `timeout` while the job ran:
    /// it is stopped (SIGSTOP), hung, or cut off by the network.
    PeerSilent { process: usize, address: String, timeout: Duration },
    /// A peer cancelled the job while it ran (`execute_and_collect()` closed early there)
    /// and told us: this process stops as cancelled too.
    PeerCancelled { process: usize },
    /// An unexpected I/O failure.
    Io { context: String, source: io::Error },
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 1e-9 {
        format!("{} s", s.round() as u64)
    } else {
        format!("{s:.1} s")
    }
}

fn list_peers(peers: &[MissingPeer]) -> String {
    let items: Vec<String> = peers.iter().map(|p| format!("process {} at {}", p.process, p.address)).collect();
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Config(message) | ClusterError::Secret(message) | ClusterError::Mismatch(message) => {
                f.write_str(message)
            }
            ClusterError::Bind { process, address, source } => {
                let why = match source.kind() {
                    io::ErrorKind::AddrInUse => "the address is already in use: is another job (or a process of an \
                        earlier run) still running? Stop it or pick other ports in --addresses"
                        .to_string(),
                    io::ErrorKind::AddrNotAvailable => {
                        format!("it is not an address of this machine: check --process-id {process} and --addresses")
                    }
                    io::ErrorKind::PermissionDenied => "permission denied: use a port above 1023".to_string(),
                    _ => format!("{source}: check --process-id {process} and --addresses"),
                };
                write!(f, "cannot listen on {address} (the address of process {process}): {why}")
            }
            ClusterError::Timeout { timeout, missing, refused, refused_count } => {
                let verb = if missing.len() == 1 { "is it" } else { "are they" };
                let attempts: Vec<String> = missing
                    .iter()
                    .filter_map(|p| p.last_error.as_ref().map(|e| format!("to process {}: {e}", p.process)))
                    .collect();
                let attempts = if attempts.is_empty() {
                    String::new()
                } else {
                    format!(" (last attempt {})", attempts.join("; "))
                };
                write!(
                    f,
                    "{} never connected within {}{attempts}: {verb} running, with the same --addresses?",
                    list_peers(missing),
                    seconds(*timeout)
                )?;
                if *refused_count > 0 {
                    let more = if *refused_count > refused.len() { " and others" } else { "" };
                    write!(
                        f,
                        " (meanwhile refused {refused_count} connection(s) that failed authentication, from {}{more}: \
                         does every process have the same secret?)",
                        refused.join(", ")
                    )?;
                }
                Ok(())
            }
            ClusterError::Cancelled { waiting_for } => {
                if waiting_for.is_empty() {
                    write!(f, "cancelled while starting the cluster")
                } else {
                    write!(f, "cancelled while waiting for {} to connect", list_peers(waiting_for))
                }
            }
            ClusterError::Auth { process, address } => write!(
                f,
                "process {process} at {address} failed authentication: the processes do not share the same \
                 secret (set the same FERROFLOW_SECRET or secret file on every process)"
            ),
            ClusterError::JobMismatch { process, address, ours, theirs } => write!(
                f,
                "process {process} at {address} runs a different job (job fingerprint {theirs:016x} there, \
                 {ours:016x} here): run the same script, with the same arguments, on every process"
            ),
            ClusterError::PeerFailed { process, message } => {
                write!(f, "the cluster did not start: process {process} failed: {message}")
            }
            ClusterError::PeerLost { process, address, detail } => write!(
                f,
                "lost the connection to process {process} at {address} ({detail}): that process crashed, was \
                 killed or stopped the job after an error; see its own error output"
            ),
            ClusterError::PeerCancelled { process } => write!(f, "process {process} cancelled the job"),
            ClusterError::PeerSilent { process, address, timeout } => write!(
                f,
                "no heartbeat from process {process} at {address} for {}: that process is stopped or hung, or \
                 the network to it is down (to wait longer, set --heartbeat-timeout or {})",
                seconds(*timeout),
                super::HEARTBEAT_TIMEOUT_ENV
            ),
            ClusterError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for ClusterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClusterError::Bind { source, .. } | ClusterError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ClusterError> for crate::error::JobError {
    fn from(e: ClusterError) -> Self {
        let kind = match e {
            ClusterError::Cancelled { .. } | ClusterError::PeerCancelled { .. } => crate::error::ErrorKind::Cancelled,
            _ => crate::error::ErrorKind::System,
        };
        crate::error::JobError::new(kind, e.to_string())
    }
}
