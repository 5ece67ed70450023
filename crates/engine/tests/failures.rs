//! How jobs fail: UDF errors in every kind of operator, factory errors, panics, source
//! and sink errors, and cancellation.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ferroflow_engine::connectors::{sinks, sources};
use ferroflow_engine::functions::{SinkFactory, SourceReader, SourceStatus, TransformFactory, WorkerContext};
use ferroflow_engine::key::key_of;
use ferroflow_engine::process::SharedContext;
use ferroflow_engine::{
    start, ErrorKind, JobError, NodeKind, Plan, Record, UdfError, UdfResult, WindowFunction, WindowSpec,
};

const N: i64 = 200_000;
const BAD: i64 = 123_457;

/// A big parallel sequence of `V::I`, keyed by `x % 10`: (node id of the sequence, of key_by).
fn keyed_sequence(plan: &mut Plan<V>) -> (usize, usize) {
    let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, N), parallel: true });
    let pairs = plan.add("pair", vec![src], NodeKind::Transform(map(|v: V| V::KV(v.int() % 10, v.int()))));
    let keyed = plan.add("key_by", vec![pairs], NodeKind::KeyBy(key_by_k()));
    (src, keyed)
}

fn assert_error(err: &JobError, kind: ErrorKind, operator: &str, record: Option<&str>, message: &str, workers: usize) {
    let what = format!("workers={workers}: {err:?}");
    assert_eq!(err.kind, kind, "{what}");
    assert_eq!(err.operator.as_deref(), Some(operator), "{what}");
    assert_eq!(err.record.as_deref(), record, "{what}");
    assert!(err.message.contains(message), "{what}");
    assert!(err.worker.is_some_and(|w| w < workers), "{what}");
    assert!(err.to_string().contains(message), "{what}: {err}");
}

/// Keys by `x % 7`, raising a KeyError on `BAD`.
fn bad_key_by() -> ferroflow_engine::functions::KeyFactory<V> {
    try_key_by(|v: &V| {
        if v.int() == BAD {
            Err(udf_err("KeyError: bad key", v))
        } else {
            Ok((key_of(&(v.int() % 7)), V::I(v.int() % 7)))
        }
    })
}

#[test]
fn key_selector_error() {
    for workers in [1, 2] {
        let out = new_out();
        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, N), parallel: true });
        let keyed = plan.add("key_by 'bad key'", vec![src], NodeKind::KeyBy(bad_key_by()));
        plan.add("sink", vec![keyed], NodeKind::Sink(sink(&out)));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "key_by 'bad key'", Some("I(123457)"), "KeyError: bad key", workers);
        // The bad record is on the second half of the sequence: worker 1 reads it.
        assert_eq!(err.worker, Some(workers - 1));
        assert!(values(&out).len() < (N + 1) as usize, "the job stops early");
    }
}

/// A key selector read by a reduce (on one worker, keyed inside the reduce operator)
/// fails in its own name, whether it raises on a record or in its factory.
#[test]
fn key_selector_errors_before_a_reduce() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, N), parallel: true });
        let keyed = plan.add("key_by 'bad key'", vec![src], NodeKind::KeyBy(bad_key_by()));
        let red =
            plan.add("reduce 'sum'", vec![keyed], NodeKind::Reduce(reducer(|a: &V, b: &V| V::I(a.int() + b.int()))));
        plan.add("sink", vec![red], NodeKind::Sink(sink(&new_out())));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "key_by 'bad key'", Some("I(123457)"), "KeyError: bad key", workers);

        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 10), parallel: true });
        let k = plan.add("key_by 'k'", vec![src], NodeKind::KeyBy(failing_factory("key open failed")));
        let red = plan.add("reduce 'r'", vec![k], NodeKind::Reduce(reducer(|a: &V, _b: &V| a.clone())));
        plan.add("sink", vec![red], NodeKind::Sink(sink(&new_out())));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "key_by 'k'", None, "key open failed", workers);
    }
}

