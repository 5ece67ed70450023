//! One source for every file format (text lines, JSON lines, CSV, Parquet): the files
//! of some paths, cut into [`FileShare`]s by the format, dealt to workers, read by the
//! format's [`ShareReader`], and resumed from checkpoints as the pieces left to read.
//!
//! A share's `start..end` is in the format's own unit: bytes for line formats and CSV,
//! rows for Parquet (a share is one row group, and resumes at a row). Whatever the
//! unit, what is left of a reader is again a list of shares, so a restore deals them
//! as [`crate::connectors::positions::dealt_pieces`] says, cutting those the format
//! allows to be cut ([`FileFormat::split_min`]).
//!
//! With [`Listing::monitor`] the source never ends: every interval each reader lists
//! the paths again and takes the new files it owns ([`split_owner`] of the path, so
//! the owner of a file is the same in every process and run), whole. A file is read
//! once: the files a reader took go into its checkpoints, and a restore at any
//! parallelism takes the union of them (each reader only records files it owns, so a
//! file in the union was read, or its shares are in some reader's pieces).

use std::collections::BTreeSet;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::connectors::positions::dealt_pieces;
use crate::connectors::splits::split_owner;
use crate::connectors::storage::is_remote;
use crate::connectors::text_file::{list_files, FileShare};
use crate::error::{UdfError, UdfResult};
use crate::functions::{SourceFactory, SourceReader, SourceStatus, Waker};
use crate::record::Record;

/// Reads a list of shares in order, as records.
pub trait ShareReader<R>: 'static {
    /// Appends up to `max` records to `out`; `Ok(false)` once every share is read
    /// (possibly with the last records). Records skipped as malformed (when the user
    /// asked for that) are added to `skipped`.
    fn read(&mut self, max: usize, out: &mut Vec<R>, skipped: &mut u64) -> UdfResult<bool>;

    /// What is left to read, as shares of the same unit: a reader of these reads
    /// exactly the records this one has not returned yet.
    fn remaining(&self) -> Vec<FileShare>;
}

/// The shares of `files` that reader `index` of `peers` reads.
pub type PlanShares = Arc<dyn Fn(&[PathBuf], usize, usize) -> io::Result<Vec<FileShare>> + Send + Sync>;
/// A reader over shares.
pub type OpenShares<R> = Arc<dyn Fn(Vec<FileShare>) -> Box<dyn ShareReader<R>> + Send + Sync>;

/// How a format cuts and reads files.
pub struct FileFormat<R> {
    /// For messages: "JSON lines", "CSV"...
    pub name: &'static str,
    pub plan: PlanShares,
    pub open: OpenShares<R>,
    /// After a rescale, shares of this many units or more are cut among the new
    /// readers (`u64::MAX`: never, for formats whose shares cannot be cut).
    pub split_min: u64,
}

impl<R> Clone for FileFormat<R> {
    fn clone(&self) -> Self {
        FileFormat { name: self.name, plan: self.plan.clone(), open: self.open.clone(), split_min: self.split_min }
    }
}

/// Which files a source reads.
#[derive(Clone, Debug)]
pub struct Listing {
    pub paths: Vec<PathBuf>,
    /// Directories with their sub-directories.
    pub recursive: bool,
    /// List again this often and read new files (the source never ends); `None`: the
    /// files there when the job starts, then end.
    pub monitor: Option<Duration>,
}

impl Listing {
    /// Every file of every path, in path order (each directory's in name order). An
    /// `s3://` folder has no existence of its own: while monitoring, one with no object
    /// yet is empty rather than missing.
    fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for path in &self.paths {
            match list_files(path, self.recursive) {
                Ok(found) => files.extend(found),
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.monitor.is_some() && is_remote(path) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(files)
    }
}

/// The source: each reader reads its shares of the listed files with `format`.
pub fn files_source<R: Record>(listing: Listing, format: FileFormat<R>) -> SourceFactory<R> {
    Arc::new(move |ctx| {
        let err = |e: io::Error| UdfError::new(e.to_string());
        let (shares, monitor) = match listing.monitor {
            None => ((format.plan)(&listing.files().map_err(err)?, ctx.index, ctx.peers).map_err(err)?, None),
            Some(every) => {
                let stop = Arc::new(AtomicBool::new(false));
                if let Some(waker) = ctx.waker.clone() {
                    tick(every, waker, stop.clone())?;
                }
                (Vec::new(), Some(Monitor { every, next: Instant::now(), seen: BTreeSet::new(), stop }))
            }
        };
        Ok(Box::new(FilesReader {
            reader: (format.open)(shares.clone()),
            format: format.clone(),
            listing: listing.clone(),
            index: ctx.index,
            peers: ctx.peers,
            marked: shares,
            marked_seen: BTreeSet::new(),
            monitor,
            skipped: 0,
        }) as Box<dyn SourceReader<R>>)
    })
}

/// Wakes the source every `every` until `stop`, so it lists again while idle.
fn tick(every: Duration, waker: Waker, stop: Arc<AtomicBool>) -> UdfResult<()> {
    std::thread::Builder::new()
        .name("ferroflow:monitor".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(every.min(Duration::from_millis(200)));
                waker();
            }
        })
        .map(|_| ())
        .map_err(|e| UdfError::new(format!("cannot start a thread to monitor files: {e}")))
}

