//! The OCapN Noise handshake as a sans-IO state machine.
//!
//! Three messages, each of a fixed length (the layouts Endo's
//! `@endo/ocapn-noise` uses, so the two interoperate):
//!
//! ```text
//! SYN     initiator -> responder   164 bytes
//!   [0..32)    responder's Ed25519 key, cleartext (who the SYN is for)
//!   [32..164)  Noise XX message 1 "-> e" (32) with a 100-byte payload
//!              in the clear (message 1 has no key yet):
//!                [0..32)   initiator's Ed25519 key
//!                [32..96)  Ed25519 signature of the initiator's Noise
//!                          static X25519 public key
//!                [96..98)  lowest encoding version offered, u16 big-endian
//!                [98..100) bit mask of further versions (bit i = lowest+1+i),
//!                          u16 big-endian
//! SYNACK  responder -> initiator   193 bytes
//!   Noise XX message 2 "<- e, ee, s, es" (32 + 48) with an encrypted
//!   97-byte payload (+16 tag):
//!                [0..32)   responder's Ed25519 key
//!                [32..96)  Ed25519 signature of the responder's Noise
//!                          static X25519 public key
//!                [96]      the encoding version chosen (u8)
//! ACK     initiator -> responder   64 bytes
//!   Noise XX message 3 "-> s, se" (48) with an empty payload (+16 tag).
//! ```
//!
//! Protocol `Noise_XX_25519_ChaChaPoly_BLAKE2s`, empty prologue. Each side's
//! Noise "static" key is itself fresh for every handshake, and is bound to
//! the long-term Ed25519 identity by the signature. A side is authenticated
//! once (a) its Noise static key's DH completed the handshake (so it holds
//! that X25519 secret) and (b) its identity key signed that static key.
//! The initiator checks the responder after SYNACK; the responder checks
//! the initiator after ACK.
//!
//! Every state is its own type; each step consumes the previous state, so
//! an [`Established`] session can only be had from a completed, verified
//! handshake.

use snow::{Builder, HandshakeState, StatelessTransportState};

use super::error::{NoiseError, Role, Stage};
use super::identity::{Identity, PeerKey};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// SYN length: cleartext responder key + Noise message 1.
pub const SYN_LEN: usize = 32 + SYN_NOISE_LEN;
const SYN_NOISE_LEN: usize = 32 + SYN_PAYLOAD_LEN;
const SYN_PAYLOAD_LEN: usize = 100;
/// SYNACK length.
pub const SYNACK_LEN: usize = 96 + SYNACK_PAYLOAD_LEN;
const SYNACK_PAYLOAD_LEN: usize = 97;
/// ACK length.
pub const ACK_LEN: usize = 64;

/// The encoding versions pola offers and accepts (Endo's default, 0).
pub const SUPPORTED_ENCODINGS: &[u16] = &[0];

fn builder() -> Result<Builder<'static>, NoiseError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| NoiseError::Local(e.to_string()))?;
    Ok(Builder::new(params))
}

/// A fresh X25519 key pair for one handshake's Noise static key.
fn fresh_static() -> Result<snow::Keypair, NoiseError> {
    builder()?
        .generate_keypair()
        .map_err(|e| NoiseError::Local(e.to_string()))
}

fn local(e: snow::Error) -> NoiseError {
    NoiseError::Local(e.to_string())
}

/// A completed, mutually authenticated handshake.
pub struct Established {
    /// The peer's verified identity key.
    pub peer: PeerKey,
    /// The encoding version agreed.
    pub encoding: u16,
    /// The transport ciphers (explicit nonces: the reader and writer halves
    /// each count their own).
    pub transport: StatelessTransportState,
}

