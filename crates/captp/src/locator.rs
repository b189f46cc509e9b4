//! Peer locators and sturdyrefs, in Syrup form and in `ocapn://` URI form.
//!
//! ```text
//! <ocapn-peer transport designator hints>          ; 'sym, "string", {"k" "v"} | false
//! <ocapn-sturdyref <ocapn-peer …> swiss-num>        ; swiss: bytes (or a String)
//! ocapn://<designator>.<transport>[/s/<swiss>][?k=v&k=v]
//! ```
//!
//! Invariants (upheld by the constructors and parsers here):
//! - a transport is non-empty and contains no `.`;
//! - hints keep the form the other side used (`false` vs `{}`), so a
//!   locator echoed back encodes to the same bytes ([`Hints`]);
//! - two locators name the same peer when transport and designator are equal
//!   ([`PeerLocator::same_peer`]); hints never take part.
//!
//! URI parsing is strict: percent escapes must be well formed, text parts
//! must decode to UTF-8, hint keys must be unique, fragments are refused and
//! the whole URI is capped at [`MAX_URI_LEN`] bytes.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use pola_syrup::Value;

/// The longest `ocapn://` URI we parse, in bytes.
pub const MAX_URI_LEN: usize = 8192;

/// Errors from parsing a locator, in Syrup or URI form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocatorError {
    /// The value is not a locator record of the right shape.
    #[error("malformed locator: {0}")]
    Malformed(&'static str),
    /// The URI does not follow the `ocapn://` grammar.
    #[error("malformed ocapn URI: {0}")]
    BadUri(&'static str),
    /// The URI is longer than [`MAX_URI_LEN`].
    #[error("ocapn URI too long")]
    TooLong,
}

/// The hints of a peer locator, kept in the form the sender used.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hints {
    /// Written `false`: no hints.
    Absent,
    /// A dictionary of String keys to String values (may be empty, `{}`).
    Map(BTreeMap<String, String>),
}

