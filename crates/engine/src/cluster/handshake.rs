//! The authentication handshake on a fresh connection, before timely sees it.
//!
//! The process with the higher id (the *connector*, C) dials the one with the lower id
//! (the *listener*, L):
//!
//! ```text
//! C -> L  hello_c   "FERROFLW" | version u32 | from=C u32 | to=L u32 | processes u32 | threads u32
//!                   | fingerprint u64 | nonce_c [32]
//! L -> C  hello_l   (same layout: from=L, to=C)  | mac_l = HMAC(secret, "ferroflow/1 listener\0"  | hello_c | hello_l)
//! C -> L  mac_c     HMAC(secret, "ferroflow/1 connector\0" | hello_c | hello_l)
//! L -> C  verdict   code u8 (0 = accepted) | length u16 | message (why L refused C)
//! ```
//!
//! All integers big-endian, HMAC-SHA256, tags compared in constant time. The secret never
//! crosses the wire; each side proves it knows it over both fresh nonces, so a recorded
//! handshake cannot be replayed, and the role label keeps L's proof from serving as C's.
//! Ids, process and thread counts and the job fingerprint are sent in the clear but covered by the MACs,
//! so once a peer is authenticated a mismatch is a configuration error, reported as such.
//!
//! The handshake authenticates the peer when the connection opens. It does not encrypt
//! or sign the data that follows: on an untrusted network, run the cluster inside a VPN
//! or TLS tunnel.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub(crate) const MAGIC: &[u8; 8] = b"FERROFLW";
/// 2: after the start barrier, the connections carry our frames (data and heartbeats,
/// see `network.rs`) instead of timely's bytes alone.
pub(crate) const PROTOCOL: u32 = 2;
pub(crate) const HELLO_LEN: usize = 68;
pub(crate) const MAC_LEN: usize = 32;
const LISTENER_LABEL: &[u8] = b"ferroflow/1 listener\0";
const CONNECTOR_LABEL: &[u8] = b"ferroflow/1 connector\0";
/// Longest message in a verdict or start-up report.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// How often blocking handshake I/O wakes up to check for cancellation.
const IO_POLL: Duration = Duration::from_millis(50);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    pub from: u32,
    pub to: u32,
    pub processes: u32,
    pub threads: u32,
    pub fingerprint: u64,
    pub nonce: [u8; 32],
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HelloError {
    /// The peer does not speak this protocol at all.
    NotFerroflow,
    /// The peer speaks another version of it.
    Version(u32),
}

impl Hello {
    pub fn new(from: usize, to: usize, processes: usize, threads: usize, fingerprint: u64) -> io::Result<Hello> {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).map_err(|e| io::Error::other(format!("no randomness from the OS: {e}")))?;
        Ok(Hello {
            from: from as u32,
            to: to as u32,
            processes: processes as u32,
            threads: threads as u32,
            fingerprint,
            nonce,
        })
    }

    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&PROTOCOL.to_be_bytes());
        out[12..16].copy_from_slice(&self.from.to_be_bytes());
        out[16..20].copy_from_slice(&self.to.to_be_bytes());
        out[20..24].copy_from_slice(&self.processes.to_be_bytes());
        out[24..28].copy_from_slice(&self.threads.to_be_bytes());
        out[28..36].copy_from_slice(&self.fingerprint.to_be_bytes());
        out[36..68].copy_from_slice(&self.nonce);
        out
    }

    pub fn decode(bytes: &[u8; HELLO_LEN]) -> Result<Hello, HelloError> {
        if &bytes[0..8] != MAGIC {
            return Err(HelloError::NotFerroflow);
        }
        let u32_at = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let version = u32_at(8);
        if version != PROTOCOL {
            return Err(HelloError::Version(version));
        }
        Ok(Hello {
            from: u32_at(12),
            to: u32_at(16),
            processes: u32_at(20),
            threads: u32_at(24),
            fingerprint: u64::from_be_bytes(bytes[28..36].try_into().expect("8 bytes")),
            nonce: bytes[36..68].try_into().expect("32 bytes"),
        })
    }
}

fn hmac(secret: &[u8], label: &[u8], hello_c: &[u8; HELLO_LEN], hello_l: &[u8; HELLO_LEN]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.update(hello_c);
    mac.update(hello_l);
    mac
}

