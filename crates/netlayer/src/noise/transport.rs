//! Noise messages on a byte stream: framing, and the encrypted reader and
//! writer halves of an established session.
//!
//! Every Noise message (the three handshake messages and every transport
//! message) travels as a frame: a 2-byte big-endian length, then that many
//! bytes. A length is at most 65535 by construction, so a frame's buffer is
//! bounded before anything is allocated; handshake frames must have their
//! exact fixed lengths.
//!
//! Transport frames carry ChaCha20-Poly1305 ciphertext (plaintext + 16-byte
//! tag) under an implicit nonce: the count of frames before it in that
//! direction. A replayed, reordered, dropped, injected or modified frame
//! therefore fails authentication, and the session ends. A frame whose
//! plaintext is empty is the end-of-stream marker: only an authenticated
//! marker ends a stream cleanly, so an attacker who cuts the connection is
//! reported as [`NoiseError::Truncated`], never as a clean end.
//!
//! Invariants (upheld here): each half counts its own nonces; a nonce is
//! consumed only when a frame is written into the outgoing buffer or has
//! been authenticated; after an error a reader returns that error forever.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::{NoiseError, Stage};
use super::handshake::{self, ACK_LEN, Established, SYN_LEN, SYNACK_LEN};
use super::identity::{Identity, PeerKey};
use crate::socket::ReadSource;
use crate::{BoxFuture, DirectRead, MessageReader, MessageWriter, NetError, ReadNow};

/// Largest Noise message (and frame body).
pub const MAX_FRAME: usize = 65535;
/// The AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Largest plaintext per transport frame.
pub const MAX_PLAINTEXT: usize = MAX_FRAME - TAG_LEN;

/// How much to ask the OS for per read.
const READ_CHUNK: usize = 128 * 1024;

/// Writes one handshake message as a frame.
pub(crate) async fn write_handshake<W: AsyncWrite + Unpin>(
    w: &mut W,
    message: &[u8],
) -> Result<(), NetError> {
    let len = u16::try_from(message.len())
        .map_err(|_| NoiseError::Local("handshake message too long".into()))?;
    let mut buf = Vec::with_capacity(2 + message.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(message);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one handshake frame, which must be exactly `expected` bytes long.
pub(crate) async fn read_handshake<R: AsyncRead + Unpin>(
    r: &mut R,
    stage: Stage,
    expected: usize,
) -> Result<Vec<u8>, NetError> {
    let mut header = [0u8; 2];
    r.read_exact(&mut header)
        .await
        .map_err(|e| eof_as_truncated(e, 0))?;
    let len = usize::from(u16::from_be_bytes(header));
    if len != expected {
        return Err(NoiseError::BadHandshakeLength {
            stage,
            len,
            expected,
        }
        .into());
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .map_err(|e| eof_as_truncated(e, 2))?;
    Ok(body)
}

/// Runs the initiator's side of the handshake on `stream` (any byte
/// stream: the netlayer passes a TCP stream, the fuzz targets an in-memory
/// pipe): SYN out, SYNACK in, ACK out. Succeeds only if the far end proves
/// `expected`.
///
/// # Errors
/// I/O, a [`NoiseError`] from [`handshake::initiate`] or
/// [`AwaitingSynAck::read_synack`](handshake::AwaitingSynAck::read_synack),
/// or a bad SYNACK frame ([`NoiseError::BadHandshakeLength`],
/// [`NoiseError::Truncated`]). No timeout: the caller bounds the time.
pub async fn initiate_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    identity: &Identity,
    expected: PeerKey,
) -> Result<Established, NetError> {
    let (state, syn) = handshake::initiate(identity, expected)?;
    write_handshake(stream, &syn).await?;
    let synack = read_handshake(stream, Stage::SynAck, SYNACK_LEN).await?;
    let (established, ack) = state.read_synack(&synack)?;
    write_handshake(stream, &ack).await?;
    Ok(established)
}

/// Runs the responder's side of the handshake on `stream` as `identity`:
/// SYN in, SYNACK out, ACK in. Returns the verified initiator.
///
/// # Errors
/// I/O, a [`NoiseError`] from [`handshake::respond`] or
/// [`AwaitingAck::read_ack`](handshake::AwaitingAck::read_ack), or a bad
/// frame ([`NoiseError::BadHandshakeLength`], [`NoiseError::Truncated`]).
/// No timeout: the caller bounds the time.
pub async fn respond_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    identity: &Identity,
) -> Result<Established, NetError> {
    let syn = read_handshake(stream, Stage::Syn, SYN_LEN).await?;
    let (state, synack) = handshake::respond(identity, &syn)?;
    write_handshake(stream, &synack).await?;
    let ack = read_handshake(stream, Stage::Ack, ACK_LEN).await?;
    Ok(state.read_ack(&ack)?)
}

fn eof_as_truncated(e: std::io::Error, buffered: usize) -> NetError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        NoiseError::Truncated { buffered }.into()
    } else {
        NetError::Io(e)
    }
}

