//! The same workloads over Cap'n Proto RPC (`capnp-rpc`, two-party vat
//! network) on 127.0.0.1.
//!
//! The server and the client each run a single-threaded tokio runtime with
//! a `LocalSet` on their own thread (capnp-rpc is `!Send`), which is how
//! capnp-rpc is meant to be used. The timed loops run on the client thread
//! itself, so no cross-thread hop is charged to capnp; the caller only
//! collects the spans.
//!
//! One-way notes: Cap'n Proto has no fire-and-forget call (every `Call`
//! gets a `Return`; `-> stream` methods need `stream.capnp`, which Debian's
//! `capnproto` package does not ship). The client sends all `n` notes
//! without awaiting any, the clock stops when the server has processed the
//! last, and the returns are drained after.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty};
use futures::StreamExt as _;
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{TokioAsyncReadCompatExt as _, TokioAsyncWriteCompatExt as _};

use crate::bench_capnp::bench;
use crate::{Notes, Op, PAYLOAD, Span};

const TIMEOUT: Duration = Duration::from_secs(30);

struct BenchImpl {
    notes: Arc<Notes>,
    me: std::cell::RefCell<Option<bench::Client>>,
}

impl BenchImpl {
    fn me(&self) -> Result<bench::Client, capnp::Error> {
        self.me
            .borrow()
            .clone()
            .ok_or_else(|| capnp::Error::failed("no self".into()))
    }
}

impl bench::Server for BenchImpl {
    async fn echo(
        self: Rc<Self>,
        params: bench::EchoParams,
        mut results: bench::EchoResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?.get_payload()?;
        results.get().set_payload(p);
        Ok(())
    }

    async fn note(
        self: Rc<Self>,
        params: bench::NoteParams,
        _: bench::NoteResults,
    ) -> Result<(), capnp::Error> {
        let _ = params.get()?.get_n();
        self.notes.hit();
        Ok(())
    }

    async fn a(
        self: Rc<Self>,
        _: bench::AParams,
        mut results: bench::AResults,
    ) -> Result<(), capnp::Error> {
        results.get().set_next(self.me()?);
        Ok(())
    }

    async fn b(
        self: Rc<Self>,
        _: bench::BParams,
        mut results: bench::BResults,
    ) -> Result<(), capnp::Error> {
        results.get().set_next(self.me()?);
        Ok(())
    }

    async fn c(
        self: Rc<Self>,
        _: bench::CParams,
        mut results: bench::CResults,
    ) -> Result<(), capnp::Error> {
        results.get().set_v(42);
        Ok(())
    }
}

enum Cmd {
    Timed {
        op: Op,
        iters: usize,
        pause: Duration,
        reply: oneshot::Sender<Result<Vec<Span>>>,
    },
    OneWay {
        n: u64,
        reply: oneshot::Sender<Result<Instant>>,
    },
}

/// A capnp-rpc client connected to a capnp-rpc server hosting the bench
/// object.
#[derive(Debug)]
pub struct CapnpPair {
    cmds: mpsc::UnboundedSender<Cmd>,
    notes: Arc<Notes>,
    notes_done: std::sync::mpsc::Receiver<Instant>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

fn local_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn serve(listener: std::net::TcpListener, notes: Arc<Notes>) -> Result<()> {
    let rt = local_runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (r, w) = stream.into_split();
            let network = twoparty::VatNetwork::new(
                r.compat(),
                w.compat_write(),
                Side::Server,
                Default::default(),
            );
            let server = Rc::new(BenchImpl {
                notes: notes.clone(),
                me: std::cell::RefCell::new(None),
            });
            let client: bench::Client = capnp_rpc::new_client_from_rc(server.clone());
            *server.me.borrow_mut() = Some(client.clone());
            let rpc = RpcSystem::new(Box::new(network), Some(client.client));
            tokio::task::spawn_local(rpc);
        }
    })
}

async fn once(x: &bench::Client, op: Op) -> Result<Span> {
    let start = Instant::now();
    match op {
        Op::RoundTrip => {
            let mut req = x.echo_request();
            req.get().set_payload(&PAYLOAD);
            let resp = req.send().promise.await?;
            let end = Instant::now();
            if resp.get()?.get_payload()? != PAYLOAD {
                bail!("echo answered other bytes");
            }
            Ok(Span { start, end })
        }
        Op::ChainPipelined => {
            let ra = x.a_request().send();
            let rb = ra.pipeline.get_next().b_request().send();
            let rc = rb.pipeline.get_next().c_request().send();
            let v = rc.promise.await?.get()?.get_v();
            let end = Instant::now();
            // The first two answers arrived before the third; collect them.
            ra.promise.await?;
            rb.promise.await?;
            if v != 42 {
                bail!("chain answered {v}");
            }
            Ok(Span { start, end })
        }
        Op::ChainSequential => {
            let r1 = x.a_request().send().promise.await?;
            let n1 = r1.get()?.get_next()?;
            let r2 = n1.b_request().send().promise.await?;
            let n2 = r2.get()?.get_next()?;
            let v = n2.c_request().send().promise.await?.get()?.get_v();
            let end = Instant::now();
            if v != 42 {
                bail!("chain answered {v}");
            }
            Ok(Span { start, end })
        }
    }
}

