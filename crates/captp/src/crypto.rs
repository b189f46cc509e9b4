//! Per-session keys, signatures, Public Identifiers and Session IDs
//! (DIGEST section 6).
//!
//! ```text
//! public key value  [public-key [ecc [curve Ed25519] [flags eddsa] [q bytes(32)]]]
//! signature value   [sig-val [eddsa [r bytes(32)] [s bytes(32)]]]
//! Public Identifier SHA-256(SHA-256(syrup(public key value)))
//! Session ID        SHA-256(SHA-256("prot0" || lower id || higher id))
//! ```
//!
//! Keys come from a 32-byte seed the caller supplies; nothing here reads the
//! OS random number generator. Signatures are always made over, and checked
//! against, the canonical Syrup re-encoding of a value, never raw bytes from
//! the peer. Ed25519 verification uses `verify_strict` (rejects small-order
//! keys and non-canonical signatures).

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use pola_syrup::Value;
use sha2::{Digest, Sha256};

use crate::locator::PeerLocator;

/// A peer's session public key (Ed25519), validated as a curve point.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(&self.0))
    }
}

/// Errors from the key and signature value forms, and from verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The value is not a well-formed public key value.
    #[error("malformed public key")]
    MalformedKey,
    /// The value is not a well-formed signature value.
    #[error("malformed signature")]
    MalformedSignature,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

fn bytes_field<R, const N: usize>(v: &Value<R>, name: &str) -> Option<[u8; N]> {
    let [tag, b] = v.as_list()? else { return None };
    if tag.as_symbol()? != name {
        return None;
    }
    b.as_bytes()?.as_ref().try_into().ok()
}

fn sym_pair<R>(v: &Value<R>, a: &str, b: &str) -> bool {
    matches!(v.as_list(), Some([x, y]) if x.as_symbol() == Some(a) && y.as_symbol() == Some(b))
}

