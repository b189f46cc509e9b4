//! Export and import: the whole store (or one instance) as one
//! self-checking file. The format is described in the crate docs
//! ([`crate`], "Export format").
//!
//! Invariants (upheld here):
//! - An export is written from one read transaction, so writes that
//!   commit while it runs are either wholly in it or wholly absent.
//! - An import checks every length against a bound before reading the
//!   bytes it announces, and grows buffers only as bytes actually arrive,
//!   so a hostile export cannot make it allocate more than it sends.
//! - Nothing an import writes becomes visible before the checksum and the
//!   end of the input have been checked: a whole-store import writes a
//!   temporary file that is only linked to its name afterwards; an
//!   instance import commits its one write transaction afterwards.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use redb::backends::FileBackend;
use redb::{
    Builder, ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction,
};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::file;
use crate::store::{
    FORMAT, HOST, HostId, MAX_HOST_VALUE, Part, Shared, Store, Table, check_name, commit_durable,
    host_key_rule, init_meta, now_secs, vat_table,
};

/// The first bytes of every export.
pub const EXPORT_MAGIC: &[u8; 18] = b"pola-store-export\n";
/// The export format version this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;
/// Largest record body in an export (a row's key and value together).
pub const MAX_RECORD: u32 = (64 << 20) + 4096;
/// Largest config file an export carries.
pub const MAX_CONFIG: usize = 16 << 20;

const TAG_HEADER: u8 = b'H';
const TAG_CONFIG: u8 = b'C';
const TAG_TABLE: u8 = b'T';
const TAG_ROW: u8 = b'R';
const TAG_END: u8 = b'E';

const SCOPE_STORE: u8 = b'S';
const SCOPE_INSTANCE: u8 = b'I';

/// Rows buffered before they are inserted (bytes).
const FLUSH_BYTES: usize = 4 << 20;

/// What an export wrote, or an import read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Vat instances.
    pub instances: u64,
    /// Tables.
    pub tables: u64,
    /// Rows, over all tables.
    pub rows: u64,
    /// Bytes of the export, checksum included.
    pub bytes: u64,
}

/// The result of [`Store::import`].
#[derive(Debug)]
pub struct Imported {
    /// The new store, open.
    pub store: Store,
    /// The config file the export carried, if any (to be written beside
    /// the store).
    pub config: Option<Vec<u8>>,
    /// What was read.
    pub stats: ExportStats,
}

/// What an export holds.
enum Scope<'a> {
    Store,
    Instance(&'a str),
}

struct Sink<'a, W: Write> {
    w: BufWriter<&'a mut W>,
    hash: Sha256,
    bytes: u64,
    path: &'a Path,
}

impl<W: Write> Sink<'_, W> {
    fn raw(&mut self, b: &[u8]) -> Result<()> {
        self.w
            .write_all(b)
            .map_err(|e| StoreError::io(self.path, "write export", e))?;
        self.hash.update(b);
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn record(&mut self, tag: u8, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| StoreError::TooLarge {
                path: self.path.to_path_buf(),
                what: "a row to export".to_string(),
                len: len as u64,
                limit: u64::from(MAX_RECORD),
            })?;
        self.raw(&[tag])?;
        self.raw(&len.to_be_bytes())?;
        for p in parts {
            self.raw(p)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        let digest = self.hash.finalize();
        self.w
            .write_all(digest.as_slice())
            .map_err(|e| StoreError::io(self.path, "write export", e))?;
        self.w
            .flush()
            .map_err(|e| StoreError::io(self.path, "write export", e))?;
        Ok(self.bytes + digest.len() as u64)
    }
}