impl std::fmt::Debug for Established {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("peer", &self.peer)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

/// Initiator, SYN sent, awaiting the SYNACK.
pub struct AwaitingSynAck {
    hs: HandshakeState,
    expected: PeerKey,
}

impl std::fmt::Debug for AwaitingSynAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingSynAck")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

/// Starts a handshake as initiator towards the peer whose identity key is
/// `responder`: returns the state and the SYN to send.
///
/// # Errors
/// [`NoiseError::Local`] if key generation fails.
pub fn initiate(
    identity: &Identity,
    responder: PeerKey,
) -> Result<(AwaitingSynAck, [u8; SYN_LEN]), NoiseError> {
    initiate_claiming(
        identity.public_key().to_bytes(),
        |m| identity.sign(m),
        responder,
    )
}

/// [`initiate`] with the identity claim and signer given apart (tests use
/// it to forge claims).
fn initiate_claiming(
    claimed: [u8; 32],
    sign: impl Fn(&[u8]) -> [u8; 64],
    responder: PeerKey,
) -> Result<(AwaitingSynAck, [u8; SYN_LEN]), NoiseError> {
    let kp = fresh_static()?;
    let mut hs = builder()?
        .local_private_key(&kp.private)
        .map_err(local)?
        .build_initiator()
        .map_err(local)?;
    let mut payload = [0u8; SYN_PAYLOAD_LEN];
    payload[..32].copy_from_slice(&claimed);
    payload[32..96].copy_from_slice(&sign(&kp.public));
    let (first, mask) = encode_encodings(SUPPORTED_ENCODINGS);
    payload[96..98].copy_from_slice(&first.to_be_bytes());
    payload[98..100].copy_from_slice(&mask.to_be_bytes());
    // snow wants room for a tag even where message 1 has none.
    let mut out = [0u8; SYN_NOISE_LEN + 16];
    let n = hs.write_message(&payload, &mut out).map_err(local)?;
    if n != SYN_NOISE_LEN {
        return Err(NoiseError::Local(format!("SYN of {n} bytes")));
    }
    let mut syn = [0u8; SYN_LEN];
    syn[..32].copy_from_slice(&responder.to_bytes());
    syn[32..].copy_from_slice(&out[..SYN_NOISE_LEN]);
    Ok((
        AwaitingSynAck {
            hs,
            expected: responder,
        },
        syn,
    ))
}

impl AwaitingSynAck {
    /// Reads the SYNACK, verifies the responder is the expected key, and
    /// returns the session and the ACK to send.
    ///
    /// # Errors
    /// [`NoiseError::BadHandshakeLength`], [`NoiseError::HandshakeFailed`]
    /// (tampered or not for this handshake), [`NoiseError::WrongResponder`]
    /// (the responder proved another key), [`NoiseError::BadSignature`],
    /// [`NoiseError::NoCommonEncoding`].
    pub fn read_synack(
        mut self,
        synack: &[u8],
    ) -> Result<(Established, [u8; ACK_LEN]), NoiseError> {
        if synack.len() != SYNACK_LEN {
            return Err(NoiseError::BadHandshakeLength {
                stage: Stage::SynAck,
                len: synack.len(),
                expected: SYNACK_LEN,
            });
        }
        let mut buf = [0u8; SYNACK_LEN];
        let n = self
            .hs
            .read_message(synack, &mut buf)
            .map_err(|_| NoiseError::HandshakeFailed(Stage::SynAck))?;
        if n != SYNACK_PAYLOAD_LEN {
            return Err(NoiseError::HandshakeFailed(Stage::SynAck));
        }
        let (key, sig, encoding) = split_synack_payload(&buf);
        if key != self.expected.to_bytes() {
            let presented = PeerKey::from_bytes(&key)
                .map_err(|_| NoiseError::BadIdentityKey(Role::Responder))?;
            return Err(NoiseError::WrongResponder {
                expected: self.expected,
                presented,
            });
        }
        let rs = self
            .hs
            .get_remote_static()
            .ok_or(NoiseError::HandshakeFailed(Stage::SynAck))?;
        if !self.expected.verifies(rs, &sig) {
            return Err(NoiseError::BadSignature(Role::Responder));
        }
        let encoding = u16::from(encoding);
        if !SUPPORTED_ENCODINGS.contains(&encoding) {
            return Err(NoiseError::NoCommonEncoding);
        }
        let mut out = [0u8; ACK_LEN + 16];
        let n = self.hs.write_message(&[], &mut out).map_err(local)?;
        if n != ACK_LEN {
            return Err(NoiseError::Local(format!("ACK of {n} bytes")));
        }
        let mut ack = [0u8; ACK_LEN];
        ack.copy_from_slice(&out[..ACK_LEN]);
        let transport = self.hs.into_stateless_transport_mode().map_err(local)?;
        Ok((
            Established {
                peer: self.expected,
                encoding,
                transport,
            },
            ack,
        ))
    }
}

fn split_synack_payload(p: &[u8; SYNACK_LEN]) -> ([u8; 32], [u8; 64], u8) {
    let mut key = [0u8; 32];
    let mut sig = [0u8; 64];
    key.copy_from_slice(&p[..32]);
    sig.copy_from_slice(&p[32..96]);
    (key, sig, p[96])
}

/// Responder, SYNACK sent, awaiting the ACK.
pub struct AwaitingAck {
    hs: HandshakeState,
    initiator: PeerKey,
    initiator_sig: [u8; 64],
    encoding: u16,
}

impl std::fmt::Debug for AwaitingAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingAck")
            .field("claimed_initiator", &self.initiator)
            .finish_non_exhaustive()
    }
}

