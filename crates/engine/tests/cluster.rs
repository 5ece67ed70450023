//! Multi-process start-up (`ferroflow_engine::cluster`), with processes simulated by
//! threads of this test process (and, for the SIGKILL test, a real child process), all on
//! 127.0.0.1.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ferroflow_engine::cluster::{self, ClusterConfig, ClusterError, Network, MIN_SECRET_BYTES, SECRET_ENV};
use timely::communication::WorkerGuards;
use timely::dataflow::operators::{Exchange, Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;
use timely::WorkerConfig;

const SECRET: &[u8] = b"the-shared-secret-of-these-tests";

/// Listeners on free 127.0.0.1 ports, and their addresses.
fn bind_local(n: usize) -> (Vec<TcpListener>, Vec<String>) {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addresses = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
    (listeners, addresses)
}

/// An address nobody listens on (bound, then released).
fn dead_address() -> String {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

fn config(process: usize, addresses: &[String]) -> ClusterConfig {
    ClusterConfig::new(process, addresses.to_vec(), SECRET.to_vec()).connect_timeout(Duration::from_secs(5))
}

type Connected = Result<Vec<Option<TcpStream>>, ClusterError>;

fn spawn_connect(config: ClusterConfig, listener: Option<TcpListener>) -> thread::JoinHandle<Connected> {
    thread::spawn(move || cluster::connect_with(&config, listener, &AtomicBool::new(false)))
}

/// Runs `f` on a thread and fails the test if it takes longer than `limit` (so a hang is
/// a failure, not a stuck test run).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            handle.join().unwrap();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!(),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: still running after {limit:?}"),
    }
}

/// Connects `n` processes (threads) and checks every pair can exchange bytes both ways.
fn connect_and_exchange(n: usize) {
    let (listeners, addresses) = bind_local(n);
    let handles: Vec<_> =
        listeners.into_iter().enumerate().map(|(p, l)| spawn_connect(config(p, &addresses), Some(l))).collect();
    let all: Vec<Vec<Option<TcpStream>>> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
    for (p, sockets) in all.iter().enumerate() {
        assert_eq!(sockets.len(), n);
        for (q, socket) in sockets.iter().enumerate() {
            assert_eq!(socket.is_none(), p == q, "process {p}, slot {q}");
            if let Some(s) = socket {
                assert!(s.nodelay().unwrap());
                assert_eq!(s.read_timeout().unwrap(), None);
                assert_eq!(s.write_timeout().unwrap(), None);
            }
        }
    }
    for (p, sockets) in all.iter().enumerate() {
        for (q, socket) in sockets.iter().enumerate().filter(|(q, _)| *q != p) {
            (&mut socket.as_ref().unwrap()).write_all(format!("{p}->{q}").as_bytes()).unwrap();
        }
    }
    for (q, sockets) in all.iter().enumerate() {
        for (p, socket) in sockets.iter().enumerate().filter(|(p, _)| *p != q) {
            let mut buf = [0u8; 4];
            (&mut socket.as_ref().unwrap()).read_exact(&mut buf).unwrap();
            assert_eq!(std::str::from_utf8(&buf).unwrap(), format!("{p}->{q}"), "what process {q} got from {p}");
        }
    }
}

#[test]
fn two_processes_connect_and_exchange_bytes() {
    within(Duration::from_secs(10), || connect_and_exchange(2));
}

#[test]
fn three_processes_connect_and_exchange_bytes_on_every_pair() {
    within(Duration::from_secs(10), || connect_and_exchange(3));
}

#[test]
fn one_process_needs_no_network() {
    let config = ClusterConfig::new(0, vec!["127.0.0.1:1".into()], Vec::new());
    assert_eq!(cluster::connect(&config, &AtomicBool::new(false)).unwrap().len(), 1);
}

