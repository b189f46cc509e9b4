//! `tcp-testing-only` over real loopback sockets.

use std::time::Duration;

use pola_netlayer::{Direction, Framing, Location, NetError, Netlayer, TcpTestingOnly};

use crate::read_exactly;

async fn bind() -> TcpTestingOnly {
    TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap()
}

#[tokio::test]
async fn location_carries_bound_port_and_hex_designator() {
    let net = bind().await;
    let loc = net.location();
    assert_eq!(loc.transport, "tcp-testing-only");
    assert_eq!(loc.designator.len(), 32);
    let port = net.local_addr().unwrap().port();
    assert_ne!(port, 0);
    assert_eq!(loc.hints.get("port").unwrap(), &port.to_string());
    assert_eq!(loc.hints.get("host").unwrap(), "127.0.0.1");
    assert_eq!(
        loc.to_uri(),
        format!(
            "ocapn://{}.tcp-testing-only?host=127.0.0.1&port={port}",
            loc.designator
        )
    );
}

#[tokio::test]
async fn messages_flow_both_ways_and_end_cleanly() {
    let server = bind().await;
    let client = bind().await;
    let to = server.location().clone();
    let (out, inb) = tokio::join!(client.connect(&to), server.accept());
    let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
    assert_eq!(out.direction, Direction::Outbound);
    assert_eq!(inb.direction, Direction::Inbound);
    // tcp-testing-only authenticates no one.
    assert!(!server.authenticates());
    assert!(out.authenticated().is_none() && inb.authenticated().is_none());

    out.writer.send(b"<10'op:abort3\"bye>").await.unwrap();
    let got = read_exactly(inb.reader.as_mut(), 18).await.unwrap();
    assert_eq!(got, b"<10'op:abort3\"bye>");

    inb.writer.send(b"hello").await.unwrap();
    inb.writer.send(b" world").await.unwrap();
    let got = read_exactly(out.reader.as_mut(), 11).await.unwrap();
    assert_eq!(got, b"hello world");

    // Closing our half shows up as a clean end of stream on theirs.
    out.writer.close().await.unwrap();
    assert!(inb.reader.recv().await.unwrap().is_none());
}

#[tokio::test]
async fn large_message_arrives_intact() {
    let server = bind().await;
    let client = bind().await;
    let to = server.location().clone();
    let (out, inb) = tokio::join!(client.connect(&to), server.accept());
    let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let expect = big.clone();
    let sender = tokio::spawn(async move {
        out.writer.send(&big).await.unwrap();
        out
    });
    let got = read_exactly(inb.reader.as_mut(), expect.len())
        .await
        .unwrap();
    assert_eq!(got, expect);
    sender.await.unwrap();
}

#[tokio::test]
async fn framed_tcp_delivers_one_message_per_chunk() {
    let framing = Framing::ByteString { max_frame: 1 << 20 };
    let server = bind().await.with_framing(framing);
    let client = bind().await.with_framing(framing);
    let to = server.location().clone();
    let (out, inb) = tokio::join!(client.connect(&to), server.accept());
    let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
    for m in [&b"one"[..], b"two", b""] {
        out.writer.send(m).await.unwrap();
    }
    out.writer.close().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = inb.reader.recv().await.unwrap() {
        got.push(m.to_vec());
    }
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec(), Vec::new()]);
}

#[tokio::test]
async fn framed_reader_rejects_hostile_length() {
    let framing = Framing::ByteString { max_frame: 1024 };
    let server = bind().await.with_framing(framing);
    let client = bind().await; // unframed: writes raw bytes
    let to = server.location().clone();
    let (out, inb) = tokio::join!(client.connect(&to), server.accept());
    let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
    out.writer.send(b"1099511627776:").await.unwrap();
    match inb.reader.recv().await {
        Err(NetError::FrameTooLarge { max: 1024, .. }) => {}
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_refused_is_an_io_error() {
    // Bind then drop to find a port nobody listens on.
    let port = bind().await.local_addr().unwrap().port();
    let client = bind().await;
    let mut to = client.location().clone();
    to.hints.insert("port".into(), port.to_string());
    match client.connect(&to).await {
        Err(NetError::Io(_)) => {}
        other => panic!("expected refused, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_checks_transport_and_hints() {
    let client = bind().await;
    let other = Location {
        transport: "onion".into(),
        designator: "x".into(),
        hints: Default::default(),
    };
    assert!(matches!(
        client.connect(&other).await,
        Err(NetError::WrongTransport { .. })
    ));
    let mut no_port = client.location().clone();
    no_port.hints.remove("port");
    assert!(matches!(
        client.connect(&no_port).await,
        Err(NetError::MissingHint("port"))
    ));
}

#[tokio::test]
async fn graceful_close_gives_peer_eof_not_reset() {
    let server = bind().await;
    let client = bind().await;
    let to = server.location().clone();
    let (out, inb) = tokio::join!(client.connect(&to), server.accept());
    let (mut out, inb) = (out.unwrap(), inb.unwrap());
    // The client sends bytes the server never reads, then the server closes.
    // Closing a socket with unread input and no prior FIN makes the kernel
    // send RST, which the peer reads as "connection reset"; the OCapN suite
    // accepts only a clean EOF. close_gracefully shuts down (FIN) first and
    // drains, so the peer must see EOF.
    out.writer.send(&[b'x'; 10_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let closer = tokio::spawn(inb.close_gracefully(Duration::from_millis(500)));
    assert!(
        out.reader.recv().await.unwrap().is_none(),
        "expected clean EOF"
    );
    out.writer.close().await.unwrap();
    closer.await.unwrap();
}

#[tokio::test]
async fn works_through_dyn_netlayer() {
    let layers: Vec<Box<dyn Netlayer>> = vec![Box::new(bind().await), Box::new(bind().await)];
    let to = layers[1].location().clone();
    let (out, inb) = tokio::join!(layers[0].connect(&to), layers[1].accept());
    let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
    out.writer.send(b"ping").await.unwrap();
    assert_eq!(read_exactly(inb.reader.as_mut(), 4).await.unwrap(), b"ping");
}
