//! [`Store`]: one redb file per host, broken down by vat instance.
//!
//! Invariants (upheld here):
//! - The file holds only pola's tables (see [`Table`]); `meta` says the
//!   format and the host id and is written once, when the file is made.
//! - At most one live [`VatBackend`] per instance name (`live`), so two
//!   writers never interleave batches of one vat, and an instance is never
//!   dropped or rolled back under a running vat.
//! - The savepoint name map (`savepoints`) describes history, so a rollback
//!   keeps it (minus the savepoints the rollback invalidated) rather than
//!   restoring the map as it was.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::backends::FileBackend;
use redb::{
    Builder, Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};

use crate::error::{Result, StoreError};
use crate::file::{self, Overlay};
use crate::log::{self, Log, LogId, LogMeta};
use crate::vat::{VatBackend, apply_batch};

/// The store format this build reads and writes (the `format` row of the
/// `meta` table).
pub const FORMAT: u64 = 1;

/// Longest instance or savepoint name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Longest key of the host table, in bytes.
pub const MAX_HOST_KEY_LEN: usize = 128;

/// Largest value of the host table, in bytes (1 MiB: host settings and
/// secrets, not object state).
pub const MAX_HOST_VALUE: usize = 1 << 20;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const SAVEPOINTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("savepoints");
pub(crate) const HOST: TableDefinition<&str, &[u8]> = TableDefinition::new("host");
pub(crate) const NEXT_ID: &str = "next_id";
/// `meta` row: the write-ahead log's id (16 bytes), once the log exists.
const LOG_ID: &str = "log_id";
/// `meta` row: the checkpoint, the last log sequence number in the
/// engine's last durable commit (u64 BE).
const LOG_SEQ: &str = "log_seq";

/// A host's id: 16 random bytes made when its store was created, kept by
/// export and import.
pub type HostId = [u8; 16];

/// What a table of the store is, parsed from its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Table {
    /// `meta`: `&str` → `&[u8]` (`format`, `host_id`, `created`).
    Meta,
    /// `savepoints`: name → (engine savepoint id, unix seconds).
    Savepoints,
    /// `host`: `&str` → `&[u8]`, the host's own rows (identity key, Swiss
    /// numbers of served objects, …).
    Host,
    /// `vat/{name}/{part}`.
    Vat(String, Part),
    /// `instance_savepoints`: `INSTANCE/NAME` → (serial, unix seconds):
    /// the savepoints of single instances.
    InstanceSavepoints,
    /// `isave/{instance}/{savepoint}/{part}`: an instance savepoint's copy
    /// of table `part` (same key and value types as the instance's).
    Saved(String, String, Part),
}

/// The tables of one vat instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Part {
    /// `u64` → `&[u8]`: object id → record.
    Objects,
    /// `&str` → `u64`: root name → object id.
    Roots,
    /// `&str` → `u64`: `next_id` → the id counter.
    Meta,
}

impl Part {
    pub(crate) const ALL: [Part; 3] = [Part::Meta, Part::Objects, Part::Roots];

    fn suffix(self) -> &'static str {
        match self {
            Part::Objects => "objects",
            Part::Roots => "roots",
            Part::Meta => "meta",
        }
    }

    fn parse(suffix: &str) -> Option<Part> {
        match suffix {
            "objects" => Some(Part::Objects),
            "roots" => Some(Part::Roots),
            "meta" => Some(Part::Meta),
            _ => None,
        }
    }
}

/// The name of table `part` of instance `vat`.
pub(crate) fn vat_table(vat: &str, part: Part) -> String {
    format!("vat/{vat}/{}", part.suffix())
}

/// The name of instance savepoint `save`'s copy of table `part` of
/// instance `vat`.
pub(crate) fn saved_table(vat: &str, save: &str, part: Part) -> String {
    format!("isave/{vat}/{save}/{}", part.suffix())
}

