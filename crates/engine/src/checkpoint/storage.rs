//! Where checkpoints live on disk, how they are committed atomically, and how a restore
//! finds the newest one it can trust.
//!
//! ```text
//! <storage>/chk-<n>/w<idx>.part      one per worker (see super::format)
//! <storage>/chk-<n>/_MANIFEST        written last: its presence makes checkpoint n complete
//! <storage>/savepoints/sp-<n>/...    the same layout; retention never touches it
//! ```
//!
//! Every file is written under a hidden temp name, fsynced, renamed into place and its
//! directory fsynced, so after a crash a file is either whole or absent. A checkpoint
//! counts only if its `_MANIFEST` validates (version, checksum, fields) and every part
//! it lists has the listed size and checksum; [`find_latest`] falls back past the ones
//! that do not, with a warning for each, so a torn or corrupted checkpoint costs
//! progress, never correctness.
//!
//! # `_MANIFEST` (version 1)
//!
//! UTF-8 text, one `key value` per line (the value is the rest of the line, with `\`,
//! newline and carriage return escaped as `\\`, `\n`, `\r`):
//!
//! ```text
//! ferroflow-manifest 1
//! job <job name>
//! kind checkpoint|savepoint
//! segment <n>
//! processes <p>
//! threads <t>
//! wall_time_ms <ms since the Unix epoch>
//! plan <signature line of node 0>      (one line per plan node, in order)
//! part w0.part <size> <crc32 hex>      (one per worker, w0 .. w(p*t - 1) in order)
//! crc32 <hex of the CRC-32 of every byte before this line>
//! ```

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::format::PartSummary;

/// The name of the file that commits a checkpoint.
pub const MANIFEST: &str = "_MANIFEST";
/// The first line of a manifest this build writes and reads.
const MANIFEST_HEADER: &str = "ferroflow-manifest 1";
/// The directory (under the storage directory) that holds savepoints.
pub const SAVEPOINTS: &str = "savepoints";

/// `<root>/chk-<id>`: the directory of checkpoint `id`.
pub fn checkpoint_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("chk-{id}"))
}

/// `<root>/savepoints/sp-<id>`: a savepoint, kept until the user deletes it.
pub fn savepoint_dir(root: &Path, id: u64) -> PathBuf {
    root.join(SAVEPOINTS).join(format!("sp-{id}"))
}

/// `w<worker>.part`: a worker's finished part in a checkpoint directory.
pub fn part_file_name(worker: u32) -> String {
    format!("w{worker}.part")
}

/// `.w<worker>.tmp`: where a worker's part is written until [`commit_file`] renames it.
pub fn part_temp_name(worker: u32) -> String {
    format!(".w{worker}.tmp")
}

/// The id of a `chk-<n>` directory name (`None` for anything else in the storage dir).
fn checkpoint_id(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("chk-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Fsyncs a directory, so that a rename or a removal in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| with_path(dir, e))
}

/// Makes a finished temp file `tmp` the file `target`: fsync, rename, fsync of the
/// directory. After a crash `target` is either absent or whole.
pub fn commit_file(tmp: &Path, target: &Path) -> io::Result<()> {
    File::open(tmp).and_then(|f| f.sync_all()).map_err(|e| with_path(tmp, e))?;
    fs::rename(tmp, target).map_err(|e| with_path(target, e))?;
    sync_dir(parent(target))
}

/// The directory a path is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Creates the directory of checkpoint `id` (and the storage dir if need be) and makes
/// its entry durable, so that parts committed into it survive a crash with it.
pub fn create_checkpoint_dir(root: &Path, id: u64) -> io::Result<PathBuf> {
    let dir = checkpoint_dir(root, id);
    create_dir_durably(&dir)?;
    Ok(dir)
}

/// Creates `dir` (and its parents) and makes its entry durable in its parent.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|e| with_path(dir, e))?;
    sync_dir(parent(dir))
}

