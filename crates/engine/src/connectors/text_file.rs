//! Reading text files line by line, split across workers so that every line is read by
//! exactly one worker.
//!
//! Small files go whole to one worker; large files are cut into byte ranges, one per
//! worker. A line belongs to the byte range that contains its first byte: a reader of
//! `[start, end)` with `start > 0` skips the line already in progress at `start` (unless
//! byte `start - 1` is `'\n'`) and reads every line whose first byte is before `end`, the
//! last one possibly running past `end`. So ranges can be cut anywhere, with no
//! coordination between workers.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::connectors::storage::{self, with_path, Input, S3Url};
use crate::connectors::text::{not_utf8, EncodingErrors};

/// Files smaller than this go whole to one worker; splitting them is not worth the seeks.
pub const SPLIT_MIN_BYTES: u64 = 1 << 20;

/// Read buffer per open share: large, so reading is a few big syscalls.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Whether a file name is hidden from readers of a directory: it starts with `.` or `_`
/// (Flink's convention: hidden files, markers such as `_SUCCESS`, and a file sink's
/// files not yet committed).
pub fn is_hidden(name: &std::ffi::OsStr) -> bool {
    matches!(name.as_encoded_bytes().first(), Some(b'.' | b'_'))
}

/// The files to read for `path`: a file gives `[file]`; a directory gives its regular
/// files (not recursive), sorted by name, skipping names that start with `.` or `_`
/// (hidden files and markers such as `_SUCCESS`).
///
/// A missing path is an error of kind `NotFound` with the message
/// `no such file or directory: <path>`; an empty directory gives `Ok(vec![])`.
pub fn list_input_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    list_files(path, false)
}

/// [`list_input_files`], and with `recursive` the files of sub-directories too (those
/// not hidden by the same rule), each directory's entries in name order (Flink's
/// `FileSource` reads folders so).
///
/// An `s3://` path lists objects instead ([`storage::list_objects`]): the object the
/// key names, or the objects under it as a folder, under the same rules.
pub fn list_files(path: &Path, recursive: bool) -> io::Result<Vec<PathBuf>> {
    if let Some(url) = S3Url::parse(path)? {
        return Ok(storage::list_objects(&url, recursive)?.into_iter().map(|(p, _)| p).collect());
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such file or directory: {}", path.display()),
            ));
        }
        Err(e) => return Err(with_path(path, e)),
    };
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    list_dir(path, recursive, &mut files)?;
    Ok(files)
}

fn list_dir(path: &Path, recursive: bool, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| with_path(path, e))? {
        let entry = entry.map_err(|e| with_path(path, e))?;
        let name = entry.file_name();
        if !is_hidden(&name) {
            entries.push((name, entry.path()));
        }
    }
    entries.sort();
    for (_, full) in entries {
        // Follows symlinks, so a link to a file counts as a file.
        match std::fs::metadata(&full) {
            Ok(m) if m.is_file() => files.push(full),
            Ok(m) if m.is_dir() && recursive => list_dir(&full, recursive, files)?,
            Ok(_) => {}
            // A dangling link or a file deleted meanwhile: not an input.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(&full, e)),
        }
    }
    Ok(())
}

/// A byte range `[start, end)` of one file, read by one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileShare {
    pub path: PathBuf,
    pub start: u64,
    pub end: u64,
}

/// The shares of `files` that worker `worker` of `workers` reads.
///
/// Files smaller than [`SPLIT_MIN_BYTES`] go whole to worker `file_index % workers`;
/// larger files are cut into `workers` contiguous byte ranges, range `i` to worker `i`.
/// Empty shares (and so empty files) are omitted. `worker >= workers` is an
/// `InvalidInput` error.
pub fn plan_shares(files: &[PathBuf], worker: usize, workers: usize) -> io::Result<Vec<FileShare>> {
    plan_shares_with(files, worker, workers, SPLIT_MIN_BYTES)
}