impl Table {
    pub(crate) fn parse(name: &str) -> Option<Table> {
        match name {
            "meta" => return Some(Table::Meta),
            "savepoints" => return Some(Table::Savepoints),
            "host" => return Some(Table::Host),
            "instance_savepoints" => return Some(Table::InstanceSavepoints),
            _ => {}
        }
        if let Some(rest) = name.strip_prefix("isave/") {
            let mut it = rest.split('/');
            let (vat, save, part) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() {
                return None;
            }
            name_rule(vat).ok()?;
            name_rule(save).ok()?;
            return Some(Table::Saved(
                vat.to_string(),
                save.to_string(),
                Part::parse(part)?,
            ));
        }
        let rest = name.strip_prefix("vat/")?;
        let (vat, part) = rest.rsplit_once('/')?;
        name_rule(vat).ok()?;
        Some(Table::Vat(vat.to_string(), Part::parse(part)?))
    }
}

/// Which naming rule `name` breaks, if any: 1 to 64 bytes of
/// `[A-Za-z0-9._-]`. The rule of instance and savepoint names, and of the
/// names a host gives things (so they can go anywhere a store name goes).
///
/// # Errors
/// The rule broken, in words.
pub fn name_rule(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("it is longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Which rule host key `key` breaks, if any: 1 to 128 bytes of
/// `[A-Za-z0-9._:/-]`.
pub(crate) fn host_key_rule(key: &str) -> std::result::Result<(), &'static str> {
    if key.is_empty() {
        return Err("it is empty");
    }
    if key.len() > MAX_HOST_KEY_LEN {
        return Err("it is longer than 128 bytes");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/'))
    {
        return Err("only letters, digits, '.', '_', '-', ':' and '/' are allowed");
    }
    Ok(())
}

pub(crate) fn check_name(path: &Path, what: &'static str, name: &str) -> Result<()> {
    name_rule(name).map_err(|reason| StoreError::InvalidName {
        path: path.to_path_buf(),
        what,
        name: name.to_string(),
        reason,
    })
}

fn check_host_key(path: &Path, key: &str) -> Result<()> {
    host_key_rule(key).map_err(|reason| StoreError::InvalidName {
        path: path.to_path_buf(),
        what: "host key",
        name: key.to_string(),
        reason,
    })
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What every handle on one open store shares.
pub(crate) struct Shared {
    pub(crate) db: Database,
    pub(crate) path: PathBuf,
    pub(crate) host_id: HostId,
    /// Instance names with a live [`VatBackend`].
    live: Mutex<BTreeSet<String>>,
    /// The write-ahead log. Lock order: this mutex, then the engine's
    /// write transaction.
    log: Mutex<Log>,
}

impl Shared {
    pub(crate) fn engine(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::engine(&self.path, e)
    }

    pub(crate) fn live(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The write-ahead log, locked. Take it before any write transaction.
    pub(crate) fn lock_log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every batch written so far part of the engine's durable
    /// state (one durable commit recording the log's last sequence
    /// number), if any was written since the last checkpoint.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let mut log = self.lock_log();
        self.checkpoint_locked(&mut log)
    }

    /// [`Shared::checkpoint`] with the log already locked.
    pub(crate) fn checkpoint_locked(&self, log: &mut Log) -> Result<()> {
        if !log.dirty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.engine(e))?;
        commit_durable(&self.path, log, txn)
    }
}

/// Commits `txn` durably (the engine syncs before this returns) as a
/// checkpoint: it also records the log's id and last sequence number in
/// `meta`, so every entry written so far is stale once it returns. Every
/// durable commit of an open store goes through here.
pub(crate) fn commit_durable(path: &Path, log: &mut Log, txn: WriteTransaction) -> Result<()> {
    let engine = |e: redb::Error| StoreError::engine(path, e);
    {
        let mut meta = txn.open_table(META).map_err(|e| engine(e.into()))?;
        meta.insert(LOG_SEQ, log.last().to_be_bytes().as_slice())
            .map_err(|e| engine(e.into()))?;
        if let Some(id) = log.id() {
            meta.insert(LOG_ID, id.as_slice())
                .map_err(|e| engine(e.into()))?;
        }
    }
    txn.commit().map_err(|e| engine(e.into()))?;
    log.checkpointed();
    Ok(())
}

/// The one state store of a pola host: a redb file holding every vat
/// instance's objects and roots, named savepoints of the whole store, and
/// pola's own `meta` table, plus its write-ahead log beside it (`PATH-log`:
/// one store is both files; see the crate docs).
///
/// A `Store` is shared by reference: [`Store::vat`] hands out one
/// [`VatBackend`] per instance, each of which may run on its own thread;
/// the engine serialises their write transactions. Dropping the `Store`
/// and every backend closes the file.
///
/// # Examples
///
/// ```
/// use pola_store::Store;
/// use pola_vat::backend::{Backend, Batch};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("pola-store-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("host.store");
/// # let _ = std::fs::remove_file(&path);
/// let store = Store::open(&path)?;
/// let mut vat = store.vat("counter")?;
/// let opened = vat.open()?;
/// vat.write(&Batch {
///     objects: vec![(opened.next_id, b"hello".to_vec())],
///     roots: vec![("main".into(), Some(opened.next_id))],
///     next_id: opened.next_id + 1,
///     ..Batch::default()
/// })?;
/// assert_eq!(store.instances()?, vec!["counter".to_string()]);
/// # drop(vat); drop(store); std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct Store {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path`, creating it (mode 0600) if nothing is
    /// there.
    ///
    /// An existing file is checked before anything is written to it: it
    /// must be a regular file (not reached through a symbolic link) that
    /// only its owner may read, begin with the engine's header, pass the
    /// engine's full checksum check, and hold pola's `meta` table with
    /// format [`FORMAT`]. Then its write-ahead log (`PATH-log`, if there is
    /// one) is checked whole: a private regular file, this store's, every
    /// entry intact but perhaps a torn last one. A refused store (either
    /// file) is left exactly as it was. A store that was not shut down
    /// cleanly (a crash, a power loss) is recovered to its last durable
    /// commit, then the log's later entries are applied, so every batch
    /// whose `write` returned `Ok` is there. The check reads the whole file,
    /// so opening costs a read of the store.
    ///
    /// # Errors
    /// [`StoreError::NotRegularFile`], [`StoreError::Permissions`],
    /// [`StoreError::NotAStore`], [`StoreError::Corrupt`],
    /// [`StoreError::NewerFormat`], [`StoreError::EngineVersion`],
    /// [`StoreError::Locked`] (open in another process or `Store`), or
    /// [`StoreError::Io`].
    pub fn open(path: &Path) -> Result<Store> {
        let checked = match file::open_checked(path)? {
            Some(c) => c,
            None => {
                match create_new(path) {
                    Ok(()) => {}
                    // Someone made it meanwhile: open theirs, with the checks.
                    Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                file::open_checked(path)?.ok_or_else(|| {
                    StoreError::io(
                        path,
                        "open",
                        std::io::Error::other("the new store vanished as it was created"),
                    )
                })?
            }
        };
        open_verified(path, checked)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The host id made when this store (or the one it was imported from)
    /// was created.
    pub fn host_id(&self) -> HostId {
        self.shared.host_id
    }

    /// The backend of vat instance `name` (created on its first
    /// [`pola_vat::backend::Backend::open`]). One backend per instance may
    /// be live at a time; dropping it frees the name.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`] unless `name` is 1 to 64 bytes of
    /// `[A-Za-z0-9._-]`; [`StoreError::InUse`] if a backend for `name` is
    /// live.
    pub fn vat(&self, name: &str) -> Result<VatBackend> {
        check_name(&self.shared.path, "instance", name)?;
        if !self.shared.live().insert(name.to_string()) {
            return Err(StoreError::InUse {
                path: self.shared.path.clone(),
                what: format!("instance {name:?}"),
            });
        }
        Ok(VatBackend::new(self.shared.clone(), name.to_string()))
    }

    /// The names of the vat instances in the store, in order.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn instances(&self) -> Result<Vec<String>> {
        let txn = self
            .shared
            .db
            .begin_read()
            .map_err(|e| self.shared.engine(e))?;
        let mut names = BTreeSet::new();
        for handle in txn.list_tables().map_err(|e| self.shared.engine(e))? {
            if let Some(Table::Vat(name, _)) = Table::parse(handle.name()) {
                names.insert(name);
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Deletes instance `name` and everything it stored, its instance
    /// savepoints too. Returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`]; [`StoreError::InUse`] if its backend is
    /// live; the write failed.
    pub fn drop_instance(&self, name: &str) -> Result<bool> {
        let s = &self.shared;
        check_name(&s.path, "instance", name)?;
        let live = s.live();
        if live.contains(name) {
            return Err(StoreError::InUse {
                path: s.path.clone(),
                what: format!("instance {name:?}"),
            });
        }
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        let mut existed = false;
        for part in Part::ALL {
            let table = vat_table(name, part);
            let handle = TableDefinition::<&str, u64>::new(&table);
            existed |= txn.delete_table(handle).map_err(|e| s.engine(e))?;
        }
        crate::isave::delete_all(&txn, name).map_err(|e| s.engine(e))?;
        commit_durable(&s.path, &mut log, txn)?;
        drop(live);
        Ok(existed)
    }

    /// The value of host row `key`, if there is one.
    ///
    /// The host table holds what belongs to the host rather than to a vat:
    /// its identity key, the Swiss numbers of the objects it serves, and
    /// the like. It is part of whole-store exports (not of instance
    /// exports) and of savepoints.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`] for a key breaking the rules (1 to 128
    /// bytes of `[A-Za-z0-9._:/-]`); the store cannot be read.
    pub fn host_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let s = &self.shared;
        check_host_key(&s.path, key)?;
        let txn = s.db.begin_read().map_err(|e| s.engine(e))?;
        let table = match txn.open_table(HOST) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(s.engine(e)),
        };
        let found = table.get(key).map_err(|e| s.engine(e))?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// Sets host row `key` to `value` (or deletes it, for `None`), in one
    /// durable transaction: when this returns `Ok` the change is on disk.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`] for a bad key; [`StoreError::TooLarge`]
    /// for a value over [`MAX_HOST_VALUE`]; the write failed.
    pub fn host_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        self.host_put_all(&[(key, value)])
    }

    /// Sets (or, for `None`, deletes) several host rows in one durable
    /// transaction: all of them are on disk when this returns `Ok`, none if
    /// it fails.
    ///
    /// # Errors
    /// As [`Store::host_put`]; nothing is written if any row is refused.
    pub fn host_put_all(&self, rows: &[(&str, Option<&[u8]>)]) -> Result<()> {
        let s = &self.shared;
        for (key, value) in rows {
            check_host_key(&s.path, key)?;
            if let Some(v) = value
                && v.len() > MAX_HOST_VALUE
            {
                return Err(StoreError::TooLarge {
                    path: s.path.clone(),
                    what: format!("host row {key:?}"),
                    len: v.len() as u64,
                    limit: MAX_HOST_VALUE as u64,
                });
            }
        }
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        {
            let mut table = txn.open_table(HOST).map_err(|e| s.engine(e))?;
            for (key, value) in rows {
                match value {
                    Some(v) => table.insert(*key, *v).map(|_| ()),
                    None => table.remove(*key).map(|_| ()),
                }
                .map_err(|e| s.engine(e))?;
            }
        }
        commit_durable(&s.path, &mut log, txn)
    }

    /// The keys of the host table that begin with `prefix`, in order.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn host_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let s = &self.shared;
        let txn = s.db.begin_read().map_err(|e| s.engine(e))?;
        let table = match txn.open_table(HOST) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(s.engine(e)),
        };
        let mut keys = Vec::new();
        for row in table.range(prefix..).map_err(|e| s.engine(e))? {
            let (k, _) = row.map_err(|e| s.engine(e))?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            keys.push(k.to_string());
        }
        Ok(keys)
    }

    /// Takes a named, persistent savepoint of the whole store (every
    /// instance), which [`Store::rollback`] can return to. While a
    /// savepoint exists the pages it needs are kept, so the file grows
    /// with the changes made since; delete savepoints you no longer need.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`]; [`StoreError::AlreadyExists`] if the
    /// name is taken; the write failed.
    pub fn savepoint(&self, name: &str) -> Result<()> {
        let s = &self.shared;
        check_name(&s.path, "savepoint", name)?;
        // The savepoint's commit is a checkpoint: it holds every batch
        // written so far.
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        let id = txn.persistent_savepoint().map_err(|e| s.engine(e))?;
        {
            let mut table = txn.open_table(SAVEPOINTS).map_err(|e| s.engine(e))?;
            if table.get(name).map_err(|e| s.engine(e))?.is_some() {
                drop(table);
                txn.abort().map_err(|e| s.engine(e))?;
                return Err(StoreError::AlreadyExists {
                    path: s.path.clone(),
                    what: format!("savepoint {name:?}"),
                });
            }
            table
                .insert(name, (id, now_secs()))
                .map_err(|e| s.engine(e))?;
        }
        commit_durable(&s.path, &mut log, txn)
    }

    /// The savepoints, as (name, unix seconds when taken), oldest first.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn savepoints(&self) -> Result<Vec<(String, u64)>> {
        let mut list: Vec<(String, u64, u64)> = self
            .savepoint_map()?
            .into_iter()
            .map(|(name, (id, at))| (name, id, at))
            .collect();
        list.sort_by_key(|&(_, id, _)| id);
        Ok(list.into_iter().map(|(n, _, at)| (n, at)).collect())
    }

    fn savepoint_map(&self) -> Result<Vec<(String, (u64, u64))>> {
        let s = &self.shared;
        let txn = s.db.begin_read().map_err(|e| s.engine(e))?;
        let table = match txn.open_table(SAVEPOINTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(s.engine(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| s.engine(e))? {
            let (k, v) = row.map_err(|e| s.engine(e))?;
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    /// Returns the whole store to savepoint `name`: every instance's
    /// objects, roots and counters are as they were when it was taken.
    /// Savepoints taken after it are deleted; it and older ones remain.
    ///
    /// Every vat must be stopped first: this takes `&mut self` and refuses
    /// while any [`VatBackend`] of this store is live, since a running vat
    /// holds state in memory that would no longer match the store.
    ///
    /// # Errors
    /// [`StoreError::InUse`] while a backend is live;
    /// [`StoreError::NotFound`] for an unknown savepoint; the write failed.
    pub fn rollback(&mut self, name: &str) -> Result<()> {
        let path = self.shared.path.clone();
        check_name(&path, "savepoint", name)?;
        let map = self.savepoint_map()?;
        let Some(s) = Arc::get_mut(&mut self.shared) else {
            return Err(StoreError::InUse {
                path,
                what: "the store".to_string(),
            });
        };
        let Some(&(_, (id, _))) = map.iter().find(|(n, _)| n == name) else {
            return Err(StoreError::NotFound {
                path,
                what: "savepoint",
                name: name.to_string(),
            });
        };
        // The log's entries are all undone by the rollback; its commit
        // records the current sequence number (never the savepoint's), so
        // they stay stale and numbers keep growing.
        let s: &Shared = s;
        let mut log = s.lock_log();
        let mut txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        let savepoint = txn.get_persistent_savepoint(id).map_err(|e| s.engine(e))?;
        txn.restore_savepoint(&savepoint).map_err(|e| s.engine(e))?;
        drop(savepoint);
        let kept: BTreeSet<u64> = txn
            .list_persistent_savepoints()
            .map_err(|e| s.engine(e))?
            .collect();
        txn.delete_table(SAVEPOINTS).map_err(|e| s.engine(e))?;
        {
            let mut table = txn.open_table(SAVEPOINTS).map_err(|e| s.engine(e))?;
            for (n, (sid, at)) in &map {
                if kept.contains(sid) {
                    table
                        .insert(n.as_str(), (*sid, *at))
                        .map_err(|e| s.engine(e))?;
                }
            }
        }
        commit_durable(&s.path, &mut log, txn)
    }

    /// Deletes savepoint `name`. Returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`]; the write failed.
    pub fn delete_savepoint(&self, name: &str) -> Result<bool> {
        let s = &self.shared;
        check_name(&s.path, "savepoint", name)?;
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        let existed = {
            let mut table = txn.open_table(SAVEPOINTS).map_err(|e| s.engine(e))?;
            let removed = table.remove(name).map_err(|e| s.engine(e))?;
            removed.map(|v| v.value().0)
        };
        if let Some(id) = existed {
            txn.delete_persistent_savepoint(id)
                .map_err(|e| s.engine(e))?;
        }
        commit_durable(&s.path, &mut log, txn)?;
        Ok(existed.is_some())
    }

    /// Closes the store, reporting any error the engine meets while
    /// closing (dropping it closes too, silently).
    ///
    /// # Errors
    /// [`StoreError::InUse`] (and the store stays open) while a
    /// [`VatBackend`] is live; the engine failed to close the file.
    pub fn close(self) -> Result<()> {
        let path = self.shared.path.clone();
        // `Store` has a Drop (a best-effort checkpoint): keep a handle,
        // drop this one, and checkpoint again to report any error.
        let shared = self.shared.clone();
        drop(self);
        match Arc::try_unwrap(shared) {
            Ok(shared) => {
                shared.checkpoint()?;
                shared.db.close().map_err(|e| StoreError::engine(&path, e))
            }
            Err(shared) => {
                drop(shared);
                Err(StoreError::InUse {
                    path,
                    what: "the store".to_string(),
                })
            }
        }
    }

    pub(crate) fn from_db(db: Database, path: &Path, host_id: HostId, log: Log) -> Store {
        Store {
            shared: Arc::new(Shared {
                db,
                path: path.to_path_buf(),
                host_id,
                live: Mutex::new(BTreeSet::new()),
                log: Mutex::new(log),
            }),
        }
    }
}

impl Drop for Store {
    /// A best-effort checkpoint (nothing is lost if it fails: the log
    /// holds every batch; [`Store::close`] reports errors).
    fn drop(&mut self) {
        let _ = self.shared.checkpoint();
    }
}

/// Writes pola's `meta` rows into a new store.
pub(crate) fn init_meta(
    txn: &redb::WriteTransaction,
    host_id: &HostId,
) -> redb::Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    meta.insert("format", FORMAT.to_be_bytes().as_slice())?;
    meta.insert("host_id", host_id.as_slice())?;
    meta.insert("created", now_secs().to_be_bytes().as_slice())?;
    Ok(())
}

/// A fresh random host id.
pub(crate) fn new_host_id(path: &Path) -> Result<HostId> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| {
        StoreError::io(
            path,
            "get random bytes",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(id)
}

/// Makes a new, empty store at `path` (under a temporary name first).
fn create_new(path: &Path) -> Result<()> {
    let tmp = file::sibling(path, ".tmp");
    let f = file::create_temp(&tmp)?;
    let host_id = new_host_id(path)?;
    let made = (|| -> std::result::Result<(), redb::Error> {
        let db = Builder::new().create_with_backend(FileBackend::new(f)?)?;
        let txn = db.begin_write()?;
        init_meta(&txn, &host_id)?;
        txn.commit()?;
        db.close()?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreError::engine(path, e));
    }
    file::publish(&tmp, path)
}

/// Verifies a checked file through an [`Overlay`], then opens it for real.
fn open_verified(path: &Path, checked: file::Checked) -> Result<Store> {
    let file::Checked { file, clean } = checked;
    let probe = file
        .try_clone()
        .map_err(|e| StoreError::io(path, "dup", e))?;
    let overlay = Overlay::new(probe).map_err(|e| StoreError::io(path, "open", e))?;
    let verified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut builder = Builder::new();
        builder.set_check_integrity_on_open(true);
        if clean {
            // A file shut down cleanly has no torn commit to fall back
            // from: a primary that fails its checksums was changed outside
            // the engine. The engine reports that step at progress 0.3.
            builder.set_repair_callback(|session| {
                if (0.2..0.5).contains(&session.progress()) {
                    session.abort();
                }
            });
        }
        let db = builder
            .create_with_backend(overlay)
            .map_err(|e| open_error(path, e))?;
        let found = read_meta(&db, path)?;
        db.close().map_err(|e| open_error(path, e))?;
        Ok::<_, StoreError>(found)
    }));
    let (host_id, log_meta, instances) = match verified {
        Ok(r) => r?,
        Err(_) => {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: "the storage engine failed while checking it".to_string(),
            });
        }
    };
    // The log is checked whole before anything is written to either file.
    let recovered = log::recover(path, &log_meta, clean)?;
    if let Some(name) = recovered.instances.difference(&instances).next() {
        return Err(StoreError::Corrupt {
            path: recovered.log.path().to_path_buf(),
            reason: format!("an entry names instance {name:?}, which is not in the store"),
        });
    }
    let backend = FileBackend::new(file).map_err(|e| open_error(path, e))?;
    let db = Builder::new()
        .create_with_backend(backend)
        .map_err(|e| open_error(path, e))?;
    let log::Recovered {
        mut log, replay, ..
    } = recovered;
    if !replay.is_empty() {
        // Apply every entry above the checkpoint, in order, in one durable
        // commit that is the new checkpoint.
        let txn = db.begin_write().map_err(|e| open_error(path, e))?;
        for span in &replay {
            let entry = log.reread(*span)?;
            apply_batch(&txn, &entry.name, &entry.batch).map_err(|e| open_error(path, e))?;
        }
        commit_durable(path, &mut log, txn)?;
    }
    Ok(Store::from_db(db, path, host_id, log))
}