/// Writes `bytes` as `path` atomically (a hidden temp file beside it, then
/// [`commit_file`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::other(format!("{} is not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = File::create(&tmp).map_err(|e| with_path(&tmp, e))?;
    f.write_all(bytes).map_err(|e| with_path(&tmp, e))?;
    drop(f);
    commit_file(&tmp, path)
}

/// Fails the job at start rather than at its first checkpoint: creates the storage
/// directory, writes and removes a probe file. The error is the one line to show.
pub fn probe_writable(dir: &Path) -> Result<(), String> {
    let fail = |e: io::Error| format!("checkpoint storage {} is not writable: {e}", dir.display());
    fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".probe-{}-{:x}", std::process::id(), getrandom::u64().unwrap_or(0)));
    let mut f = File::create_new(&probe).map_err(fail)?;
    let written = f.write_all(b"ferroflow").and_then(|()| f.sync_all());
    drop(f);
    let removed = fs::remove_file(&probe);
    written.and(removed).map_err(fail)
}

/// Whether a manifest commits a periodic checkpoint or a savepoint (which retention
/// never removes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointKind {
    Checkpoint,
    Savepoint,
}

impl CheckpointKind {
    fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Checkpoint => "checkpoint",
            CheckpointKind::Savepoint => "savepoint",
        }
    }
}

/// One worker's part as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartEntry {
    /// The file name in the checkpoint directory ([`part_file_name`]).
    pub name: String,
    pub size: u64,
    pub crc: u32,
}

impl PartEntry {
    /// The entry of worker `worker`'s finished part.
    pub fn new(worker: u32, summary: PartSummary) -> Self {
        PartEntry { name: part_file_name(worker), size: summary.size, crc: summary.crc }
    }
}

/// What commits a checkpoint: who wrote it, for which plan, and each part's size and
/// checksum, so that a restore can refuse another job's checkpoint and detect a
/// damaged part before reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub job: String,
    pub kind: CheckpointKind,
    /// The checkpoint id: the segment the sources moved to (records of earlier
    /// segments are in it).
    pub segment: u64,
    pub processes: u32,
    /// Worker threads per process; parts number `processes * threads`.
    pub threads: u32,
    /// When it was committed, in ms since the Unix epoch (for people and tools).
    pub wall_time_ms: u64,
    /// The plan's signature, one line per node: a restore names the first that differs.
    pub plan: Vec<String>,
    /// One per worker, in worker order.
    pub parts: Vec<PartEntry>,
}

/// Now, in ms since the Unix epoch, for [`Manifest::wall_time_ms`].
pub fn wall_time_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => return Err(format!("bad escape \\{}", other.map(String::from).unwrap_or_default())),
        }
    }
    Ok(out)
}

/// Exactly 8 lowercase hex digits, as written: the one spelling, so that a changed
/// character in a checksum is never read as the same value.
fn hex8(s: &str) -> Option<u32> {
    let ok = s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then(|| u32::from_str_radix(s, 16).ok()).flatten()
}

impl Manifest {
    /// The text of the `_MANIFEST` file, checksum line included.
    pub fn to_text(&self) -> String {
        let mut t = format!("{MANIFEST_HEADER}\n");
        let mut line = |k: &str, v: &str| {
            t.push_str(k);
            t.push(' ');
            t.push_str(&escape(v));
            t.push('\n');
        };
        line("job", &self.job);
        line("kind", self.kind.as_str());
        line("segment", &self.segment.to_string());
        line("processes", &self.processes.to_string());
        line("threads", &self.threads.to_string());
        line("wall_time_ms", &self.wall_time_ms.to_string());
        for p in &self.plan {
            line("plan", p);
        }
        for p in &self.parts {
            line("part", &format!("{} {} {:08x}", p.name, p.size, p.crc));
        }
        let crc = crc32fast::hash(t.as_bytes());
        t.push_str(&format!("crc32 {crc:08x}\n"));
        t
    }

