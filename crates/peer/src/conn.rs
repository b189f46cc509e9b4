//! Connection plumbing: tasks that move bytes between a netlayer
//! [`Connection`] and the peer's event loop.
//!
//! Each connection gets a *reader* and a *writer*:
//! - the reader hands every incoming chunk, then the end, to the peer's
//!   one [`Ingress`], on the thread that read it: a runtime task here, or
//!   the vat's own thread for sockets the vat reads itself (the `io`
//!   module); either way that is the only path bytes take into the peer;
//! - the writer sends the messages queued on its [`ConnHandle`] in order
//!   (from the calling thread when nothing is queued, else from its task),
//!   joining those queued together into one write (a message is a
//!   self-delimiting piece of the byte stream, never split by the join).
//!   [`ConnHandle::close`] flushes what is queued, shuts the sending half
//!   (FIN) and then lets the reader drain until the peer closes or a short
//!   linger passes, so the peer sees a clean end of stream rather than a
//!   reset. Closing is bounded: what is still unwritten [`CLOSE_GRACE`]
//!   after the close is dropped, so a peer that stopped reading cannot hold
//!   a writer (and its socket) for ever. [`ConnHandle::abort_with`] drops
//!   what is queued and sends one last message (an `op:abort`) if the peer
//!   reads it in time.
//!
//! The tasks make no protocol decisions; the peer's core owns every
//! session. Invariant (upheld by both readers): a connection's input reaches
//! the ingress in order, one call at a time, and after its
//! [`Input::Closed`] nothing more of it does.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use pola_netlayer::{
    Connection, Direction, Location, MessageReader, MessageWriter, NetError, Netlayer,
};
use tokio::sync::mpsc;

pub use crate::ingress::{CLOSE_LINGER, ConnId, Ingress, Input};

/// Once a connection is closing, how long its writer may still take to
/// flush what is queued (or, after [`ConnHandle::abort_with`], to finish
/// the write under way and send the last message); a peer that does not
/// read by then is cut off without them.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How long a dial may take before it counts as failed.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Capacity of the event queue from the acceptors and dials to the event
/// loop. A full queue stops the acceptors.
pub const EVENT_QUEUE: usize = 256;

/// Default cap on bytes queued for one connection's writer. A peer that
/// stops reading while making us answer would otherwise grow our memory
/// without bound; past the cap, [`ConnHandle::send`] refuses.
pub const DEFAULT_MAX_QUEUED: usize = 16 * 1024 * 1024;

/// Queued messages are joined into one write up to this many bytes.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Names one dial, chosen by whoever starts it ([`spawn_dial`]) and handed
/// back in [`NetEvent::Dialed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DialToken(pub u64);

/// What the acceptors and dials tell the event loop (what arrives on a
/// connection goes to its [`Ingress`] instead).
#[derive(Debug)]
pub enum NetEvent {
    /// A netlayer accepted an inbound connection (not yet started); the
    /// second field is that netlayer's transport name.
    Accepted(Connection, String),
    /// A dial finished; `token` is the one given to [`spawn_dial`].
    Dialed {
        /// The caller's token.
        token: DialToken,
        /// Where we dialled.
        to: Location,
        /// The connection, or why not.
        result: Result<Connection, NetError>,
    },
}

type Writer = Box<dyn MessageWriter>;

/// A write started on the caller's thread that could not finish at once:
/// the writer task completes it (it owns the writer until then).
type InFlight = Pin<Box<dyn Future<Output = (Writer, Result<(), NetError>)> + Send>>;

enum Outgoing {
    Message(Vec<u8>),
    InFlight(InFlight, usize),
    Close,
}

/// The event loop's handle on a running connection.
#[derive(Clone)]
pub struct ConnHandle {
    id: ConnId,
    direction: Direction,
    tx: mpsc::UnboundedSender<Outgoing>,
    /// The writer while no write is in progress (`None` while the writer
    /// task or a caller is using it, or after it closed).
    idle: Arc<Mutex<Option<Writer>>>,
    closing: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    /// Read on the vat's own thread (see the `io` module).
    on_vat: bool,
    stop: Arc<Stop>,
}

