//! `tcp-testing-only`: OCapN's interop netlayer over plain TCP.
//!
//! **Insecure by design**: no encryption, no authentication, the designator
//! is an unauthenticated random string. Use it only to test against other
//! OCapN implementations (the public test suite speaks it).
//!
//! Locator: transport `tcp-testing-only`, designator 32 lowercase hex
//! characters, hints `host` and `port` (both Strings), e.g.
//! `ocapn://a2ef69ddd5f84840970612ff660f5058.tcp-testing-only?host=127.0.0.1&port=22045`.
//! Messages are unframed by default (Syrup records back to back).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};

use crate::stream::StreamReader;
use crate::{
    BoxFuture, Connection, DirectRead, Direction, Framing, Location, MessageReader, MessageWriter,
    NetError, Netlayer, ReadNow,
};

/// The transport name of this netlayer.
pub const TRANSPORT: &str = "tcp-testing-only";

/// A `tcp-testing-only` netlayer listening on one TCP port.
#[derive(Debug)]
pub struct TcpTestingOnly {
    listener: TcpListener,
    location: Location,
    framing: Framing,
}

impl TcpTestingOnly {
    /// Listens on `host:port` (port 0 picks a free port) under a fresh random
    /// designator. The advertised location carries `host` as given and the
    /// port actually bound.
    ///
    /// # Errors
    /// The address cannot be bound, or the OS RNG failed.
    pub async fn bind(host: &str, port: u16) -> Result<Self, NetError> {
        let designator = crate::random_designator()?;
        Self::bind_as(host, port, designator).await
    }

    /// Like [`TcpTestingOnly::bind`] with a chosen designator.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind_as(host: &str, port: u16, designator: String) -> Result<Self, NetError> {
        let listener = TcpListener::bind((host, port)).await?;
        let bound = listener.local_addr()?;
        let mut hints = BTreeMap::new();
        hints.insert("host".to_owned(), host.to_owned());
        hints.insert("port".to_owned(), bound.port().to_string());
        Ok(TcpTestingOnly {
            listener,
            location: Location {
                transport: TRANSPORT.to_owned(),
                designator,
                hints,
            },
            framing: Framing::None,
        })
    }

    /// Uses `framing` for every later connection (default: unframed).
    #[must_use]
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// The socket address actually bound.
    ///
    /// # Errors
    /// The OS could not report it.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.listener.local_addr()?)
    }

    fn wrap(
        &self,
        stream: TcpStream,
        direction: Direction,
        remote: String,
    ) -> Result<Connection, NetError> {
        // Small CapTP messages must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let source = stream.peer_addr().ok().map(|a| a.ip());
        // Out of the runtime: the halves read and write the socket directly
        // and register with the runtime only when they have to wait.
        let sock = Arc::new(stream.into_std()?);
        let runtime = tokio::runtime::Handle::current();
        let reader = TcpReader {
            sock: sock.clone(),
            registered: None,
            runtime: runtime.clone(),
            inner: StreamReader::new((), self.framing),
        };
        let writer = TcpWriter {
            sock,
            runtime,
            framing: self.framing,
            scratch: Vec::new(),
        };
        Ok(Connection {
            reader: Box::new(reader),
            writer: Box::new(writer),
            direction,
            remote,
            source,
        })
    }
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

/// The reading half of a TCP connection (a non-blocking socket), read
/// through the runtime ([`MessageReader::recv`]) or directly by an event
/// loop ([`MessageReader::direct`]). It registers with the runtime only
/// the first time `recv` has to wait: a connection read directly never is,
/// so the runtime does not wake for its traffic.
struct TcpReader {
    /// Shared with the writer: one descriptor per connection.
    sock: Arc<std::net::TcpStream>,
    registered: Option<TcpStream>,
    runtime: tokio::runtime::Handle,
    /// The framing and the buffered input.
    inner: StreamReader<()>,
}

