//! A caplet's storage: its persistent state, as a map from keys to values
//! that may hold references (see [`crate::abi`], "Storage").
//!
//! Invariants, upheld by this module:
//! - A [`StorageMap`] never holds more than the quotas it was filled under
//!   allow (keys, bytes per key and value, bytes in all), except a map an
//!   embedder restored from elsewhere ([`StorageMap::restore`]), which may
//!   exceed them; then every put that does not shrink it fails until it
//!   fits again.
//! - [`Staging`] changes its base only in [`Staging::commit`]: the writes
//!   of one entry into the caplet are applied all together or not at all.
//! - Sizes do not depend on handle numbers: a reference counts as
//!   [`StorageMap::REF_BYTES`], so the same map has the same size in every
//!   instance and after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use pola_syrup::Value;

use crate::abi::Code;

/// One stored value and its size (key bytes plus encoded value bytes).
#[derive(Clone, Debug)]
struct Stored<R> {
    value: Value<R>,
    size: usize,
}

/// A caplet's committed storage: keys (byte strings) to values.
///
/// The embedder keeps it (a vat keeps it in the caplet object's state);
/// an instance reads it through [`crate::CapletInstance::set_storage`] and
/// produces the next one after every successful entry
/// ([`crate::CapletInstance::storage`]). Cheap to share: instances hold it
/// in an [`Arc`] and copy it only when a delivery writes.
#[derive(Clone, Debug)]
pub struct StorageMap<R> {
    entries: BTreeMap<Vec<u8>, Stored<R>>,
    bytes: usize,
}

impl<R> Default for StorageMap<R> {
    fn default() -> Self {
        StorageMap {
            entries: BTreeMap::new(),
            bytes: 0,
        }
    }
}

/// Quotas of one caplet's storage (from [`crate::Config`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) key_bytes: usize,
    pub(crate) value_bytes: usize,
    pub(crate) keys: usize,
    pub(crate) total_bytes: usize,
}

impl<R: Clone + Ord> StorageMap<R> {
    /// Bytes a reference counts for in a value's size.
    pub const REF_BYTES: usize = 16;

    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes used: every key plus every value's size.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<R>> {
        self.entries.get(key).map(|s| &s.value)
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value<R>)> {
        self.entries.iter().map(|(k, s)| (k.as_slice(), &s.value))
    }

    /// A map of these entries, as the embedder kept them (after a restart,
    /// say). Quotas are not checked here: a map larger than the caplet's
    /// quota is kept as it is, and the caplet's puts fail until it fits.
    pub fn restore(entries: impl IntoIterator<Item = (Vec<u8>, Value<R>)>) -> Self {
        let mut map = StorageMap::new();
        for (key, value) in entries {
            let size = key.len().saturating_add(value_size(&value));
            if let Some(old) = map.entries.insert(key, Stored { value, size }) {
                map.bytes = map.bytes.saturating_sub(old.size);
            }
            map.bytes = map.bytes.saturating_add(size);
        }
        map
    }

    /// The same map with every reference replaced by `f(reference)`
    /// (values without references are cloned as they are).
    pub fn map_refs<S: Clone + Ord>(&self, f: &mut impl FnMut(&R) -> S) -> StorageMap<S> {
        let entries = self
            .entries
            .iter()
            .map(|(k, s)| {
                let value = s
                    .value
                    .clone()
                    .try_map_refs::<S, std::convert::Infallible>(&mut |r| Ok(Value::Ref(f(&r))))
                    .unwrap_or_else(|e| match e {});
                (
                    k.clone(),
                    Stored {
                        value,
                        size: s.size,
                    },
                )
            })
            .collect();
        StorageMap {
            entries,
            bytes: self.bytes,
        }
    }

    /// Replaces, in place, every reference `r` for which `f(r)` is `Some`.
    /// Sizes do not change (a reference always counts the same).
    pub fn rebind(&mut self, f: &mut impl FnMut(&R) -> Option<R>) {
        for stored in self.entries.values_mut() {
            let mut hit = false;
            stored.value.for_each_ref(&mut |r| hit |= f(r).is_some());
            if hit {
                let value = std::mem::replace(&mut stored.value, Value::Bool(false));
                stored.value = value
                    .try_map_refs::<R, std::convert::Infallible>(&mut |r| {
                        Ok(Value::Ref(f(&r).unwrap_or(r)))
                    })
                    .unwrap_or_else(|e| match e {});
            }
        }
    }
}

