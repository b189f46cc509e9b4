//! The budget across turns at the host's default configuration (issue
//! #10): how long each hostile loop runs before its caplet object is
//! stopped, how many turns it got, how long a bystander in the same vat
//! waited at worst, what the process's resident memory grew by, and how
//! long `Vat::shutdown` took. Also the fuel rate of a spinning caplet (what
//! a fuel budget means in time on this machine).
//!
//! `cargo bench -p pola-sandbox --bench budget` (a plain binary: these are
//! one-off figures, not a statistical benchmark).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pola_sandbox::vat::{CapletObject, Policy, Stopper, VatLink};
use pola_sandbox::{CapletModule, Config, Sandbox};
use pola_sandbox_guests::{ECHO, MALICIOUS};
use pola_vat::{Object, Outcome, Turn, Val, Vat};

struct Pinger(Arc<AtomicU64>);
impl Object for Pinger {
    fn receive(&self, _cx: &mut Turn<'_>, _m: &str, _a: Vec<Val>) -> Outcome {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Val::Bool(true))
    }
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb / 1024)
}

struct Figures {
    stopped_after: Duration,
    turns: u64,
    bystander_worst: Duration,
    rss_grew_mib: u64,
    pending_mib: usize,
    shutdown: Duration,
    why: String,
}

fn attack(
    malicious: &CapletModule<VatLink>,
    echo: &CapletModule<VatLink>,
    start: impl FnOnce(&Vat, &pola_vat::Ref, &pola_vat::Ref),
) -> Figures {
    let vat = Vat::new("bench");
    let pings = Arc::new(AtomicU64::new(0));
    let pinger = vat.spawn(Pinger(pings.clone()));
    let object = CapletObject::new(malicious.clone(), Policy::Persistent);
    let stopper: Stopper = object.stopper();
    let bad = vat.spawn(object);
    let bystander = vat.spawn(CapletObject::new(echo.clone(), Policy::Persistent));
    let before = rss_mib();
    let t0 = Instant::now();
    start(&vat, &bad, &pinger);
    let mut worst = Duration::ZERO;
    while stopper.stopped().is_none() && t0.elapsed() < Duration::from_secs(120) {
        let t = Instant::now();
        let r = vat.send(&bystander, "add", vec![Val::int(1i64), Val::int(2i64)]);
        let _ = vat.block_on(&r, Duration::from_secs(60));
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopped_after = t0.elapsed();
    let rss_grew_mib = rss_mib().saturating_sub(before);
    let pending_mib = stopper.pending_bytes() >> 20;
    let t = Instant::now();
    vat.shutdown();
    Figures {
        stopped_after,
        turns: pings.load(Ordering::Relaxed),
        bystander_worst: worst,
        rss_grew_mib,
        pending_mib,
        shutdown: t.elapsed(),
        why: format!("{:?}", stopper.stopped()),
    }
}

fn main() {
    let mut config = Config::default();
    config.max_instances = 16;
    let defaults = config.clone();
    let sandbox = Sandbox::<VatLink>::new(config).expect("sandbox");
    let malicious = sandbox.load(MALICIOUS).expect("malicious");
    let echo = sandbox.load(ECHO).expect("echo");

    // Fuel rate: a caplet spinning until its entry's fuel runs out.
    let vat = Vat::new("spin");
    let spinner = vat.spawn(CapletObject::new(malicious.clone(), Policy::Persistent));
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = vat.send(&spinner, "spin", vec![]);
        let _ = vat.block_on(&r, Duration::from_secs(60));
        let s = t.elapsed().as_secs_f64();
        rates.push(defaults.fuel_per_call as f64 / s / 1e9);
    }
    vat.shutdown();
    rates.sort_by(f64::total_cmp);
    println!(
        "fuel rate of a spinning caplet: {:.2} G fuel/s (median of 5 entries of {} M)",
        rates[2],
        defaults.fuel_per_call / 1_000_000
    );
    println!(
        "defaults: {} M fuel/s, burst {} M, {} k per turn, {} MiB pending",
        defaults.fuel_per_second / 1_000_000,
        defaults.fuel_burst / 1_000_000,
        defaults.turn_fuel / 1_000,
        defaults.pending_bytes >> 20
    );
    println!(
        "| attack | stopped (reason) | after | turns | bystander worst | RSS grew | pending | shutdown |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let rows: [(&str, Figures); 3] = [
        (
            "`when` loop",
            attack(&malicious, &echo, |vat, bad, pinger| {
                let _ = vat.send(bad, "when-loop", vec![Val::Ref(pinger.clone())]);
            }),
        ),
        (
            "self-send, doubling",
            attack(&malicious, &echo, |vat, bad, _| {
                let _ = vat.send(bad, "self-loop", vec![Val::Ref(bad.clone())]);
            }),
        ),
        (
            "5 × 1 MiB per turn on a promise that never settles",
            attack(&malicious, &echo, |vat, bad, pinger| {
                let (hang, keep) = vat.promise();
                // Kept alive (and never settled) for the vat's life.
                std::mem::forget(keep);
                let _ = vat.send(
                    bad,
                    "flood-hang",
                    vec![Val::Ref(hang), Val::Ref(pinger.clone())],
                );
            }),
        ),
    ];
    for (name, f) in rows {
        println!(
            "| {name} | {} | {:.2} s | {} | {:.1} ms | {} MiB | {} MiB | {:.1} ms |",
            f.why,
            f.stopped_after.as_secs_f64(),
            f.turns,
            f.bystander_worst.as_secs_f64() * 1e3,
            f.rss_grew_mib,
            f.pending_mib,
            f.shutdown.as_secs_f64() * 1e3,
        );
    }
}