/// The receiving half of an established Noise session.
pub struct NoiseReader<R> {
    inner: R,
    cipher: Arc<StatelessTransportState>,
    nonce: u64,
    buf: BytesMut,
    /// Plaintext being assembled; handed out with `split`, so its
    /// allocation is reused once the caller drops earlier chunks.
    plain: BytesMut,
    state: ReadState,
}

#[derive(Debug)]
enum ReadState {
    Open,
    /// The authenticated end-of-stream marker arrived.
    Ended,
    /// A sticky failure.
    Failed(NoiseError),
}

impl<R> std::fmt::Debug for NoiseReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseReader")
            .field("nonce", &self.nonce)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin + Send> NoiseReader<R> {
    /// The receiving half over `inner`, opening frames with `cipher` (an
    /// [`Established::transport`], shared with the writer half; each half
    /// counts its own nonces).
    pub fn new(inner: R, cipher: Arc<StatelessTransportState>) -> Self {
        NoiseReader {
            inner,
            cipher,
            nonce: 0,
            buf: BytesMut::new(),
            plain: BytesMut::new(),
            state: ReadState::Open,
        }
    }

    fn fail(&mut self, e: NoiseError) -> NetError {
        self.state = ReadState::Failed(e.clone());
        self.buf.clear();
        e.into()
    }

    /// Decrypts every complete frame in the buffer into `out`.
    fn drain_frames(&mut self, out: &mut BytesMut) -> Result<(), NoiseError> {
        loop {
            if !matches!(self.state, ReadState::Open) {
                if !self.buf.is_empty() {
                    return Err(NoiseError::DataAfterClose);
                }
                return Ok(());
            }
            let Some(header) = self.buf.get(..2) else {
                return Ok(());
            };
            let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
            if len < TAG_LEN {
                return Err(NoiseError::FrameTooShort { len });
            }
            if self.buf.len() < 2 + len {
                // `len` is at most 65535: a bounded reservation.
                self.buf.reserve(2 + len - self.buf.len());
                return Ok(());
            }
            if self.nonce == u64::MAX {
                return Err(NoiseError::NonceExhausted);
            }
            // Room for the whole ciphertext: the AEAD then opens it in
            // place instead of allocating a copy.
            let start = out.len();
            out.resize(start + len, 0);
            let frame = self.buf.get(2..2 + len).unwrap_or_default();
            let n = match self.cipher.read_message(
                self.nonce,
                frame,
                out.get_mut(start..).unwrap_or_default(),
            ) {
                Ok(n) => n,
                Err(_) => {
                    // Never hand out bytes of a frame that failed to
                    // authenticate.
                    out.truncate(start);
                    return Err(NoiseError::Decrypt { nonce: self.nonce });
                }
            };
            out.truncate(start + n);
            self.nonce += 1;
            self.buf.advance(2 + len);
            if n == 0 {
                self.state = ReadState::Ended;
            }
        }
    }

    async fn recv_inner(&mut self) -> Result<Option<Bytes>, NetError> {
        loop {
            match &self.state {
                ReadState::Failed(e) => return Err(e.clone().into()),
                ReadState::Ended if self.buf.is_empty() => return Ok(None),
                _ => {}
            }
            // Every frame decrypted below fits in the buffered ciphertext.
            let mut out = std::mem::take(&mut self.plain);
            out.reserve(self.buf.len());
            let drained = self.drain_frames(&mut out);
            let chunk = out.split().freeze();
            self.plain = out;
            if let Err(e) = drained {
                let err = self.fail(e);
                // Hand out what was authenticated before the bad frame; the
                // error comes on the next call.
                if !chunk.is_empty() {
                    return Ok(Some(chunk));
                }
                return Err(err);
            }
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
            if matches!(self.state, ReadState::Ended) {
                return Ok(None);
            }
            self.buf.reserve(READ_CHUNK);
            let n = match self.inner.read_buf(&mut self.buf).await {
                Ok(n) => n,
                Err(e) => {
                    self.state = ReadState::Failed(NoiseError::Truncated { buffered: 0 });
                    return Err(NetError::Io(e));
                }
            };
            if n == 0 {
                let buffered = self.buf.len();
                return Err(self.fail(NoiseError::Truncated { buffered }));
            }
        }
    }
}

