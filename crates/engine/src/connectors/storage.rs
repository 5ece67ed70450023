//! Where the file connectors' bytes live: a local path, or an object in S3 (or an
//! S3-compatible server) named `s3://bucket/key`. The one home of object storage: the
//! file sources list, size and open their inputs here, and the file sinks upload their
//! committed part files here.
//!
//! Paths stay `PathBuf`s everywhere (an `s3://` URL is a path string whose bytes are the
//! URL), so shares and checkpoints carry the URL as they carry a local path. A local
//! path goes straight to `std::fs` (a plain `File`); a URL goes to `object_store`'s S3
//! client, configured from the environment as other S3 clients are
//! ([`AmazonS3Builder::from_env`]: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ALLOW_HTTP`; an
//! `http://` endpoint allows plain HTTP by itself). `object_store` is async: its calls
//! run on one small tokio runtime (current-thread) shared by the process, made on first
//! use; worker threads block on it.
//!
//! An object is read through [`ObjectReader`] (`Read + Seek` over ranged GETs of
//! growing blocks, up to [`MAX_BLOCK`]), so a reader of a byte range fetches about that
//! range, not the whole object; Parquet reads through [`Chunks`] (`ChunkReader`: one
//! ranged GET per column chunk).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

/// The scheme of object storage paths.
pub const S3: &str = "s3://";

/// The largest block one ranged GET of an [`ObjectReader`] fetches. Blocks start at
/// [`MIN_BLOCK`] and double while reading goes on, so a short read (a header, the
/// bytes before a share) fetches little and a long one few large GETs.
pub const MAX_BLOCK: u64 = 8 << 20;
const MIN_BLOCK: u64 = 256 << 10;

/// An `s3://` location: bucket and key (the key without a leading `/`; empty for the
/// bucket's root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    /// `Some` for an `s3://` path, `None` for a local one; a URL without a bucket is an
    /// `InvalidInput` error.
    pub fn parse(path: &Path) -> io::Result<Option<S3Url>> {
        let Some(rest) = path.as_os_str().as_bytes().strip_prefix(S3.as_bytes()) else { return Ok(None) };
        let rest = std::str::from_utf8(rest).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{}: an s3:// URL must be UTF-8", path.display()))
        })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: no bucket in the URL; write s3://<bucket>/<key>", path.display()),
            ));
        }
        Ok(Some(S3Url { bucket: bucket.to_string(), key: key.trim_start_matches('/').to_string() }))
    }

    /// The URL as a path, `s3://bucket/key`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("{S3}{}/{}", self.bucket, self.key))
    }

    fn display(&self) -> String {
        format!("{S3}{}/{}", self.bucket, self.key)
    }
}

/// Whether `path` is an object storage URL.
pub fn is_remote(path: &Path) -> bool {
    path.as_os_str().as_bytes().starts_with(S3.as_bytes())
}

/// The runtime every object store call runs on, one per process. A process forked
/// from one that had a runtime (and connections) makes its own: what it inherited has
/// no threads and shares sockets with its parent, so it is left alone, never dropped.
fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return Ok(rt);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("ferroflow:storage")
        .build()
        .map_err(|e| io::Error::other(format!("cannot start the object storage runtime: {e}")))?;
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

fn block_on<F: std::future::Future>(f: F) -> io::Result<F::Output> {
    Ok(runtime()?.block_on(f))
}

/// The endpoint the environment names, if any (for messages and plain HTTP).
fn endpoint() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"].iter().find_map(|k| std::env::var(k).ok())
}

