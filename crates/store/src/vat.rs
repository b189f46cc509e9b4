//! [`VatBackend`]: one vat instance's namespace in a [`crate::Store`].
//!
//! Tables of instance `NAME`:
//! - `vat/NAME/objects`: `u64` → `&[u8]`, object id → record (opaque);
//! - `vat/NAME/roots`: `&str` → `u64`, root name → object id;
//! - `vat/NAME/meta`: `&str` → `u64`, `next_id` → the id counter.
//!
//! Invariants (upheld here):
//! - `write` first appends the batch to the store's write-ahead log and
//!   syncs it, then applies it to the engine in one transaction committed
//!   without a sync (`Durability::None`: readers see it at once). When
//!   `write` returns `Ok` the batch is on disk (in the log, replayed at
//!   the next open if the engine's copy was lost); if the process dies
//!   before the log entry is whole, none of it is (a torn last entry is
//!   discarded); if applying fails, the entry is taken back before `write`
//!   returns the error.
//! - An instance's tables exist in the engine's durable state before any
//!   log entry names it (`open`, or `write` on a backend not opened, makes
//!   them with a durable commit).
//! - A batch too large for one log entry is applied in one durable commit
//!   instead, which is also a checkpoint.

use std::fmt;
use std::sync::Arc;

use pola_vat::backend::{Backend, BackendError, Batch, Opened};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::error::StoreError;
use crate::store::{NEXT_ID, Part, Shared, commit_durable, vat_table};

/// The [`Backend`] of one vat instance, from [`crate::Store::vat`].
///
/// It may move to the vat's own thread; many backends of one store write
/// concurrently (the engine runs their transactions one after another).
/// Dropping it frees the instance name for another backend.
pub struct VatBackend {
    shared: Arc<Shared>,
    name: String,
    objects: String,
    roots: String,
    meta: String,
    /// The instance's tables are known to exist durably.
    ready: bool,
}

impl fmt::Debug for VatBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VatBackend")
            .field("store", &self.shared.path)
            .field("name", &self.name)
            .finish()
    }
}

impl Drop for VatBackend {
    /// A best-effort checkpoint (the vat is stopping; nothing is lost if
    /// it fails), then frees the name.
    fn drop(&mut self) {
        let _ = self.shared.checkpoint();
        self.shared.live().remove(&self.name);
    }
}

/// Applies `batch` to the tables of instance `name` in `txn`: objects
/// written, then deleted, roots set or removed, the counter raised to
/// `next_id` (never lowered). Applying a batch again, or a run of batches
/// again in order, leaves the same state (every change is a blind write
/// or a maximum), which replay relies on.
pub(crate) fn apply_batch(
    txn: &WriteTransaction,
    name: &str,
    batch: &Batch,
) -> Result<(), redb::Error> {
    let objects_name = vat_table(name, Part::Objects);
    let roots_name = vat_table(name, Part::Roots);
    let meta_name = vat_table(name, Part::Meta);
    let mut objects = txn.open_table(objects_def(&objects_name))?;
    for (id, record) in &batch.objects {
        objects.insert(*id, record.as_slice())?;
    }
    for id in &batch.deletes {
        objects.remove(*id)?;
    }
    let mut roots = txn.open_table(str_u64_def(&roots_name))?;
    for (root, id) in &batch.roots {
        match id {
            Some(id) => roots.insert(root.as_str(), *id).map(|_| ())?,
            None => roots.remove(root.as_str()).map(|_| ())?,
        }
    }
    let mut meta = txn.open_table(str_u64_def(&meta_name))?;
    let stored = meta.get(NEXT_ID)?.map(|v| v.value()).unwrap_or(0);
    meta.insert(NEXT_ID, batch.next_id.max(stored))?;
    Ok(())
}

