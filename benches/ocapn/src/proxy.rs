//! A TCP relay on 127.0.0.1 that delays every chunk by a fixed one-way
//! latency and logs what it relays.
//!
//! Each direction of each relayed connection has a reader thread (stamps
//! each chunk with its arrival time, logs it, queues it) and a writer thread
//! (sleeps until arrival + delay, then writes). Chunks are never reordered
//! or merged, so the relay adds latency without adding round trips.
//!
//! Counting round trips: a workload costs one network round trip per
//! client→server *flight* that the server answers. [`DelayProxy::round_trips`]
//! reads the log of a time window, groups consecutive chunks of one
//! direction into flights, and counts the client→server flights that are
//! followed by a server→client flight inside the window. Trailing traffic
//! that is not on the awaited path (GC notices sent after the answer) is not
//! followed by an answer in the window and is not counted.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Span;

/// Which way a chunk went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to server (the dialler to the upstream).
    Up,
    /// Server to client.
    Down,
}

/// One relayed chunk, as the proxy read it.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    /// Direction.
    pub dir: Dir,
    /// When the proxy read it (before the delay).
    pub at: Instant,
    /// Bytes.
    pub len: usize,
}

/// A running relay (threads live until their sockets close).
#[derive(Debug, Clone)]
pub struct DelayProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Chunk>>>,
}

impl DelayProxy {
    /// Starts relaying 127.0.0.1:(new port) → `upstream`, delaying each
    /// chunk by `one_way` in each direction.
    ///
    /// # Errors
    /// The listening socket cannot be bound.
    pub fn start(upstream: SocketAddr, one_way: Duration) -> std::io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let for_accept = log.clone();
        std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(upstream) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                        continue;
                    };
                    relay(client, server, Dir::Up, one_way, for_accept.clone());
                    relay(s2, c2, Dir::Down, one_way, for_accept.clone());
                }
            })?;
        Ok(DelayProxy { addr, log })
    }

    /// Where to dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The chunks read within `span`, in arrival order.
    pub fn chunks(&self, span: Span) -> Vec<Chunk> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .filter(|c| c.at >= span.start && c.at <= span.end)
            .copied()
            .collect()
    }

    /// Bytes relayed (up, down) within `span`.
    pub fn bytes(&self, span: Span) -> (usize, usize) {
        self.chunks(span)
            .iter()
            .fold((0, 0), |(u, d), c| match c.dir {
                Dir::Up => (u + c.len, d),
                Dir::Down => (u, d + c.len),
            })
    }

    /// Network round trips on the awaited path within `span` (see the
    /// module doc): client→server flights answered inside the window.
    pub fn round_trips(&self, span: Span) -> usize {
        round_trips_of(&self.chunks(span))
    }
}

/// Counts the `Up` flights of `chunks` (in arrival order) that are followed
/// by a `Down` flight.
pub fn round_trips_of(chunks: &[Chunk]) -> usize {
    let mut flights: Vec<Dir> = Vec::new();
    for c in chunks {
        if flights.last() != Some(&c.dir) {
            flights.push(c.dir);
        }
    }
    flights
        .windows(2)
        .filter(|w| w == &[Dir::Up, Dir::Down])
        .count()
}

fn relay(
    mut from: TcpStream,
    mut to: TcpStream,
    dir: Dir,
    delay: Duration,
    log: Arc<Mutex<Vec<Chunk>>>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let _ = std::thread::Builder::new()
        .name("proxy-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let at = Instant::now();
                        log.lock().unwrap_or_else(|p| p.into_inner()).push(Chunk {
                            dir,
                            at,
                            len: n,
                        });
                        let chunk = buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
                        if tx.send((at + delay, chunk)).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    let _ = std::thread::Builder::new()
        .name("proxy-write".into())
        .spawn(move || {
            while let Ok((due, chunk)) = rx.recv() {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if to.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunk(dir: Dir) -> Chunk {
        Chunk {
            dir,
            at: Instant::now(),
            len: 1,
        }
    }

    #[test]
    fn flights_counted_only_when_answered() {
        use Dir::{Down, Up};
        let seq = |d: &[Dir]| round_trips_of(&d.iter().map(|d| chunk(*d)).collect::<Vec<_>>());
        assert_eq!(seq(&[Up, Up, Up, Down, Down]), 1);
        assert_eq!(seq(&[Up, Down, Up, Down, Up, Down]), 3);
        assert_eq!(seq(&[Up, Down, Down, Up]), 1, "trailing notice not counted");
        assert_eq!(seq(&[]), 0);
    }

    #[test]
    fn relays_bytes_with_delay_and_logs_them() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).unwrap();
            s.write_all(b"pong!").unwrap();
        });
        let delay = Duration::from_millis(20);
        let proxy = DelayProxy::start(up, delay).unwrap();
        let start = Instant::now();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(b"ping!").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        let end = Instant::now();
        assert_eq!(&b, b"pong!");
        assert!(end - start >= 2 * delay, "{:?}", end - start);
        let span = Span { start, end };
        assert_eq!(proxy.bytes(span), (5, 5));
        assert_eq!(proxy.round_trips(span), 1);
    }
}
