//! The batch wire format: round trips through `Writer`/`Reader`, pinned bytes, and
//! decoding of arbitrary or damaged bytes (must fail cleanly, never panic, never
//! allocate beyond the input).

use ferroflow_engine::codec::{self, tag, DecodeErrorKind, Item, Reader, Writer, MAX_DEPTH, VERSION};
use proptest::prelude::*;

/// A value model for tests only (the Python binding has none: it goes straight
/// to CPython objects).
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Pickle(Vec<u8>),
    /// A named tuple: its class's `module:qualname` and its items.
    Named(String, Vec<Value>),
}

impl PartialEq for Value {
    /// Floats compare by bits, so -0.0 and NaN payloads must survive too.
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (None, None) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (BigInt(a), BigInt(b)) | (Bytes(a), Bytes(b)) | (Pickle(a), Pickle(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Str(a), Str(b)) => a == b,
            (Tuple(a), Tuple(b)) | (List(a), List(b)) => a == b,
            (Dict(a), Dict(b)) => a == b,
            (Named(c, a), Named(d, b)) => c == d && a == b,
            _ => false,
        }
    }
}

/// `classes`: the named-tuple classes this batch has defined, by number.
fn write(w: &mut Writer, classes: &mut Vec<String>, v: &Value) {
    match v {
        Value::None => w.none(),
        Value::Bool(b) => w.bool(*b),
        Value::Int(i) => w.int(*i),
        Value::BigInt(b) => w.big_int(b),
        Value::Float(f) => w.float(*f),
        Value::Str(s) => w.str(s),
        Value::Bytes(b) => w.bytes(b),
        Value::Tuple(items) => {
            w.tuple(items.len());
            items.iter().for_each(|i| write(w, classes, i));
        }
        Value::List(items) => {
            w.list(items.len());
            items.iter().for_each(|i| write(w, classes, i));
        }
        Value::Dict(pairs) => {
            w.dict(pairs.len());
            for (k, v) in pairs {
                write(w, classes, k);
                write(w, classes, v);
            }
        }
        Value::Pickle(b) => w.pickle(b),
        Value::Named(class, items) => {
            match classes.iter().position(|c| c == class) {
                Some(i) => w.named_tuple(i, None, items.len()),
                None => {
                    classes.push(class.clone());
                    w.named_tuple(classes.len() - 1, Some(class), items.len());
                }
            }
            items.iter().for_each(|i| write(w, classes, i));
        }
    }
}

fn encode(records: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::begin_batch(&mut out, records.len());
    let mut classes = Vec::new();
    records.iter().for_each(|r| write(&mut w, &mut classes, r));
    out
}

/// Recursion is bounded by the reader's depth limit; preallocation by its count checks.
fn read(r: &mut Reader, classes: &mut Vec<String>) -> Result<Value, codec::DecodeError> {
    Ok(match r.read()? {
        Item::None => Value::None,
        Item::Bool(b) => Value::Bool(b),
        Item::Int(i) => Value::Int(i),
        Item::BigInt(b) => Value::BigInt(b.to_vec()),
        Item::Float(f) => Value::Float(f),
        Item::Str(s) => Value::Str(s.to_string()),
        Item::Bytes(b) => Value::Bytes(b.to_vec()),
        Item::Pickle(b) => Value::Pickle(b.to_vec()),
        Item::Tuple(n) => {
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read(r, classes)?);
            }
            Value::Tuple(items)
        }
        Item::List(n) => {
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read(r, classes)?);
            }
            Value::List(items)
        }
        Item::Dict(n) => {
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                let k = read(r, classes)?;
                pairs.push((k, read(r, classes)?));
            }
            Value::Dict(pairs)
        }
        Item::NamedTuple { class, name, n } => {
            if let Some(name) = name {
                assert_eq!(class, classes.len(), "the reader hands out the next number with a name");
                classes.push(name.to_string());
            }
            let class = classes[class].clone();
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read(r, classes)?);
            }
            Value::Named(class, items)
        }
    })
}

