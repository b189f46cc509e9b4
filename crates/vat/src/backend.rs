//! The seam between a persistent vat and the store that keeps it: the
//! [`Backend`] trait (implemented by `pola-store`, or by a test) and the
//! [`Batch`] a vat writes.
//!
//! Invariants (upheld by the backend, relied on by the vat):
//! - [`Backend::write`] is atomic and durable: when it returns `Ok`, every
//!   part of the batch survives a crash or power loss; when it fails or the
//!   process dies during it, none of it is visible after restart.
//! - Object records are opaque bytes to the backend; the vat encodes and
//!   decodes them (and treats what it reads back as untrusted: a store file
//!   is attack surface).

use std::collections::BTreeMap;

/// What a backend reports when it opens a vat's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// The next object id to allocate (every id below it may be in use).
    pub next_id: u64,
    /// The vat's named roots: name → object id.
    pub roots: BTreeMap<String, u64>,
}

/// The effects of the turns a vat ran since its last write, written as one
/// durable transaction (group commit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// New or changed objects: id → encoded record (last write wins).
    pub objects: Vec<(u64, Vec<u8>)>,
    /// Objects to delete.
    pub deletes: Vec<u64>,
    /// Roots set (`Some(id)`) or removed (`None`).
    pub roots: Vec<(String, Option<u64>)>,
    /// The vat's next object id after this batch.
    pub next_id: u64,
}

impl Batch {
    /// Whether the batch changes nothing but (perhaps) the id counter.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.deletes.is_empty() && self.roots.is_empty()
    }
}

/// Why a backend could not do what the vat asked. The text names the file
/// and the fault for the operator; it never crosses a capability boundary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Durable storage for one vat's objects (one namespace of a store).
///
/// A vat calls these on its own thread only. `load` is called lazily, the
/// first time after a start that an object is used; `write` once per group
/// of turns.
pub trait Backend: Send + 'static {
    /// Opens the namespace (creating it if new) and reports its id counter
    /// and roots.
    ///
    /// # Errors
    /// The store cannot be read, or its contents are not a vat namespace.
    fn open(&mut self) -> Result<Opened, BackendError>;

    /// The record of object `id`, if stored.
    ///
    /// # Errors
    /// The store cannot be read.
    fn load(&mut self, id: u64) -> Result<Option<Vec<u8>>, BackendError>;

    /// Writes `batch` atomically and durably (see the module docs).
    ///
    /// # Errors
    /// The write failed; nothing of the batch is visible afterwards.
    fn write(&mut self, batch: &Batch) -> Result<(), BackendError>;

    /// The ids of every stored object, ascending (for the vat's
    /// collection of unreachable objects and for eager migration).
    ///
    /// # Errors
    /// The store cannot be read.
    fn ids(&mut self) -> Result<Vec<u64>, BackendError>;
}

/// A backend in memory (for tests and for vats that want the persistent
/// object model without a disk): durable only as long as the process, but
/// shareable so a test can "restart" a vat on the same contents.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    inner: std::sync::Arc<std::sync::Mutex<MemoryContents>>,
}

/// What a [`MemoryBackend`] holds.
#[derive(Clone, Debug, Default)]
pub struct MemoryContents {
    /// Object records by id.
    pub objects: BTreeMap<u64, Vec<u8>>,
    /// Roots.
    pub roots: BTreeMap<String, u64>,
    /// The id counter.
    pub next_id: u64,
    /// Batches written so far.
    pub writes: u64,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the contents (to inspect them, or to corrupt them in a
    /// test).
    pub fn with<T>(&self, f: impl FnOnce(&mut MemoryContents) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Backend for MemoryBackend {
    fn open(&mut self) -> Result<Opened, BackendError> {
        Ok(self.with(|c| Opened {
            next_id: c.next_id,
            roots: c.roots.clone(),
        }))
    }

    fn load(&mut self, id: u64) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.with(|c| c.objects.get(&id).cloned()))
    }

    fn ids(&mut self) -> Result<Vec<u64>, BackendError> {
        Ok(self.with(|c| c.objects.keys().copied().collect()))
    }

    fn write(&mut self, batch: &Batch) -> Result<(), BackendError> {
        self.with(|c| {
            for (id, bytes) in &batch.objects {
                c.objects.insert(*id, bytes.clone());
            }
            for id in &batch.deletes {
                c.objects.remove(id);
            }
            for (name, id) in &batch.roots {
                match id {
                    Some(id) => c.roots.insert(name.clone(), *id),
                    None => c.roots.remove(name),
                };
            }
            c.next_id = c.next_id.max(batch.next_id);
            c.writes += 1;
        });
        Ok(())
    }
}