    /// Reads a manifest, trusting nothing: a torn, edited or foreign file is an error
    /// that says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
        let body = text.strip_suffix('\n').ok_or("does not end with a newline (torn?)")?;
        let (body, last) = match body.rfind('\n') {
            Some(i) => (&text[..=i], &body[i + 1..]),
            None => return Err("has no checksum line (torn?)".into()),
        };
        let want = last.strip_prefix("crc32 ").ok_or("does not end with its checksum line (torn?)")?;
        let want = hex8(want).ok_or("bad checksum line")?;
        let got = crc32fast::hash(body.as_bytes());
        if got != want {
            return Err(format!("checksum mismatch (crc32 {got:08x}, the file says {want:08x})"));
        }
        let mut lines = body.lines();
        match lines.next() {
            Some(MANIFEST_HEADER) => {}
            Some(h) if h.starts_with("ferroflow-manifest ") => {
                return Err(format!("version {} is not supported (this build reads 1)", &h[19..]))
            }
            _ => return Err("is not a ferroflow manifest".into()),
        }
        let (mut job, mut kind, mut segment, mut processes, mut threads, mut wall) =
            (None, None, None, None, None, None);
        let (mut plan, mut parts) = (Vec::new(), Vec::new());
        for line in lines {
            let (key, value) = line.split_once(' ').ok_or_else(|| format!("bad line {line:?}"))?;
            let value = unescape(value).map_err(|e| format!("{e} in line {line:?}"))?;
            fn once<T>(slot: &mut Option<T>, v: T, key: &str) -> Result<(), String> {
                match slot.replace(v) {
                    None => Ok(()),
                    Some(_) => Err(format!("{key} appears twice")),
                }
            }
            fn num<T: std::str::FromStr>(v: &str, key: &str) -> Result<T, String> {
                v.parse().map_err(|_| format!("bad {key} {v:?}"))
            }
            match key {
                "job" => once(&mut job, value, key)?,
                "kind" => {
                    let k = match value.as_str() {
                        "checkpoint" => CheckpointKind::Checkpoint,
                        "savepoint" => CheckpointKind::Savepoint,
                        v => return Err(format!("bad kind {v:?}")),
                    };
                    once(&mut kind, k, key)?
                }
                "segment" => once(&mut segment, num(&value, key)?, key)?,
                "processes" => once(&mut processes, num(&value, key)?, key)?,
                "threads" => once(&mut threads, num(&value, key)?, key)?,
                "wall_time_ms" => once(&mut wall, num(&value, key)?, key)?,
                "plan" => plan.push(value),
                "part" => {
                    let f: Vec<&str> = value.split(' ').collect();
                    let [name, size, crc] = f[..] else { return Err(format!("bad part line {line:?}")) };
                    let crc = hex8(crc).ok_or_else(|| format!("bad part line {line:?}"))?;
                    parts.push(PartEntry { name: name.to_string(), size: num(size, "part size")?, crc });
                }
                k => return Err(format!("unknown field {k:?}")),
            }
        }
        let missing = |f: &str| format!("has no {f} line");
        let m = Manifest {
            job: job.ok_or_else(|| missing("job"))?,
            kind: kind.ok_or_else(|| missing("kind"))?,
            segment: segment.ok_or_else(|| missing("segment"))?,
            processes: processes.ok_or_else(|| missing("processes"))?,
            threads: threads.ok_or_else(|| missing("threads"))?,
            wall_time_ms: wall.ok_or_else(|| missing("wall_time_ms"))?,
            plan,
            parts,
        };
        let workers = u64::from(m.processes) * u64::from(m.threads);
        if workers == 0 || m.parts.len() as u64 != workers {
            return Err(format!("lists {} parts for {} x {} workers", m.parts.len(), m.processes, m.threads));
        }
        for (i, p) in m.parts.iter().enumerate() {
            if p.name != part_file_name(i as u32) {
                return Err(format!("part {i} is named {:?}, not {:?}", p.name, part_file_name(i as u32)));
            }
        }
        Ok(m)
    }
}

