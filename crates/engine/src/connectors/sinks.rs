//! Sink factories for files and sockets. What bytes a record becomes is the caller's
//! business (a [`Encode`] function): the engine only moves bytes, outside the batch
//! scope (see [`Sink::flush`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::checkpoint::restore::Restore;
use crate::connectors::socket::SocketWriter;
use crate::connectors::text_file::is_hidden;
use crate::error::{UdfError, UdfResult};
use crate::functions::{Checkpointing, Sink, SinkCommit, SinkFactory, WorkerContext};

/// Appends the bytes of a batch of records to a buffer.
pub type Encode<R> = Arc<dyn Fn(&[R], &mut Vec<u8>) -> UdfResult<()> + Send + Sync>;

/// Bytes a file sink gathers before writing them out: a few large writes.
const FILE_WRITE_BYTES: usize = 256 * 1024;

/// Writes text to `path`. With several workers, `path` is a directory holding one
/// file per worker, named `1`, `2`, ... (as Flink does). Without `overwrite`, an
/// existing file is an error.
///
/// Each file is written under a hidden in-progress name next to its final one
/// ([`in_progress_path`]) and gets its final name only once the whole job succeeded
/// ([`publish`]); a failed or cancelled job removes it, so it never leaves a partial
/// file under the final name, and an overwritten output stays as it was.
///
/// When the job takes checkpoints, `path` is a directory of part files committed with
/// them instead (see [`PartFiles`]): what is visible is exactly-once.
pub fn text_file<R: 'static>(path: impl Into<PathBuf>, overwrite: bool, encode: Encode<R>) -> SinkFactory<R> {
    let path = path.into();
    Arc::new(move |ctx| {
        if let Checkpointing::On { first_id, restoring } = ctx.checkpointing {
            return PartFiles::open(&path, ctx, overwrite, restoring, first_id, encode.clone())
                .map(|s| Box::new(s) as Box<dyn Sink<R>>);
        }
        let target = if ctx.peers > 1 {
            if path.is_file() {
                if !overwrite {
                    return Err(UdfError::new(format!(
                        "{} already exists: pass overwrite=True (WriteMode.OVERWRITE) to replace it",
                        path.display()
                    )));
                }
                let _ = fs::remove_file(&path);
            }
            fs::create_dir_all(&path).map_err(|e| UdfError::new(format!("cannot create {}: {e}", path.display())))?;
            path.join((ctx.index + 1).to_string())
        } else {
            if path.is_dir() && !overwrite {
                return Err(UdfError::new(format!(
                    "{} is a directory: pass overwrite=True (WriteMode.OVERWRITE) to replace it",
                    path.display()
                )));
            }
            path.clone()
        };
        if target.exists() && !overwrite {
            return Err(UdfError::new(format!(
                "{} already exists: pass overwrite=True (WriteMode.OVERWRITE) to replace it",
                target.display()
            )));
        }
        let part = in_progress_path(&target)?;
        let file =
            File::create_new(&part).map_err(|e| UdfError::new(format!("cannot create {}: {e}", part.display())))?;
        Ok(Box::new(FileSink { file, part: Some(part), target, overwrite, encode: encode.clone(), buf: Vec::new() })
            as Box<dyn Sink<R>>)
    })
}

/// The hidden name a file is written under until it is published: `.<name>.inprogress.<random>`
/// in the target's directory (so publishing is a rename, and readers of the directory,
/// `read_text_file` included, skip it as hidden).
pub fn in_progress_path(target: &Path) -> UdfResult<PathBuf> {
    let name = target.file_name().ok_or_else(|| UdfError::new(format!("{} is not a file name", target.display())))?;
    let random = getrandom::u64().map_err(|e| UdfError::new(format!("no randomness from the OS: {e}")))?;
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(format!(".inprogress.{random:016x}"));
    Ok(target.with_file_name(hidden))
}

/// Gives a finished file its final name: the one step that makes a file sink's output
/// visible. With `overwrite`, what is there (a file or a directory) is replaced.
pub fn publish(part: &Path, target: &Path, overwrite: bool) -> Result<(), String> {
    match fs::symlink_metadata(target) {
        Ok(_) if !overwrite => {
            return Err(format!(
                "{} appeared while the job ran: pass overwrite=True (WriteMode.OVERWRITE) to replace it",
                target.display()
            ))
        }
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(target).map_err(|e| format!("cannot remove {}: {e}", target.display()))?
        }
        _ => {}
    }
    fs::rename(part, target).map_err(|e| format!("cannot rename {} to {}: {e}", part.display(), target.display()))
}

