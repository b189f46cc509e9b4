//! Strict canonical Syrup decoding: whole-buffer ([`decode`],
//! [`decode_bytes`]) and streaming ([`Decoder`]).
//!
//! Invariants (upheld here):
//! - Only canonical input is accepted, so a decoded value re-encodes to
//!   exactly the bytes it came from.
//! - Every length read from the input is checked against [`Limits`] before
//!   it is used, and no allocation is ever sized from it.
//! - The decoder does not recurse: open containers live on an explicit
//!   stack whose height is capped by [`Limits::max_depth`].
//! - No input makes it panic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use num_bigint::BigInt;

use crate::value::{Int, NoRef, Record, Value};

/// Caps the decoder enforces on untrusted input.
///
/// Every cap is checked before the memory it guards is allocated: a length
/// prefix beyond [`max_len`](Self::max_len) is rejected as soon as its
/// marker is read, before any of the announced bytes arrive.
///
/// Change a field on the default:
/// ```
/// let mut limits = pola_syrup::Limits::default();
/// limits.max_depth = 8;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest byte string, string or symbol body, in bytes. Default 16 MiB.
    pub max_len: usize,
    /// Deepest nesting of containers (lists, dictionaries, sets, records).
    /// A top-level atom has depth 0, `[1+]` depth 1. Default 64, which is
    /// several times what any CapTP message needs. The decoder itself never
    /// recurses, but dropping, encoding or printing a [`Value`] recurses
    /// over its nesting, so keep this in the hundreds at most.
    pub max_depth: usize,
    /// Most decimal digits in an integer. Default 4096 (about 13 600 bits);
    /// caps the cost of big-integer parsing.
    pub max_int_digits: usize,
    /// Most items in one collection: list items, dictionary entries, set
    /// members, or record fields (the label included). Default 1 Mi.
    pub max_items: usize,
    /// Most values in one top-level value, counting every atom and container
    /// at every depth. Default 4 Mi. Bounds memory: one input byte (such as
    /// `t`) can become one in-memory value of several dozen bytes.
    pub max_values: usize,
    /// Most encoded bytes in one top-level value. Default 64 MiB. The
    /// streaming [`Decoder`] never buffers more than this for a value in
    /// progress.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 16 << 20,
            max_depth: 64,
            max_int_digits: 4096,
            max_items: 1 << 20,
            max_values: 4 << 20,
            max_value_bytes: 64 << 20,
        }
    }
}

/// A decoding failure: what went wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("syrup: {kind} at byte {offset}")]
pub struct DecodeError {
    /// Byte offset of the problem, from the start of the input (for a
    /// [`Decoder`], from the start of the stream). For
    /// [`DecodeErrorKind::Incomplete`] it is the end of the input.
    pub offset: usize,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

/// What went wrong while decoding. See [`DecodeErrorKind::is_incomplete`]
/// and [`DecodeErrorKind::is_limit`] for the three groups: more bytes
/// needed, a limit exceeded, and malformed input (everything else).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ends inside a value: more bytes are needed. Not malformed.
    #[error("input ends inside a value")]
    Incomplete,

    /// A byte that cannot appear here: an unknown type marker, whitespace, a
    /// closing byte that does not match the open container, or a byte after
    /// digits that is not `+ - : " '`.
    #[error("unexpected byte {0:#04x}")]
    UnexpectedByte(u8),
    /// An integer or a length with a leading zero (`007+`, `03:abc`).
    #[error("leading zero in a number")]
    LeadingZero,
    /// `0-`: zero is written `0+`.
    #[error("negative zero integer")]
    NegativeZero,
    /// A string or symbol body that is not well-formed UTF-8; the offset is
    /// that of the first bad byte.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A dictionary key not after the previous key in canonical order.
    #[error("dictionary keys out of canonical order")]
    DictKeyOrder,
    /// A dictionary key equal to the previous key.
    #[error("duplicate dictionary key")]
    DuplicateDictKey,
    /// A set member not after the previous member in canonical order.
    #[error("set members out of canonical order")]
    SetMemberOrder,
    /// A set member equal to the previous member.
    #[error("duplicate set member")]
    DuplicateSetMember,
    /// A dictionary that closes after a key with no value.
    #[error("dictionary key without a value")]
    MissingDictValue,
    /// `<>`: a record needs a label.
    #[error("record without a label")]
    MissingRecordLabel,
    /// Bytes after the one value that [`decode`] expects.
    #[error("trailing bytes after the value")]
    TrailingBytes,

