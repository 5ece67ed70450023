//! The shared secret the processes of a job authenticate each other with.
//!
//! `ferroflow run -p N` generates one per run ([`generate_secret`]) and hands it to its
//! children in [`SECRET_ENV`] as hex ([`secret_to_hex`]). An `--addresses` run needs the
//! same secret on every machine: from a file, [`SECRET_ENV`] or [`SECRET_FILE_ENV`]
//! ([`secret_from_env_or_file`]). Every route decodes the text by one rule,
//! [`parse_secret`], and the Python launcher calls [`resolve_secret`] too, so a secret
//! given one way on one host and another way on the next is the same key.

use std::ffi::OsString;
use std::path::Path;

use super::error::ClusterError;

/// The environment variable holding the secret itself (hex, or raw text).
pub const SECRET_ENV: &str = "FERROFLOW_SECRET";
/// The environment variable naming a file that holds the secret (hex, or raw text).
pub const SECRET_FILE_ENV: &str = "FERROFLOW_SECRET_FILE";
/// Shortest secret accepted, in bytes (after hex decoding). Anyone who can watch the
/// handshake can try to guess the secret offline, so it must not be a short password.
pub const MIN_SECRET_BYTES: usize = 16;

const HOW_TO_MAKE_ONE: &str = "make one with `openssl rand -hex 32` or \
    `python -c \"import secrets; print(secrets.token_hex(32))\"`";

/// 32 random bytes from the operating system.
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random number generator failed");
    secret
}

/// The secret as lowercase hex, e.g. to pass it to child processes in [`SECRET_ENV`].
pub fn secret_to_hex(secret: &[u8]) -> String {
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret for an `--addresses` run, from (first that is set) `file` (e.g. a
/// `--secret-file` option), the [`SECRET_ENV`] variable, or the file named by
/// [`SECRET_FILE_ENV`]. Errors clearly when none is set.
pub fn secret_from_env_or_file(file: Option<&Path>) -> Result<Vec<u8>, ClusterError> {
    resolve_secret(file, std::env::var_os(SECRET_ENV), std::env::var_os(SECRET_FILE_ENV))
}

/// [`secret_from_env_or_file`] with the environment passed in (for tests and callers that
/// read their environment elsewhere).
pub fn resolve_secret(
    file: Option<&Path>,
    env_secret: Option<OsString>,
    env_file: Option<OsString>,
) -> Result<Vec<u8>, ClusterError> {
    if let Some(path) = file {
        return read_secret_file(path);
    }
    if let Some(value) = env_secret.filter(|v| !v.is_empty()) {
        let text = value
            .into_string()
            .map_err(|_| ClusterError::Secret(format!("{SECRET_ENV} is not valid UTF-8: {HOW_TO_MAKE_ONE}")))?;
        return parse_secret(text.as_bytes(), SECRET_ENV);
    }
    if let Some(path) = env_file.filter(|v| !v.is_empty()) {
        return read_secret_file(Path::new(&path));
    }
    Err(ClusterError::Secret(format!(
        "a job run with --addresses needs a shared secret: set {SECRET_ENV} (or {SECRET_FILE_ENV}, the path of \
         a file holding it) to the same value on every process; {HOW_TO_MAKE_ONE}"
    )))
}

fn read_secret_file(path: &Path) -> Result<Vec<u8>, ClusterError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ClusterError::Secret(format!("cannot read the secret file {}: {e}", path.display())))?;
    parse_secret(&bytes, &format!("the secret file {}", path.display()))
}

/// Decodes a secret: surrounding whitespace is ignored; an even number of hex digits is
/// decoded as hex, anything else is taken as raw bytes. Refuses secrets shorter than
/// [`MIN_SECRET_BYTES`] and secrets that are one byte repeated. `source` names where it came
/// from, for the error message.
pub fn parse_secret(text: &[u8], source: &str) -> Result<Vec<u8>, ClusterError> {
    let text = text.trim_ascii();
    if text.is_empty() {
        return Err(ClusterError::Secret(format!("{source} is empty: {HOW_TO_MAKE_ONE}")));
    }
    let secret = if text.len().is_multiple_of(2) && text.iter().all(u8::is_ascii_hexdigit) {
        text.chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("hex digits are ASCII"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .expect("checked hex digits")
    } else {
        text.to_vec()
    };
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ClusterError::Secret(format!(
            "the secret in {source} is too short ({} bytes, at least {MIN_SECRET_BYTES}): {HOW_TO_MAKE_ONE}",
            secret.len()
        )));
    }
    // All zeros (or any one byte repeated) is a placeholder, not a secret: anyone can guess it.
    if secret.iter().all(|&b| b == secret[0]) {
        return Err(ClusterError::Secret(format!(
            "the secret in {source} is one byte ({:#04x}) repeated, which anyone can guess: {HOW_TO_MAKE_ONE}",
            secret[0]
        )));
    }
    Ok(secret)
}
