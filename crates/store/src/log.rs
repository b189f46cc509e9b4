//! The write-ahead log beside the store file: `PATH-log` for a store at
//! `PATH`. One store is both files (format: the crate docs, "Write-ahead
//! log").
//!
//! Invariants (upheld here and in `store.rs`, `vat.rs`, `export.rs`):
//! - Entries are written in sequence order, each one synced (fdatasync)
//!   before the engine sees its batch and before the next is written.
//! - The `log_seq` row of the store's `meta` table, C, is a checkpoint:
//!   every entry with a sequence number up to C is in the engine's last
//!   durable commit. Every durable commit the store makes records the
//!   last sequence written, so an entry at or below C is stale; writing
//!   starts again after the header (nothing need be erased: stale entries
//!   have smaller numbers than any entry written after them).
//! - Sequence numbers only grow over a store's life (a rollback records
//!   the current one, not the savepoint's).
//! - An entry header's checksum is keyed with the log's random id, so
//!   bytes that were never written as an entry of this log (a record's
//!   contents, another store's log) are not taken for one.
//! - The `log_id` row of `meta` is written only once the log file exists,
//!   and before its first entry: a store that has the row and was not shut
//!   down cleanly cannot have lost its log without that being noticed.
//! - Reading never trusts a length to allocate more than the file holds
//!   past that point, and an entry is at most [`MAX_ENTRY`] bytes.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use pola_vat::backend::Batch;

use crate::error::{Result, StoreError};
use crate::file;
use crate::store::name_rule;

/// A log's random id, also kept in the store's `meta` table.
pub(crate) type LogId = [u8; 16];

/// The log's file name is the store's plus this.
pub(crate) const LOG_SUFFIX: &str = "-log";
/// The first bytes of a log file.
pub(crate) const LOG_MAGIC: &[u8; 16] = b"pola-store-log\n\0";
/// The log format this build writes and reads.
pub(crate) const LOG_VERSION: u32 = 1;
/// Magic, version, id, checksum.
pub(crate) const HEADER_LEN: u64 = 40;
/// The first bytes of every entry.
const ENTRY_MAGIC: [u8; 4] = *b"PLe1";
/// Magic, body length, sequence, body checksum, header checksum.
pub(crate) const ENTRY_HEAD: usize = 24;
/// Largest entry body. A batch whose entry would be larger is written
/// straight to the engine in one durable commit instead.
pub(crate) const MAX_ENTRY: usize = 64 << 20;
/// A checkpoint is made after this many entries…
pub(crate) const CHECKPOINT_ENTRIES: u64 = 1000;
/// …or once this many bytes of entries have been written since the last.
pub(crate) const CHECKPOINT_BYTES: u64 = 16 << 20;
/// The file grows in steps of this many bytes of written zeros, so that
/// appends overwrite allocated blocks and fdatasync has no size to record.
const GROW: u64 = 1 << 20;
/// After a checkpoint, a file longer than this is cut back to it.
const KEEP: u64 = CHECKPOINT_BYTES + GROW;

/// The log's path for the store at `store`.
pub(crate) fn log_path(store: &Path) -> PathBuf {
    file::sibling(store, LOG_SUFFIX)
}

fn header_bytes(id: &LogId) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..16].copy_from_slice(LOG_MAGIC);
    h[16..20].copy_from_slice(&LOG_VERSION.to_be_bytes());
    h[20..36].copy_from_slice(id);
    let crc = crc32fast::hash(&h[..36]);
    h[36..40].copy_from_slice(&crc.to_be_bytes());
    h
}

