//! How a restored source finds its position among the old readers' snapshots (issue 13).
//!
//! Two shapes of position: a list of independent pieces of work (a text file's byte
//! ranges, a sequence's ranges), which may be dealt to any reader after a rescale; and
//! one position of a source whose every reader produces the same whole (a collection on
//! one worker), which cannot be split.

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{UdfError, UdfResult};
use crate::record::Record;

/// The pieces that are this reader's now: its own old reader's when the parallelism is
/// unchanged (each reader goes on where it was), otherwise every old reader's pieces,
/// in old worker order, dealt round-robin ([`Restore::deals`]), so each piece has
/// exactly one reader. `None` if no old reader wrote anything (start afresh). An empty
/// section is an old worker that ran no reader: it has no pieces.
///
/// `peers`: how many readers the source has now (its own parallelism, from its
/// [`crate::functions::WorkerContext`]): a source limited to fewer workers than the
/// job's has no reader on the others, so nothing may be dealt to them.
pub fn dealt_pieces<T>(
    from: &Restore<'_>,
    peers: usize,
    read: impl Fn(&[u8]) -> Result<Vec<T>, StateError>,
) -> UdfResult<Option<Vec<T>>> {
    if from.non_empty().next().is_none() {
        return Ok(None);
    }
    if from.worker() >= peers {
        return Err(UdfError::internal(format!("source reader {} restored as one of {peers}", from.worker())));
    }
    let from = &Restore::new(from.sections().to_vec(), from.worker(), peers);
    if let Some(own) = from.own() {
        return Ok(Some(if own.is_empty() { Vec::new() } else { read(own)? }));
    }
    let mut mine = Vec::new();
    let mut i = 0;
    for section in from.non_empty() {
        for piece in read(section)? {
            if from.deals(i) {
                mine.push(piece);
            }
            i += 1;
        }
    }
    Ok(Some(mine))
}

/// The one position of a source that cannot be split: its own old reader's when the
/// parallelism is unchanged, otherwise the single old reader that wrote one (a source
/// on one worker). `None`: nothing to restore from (start afresh).
pub fn single_position<'a>(from: &Restore<'a>) -> UdfResult<Option<&'a [u8]>> {
    if from.same_parallelism() {
        return Ok(from.own().filter(|s| !s.is_empty()));
    }
    let mut written = from.non_empty();
    match (written.next(), written.next()) {
        (one, None) => Ok(one),
        _ => Err(UdfError::internal(format!(
            "a source whose every reader emits the whole input was checkpointed at {} readers and cannot \
             restore at {}",
            from.old_peers(),
            from.peers()
        ))),
    }
}

/// Appends a count (items taken: a collection's position).
pub fn write_count<R: Record>(out: &mut Vec<u8>, n: u64) {
    let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
    w.u64(n);
    *out = w.into_bytes();
}

/// The count [`write_count`] wrote, found by [`single_position`].
pub fn read_count<R: Record>(from: &Restore<'_>) -> UdfResult<Option<u64>> {
    let Some(section) = single_position(from)? else { return Ok(None) };
    let mut r = StateReader::<R>::new(section);
    let n = r.u64()?;
    r.finish()?;
    Ok(Some(n))
}
