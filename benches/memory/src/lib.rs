//! A memory attack on a pola peer, in rounds, with the victim's memory
//! measured after each: the core of the `peer-memory` bench binary, and of
//! any test that wants the same attack at a small size.
//!
//! The attack (issue #11, "bounded memory per peer"): a hostile client opens
//! a real CapTP session over tcp-testing-only (the captp engine signs its
//! `op:start-session`), fetches the victim's echo object, and sends it
//! `op:deliver` messages whose arguments are many one-byte atoms (`t`), as
//! many as the victim's decoder accepts in one message. Each message names
//! an answer position and no resolver, and the client never sends
//! `op:gc-answers`: the victim keeps every echoed value in its answer table
//! for as long as the session lives, and sends nothing back for them. A
//! last small call with a resolver tells the client that every message was
//! handled (the echo handles one reference's messages in order).
//!
//! A round runs that attack from N sessions at once, measures the victim
//! while the sessions hold their answers ("held"), then closes every
//! connection abruptly (no `op:abort`), waits until the victim has dropped
//! every session, and measures again ("after"). Run several rounds on one
//! victim to see whether memory comes back.
//!
//! What is measured is up to the caller, through [`Probe`]: the bench
//! binary reads the resident set size (`VmRSS` in `/proc/<pid>/status`)
//! and, for an in-process victim, the live heap from a counting global
//! allocator. Nothing here asserts a figure.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use pola_captp::Dialect;
use pola_captp::QuestionPosition;
use pola_captp::locator::{Hints, PeerLocator, Swiss};
use pola_captp::session::{CapRef, Event, Session, SessionConfig};
use pola_peer::PeerConfig;
use pola_syrup::Value;
use pola_test_peer::{ECHO, Served};

/// How long any one step of the attack may take before it is an error.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// The most one-byte atoms one message can carry past the victim's default
/// decoder limit (`SessionConfig::new`: 256 Ki values in one message),
/// less the values the `op:deliver` record itself takes.
pub const MAX_ATOMS: usize = 262_000;

/// One round's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attack {
    /// Hostile sessions open at once.
    pub sessions: usize,
    /// Messages each session sends, answers kept.
    pub messages: usize,
    /// One-byte atoms in each message's arguments.
    pub atoms: usize,
}

impl Attack {
    /// The issue's attack: 40 messages of [`MAX_ATOMS`] atoms per session
    /// (10.5 MB on the wire per session).
    pub fn issue(sessions: usize) -> Attack {
        Attack {
            sessions,
            messages: 40,
            atoms: MAX_ATOMS,
        }
    }

    /// Bytes each session writes for its big messages (close to; the
    /// framing of each `op:deliver` adds a few dozen).
    pub fn wire_bytes_per_session(&self) -> usize {
        self.messages.saturating_mul(self.atoms)
    }
}

/// What a [`Probe`] reads from the victim at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measure {
    /// Resident set size in bytes, if known.
    pub rss: Option<u64>,
    /// Live heap bytes (allocated, not yet freed), if counted.
    pub live: Option<u64>,
}

/// Reads the victim's memory. Must be cheap enough to call every few
/// milliseconds (the peak is sampled).
pub trait Probe: Sync {
    /// The victim's memory now.
    fn measure(&self) -> Measure;
}

/// The resident set size of process `pid` (this process if `None`), in
/// bytes, from `VmRSS` in `/proc/<pid>/status`; `None` where there is no
/// such file (not Linux, or the process ended).
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// What one round saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundReport {
    /// The round's shape.
    pub attack: Attack,
    /// Before the first session opened.
    pub before: Measure,
    /// Once every session's messages were handled, answers held.
    pub held: Measure,
    /// The highest RSS sampled during the round (every 10 ms).
    pub peak_rss: Option<u64>,
    /// After every connection closed and the victim dropped every session.
    pub after: Measure,
    /// After that, once a well-behaved client made small calls until the
    /// live heap was back to `before` (within 2 MB), or 100 calls when
    /// there is no live count (see [`round`] and [`calls_until`]).
    pub released: Measure,
    /// How many calls that took (`None`: the live heap never came back,
    /// or there is no live count).
    pub release_calls: Option<usize>,
    /// Answers the victim held for the hostile sessions, where the victim
    /// could say (in-process only).
    pub answers_held: Option<usize>,
    /// The reasons of the victim's `op:abort`s, one per hostile session it
    /// aborted before that session's messages were all handled.
    pub aborted: Vec<String>,
}

