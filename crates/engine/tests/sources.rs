//! Built-in sources end to end: text files (split across workers), integer sequences,
//! and the socket text source.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ferroflow_engine::connectors::sources;
use ferroflow_engine::connectors::text::EncodingErrors;
use ferroflow_engine::connectors::text_file::SPLIT_MIN_BYTES;
use ferroflow_engine::{start, ErrorKind, NodeKind, Plan};

/// Lines "<tag>-<n>" padded so the whole file is just over `min_bytes`.
fn numbered_lines(tag: &str, min_bytes: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut total = 0u64;
    let mut i = 0;
    while total <= min_bytes {
        let line = format!("{tag}-{i:07}-{}", "x".repeat(i % 23));
        total += line.len() as u64 + 1;
        lines.push(line);
        i += 1;
    }
    lines
}

fn text_plan(path: &std::path::Path, out: &Out<String>) -> Plan<String> {
    let mut plan = Plan::new();
    let src = plan.add(
        "text_file",
        vec![],
        NodeKind::Source { factory: sources::text_file(path, EncodingErrors::Strict), parallel: true },
    );
    plan.add("sink", vec![src], NodeKind::Sink(sink(out)));
    plan
}

/// Every element of `want` exactly once, and nothing else.
fn assert_exactly_once(got: Vec<String>, want: &[String], what: &str) {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for w in want {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    for g in &got {
        *counts.entry(g.as_str()).or_default() -= 1;
    }
    let wrong: Vec<_> = counts.iter().filter(|(_, c)| **c != 0).take(10).collect();
    assert!(wrong.is_empty(), "{what}: lines missing (>0) or extra (<0): {wrong:?}");
    assert_eq!(got.len(), want.len(), "{what}");
}

#[test]
fn text_file_large_file_split_across_workers() {
    let dir = TempDir::new("big-file");
    let lines = numbered_lines("big", SPLIT_MIN_BYTES + SPLIT_MIN_BYTES / 8);
    let mut contents = lines.join("\n");
    contents.push('\n');
    let path = dir.write("big.txt", contents.as_bytes());
    assert!(std::fs::metadata(&path).unwrap().len() > SPLIT_MIN_BYTES);
    for workers in [1, 2] {
        let out = new_out();
        let summary = run_ok(text_plan(&path, &out), cfg(workers));
        let per_worker = by_worker(&out);
        assert_exactly_once(values(&out), &lines, &format!("workers={workers}"));
        assert_eq!(summary.counts, vec![lines.len() as u64; 2], "workers={workers}");
        // The sink reads the source's stream in place: with 2 workers, both read a share.
        assert_eq!(per_worker.len(), workers, "workers={workers}: shares {:?}", per_worker.keys());
        // Each share is a contiguous run of the file, in file order.
        let mut joined = Vec::new();
        for (_w, got) in per_worker {
            joined.extend(got);
        }
        assert_eq!(joined, lines, "workers={workers}: worker shares in order make the file");
    }
}

#[test]
fn text_file_directory_skips_hidden_files() {
    let dir = TempDir::new("dir");
    let big = numbered_lines("big", SPLIT_MIN_BYTES + 1000);
    // The last line of the big file has no newline.
    dir.write("b-big.txt", big.join("\n").as_bytes());
    dir.write("a-small.txt", b"small 1\nsmall 2\r\nsmall 3\n");
    dir.write("c-empty.txt", b"");
    dir.write("d-blank-lines.txt", b"\n\nlast");
    dir.write(".hidden", b"hidden line\n");
    dir.write("_SUCCESS", b"marker line\n");
    std::fs::create_dir(dir.path().join("subdir")).unwrap();
    std::fs::write(dir.path().join("subdir").join("nested.txt"), b"nested line\n").unwrap();
    let mut want = big.clone();
    want.extend(strings(&["small 1", "small 2", "small 3", "", "", "last"]));
    for workers in [1, 2] {
        let out = new_out();
        run_ok(text_plan(dir.path(), &out), cfg(workers));
        assert_exactly_once(values(&out), &want, &format!("workers={workers}"));
        if workers == 2 {
            // The big file is split: both workers hold some of its lines.
            let per_worker = by_worker(&out);
            for w in 0..2 {
                assert!(
                    per_worker.get(&w).is_some_and(|l| l.iter().any(|s| s.starts_with("big-"))),
                    "worker {w} read none of the big file"
                );
            }
        }
    }
}

#[test]
fn text_file_missing_path_fails_as_source_error() {
    let dir = TempDir::new("missing");
    let missing = dir.path().join("nope.txt");
    for workers in [1, 2] {
        let out = new_out();
        let err = run_err(text_plan(&missing, &out), cfg(workers));
        assert_eq!(err.kind, ErrorKind::Source, "{err:?}");
        assert_eq!(err.operator.as_deref(), Some("text_file"));
        assert!(err.message.contains(&missing.display().to_string()), "{err:?}");
        assert!(values(&out).is_empty());
    }
}

fn sequence_plan(start: i64, end: i64, out: &Out<V>) -> Plan<V> {
    let mut plan = Plan::new();
    let src = plan.add("sequence", vec![], NodeKind::Source { factory: sources::sequence(start, end), parallel: true });
    plan.add("sink", vec![src], NodeKind::Sink(sink(out)));
    plan
}

#[test]
fn sequence_is_inclusive_and_split_in_contiguous_ranges() {
    for workers in [1, 2] {
        for batch in [1, 7, 1024] {
            let out = new_out();
            let summary = run_ok(sequence_plan(-5, 1000, &out), cfg_batch(workers, batch));
            let want: Vec<V> = (-5..=1000).map(V::I).collect();
            assert_eq!(sorted(&out), want, "workers={workers} batch={batch}");
            assert_eq!(summary.counts, vec![1006, 1006]);
            let per_worker = by_worker(&out);
            if workers == 2 {
                // 1006 numbers: worker 0 gets -5..=497, worker 1 gets 498..=1000, each in order.
                assert_eq!(per_worker[&0], (-5..=497).map(V::I).collect::<Vec<_>>(), "batch={batch}");
                assert_eq!(per_worker[&1], (498..=1000).map(V::I).collect::<Vec<_>>(), "batch={batch}");
            } else {
                assert_eq!(per_worker[&0], want);
            }
        }
    }
}

#[test]
fn sequence_edge_ranges() {
    for workers in [1, 2] {
        let out = new_out();
        run_ok(sequence_plan(7, 7, &out), cfg(workers));
        assert_eq!(values(&out), ints(&[7]), "workers={workers}");
        let out = new_out();
        let summary = run_ok(sequence_plan(5, 4, &out), cfg(workers));
        assert_eq!(values(&out), vec![], "workers={workers}");
        assert_eq!(summary.counts, vec![0, 0]);
        let out = new_out();
        run_ok(sequence_plan(i64::MAX - 2, i64::MAX, &out), cfg(workers));
        assert_eq!(sorted(&out), ints(&[i64::MAX - 2, i64::MAX - 1, i64::MAX]), "workers={workers}");
    }
}

/// A server on 127.0.0.1 that, on its first connection, writes `payload` in `chunks`
/// pieces (with small pauses) and closes.
fn serve_once(payload: Vec<u8>, chunks: usize) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let step = payload.len().div_ceil(chunks.max(1)).max(1);
        for piece in payload.chunks(step) {
            conn.write_all(piece).unwrap();
            conn.flush().unwrap();
            thread::sleep(Duration::from_millis(5));
        }
        let _ = conn.shutdown(Shutdown::Both);
    });
    (port, handle)
}

