//! `noise`: an encrypted, mutually authenticated netlayer whose designator
//! is the peer's public key.
//!
//! A vat's [`Identity`] is an Ed25519 key pair; its locator is
//! `ocapn://<designator>.noise?host=…&port=…` where the designator is the
//! 32-byte public key in lowercase unpadded base32 (52 characters, the form
//! Endo's OCapN netlayers use for key designators). The locator is
//! self-authenticating: no certificates, no CA. Dialling it succeeds only if
//! the far end proves possession of that key; the dialled side learns the
//! dialler's verified key.
//!
//! # Protocol
//! The handshake is that of Endo's `@endo/ocapn-noise` (see [`handshake`]
//! for the byte layouts): Noise `XX_25519_ChaChaPoly_BLAKE2s`, empty
//! prologue, each side signing its per-handshake Noise static key with its
//! Ed25519 identity key, and the SYN prefixed by the responder's key in the
//! clear. On TCP, every Noise message is a frame with a 2-byte big-endian
//! length (see [`transport`]); after the handshake, frames carry the CapTP
//! byte stream (unframed Syrup, like `tcp-testing-only`), split into pieces
//! of at most 65519 bytes, and an empty encrypted frame marks a clean end.
//!
//! # Security properties (and who upholds them)
//! - **Authentication.** The dialler refuses a responder that does not prove
//!   the key named in the locator ([`NoiseError::WrongResponder`]); the
//!   responder verifies the dialler's signature after the last handshake
//!   message and reports the key ([`NoiseConnection::peer`]).
//! - **Forward secrecy.** Session keys come from ephemeral X25519 keys
//!   (the `ee` DH, and the per-handshake "static" keys too); the Ed25519
//!   identity key only signs, so stealing it later decrypts no recorded
//!   session.
//! - **Integrity and order.** ChaCha20-Poly1305 with counter nonces: any
//!   tampered, replayed, reordered or dropped frame fails authentication and
//!   ends the session; a cut connection is [`NoiseError::Truncated`].
//! - **Resource bounds.** Frames are at most 65535 bytes, checked before
//!   allocation. Inbound handshakes run concurrently, bounded globally and
//!   per source IP ([`NoiseConfig`]), each under a timeout; a connection
//!   beyond a bound is closed at once, and a stalled one when its timeout
//!   fires, freeing its slot.
//! - **Key separation.** The binding signature is a bare Ed25519 signature
//!   over a 32-byte X25519 key, with no context string (Endo's format), so
//!   an [`Identity`] must sign nothing else: its signing method is private
//!   to this crate and used only by the handshake (CapTP sessions have
//!   their own keys).
//! - **Privacy (limits).** As in Endo's design, the SYN carries the
//!   responder's key and the initiator's key and signature *in the clear*
//!   (Noise XX message 1 has no key yet): an eavesdropper learns who dials
//!   whom. Message contents are confidential.
//!
//! # Crossed hellos and session identity
//! This layer gives each connection a verified peer key but does not
//! deduplicate connections: if two peers dial each other at once, both
//! connections complete. The peer layer settles that (it already does for
//! `tcp-testing-only`) and must, for `noise` connections, check that the
//! location a peer announces in `op:start-session` has transport `noise`
//! and the verified key as designator, aborting the session otherwise;
//! otherwise an authenticated peer could claim another's locator.
//! The verified key is in [`NoiseConnection::peer`] (from
//! [`NoiseNetlayer::connect_authenticated`] /
//! [`NoiseNetlayer::accept_authenticated`]) and, through the generic
//! [`Netlayer`] trait, in [`Connection::authenticated`] as an
//! [`Authenticated`] (transport `noise`, the key's designator), which only
//! this crate can make. [`Connection::remote`] (`<designator>@<ip:port>`) is
//! for logs and proves nothing.

pub mod error;
pub mod handshake;
pub mod identity;
pub mod transport;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use error::{IdentityError, NoiseError, Role, Stage, noise_error};
pub use identity::{Identity, PeerKey};