/// Reads a SYN as responder with `identity`, returning the state and the
/// SYNACK to send. The initiator's key is only *claimed* until
/// [`AwaitingAck::read_ack`] verifies it.
///
/// # Errors
/// [`NoiseError::BadHandshakeLength`], [`NoiseError::NotForUs`] (addressed
/// to another key), [`NoiseError::HandshakeFailed`],
/// [`NoiseError::BadIdentityKey`], [`NoiseError::NoCommonEncoding`].
pub fn respond(
    identity: &Identity,
    syn: &[u8],
) -> Result<(AwaitingAck, [u8; SYNACK_LEN]), NoiseError> {
    if syn.len() != SYN_LEN {
        return Err(NoiseError::BadHandshakeLength {
            stage: Stage::Syn,
            len: syn.len(),
            expected: SYN_LEN,
        });
    }
    let (prefix, noise_msg) = syn.split_at(32);
    if prefix != identity.public_key().to_bytes() {
        return Err(NoiseError::NotForUs);
    }
    let kp = fresh_static()?;
    let mut hs = builder()?
        .local_private_key(&kp.private)
        .map_err(local)?
        .build_responder()
        .map_err(local)?;
    let mut payload = [0u8; SYN_LEN];
    let n = hs
        .read_message(noise_msg, &mut payload)
        .map_err(|_| NoiseError::HandshakeFailed(Stage::Syn))?;
    if n != SYN_PAYLOAD_LEN {
        return Err(NoiseError::HandshakeFailed(Stage::Syn));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&payload[..32]);
    let initiator =
        PeerKey::from_bytes(&key).map_err(|_| NoiseError::BadIdentityKey(Role::Initiator))?;
    let mut initiator_sig = [0u8; 64];
    initiator_sig.copy_from_slice(&payload[32..96]);
    let first = u16::from_be_bytes([payload[96], payload[97]]);
    let mask = u16::from_be_bytes([payload[98], payload[99]]);
    let encoding = choose_encoding(first, mask).ok_or(NoiseError::NoCommonEncoding)?;
    // The SYNACK carries the choice in one byte.
    let encoding_byte = u8::try_from(encoding).map_err(|_| NoiseError::NoCommonEncoding)?;

    let mut reply = [0u8; SYNACK_PAYLOAD_LEN];
    reply[..32].copy_from_slice(&identity.public_key().to_bytes());
    reply[32..96].copy_from_slice(&identity.sign(&kp.public));
    reply[96] = encoding_byte;
    let mut out = [0u8; SYNACK_LEN + 16];
    let n = hs.write_message(&reply, &mut out).map_err(local)?;
    if n != SYNACK_LEN {
        return Err(NoiseError::Local(format!("SYNACK of {n} bytes")));
    }
    let mut synack = [0u8; SYNACK_LEN];
    synack.copy_from_slice(&out[..SYNACK_LEN]);
    Ok((
        AwaitingAck {
            hs,
            initiator,
            initiator_sig,
            encoding,
        },
        synack,
    ))
}

impl AwaitingAck {
    /// The identity key the initiator claims (not yet verified).
    pub fn claimed_initiator(&self) -> PeerKey {
        self.initiator
    }