impl Hints {
    /// The hints as a map (empty when absent).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        let map = match self {
            Hints::Absent => None,
            Hints::Map(m) => Some(m),
        };
        map.into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The value of hint `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self {
            Hints::Absent => None,
            Hints::Map(m) => m.get(key).map(String::as_str),
        }
    }
}

/// `<ocapn-peer transport designator hints>`: names a peer (not an object).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerLocator {
    transport: String,
    designator: String,
    hints: Hints,
}

impl PeerLocator {
    /// Builds a locator.
    ///
    /// # Errors
    /// [`LocatorError::Malformed`] if the transport is empty or contains a
    /// `.`, or the designator is empty.
    pub fn new(
        transport: impl Into<String>,
        designator: impl Into<String>,
        hints: Hints,
    ) -> Result<Self, LocatorError> {
        let transport = transport.into();
        let designator = designator.into();
        if transport.is_empty() || transport.contains('.') {
            return Err(LocatorError::Malformed("bad transport"));
        }
        if designator.is_empty() {
            return Err(LocatorError::Malformed("empty designator"));
        }
        Ok(PeerLocator {
            transport,
            designator,
            hints,
        })
    }

    /// The netlayer name (a symbol on the wire).
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// The peer's name on that netlayer.
    pub fn designator(&self) -> &str {
        &self.designator
    }

    /// The hints (for `tcp-testing-only`: `host` and `port`).
    pub fn hints(&self) -> &Hints {
        &self.hints
    }

    /// Whether both locators name the same peer (transport and designator
    /// equal; hints ignored).
    pub fn same_peer(&self, other: &PeerLocator) -> bool {
        self.transport == other.transport && self.designator == other.designator
    }

    /// The Syrup form `<ocapn-peer 'transport "designator" hints>`.
    pub fn to_value<R: Ord>(&self) -> Value<R> {
        let hints = match &self.hints {
            Hints::Absent => Value::Bool(false),
            Hints::Map(m) => Value::Dict(
                m.iter()
                    .map(|(k, v)| (Value::str(k.as_str()), Value::str(v.as_str())))
                    .collect(),
            ),
        };
        Value::record(
            "ocapn-peer",
            vec![
                Value::sym(self.transport.as_str()),
                Value::str(self.designator.as_str()),
                hints,
            ],
        )
    }

    /// Parses the Syrup form.
    ///
    /// # Errors
    /// [`LocatorError::Malformed`] for anything but a well-formed
    /// `<ocapn-peer …>` record.
    pub fn from_value<R>(v: &Value<R>) -> Result<Self, LocatorError> {
        let f = v
            .as_record_labelled("ocapn-peer")
            .ok_or(LocatorError::Malformed("not an ocapn-peer record"))?;
        let [transport, designator, hints] = f else {
            return Err(LocatorError::Malformed("ocapn-peer needs 3 fields"));
        };
        let transport = transport
            .as_symbol()
            .ok_or(LocatorError::Malformed("transport is not a symbol"))?;
        let designator = designator
            .as_str()
            .ok_or(LocatorError::Malformed("designator is not a string"))?;
        let hints = match hints {
            Value::Bool(false) => Hints::Absent,
            Value::Dict(d) => {
                let mut m = BTreeMap::new();
                for (k, v) in d {
                    match (k.as_str(), v.as_str()) {
                        (Some(k), Some(v)) => {
                            m.insert(k.to_owned(), v.to_owned());
                        }
                        _ => return Err(LocatorError::Malformed("hints must be strings")),
                    }
                }
                Hints::Map(m)
            }
            _ => {
                return Err(LocatorError::Malformed(
                    "hints must be false or a dictionary",
                ));
            }
        };
        PeerLocator::new(transport, designator, hints)
    }

    /// Parses `ocapn://designator.transport[?k=v…]` (no path allowed).
    ///
    /// # Errors
    /// [`LocatorError::BadUri`] / [`LocatorError::TooLong`], or a sturdyref
    /// URI (one with `/s/…`).
    pub fn from_uri(uri: &str) -> Result<Self, LocatorError> {
        let parsed = parse_uri(uri)?;
        if parsed.swiss.is_some() {
            return Err(LocatorError::BadUri("a peer URI has no path"));
        }
        Ok(parsed.peer)
    }

    /// The URI form, `ocapn://designator.transport[?k=v…]`.
    pub fn to_uri(&self) -> String {
        let mut out = String::from("ocapn://");
        self.write_authority(&mut out);
        self.write_query(&mut out);
        out
    }

    fn write_authority(&self, out: &mut String) {
        // The designator may contain dots (the last dot separates it from the
        // transport), so dots stay literal there.
        escape_into(out, self.designator.as_bytes());
        out.push('.');
        escape_into(out, self.transport.as_bytes());
    }

    fn write_query(&self, out: &mut String) {
        let mut first = true;
        for (k, v) in self.hints.entries() {
            out.push(if first { '?' } else { '&' });
            first = false;
            escape_into(out, k.as_bytes());
            out.push('=');
            escape_into(out, v.as_bytes());
        }
    }
}

impl fmt::Display for PeerLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// Random bytes in a Swiss number minted by [`Swiss::from_entropy`] (256
/// bits; OCapN asks for at least 128).
pub const SWISS_ENTROPY_BYTES: usize = 32;

/// A Swiss number: an unguessable bearer secret naming one object on a peer
/// (whoever presents it to the peer's bootstrap object gets the object).
///
/// The one Swiss-number type of pola: the wire form, the URI form, what a
/// peer mints and what its sturdyref table is keyed by. Bytes internally;
/// it remembers whether the sender wrote it as a String (the Locators text)
/// or a byte array (CapTP `fetch`, the suite), so an echo keeps the sender's
/// type. That form takes no part in equality, hashing or order: the same
/// bytes name the same object.
///
/// Minted numbers ([`Swiss::from_entropy`]) are URL-safe base64 text, so
/// they fit a `/s/<swiss>` path segment unescaped; on the wire they travel
/// as the bytes of that text.
///
/// A secret: `Debug` prints only its length, and equality compares every
/// byte whatever the first difference (see the `PartialEq` impl).
#[derive(Clone)]
pub struct Swiss {
    bytes: Bytes,
    written_as_string: bool,
}