#[test]
fn reduce_error() {
    for workers in [1, 2] {
        let out = new_out();
        let mut plan = Plan::new();
        let (_, keyed) = keyed_sequence(&mut plan);
        let red = plan.add(
            "reduce 'sum'",
            vec![keyed],
            NodeKind::Reduce(try_reducer(|a: &V, b: &V| {
                let ((k, x), (_, y)) = (a.kv(), b.kv());
                if y == BAD {
                    Err(udf_err("OverflowError: too big", b))
                } else {
                    Ok(V::KV(k, x + y))
                }
            })),
        );
        plan.add("sink", vec![red], NodeKind::Sink(sink(&out)));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "reduce 'sum'", Some("KV(7, 123457)"), "OverflowError: too big", workers);
        // The key's owner ran the reduce.
        assert_eq!(err.worker, Some((key_of(&7i64).hash() % workers as u64) as usize));
    }
}

#[test]
fn window_apply_error() {
    for workers in [1, 2] {
        for spec in [WindowSpec::Count { size: 4, slide: 4 }, WindowSpec::ProcessingTime { size_ms: 10, slide_ms: 10 }]
        {
            let out = new_out();
            let mut plan = Plan::new();
            let (_, keyed) = keyed_sequence(&mut plan);
            let win = plan.add(
                "apply 'w'",
                vec![keyed],
                NodeKind::Window {
                    spec,
                    function: WindowFunction::Apply(try_apply(|key: &V, _w, values: Vec<V>| {
                        if values.iter().any(|v| v.kv().1 == BAD) {
                            Err(UdfError::new("ZeroDivisionError: in window").with_record(key.describe()))
                        } else {
                            Ok(vec![V::I(values.len() as i64)])
                        }
                    })),
                },
            );
            plan.add("sink", vec![win], NodeKind::Sink(sink(&out)));
            let err = run_err(plan, cfg(workers));
            assert_error(&err, ErrorKind::Udf, "apply 'w'", Some("I(7)"), "ZeroDivisionError: in window", workers);
        }
    }
}

#[test]
fn window_reduce_error() {
    for workers in [1, 2] {
        let out = new_out();
        let mut plan = Plan::new();
        let (_, keyed) = keyed_sequence(&mut plan);
        let win = plan.add(
            "window reduce",
            vec![keyed],
            NodeKind::Window {
                spec: WindowSpec::Count { size: 3, slide: 1 },
                function: WindowFunction::Reduce(try_reducer(|a: &V, b: &V| {
                    if b.kv().1 == BAD {
                        Err(udf_err("ValueError: window reduce", b))
                    } else {
                        Ok(V::KV(a.kv().0, a.kv().1 + b.kv().1))
                    }
                })),
            },
        );
        plan.add("sink", vec![win], NodeKind::Sink(sink(&out)));
        let err = run_err(plan, cfg(workers));
        assert_error(
            &err,
            ErrorKind::Udf,
            "window reduce",
            Some("KV(7, 123457)"),
            "ValueError: window reduce",
            workers,
        );
    }
}

#[test]
fn transform_error_in_the_middle_of_a_chain() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, N), parallel: true });
        let a = plan.add("map 'a'", vec![src], NodeKind::Transform(map(|v: V| v)));
        let b = plan.add(
            "map 'b'",
            vec![a],
            NodeKind::Transform(try_map(
                |v: V| if v.int() == BAD { Err(udf_err("TypeError: b", &v)) } else { Ok(Some(v)) },
            )),
        );
        let c = plan.add("map 'c'", vec![b], NodeKind::Transform(map(|v: V| v)));
        plan.add("sink", vec![c], NodeKind::Sink(sink(&new_out())));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "map 'b'", Some("I(123457)"), "TypeError: b", workers);
    }
}

