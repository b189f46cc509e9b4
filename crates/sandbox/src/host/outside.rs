//! What a caplet's host sees of the world outside it: [`Outside`], chosen
//! by the embedder (the vat runtime, or a test world).

use std::fmt;

use pola_syrup::Value;

/// The world outside a caplet, as its host sees it.
///
/// The sandbox calls these methods while the caplet runs (from inside its
/// host functions), so an implementation must not call back into the same
/// caplet instance; queue work for a later turn instead.
pub trait Outside: 'static {
    /// A reference to something outside the caplet: an object, a promise,
    /// or a promise's resolver. Chosen by the embedder (the vat runtime's
    /// references, or anything else).
    type Ref: Clone + Ord + fmt::Debug + 'static;

    /// An eventual send with an answer; returns a promise for the answer.
    ///
    /// # Errors
    /// [`Refused`] if the message cannot be sent; the caplet sees
    /// [`Code::Refused`](crate::abi::Code::Refused).
    fn send(&mut self, target: &Self::Ref, message: Value<Self::Ref>)
    -> Result<Self::Ref, Refused>;

    /// An eventual send with no answer.
    ///
    /// # Errors
    /// [`Refused`] if the message cannot be sent.
    fn send_only(&mut self, target: &Self::Ref, message: Value<Self::Ref>) -> Result<(), Refused>;

    /// Settles a promise through its resolver: `Ok(value)` fulfils it,
    /// `Err(reason)` breaks it. Called by the caplet's `resolve` and
    /// `break_promise`, and by the host itself when a delivery fails or an
    /// instance dies holding resolvers.
    fn settle(&mut self, resolver: Self::Ref, outcome: Result<Value<Self::Ref>, Value<Self::Ref>>);

    /// The host breaks a promise on the caplet's behalf: its delivery
    /// failed, its instance died holding the resolver, or it dropped the
    /// resolver. Unlike [`Outside::settle`] this is never the caplet's own
    /// choice, so an embedder with transactional turns should apply it even
    /// when it discards the caplet's other effects. Defaults to `settle`.
    fn abandon(&mut self, resolver: Self::Ref, reason: Value<Self::Ref>) {
        self.settle(resolver, Err(reason));
    }

    /// The caplet asks to hear when `promise` settles: arrange for
    /// [`crate::CapletInstance::notify`] to be called with `tag` later
    /// (never from
    /// inside this call). The default refuses.
    ///
    /// # Errors
    /// [`Refused`] if notifications are not supported.
    fn when(&mut self, promise: &Self::Ref, tag: i64) -> Result<(), Refused> {
        let _ = (promise, tag);
        Err(Refused)
    }

    /// Whether the embedder wants the running entry stopped: checked at
    /// every host call the caplet makes; when it says yes, the call fails
    /// with [`Code::Exhausted`](crate::abi::Code::Exhausted) and the entry ends as
    /// [`crate::CallError::OutOfFuel`] (its effects discarded, the
    /// instance dead).
    /// This is how an embedder stops a caplet mid-entry (see
    /// [`crate::vat::Stopper`]); an entry that makes no host call runs on
    /// until its fuel or wall-clock limit. Defaults to never.
    fn should_stop(&self) -> bool {
        false
    }
}

/// The outside world declined an operation (the caplet sees
/// [`Code::Refused`](crate::abi::Code::Refused)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused")]
pub struct Refused;
