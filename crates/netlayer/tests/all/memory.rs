//! The in-memory network.

use pola_netlayer::memory::connection_pair;
use pola_netlayer::{Direction, Framing, MemoryNetwork, NetError, Netlayer};

use crate::read_exactly;

#[tokio::test]
async fn dial_by_designator() {
    let net = MemoryNetwork::new();
    let alice = net.netlayer("alice").unwrap();
    let bob = net.netlayer("bob").unwrap();
    let to = bob.location().clone();
    let mut out = alice.connect(&to).await.unwrap();
    let mut inb = bob.accept().await.unwrap();
    assert_eq!(out.direction, Direction::Outbound);
    assert_eq!(inb.direction, Direction::Inbound);
    assert_eq!(inb.remote, "alice");
    // A plain transport vouches for no one, whatever `remote` says.
    assert!(!bob.authenticates());
    assert!(inb.authenticated().is_none() && out.authenticated().is_none());
    out.writer.send(b"hi bob").await.unwrap();
    assert_eq!(
        read_exactly(inb.reader.as_mut(), 6).await.unwrap(),
        b"hi bob"
    );
    inb.writer.send(b"hi").await.unwrap();
    assert_eq!(read_exactly(out.reader.as_mut(), 2).await.unwrap(), b"hi");
    inb.writer.close().await.unwrap();
    assert!(out.reader.recv().await.unwrap().is_none());
}

#[tokio::test]
async fn unknown_and_departed_peers() {
    let net = MemoryNetwork::new();
    let alice = net.netlayer("alice").unwrap();
    assert!(matches!(
        net.netlayer("alice"),
        Err(NetError::BadHint { .. })
    ));
    let bob = net.netlayer("bob").unwrap();
    let to = bob.location().clone();
    drop(bob);
    assert!(matches!(
        alice.connect(&to).await,
        Err(NetError::UnknownPeer(_))
    ));
    // The designator is free again.
    let _bob_again = net.netlayer("bob").unwrap();
}

#[tokio::test]
async fn framed_pair() {
    let (mut a, mut b) = connection_pair(Framing::ByteString { max_frame: 64 });
    a.writer.send(b"m1").await.unwrap();
    a.writer.send(b"m2").await.unwrap();
    assert_eq!(&b.reader.recv().await.unwrap().unwrap()[..], b"m1");
    assert_eq!(&b.reader.recv().await.unwrap().unwrap()[..], b"m2");
}
