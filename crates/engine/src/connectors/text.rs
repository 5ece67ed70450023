//! Bytes to text, one rule for every text source (files, sockets): a line that is not
//! UTF-8 fails the job with its place (line and byte offset), unless the user asked for
//! replacement, as Python's `errors=` argument of `bytes.decode` and `open` does.

/// What to do with bytes that are not UTF-8 (the values of Python's `errors=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncodingErrors {
    /// Fail, naming the source, line and byte offset.
    #[default]
    Strict,
    /// Put U+FFFD in place of each invalid sequence.
    Replace,
    /// Leave invalid sequences out.
    Ignore,
}

impl EncodingErrors {
    /// `"strict"`, `"replace"` or `"ignore"`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "strict" => Ok(EncodingErrors::Strict),
            "replace" => Ok(EncodingErrors::Replace),
            "ignore" => Ok(EncodingErrors::Ignore),
            other => Err(format!("encoding_errors must be 'strict', 'replace' or 'ignore', got '{other}'")),
        }
    }

    /// The line as text; under `Strict`, `Err(i)` where `i` is the offset in `line` of
    /// its first invalid byte.
    pub fn decode(self, line: &[u8]) -> Result<String, usize> {
        match std::str::from_utf8(line) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => match self {
                EncodingErrors::Strict => Err(e.valid_up_to()),
                EncodingErrors::Replace => Ok(String::from_utf8_lossy(line).into_owned()),
                EncodingErrors::Ignore => Ok(line.utf8_chunks().map(|c| c.valid()).collect()),
            },
        }
    }
}

/// The error for a line that is not UTF-8: `source` (a path, `host:port`), the 1-based
/// line number and the byte offset of the first bad byte from the start of the source.
pub fn not_utf8(source: &str, line: u64, byte: u64) -> String {
    format!(
        "{source}: line {line} is not valid UTF-8 (bad byte at offset {byte}); \
         pass encoding_errors='replace' to read it with U+FFFD in place of bad bytes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_by_policy() {
        let bad = b"a\xffb\xe2\x82c";
        assert_eq!(EncodingErrors::Strict.decode(b"ok \xc3\xa9"), Ok("ok é".to_string()));
        assert_eq!(EncodingErrors::Strict.decode(bad), Err(1));
        assert_eq!(EncodingErrors::Replace.decode(bad), Ok("a\u{FFFD}b\u{FFFD}c".to_string()));
        assert_eq!(EncodingErrors::Ignore.decode(bad), Ok("abc".to_string()));
        assert_eq!(EncodingErrors::Strict.decode(b"\xe2\x82"), Err(0), "a truncated sequence");
    }

    #[test]
    fn parses_python_names() {
        assert_eq!(EncodingErrors::parse("strict"), Ok(EncodingErrors::Strict));
        assert_eq!(EncodingErrors::parse("replace"), Ok(EncodingErrors::Replace));
        assert_eq!(EncodingErrors::parse("ignore"), Ok(EncodingErrors::Ignore));
        assert!(EncodingErrors::parse("surrogateescape").unwrap_err().contains("'strict', 'replace' or 'ignore'"));
    }
}