/// Commits a checkpoint directory: writes its `_MANIFEST` atomically. The parts it
/// lists must be in place (renamed and synced) before.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> io::Result<()> {
    write_atomic(&dir.join(MANIFEST), manifest.to_text().as_bytes())
}

/// Why a checkpoint directory cannot be restored from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// No `_MANIFEST`: the checkpoint was never committed (in progress, aborted, or the
    /// job was killed before it completed). Normal after a crash: no warning.
    Incomplete,
    /// Committed but damaged or unreadable; the message names the file and the problem.
    Damaged(String),
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Incomplete => write!(f, "it has no {MANIFEST} (never completed)"),
            Unusable::Damaged(m) => f.write_str(m),
        }
    }
}

/// Reads and checks `dir/_MANIFEST` and the size of every part it lists; with
/// `check_crc`, each part's checksum too (reads every byte).
fn check(dir: &Path, check_crc: bool) -> Result<Manifest, Unusable> {
    let path = dir.join(MANIFEST);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unusable::Incomplete),
        Err(e) => return Err(Unusable::Damaged(format!("{}: {e}", path.display()))),
    };
    let manifest = Manifest::parse(&bytes).map_err(|e| Unusable::Damaged(format!("{} {e}", path.display())))?;
    for p in &manifest.parts {
        let path = dir.join(&p.name);
        let damaged = |m: String| Unusable::Damaged(format!("{} {m}", path.display()));
        if !check_crc {
            let size = fs::metadata(&path).map_err(|e| damaged(format!("cannot be read: {e}")))?.len();
            if size != p.size {
                return Err(damaged(format!("is {size} bytes, the manifest says {}", p.size)));
            }
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| damaged(format!("cannot be read: {e}")))?;
        if bytes.len() as u64 != p.size {
            return Err(damaged(format!("is {} bytes, the manifest says {}", bytes.len(), p.size)));
        }
        let crc = crc32fast::hash(&bytes);
        if crc != p.crc {
            return Err(damaged(format!("checksum mismatch (crc32 {crc:08x}, the manifest says {:08x})", p.crc)));
        }
    }
    Ok(manifest)
}

/// Checks that the checkpoint or savepoint in `dir` is complete and whole (its manifest,
/// and every part's size and checksum): for a restore from an exact path, where the
/// directory's name says nothing ([`find_latest`] also checks `chk-<n>` against the
/// manifest's segment).
pub fn verify(dir: &Path) -> Result<Manifest, Unusable> {
    check(dir, true)
}

/// A checkpoint that [`verify`] accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub id: u64,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// What [`find_latest`] found: the checkpoint to restore from, if any, and one warning
/// per newer committed checkpoint it had to skip, for the caller to print.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latest {
    pub found: Option<Found>,
    pub warnings: Vec<String>,
}

