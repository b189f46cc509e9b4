//! The capability list (c-list) of one caplet instance.
//!
//! Invariants, upheld by [`CList`] alone:
//! - A handle names an entry of this c-list only. Handle numbers are never
//!   reused: each c-list starts at its own random offset and counts up, so a
//!   dropped, consumed or guessed handle, or one remembered from another
//!   instance, finds no entry (a typed error) instead of someone else's
//!   object.
//! - The table never holds more than its configured number of entries.
//! - A reference has at most one handle at a time: handing
//!   the caplet the same reference again gives the same handle, so a
//!   caplet's c-list does not grow with repeated deliveries, and equal
//!   handles mean the same reference.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use crate::abi::Code;

/// What a c-list entry may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A reference: it can be sent to and passed in messages.
    Ref,
    /// The resolver of a promise: it can be resolved or broken, once.
    Resolver,
}

/// One entry: the host reference and its kind. Revocation is not the
/// c-list's business: a revocable grant is a reference to a revocable
/// forwarder (in a vat, [`pola_vat::patterns::revocable`]).
#[derive(Debug)]
pub(crate) struct Entry<R> {
    pub(crate) cap: R,
    pub(crate) kind: Kind,
}

/// Keys are already spread out (random base), so a multiply suffices.
#[derive(Default)]
pub(crate) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The c-list: handle -> entry.
#[derive(Debug)]
pub(crate) struct CList<R> {
    map: HashMap<u64, Entry<R>, BuildHasherDefault<MixHasher>>,
    /// Plain references -> their handle.
    reverse: BTreeMap<R, u64>,
    next: u64,
    max: usize,
}

/// Handles live in `[2^32, 2^62)`: positive as `i64`, never 0, and far from
/// the small integers a caplet might guess first.
const HANDLE_SPACE: u64 = (1 << 62) - (1 << 32);

fn random_base() -> u64 {
    // `RandomState` is seeded from the OS once and then varied per call,
    // which is all we need: unpredictable, distinct bases per c-list.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x706f_6c61);
    (1 << 32) + h.finish() % (HANDLE_SPACE / 2)
}

impl<R: Ord + Clone> CList<R> {
    /// An empty c-list holding at most `max` entries.
    pub(crate) fn new(max: usize) -> Self {
        CList {
            map: HashMap::default(),
            reverse: BTreeMap::new(),
            next: random_base(),
            max,
        }
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Room for `n` more entries?
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.map.len().checked_add(n).is_some_and(|t| t <= self.max)
    }

