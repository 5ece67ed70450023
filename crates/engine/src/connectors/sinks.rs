//! Sink factories for files and sockets. What bytes a record becomes is the caller's
//! business (a [`Encode`] function): the engine only moves bytes, outside the batch
//! scope (see [`Sink::flush`]).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::checkpoint::restore::Restore;
use crate::connectors::socket::SocketWriter;
use crate::connectors::storage::{self, S3Url};
use crate::connectors::text_file::is_hidden;
use crate::error::{UdfError, UdfResult};
use crate::functions::{Checkpointing, Sink, SinkCommit, SinkFactory, WorkerContext};

/// Appends the bytes of a batch of records to a buffer.
pub type Encode<R> = Arc<dyn Fn(&[R], &mut Vec<u8>) -> UdfResult<()> + Send + Sync>;

/// Encodes records into files that have a beginning and an end (Parquet's footer):
/// one per sink worker, used file after file. What it appends to `out` goes into the
/// part file being written.
pub trait BulkEncoder<R> {
    /// Appends the bytes of `records` (or of earlier ones it held back).
    fn add(&mut self, records: &[R], out: &mut Vec<u8>) -> UdfResult<()>;
    /// The file is closing: appends the rest of it (nothing if no record came since the
    /// last `finish`).
    fn finish(&mut self, out: &mut Vec<u8>) -> UdfResult<()>;
}

/// Makes a worker's [`BulkEncoder`].
pub type BulkFactory<R> = Arc<dyn Fn() -> UdfResult<Box<dyn BulkEncoder<R>>> + Send + Sync>;

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
///
/// An `s3://` path is written through a local staging folder ([`Upload`]): each file
/// appears as its object, whole, when it would have been renamed.
pub fn text_file<R: 'static>(path: impl Into<PathBuf>, overwrite: bool, encode: Encode<R>) -> SinkFactory<R> {
    let path = path.into();
    Arc::new(move |ctx| {
        let upload = Upload::of(&path)?;
        if let Checkpointing::On { first_id, restoring } = ctx.checkpointing {
            return PartFiles::open(&path, ctx, overwrite, restoring, first_id, encode.clone(), upload)
                .map(|s| Box::new(s) as Box<dyn Sink<R>>);
        }
        if let Some(upload) = upload {
            return upload.text_file(ctx, overwrite, encode.clone());
        }
        let target = if ctx.peers > 1 {
            if path.is_file() {
                if !overwrite {
                    return Err(already_exists(path.display()));
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
            return Err(already_exists(target.display()));
        }
        FileSink::create(target, overwrite, encode.clone(), None)
    })
}

/// A sink's refusal of an output that is there already.
fn already_exists(what: impl std::fmt::Display) -> UdfError {
    UdfError::new(format!("{what} already exists: pass overwrite=True (WriteMode.OVERWRITE) to replace it"))
}

/// Files of a sink writing to `s3://`: staged on this host under
/// [`storage::staging_dir`] (in-progress and pending files, as a local sink writes them
/// in its directory), and made visible by uploading each to its object in one PUT
/// where a local sink renames it. S3 has no rename, but a PUT shows an object whole or
/// not at all, and putting the same part again after a restore is harmless.
#[derive(Clone, Debug)]
pub struct Upload {
    base: S3Url,
    staging: PathBuf,
}

impl Upload {
    /// `Some` for an `s3://` path.
    pub fn of(path: &Path) -> UdfResult<Option<Upload>> {
        let url = S3Url::parse(path).map_err(|e| UdfError::new(e.to_string()))?;
        Ok(url.map(|base| Upload { staging: storage::staging_dir(&base), base }))
    }

    /// The object of the staged file `file`.
    fn object(&self, file: &Path) -> std::io::Result<S3Url> {
        storage::object_for(&self.base, &self.staging, file)
    }

    /// `write_as_text` to `s3://` without checkpoints: the object `base` (one worker)
    /// or `base/<worker + 1>`.
    fn text_file<R: 'static>(
        &self,
        ctx: &WorkerContext,
        overwrite: bool,
        encode: Encode<R>,
    ) -> UdfResult<Box<dyn Sink<R>>> {
        let target = if ctx.peers > 1 { self.staging.join((ctx.index + 1).to_string()) } else { self.staging.clone() };
        let object = self.object(&target).map_err(|e| UdfError::new(e.to_string()))?;
        if !overwrite && storage::exists(&object).map_err(|e| UdfError::new(e.to_string()))? {
            return Err(already_exists(object.path().display()));
        }
        let dir = target.parent().unwrap_or(&self.staging);
        fs::create_dir_all(dir).map_err(|e| UdfError::new(format!("cannot create {}: {e}", dir.display())))?;
        FileSink::create(target, overwrite, encode, Some(self.clone()))
    }
}

