//! Minting Swiss numbers, and the sturdyref table.
//!
//! A Swiss number ([`Swiss`], in `pola-captp` with its wire and URI forms)
//! is an unguessable bearer secret naming one object: whoever presents it
//! to our bootstrap object (`fetch`) gets the object. We mint them from 256
//! bits of the OS RNG ([`random_swiss`]).
//!
//! Invariant (upheld by [`SturdyTable`]): a Swiss number maps to at most one
//! object; minting never reuses a number.

use std::collections::HashMap;
use std::time::SystemTime;

use pola_captp::locator::{SWISS_ENTROPY_BYTES, Swiss};

/// A fresh Swiss number: [`SWISS_ENTROPY_BYTES`] from the OS RNG, as
/// [`Swiss::from_entropy`] writes them.
///
/// # Errors
/// The OS RNG failed.
pub fn random_swiss() -> Result<Swiss, getrandom::Error> {
    let mut raw = [0u8; SWISS_ENTROPY_BYTES];
    getrandom::fill(&mut raw)?;
    Ok(Swiss::from_entropy(&raw))
}

/// Objects registered under Swiss numbers (what `fetch` looks up), each
/// until an optional expiry.
#[derive(Debug)]
pub struct SturdyTable<T> {
    entries: HashMap<Swiss, (T, Option<SystemTime>)>,
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
    pub fn mint(&mut self, object: T) -> Result<Swiss, getrandom::Error> {
        loop {
            let swiss = random_swiss()?;
            if let std::collections::hash_map::Entry::Vacant(e) = self.entries.entry(swiss) {
                let swiss = e.key().clone();
                e.insert((object, None));
                return Ok(swiss);
            }
        }
    }

    /// Registers `object` under a chosen Swiss number (e.g. the test suite's
    /// fixed ones), replacing any earlier entry.
    pub fn register(&mut self, swiss: Swiss, object: T) {
        self.entries.insert(swiss, (object, None));
    }

    /// Registers `object` under `swiss` until `expires` (never, if `None`).
    pub fn register_until(&mut self, swiss: Swiss, object: T, expires: Option<SystemTime>) {
        self.entries.insert(swiss, (object, expires));
    }

    /// The object registered under `swiss`, unless it has expired (an
    /// expired entry is forgotten).
    ///
    /// # Errors
    /// [`LookupError`]: unknown (or revoked), or expired.
    pub fn lookup(&mut self, swiss: &Swiss) -> Result<T, LookupError> {
        match self.entries.get(swiss) {
            None => Err(LookupError::Unknown),
            Some((_, Some(at))) if SystemTime::now() >= *at => {
                self.entries.remove(swiss);
                Err(LookupError::Expired)
            }
            Some((object, _)) => Ok(object.clone()),
        }
    }

    /// Forgets `swiss`; later fetches of it fail. Returns the object.
    pub fn revoke(&mut self, swiss: &Swiss) -> Option<T> {
        self.entries.remove(swiss).map(|(o, _)| o)
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
    fn minted_numbers_are_unique_and_found_again() {
        let mut t = SturdyTable::new();
        let a = t.mint(1).unwrap();
        let b = t.mint(2).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_text().unwrap().len(), 43); // 256 bits
        assert_eq!(t.lookup(&a), Ok(1));
        assert_eq!(t.lookup(&b), Ok(2));
        assert_eq!(
            t.lookup(&Swiss::new(&b"guess"[..])),
            Err(LookupError::Unknown)
        );
        // A fetch may write the number as a String: the same object.
        let as_string =
            Swiss::from_value::<pola_syrup::NoRef>(&pola_syrup::Value::str(a.as_text().unwrap()))
                .unwrap();
        assert_eq!(t.lookup(&as_string), Ok(1));
        assert_eq!(t.revoke(&a), Some(1));
        assert_eq!(t.lookup(&a), Err(LookupError::Unknown));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn an_expired_entry_is_refused_then_forgotten() {
        let mut t = SturdyTable::new();
        let past = SystemTime::now() - std::time::Duration::from_secs(1);
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);
        let (old, new) = (Swiss::new(&b"old"[..]), Swiss::new(&b"new"[..]));
        t.register_until(old.clone(), 1, Some(past));
        t.register_until(new.clone(), 2, Some(future));
        assert_eq!(t.lookup(&old), Err(LookupError::Expired));
        assert_eq!(t.lookup(&old), Err(LookupError::Unknown));
        assert_eq!(t.lookup(&new), Ok(2));
        assert_eq!(t.len(), 1);
    }
}