impl<R: ReadSource> MessageReader for NoiseReader<R> {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, NetError>> {
        Box::pin(self.recv_inner())
    }

    fn direct(&mut self) -> Option<&mut dyn DirectRead> {
        if self.inner.socket().is_some() {
            Some(self)
        } else {
            None
        }
    }
}

/// Over a socket, the reader can also be driven without the runtime: the
/// same frames, decrypted the same way, from a non-blocking read.
impl<R: ReadSource> DirectRead for NoiseReader<R> {
    fn fd(&self) -> std::os::fd::RawFd {
        self.inner.socket().map_or(-1, crate::socket::SockRead::fd)
    }

    fn read_now(&mut self, max: usize) -> Result<ReadNow, NetError> {
        let mut drained = false;
        loop {
            match &self.state {
                ReadState::Failed(e) => return Err(e.clone().into()),
                ReadState::Ended if self.buf.is_empty() => return Ok(ReadNow::End),
                _ => {}
            }
            let mut out = std::mem::take(&mut self.plain);
            out.reserve(self.buf.len());
            let decrypted = self.drain_frames(&mut out);
            let chunk = out.split().freeze();
            self.plain = out;
            if let Err(e) = decrypted {
                let err = self.fail(e);
                if !chunk.is_empty() {
                    return Ok(ReadNow::Chunk(chunk));
                }
                return Err(err);
            }
            if !chunk.is_empty() {
                // What is left is at most part of a frame; after a short
                // read the socket has nothing more for now.
                return Ok(if drained {
                    ReadNow::Drained(chunk)
                } else {
                    ReadNow::Chunk(chunk)
                });
            }
            if matches!(self.state, ReadState::Ended) {
                return Ok(ReadNow::End);
            }
            // Part of a frame at most: read on even after a short read; the
            // end of stream may be waiting behind it (see stream.rs).
            let Some(sock) = self.inner.socket() else {
                return Err(NetError::Io(std::io::ErrorKind::Unsupported.into()));
            };
            match sock.read_direct(&mut self.buf, max) {
                Ok((0, _)) => {
                    let buffered = self.buf.len();
                    return Err(self.fail(NoiseError::Truncated { buffered }));
                }
                Ok((_, short)) => drained = short,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(ReadNow::Empty),
                Err(e) => {
                    self.state = ReadState::Failed(NoiseError::Truncated { buffered: 0 });
                    return Err(NetError::Io(e));
                }
            }
        }
    }
}

/// Most plaintext a writer holds before [`MessageWriter::send`] waits for
/// the socket: the bound on a connection's buffered outgoing bytes.
const MAX_PENDING: usize = 256 * 1024;