/// Makes the finished file `from` visible as `to`: renamed, or (with `upload`, `to`
/// being its place in the staging folder) uploaded to its object and removed.
fn make_visible(from: &Path, to: &Path, upload: Option<&Upload>) -> std::io::Result<()> {
    match upload {
        None => fs::rename(from, to),
        Some(u) => {
            storage::upload(from, &u.object(to)?)?;
            fs::remove_file(from)
        }
    }
}

/// Whether `to` is visible already (see [`make_visible`]).
fn is_visible(to: &Path, upload: Option<&Upload>) -> std::io::Result<bool> {
    match upload {
        None => Ok(to.exists()),
        Some(u) => storage::exists(&u.object(to)?),
    }
}

/// For messages: the visible name of `to`.
fn shown(to: &Path, upload: Option<&Upload>) -> String {
    match upload.and_then(|u| u.object(to).ok()) {
        Some(object) => object.path().display().to_string(),
        None => to.display().to_string(),
    }
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
    upload: Option<Upload>,
}

impl<R: 'static> FileSink<R> {
    /// A sink writing `target`'s in-progress file, made new here.
    fn create(
        target: PathBuf,
        overwrite: bool,
        encode: Encode<R>,
        upload: Option<Upload>,
    ) -> UdfResult<Box<dyn Sink<R>>> {
        let part = in_progress_path(&target)?;
        let file =
            File::create_new(&part).map_err(|e| UdfError::new(format!("cannot create {}: {e}", part.display())))?;
        Ok(Box::new(FileSink { file, part: Some(part), target, overwrite, encode, buf: Vec::new(), upload }))
    }
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
            Box::new(PendingFile {
                part: Some(part),
                target: self.target.clone(),
                overwrite: self.overwrite,
                upload: self.upload.clone(),
            }) as Box<dyn SinkCommit>
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
    upload: Option<Upload>,
}

impl SinkCommit for PendingFile {
    fn commit(mut self: Box<Self>) -> Result<(), String> {
        let upload = self.upload.as_ref();
        match self.part.take() {
            Some(part) if upload.is_some() => make_visible(&part, &self.target, upload)
                .map_err(|e| format!("cannot upload {}: {e}", part.display()))
                .inspect_err(|_| {
                    let _ = fs::remove_file(&part);
                }),
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

/// How a file sink names, rolls and buckets its part files (Flink's `FileSink` and its
/// `OutputFileConfig`, `RollingPolicy` and `BucketAssigner`).
#[derive(Clone)]
pub struct PartFileConfig {
    /// Files are named `<prefix>-<uid>-<worker>-<counter><suffix>`: `uid` is new each
    /// time a worker starts, so a restarted job, or another job writing to the same
    /// directory, never reuses a name.
    pub prefix: String,
    pub suffix: String,
    pub rolling: RollingPolicy,
    /// The bucket of records written at a time (ms since the epoch): a relative
    /// directory under the base path. `None`: every file directly in the base path.
    pub bucket: Option<BucketFn>,
}

/// When a file sink closes its file and starts the next one, besides at every
/// checkpoint and the job's end (which always close it). Checked before each record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RollingPolicy {
    /// The file holds more than this many bytes.
    pub part_size: Option<u64>,
    /// The file was opened this many ms ago.
    pub rollover_ms: Option<u64>,
    /// Nothing was written to the file for this many ms.
    pub inactivity_ms: Option<u64>,
}

/// The bucket directory for records written at a time in ms since the epoch.
pub type BucketFn = Arc<dyn Fn(i64) -> UdfResult<String> + Send + Sync>;

/// Flink's `FileSink` (row format): each worker writes part files under `base`, in the
/// bucket directory `config.bucket` gives, named and rolled as `config` says.
///
/// Files are written hidden (`.<name>.inprogress.<random>`), become pending
/// (`.<name>.pending`) when they roll, and get their visible name when the checkpoint
/// after them completes, or, for the last ones (and for every one in a job without
/// checkpoints), when the job succeeds. A failed job without checkpoints leaves nothing
/// visible; with checkpoints a restore commits exactly what its checkpoint lists (see
/// [`PartFiles`]). Files already in `base` are left alone: names never collide.
pub fn part_files<R: 'static>(base: impl Into<PathBuf>, config: PartFileConfig, encode: Encode<R>) -> SinkFactory<R> {
    part_files_with(base.into(), config, encode, None)
}

/// [`part_files`] of a bulk format: each part file is what `bulk`'s encoder writes
/// between two `finish`es (so the rolling policy's size counts the bytes it has
/// written out so far).
pub fn bulk_part_files<R: 'static>(
    base: impl Into<PathBuf>,
    config: PartFileConfig,
    bulk: BulkFactory<R>,
) -> SinkFactory<R> {
    let unused: Encode<R> = Arc::new(|_, _| Err(UdfError::internal("a bulk file sink encoded records one by one")));
    part_files_with(base.into(), config, unused, Some(bulk))
}

