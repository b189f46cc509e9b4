//! TCP sockets outside the async runtime, for the TCP-based netlayers.
//!
//! A connection's socket is taken out of tokio once it is established and
//! shared (one descriptor) by its two halves, [`SockRead`] and
//! [`SockWrite`]. Each reads or writes the non-blocking socket directly and
//! registers with the runtime only when it has to wait, on a second
//! descriptor of its own:
//! - a reader that an event loop drives itself ([`crate::DirectRead`]: a
//!   vat's thread waiting in `epoll`) is never registered, so the runtime
//!   does not wake for the connection's incoming bytes; one that is read
//!   through the runtime registers the first time it waits and stays so;
//! - a writer registers the first time the socket's send buffer is full
//!   (a connection that carries bulk data) and stays so, or from the start
//!   if the netlayer asks (see `split`).
//!
//! Readiness is cleared the way tokio expects: a read or write that finds
//! the socket not ready runs inside the registration's `try_io`, so the
//! next wait really waits.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Most bytes one direct read takes.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Where reads land before they are copied into a reader's buffer: one
    /// buffer per thread rather than one per connection, and never an
    /// uninitialised one.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

/// Takes an established stream out of the runtime and splits it. With
/// `watch_writes` the writer registers at once and stays registered, as
/// tokio's own stream halves do: a writer that seals whatever piled up
/// while the socket was not known to be writable into full frames (noise)
/// then keeps doing so under load, at the price of the runtime waking for
/// the connection's incoming bytes too.
pub(crate) fn split(
    stream: TcpStream,
    watch_writes: bool,
) -> std::io::Result<(SockRead, SockWrite)> {
    let sock = Arc::new(stream.into_std()?);
    let runtime = tokio::runtime::Handle::current();
    let registered = if watch_writes {
        Some(register(&sock, &runtime)?)
    } else {
        None
    };
    Ok((
        SockRead {
            sock: sock.clone(),
            registered: None,
            runtime: runtime.clone(),
        },
        SockWrite {
            sock,
            registered,
            runtime,
        },
    ))
}

/// Registers a second descriptor of `sock` with the runtime (its own
/// registration; `sock` stays usable directly).
fn register(
    sock: &std::net::TcpStream,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<TcpStream> {
    let _rt = runtime.enter();
    TcpStream::from_std(sock.try_clone()?)
}

/// A source of connection bytes that an event loop outside the runtime
/// may also drive. Implemented by [`SockRead`] (which can) and by the
/// in-memory pipes (which cannot).
pub trait ReadSource: AsyncRead + Unpin + Send {
    /// The socket to read directly, if there is one.
    fn socket(&self) -> Option<&SockRead> {
        None
    }
}

impl ReadSource for tokio::io::DuplexStream {}
impl ReadSource for tokio::io::ReadHalf<tokio::io::DuplexStream> {}

impl ReadSource for SockRead {
    fn socket(&self) -> Option<&SockRead> {
        Some(self)
    }
}

/// The reading half of a TCP connection.
#[derive(Debug)]
pub struct SockRead {
    sock: Arc<std::net::TcpStream>,
    registered: Option<TcpStream>,
    runtime: tokio::runtime::Handle,
}

impl SockRead {
    /// The descriptor to wait on.
    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Reads what the socket has into `buf`, at most `max` bytes (and at
    /// most [`READ_CHUNK`]), without blocking: the bytes read, and whether
    /// the read was short (the socket had no more just then). `WouldBlock`
    /// if it had nothing.
    pub(crate) fn read_direct(
        &self,
        buf: &mut BytesMut,
        max: usize,
    ) -> std::io::Result<(usize, bool)> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let want = max.clamp(1, scratch.len());
            let into = scratch.get_mut(..want).unwrap_or_default();
            let n = read_retrying(&self.sock, into)?;
            buf.extend_from_slice(into.get(..n).unwrap_or_default());
            Ok((n, n < want))
        })
    }
}

/// One `read`, retried if a signal interrupted it.
fn read_retrying(mut sock: &std::net::TcpStream, into: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match sock.read(into) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// One `write`, retried if a signal interrupted it.
fn write_retrying(mut sock: &std::net::TcpStream, data: &[u8]) -> std::io::Result<usize> {
    loop {
        match sock.write(data) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Reads into the unfilled part of `buf` through the thread's scratch
/// buffer (so `buf` need not be initialised first).
fn read_into(sock: &std::net::TcpStream, buf: &mut ReadBuf<'_>) -> std::io::Result<()> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let want = buf.remaining().min(scratch.len());
        let into = scratch.get_mut(..want).unwrap_or_default();
        let n = read_retrying(sock, into)?;
        buf.put_slice(into.get(..n).unwrap_or_default());
        Ok(())
    })
}

fn would_block(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
}

impl AsyncRead for SockRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            let Some(registered) = &this.registered else {
                match read_into(&this.sock, buf) {
                    Err(e) if would_block(&e) => {
                        this.registered = Some(register(&this.sock, &this.runtime)?);
                        continue;
                    }
                    other => return Poll::Ready(other),
                }
            };
            ready!(registered.poll_read_ready(cx))?;
            let sock = &this.sock;
            match registered.try_io(Interest::READABLE, || read_into(sock, buf)) {
                Err(e) if would_block(&e) => {}
                other => return Poll::Ready(other),
            }
        }
    }
}

/// The writing half of a TCP connection.
#[derive(Debug)]
pub struct SockWrite {
    sock: Arc<std::net::TcpStream>,
    registered: Option<TcpStream>,
    runtime: tokio::runtime::Handle,
}

/// Like tokio's own write halves: a writer dropped without `close` still
/// ends our sending direction, so the peer sees the stream end (a noise
/// reader: a truncation) even while our reading half lives on.
impl Drop for SockWrite {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

impl AsyncWrite for SockWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let Some(registered) = &this.registered else {
                match write_retrying(&this.sock, data) {
                    Err(e) if would_block(&e) => {
                        // Registration reports the current state: room
                        // made since the failed write is not missed.
                        this.registered = Some(register(&this.sock, &this.runtime)?);
                        continue;
                    }
                    other => return Poll::Ready(other),
                }
            };
            ready!(registered.poll_write_ready(cx))?;
            let sock = &this.sock;
            match registered.try_io(Interest::WRITABLE, || write_retrying(sock, data)) {
                Err(e) if would_block(&e) => {}
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.sock.shutdown(std::net::Shutdown::Write))
    }
}

/// Test support: waits (at most ~5 s) until `stream` has seen the other
/// side's end of writing, so what came before it and the end are both
/// readable.
#[cfg(test)]
pub(crate) async fn until_read_closed(stream: &TcpStream) {
    for _ in 0..5000 {
        match stream.ready(Interest::READABLE).await {
            Ok(ready) if !ready.is_read_closed() => {}
            _ => return,
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}
