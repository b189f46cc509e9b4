//! `pola ocapn test-peer` and `pola call`: OCapN from the command line.
//!
//! - [`test_peer`] hosts the objects the public OCapN test suite expects, on
//!   `tcp-testing-only` at 127.0.0.1, speaking the suite's dialect (either
//!   branch: its GC labels, and fire-and-forget as the suite shows it,
//!   `pola_captp::Dialect::AutoSuite`); it prints
//!   its `ocapn://` locator as the first line of stdout and serves until
//!   killed.
//! - [`call`] enlivens a sturdyref URI, sends it one message and prints the
//!   answer in Syrup's text form.
//!
//! `tcp-testing-only` is insecure by design (no encryption, no
//! authentication); use these against test peers only.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use pola_captp::locator::SturdyRef;
use pola_peer::{Peer, PeerConfig};
use pola_syrup::Value;
use pola_vat::{Ref, Val, Vat, error_message};

/// How long `pola call` waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs the OCapN test peer on 127.0.0.1:`port` (0 picks a free port):
/// prints its locator as the first line of stdout, then serves until the
/// process is killed.
///
/// # Errors
/// The port cannot be bound or stdout cannot be written.
pub fn test_peer(port: u16) -> Result<()> {
    runtime()?.block_on(async move {
        let served = pola_test_peer::serve("127.0.0.1", port, PeerConfig::test_suite())
            .await
            .with_context(|| format!("starting the test peer on port {port}"))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", served.peer.location().to_uri())?;
        out.flush()?;
        drop(out);
        served.peer.stopped().await;
        Ok(())
    })
}

/// Enlivens the sturdyref `uri`, sends it `method` with `args` (each parsed
/// as Syrup text, e.g. `42`, `"hi"`, `'sym`, `[1 2]`) and prints the answer.
/// An empty `method` sends the arguments alone, with no method symbol.
///
/// # Errors
/// A bad URI or argument, an unreachable peer, a broken answer, or no
/// answer within 30 seconds.
pub fn call(uri: &str, method: &str, args: &[String]) -> Result<()> {
    let sturdy = SturdyRef::from_uri(uri).map_err(|e| anyhow!("bad sturdyref URI: {e}"))?;
    let args = args
        .iter()
        .map(|a| {
            pola_syrup::text::parse(a)
                .map(Value::with_refs::<Ref>)
                .map_err(|e| anyhow!("argument {a:?} is not Syrup text: {e}"))
        })
        .collect::<Result<Vec<Val>>>()?;
    let method = method.to_owned();
    let answer = runtime()?.block_on(async move {
        let net = pola_netlayer::TcpTestingOnly::bind("127.0.0.1", 0).await?;
        // A fresh ephemeral identity: the caller needs no lasting one.
        let identity = pola_netlayer::Identity::generate()?;
        let noise = pola_netlayer::NoiseNetlayer::bind(identity, &caller_host(&sturdy), 0).await?;
        // The first netlayer's location is the one announced to the far
        // side: put the target's transport first (a noise peer checks the
        // announced location against the authenticated key).
        let nets: Vec<Arc<dyn pola_netlayer::Netlayer>> =
            if sturdy.peer.transport() == pola_netlayer::noise::TRANSPORT {
                vec![Arc::new(noise), Arc::new(net)]
            } else {
                vec![Arc::new(net), Arc::new(noise)]
            };
        let vat = Vat::new("pola-call");
        let peer = Peer::start(vat.clone(), nets, PeerConfig::default())?;
        let target = peer.enliven(sturdy);
        let answer = vat.send(&target, method, args);
        let waiter = vat.clone();
        let outcome =
            tokio::task::spawn_blocking(move || waiter.block_on(&answer, CALL_TIMEOUT)).await?;
        peer.shutdown().await;
        vat.shutdown();
        Ok::<_, anyhow::Error>(outcome)
    })?;
    match answer {
        Ok(v) => {
            println!("{}", printable(v));
            Ok(())
        }
        Err(e) => match e.reason() {
            Some(reason) => match error_message(reason) {
                Some(m) => bail!("broken: {}", m.escape_debug()),
                None => bail!("broken: {}", printable(reason.clone())),
            },
            None => bail!("no answer: {e}"),
        },
    }
}

/// Where the caller listens for `noise`: loopback when the target is on
/// loopback, else every address (the far side only answers on the
/// connection we open; the listener matters for handoffs to us).
fn caller_host(sturdy: &SturdyRef) -> String {
    match sturdy.peer.hints() {
        pola_captp::locator::Hints::Map(h)
            if h.get("host").is_some_and(|v| v.starts_with("127.")) =>
        {
            "127.0.0.1".to_owned()
        }
        _ => "0.0.0.0".to_owned(),
    }
}

/// The value with every reference shown as `<ref>` (a reference has no
/// text form).
fn printable(v: Val) -> Value {
    match v.try_map_refs::<pola_syrup::NoRef, std::convert::Infallible>(&mut |_| {
        Ok(Value::record("ref", Vec::new()))
    }) {
        Ok(v) => v,
        Err(e) => match e {},
    }
}