fn head_crc(id: &LogId, head: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(id);
    h.update(head);
    h.finalize()
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

/// The length of the body of `batch`'s entry, or `None` if it would be
/// over [`MAX_ENTRY`].
fn body_len(name: &str, batch: &Batch) -> Option<usize> {
    let mut n: usize = 1 + name.len() + 8 + 4 + 4 + 4;
    for (_, r) in &batch.objects {
        n = n.checked_add(12)?.checked_add(r.len())?;
        if n > MAX_ENTRY {
            return None;
        }
    }
    n = n.checked_add(batch.deletes.len().checked_mul(8)?)?;
    for (k, v) in &batch.roots {
        n = n
            .checked_add(5)?
            .checked_add(k.len())?
            .checked_add(if v.is_some() { 8 } else { 0 })?;
        if n > MAX_ENTRY {
            return None;
        }
    }
    (n <= MAX_ENTRY).then_some(n)
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Option<()> {
    out.extend_from_slice(&u32::try_from(n).ok()?.to_be_bytes());
    Some(())
}

/// The whole entry (header and body) for `batch` of instance `name`, or
/// `None` if it would be over [`MAX_ENTRY`].
pub(crate) fn encode(id: &LogId, seq: u64, name: &str, batch: &Batch) -> Option<Vec<u8>> {
    let len = body_len(name, batch)?;
    let mut out = Vec::with_capacity(ENTRY_HEAD + len);
    out.extend_from_slice(&[0u8; ENTRY_HEAD]);
    out.push(u8::try_from(name.len()).ok()?);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&batch.next_id.to_be_bytes());
    put_len(&mut out, batch.objects.len())?;
    for (oid, record) in &batch.objects {
        out.extend_from_slice(&oid.to_be_bytes());
        put_len(&mut out, record.len())?;
        out.extend_from_slice(record);
    }
    put_len(&mut out, batch.deletes.len())?;
    for oid in &batch.deletes {
        out.extend_from_slice(&oid.to_be_bytes());
    }
    put_len(&mut out, batch.roots.len())?;
    for (root, target) in &batch.roots {
        put_len(&mut out, root.len())?;
        out.extend_from_slice(root.as_bytes());
        match target {
            Some(oid) => {
                out.push(1);
                out.extend_from_slice(&oid.to_be_bytes());
            }
            None => out.push(0),
        }
    }
    if out.len() != ENTRY_HEAD + len {
        return None;
    }
    let body_crc = crc32fast::hash(&out[ENTRY_HEAD..]);
    out[0..4].copy_from_slice(&ENTRY_MAGIC);
    out[4..8].copy_from_slice(&u32::try_from(len).ok()?.to_be_bytes());
    out[8..16].copy_from_slice(&seq.to_be_bytes());
    out[16..20].copy_from_slice(&body_crc.to_be_bytes());
    let crc = head_crc(id, &out[..20]);
    out[20..24].copy_from_slice(&crc.to_be_bytes());
    Some(out)
}

/// An entry's header, checked: (body length, sequence, body checksum).
/// `None` unless the magic and the keyed checksum match and the length is
/// within [`MAX_ENTRY`].
pub(crate) fn parse_head(id: &LogId, head: &[u8]) -> Option<(usize, u64, u32)> {
    if head.len() < ENTRY_HEAD || head[..4] != ENTRY_MAGIC {
        return None;
    }
    if head_crc(id, &head[..20]) != be_u32(head, 20)? {
        return None;
    }
    let len = usize::try_from(be_u32(head, 4)?).ok()?;
    if len > MAX_ENTRY {
        return None;
    }
    Some((len, be_u64(head, 8)?, be_u32(head, 16)?))
}

/// A decoded entry body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The instance the batch is for.
    pub(crate) name: String,
    /// The batch.
    pub(crate) batch: Batch,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("a length overflows")?;
        let s = self.b.get(self.at..end).ok_or("it ends early")?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> std::result::Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> std::result::Result<usize, &'static str> {
        let v = be_u32(self.take(4)?, 0).ok_or("it ends early")?;
        usize::try_from(v).map_err(|_| "a length overflows")
    }

    fn u64(&mut self) -> std::result::Result<u64, &'static str> {
        be_u64(self.take(8)?, 0).ok_or("it ends early")
    }

    fn left(&self) -> usize {
        self.b.len().saturating_sub(self.at)
    }

    /// A count of items of at least `min` bytes each, checked against the
    /// bytes left (so no allocation is sized beyond the input).
    fn count(&mut self, min: usize) -> std::result::Result<usize, &'static str> {
        let n = self.u32()?;
        if n > self.left() / min {
            return Err("a count is larger than the bytes that follow");
        }
        Ok(n)
    }
}