/// Tells the writer task the connection is closing: from then on its
/// writes have a deadline, and `last` (if set) replaces what is queued.
#[derive(Default)]
struct Stop {
    notify: tokio::sync::Notify,
    deadline: Mutex<Option<tokio::time::Instant>>,
    last: Mutex<Option<Vec<u8>>>,
}

impl Stop {
    fn begin(&self) {
        let mut d = self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_none() {
            *d = Some(tokio::time::Instant::now() + CLOSE_GRACE);
        }
        drop(d);
        self.notify.notify_one();
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_last(&self) -> Option<Vec<u8>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Runs `work` to its end, or until the closing deadline passes
    /// (`None`).
    async fn bounded<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        loop {
            if let Some(d) = self.deadline() {
                return tokio::time::timeout_at(d, work).await.ok();
            }
            tokio::select! {
                r = &mut work => return Some(r),
                () = self.notify.notified() => {}
            }
        }
    }
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.id)
            .field("direction", &self.direction)
            .field("queued", &self.queued_bytes())
            .field("closing", &self.is_closing())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outgoing::Message(m) => write!(f, "Message({} bytes)", m.len()),
            Outgoing::InFlight(_, len) => write!(f, "InFlight({len} bytes)"),
            Outgoing::Close => f.write_str("Close"),
        }
    }
}

impl ConnHandle {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Who dialled.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Whether the connection is read on the vat's own thread rather than
    /// on a runtime task.
    pub fn reads_on_vat(&self) -> bool {
        self.on_vat
    }

    /// Queues one complete message. Ignored once the connection is closing
    /// or gone (the reader reports the end separately).
    ///
    /// Returns `false` (and queues nothing) if the bytes already waiting for
    /// the writer plus this message would pass the connection's cap: the
    /// peer is not reading, and the caller should give up on it.
    #[must_use]
    pub fn send(&self, message: Vec<u8>) -> bool {
        if self.closing.load(Ordering::Acquire) {
            return true;
        }
        let len = message.len();
        // Fast path: nothing queued and the writer idle: start the write on
        // this thread (no hand-off to the writer task). A socket with room
        // takes it in the first poll; otherwise the started write goes to
        // the writer task to finish, still ahead of anything queued later.
        let message = match self.write_now(message, len) {
            Ok(()) => return true,
            Err(m) => m,
        };
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > self.max_queued {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        let _ = self.tx.send(Outgoing::Message(message));
        true
    }

    /// Writes `message` from this thread if no write is queued or under
    /// way; gives it back otherwise.
    fn write_now(&self, message: Vec<u8>, len: usize) -> Result<(), Vec<u8>> {
        if self.queued.load(Ordering::Acquire) != 0 || len > self.max_queued {
            return Err(message);
        }
        let writer = match self.idle.try_lock() {
            Ok(mut w) => w.take(),
            Err(_) => None,
        };
        let Some(mut writer) = writer else {
            return Err(message);
        };
        let mut write: InFlight = Box::pin(async move {
            let r = writer.send(&message).await;
            (writer, r)
        });
        let mut cx = Context::from_waker(Waker::noop());
        match write.as_mut().poll(&mut cx) {
            Poll::Ready((writer, result)) => {
                *self.idle.lock().unwrap_or_else(|p| p.into_inner()) = Some(writer);
                if result.is_err() {
                    // Same as the writer task: a failed write ends the
                    // sending half.
                    self.close();
                }
            }
            Poll::Pending => {
                self.queued.fetch_add(len, Ordering::AcqRel);
                let _ = self.tx.send(Outgoing::InFlight(write, len));
            }
        }
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Flushes queued messages, then closes politely; what is not written
    /// within [`CLOSE_GRACE`] is dropped. Idempotent.
    pub fn close(&self) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Outgoing::Close);
        }
        self.stop.begin();
    }

    /// Gives up on a peer that is not reading: drops every queued message
    /// not yet started, lets the write under way finish and then sends
    /// `last` (a whole message: our `op:abort`), both within
    /// [`CLOSE_GRACE`], and closes. If the peer does not read in time it
    /// is cut off without `last`: the stream never carries part of one.
    pub fn abort_with(&self, last: Vec<u8>) {
        *self.stop.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(last);
        self.close();
    }

    /// Whether [`ConnHandle::close`] was called.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// Starts the reader and writer for `conn`, handing what arrives to