fn part_files_with<R: 'static>(
    base: PathBuf,
    config: PartFileConfig,
    encode: Encode<R>,
    bulk: Option<BulkFactory<R>>,
) -> SinkFactory<R> {
    Arc::new(move |ctx| {
        let upload = Upload::of(&base)?;
        let base = upload.as_ref().map_or(base.clone(), |u| u.staging.clone());
        if base.is_file() {
            return Err(UdfError::new(format!(
                "{} is a file: a FileSink writes a directory of part files; give it a directory path",
                base.display()
            )));
        }
        fs::create_dir_all(&base).map_err(|e| UdfError::new(format!("cannot create {}: {e}", base.display())))?;
        let (checkpointed, first_id) = match ctx.checkpointing {
            Checkpointing::On { first_id, .. } => (true, first_id),
            Checkpointing::Off => (false, 0),
        };
        let names = Names::Counted { prefix: config.prefix.clone(), suffix: config.suffix.clone(), uid: new_uid()? };
        let mut sink = PartFiles::new(&base, ctx.index, names, checkpointed, first_id, encode.clone());
        sink.upload = upload;
        sink.bulk = bulk.as_ref().map(|make| make()).transpose()?;
        sink.rolling = config.rolling;
        sink.bucket = config.bucket.clone();
        Ok(Box::new(sink) as Box<dyn Sink<R>>)
    })
}

/// A random id in the form of a UUID (8-4-4-4-12 hex digits), as Flink names part files.
fn new_uid() -> UdfResult<String> {
    let random = |_| getrandom::u64().map_err(|e| UdfError::new(format!("no randomness from the OS: {e}")));
    let (a, b) = (random(0)?, random(1)?);
    Ok(format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    ))
}

/// How part files are named.
enum Names {
    /// `write_as_text` under checkpoints: `part-<worker>-<n>`, one file per checkpoint
    /// `n` (the number is given when the file is pre-committed).
    ByCheckpoint,
    /// A `FileSink`: `<prefix>-<uid>-<worker>-<counter><suffix>`, numbered when opened.
    Counted { prefix: String, suffix: String, uid: String },
}

impl Names {
    /// The worker that wrote a hidden pending or in-progress file of this naming, from
    /// its name; `None` for any other file.
    fn worker_of_hidden(&self, name: &str) -> Option<usize> {
        let rest = name.strip_prefix('.')?;
        if !(rest.ends_with(".pending") || rest.contains(".inprogress.")) {
            return None;
        }
        match self {
            Names::ByCheckpoint => part_name(name).map(|(worker, _)| worker),
            Names::Counted { prefix, .. } => {
                let rest = rest.strip_prefix(prefix.as_str())?.strip_prefix('-')?;
                let uid = rest.get(..36)?;
                if !uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                    return None;
                }
                let (worker, _) = rest.get(36..)?.strip_prefix('-')?.split_once('-')?;
                worker.parse().ok()
            }
        }
    }
}

/// `dir/.<name>.pending` for the final path `dir/<name>`.
fn pending_of(target: &Path) -> PathBuf {
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(target.file_name().unwrap_or_default());
    hidden.push(".pending");
    target.with_file_name(hidden)
}

/// Milliseconds since the epoch by the system clock (what rolling and buckets follow,
/// as Flink's processing time).
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A relative directory made of plain names (no `..`, no root), checked.
fn bucket_dir(base: &Path, bucket: &str) -> UdfResult<PathBuf> {
    let rel = Path::new(bucket);
    if !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
        return Err(UdfError::new(format!(
            "a FileSink bucket must be a relative directory of plain names, got {bucket:?}"
        )));
    }
    Ok(base.join(rel))
}