fn decode(bytes: &[u8]) -> Result<Vec<Value>, codec::DecodeError> {
    let mut r = Reader::new(bytes)?;
    let mut out = Vec::with_capacity(r.record_count());
    let mut classes = Vec::new();
    for _ in 0..r.record_count() {
        out.push(read(&mut r, &mut classes)?);
    }
    r.finish()?;
    Ok(out)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-200i64..200).prop_map(Value::Int),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(Value::BigInt),
        any::<f64>().prop_map(Value::Float),
        prop::sample::select(vec![0.0, -0.0, f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE])
            .prop_map(Value::Float),
        any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
        ".{0,12}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Value::Bytes),
        prop::collection::vec(any::<u8>(), 0..30).prop_map(Value::Pickle),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Tuple),
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            prop::collection::vec((inner.clone(), inner.clone()), 0..6).prop_map(Value::Dict),
            (prop::sample::select(vec!["m:A", "m:B", "pkg.mod:Outer.C"]), prop::collection::vec(inner, 0..6))
                .prop_map(|(c, items)| Value::Named(c.to_string(), items)),
        ]
    })
}

fn nested(depth: usize) -> Value {
    let mut v = Value::Int(7);
    for i in 0..depth {
        v = match i % 3 {
            0 => Value::Tuple(vec![v]),
            1 => Value::List(vec![Value::None, v]),
            _ => Value::Dict(vec![(Value::Str("k".into()), v)]),
        };
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(records in prop::collection::vec(value(), 0..10)) {
        let bytes = encode(&records);
        prop_assert_eq!(codec::validate(&bytes), Ok(records.len()));
        prop_assert_eq!(decode(&bytes).unwrap(), records);
    }

    /// Every strict prefix of a valid batch is an error, never a panic or a partial success.
    #[test]
    fn truncated_batches_fail(records in prop::collection::vec(value(), 1..4)) {
        let bytes = encode(&records);
        for cut in 0..bytes.len() {
            prop_assert!(decode(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
        }
    }

    /// Valid batches with bytes overwritten, inserted or removed: decoding may succeed
    /// (a changed payload byte) or fail, but must not panic.
    #[test]
    fn damaged_batches_never_panic(
        records in prop::collection::vec(value(), 1..4),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = encode(&records);
        for (at, byte, op) in edits {
            match op {
                0 if !bytes.is_empty() => { let i = at.index(bytes.len()); bytes[i] = byte; }
                1 => { let i = at.index(bytes.len() + 1); bytes.insert(i, byte); }
                _ if !bytes.is_empty() => { let i = at.index(bytes.len()); bytes.remove(i); }
                _ => {}
            }
        }
        let decoded = decode(&bytes);
        prop_assert_eq!(decoded.is_ok(), codec::validate(&bytes).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    /// Arbitrary bytes (with a valid version byte half the time, so the search gets
    /// past the header): an error or a value, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..64), versioned in any::<bool>()) {
        if versioned && !bytes.is_empty() {
            bytes[0] = VERSION;
        }
        let decoded = decode(&bytes);
        prop_assert_eq!(decoded.is_ok(), codec::validate(&bytes).is_ok());
    }

    /// Bytes drawn mostly from tags and small counts, which builds deep and wide
    /// structures far more often than uniform bytes do.
    #[test]
    fn tag_soup_never_panics(body in prop::collection::vec(prop_oneof![0u8..13, Just(0x80), Just(0xff), any::<u8>()], 0..200)) {
        let mut bytes = vec![VERSION, 1];
        bytes.extend(body);
        let _ = decode(&bytes);
        let _ = codec::validate(&bytes);
    }
}

#[test]
fn pinned_bytes() {
    // ("hi", 1) then -1, 300, None: the format must not change silently and must be
    // the same on every host.
    let records =
        vec![Value::Tuple(vec![Value::Str("hi".into()), Value::Int(1)]), Value::Int(-1), Value::Int(300), Value::None];
    let bytes = encode(&records);
    assert_eq!(
        bytes,
        [VERSION, 4, tag::TUPLE, 2, tag::STR, 2, b'h', b'i', tag::INT, 2, tag::INT, 1, tag::INT, 0xd8, 0x04, tag::NONE]
    );
    let f = encode(&[Value::Float(1.5)]);
    assert_eq!(f, [VERSION, 1, tag::FLOAT, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
    let d = encode(&[Value::Dict(vec![(Value::Bool(true), Value::Bool(false))])]);
    assert_eq!(d, [VERSION, 1, tag::DICT, 1, tag::TRUE, tag::FALSE]);
}

#[test]
fn int_edges_round_trip() {
    let ints: Vec<Value> = [0, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1]
        .into_iter()
        .map(Value::Int)
        .collect();
    let bytes = encode(&ints);
    assert_eq!(decode(&bytes).unwrap(), ints);
    // i64::MIN zigzags to u64::MAX: a full ten-byte varint.
    assert_eq!(encode(&[Value::Int(i64::MIN)]).len(), 2 + 1 + 10);
}

#[test]
fn empty_batch_and_empty_containers() {
    assert_eq!(encode(&[]), [VERSION, 0]);
    assert_eq!(decode(&[VERSION, 0]).unwrap(), vec![]);
    let records = vec![
        Value::Tuple(vec![]),
        Value::List(vec![Value::Dict(vec![]), Value::List(vec![])]),
        Value::Str(String::new()),
    ];
    assert_eq!(decode(&encode(&records)).unwrap(), records);
}

#[test]
fn depth_limit_is_exact() {
    let ok = encode(&[nested(MAX_DEPTH)]);
    assert_eq!(decode(&ok).unwrap(), vec![nested(MAX_DEPTH)]);
    let deep = encode(&[nested(MAX_DEPTH + 1)]);
    assert_eq!(decode(&deep).unwrap_err().kind, DecodeErrorKind::TooDeep);
    // An empty container one level too deep is refused too (the encoder counts it).
    let mut bytes = vec![VERSION, 1];
    bytes.extend(std::iter::repeat_n([tag::LIST, 1], MAX_DEPTH).flatten());
    bytes.extend([tag::TUPLE, 0]);
    assert_eq!(decode(&bytes).unwrap_err().kind, DecodeErrorKind::TooDeep);
    // Sibling containers do not add up: depth is nesting, not count.
    let wide = Value::List((0..200).map(|_| nested(MAX_DEPTH - 1)).collect());
    assert_eq!(decode(&encode(std::slice::from_ref(&wide))).unwrap(), vec![wide]);
}

#[test]
fn very_deep_input_fails_without_stack_overflow() {
    // A million nested list headers: the reader stops at MAX_DEPTH.
    let mut bytes = vec![VERSION, 1];
    bytes.extend(std::iter::repeat_n([tag::LIST, 1], 1_000_000).flatten());
    assert_eq!(decode(&bytes).unwrap_err().kind, DecodeErrorKind::TooDeep);
    assert!(codec::validate(&bytes).is_err());
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    for t in [tag::TUPLE, tag::LIST, tag::DICT, tag::STR, tag::BYTES, tag::BIG_INT, tag::PICKLE] {
        let mut bytes = vec![VERSION, 1, t];
        bytes.extend(max);
        let e = decode(&bytes).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::LengthTooLarge { claimed: u64::MAX, .. }), "tag {t}: {e}");
    }
    // The record count too.
    let mut bytes = vec![VERSION];
    bytes.extend(max);
    assert!(matches!(decode(&bytes).unwrap_err().kind, DecodeErrorKind::LengthTooLarge { .. }));
    // Dict pair count that overflows when doubled.
    let mut bytes = vec![VERSION, 1, tag::DICT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    bytes.extend([0; 4]);
    assert!(matches!(decode(&bytes).unwrap_err().kind, DecodeErrorKind::LengthTooLarge { .. }));
}

#[test]
fn counts_are_bounded_by_the_input_including_owed_values() {
    // Outer list owes 3 values; the inner list claims 3 items but only 4 bytes remain
    // and 2 of them are owed to the outer list's other items.
    let bytes = [VERSION, 1, tag::LIST, 3, tag::LIST, 3, tag::NONE, tag::NONE, tag::NONE, tag::NONE];
    let e = decode(&bytes).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::LengthTooLarge { claimed: 3, available: 2 });
    assert_eq!(e.offset, 6);
    // Nested headers each claiming "everything left" cannot add up to more than the input.
    let mut bytes = vec![VERSION, 1];
    for _ in 0..10 {
        bytes.extend([tag::LIST, 100]);
    }
    bytes.extend([tag::NONE; 120]);
    assert!(matches!(decode(&bytes).unwrap_err().kind, DecodeErrorKind::LengthTooLarge { .. }));
}

#[test]
fn malformed_inputs_give_clear_errors() {
    let cases: Vec<(Vec<u8>, DecodeErrorKind)> = vec![
        (vec![], DecodeErrorKind::Truncated),
        (vec![2, 0], DecodeErrorKind::UnsupportedVersion(2)),
        (vec![VERSION], DecodeErrorKind::Truncated),
        (vec![VERSION, 1, 0x0d], DecodeErrorKind::UnknownTag(0x0d)),
        // A named tuple using class 1 before class 0 is defined.
        (vec![VERSION, 1, tag::NAMED_TUPLE, 1, 0], DecodeErrorKind::UnknownClass(1)),
        (vec![VERSION, 1, tag::NAMED_TUPLE, 0, 2, 0xc3, 0x28, 0], DecodeErrorKind::InvalidUtf8),
        (
            vec![VERSION, 1, tag::NAMED_TUPLE, 0, 9, b'm', b':', b'A', 0],
            DecodeErrorKind::LengthTooLarge { claimed: 9, available: 4 },
        ),
        (vec![VERSION, 1, 0xff], DecodeErrorKind::UnknownTag(0xff)),
        (vec![VERSION, 1, tag::INT], DecodeErrorKind::Truncated),
        (vec![VERSION, 1, tag::INT, 0x80], DecodeErrorKind::Truncated),
        (vec![VERSION, 1, tag::FLOAT, 1, 2, 3], DecodeErrorKind::Truncated),
        (vec![VERSION, 1, tag::STR, 2, 0xc3, 0x28], DecodeErrorKind::InvalidUtf8),
        (vec![VERSION, 1, tag::STR, 3, 0xed, 0xa0, 0x80], DecodeErrorKind::InvalidUtf8), // encoded surrogate
        (vec![VERSION, 1, tag::NONE, tag::NONE], DecodeErrorKind::TrailingBytes(1)),
        (
            vec![VERSION, 1, tag::INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            DecodeErrorKind::VarintTooLong,
        ),
        (
            vec![VERSION, 1, tag::INT, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            DecodeErrorKind::VarintTooLong,
        ),
        (vec![VERSION, 2, tag::NONE], DecodeErrorKind::LengthTooLarge { claimed: 2, available: 1 }),
    ];
    for (bytes, kind) in cases {
        let e = decode(&bytes).unwrap_err();
        assert_eq!(e.kind, kind, "{bytes:?}: {e}");
        assert!(e.to_string().starts_with("corrupt record batch at byte "), "{e}");
    }
    let e = decode(&[VERSION, 1, 0x3f]).unwrap_err();
    assert_eq!(e.to_string(), "corrupt record batch at byte 2: unknown tag 0x3f");
}

#[test]
fn named_tuples_name_their_class_once_per_batch() {
    let a = |i| Value::Named("m:A".into(), vec![Value::Int(i)]);
    let records = [a(1), Value::Named("m:B".into(), vec![]), a(2)];
    let bytes = encode(&records);
    #[rustfmt::skip]
    let expected = [
        VERSION, 3,
        tag::NAMED_TUPLE, 0, 3, b'm', b':', b'A', 1, tag::INT, 2,
        tag::NAMED_TUPLE, 1, 3, b'm', b':', b'B', 0,
        tag::NAMED_TUPLE, 0, 1, tag::INT, 4,
    ];
    assert_eq!(bytes, expected);
    assert_eq!(decode(&bytes).unwrap(), records);
    // Each batch numbers its classes afresh.
    assert_eq!(decode(&encode(&[a(2)])).unwrap(), [a(2)]);
}

#[test]
fn reader_is_spent_after_an_error_and_checks_its_consumer() {
    let mut r = Reader::new(&[VERSION, 2, 0x3f, tag::NONE]).unwrap();
    assert!(r.read().is_err());
    assert!(r.read().is_err(), "a reader must not resume after an error");
    assert!(r.finish().is_err());

    // Reading past the end, or finishing early, is reported.
    let bytes = encode(&[Value::Tuple(vec![Value::None])]);
    let mut r = Reader::new(&bytes).unwrap();
    assert_eq!(r.read().unwrap(), Item::Tuple(1));
    assert_eq!(r.depth(), 1);
    assert!(matches!(r.finish().unwrap_err().kind, DecodeErrorKind::Unfinished { values_owed: 1 }));
    assert_eq!(r.read().unwrap(), Item::None);
    assert_eq!(r.depth(), 0);
    assert_eq!(r.values_owed(), 0);
    r.finish().unwrap();
    assert_eq!(r.read().unwrap_err().kind, DecodeErrorKind::NoValueOwed);
}

#[test]
fn several_batches_share_a_buffer() {
    let mut out = Vec::new();
    let mut w = Writer::begin_batch(&mut out, 1);
    w.str("a");
    let first = out.len();
    let mut w = Writer::begin_batch(&mut out, 2);
    let mark = w.position();
    w.str("dropped");
    w.rewind(mark);
    w.int(5);
    w.bool(true);
    assert_eq!(decode(&out[..first]).unwrap(), vec![Value::Str("a".into())]);
    assert_eq!(decode(&out[first..]).unwrap(), vec![Value::Int(5), Value::Bool(true)]);
}

/// Rough cost of the pure format on the benchmark record shape; run with
/// `cargo test --release -p ferroflow-engine --test codec -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_word_count_records() {
    let words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "ferroflow", "a"];
    let n = 200_000;
    let mut out = Vec::new();
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        out.clear();
        let t = std::time::Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1024) {
            let mut w = Writer::begin_batch(&mut out, chunk.len());
            for &i in chunk {
                w.tuple(2);
                w.str(words[i % words.len()]);
                w.int(1);
            }
        }
        let enc = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let mut pos = 0;
        let mut sum = 0i64;
        while pos < out.len() {
            let mut r = Reader::new(&out[pos..]).unwrap();
            for _ in 0..r.record_count() {
                let Item::Tuple(2) = r.read().unwrap() else { panic!() };
                let Item::Str(s) = r.read().unwrap() else { panic!() };
                let Item::Int(i) = r.read().unwrap() else { panic!() };
                sum += i + s.len() as i64;
            }
            pos += r.position();
        }
        let dec = t.elapsed().as_secs_f64();
        assert!(sum > 0);
        best = (best.0.min(enc), best.1.min(dec));
    }
    println!(
        "pure format, (word, 1): encode {:.1} ns/record, decode {:.1} ns/record, {:.1} bytes/record",
        best.0 * 1e9 / n as f64,
        best.1 * 1e9 / n as f64,
        out.len() as f64 / n as f64
    );
}