/// `ingress`, with at most `max_queued` bytes waiting for the writer. Must
/// be called inside a tokio runtime.
pub fn spawn_connection(conn: Connection, ingress: Ingress, max_queued: usize) -> ConnHandle {
    spawn_connection_on(ConnId::fresh(), conn, ingress, max_queued, None)
}

/// Like [`spawn_connection`]; with `io`, a reader that can be read
/// directly is read on the vat's own thread instead of a runtime task (see
/// the `io` module). `id` names it (fresh from [`ConnId::fresh`]).
pub(crate) fn spawn_connection_on(
    id: ConnId,
    conn: Connection,
    ingress: Ingress,
    max_queued: usize,
    io: Option<&crate::io::VatIo>,
) -> ConnHandle {
    let queued = Arc::new(AtomicUsize::new(0));
    let writer_queued = queued.clone();
    let Connection {
        reader,
        writer,
        direction,
        ..
    } = conn;
    // Read on the vat's thread if we can; else on a runtime task below.
    let (reader, on_vat) = match io {
        Some(io) => match io.register(id, reader, ingress.clone()) {
            Ok(token) => (None, Some((io.clone(), token))),
            Err(reader) => (Some(reader), None),
        },
        None => (Some(reader), None),
    };
    let idle = Arc::new(Mutex::new(Some(writer)));
    let task_idle = idle.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let closing = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(Stop::default());
    let task_stop = stop.clone();
    // Set once the writer has shut our sending half; the reader then only
    // drains (no more input) and gives up after the linger.
    let (shut_tx, shut_rx) = tokio::sync::watch::channel(false);

    tokio::spawn(async move {
        let stop = task_stop;
        let take = || task_idle.lock().unwrap_or_else(|p| p.into_inner()).take();
        let put = |w: Writer| *task_idle.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
        // Whether the stream ends at a message boundary (a write cut off by
        // the deadline leaves part of a message on it).
        let mut whole = true;
        'serve: while let Some(out) = rx.recv().await {
            if stop
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
            {
                // Aborting: what is queued is dropped, unwritten.
                if let Outgoing::InFlight(write, _) = out {
                    match stop.bounded(write).await {
                        Some((w, Ok(()))) => put(w),
                        _ => whole = false,
                    }
                }
                writer_queued.store(0, Ordering::Release);
                while rx.try_recv().is_ok() {}
                break;
            }
            let mut m = match out {
                Outgoing::Close => break,
                Outgoing::InFlight(write, len) => {
                    let Some((w, sent)) = stop.bounded(write).await else {
                        whole = false;
                        break;
                    };
                    put(w);
                    writer_queued.fetch_sub(len, Ordering::AcqRel);
                    if sent.is_err() {
                        break;
                    }
                    continue;
                }
                Outgoing::Message(m) => m,
            };
            // Messages queued meanwhile join this write (the payload is a
            // stream of self-delimiting messages): fewer syscalls under load.
            let mut close_after = false;
            let mut next = None;
            while m.len() < COALESCE_LIMIT {
                match rx.try_recv() {
                    Ok(Outgoing::Message(more)) => m.extend_from_slice(&more),
                    Ok(Outgoing::Close) => {
                        close_after = true;
                        break;
                    }
                    Ok(other) => {
                        next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            // The writer is idle here: only a caller that saw nothing
            // queued takes it, and this message is counted as queued.
            let Some(mut writer) = take() else {
                break;
            };
            let Some(sent) = stop.bounded(writer.send(&m)).await else {
                // Cut off mid-write: the writer is dropped (closed).
                whole = false;
                break;
            };
            put(writer);
            writer_queued.fetch_sub(m.len(), Ordering::AcqRel);
            if sent.is_err() || close_after {
                break 'serve;
            }
            if let Some(Outgoing::InFlight(write, len)) = next {
                let Some((w, sent)) = stop.bounded(write).await else {
                    whole = false;
                    break;
                };
                put(w);
                writer_queued.fetch_sub(len, Ordering::AcqRel);
                if sent.is_err() {
                    break;
                }
            }
        }
        if let Some(mut writer) = take() {
            if let Some(last) = stop.take_last().filter(|_| whole) {
                let _ = stop.bounded(writer.send(&last)).await;
            }
            let _ = stop.bounded(writer.close()).await;
        }
        match on_vat {
            Some((io, token)) => io.release(token),
            None => {
                let _ = shut_tx.send(true);
            }
        }
    });

    let on_vat = reader.is_none();
    if let Some(reader) = reader {
        spawn_reader(reader, id, ingress, shut_rx);
    }
    ConnHandle {
        id,
        direction,
        tx,
        idle,
        closing,
        queued,
        max_queued,
        on_vat,
        stop,
    }
}

/// The runtime reader task: hands chunks to `ingress` until the end, only
/// drains once the writer has shut the connection, and reports
/// [`Input::Closed`] last.
fn spawn_reader(
    mut reader: Box<dyn MessageReader>,
    id: ConnId,
    ingress: Ingress,
    mut shut_rx: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut shut = false;
        let mut deadline: std::pin::Pin<Box<tokio::time::Sleep>> =
            Box::pin(tokio::time::sleep(Duration::from_secs(365 * 86_400)));
        let end = loop {
            tokio::select! {
                r = reader.recv() => match r {
                    Ok(Some(chunk)) => {
                        if !shut {
                            ingress(id, Input::Bytes(chunk));
                        }
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                },
                changed = shut_rx.changed(), if !shut => {
                    if changed.is_err() || *shut_rx.borrow() {
                        shut = true;
                        deadline = Box::pin(tokio::time::sleep(CLOSE_LINGER));
                    }
                }
                () = &mut deadline, if shut => break None,
            }
        };
        ingress(id, Input::Closed(end));
    });
}

/// Accepts connections from `netlayer` forever (until it fails or the event
/// loop is gone), sending each as [`NetEvent::Accepted`].
pub fn spawn_acceptor(netlayer: Arc<dyn Netlayer>, events: mpsc::Sender<NetEvent>) {
    tokio::spawn(async move {
        loop {
            match netlayer.accept().await {
                Ok(conn) => {
                    let transport = netlayer.transport().to_owned();
                    if events
                        .send(NetEvent::Accepted(conn, transport))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(NetError::Closed) => return,
                // A failed accept (e.g. too many open files) must not stop
                // the listener for good; back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
}

/// Dials `to` on `netlayer` in the background; the result comes back as
/// [`NetEvent::Dialed`] with `token`.
pub fn spawn_dial(
    netlayer: Arc<dyn Netlayer>,
    to: Location,
    token: DialToken,
    events: mpsc::Sender<NetEvent>,
) {
    tokio::spawn(async move {
        let result = match tokio::time::timeout(DIAL_TIMEOUT, netlayer.connect(&to)).await {
            Ok(r) => r,
            Err(_) => Err(NetError::Io(std::io::ErrorKind::TimedOut.into())),
        };
        let _ = events.send(NetEvent::Dialed { token, to, result }).await;
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[tokio::test]
    async fn writer_queue_is_capped_when_the_peer_does_not_read() {
        let net = MemoryNetwork::new();
        let x = net.netlayer("x").unwrap();
        let y = net.netlayer("y").unwrap();
        let to = y.location().clone();
        let (cx, cy) = tokio::join!(x.connect(&to), y.accept());
        let (ingress, _inputs) = channel_ingress();
        let hx = spawn_connection(cx.unwrap(), ingress, 1 << 20);
        let _never_reads = cy.unwrap();
        // The in-memory pipe holds 256 KiB; the cap 1 MiB more. Far less
        // than 64 MiB must be accepted before the cap refuses.
        let mut accepted = 0usize;
        while accepted < 64 << 20 {
            if !hx.send(vec![0u8; 64 * 1024]) {
                break;
            }
            accepted += 64 * 1024;
            tokio::task::yield_now().await;
        }
        assert!(accepted < 4 << 20, "accepted {accepted} bytes");
        assert!(hx.queued_bytes() <= 1 << 20);
    }

    use super::*;
    use pola_netlayer::{MemoryNetwork, TcpTestingOnly};

    type Inputs = mpsc::UnboundedReceiver<(ConnId, Input)>;

    /// An ingress that queues what it is handed, for the test to read.
    fn channel_ingress() -> (Ingress, Inputs) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ingress: Ingress = Arc::new(move |id, input| {
            let _ = tx.send((id, input));
        });
        (ingress, rx)
    }

    async fn collect(rx: &mut Inputs, id: ConnId) -> (Vec<u8>, Option<NetError>) {
        let mut got = Vec::new();
        loop {
            match rx.recv().await.unwrap() {
                (i, Input::Bytes(b)) if i == id => got.extend_from_slice(&b),
                (i, Input::Closed(e)) if i == id => return (got, e),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn messages_in_order_then_clean_close() {
        let tcp_a: Arc<dyn Netlayer> =
            Arc::new(TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap());
        let tcp_b: Arc<dyn Netlayer> =
            Arc::new(TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap());
        let (etx, mut erx) = mpsc::channel(EVENT_QUEUE);
        spawn_acceptor(tcp_b.clone(), etx.clone());
        spawn_dial(
            tcp_a.clone(),
            tcp_b.location().clone(),
            DialToken(7),
            etx.clone(),
        );

        let (mut accepted, mut dialed) = (None, None);
        while accepted.is_none() || dialed.is_none() {
            match erx.recv().await.unwrap() {
                NetEvent::Accepted(c, _) => accepted = Some(c),
                NetEvent::Dialed {
                    token: DialToken(7),
                    result,
                    ..
                } => dialed = Some(result.unwrap()),
                other => panic!("unexpected {other:?}"),
            }
        }
        let (a_in, mut a_rx) = channel_ingress();
        let (b_in, mut b_rx) = channel_ingress();
        let a = spawn_connection(dialed.unwrap(), a_in, DEFAULT_MAX_QUEUED);
        let b = spawn_connection(accepted.unwrap(), b_in, DEFAULT_MAX_QUEUED);
        assert_eq!(a.direction(), Direction::Outbound);
        assert_eq!(b.direction(), Direction::Inbound);
        for i in 0..100u8 {
            assert!(a.send(vec![i; 3]));
        }
        a.close();
        assert!(a.send(b"after close".to_vec())); // ignored
        let (got, err) = collect(&mut b_rx, b.id()).await;
        assert!(err.is_none());
        let expect: Vec<u8> = (0..100u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(got, expect);
        b.close();
        let (got, err) = collect(&mut a_rx, a.id()).await;
        assert!(got.is_empty());
        assert!(err.is_none());
    }

    #[tokio::test]
    async fn closing_side_stops_after_linger_if_peer_stays_open() {
        let net = MemoryNetwork::new();
        let x = net.netlayer("x").unwrap();
        let y = net.netlayer("y").unwrap();
        let to = y.location().clone();
        let (cx, cy) = tokio::join!(x.connect(&to), y.accept());
        let (ingress, mut inputs) = channel_ingress();
        let hx = spawn_connection(cx.unwrap(), ingress, DEFAULT_MAX_QUEUED);
        let _keep_open = cy.unwrap();
        hx.close();
        let started = tokio::time::Instant::now();
        match inputs.recv().await.unwrap() {
            (id, Input::Closed(None)) => assert_eq!(id, hx.id()),
            other => panic!("unexpected {other:?}"),
        }
        assert!(started.elapsed() >= CLOSE_LINGER / 2);
    }
}
