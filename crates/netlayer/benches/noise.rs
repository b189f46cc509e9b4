//! Noise netlayer benchmarks over loopback TCP, with `tcp-testing-only` in
//! the same run for comparison:
//! - `handshake`: a full authenticated dial (TCP connect, three Noise
//!   messages, two Ed25519 signatures and two verifications), and the
//!   handshake's CPU cost alone (no sockets);
//! - `throughput_1KiB`: 1000 pipelined 1 KiB messages one way;
//! - `round_trip_1KiB`: a 1 KiB message echoed back.
//!
//! After criterion's report, a summary prints MB/s, msgs/s and round-trip
//! times of both netlayers and the encrypted / testing-only ratios.
//!
//! `cargo bench -p pola-netlayer --bench noise`
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use pola_netlayer::noise::{Identity, handshake};
use pola_netlayer::{MessageReader, MessageWriter, Netlayer, NoiseNetlayer, TcpTestingOnly};
use tokio::runtime::Runtime;

const MSG: usize = 1024;
const BATCH: usize = 1000;

/// Mean time per iteration of each measured function (for the summary).
static MEANS: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(name: &str, elapsed: Duration, iters: u64) {
    let mut m = MEANS.lock().unwrap();
    let e = m.entry(name.to_owned()).or_default();
    e.0 += elapsed;
    e.1 += iters;
}

fn mean(name: &str) -> Option<Duration> {
    let m = MEANS.lock().unwrap();
    let (d, n) = m.get(name)?;
    (*n > 0).then(|| *d / u32::try_from(*n).unwrap_or(u32::MAX))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

type Halves = (
    Box<dyn MessageWriter>,
    Box<dyn MessageReader>,
    Box<dyn MessageWriter>,
    Box<dyn MessageReader>,
);

/// A connected pair over `kind` ("noise" or "tcp"): (a.writer, a.reader,
/// b.writer, b.reader), a having dialled b. The netlayers are leaked so
/// their listeners outlive the bench.
fn pair(rt: &Runtime, kind: &str) -> Halves {
    rt.block_on(async {
        let (server, client): (Box<dyn Netlayer>, Box<dyn Netlayer>) = if kind == "noise" {
            (
                Box::new(
                    NoiseNetlayer::bind(Identity::generate().unwrap(), "127.0.0.1", 0)
                        .await
                        .unwrap(),
                ),
                Box::new(
                    NoiseNetlayer::bind(Identity::generate().unwrap(), "127.0.0.1", 0)
                        .await
                        .unwrap(),
                ),
            )
        } else {
            (
                Box::new(TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap()),
                Box::new(TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap()),
            )
        };
        let server: &'static dyn Netlayer = Box::leak(server);
        let client: &'static dyn Netlayer = Box::leak(client);
        let to = server.location().clone();
        let (a, b) = tokio::join!(client.connect(&to), server.accept());
        let (a, b) = (a.unwrap(), b.unwrap());
        (a.writer, a.reader, b.writer, b.reader)
    })
}

async fn read_n(r: &mut dyn MessageReader, n: usize) {
    let mut got = 0;
    while got < n {
        got += r.recv().await.unwrap().unwrap().len();
    }
}

fn bench_handshake(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("handshake");
    let (server, client) = rt.block_on(async {
        let server = NoiseNetlayer::bind(Identity::generate().unwrap(), "127.0.0.1", 0)
            .await
            .unwrap();
        let client = NoiseNetlayer::bind(Identity::generate().unwrap(), "127.0.0.1", 0)
            .await
            .unwrap();
        (server, client)
    });
    let server: &'static NoiseNetlayer = Box::leak(Box::new(server));
    // Accept and drop, so the backlog never fills.
    rt.spawn(async move { while server.accept().await.is_ok() {} });
    let to = server.location().clone();
    g.bench_function("noise_dial_loopback", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let c = client.connect_authenticated(&to).await.unwrap();
                    std::hint::black_box(c.peer);
                }
                let e = start.elapsed();
                record("handshake", e, iters);
                e
            })
        });
    });
    let tcp = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let tcp: &'static TcpTestingOnly = Box::leak(Box::new(tcp));
    rt.spawn(async move { while tcp.accept().await.is_ok() {} });
    let to_tcp = tcp.location().clone();
    g.bench_function("tcp_testing_only_connect", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(tcp.connect(&to_tcp).await.unwrap());
                }
                let e = start.elapsed();
                record("tcp_connect", e, iters);
                e
            })
        });
    });
    let a = Identity::generate().unwrap();
    let bid = Identity::generate().unwrap();
    g.bench_function("noise_cpu_only", |b| {
        b.iter(|| {
            let (ia, syn) = handshake::initiate(&a, bid.public_key()).unwrap();
            let (rb, synack) = handshake::respond(&bid, &syn).unwrap();
            let (ea, ack) = ia.read_synack(&synack).unwrap();
            let eb = rb.read_ack(&ack).unwrap();
            std::hint::black_box((ea.peer, eb.peer))
        });
    });
    g.finish();

    // The AEAD alone: seal and open one 1 KiB transport frame.
    let mut g = c.benchmark_group("cipher");
    g.throughput(Throughput::Bytes(MSG as u64));
    let (ia, syn) = handshake::initiate(&a, bid.public_key()).unwrap();
    let (rb, synack) = handshake::respond(&bid, &syn).unwrap();
    let (ea, ack) = ia.read_synack(&synack).unwrap();
    let eb = rb.read_ack(&ack).unwrap();
    let plain = vec![0x5au8; MSG];
    let mut sealed = vec![0u8; MSG + 16];
    let mut opened = vec![0u8; MSG + 16];
    let mut nonce = 0u64;
    g.bench_function("seal_open_1KiB", |b| {
        b.iter(|| {
            let n = ea
                .transport
                .write_message(nonce, &plain, &mut sealed)
                .unwrap();
            let m = eb
                .transport
                .read_message(nonce, &sealed[..n], &mut opened)
                .unwrap();
            nonce += 1;
            std::hint::black_box(m)
        });
    });
    g.finish();
}

