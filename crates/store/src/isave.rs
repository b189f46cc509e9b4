//! Savepoints of one vat instance: copies of its tables inside the store.
//!
//! Tables (see the crate docs):
//! - `instance_savepoints`: `&str` → `(u64, u64)`, `INSTANCE/NAME` →
//!   (serial, unix seconds taken); the serial orders them, oldest first;
//! - `isave/INSTANCE/NAME/{objects,roots,meta}`: the copy, with the same
//!   key and value types as the instance's own tables.
//!
//! Invariants (upheld here):
//! - A catalog row and its three copied tables are made, and removed,
//!   in one transaction; every change here is one durable commit (a
//!   checkpoint, so batches that were only in the write-ahead log are in
//!   the copy or are replaced by the rollback).
//! - A rollback replaces an instance's tables only while no backend of
//!   that instance is live (the `live` set is held for its whole run), and
//!   touches no other instance, the host table or any savepoint.
//! - Copies go row by row inside one write transaction: memory does not
//!   grow with the instance (the engine's own dirty pages aside).

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use crate::error::{Result, StoreError};
use crate::store::{
    Part, Store, Table, check_name, commit_durable, now_secs, saved_table, vat_table,
};

/// The catalog of instance savepoints.
pub(crate) const INSTANCE_SAVEPOINTS: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("instance_savepoints");

fn key(instance: &str, name: &str) -> String {
    format!("{instance}/{name}")
}

/// Copies table `from` into a fresh table `to` (deleted first if there),
/// row by row. Both have `part`'s types.
fn copy_table(
    txn: &WriteTransaction,
    part: Part,
    from: &str,
    to: &str,
) -> redb::Result<(), redb::Error> {
    match part {
        Part::Objects => {
            let to_def = TableDefinition::<u64, &[u8]>::new(to);
            txn.delete_table(to_def)?;
            let src = txn.open_table(TableDefinition::<u64, &[u8]>::new(from))?;
            let mut dst = txn.open_table(to_def)?;
            for row in src.iter()? {
                let (k, v) = row?;
                dst.insert(k.value(), v.value())?;
            }
        }
        Part::Roots | Part::Meta => {
            let to_def = TableDefinition::<&str, u64>::new(to);
            txn.delete_table(to_def)?;
            let src = txn.open_table(TableDefinition::<&str, u64>::new(from))?;
            let mut dst = txn.open_table(to_def)?;
            for row in src.iter()? {
                let (k, v) = row?;
                dst.insert(k.value(), v.value())?;
            }
        }
    }
    Ok(())
}

/// Deletes table `name` (of `part`'s types) if it exists.
fn delete_table(txn: &WriteTransaction, part: Part, name: &str) -> redb::Result<bool, redb::Error> {
    Ok(match part {
        Part::Objects => txn.delete_table(TableDefinition::<u64, &[u8]>::new(name))?,
        Part::Roots | Part::Meta => txn.delete_table(TableDefinition::<&str, u64>::new(name))?,
    })
}

/// Deletes every savepoint of `instance` (catalog rows and copies) in
/// `txn`; for [`Store::drop_instance`].
pub(crate) fn delete_all(txn: &WriteTransaction, instance: &str) -> redb::Result<(), redb::Error> {
    let mut copies = Vec::new();
    for handle in txn.list_tables()? {
        if let Some(Table::Saved(vat, _, part)) = Table::parse(handle.name())
            && vat == instance
        {
            copies.push((handle.name().to_string(), part));
        }
    }
    for (name, part) in copies {
        delete_table(txn, part, &name)?;
    }
    let mut catalog = txn.open_table(INSTANCE_SAVEPOINTS)?;
    // Instance names have no '/', and '0' follows '/': this range is
    // exactly the keys `INSTANCE/…`.
    let (lo, hi) = (format!("{instance}/"), format!("{instance}0"));
    catalog.retain_in(lo.as_str()..hi.as_str(), |_, _| false)?;
    Ok(())
}

impl Store {
    /// Takes savepoint `name` of instance `instance` alone: a copy of its
    /// objects, roots and counter, made row by row in one durable write
    /// transaction (a checkpoint, so every batch written so far is in it).
    /// The instance's backend may be live meanwhile (the copy is one
    /// consistent state between two of its batches). The copy costs time
    /// and space in proportion to the instance; delete savepoints you no
    /// longer need.
    ///
    /// Instance savepoints are tables of the store: a whole-store
    /// [`Store::savepoint`] includes them and [`Store::rollback`] restores
    /// them as they were, [`Store::drop_instance`] deletes them, and
    /// exports leave them out.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`] for a bad instance or savepoint name;
    /// [`StoreError::NotFound`] if there is no such instance;
    /// [`StoreError::AlreadyExists`] if the instance has a savepoint
    /// `name`; the write failed.
    pub fn savepoint_instance(&self, instance: &str, name: &str) -> Result<()> {
        let s = &*self.shared;
        check_name(&s.path, "instance", instance)?;
        check_name(&s.path, "savepoint", name)?;
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        let exists = txn
            .list_tables()
            .map_err(|e| s.engine(e))?
            .any(|h| matches!(Table::parse(h.name()), Some(Table::Vat(n, _)) if n == instance));
        if !exists {
            txn.abort().map_err(|e| s.engine(e))?;
            return Err(StoreError::NotFound {
                path: s.path.clone(),
                what: "instance",
                name: instance.to_string(),
            });
        }
        {
            let mut catalog = txn
                .open_table(INSTANCE_SAVEPOINTS)
                .map_err(|e| s.engine(e))?;
            if catalog
                .get(key(instance, name).as_str())
                .map_err(|e| s.engine(e))?
                .is_some()
            {
                drop(catalog);
                txn.abort().map_err(|e| s.engine(e))?;
                return Err(StoreError::AlreadyExists {
                    path: s.path.clone(),
                    what: format!("savepoint {name:?} of instance {instance:?}"),
                });
            }
            let mut last = 0;
            for row in catalog.iter().map_err(|e| s.engine(e))? {
                let (_, v) = row.map_err(|e| s.engine(e))?;
                last = last.max(v.value().0);
            }
            let serial = last.checked_add(1).ok_or_else(|| StoreError::Corrupt {
                path: s.path.clone(),
                reason: "a savepoint's serial number is impossibly large".into(),
            })?;
            catalog
                .insert(key(instance, name).as_str(), (serial, now_secs()))
                .map_err(|e| s.engine(e))?;
        }
        for part in Part::ALL {
            copy_table(
                &txn,
                part,
                &vat_table(instance, part),
                &saved_table(instance, name, part),
            )
            .map_err(|e| s.engine(e))?;
        }
        commit_durable(&s.path, &mut log, txn)
    }