struct FileSink<R> {
    file: File,
    /// The in-progress file; `None` once handed to its [`PendingFile`].
    part: Option<PathBuf>,
    target: PathBuf,
    overwrite: bool,
    encode: Encode<R>,
    buf: Vec<u8>,
}

impl<R> FileSink<R> {
    fn write_out(&mut self) -> UdfResult<()> {
        self.file.write_all(&self.buf).map_err(|e| UdfError::new(format!("writing {}: {e}", self.target.display())))?;
        self.buf.clear();
        Ok(())
    }
}

impl<R: 'static> Sink<R> for FileSink<R> {
    fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()> {
        (self.encode)(batch, &mut self.buf)
    }

    fn flush(&mut self, _abort: &AtomicBool) -> UdfResult<()> {
        if self.buf.len() >= FILE_WRITE_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes the rest and syncs it to disk, so the file is whole before it is renamed.
    fn prepare_commit(&mut self) -> UdfResult<Option<Box<dyn SinkCommit>>> {
        self.write_out()?;
        self.file.sync_all().map_err(|e| UdfError::new(format!("writing {}: {e}", self.target.display())))?;
        Ok(self.part.take().map(|part| {
            Box::new(PendingFile { part: Some(part), target: self.target.clone(), overwrite: self.overwrite })
                as Box<dyn SinkCommit>
        }))
    }
}

impl<R> Drop for FileSink<R> {
    /// The job stopped before this file was finished.
    fn drop(&mut self) {
        if let Some(part) = &self.part {
            let _ = fs::remove_file(part);
        }
    }
}

/// A finished in-progress file, waiting for the job's success.
struct PendingFile {
    part: Option<PathBuf>,
    target: PathBuf,
    overwrite: bool,
}

impl SinkCommit for PendingFile {
    fn commit(mut self: Box<Self>) -> Result<(), String> {
        match self.part.take() {
            Some(part) => publish(&part, &self.target, self.overwrite).inspect_err(|_| {
                let _ = fs::remove_file(&part);
            }),
            None => Ok(()),
        }
    }
}

impl Drop for PendingFile {
    /// Not published: the job failed or was cancelled.
    fn drop(&mut self) {
        if let Some(part) = &self.part {
            let _ = fs::remove_file(part);
        }
    }
}

/// A file sink under checkpoints (Flink's `FileSink` with its two-phase commit): `dir`
/// holds each worker's part files, `part-<worker>-<n>`.
///
/// A worker writes into a hidden in-progress file. When a checkpoint `n` is taken, the
/// file is synced and renamed to the hidden `.part-<worker>-<n>.pending`, and the
/// checkpoint records it (pre-commit). When checkpoint `n` completes, pending files up to
/// it get their visible names (commit). A restore from checkpoint `n` commits the
/// pending files it lists (it completed; the commit may not have happened before the
/// crash) and removes what was written after it: other pending files and in-progress
/// ones. At the end of the job the last file is committed with the job's success, as
/// `part-<worker>-<n>` with `n` after every checkpoint id of the run. So a reader of
/// `dir` that skips hidden files (Flink's convention, `read_text_file`'s too) sees every
/// record exactly once, however often the job was killed and restored.
pub struct PartFiles<R> {
    dir: PathBuf,
    worker: usize,
    encode: Encode<R>,
    buf: Vec<u8>,
    /// The in-progress file and its path, opened at the first record after a commit.
    current: Option<(File, PathBuf)>,
    /// Pre-committed, not yet committed: checkpoint ids, oldest first.
    pending: Vec<u64>,
    /// The next file's id at the end of the job: after every checkpoint id seen.
    next_id: u64,
}

