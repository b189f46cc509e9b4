//! The data model: [`Value`], pola's one value type.
//!
//! A `Value` is exactly Syrup's data model (booleans, arbitrary-size integers,
//! single and double floats, byte strings, strings, symbols, lists,
//! dictionaries, sets, records) plus one extra variant, [`Value::Ref`], which
//! carries a *reference* (a capability) of the caller's choosing. The `syrup`
//! layer never creates a reference and cannot encode one: the type parameter
//! `R` defaults to [`NoRef`], an empty type, so plain data has no reference
//! variant at all. Higher layers pick their own `R` (the vat runtime its live
//! references, CapTP its descriptors, the caplet SDK its handles) and convert
//! with [`Value::try_map_refs`].
//!
//! OCapN's model types that Syrup has no byte form for (null, undefined,
//! tagged values, errors) are written as the records Endo writes
//! (`<null>`, `<void>`, `<desc:tagged 'tag value>`, `<desc:error "msg">`);
//! see the constructors [`Value::null`], [`Value::undefined`],
//! [`Value::tagged`] and [`Value::error`].
//!
//! Invariants (upheld by the constructors and the decoder):
//! - [`Int`] is normalised: a value that fits in `i64` is always
//!   [`Int::Small`], so derived equality and ordering are value equality.
//! - Floats are kept as their IEEE bit patterns, so NaN payloads, −0 and
//!   infinities round-trip bit-exactly and equality is bit equality.
//! - Dictionaries and sets are ordered maps; *canonical* (encoded-byte) order
//!   is applied when encoding, and the decoder rejects input not in it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use num_bigint::BigInt;
use num_traits::ToPrimitive;

/// The empty reference type: plain data, which can hold no capability.
///
/// `Value<NoRef>` (the default) is what decoding produces and what encoding
/// accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoRef {}

/// An arbitrary-size integer, normalised so that every value that fits in
/// `i64` is [`Int::Small`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Int {
    /// A value in `i64` range.
    Small(i64),
    /// A value outside `i64` range (never one inside it).
    Big(BigInt),
}

impl Int {
    /// Builds a normalised integer from a big integer.
    pub fn from_big(b: BigInt) -> Self {
        match b.to_i64() {
            Some(i) => Int::Small(i),
            None => Int::Big(b),
        }
    }

    /// The value as `i64`, if it fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Int::Small(i) => Some(*i),
            Int::Big(_) => None,
        }
    }

    /// The value as a big integer.
    pub fn to_big(&self) -> BigInt {
        match self {
            Int::Small(i) => BigInt::from(*i),
            Int::Big(b) => b.clone(),
        }
    }
}

impl PartialOrd for Int {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Int {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Int::Small(a), Int::Small(b)) => a.cmp(b),
            _ => self.to_big().cmp(&other.to_big()),
        }
    }
}

impl From<i64> for Int {
    fn from(i: i64) -> Self {
        Int::Small(i)
    }
}

impl From<u64> for Int {
    fn from(u: u64) -> Self {
        match i64::try_from(u) {
            Ok(i) => Int::Small(i),
            Err(_) => Int::Big(BigInt::from(u)),
        }
    }
}

impl From<BigInt> for Int {
    fn from(b: BigInt) -> Self {
        Int::from_big(b)
    }
}

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Int::Small(i) => write!(f, "{i}"),
            Int::Big(b) => write!(f, "{b}"),
        }
    }
}

/// A record: a label and its fields, `<label field …>` on the wire.
///
/// Every CapTP message is a record with a symbol label.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record<R = NoRef> {
    /// The label; CapTP uses symbols, raw Syrup allows any value.
    pub label: Value<R>,
    /// The fields in order.
    pub fields: Vec<Value<R>>,
}

/// One Syrup value, possibly holding references of type `R`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value<R = NoRef> {
    /// `t` / `f`.
    Bool(bool),
    /// `N+` / `N-`, any size.
    Int(Int),
    /// `F` + 4 bytes big-endian: an IEEE single, kept as its bit pattern.
    Float32(u32),
    /// `D` + 8 bytes big-endian: an IEEE double, kept as its bit pattern.
    Float64(u64),
    /// `N:bytes`: a byte string.
    Bytes(Bytes),
    /// `N"utf8`: a string (well-formed UTF-8).
    String(String),
    /// `N'utf8`: a symbol (well-formed UTF-8, a different type from strings).
    Symbol(String),
    /// `[…]`: a list (sequence).
    List(Vec<Value<R>>),
    /// `{k v …}`: a dictionary with unique keys.
    Dict(BTreeMap<Value<R>, Value<R>>),
    /// `#…$`: a set of unique members.
    Set(BTreeSet<Value<R>>),
    /// `<label fields…>`: a record.
    Record(Box<Record<R>>),
    /// A reference (capability). Has no Syrup form of its own: the layer that
    /// owns `R` decides how it crosses a boundary.
    Ref(R),
}

