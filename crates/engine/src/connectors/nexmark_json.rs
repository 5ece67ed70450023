//! Nexmark events read from JSON lines: one object per line, `{"type": "person" |
//! "auction" | "bid", <the event's fields>}` (what `event_to_dict` in
//! python/ferroflow/connectors/nexmark.py writes), parsed straight into the engine's
//! [`Event`]s and made records by the same conversion as the generator's events
//! ([`MakeEvents`]), stamped with their `date_time`.
//!
//! The files are read by the file source ([`crate::connectors::files`]) as a JSON-lines
//! format ([`json_lines_of`]): split across workers by byte ranges, resumed from
//! checkpoints as the ranges left, malformed lines failing the job (file and line
//! named) or skipped and counted.
//!
//! A line's fields may come in any order; keys other than the event's own are ignored
//! (as `event_from_dict` ignores them). Ids, prices and times must be integers from 0
//! to 2^64 - 1, the texts strings: anything else, or a missing field, is a malformed line.

use std::sync::Arc;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::Deserialize;

use crate::connectors::files::FileFormat;
use crate::connectors::formats::{json_lines_of, FromParsed, JsonLineWords, Malformed};
use crate::connectors::nexmark::{make_stamped, Auction, Bid, Event, MakeEvents, Person};
use crate::record::Record;

/// How to skip malformed lines (for messages).
pub const SKIP_HINT: &str = "to skip such lines, use NexmarkSource.from_json_lines(..., skip_malformed=True)";

/// Nexmark events, one JSON object a line, as records stamped with their `date_time`;
/// files of `split_min` bytes or more are cut into byte ranges.
pub fn nexmark_json_lines<R: Record>(make: MakeEvents<R>, malformed: Malformed, split_min: u64) -> FileFormat<R> {
    let convert: FromParsed<JsonEvent, R> = Arc::new(move |parsed, out| {
        let mut events: Vec<Event> = std::mem::take(parsed).into_iter().map(|e| e.0).collect();
        make_stamped(&make, &mut events, &mut Vec::new(), out)
    });
    let words = JsonLineWords { format: "Nexmark JSON lines", not_a: "not a Nexmark event", skip_hint: SKIP_HINT };
    json_lines_of(words, convert, malformed, split_min)
}

/// One line's event.
#[derive(Debug, PartialEq, Eq)]
pub struct JsonEvent(pub Event);

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Person,
    Auction,
    Bid,
}

/// Every field of the three kinds; unknown keys are ignored.
#[derive(Deserialize, Default)]
struct Fields {
    #[serde(rename = "type")]
    kind: Option<Kind>,
    id: Option<usize>,
    name: Option<String>,
    email_address: Option<String>,
    credit_card: Option<String>,
    city: Option<String>,
    state: Option<String>,
    date_time: Option<u64>,
    extra: Option<String>,
    item_name: Option<String>,
    description: Option<String>,
    initial_bid: Option<usize>,
    reserve: Option<usize>,
    expires: Option<u64>,
    seller: Option<usize>,
    category: Option<usize>,
    auction: Option<usize>,
    bidder: Option<usize>,
    price: Option<usize>,
    channel: Option<String>,
    url: Option<String>,
}

/// [`Fields`] from a JSON object only (a derived struct would take an array too).
struct ObjectOnly;