/// [`plan_shares`] with the split threshold as a parameter, so tests can split small files.
#[doc(hidden)]
pub fn plan_shares_with(
    files: &[PathBuf],
    worker: usize,
    workers: usize,
    split_min: u64,
) -> io::Result<Vec<FileShare>> {
    if worker >= workers {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("worker index {worker} out of range for {workers} workers"),
        ));
    }
    let mut shares = Vec::new();
    for (index, path) in files.iter().enumerate() {
        let len = storage::len(path)?;
        let (start, end) = if len < split_min {
            if index % workers != worker {
                continue;
            }
            (0, len)
        } else {
            let cut = |i: usize| -> u64 {
                // Exact in u128; the result is at most `len`, so it fits in u64.
                let v = u128::from(len) * i as u128 / workers as u128;
                u64::try_from(v).unwrap_or(len)
            };
            (cut(worker), cut(worker + 1))
        };
        if start < end {
            shares.push(FileShare { path: path.clone(), start, end });
        }
    }
    Ok(shares)
}

/// The share being read.
struct OpenShare {
    share: FileShare,
    reader: BufReader<Input>,
    /// Byte offset of the next unread byte.
    pos: u64,
    /// Byte offset of the share's first line.
    first: u64,
    /// Lines returned from this share so far.
    line: u64,
}

/// Reads the lines of a list of shares, in order, in batches.
pub struct LineReader {
    pending: std::vec::IntoIter<FileShare>,
    current: Option<OpenShare>,
    buf: Vec<u8>,
    exhausted: bool,
    errors: EncodingErrors,
}

impl LineReader {
    /// A reader over `shares`; files are opened lazily, one at a time.
    pub fn new(shares: Vec<FileShare>, errors: EncodingErrors) -> Self {
        Self { pending: shares.into_iter(), current: None, buf: Vec::new(), exhausted: false, errors }
    }

    /// What is left to read, as shares under the same rule (a line belongs to the share
    /// its first byte is in): the open share from the next unread line on (which starts
    /// right after a `'\n'`, so no line is skipped), then the shares not yet opened. A
    /// reader of these shares, or of any dealing of them among readers, reads exactly
    /// the lines this one has not returned yet.
    pub fn remaining(&self) -> Vec<FileShare> {
        let open = self.current.as_ref().filter(|o| o.pos < o.share.end);
        let open = open.map(|o| FileShare { path: o.share.path.clone(), start: o.pos, end: o.share.end });
        open.into_iter().chain(self.pending.as_slice().iter().cloned()).collect()
    }

    /// Appends up to `max` lines to `out`; returns Ok(false) once the whole share list is exhausted.
    ///
    /// Lines are returned without their `"\n"` or `"\r\n"`. `Ok(true)` means more lines
    /// may follow; `Ok(false)` may come with the last lines appended in the same call.
    /// A line that is not UTF-8 is, under [`EncodingErrors::Strict`], an `InvalidData`
    /// error naming the path, the line's 1-based number in the file and the offset of
    /// its first bad byte, whichever share of the file it was in.
    pub fn next_batch(&mut self, max: usize, out: &mut Vec<String>) -> io::Result<bool> {
        let mut added = 0;
        while added < max {
            let Some(open) = self.current.as_mut() else {
                match self.pending.next() {
                    Some(share) => {
                        self.current = open_share(share)?;
                        continue;
                    }
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            };
            if open.pos >= open.share.end {
                self.current = None;
                continue;
            }
            self.buf.clear();
            let n = open.reader.read_until(b'\n', &mut self.buf).map_err(|e| with_path(&open.share.path, e))?;
            if n == 0 {
                // The file shrank after planning; nothing more here.
                self.current = None;
                continue;
            }
            let line_start = open.pos;
            open.pos += n as u64;
            open.line += 1;
            let mut line: &[u8] = &self.buf;
            if let Some(rest) = line.strip_suffix(b"\n") {
                line = rest.strip_suffix(b"\r").unwrap_or(rest);
            }
            match self.errors.decode(line) {
                Ok(s) => out.push(s),
                Err(bad) => return Err(not_utf8_in_file(open, line_start + bad as u64)),
            }
            added += 1;
        }
        Ok(!self.exhausted)
    }
}

impl LineReader {
    /// Where the line returned last is: `<path>: line <n>`, `n` 1-based in the file
    /// (a share that starts inside the file counts the lines before it: only now, as
    /// this is for errors).
    pub fn last_line_place(&self) -> String {
        let Some(open) = self.current.as_ref() else { return "(no line read)".to_string() };
        let path = &open.share.path;
        match count_newlines(path, open.first) {
            Ok(before) => format!("{}: line {}", path.display(), before + open.line),
            Err(e) => format!("{}: a line after byte {} (cannot count the lines: {e})", path.display(), open.first),
        }
    }
}

/// The error for a bad byte at offset `byte` of the line just read from `open`. A share
/// that starts inside the file counts the lines before it first: only now, as errors
/// are rare, so workers never coordinate to number lines.
fn not_utf8_in_file(open: &OpenShare, byte: u64) -> io::Error {
    let path = &open.share.path;
    let message = match count_newlines(path, open.first) {
        Ok(before) => not_utf8(&path.display().to_string(), before + open.line, byte),
        Err(e) => format!("{}: not valid UTF-8 at byte {byte} (and cannot count its lines: {e})", path.display()),
    };
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// How many `'\n'` bytes the first `len` bytes of the file hold.
pub(crate) fn count_newlines(path: &Path, len: u64) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, storage::open(path)?.take(len));
    let mut count = 0u64;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(count);
        }
        count += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = chunk.len();
        reader.consume(n);
    }
}

