//! The cluster layer's stderr lines, and the summary of refused connections.
//!
//! Anyone can connect to a cluster port, so what strangers do must not decide how much
//! we print, nor block us: refused connections are summarised ([`Refusals`]: the first
//! in full, then a count at most every [`SUMMARY_EVERY`]), and lines are written by a
//! thread of their own. A stderr nobody reads (a full pipe) then blocks only that
//! thread; once [`QUEUE`] lines wait, further lines are dropped and counted.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// At most one summary line of refused connections this often.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// Lines waiting for stderr before more are dropped.
const QUEUE: usize = 64;

struct Writer {
    lines: SyncSender<String>,
    /// Lines queued and not yet written.
    pending: AtomicUsize,
    /// Lines dropped because the queue was full, not yet mentioned.
    dropped: AtomicUsize,
}

fn writer() -> Option<&'static Writer> {
    static WRITER: OnceLock<Option<Writer>> = OnceLock::new();
    WRITER
        .get_or_init(|| {
            let (lines, queue) = mpsc::sync_channel::<String>(QUEUE);
            let spawned = thread::Builder::new().name("ferroflow:log".into()).spawn(move || {
                let mut stderr = std::io::stderr();
                for line in queue {
                    let _ = stderr.write_all(line.as_bytes());
                    let _ = stderr.flush();
                    if let Some(w) = writer() {
                        w.pending.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            });
            spawned.ok().map(|_| Writer { lines, pending: AtomicUsize::new(0), dropped: AtomicUsize::new(0) })
        })
        .as_ref()
}

/// Writes `ferroflow: process {me}: {message}` to stderr without ever blocking.
pub(crate) fn log(me: usize, message: &str) {
    let Some(w) = writer() else { return };
    let dropped = w.dropped.swap(0, Ordering::SeqCst);
    let note = if dropped > 0 {
        format!(" ({dropped} earlier line(s) dropped: stderr is not being read)")
    } else {
        String::new()
    };
    w.pending.fetch_add(1, Ordering::SeqCst);
    match w.lines.try_send(format!("ferroflow: process {me}: {message}{note}\n")) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            w.pending.fetch_sub(1, Ordering::SeqCst);
            w.dropped.fetch_add(1 + dropped, Ordering::SeqCst);
        }
    }
}

/// Waits until the queued lines are written, for at most `limit`: so that they come
/// before whatever the caller prints next, unless stderr is stuck.
pub(crate) fn flush(limit: Duration) {
    let Some(w) = writer() else { return };
    let until = Instant::now() + limit;
    while w.pending.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Counts refused connections and says which lines to print about them.
pub(crate) struct Refusals {
    me: usize,
    state: Mutex<Summary>,
}

#[derive(Default)]
pub(crate) struct Summary {
    total: usize,
    /// Refused since the last line printed, and the latest of them.
    unreported: usize,
    latest: Option<(SocketAddr, String)>,
    last_line: Option<Instant>,
}

impl Summary {
    /// Notes one refusal at `now`; returns the line to print, if any.
    pub(crate) fn note(&mut self, now: Instant, from: SocketAddr, why: &str) -> Option<String> {
        self.total += 1;
        self.unreported += 1;
        self.latest = Some((from, why.to_string()));
        let line = match self.last_line {
            None => format!("refused a connection from {from}: {why}"),
            Some(at) if now.duration_since(at) >= SUMMARY_EVERY => {
                self.summary(&format!("in the last {} s", now.duration_since(at).as_secs()))
            }
            Some(_) => return None,
        };
        self.unreported = 0;
        self.last_line = Some(now);
        Some(line)
    }

    /// The closing line: refusals not reported yet, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.unreported == 0 {
            return None;
        }
        let line = self.summary(&format!("({} in all while the cluster started)", self.total));
        self.unreported = 0;
        Some(line)
    }

    fn summary(&self, when: &str) -> String {
        let (from, why) = self.latest.as_ref().expect("a refusal was noted");
        format!("refused {} more connection(s) {when}; the latest from {from}: {why}", self.unreported)
    }
}

impl Refusals {
    pub(crate) fn new(me: usize) -> Refusals {
        Refusals { me, state: Mutex::new(Summary::default()) }
    }

    /// Notes a refused connection; prints the first in full, later ones as counts.
    pub(crate) fn refused(&self, from: SocketAddr, why: &str) {
        let line = self.state.lock().unwrap_or_else(|e| e.into_inner()).note(Instant::now(), from, why);
        if let Some(line) = line {
            log(self.me, &line);
        }
    }

    /// Prints the count of refusals not reported yet (call once the cluster started or failed).
    pub(crate) fn finish(&self) {
        let line = self.state.lock().unwrap_or_else(|e| e.into_inner()).finish();
        if let Some(line) = line {
            log(self.me, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_refusals_makes_a_few_lines_that_count_them_all() {
        let from: SocketAddr = "10.0.0.7:5555".parse().unwrap();
        let start = Instant::now();
        let mut summary = Summary::default();
        let mut lines = Vec::new();
        // 5,000 refusals over 12 s.
        for i in 0..5000u64 {
            let now = start + Duration::from_micros(i * 2400);
            lines.extend(summary.note(now, from, "it is not a ferroflow process"));
        }
        lines.extend(summary.finish());
        assert_eq!(lines.len(), 4, "{lines:?}"); // the first, two summaries (after 5 s and 10 s), the rest
        assert_eq!(lines[0], "refused a connection from 10.0.0.7:5555: it is not a ferroflow process");
        assert!(
            lines[1].starts_with("refused ") && lines[1].contains("more connection(s) in the last 5 s"),
            "{lines:?}"
        );
        let counted: usize =
            lines[1..].iter().map(|l| l.split(' ').nth(1).unwrap().parse::<usize>().unwrap()).sum::<usize>() + 1;
        assert_eq!(counted, 5000, "{lines:?}");
        assert!(
            lines[3].contains("(5000 in all while the cluster started); the latest from 10.0.0.7:5555"),
            "{lines:?}"
        );
        assert_eq!(summary.finish(), None);
    }

    #[test]
    fn a_single_refusal_is_one_line() {
        let mut summary = Summary::default();
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(summary.note(Instant::now(), from, "why").is_some());
        assert_eq!(summary.finish(), None);
    }
}
