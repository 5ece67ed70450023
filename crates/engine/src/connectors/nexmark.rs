//! The Nexmark benchmark's events (people, auctions, bids) made by the `nexmark` crate's
//! generator, split across workers.
//!
//! The generator makes event `n` from `n` alone (its id seeds the random fields, its
//! number gives its timestamp), so the job's events do not depend on how many readers
//! make them: reader `w` of `p` makes the events at offsets `w, w + p, w + 2p, ...` below
//! the event count. Its position is that progression's next offset; a checkpoint keeps,
//! per reader, the progressions it has left (one, unless a restore after a rescale dealt
//! it several old readers' ones), so a restore at any parallelism makes each remaining
//! event exactly once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use nexmark::config::{NexmarkConfig, RateShape};
pub use nexmark::event::{Auction, Bid, Event, Person};
use nexmark::EventGenerator;

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::connectors::positions::dealt_pieces;
use crate::error::{UdfError, UdfResult};
use crate::functions::{SourceFactory, SourceReader, SourceStatus};
use crate::record::Record;

/// The generator's knobs (the names of the `nexmark` crate and Flink's Nexmark).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NexmarkSpec {
    /// How many events the job makes over all readers; `None`: it never ends.
    pub events: Option<u64>,
    /// Events per second, over all readers, in wall-clock time; `None`: as fast as the
    /// job takes them.
    pub rate: Option<u64>,
    /// Events per second of event time: the spacing of the events' timestamps.
    pub event_rate: u64,
    /// The first event's timestamp (ms since the epoch).
    pub base_time: u64,
    /// Events in out-of-order groups (1: in order).
    pub out_of_order_group_size: usize,
    pub hot_seller_ratio: usize,
    pub hot_auction_ratio: usize,
    pub hot_bidder_ratio: usize,
    pub hot_channel_ratio: usize,
    pub active_people: usize,
    pub in_flight_auctions: usize,
    pub num_categories: usize,
}

impl Default for NexmarkSpec {
    fn default() -> Self {
        let c = NexmarkConfig::default();
        NexmarkSpec {
            events: Some(100_000),
            rate: None,
            event_rate: c.first_rate as u64,
            // 2023-01-01T00:00:00Z: fixed, so every process and run makes the same events.
            base_time: 1_672_531_200_000,
            out_of_order_group_size: c.out_of_order_group_size,
            hot_seller_ratio: c.hot_seller_ratio,
            hot_auction_ratio: c.hot_auction_ratio,
            hot_bidder_ratio: c.hot_bidder_ratio,
            hot_channel_ratio: c.hot_channel_ratio,
            active_people: c.active_people,
            in_flight_auctions: c.in_flight_auctions,
            num_categories: c.num_categories,
        }
    }
}

impl NexmarkSpec {
    /// The knob that would make the generator fail, with the fix.
    pub fn check(&self) -> Result<(), String> {
        let at_least_one = [
            ("event_rate", self.event_rate as usize),
            ("out_of_order_group_size", self.out_of_order_group_size),
            ("hot_seller_ratio", self.hot_seller_ratio),
            ("hot_auction_ratio", self.hot_auction_ratio),
            ("hot_bidder_ratio", self.hot_bidder_ratio),
            ("hot_channel_ratio", self.hot_channel_ratio),
            ("active_people", self.active_people),
            ("in_flight_auctions", self.in_flight_auctions),
            ("num_categories", self.num_categories),
        ];
        for (name, value) in at_least_one {
            if value == 0 {
                return Err(format!("Nexmark source: {name} must be at least 1, got 0"));
            }
        }
        if self.rate == Some(0) {
            return Err("Nexmark source: rate must be at least 1 event/s (or None: as fast as possible)".into());
        }
        Ok(())
    }

    fn config(&self) -> NexmarkConfig {
        let rate = usize::try_from(self.event_rate).unwrap_or(usize::MAX);
        NexmarkConfig {
            out_of_order_group_size: self.out_of_order_group_size,
            hot_seller_ratio: self.hot_seller_ratio,
            hot_auction_ratio: self.hot_auction_ratio,
            hot_bidder_ratio: self.hot_bidder_ratio,
            hot_channel_ratio: self.hot_channel_ratio,
            active_people: self.active_people,
            in_flight_auctions: self.in_flight_auctions,
            num_categories: self.num_categories,
            base_time: self.base_time,
            first_rate: rate,
            next_rate: rate,
            rate_shape: RateShape::Square,
            ..NexmarkConfig::default()
        }
    }
}

/// Turns a batch of events into records, one each, in order (the binding's part).
pub type MakeEvents<R> = Arc<dyn Fn(&mut Vec<Event>, &mut Vec<R>) -> UdfResult<()> + Send + Sync>;

