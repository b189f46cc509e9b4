//! Connection halves over any tokio byte stream, with optional framing.
//!
//! [`StreamReader`] and [`StreamWriter`] adapt an `AsyncRead` / `AsyncWrite`
//! (a TCP socket half, a duplex pipe half) to [`MessageReader`] /
//! [`MessageWriter`]. Both TCP and the in-memory netlayer use them.
//!
//! Invariants (upheld here): the writer emits each message with one
//! `write_all` of a buffer that already holds the frame header, so a message
//! is never interleaved with another; the framed reader never allocates
//! from a peer-declared length before checking it against `max_frame`, and
//! keeps partial input in `self` so a cancelled `recv` loses nothing.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{BoxFuture, DirectRead, MessageReader, MessageWriter, NetError, ReadNow};

/// How messages are delimited on a stream netlayer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// No framing: Syrup records back to back (what the OCapN test suite
    /// speaks on `tcp-testing-only`). The reader hands out raw chunks.
    #[default]
    None,
    /// Each message wrapped as a Syrup byte string, `<len>:<message>` (agreed
    /// upstream in 2026-04, not yet in the drafts). The reader hands out one
    /// message payload per chunk.
    ByteString {
        /// Largest message payload accepted from the peer, in bytes.
        max_frame: usize,
    },
}

/// Default largest frame for [`Framing::ByteString`]: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The most decimal digits a frame header may have (enough for any `usize`).
const MAX_HEADER_DIGITS: usize = 20;

use crate::socket::{READ_CHUNK, ReadSource};

/// A [`MessageReader`] over an `AsyncRead`.
#[derive(Debug)]
pub struct StreamReader<R> {
    inner: R,
    framing: Framing,
    buf: BytesMut,
}

impl<R> StreamReader<R> {
    /// Wraps `inner`, reading with the given framing.
    pub fn new(inner: R, framing: Framing) -> Self {
        StreamReader {
            inner,
            framing,
            buf: BytesMut::new(),
        }
    }
}

