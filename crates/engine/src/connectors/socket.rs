//! TCP plumbing for the socket source and sink: connections with time-outs, a reader
//! thread that wakes the source operator, and nothing printed.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::connectors::text::{not_utf8, EncodingErrors};
use crate::functions::{SourceStatus, Waker};

/// How long connecting may take before the job fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `host:port`, trying each address it resolves to.
pub fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<_> =
        (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?.collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => format!("could not connect to {host}:{port}: {e}"),
        None => format!("cannot resolve {host}:{port}: no addresses"),
    })
}

enum Message {
    Lines(Vec<String>),
    Failed(String),
}

/// Lines from a TCP connection, read on a thread of their own.
pub struct SocketLines {
    receiver: Receiver<Message>,
    stop: Arc<AtomicBool>,
}

impl SocketLines {
    pub fn connect(
        host: &str,
        port: u16,
        delimiter: u8,
        errors: EncodingErrors,
        waker: Option<Waker>,
    ) -> Result<Self, String> {
        let stream = connect(host, port)?;
        // A read time-out lets the thread notice cancellation.
        stream.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| format!("{host}:{port}: {e}"))?;
        let (sender, receiver) = sync_channel::<Message>(16);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let peer = format!("{host}:{port}");
        thread::Builder::new()
            .name(format!("ferroflow socket {peer}"))
            .spawn(move || {
                let wake = || {
                    if let Some(w) = &waker {
                        w()
                    }
                };
                let mut reader = BufReader::with_capacity(64 * 1024, stream);
                let mut line = Vec::new();
                let mut batch = Vec::new();
                // Where the current line starts in the stream, and its 1-based number.
                let (mut offset, mut number) = (0u64, 1u64);
                let decode = |line: &[u8], offset: u64, number: u64| {
                    errors.decode(line).map_err(|bad| not_utf8(&peer, number, offset + bad as u64))
                };
                loop {
                    if thread_stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match reader.read_until(delimiter, &mut line) {
                        Ok(0) => break,
                        Ok(_) if line.last() == Some(&delimiter) => {
                            let length = line.len() as u64;
                            line.pop();
                            if delimiter == b'\n' && line.last() == Some(&b'\r') {
                                line.pop();
                            }
                            match decode(&line, offset, number) {
                                Ok(text) => batch.push(text),
                                Err(e) => return fail(&sender, batch, e, &wake),
                            }
                            (offset, number) = (offset + length, number + 1);
                            line.clear();
                            // Hand on what we have whenever the socket has nothing more buffered.
                            if batch.len() >= 1024 || reader.buffer().is_empty() {
                                if sender.send(Message::Lines(std::mem::take(&mut batch))).is_err() {
                                    return;
                                }
                                wake();
                            }
                        }
                        Ok(_) => {} // partial line: keep reading
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                            ) =>
                        {
                            if !batch.is_empty() {
                                if sender.send(Message::Lines(std::mem::take(&mut batch))).is_err() {
                                    return;
                                }
                                wake();
                            }
                        }
                        Err(e) => return fail(&sender, batch, format!("reading from {peer}: {e}"), &wake),
                    }
                }
                if !line.is_empty() {
                    match decode(&line, offset, number) {
                        Ok(text) => batch.push(text),
                        Err(e) => return fail(&sender, batch, e, &wake),
                    }
                }
                if !batch.is_empty() {
                    let _ = sender.send(Message::Lines(batch));
                }
                drop(sender);
                wake();
            })
            .map_err(|e| format!("cannot start a reader thread: {e}"))?;
        Ok(SocketLines { receiver, stop })
    }

    /// Takes the lines read so far (about `max`); `Done` once the peer closed and all was taken.
    pub fn poll(&mut self, max: usize, out: &mut Vec<String>) -> Result<SourceStatus, String> {
        while out.len() < max {
            match self.receiver.try_recv() {
                Ok(Message::Lines(mut lines)) => out.append(&mut lines),
                Ok(Message::Failed(e)) => return Err(e),
                Err(TryRecvError::Empty) => return Ok(SourceStatus::Idle),
                Err(TryRecvError::Disconnected) => return Ok(SourceStatus::Done),
            }
        }
        Ok(SourceStatus::More)
    }

    pub fn cancel(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Hands on the lines read before a failure, then the failure.
fn fail(sender: &SyncSender<Message>, batch: Vec<String>, error: String, wake: &dyn Fn()) {
    if !batch.is_empty() {
        let _ = sender.send(Message::Lines(batch));
    }
    let _ = sender.send(Message::Failed(error));
    wake();
}

impl Drop for SocketLines {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A connected socket that bytes are written to.
pub struct SocketWriter {
    stream: TcpStream,
    peer: String,
}

/// How long one write may block before checking whether the job is stopping.
const WRITE_POLL: Duration = Duration::from_millis(100);

impl SocketWriter {
    pub fn connect(host: &str, port: u16) -> Result<Self, String> {
        let stream = connect(host, port)?;
        // Each batch is sent as soon as it is written; without TCP_NODELAY the
        // kernel holds small writes back (Nagle) for up to ~40 ms.
        stream.set_nodelay(true).map_err(|e| format!("{host}:{port}: {e}"))?;
        stream.set_write_timeout(Some(WRITE_POLL)).map_err(|e| format!("{host}:{port}: {e}"))?;
        Ok(SocketWriter { stream, peer: format!("{host}:{port}") })
    }

    /// Writes all of `bytes`, waiting while the peer does not read, until `abort` is set.
    pub fn write(&mut self, mut bytes: &[u8], abort: &AtomicBool) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.stream.write(bytes) {
                Ok(0) => return Err(format!("writing to {}: the connection was closed", self.peer)),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    if abort.load(Ordering::Relaxed) {
                        return Err(format!("stopped writing to {}: the job is stopping", self.peer));
                    }
                }
                Err(e) => return Err(format!("writing to {}: {e}", self.peer)),
            }
        }
        Ok(())
    }
}