/// Seals plaintext into transport frames under strictly sequential nonces.
struct Sealer {
    cipher: Arc<StatelessTransportState>,
    nonce: u64,
}

impl Sealer {
    /// Appends one encrypted frame of `plaintext` (at most
    /// [`MAX_PLAINTEXT`] bytes) to `out`.
    fn push_frame(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), NoiseError> {
        if self.nonce == u64::MAX {
            return Err(NoiseError::NonceExhausted);
        }
        let len = plaintext.len() + TAG_LEN;
        let header = u16::try_from(len).map_err(|_| NoiseError::Local("frame too long".into()))?;
        out.extend_from_slice(&header.to_be_bytes());
        let start = out.len();
        out.resize(start + len, 0);
        let body = out.get_mut(start..).unwrap_or_default();
        let n = self
            .cipher
            .write_message(self.nonce, plaintext, body)
            .map_err(|e| NoiseError::Local(e.to_string()))?;
        out.truncate(start + n);
        self.nonce += 1;
        Ok(())
    }
}

/// Why the writer task stopped.
#[derive(Clone, Debug)]
enum Stopped {
    /// `close` finished: the end marker was written and the stream shut.
    Closed,
    /// A write failed.
    Io(std::io::ErrorKind, String),
    /// Sealing failed (nonce exhaustion).
    Noise(NoiseError),
}

impl Stopped {
    fn to_error(&self) -> NetError {
        match self {
            Stopped::Closed => NetError::Closed,
            Stopped::Io(kind, msg) => NetError::Io(std::io::Error::new(*kind, msg.clone())),
            Stopped::Noise(e) => e.clone().into(),
        }
    }
}

/// The socket, the sealer and the sealed bytes not yet written: held by
/// whoever is writing (an inline `send` or the writer task).
struct Io<W> {
    inner: W,
    sealer: Sealer,
    out: Vec<u8>,
    /// How much of `out` is written.
    written: usize,
}

impl<W> Io<W> {
    fn idle(&self) -> bool {
        self.written >= self.out.len()
    }
}

/// State shared by a [`NoiseWriter`] and its writer task.
struct Shared<W> {
    /// Plaintext accepted by `send` and not yet sealed.
    pending: BytesMut,
    /// The socket when nobody is writing.
    io: Option<Io<W>>,
    /// `close` was called: seal the end marker after `pending`.
    closing: bool,
    /// The `NoiseWriter` was dropped: write what was accepted, then stop.
    dropped: bool,
    /// Set once, when the writer stops.
    stopped: Option<Stopped>,
}

struct Channel<W> {
    shared: std::sync::Mutex<Shared<W>>,
    /// Wakes the task: bytes pending or handed over, close, or drop.
    to_task: tokio::sync::Notify,
    /// Wakes the writer: room in `pending`, or the writer stopped.
    to_writer: tokio::sync::Notify,
}

impl<W> Channel<W> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared<W>> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half of an established Noise session.
///
/// When the socket is idle, `send` seals the message and writes it at once
/// (one write, as many frames as the message needs). If the socket cannot
/// take it all, the rest goes to a writer task, and messages sent while it
/// writes are buffered as plaintext (at most 256 KiB; beyond
/// that `send` waits) and later sealed together into as few frames as fit,
/// written with one write: fewer AEAD calls, headers and syscalls exactly
/// when the link is the bottleneck. Merging is sound because a Noise
/// connection carries one unframed byte stream: the reader hands out the
/// plaintext in order, without message boundaries. Nonces stay sequential:
/// only the holder of the socket seals. A failed background write is
/// reported by the next `send` or `close`; dropping the writer still writes
/// what was accepted (without the end marker, so the peer sees a
/// truncation).
pub struct NoiseWriter<W> {
    channel: Arc<Channel<W>>,
}

