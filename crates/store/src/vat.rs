//! [`VatBackend`]: one vat instance's namespace in a [`crate::Store`].
//!
//! Tables of instance `NAME`:
//! - `vat/NAME/objects`: `u64` → `&[u8]`, object id → record (opaque);
//! - `vat/NAME/roots`: `&str` → `u64`, root name → object id;
//! - `vat/NAME/meta`: `&str` → `u64`, `next_id` → the id counter.
//!
//! Invariant (upheld here): a [`Batch`] is applied in one write
//! transaction committed with the engine's default durability
//! (`Durability::Immediate`): when `write` returns `Ok` the batch is on
//! disk; if the process dies before, none of it is.

use std::fmt;
use std::sync::Arc;

use pola_vat::backend::{Backend, BackendError, Batch, Opened};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::StoreError;
use crate::store::{NEXT_ID, Part, Shared, vat_table};

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
    fn drop(&mut self) {
        self.shared.live().remove(&self.name);
    }
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
}

impl Backend for VatBackend {
    fn open(&mut self) -> Result<Opened, BackendError> {
        if let Some(opened) = self.read_opened()? {
            return Ok(opened);
        }
        let txn = self.shared.db.begin_write().map_err(|e| self.fail(e))?;
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
        txn.commit().map_err(|e| self.fail(e))?;
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
        let txn = self.shared.db.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut objects = txn
                .open_table(objects_def(&self.objects))
                .map_err(|e| self.fail(e))?;
            for (id, record) in &batch.objects {
                objects
                    .insert(*id, record.as_slice())
                    .map_err(|e| self.fail(e))?;
            }
            for id in &batch.deletes {
                objects.remove(*id).map_err(|e| self.fail(e))?;
            }
            let mut roots = txn
                .open_table(str_u64_def(&self.roots))
                .map_err(|e| self.fail(e))?;
            for (name, id) in &batch.roots {
                match id {
                    Some(id) => roots.insert(name.as_str(), *id).map(|_| ()),
                    None => roots.remove(name.as_str()).map(|_| ()),
                }
                .map_err(|e| self.fail(e))?;
            }
            let mut meta = txn
                .open_table(str_u64_def(&self.meta))
                .map_err(|e| self.fail(e))?;
            let stored = meta
                .get(NEXT_ID)
                .map_err(|e| self.fail(e))?
                .map(|v| v.value())
                .unwrap_or(0);
            meta.insert(NEXT_ID, batch.next_id.max(stored))
                .map_err(|e| self.fail(e))?;
        }
        txn.commit().map_err(|e| self.fail(e))
    }
}