#[test]
fn a_wrong_secret_is_refused_and_the_real_peer_still_gets_in() {
    within(Duration::from_secs(10), || {
        let (mut listeners, addresses) = bind_local(2);
        let process0 = spawn_connect(config(0, &addresses), Some(listeners.remove(0)));

        let mut intruder = config(1, &addresses);
        intruder.secret = b"not-the-secret-of-these-tests!!!".to_vec();
        let refused = cluster::connect_with(&intruder, None, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(refused, ClusterError::Auth { process: 0, .. }), "{refused:?}");
        let message = refused.to_string();
        assert!(message.contains("failed authentication") && message.contains(&addresses[0]), "{message}");

        let started = Instant::now();
        let peer = cluster::connect_with(&config(1, &addresses), None, &AtomicBool::new(false)).unwrap();
        assert!(peer[0].is_some());
        assert!(process0.join().unwrap().unwrap()[1].is_some());
        assert!(started.elapsed() < Duration::from_secs(2));
    });
}

#[test]
fn refused_intruders_are_named_when_the_real_peer_never_comes() {
    within(Duration::from_secs(10), || {
        let (mut listeners, addresses) = bind_local(2);
        let timeout = Duration::from_millis(800);
        let process0 = spawn_connect(config(0, &addresses).connect_timeout(timeout), Some(listeners.remove(0)));
        let mut intruder = config(1, &addresses);
        intruder.secret = b"not-the-secret-of-these-tests!!!".to_vec();
        assert!(cluster::connect_with(&intruder, None, &AtomicBool::new(false)).is_err());
        let error = process0.join().unwrap().unwrap_err();
        match &error {
            ClusterError::Timeout { missing, refused, .. } => {
                assert_eq!(missing.len(), 1);
                assert_eq!(missing[0].process, 1);
                assert_eq!(refused.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("failed authentication"), "{error}");
    });
}

#[test]
fn strangers_do_not_hold_up_the_real_peer() {
    within(Duration::from_secs(10), || {
        let (mut listeners, addresses) = bind_local(2);
        let process0 = spawn_connect(config(0, &addresses), Some(listeners.remove(0)));
        // One says nothing, one speaks another protocol, one hangs up at once.
        let _silent = TcpStream::connect(&addresses[0]).unwrap();
        let mut http = TcpStream::connect(&addresses[0]).unwrap();
        http.write_all(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".as_slice(), &[b' '; 80]].concat()).unwrap();
        drop(TcpStream::connect(&addresses[0]).unwrap());
        thread::sleep(Duration::from_millis(50));

        let started = Instant::now();
        cluster::connect_with(&config(1, &addresses), None, &AtomicBool::new(false)).unwrap();
        process0.join().unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        let mut answer = Vec::new();
        let _ = http.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = http.read_to_end(&mut answer);
        assert!(answer.is_empty(), "a stranger got an answer: {answer:?}");
    });
}

#[test]
fn a_peer_that_never_starts_times_out_naming_it() {
    within(Duration::from_secs(10), || {
        let timeout = Duration::from_millis(500);
        // Process 0 waits for process 1 to dial in; process 1 (another cluster) dials a process 0 that is not there.
        let (mut listeners, addresses) = bind_local(2);
        let waiting = spawn_connect(config(0, &addresses).connect_timeout(timeout), Some(listeners.remove(0)));
        let lonely = vec![dead_address(), "127.0.0.1:2".to_string()];
        let dialling = spawn_connect(config(1, &lonely).connect_timeout(timeout), None);
        let started = Instant::now();

        let error = waiting.join().unwrap().unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed >= timeout && elapsed < timeout + Duration::from_millis(500), "{elapsed:?}");
        assert!(matches!(&error, ClusterError::Timeout { missing, .. } if missing[0].process == 1));
        assert_eq!(
            error.to_string(),
            format!(
                "process 1 at {} never connected within 0.5 s: is it running, with the same --addresses?",
                addresses[1]
            )
        );
        eprintln!("listener side: {error}");

        let error = dialling.join().unwrap().unwrap_err();
        assert!(started.elapsed() < timeout + Duration::from_millis(500));
        let message = error.to_string();
        assert!(message.starts_with(&format!("process 0 at {} never connected within 0.5 s", lonely[0])), "{message}");
        assert!(message.contains("refused"), "{message}");
        eprintln!("dialling side: {message}");
    });
}

#[test]
fn cancel_aborts_the_wait_promptly() {
    within(Duration::from_secs(10), || {
        let (mut listeners, addresses) = bind_local(2);
        let cancel = Arc::new(AtomicBool::new(false));
        let waiters: Vec<_> = [
            (config(0, &addresses), Some(listeners.remove(0))),
            (config(1, &[dead_address(), "127.0.0.1:2".into()]), None),
        ]
        .into_iter()
        .map(|(config, listener)| {
            let cancel = cancel.clone();
            let config = config.connect_timeout(Duration::from_secs(30));
            thread::spawn(move || cluster::connect_with(&config, listener, &cancel))
        })
        .collect();
        thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        cancel.store(true, Ordering::SeqCst);
        for waiter in waiters {
            let error = waiter.join().unwrap().unwrap_err();
            assert!(matches!(error, ClusterError::Cancelled { .. }), "{error:?}");
            assert!(error.to_string().starts_with("cancelled while waiting for process"), "{error}");
        }
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
    });
}

#[test]
fn processes_running_different_jobs_refuse_each_other() {
    within(Duration::from_secs(10), || {
        let (mut listeners, addresses) = bind_local(2);
        let process0 = spawn_connect(config(0, &addresses).fingerprint(0xaaaa), Some(listeners.remove(0)));
        let process1 = spawn_connect(config(1, &addresses).fingerprint(0xbbbb), None);
        let (e0, e1) = (process0.join().unwrap().unwrap_err(), process1.join().unwrap().unwrap_err());
        assert!(matches!(e0, ClusterError::JobMismatch { process: 1, ours: 0xaaaa, theirs: 0xbbbb, .. }), "{e0:?}");
        assert!(matches!(e1, ClusterError::JobMismatch { process: 0, ours: 0xbbbb, theirs: 0xaaaa, .. }), "{e1:?}");
        assert!(e0.to_string().starts_with(&format!("process 1 at {} runs a different job", addresses[1])), "{e0}");
        eprintln!("{e1}");
    });
}

#[test]
fn different_worker_counts_refuse_each_other() {
    within(Duration::from_secs(10), || {
        let (mut listeners, addresses) = bind_local(2);
        let process0 = spawn_connect(config(0, &addresses).threads(2), Some(listeners.remove(0)));
        let process1 = spawn_connect(config(1, &addresses), None);
        for error in [process0.join().unwrap().unwrap_err(), process1.join().unwrap().unwrap_err()] {
            assert!(error.to_string().contains("worker threads"), "{error}");
        }
    });
}

#[test]
fn a_process_id_given_twice_is_refused_and_the_missing_one_named() {
    within(Duration::from_secs(10), || {
        let (mut listeners, addresses) = bind_local(3);
        let timeout = Duration::from_millis(700);
        let process0 = spawn_connect(config(0, &addresses).connect_timeout(timeout), Some(listeners.remove(0)));
        let first = spawn_connect(config(1, &addresses).connect_timeout(timeout), Some(listeners.remove(0)));
        thread::sleep(Duration::from_millis(100));
        // (On one machine, the second would fail to bind process 1's address: give it its own.)
        let own = TcpListener::bind("127.0.0.1:0").unwrap();
        let second = spawn_connect(config(1, &addresses).connect_timeout(timeout), Some(own));
        let e0 = process0.join().unwrap().unwrap_err();
        assert!(e0.to_string().starts_with(&format!("process 2 at {} never connected", addresses[2])), "{e0}");
        let (first, second) = (first.join().unwrap().unwrap_err(), second.join().unwrap().unwrap_err());
        assert!(second.to_string().contains("was --process-id 1 given to two processes?"), "{second}");
        assert!(first.to_string().contains("process 2"), "{first}");
    });
}

#[test]
fn when_two_processes_cannot_meet_no_process_starts() {
    within(Duration::from_secs(10), || {
        // Process 2 has a wrong address for process 1: 0 meets both, but 1 and 2 never meet.
        let (listeners, addresses) = bind_local(3);
        let mut wrong = addresses.clone();
        wrong[1] = dead_address();
        let timeout = Duration::from_millis(600);
        let handles: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(p, l)| {
                let list = if p == 2 { &wrong } else { &addresses };
                spawn_connect(config(p, list).connect_timeout(timeout), Some(l))
            })
            .collect();
        let errors: Vec<ClusterError> = handles.into_iter().map(|h| h.join().unwrap().unwrap_err()).collect();
        for e in &errors {
            eprintln!("{e}");
        }
        assert!(matches!(&errors[1], ClusterError::Timeout { missing, .. } if missing[0].process == 2));
        assert!(matches!(&errors[2], ClusterError::Timeout { missing, .. } if missing[0].process == 1));
        // Process 0 was connected to both, yet does not start: it reports the first failure it heard of.
        match &errors[0] {
            ClusterError::PeerFailed { process, message } => {
                assert!(*process == 1 || *process == 2);
                assert!(message.contains("never connected within 0.6 s"), "{message}");
                assert!(errors[0].to_string().starts_with("the cluster did not start: process"), "{}", errors[0]);
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_taken_address_is_a_clear_bind_error() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addresses = vec![holder.local_addr().unwrap().to_string(), dead_address()];
    let error = cluster::connect(&config(0, &addresses), &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(&error, ClusterError::Bind { process: 0, .. }), "{error:?}");
    assert!(error.to_string().contains("already in use"), "{error}");
    let not_here = ClusterError::Bind {
        process: 1,
        address: "10.9.8.7:2101".into(),
        source: std::io::Error::from(std::io::ErrorKind::AddrNotAvailable),
    };
    assert_eq!(
        not_here.to_string(),
        "cannot listen on 10.9.8.7:2101 (the address of process 1): it is not an address of this machine: \
         check --process-id 1 and --addresses"
    );
}

#[test]
fn bad_configurations_are_refused_before_any_network() {
    let addresses = vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
    let cancel = AtomicBool::new(false);
    let out_of_range = cluster::connect(&config(2, &addresses), &cancel).unwrap_err();
    assert!(out_of_range.to_string().contains("--process-id 2 is out of range"), "{out_of_range}");
    let short = ClusterConfig::new(0, addresses.clone(), b"short".to_vec());
    assert!(matches!(cluster::connect(&short, &cancel), Err(ClusterError::Secret(_))));
    let no_port = config(0, &["127.0.0.1".to_string(), "127.0.0.1:2".to_string()]);
    assert!(cluster::connect(&no_port, &cancel).unwrap_err().to_string().contains("host:port"));
    assert!(!format!("{:?}", config(0, &addresses)).contains("shared-secret"), "Debug must not show the secret");
}

#[test]
fn secrets_come_from_a_file_or_the_environment() {
    let generated = cluster::generate_secret();
    assert_eq!(generated.len(), 32);
    assert_ne!(generated, cluster::generate_secret());
    let hex = cluster::secret_to_hex(&generated);
    assert_eq!(cluster::parse_secret(hex.as_bytes(), "x").unwrap(), generated);
    assert_eq!(cluster::parse_secret(format!("  {hex}\n").as_bytes(), "x").unwrap(), generated);
    assert_eq!(
        cluster::parse_secret(b"correct horse battery staple\n", "x").unwrap(),
        b"correct horse battery staple".to_vec()
    );
    assert!(cluster::parse_secret(b"0123456789abcdef", "x").is_err(), "8 bytes of hex is too short");
    assert!(cluster::parse_secret(b"  \n", "x").is_err());

    let from_env = cluster::resolve_secret(None, Some(hex.clone().into()), None).unwrap();
    assert_eq!(from_env, generated);
    let path = std::env::temp_dir().join(format!("ferroflow-secret-test-{}", std::process::id()));
    std::fs::write(&path, format!("{hex}\n")).unwrap();
    assert_eq!(cluster::resolve_secret(Some(&path), Some("ignored".into()), None).unwrap(), generated);
    assert_eq!(cluster::resolve_secret(None, None, Some(path.clone().into_os_string())).unwrap(), generated);
    std::fs::remove_file(&path).unwrap();
    let missing = cluster::resolve_secret(Some(&path), None, None).unwrap_err();
    assert!(missing.to_string().contains("cannot read the secret file"), "{missing}");
    let none = cluster::resolve_secret(None, None, None).unwrap_err();
    assert!(none.to_string().contains(SECRET_ENV), "{none}");
    const { assert!(MIN_SECRET_BYTES >= 16) };
}

#[test]
fn a_secret_of_one_repeated_byte_is_refused_by_every_route() {
    let zeros = "00".repeat(16);
    for text in [zeros.as_str(), "ffffffffffffffffffffffffffffffffff", "aaaaaaaaaaaaaaaaa"] {
        let err = cluster::parse_secret(text.as_bytes(), "x").unwrap_err();
        assert!(err.to_string().contains("repeated, which anyone can guess"), "{text}: {err}");
    }
    let path = std::env::temp_dir().join(format!("ferroflow-zero-secret-test-{}", std::process::id()));
    std::fs::write(&path, format!("{zeros}\n")).unwrap();
    let from_file = cluster::resolve_secret(None, None, Some(path.clone().into_os_string())).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(from_file.to_string().contains("repeated"), "{from_file}");
    assert!(cluster::resolve_secret(None, Some(zeros.into()), None).is_err());
    // One different byte is enough to be accepted (the length rule does the rest).
    assert!(cluster::parse_secret(b"zzzzzzzzzzzzzzzy", "x").is_ok());
    assert!(cluster::parse_secret(format!("{}01", "00".repeat(15)).as_bytes(), "x").is_ok());
}

// ---------------------------------------------------------------------------------------
// Timely over the sockets.

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

type Caught = Arc<Mutex<Vec<String>>>;

/// Runs `body` on every worker the way the engine does: a panic is caught (and kept in
/// the returned list) and the worker's dataflows are dropped.
///
/// After a peer dies, timely panics once more when the worker's allocator drops, after
/// this closure returned: that worker's `join` result is then an `Err`.
fn run_workers<T: Send + 'static>(
    network: Network,
    body: impl Fn(&mut Worker) -> T + Send + Sync + 'static,
) -> (WorkerGuards<Result<T, String>>, Caught) {
    let caught = Caught::default();
    let keep = caught.clone();
    let guards =
        timely::execute::execute_from(network.builders, network.guard, WorkerConfig::default(), move |worker| {
            match catch_unwind(AssertUnwindSafe(|| body(worker))) {
                Ok(value) => Ok(value),
                Err(panic) => {
                    let message = panic_message(panic);
                    keep.lock().unwrap().push(message.clone());
                    for id in worker.installed_dataflows() {
                        worker.drop_dataflow(id);
                    }
                    Err(message)
                }
            }
        })
        .unwrap();
    (guards, caught)
}

/// Every worker sends `w * 1000 + k` for k in 0..100, exchanged by value; returns what it
/// received. With `keep_going`, runs rounds of that until `keep_going(round)` is false.
fn exchange(worker: &mut Worker, keep_going: &dyn Fn(u64) -> bool) -> Vec<u64> {
    let index = worker.index() as u64;
    let mut input = InputHandle::new();
    let probe = ProbeHandle::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut input)
            .container::<Vec<u64>>()
            .exchange(|x: &u64| *x)
            .inspect(move |x: &u64| sink.borrow_mut().push(*x))
            .probe_with(&probe);
    });
    let mut round = 0;
    loop {
        for k in 0..100 {
            input.send(index * 1000 + k);
        }
        round += 1;
        input.advance_to(round);
        while probe.less_than(input.time()) {
            worker.step();
        }
        if !keep_going(round) {
            break;
        }
    }
    drop(input);
    let seen = seen.borrow().clone();
    seen
}

#[test]
fn timely_exchanges_records_between_two_processes() {
    within(Duration::from_secs(20), || {
        let threads = 2;
        let (listeners, addresses) = bind_local(2);
        let processes: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(p, listener)| {
                let config = config(p, &addresses).threads(threads).fingerprint(42);
                thread::spawn(move || {
                    let sockets = cluster::connect_with(&config, Some(listener), &AtomicBool::new(false)).unwrap();
                    let network = cluster::allocators(&config, sockets).unwrap();
                    let monitor = network.monitor.clone();
                    let (guards, _) =
                        run_workers(network, |worker| (worker.index(), worker.peers(), exchange(worker, &|_| false)));
                    let results: Vec<_> = guards.join().into_iter().map(|r| r.unwrap().unwrap()).collect();
                    (results, monitor)
                })
            })
            .collect();
        let mut total = 0;
        for (p, process) in processes.into_iter().enumerate() {
            let (results, monitor) = process.join().unwrap();
            assert_eq!(results.len(), threads);
            for (index, peers, seen) in results {
                assert_eq!(peers, 2 * threads);
                assert!(index / threads == p, "worker {index} belongs to process {}", index / threads);
                assert_eq!(seen.len(), 100, "worker {index} got 25 records from each of the 4 workers");
                assert!(seen.iter().all(|x| (*x as usize) % peers == index), "worker {index}: {seen:?}");
                assert_eq!(seen.iter().filter(|x| **x / 1000 != index as u64).count(), 75);
                total += seen.len();
            }
            assert!(monitor.lost().is_none());
            assert!(monitor.finished(1 - p), "process {p} saw its peer finish cleanly");
        }
        assert_eq!(total, 400);
    });
}