/// The size a value counts for: its canonical encoding, each reference
/// counted as [`StorageMap::REF_BYTES`].
pub(crate) fn value_size<R>(value: &Value<R>) -> usize {
    let mut out = Vec::new();
    let mut refs = 0usize;
    pola_syrup::encode_with_refs(value, &mut out, &mut |_, _| refs = refs.saturating_add(1));
    out.len()
        .saturating_add(refs.saturating_mul(StorageMap::<u8>::REF_BYTES))
}

/// A pending write: a new value, or a deletion.
type Write<R> = Option<Stored<R>>;

/// The storage of one instance during an entry: the committed base and the
/// entry's staged writes.
#[derive(Debug)]
pub(crate) struct Staging<R> {
    base: Arc<StorageMap<R>>,
    writes: BTreeMap<Vec<u8>, Write<R>>,
    /// Keys and bytes of the view (base with writes applied).
    keys: usize,
    bytes: usize,
    /// Whether this entry has written (the copy on commit was charged).
    wrote: bool,
    quota: Quota,
}

impl<R: Clone + Ord> Staging<R> {
    pub(crate) fn new(quota: Quota) -> Self {
        Staging {
            base: Arc::new(StorageMap::new()),
            writes: BTreeMap::new(),
            keys: 0,
            bytes: 0,
            wrote: false,
            quota,
        }
    }

    /// The committed storage.
    pub(crate) fn base(&self) -> &Arc<StorageMap<R>> {
        &self.base
    }

    /// Replaces the committed storage (dropping staged writes).
    pub(crate) fn set_base(&mut self, base: Arc<StorageMap<R>>) {
        self.base = base;
        self.discard();
    }

    /// The longest key allowed.
    pub(crate) fn key_limit(&self) -> usize {
        self.quota.key_bytes
    }

    /// Whether this entry has written yet.
    pub(crate) fn has_written(&self) -> bool {
        self.wrote
    }