impl fmt::Debug for Swiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A Swiss number is a secret: never print it.
        write!(f, "Swiss(<{} bytes>)", self.bytes.len())
    }
}

/// Compares the secret bytes (not the form) without stopping at the first
/// difference, so the time a comparison takes does not tell a guesser how
/// much of a guess was right. (A peer's lookup is a hash-map probe keyed
/// with a per-process random hash, so a guess reaches this comparison only
/// against entries that share its hash bucket; this closes the rest.)
impl PartialEq for Swiss {
    fn eq(&self, other: &Swiss) -> bool {
        let (a, b) = (&self.bytes[..], &other.bytes[..]);
        if a.len() != b.len() {
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

impl Eq for Swiss {}

impl std::hash::Hash for Swiss {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

/// By bytes (an ordinary, early-out comparison: for sorting, not for
/// checking a secret).
impl Ord for Swiss {
    fn cmp(&self, other: &Swiss) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl PartialOrd for Swiss {
    fn partial_cmp(&self, other: &Swiss) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl From<Bytes> for Swiss {
    fn from(bytes: Bytes) -> Self {
        Swiss::new(bytes)
    }
}

impl From<Vec<u8>> for Swiss {
    fn from(bytes: Vec<u8>) -> Self {
        Swiss::new(bytes)
    }
}

impl From<&'static [u8]> for Swiss {
    fn from(bytes: &'static [u8]) -> Self {
        Swiss::new(bytes)
    }
}

impl Swiss {
    /// A Swiss number written as a byte array (e.g. the test suite's ASCII
    /// numbers, or one read from a store).
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Swiss {
            bytes: bytes.into(),
            written_as_string: false,
        }
    }

    /// A fresh Swiss number from `entropy`, which the caller takes from a
    /// cryptographic RNG (this crate does no I/O; `pola-peer` mints from
    /// the OS RNG): its URL-safe base64 text without padding, 43
    /// characters.
    pub fn from_entropy(entropy: &[u8; SWISS_ENTROPY_BYTES]) -> Self {
        Swiss::new(base64url(entropy).into_bytes())
    }

    /// The secret bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The number as text, if it is UTF-8 (minted ones always are).
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// The Syrup form in the sender's type.
    pub fn to_value<R>(&self) -> Value<R> {
        if self.written_as_string
            && let Ok(s) = std::str::from_utf8(&self.bytes)
        {
            return Value::str(s);
        }
        Value::Bytes(self.bytes.clone())
    }

    /// Accepts a byte array or a String (its UTF-8 bytes).
    ///
    /// # Errors
    /// [`LocatorError::Malformed`] for any other type.
    pub fn from_value<R>(v: &Value<R>) -> Result<Self, LocatorError> {
        match v {
            Value::Bytes(b) => Ok(Swiss::new(b.clone())),
            Value::String(s) => Ok(Swiss {
                bytes: Bytes::copy_from_slice(s.as_bytes()),
                written_as_string: true,
            }),
            _ => Err(LocatorError::Malformed(
                "swiss number must be bytes or a string",
            )),
        }
    }
}

/// URL-safe base64 without padding (RFC 4648 section 5).
fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

/// `<ocapn-sturdyref <ocapn-peer …> swiss-num>`: a peer plus a Swiss number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SturdyRef {
    /// The peer hosting the object.
    pub peer: PeerLocator,
    /// The object's Swiss number on that peer.
    pub swiss: Swiss,
}

impl SturdyRef {
    /// The Syrup form.
    pub fn to_value<R: Ord>(&self) -> Value<R> {
        Value::record(
            "ocapn-sturdyref",
            vec![self.peer.to_value(), self.swiss.to_value()],
        )
    }

    /// Parses the Syrup form.
    ///
    /// # Errors
    /// [`LocatorError::Malformed`] on any shape error.
    pub fn from_value<R>(v: &Value<R>) -> Result<Self, LocatorError> {
        let f = v
            .as_record_labelled("ocapn-sturdyref")
            .ok_or(LocatorError::Malformed("not an ocapn-sturdyref record"))?;
        let [peer, swiss] = f else {
            return Err(LocatorError::Malformed("ocapn-sturdyref needs 2 fields"));
        };
        Ok(SturdyRef {
            peer: PeerLocator::from_value(peer)?,
            swiss: Swiss::from_value(swiss)?,
        })
    }

    /// Parses `ocapn://designator.transport/s/swiss[?k=v…]`. The Swiss
    /// number is the percent-decoded bytes of the path segment.
    ///
    /// # Errors
    /// [`LocatorError::BadUri`] / [`LocatorError::TooLong`], or a URI with
    /// no `/s/…` path.
    pub fn from_uri(uri: &str) -> Result<Self, LocatorError> {
        let parsed = parse_uri(uri)?;
        let swiss = parsed
            .swiss
            .ok_or(LocatorError::BadUri("a sturdyref URI needs /s/<swiss>"))?;
        Ok(SturdyRef {
            peer: parsed.peer,
            swiss: Swiss::new(swiss),
        })
    }

    /// The URI form. Prints the Swiss number percent-escaped.
    pub fn to_uri(&self) -> String {
        let mut out = String::from("ocapn://");
        self.peer.write_authority(&mut out);
        out.push_str("/s/");
        escape_into(&mut out, &self.swiss.bytes);
        self.peer.write_query(&mut out);
        out
    }
}

struct ParsedUri {
    peer: PeerLocator,
    swiss: Option<Vec<u8>>,
}

fn parse_uri(uri: &str) -> Result<ParsedUri, LocatorError> {
    if uri.len() > MAX_URI_LEN {
        return Err(LocatorError::TooLong);
    }
    let scheme_end = uri
        .find("://")
        .ok_or(LocatorError::BadUri("missing scheme"))?;
    let (scheme, rest) = uri.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("ocapn") {
        return Err(LocatorError::BadUri("scheme is not ocapn"));
    }
    let rest = rest.get(3..).ok_or(LocatorError::BadUri("truncated"))?;
    if rest.contains('#') {
        return Err(LocatorError::BadUri("fragments are not allowed"));
    }
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    if authority.contains('@') || authority.contains(':') {
        return Err(LocatorError::BadUri("userinfo and ports are not allowed"));
    }
    let (designator, transport) = authority
        .rsplit_once('.')
        .ok_or(LocatorError::BadUri("missing .transport"))?;
    let designator = decode_text(designator)?;
    let transport = decode_text(transport)?;
    if designator.is_empty() {
        return Err(LocatorError::BadUri("empty designator"));
    }
    if transport.is_empty() || transport.contains('.') {
        return Err(LocatorError::BadUri("bad transport"));
    }
    let swiss = if path.is_empty() {
        None
    } else {
        let seg = path
            .strip_prefix("/s/")
            .ok_or(LocatorError::BadUri("the only path is /s/<swiss>"))?;
        if seg.is_empty() || seg.contains('/') {
            return Err(LocatorError::BadUri("swiss must be one non-empty segment"));
        }
        Some(percent_decode(seg)?)
    };
    let hints = match query {
        None => Hints::Absent,
        Some(q) => {
            let mut m = BTreeMap::new();
            if !q.is_empty() {
                for pair in q.split('&') {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or(LocatorError::BadUri("hint without ="))?;
                    let k = decode_text(k)?;
                    if k.is_empty() {
                        return Err(LocatorError::BadUri("empty hint key"));
                    }
                    if m.insert(k, decode_text(v)?).is_some() {
                        return Err(LocatorError::BadUri("duplicate hint key"));
                    }
                }
            }
            Hints::Map(m)
        }
    };
    let peer = PeerLocator::new(transport, designator, hints)
        .map_err(|_| LocatorError::BadUri("bad locator"))?;
    Ok(ParsedUri { peer, swiss })
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(s: &str) -> Result<Vec<u8>, LocatorError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex_val);
            let lo = b.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(LocatorError::BadUri("bad percent escape")),
            }
            i += 3;
        } else if c.is_ascii_control() || c == b' ' || !c.is_ascii() {
            return Err(LocatorError::BadUri("character must be percent-escaped"));
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

fn decode_text(s: &str) -> Result<String, LocatorError> {
    String::from_utf8(percent_decode(s)?).map_err(|_| LocatorError::BadUri("not UTF-8"))
}

fn escape_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tcp() -> PeerLocator {
        let mut m = BTreeMap::new();
        m.insert("host".to_owned(), "127.0.0.1".to_owned());
        m.insert("port".to_owned(), "22045".to_owned());
        PeerLocator::new(
            "tcp-testing-only",
            "a2ef69ddd5f84840970612ff660f5058",
            Hints::Map(m),
        )
        .unwrap()
    }

    #[test]
    fn suite_uri_parses() {
        let p = PeerLocator::from_uri(
            "ocapn://a2ef69ddd5f84840970612ff660f5058.tcp-testing-only?host=127.0.0.1&port=22045",
        )
        .unwrap();
        assert_eq!(p, tcp());
        assert_eq!(PeerLocator::from_uri(&p.to_uri()).unwrap(), p);
    }

    #[test]
    fn designator_may_hold_dots_and_no_query_means_absent() {
        let p = PeerLocator::from_uri("ocapn://a.b.c.onion").unwrap();
        assert_eq!(p.designator(), "a.b.c");
        assert_eq!(p.transport(), "onion");
        assert_eq!(p.hints(), &Hints::Absent);
        assert_eq!(p.to_uri(), "ocapn://a.b.c.onion");
    }

    #[test]
    fn sturdyref_uri_round_trips_awkward_swiss() {
        let s = SturdyRef {
            peer: tcp(),
            swiss: Swiss::new(&b"a/b+c d\x00\xff"[..]),
        };
        let uri = s.to_uri();
        assert!(uri.contains("/s/a%2Fb%2Bc%20d%00%FF?"), "{uri}");
        let back = SturdyRef::from_uri(&uri).unwrap();
        assert_eq!(back.swiss.bytes(), s.swiss.bytes());
        assert_eq!(back.peer, s.peer);
    }

    #[test]
    fn syrup_form_round_trips_and_keeps_hint_form() {
        let p = tcp();
        assert_eq!(
            PeerLocator::from_value(&p.to_value::<pola_syrup::NoRef>()).unwrap(),
            p
        );
        let empty = PeerLocator::new("x", "d", Hints::Map(BTreeMap::new())).unwrap();
        let v: Value = empty.to_value();
        assert_eq!(
            v.as_record().unwrap().fields[2],
            Value::Dict(BTreeMap::new())
        );
        let absent = PeerLocator::new("x", "d", Hints::Absent).unwrap();
        assert!(absent.same_peer(&empty));
        assert_ne!(absent, empty);
        let s = SturdyRef {
            peer: p,
            swiss: Swiss::from_value::<pola_syrup::NoRef>(&Value::str("abc")).unwrap(),
        };
        let v: Value = s.to_value();
        assert_eq!(v.as_record().unwrap().fields[1], Value::str("abc"));
        assert_eq!(SturdyRef::from_value(&v).unwrap(), s);
    }

    #[test]
    fn hostile_uris_are_refused() {
        let long = format!("ocapn://{}.x", "a".repeat(MAX_URI_LEN));
        let bad = [
            "",
            "http://a.b",
            "ocapn:/a.b",
            "ocapn://",
            "ocapn://nodot",
            "ocapn://.tcp",
            "ocapn://a.",
            "ocapn://a.b/x",
            "ocapn://a.b/s/",
            "ocapn://a.b/s/x/y",
            "ocapn://a.b/s/%zz",
            "ocapn://a.b/s/%4",
            "ocapn://a%ff.b",
            "ocapn://a.b?host",
            "ocapn://a.b?=1",
            "ocapn://a.b?h=1&h=2",
            "ocapn://a.b#frag",
            "ocapn://user@a.b",
            "ocapn://a.b:80",
            "ocapn://a b.c",
            "ocapn://a.b?x=\u{e9}",
            "ocapn://a.t%2Ex",
            long.as_str(),
        ];
        for u in bad {
            assert!(PeerLocator::from_uri(u).is_err(), "{u:?} accepted");
            assert!(SturdyRef::from_uri(u).is_err(), "{u:?} accepted");
        }
        assert!(PeerLocator::from_uri("ocapn://a.b/s/xyz").is_err());
        assert!(SturdyRef::from_uri("ocapn://a.b").is_err());
    }

    #[test]
    fn hostile_values_are_refused() {
        let bad: Vec<Value> = vec![
            Value::Bool(false),
            Value::record("ocapn-peer", vec![]),
            Value::record(
                "ocapn-peer",
                vec![Value::str("t"), Value::str("d"), Value::Bool(false)],
            ),
            Value::record(
                "ocapn-peer",
                vec![Value::sym("t.x"), Value::str("d"), Value::Bool(false)],
            ),
            Value::record(
                "ocapn-peer",
                vec![Value::sym("t"), Value::str("d"), Value::Bool(true)],
            ),
            Value::record(
                "ocapn-peer",
                vec![Value::sym("t"), Value::str(""), Value::Bool(false)],
            ),
        ];
        for v in bad {
            assert!(PeerLocator::from_value(&v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn swiss_debug_hides_secret() {
        let s = Swiss::new(&b"secret"[..]);
        assert!(!format!("{s:?}").contains("secret"));
        let minted = Swiss::from_entropy(&[7; SWISS_ENTROPY_BYTES]);
        let text = minted.as_text().unwrap();
        assert!(!format!("{minted:?}").contains(&text[..8]));
    }

    #[test]
    fn swiss_equality_is_by_bytes_whatever_the_form() {
        use std::collections::HashSet;
        let s = Swiss::new(&b"secret"[..]);
        let as_string = Swiss::from_value::<pola_syrup::NoRef>(&Value::str("secret")).unwrap();
        assert_eq!(s, as_string);
        assert_ne!(s, Swiss::new(&b"secreT"[..]));
        assert_ne!(s, Swiss::new(&b"secret\0"[..]));
        assert_ne!(s, Swiss::new(&b""[..]));
        // One key in a table, whichever form it came in; the form survives.
        let set: HashSet<Swiss> = [s, as_string.clone()].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(
            as_string.to_value::<pola_syrup::NoRef>(),
            Value::str("secret")
        );
    }

    #[test]
    fn base64url_known_answers() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn minted_numbers_are_long_url_safe_text() {
        let a = Swiss::from_entropy(&[0xff; SWISS_ENTROPY_BYTES]);
        let b = Swiss::from_entropy(&[0xfe; SWISS_ENTROPY_BYTES]);
        assert_ne!(a, b);
        let text = a.as_text().unwrap();
        assert_eq!(text.len(), 43); // 256 bits
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        // Sent as bytes; its URI form needs no escapes.
        assert_eq!(
            a.to_value::<pola_syrup::NoRef>(),
            Value::Bytes(a.bytes().clone())
        );
        let uri = SturdyRef {
            peer: tcp(),
            swiss: a.clone(),
        }
        .to_uri();
        assert!(uri.contains(&format!("/s/{text}")), "{uri}");
    }
}
