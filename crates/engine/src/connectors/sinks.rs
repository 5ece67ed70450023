//! Sink factories for files and sockets. What bytes a record becomes is the caller's
//! business (a [`Encode`] function): the engine only moves bytes.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::connectors::socket::SocketWriter;
use crate::error::{UdfError, UdfResult};
use crate::functions::{Sink, SinkFactory};

/// Appends the bytes of a batch of records to a buffer.
pub type Encode<R> = Arc<dyn Fn(&[R], &mut Vec<u8>) -> UdfResult<()> + Send + Sync>;

/// Writes text to `path`. With several workers, `path` is a directory holding one
/// file per worker, named `1`, `2`, ... (as Flink does). Without `overwrite`, an
/// existing file is an error.
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
            if path.is_dir() {
                if !overwrite {
                    return Err(UdfError::new(format!(
                        "{} is a directory: pass overwrite=True (WriteMode.OVERWRITE) to replace it",
                        path.display()
                    )));
                }
                fs::remove_dir_all(&path)
                    .map_err(|e| UdfError::new(format!("cannot remove {}: {e}", path.display())))?;
            }
            path.clone()
        };
        if target.exists() && !overwrite {
            return Err(UdfError::new(format!(
                "{} already exists: pass overwrite=True (WriteMode.OVERWRITE) to replace it",
                target.display()
            )));
        }
        let file =
            File::create(&target).map_err(|e| UdfError::new(format!("cannot create {}: {e}", target.display())))?;
        Ok(Box::new(FileSink {
            out: BufWriter::with_capacity(256 * 1024, file),
            target,
            encode: encode.clone(),
            buf: Vec::new(),
        }) as Box<dyn Sink<R>>)
    })
}

struct FileSink<R> {
    out: BufWriter<File>,
    target: PathBuf,
    encode: Encode<R>,
    buf: Vec<u8>,
}

impl<R: 'static> Sink<R> for FileSink<R> {
    fn write(&mut self, batch: &mut Vec<R>) -> UdfResult<()> {
        self.buf.clear();
        (self.encode)(batch, &mut self.buf)?;
        self.out.write_all(&self.buf).map_err(|e| UdfError::new(format!("writing {}: {e}", self.target.display())))
    }

    fn close(&mut self) -> UdfResult<()> {
        self.out.flush().map_err(|e| UdfError::new(format!("writing {}: {e}", self.target.display())))
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
        self.buf.clear();
        (self.encode)(batch, &mut self.buf)?;
        self.writer.write(&self.buf).map_err(UdfError::new)
    }
}