async fn one_way(x: &bench::Client, n: u64) -> Result<Instant> {
    let start = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        let mut req = x.note_request();
        req.get().set_n(i64::try_from(i)?);
        pending.push(req.send().promise);
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    Ok(start)
}

fn client(
    dial: SocketAddr,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    ready: std::sync::mpsc::Sender<Result<()>>,
) -> Result<()> {
    let rt = local_runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let setup = async {
            let stream = tokio::net::TcpStream::connect(dial).await?;
            stream.set_nodelay(true)?;
            let (r, w) = stream.into_split();
            let network = Box::new(twoparty::VatNetwork::new(
                r.compat(),
                w.compat_write(),
                Side::Client,
                Default::default(),
            ));
            let mut rpc = RpcSystem::new(network, None);
            let x: bench::Client = rpc.bootstrap(Side::Server);
            tokio::task::spawn_local(rpc);
            // One call so the connection is up before timing starts.
            once(&x, Op::RoundTrip).await?;
            Ok::<_, anyhow::Error>(x)
        };
        let x = match setup.await {
            Ok(x) => {
                let _ = ready.send(Ok(()));
                x
            }
            Err(e) => {
                let _ = ready.send(Err(anyhow!("{e}")));
                return Ok(());
            }
        };
        while let Some(cmd) = cmds.recv().await {
            match cmd {
                Cmd::Timed {
                    op,
                    iters,
                    pause,
                    reply,
                } => {
                    let mut spans = Vec::with_capacity(iters);
                    let mut failed = None;
                    for _ in 0..iters {
                        match once(&x, op).await {
                            Ok(s) => spans.push(s),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                    let _ = reply.send(match failed {
                        Some(e) => Err(e),
                        None => Ok(spans),
                    });
                }
                Cmd::OneWay { n, reply } => {
                    let _ = reply.send(one_way(&x, n).await);
                }
            }
        }
        Ok(())
    })
}

impl CapnpPair {
    /// Starts a server and a client thread; the client dials
    /// `route(server address)` and makes one call before returning.
    ///
    /// # Errors
    /// Binding, the route, connecting or the first call fails.
    pub fn start(route: impl FnOnce(SocketAddr) -> std::io::Result<SocketAddr>) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (notes, notes_done) = Notes::new();
        let server_notes = notes.clone();
        std::thread::Builder::new()
            .name("capnp-server".into())
            .spawn(move || serve(listener, server_notes))?;
        let dial = route(addr)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("capnp-client".into())
            .spawn(move || client(dial, rx, ready_tx))?;
        ready_rx
            .recv_timeout(TIMEOUT)
            .map_err(|_| anyhow!("capnp client did not start"))??;
        Ok(CapnpPair {
            cmds: tx,
            notes,
            notes_done,
        })
    }

    /// Runs `op` `iters` times on the client thread, pausing `pause`
    /// between runs.
    ///
    /// # Errors
    /// A call fails or the client thread is gone.
    pub fn timed(&self, op: Op, iters: usize, pause: Duration) -> Result<Vec<Span>> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Timed {
                op,
                iters,
                pause,
                reply,
            })
            .map_err(|_| anyhow!("capnp client gone"))?;
        rx.blocking_recv()
            .map_err(|_| anyhow!("capnp client gone"))?
    }

    /// Sends `n` notes and returns the time from the first send until the
    /// server has processed the last.
    ///
    /// # Errors
    /// A call fails or not all notes arrive.
    pub fn one_way(&self, n: u64) -> Result<Duration> {
        while self.notes_done.try_recv().is_ok() {}
        self.notes.arm(n);
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::OneWay { n, reply })
            .map_err(|_| anyhow!("capnp client gone"))?;
        let start = rx
            .blocking_recv()
            .map_err(|_| anyhow!("capnp client gone"))??;
        let end = self
            .notes_done
            .recv_timeout(TIMEOUT)
            .map_err(|_| anyhow!("notes did not all arrive"))?;
        Ok(end.saturating_duration_since(start))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_answers() {
        let p = CapnpPair::start(Ok).unwrap();
        for op in [Op::RoundTrip, Op::ChainPipelined, Op::ChainSequential] {
            assert_eq!(p.timed(op, 3, Duration::ZERO).unwrap().len(), 3);
        }
        assert!(p.one_way(100).unwrap() > Duration::ZERO);
    }
}