#[test]
fn a_single_process_gets_local_allocators() {
    within(Duration::from_secs(10), || {
        for threads in [1, 2] {
            let config = ClusterConfig::new(0, vec!["127.0.0.1:1".into()], Vec::new()).threads(threads);
            let sockets = cluster::connect(&config, &AtomicBool::new(false)).unwrap();
            let network = cluster::allocators(&config, sockets).unwrap();
            let (guards, _) = run_workers(network, |worker| exchange(worker, &|_| false).len());
            let counts: Vec<usize> = guards.join().into_iter().map(|r| r.unwrap().unwrap()).collect();
            assert_eq!(counts.iter().sum::<usize>(), 100 * threads);
        }
    });
}

#[test]
fn a_process_that_disconnects_mid_run_fails_the_other_fast() {
    disconnect_mid_run(false);
}

/// A process that cancelled its job (`execute_and_collect()` closed early) says so before
/// it disconnects: the other one stops as cancelled, naming it, not as after a crash.
#[test]
fn a_process_that_cancels_mid_run_stops_the_other_as_cancelled() {
    disconnect_mid_run(true);
}

fn disconnect_mid_run(cancelled: bool) {
    cluster::quiet_network_panics();
    within(Duration::from_secs(20), move || {
        let (listeners, addresses) = bind_local(2);
        let disconnected_at = Arc::new(Mutex::new(None::<Instant>));
        let processes: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(p, listener)| {
                let config = config(p, &addresses);
                let disconnected_at = disconnected_at.clone();
                thread::spawn(move || {
                    let sockets = cluster::connect_with(&config, Some(listener), &AtomicBool::new(false)).unwrap();
                    let network = cluster::allocators(&config, sockets).unwrap();
                    let monitor = network.monitor.clone();
                    let quitter = monitor.clone();
                    let started = Instant::now();
                    let (guards, caught) = run_workers(network, move |worker| {
                        exchange(worker, &|round| {
                            if p == 1 && round == 20 {
                                // What the engine does when this process aborts (an error, Ctrl-C).
                                *disconnected_at.lock().unwrap() = Some(Instant::now());
                                if cancelled {
                                    quitter.disconnect_cancelled();
                                } else {
                                    quitter.disconnect();
                                }
                            }
                            started.elapsed() < Duration::from_secs(10)
                        })
                        .len()
                    });
                    let outcomes = guards.join();
                    let caught = caught.lock().unwrap().clone();
                    (outcomes, caught, monitor, Instant::now())
                })
            })
            .collect();
        let mut results: Vec<_> = processes.into_iter().map(|h| h.join().unwrap()).collect();
        let (survivor_outcomes, survivor_caught, survivor, survivor_done) = results.remove(0);
        let (quitter_outcomes, quitter_caught, quitter, _) = results.remove(0);
        let at = disconnected_at.lock().unwrap().expect("process 1 disconnected");
        eprintln!("process 0 workers: {survivor_outcomes:?}, caught {survivor_caught:?}");
        eprintln!("process 1 workers: {quitter_outcomes:?}, caught {quitter_caught:?}");
        // The worker noticed (its panic was caught) instead of running on or hanging.
        assert_eq!(survivor_caught, vec!["MergeQueue poisoned.".to_string()]);
        assert!(!matches!(survivor_outcomes[0], Ok(Ok(_))));
        assert!(survivor_done.duration_since(at) < Duration::from_secs(2), "{:?}", survivor_done.duration_since(at));
        let lost = survivor.lost().expect("process 0 knows it lost process 1");
        if cancelled {
            assert!(matches!(lost, ClusterError::PeerCancelled { process: 1 }), "{lost:?}");
            assert_eq!(lost.to_string(), "process 1 cancelled the job");
            let error: ferroflow_engine::JobError = survivor.lost().expect("still lost").into();
            assert_eq!(error.kind, ferroflow_engine::ErrorKind::Cancelled);
        } else {
            assert!(matches!(lost, ClusterError::PeerLost { process: 1, .. }), "{lost:?}");
        }
        eprintln!("{lost}");
        assert!(quitter.lost().is_none(), "the process that disconnected blames nobody");
        assert!(!matches!(quitter_outcomes[0], Ok(Ok(_))), "process 1 stopped too");
    });
}