fn export_impl<W: Write>(
    shared: &Shared,
    out: &mut W,
    scope: Scope<'_>,
    config: Option<&[u8]>,
) -> Result<ExportStats> {
    let path = shared.path.as_path();
    if let Some(c) = config
        && c.len() > MAX_CONFIG
    {
        return Err(StoreError::TooLarge {
            path: path.to_path_buf(),
            what: "the config file".to_string(),
            len: c.len() as u64,
            limit: MAX_CONFIG as u64,
        });
    }
    // A checkpoint first, so the export and the store file agree on what
    // is durable (a read transaction sees every applied batch either way).
    shared.checkpoint()?;
    // One read transaction: the snapshot every row below comes from.
    let txn = shared.db.begin_read().map_err(|e| shared.engine(e))?;
    let mut tables: Vec<(String, Option<(String, Part)>)> = Vec::new();
    for handle in txn.list_tables().map_err(|e| shared.engine(e))? {
        let name = handle.name().to_string();
        match (Table::parse(&name), &scope) {
            (Some(Table::Host), Scope::Store) => tables.push((name, None)),
            (Some(Table::Vat(vat, part)), Scope::Store) => tables.push((name, Some((vat, part)))),
            (Some(Table::Vat(vat, part)), Scope::Instance(n)) if *n == vat => {
                tables.push((name, Some((vat, part))));
            }
            _ => {}
        }
    }
    tables.sort();
    if let Scope::Instance(name) = scope
        && tables.is_empty()
    {
        return Err(StoreError::NotFound {
            path: path.to_path_buf(),
            what: "instance",
            name: name.to_string(),
        });
    }
    let mut sink = Sink {
        w: BufWriter::with_capacity(1 << 20, out),
        hash: Sha256::new(),
        bytes: 0,
        path,
    };
    sink.raw(EXPORT_MAGIC)?;
    sink.raw(&EXPORT_VERSION.to_be_bytes())?;
    let (scope_byte, scope_name) = match scope {
        Scope::Store => (SCOPE_STORE, ""),
        Scope::Instance(n) => (SCOPE_INSTANCE, n),
    };
    sink.record(
        TAG_HEADER,
        &[
            &[scope_byte],
            &FORMAT.to_be_bytes(),
            &shared.host_id,
            &now_secs().to_be_bytes(),
            scope_name.as_bytes(),
        ],
    )?;
    if let Some(c) = config {
        sink.record(TAG_CONFIG, &[c])?;
    }
    let mut stats = ExportStats::default();
    let mut vats = std::collections::BTreeSet::new();
    for (name, vat) in &tables {
        if let Some((vat, _)) = vat {
            vats.insert(vat.clone());
        }
        sink.record(TAG_TABLE, &[name.as_bytes()])?;
        stats.tables += 1;
        match vat.as_ref().map(|(_, part)| *part) {
            None => {
                let t = txn.open_table(HOST).map_err(|e| shared.engine(e))?;
                for row in t.iter().map_err(|e| shared.engine(e))? {
                    let (k, v) = row.map_err(|e| shared.engine(e))?;
                    let key = k.value().as_bytes();
                    let klen = u32::try_from(key.len()).unwrap_or(u32::MAX);
                    sink.record(TAG_ROW, &[&klen.to_be_bytes(), key, v.value()])?;
                    stats.rows += 1;
                }
            }
            Some(Part::Objects) => {
                let t = txn
                    .open_table(TableDefinition::<u64, &[u8]>::new(name))
                    .map_err(|e| shared.engine(e))?;
                for row in t.iter().map_err(|e| shared.engine(e))? {
                    let (k, v) = row.map_err(|e| shared.engine(e))?;
                    let key = k.value().to_be_bytes();
                    let value = v.value();
                    sink.record(TAG_ROW, &[&(key.len() as u32).to_be_bytes(), &key, value])?;
                    stats.rows += 1;
                }
            }
            Some(Part::Roots | Part::Meta) => {
                let t = txn
                    .open_table(TableDefinition::<&str, u64>::new(name))
                    .map_err(|e| shared.engine(e))?;
                for row in t.iter().map_err(|e| shared.engine(e))? {
                    let (k, v) = row.map_err(|e| shared.engine(e))?;
                    let key = k.value().as_bytes();
                    let klen = u32::try_from(key.len()).unwrap_or(u32::MAX);
                    sink.record(
                        TAG_ROW,
                        &[&klen.to_be_bytes(), key, &v.value().to_be_bytes()],
                    )?;
                    stats.rows += 1;
                }
            }
        }
    }
    sink.record(
        TAG_END,
        &[&stats.tables.to_be_bytes(), &stats.rows.to_be_bytes()],
    )?;
    stats.instances = vats.len() as u64;
    stats.bytes = sink.finish()?;
    Ok(stats)
}