/// The part file being written.
struct OpenFile {
    file: File,
    /// Its hidden in-progress path.
    path: PathBuf,
    /// Its final path, if the naming gives it when the file opens.
    target: Option<PathBuf>,
}

/// Part files committed with checkpoints (Flink's `FileSink` with its two-phase
/// commit), for `write_as_text` under checkpoints (`dir/part-<worker>-<n>`) and for
/// [`part_files`] (any naming, rolling and buckets, with or without checkpoints).
///
/// A worker writes into a hidden in-progress file. When the file rolls (a checkpoint is
/// taken, or the [`RollingPolicy`] or a new bucket says so) it is synced and renamed to
/// the hidden `.<name>.pending`. When a checkpoint `n` is taken, the files rolled since
/// the last one are recorded in it (pre-commit); when `n` completes, pending files up to
/// it get their visible names (commit). A restore from checkpoint `n` commits the
/// pending files it lists (it completed; the commit may not have happened before the
/// crash) and removes what was written after it: other pending files and in-progress
/// ones. At the end of the job the last files are committed with the job's success. So
/// a reader of `dir` that skips hidden files (Flink's convention, `read_text_file`'s
/// too) sees every record exactly once, however often the job was killed and restored.
///
/// Without checkpoints every file waits for the job's success, and a failed job removes
/// them all (as a plain `write_as_text` does).
pub struct PartFiles<R> {
    dir: PathBuf,
    worker: usize,
    encode: Encode<R>,
    /// A bulk format's encoder, used instead of `encode`.
    bulk: Option<Box<dyn BulkEncoder<R>>>,
    names: Names,
    rolling: RollingPolicy,
    bucket: Option<BucketFn>,
    checkpointed: bool,
    buf: Vec<u8>,
    /// Where the next file opens: `dir`, or the bucket of the latest records.
    bucket_dir: PathBuf,
    /// The in-progress file, opened at the first bytes written after a roll.
    current: Option<OpenFile>,
    /// The current file's bytes (buffered ones too), when its first record came, and
    /// when its latest record came; `started` is `None` while it holds no record.
    size: u64,
    started: Option<i64>,
    written: i64,
    /// Files this worker opened (their counter, [`Names::Counted`]).
    counter: u64,
    /// Rolled since the last pre-commit: final paths.
    rolled: Vec<PathBuf>,
    /// Pre-committed, not yet committed: checkpoint id and final path, oldest first.
    pending: Vec<(u64, PathBuf)>,
    /// The id of files rolled at the end of the job: after every checkpoint id seen.
    next_id: u64,
    /// Writing to `s3://`: `dir` is the staging folder, and commits upload.
    upload: Option<Upload>,
}

impl<R> PartFiles<R> {
    fn new(dir: &Path, worker: usize, names: Names, checkpointed: bool, first_id: u64, encode: Encode<R>) -> Self {
        PartFiles {
            dir: dir.to_path_buf(),
            worker,
            encode,
            bulk: None,
            names,
            rolling: RollingPolicy::default(),
            bucket: None,
            checkpointed,
            buf: Vec::new(),
            bucket_dir: dir.to_path_buf(),
            current: None,
            size: 0,
            started: None,
            written: 0,
            counter: 0,
            rolled: Vec::new(),
            pending: Vec::new(),
            next_id: first_id,
            upload: None,
        }
    }