impl<W> std::fmt::Debug for NoiseWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.channel.lock();
        f.debug_struct("NoiseWriter")
            .field("pending", &s.pending.len())
            .field("stopped", &s.stopped)
            .finish_non_exhaustive()
    }
}

impl<W> Drop for NoiseWriter<W> {
    fn drop(&mut self) {
        self.channel.lock().dropped = true;
        self.channel.to_task.notify_one();
    }
}

fn io_stopped(e: &std::io::Error) -> Stopped {
    Stopped::Io(e.kind(), e.to_string())
}

impl<W: AsyncWrite + Unpin + Send + 'static> NoiseWriter<W> {
    /// Spawns the writer task on the current Tokio runtime.
    pub(crate) fn new(inner: W, cipher: Arc<StatelessTransportState>) -> Self {
        let io = Io {
            inner,
            sealer: Sealer { cipher, nonce: 0 },
            out: Vec::new(),
            written: 0,
        };
        let channel = Arc::new(Channel {
            shared: std::sync::Mutex::new(Shared {
                pending: BytesMut::new(),
                io: Some(io),
                closing: false,
                dropped: false,
                stopped: None,
            }),
            to_task: tokio::sync::Notify::new(),
            to_writer: tokio::sync::Notify::new(),
        });
        tokio::spawn(write_task(channel.clone()));
        NoiseWriter { channel }
    }

    fn stop(&self, stopped: Stopped) -> NetError {
        let e = stopped.to_error();
        let mut s = self.channel.lock();
        s.stopped.get_or_insert(stopped);
        drop(s);
        self.channel.to_task.notify_one();
        e
    }

    /// Seals `message` and writes as much as the socket takes now; hands
    /// the rest to the writer task.
    async fn send_now(&mut self, mut io: Io<W>, message: &[u8]) -> Result<(), NetError> {
        io.out.clear();
        io.written = 0;
        if let Err(e) = message
            .chunks(MAX_PLAINTEXT)
            .try_for_each(|piece| io.sealer.push_frame(piece, &mut io.out))
        {
            return Err(self.stop(Stopped::Noise(e)));
        }
        let tried = std::future::poll_fn(|cx| {
            while let Some(rest) = io.out.get(io.written..).filter(|r| !r.is_empty()) {
                match std::pin::Pin::new(&mut io.inner).poll_write(cx, rest) {
                    std::task::Poll::Ready(Ok(0)) => {
                        return std::task::Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                    }
                    std::task::Poll::Ready(Ok(n)) => io.written += n,
                    std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Pending => return std::task::Poll::Ready(Ok(false)),
                }
            }
            match std::pin::Pin::new(&mut io.inner).poll_flush(cx) {
                std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(true)),
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => std::task::Poll::Ready(Ok(false)),
            }
        })
        .await;
        match tried {
            Err(e) => {
                let stopped = io_stopped(&e);
                drop(io);
                Err(self.stop(stopped))
            }
            Ok(done) => {
                self.channel.lock().io = Some(io);
                if !done {
                    self.channel.to_task.notify_one();
                }
                Ok(())
            }
        }
    }

    async fn send_inner(&mut self, message: &[u8]) -> Result<(), NetError> {
        // An empty message would read as the end-of-stream marker; there is
        // nothing to deliver on a byte stream anyway.
        let mut rest = message;
        while !rest.is_empty() {
            let io = {
                let mut s = self.channel.lock();
                if let Some(stopped) = &s.stopped {
                    return Err(stopped.to_error());
                }
                if s.closing {
                    return Err(NetError::Closed);
                }
                let idle = s.io.as_ref().is_some_and(Io::idle);
                if idle && s.pending.is_empty() {
                    s.io.take()
                } else {
                    let room = MAX_PENDING.saturating_sub(s.pending.len());
                    let (now, later) = rest.split_at(room.min(rest.len()));
                    s.pending.extend_from_slice(now);
                    rest = later;
                    None
                }
            };
            if let Some(io) = io {
                return self.send_now(io, rest).await;
            }
            self.channel.to_task.notify_one();
            if !rest.is_empty() {
                // `notify_one` stores a permit, so a wake-up between the
                // unlock and this wait is not lost.
                self.channel.to_writer.notified().await;
            }
        }
        Ok(())
    }

    async fn close_inner(&mut self) -> Result<(), NetError> {
        self.channel.lock().closing = true;
        self.channel.to_task.notify_one();
        loop {
            if let Some(stopped) = &self.channel.lock().stopped {
                return match stopped {
                    Stopped::Closed => Ok(()),
                    other => Err(other.to_error()),
                };
            }
            self.channel.to_writer.notified().await;
        }
    }
}