use crate::{Authenticated, BoxFuture, Connection, Direction, Location, NetError, Netlayer};
use transport::{NoiseReader, NoiseWriter};

/// The transport name of this netlayer.
pub const TRANSPORT: &str = "noise";

/// Limits of a [`NoiseNetlayer`].
#[derive(Clone, Debug)]
pub struct NoiseConfig {
    /// How long a handshake may take, inbound or outbound (default 10 s).
    pub handshake_timeout: Duration,
    /// Inbound handshakes in flight at once (default 256).
    pub max_handshakes: usize,
    /// Inbound handshakes in flight from one source: an IPv4 address or an
    /// IPv6 /64 (default 8).
    pub max_handshakes_per_ip: usize,
    /// Authenticated inbound connections waiting for
    /// [`Netlayer::accept`]; more are closed (default 64).
    pub accept_backlog: usize,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
            max_handshakes_per_ip: 8,
            accept_backlog: 64,
        }
    }
}

/// An authenticated connection and what the handshake established.
#[derive(Debug)]
pub struct NoiseConnection {
    /// The encrypted connection (its [`Connection::authenticated`] names
    /// [`NoiseConnection::peer`]; its `remote`, for logs, is
    /// `<designator>@<ip:port>`).
    pub connection: Connection,
    /// The peer's verified identity key.
    pub peer: PeerKey,
    /// The peer's socket address (unauthenticated; for logs).
    pub addr: SocketAddr,
    /// The encoding version agreed in the handshake.
    pub encoding: u16,
}

impl NoiseConnection {
    /// The peer's location data without hints: transport `noise`, its
    /// verified designator.
    pub fn peer_location(&self) -> Location {
        Location {
            transport: TRANSPORT.to_owned(),
            designator: self.peer.to_designator(),
            hints: BTreeMap::new(),
        }
    }
}

/// In-flight inbound handshake counts (global and per source IP).
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

type SharedSlots = Arc<Mutex<Slots>>;

fn lock(s: &SharedSlots) -> std::sync::MutexGuard<'_, Slots> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the per-source limit counts by: an IPv4 address, or an IPv6 /64
/// (one host usually holds a whole /64, so counting single IPv6 addresses
/// would not bound it). IPv4-mapped IPv6 addresses count as IPv4.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                for s in &mut seg[4..] {
                    *s = 0;
                }
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// A held handshake slot; dropping it frees the slot.
struct SlotGuard {
    slots: SharedSlots,
    ip: IpAddr,
}