impl MessageReader for TcpReader {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, NetError>> {
        Box::pin(async move {
            let found = loop {
                let Some(sock) = &self.registered else {
                    match self.read_now()? {
                        ReadNow::Empty => {
                            self.registered = Some(register(&self.sock, &self.runtime)?);
                            continue;
                        }
                        found => break found,
                    }
                };
                sock.readable().await?;
                // Read under the runtime's readiness, so that finding the
                // socket empty clears it.
                let (direct, inner) = (&self.sock, &mut self.inner);
                let read = sock.try_io(Interest::READABLE, || match read_direct(direct, inner) {
                    Ok(ReadNow::Empty) => Err(std::io::ErrorKind::WouldBlock.into()),
                    other => Ok(other),
                });
                match read {
                    Ok(found) => break found?,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            };
            Ok(match found {
                ReadNow::Chunk(c) | ReadNow::Drained(c) => Some(c),
                ReadNow::End | ReadNow::Empty => None,
            })
        })
    }

    fn direct(&mut self) -> Option<&mut dyn DirectRead> {
        Some(self)
    }
}

thread_local! {
    /// Where direct reads land before they are copied into a reader's
    /// buffer: one buffer per thread rather than one per connection.
    static SCRATCH: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(vec![0; crate::stream::READ_CHUNK]);
}

/// Reads what `sock` has into `inner`'s buffer, without blocking.
fn read_direct(
    sock: &std::net::TcpStream,
    inner: &mut StreamReader<()>,
) -> Result<ReadNow, NetError> {
    inner.read_now_with(|buf| {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = loop {
                match std::io::Read::read(&mut &*sock, &mut scratch) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            buf.extend_from_slice(&scratch[..n]);
            // A short read emptied the socket's buffer.
            Ok((n, n < scratch.len()))
        })
    })
}

impl DirectRead for TcpReader {
    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.sock.as_raw_fd()
    }

    fn read_now(&mut self) -> Result<ReadNow, NetError> {
        read_direct(&self.sock, &mut self.inner)
    }
}

/// The writing half of a TCP connection: writes directly; only while the
/// socket's send buffer is full is it registered with the runtime (for
/// writability, then deregistered), so the runtime never wakes for the
/// connection's incoming bytes on its account.
struct TcpWriter {
    sock: Arc<std::net::TcpStream>,
    runtime: tokio::runtime::Handle,
    framing: Framing,
    scratch: Vec<u8>,
}

