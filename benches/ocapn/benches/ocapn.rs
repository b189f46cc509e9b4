//! `cargo bench -p pola-bench-ocapn`: pola's OCapN stack against capnp-rpc
//! and raw TCP over loopback, printed as a table (see the crate doc of
//! `pola_bench_ocapn` for what each row measures).
//!
//! Set `POLA_BENCH_QUICK=1` for a smoke run with few samples, or
//! `POLA_BENCH_PROFILE_RT=<secs>` to run only pola round trips (for `perf`;
//! add `POLA_BENCH_PROFILE_IN_VAT=1` to drive them from inside vat A).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use pola_bench_ocapn::pola::PolaPair;
use pola_bench_ocapn::proxy::{DelayProxy, Dir};
use pola_bench_ocapn::raw::{RawPingPong, TokioPingPong};
use pola_bench_ocapn::stats::Summary;
use pola_bench_ocapn::{Op, Span};

/// One-way latency the proxy adds in each direction.
const PROXY_DELAY: Duration = Duration::from_millis(2);
/// Pause between proxied runs so trailing traffic (GC notices) settles.
const PROXY_PAUSE: Duration = Duration::from_millis(15);
/// Interleaved measurement rounds on loopback.
const ROUNDS: usize = 5;

struct Sizes {
    rt_iters: usize,
    chain_iters: usize,
    one_way_n: u64,
    one_way_reps: usize,
    proxy_iters: usize,
}

fn durations(spans: &[Span]) -> Vec<Duration> {
    spans.iter().map(Span::elapsed).collect()
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "-".into();
    }
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