/// L's proof that it knows the secret.
pub(crate) fn listener_tag(secret: &[u8], hello_c: &[u8; HELLO_LEN], hello_l: &[u8; HELLO_LEN]) -> [u8; MAC_LEN] {
    hmac(secret, LISTENER_LABEL, hello_c, hello_l).finalize().into_bytes().into()
}

/// C's proof that it knows the secret.
pub(crate) fn connector_tag(secret: &[u8], hello_c: &[u8; HELLO_LEN], hello_l: &[u8; HELLO_LEN]) -> [u8; MAC_LEN] {
    hmac(secret, CONNECTOR_LABEL, hello_c, hello_l).finalize().into_bytes().into()
}

/// Checks L's proof, in constant time.
pub(crate) fn verify_listener(secret: &[u8], hello_c: &[u8; HELLO_LEN], hello_l: &[u8; HELLO_LEN], tag: &[u8]) -> bool {
    hmac(secret, LISTENER_LABEL, hello_c, hello_l).verify_slice(tag).is_ok()
}

/// Checks C's proof, in constant time.
pub(crate) fn verify_connector(
    secret: &[u8],
    hello_c: &[u8; HELLO_LEN],
    hello_l: &[u8; HELLO_LEN],
    tag: &[u8],
) -> bool {
    hmac(secret, CONNECTOR_LABEL, hello_c, hello_l).verify_slice(tag).is_ok()
}

/// Blocking I/O on a handshake socket that gives up at `deadline` and checks `stop`
/// every [`IO_POLL`], so neither a silent peer nor Ctrl-C can leave it hanging.
pub(crate) struct DeadlineIo<'a> {
    pub stream: &'a TcpStream,
    pub deadline: Instant,
    pub stop: &'a dyn Fn() -> bool,
}

impl DeadlineIo<'_> {
    pub fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            if (self.stop)() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
            }
            self.stream.set_read_timeout(Some((self.deadline - now).min(IO_POLL).max(Duration::from_millis(1))))?;
            match (&mut &*self.stream).read(buf) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection was closed")),
                Ok(n) => buf = &mut buf[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no time left to write"));
        }
        self.stream.set_write_timeout(Some((self.deadline - now).max(Duration::from_millis(1))))?;
        (&mut &*self.stream).write_all(buf)?;
        (&mut &*self.stream).flush()
    }

    /// A message: code u8 | length u16 | UTF-8 text.
    pub fn write_message(&self, code: u8, text: &str) -> io::Result<()> {
        self.write_all(&encode_message(code, text))
    }

    pub fn read_message(&self) -> io::Result<(u8, String)> {
        let mut head = [0u8; 3];
        self.read_exact(&mut head)?;
        let text = self.read_message_body(u16::from_be_bytes([head[1], head[2]]))?;
        Ok((head[0], text))
    }

    pub fn read_message_body(&self, len: u16) -> io::Result<String> {
        let mut text = vec![0u8; len as usize];
        self.read_exact(&mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

pub(crate) fn encode_message(code: u8, text: &str) -> Vec<u8> {
    let mut end = text.len().min(MAX_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text.as_bytes()[..end];
    let mut out = Vec::with_capacity(3 + text.len());
    out.push(code);
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_rejects_strangers() {
        let hello = Hello::new(2, 1, 3, 4, 0xdead_beef).unwrap();
        assert_eq!(Hello::decode(&hello.encode()).unwrap(), hello);
        let mut other = hello.encode();
        other[0] = b'G';
        assert_eq!(Hello::decode(&other), Err(HelloError::NotFerroflow));
        let mut newer = hello.encode();
        newer[8..12].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(Hello::decode(&newer), Err(HelloError::Version(7)));
    }

    #[test]
    fn tags_depend_on_secret_role_and_both_hellos() {
        let c = Hello::new(1, 0, 2, 1, 5).unwrap().encode();
        let l = Hello::new(0, 1, 2, 1, 5).unwrap().encode();
        let tag = listener_tag(b"0123456789abcdef", &c, &l);
        assert!(verify_listener(b"0123456789abcdef", &c, &l, &tag));
        assert!(!verify_listener(b"0123456789abcdeX", &c, &l, &tag));
        assert!(!verify_connector(b"0123456789abcdef", &c, &l, &tag), "a listener tag is no connector tag");
        assert!(!verify_listener(b"0123456789abcdef", &l, &c, &tag));
        assert!(verify_connector(b"0123456789abcdef", &c, &l, &connector_tag(b"0123456789abcdef", &c, &l)));
    }
}