    /// The value under `key`, as this entry sees it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Value<R>> {
        match self.writes.get(key) {
            Some(w) => w.as_ref().map(|s| &s.value),
            None => self.base.get(key),
        }
    }

    /// The value under `key` and its size, as this entry sees it.
    pub(crate) fn get_sized(&self, key: &[u8]) -> Option<(&Value<R>, usize)> {
        match self.writes.get(key) {
            Some(w) => w.as_ref().map(|s| (&s.value, s.size)),
            None => self.base.entries.get(key).map(|s| (&s.value, s.size)),
        }
    }

    fn current_size(&self, key: &[u8]) -> Option<usize> {
        match self.writes.get(key) {
            Some(w) => w.as_ref().map(|s| s.size),
            None => self.base.entries.get(key).map(|s| s.size),
        }
    }

    /// Checks a key against the quota.
    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), Code> {
        if key.len() > self.quota.key_bytes {
            return Err(Code::TooLarge);
        }
        Ok(())
    }

    /// Stages `key = value`.
    ///
    /// # Errors
    /// [`Code::TooLarge`] for a key or value over its limit,
    /// [`Code::StorageFull`] past the number of keys or total bytes. Nothing
    /// changes on error.
    pub(crate) fn put(&mut self, key: Vec<u8>, value: Value<R>) -> Result<(), Code> {
        self.check_key(&key)?;
        let vsize = value_size(&value);
        if vsize > self.quota.value_bytes {
            return Err(Code::TooLarge);
        }
        let size = key.len().saturating_add(vsize);
        let old = self.current_size(&key);
        let keys = self.keys.saturating_add(usize::from(old.is_none()));
        let bytes = self
            .bytes
            .saturating_sub(old.unwrap_or(0))
            .saturating_add(size);
        // A put that does not grow the map is always allowed (so a map
        // restored over quota can shrink).
        let grows = old.is_none_or(|o| size > o);
        if grows && (keys > self.quota.keys || bytes > self.quota.total_bytes) {
            return Err(Code::StorageFull);
        }
        self.writes.insert(key, Some(Stored { value, size }));
        self.keys = keys;
        self.bytes = bytes;
        self.wrote = true;
        Ok(())
    }

    /// Stages the removal of `key`.
    ///
    /// # Errors
    /// [`Code::TooLarge`] for a key over the limit, [`Code::NotFound`] if
    /// the key is not there.
    pub(crate) fn delete(&mut self, key: Vec<u8>) -> Result<(), Code> {
        self.check_key(&key)?;
        let old = self.current_size(&key).ok_or(Code::NotFound)?;
        self.writes.insert(key, None);
        self.keys = self.keys.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(old);
        self.wrote = true;
        Ok(())
    }

    /// Applies the staged writes to the base (copying it if shared).
    pub(crate) fn commit(&mut self) {
        if !self.writes.is_empty() {
            let map = Arc::make_mut(&mut self.base);
            for (key, write) in std::mem::take(&mut self.writes) {
                match write {
                    Some(s) => {
                        map.entries.insert(key, s);
                    }
                    None => {
                        map.entries.remove(&key);
                    }
                }
            }
            map.bytes = self.bytes;
        }
        self.discard();
    }

    /// Drops the staged writes.
    pub(crate) fn discard(&mut self) {
        self.writes.clear();
        self.keys = self.base.len();
        self.bytes = self.base.bytes;
        self.wrote = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> Quota {
        Quota {
            key_bytes: 8,
            value_bytes: 32,
            keys: 3,
            total_bytes: 60,
        }
    }

    #[test]
    fn writes_are_seen_at_once_and_applied_only_on_commit() {
        let mut s = Staging::<u32>::new(quota());
        s.put(b"a".to_vec(), Value::int(1i64)).unwrap_or_default();
        assert_eq!(s.get(b"a"), Some(&Value::int(1i64)));
        s.discard();
        assert_eq!(s.get(b"a"), None);
        assert!(s.base().is_empty());
        s.put(b"a".to_vec(), Value::int(1i64)).unwrap_or_default();
        s.commit();
        assert_eq!(s.base().get(b"a"), Some(&Value::int(1i64)));
        assert_eq!(s.delete(b"a".to_vec()), Ok(()));
        assert_eq!(s.delete(b"a".to_vec()), Err(Code::NotFound));
        s.discard();
        assert_eq!(s.get(b"a"), Some(&Value::int(1i64)));
    }

    #[test]
    fn quotas_refuse_and_change_nothing() {
        let mut s = Staging::<u32>::new(quota());
        assert_eq!(
            s.put(b"123456789".to_vec(), Value::Bool(true)),
            Err(Code::TooLarge)
        );
        assert_eq!(
            s.put(b"k".to_vec(), Value::bytes(vec![0u8; 40])),
            Err(Code::TooLarge)
        );
        for k in [b"a", b"b", b"c"] {
            assert_eq!(s.put(k.to_vec(), Value::Bool(true)), Ok(()));
        }
        assert_eq!(
            s.put(b"d".to_vec(), Value::Bool(true)),
            Err(Code::StorageFull)
        );
        // Replacing an existing key needs no new key.
        assert_eq!(s.put(b"a".to_vec(), Value::Bool(false)), Ok(()));
        // Total bytes: two values of 31 bytes do not fit in 60.
        assert_eq!(s.put(b"a".to_vec(), Value::bytes(vec![0u8; 27])), Ok(()));
        assert_eq!(
            s.put(b"b".to_vec(), Value::bytes(vec![0u8; 27])),
            Err(Code::StorageFull)
        );
        assert_eq!(s.get(b"b"), Some(&Value::Bool(true)));
        s.commit();
        assert_eq!(s.base().len(), 3);
        assert!(s.base().bytes() <= 60);
    }

    #[test]
    fn a_restored_map_over_quota_can_only_shrink() {
        let big = StorageMap::restore((0..10u8).map(|i| (vec![i], Value::<u32>::Bool(true))));
        let mut s = Staging::new(quota());
        s.set_base(Arc::new(big));
        assert_eq!(s.put(vec![42], Value::Bool(true)), Err(Code::StorageFull));
        assert_eq!(s.put(vec![1], Value::Bool(false)), Ok(()));
        assert_eq!(s.delete(vec![2]), Ok(()));
        s.commit();
        assert_eq!(s.base().len(), 9);
    }

    #[test]
    fn references_count_the_same_whatever_their_number() {
        let a = value_size(&Value::List(vec![Value::Ref(1u64)]));
        let b = value_size(&Value::List(vec![Value::Ref(u64::MAX)]));
        assert_eq!(a, b);
        assert_eq!(a, 2 + StorageMap::<u64>::REF_BYTES);
    }
}