/// A route through a fresh delay proxy, remembering the proxy.
fn via_proxy(
    delay: Duration,
    slot: &Arc<Mutex<Option<DelayProxy>>>,
) -> impl FnOnce(std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> + use<> {
    let slot = slot.clone();
    move |upstream| {
        let p = DelayProxy::start(upstream, delay)?;
        let addr = p.addr();
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        Ok(addr)
    }
}

fn take(slot: &Arc<Mutex<Option<DelayProxy>>>) -> Result<DelayProxy> {
    slot.lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .context("proxy not started")
}

/// Per-op medians through a proxy: latency, round trips, bytes up/down.
struct Proxied {
    latency: Duration,
    trips_median: usize,
    trips_min: usize,
    trips_max: usize,
    up: usize,
    down: usize,
    /// Bytes and relayed chunks per call including trailing traffic (GC
    /// notices), up and down: (bytes up, bytes down, chunks up, chunks down).
    whole: (usize, usize, usize, usize),
}

fn proxied(proxy: &DelayProxy, spans: &[Span]) -> Proxied {
    let mut trips: Vec<usize> = spans.iter().map(|s| proxy.round_trips(*s)).collect();
    trips.sort_unstable();
    let mut ups: Vec<usize> = spans.iter().map(|s| proxy.bytes(*s).0).collect();
    let mut downs: Vec<usize> = spans.iter().map(|s| proxy.bytes(*s).1).collect();
    ups.sort_unstable();
    downs.sort_unstable();
    let mid = |v: &[usize]| v.get(v.len() / 2).copied().unwrap_or(0);
    // Whole call: from its start to the next call's start (the last one
    // gets the pause after it).
    let mut whole: [Vec<usize>; 4] = Default::default();
    for (i, s) in spans.iter().enumerate() {
        let to = spans.get(i + 1).map_or(s.end + PROXY_PAUSE, |n| n.start);
        let chunks = proxy.chunks(Span {
            start: s.start,
            end: to,
        });
        let mut w = [0usize; 4];
        for c in &chunks {
            let (b, n) = match c.dir {
                Dir::Up => (0, 2),
                Dir::Down => (1, 3),
            };
            w[b] += c.len;
            w[n] += 1;
        }
        for (v, x) in whole.iter_mut().zip(w) {
            v.push(x);
        }
    }
    for v in &mut whole {
        v.sort_unstable();
    }
    Proxied {
        whole: (
            mid(&whole[0]),
            mid(&whole[1]),
            mid(&whole[2]),
            mid(&whole[3]),
        ),
        latency: Summary::of(&durations(spans)).median,
        trips_median: mid(&trips),
        trips_min: trips.first().copied().unwrap_or(0),
        trips_max: trips.last().copied().unwrap_or(0),
        up: mid(&ups),
        down: mid(&downs),
    }
}

fn print_proxied(system: &str, op: &str, p: &Proxied, single: Duration) {
    let trips = if p.trips_min == p.trips_max {
        format!("{}", p.trips_median)
    } else {
        format!("{} ({}..{})", p.trips_median, p.trips_min, p.trips_max)
    };
    println!(
        "{system:<10} {op:<18} {:>9} {:>7} {:>11} {:>9} {:>13} {:>9}",
        ms(p.latency),
        ratio(p.latency, single),
        trips,
        format!("{}/{}", p.up, p.down),
        format!("{}/{}", p.whole.0, p.whole.1),
        format!("{}/{}", p.whole.2, p.whole.3),
    );
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() -> Result<()> {
    let quick = std::env::var_os("POLA_BENCH_QUICK").is_some();
    let sz = if quick {
        Sizes {
            rt_iters: 200,
            chain_iters: 100,
            one_way_n: 5_000,
            one_way_reps: 1,
            proxy_iters: 5,
        }
    } else {
        Sizes {
            rt_iters: 5_000,
            chain_iters: 3_000,
            one_way_n: 100_000,
            one_way_reps: 3,
            proxy_iters: 40,
        }
    };
    let started = std::time::Instant::now();
    if let Some(secs) = std::env::var("POLA_BENCH_PROFILE_RT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        // For `perf record`: pola round trips only, for `secs` seconds.
        let pola = PolaPair::start(Ok)?;
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        let mut n = 0usize;
        let in_vat = std::env::var_os("POLA_BENCH_PROFILE_IN_VAT").is_some();
        while std::time::Instant::now() < until {
            n += if in_vat {
                pola.in_vat_round_trips(1000)?.len()
            } else {
                pola.timed(Op::RoundTrip, 1000, Duration::ZERO)?.len()
            };
        }
        println!("{n} pola round trips in {secs} s");
        pola.stop();
        return Ok(());
    }

    // --- pola's frame sizes, read off a zero-delay relay ----------------
    let slot = Arc::new(Mutex::new(None));
    let pola = PolaPair::start(via_proxy(Duration::ZERO, &slot))?;
    let relay = take(&slot)?;
    pola.timed(Op::RoundTrip, 50, Duration::ZERO)?;
    let spans = pola.timed(Op::RoundTrip, 100, Duration::from_millis(2))?;
    let frames = proxied(&relay, &spans);
    pola.stop();
    let (req_len, resp_len) = (frames.up, frames.down);

    // --- loopback, direct ------------------------------------------------
    // All systems stay up and are measured in interleaved rounds, so a
    // change in background load (the machine is shared) hits them alike.
    let mut raw = RawPingPong::start(req_len, resp_len, Ok)?;
    let mut raw_poll = RawPingPong::start_polling(req_len, resp_len)?;
    let mut raw_poll_s = Vec::new();
    let mut raw_tokio = TokioPingPong::start(req_len, resp_len)?;
    raw_tokio.round_trips(500)?;
    let (mut raw_tokio_s, mut pola_local_s) = (Vec::new(), Vec::new());
    let pola = PolaPair::start(Ok)?;
    let pola_noise = PolaPair::start_noise()?;
    let (mut noise_s, mut noise_vat_s) = (Vec::new(), Vec::new());
    #[cfg(has_capnp)]
    let capnp_pair = pola_bench_ocapn::capnproto::CapnpPair::start(Ok)?;
    pola_noise.timed(Op::RoundTrip, 500, Duration::ZERO)?;
    pola_noise.in_vat_round_trips(500)?;
    for _ in 0..500 {
        raw.round_trip()?;
        raw_poll.round_trip()?;
    }
    pola.timed(Op::RoundTrip, 500, Duration::ZERO)?;
    pola.in_vat_round_trips(500)?;
    pola.timed(Op::ChainPipelined, 100, Duration::ZERO)?;
    #[cfg(has_capnp)]
    {
        capnp_pair.timed(Op::RoundTrip, 500, Duration::ZERO)?;
        capnp_pair.timed(Op::ChainPipelined, 100, Duration::ZERO)?;
    }
    let (rt_batch, chain_batch) = (sz.rt_iters / ROUNDS, sz.chain_iters / ROUNDS);
    let mut samples: [Vec<Duration>; 8] = Default::default();
    let [
        raw_s,
        pola_s,
        pola_vat_s,
        pola_chain_s,
        pola_seq_s,
        c_rt_s,
        c_chain_s,
        c_seq_s,
    ] = &mut samples;
    for _ in 0..ROUNDS {
        for _ in 0..rt_batch {
            raw_s.push(raw.round_trip()?.elapsed());
        }
        for _ in 0..rt_batch {
            raw_poll_s.push(raw_poll.round_trip()?.elapsed());
        }
        raw_tokio_s.extend(durations(&raw_tokio.round_trips(rt_batch)?));
        pola_s.extend(durations(&pola.timed(
            Op::RoundTrip,
            rt_batch,
            Duration::ZERO,
        )?));
        pola_vat_s.extend(durations(&pola.in_vat_round_trips(rt_batch)?));
        noise_s.extend(durations(&pola_noise.timed(
            Op::RoundTrip,
            rt_batch,
            Duration::ZERO,
        )?));
        noise_vat_s.extend(durations(&pola_noise.in_vat_round_trips(rt_batch)?));
        pola_local_s.extend(durations(&pola.in_process_round_trips(rt_batch)?));
        pola_chain_s.extend(durations(&pola.timed(
            Op::ChainPipelined,
            chain_batch,
            Duration::ZERO,
        )?));
        pola_seq_s.extend(durations(&pola.timed(
            Op::ChainSequential,
            chain_batch,
            Duration::ZERO,
        )?));
        #[cfg(has_capnp)]
        {
            c_rt_s.extend(durations(&capnp_pair.timed(
                Op::RoundTrip,
                rt_batch,
                Duration::ZERO,
            )?));
            c_chain_s.extend(durations(&capnp_pair.timed(
                Op::ChainPipelined,
                chain_batch,
                Duration::ZERO,
            )?));
            c_seq_s.extend(durations(&capnp_pair.timed(
                Op::ChainSequential,
                chain_batch,
                Duration::ZERO,
            )?));
        }
    }
    drop(raw);
    drop(raw_poll);
    drop(raw_tokio);
    let raw_poll_rt = Summary::of(&raw_poll_s);
    let raw_rt = Summary::of(raw_s);
    let raw_tokio_rt = Summary::of(&raw_tokio_s);
    let pola_rt = Summary::of(pola_s);
    let pola_in_vat = Summary::of(pola_vat_s);
    pola_noise.stop();
    let noise_rt = Summary::of(&noise_s);
    let noise_in_vat = Summary::of(&noise_vat_s);
    let pola_local = Summary::of(&pola_local_s);
    let pola_chain = Summary::of(pola_chain_s);
    let pola_seq = Summary::of(pola_seq_s);

    // One-way throughput, alternating systems run by run.
    pola.one_way(sz.one_way_n / 10)?;
    #[cfg(has_capnp)]
    capnp_pair.one_way(sz.one_way_n / 10)?;
    let (mut pola_one_way, mut capnp_one_way) = (Vec::new(), Vec::new());
    for _ in 0..sz.one_way_reps {
        pola_one_way.push(rate(sz.one_way_n, pola.one_way(sz.one_way_n)?));
        #[cfg(has_capnp)]
        capnp_one_way.push(rate(sz.one_way_n, capnp_pair.one_way(sz.one_way_n)?));
    }
    pola_one_way.sort_by(f64::total_cmp);
    capnp_one_way.sort_by(f64::total_cmp);
    pola.stop();

    #[cfg(has_capnp)]
    let capnp = {
        drop(capnp_pair);
        Some((
            Summary::of(c_rt_s),
            Summary::of(c_chain_s),
            Summary::of(c_seq_s),
            capnp_one_way,
        ))
    };
    #[cfg(not(has_capnp))]
    let capnp: Option<(Summary, Summary, Summary, Vec<f64>)> = {
        let _ = (c_rt_s, c_chain_s, c_seq_s, capnp_one_way);
        None
    };

    println!();
    println!("== loopback TCP (127.0.0.1), direct; 16-byte echo payload");
    println!(
        "pola frames on the wire per echo call: {req_len} B request, {resp_len} B answer (raw ping-pong uses the same sizes)"
    );
    println!(
        "{:<34} {:>11} {:>11} {:>10} {:>10}",
        "workload", "median", "p99", "vs raw", "pola/capnp"
    );
    let row = |name: &str, s: &Summary, vs_raw: bool, capnp: Option<&Summary>| {
        println!(
            "{name:<34} {:>11} {:>11} {:>10} {:>10}",
            us(s.median),
            us(s.p99),
            if vs_raw {
                ratio(s.median, raw_rt.median)
            } else {
                "-".into()
            },
            capnp.map_or("-".into(), |c| ratio(s.median, c.median)),
        );
    };
    row("raw TCP ping-pong (std, blocking)", &raw_rt, true, None);
    row("raw TCP ping-pong (tokio)", &raw_tokio_rt, true, None);
    row(
        "raw TCP ping-pong (std, poll 50 µs)",
        &raw_poll_rt,
        true,
        None,
    );
    row(
        "pola round trip (op:deliver)",
        &pola_rt,
        true,
        capnp.as_ref().map(|c| &c.0),
    );
    row(
        "pola round trip, driven in vat A",
        &pola_in_vat,
        true,
        capnp.as_ref().map(|c| &c.0),
    );
    row(
        "pola over noise, app thread",
        &noise_rt,
        true,
        capnp.as_ref().map(|c| &c.0),
    );
    row(
        "pola over noise, driven in vat A",
        &noise_in_vat,
        true,
        capnp.as_ref().map(|c| &c.0),
    );
    row("pola vat A -> vat B, no CapTP", &pola_local, true, None);
    row(
        "pola pipelined chain a~>b~>c",
        &pola_chain,
        true,
        capnp.as_ref().map(|c| &c.1),
    );
    row(
        "pola sequential chain a;b;c",
        &pola_seq,
        true,
        capnp.as_ref().map(|c| &c.2),
    );
    if let Some((rt, chain, seq, _)) = &capnp {
        row("capnp-rpc round trip", rt, true, None);
        row("capnp-rpc pipelined chain", chain, true, None);
        row("capnp-rpc sequential chain", seq, true, None);
    }
    println!(
        "pola pipelined chain / pola round trip: {} (median)",
        ratio(pola_chain.median, pola_rt.median)
    );
    if let Some((rt, chain, _, _)) = &capnp {
        println!(
            "capnp pipelined chain / capnp round trip: {} (median)",
            ratio(chain.median, rt.median)
        );
    }

    println!();
    println!(
        "== one-way messages, A -> B, until B has processed all {} ({} runs, msgs/s min / median / max)",
        sz.one_way_n, sz.one_way_reps
    );
    let fmt_rates = |r: &[f64]| {
        let mid = r.get(r.len() / 2).copied().unwrap_or(0.0);
        (
            format!(
                "{:>9.0} / {:>9.0} / {:>9.0}",
                r.first().copied().unwrap_or(0.0),
                mid,
                r.last().copied().unwrap_or(0.0)
            ),
            mid,
        )
    };
    let (pola_text, pola_mid) = fmt_rates(&pola_one_way);
    println!("{:<34} {pola_text}", "pola op:deliver-only");
    if let Some((_, _, _, r)) = &capnp {
        let (text, mid) = fmt_rates(r);
        println!("{:<34} {text}", "capnp-rpc calls (not awaited)");
        println!("pola/capnp throughput: {:.2}x", pola_mid / mid);
    }

    // --- through a relay adding 2 ms each way: count round trips --------
    println!();
    println!(
        "== through a TCP relay adding {} ms each way ({} runs each; round trips counted from the relay's log)",
        PROXY_DELAY.as_millis(),
        sz.proxy_iters
    );
    println!(
        "{:<10} {:<18} {:>9} {:>7} {:>11} {:>9} {:>13} {:>9}",
        "system",
        "workload",
        "median",
        "vs 1 RT",
        "round trips",
        "B on path",
        "B incl. after",
        "segments"
    );
    println!(
        "(round trips: client->server flights answered before the result was in hand; B on path: bytes up/down\n while the call was open; B incl. after / segments: up/down until the next call, GC notices included)"
    );
    let ops = [
        ("round trip", Op::RoundTrip),
        ("pipelined chain", Op::ChainPipelined),
        ("sequential chain", Op::ChainSequential),
    ];

    let mut raw = RawPingPong::start(req_len, resp_len, via_proxy(PROXY_DELAY, &slot))?;
    let relay = take(&slot)?;
    let spans = (0..sz.proxy_iters)
        .map(|_| raw.round_trip())
        .collect::<std::io::Result<Vec<_>>>()?;
    let p = proxied(&relay, &spans);
    print_proxied("raw TCP", "ping-pong", &p, p.latency);
    drop(raw);

    let pola = PolaPair::start(via_proxy(PROXY_DELAY, &slot))?;
    let relay = take(&slot)?;
    let mut single = Duration::ZERO;
    for (name, op) in ops {
        let spans = pola.timed(op, sz.proxy_iters, PROXY_PAUSE)?;
        let p = proxied(&relay, &spans);
        if op == Op::RoundTrip {
            single = p.latency;
        }
        print_proxied("pola", name, &p, single);
    }
    pola.stop();

    #[cfg(has_capnp)]
    {
        use pola_bench_ocapn::capnproto::CapnpPair;
        let c = CapnpPair::start(via_proxy(PROXY_DELAY, &slot))?;
        let relay = take(&slot)?;
        let mut single = Duration::ZERO;
        for (name, op) in ops {
            let spans = c.timed(op, sz.proxy_iters, PROXY_PAUSE)?;
            let p = proxied(&relay, &spans);
            if op == Op::RoundTrip {
                single = p.latency;
            }
            print_proxied("capnp-rpc", name, &p, single);
        }
    }
    #[cfg(not(has_capnp))]
    println!("capnp-rpc: not compiled in (the `capnp` tool was missing at build time)");

    // The floor is the faster of the two blocking ping-pongs: on a
    // virtual machine either can lose tens of microseconds to where the
    // scheduler put its two threads, and the lucky one is the fair floor.
    let floor = raw_rt.median.min(raw_tokio_rt.median);
    let within = |d: Duration| {
        let r = d.as_secs_f64() / floor.as_secs_f64();
        format!("{r:.2}x ({})", if r <= 1.5 { "met" } else { "NOT met" })
    };
    println!();
    println!(
        "targets (issue 3 §6): >= 150000 deliver-only msgs/s: {:.0} ({})",
        pola_mid,
        if pola_mid >= 150_000.0 {
            "met"
        } else {
            "NOT met"
        },
    );
    println!(
        "  round trip <= 1.5x raw ping-pong (floor {}): driven in vat A {}; from an application thread {}; (vs the raw ping-pong that polls 50 us too: {})",
        us(floor),
        within(pola_in_vat.median),
        within(pola_rt.median),
        ratio(pola_in_vat.median, raw_poll_rt.median),
    );
    println!(
        "  ahead of capnp-rpc: {}",
        match &capnp {
            Some((rt, _, _, r)) => {
                let mid = r.get(r.len() / 2).copied().unwrap_or(0.0);
                let yes = |b: bool| if b { "yes" } else { "no" };
                format!(
                    "round trip driven in vat {}, from an application thread {}, throughput {}",
                    yes(pola_in_vat.median < rt.median),
                    yes(pola_rt.median < rt.median),
                    yes(pola_mid > mid)
                )
            }
            None => "not measured".into(),
        }
    );
    println!(
        "(total bench time {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