/// The writer task: finishes handed-over writes, then seals and writes
/// whatever `send` buffered meanwhile, in order.
async fn write_task<W: AsyncWrite + Unpin>(channel: Arc<Channel<W>>) {
    let mut plain = BytesMut::new();
    loop {
        let taken = {
            let mut s = channel.lock();
            if s.stopped.is_some() {
                return;
            }
            let work = s.closing
                || s.dropped
                || !s.pending.is_empty()
                || s.io.as_ref().is_some_and(|io| !io.idle());
            match (work, s.io.take()) {
                (true, Some(io)) => {
                    std::mem::swap(&mut plain, &mut s.pending);
                    Some((io, s.closing, s.dropped))
                }
                (_, io) => {
                    s.io = io;
                    None
                }
            }
        };
        let Some((mut io, closing, dropped)) = taken else {
            channel.to_task.notified().await;
            continue;
        };
        if !plain.is_empty() {
            // Room again for the writer.
            channel.to_writer.notify_one();
        }
        let result = drain(&mut io, &mut plain, closing).await;
        plain.clear();
        let stopped = match result {
            Err(e) => Some(e),
            Ok(()) if closing => Some(Stopped::Closed),
            Ok(()) => None,
        };
        {
            let mut s = channel.lock();
            match stopped {
                Some(stopped) => {
                    s.pending = BytesMut::new();
                    s.stopped.get_or_insert(stopped);
                }
                None if dropped && s.pending.is_empty() => return,
                None => {
                    s.io = Some(io);
                    continue;
                }
            }
        }
        channel.to_writer.notify_one();
        return;
    }
}

/// Writes what is left of `io.out`, then `plain` sealed into frames, then
/// (if `closing`) the end marker and a shutdown.
async fn drain<W: AsyncWrite + Unpin>(
    io: &mut Io<W>,
    plain: &mut BytesMut,
    closing: bool,
) -> Result<(), Stopped> {
    let rest = io.out.get(io.written..).unwrap_or_default();
    io.inner.write_all(rest).await.map_err(|e| io_stopped(&e))?;
    io.out.clear();
    io.written = 0;
    for piece in plain.chunks(MAX_PLAINTEXT) {
        io.sealer
            .push_frame(piece, &mut io.out)
            .map_err(Stopped::Noise)?;
    }
    if closing {
        io.sealer
            .push_frame(&[], &mut io.out)
            .map_err(Stopped::Noise)?;
    }
    io.inner
        .write_all(&io.out)
        .await
        .map_err(|e| io_stopped(&e))?;
    io.written = io.out.len();
    io.inner.flush().await.map_err(|e| io_stopped(&e))?;
    if closing {
        io.inner.shutdown().await.map_err(|e| io_stopped(&e))?;
    }
    Ok(())
}