impl SlotGuard {
    fn take(slots: &SharedSlots, ip: IpAddr, config: &NoiseConfig) -> Option<SlotGuard> {
        let mut s = lock(slots);
        let here = s.per_ip.get(&ip).copied().unwrap_or(0);
        if s.total >= config.max_handshakes || here >= config.max_handshakes_per_ip {
            return None;
        }
        s.total += 1;
        s.per_ip.insert(ip, here + 1);
        Some(SlotGuard {
            slots: slots.clone(),
            ip,
        })
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut s = lock(&self.slots);
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A `noise` netlayer listening on one TCP port under a vat [`Identity`].
#[derive(Debug)]
pub struct NoiseNetlayer {
    identity: Arc<Identity>,
    location: Location,
    local_addr: SocketAddr,
    config: NoiseConfig,
    slots: SharedSlots,
    incoming: tokio::sync::Mutex<mpsc::Receiver<NoiseConnection>>,
    acceptor: JoinHandle<()>,
}

impl Drop for NoiseNetlayer {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl NoiseNetlayer {
    /// Listens on `host:port` (port 0 picks a free port) as `identity`,
    /// with default limits. Must be called inside a tokio runtime: inbound
    /// handshakes run on background tasks.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(identity: Identity, host: &str, port: u16) -> Result<Self, NetError> {
        Self::bind_with(identity, host, port, NoiseConfig::default()).await
    }

    /// [`NoiseNetlayer::bind`] with explicit limits.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind_with(
        identity: Identity,
        host: &str,
        port: u16,
        config: NoiseConfig,
    ) -> Result<Self, NetError> {
        let listener = TcpListener::bind((host, port)).await?;
        let local_addr = listener.local_addr()?;
        let mut hints = BTreeMap::new();
        hints.insert("host".to_owned(), host.to_owned());
        hints.insert("port".to_owned(), local_addr.port().to_string());
        let location = Location {
            transport: TRANSPORT.to_owned(),
            designator: identity.designator(),
            hints,
        };
        let identity = Arc::new(identity);
        let slots = SharedSlots::default();
        let (tx, rx) = mpsc::channel(config.accept_backlog.max(1));
        let acceptor = tokio::spawn(accept_loop(
            listener,
            identity.clone(),
            config.clone(),
            slots.clone(),
            tx,
        ));
        Ok(NoiseNetlayer {
            identity,
            location,
            local_addr,
            config,
            slots,
            incoming: tokio::sync::Mutex::new(rx),
            acceptor,
        })
    }

    /// Advertises `host` and `port` in this netlayer's location instead of
    /// the bound ones (e.g. when bound to `0.0.0.0`, or behind a port
    /// forward). The designator stays the identity key.
    pub fn set_advertised(&mut self, host: &str, port: u16) {
        self.location.set_host_port(host, port);
    }

    /// The socket address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This netlayer's identity key.
    pub fn public_key(&self) -> PeerKey {
        self.identity.public_key()
    }

    /// Inbound handshakes in flight now (for monitoring and tests).
    pub fn handshakes_in_flight(&self) -> usize {
        lock(&self.slots).total
    }

    /// Dials `to` and authenticates it: succeeds only if the far end proves
    /// the key `to.designator` names.
    ///
    /// # Errors
    /// [`NetError::WrongTransport`], missing or bad hints, a designator that
    /// is not a key, I/O, or a [`NoiseError`] (see [`noise_error`]):
    /// [`NoiseError::WrongResponder`] for a man in the middle,
    /// [`NoiseError::HandshakeTimeout`], and the other handshake failures.
    pub async fn connect_authenticated(&self, to: &Location) -> Result<NoiseConnection, NetError> {
        let (host, port, expected) = parse_location(to)?;
        let timeout = self.config.handshake_timeout;
        let work = async {
            let mut stream = TcpStream::connect((host, port)).await?;
            let _ = stream.set_nodelay(true);
            let addr = stream.peer_addr()?;
            let established = transport::initiate_on(&mut stream, &self.identity, expected).await?;
            finish(stream, addr, established, Direction::Outbound)
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| NetError::from(NoiseError::HandshakeTimeout))?
    }

    /// Waits for the next authenticated inbound connection.
    ///
    /// # Errors
    /// [`NetError::Closed`] if the listener stopped.
    pub async fn accept_authenticated(&self) -> Result<NoiseConnection, NetError> {
        self.incoming
            .lock()
            .await
            .recv()
            .await
            .ok_or(NetError::Closed)
    }
}

/// Reads host, port and the expected key from a `noise` location.
fn parse_location(to: &Location) -> Result<(&str, u16, PeerKey), NetError> {
    let (host, port) = to.host_port(TRANSPORT)?;
    let key = PeerKey::from_designator(&to.designator)?;
    Ok((host, port, key))
}

fn finish(
    stream: TcpStream,
    addr: SocketAddr,
    established: handshake::Established,
    direction: Direction,
) -> Result<NoiseConnection, NetError> {
    let cipher = Arc::new(established.transport);
    // Out of the runtime, like tcp-testing-only: the reader can then be
    // driven by the vat's own thread. The writer stays registered: it
    // merges messages queued while the socket is busy into full frames.
    let (r, w) = crate::socket::split(stream, true)?;
    let connection = Connection {
        reader: Box::new(NoiseReader::new(r, cipher.clone())),
        writer: Box::new(NoiseWriter::new(w, cipher)),
        direction,
        remote: format!("{}@{addr}", established.peer),
        source: Some(addr.ip()),
        authenticated: Some(Authenticated::verified(
            TRANSPORT,
            established.peer.to_designator(),
        )),
    };
    Ok(NoiseConnection {
        connection,
        peer: established.peer,
        addr,
        encoding: established.encoding,
    })
}

async fn accept_loop(
    listener: TcpListener,
    identity: Arc<Identity>,
    config: NoiseConfig,
    slots: SharedSlots,
    tx: mpsc::Sender<NoiseConnection>,
) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // Out of descriptors or a transient error: back off briefly
                // rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        // Over a limit: close at once (dropping the stream).
        let Some(slot) = SlotGuard::take(&slots, source_key(addr.ip()), &config) else {
            continue;
        };
        let identity = identity.clone();
        let tx = tx.clone();
        let timeout = config.handshake_timeout;
        tokio::spawn(async move {
            let result = tokio::time::timeout(timeout, respond(stream, addr, &identity)).await;
            drop(slot);
            if let Ok(Ok(auth)) = result {
                // A full backlog closes the connection (like a full listen
                // queue); a slow acceptor cannot make handshakes pile up.
                let _ = tx.try_send(auth);
            }
        });
    }
}