impl<R> PartFiles<R> {
    fn open(
        dir: &Path,
        ctx: &WorkerContext,
        overwrite: bool,
        restoring: bool,
        first_id: u64,
        encode: Encode<R>,
    ) -> UdfResult<Self> {
        let err = |e: std::io::Error| UdfError::new(format!("cannot create {}: {e}", dir.display()));
        if dir.is_file() {
            if !overwrite {
                return Err(UdfError::new(format!(
                    "{} is a file: with checkpoints, write_as_text writes a directory of part files; pass overwrite=True (WriteMode.OVERWRITE) to replace it",
                    dir.display()
                )));
            }
            let _ = fs::remove_file(dir);
        }
        if !restoring && ctx.index == 0 {
            // A fresh run starts an empty directory (a restored one continues its own).
            let visible = fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).any(|e| !is_hidden(&e.file_name())));
            if visible.unwrap_or(false) {
                if !overwrite {
                    return Err(UdfError::new(format!(
                        "{} already holds files: pass overwrite=True (WriteMode.OVERWRITE) to replace them, or restore the job that wrote them",
                        dir.display()
                    )));
                }
                fs::remove_dir_all(dir).map_err(err)?;
            }
        }
        fs::create_dir_all(dir).map_err(err)?;
        Ok(PartFiles {
            dir: dir.to_path_buf(),
            worker: ctx.index,
            encode,
            buf: Vec::new(),
            current: None,
            pending: Vec::new(),
            next_id: first_id,
        })
    }

    fn pending_path(&self, worker: usize, id: u64) -> PathBuf {
        self.dir.join(format!(".part-{worker}-{id}.pending"))
    }

    fn final_path(&self, worker: usize, id: u64) -> PathBuf {
        self.dir.join(format!("part-{worker}-{id}"))
    }

    fn io(&self, what: &Path, e: std::io::Error) -> UdfError {
        UdfError::new(format!("writing {}: {e}", what.display()))
    }

    /// Writes out the buffer, opening the in-progress file if need be.
    fn write_out(&mut self) -> UdfResult<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            let path = in_progress_path(&self.final_path(self.worker, 0))?;
            let file = File::create_new(&path).map_err(|e| self.io(&path, e))?;
            self.current = Some((file, path));
        }
        let (file, path) = self.current.as_mut().expect("opened above");
        file.write_all(&self.buf).map_err(|e| UdfError::new(format!("writing {}: {e}", path.display())))?;
        self.buf.clear();
        Ok(())
    }

    /// Syncs the in-progress file and renames it `to` (hidden or final).
    fn finish_current(&mut self, to: &Path) -> UdfResult<bool> {
        self.write_out()?;
        let Some((file, path)) = self.current.take() else { return Ok(false) };
        file.sync_all().map_err(|e| self.io(&path, e))?;
        fs::rename(&path, to).map_err(|e| self.io(to, e))?;
        Ok(true)
    }

    /// Gives pending file `id` of `worker` its visible name; done already is fine.
    fn commit_one(&self, worker: usize, id: u64) -> UdfResult<()> {
        let (from, to) = (self.pending_path(worker, id), self.final_path(worker, id));
        match fs::rename(&from, &to) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(UdfError::new(format!("cannot commit {}: it is gone", from.display())))
            }
            r => r.map_err(|e| self.io(&to, e)),
        }
    }

    fn sync_dir(&self) -> UdfResult<()> {
        crate::checkpoint::storage::sync_dir(&self.dir).map_err(|e| self.io(&self.dir, e))
    }
}

/// `(worker, id)` of a part file's name: `part-<w>-<n>`, `.part-<w>-<n>.pending`, or
/// `.part-<w>-0.inprogress.<random>` (id 0: not pre-committed).
fn part_name(name: &str) -> Option<(usize, u64)> {
    let rest = name.strip_prefix(".part-").or_else(|| name.strip_prefix("part-"))?;
    let (worker, rest) = rest.split_once('-')?;
    let id = rest.split('.').next()?;
    Some((worker.parse().ok()?, id.parse().ok()?))
}

