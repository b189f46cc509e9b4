//! The error for a value that does not have the shape the protocol
//! requires: the one error of parsing messages ([`crate::wire`]) and the
//! records inside them (handoff certificates, [`crate::handoff`]).
//!
//! It sits below both, so the certificates' parsers need nothing from the
//! message layer that contains them.

/// A message or descriptor that does not have the shape the protocol
/// requires. The `Display` text is short and names no host detail; it is
/// what goes into `op:abort`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The top-level value is not a record with a symbol label.
    #[error("message is not an operation record")]
    NotAnOp,
    /// The label is not an operation we know.
    #[error("unknown operation")]
    UnknownOp,
    /// A record has the wrong number of fields.
    #[error("wrong number of fields in {0}")]
    Arity(&'static str),
    /// A field has the wrong type or value.
    #[error("bad field {0}")]
    Field(&'static str),
    /// A descriptor record is malformed, or a descriptor of the wrong kind
    /// appears where another is required.
    #[error("bad descriptor {0}")]
    Descriptor(&'static str),
}
