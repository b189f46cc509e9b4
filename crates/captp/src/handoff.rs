//! Third-party handoff certificates (DIGEST section 13).
//!
//! ```text
//! <desc:handoff-give receiver-key exporter-location session gifter-side gift-id>
//! <desc:handoff-receive receiving-session receiving-side handoff-count signed-give>
//! <desc:sig-envelope signed signature>
//! ```
//!
//! The types here are plain data with exact parse/build. Checking them is
//! done by the sessions involved (see `Session::verify_withdraw` and
//! `Session::redeem_gift`); a passed check yields a proof value
//! ([`VerifiedReceive`], [`VerifiedGive`]) only this crate can create.

use bytes::Bytes;
use pola_syrup::Value;

use crate::crypto::{PublicId, PublicKey, SessionId, SessionKeys, Signature};
use crate::locator::PeerLocator;
use crate::shape::WireError;

/// A gift id: 32 random bytes in the current text; any byte array (and, for
/// older peers, a non-negative integer) is accepted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GiftId {
    /// A byte-array id (what we emit).
    Bytes(Bytes),
    /// A legacy integer id.
    Int(u64),
}

impl GiftId {
    pub(crate) fn to_value<R>(&self) -> Value<R> {
        match self {
            GiftId::Bytes(b) => Value::Bytes(b.clone()),
            GiftId::Int(i) => Value::int(*i),
        }
    }

    pub(crate) fn from_value<R>(v: &Value<R>) -> Result<Self, WireError> {
        match v {
            Value::Bytes(b) => Ok(GiftId::Bytes(b.clone())),
            Value::Int(i) => i
                .as_i64()
                .and_then(|i| u64::try_from(i).ok())
                .map(GiftId::Int)
                .ok_or(WireError::Field("gift-id")),
            _ => Err(WireError::Field("gift-id")),
        }
    }
}

/// `<desc:handoff-give …>`: the gifter's certificate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandoffGive {
    /// The receiver's public key on the gifter–receiver session.
    pub receiver_key: PublicKey,
    /// The exporter's locator, exactly as the exporter announced it.
    pub exporter_location: PeerLocator,
    /// Session ID of the gifter–exporter session.
    pub session: SessionId,
    /// The gifter's Public Identifier on the gifter–exporter session.
    pub gifter_side: PublicId,
    /// The id the gift was deposited under.
    pub gift_id: GiftId,
}

/// `<desc:handoff-receive …>`: the receiver's redemption certificate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandoffReceive {
    /// Session ID of the exporter–receiver session.
    pub receiving_session: SessionId,
    /// The receiver's Public Identifier on the exporter–receiver session.
    pub receiving_side: PublicId,
    /// A count never used before by this receiver on that session.
    pub handoff_count: u64,
    /// The gifter's signed certificate, unchanged.
    pub signed_give: SignedGive,
}

/// A signed [`HandoffGive`] (`<desc:sig-envelope give sig>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedGive {
    /// The certificate.
    pub give: HandoffGive,
    /// The gifter's signature with its gifter–exporter key.
    pub signature: Signature,
}

/// A signed [`HandoffReceive`] (`<desc:sig-envelope receive sig>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedReceive {
    /// The certificate.
    pub receive: HandoffReceive,
    /// The receiver's signature with its gifter–receiver key.
    pub signature: Signature,
}

fn id32<R>(v: &Value<R>, field: &'static str) -> Result<[u8; 32], WireError> {
    v.as_bytes()
        .and_then(|b| <[u8; 32]>::try_from(b.as_ref()).ok())
        .ok_or(WireError::Field(field))
}

fn bytes32(b: &[u8; 32]) -> Value {
    Value::bytes(b.to_vec())
}

impl HandoffGive {
    /// The Syrup form (what gets signed).
    pub fn to_value(&self) -> Value {
        Value::record(
            "desc:handoff-give",
            vec![
                self.receiver_key.to_value(),
                self.exporter_location.to_value(),
                bytes32(&self.session.0),
                bytes32(&self.gifter_side.0),
                self.gift_id.to_value(),
            ],
        )
    }