    /// A byte string, string or symbol longer than [`Limits::max_len`].
    #[error("length exceeds the limit")]
    LengthLimit,
    /// Containers nested deeper than [`Limits::max_depth`].
    #[error("nesting exceeds the depth limit")]
    DepthLimit,
    /// An integer with more digits than [`Limits::max_int_digits`].
    #[error("integer exceeds the digit limit")]
    IntegerDigitsLimit,
    /// A collection with more than [`Limits::max_items`] items.
    #[error("collection exceeds the item limit")]
    ItemsLimit,
    /// More than [`Limits::max_values`] values in one top-level value.
    #[error("value count exceeds the limit")]
    ValuesLimit,
    /// A value longer than [`Limits::max_value_bytes`] encoded bytes.
    #[error("encoded value exceeds the size limit")]
    ValueSizeLimit,
}

impl DecodeErrorKind {
    /// Whether more input could still make this a valid value.
    pub fn is_incomplete(self) -> bool {
        self == DecodeErrorKind::Incomplete
    }

    /// Whether a [`Limits`] cap was exceeded (the input may be well-formed).
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            DecodeErrorKind::LengthLimit
                | DecodeErrorKind::DepthLimit
                | DecodeErrorKind::IntegerDigitsLimit
                | DecodeErrorKind::ItemsLimit
                | DecodeErrorKind::ValuesLimit
                | DecodeErrorKind::ValueSizeLimit
        )
    }
}

fn err<T>(offset: usize, kind: DecodeErrorKind) -> Result<T, DecodeError> {
    Err(DecodeError { offset, kind })
}

/// Decodes exactly one canonical Syrup value from `input`, with default
/// [`Limits`]. Byte strings in the result are copied out of `input`.
///
/// # Errors
/// [`DecodeErrorKind::Incomplete`] if `input` ends inside the value,
/// [`DecodeErrorKind::TrailingBytes`] if anything follows it, a limit kind if
/// a cap is exceeded, or the malformation found first.
///
/// ```
/// use pola_syrup::{decode, DecodeErrorKind, Value};
/// assert_eq!(decode(b"[1+2+]").unwrap(), Value::List(vec![Value::int(1i64), Value::int(2i64)]));
/// assert_eq!(decode(b"[1+").unwrap_err().kind, DecodeErrorKind::Incomplete);
/// assert_eq!(decode(b"007+").unwrap_err().kind, DecodeErrorKind::LeadingZero);
/// ```
pub fn decode(input: &[u8]) -> Result<Value<NoRef>, DecodeError> {
    decode_with(input, &Limits::default())
}

/// [`decode`] with explicit limits.
///
/// # Errors
/// As [`decode`].
pub fn decode_with(input: &[u8], limits: &Limits) -> Result<Value<NoRef>, DecodeError> {
    decode_exact(&SliceSource(input), limits)
}

/// Decodes exactly one canonical Syrup value from `input`, with default
/// [`Limits`]; byte strings in the result share `input`'s memory (no copy).
///
/// # Errors
/// As [`decode`].
pub fn decode_bytes(input: Bytes) -> Result<Value<NoRef>, DecodeError> {
    decode_bytes_with(input, &Limits::default())
}

/// [`decode_bytes`] with explicit limits.
///
/// # Errors
/// As [`decode`].
pub fn decode_bytes_with(input: Bytes, limits: &Limits) -> Result<Value<NoRef>, DecodeError> {
    decode_exact(&BytesSource(input), limits)
}

fn decode_exact<S: Source>(src: &S, limits: &Limits) -> Result<Value<NoRef>, DecodeError> {
    let (value, end) = decode_one(src, 0, limits)?;
    if end != src.data().len() {
        return err(end, DecodeErrorKind::TrailingBytes);
    }
    Ok(value)
}

/// Where the decoder reads from, and how it makes byte strings.
trait Source {
    fn data(&self) -> &[u8];
    fn bytes(&self, start: usize, end: usize) -> Bytes;
}

struct SliceSource<'a>(&'a [u8]);

impl Source for SliceSource<'_> {
    fn data(&self) -> &[u8] {
        self.0
    }
    fn bytes(&self, start: usize, end: usize) -> Bytes {
        Bytes::copy_from_slice(self.0.get(start..end).unwrap_or_default())
    }
}

struct BytesSource(Bytes);

impl Source for BytesSource {
    fn data(&self) -> &[u8] {
        &self.0
    }
    fn bytes(&self, start: usize, end: usize) -> Bytes {
        if start <= end && end <= self.0.len() {
            self.0.slice(start..end)
        } else {
            Bytes::new()
        }
    }
}