impl<W: AsyncWrite + Unpin + Send + 'static> MessageWriter for NoiseWriter<W> {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(self.send_inner(message))
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), NetError>> {
        Box::pin(self.close_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::noise::Identity;
    use crate::noise::handshake;

    fn ciphers() -> (Arc<StatelessTransportState>, Arc<StatelessTransportState>) {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let (ia, syn) = handshake::initiate(&a, b.public_key()).unwrap();
        let (rb, synack) = handshake::respond(&b, &syn).unwrap();
        let (ea, ack) = ia.read_synack(&synack).unwrap();
        let eb = rb.read_ack(&ack).unwrap();
        (Arc::new(ea.transport), Arc::new(eb.transport))
    }

    /// A small deterministic generator (xorshift64*), so failures repeat.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    #[tokio::test]
    async fn arbitrary_bytes_end_in_an_error_never_a_panic_or_data() {
        let (_, rx) = ciphers();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let len = (rng.next() % 300) as usize;
            let mut junk = rng.bytes(len);
            // Plausible headers half the time.
            if round % 2 == 0 && junk.len() >= 2 {
                let l = (rng.next() % 64) as u16;
                junk[..2].copy_from_slice(&l.to_be_bytes());
            }
            let (mut w, r) = tokio::io::duplex(1024);
            w.write_all(&junk).await.unwrap();
            drop(w);
            let mut reader = NoiseReader::new(r, rx.clone());
            let got = reader.recv().await;
            assert!(got.is_err(), "round {round}: {got:?}");
        }
    }

    /// Seals `pieces` (each one frame) with a fresh nonce sequence.
    fn seal_frames(tx: Arc<StatelessTransportState>, pieces: &[&[u8]]) -> Vec<u8> {
        let mut sealer = Sealer {
            cipher: tx,
            nonce: 0,
        };
        let mut out = Vec::new();
        for p in pieces {
            sealer.push_frame(p, &mut out).unwrap();
        }
        out
    }

    async fn read_to_end(
        reader: &mut NoiseReader<tokio::io::DuplexStream>,
    ) -> Result<Vec<u8>, NetError> {
        let mut got = Vec::new();
        loop {
            match reader.recv().await? {
                Some(c) => got.extend_from_slice(&c),
                None => return Ok(got),
            }
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_garbage_after_them_is_caught() {
        let (tx, rx) = ciphers();
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let pieces: Vec<&[u8]> = big.chunks(MAX_PLAINTEXT).chain([&b"x"[..]]).collect();
        // 200 000 bytes need 4 frames; then "x" is the 5th.
        assert_eq!(pieces.len(), 5);
        a.write_all(&seal_frames(tx, &pieces)).await.unwrap();
        a.write_all(&[0, 20, 1, 2, 3]).await.unwrap();
        drop(a);
        let mut reader = NoiseReader::new(b, rx);
        let mut got = Vec::new();
        let err = loop {
            match reader.recv().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => panic!("clean end"),
                Err(e) => break e,
            }
        };
        assert_eq!(&got[..big.len()], &big[..]);
        assert_eq!(&got[big.len()..], b"x");
        assert_eq!(
            crate::noise::noise_error(&err),
            Some(&NoiseError::Truncated { buffered: 5 })
        );
    }

    #[tokio::test]
    async fn coalesced_sends_arrive_in_order_and_close_ends_cleanly() {
        let (tx, rx) = ciphers();
        // A small pipe, so the writer task must wait and the buffer fills.
        let (a, b) = tokio::io::duplex(4096);
        let mut writer = NoiseWriter::new(a, tx);
        let mut reader = NoiseReader::new(b, rx);
        let read = tokio::spawn(async move { read_to_end(&mut reader).await });
        let mut want = Vec::new();
        let mut rng = Rng(7);
        for i in 0..3000u32 {
            let len = (rng.next() % 700) as usize;
            let mut m = rng.bytes(len);
            m.extend_from_slice(&i.to_be_bytes());
            writer.send(&m).await.unwrap();
            writer.send(b"").await.unwrap();
            want.extend_from_slice(&m);
        }
        // Larger than the writer's buffer: accepted in pieces.
        let big: Vec<u8> = (0..(MAX_PENDING * 3 + 5) as u32)
            .map(|i| (i * 7) as u8)
            .collect();
        writer.send(&big).await.unwrap();
        want.extend_from_slice(&big);
        writer.close().await.unwrap();
        assert!(matches!(writer.send(b"late").await, Err(NetError::Closed)));
        writer.close().await.unwrap();
        assert_eq!(read.await.unwrap().unwrap(), want);
    }

    #[tokio::test]
    async fn dropping_the_writer_delivers_accepted_bytes_then_reads_as_truncation() {
        let (tx, rx) = ciphers();
        let (a, b) = tokio::io::duplex(1024);
        let mut writer = NoiseWriter::new(a, tx);
        let mut reader = NoiseReader::new(b, rx);
        let msg = vec![0x42u8; 10_000];
        writer.send(&msg).await.unwrap();
        drop(writer);
        let mut got = Vec::new();
        let err = loop {
            match reader.recv().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => panic!("clean end without the marker"),
                Err(e) => break e,
            }
        };
        assert_eq!(got, msg);
        assert_eq!(
            crate::noise::noise_error(&err),
            Some(&NoiseError::Truncated { buffered: 0 })
        );
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_by_a_later_send_and_by_close() {
        let (tx, _rx) = ciphers();
        let (a, b) = tokio::io::duplex(1024);
        let mut writer = NoiseWriter::new(a, tx);
        drop(b);
        let mut failed = false;
        for _ in 0..1000 {
            if writer.send(&[1u8; 512]).await.is_err() {
                failed = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(failed, "sends into a closed pipe never failed");
        assert!(matches!(writer.close().await, Err(NetError::Io(_))));
    }

    #[tokio::test]
    async fn data_after_the_end_marker_is_an_error() {
        let (tx, rx) = ciphers();
        let (mut a, b) = tokio::io::duplex(1 << 16);
        a.write_all(&seal_frames(tx, &[b"hi", b"", b"late"]))
            .await
            .unwrap();
        let mut reader = NoiseReader::new(b, rx);
        assert_eq!(reader.recv().await.unwrap().unwrap(), &b"hi"[..]);
        let err = reader.recv().await.unwrap_err();
        assert_eq!(
            crate::noise::noise_error(&err),
            Some(&NoiseError::DataAfterClose)
        );
    }

    /// A peer sends part of a frame and closes: both are in the socket
    /// before the reader looks (one edge, with RDHUP). `read_now` must not
    /// answer `Empty` (wait for readiness) while the end is already there:
    /// an edge-triggered caller would never come back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn read_now_does_not_say_empty_with_a_cut_behind_a_partial_frame() {
        let (tx, rx) = ciphers();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut sealer = Sealer {
            cipher: tx,
            nonce: 0,
        };
        let mut frame = Vec::new();
        sealer.push_frame(b"hello", &mut frame).unwrap();
        std::io::Write::write_all(&mut client, &frame[..5]).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        crate::socket::until_read_closed(&server).await;
        let (r, _w) = crate::socket::split(server, false).unwrap();
        let mut reader = NoiseReader::new(r, rx);
        let first = reader.read_now(usize::MAX);
        assert!(
            !matches!(first, Ok(ReadNow::Empty)),
            "Empty while the cut was readable; next read_now: {:?}",
            reader.read_now(usize::MAX)
        );
    }

    /// The documented drop behaviour over real TCP: a dropped writer's
    /// accepted bytes arrive, then the peer sees the stream end (a
    /// truncation), even while our reading half is still open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn dropped_writer_over_tcp_ends_the_stream_while_the_reader_lives() {
        use std::io::Read;
        let (tx, _rx) = ciphers();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (r, w) = crate::socket::split(server, true).unwrap();
        let mut writer = NoiseWriter::new(w, tx);
        writer.send(b"hello").await.unwrap();
        drop(writer);
        let got = tokio::task::spawn_blocking(move || {
            client
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let mut all = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                match client.read(&mut buf) {
                    Ok(0) => return Ok(all.len()),
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) => return Err((all.len(), e.kind())),
                }
            }
        })
        .await
        .unwrap();
        drop(r);
        assert_eq!(got, Ok(2 + 5 + TAG_LEN), "no end of stream after the drop");
    }
}
