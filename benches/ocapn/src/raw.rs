//! The floor: a raw TCP ping-pong of fixed-size messages with
//! `TCP_NODELAY`, one server thread: blocking std sockets
//! ([`RawPingPong`]; with [`RawPingPong::start_polling`] both ends poll
//! for up to 50 µs before they block, as a pola vat does) or tokio on both
//! ends ([`TokioPingPong`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use crate::Span;

/// A connected ping-pong client; its server thread answers every
/// `request_len` bytes it reads with `response_len` bytes.
#[derive(Debug)]
pub struct RawPingPong {
    stream: TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
    poll: Option<std::time::Duration>,
}

/// The window [`RawPingPong::start_polling`] polls for.
pub const POLL_WINDOW: std::time::Duration = std::time::Duration::from_micros(50);

/// `read_exact`, polling a non-blocking socket for up to `window` before
/// each blocking wait.
fn read_exact_polling(
    s: &mut TcpStream,
    buf: &mut [u8],
    window: std::time::Duration,
) -> std::io::Result<()> {
    let mut got = 0;
    let mut since = Instant::now();
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                got += n;
                since = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if since.elapsed() < window {
                    std::hint::spin_loop();
                    continue;
                }
                s.set_nonblocking(false)?;
                let n = s.read(&mut buf[got..]);
                s.set_nonblocking(true)?;
                match n? {
                    0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    n => got += n,
                }
                since = Instant::now();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl RawPingPong {
    /// Starts a server on 127.0.0.1 and connects to it, through `route`
    /// (given the server's address, returns the address to dial: the server
    /// itself or a proxy in front of it).
    ///
    /// # Errors
    /// Binding or connecting fails.
    pub fn start(
        request_len: usize,
        response_len: usize,
        route: impl FnOnce(SocketAddr) -> std::io::Result<SocketAddr>,
    ) -> std::io::Result<RawPingPong> {
        Self::start_with(request_len, response_len, route, None)
    }

    /// Like [`RawPingPong::start`] on 127.0.0.1, with both ends polling
    /// their socket for up to [`POLL_WINDOW`] before they block.
    ///
    /// # Errors
    /// Binding or connecting fails.
    pub fn start_polling(request_len: usize, response_len: usize) -> std::io::Result<RawPingPong> {
        Self::start_with(request_len, response_len, Ok, Some(POLL_WINDOW))
    }

    fn start_with(
        request_len: usize,
        response_len: usize,
        route: impl FnOnce(SocketAddr) -> std::io::Result<SocketAddr>,
        poll: Option<std::time::Duration>,
    ) -> std::io::Result<RawPingPong> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("raw-server".into())
            .spawn(move || {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let _ = s.set_nodelay(true);
                let mut req = vec![0u8; request_len];
                let resp = vec![0xa5u8; response_len];
                if let Some(window) = poll {
                    if s.set_nonblocking(true).is_err() {
                        return;
                    }
                    while read_exact_polling(&mut s, &mut req, window).is_ok() {
                        if write_all_nonblocking(&mut s, &resp).is_err() {
                            break;
                        }
                    }
                    return;
                }
                while s.read_exact(&mut req).is_ok() {
                    if s.write_all(&resp).is_err() {
                        break;
                    }
                }
            })?;
        let stream = TcpStream::connect(route(addr)?)?;
        stream.set_nodelay(true)?;
        if poll.is_some() {
            stream.set_nonblocking(true)?;
        }
        Ok(RawPingPong {
            stream,
            request: vec![0x5au8; request_len],
            response: vec![0u8; response_len],
            poll,
        })
    }

    /// One ping and its pong.
    ///
    /// # Errors
    /// The connection failed.
    pub fn round_trip(&mut self) -> std::io::Result<Span> {
        let start = Instant::now();
        match self.poll {
            Some(window) => {
                write_all_nonblocking(&mut self.stream, &self.request)?;
                read_exact_polling(&mut self.stream, &mut self.response, window)?;
            }
            None => {
                self.stream.write_all(&self.request)?;
                self.stream.read_exact(&mut self.response)?;
            }
        }
        Ok(Span {
            start,
            end: Instant::now(),
        })
    }
}

/// `write_all` on a non-blocking socket (small messages: the send buffer
/// has room; if not, wait briefly and retry).
fn write_all_nonblocking(s: &mut TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The same ping-pong with tokio on both ends (a current-thread runtime
/// per side, each on its own thread): the floor for an implementation on
/// an async runtime.
#[derive(Debug)]
pub struct TokioPingPong {
    rt: tokio::runtime::Runtime,
    stream: tokio::net::TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl TokioPingPong {
    /// Starts a tokio server thread on 127.0.0.1 and connects to it.
    ///
    /// # Errors
    /// Binding or connecting fails.
    pub fn start(request_len: usize, response_len: usize) -> std::io::Result<TokioPingPong> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("raw-tokio-server".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let Ok((mut s, _)) = listener.accept().await else {
                        return;
                    };
                    let _ = s.set_nodelay(true);
                    let mut req = vec![0u8; request_len];
                    let resp = vec![0xa5u8; response_len];
                    while s.read_exact(&mut req).await.is_ok() {
                        if s.write_all(&resp).await.is_err() {
                            break;
                        }
                    }
                });
            })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stream = rt.block_on(tokio::net::TcpStream::connect(addr))?;
        stream.set_nodelay(true)?;
        Ok(TokioPingPong {
            rt,
            stream,
            request: vec![0x5au8; request_len],
            response: vec![0u8; response_len],
        })
    }

    /// `iters` pings, each awaited.
    ///
    /// # Errors
    /// The connection failed.
    pub fn round_trips(&mut self, iters: usize) -> std::io::Result<Vec<Span>> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let TokioPingPong {
            rt,
            stream,
            request,
            response,
        } = self;
        rt.block_on(async {
            let mut spans = Vec::with_capacity(iters);
            for _ in 0..iters {
                let start = Instant::now();
                stream.write_all(request).await?;
                stream.read_exact(response).await?;
                spans.push(Span {
                    start,
                    end: Instant::now(),
                });
            }
            Ok(spans)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_exchanges_exact_sizes() {
        let mut p = RawPingPong::start(100, 37, Ok).unwrap();
        for _ in 0..10 {
            p.round_trip().unwrap();
        }
        assert!(p.response.iter().all(|b| *b == 0xa5));
        let mut p = RawPingPong::start_polling(100, 37).unwrap();
        for _ in 0..10 {
            p.round_trip().unwrap();
        }
        // Long enough apart that each end blocks, not only polls.
        std::thread::sleep(std::time::Duration::from_millis(2));
        p.round_trip().unwrap();
        assert!(p.response.iter().all(|b| *b == 0xa5));
        let mut t = TokioPingPong::start(100, 37).unwrap();
        assert_eq!(t.round_trips(10).unwrap().len(), 10);
        assert!(t.response.iter().all(|b| *b == 0xa5));
    }
}