/// Decodes an entry body, checking its whole shape: a valid instance
/// name, counts and lengths within the body, UTF-8 root names, root flags
/// 0 or 1, and nothing after the last field.
pub(crate) fn decode_body(body: &[u8]) -> std::result::Result<Decoded, &'static str> {
    let mut c = Cursor { b: body, at: 0 };
    let n = usize::from(c.u8()?);
    let name = std::str::from_utf8(c.take(n)?).map_err(|_| "the instance name is not UTF-8")?;
    name_rule(name).map_err(|_| "the instance name breaks the naming rule")?;
    let next_id = c.u64()?;
    let count = c.count(12)?;
    let mut objects = Vec::with_capacity(count);
    for _ in 0..count {
        let oid = c.u64()?;
        let len = c.u32()?;
        objects.push((oid, c.take(len)?.to_vec()));
    }
    let count = c.count(8)?;
    let mut deletes = Vec::with_capacity(count);
    for _ in 0..count {
        deletes.push(c.u64()?);
    }
    let count = c.count(5)?;
    let mut roots = Vec::with_capacity(count);
    for _ in 0..count {
        let len = c.u32()?;
        let root = std::str::from_utf8(c.take(len)?).map_err(|_| "a root name is not UTF-8")?;
        let target = match c.u8()? {
            0 => None,
            1 => Some(c.u64()?),
            _ => return Err("a root's flag is neither 0 nor 1"),
        };
        roots.push((root.to_string(), target));
    }
    if c.left() != 0 {
        return Err("bytes follow its last field");
    }
    Ok(Decoded {
        name: name.to_string(),
        batch: Batch {
            objects,
            deletes,
            roots,
            next_id,
        },
    })
}

/// Reads the entry at `at`, if a whole, valid one is there: (sequence,
/// body). The body is allocated only after its length has been checked
/// against [`MAX_ENTRY`] and against the bytes the file holds past `at`.
pub(crate) fn read_entry(
    f: &File,
    id: &LogId,
    at: u64,
    file_len: u64,
) -> io::Result<Option<(u64, Vec<u8>)>> {
    let Some(body_at) = at.checked_add(ENTRY_HEAD as u64).filter(|&e| e <= file_len) else {
        return Ok(None);
    };
    let mut head = [0u8; ENTRY_HEAD];
    f.read_exact_at(&mut head, at)?;
    let Some((len, seq, body_crc)) = parse_head(id, &head) else {
        return Ok(None);
    };
    if len as u64 > file_len - body_at {
        return Ok(None);
    }
    let mut body = vec![0u8; len];
    f.read_exact_at(&mut body, body_at)?;
    if crc32fast::hash(&body) != body_crc {
        return Ok(None);
    }
    Ok(Some((seq, body)))
}

/// The first valid entry header at or after `from` whose sequence is
/// above `floor`: (offset, sequence). Reads in windows of 1 MiB.
fn newer_after(
    f: &File,
    id: &LogId,
    from: u64,
    file_len: u64,
    floor: u64,
) -> io::Result<Option<(u64, u64)>> {
    const WINDOW: u64 = 1 << 20;
    let mut start = from;
    let mut buf = Vec::new();
    while start.saturating_add(ENTRY_HEAD as u64) <= file_len {
        let n = (file_len - start).min(WINDOW + ENTRY_HEAD as u64);
        buf.resize(n as usize, 0);
        f.read_exact_at(&mut buf, start)?;
        // Offsets whose whole header is in this window.
        let stop = (n - ENTRY_HEAD as u64).min(WINDOW - 1) as usize;
        for i in 0..=stop {
            if buf.get(i..i + 4) == Some(&ENTRY_MAGIC[..])
                && let Some(head) = buf.get(i..i + ENTRY_HEAD)
                && let Some((_, seq, _)) = parse_head(id, head)
                && seq > floor
            {
                return Ok(Some((start + i as u64, seq)));
            }
        }
        start += stop as u64 + 1;
    }
    Ok(None)
}

/// What the store's `meta` table says about its log.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogMeta {
    /// `log_id`: set once the log file exists.
    pub(crate) id: Option<LogId>,
    /// `log_seq`: the checkpoint (0 if absent).
    pub(crate) checkpointed: u64,
}

/// An entry to replay: where it is and its sequence number.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub(crate) at: u64,
    pub(crate) seq: u64,
}

/// The largest sequence number a store may record (2^62: far more
/// batches than a store will ever write, with room to count on).
const MAX_SEQ: u64 = 1 << 62;