    /// Reads the ACK and verifies the initiator's identity.
    ///
    /// # Errors
    /// [`NoiseError::BadHandshakeLength`], [`NoiseError::HandshakeFailed`]
    /// (tampered or replayed ACK), [`NoiseError::BadSignature`].
    pub fn read_ack(mut self, ack: &[u8]) -> Result<Established, NoiseError> {
        if ack.len() != ACK_LEN {
            return Err(NoiseError::BadHandshakeLength {
                stage: Stage::Ack,
                len: ack.len(),
                expected: ACK_LEN,
            });
        }
        let mut empty = [0u8; ACK_LEN];
        let n = self
            .hs
            .read_message(ack, &mut empty)
            .map_err(|_| NoiseError::HandshakeFailed(Stage::Ack))?;
        if n != 0 {
            return Err(NoiseError::HandshakeFailed(Stage::Ack));
        }
        let rs = self
            .hs
            .get_remote_static()
            .ok_or(NoiseError::HandshakeFailed(Stage::Ack))?;
        if !self.initiator.verifies(rs, &self.initiator_sig) {
            return Err(NoiseError::BadSignature(Role::Initiator));
        }
        let transport = self.hs.into_stateless_transport_mode().map_err(local)?;
        Ok(Established {
            peer: self.initiator,
            encoding: self.encoding,
            transport,
        })
    }
}

/// Endo's encoding-set form: the lowest version, and a mask whose bit `i`
/// offers version `lowest + 1 + i`.
fn encode_encodings(versions: &[u16]) -> (u16, u16) {
    let first = versions.iter().copied().min().unwrap_or(0);
    let mut mask = 0u16;
    for &v in versions {
        if let Some(bit) = v.checked_sub(first).and_then(|d| d.checked_sub(1))
            && bit < 16
        {
            mask |= 1 << bit;
        }
    }
    (first, mask)
}