    /// Parses the Syrup form.
    ///
    /// # Errors
    /// [`WireError`] on any shape error.
    pub fn from_value<R>(v: &Value<R>) -> Result<Self, WireError> {
        let f = v
            .as_record_labelled("desc:handoff-give")
            .ok_or(WireError::Descriptor("desc:handoff-give"))?;
        let [key, loc, session, gifter, gift] = f else {
            return Err(WireError::Arity("desc:handoff-give"));
        };
        Ok(HandoffGive {
            receiver_key: PublicKey::from_value(key)
                .map_err(|_| WireError::Field("receiver-key"))?,
            exporter_location: PeerLocator::from_value(loc)
                .map_err(|_| WireError::Field("exporter-location"))?,
            session: SessionId(id32(session, "session")?),
            gifter_side: PublicId(id32(gifter, "gifter-side")?),
            gift_id: GiftId::from_value(gift)?,
        })
    }

    /// Signs this certificate with the gifter's key from the
    /// gifter–exporter session.
    pub fn sign(self, gifter_exporter_keys: &SessionKeys) -> SignedGive {
        let signature = gifter_exporter_keys.sign_value(&self.to_value());
        SignedGive {
            give: self,
            signature,
        }
    }
}

impl SignedGive {
    /// The Syrup form `<desc:sig-envelope give sig>`.
    pub fn to_value(&self) -> Value {
        Value::record(
            "desc:sig-envelope",
            vec![self.give.to_value(), self.signature.to_value()],
        )
    }
}

impl HandoffReceive {
    /// The Syrup form (what gets signed).
    pub fn to_value(&self) -> Value {
        Value::record(
            "desc:handoff-receive",
            vec![
                bytes32(&self.receiving_session.0),
                bytes32(&self.receiving_side.0),
                Value::int(self.handoff_count),
                self.signed_give.to_value(),
            ],
        )
    }

    /// Parses the Syrup form.
    ///
    /// # Errors
    /// [`WireError`] on any shape error.
    pub fn from_value<R>(v: &Value<R>) -> Result<Self, WireError> {
        let f = v
            .as_record_labelled("desc:handoff-receive")
            .ok_or(WireError::Descriptor("desc:handoff-receive"))?;
        let [session, side, count, give] = f else {
            return Err(WireError::Arity("desc:handoff-receive"));
        };
        let handoff_count = count
            .as_i64()
            .and_then(|c| u64::try_from(c).ok())
            .ok_or(WireError::Field("handoff-count"))?;
        let signed_give = match parse_envelope(give)? {
            Envelope::Give(g) => g,
            Envelope::Receive(_) => return Err(WireError::Field("signed-give")),
        };
        Ok(HandoffReceive {
            receiving_session: SessionId(id32(session, "receiving-session")?),
            receiving_side: PublicId(id32(side, "receiving-side")?),
            handoff_count,
            signed_give,
        })
    }

    /// Signs this certificate with the receiver's key from the
    /// gifter–receiver session.
    pub fn sign(self, gifter_receiver_keys: &SessionKeys) -> SignedReceive {
        let signature = gifter_receiver_keys.sign_value(&self.to_value());
        SignedReceive {
            receive: self,
            signature,
        }
    }
}

impl SignedReceive {
    /// The Syrup form `<desc:sig-envelope receive sig>`.
    pub fn to_value(&self) -> Value {
        Value::record(
            "desc:sig-envelope",
            vec![self.receive.to_value(), self.signature.to_value()],
        )
    }
}

/// What a `desc:sig-envelope` holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Envelope {
    /// A signed handoff-give.
    Give(SignedGive),
    /// A signed handoff-receive.
    Receive(SignedReceive),
}