    /// The savepoints of instance `instance`, as (name, unix seconds when
    /// taken), oldest first; empty for an instance without any (or no
    /// such instance).
    ///
    /// # Errors
    /// [`StoreError::InvalidName`]; the store cannot be read.
    pub fn instance_savepoints(&self, instance: &str) -> Result<Vec<(String, u64)>> {
        let s = &*self.shared;
        check_name(&s.path, "instance", instance)?;
        let txn = s.db.begin_read().map_err(|e| s.engine(e))?;
        let catalog = match txn.open_table(INSTANCE_SAVEPOINTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(s.engine(e)),
        };
        let (lo, hi) = (format!("{instance}/"), format!("{instance}0"));
        let mut list = Vec::new();
        for row in catalog
            .range(lo.as_str()..hi.as_str())
            .map_err(|e| s.engine(e))?
        {
            let (k, v) = row.map_err(|e| s.engine(e))?;
            let (serial, at) = v.value();
            let name = k.value()[lo.len()..].to_string();
            list.push((serial, name, at));
        }
        list.sort();
        Ok(list.into_iter().map(|(_, n, at)| (n, at)).collect())
    }

    /// Returns instance `instance` to its savepoint `name`: its objects,
    /// roots and counter are replaced by the saved copy, in one durable
    /// write transaction. Every other instance, the host table and every
    /// savepoint (of this instance too: the copy stays, for another
    /// rollback) are left as they are.
    ///
    /// The instance's vat must be stopped: a running vat holds state in
    /// memory that would no longer match the store.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`]; [`StoreError::InUse`] while a backend
    /// of `instance` is live; [`StoreError::NotFound`] for an unknown
    /// savepoint; [`StoreError::Corrupt`] if the saved copy is missing a
    /// table; the write failed.
    pub fn rollback_instance(&self, instance: &str, name: &str) -> Result<()> {
        let s = &*self.shared;
        check_name(&s.path, "instance", instance)?;
        check_name(&s.path, "savepoint", name)?;
        let live = s.live();
        if live.contains(instance) {
            return Err(StoreError::InUse {
                path: s.path.clone(),
                what: format!("instance {instance:?}"),
            });
        }
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        let known = {
            let catalog = txn
                .open_table(INSTANCE_SAVEPOINTS)
                .map_err(|e| s.engine(e))?;
            catalog
                .get(key(instance, name).as_str())
                .map_err(|e| s.engine(e))?
                .is_some()
        };
        if !known {
            txn.abort().map_err(|e| s.engine(e))?;
            return Err(StoreError::NotFound {
                path: s.path.clone(),
                what: "instance savepoint",
                name: key(instance, name),
            });
        }
        let tables: Vec<String> = txn
            .list_tables()
            .map_err(|e| s.engine(e))?
            .map(|h| h.name().to_string())
            .collect();
        for part in Part::ALL {
            let saved = saved_table(instance, name, part);
            if !tables.contains(&saved) {
                txn.abort().map_err(|e| s.engine(e))?;
                return Err(StoreError::Corrupt {
                    path: s.path.clone(),
                    reason: format!(
                        "savepoint {name:?} of instance {instance:?} has no table {saved:?}"
                    ),
                });
            }
        }
        for part in Part::ALL {
            copy_table(
                &txn,
                part,
                &saved_table(instance, name, part),
                &vat_table(instance, part),
            )
            .map_err(|e| s.engine(e))?;
        }
        commit_durable(&s.path, &mut log, txn)?;
        drop(live);
        Ok(())
    }

    /// Deletes savepoint `name` of instance `instance`, in one durable
    /// write transaction. Returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`]; the write failed.
    pub fn delete_instance_savepoint(&self, instance: &str, name: &str) -> Result<bool> {
        let s = &*self.shared;
        check_name(&s.path, "instance", instance)?;
        check_name(&s.path, "savepoint", name)?;
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        let existed = {
            let mut catalog = txn
                .open_table(INSTANCE_SAVEPOINTS)
                .map_err(|e| s.engine(e))?;
            let removed = catalog
                .remove(key(instance, name).as_str())
                .map_err(|e| s.engine(e))?;
            removed.is_some()
        };
        for part in Part::ALL {
            delete_table(&txn, part, &saved_table(instance, name, part))
                .map_err(|e| s.engine(e))?;
        }
        commit_durable(&s.path, &mut log, txn)?;
        Ok(existed)
    }
}