/// How a hostile session's attack ended.
enum Ended {
    /// Every message was handled; the session holds its answers.
    Held(Box<HostileSession>),
    /// The victim aborted the session, for this reason.
    Aborted(String),
}

/// A victim the attack can reach.
pub trait Victim: Sync {
    /// `host:port` of its tcp-testing-only listener.
    fn addr(&self) -> String;
    /// Answers held across its sessions, if it can say.
    fn answers_held(&self) -> Option<usize>;
    /// Waits until it has dropped every session (or says it cannot know;
    /// then the caller only waits for memory to settle).
    ///
    /// # Errors
    /// Sessions are still listed after `timeout`.
    fn wait_no_sessions(&self, timeout: Duration) -> Result<()>;
}

/// The OCapN test peer (the same objects `pola ocapn test-peer` serves, on
/// tcp-testing-only at 127.0.0.1) in this process, on a runtime of its own.
#[derive(Debug)]
pub struct InProcessVictim {
    rt: tokio::runtime::Runtime,
    served: Served,
}

impl InProcessVictim {
    /// Starts it with `config` (use `PeerConfig::test_suite()` for what
    /// `pola ocapn test-peer` runs).
    ///
    /// # Errors
    /// The runtime or the listener cannot start.
    pub fn start(config: PeerConfig) -> Result<InProcessVictim> {
        // Two workers, as `pola ocapn test-peer` has.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the victim's runtime")?;
        let served = rt
            .block_on(pola_test_peer::serve("127.0.0.1", 0, config))
            .context("starting the victim peer")?;
        Ok(InProcessVictim { rt, served })
    }

    /// Stops the peer and its vat.
    pub fn stop(self) {
        self.rt.block_on(self.served.peer.shutdown());
        self.served.vat.shutdown();
    }

    fn stats(&self) -> Option<pola_peer::PeerStats> {
        self.rt.block_on(self.served.peer.stats()).ok()
    }
}

impl Victim for InProcessVictim {
    fn addr(&self) -> String {
        let h = self.served.peer.location().hints();
        format!(
            "{}:{}",
            h.get("host").unwrap_or("127.0.0.1"),
            h.get("port").unwrap_or("0")
        )
    }

    fn answers_held(&self) -> Option<usize> {
        Some(self.stats()?.sessions.iter().map(|s| s.answers).sum())
    }

