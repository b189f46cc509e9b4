//! Netlayers: the byte transports that carry CapTP sessions between peers.
//!
//! A netlayer does two things: it *dials* a peer named by a [`Location`]
//! (transport + designator + hints) and it *accepts* connections from peers
//! that dialled us. Either way the result is a [`Connection`]: a
//! bidirectional, reliable, ordered channel split into a [`MessageReader`]
//! (bytes in) and a [`MessageWriter`] (whole messages out).
//!
//! What a netlayer is **not**: it knows nothing of CapTP operations, objects
//! or sessions. It never decodes Syrup; it only moves bytes. Deciding which
//! session a connection belongs to, crossed hellos and aborts are the job of
//! the layer above (`pola-peer`, driving `pola-captp`).
//!
//! Netlayers here:
//! - [`tcp::TcpTestingOnly`]: OCapN's `tcp-testing-only` interop netlayer,
//!   plain TCP with no encryption and no authentication. **Insecure by
//!   design**; it exists to talk to the public OCapN test suite.
//! - [`memory::MemoryNetwork`]: an in-process network of netlayers over
//!   `tokio::io::duplex` pipes, for tests.
//! - [`noise::NoiseNetlayer`]: encrypted and mutually authenticated; the
//!   designator is the peer's public key.
//!
//! # Authentication
//! A netlayer that verifies who is at the far end says so with
//! [`Netlayer::authenticates`] and hands the verified identity over as an
//! [`Authenticated`] in [`Connection::authenticated`]. That type can only be
//! made inside this crate, so an identity always comes from a netlayer's own
//! check, never from text a peer sent ([`Connection::remote`] is for logs).
//! The layer above compares it with the location the peer announces.
//!
//! ```text
//!   pola-peer ──connect(Location)──▶ dyn Netlayer ──▶ Connection
//!       ▲                                 │            ├─ Box<dyn MessageReader>  recv() -> bytes
//!       └──────────── accept() ◀──────────┘            └─ Box<dyn MessageWriter>  send(message)
//! ```
//!
//! # Writing messages
//! [`MessageWriter::send`] takes one *complete* CapTP message and writes it
//! with a single write: some peers (the OCapN test suite among them) read
//! token by token and do not cope with a message split across writes.
//!
//! # Reading
//! [`MessageReader::recv`] returns the next chunk of the incoming CapTP byte
//! stream. On an unframed stream a chunk may hold part of a message or
//! several; the caller parses Syrup incrementally to find message ends. With
//! [`Framing::ByteString`] each chunk is exactly one message payload.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

pub mod memory;
pub mod noise;
pub mod socket;
pub mod stream;
pub mod tcp;

pub use memory::{MemoryNetlayer, MemoryNetwork};
pub use noise::{Identity, NoiseNetlayer, PeerKey};
pub use stream::Framing;
pub use tcp::TcpTestingOnly;

/// A boxed, sendable future (what the object-safe traits here return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a peer can be reached: the data of an OCapN peer locator
/// (`<ocapn-peer transport designator hints>`).
///
/// This is plain data; parsing and printing the Syrup and `ocapn://` forms
/// belongs to the CapTP layer. Two locations name the same peer when their
/// transport and designator are equal ([`Location::same_peer`]); hints only
/// say how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The netlayer's transport name, e.g. `tcp-testing-only`.
    pub transport: String,
    /// The peer's name on that netlayer (a key or random string).
    pub designator: String,
    /// How to reach the peer (String keys and values), e.g. `host`, `port`.
    pub hints: BTreeMap<String, String>,
}

impl Location {
    /// Whether `self` and `other` name the same peer (transport and
    /// designator equal; hints ignored).
    pub fn same_peer(&self, other: &Location) -> bool {
        self.transport == other.transport && self.designator == other.designator
    }