async fn respond(
    mut stream: TcpStream,
    addr: SocketAddr,
    identity: &Identity,
) -> Result<NoiseConnection, NetError> {
    let _ = stream.set_nodelay(true);
    let established = transport::respond_on(&mut stream, identity).await?;
    finish(stream, addr, established, Direction::Inbound)
}

impl Netlayer for NoiseNetlayer {
    fn transport(&self) -> &str {
        TRANSPORT
    }

    fn location(&self) -> &Location {
        &self.location
    }

    fn authenticates(&self) -> bool {
        true
    }

    fn connect<'a>(&'a self, to: &'a Location) -> BoxFuture<'a, Result<Connection, NetError>> {
        Box::pin(async move { Ok(self.connect_authenticated(to).await?.connection) })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Connection, NetError>> {
        Box::pin(async move { Ok(self.accept_authenticated().await?.connection) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn loc(designator: &str, hints: &[(&str, &str)]) -> Location {
        Location {
            transport: TRANSPORT.into(),
            designator: designator.into(),
            hints: hints
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn location_errors() {
        let d = Identity::generate().unwrap().designator();
        let ok = loc(&d, &[("host", "h"), ("port", "1")]);
        assert!(parse_location(&ok).is_ok());
        assert!(matches!(
            parse_location(&loc(&d, &[("port", "1")])),
            Err(NetError::MissingHint("host"))
        ));
        assert!(matches!(
            parse_location(&loc(&d, &[("host", "h"), ("port", "x")])),
            Err(NetError::BadHint { name: "port" })
        ));
        let bad = parse_location(&loc("abc", &[("host", "h"), ("port", "1")])).unwrap_err();
        assert_eq!(noise_error(&bad), Some(&NoiseError::BadDesignator));
        let mut other = ok.clone();
        other.transport = "tcp-testing-only".into();
        assert!(matches!(
            parse_location(&other),
            Err(NetError::WrongTransport { .. })
        ));
    }

    #[test]
    fn sources_are_counted_by_ipv4_address_or_ipv6_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(source_key(mapped), IpAddr::from([10, 1, 2, 3]));
        let v4: IpAddr = [10, 1, 2, 3].into();
        assert_eq!(source_key(v4), v4);
    }

    #[test]
    fn slots_bound_globally_and_per_ip() {
        let config = NoiseConfig {
            max_handshakes: 3,
            max_handshakes_per_ip: 2,
            ..NoiseConfig::default()
        };
        let slots = SharedSlots::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = SlotGuard::take(&slots, a, &config).unwrap();
        let _a2 = SlotGuard::take(&slots, a, &config).unwrap();
        assert!(SlotGuard::take(&slots, a, &config).is_none());
        let _b1 = SlotGuard::take(&slots, b, &config).unwrap();
        assert!(SlotGuard::take(&slots, b, &config).is_none(), "global cap");
        drop(a1);
        assert!(SlotGuard::take(&slots, b, &config).is_some());
        assert_eq!(lock(&slots).total, 2);
    }
}