fn failing_sink(fail_on_write: bool) -> SinkFactory<V> {
    struct S(bool);
    impl ferroflow_engine::functions::Sink<V> for S {
        fn write(&mut self, batch: &mut Vec<V>) -> UdfResult<()> {
            if self.0 {
                if let Some(v) = batch.iter().find(|v| v.int() == BAD) {
                    return Err(udf_err("IOError: disk full", v));
                }
            }
            batch.clear();
            Ok(())
        }

        fn close(&mut self) -> UdfResult<()> {
            if self.0 {
                Ok(())
            } else {
                Err(UdfError::new("IOError: cannot flush"))
            }
        }
    }
    Arc::new(
        move |_ctx: &WorkerContext| Ok(Box::new(S(fail_on_write)) as Box<dyn ferroflow_engine::functions::Sink<V>>),
    )
}

#[test]
fn sink_write_and_close_errors() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, N), parallel: true });
        plan.add("sink 'db'", vec![src], NodeKind::Sink(failing_sink(true)));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Sink, "sink 'db'", Some("I(123457)"), "IOError: disk full", workers);

        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 100), parallel: true });
        plan.add("sink 'db'", vec![src], NodeKind::Sink(failing_sink(false)));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Sink, "sink 'db'", None, "IOError: cannot flush", workers);
    }
}

/// Emits `good` records, then fails.
struct FailingReader {
    left: i64,
}

impl SourceReader<V> for FailingReader {
    fn poll(&mut self, max: usize, out: &mut Vec<V>) -> UdfResult<SourceStatus> {
        if self.left == 0 {
            return Err(UdfError::new("ConnectionResetError: peer went away"));
        }
        let n = self.left.min(max as i64);
        out.extend((0..n).map(V::I));
        self.left -= n;
        Ok(SourceStatus::More)
    }
}

#[test]
fn source_poll_error() {
    for workers in [1, 2] {
        for parallel in [false, true] {
            let out = new_out();
            let mut plan = Plan::new();
            let src = plan.add(
                "source 'feed'",
                vec![],
                NodeKind::Source { factory: reader_source(|_ctx| Ok(FailingReader { left: 100 })), parallel },
            );
            plan.add("sink", vec![src], NodeKind::Sink(sink(&out)));
            let err = run_err(plan, cfg(workers));
            assert_error(
                &err,
                ErrorKind::Source,
                "source 'feed'",
                None,
                "ConnectionResetError: peer went away",
                workers,
            );
            assert!(err.to_string().starts_with("source 'feed' could not read its input"), "{err}");
        }
    }
}

fn failing_factory<T: ?Sized>(message: &'static str) -> Arc<dyn Fn(&WorkerContext) -> UdfResult<Box<T>> + Send + Sync> {
    Arc::new(move |ctx: &WorkerContext| Err(UdfError::new(format!("{message} on worker {}", ctx.index))))
}

#[test]
fn factory_errors() {
    for workers in [1, 2] {
        // Source factory: a source error.
        let mut plan: Plan<V> = Plan::new();
        let src = plan.add(
            "source 'open'",
            vec![],
            NodeKind::Source { factory: failing_factory("cannot open"), parallel: true },
        );
        plan.add("sink", vec![src], NodeKind::Sink(sink(&new_out())));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Source, "source 'open'", None, "cannot open", workers);

        // Step, key selector, reduce and window factories: user code raising in open().
        let step: TransformFactory<V> = failing_factory("map open failed");
        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 10), parallel: true });
        let m = plan.add("map 'm'", vec![src], NodeKind::Transform(step));
        plan.add("sink", vec![m], NodeKind::Sink(sink(&new_out())));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "map 'm'", None, "map open failed", workers);

        let mut plan: Plan<V> = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 10), parallel: true });
        let k = plan.add("key_by 'k'", vec![src], NodeKind::KeyBy(failing_factory("key open failed")));
        plan.add("sink", vec![k], NodeKind::Sink(sink(&new_out())));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "key_by 'k'", None, "key open failed", workers);

        let mut plan = Plan::new();
        let (_, keyed) = keyed_sequence(&mut plan);
        let r = plan.add("reduce 'r'", vec![keyed], NodeKind::Reduce(failing_factory("reduce open failed")));
        plan.add("sink", vec![r], NodeKind::Sink(sink(&new_out())));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "reduce 'r'", None, "reduce open failed", workers);

        let mut plan = Plan::new();
        let (_, keyed) = keyed_sequence(&mut plan);
        let w = plan.add(
            "window 'w'",
            vec![keyed],
            NodeKind::Window {
                spec: WindowSpec::Count { size: 2, slide: 2 },
                function: WindowFunction::Apply(Arc::new(|ctx: &WorkerContext, _: &SharedContext<V>| {
                    Err(UdfError::new(format!("apply open failed on worker {}", ctx.index)))
                })),
            },
        );
        plan.add("sink", vec![w], NodeKind::Sink(sink(&new_out())));
        let err = run_err(plan, cfg(workers));
        assert_error(&err, ErrorKind::Udf, "window 'w'", None, "apply open failed", workers);

        // A user sink raising in open().
        let mut plan: Plan<V> = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 10), parallel: true });
        plan.add("sink 's'", vec![src], NodeKind::Sink(failing_factory("sink open failed")));
        let err = run_err(plan, cfg(workers));
        assert_eq!(err.operator.as_deref(), Some("sink 's'"));
        assert!(matches!(err.kind, ErrorKind::Udf | ErrorKind::Sink), "{err:?}");
        assert!(err.message.contains("sink open failed"));
    }
}

