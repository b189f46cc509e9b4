//! Interop with Endo's `@endo/ocapn-noise` (its JavaScript bindings and
//! WebAssembly build), run by hand with `scripts/endo-noise-interop.sh`,
//! which prepares a directory holding Endo's `bindings.js`,
//! `ocapn-noise.wasm` and a small Node driver, and sets
//! `POLA_ENDO_NOISE_DIR` to it. Ignored otherwise (CI has no Endo).
//!
//! Both directions: pola dials an Endo responder, and an Endo initiator
//! dials pola. Each side checks the other's identity key, a message of
//! several Noise frames goes each way (checked by SHA-256), and each side
//! ends with the encrypted end-of-stream frame, which the other reads as a
//! clean end.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pola_netlayer::noise::Identity;
use pola_netlayer::{Connection, Netlayer, NoiseNetlayer};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

struct Node {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node(args: &[&str]) -> Option<Node> {
    let dir = std::env::var("POLA_ENDO_NOISE_DIR").ok()?;
    let mut child = Command::new("node")
        .arg(format!("{dir}/interop.mjs"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let out = child.stdout.take().expect("piped");
    let (tx, lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("endo> {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Some(Node { child, lines })
}

impl Node {
    async fn line(&mut self, prefix: &str) -> String {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.recv())
            .await
            .expect("node answered in time")
            .expect("node still running");
        assert!(line.starts_with(prefix), "expected {prefix}, got {line}");
        line
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// pola's half of the exchange the driver expects.
async fn exchange(conn: &mut Connection, endo: &mut Node) {
    let body: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let mut msg = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    conn.writer.send(&msg).await.unwrap();
    let digest = hex(&Sha256::digest(&body));
    assert_eq!(
        endo.line("GOT").await,
        format!("GOT {} {digest}", body.len())
    );

    // Endo replies, then sends its empty end-of-stream frame, which reads
    // as a clean, authenticated end of stream.
    let mut got = Vec::new();
    while let Some(chunk) = conn.reader.recv().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    let len = u32::from_be_bytes(got[..4].try_into().unwrap()) as usize;
    assert_eq!(got.len(), 4 + len);
    let reply = &got[4..];
    let tag = format!("endo:{digest}");
    assert_eq!(&reply[..tag.len()], tag.as_bytes());
    let pattern: Vec<u8> = (0..100_000usize).map(|i| ((i * 7) & 255) as u8).collect();
    assert_eq!(&reply[tag.len()..], &pattern[..]);
    conn.writer.close().await.unwrap();
    assert_eq!(endo.line("CLOSED").await, "CLOSED clean");
}

#[tokio::test]
#[ignore = "needs Node and Endo's ocapn-noise: scripts/endo-noise-interop.sh"]
async fn pola_dials_endo() {
    let Some(mut endo) = node(&["respond"]) else {
        panic!("set POLA_ENDO_NOISE_DIR (scripts/endo-noise-interop.sh)");
    };
    let listen = endo.line("LISTEN").await;
    let mut parts = listen.split(' ').skip(1);
    let port = parts.next().unwrap().to_owned();
    let designator = parts.next().unwrap().to_owned();

    let me = NoiseNetlayer::bind(Identity::generate().unwrap(), "127.0.0.1", 0)
        .await
        .unwrap();
    let mut to = me.location().clone();
    to.designator = designator.clone();
    to.hints.insert("port".into(), port);
    let mut auth = me.connect_authenticated(&to).await.unwrap();
    assert_eq!(auth.peer.to_designator(), designator);
    assert_eq!(auth.encoding, 0);
    // Endo's responder learned and verified our key.
    assert_eq!(
        endo.line("PEER").await,
        format!("PEER {} ENCODING 0", me.location().designator)
    );
    exchange(&mut auth.connection, &mut endo).await;
}

#[tokio::test]
#[ignore = "needs Node and Endo's ocapn-noise: scripts/endo-noise-interop.sh"]
async fn endo_dials_pola() {
    let me = NoiseNetlayer::bind(Identity::generate().unwrap(), "127.0.0.1", 0)
        .await
        .unwrap();
    let port = me.local_addr().port().to_string();
    let Some(mut endo) = node(&["dial", &port, &me.location().designator]) else {
        panic!("set POLA_ENDO_NOISE_DIR (scripts/endo-noise-interop.sh)");
    };
    let endo_key = endo.line("SELF").await["SELF ".len()..].to_owned();
    let mut auth = tokio::time::timeout(Duration::from_secs(20), me.accept_authenticated())
        .await
        .unwrap()
        .unwrap();
    // We verified Endo's identity key.
    assert_eq!(auth.peer.to_designator(), endo_key);
    assert_eq!(endo.line("ENCODING").await, "ENCODING 0");
    exchange(&mut auth.connection, &mut endo).await;
}

#[tokio::test]
#[ignore = "needs Node and Endo's ocapn-noise: scripts/endo-noise-interop.sh"]
async fn endo_refuses_a_syn_for_another_key() {
    let Some(mut endo) = node(&["respond"]) else {
        panic!("set POLA_ENDO_NOISE_DIR (scripts/endo-noise-interop.sh)");
    };
    let listen = endo.line("LISTEN").await;
    let port = listen.split(' ').nth(1).unwrap().to_owned();
    let me = NoiseNetlayer::bind(Identity::generate().unwrap(), "127.0.0.1", 0)
        .await
        .unwrap();
    // A locator naming some other key at Endo's address.
    let mut to = me.location().clone();
    to.designator = Identity::generate().unwrap().designator();
    to.hints.insert("port".into(), port);
    assert!(me.connect_authenticated(&to).await.is_err());
    let line = endo.line("ERROR").await;
    assert!(line.contains("different responder"), "{line}");
}
