//! What arrives on a connection, and the one way it enters the peer: the
//! vocabulary shared by the connection tasks (`conn`) and the vat-thread
//! reader (`io`). Both readers depend on it; it depends on neither.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pola_netlayer::NetError;

/// How long a closing connection keeps draining input before giving up.
pub const CLOSE_LINGER: Duration = Duration::from_millis(500);

/// Names one connection for the life of the peer (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

impl ConnId {
    /// A fresh id.
    pub fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a connection's reader hands to the [`Ingress`].
#[derive(Debug)]
pub enum Input {
    /// Bytes arrived, in order.
    Bytes(Bytes),
    /// The connection ended (clean end of stream: `None`); the last input.
    Closed(Option<NetError>),
}

/// The one way what arrives on a connection enters the peer: every reader
/// (a runtime task, or the vat's own thread) calls it on its own thread
/// with each chunk as it arrives, then once with [`Input::Closed`]. The
/// reader reads on only after the call returns: that is the
/// backpressure.
pub type Ingress = Arc<dyn Fn(ConnId, Input) + Send + Sync>;