impl<R> Value<R> {
    /// A double from an `f64` (bit pattern kept exactly).
    pub fn f64(x: f64) -> Self {
        Value::Float64(x.to_bits())
    }

    /// A symbol.
    pub fn sym(s: impl Into<String>) -> Self {
        Value::Symbol(s.into())
    }

    /// A string.
    pub fn str(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }

    /// A byte string.
    pub fn bytes(b: impl Into<Bytes>) -> Self {
        Value::Bytes(b.into())
    }

    /// An integer.
    pub fn int(i: impl Into<Int>) -> Self {
        Value::Int(i.into())
    }

    /// A record `<label fields…>` with a symbol label.
    pub fn record(label: impl Into<String>, fields: Vec<Value<R>>) -> Self {
        Value::Record(Box::new(Record {
            label: Value::Symbol(label.into()),
            fields,
        }))
    }

    /// OCapN null, written `<null>`.
    pub fn null() -> Self {
        Value::record("null", Vec::new())
    }

    /// OCapN undefined, written `<void>`.
    pub fn undefined() -> Self {
        Value::record("void", Vec::new())
    }

    /// An OCapN tagged value, written `<desc:tagged 'tag value>`.
    pub fn tagged(tag: impl Into<String>, value: Value<R>) -> Self {
        Value::record("desc:tagged", vec![Value::Symbol(tag.into()), value])
    }

    /// An OCapN error, written `<desc:error "message">`.
    pub fn error(message: impl Into<String>) -> Self {
        Value::record("desc:error", vec![Value::String(message.into())])
    }

    /// The symbol's text, if this is a symbol.
    pub fn as_symbol(&self) -> Option<&str> {
        match self {
            Value::Symbol(s) => Some(s),
            _ => None,
        }
    }

    /// The string's text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer as `i64`, if this is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => i.as_i64(),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The list items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<R>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The reference, if this is one.
    pub fn as_ref(&self) -> Option<&R> {
        match self {
            Value::Ref(r) => Some(r),
            _ => None,
        }
    }

    /// The record, if this is one.
    pub fn as_record(&self) -> Option<&Record<R>> {
        match self {
            Value::Record(r) => Some(r),
            _ => None,
        }
    }

    /// The record's fields if this is a record whose label is the symbol
    /// `label`.
    pub fn as_record_labelled(&self, label: &str) -> Option<&[Value<R>]> {
        match self {
            Value::Record(r) if r.label.as_symbol() == Some(label) => Some(&r.fields),
            _ => None,
        }
    }

    /// The number of values in this one, counting every atom and container
    /// at every depth (a reference counts as one). Walks with its own
    /// stack, so a deep value cannot exhaust the caller's.
    pub fn count(&self) -> usize {
        let mut count = 0usize;
        self.walk(&mut |_| count = count.saturating_add(1));
        count
    }

    /// Roughly the bytes of memory this value occupies once decoded: a
    /// fixed size per value (the enum itself, plus its share of the
    /// collection holding it: a vector slot, a B-tree node's key and value,
    /// a record's box) and the bytes of its strings, symbols, byte strings
    /// and big integers.
    ///
    /// A Syrup value's encoded size says little about this: one input byte
    /// (`t`) becomes one in-memory value of several dozen bytes. Hosts
    /// charge what a stranger's value costs them by this measure.
    pub fn footprint(&self) -> usize {
        let per_value = std::mem::size_of::<Value<R>>().saturating_mul(2);
        let mut bytes = 0usize;
        self.walk(&mut |v| {
            let own = match v {
                Value::Bytes(b) => b.len(),
                Value::String(s) | Value::Symbol(s) => s.len(),
                Value::Int(Int::Big(b)) => usize::try_from(b.bits() / 8).unwrap_or(usize::MAX),
                _ => 0,
            };
            bytes = bytes.saturating_add(per_value).saturating_add(own);
        });
        bytes
    }