    /// `write_as_text(dir)` under checkpoints.
    fn open(
        dir: &Path,
        ctx: &WorkerContext,
        overwrite: bool,
        restoring: bool,
        first_id: u64,
        encode: Encode<R>,
        upload: Option<Upload>,
    ) -> UdfResult<Self> {
        if let Some(u) = upload {
            if !restoring && ctx.index == 0 {
                // A fresh run starts an empty folder (a restored one continues its own).
                let err = |e: std::io::Error| UdfError::new(e.to_string());
                let there = match storage::list_objects(&u.base, true) {
                    Ok(objects) => !objects.is_empty(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                    Err(e) => return Err(err(e)),
                };
                if there && !overwrite {
                    return Err(UdfError::new(format!(
                        "{} already holds objects: pass overwrite=True (WriteMode.OVERWRITE) to replace them, or restore the job that wrote them",
                        u.base.path().display()
                    )));
                }
                if there {
                    storage::remove_all(&u.base).map_err(err)?;
                }
            }
            let dir = u.staging.clone();
            fs::create_dir_all(&dir).map_err(|e| UdfError::new(format!("cannot create {}: {e}", dir.display())))?;
            let mut sink = PartFiles::new(&dir, ctx.index, Names::ByCheckpoint, true, first_id, encode);
            sink.upload = Some(u);
            return Ok(sink);
        }
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
        Ok(PartFiles::new(dir, ctx.index, Names::ByCheckpoint, true, first_id, encode))
    }

    fn io(&self, what: &Path, e: std::io::Error) -> UdfError {
        UdfError::new(format!("writing {}: {e}", what.display()))
    }

    /// Opens the next in-progress file in the current bucket.
    fn open_file(&mut self) -> UdfResult<OpenFile> {
        let dir = self.bucket_dir.clone();
        if dir != self.dir {
            fs::create_dir_all(&dir).map_err(|e| UdfError::new(format!("cannot create {}: {e}", dir.display())))?;
        }
        let (path, target) = match &self.names {
            Names::ByCheckpoint => (in_progress_path(&dir.join(format!("part-{}-0", self.worker)))?, None),
            Names::Counted { prefix, suffix, uid } => {
                let target = dir.join(format!("{prefix}-{uid}-{}-{}{suffix}", self.worker, self.counter));
                self.counter += 1;
                (in_progress_path(&target)?, Some(target))
            }
        };
        let file = File::create_new(&path).map_err(|e| self.io(&path, e))?;
        Ok(OpenFile { file, path, target })
    }

    /// Writes out the buffer, opening the in-progress file if need be.
    fn write_out(&mut self) -> UdfResult<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            self.current = Some(self.open_file()?);
        }
        let open = self.current.as_mut().expect("opened above");
        open.file.write_all(&self.buf).map_err(|e| UdfError::new(format!("writing {}: {e}", open.path.display())))?;
        self.buf.clear();
        Ok(())
    }

    /// Closes the current file: synced and renamed pending, listed in `rolled`. `id`
    /// numbers it under [`Names::ByCheckpoint`].
    fn roll(&mut self, id: u64) -> UdfResult<()> {
        if let (Some(bulk), Some(_)) = (self.bulk.as_mut(), self.started) {
            bulk.finish(&mut self.buf)?;
        }
        self.write_out()?;
        (self.size, self.started) = (0, None);
        let Some(open) = self.current.take() else { return Ok(()) };
        open.file.sync_all().map_err(|e| self.io(&open.path, e))?;
        let target = open.target.unwrap_or_else(|| self.dir.join(format!("part-{}-{id}", self.worker)));
        let pending = pending_of(&target);
        fs::rename(&open.path, &pending).map_err(|e| self.io(&pending, e))?;
        self.rolled.push(target);
        Ok(())
    }

    /// Whether the policy closes the current file before the next record, at `now`.
    fn should_roll(&self, now: i64) -> bool {
        let Some(started) = self.started else { return false };
        let past = |since: i64, limit: Option<u64>| limit.is_some_and(|l| now.saturating_sub(since) >= l as i64);
        self.rolling.part_size.is_some_and(|limit| self.size > limit)
            || past(started, self.rolling.rollover_ms)
            || past(self.written, self.rolling.inactivity_ms)
    }

    fn encode_records(&mut self, records: &[R]) -> UdfResult<()> {
        match self.bulk.as_mut() {
            Some(bulk) => bulk.add(records, &mut self.buf),
            None => (self.encode)(records, &mut self.buf),
        }
    }

    /// Records `bytes` more in the current file at `now`.
    fn wrote(&mut self, bytes: usize, now: i64) {
        self.size += bytes as u64;
        self.started.get_or_insert(now);
        self.written = now;
    }

    /// Gives the pending file for `target` its visible name; done already is fine.
    fn commit_one(&self, target: &Path) -> UdfResult<()> {
        let from = pending_of(target);
        let upload = self.upload.as_ref();
        let gone = std::io::ErrorKind::NotFound;
        match make_visible(&from, target, upload) {
            Err(e) if e.kind() == gone && is_visible(target, upload).map_err(|e| self.io(target, e))? => Ok(()),
            Err(e) if e.kind() == gone && upload.is_some() => Err(UdfError::new(format!(
                "cannot commit {}: its staged part {} is gone (a job writing to s3:// must be restored on the host that staged its parts)",
                shown(target, upload),
                from.display()
            ))),
            Err(e) if e.kind() == gone => Err(UdfError::new(format!("cannot commit {}: it is gone", from.display()))),
            r => r.map_err(|e| UdfError::new(format!("writing {}: {e}", shown(target, upload)))),
        }
    }

    /// Syncs the directories holding `files` (each once), so their renames are durable.
    fn sync_dirs<'p>(&self, files: impl IntoIterator<Item = &'p PathBuf>) -> UdfResult<()> {
        let dirs: std::collections::BTreeSet<&Path> = files.into_iter().filter_map(|f| f.parent()).collect();
        for dir in dirs {
            crate::checkpoint::storage::sync_dir(dir).map_err(|e| self.io(dir, e))?;
        }
        Ok(())
    }

    /// Removes, under `dir` and its bucket directories, the pending and in-progress
    /// files of the old workers `owned` says (written after the restored checkpoint).
    fn remove_strays(&self, dir: &Path, owned: &dyn Fn(usize) -> bool) -> UdfResult<()> {
        let entries = fs::read_dir(dir).map_err(|e| self.io(dir, e))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && self.bucket.is_some() && !is_hidden(entry.file_name().as_os_str()) => {
                    self.remove_strays(&path, owned)?
                }
                Ok(t) if t.is_file() && self.names.worker_of_hidden(name).is_some_and(owned) => {
                    let _ = fs::remove_file(&path);
                }
                _ => {}
            }
        }
        Ok(())
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

