//! Sink factories for files and sockets. What bytes a record becomes is the caller's
//! business (a [`Encode`] function): the engine only moves bytes, outside the batch
//! scope (see [`Sink::flush`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::connectors::socket::SocketWriter;
use crate::error::{UdfError, UdfResult};
use crate::functions::{Sink, SinkCommit, SinkFactory};

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
pub fn text_file<R: 'static>(path: impl Into<PathBuf>, overwrite: bool, encode: Encode<R>) -> SinkFactory<R> {
    let path = path.into();
    Arc::new(move |ctx| {
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