/// An open container on the decoder's stack.
struct Frame {
    /// Offset of the opening byte.
    open: usize,
    kind: FrameKind,
}

enum FrameKind {
    List(Vec<Value>),
    Record(Option<Value>, Vec<Value>),
    Dict {
        map: BTreeMap<Value, Value>,
        key: Option<Value>,
        /// Encoded span of the previous key, for the order check.
        prev: Option<(usize, usize)>,
    },
    Set {
        set: BTreeSet<Value>,
        prev: Option<(usize, usize)>,
    },
}

/// Checks that `data[cur]` comes strictly after `data[prev]` in canonical
/// byte order.
fn check_order(
    data: &[u8],
    prev: Option<(usize, usize)>,
    cur: (usize, usize),
    unsorted: DecodeErrorKind,
    duplicate: DecodeErrorKind,
) -> Result<(), DecodeError> {
    let Some((ps, pe)) = prev else { return Ok(()) };
    let (Some(p), Some(c)) = (data.get(ps..pe), data.get(cur.0..cur.1)) else {
        return err(cur.0, unsorted);
    };
    match p.cmp(c) {
        Ordering::Less => Ok(()),
        Ordering::Equal => err(cur.0, duplicate),
        Ordering::Greater => err(cur.0, unsorted),
    }
}

/// Decodes one value starting at `start`; returns it and the offset just
/// after it. The input is treated as ending at
/// `start + limits.max_value_bytes`.
fn decode_one<S: Source>(
    src: &S,
    start: usize,
    limits: &Limits,
) -> Result<(Value, usize), DecodeError> {
    let full = src.data();
    let cap = start.saturating_add(limits.max_value_bytes);
    let data = full.get(..cap).unwrap_or(full);
    match decode_inner(src, data, start, limits) {
        Err(DecodeError {
            kind: DecodeErrorKind::Incomplete,
            ..
        }) if full.len() > data.len() => err(data.len(), DecodeErrorKind::ValueSizeLimit),
        other => other,
    }
}

fn decode_inner<S: Source>(
    src: &S,
    data: &[u8],
    start: usize,
    limits: &Limits,
) -> Result<(Value, usize), DecodeError> {
    use DecodeErrorKind as K;
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = start;
    let mut values: usize = 0;
    let incomplete = || err(data.len(), K::Incomplete);

    loop {
        let Some(&b) = data.get(pos) else {
            return incomplete();
        };
        let item_start = pos;
        // Either an atom (value, end) or a closed container.
        let (value, end) = match b {
            b'0'..=b'9' => {
                let (v, e) = decode_number(src, data, pos, limits)?;
                (v, e)
            }
            b't' => (Value::Bool(true), pos + 1),
            b'f' => (Value::Bool(false), pos + 1),
            b'F' => {
                let Some(raw) = data.get(pos + 1..pos + 5) else {
                    return incomplete();
                };
                let mut a = [0u8; 4];
                a.copy_from_slice(raw);
                (Value::Float32(u32::from_be_bytes(a)), pos + 5)
            }
            b'D' => {
                let Some(raw) = data.get(pos + 1..pos + 9) else {
                    return incomplete();
                };
                let mut a = [0u8; 8];
                a.copy_from_slice(raw);
                (Value::Float64(u64::from_be_bytes(a)), pos + 9)
            }
            b'[' | b'{' | b'#' | b'<' => {
                if stack.len() >= limits.max_depth {
                    return err(pos, K::DepthLimit);
                }
                // Containers count when they open, so the cap bites early.
                values += 1;
                if values > limits.max_values {
                    return err(pos, K::ValuesLimit);
                }
                let kind = match b {
                    b'[' => FrameKind::List(Vec::new()),
                    b'<' => FrameKind::Record(None, Vec::new()),
                    b'{' => FrameKind::Dict {
                        map: BTreeMap::new(),
                        key: None,
                        prev: None,
                    },
                    _ => FrameKind::Set {
                        set: BTreeSet::new(),
                        prev: None,
                    },
                };
                stack.push(Frame { open: pos, kind });
                pos += 1;
                continue;
            }
            b']' | b'}' | b'$' | b'>' => {
                let Some(frame) = stack.pop() else {
                    return err(pos, K::UnexpectedByte(b));
                };
                let value = match (b, frame.kind) {
                    (b']', FrameKind::List(items)) => Value::List(items),
                    (b'>', FrameKind::Record(Some(label), fields)) => {
                        Value::Record(Box::new(Record { label, fields }))
                    }
                    (b'>', FrameKind::Record(None, _)) => {
                        return err(pos, K::MissingRecordLabel);
                    }
                    (b'}', FrameKind::Dict { map, key: None, .. }) => Value::Dict(map),
                    (b'}', FrameKind::Dict { key: Some(_), .. }) => {
                        return err(pos, K::MissingDictValue);
                    }
                    (b'$', FrameKind::Set { set, .. }) => Value::Set(set),
                    _ => return err(pos, K::UnexpectedByte(b)),
                };
                // The container's span starts at its opening byte.
                let open = frame.open;
                let end = pos + 1;
                match stack.last_mut() {
                    None => return Ok((value, end)),
                    Some(parent) => {
                        add_to(data, parent, value, (open, end), limits)?;
                    }
                }
                pos = end;
                continue;
            }
            _ => return err(pos, K::UnexpectedByte(b)),
        };
        values += 1;
        if values > limits.max_values {
            return err(item_start, K::ValuesLimit);
        }
        match stack.last_mut() {
            None => return Ok((value, end)),
            Some(parent) => add_to(data, parent, value, (item_start, end), limits)?,
        }
        pos = end;
    }
}