impl Store {
    /// Writes the whole store, and the host's config file if given, to
    /// `out` as one export (format: crate docs). The export is a
    /// consistent snapshot taken from one read transaction, so vats may
    /// keep writing meanwhile. Savepoints (of the store or of instances) are
    /// not exported.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] for a config over [`MAX_CONFIG`] or a row
    /// over [`MAX_RECORD`]; [`StoreError::Io`] if `out` fails; the store
    /// cannot be read.
    pub fn export(&self, out: &mut impl Write, config: Option<&[u8]>) -> Result<ExportStats> {
        export_impl(&self.shared, out, Scope::Store, config)
    }

    /// Writes one vat instance to `out` as an export, for
    /// [`Store::import_instance`].
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such instance; as for
    /// [`Store::export`].
    pub fn export_instance(&self, name: &str, out: &mut impl Write) -> Result<ExportStats> {
        check_name(&self.shared.path, "instance", name)?;
        export_impl(&self.shared, out, Scope::Instance(name), None)
    }

    /// Creates a new store at `path` from a whole-store export, and opens
    /// it. The new store keeps the exported host id; the config file the
    /// export carried is returned for the caller to write.
    ///
    /// The export is checked as it is read (every length bounded, every
    /// table and row in order and of the right shape, the checksum, no
    /// trailing bytes); the store is written to `path` + `.tmp`, synced,
    /// and only then given its name (never replacing a file), and the
    /// folder is synced.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if anything is at `path`;
    /// [`StoreError::BadExport`] or [`StoreError::NewerExport`] for a
    /// faulty export (nothing is left behind); I/O.
    pub fn import(input: &mut impl Read, path: &Path) -> Result<Imported> {
        if file::exists(path)? {
            return Err(StoreError::AlreadyExists {
                path: path.to_path_buf(),
                what: "a file at this path".to_string(),
            });
        }
        // Check the start before making any file, so garbage costs nothing.
        let mut source = Source::new(input, path);
        source.header(Expect::Store)?;
        let tmp = file::sibling(path, ".tmp");
        let f = file::create_temp(&tmp)?;
        let made = import_into_new(&mut source, path, f);
        let (config, stats) = match made {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        file::publish(&tmp, path)?;
        let store = Store::open(path)?;
        Ok(Imported {
            store,
            config,
            stats,
        })
    }

    /// Adds the instance in `input` (an [`Store::export_instance`] export)
    /// to this store under the name `name`, in one write transaction
    /// committed only after the whole export has been checked.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`]; [`StoreError::AlreadyExists`] if the
    /// store has an instance `name`; [`StoreError::InUse`] if a backend
    /// for `name` is live; [`StoreError::BadExport`] or
    /// [`StoreError::NewerExport`] for a faulty export (nothing changes).
    pub fn import_instance(&self, input: &mut impl Read, name: &str) -> Result<ExportStats> {
        let s = &*self.shared;
        check_name(&s.path, "instance", name)?;
        // Hold the name, so no backend opens it while the import runs.
        let _reserved = Reservation::take(s, name)?;
        let mut source = Source::new(input, &s.path);
        source.header(Expect::Instance)?;
        let mut log = s.lock_log();
        let txn = s.db.begin_write().map_err(|e| s.engine(e))?;
        let exists = txn
            .list_tables()
            .map_err(|e| s.engine(e))?
            .any(|h| matches!(Table::parse(h.name()), Some(Table::Vat(n, _)) if n == name));
        if exists {
            let _ = txn.abort();
            return Err(StoreError::AlreadyExists {
                path: s.path.clone(),
                what: format!("instance {name:?}"),
            });
        }
        let mut loader = Loader::new(&txn, &s.path, Some(name));
        let stats = match loader.run(&mut source) {
            Ok((_, stats)) => stats,
            Err(e) => {
                drop(loader);
                let _ = txn.abort();
                return Err(e);
            }
        };
        drop(loader);
        commit_durable(&s.path, &mut log, txn)?;
        Ok(stats)
    }
}

/// Marks an instance name as live for the life of the value.
struct Reservation<'a> {
    shared: &'a Shared,
    name: String,
}