/// The Nexmark source: every worker makes its share of the events; records carry the
/// event's `date_time` as their timestamp.
pub fn nexmark_source<R: Record>(spec: NexmarkSpec, make: MakeEvents<R>) -> UdfResult<SourceFactory<R>> {
    spec.check().map_err(UdfError::new)?;
    let config = spec.config();
    Ok(Arc::new(move |ctx| {
        let step = ctx.peers.max(1) as u64;
        let end = spec.events.unwrap_or(u64::MAX);
        let first = ctx.index as u64;
        let pieces: VecDeque<Piece> = (first < end).then_some(Piece { next: first, step, end }).into_iter().collect();
        let reader = NexmarkReader {
            config: config.clone(),
            generator: None,
            marked: pieces.clone(),
            pieces,
            peers: ctx.peers,
            rate: spec.rate.map(|r| r as f64 / step as f64),
            started: None,
            made: 0,
            events: Vec::new(),
            stamps: Vec::new(),
            make: make.clone(),
        };
        Ok(Box::new(reader) as Box<dyn SourceReader<R>>)
    }))
}

/// The offsets `next, next + step, ...` below `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    next: u64,
    step: u64,
    end: u64,
}

impl Piece {
    fn left(&self) -> u64 {
        if self.next >= self.end {
            0
        } else {
            (self.end - self.next).div_ceil(self.step)
        }
    }
}

struct NexmarkReader<R> {
    config: NexmarkConfig,
    /// The generator at the first piece's next offset (made on the first poll).
    generator: Option<EventGenerator>,
    pieces: VecDeque<Piece>,
    /// `pieces` at the last mark.
    marked: VecDeque<Piece>,
    peers: usize,
    /// This reader's share of the wall-clock rate (events/s).
    rate: Option<f64>,
    started: Option<Instant>,
    made: u64,
    events: Vec<Event>,
    stamps: Vec<i64>,
    make: MakeEvents<R>,
}

impl<R: Record> SourceReader<R> for NexmarkReader<R> {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        let Some(piece) = self.pieces.front_mut() else {
            self.marked.clear();
            return Ok(SourceStatus::Done);
        };
        let mut take = (max as u64).min(piece.left());
        if let Some(rate) = self.rate {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
            take = take.min(due.saturating_sub(self.made));
            if take == 0 {
                return Ok(SourceStatus::Idle);
            }
        }
        let generator = self.generator.get_or_insert_with(|| {
            EventGenerator::new(self.config.clone()).with_offset(piece.next).with_step(piece.step)
        });
        self.events.extend(generator.take(take as usize));
        piece.next = piece.next.saturating_add(take.saturating_mul(piece.step));
        self.made += take;
        if piece.left() == 0 {
            self.pieces.pop_front();
            self.generator = None;
        }
        make_stamped(&self.make, &mut self.events, &mut self.stamps, out)?;
        if self.pieces.is_empty() {
            self.marked.clear();
            return Ok(SourceStatus::Done);
        }
        Ok(SourceStatus::More)
    }

    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        self.marked.clone_from(&self.pieces);
        Ok(())
    }

    /// The progressions left: `count`, then each one's next offset, step and end.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        w.u64(self.marked.len() as u64);
        for p in &self.marked {
            w.u64(p.next);
            w.u64(p.step);
            w.u64(p.end);
        }
        *out = w.into_bytes();
        Ok(())
    }

    /// After a rescale the old readers' progressions are dealt to the new ones.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        if let Some(pieces) = dealt_pieces(from, self.peers, read_pieces::<R>)? {
            self.pieces = pieces.into();
            self.marked.clone_from(&self.pieces);
            self.generator = None;
        }
        Ok(())
    }
}

/// Makes `events` into records appended to `out` (draining `events`), each stamped
/// with its event's `date_time`; `stamps` is scratch space.
pub(crate) fn make_stamped<R: Record>(
    make: &MakeEvents<R>,
    events: &mut Vec<Event>,
    stamps: &mut Vec<i64>,
    out: &mut Vec<R>,
) -> UdfResult<()> {
    stamps.clear();
    stamps.extend(events.iter().map(|e| i64::try_from(e.timestamp()).unwrap_or(i64::MAX)));
    let start = out.len();
    make(events, out)?;
    events.clear();
    if out.len() - start != stamps.len() {
        return Err(UdfError::internal("the Nexmark source made a record count other than its event count"));
    }
    for (record, &ts) in out[start..].iter_mut().zip(stamps.iter()) {
        record.set_timestamp(ts);
    }
    Ok(())
}