impl<'de> Visitor<'de> for ObjectOnly {
    type Value = Fields;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object with a \"type\" (person, auction or bid) and the event's fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Fields, A::Error> {
        Fields::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for JsonEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonEvent, D::Error> {
        let f = d.deserialize_map(ObjectOnly)?;
        let Some(kind) = f.kind else {
            return Err(D::Error::custom("no \"type\" field (person, auction or bid)"));
        };
        let kind_name = match kind {
            Kind::Person => "person",
            Kind::Auction => "auction",
            Kind::Bid => "bid",
        };
        fn need<T, E: serde::de::Error>(v: Option<T>, kind: &str, field: &'static str) -> Result<T, E> {
            v.ok_or_else(|| E::custom(format_args!("a {kind} without its \"{field}\" field")))
        }
        macro_rules! take {
            ($field:ident) => {
                need::<_, D::Error>(f.$field, kind_name, stringify!($field))?
            };
        }
        Ok(JsonEvent(match kind {
            Kind::Person => Event::Person(Person {
                id: take!(id),
                name: take!(name),
                email_address: take!(email_address),
                credit_card: take!(credit_card),
                city: take!(city),
                state: take!(state),
                date_time: take!(date_time),
                extra: take!(extra),
            }),
            Kind::Auction => Event::Auction(Auction {
                id: take!(id),
                item_name: take!(item_name),
                description: take!(description),
                initial_bid: take!(initial_bid),
                reserve: take!(reserve),
                date_time: take!(date_time),
                expires: take!(expires),
                seller: take!(seller),
                category: take!(category),
                extra: take!(extra),
            }),
            Kind::Bid => Event::Bid(Bid {
                auction: take!(auction),
                bidder: take!(bidder),
                price: take!(price),
                channel: take!(channel),
                url: take!(url),
                date_time: take!(date_time),
                extra: take!(extra),
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::files::{files_source, Listing};
    use crate::connectors::nexmark::{nexmark_source, NexmarkSpec};
    use crate::functions::{SourceStatus, WorkerContext};
    use crate::record::Stamped;
    use crate::temp_dir::TempDir;

    fn parse(line: &str) -> Result<Event, String> {
        serde_json::from_str::<JsonEvent>(line).map(|e| e.0).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_parses_in_any_field_order() {
        let person = r#"{"type":"person","id":1000,"name":"Ann Li","email_address":"a@x","credit_card":"1 2","city":"Oslo","state":"OR","date_time":1672531200000,"extra":"e"}"#;
        let want = Person {
            id: 1000,
            name: "Ann Li".into(),
            email_address: "a@x".into(),
            credit_card: "1 2".into(),
            city: "Oslo".into(),
            state: "OR".into(),
            date_time: 1_672_531_200_000,
            extra: "e".into(),
        };
        assert_eq!(parse(person), Ok(Event::Person(want)));
        // Fields in another order, the type last, an unknown key ignored.
        let auction = r#"{"id":1000,"item_name":"i","description":"d\n\u00e9","initial_bid":5,"reserve":7,"date_time":3,"expires":9,"seller":1001,"category":10,"extra":"","comment":[1],"type":"auction"}"#;
        let Ok(Event::Auction(a)) = parse(auction) else { panic!("{:?}", parse(auction)) };
        assert_eq!((a.id, a.description.as_str(), a.initial_bid, a.reserve, a.expires), (1000, "d\né", 5, 7, 9));
        assert_eq!((a.seller, a.category, a.date_time), (1001, 10, 3));
        let bid = r#"{"type":"bid","auction":1007,"bidder":1001,"price":18446744073709551615,"channel":"Google","url":"https://x/y","date_time":4,"extra":"zz"}"#;
        let Ok(Event::Bid(b)) = parse(bid) else { panic!("{:?}", parse(bid)) };
        assert_eq!(
            (b.auction, b.bidder, b.price, b.channel.as_str(), b.date_time),
            (1007, 1001, usize::MAX, "Google", 4)
        );
        assert_eq!(b.extra, "zz");
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let cases = [
            (
                r#"{"type":"bid","auction":1,"bidder":2,"channel":"c","url":"u","date_time":4,"extra":""}"#,
                "a bid without its \"price\" field",
            ),
            (r#"{"auction":1}"#, "no \"type\" field"),
            (r#"{"type":"ask","id":1}"#, "unknown variant `ask`, expected one of `person`, `auction`, `bid`"),
            (r#"{"type":"bid","price":-5}"#, "invalid value: integer `-5`"),
            (r#"{"type":"bid","price":1.5}"#, "invalid type: floating point `1.5`"),
            (r#"{"type":"person","name":7}"#, "invalid type: integer `7`, expected a string"),
            (r#"[1, 2]"#, "invalid type: sequence, expected a JSON object"),
            ("7", "invalid type: integer `7`, expected a JSON object"),
            ("{\"type\":\"bid\"", "EOF while parsing"),
        ];
        for (line, want) in cases {
            let err = parse(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    /// Records holding each event as its JSON line.
    fn as_json() -> MakeEvents<Stamped<String>> {
        Arc::new(|events, out| {
            out.extend(events.drain(..).map(|e| Stamped::new(to_json(&e))));
            Ok(())
        })
    }

    /// The JSON form `event_to_dict` writes (keys sorted here).
    fn to_json(e: &Event) -> String {
        use serde_json::json;
        let v = match e {
            Event::Person(p) => json!({"type": "person", "id": p.id, "name": p.name,
                "email_address": p.email_address, "credit_card": p.credit_card, "city": p.city,
                "state": p.state, "date_time": p.date_time, "extra": p.extra}),
            Event::Auction(a) => json!({"type": "auction", "id": a.id, "item_name": a.item_name,
                "description": a.description, "initial_bid": a.initial_bid, "reserve": a.reserve,
                "date_time": a.date_time, "expires": a.expires, "seller": a.seller,
                "category": a.category, "extra": a.extra}),
            Event::Bid(b) => json!({"type": "bid", "auction": b.auction, "bidder": b.bidder,
                "price": b.price, "channel": b.channel, "url": b.url, "date_time": b.date_time,
                "extra": b.extra}),
        };
        v.to_string()
    }

    /// The generator's events written as JSON lines and read back by 1..3 readers
    /// (byte ranges cut small): the same events with the same timestamps.
    #[test]
    fn generated_events_round_trip_at_any_parallelism() {
        let spec = NexmarkSpec { events: Some(400), out_of_order_group_size: 5, ..NexmarkSpec::default() };
        let ctx = |index, peers| WorkerContext { index, peers, waker: None, checkpointing: Default::default() };
        let mut generated = Vec::new();
        let mut native = nexmark_source::<Stamped<String>>(spec, as_json()).unwrap()(&ctx(0, 1)).unwrap();
        while native.poll(64, &mut generated).unwrap() == SourceStatus::More {}
        let lines: String = generated.iter().map(|r| format!("{}\n", r.value)).collect();
        let mut want: Vec<(i64, String)> = generated.into_iter().map(|r| (r.timestamp(), r.value)).collect();
        want.sort_unstable();
        assert_eq!(want.len(), 400);
        assert!(want.iter().any(|(_, l)| l.contains(r#""type":"person""#)));
        assert!(want.iter().any(|(_, l)| l.contains(r#""type":"auction""#)));
        let dir = TempDir::new("nexmark-json");
        let path = dir.0.join("events.jsonl");
        std::fs::write(&path, lines).unwrap();
        for peers in 1..4 {
            let listing = Listing { paths: vec![path.clone()], recursive: false, monitor: None };
            let factory = files_source(listing, nexmark_json_lines(as_json(), Malformed::Fail, 1000));
            let mut got = Vec::new();
            for index in 0..peers {
                let mut reader = factory(&ctx(index, peers)).unwrap();
                while reader.poll(50, &mut got).unwrap() == SourceStatus::More {}
            }
            let mut got: Vec<(i64, String)> = got.into_iter().map(|r| (r.timestamp(), r.value)).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{peers} readers");
        }
    }

    #[test]
    fn a_bad_line_names_the_file_and_line_or_is_skipped() {
        let dir = TempDir::new("nexmark-json");
        let path = dir.0.join("bad.jsonl");
        let bid = r#"{"type":"bid","auction":1,"bidder":2,"price":3,"channel":"c","url":"u","date_time":4,"extra":""}"#;
        std::fs::write(&path, format!("{bid}\n\n{{\"type\":\"bid\"}}\n{bid}\n")).unwrap();
        let read = |malformed| {
            let listing = Listing { paths: vec![path.clone()], recursive: false, monitor: None };
            let factory = files_source(listing, nexmark_json_lines(as_json(), malformed, u64::MAX));
            let ctx = WorkerContext { index: 0, peers: 1, waker: None, checkpointing: Default::default() };
            let mut reader = factory(&ctx).unwrap();
            let mut out = Vec::new();
            loop {
                match reader.poll(10, &mut out) {
                    Ok(SourceStatus::More) => {}
                    Ok(_) => return Ok(out),
                    Err(e) => return Err(e.message),
                }
            }
        };
        let err = read(Malformed::Fail).unwrap_err();
        let want = format!("{}: line 3: not a Nexmark event (a bid without its \"auction\" field", path.display());
        assert!(err.starts_with(&want), "{err}");
        assert!(err.ends_with(SKIP_HINT), "{err}");
        let got = read(Malformed::Skip).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|r| r.timestamp() == 4));
    }
}