// ---------------------------------------------------------------------------------------
// SIGKILL of a real process.

const CHILD_ENV: &str = "FERROFLOW_TEST_CLUSTER_CHILD";

/// Process 1 of `a_killed_peer_fails_the_others_fast`, run as a child process of it.
#[test]
#[ignore = "the child process of a_killed_peer_fails_the_others_fast"]
fn cluster_kill_child() {
    let Ok(address0) = std::env::var(CHILD_ENV) else { return };
    let secret = cluster::secret_from_env_or_file(None).unwrap();
    let config =
        ClusterConfig::new(1, vec![address0, "127.0.0.1:9".into()], secret).connect_timeout(Duration::from_secs(10));
    let sockets = cluster::connect(&config, &AtomicBool::new(false)).unwrap();
    let network = cluster::allocators(&config, sockets).unwrap();
    let started = Instant::now();
    // Runs until killed (or 20 s, so it can never linger).
    let (guards, _) =
        run_workers(network, move |worker| exchange(worker, &|_| started.elapsed() < Duration::from_secs(20)).len());
    drop(guards.join());
}

#[cfg(unix)]
#[test]
fn a_killed_peer_fails_the_others_fast() {
    cluster::quiet_network_panics();
    within(Duration::from_secs(30), || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address0 = listener.local_addr().unwrap().to_string();
        let secret = cluster::generate_secret();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["cluster_kill_child", "--exact", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, &address0)
            .env(SECRET_ENV, cluster::secret_to_hex(&secret))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let config = ClusterConfig::new(0, vec![address0, "127.0.0.1:9".into()], secret)
            .connect_timeout(Duration::from_secs(10));
        let sockets = cluster::connect_with(&config, Some(listener), &AtomicBool::new(false)).unwrap();
        let network = cluster::allocators(&config, sockets).unwrap();
        let monitor = network.monitor.clone();
        let rounds = Arc::new(AtomicU64::new(0));
        let counter = rounds.clone();
        let started = Instant::now();
        let (guards, caught) = run_workers(network, move |worker| {
            exchange(worker, &|round| {
                counter.store(round, Ordering::SeqCst);
                started.elapsed() < Duration::from_secs(20)
            })
            .len()
        });
        while rounds.load(Ordering::SeqCst) < 20 {
            assert!(started.elapsed() < Duration::from_secs(10), "the job never got going");
            thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        let killed = Instant::now();
        child.wait().unwrap();
        let outcomes = guards.join();
        let noticed = killed.elapsed();
        let caught = caught.lock().unwrap().clone();
        eprintln!("after SIGKILL of process 1: workers {outcomes:?}, caught {caught:?}, after {noticed:?}");
        assert!(noticed < Duration::from_secs(3), "{noticed:?}");
        assert_eq!(caught, vec!["MergeQueue poisoned.".to_string()]);
        let lost = monitor.lost().expect("the dead peer is named");
        assert!(matches!(lost, ClusterError::PeerLost { process: 1, .. }), "{lost:?}");
        eprintln!("{lost}");
    });
}