struct Monitor {
    every: Duration,
    next: Instant,
    /// Files this reader took (only files it owns).
    seen: BTreeSet<PathBuf>,
    stop: Arc<AtomicBool>,
}

struct FilesReader<R> {
    reader: Box<dyn ShareReader<R>>,
    format: FileFormat<R>,
    listing: Listing,
    index: usize,
    peers: usize,
    /// The shares left, and the files taken, at the last mark.
    marked: Vec<FileShare>,
    marked_seen: BTreeSet<PathBuf>,
    monitor: Option<Monitor>,
    skipped: u64,
}

impl<R: Record> FilesReader<R> {
    /// Lists the paths and adds the new files this reader owns to its shares.
    fn discover(&mut self) -> UdfResult<()> {
        let err = |e: io::Error| UdfError::new(e.to_string());
        let Some(monitor) = self.monitor.as_mut() else { return Ok(()) };
        if Instant::now() < monitor.next {
            return Ok(());
        }
        monitor.next = Instant::now() + monitor.every;
        let mut new = Vec::new();
        for file in self.listing.files().map_err(err)? {
            let owned = split_owner(file.as_os_str().as_bytes(), self.peers) == self.index;
            if owned && !monitor.seen.contains(&file) {
                monitor.seen.insert(file.clone());
                new.push(file);
            }
        }
        if !new.is_empty() {
            let mut shares = self.reader.remaining();
            shares.extend((self.format.plan)(&new, 0, 1).map_err(err)?);
            self.reader = (self.format.open)(shares);
        }
        Ok(())
    }

    fn report_skipped(&mut self) {
        if self.skipped > 0 {
            let paths: Vec<_> = self.listing.paths.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "ferroflow: {} source {} (reader {}): skipped {} malformed record(s)",
                self.format.name,
                paths.join(", "),
                self.index,
                self.skipped
            );
            self.skipped = 0;
        }
    }
}

impl<R: Record> SourceReader<R> for FilesReader<R> {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        self.discover()?;
        if self.reader.read(max, out, &mut self.skipped)? {
            return Ok(SourceStatus::More);
        }
        if self.monitor.is_some() {
            return Ok(if out.is_empty() { SourceStatus::Idle } else { SourceStatus::More });
        }
        // At the end: nothing left, in every later checkpoint.
        self.marked.clear();
        self.report_skipped();
        Ok(SourceStatus::Done)
    }

    fn cancel(&mut self) {
        if let Some(m) = &self.monitor {
            m.stop.store(true, Ordering::Relaxed);
        }
        self.report_skipped();
    }

    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        self.marked = self.reader.remaining();
        if let Some(m) = &self.monitor {
            self.marked_seen.clone_from(&m.seen);
        }
        Ok(())
    }

    /// The shares left: `count`, then per share the path's bytes, start and end; then
    /// the files taken, when monitoring: `count`, then each path's bytes.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        w.u64(self.marked.len() as u64);
        for share in &self.marked {
            w.bytes(share.path.as_os_str().as_bytes());
            w.u64(share.start);
            w.u64(share.end);
        }
        if self.monitor.is_some() {
            w.u64(self.marked_seen.len() as u64);
            for path in &self.marked_seen {
                w.bytes(path.as_os_str().as_bytes());
            }
        }
        *out = w.into_bytes();
        Ok(())
    }

    /// Each share is a piece of work on its own, so after a rescale every old reader's
    /// shares (those of `split_min` units or more cut in as many parts as there are new
    /// readers) are dealt to the new readers: nothing is read twice or skipped. The
    /// files taken are the union of every old reader's.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        let peers = self.peers;
        let parts = if from.old_peers() == peers { 1 } else { peers };
        let split_min = if parts > 1 { self.format.split_min } else { u64::MAX };
        let read = |section: &[u8]| -> Result<Vec<FileShare>, StateError> {
            let (shares, _) = read_section::<R>(section)?;
            Ok(shares.into_iter().flat_map(|s| cut_share(s, split_min, parts)).collect())
        };
        if let Some(shares) = dealt_pieces(from, peers, read)? {
            self.marked = shares.clone();
            self.reader = (self.format.open)(shares);
        }
        if let Some(monitor) = self.monitor.as_mut() {
            for section in from.non_empty() {
                let (_, seen) = read_section::<R>(section).map_err(|e| UdfError::new(e.to_string()))?;
                monitor.seen.extend(seen);
            }
            self.marked_seen.clone_from(&monitor.seen);
        }
        Ok(())
    }
}

