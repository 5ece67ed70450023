//! Replayable sources (issue 13): a reader reads part of its input, marks its position,
//! reads on (what a failure then loses), snapshots; fresh readers restored from the
//! snapshots (at the same or another parallelism) read the rest. What was read before
//! the marks plus what the restored readers read equals one uninterrupted read: nothing
//! lost, nothing read twice.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;

use proptest::prelude::*;

use common::*;
use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::connectors::sources;
use ferroflow_engine::connectors::testing::{TestEvent, TestingSource};
use ferroflow_engine::connectors::text::EncodingErrors;
use ferroflow_engine::functions::{SourceFactory, SourceReader, SourceStatus, WorkerContext};

fn make(factory: &SourceFactory<V>, index: usize, peers: usize) -> Box<dyn SourceReader<V>> {
    factory(&WorkerContext { index, peers, waker: None, checkpointing: Default::default() }).unwrap()
}

/// Polls `polls` batches of `batch` (fewer if the reader ends first); whether it ended.
fn poll_some(r: &mut dyn SourceReader<V>, polls: usize, batch: usize, out: &mut Vec<V>) -> bool {
    for _ in 0..polls {
        if r.poll(batch, out).unwrap() == SourceStatus::Done {
            return true;
        }
    }
    false
}

fn poll_all(r: &mut dyn SourceReader<V>, batch: usize) -> Vec<V> {
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        if r.poll(batch, &mut out).unwrap() == SourceStatus::Done {
            return out;
        }
    }
    panic!("the reader never ended");
}

fn multiset(records: impl IntoIterator<Item = V>) -> BTreeMap<V, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r).or_insert(0) += 1;
    }
    m
}

/// One interrupted run: `old` readers each poll `before[i]` batches, mark, poll
/// `lost[i]` more, snapshot; `new` fresh readers restore and read to the end.
/// Returns (per old reader what it read before its mark, per new reader what it read).
fn interrupted(
    factory: &SourceFactory<V>,
    old: usize,
    new: usize,
    before: &[usize],
    lost: &[usize],
    batch: usize,
) -> (Vec<Vec<V>>, Vec<Vec<V>>) {
    let mut kept = Vec::new();
    let mut sections = Vec::new();
    for i in 0..old {
        let mut r = make(factory, i, old);
        let mut read = Vec::new();
        poll_some(r.as_mut(), before[i % before.len()], batch, &mut read);
        r.mark_position(1).unwrap();
        let mut after_mark = Vec::new();
        if poll_some(r.as_mut(), lost[i % lost.len()], batch, &mut after_mark) {
            // An ended reader's position is its end, in every later checkpoint (the
            // driver snapshots it once more when it ends): nothing of it is lost.
            read.extend(after_mark);
        }
        let mut section = Vec::new();
        r.snapshot(&mut section).unwrap();
        // Snapshotting again gives the same bytes: it is the mark's position.
        let mut again = Vec::new();
        r.snapshot(&mut again).unwrap();
        assert_eq!(section, again);
        kept.push(read);
        sections.push(section);
    }
    let refs: Vec<&[u8]> = sections.iter().map(Vec::as_slice).collect();
    let mut after = Vec::new();
    for j in 0..new {
        let mut r = make(factory, j, new);
        r.restore(&Restore::new(refs.clone(), j, new)).unwrap();
        after.push(poll_all(r.as_mut(), batch));
    }
    (kept, after)
}

/// `interrupted`, checked where the order is known: at the same parallelism each reader
/// goes on where it was (in order, exactly its own records). Returns the multiset of all
/// that the old readers kept and the new ones read, for the caller's "every record once".
fn resumed(
    factory: &SourceFactory<V>,
    old: usize,
    new: usize,
    before: &[usize],
    lost: &[usize],
    batch: usize,
) -> Result<BTreeMap<V, usize>, TestCaseError> {
    let (kept, after) = interrupted(factory, old, new, before, lost, batch);
    if old == new {
        for i in 0..old {
            let mut got = kept[i].clone();
            got.extend(after[i].iter().cloned());
            prop_assert_eq!(got, poll_all(make(factory, i, old).as_mut(), batch));
        }
    }
    Ok(multiset(kept.into_iter().flatten().chain(after.into_iter().flatten())))
}

/// Once a reader has ended, its snapshot is its end, whatever it marked before.
#[test]
fn an_ended_reader_snapshots_its_end() {
    let dir = TempDir::new("positions-ended");
    dir.write("a.txt", b"1\n2\n3\n");
    for factory in [sources::text_file::<V>(dir.path(), EncodingErrors::Strict), sources::sequence::<V>(1, 3)] {
        let mut r = make(&factory, 0, 1);
        r.mark_position(1).unwrap();
        assert_eq!(poll_all(r.as_mut(), 10).len(), 3);
        let mut section = Vec::new();
        r.snapshot(&mut section).unwrap();
        let mut fresh = make(&factory, 0, 1);
        fresh.restore(&Restore::new(vec![&section], 0, 1)).unwrap();
        assert!(poll_all(fresh.as_mut(), 10).is_empty());
    }
}