fn read_pieces<R: Record>(section: &[u8]) -> Result<Vec<Piece>, StateError> {
    let mut r = StateReader::<R>::new(section);
    let n = r.u64()?;
    let mut pieces = Vec::new();
    for _ in 0..n {
        let at = section.len() - r.remaining();
        let (next, step, end) = (r.u64()?, r.u64()?, r.u64()?);
        if step == 0 {
            return Err(StateError::Corrupt { offset: at, what: "a Nexmark position with step 0".into() });
        }
        pieces.push(Piece { next, step, end });
    }
    r.finish()?;
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::WorkerContext;
    use crate::record::Stamped;

    fn make() -> MakeEvents<Stamped<String>> {
        Arc::new(|events, out| {
            out.extend(events.drain(..).map(|e| Stamped::new(event_id(&e).to_string())));
            Ok(())
        })
    }

    /// A stand-in for an event's identity: its kind and id (bids: auction, bidder, price).
    fn event_id(e: &Event) -> u64 {
        match e {
            Event::Person(p) => p.id as u64,
            Event::Auction(a) => (1 << 40) + a.id as u64,
            Event::Bid(b) => (2 << 40) + ((b.auction as u64) << 20) + b.price as u64,
        }
    }

    fn run(spec: &NexmarkSpec, workers: usize) -> Vec<(i64, String)> {
        let factory = nexmark_source::<Stamped<String>>(spec.clone(), make()).unwrap();
        let mut all = Vec::new();
        for index in 0..workers {
            let ctx = WorkerContext { index, peers: workers, waker: None, checkpointing: Default::default() };
            let mut reader = factory(&ctx).unwrap();
            let mut out = Vec::new();
            while reader.poll(7, &mut out).unwrap() == SourceStatus::More {}
            all.extend(out.into_iter().map(|r| (r.timestamp(), r.value)));
        }
        all.sort_unstable();
        all
    }

    #[test]
    fn same_events_at_any_parallelism() {
        let spec = NexmarkSpec { events: Some(500), out_of_order_group_size: 7, ..NexmarkSpec::default() };
        let one = run(&spec, 1);
        assert_eq!(one.len(), 500);
        for workers in [2, 3, 8] {
            assert_eq!(run(&spec, workers), one, "{workers} workers");
        }
        assert!(one.iter().all(|&(ts, _)| ts >= spec.base_time as i64));
    }

    /// Readers polled part way, marked, polled on (lost in the failure) and snapshotted;
    /// a restore at another parallelism makes exactly the events after the marks.
    #[test]
    fn restore_at_another_parallelism_makes_each_event_once() {
        let spec = NexmarkSpec { events: Some(300), ..NexmarkSpec::default() };
        let factory = nexmark_source::<Stamped<String>>(spec.clone(), make()).unwrap();
        let ctx = |index, peers| WorkerContext { index, peers, waker: None, checkpointing: Default::default() };
        for (old, new) in [(2, 3), (3, 1), (2, 2)] {
            let mut read = Vec::new();
            let mut sections = Vec::new();
            for i in 0..old {
                let mut reader = factory(&ctx(i, old)).unwrap();
                reader.poll(10 + 7 * i, &mut read).unwrap();
                reader.mark_position(1).unwrap();
                reader.poll(5, &mut Vec::new()).unwrap();
                let mut section = Vec::new();
                reader.snapshot(&mut section).unwrap();
                sections.push(section);
            }
            for i in 0..new {
                let mut reader = factory(&ctx(i, new)).unwrap();
                let from = Restore::new(sections.iter().map(Vec::as_slice).collect(), i, new);
                reader.restore(&from).unwrap();
                while reader.poll(16, &mut read).unwrap() == SourceStatus::More {}
            }
            let mut read: Vec<_> = read.into_iter().map(|r| (r.timestamp(), r.value)).collect();
            read.sort_unstable();
            assert_eq!(read, run(&spec, 1), "{old} -> {new} readers");
        }
    }

    #[test]
    fn bad_knobs_are_refused() {
        let spec = NexmarkSpec { hot_bidder_ratio: 0, ..NexmarkSpec::default() };
        let err = nexmark_source::<Stamped<String>>(spec, make()).err().unwrap();
        let err = format!("{err:?}");
        assert!(err.contains("hot_bidder_ratio must be at least 1"), "{err}");
    }

    #[test]
    fn pieces_round_trip() {
        let mut w = StateWriter::<Stamped<String>>::new();
        w.u64(1);
        w.u64(3);
        w.u64(2);
        w.u64(10);
        let bytes = w.into_bytes();
        assert_eq!(read_pieces::<Stamped<String>>(&bytes).unwrap(), vec![Piece { next: 3, step: 2, end: 10 }]);
        assert_eq!(Piece { next: 3, step: 2, end: 10 }.left(), 4);
        assert_eq!(Piece { next: 10, step: 2, end: 10 }.left(), 0);
    }
}
