//! Crash safety with a real `kill -9`: a child process (this test binary,
//! re-run in "writer" mode) writes batches in a loop and reports each one
//! after `write` returns; the parent SIGKILLs it at a random moment,
//! reopens the store and checks that every reported batch is there, whole.
//! Batches go through the write-ahead log, which is checkpointed every
//! 1 000 entries, so the kills land before, during and after checkpoints
//! (each round prints how many batches it saw acknowledged).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pola_store::Store;
use pola_vat::backend::{Backend, Batch};

use crate::util::TempDir;

const CHILD_ENV: &str = "POLA_STORE_CRASH_CHILD";
const PAD: usize = 3000;

fn counter_record(c: u64) -> Vec<u8> {
    let mut r = format!("counter-{c}|").into_bytes();
    r.resize(PAD, b'0' + (c % 10) as u8);
    r
}

/// The writer: does nothing unless started by the parent test below.
#[test]
fn crash_child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&path)).expect("child open");
    let mut b = store.vat("crash").expect("vat");
    let opened = b.open().expect("open");
    let mut out = std::io::stdout().lock();
    // A fresh line: libtest has printed "test … " without one.
    writeln!(out, "\nready {}", opened.next_id).expect("stdout");
    out.flush().expect("flush");
    let started = Instant::now();
    let mut c = opened.next_id;
    // Bounded, in case the parent is gone.
    while started.elapsed() < Duration::from_secs(20) {
        b.write(&Batch {
            objects: vec![(c, counter_record(c))],
            deletes: c.checked_sub(50).into_iter().collect(),
            roots: vec![("counter".into(), Some(c))],
            next_id: c + 1,
        })
        .expect("write");
        writeln!(out, "committed {c}").expect("stdout");
        out.flush().expect("flush");
        c += 1;
    }
}

fn pseudo_random(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7);
    let mut x = nanos ^ (n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) ^ u64::from(std::process::id());
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[test]
fn kill_9_loses_no_committed_batch() {
    let dir = TempDir::new("crash");
    let path = dir.join("host.store");
    let exe = std::env::current_exe().expect("current exe");
    let mut total_reported = 0;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let committed = Arc::new(Mutex::new(Vec::<u64>::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = {
            let committed = committed.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("ready ") {
                        let _ = ready_tx.send(n.trim().parse::<u64>().ok());
                    } else if let Some(n) = line.strip_prefix("committed ")
                        && let Ok(n) = n.trim().parse::<u64>()
                    {
                        committed.lock().expect("lock").push(n);
                    }
                }
            })
        };
        let start = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child ready")
            .expect("child start counter");
        // Kill at a random moment within the next ~1.5 s.
        std::thread::sleep(Duration::from_millis(30 + pseudo_random(round) % 1500));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "the child was meant to die");
        reader.join().expect("reader");
        let committed = committed.lock().expect("lock").clone();
        total_reported += committed.len();

        // (a) the store opens (after redb's crash recovery).
        let store = Store::open(&path).expect("store opens after kill -9");
        let mut b = store.vat("crash").expect("vat");
        let opened = b.open().expect("open");
        // (b) every counter the child reported is there.
        for &c in &committed {
            assert!(c >= start);
            if c + 50 > opened.next_id {
                assert_eq!(
                    b.load(c).expect("load"),
                    Some(counter_record(c)),
                    "round {round}: committed counter {c} lost"
                );
            }
        }
        // (c) all or nothing: the root, the counter and the objects agree.
        let last = opened.roots.get("counter").copied();
        eprintln!(
            "round {round}: {} batches reported from {start}, store ends at {last:?}",
            committed.len()
        );
        if let Some(&max) = committed.iter().max() {
            let last = last.expect("root present");
            assert!(
                last >= max,
                "round {round}: root {last} behind reported {max}"
            );
            assert!(
                last <= max + 1,
                "at most one unreported batch can have landed"
            );
        }
        if let Some(last) = last {
            assert_eq!(opened.next_id, last + 1, "round {round}");
            assert_eq!(b.load(last).expect("load"), Some(counter_record(last)));
            assert_eq!(b.load(last + 1).expect("load"), None);
            if last >= 50 {
                assert_eq!(b.load(last - 50).expect("load"), None, "delete lost");
            }
        }
        drop(b);
        store.close().expect("close");
    }
    assert!(total_reported > 0, "the child never committed anything");
}