/// The `chk-<n>` directories directly under `root`, newest first. A missing root has none.
fn checkpoints(root: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(with_path(root, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| with_path(root, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(checkpoint_id) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.push((id, entry.path()));
            }
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(out)
}

/// The newest complete and whole checkpoint under `root` (its `chk-<n>` directories;
/// savepoints are restored by path). A newer one that is committed but damaged (torn or
/// corrupt manifest, missing, short or corrupt part) is skipped with a warning naming
/// the file and the problem; an uncommitted one is skipped silently. `Ok` with nothing
/// found when `root` has no usable checkpoint or does not exist.
pub fn find_latest(root: &Path) -> io::Result<Latest> {
    let mut latest = Latest::default();
    for (id, dir) in checkpoints(root)? {
        let checked = verify(&dir).and_then(|m| match m.segment {
            s if s == id => Ok(m),
            s => Err(Unusable::Damaged(format!("{} says it is checkpoint {s}", dir.join(MANIFEST).display()))),
        });
        match checked {
            Ok(manifest) => {
                latest.found = Some(Found { id, dir, manifest });
                break;
            }
            Err(Unusable::Incomplete) => {}
            Err(Unusable::Damaged(why)) => latest
                .warnings
                .push(format!("skipping checkpoint {} (falling back to an older one): {why}", dir.display())),
        }
    }
    Ok(latest)
}

/// The highest `chk-<n>` id under `root`, complete or not (0 if none): a job that
/// writes into a directory numbers its checkpoints after it, so an older run's are
/// never mistaken for its own.
pub fn last_id(root: &Path) -> io::Result<u64> {
    Ok(checkpoints(root)?.first().map_or(0, |c| c.0))
}

/// Removes checkpoint `id` (aborted, or subsumed); removing one that is not there is fine.
pub fn remove_checkpoint(root: &Path, id: u64) -> io::Result<()> {
    let dir = checkpoint_dir(root, id);
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(&dir, e)),
        _ => Ok(()),
    }
}