fn socket_plan(port: u16, out: &Out<String>) -> Plan<String> {
    socket_plan_with(port, out, EncodingErrors::Strict)
}

fn socket_plan_with(port: u16, out: &Out<String>, errors: EncodingErrors) -> Plan<String> {
    let mut plan = Plan::new();
    let src = plan.add(
        "socket_text_stream",
        vec![],
        NodeKind::Source {
            factory: sources::socket_text("127.0.0.1".to_string(), port, b'\n', errors),
            parallel: false,
        },
    );
    plan.add("sink", vec![src], NodeKind::Sink(sink(out)));
    plan
}

#[test]
fn socket_text_reads_until_the_peer_closes() {
    let mut want: Vec<String> = (0..3000).map(|i| format!("line {i}")).collect();
    let mut payload = want.join("\n");
    // A CRLF line, an empty line, and a last line without a newline.
    payload.push_str("\nwindows\r\n\nlast without newline");
    want.extend(strings(&["windows", "", "last without newline"]));
    for workers in [1, 2] {
        let (port, server) = serve_once(payload.clone().into_bytes(), 7);
        let out = new_out();
        let summary = run_ok(socket_plan(port, &out), cfg(workers));
        server.join().unwrap();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(sorted(&out), want_sorted, "workers={workers}");
        assert_eq!(summary.counts, vec![want.len() as u64; 2]);
        if workers == 1 {
            assert_eq!(values(&out), want, "one worker keeps the socket's order");
        } else {
            assert_eq!(by_worker(&out).len(), 2, "the single socket source is spread to both workers");
        }
    }
}