impl<R: AsyncRead + Unpin + Send> StreamReader<R> {
    async fn recv_inner(&mut self) -> Result<Option<Bytes>, NetError> {
        match self.framing {
            Framing::None => {
                if !self.buf.is_empty() {
                    return Ok(Some(self.buf.split().freeze()));
                }
                self.buf.reserve(READ_CHUNK);
                let n = self.inner.read_buf(&mut self.buf).await?;
                if n == 0 {
                    return Ok(None);
                }
                Ok(Some(self.buf.split().freeze()))
            }
            Framing::ByteString { max_frame } => loop {
                if let Some(frame) = take_frame(&mut self.buf, max_frame)? {
                    return Ok(Some(frame));
                }
                let n = self.inner.read_buf(&mut self.buf).await?;
                if n == 0 {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    return Err(NetError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
            },
        }
    }
}

/// [`crate::DirectRead::read_now`] over a buffer and its framing, with
/// `read` (non-blocking: `WouldBlock` when nothing is there) in place of
/// an awaited read.
///
/// `read` appends what the socket has to the buffer and says how many
/// bytes that was and whether the read was short (the socket had no
/// more): the answer is then [`ReadNow::Drained`], and no read is spent
/// finding the socket empty.
fn read_now_framed(
    framing: Framing,
    buf: &mut BytesMut,
    max: usize,
    mut read: impl FnMut(&mut BytesMut, usize) -> std::io::Result<(usize, bool)>,
) -> Result<ReadNow, NetError> {
    let would_block = |e: &std::io::Error| e.kind() == std::io::ErrorKind::WouldBlock;
    match framing {
        Framing::None => {
            if !buf.is_empty() {
                return Ok(ReadNow::Chunk(buf.split().freeze()));
            }
            match read(buf, max) {
                Ok((0, _)) => Ok(ReadNow::End),
                Ok((_, true)) => Ok(ReadNow::Drained(buf.split().freeze())),
                Ok((_, false)) => Ok(ReadNow::Chunk(buf.split().freeze())),
                Err(e) if would_block(&e) => Ok(ReadNow::Empty),
                Err(e) => Err(e.into()),
            }
        }
        Framing::ByteString { max_frame } => {
            let mut drained = false;
            loop {
                if let Some(frame) = take_frame(buf, max_frame)? {
                    return Ok(if drained && buf.is_empty() {
                        ReadNow::Drained(frame)
                    } else {
                        ReadNow::Chunk(frame)
                    });
                }
                // Part of a frame: read on even after a short read. Only
                // the socket saying `WouldBlock` means "wait": the end of
                // stream may be sitting behind the part, with no readiness
                // left to announce it.
                match read(buf, max) {
                    Ok((0, _)) if buf.is_empty() => return Ok(ReadNow::End),
                    Ok((0, _)) => {
                        return Err(NetError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                    Ok((_, short)) => drained = short,
                    Err(e) if would_block(&e) => return Ok(ReadNow::Empty),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Over a socket, the reader can also be driven without the runtime.
impl<R: ReadSource> DirectRead for StreamReader<R> {
    fn fd(&self) -> std::os::fd::RawFd {
        self.inner.socket().map_or(-1, crate::socket::SockRead::fd)
    }

    fn read_now(&mut self, max: usize) -> Result<ReadNow, NetError> {
        let Some(sock) = self.inner.socket() else {
            return Err(NetError::Io(std::io::ErrorKind::Unsupported.into()));
        };
        read_now_framed(self.framing, &mut self.buf, max, |b, m| {
            sock.read_direct(b, m)
        })
    }
}

/// Takes one complete `<len>:<payload>` frame off the front of `buf`, if one
/// is there. Checks the header before reserving room for the payload.
fn take_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Bytes>, NetError> {
    let mut len: usize = 0;
    let mut digits = 0usize;
    for (offset, &b) in buf.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                if digits >= MAX_HEADER_DIGITS {
                    return Err(NetError::BadFrame { offset });
                }
                digits += 1;
                len = len
                    .checked_mul(10)
                    .and_then(|l| l.checked_add(usize::from(b - b'0')))
                    .unwrap_or(usize::MAX);
                if len > max_frame {
                    return Err(NetError::FrameTooLarge {
                        len,
                        max: max_frame,
                    });
                }
            }
            b':' if digits > 0 => {
                let header = offset + 1;
                let total = header.saturating_add(len);
                if buf.len() < total {
                    buf.reserve(total - buf.len());
                    return Ok(None);
                }
                buf.advance(header);
                return Ok(Some(buf.split_to(len).freeze()));
            }
            _ => return Err(NetError::BadFrame { offset }),
        }
    }
    Ok(None)
}

impl<R: ReadSource> MessageReader for StreamReader<R> {
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

/// A [`MessageWriter`] over an `AsyncWrite`.
#[derive(Debug)]
pub struct StreamWriter<W> {
    inner: W,
    framing: Framing,
    scratch: Vec<u8>,
}

impl<W: AsyncWrite + Unpin + Send> StreamWriter<W> {
    /// Wraps `inner`, writing with the given framing.
    pub fn new(inner: W, framing: Framing) -> Self {
        StreamWriter {
            inner,
            framing,
            scratch: Vec::new(),
        }
    }

    async fn send_inner(&mut self, message: &[u8]) -> Result<(), NetError> {
        match self.framing {
            Framing::None => self.inner.write_all(message).await?,
            Framing::ByteString { .. } => {
                self.scratch.clear();
                self.scratch
                    .extend_from_slice(format!("{}:", message.len()).as_bytes());
                self.scratch.extend_from_slice(message);
                self.inner.write_all(&self.scratch).await?;
            }
        }
        self.inner.flush().await?;
        Ok(())
    }
}

impl<W: AsyncWrite + Unpin + Send> MessageWriter for StreamWriter<W> {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(self.send_inner(message))
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), NetError>> {
        Box::pin(async move {
            self.inner.shutdown().await?;
            Ok(())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn framed() -> Framing {
        Framing::ByteString { max_frame: 100 }
    }

    #[tokio::test]
    async fn framed_round_trip_in_odd_chunks() {
        let (a, b) = tokio::io::duplex(7);
        let mut w = StreamWriter::new(a, framed());
        let mut r = StreamReader::new(b, framed());
        let sender = tokio::spawn(async move {
            for m in [&b"<op:abort 3\"bye>"[..], b"", b"x"] {
                w.send(m).await.unwrap();
            }
            w.close().await.unwrap();
        });
        assert_eq!(r.recv().await.unwrap().unwrap(), &b"<op:abort 3\"bye>"[..]);
        assert_eq!(r.recv().await.unwrap().unwrap(), &b""[..]);
        assert_eq!(r.recv().await.unwrap().unwrap(), &b"x"[..]);
        assert!(r.recv().await.unwrap().is_none());
        sender.await.unwrap();
    }

    #[test]
    fn oversized_frame_rejected_before_allocating() {
        let mut buf = BytesMut::from(&b"99999999999999999999999:"[..]);
        let err = take_frame(&mut buf, 1 << 20).unwrap_err();
        assert!(matches!(err, NetError::FrameTooLarge { .. }), "{err:?}");
        let mut buf = BytesMut::from(&b"101:"[..]);
        assert!(matches!(
            take_frame(&mut buf, 100),
            Err(NetError::FrameTooLarge { len: 101, max: 100 })
        ));
    }

    #[test]
    fn malformed_headers_rejected() {
        for (input, at) in [(&b":"[..], 0), (b"12x", 2), (b"<op", 0)] {
            let mut buf = BytesMut::from(input);
            match take_frame(&mut buf, 100) {
                Err(NetError::BadFrame { offset }) => assert_eq!(offset, at),
                other => panic!("{input:?}: {other:?}"),
            }
        }
        let mut buf = BytesMut::from(&b"123"[..]);
        assert!(take_frame(&mut buf, 1000).unwrap().is_none());
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"5:ab").await.unwrap();
        drop(a);
        let mut r = StreamReader::new(b, framed());
        assert!(matches!(r.recv().await, Err(NetError::Io(_))));
    }

    #[tokio::test]
    async fn unframed_passes_bytes_through() {
        let (a, b) = tokio::io::duplex(1024);
        let mut w = StreamWriter::new(a, Framing::None);
        let mut r = StreamReader::new(b, Framing::None);
        w.send(b"<op:abort 1\"x>").await.unwrap();
        w.send(b"t").await.unwrap();
        w.close().await.unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = r.recv().await.unwrap() {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, b"<op:abort 1\"x>t");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn framed_read_now_does_not_say_empty_with_a_cut_behind_a_partial_frame() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        std::io::Write::write_all(&mut client, b"10:<op").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        crate::socket::until_read_closed(&server).await;
        let (r, _w) = crate::socket::split(server, false).unwrap();
        let mut reader = StreamReader::new(r, Framing::ByteString { max_frame: 100 });
        let first = reader.read_now(usize::MAX);
        assert!(
            !matches!(first, Ok(ReadNow::Empty)),
            "Empty while the cut was readable; next read_now: {:?}",
            reader.read_now(usize::MAX)
        );
    }
}