/// Adds a finished value (whose encoding is `data[span]`) to the innermost
/// open container.
fn add_to(
    data: &[u8],
    frame: &mut Frame,
    value: Value,
    span: (usize, usize),
    limits: &Limits,
) -> Result<(), DecodeError> {
    use DecodeErrorKind as K;
    let full = |n: usize| n >= limits.max_items;
    match &mut frame.kind {
        FrameKind::List(items) => {
            if full(items.len()) {
                return err(span.0, K::ItemsLimit);
            }
            items.push(value);
        }
        FrameKind::Record(label @ None, _) => {
            if full(0) {
                return err(span.0, K::ItemsLimit);
            }
            *label = Some(value);
        }
        FrameKind::Record(Some(_), fields) => {
            if full(fields.len() + 1) {
                return err(span.0, K::ItemsLimit);
            }
            fields.push(value);
        }
        FrameKind::Dict { map, key, prev } => match key.take() {
            None => {
                if full(map.len()) {
                    return err(span.0, K::ItemsLimit);
                }
                check_order(data, *prev, span, K::DictKeyOrder, K::DuplicateDictKey)?;
                *prev = Some(span);
                *key = Some(value);
            }
            Some(k) => {
                map.insert(k, value);
            }
        },
        FrameKind::Set { set, prev } => {
            if full(set.len()) {
                return err(span.0, K::ItemsLimit);
            }
            check_order(data, *prev, span, K::SetMemberOrder, K::DuplicateSetMember)?;
            *prev = Some(span);
            set.insert(value);
        }
    }
    Ok(())
}

/// Decodes an atom that starts with a digit: an integer, or a byte string,
/// string or symbol with its length prefix.
fn decode_number<S: Source>(
    src: &S,
    data: &[u8],
    start: usize,
    limits: &Limits,
) -> Result<(Value, usize), DecodeError> {
    use DecodeErrorKind as K;
    // Digits beyond this many cannot be a length within any usize, nor an
    // allowed integer.
    let digit_cap = limits.max_int_digits.max(20);
    let mut n: u64 = 0;
    let mut pos = start;
    let term = loop {
        let Some(&b) = data.get(pos) else {
            return err(data.len(), K::Incomplete);
        };
        if b.is_ascii_digit() {
            // 19 digits always fit in u64; beyond that `n` saturates and is
            // only used to reject over-long lengths.
            n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
            pos += 1;
            if pos - start > digit_cap {
                return err(start, K::IntegerDigitsLimit);
            }
        } else {
            break b;
        }
    };
    let digits = pos - start;
    if digits > 1 && data.get(start) == Some(&b'0') {
        return err(start, K::LeadingZero);
    }
    match term {
        b'+' | b'-' => {
            let negative = term == b'-';
            if negative && n == 0 {
                return err(start, K::NegativeZero);
            }
            if digits > limits.max_int_digits {
                return err(start, K::IntegerDigitsLimit);
            }
            let int = if digits <= 19 {
                small_int(n, negative)
            } else {
                let Some(text) = data.get(start..pos) else {
                    return err(start, K::Incomplete);
                };
                match BigInt::parse_bytes(text, 10) {
                    Some(b) => Int::from_big(if negative { -b } else { b }),
                    None => return err(start, K::UnexpectedByte(term)),
                }
            };
            Ok((Value::Int(int), pos + 1))
        }
        b':' | b'"' | b'\'' => {
            let len = match usize::try_from(n) {
                Ok(len) if digits <= 19 && len <= limits.max_len => len,
                _ => return err(start, K::LengthLimit),
            };
            let body = pos + 1;
            let Some(end) = body.checked_add(len) else {
                return err(start, K::LengthLimit);
            };
            let Some(raw) = data.get(body..end) else {
                return err(data.len(), K::Incomplete);
            };
            let value = match term {
                b':' => Value::Bytes(src.bytes(body, end)),
                _ => {
                    let text = match std::str::from_utf8(raw) {
                        Ok(t) => t.to_owned(),
                        Err(e) => return err(body + e.valid_up_to(), K::InvalidUtf8),
                    };
                    if term == b'"' {
                        Value::String(text)
                    } else {
                        Value::Symbol(text)
                    }
                }
            };
            Ok((value, end))
        }
        other => err(pos, K::UnexpectedByte(other)),
    }
}

