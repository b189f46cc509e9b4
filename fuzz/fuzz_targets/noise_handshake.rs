//! Fuzzes pola's Noise handshake, both sides, as the netlayer runs it
//! (`pola_netlayer::noise::transport::{respond_on, initiate_on}`: the
//! length-prefixed frames and the sans-IO state machine), over an
//! in-memory pipe in a current-thread runtime, each input under a time cap.
//!
//! The first byte picks who the hostile peer is:
//! - 0: raw bytes to pola's responder (everything after the first byte);
//! - 1: raw bytes to pola's initiator, as the SYNACK stream;
//! - 2: a genuine Noise initiator (snow, driven here) whose SYN prefix,
//!   identity claim, signature, encodings, payload length, frame length
//!   and ACK the input chooses;
//! - 3: a genuine Noise responder whose SYNACK key, signature (its own, a
//!   man in the middle's, or bytes), encoding, payload length, frame
//!   length and bytes the input chooses.
//!
//! Oracle: no panic, hang or unbounded allocation; every failure is a
//! typed `NoiseError` (never a local failure or a timeout); raw bytes never
//! authenticate; a scripted peer is accepted exactly when it proved its
//! key (and then it is that key), a man in the middle is reported as
//! `WrongResponder`; and what pola sends is checked too: its SYN is
//! addressed to the key it dials and its SYNACK/ACK prove its own key.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use pola_netlayer::NetError;
use pola_netlayer::noise::handshake::{ACK_LEN, Established, NOISE_PARAMS, SYN_LEN, SYNACK_LEN};
use pola_netlayer::noise::transport::{initiate_on, respond_on};
use pola_netlayer::noise::{Identity, NoiseError, Role, noise_error};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// pola's identity (the side under test).
const POLA: [u8; 32] = [1; 32];
/// The hostile peer's identity.
const PEER: [u8; 32] = [2; 32];
/// A man in the middle's identity.
const MITM: [u8; 32] = [3; 32];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

/// The scripted peer's Noise static key pair (one per process).
fn peer_static() -> &'static snow::Keypair {
    static KP: OnceLock<snow::Keypair> = OnceLock::new();
    KP.get_or_init(|| builder().generate_keypair().expect("keypair"))
}

fn builder() -> snow::Builder<'static> {
    snow::Builder::new(NOISE_PARAMS.parse().expect("params"))
}

fn public(secret: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(secret).verifying_key().to_bytes()
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.u8();
        }
        out
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

/// A typed handshake failure, or the test fails.
fn typed(e: &NetError) -> NoiseError {
    let n = noise_error(e)
        .cloned()
        .unwrap_or_else(|| panic!("not a typed Noise error: {e:?}"));
    assert!(
        !matches!(n, NoiseError::Local(_) | NoiseError::HandshakeTimeout),
        "{n:?}"
    );
    n
}

async fn write_frame(s: &mut DuplexStream, len: u16, body: &[u8]) -> std::io::Result<()> {
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await
}

/// Reads one frame pola wrote; `None` once pola has stopped.
async fn read_frame(s: &mut DuplexStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(h))];
    s.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// Runs `pola` against `peer` on the two ends of a pipe, under a time cap.
fn run<P, Q, T>(
    pola: impl FnOnce(DuplexStream) -> P,
    peer: impl FnOnce(DuplexStream) -> Q,
) -> (Result<Established, NetError>, T)
where
    P: Future<Output = Result<Established, NetError>>,
    Q: Future<Output = T>,
{
    let (a, b) = tokio::io::duplex(1024);
    let both = async { tokio::join!(pola(a), peer(b)) };
    runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), both).await })
        .expect("the handshake hung")
}

async fn as_responder(mut s: DuplexStream) -> Result<Established, NetError> {
    respond_on(&mut s, &Identity::from_secret_bytes(&POLA)).await
}

async fn as_initiator(mut s: DuplexStream) -> Result<Established, NetError> {
    let peer = Identity::from_secret_bytes(&PEER).public_key();
    initiate_on(&mut s, &Identity::from_secret_bytes(&POLA), peer).await
}

/// Raw bytes in, whatever pola writes drained; the write half is closed
/// after the bytes so pola sees the end.
async fn raw_peer(mut s: DuplexStream, bytes: Vec<u8>) {
    let (mut r, mut w) = tokio::io::split(&mut s);
    let drain = async {
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink).await;
    };
    let feed = async {
        let _ = w.write_all(&bytes).await;
        let _ = w.shutdown().await;
    };
    tokio::join!(drain, feed);
}

