//! The one state store of a pola host.
//!
//! All mutable state of a host lives in two places: this store, broken down
//! by vat instance, and one declarative config file (DESIGN.md,
//! "Persistence model"). A [`Store`] is a single [redb] file; each vat
//! instance gets a namespace in it through a [`VatBackend`], which
//! implements the vat's [`pola_vat::backend::Backend`] seam: `open`,
//! `load`, and `write` of a [`pola_vat::backend::Batch`] as one atomic,
//! durable transaction. A write costs one append and one fdatasync of a
//! write-ahead log kept beside the redb file; the engine's own durable
//! commits happen at checkpoints (see "Write-ahead log" below).
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
//!   vat "desk" ──VatBackend──┐            ┌─ write-ahead log ── host.store-log (0600)
//!   vat "mint" ──VatBackend──┼── Store ───┼─ redb Database ──── host.store (0600)
//!   cli: savepoint/rollback ─┤            │
//!   cli: export ─────────────┘            └─ export ─▶ one file (+ pola.toml bytes)
//! ```
//!
//! # On-disk layout
//!
//! **One store is two files**: the redb file `PATH` and its write-ahead
//! log `PATH-log` (for `state.redb`, `state.redb-log`). Copy, move, back
//! up or delete them together: after a crash the log holds acknowledged
//! batches that may not be in the redb file yet. The log is tied to its
//! store by a random id, so a log beside the wrong store is refused. A
//! store that was never written to has no log file yet. Exports do not
//! depend on the log (they are read from the engine, which has every
//! batch applied).
//!
//! The redb file, mode 0600, holds only these tables:
//!
//! | table | key → value | holds |
//! |---|---|---|
//! | `meta` | `&str` → `&[u8]` | `format` (u64 BE, [`FORMAT`] = 1), `host_id` (16 random bytes, made once), `created` (u64 BE unix seconds); once the store has a log: `log_id` (its 16 random bytes) and `log_seq` (u64 BE, the checkpoint) |
//! | `savepoints` | `&str` → `(u64, u64)` | savepoint name → (redb persistent savepoint id, unix seconds taken) |
//! | `host` | `&str` → `&[u8]` | the host's own rows ([`Store::host_get`]/[`Store::host_put`]): identity key, Swiss numbers of served objects |
//! | `vat/NAME/objects` | `u64` → `&[u8]` | object id → record |
//! | `vat/NAME/roots` | `&str` → `u64` | root name → object id |
//! | `vat/NAME/meta` | `&str` → `u64` | `next_id` → the id counter |
//! | `instance_savepoints` | `&str` → `(u64, u64)` | `INSTANCE/NAME` → (serial, unix seconds taken): the savepoints of single instances |
//! | `isave/INSTANCE/NAME/{objects,roots,meta}` | as the instance's tables | instance savepoint `NAME`'s copy of `INSTANCE`'s tables |
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
//! Every [`pola_vat::backend::Backend::write`] appends one entry (the
//! instance name and the batch) to the write-ahead log and fdatasyncs it,
//! then applies the batch to redb in a transaction committed with
//! `Durability::None` (no sync; readers — `load`, `ids`, exports, other
//! backends — see it at once) and returns. When it returns the batch is
//! on disk, in the log; if the process dies (even `kill -9`) or the
//! machine loses power before the entry is whole, the torn entry is
//! discarded at the next open and none of the batch is visible. Every
//! other write of the store (instance creation, host rows, savepoints,
//! rollback, drop and import of an instance, checkpoints) is one redb
//! commit with `Durability::Immediate`, which also records the checkpoint.
//! A store not shut down cleanly is recovered by redb at the next open
//! to its last durable commit (if that commit is torn, its checksums fail
//! and redb falls back to the one before; if the file was shut down
//! cleanly, a failing checksum means damage and is refused), then the log
//! is replayed on top. The integration tests kill a writer process with
//! SIGKILL and check that every batch it reported committed is there,
//! whole, and crash writers at chosen points (`tests/all/wal.rs`).
//!
//! # Write-ahead log (format version 1)
//!
//! A redb durable commit writes every B-tree page the transaction
//! changed: a batch of records at random ids writes a 4 KiB leaf per
//! record plus branches, and syncs. The log turns that into one small
//! sequential write and one fdatasync per batch; the pages are written
//! once per checkpoint instead of once per batch. All integers are
//! big-endian.
//!
//! ```text
//! header   magic "pola-store-log\n\0" 16 | version u32 = 1 | log id [16]
//!          | crc32 u32 of the 36 bytes before                  40 bytes
//! entry    magic "PLe1" | body len u32 (≤ 64 MiB) | seq u64
//!          | crc32(body) u32 | crc32(log id ‖ the 20 bytes before) u32
//!          | body
//! body     name len u8 | instance name | next_id u64
//!          | objects u32 | (id u64 | len u32 | record)*
//!          | deletes u32 | id u64 *
//!          | roots u32   | (len u32 | name (UTF-8) | 0, or 1 | id u64)*
//! ```
//!
//! - **Sequence numbers** grow by one per entry over the store's life
//!   (a rollback keeps them growing). `meta.log_seq`, C, is the
//!   checkpoint: every entry numbered up to C is in redb's last durable
//!   commit. Every durable commit records the last number written, so it
//!   is a checkpoint, after which writing starts again right after the
//!   header (the older entries further on are stale: numbered at or
//!   below C). The file keeps its length, grown in written zeros 1 MiB
//!   at a time, so an append overwrites allocated blocks and fdatasync
//!   has no file size to record (on the development machine a 2 KB
//!   synced write costs ~130 µs that way against ~220 µs appending); a
//!   file longer than 17 MiB is cut back at a checkpoint.
//! - **Checkpoints** happen after 1 000 entries or 16 MiB of entries,
//!   when a [`VatBackend`] or the [`Store`] is dropped or closed, and
//!   before or as part of everything that reads or replaces the store as
//!   a whole: savepoints (of the store or of an instance), rollbacks,
//!   export, instance import, instance drop. Why these bounds: a checkpoint writes every page changed since
//!   the last one and syncs (milliseconds to tens of milliseconds for a
//!   large ledger), so it must be rare next to the per-batch fdatasync;
//!   1 000 batches is about a second of a busy vat. They also cap what a
//!   crash leaves to replay (at most 16 MiB plus one entry, applied in
//!   one commit at open) and the log file's size.
//! - **A batch whose entry would exceed 64 MiB** (records may be 16 MiB
//!   each) is not logged: it is applied in one durable commit, which is
//!   also a checkpoint.
//! - **At open**, after the redb file's checks, the log is checked whole
//!   before either file is written: kind and mode as for the store file
//!   (no link, FIFO or device; not open to group or others), the header
//!   and its checksum, the id (it must be the store's `log_id`), then the
//!   chain of entries after the header. Entries above C must follow C
//!   without a gap, each decoding whole and naming an instance the store
//!   has. Then every entry above C is applied, in order, in one durable
//!   commit, which is the new checkpoint. The chain ends at the first
//!   place that is not a whole, valid entry of this log, or at a valid
//!   entry numbered below its predecessor (a stale one). A crash
//!   mid-append leaves at most that one damaged entry at the end: a
//!   **torn tail**, never acknowledged, discarded. A valid entry header
//!   of this log numbered above the chain's last anywhere beyond the end
//!   means a **damaged middle**, refused. Also refused, as
//!   [`StoreError::Corrupt`] naming the log with both files left as they
//!   were: a gap in the numbers, an entry naming an instance that is not
//!   in the store, a log from another store, a log with entries beside a
//!   store that never had one, and a missing log beside a store that has
//!   one and was not shut down cleanly (after a clean shutdown nothing
//!   was lost with it, and an empty one with the recorded id is made).
//!   A file that is not a log is [`StoreError::NotAStore`]; a newer log
//!   version [`StoreError::NewerFormat`].
//! - **Reading is bounded**: an entry's length is checked against 64 MiB
//!   and against the bytes the file holds past it before anything is
//!   allocated, and counts inside a body against the bytes that follow.
//!   Entry header checksums are keyed with the log's random id, so a
//!   record containing bytes shaped like an entry is never taken for one.
//! - **Failures**: if applying a logged batch to redb fails, its entry is
//!   erased (header zeroed, synced) before `write` reports the error, so
//!   it is never replayed; if that erase cannot be synced either, the log
//!   refuses every later batch (reopen the store to recover). A
//!   checkpoint that fails after a successful append does not fail the
//!   write (the batch is durable in the log); it is tried again after the
//!   next batch.
//! - Writers of one store share the log under one mutex: several vats'
//!   batches are written one after another, each with its own sync.
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
//! [`Store::savepoint_instance`] saves **one instance**: its three tables
//! are copied, row by row, into `isave/INSTANCE/NAME/…` in one durable
//! commit (a checkpoint, so batches that were only in the log are in the
//! copy); the vat may keep running meanwhile. [`Store::rollback_instance`]
//! (refused with [`StoreError::InUse`] while that instance's backend is
//! live) replaces the instance's tables with the copy in one durable
//! commit, leaving every other instance, the host table and every
//! savepoint as they are; [`Store::instance_savepoints`] lists them,
//! oldest first, and [`Store::delete_instance_savepoint`] deletes one.
//! Each costs time and space in proportion to the instance. They are
//! ordinary tables of the store: a whole-store savepoint holds them as
//! they were and a whole-store rollback restores them so (ones taken since
//! are gone, ones deleted since are back), [`Store::drop_instance`]
//! deletes an instance's savepoints with it, and exports (whole-store and
//! instance) leave them out.
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
//! import keeps the host id), `savepoints`, `instance_savepoints` and the
//! `isave/…` copies not at all. So a whole-store
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
mod isave;
mod log;
mod store;
mod vat;

pub use error::{Fault, Result, StoreError};
pub use export::{EXPORT_MAGIC, EXPORT_VERSION, ExportStats, Imported, MAX_CONFIG, MAX_RECORD};
pub use store::{FORMAT, HostId, MAX_HOST_KEY_LEN, MAX_HOST_VALUE, MAX_NAME_LEN, Store, name_rule};
pub use vat::VatBackend;