/// The highest version the initiator offers that we support.
fn choose_encoding(first: u16, mask: u16) -> Option<u16> {
    let mut best = SUPPORTED_ENCODINGS.contains(&first).then_some(first);
    for bit in 0..16u16 {
        if mask & (1 << bit) != 0 {
            let v = first.checked_add(bit + 1)?;
            if SUPPORTED_ENCODINGS.contains(&v) {
                best = Some(v);
            }
        }
    }
    best
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pair() -> (Identity, Identity) {
        (Identity::generate().unwrap(), Identity::generate().unwrap())
    }

    #[test]
    fn handshake_completes_and_both_learn_the_other() {
        let (a, b) = pair();
        let (ia, syn) = initiate(&a, b.public_key()).unwrap();
        let (rb, synack) = respond(&b, &syn).unwrap();
        assert_eq!(rb.claimed_initiator(), a.public_key());
        let (ea, ack) = ia.read_synack(&synack).unwrap();
        let eb = rb.read_ack(&ack).unwrap();
        assert_eq!(ea.peer, b.public_key());
        assert_eq!(eb.peer, a.public_key());
        assert_eq!((ea.encoding, eb.encoding), (0, 0));
        let mut ct = [0u8; 64];
        let n = ea.transport.write_message(0, b"hi", &mut ct).unwrap();
        let mut pt = [0u8; 64];
        let m = eb.transport.read_message(0, &ct[..n], &mut pt).unwrap();
        assert_eq!(&pt[..m], b"hi");
    }

    #[test]
    fn syn_for_someone_else_is_refused() {
        let (a, b) = pair();
        let c = Identity::generate().unwrap();
        let (_, syn) = initiate(&a, c.public_key()).unwrap();
        assert_eq!(respond(&b, &syn).unwrap_err(), NoiseError::NotForUs);
    }

    #[test]
    fn responder_with_another_key_is_refused() {
        // The initiator expects b; mallory answers in b's place. Mallory
        // cannot prove b, so she presents herself and is refused by name.
        let (a, b) = pair();
        let mallory = Identity::generate().unwrap();
        let (ia, mut syn) = initiate(&a, b.public_key()).unwrap();
        syn[..32].copy_from_slice(&mallory.public_key().to_bytes());
        let (_, synack) = respond(&mallory, &syn).unwrap();
        match ia.read_synack(&synack).unwrap_err() {
            NoiseError::WrongResponder {
                expected,
                presented,
            } => {
                assert_eq!(expected, b.public_key());
                assert_eq!(presented, mallory.public_key());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flipped_bits_anywhere_in_synack_or_ack_fail() {
        let (a, b) = pair();
        for i in (0..SYNACK_LEN).step_by(7) {
            let (ia, syn) = initiate(&a, b.public_key()).unwrap();
            let (_, mut synack) = respond(&b, &syn).unwrap();
            synack[i] ^= 0x40;
            assert!(ia.read_synack(&synack).is_err(), "byte {i}");
        }
        for i in 0..ACK_LEN {
            let (ia, syn) = initiate(&a, b.public_key()).unwrap();
            let (rb, synack) = respond(&b, &syn).unwrap();
            let (_, mut ack) = ia.read_synack(&synack).unwrap();
            ack[i] ^= 1;
            assert_eq!(
                rb.read_ack(&ack).unwrap_err(),
                NoiseError::HandshakeFailed(Stage::Ack),
                "byte {i}"
            );
        }
    }

    #[test]
    fn forged_initiator_claim_is_caught_at_ack() {
        // Mallory dials b claiming to be a; she can only sign with her own
        // key. The claim is refused once her static key is known.
        let (a, b) = pair();
        let mallory = Identity::generate().unwrap();
        let (im, syn) = initiate_claiming(
            a.public_key().to_bytes(),
            |m| mallory.sign(m),
            b.public_key(),
        )
        .unwrap();
        let (rb, synack) = respond(&b, &syn).unwrap();
        assert_eq!(rb.claimed_initiator(), a.public_key());
        let (_, ack) = im.read_synack(&synack).unwrap();
        assert_eq!(
            rb.read_ack(&ack).unwrap_err(),
            NoiseError::BadSignature(Role::Initiator)
        );
    }

    #[test]
    fn tampered_syn_breaks_the_transcript() {
        let (a, b) = pair();
        for i in [40, 64, 100, 150, 163] {
            let (ia, mut syn) = initiate(&a, b.public_key()).unwrap();
            syn[i] ^= 1;
            // Either the responder refuses it, or the transcripts differ and
            // the initiator refuses the SYNACK.
            if let Ok((_, synack)) = respond(&b, &syn) {
                assert!(ia.read_synack(&synack).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn replayed_ack_fails_in_a_new_handshake() {
        let (a, b) = pair();
        let (ia, syn) = initiate(&a, b.public_key()).unwrap();
        let (rb, synack) = respond(&b, &syn).unwrap();
        let (_, ack) = ia.read_synack(&synack).unwrap();
        rb.read_ack(&ack).unwrap();
        // An eavesdropper replays SYN then ACK: the responder's fresh
        // ephemeral key makes the old ACK worthless.
        let (rb2, _) = respond(&b, &syn).unwrap();
        assert_eq!(
            rb2.read_ack(&ack).unwrap_err(),
            NoiseError::HandshakeFailed(Stage::Ack)
        );
    }

    #[test]
    fn encoding_sets() {
        assert_eq!(encode_encodings(&[0]), (0, 0));
        assert_eq!(encode_encodings(&[1, 2, 4]), (1, 0b101));
        assert_eq!(choose_encoding(0, 0), Some(0));
        assert_eq!(choose_encoding(0, 0b11), Some(0));
        assert_eq!(choose_encoding(1, 0), None);
        assert_eq!(choose_encoding(u16::MAX, 0xffff), None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod junk_tests {
    use super::*;

    #[test]
    fn random_handshake_messages_are_refused_without_panic() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        for n in [0, 1, 63, 64, 65, 163, 164, 165, 192, 193, 194, 300] {
            for _ in 0..20 {
                let mut syn = bytes(n);
                if syn.len() >= 32 {
                    syn[..32].copy_from_slice(&b.public_key().to_bytes());
                }
                // A random SYN may parse (its payload is in the clear), but
                // then its identity claim cannot be proven at ACK.
                if let Ok((rb, _)) = respond(&b, &syn) {
                    assert!(rb.read_ack(&bytes(ACK_LEN)).is_err());
                }
                let (ia, _) = initiate(&a, b.public_key()).unwrap();
                assert!(ia.read_synack(&bytes(n)).is_err());
            }
        }
    }
}