/// Mode 2: a scripted initiator against pola's responder.
fn scripted_initiator(input: &mut Input<'_>) {
    let flags = input.u8();
    let pola_key = public(&POLA);
    let prefix = if flags & 1 == 0 {
        pola_key
    } else {
        input.bytes()
    };
    let claimed = if flags & 2 == 0 {
        public(&PEER)
    } else {
        input.bytes()
    };
    let kp = peer_static();
    let sig: [u8; 64] = if flags & 4 == 0 {
        SigningKey::from_bytes(&PEER).sign(&kp.public).to_bytes()
    } else {
        input.bytes()
    };
    let (first, mask) = if flags & 8 == 0 {
        (0u16, 0u16)
    } else {
        (
            u16::from_be_bytes(input.bytes()),
            u16::from_be_bytes(input.bytes()),
        )
    };
    let mut payload = claimed.to_vec();
    payload.extend_from_slice(&sig);
    payload.extend_from_slice(&first.to_be_bytes());
    payload.extend_from_slice(&mask.to_be_bytes());
    if flags & 16 != 0 {
        // Another payload length.
        let n = usize::from(input.u8());
        payload.resize(n, 0x77);
    }
    let lie = (flags & 32 != 0).then(|| u16::from_be_bytes(input.bytes()));
    let ack_payload = if flags & 64 != 0 {
        let n = usize::from(input.u8());
        input.take(n)
    } else {
        Vec::new()
    };
    let raw_ack = (flags & 128 != 0).then(|| input.take(usize::MAX));

    let mut hs = builder()
        .local_private_key(&kp.private)
        .expect("key")
        .build_initiator()
        .expect("initiator");
    let mut msg1 = vec![0u8; 65535];
    let n = hs.write_message(&payload, &mut msg1).expect("msg1");
    let mut syn = prefix.to_vec();
    syn.extend_from_slice(&msg1[..n]);
    let syn_len = lie.unwrap_or(u16::try_from(syn.len()).expect("fits"));

    let expect_ok = prefix == pola_key
        && claimed == public(&PEER)
        && flags & 4 == 0
        && first == 0
        && payload.len() == 100
        && usize::from(syn_len) == SYN_LEN
        && syn.len() == SYN_LEN
        && ack_payload.is_empty()
        && raw_ack.is_none();

    let syn_body = syn.len();
    let (got, ()) = run(as_responder, |mut s| async move {
        if write_frame(&mut s, syn_len, &syn).await.is_err() {
            return;
        }
        if usize::from(syn_len) != syn.len() {
            // A frame whose length lies: send nothing more, so pola sees
            // the end instead of waiting for bytes that never come.
            let _ = s.shutdown().await;
        }
        let Some(synack) = read_frame(&mut s).await else {
            return;
        };
        // pola's SYNACK must prove pola's key.
        assert_eq!(synack.len(), SYNACK_LEN);
        let mut p = vec![0u8; 65535];
        let n = hs
            .read_message(&synack, &mut p)
            .expect("pola's SYNACK decrypts");
        assert_eq!(n, 97, "SYNACK payload length");
        assert_eq!(p[..32], pola_key, "SYNACK names another key");
        let rs = hs.get_remote_static().expect("responder static");
        let sig = ed25519_dalek::Signature::from_bytes(p[32..96].try_into().expect("64"));
        VerifyingKey::from_bytes(&pola_key)
            .expect("key")
            .verify(rs, &sig)
            .expect("pola's SYNACK signature verifies");
        assert_eq!(p[96], 0, "encoding");
        let ack = match raw_ack {
            Some(raw) => raw,
            None => {
                let mut out = vec![0u8; 65535];
                let n = hs.write_message(&ack_payload, &mut out).expect("msg3");
                out.truncate(n);
                let mut framed = u16::try_from(n).expect("fits").to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                framed
            }
        };
        let _ = s.write_all(&ack).await;
        let _ = s.shutdown().await;
    });
    match got {
        Ok(e) => {
            assert!(expect_ok, "accepted a peer that proved nothing");
            assert_eq!(e.peer.to_bytes(), public(&PEER));
            assert_eq!(e.encoding, 0);
        }
        Err(e) => {
            let e = typed(&e);
            assert!(!expect_ok, "refused a genuine peer: {e:?}");
            if prefix != pola_key && syn_body == SYN_LEN && usize::from(syn_len) == SYN_LEN {
                assert_eq!(e, NoiseError::NotForUs);
            }
            if usize::from(syn_len) != SYN_LEN {
                assert!(matches!(e, NoiseError::BadHandshakeLength { .. }), "{e:?}");
            }
        }
    }
}