    fn wait_no_sessions(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let listed = self
                .stats()
                .ok_or_else(|| anyhow!("the victim peer stopped"))?
                .sessions
                .len();
            if listed == 0 {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("{listed} sessions still listed {timeout:?} after every connection closed");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A victim in another process (`pola ocapn test-peer`, say), known by its
/// address; it cannot say when it dropped its sessions.
#[derive(Clone, Debug)]
pub struct ExternalVictim {
    /// `host:port` of its tcp-testing-only listener.
    pub addr: String,
}

impl ExternalVictim {
    /// The victim at the `ocapn://…` locator URI a test peer printed.
    ///
    /// # Errors
    /// Not a locator, or one with no host and port hints.
    pub fn from_uri(uri: &str) -> Result<ExternalVictim> {
        let loc =
            PeerLocator::from_uri(uri.trim()).map_err(|e| anyhow!("bad locator {uri:?}: {e}"))?;
        let hints = loc.hints();
        match (hints.get("host"), hints.get("port")) {
            (Some(h), Some(p)) => Ok(ExternalVictim {
                addr: format!("{h}:{p}"),
            }),
            _ => bail!("locator {uri:?} has no host and port hints"),
        }
    }
}

impl Victim for ExternalVictim {
    fn addr(&self) -> String {
        self.addr.clone()
    }
    fn answers_held(&self) -> Option<usize> {
        None
    }
    fn wait_no_sessions(&self, _timeout: Duration) -> Result<()> {
        Ok(())
    }
}

/// Starts a victim process (`command`, e.g. `pola ocapn test-peer`),
/// which must print its `ocapn://…` locator as its first line.
///
/// # Errors
/// It could not start, or its first line is not a locator with a host
/// and port.
pub fn spawn_victim(
    command: &mut std::process::Command,
) -> Result<(std::process::Child, ExternalVictim)> {
    use std::io::BufRead as _;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the victim")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    Ok((child, ExternalVictim::from_uri(&line)?))
}

/// Another process: RSS only.
#[derive(Debug)]
pub struct PidProbe(pub u32);

impl Probe for PidProbe {
    fn measure(&self) -> Measure {
        Measure {
            rss: rss_bytes(Some(self.0)),
            live: None,
        }
    }
}

/// Most calls [`round`] makes after the attack to get the victim's vat to
/// release what it held.
const RELEASE_CALLS: usize = 100;

/// How far above its level before the round the live heap may be and
/// count as back: buffers and table capacity that grew with the attack.
const RELEASE_SLACK: u64 = 2 << 20;

/// Stands in for the arguments while the client's engine encodes a
/// message; replaced by the atoms afterwards (encoding a value of 262 000
/// atoms per message would cost the attacker 20 MB each).
const SENTINEL: &[u8] = b"pola-bench-memory:atoms-go-here";

/// One hostile client session, driven by hand over a blocking socket.
#[derive(Debug)]
pub struct HostileSession {
    stream: TcpStream,
    client: Session,
    /// The echo, fetched once the session is open.
    echo: Option<QuestionPosition>,
    buf: Vec<u8>,
}

impl HostileSession {
    /// Connects to `addr`, opens a session as designator `name` (key seed
    /// from `seed`) and fetches the echo object (pipelined: not waited for).
    ///
    /// # Errors
    /// The connection fails or closes, or the session does not open.
    pub fn open(addr: &str, name: &str, seed: u64) -> Result<HostileSession> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(STEP_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let me = PeerLocator::new("tcp-testing-only", name, Hints::Absent)
            .map_err(|e| anyhow!("locator for {name:?}: {e}"))?;
        let mut key_seed = [0x5au8; 32];
        key_seed[..8].copy_from_slice(&seed.to_le_bytes());
        let client = Session::new(SessionConfig::new(Dialect::Current, key_seed, me));
        let mut s = HostileSession {
            stream,
            client,
            echo: None,
            buf: vec![0; 64 * 1024],
        };
        s.flush()?;
        s.read_until(|ev| matches!(ev, Event::Established { .. }))
            .context("opening the session")?;
        s.echo = Some(
            s.client
                .fetch(&Swiss::new(ECHO.as_bytes().to_vec()))
                .map_err(|e| anyhow!("fetching the echo: {e}"))?,
        );
        s.flush()?;
        Ok(s)
    }

    fn echo(&self) -> Result<QuestionPosition> {
        self.echo.ok_or_else(|| anyhow!("the echo was not fetched"))
    }

    fn flush(&mut self) -> Result<()> {
        while let Some(m) = self.client.poll_transmit() {
            self.stream.write_all(&m).context("writing to the victim")?;
        }
        Ok(())
    }

    /// Reads and handles the victim's messages until one event matches.
    fn read_until(&mut self, mut want: impl FnMut(&Event) -> bool) -> Result<Event> {
        loop {
            while let Some(ev) = self.client.poll_event() {
                if want(&ev) {
                    return Ok(ev);
                }
            }
            let n = self.stream.read(&mut self.buf).context("reading")?;
            ensure!(n > 0, "the victim closed the connection");
            self.client
                .handle_bytes(&self.buf[..n])
                .map_err(|e| anyhow!("the session ended: {e}"))?;
            self.flush()?;
        }
    }

    /// Sends the echo one message of `atoms` one-byte atoms, naming an
    /// answer position and no resolver: the victim keeps the echoed value
    /// as the answer and sends nothing back. Returns the bytes written.
    ///
    /// # Errors
    /// The message cannot be made or written.
    pub fn send_retained(&mut self, atoms: usize) -> Result<usize> {
        let echo = self.echo()?;
        self.client
            .deliver(
                &CapRef::Question(echo),
                vec![Value::Bytes(SENTINEL.to_vec().into())],
            )
            .map_err(|e| anyhow!("deliver: {e}"))?;
        let framed = self
            .client
            .poll_transmit()
            .ok_or_else(|| anyhow!("the engine queued no message"))?;
        let message = retained_message(&framed, atoms)?;
        self.stream
            .write_all(&message)
            .context("writing to the victim")?;
        Ok(message.len())
    }

    /// Makes one small call to the echo and waits for its answer: every
    /// message sent before it has been handled.
    ///
    /// # Errors
    /// The session ends or the answer does not come.
    pub fn sync(&mut self) -> Result<()> {
        let echo = self.echo()?;
        let q = self
            .client
            .deliver(&CapRef::Question(echo), vec![Value::int(1i64)])
            .map_err(|e| anyhow!("deliver: {e}"))?;
        self.flush()?;
        match self
            .read_until(|ev| matches!(ev, Event::Answer { question, .. } if *question == q))?
        {
            Event::Answer { result: Ok(_), .. } => Ok(()),
            Event::Answer { result: Err(e), .. } => bail!("the echo broke: {e:?}"),
            _ => bail!("not an answer"),
        }
    }

    /// After a failed send or read: reads what the victim still sent and,
    /// if it aborted the session, returns its reason.
    pub fn abort_reason(&mut self) -> Option<String> {
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(2)));
        while !self.client.is_terminated() {
            match self.stream.read(&mut self.buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = self.client.handle_bytes(&self.buf[..n]);
                }
            }
        }
        match self.client.error() {
            Some(pola_captp::session::SessionError::PeerAborted(reason)) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Closes the connection abruptly (no `op:abort`), as a vanished peer.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Turns the engine's `op:deliver` for the sentinel argument into one for
/// `atoms` `t` atoms with no resolver (`false` in its place).
fn retained_message(framed: &[u8], atoms: usize) -> Result<Vec<u8>> {
    let sentinel = {
        let mut s = format!("{}:", SENTINEL.len()).into_bytes();
        s.extend_from_slice(SENTINEL);
        s
    };
    let at = find(framed, &sentinel).ok_or_else(|| anyhow!("sentinel not in the message"))?;
    // The last field is the resolver descriptor, `<…'desc:import-object N+>`,
    // closing with the record's own `>`.
    let resolver_label = b"'desc:import-object";
    let label_at = rfind(framed, resolver_label)
        .ok_or_else(|| anyhow!("no resolver descriptor in the message"))?;
    let open = framed[..label_at]
        .iter()
        .rposition(|&b| b == b'<')
        .ok_or_else(|| anyhow!("resolver descriptor not a record"))?;
    ensure!(
        framed.ends_with(b">>") && open > at,
        "unexpected op:deliver framing"
    );
    let mut out = Vec::with_capacity(framed.len() + atoms);
    out.extend_from_slice(&framed[..at]);
    out.resize(out.len() + atoms, b't');
    out.extend_from_slice(&framed[at + sentinel.len()..open]);
    out.extend_from_slice(b"f>");
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// Samples a probe's RSS every 10 ms until dropped; keeps the highest.
struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakSampler {
    fn start(probe: &'static dyn Probe) -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = probe.measure().rss {
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        PeakSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Some(self.peak.load(Ordering::Relaxed)).filter(|&p| p > 0)
    }
}

/// Waits until the probe's RSS stops moving (unchanged within 1 % for
/// 300 ms) or 5 s pass: memory freed by other threads shows up late.
pub fn settle(probe: &dyn Probe) -> Measure {
    let start = Instant::now();
    let mut last = probe.measure();
    let mut steady_since = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        let now = probe.measure();
        let moved = match (now.rss, last.rss) {
            (Some(a), Some(b)) => a.abs_diff(b) > b / 100,
            _ => false,
        };
        if moved {
            steady_since = Instant::now();
        } else if steady_since.elapsed() >= Duration::from_millis(300) {
            return now;
        }
        last = now;
    }
    last
}

/// Runs one round of `attack` on `victim`: see the crate doc. `name`
/// prefixes the hostile sessions' designators (use a fresh one per round).
///
/// After the "after" measure, one more client opens a session and makes
/// small calls until the live heap is back, and the victim is measured
/// again ("released"): a vat drops settled promises nobody holds in sweeps
/// that run after it handles enough events, never while it sleeps, so the
/// answers' values outlive their sessions until the vat has done enough
/// other work. RSS at "released" next to the live heap then tells memory
/// the allocator keeps from memory still in use.
///
/// # Errors
/// A session fails to open, send or sync, or the victim does not drop
/// the sessions within a minute of their close.
pub fn round(
    victim: &dyn Victim,
    probe: &'static dyn Probe,
    attack: Attack,
    name: &str,
) -> Result<RoundReport> {
    let before = probe.measure();
    let sampler = PeakSampler::start(probe);
    let addr = victim.addr();
    // Every session waits here once its messages are handled, and again
    // until the measurement is taken.
    let handled = Arc::new(Barrier::new(attack.sessions + 1));
    let measured = Arc::new(Barrier::new(attack.sessions + 1));
    let threads: Vec<_> = (0..attack.sessions)
        .map(|i| {
            let (addr, handled, measured) = (addr.clone(), handled.clone(), measured.clone());
            let designator = format!("{name}-{i}");
            std::thread::spawn(move || -> Result<Option<String>> {
                let run = || -> Result<Ended> {
                    let mut s = HostileSession::open(&addr, &designator, i as u64)?;
                    let attacked = (0..attack.messages)
                        .try_for_each(|_| s.send_retained(attack.atoms).map(drop))
                        .and_then(|()| s.sync());
                    match attacked {
                        Ok(()) => Ok(Ended::Held(Box::new(s))),
                        Err(e) => match s.abort_reason() {
                            Some(reason) => Ok(Ended::Aborted(reason)),
                            None => Err(e),
                        },
                    }
                };
                let ended = run();
                handled.wait();
                measured.wait();
                match ended? {
                    Ended::Held(s) => {
                        s.close();
                        Ok(None)
                    }
                    Ended::Aborted(reason) => Ok(Some(reason)),
                }
            })
        })
        .collect();
    handled.wait();
    let held = probe.measure();
    let answers_held = victim.answers_held();
    measured.wait();
    let mut first_error = None;
    let mut aborted = Vec::new();
    for t in threads {
        match t.join().map_err(|_| anyhow!("an attack thread panicked"))? {
            Ok(None) => {}
            Ok(Some(reason)) => aborted.push(reason),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        let _ = sampler.finish();
        return Err(e.context("a hostile session failed"));
    }
    victim.wait_no_sessions(Duration::from_secs(60))?;
    let after = settle(probe);
    let peak_rss = sampler.finish();
    // Then a well-behaved client calls until the live heap is back where
    // it was (or, with no live count, 100 times).
    let base = before.live;
    let release_calls = calls_until(
        victim,
        probe,
        RELEASE_CALLS,
        |m| matches!((m.live, base), (Some(l), Some(b)) if l <= b.saturating_add(RELEASE_SLACK)),
    )?;
    victim.wait_no_sessions(Duration::from_secs(60))?;
    let released = settle(probe);
    Ok(RoundReport {
        attack,
        before,
        held,
        peak_rss,
        after,
        released,
        release_calls,
        answers_held,
        aborted,
    })
}

/// After an attack: has one well-behaved client call the victim's echo
/// again and again (one session, one small call at a time) until `done`
/// holds for the probe's measure, at most `max_calls` times. Returns how
/// many calls it took (0: `done` held at once), or `None` if it never
/// held. This tells memory the victim still needs from memory it only
/// releases late (a vat drops settled promises nobody holds in sweeps,
/// after handling events).
///
/// # Errors
/// The client's session fails.
pub fn calls_until(
    victim: &dyn Victim,
    probe: &dyn Probe,
    max_calls: usize,
    done: impl Fn(Measure) -> bool,
) -> Result<Option<usize>> {
    if done(probe.measure()) {
        return Ok(Some(0));
    }
    let mut caller = HostileSession::open(&victim.addr(), "well-behaved", u64::MAX - 1)?;
    for call in 1..=max_calls {
        caller.sync()?;
        // The sweep runs when the vat goes idle, after it answered.
        std::thread::sleep(Duration::from_millis(2));
        if done(probe.measure()) {
            caller.close();
            return Ok(Some(call));
        }
    }
    caller.close();
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_rewritten_around_the_sentinel_and_resolver() -> Result<()> {
        let me =
            PeerLocator::new("tcp-testing-only", "t", Hints::Absent).map_err(|e| anyhow!("{e}"))?;
        let mut client = Session::new(SessionConfig::new(Dialect::Current, [1; 32], me.clone()));
        let mut server = Session::new(SessionConfig::new(Dialect::Current, [2; 32], me));
        // Open the session by hand, both ways.
        for _ in 0..2 {
            while let Some(m) = client.poll_transmit() {
                server.handle_bytes(&m).map_err(|e| anyhow!("{e}"))?;
            }
            while let Some(m) = server.poll_transmit() {
                client.handle_bytes(&m).map_err(|e| anyhow!("{e}"))?;
            }
        }
        let q = client
            .fetch(&Swiss::new(b"x".to_vec()))
            .map_err(|e| anyhow!("{e}"))?;
        while client.poll_transmit().is_some() {}
        client
            .deliver(
                &CapRef::Question(q),
                vec![Value::Bytes(SENTINEL.to_vec().into())],
            )
            .map_err(|e| anyhow!("{e}"))?;
        let framed = client
            .poll_transmit()
            .ok_or_else(|| anyhow!("no message"))?;
        let out = retained_message(&framed, 5)?;
        let v = pola_syrup::decode(&out).map_err(|e| anyhow!("{e}"))?;
        let r = v.as_record().ok_or_else(|| anyhow!("not a record"))?;
        assert_eq!(r.label.as_symbol(), Some("op:deliver"));
        assert_eq!(r.fields[1], Value::List(vec![Value::Bool(true); 5]));
        assert_eq!(r.fields[3], Value::Bool(false));
        Ok(())
    }
}