/// An integer of at most 19 digits (so `magnitude < 10^19 < 2^64`).
fn small_int(magnitude: u64, negative: bool) -> Int {
    if negative {
        match magnitude.checked_sub(1).and_then(|m| i64::try_from(m).ok()) {
            // -(m + 1) without overflow, covering i64::MIN.
            Some(m) => Int::Small(-m - 1),
            None => Int::Big(-BigInt::from(magnitude)),
        }
    } else {
        match i64::try_from(magnitude) {
            Ok(i) => Int::Small(i),
            Err(_) => Int::Big(BigInt::from(magnitude)),
        }
    }
}

/// A streaming decoder: feed it bytes in chunks of any size, take whole
/// values out in order.
///
/// Call [`next_value`](Self::next_value) after every [`feed`](Self::feed)
/// until it returns `Ok(None)`: the decoder holds only what has been fed and
/// not yet taken, and it rejects a value in progress as soon as it is known
/// to break a [`Limits`] cap (an announced length, nesting depth, or
/// [`Limits::max_value_bytes`]), before its bytes arrive.
///
/// Work is linear in the input however it is chunked. Values that arrive
/// whole are decoded straight from the fed bytes. When a value straddles
/// feeds, its bytes so far are copied once into an accumulation buffer and a
/// resumable scanner remembers how far it got, so that the value is decoded
/// once, when its last byte has arrived. Byte strings in the values share
/// the decoder's buffers (no copy), which keeps each buffer alive as long as
/// any of its byte strings.
///
/// After an error the decoder is finished: every later call returns the same
/// error.
///
/// ```
/// use pola_syrup::{Decoder, Value};
/// let mut d = Decoder::new();
/// d.feed(b"5'hello[1");
/// assert_eq!(d.next_value().unwrap(), Some(Value::sym("hello")));
/// assert_eq!(d.next_value().unwrap(), None);
/// d.feed(b"+]");
/// assert_eq!(d.next_value().unwrap(), Some(Value::List(vec![Value::int(1i64)])));
/// ```
#[derive(Debug, Default)]
pub struct Decoder {
    /// The oldest unconsumed bytes, frozen so that values decoded from them
    /// share their memory. Empty while a value is being scanned in `buf`.
    ready: Bytes,
    /// Bytes fed after `ready`; while a value straddles feeds, its start.
    buf: BytesMut,
    limits: Limits,
    /// Progress through a value that starts at `buf[0]`.
    scan: Scan,
    /// Stream offset of the first unconsumed byte.
    base: usize,
    failed: Option<DecodeError>,
}

/// Progress through the value in progress, which starts at `buf[0]`.
#[derive(Debug, Default)]
struct Scan {
    /// Next byte to look at.
    pos: usize,
    /// Open containers.
    depth: usize,
    state: ScanState,
}

#[derive(Debug, Default)]
enum ScanState {
    /// Between tokens.
    #[default]
    Token,
    /// Inside digits that began at `start`; `n` is their (saturating) value.
    Digits { start: usize, n: u64 },
    /// Inside a fixed-size body that ends at `end`.
    Skip { end: usize },
}

impl Scan {
    /// Whether no byte of a value has been scanned yet.
    fn is_fresh(&self) -> bool {
        self.pos == 0 && self.depth == 0 && matches!(self.state, ScanState::Token)
    }
}

