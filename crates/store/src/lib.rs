//! The one state store of a pola host.
//!
//! All mutable state of a host lives in two places: this store, broken down
//! by vat instance, and one declarative config file (DESIGN.md,
//! "Persistence model"). A [`Store`] is a single [redb] file; each vat
//! instance gets a namespace in it through a [`VatBackend`], which
//! implements the vat's [`pola_vat::backend::Backend`] seam: `open`,
//! `load`, and `write` of a [`pola_vat::backend::Batch`] as one atomic,
//! durable transaction.
//!
//! What it is **not**: it does not know what an object record means (the
//! vat encodes and decodes them and treats what it reads back as
//! untrusted), it does not interpret the config file (an export merely
//! carries its bytes), and it is not shared between processes (one
//! process opens a store at a time; a second gets [`StoreError::Locked`]).
//!
//! Main types: [`Store`] (open, instances, savepoints, export and import),
//! [`VatBackend`] (one instance), [`StoreError`] (grouped by [`Fault`]).
//!
//! ```text
//!   vat "desk" ──VatBackend──┐
//!   vat "mint" ──VatBackend──┼── Store ── redb Database ── host.store (0600)
//!   cli: savepoint/rollback ─┤                 │
//!   cli: export ─────────────┘                 └─ export ─▶ one file (+ pola.toml bytes)
//! ```
//!
//! # On-disk layout
//!
//! One redb file, mode 0600, holding only these tables:
//!
//! | table | key → value | holds |
//! |---|---|---|
//! | `meta` | `&str` → `&[u8]` | `format` (u64 BE, [`FORMAT`] = 1), `host_id` (16 random bytes, made once), `created` (u64 BE unix seconds) |
//! | `savepoints` | `&str` → `(u64, u64)` | savepoint name → (redb persistent savepoint id, unix seconds taken) |
//! | `host` | `&str` → `&[u8]` | the host's own rows ([`Store::host_get`]/[`Store::host_put`]): identity key, Swiss numbers of served objects |
//! | `vat/NAME/objects` | `u64` → `&[u8]` | object id → record |
//! | `vat/NAME/roots` | `&str` → `u64` | root name → object id |
//! | `vat/NAME/meta` | `&str` → `u64` | `next_id` → the id counter |
//!
//! Instance and savepoint names are 1 to 64 bytes of `[A-Za-z0-9._-]`.
//! A store with a `format` above 1 is refused as made by a newer pola; a
//! file with any other table is refused as corrupt.
//!
//! # Opening, and what is refused
//!
//! [`Store::open`] opens the path with `O_NOFOLLOW | O_NONBLOCK` and judges
//! the opened file: symbolic links, FIFOs, directories and devices are
//! refused ([`StoreError::NotRegularFile`]), as is a file whose mode lets
//! group or others in ([`StoreError::Permissions`]: chmod 600 it). A file
//! that does not begin with redb's magic number (empty, random, zeros) is
//! [`StoreError::NotAStore`]. Then redb opens the file through an
//! in-memory overlay with its full integrity check (every page checksum of
//! every committed tree): the engine may read, and "repair" what it likes,
//! but no byte reaches the file. Only a file that verifies and holds
//! pola's `meta` table is then opened for real. So a refused file is never
//! changed, and a file that fails its checksums (a bit flip, a truncation)
//! is reported as [`StoreError::Corrupt`] rather than silently repaired.
//! The price is a full read of the store at every open.
//!
//! A new store is made under `NAME.tmp`, synced, linked to its name (never
//! replacing anything) and its folder synced, so a crash never leaves a
//! half-made store under the real name.
//!
//! # Crash behaviour
//!
//! Every [`pola_vat::backend::Backend::write`] is one redb write
//! transaction committed with `Durability::Immediate`: when it returns the
//! batch is on disk (redb syncs before it returns); if the process dies
//! (even `kill -9`) or the machine loses power before, none of the batch is
//! visible after restart. A store not shut down cleanly is recovered by
//! redb at the next open: if the last commit is torn, its checksums fail
//! and redb falls back to the commit before it, which is the last one any
//! caller saw succeed. (If the file was shut down cleanly, there is no torn
//! commit, so a failing checksum means damage and is refused instead.)
//! The integration tests kill a writer process with SIGKILL and check
//! that every batch it reported committed is there, whole.
//!
//! # Savepoints
//!
//! [`Store::savepoint`] takes a named redb *persistent* savepoint of the
//! whole store; [`Store::rollback`] restores one, and needs `&mut Store`
//! with no [`VatBackend`] alive (stop the vats first). The name map is not
//! rolled back: savepoints older than the restored one remain, newer ones
//! are gone. Savepoints pin the pages they need, so the file grows while
//! they exist, and they are not part of an export.
//!
//! # Export format (version 1)
//!
//! [`Store::export`] writes a consistent snapshot from one read transaction
//! while vats keep writing; [`Store::export_instance`] writes one
//! instance. All integers are big-endian.
//!
//! ```text
//! magic    "pola-store-export\n"                        18 bytes
//! version  u32 = 1
//! records  tag u8 | len u32 (≤ MAX_RECORD) | body[len]
//!   'H' header  scope u8 ('S' whole store | 'I' one instance)
//!               | store format u64 | host_id [16] | exported at u64 (unix s)
//!               | instance name (rest; empty for 'S')        — first, once
//!   'C' config  the host's config file bytes (≤ MAX_CONFIG)  — optional,
//!               right after the header, whole-store exports only
//!   'T' table   table name, e.g. "vat/desk/objects" or "host" (whole-store
//!               exports only); tables in strictly increasing name order;
//!               each instance has its "meta" table
//!   'R' row     key len u32 | key | value; keys strictly increasing.
//!               host:    key = host key (UTF-8), value = bytes;
//!               objects: key = id u64 (8 bytes), value = record;
//!               roots:   key = name (UTF-8), value = id u64;
//!               meta:    key = "next_id",   value = u64
//!   'E' end     tables u64 | rows u64 (must match what came before)
//! sha256   32 bytes: SHA-256 of every byte from the magic through 'E'
//! (end of file: nothing may follow)
//! ```
//!
//! Only the vat tables and the `host` table are exported (an instance
//! export has only its own vat tables); `meta` travels as the header (an
//! import keeps the host id), `savepoints` not at all. So a whole-store
//! export carries the host's identity key and Swiss numbers: it is as
//! secret as the host. [`Store::import`] makes a
//! new store file from a whole-store export and returns the config bytes;
//! [`Store::import_instance`] adds an instance export to an open store,
//! under any name. Both check every length against its bound before
//! reading what it announces, every record's place and shape, the
//! checksum, and the end of the input, and make nothing visible before
//! all of that has passed ([`StoreError::BadExport`] otherwise).
//!
//! # Swapping the engine
//!
//! The vat sees only the narrow [`pola_vat::backend::Backend`] trait
//! (`open`, `load`, atomic durable `write`). Another engine means another
//! implementation of that trait (and of export/import, whose format is
//! engine-neutral: it names tables and rows, not pages); nothing in the vat
//! changes. redb is used through `Database`, a `StorageBackend` (the
//! verifying overlay of `src/file.rs`), persistent savepoints and plain tables.
//!
//! [redb]: https://www.redb.org

#![forbid(unsafe_code)]

mod error;
mod export;
mod file;
mod log;
mod store;
mod vat;

pub use error::{Fault, Result, StoreError};
pub use export::{EXPORT_MAGIC, EXPORT_VERSION, ExportStats, Imported, MAX_CONFIG, MAX_RECORD};
pub use store::{FORMAT, HostId, MAX_HOST_KEY_LEN, MAX_HOST_VALUE, MAX_NAME_LEN, Store};
pub use vat::VatBackend;