/// The built-in sinks are engine code: when they cannot open their output, that is a
/// sink error ("could not write its output"), as a refused socket source is a source
/// error, not "raised an exception".
#[test]
fn builtin_sink_that_cannot_open_is_a_sink_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let encode: sinks::Encode<V> = Arc::new(|batch: &[V], buf: &mut Vec<u8>| {
        for v in batch {
            buf.extend(format!("{v:?}\n").bytes());
        }
        Ok(())
    });
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 10), parallel: true });
        plan.add("socket sink", vec![src], NodeKind::Sink(sinks::socket("127.0.0.1".into(), port, encode.clone())));
        let err = run_err(plan, cfg(workers));
        assert_eq!(err.operator.as_deref(), Some("socket sink"));
        assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err:?}");
        assert_eq!(err.kind, ErrorKind::Sink, "workers={workers}: {err}");
    }
    let dir = TempDir::new("sink-exists");
    let target = dir.write("out.txt", b"keep me\n");
    let mut plan = Plan::new();
    let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, 10), parallel: true });
    plan.add("file sink", vec![src], NodeKind::Sink(sinks::text_file(target.clone(), false, encode.clone())));
    let err = run_err(plan, cfg(1));
    assert_eq!(err.operator.as_deref(), Some("file sink"));
    assert!(err.message.contains("already exists"), "{err:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me\n");
    assert_eq!(err.kind, ErrorKind::Sink, "{err}");
}

#[test]
fn builtin_file_sink_writes_one_file_per_worker() {
    let encode: sinks::Encode<V> = Arc::new(|batch: &[V], buf: &mut Vec<u8>| {
        for v in batch {
            buf.extend(format!("{}\n", v.int()).bytes());
        }
        Ok(())
    });
    for workers in [1, 2] {
        let dir = TempDir::new("file-sink");
        let target = dir.path().join("out");
        let mut plan = Plan::new();
        let src =
            plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(1, 1000), parallel: true });
        plan.add("file sink", vec![src], NodeKind::Sink(sinks::text_file(target.clone(), false, encode.clone())));
        run_ok(plan, cfg(workers));
        let text = if workers == 1 {
            std::fs::read_to_string(&target).unwrap()
        } else {
            let a = std::fs::read_to_string(target.join("1")).unwrap();
            let b = std::fs::read_to_string(target.join("2")).unwrap();
            assert!(!a.is_empty() && !b.is_empty());
            a + &b
        };
        let got: Vec<i64> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(got, (1..=1000).collect::<Vec<_>>(), "workers={workers}");
    }
}

