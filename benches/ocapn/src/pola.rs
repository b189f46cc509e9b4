//! Two pola peers (one vat and one tokio runtime each, as if in two
//! processes) joined by `tcp-testing-only` on 127.0.0.1.
//!
//! Peer B hosts the bench object: `ping x` answers `x`, `note n` counts a
//! one-way note ([`crate::Notes`]), `a` and `b` answer the object itself,
//! `c` answers 42. Peer A holds a far reference to it, enlivened from a
//! sturdyref, optionally dialled through a proxy. The workloads run from a
//! thread outside both vats with `Vat::send` / `Vat::block_on`, the way an
//! application thread uses pola.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use pola_captp::locator::{Hints, PeerLocator, SturdyRef};
use pola_netlayer::{Identity, Netlayer, NoiseNetlayer, TcpTestingOnly};
use pola_peer::{Peer, PeerConfig};
use pola_syrup::Value;
use pola_vat::{Ref, Resolver, Turn, Val, Vat, error, from_fn};

use crate::{Notes, Op, PAYLOAD, Span};

/// How long any single awaited answer may take before the bench gives up.
const TIMEOUT: Duration = Duration::from_secs(30);

struct Node {
    rt: tokio::runtime::Runtime,
    vat: Vat,
    peer: Peer,
}

impl Node {
    fn start(name: &str, noise: bool) -> Result<Node> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("rt-{name}"))
            .enable_all()
            .build()?;
        let net: Arc<dyn Netlayer> = if noise {
            let id = Identity::generate()?;
            Arc::new(rt.block_on(NoiseNetlayer::bind(id, "127.0.0.1", 0))?)
        } else {
            Arc::new(rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0))?)
        };
        let _guard = rt.enter();
        let vat = Vat::new(name);
        let peer = Peer::start(vat.clone(), vec![net], PeerConfig::default())?;
        Ok(Node { rt, vat, peer })
    }

    fn stop(self) {
        self.rt.block_on(self.peer.shutdown());
        self.vat.shutdown();
        self.rt.shutdown_timeout(Duration::from_secs(1));
    }
}

/// Peer A with a far reference to peer B's bench object.
pub struct PolaPair {
    a: Node,
    b: Node,
    x: Ref,
    local: Ref,
    payload: Val,
    notes: Arc<Notes>,
    notes_done: std::sync::mpsc::Receiver<Instant>,
}

impl std::fmt::Debug for PolaPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolaPair")
    }
}

impl PolaPair {
    /// Starts both peers; A dials B at `route(B's address)` and fetches the
    /// bench object (awaited, so the session is up when this returns).
    ///
    /// # Errors
    /// A peer cannot start, the route fails, or the fetch does not answer.
    pub fn start(route: impl FnOnce(SocketAddr) -> std::io::Result<SocketAddr>) -> Result<Self> {
        Self::start_with(route, false)
    }

    /// Like [`PolaPair::start`] with no route, over the encrypted `noise`
    /// netlayer instead of `tcp-testing-only`.
    ///
    /// # Errors
    /// As [`PolaPair::start`].
    pub fn start_noise() -> Result<Self> {
        Self::start_with(Ok, true)
    }

    fn start_with(
        route: impl FnOnce(SocketAddr) -> std::io::Result<SocketAddr>,
        noise: bool,
    ) -> Result<Self> {
        let a = Node::start("bench-a", noise)?;
        let b = Node::start("bench-b", noise)?;
        let (notes, notes_done) = Notes::new();
        let counter = notes.clone();
        let object = b.vat.spawn(from_fn(move |cx, method, args| match method {
            "ping" => Ok(args.into_iter().next().unwrap_or_else(Value::null)),
            "note" => {
                counter.hit();
                Ok(Value::null())
            }
            "a" | "b" => cx.me().map(Value::Ref).ok_or_else(|| error("no self")),
            "c" => Ok(Value::int(42i64)),
            _ => Err(error("no such method")),
        }));
        let sturdy = b.peer.mint_sturdyref(object.clone())?;
        let loc = sturdy.peer.clone();
        let port: u16 = loc
            .hints()
            .get("port")
            .context("no port hint")?
            .parse()
            .context("bad port hint")?;
        let dial = route(SocketAddr::from(([127, 0, 0, 1], port)))?;
        let mut hints = std::collections::BTreeMap::new();
        hints.insert("host".to_owned(), dial.ip().to_string());
        hints.insert("port".to_owned(), dial.port().to_string());
        let via = SturdyRef {
            peer: PeerLocator::new(loc.transport(), loc.designator(), Hints::Map(hints))?,
            swiss: sturdy.swiss,
        };
        let x = a.peer.enliven(via);
        let x = match a.vat.block_on(&x, TIMEOUT) {
            Ok(Value::Ref(r)) => r,
            Ok(other) => bail!("fetch answered a non-reference: {other:?}"),
            Err(e) => bail!("fetch failed: {e}"),
        };
        Ok(PolaPair {
            a,
            b,
            x,
            local: object,
            payload: Value::bytes(PAYLOAD.to_vec()),
            notes,
            notes_done,
        })
    }

    fn await_answer(&self, r: &Ref) -> Result<Val> {
        self.a.vat.block_on(r, TIMEOUT).map_err(|e| anyhow!("{e}"))
    }

    fn call(&self, target: &Ref, method: &'static str, args: Vec<Val>) -> Result<Val> {
        let answer = self.a.vat.send(target, method, args);
        self.await_answer(&answer)
    }