impl<'a> Reservation<'a> {
    fn take(shared: &'a Shared, name: &str) -> Result<Self> {
        if !shared.live().insert(name.to_string()) {
            return Err(StoreError::InUse {
                path: shared.path.clone(),
                what: format!("instance {name:?}"),
            });
        }
        Ok(Reservation {
            shared,
            name: name.to_string(),
        })
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.shared.live().remove(&self.name);
    }
}

fn import_into_new<R: Read>(
    source: &mut Source<'_, R>,
    path: &Path,
    f: std::fs::File,
) -> Result<(Option<Vec<u8>>, ExportStats)> {
    let engine = |e: redb::Error| StoreError::engine(path, e);
    let host_id = source
        .header
        .as_ref()
        .map(|h| h.host_id)
        .ok_or_else(|| source.bad(0, "no header"))?;
    let backend = FileBackend::new(f).map_err(|e| engine(e.into()))?;
    let db = Builder::new()
        .create_with_backend(backend)
        .map_err(|e| engine(e.into()))?;
    let txn = db.begin_write().map_err(|e| engine(e.into()))?;
    init_meta(&txn, &host_id).map_err(engine)?;
    let mut loader = Loader::new(&txn, path, None);
    let (config, stats) = loader.run(source)?;
    drop(loader);
    txn.commit().map_err(|e| engine(e.into()))?;
    db.close().map_err(|e| engine(e.into()))?;
    Ok((config, stats))
}

/// Which scope an import expects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Store,
    Instance,
}

/// An export's header record.
struct Header {
    host_id: HostId,
    /// The instance name, for an instance export.
    instance: Option<String>,
}

/// Reads an export, hashing what it reads and knowing where it is.
struct Source<'a, R: Read> {
    r: &'a mut R,
    hash: Sha256,
    offset: u64,
    path: &'a Path,
    header: Option<Header>,
}

impl<'a, R: Read> Source<'a, R> {
    fn new(r: &'a mut R, path: &'a Path) -> Self {
        Source {
            r,
            hash: Sha256::new(),
            offset: 0,
            path,
            header: None,
        }
    }

    fn bad(&self, offset: u64, reason: impl Into<String>) -> StoreError {
        StoreError::BadExport {
            path: self.path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// Reads exactly `n` bytes (already bounded by the caller), growing
    /// the buffer only as bytes arrive.
    fn take(&mut self, n: usize, what: &str, hashed: bool) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(n.min(64 << 10));
        (&mut *self.r)
            .take(n as u64)
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::io(self.path, "read export", e))?;
        if buf.len() < n {
            return Err(self.bad(
                self.offset + buf.len() as u64,
                format!("the export ends early, inside {what}"),
            ));
        }
        if hashed {
            self.hash.update(&buf);
        }
        self.offset += n as u64;
        Ok(buf)
    }

    /// One record: (its offset, tag, body).
    fn record(&mut self) -> Result<(u64, u8, Vec<u8>)> {
        let at = self.offset;
        let head = self.take(5, "a record header", true)?;
        let tag = head[0];
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_RECORD {
            return Err(self.bad(
                at,
                format!("a record claims {len} bytes, over the limit of {MAX_RECORD}"),
            ));
        }
        let body = self.take(len as usize, "a record", true)?;
        Ok((at, tag, body))
    }

