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
use crate::{BoxFuture, MessageReader, MessageWriter, NetError};

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
    pub(crate) fn new(inner: R, cipher: Arc<StatelessTransportState>) -> Self {
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

impl<R: AsyncRead + Unpin + Send> MessageReader for NoiseReader<R> {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, NetError>> {
        Box::pin(self.recv_inner())
    }
}

/// The sending half of an established Noise session.
pub struct NoiseWriter<W> {
    inner: W,
    cipher: Arc<StatelessTransportState>,
    nonce: u64,
    scratch: Vec<u8>,
}

impl<W> std::fmt::Debug for NoiseWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseWriter")
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin + Send> NoiseWriter<W> {
    pub(crate) fn new(inner: W, cipher: Arc<StatelessTransportState>) -> Self {
        NoiseWriter {
            inner,
            cipher,
            nonce: 0,
            scratch: Vec::new(),
        }
    }

    /// Appends one encrypted frame of `plaintext` to the scratch buffer.
    fn push_frame(&mut self, plaintext: &[u8]) -> Result<(), NoiseError> {
        if self.nonce == u64::MAX {
            return Err(NoiseError::NonceExhausted);
        }
        let len = plaintext.len() + TAG_LEN;
        let header = u16::try_from(len).map_err(|_| NoiseError::Local("frame too long".into()))?;
        self.scratch.extend_from_slice(&header.to_be_bytes());
        let start = self.scratch.len();
        self.scratch.resize(start + len, 0);
        let out = self.scratch.get_mut(start..).unwrap_or_default();
        let n = self
            .cipher
            .write_message(self.nonce, plaintext, out)
            .map_err(|e| NoiseError::Local(e.to_string()))?;
        self.scratch.truncate(start + n);
        self.nonce += 1;
        Ok(())
    }

    async fn send_inner(&mut self, message: &[u8]) -> Result<(), NetError> {
        // An empty message would read as the end-of-stream marker; there is
        // nothing to deliver on a byte stream anyway.
        if message.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        for piece in message.chunks(MAX_PLAINTEXT) {
            self.push_frame(piece)?;
        }
        self.inner.write_all(&self.scratch).await?;
        self.inner.flush().await?;
        Ok(())
    }

    async fn close_inner(&mut self) -> Result<(), NetError> {
        self.scratch.clear();
        self.push_frame(&[])?;
        self.inner.write_all(&self.scratch).await?;
        self.inner.shutdown().await?;
        Ok(())
    }
}

impl<W: AsyncWrite + Unpin + Send> MessageWriter for NoiseWriter<W> {
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

    #[tokio::test]
    async fn frames_round_trip_and_garbage_after_them_is_caught() {
        let (tx, rx) = ciphers();
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut writer = NoiseWriter::new(a, tx);
        let mut reader = NoiseReader::new(b, rx);
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        writer.send(&big).await.unwrap();
        writer.send(b"").await.unwrap();
        writer.send(b"x").await.unwrap();
        // 200 000 bytes need 4 frames; then "x" is the 5th.
        assert_eq!(writer.nonce, 5);
        writer.inner.write_all(&[0, 20, 1, 2, 3]).await.unwrap();
        drop(writer);
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
    async fn data_after_the_end_marker_is_an_error() {
        let (tx, rx) = ciphers();
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut writer = NoiseWriter::new(a, tx);
        writer.send(b"hi").await.unwrap();
        writer.scratch.clear();
        writer.push_frame(&[]).unwrap();
        writer.push_frame(b"late").unwrap();
        let frames = writer.scratch.clone();
        writer.inner.write_all(&frames).await.unwrap();
        let mut reader = NoiseReader::new(b, rx);
        assert_eq!(reader.recv().await.unwrap().unwrap(), &b"hi"[..]);
        let err = reader.recv().await.unwrap_err();
        assert_eq!(
            crate::noise::noise_error(&err),
            Some(&NoiseError::DataAfterClose)
        );
    }
}