// ---------------------------------------------------------------------------------------
// Heartbeats: a silent peer is found, a busy one is not.

#[test]
fn a_busy_peer_is_not_taken_for_dead() {
    within(Duration::from_secs(30), || {
        let (listeners, addresses) = bind_local(2);
        let timeout = Duration::from_millis(800);
        let processes: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(p, listener)| {
                let config = config(p, &addresses).heartbeat_timeout(timeout);
                thread::spawn(move || {
                    let sockets = cluster::connect_with(&config, Some(listener), &AtomicBool::new(false)).unwrap();
                    let network = cluster::allocators(&config, sockets).unwrap();
                    let monitor = network.monitor.clone();
                    let (guards, caught) = run_workers(network, move |worker| {
                        exchange(worker, &|round| {
                            if p == 1 && round == 3 {
                                // A long user function (or one holding the GIL): the worker does not step.
                                thread::sleep(timeout * 4);
                            }
                            round < 6
                        })
                        .len()
                    });
                    let outcomes = guards.join();
                    let caught = caught.lock().unwrap().clone();
                    (outcomes, caught, monitor)
                })
            })
            .collect();
        for (p, process) in processes.into_iter().enumerate() {
            let (outcomes, caught, monitor) = process.join().unwrap();
            assert!(caught.is_empty(), "process {p}: {caught:?}");
            assert!(outcomes.iter().all(|o| matches!(o, Ok(Ok(600)))), "process {p}: {outcomes:?}");
            assert!(monitor.lost().is_none(), "process {p}: {:?}", monitor.lost());
        }
    });
}