impl<R: 'static> Sink<R> for PartFiles<R> {
    fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()> {
        (self.encode)(batch, &mut self.buf)
    }

    fn flush(&mut self, _abort: &AtomicBool) -> UdfResult<()> {
        if self.buf.len() >= FILE_WRITE_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, id: u64, out: &mut Vec<u8>) -> UdfResult<()> {
        if self.finish_current(&self.pending_path(self.worker, id))? {
            self.pending.push(id);
            self.sync_dir()?;
        }
        self.next_id = self.next_id.max(id + 1);
        // The pending ids, 8 bytes each (little-endian).
        for id in &self.pending {
            out.extend_from_slice(&id.to_le_bytes());
        }
        Ok(())
    }

    fn commit_checkpoint(&mut self, id: u64) -> UdfResult<()> {
        let done: Vec<u64> = self.pending.iter().copied().filter(|p| *p <= id).collect();
        for p in &done {
            self.commit_one(self.worker, *p)?;
        }
        self.pending.retain(|p| *p > id);
        if !done.is_empty() {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn restore(&mut self, from: &Restore<'_>, id: u64) -> UdfResult<()> {
        self.next_id = self.next_id.max(id + 1);
        let corrupt = |e: String| UdfError::internal(format!("a file sink's checkpoint section is unreadable: {e}"));
        for (old, section) in from.sections().iter().enumerate() {
            if !from.deals(old) {
                continue;
            }
            if section.len() % 8 != 0 {
                return Err(corrupt(format!("{} bytes", section.len())));
            }
            for id in section.chunks_exact(8) {
                let id = u64::from_le_bytes(id.try_into().expect("8 bytes"));
                self.commit_one(old, id)?;
            }
        }
        // What the dealt workers wrote after the checkpoint: never visible, now dropped.
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((worker, _)) = part_name(name) else { continue };
            let stray = name.starts_with('.') && (name.ends_with(".pending") || name.contains(".inprogress."));
            if stray && worker < from.old_peers().max(from.peers()) && from.deals(worker) {
                let _ = fs::remove_file(entry.path());
            }
        }
        self.sync_dir()
    }

    /// The job's end: the last file, committed with the job's success; and what is
    /// still pending (its checkpoint did not complete before the end).
    /// They stay listed as pending too: a sink that ends while the job goes on stands in
    /// later checkpoints with them, so a restore commits them if the job is killed
    /// before its end.
    fn prepare_commit(&mut self) -> UdfResult<Option<Box<dyn SinkCommit>>> {
        let last = self.next_id;
        if self.finish_current(&self.pending_path(self.worker, last))? {
            self.pending.push(last);
            self.sync_dir()?;
        }
        let files: Vec<(PathBuf, PathBuf)> = self
            .pending
            .iter()
            .map(|p| (self.pending_path(self.worker, *p), self.final_path(self.worker, *p)))
            .collect();
        Ok((!files.is_empty()).then(|| Box::new(PendingParts { files, dir: self.dir.clone() }) as Box<dyn SinkCommit>))
    }
}

impl<R> Drop for PartFiles<R> {
    /// The job stopped: an in-progress file is never committed (a restore would drop
    /// it too); pending ones stay for a restore to commit.
    fn drop(&mut self) {
        if let Some((_, path)) = self.current.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// A checkpointed file sink's files at the job's end, committed with its success.
struct PendingParts {
    files: Vec<(PathBuf, PathBuf)>,
    dir: PathBuf,
}

impl SinkCommit for PendingParts {
    fn commit(self: Box<Self>) -> Result<(), String> {
        for (from, to) in &self.files {
            match fs::rename(from, to) {
                // Committed already (a checkpoint completed after the sink ended).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => {}
                r => r.map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))?,
            }
        }
        crate::checkpoint::storage::sync_dir(&self.dir).map_err(|e| e.to_string())
    }
}

/// Writes each record's bytes to a TCP server, with no delimiter added (Flink's
/// writeToSocket). Every worker opens its own connection.
pub fn socket<R: 'static>(host: String, port: u16, encode: Encode<R>) -> SinkFactory<R> {
    Arc::new(move |_ctx| {
        let writer = SocketWriter::connect(&host, port).map_err(UdfError::new)?;
        Ok(Box::new(SocketSink { writer, encode: encode.clone(), buf: Vec::new() }) as Box<dyn Sink<R>>)
    })
}

struct SocketSink<R> {
    writer: SocketWriter,
    encode: Encode<R>,
    buf: Vec<u8>,
}

impl<R: 'static> Sink<R> for SocketSink<R> {
    fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()> {
        (self.encode)(batch, &mut self.buf)
    }

    /// Sends the activation's records at once, so they leave as soon as they are done.
    fn flush(&mut self, abort: &AtomicBool) -> UdfResult<()> {
        let sent = self.writer.write(&self.buf, abort).map_err(UdfError::new);
        self.buf.clear();
        sent
    }
}