/// The store of `bucket`, one per bucket and endpoint in a process (so its
/// connections are reused; a forked process makes its own, see [`runtime`]).
fn store(bucket: &str) -> io::Result<Arc<dyn ObjectStore>> {
    type Stores = HashMap<(u32, String, Option<String>), Arc<dyn ObjectStore>>;
    static STORES: OnceLock<Mutex<Stores>> = OnceLock::new();
    let stores = STORES.get_or_init(Default::default);
    let mut stores = stores.lock().unwrap_or_else(|e| e.into_inner());
    let id = (std::process::id(), bucket.to_string(), endpoint());
    if stores.keys().any(|k| k.0 != id.0) {
        // Inherited through a fork: never dropped here (their connections are the parent's).
        for (k, s) in std::mem::take(&mut *stores) {
            if k.0 == id.0 {
                stores.insert(k, s);
            } else {
                std::mem::forget(s);
            }
        }
    }
    if let Some(s) = stores.get(&id) {
        return Ok(s.clone());
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        // Bounded: an unreachable endpoint or a refusing server fails in seconds.
        .with_retry(RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..Default::default() })
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s");
    if endpoint().is_some_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    let built = builder.build().map_err(|e| {
        io::Error::other(one_line(format!(
            "s3://{bucket}: cannot configure S3 ({e}); set AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for another server than AWS, AWS_ENDPOINT_URL"
        )))
    })?;
    let s: Arc<dyn ObjectStore> = Arc::new(built);
    stores.insert(id, s.clone());
    Ok(s)
}

fn one_line(s: String) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An object store error as one line naming `url`, with the likely fix.
fn error(url: &str, e: object_store::Error) -> io::Error {
    if let object_store::Error::NotFound { .. } = e {
        return io::Error::new(io::ErrorKind::NotFound, format!("no such file or directory: {url}"));
    }
    let text = without_xml(&one_line(e.to_string()));
    let fix = if text.contains("NoSuchBucket") {
        "the bucket does not exist: create it or fix the URL".to_string()
    } else if text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("AccessDenied")
        || text.contains("credential")
    {
        "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".to_string()
    } else if text.contains("169.254.169.254") || text.contains("169.254.170.2") {
        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (instance credentials were not available)"
            .to_string()
    } else if text.contains("error sending request") || text.contains("connect") || text.contains("timed out") {
        match endpoint() {
            Some(e) => format!("cannot reach the S3 endpoint {e} (AWS_ENDPOINT_URL): is the server running?"),
            None => "cannot reach S3: check the network, AWS_REGION, or set AWS_ENDPOINT_URL".to_string(),
        }
    } else {
        "S3 refused the request".to_string()
    };
    io::Error::other(format!("{url}: {fix} [{text}]"))
}

/// An S3 error body (`<?xml ...><Error><Code>C</Code><Message>M</Message>...`) as `C: M`.
fn without_xml(text: &str) -> String {
    let Some(at) = text.find("<?xml") else { return text.to_string() };
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let from = text[at..].find(&open)? + at + open.len();
        let to = text[from..].find('<')? + from;
        Some(text[from..to].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{}{code}: {message}", &text[..at]),
        _ => text.to_string(),
    }
}

/// Whether a key's last segment is hidden (see [`crate::connectors::text_file::is_hidden`]).
fn hidden_key(rel: &str) -> bool {
    rel.split('/').any(|seg| crate::connectors::text_file::is_hidden(std::ffi::OsStr::new(seg)))
}

/// The objects of `url`: the object itself if the key names one, else every object
/// under the key as a folder (`key/`; with `recursive` in sub-folders too), in key
/// order, skipping hidden names (a segment below the folder starting with `.` or `_`).
/// Nothing there is an error of kind `NotFound` (as for a missing local path); a
/// folder holding only hidden objects gives `Ok(vec![])`.
pub fn list_objects(url: &S3Url, recursive: bool) -> io::Result<Vec<(PathBuf, u64)>> {
    let s = store(&url.bucket)?;
    let shown = url.display();
    if !url.key.is_empty() && !url.key.ends_with('/') {
        match block_on(s.head(&Key::from(url.key.as_str())))? {
            Ok(meta) => return Ok(vec![(url.path(), meta.size)]),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(error(&shown, e)),
        }
    }
    let folder = if url.key.is_empty() || url.key.ends_with('/') { url.key.clone() } else { format!("{}/", url.key) };
    let prefix = (!folder.is_empty()).then(|| Key::from(folder.trim_end_matches('/')));
    let mut objects: Vec<(String, u64)> = if recursive {
        block_on(s.list(prefix.as_ref()).try_collect::<Vec<_>>())?
            .map_err(|e| error(&shown, e))?
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect()
    } else {
        let listed = block_on(s.list_with_delimiter(prefix.as_ref()))?.map_err(|e| error(&shown, e))?;
        if listed.objects.is_empty() && listed.common_prefixes.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no such file or directory: {shown}")));
        }
        listed.objects.into_iter().map(|m| (m.location.to_string(), m.size)).collect()
    };
    if recursive && objects.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no such file or directory: {shown}")));
    }
    objects.retain(|(key, _)| !hidden_key(key.strip_prefix(folder.as_str()).unwrap_or(key)));
    objects.sort();
    Ok(objects.into_iter().map(|(key, size)| (S3Url { bucket: url.bucket.clone(), key }.path(), size)).collect())
}