impl PublicKey {
    /// The raw 32-byte Ed25519 key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks that `bytes` is a usable Ed25519 public key.
    ///
    /// # Errors
    /// [`CryptoError::MalformedKey`] if it is not a valid point.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, CryptoError> {
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| CryptoError::MalformedKey)?;
        if key.is_weak() {
            return Err(CryptoError::MalformedKey);
        }
        Ok(PublicKey(bytes))
    }

    /// The public key value `[public-key [ecc [curve Ed25519] [flags eddsa] [q …]]]`.
    pub fn to_value<R>(&self) -> Value<R> {
        let l = |items: Vec<Value<R>>| Value::List(items);
        l(vec![
            Value::sym("public-key"),
            l(vec![
                Value::sym("ecc"),
                l(vec![Value::sym("curve"), Value::sym("Ed25519")]),
                l(vec![Value::sym("flags"), Value::sym("eddsa")]),
                l(vec![Value::sym("q"), Value::bytes(self.0.to_vec())]),
            ]),
        ])
    }

    /// Parses a public key value (exactly the form above, nothing extra).
    ///
    /// # Errors
    /// [`CryptoError::MalformedKey`].
    pub fn from_value<R>(v: &Value<R>) -> Result<Self, CryptoError> {
        let parse = || -> Option<[u8; 32]> {
            let [tag, ecc] = v.as_list()? else {
                return None;
            };
            if tag.as_symbol()? != "public-key" {
                return None;
            }
            let [ecc_tag, curve, flags, q] = ecc.as_list()? else {
                return None;
            };
            if ecc_tag.as_symbol()? != "ecc"
                || !sym_pair(curve, "curve", "Ed25519")
                || !sym_pair(flags, "flags", "eddsa")
            {
                return None;
            }
            bytes_field(q, "q")
        };
        PublicKey::from_bytes(parse().ok_or(CryptoError::MalformedKey)?)
    }

    /// This key's Public Identifier.
    pub fn public_id(&self) -> PublicId {
        let enc = pola_syrup::encode(&self.to_value());
        PublicId(sha256(&sha256(&enc)))
    }

    /// Verifies `signature` over the canonical encoding of `value`.
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`].
    pub(crate) fn verify_value(
        &self,
        value: &Value,
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| CryptoError::MalformedKey)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(&pola_syrup::encode(value), &sig)
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// An Ed25519 signature (`r ‖ s`, 64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature([u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex(&self.0))
    }
}

impl Signature {
    /// The raw 64 bytes (`r ‖ s`).
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// Wraps raw signature bytes (not verified).
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// The signature value `[sig-val [eddsa [r …] [s …]]]`.
    pub fn to_value<R>(&self) -> Value<R> {
        let (r, s) = self.0.split_at(32);
        Value::List(vec![
            Value::sym("sig-val"),
            Value::List(vec![
                Value::sym("eddsa"),
                Value::List(vec![Value::sym("r"), Value::bytes(r.to_vec())]),
                Value::List(vec![Value::sym("s"), Value::bytes(s.to_vec())]),
            ]),
        ])
    }

    /// Parses a signature value.
    ///
    /// # Errors
    /// [`CryptoError::MalformedSignature`].
    pub fn from_value<R>(v: &Value<R>) -> Result<Self, CryptoError> {
        let parse = || -> Option<[u8; 64]> {
            let [tag, body] = v.as_list()? else {
                return None;
            };
            if tag.as_symbol()? != "sig-val" {
                return None;
            }
            let [alg, r, s] = body.as_list()? else {
                return None;
            };
            if alg.as_symbol()? != "eddsa" {
                return None;
            }
            let r: [u8; 32] = bytes_field(r, "r")?;
            let s: [u8; 32] = bytes_field(s, "s")?;
            let mut out = [0u8; 64];
            out[..32].copy_from_slice(&r);
            out[32..].copy_from_slice(&s);
            Some(out)
        };
        parse()
            .map(Signature)
            .ok_or(CryptoError::MalformedSignature)
    }
}

/// The Public Identifier of one side of a session (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicId(pub [u8; 32]);

/// A Session ID, the same on both sides (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub [u8; 32]);

impl fmt::Debug for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicId({})", hex(&self.0))
    }
}
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", hex(&self.0))
    }
}

impl SessionId {
    /// Derives the Session ID from both sides' Public Identifiers (order
    /// does not matter).
    pub fn derive(a: &PublicId, b: &PublicId) -> Self {
        let (lo, hi) = if a.0 <= b.0 { (a, b) } else { (b, a) };
        let mut buf = Vec::with_capacity(69);
        buf.extend_from_slice(b"prot0");
        buf.extend_from_slice(&lo.0);
        buf.extend_from_slice(&hi.0);
        SessionId(sha256(&sha256(&buf)))
    }
}

/// This side's key pair for one session. Built from a caller-supplied seed;
/// use a fresh seed for every session.
pub struct SessionKeys {
    signing: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// The key pair whose Ed25519 secret seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let public = PublicKey(signing.verifying_key().to_bytes());
        SessionKeys { signing, public }
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs the canonical encoding of `value`.
    pub fn sign_value(&self, value: &Value) -> Signature {
        Signature(self.signing.sign(&pola_syrup::encode(value)).to_bytes())
    }

    /// The signature for `op:start-session`: over `<my-location LOC>`.
    pub fn sign_location(&self, location: &PeerLocator) -> Signature {
        self.sign_value(&my_location(location))
    }
}

/// `<my-location LOC>`, the value the start-session signature covers
/// (the suite's and the guide's reading; DIGEST section 6).
pub fn my_location(location: &PeerLocator) -> Value {
    Value::record("my-location", vec![location.to_value()])
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::locator::Hints;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn digest_test_vectors() {
        let a = SessionKeys::from_seed([0; 32]);
        let b = SessionKeys::from_seed([1; 32]);
        assert_eq!(
            hex(a.public().as_bytes()),
            "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
        );
        let enc = pola_syrup::encode(&a.public().to_value());
        assert_eq!(enc.len(), 96);
        assert_eq!(
            enc,
            unhex(
                "5b3130277075626c69632d6b65795b33276563635b352763757276653727456432
                 353531395d5b3527666c616773352765646473615d5b31277133323a3b6a27bc
                 ceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da295d5d5d"
            )
        );
        let ida = a.public().public_id();
        let idb = b.public().public_id();
        assert_eq!(
            hex(&ida.0),
            "739d8b53677170739304a8b4feb6eb98f4ed24845059afb375981734e4a36e8b"
        );
        assert_eq!(
            hex(&idb.0),
            "2d286aaab4800a1019d650b42e4e6b34042748b08fa2bdaf7b6583c780825355"
        );
        let sid = SessionId::derive(&ida, &idb);
        assert_eq!(sid, SessionId::derive(&idb, &ida));
        assert_eq!(
            hex(&sid.0),
            "48c865c21a552779341e64bca260d4550865fd12fa5471d115579d296fda18db"
        );

        let mut m = BTreeMap::new();
        m.insert("host".to_owned(), "127.0.0.1".to_owned());
        m.insert("port".to_owned(), "22045".to_owned());
        let loc = PeerLocator::new(
            "tcp-testing-only",
            "a2ef69ddd5f84840970612ff660f5058",
            Hints::Map(m),
        )
        .unwrap();
        assert_eq!(
            pola_syrup::encode(&my_location(&loc)),
            b"<11'my-location<10'ocapn-peer16'tcp-testing-only32\"a2ef69ddd5f84840970612ff660f5058{4\"host9\"127.0.0.14\"port5\"22045}>>".to_vec()
        );
        let sig = a.sign_location(&loc);
        assert_eq!(
            hex(sig.as_bytes()),
            "a8f61d7a24b3c395a12efa841ae96b586e5540ad0261107c566c0e9f5d38ddb3\
             1fed5b5fee13e76a41f8fb5ffcbe5045501acb188b6af73e8e0f9ca45c0a670f"
        );
        assert!(a.public().verify_value(&my_location(&loc), &sig).is_ok());
        assert_eq!(
            b.public().verify_value(&my_location(&loc), &sig),
            Err(CryptoError::BadSignature)
        );
        let sv: Value = sig.to_value();
        assert_eq!(pola_syrup::encode(&sv).len(), 100);
        assert_eq!(Signature::from_value(&sv).unwrap(), sig);
        assert_eq!(
            PublicKey::from_value(&a.public().to_value::<pola_syrup::NoRef>()).unwrap(),
            *a.public()
        );
    }

    #[test]
    fn malformed_keys_and_signatures_are_refused() {
        let good: Value = SessionKeys::from_seed([7; 32]).public().to_value();
        let mut extra = good.clone();
        if let Value::List(l) = &mut extra {
            l.push(Value::Bool(true));
        }
        assert!(PublicKey::from_value(&extra).is_err());
        assert!(PublicKey::from_value::<pola_syrup::NoRef>(&Value::Bool(false)).is_err());
        // The identity point is a weak key.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(PublicKey::from_bytes(id).is_err());
        assert!(Signature::from_value(&good).is_err());
    }
}