    /// Visits every value at every depth, containers before their
    /// contents, without recursing.
    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Value<R>)) {
        let mut stack = vec![self];
        while let Some(v) = stack.pop() {
            f(v);
            match v {
                Value::List(items) => stack.extend(items.iter()),
                Value::Set(items) => stack.extend(items.iter()),
                Value::Dict(d) => {
                    for (k, v) in d {
                        stack.push(k);
                        stack.push(v);
                    }
                }
                Value::Record(r) => {
                    stack.push(&r.label);
                    stack.extend(r.fields.iter());
                }
                _ => {}
            }
        }
    }

    /// Whether this value holds any reference, at any depth.
    pub fn has_refs(&self) -> bool {
        match self {
            Value::Ref(_) => true,
            Value::List(l) => l.iter().any(Value::has_refs),
            Value::Dict(d) => d.iter().any(|(k, v)| k.has_refs() || v.has_refs()),
            Value::Set(s) => s.iter().any(Value::has_refs),
            Value::Record(r) => r.label.has_refs() || r.fields.iter().any(Value::has_refs),
            _ => false,
        }
    }

    /// Visits every reference in the value, depth first, in order.
    pub fn for_each_ref(&self, f: &mut impl FnMut(&R)) {
        match self {
            Value::Ref(r) => f(r),
            Value::List(l) => l.iter().for_each(|v| v.for_each_ref(f)),
            Value::Dict(d) => d.iter().for_each(|(k, v)| {
                k.for_each_ref(f);
                v.for_each_ref(f);
            }),
            Value::Set(s) => s.iter().for_each(|v| v.for_each_ref(f)),
            Value::Record(r) => {
                r.label.for_each_ref(f);
                r.fields.iter().for_each(|v| v.for_each_ref(f));
            }
            _ => {}
        }
    }

    /// Rebuilds the value with every reference replaced by `f(reference)`,
    /// which may be any value (for example a descriptor record, or a
    /// reference of another type). Stops at the first error.
    ///
    /// Needs `S: Ord` because dictionary keys and set members are rebuilt.
    ///
    /// # Errors
    /// The first error `f` returns.
    pub fn try_map_refs<S: Ord, E>(
        self,
        f: &mut impl FnMut(R) -> Result<Value<S>, E>,
    ) -> Result<Value<S>, E> {
        Ok(match self {
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Float32(x) => Value::Float32(x),
            Value::Float64(x) => Value::Float64(x),
            Value::Bytes(b) => Value::Bytes(b),
            Value::String(s) => Value::String(s),
            Value::Symbol(s) => Value::Symbol(s),
            Value::List(l) => Value::List(
                l.into_iter()
                    .map(|v| v.try_map_refs(f))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Dict(d) => {
                let mut out = BTreeMap::new();
                for (k, v) in d {
                    out.insert(k.try_map_refs(f)?, v.try_map_refs(f)?);
                }
                Value::Dict(out)
            }
            Value::Set(s) => Value::Set(
                s.into_iter()
                    .map(|v| v.try_map_refs(f))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Record(r) => {
                let Record { label, fields } = *r;
                Value::Record(Box::new(Record {
                    label: label.try_map_refs(f)?,
                    fields: fields
                        .into_iter()
                        .map(|v| v.try_map_refs(f))
                        .collect::<Result<_, _>>()?,
                }))
            }
            Value::Ref(r) => f(r)?,
        })
    }
}

impl Value<NoRef> {
    /// Rebuilds plain data as a value with references, the inverse of
    /// [`Value::try_map_refs`] for formats that write a reference as a
    /// record (CapTP descriptors, caplet handles): every node, outermost
    /// first, is shown to `f`; where it answers `Some(r)` the node becomes
    /// `Value::Ref(r)`, otherwise its children are visited in turn.
    ///
    /// # Errors
    /// The first error `f` returns.
    pub fn try_lift_refs<S: Ord, E>(
        self,
        f: &mut impl FnMut(&Value) -> Result<Option<S>, E>,
    ) -> Result<Value<S>, E> {
        if let Some(r) = f(&self)? {
            return Ok(Value::Ref(r));
        }
        Ok(match self {
            Value::List(l) => Value::List(
                l.into_iter()
                    .map(|v| v.try_lift_refs(f))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Dict(d) => {
                let mut out = BTreeMap::new();
                for (k, v) in d {
                    out.insert(k.try_lift_refs(f)?, v.try_lift_refs(f)?);
                }
                Value::Dict(out)
            }
            Value::Set(s) => Value::Set(
                s.into_iter()
                    .map(|v| v.try_lift_refs(f))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Record(r) => {
                let Record { label, fields } = *r;
                Value::Record(Box::new(Record {
                    label: label.try_lift_refs(f)?,
                    fields: fields
                        .into_iter()
                        .map(|v| v.try_lift_refs(f))
                        .collect::<Result<_, _>>()?,
                }))
            }
            leaf => leaf.with_refs(),
        })
    }

    /// Widens plain data to a value type with references (a free
    /// conversion: plain data holds none).
    pub fn with_refs<S: Ord>(self) -> Value<S> {
        match self.try_map_refs::<S, std::convert::Infallible>(&mut |r| match r {}) {
            Ok(v) => v,
            Err(e) => match e {},
        }
    }
}

impl<R> From<bool> for Value<R> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl<R> From<i64> for Value<R> {
    fn from(i: i64) -> Self {
        Value::Int(Int::Small(i))
    }
}

impl<R> From<&str> for Value<R> {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl<R> From<String> for Value<R> {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl<R> From<Vec<Value<R>>> for Value<R> {
    fn from(l: Vec<Value<R>>) -> Self {
        Value::List(l)
    }
}