/// Parses `<desc:sig-envelope signed sig>` holding a give or a receive.
///
/// # Errors
/// [`WireError`] on any shape error or an unknown enveloped record.
pub fn parse_envelope<R>(v: &Value<R>) -> Result<Envelope, WireError> {
    let f = v
        .as_record_labelled("desc:sig-envelope")
        .ok_or(WireError::Descriptor("desc:sig-envelope"))?;
    let [signed, sig] = f else {
        return Err(WireError::Arity("desc:sig-envelope"));
    };
    let signature = Signature::from_value(sig).map_err(|_| WireError::Field("signature"))?;
    let label = signed
        .as_record()
        .and_then(|r| r.label.as_symbol())
        .ok_or(WireError::Field("signed"))?;
    match label {
        "desc:handoff-give" => Ok(Envelope::Give(SignedGive {
            give: HandoffGive::from_value(signed)?,
            signature,
        })),
        "desc:handoff-receive" => Ok(Envelope::Receive(SignedReceive {
            receive: HandoffReceive::from_value(signed)?,
            signature,
        })),
        _ => Err(WireError::Field("signed")),
    }
}

/// Proof that a `withdraw-gift` request passed every check the exporter–
/// receiver session can make (receive signature under the give's receiver
/// key, receiving session and side, fresh handoff count). Only this crate
/// creates it; [`crate::Session::redeem_gift`] on the gifter–exporter session
/// requires it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceive {
    pub(crate) signed_give: SignedGive,
}

impl VerifiedReceive {
    /// The gifter's certificate carried inside.
    pub fn give(&self) -> &HandoffGive {
        &self.signed_give.give
    }
}

/// Proof that a gift certificate was signed by the gifter's key on the
/// gifter–exporter session and names that session. Only this crate creates
/// it.
#[derive(Debug, Clone)]
pub struct VerifiedGive {
    pub(crate) gift_id: GiftId,
}

impl VerifiedGive {
    /// The gift id the certificate names.
    pub fn gift_id(&self) -> &GiftId {
        &self.gift_id
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crypto::hex;
    use crate::locator::Hints;

    #[test]
    fn digest_handoff_vectors() {
        let a = SessionKeys::from_seed([0; 32]);
        let b = SessionKeys::from_seed([1; 32]);
        let mut m = BTreeMap::new();
        m.insert("host".to_owned(), "127.0.0.1".to_owned());
        m.insert("port".to_owned(), "22046".to_owned());
        let give = HandoffGive {
            receiver_key: *b.public(),
            exporter_location: PeerLocator::new("tcp-testing-only", "exporter", Hints::Map(m))
                .unwrap(),
            session: SessionId([0x11; 32]),
            gifter_side: a.public().public_id(),
            gift_id: GiftId::Bytes(Bytes::from(vec![0x22; 32])),
        };
        let enc = pola_syrup::encode(&give.to_value());
        assert_eq!(enc.len(), 299);
        assert_eq!(
            hex(&crate::crypto::sha256(&enc)),
            "521a21c2f82a593b2549d3bdbad488a5f98a84e992edf8192e6f9f4c0d6ec366"
        );
        let signed = give.sign(&a);
        assert_eq!(
            hex(signed.signature.as_bytes()),
            "e7828088b31fdcef728b14a5e5af81c0af76bacf5c352a714f5a1c3d02c3652d\
             e75c64f5d52f2f51c666c92c924fe96f6a9ecd68b08154fffcb84ad44a282401"
        );
        let receive = HandoffReceive {
            receiving_session: SessionId([0x33; 32]),
            receiving_side: b.public().public_id(),
            handoff_count: 0,
            signed_give: signed.clone(),
        };
        let enc = pola_syrup::encode(&receive.to_value());
        assert_eq!(enc.len(), 518);
        assert_eq!(
            hex(&crate::crypto::sha256(&enc)),
            "6a0b301d01dd75652665888ed0d9745a33c823c413901c95a7e2fc74bf1711ce"
        );
        let sr = receive.sign(&b);
        assert_eq!(
            hex(sr.signature.as_bytes()),
            "1ef27a5810d02d18a6b3ff6807a7d8c7f42f7032084afc3484068aa6e5514cd5\
             d19c47eee36eb71bf9c83711fc09f069dfed95776ba819f7ea0318ae0fda4f08"
        );
        assert_eq!(
            parse_envelope(&sr.to_value()).unwrap(),
            Envelope::Receive(sr.clone())
        );
        assert_eq!(
            parse_envelope(&signed.to_value()).unwrap(),
            Envelope::Give(signed)
        );
    }
}