#[test]
fn a_panic_in_user_code_is_an_internal_error() {
    for workers in [1, 2] {
        for place in ["map", "reduce", "sink", "source"] {
            let mut plan = Plan::new();
            let src = if place == "source" {
                plan.add(
                    "source",
                    vec![],
                    NodeKind::Source { factory: reader_source(|_ctx| Ok(PanickingReader(0))), parallel: true },
                )
            } else {
                plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, N), parallel: true })
            };
            let m = plan.add(
                "map",
                vec![src],
                NodeKind::Transform(map(move |v: V| {
                    if place == "map" && v.int() == BAD {
                        panic!("user bug in map");
                    }
                    V::KV(v.int() % 5, v.int())
                })),
            );
            let keyed = plan.add("key_by", vec![m], NodeKind::KeyBy(key_by_k()));
            let r = plan.add(
                "reduce",
                vec![keyed],
                NodeKind::Reduce(reducer(move |a: &V, b: &V| {
                    if place == "reduce" && b.kv().1 == BAD {
                        panic!("user bug in reduce");
                    }
                    V::KV(a.kv().0, b.kv().1)
                })),
            );
            plan.add(
                "sink",
                vec![r],
                NodeKind::Sink(Arc::new(move |_ctx: &WorkerContext| {
                    Ok(Box::new(ferroflow_engine::functions::closures::SinkFn(move |batch: &mut Vec<V>| {
                        if place == "sink" && batch.iter().any(|v| v.kv().1 == BAD) {
                            panic!("user bug in sink");
                        }
                        batch.clear();
                        Ok(())
                    })) as Box<dyn ferroflow_engine::functions::Sink<V>>)
                })),
            );
            let t = Instant::now();
            let err = run_err(plan, cfg(workers));
            assert!(t.elapsed() < Duration::from_secs(10));
            assert_eq!(err.kind, ErrorKind::Internal, "workers={workers} place={place}: {err:?}");
            assert!(err.message.contains(&format!("user bug in {place}")), "workers={workers} place={place}: {err:?}");
            assert!(err.worker.is_some_and(|w| w < workers), "{err:?}");
        }
    }
}

struct PanickingReader(u32);

impl SourceReader<V> for PanickingReader {
    fn poll(&mut self, _max: usize, out: &mut Vec<V>) -> UdfResult<SourceStatus> {
        self.0 += 1;
        if self.0 > 3 {
            panic!("user bug in source");
        }
        out.push(V::I(i64::from(self.0)));
        Ok(SourceStatus::More)
    }
}

/// Never ends; remembers whether it was cancelled and how many polls it served.
struct Endless {
    polls: Arc<AtomicU64>,
    cancelled: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

impl SourceReader<V> for Endless {
    fn poll(&mut self, max: usize, out: &mut Vec<V>) -> UdfResult<SourceStatus> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        out.extend((0..max.min(64) as i64).map(V::I));
        Ok(SourceStatus::More)
    }