/// A log that passed every check at open, and what it asks to replay.
pub(crate) struct Recovered {
    pub(crate) log: Log,
    /// Entries above the checkpoint, in order.
    pub(crate) replay: Vec<Span>,
    /// The instances those entries name.
    pub(crate) instances: BTreeSet<String>,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Opens and checks the log of the store at `store` (nothing is written):
/// its kind and mode, header and id, every entry up to the end of its
/// chain, and that no entry written after the checkpoint lies beyond a
/// damaged one. `clean`: whether the store was shut down cleanly.
///
/// # Errors
/// [`StoreError::NotRegularFile`], [`StoreError::Permissions`],
/// [`StoreError::NotAStore`] (not a log), [`StoreError::NewerFormat`],
/// [`StoreError::Corrupt`] (a damaged or foreign log, a gap, a missing
/// log the store needs), I/O.
pub(crate) fn recover(store: &Path, meta: &LogMeta, clean: bool) -> Result<Recovered> {
    let path = log_path(store);
    // Sequence numbers count up by one per batch from 0; one this large
    // can only come from a crafted file, and counting on from it would
    // overflow.
    if meta.checkpointed > MAX_SEQ {
        return Err(corrupt(
            store,
            format!(
                "its write-ahead log checkpoint {} is impossible",
                meta.checkpointed
            ),
        ));
    }
    let Some((f, fmeta)) = file::open_private(&path)? else {
        let mut log = Log::new(path, None, [0; 16], meta.checkpointed, 0);
        if let Some(id) = meta.id {
            if !clean {
                return Err(corrupt(
                    log.path(),
                    "the write-ahead log is missing, and the store was not shut down cleanly: \
                     batches acknowledged since its last checkpoint would be lost; put the log back",
                ));
            }
            // Shut down cleanly, so nothing was lost with it; make an empty
            // one with the recorded id now, so the store is never without
            // the log it records (a crash before the next batch would
            // otherwise be refused).
            log.create_with(id)?;
            log.marked = true;
        }
        return Ok(Recovered {
            log,
            replay: Vec::new(),
            instances: BTreeSet::new(),
        });
    };
    let io = |e| StoreError::io(&path, "read write-ahead log", e);
    let file_len = fmeta.len();
    if file_len < HEADER_LEN {
        return Err(StoreError::NotAStore {
            path: path.clone(),
            reason: "it is shorter than a write-ahead log header".to_string(),
        });
    }
    let mut h = [0u8; HEADER_LEN as usize];
    f.read_exact_at(&mut h, 0).map_err(io)?;
    if h[..16] != LOG_MAGIC[..] {
        return Err(StoreError::NotAStore {
            path: path.clone(),
            reason: "it does not begin with pola's write-ahead log magic".to_string(),
        });
    }
    let version = be_u32(&h, 16).unwrap_or(0);
    if version > LOG_VERSION {
        return Err(StoreError::NewerFormat {
            path: path.clone(),
            found: u64::from(version),
            supported: u64::from(LOG_VERSION),
        });
    }
    if version == 0 || be_u32(&h, 36) != Some(crc32fast::hash(&h[..36])) {
        return Err(corrupt(&path, "its header fails its checksum"));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[20..36]);
    if let Some(sid) = meta.id
        && sid != id
    {
        return Err(corrupt(
            &path,
            "it belongs to another store (its id is not the one this store recorded)",
        ));
    }
    let floor = meta.checkpointed;
    let mut at = HEADER_LEN;
    let mut prev: Option<u64> = None;
    let mut replay = Vec::new();
    let mut instances = BTreeSet::new();
    while let Some((seq, body)) = read_entry(&f, &id, at, file_len).map_err(io)? {
        match prev {
            Some(p) if seq <= p => break, // an older generation's entry: the end
            Some(p) if seq != p + 1 => {
                return Err(corrupt(
                    &path,
                    format!(
                        "entry {seq} at byte {at} follows entry {p}: entries are missing between them"
                    ),
                ));
            }
            None if seq > floor.saturating_add(1) => {
                return Err(corrupt(
                    &path,
                    format!(
                        "its first entry is {seq} but the store's checkpoint is {floor}: entries are missing"
                    ),
                ));
            }
            _ => {}
        }
        if seq > floor {
            let decoded = decode_body(&body).map_err(|why| {
                corrupt(
                    &path,
                    format!("entry {seq} at byte {at} passes its checksum but {why}"),
                )
            })?;
            instances.insert(decoded.name);
            replay.push(Span { at, seq });
        }
        prev = Some(seq);
        at += (ENTRY_HEAD + body.len()) as u64;
    }
    let last = prev.unwrap_or(0).max(floor);
    if last > MAX_SEQ {
        return Err(corrupt(&path, format!("entry {last} is impossibly far on")));
    }
    // A crash mid-append leaves at most one damaged entry, at the end: an
    // entry of this log numbered above `last` beyond it means damage.
    if let Some((where_, seq)) = newer_after(&f, &id, at + 1, file_len, last).map_err(io)? {
        return Err(corrupt(
            &path,
            format!(
                "the entry at byte {at} is damaged (or entries are missing) but entry {seq} follows at byte {where_}"
            ),
        ));
    }
    if meta.id.is_none() && prev.is_some() {
        return Err(corrupt(
            &path,
            "it holds entries but the store has no record of a log: it belongs to another store",
        ));
    }
    let marked = meta.id.is_some();
    let mut log = Log::new(path, Some(f), id, floor, file_len);
    log.marked = marked;
    log.last = last;
    Ok(Recovered {
        log,
        replay,
        instances,
    })
}

/// The log's writer: one per open store, behind the store's mutex.
#[derive(Debug)]
pub(crate) struct Log {
    path: PathBuf,
    /// `None` until the first entry needs the file (a store that was
    /// never written has no log).
    file: Option<File>,
    id: LogId,
    /// Whether the store's `meta` records `id` (durably).
    marked: bool,
    /// The last sequence number written (or the checkpoint).
    last: u64,
    /// The checkpoint: entries up to it are in the engine durably.
    checkpointed: u64,
    /// Where the next entry goes.
    end: u64,
    /// The file's length (written zeros past `end`).
    len: u64,
    /// Entries since the checkpoint.
    entries: u64,
    /// Why the log can no longer be trusted (a failed sync).
    failed: Option<String>,
}

impl Log {
    fn new(path: PathBuf, file: Option<File>, id: LogId, checkpointed: u64, len: u64) -> Log {
        Log {
            path,
            file,
            id,
            marked: false,
            last: checkpointed,
            checkpointed,
            end: HEADER_LEN,
            len,
            entries: 0,
            failed: None,
        }
    }