impl<R> Drop for FilesReader<R> {
    fn drop(&mut self) {
        if let Some(m) = &self.monitor {
            m.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// `share` cut in `parts` contiguous ranges if it has `split_min` units or more.
fn cut_share(share: FileShare, split_min: u64, parts: usize) -> Vec<FileShare> {
    let len = share.end.saturating_sub(share.start);
    if len < split_min.max(1) || parts < 2 {
        return vec![share];
    }
    // Exact in u128; each cut lies within the share.
    let cut = |i: usize| share.start + u64::try_from(u128::from(len) * i as u128 / parts as u128).unwrap_or(len);
    (0..parts)
        .map(|i| FileShare { path: share.path.clone(), start: cut(i), end: cut(i + 1) })
        .filter(|s| s.start < s.end)
        .collect()
}

/// The shares and files taken of one old reader's section.
fn read_section<R: Record>(section: &[u8]) -> Result<(Vec<FileShare>, Vec<PathBuf>), StateError> {
    let path = |b: &[u8]| Path::new(std::ffi::OsStr::from_bytes(b)).to_path_buf();
    let mut r = StateReader::<R>::new(section);
    let n = r.u64()?;
    let mut shares = Vec::new();
    for _ in 0..n {
        let p = path(r.bytes()?);
        let (start, end) = (r.u64()?, r.u64()?);
        shares.push(FileShare { path: p, start, end });
    }
    let mut seen = Vec::new();
    if r.remaining() > 0 {
        for _ in 0..r.u64()? {
            seen.push(path(r.bytes()?));
        }
    }
    r.finish()?;
    Ok((shares, seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::formats::text_lines;
    use crate::connectors::text::EncodingErrors;
    use crate::functions::{Checkpointing, WorkerContext};

    fn reader(dir: &Path, index: usize, peers: usize) -> Box<dyn SourceReader<String>> {
        let listing = Listing { paths: vec![dir.to_path_buf()], recursive: false, monitor: Some(Duration::ZERO) };
        let factory = files_source::<String>(listing, text_lines(EncodingErrors::Strict, u64::MAX));
        let ctx = WorkerContext { index, peers, waker: None, checkpointing: Checkpointing::Off };
        factory(&ctx).unwrap()
    }

    fn drain(r: &mut dyn SourceReader<String>) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..10 {
            r.poll(2, &mut out).unwrap();
        }
        out.sort();
        out
    }

    /// A monitored folder: each file read once by its owner; the files taken go into
    /// checkpoints, so a restore at another parallelism reads only the files not taken.
    #[test]
    fn monitoring_reads_new_files_once_and_restores_the_files_taken() {
        let dir = std::env::temp_dir().join(format!("ferroflow-files-monitor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["a", "b", "c"] {
            std::fs::write(dir.join(name), format!("{name}1\n{name}2\n")).unwrap();
        }
        let (mut r0, mut r1) = (reader(&dir, 0, 2), reader(&dir, 1, 2));
        let mut all = drain(r0.as_mut());
        all.extend(drain(r1.as_mut()));
        all.sort();
        assert_eq!(all, ["a1", "a2", "b1", "b2", "c1", "c2"]);
        std::fs::write(dir.join("d"), "d1\n").unwrap();
        let mut sections = Vec::new();
        for r in [&mut r0, &mut r1] {
            let mut later = drain(r.as_mut());
            all.append(&mut later);
            r.mark_position(1).unwrap();
            let mut s = Vec::new();
            r.snapshot(&mut s).unwrap();
            sections.push(s);
        }
        assert_eq!(all.iter().filter(|l| *l == "d1").count(), 1);
        // Restored on 3 readers: nothing read again; a new file read once.
        std::fs::write(dir.join("e"), "e1\n").unwrap();
        let mut got = Vec::new();
        for w in 0..3 {
            let mut r = reader(&dir, w, 3);
            r.restore(&Restore::new(sections.iter().map(|s| s.as_slice()).collect(), w, 3)).unwrap();
            got.extend(drain(r.as_mut()));
        }
        assert_eq!(got, ["e1"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