#[test]
fn socket_text_empty_stream_ends() {
    for workers in [1, 2] {
        let (port, server) = serve_once(Vec::new(), 1);
        let out = new_out();
        run_ok(socket_plan(port, &out), cfg(workers));
        server.join().unwrap();
        assert!(values(&out).is_empty());
    }
}

#[test]
fn socket_text_connection_refused_is_a_source_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again here
    for workers in [1, 2] {
        let out = new_out();
        let t = Instant::now();
        let err = run_err(socket_plan(port, &out), cfg(workers));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(err.kind, ErrorKind::Source, "{err:?}");
        assert_eq!(err.operator.as_deref(), Some("socket_text_stream"));
        assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err:?}");
        assert_eq!(err.worker, Some(0), "{err:?}");
    }
}

#[test]
fn socket_text_cancel_while_the_peer_stays_open() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"hello\n").unwrap();
        // Keep the connection open until the test is done.
        let _ = stop_rx.recv_timeout(Duration::from_secs(30));
    });
    let out = new_out();
    let running = start(std::sync::Arc::new(socket_plan(port, &out)), cfg(2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while values(&out).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(values(&out), strings(&["hello"]));
    assert!(!running.finished(), "the job must keep running while the peer is open");
    let t = Instant::now();
    running.control.cancel();
    let err = running.join().expect_err("cancelled");
    assert!(t.elapsed() < Duration::from_secs(2), "cancel took {:?}", t.elapsed());
    assert_eq!(err.kind, ErrorKind::Cancelled);
    stop_tx.send(()).unwrap();
    server.join().unwrap();
}

/// Bytes that are not UTF-8 from a socket fail the job, naming the peer, the line and
/// the byte offset, as they do from a file; replacement is there when asked for.
#[test]
fn socket_text_invalid_utf8_is_an_error_unless_replacement_is_asked_for() {
    let payload = b"ok\nfine\nba\xffd\nafter\n".to_vec();
    for workers in [1, 2] {
        let (port, server) = serve_once(payload.clone(), 1);
        let out = new_out();
        let err = run_err(socket_plan(port, &out), cfg(workers));
        server.join().unwrap();
        assert_eq!(err.kind, ErrorKind::Source, "{err:?}");
        assert_eq!(err.operator.as_deref(), Some("socket_text_stream"));
        assert!(
            err.message.starts_with(&format!("127.0.0.1:{port}: line 3 is not valid UTF-8 (bad byte at offset 10)")),
            "{err:?}"
        );
        assert!(err.message.contains("encoding_errors='replace'"), "{err:?}");
        assert!(!values(&out).iter().any(|l| l.contains('\u{FFFD}')));

        for (errors, want) in [(EncodingErrors::Replace, "ba\u{FFFD}d"), (EncodingErrors::Ignore, "bad")] {
            let (port, server) = serve_once(payload.clone(), 1);
            let out = new_out();
            run_ok(socket_plan_with(port, &out, errors), cfg(workers));
            server.join().unwrap();
            let mut want = strings(&["ok", "fine", want, "after"]);
            want.sort();
            assert_eq!(sorted(&out), want, "workers={workers} {errors:?}");
        }
    }
}

/// With the file split across workers, a bad line in a later worker's range is named
/// by its line in the file and its byte offset.
#[test]
fn text_file_invalid_utf8_names_the_file_line_under_any_split() {
    let dir = TempDir::new("bad-utf8");
    let lines = numbered_lines("ok", SPLIT_MIN_BYTES + SPLIT_MIN_BYTES / 2);
    let bad_line = lines.len() * 9 / 10;
    let mut contents = Vec::new();
    let mut bad_byte = 0;
    for (i, line) in lines.iter().enumerate() {
        if i == bad_line {
            bad_byte = contents.len() + 3;
            contents.extend_from_slice(b"bad\xfe");
        }
        contents.extend_from_slice(line.as_bytes());
        contents.push(b'\n');
    }
    let path = dir.write("big.txt", &contents);
    for workers in [1, 2, 3] {
        let out = new_out();
        let err = run_err(text_plan(&path, &out), cfg(workers));
        assert_eq!(err.kind, ErrorKind::Source, "{err:?}");
        let want =
            format!("{}: line {} is not valid UTF-8 (bad byte at offset {bad_byte})", path.display(), bad_line + 1);
        assert!(err.message.starts_with(&want), "workers={workers}: {err:?}\nwant {want}");
    }
}
