//! Swiss numbers and the sturdyref table.
//!
//! A Swiss number is an unguessable bearer secret naming one object: whoever
//! presents it to our bootstrap object (`fetch`) gets the object. We mint them
//! from 256 bits of the OS RNG and write them as URL-safe base64 text (no
//! padding), so they fit a `/s/<swiss>` URI path segment unescaped. On the
//! wire they travel as byte strings; the bytes of that text are the key.
//!
//! Invariant (upheld by [`SturdyTable`]): a Swiss number maps to at most one
//! object; minting never reuses a number.

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;

/// Random bytes in a minted Swiss number (256 bits; at least 128 required).
pub const SWISS_ENTROPY_BYTES: usize = 32;

/// A Swiss number: the secret part of a sturdyref.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwissNumber(Bytes);

impl SwissNumber {
    /// A fresh Swiss number from the OS RNG.
    ///
    /// # Errors
    /// The OS RNG failed.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut raw = [0u8; SWISS_ENTROPY_BYTES];
        getrandom::fill(&mut raw)?;
        Ok(SwissNumber(Bytes::from(base64url(&raw).into_bytes())))
    }

    /// A Swiss number with the given bytes (e.g. the test suite's ASCII
    /// numbers, or one received in a `fetch`).
    pub fn from_bytes(b: impl Into<Bytes>) -> Self {
        SwissNumber(b.into())
    }

    /// The bytes that go on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The number as text for a URI, if it is UTF-8 (minted ones always are).
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

/// Swiss numbers are secrets: never print them in logs by accident.
impl fmt::Debug for SwissNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwissNumber(<{} bytes>)", self.0.len())
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
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

/// Objects registered under Swiss numbers (what `fetch` looks up), each
/// until an optional expiry.
#[derive(Debug)]
pub struct SturdyTable<T> {
    entries: HashMap<SwissNumber, (T, Option<SystemTime>)>,
}

/// Why a Swiss number finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Never registered here, or revoked.
    #[error("no such object")]
    Unknown,
    /// Registered with an expiry that has passed.
    #[error("this sturdyref has expired")]
    Expired,
}

impl<T> Default for SturdyTable<T> {
    fn default() -> Self {
        SturdyTable {
            entries: HashMap::new(),
        }
    }
}

impl<T: Clone> SturdyTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `object` under a freshly minted Swiss number.
    ///
    /// # Errors
    /// The OS RNG failed.
    pub fn mint(&mut self, object: T) -> Result<SwissNumber, getrandom::Error> {
        loop {
            let swiss = SwissNumber::random()?;
            if let std::collections::hash_map::Entry::Vacant(e) = self.entries.entry(swiss) {
                let swiss = e.key().clone();
                e.insert((object, None));
                return Ok(swiss);
            }
        }
    }

    /// Registers `object` under a chosen Swiss number (e.g. the test suite's
    /// fixed ones), replacing any earlier entry.
    pub fn register(&mut self, swiss: SwissNumber, object: T) {
        self.entries.insert(swiss, (object, None));
    }

    /// Registers `object` under `swiss` until `expires` (never, if `None`).
    pub fn register_until(&mut self, swiss: SwissNumber, object: T, expires: Option<SystemTime>) {
        self.entries.insert(swiss, (object, expires));
    }

    /// The object registered under `swiss`, unless it has expired (an
    /// expired entry is forgotten).
    ///
    /// # Errors
    /// [`LookupError`]: unknown (or revoked), or expired.
    pub fn lookup(&mut self, swiss: &[u8]) -> Result<T, LookupError> {
        let key = SwissNumber(Bytes::copy_from_slice(swiss));
        match self.entries.get(&key) {
            None => Err(LookupError::Unknown),
            Some((_, Some(at))) if SystemTime::now() >= *at => {
                self.entries.remove(&key);
                Err(LookupError::Expired)
            }
            Some((object, _)) => Ok(object.clone()),
        }
    }

    /// Forgets `swiss`; later fetches of it fail. Returns the object.
    pub fn revoke(&mut self, swiss: &[u8]) -> Option<T> {
        self.entries
            .remove(&SwissNumber(Bytes::copy_from_slice(swiss)))
            .map(|(o, _)| o)
    }

    /// How many objects are registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no object is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
    fn minted_numbers_are_long_unique_and_url_safe() {
        let mut t = SturdyTable::new();
        let a = t.mint(1).unwrap();
        let b = t.mint(2).unwrap();
        assert_ne!(a, b);
        let text = a.as_text().unwrap();
        assert_eq!(text.len(), 43); // 256 bits
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(t.lookup(a.as_bytes()), Ok(1));
        assert_eq!(t.lookup(b.as_bytes()), Ok(2));
        assert_eq!(t.lookup(b"guess"), Err(LookupError::Unknown));
        assert_eq!(t.revoke(a.as_bytes()), Some(1));
        assert_eq!(t.lookup(a.as_bytes()), Err(LookupError::Unknown));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn an_expired_entry_is_refused_then_forgotten() {
        let mut t = SturdyTable::new();
        let past = SystemTime::now() - std::time::Duration::from_secs(1);
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);
        t.register_until(SwissNumber::from_bytes(&b"old"[..]), 1, Some(past));
        t.register_until(SwissNumber::from_bytes(&b"new"[..]), 2, Some(future));
        assert_eq!(t.lookup(b"old"), Err(LookupError::Expired));
        assert_eq!(t.lookup(b"old"), Err(LookupError::Unknown));
        assert_eq!(t.lookup(b"new"), Ok(2));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = SwissNumber::from_bytes(&b"IO58l1laTyhcrgDKbEzFOO32MDd6zE5w"[..]);
        assert!(!format!("{s:?}").contains("IO58"));
    }
}