    /// The `ocapn://<designator>.<transport>?hints` URI of this location,
    /// percent-escaping where RFC 3986 needs it.
    ///
    /// A small printer only, used to show a peer's locator; the full locator
    /// grammar (parsing, sturdyref URIs) lives in the CapTP layer.
    pub fn to_uri(&self) -> String {
        let mut out = String::from("ocapn://");
        out.push_str(&escape(&self.designator, false));
        out.push('.');
        out.push_str(&escape(&self.transport, false));
        let mut first = true;
        for (k, v) in &self.hints {
            out.push(if first { '?' } else { '&' });
            first = false;
            out.push_str(&escape(k, true));
            out.push('=');
            out.push_str(&escape(v, true));
        }
        out
    }
}

impl Location {
    /// Sets the `host` and `port` hints (the TCP netlayers' locator form).
    pub fn set_host_port(&mut self, host: &str, port: u16) {
        self.hints.insert("host".to_owned(), host.to_owned());
        self.hints.insert("port".to_owned(), port.to_string());
    }

    /// The `host` and `port` hints of a location for `transport` (the TCP
    /// netlayers' locator form).
    ///
    /// # Errors
    /// [`NetError::WrongTransport`], a missing hint, or a bad one (empty
    /// host, port not a `u16`).
    pub fn host_port(&self, transport: &str) -> Result<(&str, u16), NetError> {
        if self.transport != transport {
            return Err(NetError::WrongTransport {
                expected: transport.to_owned(),
                found: self.transport.clone(),
            });
        }
        let host = self
            .hints
            .get("host")
            .ok_or(NetError::MissingHint("host"))?;
        let port = self
            .hints
            .get("port")
            .ok_or(NetError::MissingHint("port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| NetError::BadHint { name: "port" })?;
        if host.is_empty() {
            return Err(NetError::BadHint { name: "host" });
        }
        Ok((host, port))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// Percent-escapes everything but RFC 3986 unreserved characters (and, in
/// a host part, nothing more: dots in a designator are kept, as the last dot
/// separates the transport).
fn escape(s: &str, query: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        let keep = keep || (!query && b == b':');
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Which side opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We dialled the peer.
    Outbound,
    /// The peer dialled us.
    Inbound,
}

/// Everything that can go wrong in a netlayer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Caller misuse: the location is for another transport.
    #[error("location is for transport {found:?}, this netlayer is {expected:?}")]
    WrongTransport {
        /// This netlayer's transport.
        expected: String,
        /// The location's transport.
        found: String,
    },
    /// The location lacks a hint this netlayer needs.
    #[error("location has no {0:?} hint")]
    MissingHint(&'static str),
    /// A hint could not be understood.
    #[error("bad {name:?} hint")]
    BadHint {
        /// The hint's key.
        name: &'static str,
    },
    /// No peer with that designator is reachable (in-memory network).
    #[error("no peer {0:?} on this network")]
    UnknownPeer(String),
    /// The netlayer stopped accepting connections.
    #[error("netlayer closed")]
    Closed,
    /// The peer broke the framing rules (malformed frame header).
    #[error("malformed frame header at byte {offset}")]
    BadFrame {
        /// Offset of the bad byte within the frame header.
        offset: usize,
    },
    /// Limit exceeded: a frame longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Declared length (saturated).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Local I/O failure (connection refused, reset, …).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The receiving half of a connection.
pub trait MessageReader: Send {
    /// The next chunk of incoming bytes; `Ok(None)` at a clean end of stream.
    ///
    /// Cancel-safe: dropping the future before it completes loses no bytes.
    ///
    /// # Errors
    /// I/O errors (reset) and, for framed streams, framing errors.
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, NetError>>;

    /// The same reader driven without the async runtime, if it can be: an
    /// event loop that waits on the socket itself (a vat's thread in
    /// `epoll`) reads through this, sparing the hand-off from a runtime
    /// task to that thread on every message. `None` (the default) if the
    /// reader has no OS socket to wait on.
    fn direct(&mut self) -> Option<&mut dyn DirectRead> {
        None
    }
}

/// What [`DirectRead::read_now`] found.
#[derive(Debug)]
pub enum ReadNow {
    /// The next chunk (as [`MessageReader::recv`] would give it); there may
    /// be more.
    Chunk(Bytes),
    /// The next chunk, and the socket had nothing more: wait for it to
    /// become readable before reading again.
    Drained(Bytes),
    /// Clean end of stream.
    End,
    /// Nothing to read yet: wait for the socket to become readable.
    Empty,
}

/// A reader an event loop outside the async runtime can drive: it names
/// the socket to wait on and reads without blocking. Mixing it with
/// [`MessageReader::recv`] is allowed (both take from the same buffer), but
/// only one of them should be waiting at a time.
pub trait DirectRead: Send {
    /// The socket to wait on for readability. Readiness is edge-triggered
    /// from the caller's point of view: after a wake-up, call
    /// [`DirectRead::read_now`] until it answers [`ReadNow::Empty`] (or
    /// remember to come back).
    fn fd(&self) -> std::os::fd::RawFd;

    /// Reads what has arrived, without blocking, taking at most `max`
    /// bytes from the socket (a caller that is behind asks for little; a
    /// chunk already buffered may come out whole).
    ///
    /// # Errors
    /// As [`MessageReader::recv`].
    fn read_now(&mut self, max: usize) -> Result<ReadNow, NetError>;
}

/// The sending half of a connection.
pub trait MessageWriter: Send {
    /// Sends one complete message with a single write (framed if the
    /// connection uses framing).
    ///
    /// # Errors
    /// I/O errors.
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>>;

    /// Flushes and shuts down the sending direction (the peer sees end of
    /// stream once it has read everything sent before).
    ///
    /// # Errors
    /// I/O errors.
    fn close(&mut self) -> BoxFuture<'_, Result<(), NetError>>;
}

/// The identity a netlayer verified for the far end of a connection: the
/// transport and the designator the peer proved it owns (for `noise`, its
/// public key).
///
/// Only netlayers in this crate can make one (the constructor is
/// crate-private), and it cannot be cloned: code elsewhere can move an
/// identity from the connection that carries it to a wrapper of that
/// connection, but never forge one for a peer nobody verified. A netlayer
/// written in another crate therefore cannot authenticate: its connections
/// carry no identity and its [`Netlayer::authenticates`] answers `false`. An
/// authenticating netlayer is added to this crate, beside `noise`, so that
/// every claim of identity is reviewed in one place. (Were an outside
/// netlayer to answer `true` anyway, a peer would refuse every location
/// announced on its transport: it fails closed.)
#[derive(Debug, PartialEq, Eq)]
pub struct Authenticated {
    transport: String,
    designator: String,
}

impl Authenticated {
    /// The identity a netlayer of `transport` verified; only netlayers in
    /// this crate may call it, right after their own check.
    pub(crate) fn verified(transport: &str, designator: String) -> Self {
        Authenticated {
            transport: transport.to_owned(),
            designator,
        }
    }

    /// The transport of the netlayer that verified the peer.
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// The designator the peer proved it owns.
    pub fn designator(&self) -> &str {
        &self.designator
    }

    /// Whether `transport` and `designator` name this peer (the test for a
    /// location a peer announces; hints take no part).
    pub fn names(&self, transport: &str, designator: &str) -> bool {
        self.transport == transport && self.designator == designator
    }

    /// The verified peer as location data, without hints.
    pub fn location(&self) -> Location {
        Location {
            transport: self.transport.clone(),
            designator: self.designator.clone(),
            hints: BTreeMap::new(),
        }
    }
}

/// One connection between two peers, split into its two halves.
pub struct Connection {
    /// Bytes from the peer.
    pub reader: Box<dyn MessageReader>,
    /// Messages to the peer.
    pub writer: Box<dyn MessageWriter>,
    /// Who dialled.
    pub direction: Direction,
    /// A human-readable description of the remote end, for logs only:
    /// nothing may be concluded from it about who the peer is (that is
    /// [`Connection::authenticated`]).
    pub remote: String,
    /// The remote IP address, when the netlayer has one (for per-source
    /// limits; like `remote`, it authenticates nothing).
    pub source: Option<std::net::IpAddr>,
    /// Who the netlayer verified the peer to be: `Some` on every connection
    /// of a netlayer that [`authenticates`](Netlayer::authenticates),
    /// `None` on the others. Only this crate can make a value to put here;
    /// a wrapper of a connection passes its value on.
    pub authenticated: Option<Authenticated>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("direction", &self.direction)
            .field("remote", &self.remote)
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Who the netlayer verified the peer to be (see the field).
    pub fn authenticated(&self) -> Option<&Authenticated> {
        self.authenticated.as_ref()
    }

    /// Ends the connection politely: shuts down our sending half, then reads
    /// and discards incoming bytes until the peer closes or `linger`
    /// elapses. Closing a TCP socket with unread bytes makes the kernel send
    /// RST, so the peer would see "connection reset" rather than a clean end
    /// of stream; draining first avoids that.
    pub async fn close_gracefully(self, linger: Duration) {
        close_halves(self.reader, self.writer, linger).await;
    }
}

/// [`Connection::close_gracefully`] for a connection already split apart.
pub async fn close_halves(
    mut reader: Box<dyn MessageReader>,
    mut writer: Box<dyn MessageWriter>,
    linger: Duration,
) {
    let _ = writer.close().await;
    let drain = async { while let Ok(Some(_)) = reader.recv().await {} };
    let _ = tokio::time::timeout(linger, drain).await;
}

/// A netlayer: dials peers and accepts their connections.
///
/// Object-safe, so a peer can hold several (`Box<dyn Netlayer>`) and pick
/// one by [`Netlayer::transport`].
pub trait Netlayer: Send + Sync {
    /// The transport name this netlayer serves (the locator's transport).
    fn transport(&self) -> &str;

    /// Where this netlayer can be reached (our own peer locator's data).
    fn location(&self) -> &Location;

    /// Whether this netlayer verifies who is at the far end: if `true`,
    /// every connection it makes or accepts carries
    /// [`Connection::authenticated`], and a location a peer announces on
    /// this transport is to be believed only when it names that identity.
    /// `false` for plain transports. Only netlayers in this crate can make
    /// the identity (see [`Authenticated`]). There is no default, so that a
    /// netlayer wrapping another (to count or delay its bytes) says it too,
    /// usually by asking the one it wraps.
    fn authenticates(&self) -> bool;

    /// Opens a connection to the peer at `to`.
    ///
    /// # Errors
    /// [`NetError::WrongTransport`], missing or bad hints, unknown peer,
    /// or I/O (refused, unreachable).
    fn connect<'a>(&'a self, to: &'a Location) -> BoxFuture<'a, Result<Connection, NetError>>;

    /// Waits for the next inbound connection.
    ///
    /// # Errors
    /// [`NetError::Closed`] once the netlayer can accept no more, or I/O.
    fn accept(&self) -> BoxFuture<'_, Result<Connection, NetError>>;
}

/// A fresh random designator: 32 lowercase hex characters (128 bits from
/// the OS RNG), the form the OCapN test suite uses for `tcp-testing-only`.
///
/// # Errors
/// The OS RNG failed.
pub fn random_designator() -> Result<String, NetError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| NetError::Io(std::io::Error::other(e.to_string())))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uri_of_tcp_location() {
        let loc = Location {
            transport: "tcp-testing-only".into(),
            designator: "a2ef69dd".into(),
            hints: [
                ("host".into(), "127.0.0.1".into()),
                ("port".into(), "22045".into()),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(
            loc.to_uri(),
            "ocapn://a2ef69dd.tcp-testing-only?host=127.0.0.1&port=22045"
        );
    }

    #[test]
    fn uri_escapes_reserved_characters() {
        let loc = Location {
            transport: "t".into(),
            designator: "a b/c".into(),
            hints: [("k&".into(), "v=1 +".into())].into_iter().collect(),
        };
        assert_eq!(loc.to_uri(), "ocapn://a%20b%2Fc.t?k%26=v%3D1%20%2B");
    }

    #[test]
    fn same_peer_ignores_hints() {
        let a = Location {
            transport: "t".into(),
            designator: "d".into(),
            hints: BTreeMap::new(),
        };
        let mut b = a.clone();
        b.hints.insert("port".into(), "1".into());
        assert!(a.same_peer(&b));
        b.designator = "e".into();
        assert!(!a.same_peer(&b));
    }

    #[test]
    fn random_designators_differ() {
        let a = random_designator().unwrap();
        let b = random_designator().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