    fn header(&mut self, expect: Expect) -> Result<&Header> {
        let magic = self.take(EXPORT_MAGIC.len(), "the magic line", true)?;
        if magic != EXPORT_MAGIC {
            return Err(self.bad(0, "it does not begin with \"pola-store-export\""));
        }
        let version = self.take(4, "the version", true)?;
        let version = u32::from_be_bytes([version[0], version[1], version[2], version[3]]);
        if version > EXPORT_VERSION {
            return Err(StoreError::NewerExport {
                path: self.path.to_path_buf(),
                found: u64::from(version),
            });
        }
        if version == 0 {
            return Err(self.bad(EXPORT_MAGIC.len() as u64, "export version 0"));
        }
        let (at, tag, body) = self.record()?;
        if tag != TAG_HEADER {
            return Err(self.bad(at, "the first record is not the header"));
        }
        if body.len() < 1 + 8 + 16 + 8 {
            return Err(self.bad(at, "the header is too short"));
        }
        let (scope, rest) = body.split_at(1);
        let (format, rest) = rest.split_at(8);
        let (host, rest) = rest.split_at(16);
        let (_exported_at, name) = rest.split_at(8);
        let format = u64::from_be_bytes(format.try_into().unwrap_or([0xff; 8]));
        if format > FORMAT {
            return Err(StoreError::NewerExport {
                path: self.path.to_path_buf(),
                found: format,
            });
        }
        if format == 0 {
            return Err(self.bad(at, "store format 0"));
        }
        let host_id = HostId::try_from(host).map_err(|_| self.bad(at, "bad host id"))?;
        let instance = match (scope[0], expect) {
            (SCOPE_STORE, Expect::Store) if name.is_empty() => None,
            (SCOPE_INSTANCE, Expect::Instance) => {
                let name = std::str::from_utf8(name)
                    .ok()
                    .filter(|n| crate::store::name_rule(n).is_ok())
                    .ok_or_else(|| self.bad(at, "the header's instance name is not valid"))?;
                Some(name.to_string())
            }
            (SCOPE_STORE, Expect::Instance) => {
                return Err(self.bad(
                    at,
                    "this is an export of a whole store, not of one instance",
                ));
            }
            (SCOPE_INSTANCE, Expect::Store) => {
                return Err(self.bad(
                    at,
                    "this is an export of one instance, not of a whole store",
                ));
            }
            _ => return Err(self.bad(at, "the header's scope is not known")),
        };
        Ok(self.header.insert(Header { host_id, instance }))
    }

    /// Checks the checksum trailer and that nothing follows it.
    fn trailer(&mut self) -> Result<()> {
        let at = self.offset;
        let expected = std::mem::take(&mut self.hash).finalize();
        let got = self.take(32, "the checksum", false)?;
        if got.as_slice() != expected.as_slice() {
            return Err(self.bad(at, "the SHA-256 checksum does not match the contents"));
        }
        let mut one = [0u8; 1];
        loop {
            match self.r.read(&mut one) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(self.bad(self.offset, "bytes follow the checksum")),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io(self.path, "read export", e)),
            }
        }
    }
}

/// Checks the records after the header and writes them into a
/// transaction, buffering rows per table.
struct Loader<'t, 'p> {
    txn: &'t WriteTransaction,
    path: &'p Path,
    /// For an instance import: the name to load it under.
    rename: Option<&'p str>,
    /// The current table: its name in the store and what it holds.
    table: Option<(String, Kind)>,
    /// Its export name (for the order check).
    last_table: Option<String>,
    last_key: Option<Vec<u8>>,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    buffered: usize,
    /// Instances seen → whether their meta table was.
    vats: BTreeMap<String, bool>,
    stats: ExportStats,
}

impl<'t, 'p> Loader<'t, 'p> {
    fn new(txn: &'t WriteTransaction, path: &'p Path, rename: Option<&'p str>) -> Self {
        Loader {
            txn,
            path,
            rename,
            table: None,
            last_table: None,
            last_key: None,
            rows: Vec::new(),
            buffered: 0,
            vats: BTreeMap::new(),
            stats: ExportStats::default(),
        }
    }

    fn engine(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::engine(self.path, e)
    }

