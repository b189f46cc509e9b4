//! An in-process network of netlayers, for tests.
//!
//! A [`MemoryNetwork`] is a shared switchboard; each [`MemoryNetlayer`] made
//! from it registers a designator. Dialling a designator creates a
//! `tokio::io::duplex` pipe and hands one end to the listener's
//! [`Netlayer::accept`]. Bytes flow exactly as over TCP (same readers and
//! writers, same framing options), just without sockets.
//!
//! Invariant: a designator is registered at most once per network; dropping
//! the netlayer unregisters it, after which dialling it fails with
//! [`NetError::UnknownPeer`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::stream::{StreamReader, StreamWriter};
use crate::{BoxFuture, Connection, Direction, Framing, Location, NetError, Netlayer};

/// The transport name of in-memory netlayers.
pub const TRANSPORT: &str = "pola-memory";

/// Pipe buffer size per direction.
const PIPE_BYTES: usize = 256 * 1024;

/// Pending inbound connections per listener.
const BACKLOG: usize = 64;

type Registry = Arc<Mutex<HashMap<String, mpsc::Sender<Connection>>>>;

/// A switchboard joining in-memory netlayers. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct MemoryNetwork {
    peers: Registry,
    framing: Framing,
}

impl MemoryNetwork {
    /// An empty network, unframed.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty network whose connections use `framing`.
    pub fn with_framing(framing: Framing) -> Self {
        MemoryNetwork {
            peers: Registry::default(),
            framing,
        }
    }

    /// A netlayer reachable on this network as `designator`.
    ///
    /// # Errors
    /// [`NetError::BadHint`] (name `designator`) if the designator is
    /// already taken.
    pub fn netlayer(&self, designator: &str) -> Result<MemoryNetlayer, NetError> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        {
            let mut peers = lock(&self.peers);
            if peers.contains_key(designator) {
                return Err(NetError::BadHint { name: "designator" });
            }
            peers.insert(designator.to_owned(), tx);
        }
        Ok(MemoryNetlayer {
            network: self.clone(),
            location: Location {
                transport: TRANSPORT.to_owned(),
                designator: designator.to_owned(),
                hints: BTreeMap::new(),
            },
            incoming: tokio::sync::Mutex::new(rx),
        })
    }
}

/// Locks the registry; a poisoned lock still holds a consistent map (every
/// critical section is a single insert, remove or clone).
fn lock(r: &Registry) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Connection>>> {
    r.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One peer's netlayer on a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryNetlayer {
    network: MemoryNetwork,
    location: Location,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Connection>>,
}

impl Drop for MemoryNetlayer {
    fn drop(&mut self) {
        lock(&self.network.peers).remove(&self.location.designator);
    }
}

/// Two connected in-memory connections (the first `Outbound`, the second
/// `Inbound`), with no netlayer around them.
pub fn connection_pair(framing: Framing) -> (Connection, Connection) {
    let (a, b) = tokio::io::duplex(PIPE_BYTES);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    (
        Connection {
            reader: Box::new(StreamReader::new(ar, framing)),
            writer: Box::new(StreamWriter::new(aw, framing)),
            direction: Direction::Outbound,
            remote: "memory".to_owned(),
            source: None,
            authenticated: None,
        },
        Connection {
            reader: Box::new(StreamReader::new(br, framing)),
            writer: Box::new(StreamWriter::new(bw, framing)),
            direction: Direction::Inbound,
            remote: "memory".to_owned(),
            source: None,
            authenticated: None,
        },
    )
}

impl Netlayer for MemoryNetlayer {
    fn transport(&self) -> &str {
        TRANSPORT
    }

    fn location(&self) -> &Location {
        &self.location
    }

    fn authenticates(&self) -> bool {
        false
    }

    fn connect<'a>(&'a self, to: &'a Location) -> BoxFuture<'a, Result<Connection, NetError>> {
        Box::pin(async move {
            if to.transport != TRANSPORT {
                return Err(NetError::WrongTransport {
                    expected: TRANSPORT.to_owned(),
                    found: to.transport.clone(),
                });
            }
            let listener = lock(&self.network.peers)
                .get(&to.designator)
                .cloned()
                .ok_or_else(|| NetError::UnknownPeer(to.designator.clone()))?;
            let (mut ours, mut theirs) = connection_pair(self.network.framing);
            ours.remote = to.designator.clone();
            theirs.remote = self.location.designator.clone();
            listener
                .send(theirs)
                .await
                .map_err(|_| NetError::UnknownPeer(to.designator.clone()))?;
            Ok(ours)
        })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Connection, NetError>> {
        Box::pin(async move {
            self.incoming
                .lock()
                .await
                .recv()
                .await
                .ok_or(NetError::Closed)
        })
    }
}