/// Kills the child process when dropped, also when a test fails half-way (a stopped
/// child would otherwise stay behind).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL ends a stopped process too
        let _ = self.0.wait();
    }
}

#[cfg(unix)]
#[test]
fn a_stopped_peer_fails_the_others_naming_it() {
    cluster::quiet_network_panics();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address0 = listener.local_addr().unwrap().to_string();
    let secret = cluster::generate_secret();
    let child = KillOnDrop(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["cluster_kill_child", "--exact", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, &address0)
            .env(SECRET_ENV, cluster::secret_to_hex(&secret))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id().to_string();
    within(Duration::from_secs(40), move || {
        let timeout = Duration::from_secs(2);
        let address1 = "127.0.0.1:9".to_string();
        let config = ClusterConfig::new(0, vec![address0, address1.clone()], secret)
            .connect_timeout(Duration::from_secs(10))
            .heartbeat_timeout(timeout);
        let sockets = cluster::connect_with(&config, Some(listener), &AtomicBool::new(false)).unwrap();
        let network = cluster::allocators(&config, sockets).unwrap();
        let monitor = network.monitor.clone();
        let rounds = Arc::new(AtomicU64::new(0));
        let counter = rounds.clone();
        let started = Instant::now();
        let (guards, caught) = run_workers(network, move |worker| {
            exchange(worker, &|round| {
                counter.store(round, Ordering::SeqCst);
                started.elapsed() < Duration::from_secs(20)
            })
            .len()
        });
        while rounds.load(Ordering::SeqCst) < 20 {
            assert!(started.elapsed() < Duration::from_secs(10), "the job never got going");
            thread::sleep(Duration::from_millis(5));
        }
        let status = std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
        assert!(status.success());
        let stopped = Instant::now();
        let outcomes = guards.join();
        let noticed = stopped.elapsed();
        let caught = caught.lock().unwrap().clone();
        eprintln!("after SIGSTOP of process 1: workers {outcomes:?}, caught {caught:?}, after {noticed:?}");
        assert!(noticed + Duration::from_millis(500) >= timeout, "declared dead too early: {noticed:?}");
        assert!(noticed < timeout + Duration::from_secs(5), "{noticed:?}");
        assert_eq!(caught, vec!["MergeQueue poisoned.".to_string()]);
        let lost = monitor.lost().expect("the silent peer is named");
        assert!(matches!(lost, ClusterError::PeerSilent { process: 1, .. }), "{lost:?}");
        let message = lost.to_string();
        assert!(message.starts_with(&format!("no heartbeat from process 1 at {address1} for 2 s")), "{message}");
        eprintln!("{message}");
    });
    drop(child);
}
