//! Fuzzes the Noise transport reader (`pola_netlayer::noise::transport::
//! NoiseReader`) after a genuine handshake: a hostile peer that holds the
//! session keys (or not) sends frames of any length, genuine, replayed,
//! skipped, tampered, truncated or raw, in chunks of any size.
//!
//! The input is a small program (see `build`). The stream it builds is
//! written into an in-memory pipe, in chunks whose size the first byte
//! picks, and then closed; the reader under test reads it to the end.
//!
//! Oracle, checked against a reference reading of the same bytes
//! (`reference`): no panic or hang; the plaintext handed out is exactly
//! that of the frames before the first bad one, in order; the stream ends
//! with the reference's outcome (clean end only after the genuine end
//! marker, else the exact typed error: `FrameTooShort`, `Decrypt` with the
//! failing frame's nonce, `Truncated` with the unfinished frame's bytes,
//! `DataAfterClose`); an error is sticky and an end stays an end.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pola_netlayer::noise::handshake::{Established, initiate, respond};
use pola_netlayer::noise::transport::{MAX_PLAINTEXT, NoiseReader, TAG_LEN};
use pola_netlayer::noise::{Identity, NoiseError, noise_error};
use pola_netlayer::{MessageReader, NetError};
use snow::StatelessTransportState;
use tokio::io::AsyncWriteExt;

/// Most stream bytes one input may build (a few full frames).
const MAX_STREAM: usize = 512 * 1024;

struct Keys {
    /// The peer's sending cipher (the initiator's).
    tx: StatelessTransportState,
    /// Our receiving cipher (the responder's), shared with every reader.
    rx: Arc<StatelessTransportState>,
    /// A third cipher from another handshake: frames sealed under keys
    /// that are not this session's.
    stranger: StatelessTransportState,
}

fn handshake(a: u8, b: u8) -> (Established, Established) {
    let ia = Identity::from_secret_bytes(&[a; 32]);
    let ib = Identity::from_secret_bytes(&[b; 32]);
    let (state, syn) = initiate(&ia, ib.public_key()).expect("initiate");
    let (state_b, synack) = respond(&ib, &syn).expect("respond");
    let (ea, ack) = state.read_synack(&synack).expect("synack");
    let eb = state_b.read_ack(&ack).expect("ack");
    (ea, eb)
}

/// One genuine handshake per process (Noise's per-handshake keys are
/// random, so the bytes differ between processes; what the reader does
/// with them does not).
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (ea, eb) = handshake(1, 2);
        let (stranger, _) = handshake(3, 4);
        Keys {
            tx: ea.transport,
            rx: Arc::new(eb.transport),
            stranger: stranger.transport,
        }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

/// Reads the input front to back; zeros once it is used up.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn done(&self) -> bool {
        self.0.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn seal(cipher: &StatelessTransportState, nonce: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8; plaintext.len() + TAG_LEN];
    let n = cipher
        .write_message(nonce, plaintext, &mut body)
        .expect("seal");
    body.truncate(n);
    let mut frame = u16::try_from(n).expect("frame fits").to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Builds the byte stream the hostile peer sends. Ops (one byte each, then
/// their operands):
/// 0 a genuine frame of up to 255 plaintext bytes from the input (0 bytes:
///   the end marker); 1 a genuine frame of up to 65519 patterned bytes;
/// 2 raw bytes from the input; 3 the last sealed frame again (replay);
/// 4 skip a nonce; 5 flip bits of one byte already in the stream;
/// 6 cut bytes off the end; 7 a genuine frame whose length header lies;
/// 8 a frame sealed under another session's keys.
fn build(input: &mut Input<'_>, k: &Keys) -> Vec<u8> {
    let mut stream = Vec::new();
    let mut nonce = 0u64;
    let mut last: Vec<u8> = Vec::new();
    while !input.done() && stream.len() < MAX_STREAM {
        match input.u8() % 9 {
            0 => {
                let n = usize::from(input.u8());
                let mut pt = input.take(n).to_vec();
                pt.resize(n, 0x5a);
                last = seal(&k.tx, nonce, &pt);
                nonce += 1;
                stream.extend_from_slice(&last);
            }
            1 => {
                let n = usize::from(input.u16()) % (MAX_PLAINTEXT + 1);
                let pt: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
                last = seal(&k.tx, nonce, &pt);
                nonce += 1;
                stream.extend_from_slice(&last);
            }
            2 => {
                let n = usize::from(input.u8());
                stream.extend_from_slice(input.take(n));
            }
            3 => stream.extend_from_slice(&last),
            4 => nonce += 1,
            5 => {
                let at = usize::from(input.u16());
                let mask = input.u8() | 1;
                if !stream.is_empty() {
                    let i = at % stream.len();
                    stream[i] ^= mask;
                }
            }
            6 => {
                let cut = usize::from(input.u8()).min(stream.len());
                stream.truncate(stream.len() - cut);
            }
            7 => {
                let n = usize::from(input.u8());
                let lie = input.u16();
                let mut frame = seal(&k.tx, nonce, &vec![0x33; n]);
                nonce += 1;
                frame[..2].copy_from_slice(&lie.to_be_bytes());
                stream.extend_from_slice(&frame);
            }
            _ => {
                let n = usize::from(input.u8());
                stream.extend_from_slice(&seal(&k.stranger, nonce, &vec![0x44; n]));
            }
        }
    }
    stream
}

/// How a read of the whole stream must end.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Clean end (the genuine end marker and nothing after it).
    End,
    /// Bytes after the end marker: `DataAfterClose` if they were read
    /// with the marker, a clean end if the reader stopped first.
    EndThenData,
    /// This error.
    Error(NoiseError),
}