    fn cancel(&mut self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

struct EndlessProbe {
    polls: Arc<AtomicU64>,
    cancelled: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

fn endless_plan(parallel: bool) -> (Plan<V>, EndlessProbe, Out<V>) {
    let probe = EndlessProbe {
        polls: Arc::new(AtomicU64::new(0)),
        cancelled: Arc::new(AtomicBool::new(false)),
        dropped: Arc::new(AtomicBool::new(false)),
    };
    let (p, c, d) = (probe.polls.clone(), probe.cancelled.clone(), probe.dropped.clone());
    let out = new_out();
    let mut plan = Plan::new();
    let src = plan.add(
        "endless",
        vec![],
        NodeKind::Source {
            factory: reader_source(move |_ctx| {
                Ok(Endless { polls: p.clone(), cancelled: c.clone(), dropped: d.clone() })
            }),
            parallel,
        },
    );
    let keyed =
        plan.add("key_by", vec![src], NodeKind::KeyBy(key_by(|v: &V| (key_of(&(v.int() % 3)), V::I(v.int() % 3)))));
    let counted = plan.add("count", vec![keyed], NodeKind::Transform(map(|v: V| v)));
    // Keep the sink's memory small: remember only the first records.
    let o = out.clone();
    let seen = Arc::new(Mutex::new(0u64));
    plan.add(
        "sink",
        vec![counted],
        NodeKind::Sink(Arc::new(move |ctx: &WorkerContext| {
            let (o, seen, index) = (o.clone(), seen.clone(), ctx.index);
            Ok(Box::new(ferroflow_engine::functions::closures::SinkFn(move |batch: &mut Vec<V>| {
                let mut n = seen.lock().unwrap();
                if *n < 100 {
                    o.lock().unwrap().extend(batch.iter().take(10).map(|v| (index, v.clone())));
                }
                *n += batch.len() as u64;
                batch.clear();
                Ok(())
            })) as Box<dyn ferroflow_engine::functions::Sink<V>>)
        })),
    );
    (plan, probe, out)
}

#[test]
fn cancel_stops_an_endless_job_promptly() {
    for workers in [1, 2] {
        for parallel in [false, true] {
            let (plan, probe, out) = endless_plan(parallel);
            let running = start(Arc::new(plan), cfg(workers)).unwrap();
            let control = running.control.clone();
            let deadline = Instant::now() + Duration::from_secs(10);
            while values(&out).is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
            assert!(!values(&out).is_empty(), "the job produced nothing");
            assert!(!running.finished());
            let canceller = thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                control.cancel();
                Instant::now()
            });
            let cancelled_at = canceller.join().unwrap();
            let err = running.join().expect_err("cancelled");
            let latency = cancelled_at.elapsed();
            assert_eq!(err.kind, ErrorKind::Cancelled, "workers={workers} parallel={parallel}: {err:?}");
            assert_eq!(err.to_string(), "the job was cancelled");
            assert!(latency < Duration::from_secs(1), "workers={workers}: join took {latency:?} after cancel");
            assert!(probe.polls.load(Ordering::SeqCst) > 0);
            // The readers were let go of.
            assert!(probe.dropped.load(Ordering::SeqCst), "workers={workers} parallel={parallel}: reader not dropped");
            // No poll after the job was joined.
            let polls = probe.polls.load(Ordering::SeqCst);
            thread::sleep(Duration::from_millis(30));
            assert_eq!(probe.polls.load(Ordering::SeqCst), polls);
        }
    }
}

/// `SourceReader::cancel`: "The job is stopping early: let go of any thread or
/// connection." A cancelled job should call it on every running reader.
#[test]
fn cancel_calls_source_reader_cancel() {
    let mut missed = Vec::new();
    for round in 0..10 {
        for workers in [1, 2] {
            let (plan, probe, out) = endless_plan(true);
            let running = start(Arc::new(plan), cfg(workers)).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while values(&out).is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            running.control.cancel();
            let err = running.join().expect_err("cancelled");
            assert_eq!(err.kind, ErrorKind::Cancelled);
            if !probe.cancelled.load(Ordering::SeqCst) {
                missed.push((round, workers));
            }
        }
    }
    assert!(
        missed.is_empty(),
        "SourceReader::cancel was not called in (round, workers) {missed:?} of 10 rounds x [1, 2]"
    );
}

#[test]
fn the_first_error_wins_and_cancel_after_failure_keeps_it() {
    for workers in [1, 2] {
        let mut plan = Plan::new();
        let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(0, N), parallel: true });
        let m = plan.add(
            "map 'first'",
            vec![src],
            NodeKind::Transform(try_map(|v: V| if v.int() == 10 { Err(udf_err("first", &v)) } else { Ok(Some(v)) })),
        );
        plan.add("sink", vec![m], NodeKind::Sink(sink(&new_out())));
        let running = start(Arc::new(plan), cfg(workers)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !running.finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        running.control.cancel();
        let err = running.join().expect_err("failed");
        assert_eq!(err.kind, ErrorKind::Udf, "{err:?}");
        assert_eq!(err.operator.as_deref(), Some("map 'first'"));
        assert_eq!(err.record.as_deref(), Some("I(10)"));
        assert_eq!(err.worker, Some(0));
    }
}