    fn run<R: Read>(&mut self, src: &mut Source<'_, R>) -> Result<(Option<Vec<u8>>, ExportStats)> {
        let instance = src.header.as_ref().and_then(|h| h.instance.clone());
        let mut config = None;
        let mut first = true;
        loop {
            let (at, tag, body) = src.record()?;
            match tag {
                TAG_CONFIG => {
                    if !first || instance.is_some() {
                        return Err(src.bad(at, "a config record out of place"));
                    }
                    if body.len() > MAX_CONFIG {
                        return Err(src.bad(at, "the config is over the limit"));
                    }
                    config = Some(body);
                }
                TAG_TABLE => {
                    self.flush()?;
                    let name = String::from_utf8(body)
                        .map_err(|_| src.bad(at, "a table name is not UTF-8"))?;
                    if self.last_table.as_ref().is_some_and(|l| *l >= name) {
                        return Err(src.bad(at, "tables are not in strictly increasing order"));
                    }
                    let (target, kind) = match Table::parse(&name) {
                        Some(Table::Host) if instance.is_none() => (name.clone(), Kind::Host),
                        Some(Table::Host) => {
                            return Err(src.bad(at, "an instance export with the host table"));
                        }
                        Some(Table::Vat(vat, part)) => {
                            if instance.as_ref().is_some_and(|i| *i != vat) {
                                return Err(src.bad(at, "a table of another instance"));
                            }
                            let seen = self.vats.entry(vat.clone()).or_insert(false);
                            *seen |= part == Part::Meta;
                            (
                                vat_table(self.rename.unwrap_or(&vat), part),
                                Kind::Vat(part),
                            )
                        }
                        _ => return Err(src.bad(at, format!("unknown table {name:?}"))),
                    };
                    self.table = Some((target, kind));
                    self.last_table = Some(name);
                    self.last_key = None;
                    self.stats.tables += 1;
                }
                TAG_ROW => {
                    let Some((_, kind)) = self.table else {
                        return Err(src.bad(at, "a row before any table"));
                    };
                    let (key, value) = split_row(&body)
                        .ok_or_else(|| src.bad(at, "a row's key length is longer than the row"))?;
                    if let Err(reason) = check_row(kind, key, value) {
                        return Err(src.bad(at, reason));
                    }
                    if self.last_key.as_deref().is_some_and(|l| l >= key) {
                        return Err(src.bad(at, "rows are not in strictly increasing key order"));
                    }
                    self.last_key = Some(key.to_vec());
                    self.buffered += body.len();
                    self.rows.push((key.to_vec(), value.to_vec()));
                    self.stats.rows += 1;
                    if self.buffered >= FLUSH_BYTES {
                        self.flush_rows()?;
                    }
                }
                TAG_END => {
                    if body.len() != 16 {
                        return Err(src.bad(at, "the end record is not 16 bytes"));
                    }
                    let tables = u64::from_be_bytes(body[..8].try_into().unwrap_or([0xff; 8]));
                    let rows = u64::from_be_bytes(body[8..].try_into().unwrap_or([0xff; 8]));
                    if (tables, rows) != (self.stats.tables, self.stats.rows) {
                        return Err(src.bad(
                            at,
                            format!(
                                "the end record counts {tables} tables and {rows} rows, the export has {} and {}",
                                self.stats.tables, self.stats.rows
                            ),
                        ));
                    }
                    if let Some((vat, _)) = self.vats.iter().find(|(_, meta)| !**meta) {
                        return Err(src.bad(at, format!("instance {vat:?} has no meta table")));
                    }
                    if instance.is_some() && self.vats.is_empty() {
                        return Err(src.bad(at, "the instance export has no tables"));
                    }
                    src.trailer()?;
                    self.flush()?;
                    self.stats.instances = self.vats.len() as u64;
                    self.stats.bytes = src.offset;
                    return Ok((config, self.stats));
                }
                other => {
                    return Err(src.bad(at, format!("unknown record type {other:#04x}")));
                }
            }
            first = false;
        }
    }

    /// Writes the buffered rows and ends the current table.
    fn flush(&mut self) -> Result<()> {
        self.flush_rows()?;
        self.table = None;
        Ok(())
    }