/// Reads `stream` frame by frame the way the protocol says.
fn reference(stream: &[u8], rx: &StatelessTransportState) -> (Vec<u8>, Outcome) {
    let mut plain = Vec::new();
    let mut pos = 0;
    let mut nonce = 0u64;
    loop {
        let rest = &stream[pos..];
        if rest.len() < 2 {
            return (
                plain,
                Outcome::Error(NoiseError::Truncated {
                    buffered: rest.len(),
                }),
            );
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len < TAG_LEN {
            return (plain, Outcome::Error(NoiseError::FrameTooShort { len }));
        }
        if rest.len() < 2 + len {
            return (
                plain,
                Outcome::Error(NoiseError::Truncated {
                    buffered: rest.len(),
                }),
            );
        }
        let mut out = vec![0u8; len];
        match rx.read_message(nonce, &rest[2..2 + len], &mut out) {
            Ok(0) => {
                pos += 2 + len;
                let outcome = if pos == stream.len() {
                    Outcome::End
                } else {
                    Outcome::EndThenData
                };
                return (plain, outcome);
            }
            Ok(n) => {
                plain.extend_from_slice(&out[..n]);
                nonce += 1;
                pos += 2 + len;
            }
            Err(_) => return (plain, Outcome::Error(NoiseError::Decrypt { nonce })),
        }
    }
}

fn as_noise(e: &NetError) -> NoiseError {
    noise_error(e)
        .cloned()
        .unwrap_or_else(|| panic!("not a typed Noise error: {e:?}"))
}

fuzz_target!(|data: &[u8]| {
    let k = keys();
    let mut input = Input(data);
    let chunk = 1usize << (input.u8() % 18);
    let stream = build(&mut input, k);
    let (want_plain, want) = reference(&stream, &k.rx);

    let rx = k.rx.clone();
    let run = async move {
        let (mut peer, ours) = tokio::io::duplex(4096);
        let write = async move {
            for piece in stream.chunks(chunk) {
                if peer.write_all(piece).await.is_err() {
                    // The reader stopped (after an error): fine.
                    return;
                }
            }
            // Dropping `peer` closes the stream.
        };
        let read = async move {
            let mut reader = NoiseReader::new(ours, rx);
            let mut got = Vec::new();
            let end = loop {
                match reader.recv().await {
                    Ok(Some(c)) => {
                        assert!(!c.is_empty(), "an empty chunk handed out");
                        got.extend_from_slice(&c);
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(as_noise(&e)),
                }
            };
            // Sticky: asking again gives the same answer.
            let again = match reader.recv().await {
                Ok(None) => Ok(()),
                Ok(Some(c)) => panic!("{} bytes after the end", c.len()),
                Err(e) => Err(as_noise(&e)),
            };
            assert_eq!(end, again, "the end of the stream changed");
            (got, end)
        };
        let ((), out) = tokio::join!(write, read);
        out
    };
    let (got, end) = runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), run).await })
        .expect("the reader hung");

    assert!(
        got == want_plain,
        "plaintext differs: got {} bytes, want {}",
        got.len(),
        want_plain.len()
    );
    match want {
        Outcome::End => assert_eq!(end, Ok(())),
        Outcome::EndThenData => assert!(
            end == Ok(()) || end == Err(NoiseError::DataAfterClose),
            "{end:?}"
        ),
        Outcome::Error(e) => assert_eq!(end, Err(e)),
    }
});
