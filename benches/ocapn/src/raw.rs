//! The floor: a raw TCP ping-pong of fixed-size messages, blocking std
//! sockets with `TCP_NODELAY`, one server thread.

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
    }
}
