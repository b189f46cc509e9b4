//! Typed errors of the Noise netlayer and of vat identities.

use std::path::PathBuf;

use crate::NetError;

use super::PeerKey;

/// Which side of a handshake a message or signature came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that dialled (sends SYN and ACK).
    Initiator,
    /// The side that was dialled (sends SYNACK).
    Responder,
}

/// Which handshake message a length or decryption error concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Message 1, initiator to responder (prefixed SYN).
    Syn,
    /// Message 2, responder to initiator.
    SynAck,
    /// Message 3, initiator to responder.
    Ack,
}

/// Everything that can end a Noise handshake or session.
///
/// Grouped by fault: malformed bytes, a peer that broke a rule, a limit, and
/// local failures. Inside the [`Netlayer`](crate::Netlayer) API these travel
/// as [`NetError::Io`] wrapping this type; [`noise_error`] gets it back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseError {
    // --- malformed bytes ---
    /// A designator that is not 52 lowercase base32 characters naming a
    /// valid Ed25519 public key.
    #[error("designator is not a canonical base32 Ed25519 public key")]
    BadDesignator,
    /// A handshake message of the wrong length.
    #[error("{stage:?} message of {len} bytes, expected {expected}")]
    BadHandshakeLength {
        /// Which message.
        stage: Stage,
        /// Length received.
        len: usize,
        /// The only length allowed.
        expected: usize,
    },
    /// A transport frame shorter than its authentication tag.
    #[error("transport frame of {len} bytes is shorter than its 16-byte tag")]
    FrameTooShort {
        /// Declared length.
        len: usize,
    },

    // --- the peer broke a rule ---
    /// The responder proved a different identity key than the locator names:
    /// a man in the middle, or the wrong peer at that address.
    #[error("responder is {presented}, not {expected} as the locator names")]
    WrongResponder {
        /// The key the locator's designator names.
        expected: PeerKey,
        /// The key the responder presented.
        presented: PeerKey,
    },
    /// A SYN addressed (cleartext prefix) to another responder key.
    #[error("SYN addressed to another responder key")]
    NotForUs,
    /// A presented identity key is not a valid Ed25519 public key.
    #[error("{0:?} presented an invalid Ed25519 key")]
    BadIdentityKey(Role),
    /// The signature binding a side's Noise static key to its identity key
    /// does not verify.
    #[error("{0:?} signature over its Noise static key does not verify")]
    BadSignature(Role),
    /// A handshake message failed Noise processing (bad key, failed
    /// authentication: tampered or replayed).
    #[error("{0:?} handshake message failed to decrypt or authenticate")]
    HandshakeFailed(Stage),
    /// No encoding version both sides support.
    #[error("no mutually supported encoding version")]
    NoCommonEncoding,
    /// A transport frame failed authentication: tampered, replayed,
    /// reordered or injected.
    #[error("transport frame {nonce} failed authentication")]
    Decrypt {
        /// The frame's sequence number (its implicit nonce).
        nonce: u64,
    },
    /// The stream ended without the encrypted end-of-stream frame (cut by
    /// the network or an attacker), possibly mid-frame.
    #[error("stream truncated ({buffered} bytes of an unfinished frame)")]
    Truncated {
        /// Bytes of a partial frame left unread.
        buffered: usize,
    },
    /// Bytes arrived after the encrypted end-of-stream frame.
    #[error("data after end-of-stream frame")]
    DataAfterClose,

    // --- limits ---
    /// The handshake did not finish within the configured time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// 2^64 - 1 frames were sent or received on one session.
    #[error("nonce space exhausted")]
    NonceExhausted,

    // --- local ---
    /// The Noise library refused an operation (local failure, e.g. RNG).
    #[error("noise library: {0}")]
    Local(String),
}

impl From<NoiseError> for NetError {
    fn from(e: NoiseError) -> Self {
        use std::io::ErrorKind;
        let kind = match &e {
            NoiseError::HandshakeTimeout => ErrorKind::TimedOut,
            NoiseError::Truncated { .. } => ErrorKind::UnexpectedEof,
            NoiseError::WrongResponder { .. }
            | NoiseError::NotForUs
            | NoiseError::BadSignature(_)
            | NoiseError::BadIdentityKey(_) => ErrorKind::PermissionDenied,
            NoiseError::Local(_) => ErrorKind::Other,
            _ => ErrorKind::InvalidData,
        };
        NetError::Io(std::io::Error::new(kind, e))
    }
}

/// The [`NoiseError`] inside a [`NetError`] returned by the Noise netlayer,
/// if that is what it carries.
pub fn noise_error(e: &NetError) -> Option<&NoiseError> {
    match e {
        NetError::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<NoiseError>()),
        _ => None,
    }
}

/// Why a vat identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key file grants access beyond its owner (mode must be 0600 or
    /// stricter).
    #[error("key file {path:?} has mode {mode:o}; it must not be readable by group or others")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a regular file.
    #[error("key file {0:?} is not a regular file")]
    NotAFile(PathBuf),
    /// The key file does not hold a key in the expected format.
    #[error("key file {0:?} does not hold a pola Noise identity")]
    BadContents(PathBuf),
    /// The OS RNG failed.
    #[error("OS random number generator failed")]
    Rng,
    /// Local I/O failure.
    #[error("key file {path:?}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}