/// Mode 3: a scripted responder against pola's initiator.
fn scripted_responder(input: &mut Input<'_>) {
    let flags = input.u8();
    let kp = peer_static();
    // Whose key the SYNACK names, and who signs.
    let (key, signer) = match flags & 3 {
        0 => (public(&PEER), Some(PEER)),
        1 => (public(&MITM), Some(MITM)),
        2 => (public(&PEER), Some(MITM)),
        _ => (input.bytes(), None),
    };
    let sig: [u8; 64] = match signer {
        Some(s) if flags & 4 == 0 => SigningKey::from_bytes(&s).sign(&kp.public).to_bytes(),
        _ => input.bytes(),
    };
    let encoding = if flags & 8 == 0 { 0 } else { input.u8() };
    let mut payload = key.to_vec();
    payload.extend_from_slice(&sig);
    payload.push(encoding);
    if flags & 16 != 0 {
        let n = usize::from(input.u8());
        payload.resize(n, 0x66);
    }
    let lie = (flags & 32 != 0).then(|| u16::from_be_bytes(input.bytes()));
    let flip = (flags & 64 != 0).then(|| (usize::from(input.u8()), input.u8() | 1));
    let trailing = (flags & 128 != 0).then(|| input.take(usize::MAX));

    let mut hs = builder()
        .local_private_key(&kp.private)
        .expect("key")
        .build_responder()
        .expect("responder");
    let signed_by_peer = signer == Some(PEER) && flags & 4 == 0;
    let expect_ok = flags & 3 == 0
        && signed_by_peer
        && encoding == 0
        && payload.len() == 97
        && lie.is_none_or(|l| usize::from(l) == SYNACK_LEN)
        && flip.is_none();
    let mitm =
        flags & 3 == 1 && flags & 4 == 0 && payload.len() >= 96 && lie.is_none() && flip.is_none();

    let payload_len = payload.len();
    let (got, ()) = run(as_initiator, |mut s| async move {
        let Some(syn) = read_frame(&mut s).await else {
            return;
        };
        assert_eq!(syn.len(), SYN_LEN);
        assert_eq!(syn[..32], public(&PEER), "SYN addressed to another key");
        let mut p = vec![0u8; 65535];
        let n = hs
            .read_message(&syn[32..], &mut p)
            .expect("pola's SYN reads");
        assert_eq!(n, 100);
        assert_eq!(p[..32], public(&POLA), "SYN claims another key");
        let pola_sig = ed25519_dalek::Signature::from_bytes(p[32..96].try_into().expect("64"));
        let mut msg2 = vec![0u8; 65535];
        let n = hs.write_message(&payload, &mut msg2).expect("msg2");
        msg2.truncate(n);
        if let Some((at, mask)) = flip {
            let i = at % msg2.len();
            msg2[i] ^= mask;
        }
        let len = lie.unwrap_or(u16::try_from(n).expect("fits"));
        if write_frame(&mut s, len, &msg2).await.is_err() {
            return;
        }
        if let Some(t) = &trailing {
            let _ = s.write_all(t).await;
        }
        let _ = s.shutdown().await;
        // If pola accepted, its ACK must prove its own key.
        if let Some(ack) = read_frame(&mut s).await {
            assert_eq!(ack.len(), ACK_LEN);
            let mut p = vec![0u8; 65535];
            let n = hs.read_message(&ack, &mut p).expect("pola's ACK reads");
            assert_eq!(n, 0);
            let rs = hs.get_remote_static().expect("initiator static");
            VerifyingKey::from_bytes(&public(&POLA))
                .expect("key")
                .verify(rs, &pola_sig)
                .expect("pola's SYN signature verifies");
        }
    });
    match got {
        Ok(e) => {
            assert!(expect_ok, "accepted a responder that proved nothing");
            assert_eq!(e.peer.to_bytes(), public(&PEER));
        }
        Err(e) => {
            let e = typed(&e);
            assert!(!expect_ok, "refused the genuine responder: {e:?}");
            if mitm && payload_len == 97 {
                assert!(
                    matches!(e, NoiseError::WrongResponder { .. }),
                    "a man in the middle went unnamed: {e:?}"
                );
            }
            if flags & 3 == 2
                && flags & 4 == 0
                && payload_len == 97
                && lie.is_none()
                && flip.is_none()
            {
                assert_eq!(e, NoiseError::BadSignature(Role::Responder));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    match input.u8() % 4 {
        0 => {
            let bytes = input.take(usize::MAX);
            let (got, ()) = run(as_responder, |s| raw_peer(s, bytes));
            let e = got.expect_err("raw bytes authenticated");
            typed(&e);
        }
        1 => {
            let bytes = input.take(usize::MAX);
            let (got, ()) = run(as_initiator, |s| raw_peer(s, bytes));
            let e = got.expect_err("raw bytes authenticated");
            typed(&e);
        }
        2 => scripted_initiator(&mut input),
        _ => scripted_responder(&mut input),
    }
});