/// Opens a share and positions it at its first line; `None` if it has no lines.
fn open_share(share: FileShare) -> io::Result<Option<OpenShare>> {
    let path = share.path.clone();
    let err = |e: io::Error| with_path(&path, e);
    let mut file = storage::open(&share.path)?;
    let mut pos = share.start;
    if share.start > 0 {
        file.seek(SeekFrom::Start(share.start - 1)).map_err(err)?;
    }
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    if share.start > 0 {
        let mut before = [0u8; 1];
        if reader.read(&mut before).map_err(err)? == 0 {
            return Ok(None); // The file shrank after planning.
        }
        if before[0] != b'\n' {
            // The line in progress at `start` belongs to the previous range.
            pos += reader.skip_until(b'\n').map_err(err)? as u64;
        }
    }
    Ok(Some(OpenShare { share, reader, pos, first: pos, line: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temp_dir::TempDir;
    use proptest::prelude::*;

    fn read_all(shares: Vec<FileShare>, batch: usize) -> io::Result<Vec<String>> {
        let mut reader = LineReader::new(shares, EncodingErrors::Strict);
        let mut out = Vec::new();
        let mut calls = 0;
        while reader.next_batch(batch, &mut out)? {
            calls += 1;
            assert!(calls <= out.len() + 10, "reader made no progress");
        }
        // Exhausted stays exhausted.
        assert!(!reader.next_batch(batch, &mut out)?);
        Ok(out)
    }

    /// The expected lines, written plainly: split at '\n', drop one '\r' before it.
    fn expected_lines(contents: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = contents;
        while !rest.is_empty() {
            match rest.find('\n') {
                Some(i) => {
                    let line = &rest[..i];
                    lines.push(line.strip_suffix('\r').unwrap_or(line).to_string());
                    rest = &rest[i + 1..];
                }
                None => {
                    lines.push(rest.to_string());
                    rest = "";
                }
            }
        }
        lines
    }

    fn lines_by_worker(
        files: &[PathBuf],
        only: Option<&Path>,
        workers: usize,
        split_min: u64,
        batch: usize,
    ) -> Vec<String> {
        let mut all = Vec::new();
        for w in 0..workers {
            let shares: Vec<_> = plan_shares_with(files, w, workers, split_min)
                .unwrap()
                .into_iter()
                .filter(|s| only.is_none_or(|p| s.path == p))
                .collect();
            all.extend(read_all(shares, batch).unwrap());
        }
        all
    }

    fn content_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("a"),
            Just("bc"),
            Just("é"),
            Just("日本"),
            Just("😀"),
            Just("\n"),
            Just("\n"),
            Just("\r\n"),
            Just("\r"),
            Just(" "),
        ];
        prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn every_line_read_exactly_once(
            files in prop::collection::vec(content_strategy(), 1..4),
            split_min in 0u64..80,
            batch in 1usize..5,
        ) {
            let dir = TempDir::new("text-file-test");
            let paths: Vec<PathBuf> = files
                .iter()
                .enumerate()
                .map(|(i, c)| dir.write(&format!("part-{i}.txt"), c.as_bytes()))
                .collect();
            prop_assert_eq!(list_input_files(&dir.0).unwrap(), paths.clone());
            for workers in 1..=5 {
                // Per file, worker order gives the file's lines in order, each once.
                for (p, c) in paths.iter().zip(&files) {
                    let got = lines_by_worker(&paths, Some(p), workers, split_min, batch);
                    prop_assert_eq!(&got, &expected_lines(c));
                    prop_assert_eq!(&got, &c.lines().collect::<Vec<_>>());
                }
                // All files at once: the same lines, nothing extra.
                let mut got = lines_by_worker(&paths, None, workers, split_min, batch);
                let mut want: Vec<String> = files.iter().flat_map(|c| expected_lines(c)).collect();
                got.sort();
                want.sort();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn large_file_is_split_and_read_once() {
        let dir = TempDir::new("text-file-test");
        let mut contents = String::new();
        let mut i = 0u64;
        while (contents.len() as u64) < SPLIT_MIN_BYTES + SPLIT_MIN_BYTES / 2 {
            match i % 5 {
                0 => contents.push_str(&format!("line {i} é\r\n")),
                1 => contents.push('\n'),
                _ => contents.push_str(&format!("{}\n", "x".repeat((i % 97) as usize))),
            }
            i += 1;
        }
        contents.push_str("no newline at end 😀");
        let path = dir.write("big.txt", contents.as_bytes());
        let files = vec![path];
        let want = expected_lines(&contents);
        for workers in 1..=5 {
            let mut starts = 0;
            for w in 0..workers {
                let shares = plan_shares(&files, w, workers).unwrap();
                assert_eq!(shares.len(), 1);
                assert_eq!(shares[0].start, starts);
                starts = shares[0].end;
            }
            assert_eq!(starts, contents.len() as u64);
            assert_eq!(lines_by_worker(&files, None, workers, SPLIT_MIN_BYTES, 1000), want);
        }
    }

    #[test]
    fn small_files_round_robin() {
        let dir = TempDir::new("text-file-test");
        let a = dir.write("a", b"1\n2\n");
        let b = dir.write("b", b"3");
        let c = dir.write("c", b"");
        let files = vec![a.clone(), b.clone(), c];
        let s0 = plan_shares(&files, 0, 2).unwrap();
        let s1 = plan_shares(&files, 1, 2).unwrap();
        assert_eq!(s0, vec![FileShare { path: a, start: 0, end: 4 }]);
        assert_eq!(s1, vec![FileShare { path: b, start: 0, end: 1 }]);
        assert_eq!(read_all(s0, 10).unwrap(), vec!["1", "2"]);
        assert_eq!(read_all(s1, 10).unwrap(), vec!["3"]);
        assert_eq!(plan_shares(&files, 2, 2).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(plan_shares(&files, 0, 0).is_err());
    }

    #[test]
    fn line_edge_cases() {
        let dir = TempDir::new("text-file-test");
        let cases: [(&[u8], &[&str]); 6] = [
            (b"", &[]),
            (b"a\n\nb", &["a", "", "b"]),
            (b"a\r\nb\r\n", &["a", "b"]),
            (b"\n", &[""]),
            (b"a\r", &["a\r"]),
            (b"x\r\r\n", &["x\r"]),
        ];
        for (i, (contents, want)) in cases.iter().enumerate() {
            let p = dir.write(&format!("f{i}"), contents);
            let shares = plan_shares(&[p], 0, 1).unwrap();
            assert_eq!(read_all(shares, 3).unwrap(), *want, "case {i}");
        }
    }

    #[test]
    fn directory_listing() {
        let dir = TempDir::new("text-file-test");
        assert_eq!(list_input_files(&dir.0).unwrap(), Vec::<PathBuf>::new());
        dir.write("b.txt", b"b");
        dir.write("a.txt", b"a");
        dir.write(".hidden", b"h");
        dir.write("_SUCCESS", b"");
        std::fs::create_dir(dir.0.join("sub")).unwrap();
        std::fs::write(dir.0.join("sub").join("c.txt"), b"c").unwrap();
        let files = list_input_files(&dir.0).unwrap();
        assert_eq!(files, vec![dir.0.join("a.txt"), dir.0.join("b.txt")]);
        let single = list_input_files(&dir.0.join(".hidden")).unwrap();
        assert_eq!(single, vec![dir.0.join(".hidden")]);
        let mut lines = Vec::new();
        for w in 0..3 {
            lines.extend(read_all(plan_shares(&files, w, 3).unwrap(), 10).unwrap());
        }
        assert_eq!(lines, vec!["a", "b"]);
    }

    #[test]
    fn recursive_listing_reads_sub_directories_but_not_hidden_ones() {
        let dir = TempDir::new("text-file-test");
        dir.write("b.txt", b"b");
        std::fs::create_dir_all(dir.0.join("a").join("deep")).unwrap();
        std::fs::create_dir(dir.0.join(".hidden-dir")).unwrap();
        std::fs::create_dir(dir.0.join("_tmp")).unwrap();
        dir.write("a/x.txt", b"x");
        dir.write("a/deep/y.txt", b"y");
        dir.write("a/.z.inprogress.1", b"z");
        dir.write(".hidden-dir/h.txt", b"h");
        dir.write("_tmp/t.txt", b"t");
        let want = vec![dir.0.join("a/deep/y.txt"), dir.0.join("a/x.txt"), dir.0.join("b.txt")];
        assert_eq!(list_files(&dir.0, true).unwrap(), want);
        assert_eq!(list_files(&dir.0, false).unwrap(), vec![dir.0.join("b.txt")]);
        assert_eq!(list_files(&dir.0.join("a/x.txt"), true).unwrap(), vec![dir.0.join("a/x.txt")]);
    }

    #[test]
    fn missing_path_message() {
        let dir = TempDir::new("text-file-test");
        let missing = dir.0.join("nope.txt");
        let err = list_input_files(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(err.to_string(), format!("no such file or directory: {}", missing.display()));
        let err = plan_shares(std::slice::from_ref(&missing), 0, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with(&missing.display().to_string()));
        // Deleted between planning and reading: an error naming the file, no panic.
        let share = FileShare { path: missing, start: 0, end: 5 };
        let err = read_all(vec![share], 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn invalid_utf8_message() {
        let dir = TempDir::new("text-file-test");
        let p = dir.write("bad.txt", b"ok\nfine\nbad \xff here\nafter\n");
        let shares = plan_shares(std::slice::from_ref(&p), 0, 1).unwrap();
        let mut reader = LineReader::new(shares.clone(), EncodingErrors::Strict);
        let mut out = Vec::new();
        let err = reader.next_batch(10, &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), not_utf8(&p.display().to_string(), 3, 12));
        assert!(err.to_string().contains("line 3 is not valid UTF-8 (bad byte at offset 12)"), "{err}");
        assert_eq!(out, vec!["ok", "fine"]);
        // Asked for, bad bytes are replaced or left out instead.
        let mut out = Vec::new();
        LineReader::new(shares.clone(), EncodingErrors::Replace).next_batch(10, &mut out).unwrap();
        assert_eq!(out, vec!["ok", "fine", "bad \u{FFFD} here", "after"]);
        let mut out = Vec::new();
        LineReader::new(shares, EncodingErrors::Ignore).next_batch(10, &mut out).unwrap();
        assert_eq!(out[2], "bad  here");
    }

    /// A bad line in a later worker's byte range is named by its line in the file,
    /// not in the range (the worker counts the lines before its range).
    #[test]
    fn invalid_utf8_in_a_later_share_names_the_file_line() {
        let dir = TempDir::new("text-file-test");
        let mut contents = Vec::new();
        for i in 0..1000 {
            contents.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let bad_at = contents.len() + 2;
        contents.extend_from_slice(b"ba\xffd\n");
        for i in 0..300 {
            contents.extend_from_slice(format!("tail {i}\n").as_bytes());
        }
        let p = dir.write("big.txt", &contents);
        for workers in 1..=4 {
            let mut errors = Vec::new();
            for w in 0..workers {
                let shares = plan_shares_with(std::slice::from_ref(&p), w, workers, 0).unwrap();
                let mut reader = LineReader::new(shares, EncodingErrors::Strict);
                let mut out = Vec::new();
                loop {
                    match reader.next_batch(7, &mut out) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            errors.push(e.to_string());
                            break;
                        }
                    }
                }
            }
            assert_eq!(errors, vec![not_utf8(&p.display().to_string(), 1001, bad_at as u64)], "workers={workers}");
        }
    }

    #[test]
    fn shrunk_file_does_not_panic() {
        let dir = TempDir::new("text-file-test");
        let p = dir.write("s.txt", b"a\nb\n");
        let share = FileShare { path: p, start: 10, end: 20 };
        assert_eq!(read_all(vec![share], 10).unwrap(), Vec::<String>::new());
    }
}
