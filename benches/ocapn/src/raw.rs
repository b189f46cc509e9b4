//! The floor: a raw TCP ping-pong of fixed-size messages with
//! `TCP_NODELAY`, one server thread: blocking std sockets
//! ([`RawPingPong`]) or tokio on both ends ([`TokioPingPong`]).

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
                while s.read_exact(&mut req).is_ok() {
                    if s.write_all(&resp).is_err() {
                        break;
                    }
                }
            })?;
        let stream = TcpStream::connect(route(addr)?)?;
        stream.set_nodelay(true)?;
        Ok(RawPingPong {
            stream,
            request: vec![0x5au8; request_len],
            response: vec![0u8; response_len],
        })
    }

    /// One ping and its pong.
    ///
    /// # Errors
    /// The connection failed.
    pub fn round_trip(&mut self) -> std::io::Result<Span> {
        let start = Instant::now();
        self.stream.write_all(&self.request)?;
        self.stream.read_exact(&mut self.response)?;
        Ok(Span {
            start,
            end: Instant::now(),
        })
    }
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
        let mut t = TokioPingPong::start(100, 37).unwrap();
        assert_eq!(t.round_trips(10).unwrap().len(), 10);
        assert!(t.response.iter().all(|b| *b == 0xa5));
    }
}