    /// Writes the buffered rows into the current table (creating it even
    /// when there are none).
    fn flush_rows(&mut self) -> Result<()> {
        let Some((name, kind)) = &self.table else {
            return Ok(());
        };
        let rows = std::mem::take(&mut self.rows);
        self.buffered = 0;
        match kind {
            Kind::Host => {
                let mut t = self.txn.open_table(HOST).map_err(|e| self.engine(e))?;
                for (k, v) in &rows {
                    let key = std::str::from_utf8(k).unwrap_or("");
                    t.insert(key, v.as_slice()).map_err(|e| self.engine(e))?;
                }
            }
            Kind::Vat(Part::Objects) => {
                let mut t = self
                    .txn
                    .open_table(TableDefinition::<u64, &[u8]>::new(name))
                    .map_err(|e| self.engine(e))?;
                for (k, v) in &rows {
                    let id = u64::from_be_bytes(k.as_slice().try_into().unwrap_or([0; 8]));
                    t.insert(id, v.as_slice()).map_err(|e| self.engine(e))?;
                }
            }
            Kind::Vat(Part::Roots | Part::Meta) => {
                let mut t = self
                    .txn
                    .open_table(TableDefinition::<&str, u64>::new(name))
                    .map_err(|e| self.engine(e))?;
                for (k, v) in &rows {
                    let key = std::str::from_utf8(k).unwrap_or("");
                    let id = u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8]));
                    t.insert(key, id).map_err(|e| self.engine(e))?;
                }
            }
        }
        Ok(())
    }
}

/// A row body: key length (u32 BE), key, value.
fn split_row(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = body.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// What the table being loaded holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The host table.
    Host,
    /// A table of a vat instance.
    Vat(Part),
}

/// Whether a row has the shape its table needs.
fn check_row(kind: Kind, key: &[u8], value: &[u8]) -> std::result::Result<(), &'static str> {
    let part = match kind {
        Kind::Host => {
            let key = std::str::from_utf8(key).map_err(|_| "a host key is not UTF-8")?;
            host_key_rule(key).map_err(|_| "a host key breaks the naming rules")?;
            if value.len() > MAX_HOST_VALUE {
                return Err("a host value is over the limit");
            }
            return Ok(());
        }
        Kind::Vat(part) => part,
    };
    match part {
        Part::Objects => {
            if key.len() != 8 {
                return Err("an object id is not 8 bytes");
            }
        }
        Part::Roots => {
            if std::str::from_utf8(key).is_err() {
                return Err("a root name is not UTF-8");
            }
            if value.len() != 8 {
                return Err("a root's object id is not 8 bytes");
            }
        }
        Part::Meta => {
            if key != crate::store::NEXT_ID.as_bytes() {
                return Err("an instance meta row is not next_id");
            }
            if value.len() != 8 {
                return Err("next_id is not 8 bytes");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_and_check() {
        assert_eq!(
            split_row(&[0, 0, 0, 1, 9, 8, 7]),
            Some((&[9u8][..], &[8u8, 7][..]))
        );
        assert_eq!(split_row(&[0, 0, 0, 0]), Some((&[][..], &[][..])));
        assert_eq!(split_row(&[0, 0, 0, 2, 9]), None);
        assert_eq!(split_row(&[0, 0, 1]), None);
        assert_eq!(split_row(&[0xff, 0xff, 0xff, 0xff, 1]), None);
        assert!(check_row(Kind::Vat(Part::Objects), &[0; 8], b"anything").is_ok());
        assert!(check_row(Kind::Vat(Part::Objects), &[0; 7], b"").is_err());
        assert!(check_row(Kind::Vat(Part::Roots), b"main", &[0; 8]).is_ok());
        assert!(check_row(Kind::Vat(Part::Roots), b"main", &[0; 9]).is_err());
        assert!(check_row(Kind::Vat(Part::Meta), b"next_id", &[0; 8]).is_ok());
        assert!(check_row(Kind::Vat(Part::Meta), b"other", &[0; 8]).is_err());
        assert!(check_row(Kind::Host, b"identity", &[1; 32]).is_ok());
        assert!(check_row(Kind::Host, b"swiss/mint", b"").is_ok());
        assert!(check_row(Kind::Host, b"bad key", b"").is_err());
        assert!(check_row(Kind::Host, b"", b"").is_err());
        assert!(check_row(Kind::Host, &[0xff, 0xfe], b"").is_err());
        assert!(check_row(Kind::Host, b"big", &vec![0; MAX_HOST_VALUE + 1]).is_err());
    }
}
