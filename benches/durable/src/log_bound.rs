//! A what-if backend for the durable-payments bench, **not** a store: the
//! vat's objects in memory ([`MemoryBackend`]) plus an append-only log
//! file that gets each batch appended and `fdatasync`ed before `write`
//! returns. It is what a log-structured store would cost per batch (one
//! sequential append and one sync, whatever the number of stored objects)
//! if it never had to checkpoint, so the `pola-log` engine built on it is
//! an upper bound for the vat with such a store, measured with the same
//! vat, workload and checks. It has no torn-write handling, no
//! checkpoints and no size bound: reopening replays the whole log, and a
//! damaged log is refused.
//!
//! Record: `len u32` then `next_id u64`, `objects u32`, each `id u64`,
//! `len u32`, bytes; `deletes u32`, each `id u64`; `roots u32`, each
//! `len u32`, name, `set u8`, `id u64` (all big-endian).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use pola_vat::backend::{Backend, BackendError, Batch, MemoryBackend, Opened};

/// The backend: memory plus the log.
pub struct LogBackend {
    mem: MemoryBackend,
    file: File,
    buf: Vec<u8>,
}

fn fail(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError(format!("log: {what}: {e}"))
}

impl LogBackend {
    /// Opens the log at `path` (made if missing), replaying what it holds.
    ///
    /// # Errors
    /// The file cannot be read or written, or a record does not decode.
    pub fn open(path: &Path) -> Result<LogBackend, BackendError> {
        let mut mem = MemoryBackend::new();
        if let Ok(bytes) = std::fs::read(path) {
            let mut r = Reader(&bytes);
            while !r.0.is_empty() {
                let len = r.u32()? as usize;
                let body = r.take(len)?;
                mem.write(&decode(body)?)?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| fail("open", e))?;
        Ok(LogBackend {
            mem,
            file,
            buf: Vec::new(),
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BackendError> {
        if n > self.0.len() {
            return Err(fail("replay", "a record runs past the end"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, BackendError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, BackendError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
}

fn encode(batch: &Batch, out: &mut Vec<u8>) -> Result<(), BackendError> {
    let n32 = |n: usize| u32::try_from(n).map_err(|_| fail("write", "batch too large"));
    out.clear();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&batch.next_id.to_be_bytes());
    out.extend_from_slice(&n32(batch.objects.len())?.to_be_bytes());
    for (id, bytes) in &batch.objects {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&n32(bytes.len())?.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&n32(batch.deletes.len())?.to_be_bytes());
    for id in &batch.deletes {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(&n32(batch.roots.len())?.to_be_bytes());
    for (name, id) in &batch.roots {
        out.extend_from_slice(&n32(name.len())?.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(u8::from(id.is_some()));
        out.extend_from_slice(&id.unwrap_or(0).to_be_bytes());
    }
    let len = n32(out.len() - 4)?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn decode(body: &[u8]) -> Result<Batch, BackendError> {
    let mut r = Reader(body);
    let mut batch = Batch {
        next_id: r.u64()?,
        ..Batch::default()
    };
    for _ in 0..r.u32()? {
        let id = r.u64()?;
        let len = r.u32()? as usize;
        batch.objects.push((id, r.take(len)?.to_vec()));
    }
    for _ in 0..r.u32()? {
        batch.deletes.push(r.u64()?);
    }
    for _ in 0..r.u32()? {
        let len = r.u32()? as usize;
        let name = String::from_utf8(r.take(len)?.to_vec()).map_err(|e| fail("replay", e))?;
        let set = r.take(1)?[0] != 0;
        let id = r.u64()?;
        batch.roots.push((name, set.then_some(id)));
    }
    if !r.0.is_empty() {
        return Err(fail("replay", "trailing bytes in a record"));
    }
    Ok(batch)
}

impl Backend for LogBackend {
    fn open(&mut self) -> Result<Opened, BackendError> {
        self.mem.open()
    }

    fn load(&mut self, id: u64) -> Result<Option<Vec<u8>>, BackendError> {
        self.mem.load(id)
    }

    fn ids(&mut self) -> Result<Vec<u64>, BackendError> {
        self.mem.ids()
    }

    fn write(&mut self, batch: &Batch) -> Result<(), BackendError> {
        encode(batch, &mut self.buf)?;
        self.file
            .write_all(&self.buf)
            .map_err(|e| fail("append", e))?;
        self.file.sync_data().map_err(|e| fail("sync", e))?;
        self.mem.write(batch)
    }
}