impl Decoder {
    /// A decoder with default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Decoder {
            limits,
            ..Self::default()
        }
    }

    /// Appends bytes to the input.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Bytes fed but not yet returned as values.
    pub fn buffered(&self) -> usize {
        self.ready.len() + self.buf.len()
    }

    /// The next whole value, or `None` if more bytes are needed.
    ///
    /// # Errors
    /// A malformed or over-limit value; never
    /// [`DecodeErrorKind::Incomplete`]. The error is sticky.
    pub fn next_value(&mut self) -> Result<Option<Value<NoRef>>, DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.step() {
            Ok(v) => Ok(v),
            Err(mut e) => {
                e.offset = e.offset.saturating_add(self.base);
                self.failed = Some(e);
                self.ready = Bytes::new();
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }

    fn step(&mut self) -> Result<Option<Value<NoRef>>, DecodeError> {
        if self.scan.is_fresh() {
            if self.ready.is_empty() {
                // Freeze what has been fed (no copy) and decode from it.
                self.ready = self.buf.split().freeze();
            }
            if !self.ready.is_empty() {
                match decode_one(&BytesSource(self.ready.clone()), 0, &self.limits) {
                    Ok((value, end)) => {
                        bytes::Buf::advance(&mut self.ready, end);
                        self.base = self.base.saturating_add(end);
                        return Ok(Some(value));
                    }
                    Err(e) if e.kind.is_incomplete() => {
                        // The value continues past what is frozen: copy its
                        // start, once, in front of the bytes fed since, and
                        // scan from there.
                        let mut joined = BytesMut::with_capacity(self.ready.len() + self.buf.len());
                        joined.extend_from_slice(&self.ready);
                        joined.extend_from_slice(&self.buf);
                        self.buf = joined;
                        self.ready = Bytes::new();
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let Some(end) = self.scan()? else {
            return Ok(None);
        };
        let frame = self.buf.split_to(end).freeze();
        self.scan = Scan::default();
        let (value, used) = decode_one(&BytesSource(frame), 0, &self.limits)?;
        self.base = self.base.saturating_add(end);
        if used != end {
            // The scanner and the decoder disagree on where the value ends;
            // cannot happen for input the decoder accepts, but never trust it.
            return err(used, DecodeErrorKind::TrailingBytes);
        }
        Ok(Some(value))
    }

    /// Advances the scanner over the buffered bytes; returns the length of
    /// the first whole value once all of it is buffered.
    fn scan(&mut self) -> Result<Option<usize>, DecodeError> {
        use DecodeErrorKind as K;
        let limits = &self.limits;
        let s = &mut self.scan;
        let buf = &self.buf[..];
        let digit_cap = limits.max_int_digits.max(20);
        loop {
            match s.state {
                ScanState::Skip { end } => {
                    if buf.len() < end {
                        return Ok(None);
                    }
                    s.pos = end;
                    s.state = ScanState::Token;
                    if s.depth == 0 {
                        return Ok(Some(s.pos));
                    }
                }
                ScanState::Token => {
                    let Some(&b) = buf.get(s.pos) else {
                        return Ok(None);
                    };
                    if s.pos >= limits.max_value_bytes {
                        return err(s.pos, K::ValueSizeLimit);
                    }
                    let at = s.pos;
                    match b {
                        b'0'..=b'9' => {
                            s.state = ScanState::Digits {
                                start: at,
                                n: u64::from(b - b'0'),
                            };
                            s.pos += 1;
                            continue;
                        }
                        b't' | b'f' => s.pos += 1,
                        b'F' | b'D' => {
                            let end = at + if b == b'F' { 5 } else { 9 };
                            if end > limits.max_value_bytes {
                                return err(at, K::ValueSizeLimit);
                            }
                            s.state = ScanState::Skip { end };
                            continue;
                        }
                        b'[' | b'{' | b'#' | b'<' => {
                            if s.depth >= limits.max_depth {
                                return err(at, K::DepthLimit);
                            }
                            s.depth += 1;
                            s.pos += 1;
                            continue;
                        }
                        b']' | b'}' | b'$' | b'>' => {
                            if s.depth == 0 {
                                return err(at, K::UnexpectedByte(b));
                            }
                            s.depth -= 1;
                            s.pos += 1;
                        }
                        _ => return err(at, K::UnexpectedByte(b)),
                    }
                    if s.depth == 0 {
                        return Ok(Some(s.pos));
                    }
                }
                ScanState::Digits { start, n } => {
                    let Some(&b) = buf.get(s.pos) else {
                        return Ok(None);
                    };
                    let at = s.pos;
                    let digits = at - start;
                    match b {
                        b'0'..=b'9' => {
                            if n == 0 {
                                return err(start, K::LeadingZero);
                            }
                            if digits >= digit_cap {
                                return err(start, K::IntegerDigitsLimit);
                            }
                            s.state = ScanState::Digits {
                                start,
                                n: n.saturating_mul(10).saturating_add(u64::from(b - b'0')),
                            };
                            s.pos += 1;
                        }
                        b'+' | b'-' => {
                            if b == b'-' && n == 0 {
                                return err(start, K::NegativeZero);
                            }
                            if digits > limits.max_int_digits {
                                return err(start, K::IntegerDigitsLimit);
                            }
                            s.pos += 1;
                            s.state = ScanState::Token;
                            if s.depth == 0 {
                                return Ok(Some(s.pos));
                            }
                        }
                        b':' | b'"' | b'\'' => {
                            let len = match usize::try_from(n) {
                                Ok(len) if digits <= 19 && len <= limits.max_len => len,
                                _ => return err(start, K::LengthLimit),
                            };
                            let end = at.saturating_add(1).saturating_add(len);
                            if end > limits.max_value_bytes {
                                return err(start, K::ValueSizeLimit);
                            }
                            s.state = ScanState::Skip { end };
                        }
                        _ => return err(at, K::UnexpectedByte(b)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::encode::encode;
    use DecodeErrorKind as K;

    fn fails(input: &[u8]) -> (usize, DecodeErrorKind) {
        let e = decode(input).expect_err("should fail");
        (e.offset, e.kind)
    }

    #[test]
    fn atoms() {
        assert_eq!(decode(b"t").unwrap(), Value::Bool(true));
        assert_eq!(decode(b"f").unwrap(), Value::Bool(false));
        assert_eq!(decode(b"0+").unwrap(), Value::int(0i64));
        assert_eq!(decode(b"5-").unwrap(), Value::int(-5i64));
        assert_eq!(
            decode(b"9223372036854775808-").unwrap(),
            Value::int(i64::MIN)
        );
        assert_eq!(
            decode(b"9223372036854775808+").unwrap(),
            Value::Int(Int::Big(BigInt::from(1u64 << 63)))
        );
        assert_eq!(
            decode(b"18446744073709551616+").unwrap(),
            Value::Int(Int::Big(BigInt::from(1u128 << 64)))
        );
        assert_eq!(decode(b"3:cat").unwrap(), Value::bytes(&b"cat"[..]));
        assert_eq!(decode(b"0:").unwrap(), Value::bytes(Bytes::new()));
        assert_eq!(decode("6\"björn".as_bytes()).unwrap(), Value::str("björn"));
        assert_eq!(decode(b"5'fetch").unwrap(), Value::sym("fetch"));
        assert_eq!(
            decode(b"D\x7f\xf8\0\0\0\0\0\x01").unwrap(),
            Value::Float64(0x7ff8_0000_0000_0001)
        );
        assert_eq!(
            decode(b"F\xff\xc0\0\x01").unwrap(),
            Value::Float32(0xffc0_0001)
        );
    }

    #[test]
    fn error_kinds_and_offsets() {
        assert_eq!(fails(b""), (0, K::Incomplete));
        assert_eq!(fails(b"12"), (2, K::Incomplete));
        assert_eq!(fails(b"5:ab"), (4, K::Incomplete));
        assert_eq!(fails(b"D\0\0"), (3, K::Incomplete));
        assert_eq!(fails(b"[1+"), (3, K::Incomplete));
        assert_eq!(fails(b"t t"), (1, K::TrailingBytes));
        assert_eq!(fails(b"[ t]"), (1, K::UnexpectedByte(b' ')));
        assert_eq!(fails(b"[1+x]"), (3, K::UnexpectedByte(b'x')));
        assert_eq!(fails(b"12x"), (2, K::UnexpectedByte(b'x')));
        assert_eq!(fails(b"[1+}"), (3, K::UnexpectedByte(b'}')));
        assert_eq!(fails(b"]"), (0, K::UnexpectedByte(b']')));
        assert_eq!(fails(b"[007+]"), (1, K::LeadingZero));
        assert_eq!(fails(b"03:abc"), (0, K::LeadingZero));
        assert_eq!(fails(b"[t0-]"), (2, K::NegativeZero));
        assert_eq!(fails(b"[2\"\xc3(]"), (3, K::InvalidUtf8));
        assert_eq!(fails(b"3'a\xffb"), (3, K::InvalidUtf8));
        assert_eq!(fails(b"{1'bt1'at}"), (5, K::DictKeyOrder));
        assert_eq!(fails(b"{1'at1'af}"), (5, K::DuplicateDictKey));
        assert_eq!(
            fails(b"{9\"123456789t10\"1234567890f}"),
            (13, K::DictKeyOrder)
        );
        assert_eq!(fails(b"#2+1+$"), (3, K::SetMemberOrder));
        assert_eq!(fails(b"#1+1+$"), (3, K::DuplicateSetMember));
        assert_eq!(fails(b"{1'a}"), (4, K::MissingDictValue));
        assert_eq!(fails(b"[<>]"), (2, K::MissingRecordLabel));
    }

    #[test]
    fn limits_are_checked_before_allocation() {
        let mut l = Limits {
            max_len: 4,
            max_depth: 2,
            max_int_digits: 25,
            max_items: 3,
            max_values: 6,
            max_value_bytes: 40,
        };
        let f = |input: &[u8], l: &Limits| {
            let e = decode_with(input, l).expect_err("should fail");
            (e.offset, e.kind)
        };
        // The announced length is refused without its body being present.
        assert_eq!(f(b"[5:", &l), (1, K::LengthLimit));
        assert_eq!(
            f(b"99999999999999999999999999:", &l),
            (0, K::IntegerDigitsLimit)
        );
        assert_eq!(f(b"99999999999999999999:", &l), (0, K::LengthLimit));
        assert_eq!(f(b"[[[", &l), (2, K::DepthLimit));
        assert_eq!(
            f(b"12345678901234567890123456+", &l),
            (0, K::IntegerDigitsLimit)
        );
        assert_eq!(f(b"[tttt]", &l), (4, K::ItemsLimit));
        assert_eq!(f(b"<1'afff>", &l), (6, K::ItemsLimit));
        assert_eq!(f(b"[[tt][tt]]", &l), (7, K::ValuesLimit));
        let long: Vec<u8> = std::iter::once(b'[').chain([b't'; 50]).collect();
        assert_eq!(f(&long, &l), (4, K::ItemsLimit));
        l.max_items = 100;
        l.max_values = 100;
        assert_eq!(f(&long, &l), (40, K::ValueSizeLimit));
        assert!(decode_with(b"[4:abcd]", &l).is_ok());
        assert!(decode_with(b"[[t]]", &l).is_ok());
    }

    #[test]
    fn round_trip_and_zero_copy() {
        let input = Bytes::from_static(b"<3:zoo[{3'age12+4'eats#$}]D\0\0\0\0\0\0\0\0>");
        let v = decode_bytes(input.clone()).unwrap();
        assert_eq!(encode(&v), input);
        let b = Bytes::from_static(b"[5:hello]");
        let v = decode_bytes(b.clone()).unwrap();
        let inner = v.as_list().unwrap()[0].as_bytes().unwrap();
        assert_eq!(inner.as_ptr(), b[3..].as_ptr());
    }

    #[test]
    fn streaming_byte_by_byte() {
        let stream = b"5'hello[1+{1'a2:hi}]3:abct";
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in stream {
            d.feed(std::slice::from_ref(b));
            while let Some(v) = d.next_value().unwrap() {
                got.push(v);
            }
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Value::sym("hello"));
        assert_eq!(encode(&got[1]), b"[1+{1'a2:hi}]");
        assert_eq!(got[3], Value::Bool(true));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn streaming_errors_are_early_and_sticky() {
        let mut d = Decoder::new();
        d.feed(b"t99999999999:");
        assert_eq!(d.next_value().unwrap(), Some(Value::Bool(true)));
        let e = d.next_value().unwrap_err();
        assert_eq!((e.offset, e.kind), (1, K::LengthLimit));
        d.feed(b"t");
        assert_eq!(d.next_value().unwrap_err(), e);

        let l = Limits {
            max_value_bytes: 100,
            ..Limits::default()
        };
        let mut d = Decoder::with_limits(l);
        d.feed(b"t[");
        d.feed(&[b't'; 150]);
        assert_eq!(d.next_value().unwrap(), Some(Value::Bool(true)));
        let e = d.next_value().unwrap_err();
        assert_eq!((e.offset, e.kind), (101, K::ValueSizeLimit));

        let mut d = Decoder::new();
        d.feed(b"[1+ ]");
        let e = d.next_value().unwrap_err();
        assert_eq!((e.offset, e.kind), (3, K::UnexpectedByte(b' ')));

        let mut d = Decoder::new();
        d.feed(b"tt#2+1+$");
        assert!(d.next_value().unwrap().is_some());
        assert!(d.next_value().unwrap().is_some());
        let e = d.next_value().unwrap_err();
        assert_eq!((e.offset, e.kind), (5, K::SetMemberOrder));
    }
}