fn bench_throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("throughput_1KiB");
    g.throughput(Throughput::Bytes((MSG * BATCH) as u64));
    for kind in ["tcp", "noise"] {
        let (aw, _ar, _bw, br) = pair(&rt, kind);
        let mut halves = Some((aw, br));
        let msg = vec![0x5au8; MSG];
        g.bench_function(kind, |b| {
            b.iter_custom(|iters| {
                let (mut w, mut r) = halves.take().unwrap();
                let msg = msg.clone();
                let (elapsed, w, r) = rt.block_on(async move {
                    let start = Instant::now();
                    let total = MSG * BATCH * usize::try_from(iters).unwrap();
                    let recv = tokio::spawn(async move {
                        read_n(r.as_mut(), total).await;
                        r
                    });
                    for _ in 0..iters {
                        for _ in 0..BATCH {
                            w.send(&msg).await.unwrap();
                        }
                    }
                    let r = recv.await.unwrap();
                    (start.elapsed(), w, r)
                });
                halves = Some((w, r));
                record(&format!("throughput_{kind}"), elapsed, iters);
                elapsed
            });
        });
    }
    g.finish();
}

fn bench_round_trip(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("round_trip_1KiB");
    for kind in ["tcp", "noise"] {
        let (mut aw, mut ar, mut bw, mut br) = pair(&rt, kind);
        // b echoes every 1 KiB it receives.
        rt.spawn(async move {
            let mut pending = 0usize;
            while let Ok(Some(chunk)) = br.recv().await {
                pending += chunk.len();
                while pending >= MSG {
                    pending -= MSG;
                    if bw.send(&[0xa5u8; MSG]).await.is_err() {
                        return;
                    }
                }
            }
        });
        let msg = vec![0x5au8; MSG];
        g.bench_function(kind, |b| {
            b.iter_custom(|iters| {
                let e = rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        aw.send(&msg).await.unwrap();
                        read_n(ar.as_mut(), MSG).await;
                    }
                    start.elapsed()
                });
                record(&format!("rtt_{kind}"), e, iters);
                e
            });
        });
    }
    g.finish();
}

fn summary() {
    let per_sec = |d: Duration| 1.0 / d.as_secs_f64();
    println!("\n== noise netlayer summary (means over all measured iterations)");
    if let (Some(hs), Some(tc)) = (mean("handshake"), mean("tcp_connect")) {
        println!(
            "handshake (dial incl. TCP connect): {:.3} ms; plain TCP connect: {:.3} ms",
            hs.as_secs_f64() * 1e3,
            tc.as_secs_f64() * 1e3
        );
    }
    if let (Some(t), Some(n)) = (mean("throughput_tcp"), mean("throughput_noise")) {
        let bytes = (MSG * BATCH) as f64;
        let (tb, nb) = (bytes * per_sec(t), bytes * per_sec(n));
        println!(
            "throughput 1 KiB msgs: tcp-testing-only {:.1} MB/s ({:.0} msgs/s); noise {:.1} MB/s ({:.0} msgs/s); noise/tcp = {:.0} %",
            tb / 1e6,
            tb / MSG as f64,
            nb / 1e6,
            nb / MSG as f64,
            100.0 * nb / tb
        );
    }
    if let (Some(t), Some(n)) = (mean("rtt_tcp"), mean("rtt_noise")) {
        println!(
            "round trip 1 KiB: tcp-testing-only {:.1} µs; noise {:.1} µs; noise/tcp = {:.2}x",
            t.as_secs_f64() * 1e6,
            n.as_secs_f64() * 1e6,
            n.as_secs_f64() / t.as_secs_f64()
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_handshake(&mut c);
    bench_throughput(&mut c);
    bench_round_trip(&mut c);
    c.final_summary();
    summary();
}