/// Retention: keeps the newest `keep` (at least 1) complete checkpoints under `root` and
/// removes the older ones, and every incomplete or damaged one older than the newest
/// complete one (abandoned: a newer checkpoint subsumes it, as in Flink). Newer
/// incomplete ones are left alone: they may be in progress. Savepoints are never
/// touched. "Complete" here is the cheap check (manifest and part sizes, no checksums),
/// since it runs after every checkpoint. Returns what was removed.
pub fn retain(root: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let keep = keep.max(1);
    let mut complete = 0;
    let mut removed = Vec::new();
    for (_, dir) in checkpoints(root)? {
        let ok = check(&dir, false).is_ok();
        let remove = if ok {
            complete += 1;
            complete > keep
        } else {
            complete > 0
        };
        if remove {
            match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(with_path(&dir, e)),
                _ => removed.push(dir),
            }
        }
    }
    if !removed.is_empty() {
        sync_dir(root)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::format::{PartHeader, PartReader, PartWriter};
    use crate::temp_dir::TempDir;
    use proptest::prelude::*;

    fn manifest(segment: u64, processes: u32, threads: u32) -> Manifest {
        Manifest {
            job: "word count".into(),
            kind: CheckpointKind::Checkpoint,
            segment,
            processes,
            threads,
            wall_time_ms: 1_700_000_000_000,
            plan: vec!["0 source 'read_text_file' [] 1".into(), "1 reduce 'count' [0] 2 2".into()],
            parts: Vec::new(),
        }
    }

    /// Writes checkpoint `id` as the writer thread and worker 0 will: parts under temp
    /// names, renamed, then the manifest.
    fn write_checkpoint(root: &Path, id: u64, processes: u32, threads: u32) -> Manifest {
        let dir = create_checkpoint_dir(root, id).unwrap();
        let workers = processes * threads;
        let mut m = manifest(id, processes, threads);
        for w in 0..workers {
            let tmp = dir.join(part_temp_name(w));
            let file = File::create(&tmp).unwrap();
            let mut pw = PartWriter::new(file, PartHeader { checkpoint: id, worker: w, workers }).unwrap();
            pw.section(1, format!("state of worker {w} at {id}").as_bytes()).unwrap();
            let (_, summary) = pw.finish().unwrap();
            commit_file(&tmp, &dir.join(part_file_name(w))).unwrap();
            m.parts.push(PartEntry::new(w, summary));
        }
        write_manifest(&dir, &m).unwrap();
        m
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_written_checkpoint_is_found_and_its_parts_read() {
        let t = TempDir::new("found");
        let m = write_checkpoint(&t.0, 4, 2, 2);
        assert_eq!(names(&checkpoint_dir(&t.0, 4)), ["_MANIFEST", "w0.part", "w1.part", "w2.part", "w3.part"]);
        let latest = find_latest(&t.0).unwrap();
        assert_eq!(latest.warnings, Vec::<String>::new());
        let found = latest.found.unwrap();
        assert_eq!((found.id, &found.dir, &found.manifest), (4, &checkpoint_dir(&t.0, 4), &m));
        let bytes = fs::read(found.dir.join("w3.part")).unwrap();
        let p = PartReader::parse(&bytes).unwrap();
        assert_eq!(p.header, PartHeader { checkpoint: 4, worker: 3, workers: 4 });
        assert_eq!(p.section(1), Some(&b"state of worker 3 at 4"[..]));
        // An empty or missing storage dir has none, without an error.
        assert_eq!(find_latest(&t.0.join("nope")).unwrap(), Latest::default());
    }

    /// Each way a newer checkpoint can be damaged falls back to the previous one, with
    /// one warning naming the file and the problem.
    #[test]
    fn find_latest_falls_back_past_damaged_checkpoints() {
        type Damage = fn(&Path);
        let cases: [(&str, Damage, &str); 8] = [
            ("torn manifest", |d| truncate(&d.join(MANIFEST), 40), "_MANIFEST does not end with a newline"),
            ("manifest byte", |d| flip(&d.join(MANIFEST), 30), "_MANIFEST checksum mismatch"),
            ("missing part", |d| fs::remove_file(d.join("w1.part")).unwrap(), "w1.part cannot be read"),
            ("short part", |d| truncate(&d.join("w0.part"), 20), "w0.part is 20 bytes, the manifest says"),
            ("part byte", |d| flip(&d.join("w1.part"), 50), "w1.part checksum mismatch"),
            ("manifest a dir", |d| replace_with_dir(&d.join(MANIFEST)), "_MANIFEST: Is a directory"),
            ("empty manifest", |d| truncate(&d.join(MANIFEST), 0), "_MANIFEST does not end with a newline"),
            ("another's manifest", |d| copy_manifest(d, 1), "_MANIFEST says it is checkpoint 1"),
        ];
        for (what, damage, reason) in cases {
            let t = TempDir::new("fallback");
            write_checkpoint(&t.0, 1, 1, 2);
            write_checkpoint(&t.0, 2, 1, 2);
            write_checkpoint(&t.0, 10, 1, 2);
            // Never committed: skipped without a word.
            fs::create_dir_all(checkpoint_dir(&t.0, 11)).unwrap();
            fs::write(checkpoint_dir(&t.0, 11).join(part_temp_name(0)), b"half").unwrap();
            damage(&checkpoint_dir(&t.0, 10));
            let latest = find_latest(&t.0).unwrap();
            assert_eq!(latest.found.map(|f| f.id), Some(2), "{what}");
            assert_eq!(latest.warnings.len(), 1, "{what}: {:?}", latest.warnings);
            let w = &latest.warnings[0];
            let dir = checkpoint_dir(&t.0, 10).display().to_string();
            assert!(w.starts_with(&format!("skipping checkpoint {dir} (falling back to an older one): {dir}/")), "{w}");
            assert!(w.contains(reason), "{what}: {w}");
            // Two damaged in a row: two warnings, the oldest whole one is used.
            damage(&checkpoint_dir(&t.0, 2));
            let latest = find_latest(&t.0).unwrap();
            assert_eq!((latest.found.map(|f| f.id), latest.warnings.len()), (Some(1), 2), "{what}");
            // `verify` (a restore from a path) checks all but the directory's name.
            assert_eq!(verify(&checkpoint_dir(&t.0, 2)).is_ok(), what == "another's manifest", "{what}");
        }
    }

    fn truncate(p: &Path, len: u64) {
        File::options().write(true).open(p).unwrap().set_len(len).unwrap();
    }

    fn flip(p: &Path, at: usize) {
        let mut b = fs::read(p).unwrap();
        b[at] ^= 0x20;
        fs::write(p, b).unwrap();
    }

    /// Puts checkpoint `id`'s manifest (and parts) in `dir`: whole, but not `dir`'s.
    fn copy_manifest(dir: &Path, id: u64) {
        let from = checkpoint_dir(dir.parent().unwrap(), id);
        for name in [MANIFEST, "w0.part", "w1.part"] {
            fs::copy(from.join(name), dir.join(name)).unwrap();
        }
    }

    fn replace_with_dir(p: &Path) {
        fs::remove_file(p).unwrap();
        fs::create_dir(p).unwrap();
    }

    #[test]
    fn every_truncation_and_byte_flip_of_a_manifest_is_detected() {
        let mut m = manifest(7, 1, 2);
        m.parts = vec![
            PartEntry { name: "w0.part".into(), size: 10, crc: 1 },
            PartEntry::new(1, PartSummary { size: 3, crc: 0xdeadbeef }),
        ];
        let text = m.to_text().into_bytes();
        assert_eq!(Manifest::parse(&text).unwrap(), m);
        for cut in 0..text.len() {
            assert!(Manifest::parse(&text[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..text.len() {
            for x in [0x01, 0x20, 0x80] {
                let mut b = text.clone();
                b[i] ^= x;
                assert!(Manifest::parse(&b).is_err(), "byte {i} ^ {x:#x}");
            }
        }
    }

    #[test]
    fn manifest_errors_say_what_is_wrong() {
        let err = |t: &str| {
            let crc = crc32fast::hash(t.as_bytes());
            Manifest::parse(format!("{t}crc32 {crc:08x}\n").as_bytes()).unwrap_err()
        };
        assert_eq!(err("ferroflow-manifest 2\n"), "version 2 is not supported (this build reads 1)");
        assert_eq!(err("something else\n"), "is not a ferroflow manifest");
        let good = manifest(3, 1, 1);
        let text = good.to_text();
        let body = &text[..text.rfind("crc32").unwrap()];
        assert_eq!(err(body), "lists 0 parts for 1 x 1 workers");
        assert_eq!(err(&format!("{body}part w0.part 3 0\n")), "bad part line \"part w0.part 3 0\"");
        assert_eq!(err(&format!("{body}part w1.part 3 0000000a\n")), "part 0 is named \"w1.part\", not \"w0.part\"");
        assert_eq!(err(&format!("{body}job again\n")), "job appears twice");
        assert_eq!(err(&format!("{body}colour blue\n")), "unknown field \"colour\"");
        assert_eq!(err(&body.replace("segment 3\n", "")), "has no segment line");
        assert_eq!(err(&body.replace("segment 3", "segment x")), "bad segment \"x\"");
        assert_eq!(err(&body.replace("kind checkpoint", "kind backup")), "bad kind \"backup\"");
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,12}", "[a \\\\\n\r]{0,8}"]
    }

    proptest! {
        /// Any job name and plan lines, newlines and backslashes included, read back.
        #[test]
        fn manifest_round_trip(job in text(), plan in prop::collection::vec(text(), 0..4), seg: u64, p in 1u32..4, t in 1u32..4, savepoint: bool, sizes in prop::collection::vec((any::<u64>(), any::<u32>()), 16)) {
            let m = Manifest {
                job,
                kind: if savepoint { CheckpointKind::Savepoint } else { CheckpointKind::Checkpoint },
                segment: seg,
                processes: p,
                threads: t,
                wall_time_ms: seg / 3,
                plan,
                parts: (0..p * t).map(|w| PartEntry::new(w, PartSummary { size: sizes[w as usize].0, crc: sizes[w as usize].1 })).collect(),
            };
            prop_assert_eq!(Manifest::parse(m.to_text().as_bytes()).unwrap(), m);
        }
    }

    #[test]
    fn retention_keeps_the_newest_complete_and_never_savepoints() {
        let t = TempDir::new("retain");
        for id in [1, 2, 3, 5, 6] {
            write_checkpoint(&t.0, id, 1, 1);
        }
        // Abandoned (older than a complete one) and in progress (newer than all).
        fs::create_dir_all(checkpoint_dir(&t.0, 4)).unwrap();
        fs::create_dir_all(checkpoint_dir(&t.0, 7)).unwrap();
        // A damaged one between kept ones is not counted as complete, and goes.
        truncate(&checkpoint_dir(&t.0, 5).join("w0.part"), 3);
        let sp = savepoint_dir(&t.0, 2);
        fs::create_dir_all(&sp).unwrap();
        fs::write(sp.join(MANIFEST), b"kept").unwrap();
        fs::write(t.0.join("chk-x"), b"not ours").unwrap();
        fs::create_dir_all(t.0.join("chk-007")).unwrap();

        let mut removed = retain(&t.0, 2).unwrap();
        removed.sort();
        let want: Vec<PathBuf> = [1, 2, 4, 5].iter().map(|&i| checkpoint_dir(&t.0, i)).collect();
        assert_eq!(removed, want);
        assert_eq!(names(&t.0), ["chk-007", "chk-3", "chk-6", "chk-7", "chk-x", "savepoints"]);
        assert_eq!(fs::read(sp.join(MANIFEST)).unwrap(), b"kept");
        // Nothing more to do; keep 0 still keeps the newest.
        assert_eq!(retain(&t.0, 2).unwrap(), Vec::<PathBuf>::new());
        assert_eq!(retain(&t.0, 0).unwrap(), vec![checkpoint_dir(&t.0, 3)]);
        assert_eq!(find_latest(&t.0).unwrap().found.map(|f| f.id), Some(6));
        // A storage dir with no checkpoint yet: nothing to remove, no error.
        assert_eq!(retain(&t.0.join("none"), 2).unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn remove_checkpoint_is_idempotent() {
        let t = TempDir::new("remove");
        write_checkpoint(&t.0, 3, 1, 1);
        remove_checkpoint(&t.0, 3).unwrap();
        remove_checkpoint(&t.0, 3).unwrap();
        assert!(names(&t.0).is_empty());
    }

    #[test]
    fn atomic_writes_leave_no_temp_file() {
        let t = TempDir::new("atomic");
        let p = t.0.join("x");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(names(&t.0), ["x"]);
        let err = write_atomic(&t.0.join("missing").join("x"), b"").unwrap_err().to_string();
        assert!(err.contains("missing/.x.tmp: No such file or directory"), "{err}");
        assert_eq!(parent(Path::new("x")), Path::new("."));
        assert_eq!(parent(&p), t.0);
    }

    #[test]
    fn probe_says_in_one_line_why_storage_is_not_writable() {
        let t = TempDir::new("probe");
        let ok = t.0.join("a").join("b");
        probe_writable(&ok).unwrap();
        assert!(names(&ok).is_empty(), "the probe file is removed");
        // Tests run as root, where permissions do not stop a write: a path under a
        // regular file cannot be created by anyone.
        fs::write(t.0.join("file"), b"").unwrap();
        let bad = t.0.join("file").join("chk");
        let err = probe_writable(&bad).unwrap_err();
        assert_eq!(err, format!("checkpoint storage {} is not writable: Not a directory (os error 20)", bad.display()));
        assert!(!err.contains('\n'));
    }

    #[test]
    fn only_plain_chk_names_are_checkpoints() {
        assert_eq!(checkpoint_id("chk-0"), Some(0));
        assert_eq!(checkpoint_id("chk-42"), Some(42));
        for bad in ["chk-", "chk-01", "chk-x", "chk--1", "chk-1.tmp", "sp-1", "chk-99999999999999999999"] {
            assert_eq!(checkpoint_id(bad), None, "{bad}");
        }
    }
}