/// Lines `<file>-<n>` of random lengths; some files end without a newline.
fn file_strategy() -> impl Strategy<Value = (Vec<usize>, bool)> {
    (prop::collection::vec(0usize..12, 0..40), any::<bool>())
}

fn file_text(file: usize, pads: &[usize], final_newline: bool) -> String {
    let mut s = String::new();
    for (n, pad) in pads.iter().enumerate() {
        s.push_str(&format!("{file}-{n}{}", "é".repeat(*pad)));
        if n + 1 < pads.len() || final_newline {
            s.push(if n % 5 == 3 { '\r' } else { '\n' });
            if n % 5 == 3 {
                s.push('\n');
            }
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Text files at random old and new parallelism (1..=4), interrupted at random
    /// points, small split threshold so files are cut into byte ranges: the lines read
    /// before the marks plus the lines read after the restore are every line once.
    #[test]
    fn text_files_resume_without_loss_or_duplicates(
        files in prop::collection::vec(file_strategy(), 1..4),
        split_min in 0u64..300,
        old in 1usize..=4,
        new in 1usize..=4,
        before in prop::collection::vec(0usize..6, 1..5),
        lost in prop::collection::vec(0usize..4, 1..5),
        batch in 1usize..5,
    ) {
        let dir = TempDir::new("positions-text");
        for (i, (pads, nl)) in files.iter().enumerate() {
            dir.write(&format!("part-{i}.txt"), file_text(i, pads, *nl).as_bytes());
        }
        let factory = sources::text_file_split::<V>(dir.path(), EncodingErrors::Strict, split_min);
        let want = multiset((0..old).flat_map(|i| poll_all(make(&factory, i, old).as_mut(), batch)));
        prop_assert!(want.values().all(|&n| n == 1), "lines are unique");
        prop_assert_eq!(resumed(&factory, old, new, &before, &lost, batch)?, want);
    }

    /// Sequences, likewise (old readers' ranges dealt to the new ones).
    #[test]
    fn sequences_resume_without_loss_or_duplicates(
        start in -50i64..50,
        len in 0i64..80,
        old in 1usize..=4,
        new in 1usize..=4,
        before in prop::collection::vec(0usize..6, 1..5),
        lost in prop::collection::vec(0usize..4, 1..5),
        batch in 1usize..7,
    ) {
        let factory = sources::sequence::<V>(start, start + len - 1);
        prop_assert_eq!(resumed(&factory, old, new, &before, &lost, batch)?, multiset((start..start + len).map(V::I)));
    }

    /// Bytes that are not a snapshot are an internal error, never a panic.
    #[test]
    fn corrupt_positions_are_errors(bytes in prop::collection::vec(any::<u8>(), 1..64), peers in 1usize..3) {
        let dir = TempDir::new("positions-corrupt");
        dir.write("a.txt", b"x\ny\n");
        let factories = [
            sources::text_file::<V>(dir.path(), EncodingErrors::Strict),
            sources::sequence::<V>(0, 100),
        ];
        for factory in &factories {
            let mut r = make(factory, 0, peers);
            let sections: Vec<&[u8]> = vec![&bytes; peers];
            if let Err(e) = r.restore(&Restore::new(sections, 0, peers)) {
                prop_assert!(e.internal, "{}", e.message);
            }
        }
        let mut t = TestingSource::<V>::new(vec![TestEvent::Record(V::I(1))], 0);
        if let Err(e) = t.restore(&Restore::new(vec![&bytes], 0, 1)) {
            prop_assert!(e.internal, "{}", e.message);
        }
    }
}

/// A large file cut into byte ranges, interrupted mid-range at 2 readers, restored at
/// 1 and 3: each time every line exactly once.
#[test]
fn text_file_rescales_two_to_one_and_three() {
    let dir = TempDir::new("positions-rescale");
    let text: String = (0..5000).map(|i| format!("line {i} {}\n", "x".repeat(i % 17))).collect();
    dir.write("big.txt", text.as_bytes());
    let factory = sources::text_file_split::<V>(dir.path(), EncodingErrors::Strict, 0);
    let want = multiset((0..5000).map(|i| V::S(format!("line {i} {}", "x".repeat(i % 17)))));
    for new in [1, 3] {
        let (kept, after) = interrupted(&factory, 2, new, &[3, 7], &[2], 100);
        assert!(after.iter().all(|a| !a.is_empty()), "every new reader got a range: {new}");
        let got = multiset(kept.into_iter().flatten().chain(after.into_iter().flatten()));
        assert_eq!(got, want, "2 -> {new}");
    }
}

/// A reader restored from its own snapshot of an unfinished file, without a mark yet,
/// starts at the beginning; one marked at the end reads nothing more.
#[test]
fn text_file_positions_before_the_first_and_after_the_last_line() {
    let dir = TempDir::new("positions-ends");
    dir.write("a.txt", b"1\n2\n3");
    let factory = sources::text_file::<V>(dir.path(), EncodingErrors::Strict);
    let (kept, after) = interrupted(&factory, 1, 1, &[0], &[1], 2);
    assert_eq!((kept[0].len(), after[0].len()), (0, 3));
    let (kept, after) = interrupted(&factory, 1, 1, &[5], &[1], 2);
    assert_eq!((kept[0].len(), after[0].len()), (3, 0));
}

/// The testing source resumes with the events after its mark and the clocks it had
/// reached there.
#[test]
fn testing_source_resumes_events_and_clocks() {
    use TestEvent::*;
    let events = vec![
        Record(V::I(1)),
        Watermark(10),
        Record(V::I(2)),
        ProcessingTime(50),
        Record(V::I(3)),
        Watermark(20),
        Record(V::I(4)),
        Record(V::I(5)),
    ];
    let whole = poll_all(&mut TestingSource::new(events.clone(), 7), 100);
    for cut in 0..6 {
        let mut r = TestingSource::new(events.clone(), 7);
        let mut read = Vec::new();
        poll_some(&mut r, cut, 100, &mut read);
        r.mark_position(1).unwrap();
        let mut clocks = (SourceReader::<V>::watermark(&r), SourceReader::<V>::processing_time(&r));
        let mut after_mark = Vec::new();
        if poll_some(&mut r, 2, 100, &mut after_mark) {
            // Ended: its end is its position.
            read.extend(after_mark);
            clocks = (SourceReader::<V>::watermark(&r), SourceReader::<V>::processing_time(&r));
        }
        let mut section = Vec::new();
        r.snapshot(&mut section).unwrap();
        let mut fresh = TestingSource::new(events.clone(), 7);
        // A non-parallel source: one section written, whatever the parallelism now.
        fresh.restore(&Restore::new(vec![&section, &[]], 0, 3)).unwrap();
        assert_eq!((SourceReader::<V>::watermark(&fresh), SourceReader::<V>::processing_time(&fresh)), clocks);
        read.extend(poll_all(&mut fresh, 100));
        assert_eq!(read, whole, "cut after {cut} polls");
    }
    // A checkpoint of a longer event list than this one is refused.
    let mut long = TestingSource::new(events.clone(), 7);
    poll_all(&mut long, 100);
    long.mark_position(1).unwrap();
    let mut section = Vec::new();
    long.snapshot(&mut section).unwrap();
    let mut short = TestingSource::new(events[..3].to_vec(), 7);
    let err = short.restore(&Restore::new(vec![&section], 0, 1)).unwrap_err();
    assert!(err.internal && err.message.contains("had taken 8 events"), "{}", err.message);
}

/// The socket source cannot resume: its snapshot is empty, and it refuses a position.
#[test]
fn socket_source_keeps_no_position() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let factory = sources::socket_text::<V>("127.0.0.1".into(), port, b'\n', EncodingErrors::Strict);
    let mut r = make(&factory, 0, 1);
    r.mark_position(1).unwrap();
    let mut section = Vec::new();
    r.snapshot(&mut section).unwrap();
    assert!(section.is_empty());
    r.restore(&Restore::new(vec![&[], &[]], 0, 1)).unwrap();
    let err = r.restore(&Restore::new(vec![b"x"], 0, 1)).unwrap_err();
    assert!(err.internal, "{}", err.message);
    r.cancel();
}

/// A source limited to fewer readers than the job has workers: the driver's restore
/// counts every worker of the job (with empty sections for workers that ran no
/// reader), and nothing may be dealt to a worker without a reader.
#[test]
fn limited_parallelism_deals_only_to_the_readers() {
    let dir = TempDir::new("positions-limited");
    let text: String = (0..3000).map(|i| format!("row {i}\n")).collect();
    dir.write("big.txt", text.as_bytes());
    let want = multiset((0..3000).map(|i| V::S(format!("row {i}"))));
    for (factory, want) in [
        (sources::text_file_split::<V>(dir.path(), EncodingErrors::Strict, 0), want),
        (sources::sequence::<V>(0, 2999), multiset((0..3000).map(V::I))),
    ] {
        // Old job: 5 workers, the source on 4 of them. New job: 5 workers, source on 2.
        let (mut kept, mut sections) = (Vec::new(), Vec::new());
        for i in 0..4 {
            let mut r = make(&factory, i, 4);
            poll_some(r.as_mut(), 3 + i, 50, &mut kept);
            r.mark_position(1).unwrap();
            let mut s = Vec::new();
            r.snapshot(&mut s).unwrap();
            sections.push(s);
        }
        sections.push(Vec::new());
        let refs: Vec<&[u8]> = sections.iter().map(Vec::as_slice).collect();
        for j in 0..2 {
            let mut r = make(&factory, j, 2);
            r.restore(&Restore::new(refs.clone(), j, 5)).unwrap();
            kept.extend(poll_all(r.as_mut(), 50));
        }
        assert_eq!(multiset(kept), want);
    }
}
