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

use tokio::net::{TcpListener, TcpStream};

use crate::stream::{StreamReader, StreamWriter};
use crate::{BoxFuture, Connection, Direction, Framing, Location, NetError, Netlayer};

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

    /// Advertises `host:port` in the location instead of the bound address
    /// (e.g. when listening on `0.0.0.0`).
    pub fn set_advertised(&mut self, host: &str, port: u16) {
        self.location.set_host_port(host, port);
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
        // and register with the runtime only to wait (see `socket`).
        let (r, w) = crate::socket::split(stream, false)?;
        Ok(Connection {
            reader: Box::new(StreamReader::new(r, self.framing)),
            writer: Box::new(StreamWriter::new(w, self.framing)),
            direction,
            remote,
            source,
            authenticated: None,
        })
    }
}

/// Reads `host` and `port` from a `tcp-testing-only` location.
fn host_port(to: &Location) -> Result<(&str, u16), NetError> {
    to.host_port(TRANSPORT)
}

impl Netlayer for TcpTestingOnly {
    fn transport(&self) -> &str {
        TRANSPORT
    }

    fn location(&self) -> &Location {
        &self.location
    }

    fn authenticates(&self) -> bool {
        false
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
    use crate::MessageReader;
    use bytes::Bytes;

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
            match direct.read_now(usize::MAX)? {
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