/// A checkpoint section of pending files: their count, then per file its path relative
/// to the sink's directory (length, bytes), 8-byte little-endian integers.
fn write_pending(dir: &Path, files: &[(u64, PathBuf)], out: &mut Vec<u8>) {
    out.extend_from_slice(&(files.len() as u64).to_le_bytes());
    for (_, path) in files {
        let rel = path.strip_prefix(dir).unwrap_or(path).as_os_str().as_bytes();
        out.extend_from_slice(&(rel.len() as u64).to_le_bytes());
        out.extend_from_slice(rel);
    }
}

fn read_pending(section: &[u8]) -> Result<Vec<PathBuf>, String> {
    if section.is_empty() {
        return Ok(Vec::new());
    }
    fn int(rest: &mut &[u8]) -> Result<u64, String> {
        let (head, tail) = rest.split_at_checked(8).ok_or("cut short")?;
        *rest = tail;
        Ok(u64::from_le_bytes(head.try_into().expect("8 bytes")))
    }
    let mut rest = section;
    let n = int(&mut rest)?;
    let mut files = Vec::new();
    for _ in 0..n {
        let len = usize::try_from(int(&mut rest)?).map_err(|e| e.to_string())?;
        let (name, tail) = rest.split_at_checked(len).ok_or("cut short")?;
        rest = tail;
        let rel = Path::new(std::ffi::OsStr::from_bytes(name));
        if !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            return Err(format!("a path outside the sink's directory: {}", rel.display()));
        }
        files.push(rel.to_path_buf());
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last path", rest.len()));
    }
    Ok(files)
}