impl MessageWriter for TcpWriter {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            let data = match self.framing {
                Framing::None => message,
                Framing::ByteString { .. } => {
                    self.scratch.clear();
                    self.scratch
                        .extend_from_slice(format!("{}:", message.len()).as_bytes());
                    self.scratch.extend_from_slice(message);
                    &self.scratch[..]
                }
            };
            let mut sent = 0;
            let mut waiting: Option<TcpStream> = None;
            while sent < data.len() {
                match std::io::Write::write(&mut &*self.sock, &data[sent..]) {
                    Ok(0) => return Err(NetError::Io(std::io::ErrorKind::WriteZero.into())),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let sock = match waiting.take() {
                            Some(s) => s,
                            None => register(&self.sock, &self.runtime)?,
                        };
                        // Registration reports the current state, so room
                        // made since the failed write is not missed.
                        sock.writable().await?;
                        let _ = sock.try_io(Interest::WRITABLE, || {
                            Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                        });
                        waiting = Some(sock);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), NetError>> {
        Box::pin(async move {
            self.sock.shutdown(std::net::Shutdown::Write)?;
            Ok(())
        })
    }
}

/// Reads `host` and `port` from a `tcp-testing-only` location.
fn host_port(to: &Location) -> Result<(&str, u16), NetError> {
    if to.transport != TRANSPORT {
        return Err(NetError::WrongTransport {
            expected: TRANSPORT.to_owned(),
            found: to.transport.clone(),
        });
    }
    let host = to.hints.get("host").ok_or(NetError::MissingHint("host"))?;
    let port = to.hints.get("port").ok_or(NetError::MissingHint("port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| NetError::BadHint { name: "port" })?;
    if host.is_empty() {
        return Err(NetError::BadHint { name: "host" });
    }
    Ok((host, port))
}

impl Netlayer for TcpTestingOnly {
    fn transport(&self) -> &str {
        TRANSPORT
    }

    fn location(&self) -> &Location {
        &self.location
    }

    fn connect<'a>(&'a self, to: &'a Location) -> BoxFuture<'a, Result<Connection, NetError>> {
        Box::pin(async move {
            let (host, port) = host_port(to)?;
            let stream = TcpStream::connect((host, port)).await?;
            let remote = format!("{host}:{port}");
            self.wrap(stream, Direction::Outbound, remote)
        })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Connection, NetError>> {
        Box::pin(async move {
            let (stream, addr) = self.listener.accept().await?;
            self.wrap(stream, Direction::Inbound, addr.to_string())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn loc(hints: &[(&str, &str)]) -> Location {
        Location {
            transport: TRANSPORT.into(),
            designator: "d".into(),
            hints: hints
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Reads with `read_now` until the end, waiting out `Empty`.
    fn drain_directly(reader: &mut dyn MessageReader) -> Result<Vec<Bytes>, NetError> {
        let direct = reader.direct().unwrap();
        assert!(direct.fd() >= 0);
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match direct.read_now()? {
                crate::ReadNow::Chunk(c) | crate::ReadNow::Drained(c) => got.push(c),
                crate::ReadNow::End => return Ok(got),
                crate::ReadNow::Empty => {
                    assert!(std::time::Instant::now() < deadline, "no end of stream");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    async fn pair(framing: Framing) -> (Connection, Connection) {
        let a = TcpTestingOnly::bind("127.0.0.1", 0)
            .await
            .unwrap()
            .with_framing(framing);
        let b = TcpTestingOnly::bind("127.0.0.1", 0)
            .await
            .unwrap()
            .with_framing(framing);
        let (x, y) = tokio::join!(a.connect(b.location()), b.accept());
        (x.unwrap(), y.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn direct_reads_framed_messages_then_the_end() {
        let framing = Framing::ByteString { max_frame: 1000 };
        let (mut x, mut y) = pair(framing).await;
        for m in [&b"<op:abort 3\"bye>"[..], b"", b"x"] {
            x.writer.send(m).await.unwrap();
        }
        x.writer.close().await.unwrap();
        let got = tokio::task::spawn_blocking(move || drain_directly(&mut *y.reader))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, vec![&b"<op:abort 3\"bye>"[..], b"", b"x"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn direct_reads_an_unframed_stream_and_rejects_bad_frames() {
        let (mut x, mut y) = pair(Framing::None).await;
        x.writer.send(b"<op:abort 1\"x>").await.unwrap();
        x.writer.send(b"t").await.unwrap();
        x.writer.close().await.unwrap();
        let got = tokio::task::spawn_blocking(move || drain_directly(&mut *y.reader))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.concat(), b"<op:abort 1\"x>t");

        // A peer that declares a frame over the limit.
        let framed = TcpTestingOnly::bind("127.0.0.1", 0)
            .await
            .unwrap()
            .with_framing(Framing::ByteString { max_frame: 10 });
        let addr = framed.local_addr().unwrap();
        let (raw, y) = tokio::join!(TcpStream::connect(addr), framed.accept());
        let (mut raw, mut y) = (raw.unwrap(), y.unwrap());
        tokio::io::AsyncWriteExt::write_all(&mut raw, b"99:abc")
            .await
            .unwrap();
        let err = tokio::task::spawn_blocking(move || drain_directly(&mut *y.reader))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(err, NetError::FrameTooLarge { len: 99, max: 10 }),
            "{err:?}"
        );
    }

    #[test]
    fn hint_errors() {
        assert!(matches!(
            host_port(&loc(&[("port", "1")])),
            Err(NetError::MissingHint("host"))
        ));
        assert!(matches!(
            host_port(&loc(&[("host", "h")])),
            Err(NetError::MissingHint("port"))
        ));
        for bad in ["70000", "-1", "", "1x"] {
            assert!(matches!(
                host_port(&loc(&[("host", "h"), ("port", bad)])),
                Err(NetError::BadHint { name: "port" })
            ));
        }
        let mut other = loc(&[("host", "h"), ("port", "1")]);
        other.transport = "onion".into();
        assert!(matches!(
            host_port(&other),
            Err(NetError::WrongTransport { .. })
        ));
        assert_eq!(
            host_port(&loc(&[("host", "h"), ("port", "80")])).unwrap(),
            ("h", 80)
        );
    }
}