/// The size of the file or object at `path`.
pub fn len(path: &Path) -> io::Result<u64> {
    match S3Url::parse(path)? {
        None => std::fs::metadata(path).map(|m| m.len()).map_err(|e| with_path(path, e)),
        Some(url) => {
            let s = store(&url.bucket)?;
            let meta = block_on(s.head(&Key::from(url.key.as_str())))?.map_err(|e| error(&url.display(), e))?;
            Ok(meta.size)
        }
    }
}

/// Prefixes an I/O error with the path it concerns, keeping its kind.
pub fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A file or an object open for reading.
pub enum Input {
    Local(File),
    Remote(ObjectReader),
}

/// Opens the file or object at `path` for reading from its beginning.
pub fn open(path: &Path) -> io::Result<Input> {
    match S3Url::parse(path)? {
        None => File::open(path).map(Input::Local).map_err(|e| with_path(path, e)),
        Some(url) => ObjectReader::open(&url).map(Input::Remote),
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Local(f) => f.read(buf),
            Input::Remote(r) => r.read(buf),
        }
    }
}

impl Seek for Input {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Input::Local(f) => f.seek(pos),
            Input::Remote(r) => r.seek(pos),
        }
    }
}

/// `Read + Seek` over one object, by ranged GETs of growing blocks.
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    key: Key,
    url: String,
    size: u64,
    pos: u64,
    block: Bytes,
    block_start: u64,
    next_block: u64,
}

impl ObjectReader {
    /// Opens `url` (one HEAD for its size).
    pub fn open(url: &S3Url) -> io::Result<Self> {
        let store = store(&url.bucket)?;
        let key = Key::from(url.key.as_str());
        let size = block_on(store.head(&key))?.map_err(|e| error(&url.display(), e))?.size;
        Ok(Self::with_size(store, key, url.display(), size))
    }