    /// The log's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The log's id, if its file exists.
    pub(crate) fn id(&self) -> Option<LogId> {
        self.file.as_ref().map(|_| self.id)
    }

    /// The last sequence number written (or checkpointed).
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// Whether entries were written since the last checkpoint.
    pub(crate) fn dirty(&self) -> bool {
        self.last > self.checkpointed
    }

    /// Whether a checkpoint is due.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.entries >= CHECKPOINT_ENTRIES || self.end - HEADER_LEN >= CHECKPOINT_BYTES
    }

    /// Whether the store's `meta` must record the log (a durable commit)
    /// before an entry may be written.
    pub(crate) fn needs_marking(&self) -> bool {
        !self.marked
    }

    /// An error if the log failed earlier and can no longer be trusted.
    pub(crate) fn check_usable(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(StoreError::io(
                &self.path,
                "write-ahead log",
                io::Error::other(format!(
                    "{why}; no more batches are accepted (reopen the store to recover)"
                )),
            )),
        }
    }

    /// Makes the log file if there is none (header, then zeros, under a
    /// temporary name, synced and linked to its name, folder synced).
    pub(crate) fn create_if_absent(&mut self) -> Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| {
            StoreError::io(
                &self.path,
                "get random bytes",
                io::Error::other(e.to_string()),
            )
        })?;
        self.create_with(id)
    }

    /// Makes the log file, with id `id`.
    fn create_with(&mut self, id: LogId) -> Result<()> {
        let tmp = file::sibling(&self.path, ".tmp");
        let f = file::create_temp(&tmp)?;
        let made = (|| {
            f.write_all_at(&header_bytes(&id), 0)?;
            write_zeros(&f, HEADER_LEN, GROW)
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::io(&tmp, "write write-ahead log", e));
        }
        file::publish(&tmp, &self.path)?;
        self.file = Some(f);
        self.id = id;
        self.len = GROW;
        self.end = HEADER_LEN;
        Ok(())
    }

    /// Records that the store's `meta` now holds the log's id and that
    /// every entry written so far is checkpointed: writing starts again
    /// after the header, and an overgrown file is cut back.
    pub(crate) fn checkpointed(&mut self) {
        if self.file.is_some() {
            self.marked = true;
        }
        self.checkpointed = self.last;
        self.entries = 0;
        self.end = HEADER_LEN;
        if self.len > KEEP
            && let Some(f) = &self.file
            && f.set_len(KEEP).and_then(|()| f.sync_all()).is_ok()
        {
            self.len = KEEP;
        }
    }

    /// The entry for `batch` of instance `name` with the next sequence
    /// number, or `None` if it is too large for the log.
    pub(crate) fn encode(&self, name: &str, batch: &Batch) -> Option<Vec<u8>> {
        encode(&self.id, self.last + 1, name, batch)
    }

    /// Writes `entry` (from [`Log::encode`]) after the last one and syncs
    /// it. Returns where it went.
    pub(crate) fn append(&mut self, entry: &[u8]) -> Result<u64> {
        self.check_usable()?;
        let Some(f) = &self.file else {
            return Err(StoreError::io(
                &self.path,
                "append",
                io::Error::other("the write-ahead log was not made"),
            ));
        };
        let at = self.end;
        let need = at.saturating_add(entry.len() as u64);
        if need > self.len {
            let new_len = need.div_ceil(GROW).saturating_mul(GROW);
            write_zeros(f, self.len, new_len)
                .and_then(|()| f.sync_all())
                .map_err(|e| StoreError::io(&self.path, "grow write-ahead log", e))?;
            self.len = new_len;
        }
        f.write_all_at(entry, at)
            .map_err(|e| StoreError::io(&self.path, "append to write-ahead log", e))?;
        if let Err(e) = f.sync_data() {
            // Whether the entry is on disk is unknown: take it back.
            let undone = f
                .write_all_at(&[0u8; ENTRY_HEAD], at)
                .and_then(|()| f.sync_data());
            if undone.is_err() {
                self.failed = Some(format!(
                    "fdatasync failed ({e}), and so did erasing the entry"
                ));
            }
            return Err(StoreError::io(&self.path, "fdatasync write-ahead log", e));
        }
        self.end = need;
        self.last += 1;
        self.entries += 1;
        Ok(at)
    }

    /// Takes back the entry just written at `at` (its batch could not be
    /// applied), so it is never replayed.
    pub(crate) fn retract(&mut self, at: u64) {
        let Some(f) = &self.file else { return };
        let done = f
            .write_all_at(&[0u8; ENTRY_HEAD], at)
            .and_then(|()| f.sync_data());
        match done {
            Ok(()) => {
                self.end = at;
                self.last -= 1;
                self.entries = self.entries.saturating_sub(1);
            }
            Err(e) => {
                self.failed = Some(format!(
                    "a batch that failed could not be erased from the log ({e})"
                ));
            }
        }
    }

    /// Reads and decodes the entry at `span` again, for replay.
    pub(crate) fn reread(&self, span: Span) -> Result<Decoded> {
        let Some(f) = &self.file else {
            return Err(corrupt(&self.path, "the write-ahead log vanished"));
        };
        let io = |e| StoreError::io(&self.path, "read write-ahead log", e);
        let len = f.metadata().map_err(io)?.len();
        match read_entry(f, &self.id, span.at, len).map_err(io)? {
            Some((seq, body)) if seq == span.seq => {
                decode_body(&body).map_err(|why| corrupt(&self.path, format!("entry {seq}: {why}")))
            }
            _ => Err(corrupt(
                &self.path,
                format!("entry {} changed while the store was opening", span.seq),
            )),
        }
    }
}

