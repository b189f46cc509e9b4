//! `peer-memory`: hostile sessions make a pola peer hold decoded values;
//! prints the victim's RSS (and live heap, when it runs in this process)
//! per round, to show whether memory comes back once the sessions end.
//!
//! Each round: N hostile sessions at once each send the echo object M
//! `op:deliver` messages of A one-byte atoms with an answer position and
//! no resolver (answers kept, never released), wait until all are handled,
//! then drop the connection; the victim is measured before, while the
//! answers are held, at the sampled peak, and once it has dropped every
//! session. See the library's doc for the details.
//!
//! ```sh
//! # The issue's attack on an in-process test peer (glibc malloc), one
//! # session then 8, three times over:
//! cargo run --release -p pola-bench-memory --bin peer-memory
//! # The same with mimalloc or jemalloc under the victim:
//! cargo run --release -p pola-bench-memory --features mimalloc --bin peer-memory
//! cargo run --release -p pola-bench-memory --features jemalloc --bin peer-memory
//! # glibc with fewer arenas, or its heap trimmed after each round:
//! MALLOC_ARENA_MAX=2 cargo run --release -p pola-bench-memory --bin peer-memory
//! cargo run --release -p pola-bench-memory --bin peer-memory -- --trim
//! # Against another process: a `pola ocapn test-peer` this starts (RSS only):
//! cargo run --release -p pola-bench-memory --bin peer-memory -- \
//!     --spawn target/release/pola ocapn test-peer
//! # Smaller or other shapes:
//! … -- --sessions 1,8,32 --repeats 5 --messages 40 --atoms 262000
//! ```
//!
//! Columns: `after` is once the victim dropped every hostile session;
//! `released` once a well-behaved client then made `calls` small calls
//! (0 when the live heap was already back where it was before the round;
//! 100 calls without a live count); `live` is the live heap (bytes
//! allocated and not freed, counted by this binary's global allocator;
//! in-process only), `rss` the resident set size from `/proc/<pid>/status`.
//! MB are 10^6 bytes.
//!
//! Unsafe code: `deny`, not `forbid`, because this benchmark binary (never
//! part of pola) needs two exceptions, each allowed where it stands with
//! its reason: the counting global allocator (`counting.rs`; `GlobalAlloc`
//! is an unsafe trait) and `malloc_trim` for `--trim` (an FFI call).
// Not forbid(unsafe_code): a benchmark binary, never linked into pola, with
// two unsafe spots allowed one by one (the counting allocator, malloc_trim).
#![deny(unsafe_code)]

mod counting;

use std::process::{Child, Command};

use anyhow::{Context as _, Result, bail};
use pola_bench_memory::{
    Attack, ExternalVictim, InProcessVictim, MAX_ATOMS, Measure, PidProbe, Probe, RoundReport,
    Victim, round, rss_bytes, settle, spawn_victim,
};
use pola_peer::PeerConfig;

struct Options {
    sessions: Vec<usize>,
    repeats: usize,
    messages: usize,
    atoms: usize,
    trim: bool,
    spawn: Option<Vec<String>>,
}

fn options() -> Result<Options> {
    let mut o = Options {
        sessions: vec![1, 8],
        repeats: 3,
        messages: 40,
        atoms: MAX_ATOMS,
        trim: false,
        spawn: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().with_context(|| format!("{what} needs a value"));
        match a.as_str() {
            "--sessions" => {
                o.sessions = value("--sessions")?
                    .split(',')
                    .map(|n| n.trim().parse().context("--sessions takes numbers"))
                    .collect::<Result<_>>()?;
            }
            "--repeats" => o.repeats = value("--repeats")?.parse()?,
            "--messages" => o.messages = value("--messages")?.parse()?,
            "--atoms" => o.atoms = value("--atoms")?.parse()?,
            "--trim" => o.trim = true,
            "--spawn" => {
                o.spawn = Some(args.by_ref().collect());
            }
            "--bench" => {} // `cargo bench` passes it
            other => bail!("unknown argument {other:?} (see the doc at the top of main.rs)"),
        }
    }
    if o.spawn.as_ref().is_some_and(Vec::is_empty) {
        bail!("--spawn needs a command");
    }
    Ok(o)
}