    fn with_size(store: Arc<dyn ObjectStore>, key: Key, url: String, size: u64) -> Self {
        ObjectReader { store, key, url, size, pos: 0, block: Bytes::new(), block_start: 0, next_block: MIN_BLOCK }
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes `start..end` of the object, in one ranged GET.
    fn get(&self, start: u64, end: u64) -> io::Result<Bytes> {
        block_on(self.store.get_range(&self.key, start..end))?.map_err(|e| error(&self.url, e))
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let in_block = self.pos >= self.block_start && self.pos < self.block_start + self.block.len() as u64;
        if !in_block {
            let end = self.size.min(self.pos + self.next_block.max(buf.len() as u64));
            self.block = self.get(self.pos, end)?;
            self.block_start = self.pos;
            self.next_block = (self.next_block * 2).min(MAX_BLOCK);
            if self.block.is_empty() {
                return Ok(0); // Shrunk since it was opened.
            }
        }
        let at = (self.pos - self.block_start) as usize;
        let n = buf.len().min(self.block.len() - at);
        buf[..n].copy_from_slice(&self.block[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let to = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let to = to.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        if to != self.pos && !(to >= self.block_start && to < self.block_start + self.block.len() as u64) {
            // A jump elsewhere: start small again.
            self.next_block = MIN_BLOCK;
        }
        self.pos = to;
        Ok(to)
    }
}

/// A Parquet file or object (`parquet`'s `ChunkReader`).
pub enum Chunks {
    Local(File),
    Remote { store: Arc<dyn ObjectStore>, key: Key, url: String, size: u64 },
}

impl Chunks {
    pub fn open(path: &Path) -> io::Result<Chunks> {
        match open(path)? {
            Input::Local(f) => Ok(Chunks::Local(f)),
            Input::Remote(r) => Ok(Chunks::Remote { store: r.store, key: r.key, url: r.url, size: r.size }),
        }
    }
}

impl parquet::file::reader::Length for Chunks {
    fn len(&self) -> u64 {
        match self {
            Chunks::Local(f) => f.len(),
            Chunks::Remote { size, .. } => *size,
        }
    }
}

impl parquet::file::reader::ChunkReader for Chunks {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        match self {
            Chunks::Local(f) => Ok(Box::new(f.get_read(start)?)),
            Chunks::Remote { store, key, url, size } => {
                let mut r = ObjectReader::with_size(store.clone(), key.clone(), url.clone(), *size);
                r.seek(SeekFrom::Start(start))?;
                Ok(Box::new(BufReader::new(r)))
            }
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            Chunks::Local(f) => f.get_bytes(start, length),
            Chunks::Remote { store, key, url, size } => {
                let end = start + length as u64;
                if end > *size {
                    return Err(parquet::errors::ParquetError::EOF(format!(
                        "{url}: expected bytes {start}..{end}, the object has {size}"
                    )));
                }
                let r = ObjectReader::with_size(store.clone(), key.clone(), url.clone(), *size);
                Ok(r.get(start, end)?)
            }
        }
    }
}

/// Uploads the local file `from` as the object `to`, in one PUT: the object appears
/// whole or not at all. Putting the same bytes again is harmless.
pub fn upload(from: &Path, to: &S3Url) -> io::Result<()> {
    let bytes = std::fs::read(from).map_err(|e| with_path(from, e))?;
    let s = store(&to.bucket)?;
    block_on(s.put(&Key::from(to.key.as_str()), PutPayload::from(bytes)))?.map_err(|e| error(&to.display(), e))?;
    Ok(())
}

/// Whether the object `url` exists.
pub fn exists(url: &S3Url) -> io::Result<bool> {
    let s = store(&url.bucket)?;
    match block_on(s.head(&Key::from(url.key.as_str())))? {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(error(&url.display(), e)),
    }
}

/// Removes every object under the folder `url` (`key/`), or the object `key`.
pub fn remove_all(url: &S3Url) -> io::Result<()> {
    let s = store(&url.bucket)?;
    let folder = url.key.trim_end_matches('/');
    let prefix = (!folder.is_empty()).then(|| Key::from(folder));
    let objects = block_on(s.list(prefix.as_ref()).try_collect::<Vec<_>>())?.map_err(|e| error(&url.display(), e))?;
    for meta in objects {
        block_on(s.delete(&meta.location))?.map_err(|e| error(&url.display(), e))?;
    }
    if !folder.is_empty() {
        match block_on(s.delete(&Key::from(folder)))? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(error(&url.display(), e)),
        }
    }
    Ok(())
}

/// Where a sink writing under the `s3://` base `url` stages its files on this host:
/// a folder under the system's temporary folder named after the URL, the same in
/// every run, so a restore on this host finds the parts it staged.
pub fn staging_dir(url: &S3Url) -> PathBuf {
    let mut dir = std::env::temp_dir().join("ferroflow-s3-staging").join(&url.bucket);
    for seg in url.key.split('/').filter(|s| !s.is_empty() && *s != "." && *s != "..") {
        dir.push(seg);
    }
    dir
}

/// The object a file staged at `file` under `staging` (for the base `url`) goes to.
pub fn object_for(url: &S3Url, staging: &Path, file: &Path) -> io::Result<S3Url> {
    let rel = file.strip_prefix(staging).map_err(|_| {
        io::Error::other(format!("{} is not under the staging folder {}", file.display(), staging.display()))
    })?;
    let rel = rel.to_str().ok_or_else(|| io::Error::other(format!("{}: not UTF-8", rel.display())))?;
    let base = url.key.trim_end_matches('/');
    let key = if base.is_empty() { rel.to_string() } else { format!("{base}/{rel}") };
    Ok(S3Url { bucket: url.bucket.clone(), key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn urls_parse_into_bucket_and_key() {
        let p = |s: &str| S3Url::parse(Path::new(s)).unwrap();
        assert_eq!(p("/tmp/x"), None);
        assert_eq!(p("s3://b/k/e/y"), Some(S3Url { bucket: "b".into(), key: "k/e/y".into() }));
        assert_eq!(p("s3://b"), Some(S3Url { bucket: "b".into(), key: "".into() }));
        assert_eq!(p("s3://b/dir/"), Some(S3Url { bucket: "b".into(), key: "dir/".into() }));
        let err = S3Url::parse(Path::new("s3:///key")).unwrap_err().to_string();
        assert!(err.contains("no bucket"), "{err}");
        assert!(is_remote(Path::new("s3://b/k")) && !is_remote(Path::new("s3")));
        assert_eq!(p("s3://b/k/e").unwrap().path(), PathBuf::from("s3://b/k/e"));
        // A path joined under a URL stays a URL of the same bucket.
        assert_eq!(S3Url::parse(&Path::new("s3://b/dir").join("f")).unwrap().unwrap().key, "dir/f");
    }

    #[test]
    fn s3_error_bodies_shrink_to_code_and_message() {
        let body = "404 Not Found: <?xml version=\"1.0\"?> <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><RequestId>x</RequestId></Error>";
        assert_eq!(without_xml(body), "404 Not Found: NoSuchBucket: The specified bucket does not exist");
        assert_eq!(without_xml("plain"), "plain");
    }

    #[test]
    fn staged_files_map_to_keys_under_the_base() {
        let url = S3Url { bucket: "b".into(), key: "out/".into() };
        let staging = staging_dir(&url);
        assert!(staging.ends_with("ferroflow-s3-staging/b/out"));
        let key = object_for(&url, &staging, &staging.join("2024/part-0-1")).unwrap();
        assert_eq!(key, S3Url { bucket: "b".into(), key: "out/2024/part-0-1".into() });
    }

    /// The ranged reader over object_store's in-memory backend: any seeks and read
    /// sizes give the object's bytes.
    #[test]
    fn object_reader_reads_and_seeks_like_a_file() {
        let data: Vec<u8> = (0..(3 * MIN_BLOCK as usize + 77)).map(|i| (i * 31 % 251) as u8).collect();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let key = Key::from("k");
        block_on(store.put(&key, PutPayload::from(data.clone()))).unwrap().unwrap();
        let mut r = ObjectReader::with_size(store.clone(), key.clone(), "s3://mem/k".into(), data.len() as u64);
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        for (start, len) in [(0u64, 10usize), (5, 1), (MIN_BLOCK - 3, 9), (data.len() as u64 - 4, 100), (123, 700_000)]
        {
            r.seek(SeekFrom::Start(start)).unwrap();
            let mut got = Vec::new();
            (&mut r).take(len as u64).read_to_end(&mut got).unwrap();
            let end = (start as usize + len).min(data.len());
            assert_eq!(got, &data[start as usize..end], "start={start} len={len}");
        }
        assert_eq!(r.seek(SeekFrom::End(-1)).unwrap(), data.len() as u64 - 1);
        let chunks = Chunks::Remote { store, key, url: "s3://mem/k".into(), size: data.len() as u64 };
        use parquet::file::reader::ChunkReader;
        assert_eq!(&chunks.get_bytes(100, 50).unwrap()[..], &data[100..150]);
        assert!(chunks.get_bytes(data.len() as u64 - 1, 2).is_err());
        let mut via_read = Vec::new();
        chunks.get_read(7).unwrap().take(20).read_to_end(&mut via_read).unwrap();
        assert_eq!(via_read, &data[7..27]);
    }
}
