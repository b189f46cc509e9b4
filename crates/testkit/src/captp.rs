//! CapTP sessions driven by hand: a peer whose every message the test
//! chooses, over a real socket or in memory. Test code (a dev-dependency
//! only): a step that fails panics, failing the test that called it.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pola_captp::Dialect;
use pola_captp::QuestionPosition;
use pola_captp::locator::{Hints, PeerLocator};
use pola_captp::session::{Event, Session, SessionConfig, Settlement};

/// How long a hand-driven session waits for what it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The locator of a peer named `name` on `transport`, without hints.
pub fn locator(transport: &str, name: &str) -> PeerLocator {
    // Test code: a failed step fails the test that called it.
    PeerLocator::new(transport, name, Hints::Absent).expect("a valid locator")
}

/// `host:port` from a locator's hints (a `tcp-testing-only` peer's
/// address).
pub fn tcp_addr(peer: &PeerLocator) -> String {
    let h = peer.hints();
    format!(
        "{}:{}",
        // Test code: a failed step fails the test that called it.
        h.get("host").expect("a host hint"),
        // Test code: a failed step fails the test that called it.
        h.get("port").expect("a port hint")
    )
}

/// Two established sessions joined in memory, a gifter's (`[3; 32]`) and
/// a receiver's (`[4; 32]`), each announcing a locator on `transport`:
/// the gifter–receiver session of a third-party handoff, whose keys sign
/// the certificates.
pub fn session_pair(transport: &str) -> (Session, Session) {
    let mut g = Session::new(SessionConfig::new(
        Dialect::Current,
        [3; 32],
        locator(transport, "gifter"),
    ));
    let mut r = Session::new(SessionConfig::new(
        Dialect::Current,
        [4; 32],
        locator(transport, "receiver"),
    ));
    for _ in 0..2 {
        while let Some(m) = g.poll_transmit() {
            // Test code: a failed step fails the test that called it.
            r.handle_bytes(&m).expect("the receiver accepts");
        }
        while let Some(m) = r.poll_transmit() {
            // Test code: a failed step fails the test that called it.
            g.handle_bytes(&m).expect("the gifter accepts");
        }
    }
    (g, r)
}

/// A CapTP session over a blocking TCP connection, driven by the test: it
/// sends only what the test asks of the session, when the test flushes.
#[derive(Debug)]
pub struct RawSession {
    /// The connection.
    pub stream: TcpStream,
    /// The session (in the current dialect, as `tcp-testing-only`).
    pub session: Session,
}

impl RawSession {
    /// Connects to `addr` as the peer `name`, with key seed `[seed; 32]`.
    /// Nothing is sent until the first [`RawSession::flush`].
    pub fn connect(addr: &str, name: &str, seed: u8) -> RawSession {
        // Test code: a failed step fails the test that called it.
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            // Test code: a failed step fails the test that called it.
            .expect("a read timeout");
        let me = locator("tcp-testing-only", name);
        let session = Session::new(SessionConfig::new(Dialect::Current, [seed; 32], me));
        RawSession { stream, session }
    }

    /// Like [`RawSession::connect`], then waits until the session is
    /// established.
    pub fn established(addr: &str, name: &str, seed: u8) -> RawSession {
        let mut raw = RawSession::connect(addr, name, seed);
        raw.until(|e| matches!(e, Event::Established { .. }));
        raw
    }

    /// Writes everything the session has queued, in one write.
    pub fn flush(&mut self) {
        let batch: Vec<u8> = std::iter::from_fn(|| self.session.poll_transmit())
            .flatten()
            .collect();
        if !batch.is_empty() {
            // Test code: a failed step fails the test that called it.
            self.stream.write_all(&batch).expect("write");
        }
    }

    /// Flushes and reads until an event matching `want` arrives (within
    /// [`PATIENCE`]); returns it. Panics if the far side closes.
    pub fn until(&mut self, mut want: impl FnMut(&Event) -> bool) -> Event {
        let start = Instant::now();
        let mut buf = [0u8; 8192];
        loop {
            self.flush();
            while let Some(ev) = self.session.poll_event() {
                if want(&ev) {
                    self.flush();
                    return ev;
                }
            }
            assert!(start.elapsed() < PATIENCE, "timed out");
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("the far side closed the connection"),
                Ok(n) => self
                    .session
                    .handle_bytes(&buf[..n])
                    // Test code: a failed step fails the test that called it.
                    .expect("the session accepts what it reads"),
                Err(_) => {}
            }
        }
    }

    /// Waits for the answer to `q`, forgets the question, and returns the
    /// settlement.
    pub fn answer(&mut self, q: QuestionPosition) -> Settlement {
        match self.until(|e| matches!(e, Event::Answer { question, .. } if *question == q)) {
            Event::Answer { result, .. } => {
                // Test code: a failed step fails the test that called it.
                self.session.drop_question(q).expect("drop the question");
                result
            }
            other => panic!("not an answer: {other:?}"),
        }
    }
}