fn write_zeros(f: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; (to.saturating_sub(from)).min(GROW) as usize];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        f.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: LogId = [7; 16];

    fn sample() -> Batch {
        Batch {
            objects: vec![(1, b"one".to_vec()), (9, Vec::new()), (3, vec![0xff; 300])],
            deletes: vec![4, 5],
            roots: vec![("main".into(), Some(1)), ("gone".into(), None)],
            next_id: 10,
        }
    }

    #[test]
    fn a_checkpoint_number_that_would_overflow_is_refused_not_counted_on() {
        // A crafted store file naming checkpoint u64::MAX: the next entry
        // would wrap to 0 and read as stale (silently lost batches).
        let dir = std::env::temp_dir().join(format!("pola-log-seq-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let store = dir.join("state.redb");
        for checkpointed in [u64::MAX, MAX_SEQ + 1] {
            let meta = LogMeta {
                id: None,
                checkpointed,
            };
            match recover(&store, &meta, true) {
                Err(StoreError::Corrupt { reason, .. }) => {
                    assert!(reason.contains("impossible"), "{reason}");
                }
                other => panic!("accepted checkpoint {checkpointed}: {:?}", other.err()),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn entries_round_trip() {
        let batch = sample();
        let e = encode(&ID, 42, "vat-1", &batch).expect("fits");
        let (len, seq, crc) = parse_head(&ID, &e[..ENTRY_HEAD]).expect("head");
        assert_eq!((len, seq), (e.len() - ENTRY_HEAD, 42));
        assert_eq!(crc, crc32fast::hash(&e[ENTRY_HEAD..]));
        let d = decode_body(&e[ENTRY_HEAD..]).expect("decode");
        assert_eq!(d.name, "vat-1");
        assert_eq!(d.batch, batch);
        // Another log's id does not accept the header.
        assert_eq!(parse_head(&[8; 16], &e[..ENTRY_HEAD]), None);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let e = encode(&ID, 1, "a", &sample()).expect("fits");
        for i in 0..e.len() * 8 {
            let mut bad = e.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let ok = parse_head(&ID, &bad[..ENTRY_HEAD])
                .is_some_and(|(_, _, crc)| crc == crc32fast::hash(&bad[ENTRY_HEAD..]));
            assert!(!ok, "bit {i} flipped unnoticed");
        }
    }

    #[test]
    fn too_large_batches_are_not_encoded() {
        let big = Batch {
            objects: vec![(1, vec![0; MAX_ENTRY])],
            ..Batch::default()
        };
        assert!(encode(&ID, 1, "a", &big).is_none());
        let many_roots = Batch {
            roots: vec![("r".repeat(1 << 20), None); 70],
            ..Batch::default()
        };
        assert!(encode(&ID, 1, "a", &many_roots).is_none());
    }

    #[test]
    fn bodies_with_lying_counts_are_refused_without_allocating() {
        // One object announced 4 G long, in a 30-byte body.
        let mut b = vec![1, b'a'];
        b.extend_from_slice(&0u64.to_be_bytes());
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        b.extend_from_slice(&[0; 16]);
        assert!(decode_body(&b).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes never panic the body decoder, and whatever it
        /// accepts encodes back to the same bytes (the form is canonical).
        #[test]
        fn body_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(d) = decode_body(&bytes) {
                let e = encode(&ID, 1, &d.name, &d.batch).expect("re-encode");
                prop_assert_eq!(&e[ENTRY_HEAD..], &bytes[..]);
            }
        }

        /// Arbitrary headers never panic and never announce more than
        /// MAX_ENTRY.
        #[test]
        fn head_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some((len, _, _)) = parse_head(&ID, &bytes) {
                prop_assert!(len <= MAX_ENTRY);
            }
        }

        /// A mutated valid body decodes or is refused, never panics.
        #[test]
        fn mutated_bodies_never_panic(at in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
            let e = encode(&ID, 1, "vat", &sample()).expect("fits");
            let mut body = e[ENTRY_HEAD..].to_vec();
            let i = at % body.len();
            body[i] = byte;
            body.truncate(cut.max(1).min(body.len()));
            let _ = decode_body(&body);
        }

        /// Arbitrary bytes as a log file: reading every entry and scanning
        /// for later ones never panics, and each allocation is bounded by
        /// the file (read_entry allocates only a checked length).
        #[test]
        fn log_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), with_entry in any::<bool>()) {
            let path = std::env::temp_dir().join(format!(
                "pola-store-log-prop-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let mut content = bytes.clone();
            if with_entry {
                let e = encode(&ID, 3, "vat", &sample()).expect("fits");
                let at = content.len() / 2;
                content.splice(at..at, e);
            }
            std::fs::write(&path, &content).expect("write");
            let f = File::open(&path).expect("open");
            let len = content.len() as u64;
            let mut at = 0;
            while at < len {
                if let Some((_, body)) = read_entry(&f, &ID, at, len).expect("read") {
                    prop_assert!(body.len() as u64 <= len);
                    let _ = decode_body(&body);
                }
                at += 1;
            }
            let found = newer_after(&f, &ID, 0, len, 0).expect("scan");
            if with_entry {
                prop_assert!(found.is_some());
            }
            let _ = std::fs::remove_file(&path);
        }
    }
}