fn objects_def(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

fn str_u64_def(name: &str) -> TableDefinition<'_, &'static str, u64> {
    TableDefinition::new(name)
}

impl VatBackend {
    pub(crate) fn new(shared: Arc<Shared>, name: String) -> Self {
        VatBackend {
            objects: vat_table(&name, Part::Objects),
            roots: vat_table(&name, Part::Roots),
            meta: vat_table(&name, Part::Meta),
            shared,
            name,
            ready: false,
        }
    }

    /// The instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&self, e: impl Into<redb::Error>) -> BackendError {
        let e: StoreError = self.shared.engine(e);
        BackendError(format!("instance {:?}: {e}", self.name))
    }

    /// Reads the counter and roots; `None` if the tables are not all there.
    fn read_opened(&self) -> Result<Option<Opened>, BackendError> {
        let txn = self.shared.db.begin_read().map_err(|e| self.fail(e))?;
        let meta = match txn.open_table(str_u64_def(&self.meta)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        let roots = match txn.open_table(str_u64_def(&self.roots)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        match txn.open_table(objects_def(&self.objects)) {
            Ok(_) => {}
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        }
        let next_id = meta
            .get(NEXT_ID)
            .map_err(|e| self.fail(e))?
            .map(|v| v.value())
            .unwrap_or(0);
        let mut opened = Opened {
            next_id,
            ..Opened::default()
        };
        for row in roots.iter().map_err(|e| self.fail(e))? {
            let (k, v) = row.map_err(|e| self.fail(e))?;
            opened.roots.insert(k.value().to_string(), v.value());
        }
        Ok(Some(opened))
    }

    fn fail_store(&self, e: StoreError) -> BackendError {
        BackendError(format!("instance {:?}: {e}", self.name))
    }

    /// Makes the instance's tables (in a durable commit) unless they exist.
    fn make_tables(&mut self) -> Result<(), BackendError> {
        let s = self.shared.clone();
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut meta = txn
                .open_table(str_u64_def(&self.meta))
                .map_err(|e| self.fail(e))?;
            if meta.get(NEXT_ID).map_err(|e| self.fail(e))?.is_none() {
                meta.insert(NEXT_ID, 0).map_err(|e| self.fail(e))?;
            }
            txn.open_table(str_u64_def(&self.roots))
                .map_err(|e| self.fail(e))?;
            txn.open_table(objects_def(&self.objects))
                .map_err(|e| self.fail(e))?;
        }
        commit_durable(&s.path, &mut log, txn).map_err(|e| self.fail_store(e))?;
        self.ready = true;
        Ok(())
    }
}

impl Backend for VatBackend {
    fn open(&mut self) -> Result<Opened, BackendError> {
        if let Some(opened) = self.read_opened()? {
            self.ready = true;
            return Ok(opened);
        }
        self.make_tables()?;
        self.read_opened()?
            .ok_or_else(|| BackendError(format!("instance {:?}: tables vanished", self.name)))
    }

    fn load(&mut self, id: u64) -> Result<Option<Vec<u8>>, BackendError> {
        let txn = self.shared.db.begin_read().map_err(|e| self.fail(e))?;
        let table = match txn.open_table(objects_def(&self.objects)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        let found = table.get(id).map_err(|e| self.fail(e))?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    fn ids(&mut self) -> Result<Vec<u64>, BackendError> {
        let txn = self.shared.db.begin_read().map_err(|e| self.fail(e))?;
        let table = match txn.open_table(objects_def(&self.objects)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.fail(e)),
        };
        let mut ids = Vec::new();
        for row in table.iter().map_err(|e| self.fail(e))? {
            let (k, _) = row.map_err(|e| self.fail(e))?;
            ids.push(k.value());
        }
        Ok(ids)
    }

    fn write(&mut self, batch: &Batch) -> Result<(), BackendError> {
        if !self.ready {
            if self.read_opened()?.is_some() {
                self.ready = true;
            } else {
                self.make_tables()?;
            }
        }
        let s = self.shared.clone();
        let mut log = s.lock_log();
        log.check_usable().map_err(|e| self.fail_store(e))?;
        if log.needs_marking() {
            // First entry of this store: make the log file, and record it
            // in `meta` (a durable commit) before anything is written to it.
            log.create_if_absent().map_err(|e| self.fail_store(e))?;
            let txn = s.db.begin_write().map_err(|e| self.fail(e))?;
            commit_durable(&s.path, &mut log, txn).map_err(|e| self.fail_store(e))?;
        }
        let Some(entry) = log.encode(&self.name, batch) else {
            // Too large for one entry: one durable commit, a checkpoint.
            let txn = s.db.begin_write().map_err(|e| self.fail(e))?;
            apply_batch(&txn, &self.name, batch).map_err(|e| self.fail(e))?;
            return commit_durable(&s.path, &mut log, txn).map_err(|e| self.fail_store(e));
        };
        let at = log.append(&entry).map_err(|e| self.fail_store(e))?;
        drop(entry);
        // The batch is durable now; apply it for readers, without a sync.
        let applied = (|| -> Result<(), redb::Error> {
            let mut txn = s.db.begin_write()?;
            txn.set_durability(Durability::None)?;
            apply_batch(&txn, &self.name, batch)?;
            txn.commit()?;
            Ok(())
        })();
        if let Err(e) = applied {
            log.retract(at);
            return Err(self.fail(e));
        }
        if log.wants_checkpoint() {
            // Best effort: the batch is durable whatever happens here, and
            // a checkpoint that fails is tried again after the next batch.
            let _ = s.checkpoint_locked(&mut log);
        }
        Ok(())
    }
}