/// This process: RSS and the counted live heap.
struct SelfProbe;

impl Probe for SelfProbe {
    fn measure(&self) -> Measure {
        Measure {
            rss: rss_bytes(None),
            live: Some(counting::ALLOCATOR.live()),
        }
    }
}

fn mb(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |b| format!("{:.0}", b as f64 / 1e6))
}

fn header() {
    println!(
        "{:>5} {:>8} {:>8} {:>8} | {:>10} {:>10} | {:>10} {:>10} {:>9} | {:>10} {:>10} | {:>12} {:>10} {:>5}",
        "round",
        "sessions",
        "wire MB",
        "answers",
        "before rss",
        "live",
        "held rss",
        "live",
        "peak rss",
        "after rss",
        "live",
        "released rss",
        "live",
        "calls",
    );
}

fn row(n: usize, r: &RoundReport, trimmed: Option<Measure>) {
    let wire = r.attack.wire_bytes_per_session() * r.attack.sessions;
    println!(
        "{:>5} {:>8} {:>8.1} {:>8} | {:>10} {:>10} | {:>10} {:>10} {:>9} | {:>10} {:>10} | {:>12} {:>10} {:>5}{}",
        n,
        r.attack.sessions,
        wire as f64 / 1e6,
        r.answers_held
            .map_or_else(|| "-".to_owned(), |a| a.to_string()),
        mb(r.before.rss),
        mb(r.before.live),
        mb(r.held.rss),
        mb(r.held.live),
        mb(r.peak_rss),
        mb(r.after.rss),
        mb(r.after.live),
        mb(r.released.rss),
        mb(r.released.live),
        r.release_calls
            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        trimmed.map_or_else(String::new, |t| format!(
            " | trimmed rss {} live {}",
            mb(t.rss),
            mb(t.live)
        )),
    );
    if let Some(reason) = r.aborted.first() {
        println!(
            "      {} of {} sessions aborted by the victim: {reason:?}",
            r.aborted.len(),
            r.attack.sessions
        );
    }
}

/// Asks glibc to give free heap memory back to the system
/// (`malloc_trim(0)`), to tell memory glibc keeps from memory still in use.
#[allow(unsafe_code)]
fn malloc_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a plain integer, touches only glibc's
    // own heap bookkeeping under its locks, and is safe to call from any
    // thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn start_external(command: &[String]) -> Result<(Child, ExternalVictim)> {
    let (program, args) = command.split_first().context("--spawn needs a command")?;
    spawn_victim(Command::new(program).args(args))
}

fn main() -> Result<()> {
    let o = options()?;
    let rounds = |victim: &dyn Victim, probe: &'static dyn Probe, trim: bool| -> Result<()> {
        header();
        let mut n = 0;
        for repeat in 0..o.repeats {
            for &sessions in &o.sessions {
                n += 1;
                let attack = Attack {
                    sessions,
                    messages: o.messages,
                    atoms: o.atoms,
                };
                let r = round(
                    victim,
                    probe,
                    attack,
                    &format!("hostile-{repeat}-{sessions}"),
                )?;
                let trimmed = trim.then(|| {
                    malloc_trim();
                    settle(probe)
                });
                row(n, &r, trimmed);
            }
        }
        Ok(())
    };
    match &o.spawn {
        None => {
            println!(
                "victim: the OCapN test peer in this process; allocator: {}; MALLOC_ARENA_MAX={}",
                counting::NAME,
                std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "unset".to_owned())
            );
            let victim = InProcessVictim::start(PeerConfig::test_suite())?;
            static PROBE: SelfProbe = SelfProbe;
            rounds(&victim, &PROBE, o.trim)?;
            victim.stop();
        }
        Some(command) => {
            let (mut child, victim) = start_external(command)?;
            println!(
                "victim: {} (pid {}), RSS only",
                command.join(" "),
                child.id()
            );
            let probe: &'static PidProbe = Box::leak(Box::new(PidProbe(child.id())));
            let result = rounds(&victim, probe, false);
            let _ = child.kill();
            let _ = child.wait();
            result?;
        }
    }
    Ok(())
}