    /// How many new entries handing over these references would take
    /// (references already held, and repeats, take none).
    pub(crate) fn needed<'a>(&self, refs: impl IntoIterator<Item = &'a R>) -> usize
    where
        R: 'a,
    {
        let mut fresh = BTreeSet::new();
        for r in refs {
            if !self.reverse.contains_key(r) {
                fresh.insert(r);
            }
        }
        fresh.len()
    }

    /// Adds an entry and returns its handle. A reference already in the
    /// table keeps its handle.
    pub(crate) fn insert(&mut self, entry: Entry<R>) -> Result<u64, Code> {
        let plain = entry.kind == Kind::Ref;
        if plain && let Some(h) = self.reverse.get(&entry.cap) {
            return Ok(*h);
        }
        if !self.has_room(1) {
            return Err(Code::CListFull);
        }
        let h = self.next;
        self.next = self.next.checked_add(1).ok_or(Code::CListFull)?;
        if self.next >= (1 << 62) {
            return Err(Code::CListFull);
        }
        if plain {
            self.reverse.insert(entry.cap.clone(), h);
        }
        self.map.insert(h, entry);
        Ok(h)
    }

    /// The entry for a handle of the expected kind.
    pub(crate) fn get(&self, handle: i64, kind: Kind) -> Result<&Entry<R>, Code> {
        let h = u64::try_from(handle).map_err(|_| Code::UnknownHandle)?;
        let e = self.map.get(&h).ok_or(Code::UnknownHandle)?;
        if e.kind != kind {
            return Err(Code::WrongKind);
        }
        Ok(e)
    }

    /// Removes and returns an entry (for `drop` and for consuming a resolver).
    pub(crate) fn take(&mut self, handle: i64) -> Result<Entry<R>, Code> {
        let h = u64::try_from(handle).map_err(|_| Code::UnknownHandle)?;
        let e = self.map.remove(&h).ok_or(Code::UnknownHandle)?;
        if self.reverse.get(&e.cap) == Some(&h) {
            self.reverse.remove(&e.cap);
        }
        Ok(e)
    }

    /// Removes a resolver entry (checking its kind first).
    pub(crate) fn take_resolver(&mut self, handle: i64) -> Result<R, Code> {
        self.get(handle, Kind::Resolver)?;
        Ok(self.take(handle)?.cap)
    }

    /// Rebinds a plain reference: the handle that names `old` now names
    /// `new` (same handle, same kind). Returns whether `old` had a handle.
    /// If `new` already has a handle of its own, both stay valid.
    pub(crate) fn rebind(&mut self, old: &R, new: R) -> bool {
        let Some(h) = self.reverse.remove(old) else {
            return false;
        };
        let Some(e) = self.map.get_mut(&h) else {
            return false;
        };
        e.cap = new.clone();
        self.reverse.entry(new).or_insert(h);
        true
    }

    /// Empties the table, returning every resolver still held.
    pub(crate) fn clear(&mut self) -> Vec<R> {
        self.reverse.clear();
        self.map
            .drain()
            .filter(|(_, e)| e.kind == Kind::Resolver)
            .map(|(_, e)| e.cap)
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(cap: u32) -> Entry<u32> {
        Entry {
            cap,
            kind: Kind::Ref,
        }
    }

    #[test]
    fn handles_are_never_reused_and_never_small() {
        let mut c = CList::new(4);
        let a = c.insert(entry(1)).unwrap();
        assert!(a >= 1 << 32);
        c.take(a as i64).unwrap();
        let b = c.insert(entry(2)).unwrap();
        assert_ne!(a, b);
        assert_eq!(c.get(a as i64, Kind::Ref).unwrap_err(), Code::UnknownHandle);
        assert_eq!(c.get(b as i64, Kind::Ref).unwrap().cap, 2);
        for guess in [-1i64, 0, 1, 2, 3, i64::MAX] {
            assert_eq!(c.get(guess, Kind::Ref).unwrap_err(), Code::UnknownHandle);
        }
    }

    #[test]
    fn two_clists_do_not_share_handles() {
        let mut a = CList::new(4);
        let mut b = CList::new(4);
        let h = a.insert(entry(7)).unwrap();
        b.insert(entry(8)).unwrap();
        assert_eq!(b.get(h as i64, Kind::Ref).unwrap_err(), Code::UnknownHandle);
    }

    #[test]
    fn same_reference_same_handle() {
        let mut c = CList::new(2);
        let a = c.insert(entry(1)).unwrap();
        assert_eq!(c.insert(entry(1)).unwrap(), a);
        assert_eq!(c.len(), 1);
        assert_eq!(c.needed([&1, &2, &2]), 1);
        c.take(a as i64).unwrap();
        let b = c.insert(entry(1)).unwrap();
        assert_ne!(a, b, "a dropped handle is never handed out again");
    }

    #[test]
    fn full_and_wrong_kind() {
        let mut c = CList::new(1);
        let h = c.insert(entry(1)).unwrap();
        assert_eq!(c.insert(entry(2)).unwrap_err(), Code::CListFull);
        assert_eq!(c.insert(entry(1)).unwrap(), h);
        assert_eq!(
            c.get(h as i64, Kind::Resolver).unwrap_err(),
            Code::WrongKind
        );
        assert_eq!(c.take_resolver(h as i64).unwrap_err(), Code::WrongKind);
    }

    #[test]
    fn rebind_keeps_the_handle() {
        let mut c = CList::new(4);
        let a = c.insert(entry(1)).unwrap();
        assert!(c.rebind(&1, 5));
        assert!(!c.rebind(&1, 6), "1 has no handle any more");
        assert_eq!(c.get(a as i64, Kind::Ref).unwrap().cap, 5);
        assert_eq!(c.insert(entry(5)).unwrap(), a);
        c.take(a as i64).unwrap();
        assert!(!c.rebind(&5, 7));
        assert_eq!(c.len(), 0);
    }
}