    fn once(&self, op: Op) -> Result<Span> {
        let a = &self.a.vat;
        let start = Instant::now();
        match op {
            Op::RoundTrip => {
                let got = self.call(&self.x, "ping", vec![self.payload.clone()])?;
                let end = Instant::now();
                if got != self.payload {
                    bail!("echo answered {got:?}");
                }
                Ok(Span { start, end })
            }
            Op::ChainPipelined => {
                let p1 = a.send(&self.x, "a", vec![]);
                let p2 = a.send(&p1, "b", vec![]);
                let p3 = a.send(&p2, "c", vec![]);
                let got = self.await_answer(&p3)?;
                let end = Instant::now();
                if got != Value::int(42i64) {
                    bail!("chain answered {got:?}");
                }
                Ok(Span { start, end })
            }
            Op::ChainSequential => {
                let Value::Ref(r1) = self.call(&self.x, "a", vec![])? else {
                    bail!("a answered a non-reference");
                };
                let Value::Ref(r2) = self.call(&r1, "b", vec![])? else {
                    bail!("b answered a non-reference");
                };
                let got = self.call(&r2, "c", vec![])?;
                let end = Instant::now();
                if got != Value::int(42i64) {
                    bail!("chain answered {got:?}");
                }
                Ok(Span { start, end })
            }
        }
    }

    /// Runs `op` `iters` times, sleeping `pause` between runs (to let
    /// trailing traffic such as GC notices settle), and returns each run's
    /// span.
    ///
    /// # Errors
    /// An answer is wrong, broken or late.
    pub fn timed(&self, op: Op, iters: usize, pause: Duration) -> Result<Vec<Span>> {
        let mut spans = Vec::with_capacity(iters);
        for _ in 0..iters {
            spans.push(self.once(op)?);
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        Ok(spans)
    }

    /// Round trips driven from inside vat A: a turn sends `ping`, a `when`
    /// callback on the answer records the span and sends the next, `iters`
    /// times. Unlike [`PolaPair::timed`] no thread outside the vats is
    /// woken per call.
    ///
    /// # Errors
    /// An answer breaks or the run does not finish within the timeout.
    pub fn in_vat_round_trips(&self, iters: usize) -> Result<Vec<Span>> {
        let spans = Arc::new(std::sync::Mutex::new(Vec::with_capacity(iters)));
        let (done, done_resolver) = self.a.vat.promise();
        let (x, payload, out) = (self.x.clone(), self.payload.clone(), spans.clone());
        self.a.vat.run(move |cx| {
            step(cx, x, payload, iters, out, done_resolver);
            Ok(Value::null())
        });
        self.a
            .vat
            .block_on(&done, TIMEOUT.saturating_mul(4))
            .map_err(|e| anyhow!("{e}"))?;
        let spans = std::mem::take(&mut *spans.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(spans)
    }

    /// Round trips from this thread through vat A to the same object in
    /// vat B as a plain inter-vat reference: no CapTP, no sockets. The
    /// difference to [`Op::RoundTrip`] is what the network path costs.
    ///
    /// # Errors
    /// An answer is wrong, broken or late.
    pub fn in_process_round_trips(&self, iters: usize) -> Result<Vec<Span>> {
        let mut spans = Vec::with_capacity(iters);
        for _ in 0..iters {
            let start = Instant::now();
            let got = self.call(&self.local, "ping", vec![self.payload.clone()])?;
            let end = Instant::now();
            if got != self.payload {
                bail!("echo answered {got:?}");
            }
            spans.push(Span { start, end });
        }
        Ok(spans)
    }

    /// Sends `n` `op:deliver-only` notes from A and returns the time from
    /// the first send until B has processed the last.
    ///
    /// # Errors
    /// Not all notes arrive within the timeout.
    pub fn one_way(&self, n: u64) -> Result<Duration> {
        while self.notes_done.try_recv().is_ok() {}
        self.notes.arm(n);
        let start = Instant::now();
        for i in 0..n {
            self.a
                .vat
                .send_only(&self.x, "note", vec![Value::int(i64::try_from(i)?)]);
        }
        let end = self
            .notes_done
            .recv_timeout(TIMEOUT)
            .map_err(|_| anyhow!("notes did not all arrive"))?;
        Ok(end.saturating_duration_since(start))
    }

    /// Shuts both peers down.
    pub fn stop(self) {
        drop(self.x);
        drop(self.local);
        self.a.stop();
        self.b.stop();
    }
}

/// One in-vat round trip, then the next from its `when` callback.
fn step(
    cx: &mut Turn<'_>,
    x: Ref,
    payload: Val,
    left: usize,
    spans: Arc<std::sync::Mutex<Vec<Span>>>,
    done: Resolver,
) {
    if left == 0 {
        cx.resolve(&done, Value::null());
        return;
    }
    let start = Instant::now();
    let answer = cx.send(&x, "ping", vec![payload.clone()]);
    cx.when(&answer, move |cx, got| {
        let end = Instant::now();
        if let Err(e) = got {
            cx.break_promise(&done, e);
            return Ok(Value::null());
        }
        spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Span { start, end });
        step(cx, x, payload, left - 1, spans, done);
        Ok(Value::null())
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_answers() {
        let p = PolaPair::start(Ok).unwrap();
        for op in [Op::RoundTrip, Op::ChainPipelined, Op::ChainSequential] {
            assert_eq!(p.timed(op, 3, Duration::ZERO).unwrap().len(), 3);
        }
        assert_eq!(p.in_vat_round_trips(3).unwrap().len(), 3);
        assert_eq!(p.in_process_round_trips(3).unwrap().len(), 3);
        assert!(p.one_way(100).unwrap() > Duration::ZERO);
        p.stop();
        let n = PolaPair::start_noise().unwrap();
        assert_eq!(n.in_vat_round_trips(3).unwrap().len(), 3);
        assert_eq!(n.timed(Op::RoundTrip, 3, Duration::ZERO).unwrap().len(), 3);
        n.stop();
    }
}