impl<R: 'static> Sink<R> for PartFiles<R> {
    fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        if let Some(bucket) = &self.bucket {
            let dir = bucket_dir(&self.dir, &bucket(now)?)?;
            if dir != self.bucket_dir {
                // A bucket the clock has left gets no more records: its file is done.
                self.roll(self.next_id)?;
                self.bucket_dir = dir;
            }
        }
        if self.rolling == RollingPolicy::default() {
            let before = self.buf.len();
            self.encode_records(batch)?;
            self.wrote(self.buf.len() - before, now);
            return Ok(());
        }
        for i in 0..batch.len() {
            if self.should_roll(now) {
                self.roll(self.next_id)?;
            }
            let before = self.buf.len();
            self.encode_records(&batch[i..=i])?;
            self.wrote(self.buf.len() - before, now);
        }
        Ok(())
    }

    fn flush(&mut self, _abort: &AtomicBool) -> UdfResult<()> {
        if self.buf.len() >= FILE_WRITE_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, id: u64, out: &mut Vec<u8>) -> UdfResult<()> {
        self.roll(id)?;
        let rolled = std::mem::take(&mut self.rolled);
        self.sync_dirs(&rolled)?;
        self.pending.extend(rolled.into_iter().map(|f| (id, f)));
        self.next_id = self.next_id.max(id + 1);
        write_pending(&self.dir, &self.pending, out);
        Ok(())
    }

    fn commit_checkpoint(&mut self, id: u64) -> UdfResult<()> {
        let (done, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|p| p.0 <= id);
        self.pending = later;
        for (_, f) in &done {
            self.commit_one(f)?;
        }
        self.sync_dirs(done.iter().map(|(_, f)| f))
    }

    fn restore(&mut self, from: &Restore<'_>, id: u64) -> UdfResult<()> {
        self.next_id = self.next_id.max(id + 1);
        let corrupt = |e: String| UdfError::internal(format!("a file sink's checkpoint section is unreadable: {e}"));
        let mut committed = Vec::new();
        for (old, section) in from.sections().iter().enumerate() {
            if from.deals(old) {
                for rel in read_pending(section).map_err(corrupt)? {
                    let target = self.dir.join(rel);
                    self.commit_one(&target)?;
                    committed.push(target);
                }
            }
        }
        // What the dealt workers wrote after the checkpoint: never visible, now dropped.
        let workers = from.old_peers().max(from.peers());
        self.remove_strays(&self.dir, &|w| w < workers && from.deals(w))?;
        self.sync_dirs(&committed)?;
        crate::checkpoint::storage::sync_dir(&self.dir).map_err(|e| self.io(&self.dir, e))
    }

    /// The job's end: the last file, committed with the job's success; and what is
    /// still pending (its checkpoint did not complete before the end). Under
    /// checkpoints they stay listed as pending too: a sink that ends while the job goes
    /// on stands in later checkpoints with them, so a restore commits them if the job is
    /// killed before its end.
    fn prepare_commit(&mut self) -> UdfResult<Option<Box<dyn SinkCommit>>> {
        let last = self.next_id;
        self.roll(last)?;
        let rolled = std::mem::take(&mut self.rolled);
        self.sync_dirs(&rolled)?;
        self.pending.extend(rolled.into_iter().map(|f| (last, f)));
        let files: Vec<PathBuf> = if self.checkpointed {
            self.pending.iter().map(|(_, f)| f.clone()).collect()
        } else {
            std::mem::take(&mut self.pending).into_iter().map(|(_, f)| f).collect()
        };
        Ok((!files.is_empty()).then(|| {
            Box::new(PendingParts { files, remove_on_drop: !self.checkpointed, upload: self.upload.clone() })
                as Box<dyn SinkCommit>
        }))
    }
}

impl<R> Drop for PartFiles<R> {
    /// The job stopped: an in-progress file, or one rolled since the last checkpoint,
    /// is never committed (a restore would drop it too). Pending ones stay for a
    /// restore to commit; without checkpoints nothing will, so they go too.
    fn drop(&mut self) {
        if let Some(open) = self.current.take() {
            let _ = fs::remove_file(open.path);
        }
        let pending = if self.checkpointed { Vec::new() } else { std::mem::take(&mut self.pending) };
        for f in self.rolled.iter().chain(pending.iter().map(|(_, f)| f)) {
            let _ = fs::remove_file(pending_of(f));
        }
    }
}

/// A file sink's pending files at the job's end, committed with its success.
struct PendingParts {
    /// Final paths.
    files: Vec<PathBuf>,
    /// Without checkpoints: nothing else would commit them, so a failed job removes them.
    remove_on_drop: bool,
    upload: Option<Upload>,
}

impl SinkCommit for PendingParts {
    fn commit(mut self: Box<Self>) -> Result<(), String> {
        let files = std::mem::take(&mut self.files);
        let upload = self.upload.as_ref();
        for to in &files {
            let from = pending_of(to);
            match make_visible(&from, to, upload) {
                // Committed already (a checkpoint completed after the sink ended).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_visible(to, upload).unwrap_or(false) => {}
                r => r.map_err(|e| format!("cannot commit {} as {}: {e}", from.display(), shown(to, upload)))?,
            }
        }
        let dirs: std::collections::BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
        for dir in dirs {
            crate::checkpoint::storage::sync_dir(dir).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Drop for PendingParts {
    /// Not committed: the job failed or was cancelled.
    fn drop(&mut self) {
        if self.remove_on_drop {
            for f in &self.files {
                let _ = fs::remove_file(pending_of(f));
            }
        }
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