/// Maps an error met while opening (and verifying) a file.
fn open_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::RepairAborted => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "its last commit fails its checksums although it was shut down cleanly"
                .to_string(),
        },
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: "it is shorter than its header says (truncated?)".to_string(),
            }
        }
        redb::Error::Corrupted(reason) => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        other => StoreError::engine(path, other),
    }
}

/// Checks pola's `meta` table and the table names; returns the host id,
/// what `meta` says of the log, and the instance names.
fn read_meta(db: &Database, path: &Path) -> Result<(HostId, LogMeta, BTreeSet<String>)> {
    let txn = db.begin_read().map_err(|e| open_error(path, e))?;
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Err(file::not_a_store(path, "it has no pola meta table"));
        }
        Err(redb::TableError::TableTypeMismatch { .. } | redb::TableError::TableIsMultimap(_)) => {
            return Err(file::not_a_store(path, "its meta table is not pola's"));
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let corrupt = |reason: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let format = meta
        .get("format")
        .map_err(|e| open_error(path, e))?
        .ok_or_else(|| file::not_a_store(path, "its meta table has no format"))?;
    let format = <[u8; 8]>::try_from(format.value())
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt("the format number is not 8 bytes"))?;
    if format > FORMAT {
        return Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            found: format,
            supported: FORMAT,
        });
    }
    if format != FORMAT {
        return Err(corrupt("the format number is 0"));
    }
    let host_id = meta
        .get("host_id")
        .map_err(|e| open_error(path, e))?
        .ok_or_else(|| corrupt("the meta table has no host id"))?;
    let host_id =
        HostId::try_from(host_id.value()).map_err(|_| corrupt("the host id is not 16 bytes"))?;
    let mut log_meta = LogMeta::default();
    if let Some(id) = meta.get(LOG_ID).map_err(|e| open_error(path, e))? {
        let id = LogId::try_from(id.value()).map_err(|_| corrupt("the log id is not 16 bytes"))?;
        log_meta.id = Some(id);
    }
    if let Some(seq) = meta.get(LOG_SEQ).map_err(|e| open_error(path, e))? {
        log_meta.checkpointed = <[u8; 8]>::try_from(seq.value())
            .map(u64::from_be_bytes)
            .map_err(|_| corrupt("the log checkpoint is not 8 bytes"))?;
    }
    let mut instances = BTreeSet::new();
    for handle in txn.list_tables().map_err(|e| open_error(path, e))? {
        match Table::parse(handle.name()) {
            None => {
                return Err(corrupt(&format!(
                    "it has an unknown table {:?}",
                    handle.name()
                )));
            }
            Some(Table::Vat(name, _)) => {
                instances.insert(name);
            }
            Some(_) => {}
        }
    }
    if txn
        .list_multimap_tables()
        .map_err(|e| open_error(path, e))?
        .next()
        .is_some()
    {
        return Err(corrupt("it has a multimap table"));
    }
    Ok((host_id, log_meta, instances))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_parse() {
        assert_eq!(Table::parse("meta"), Some(Table::Meta));
        assert_eq!(Table::parse("savepoints"), Some(Table::Savepoints));
        assert_eq!(
            Table::parse("vat/desk-1/objects"),
            Some(Table::Vat("desk-1".into(), Part::Objects))
        );
        for bad in [
            "vat//meta",
            "vat/a/b/meta",
            "vat/a/other",
            "vat/a b/roots",
            "isave/a/meta",
            "isave/a/b/c/meta",
            "isave/a/b c/meta",
            "isave//b/roots",
            "isave/a/b/other",
            "Meta",
            "",
        ] {
            assert_eq!(Table::parse(bad), None, "{bad:?}");
        }
        for part in Part::ALL {
            assert_eq!(
                Table::parse(&vat_table("x", part)),
                Some(Table::Vat("x".into(), part))
            );
            assert_eq!(
                Table::parse(&saved_table("x", "s-1", part)),
                Some(Table::Saved("x".into(), "s-1".into(), part))
            );
        }
        assert_eq!(
            Table::parse("instance_savepoints"),
            Some(Table::InstanceSavepoints)
        );
    }

    #[test]
    fn host_keys_rules() {
        assert_eq!(Table::parse("host"), Some(Table::Host));
        assert!(host_key_rule("identity").is_ok());
        assert!(host_key_rule("swiss/mint:1.a_b-c").is_ok());
        assert!(host_key_rule(&"k".repeat(MAX_HOST_KEY_LEN)).is_ok());
        assert!(host_key_rule(&"k".repeat(MAX_HOST_KEY_LEN + 1)).is_err());
        assert!(host_key_rule("").is_err());
        assert!(host_key_rule("a b").is_err());
        assert!(host_key_rule("a\nb").is_err());
    }

    #[test]
    fn name_rules() {
        assert!(name_rule("a.b_c-D9").is_ok());
        assert!(name_rule(&"n".repeat(MAX_NAME_LEN)).is_ok());
        assert!(name_rule(&"n".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(name_rule("").is_err());
        assert!(name_rule("a/b").is_err());
        assert!(name_rule("caf\u{e9}").is_err());
    }
}
