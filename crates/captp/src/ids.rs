//! Identifier newtypes. Each says who allocates it.
//!
//! | type | allocated by | meaning |
//! | --- | --- | --- |
//! | [`ExportPosition`] | us | a slot in our export table (the peer imports it) |
//! | [`QuestionPosition`] | us | an answer position we chose on the peer for our question |
//! | [`ImportPosition`] | the peer | a slot in the peer's export table that we import |
//! | [`AnswerPosition`] | the peer | an answer position the peer chose on us |
//! | [`LocalId`] | the local side (vat) | an opaque name for one of our objects |
//! | [`GiftTicket`] | the caller of `redeem_gift` (the endpoint) | names a withdrawal parked until its gift is deposited |
//! | [`Position`] | nobody in particular | a position as written on the wire, before the session knows whose it is |

use std::fmt;

macro_rules! position {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The number as written on the wire.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

position!(
    /// A slot in **our** export table. We allocate these (monotonically,
    /// never reused); position 0 is our bootstrap object.
    ExportPosition
);
position!(
    /// An answer position **we** chose on the peer for a question we asked.
    QuestionPosition
);
position!(
    /// A slot in the **peer's** export table that we import. The peer
    /// allocates these.
    ImportPosition
);
position!(
    /// An answer position the **peer** chose on us for its question.
    AnswerPosition
);

/// A raw position as written inside a descriptor or message, before the
/// session has decided whose table it names. Wire types use this; the session
/// turns it into one of the owned position types at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(pub u64);

impl From<ExportPosition> for Position {
    fn from(p: ExportPosition) -> Self {
        Position(p.0)
    }
}
impl From<ImportPosition> for Position {
    fn from(p: ImportPosition) -> Self {
        Position(p.0)
    }
}
impl From<QuestionPosition> for Position {
    fn from(p: QuestionPosition) -> Self {
        Position(p.0)
    }
}
impl From<AnswerPosition> for Position {
    fn from(p: AnswerPosition) -> Self {
        Position(p.0)
    }
}

/// An opaque identifier for one of the local side's objects, chosen by the
/// local side (the vat). The session never interprets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalId(pub u64);

/// A ticket the caller chooses when it redeems a gift
/// ([`Session::redeem_gift`](crate::Session::redeem_gift); the
/// [`Endpoint`](crate::endpoint::Endpoint) mints its own): a withdrawal
/// that must wait for its gift is parked under it, and the session hands it
/// back in [`Event::GiftReady`](crate::Event::GiftReady) or
/// [`Event::GiftWithdrawalBroken`](crate::Event::GiftWithdrawalBroken). The
/// session never interprets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GiftTicket(pub u64);
