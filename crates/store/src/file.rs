//! Getting from a path to an open engine without ever writing to a file
//! that is not a healthy pola store.
//!
//! Invariants (upheld here):
//! - A path is opened with `O_NOFOLLOW | O_NONBLOCK` and judged by the
//!   opened file's own metadata (`fstat`), so a symbolic link, FIFO,
//!   directory or device is refused without following, blocking on, or
//!   reading it.
//! - Before the engine may write to an existing file, the file has passed
//!   the engine's full integrity check *in an overlay* ([`Overlay`]): the
//!   engine reads the file but every write it makes (the recovery flag,
//!   a repair, the commit an integrity check ends with) stays in memory.
//!   Only a file that verifies, and holds pola's `meta` table with a format
//!   this build knows, is then opened for real.
//! - New files (a new store, an import) are written under a temporary
//!   name, synced, linked to their final name only if that name is free,
//!   and the folder is synced: a crash never leaves a half-made store
//!   under the real name.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use crate::error::{Result, StoreError};

/// redb's magic number: the first bytes of every redb file.
pub(crate) const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
/// Offset of redb's "god byte" (flags) in the header.
const GOD_BYTE: usize = 9;
/// The god byte's flag for "not shut down cleanly".
const RECOVERY_REQUIRED: u8 = 2;
/// redb's fixed header: 64 bytes then two 128-byte commit slots.
const HEADER_LEN: usize = 320;

const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;

/// An existing file that passed the checks that need no engine.
pub(crate) struct Checked {
    /// Opened read-write, the same inode that was checked.
    pub(crate) file: File,
    /// Whether the engine's header says it was shut down cleanly.
    pub(crate) clean: bool,
}

/// Opens `path` for use as a store, refusing anything that is not a
/// private regular file beginning with redb's magic number. `Ok(None)` if
/// nothing is at `path`.
pub(crate) fn open_checked(path: &Path) -> Result<Option<Checked>> {
    let Some((rw, meta)) = open_private(path)? else {
        return Ok(None);
    };
    if meta.len() == 0 {
        return Err(not_a_store(path, "the file is empty"));
    }
    if meta.len() < HEADER_LEN as u64 {
        return Err(not_a_store(
            path,
            "the file is shorter than a storage engine header",
        ));
    }
    let mut header = [0u8; HEADER_LEN];
    read_exact_at(&rw, &mut header, 0).map_err(|e| StoreError::io(path, "read header", e))?;
    if header[..REDB_MAGIC.len()] != REDB_MAGIC {
        return Err(not_a_store(
            path,
            "it does not begin with the storage engine's magic number",
        ));
    }
    let clean = header[GOD_BYTE] & RECOVERY_REQUIRED == 0;
    Ok(Some(Checked { file: rw, clean }))
}

/// Opens `path` read-write, refusing anything that is not a regular file
/// only its owner may use (checked on a read-only open first, so a FIFO or
/// a device is never opened for writing). `Ok(None)` if nothing is there.
pub(crate) fn open_private(path: &Path) -> Result<Option<(File, std::fs::Metadata)>> {
    let ro = match OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refusal_for_open_error(path, e)),
    };
    let meta = ro
        .metadata()
        .map_err(|e| StoreError::io(path, "fstat", e))?;
    check_kind_and_mode(path, &meta)?;
    // Write access is needed (the engine's locks and commits, the log's
    // appends). Open again, with the same flags, and make sure it is the
    // same file.
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(|e| refusal_for_open_error(path, e))?;
    let meta2 = rw
        .metadata()
        .map_err(|e| StoreError::io(path, "fstat", e))?;
    if (meta2.dev(), meta2.ino()) != (meta.dev(), meta.ino()) {
        return Err(StoreError::io(
            path,
            "open",
            io::Error::other("the file was replaced while it was being opened"),
        ));
    }
    check_kind_and_mode(path, &meta2)?;
    Ok(Some((rw, meta2)))
}

pub(crate) fn not_a_store(path: &Path, reason: &str) -> StoreError {
    StoreError::NotAStore {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn check_kind_and_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(StoreError::NotRegularFile {
            path: path.to_path_buf(),
            kind: describe(&ft),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(StoreError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn describe(ft: &std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "an unknown kind of file"
    }
}

/// An open that failed: a refusal if the path is the wrong kind of
/// file (`O_NOFOLLOW` on a link gives `ELOOP`, a socket `ENXIO`), else I/O.
fn refusal_for_open_error(path: &Path, e: io::Error) -> StoreError {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let ft = meta.file_type();
        if !ft.is_file() {
            return StoreError::NotRegularFile {
                path: path.to_path_buf(),
                kind: describe(&ft),
            };
        }
    }
    StoreError::io(path, "open", e)
}

pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

/// A storage backend that reads a file and keeps every write in memory:
/// the engine can open, verify and even "repair" a file through it while
/// the file itself is never changed. Locks go to the file, so a store open
/// in another process is still refused.
#[derive(Debug)]
pub(crate) struct Overlay {
    inner: FileBackend,
    state: Mutex<OverlayState>,
}

#[derive(Debug)]
struct OverlayState {
    /// The length the engine sees.
    len: u64,
    /// Bytes of the file below this offset show through (where no block
    /// overrides them); above it, the engine truncated and sees zeros.
    base_len: u64,
    /// Written blocks, by block number.
    blocks: HashMap<u64, Box<[u8]>>,
}

const BLOCK: u64 = 4096;

impl Overlay {
    pub(crate) fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let inner = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(Self {
            inner,
            state: Mutex::new(OverlayState {
                len,
                base_len: len,
                blocks: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OverlayState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The block's current contents (from the file where not overridden).
    fn fetch(&self, st: &OverlayState, block: u64) -> io::Result<Box<[u8]>> {
        let mut buf = vec![0u8; BLOCK as usize].into_boxed_slice();
        let start = block * BLOCK;
        if start < st.base_len {
            let n = (st.base_len - start).min(BLOCK) as usize;
            self.inner.read(start, &mut buf[..n])?;
        }
        Ok(buf)
    }
}

impl StorageBackend for Overlay {
    fn len(&self) -> io::Result<u64> {
        Ok(self.lock().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let st = self.lock();
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|&e| e <= st.len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        // Fast path: nothing written and all within the file.
        if st.blocks.is_empty() && end <= st.base_len {
            return self.inner.read(offset, out);
        }
        let mut pos = offset;
        while pos < end {
            let block = pos / BLOCK;
            let at = (pos - offset) as usize;
            if let Some(b) = st.blocks.get(&block) {
                let within = (pos % BLOCK) as usize;
                let n = ((BLOCK as usize) - within).min((end - pos) as usize);
                out[at..at + n].copy_from_slice(&b[within..within + n]);
                pos += n as u64;
                continue;
            }
            // A run of blocks nobody wrote: read it from the file at once.
            let mut run_end = ((block + 1) * BLOCK).min(end);
            while run_end < end && !st.blocks.contains_key(&(run_end / BLOCK)) {
                run_end = (run_end + BLOCK).min(end);
            }
            let dst = &mut out[at..(run_end - offset) as usize];
            let from_file = (run_end.min(st.base_len).max(pos) - pos) as usize;
            if from_file > 0 {
                self.inner.read(pos, &mut dst[..from_file])?;
            }
            dst[from_file..].fill(0);
            pos = run_end;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        if len < st.len {
            st.base_len = st.base_len.min(len);
            st.blocks.retain(|&b, _| b * BLOCK < len);
            let last = len / BLOCK;
            let cut = (len % BLOCK) as usize;
            if let Some(b) = st.blocks.get_mut(&last) {
                b[cut..].fill(0);
            }
        }
        st.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        if end > st.len {
            st.len = end;
        }
        let mut pos = offset;
        while pos < end {
            let block = pos / BLOCK;
            let within = (pos % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - pos) as usize);
            let src_at = (pos - offset) as usize;
            if !st.blocks.contains_key(&block) {
                let b = self.fetch(&st, block)?;
                st.blocks.insert(block, b);
            }
            if let Some(b) = st.blocks.get_mut(&block) {
                b[within..within + n].copy_from_slice(&data[src_at..src_at + n]);
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Creates `tmp` afresh (mode 0600, never following a link), removing a
/// stale one left by a crash.
pub(crate) fn create_temp(tmp: &Path) -> Result<File> {
    match std::fs::symlink_metadata(tmp) {
        Ok(_) => std::fs::remove_file(tmp)
            .map_err(|e| StoreError::io(tmp, "remove stale temporary file", e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io(tmp, "stat", e)),
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
        .map_err(|e| StoreError::io(tmp, "create", e))
}

/// Syncs `tmp`, gives it the name `path` only if nothing has that name
/// (a hard link, which never replaces), removes the temporary name and
/// syncs the folder.
pub(crate) fn publish(tmp: &Path, path: &Path) -> Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
        .map_err(|e| StoreError::io(tmp, "open", e))?;
    f.sync_all().map_err(|e| StoreError::io(tmp, "fsync", e))?;
    drop(f);
    match std::fs::hard_link(tmp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(tmp);
            return Err(StoreError::AlreadyExists {
                path: path.to_path_buf(),
                what: "a file at this path".to_string(),
            });
        }
        Err(_) => {
            // A file system without hard links: check, then rename.
            if std::fs::symlink_metadata(path).is_ok() {
                let _ = std::fs::remove_file(tmp);
                return Err(StoreError::AlreadyExists {
                    path: path.to_path_buf(),
                    what: "a file at this path".to_string(),
                });
            }
            std::fs::rename(tmp, path).map_err(|e| StoreError::io(path, "rename", e))?;
        }
    }
    let _ = std::fs::remove_file(tmp);
    sync_dir(path)
}

/// Syncs the folder holding `path`, so a new name in it survives a crash.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let d = File::open(dir).map_err(|e| StoreError::io(dir, "open folder", e))?;
    d.sync_all()
        .map_err(|e| StoreError::io(dir, "fsync folder", e))
}

/// Whether anything (even a dangling link) is at `path`.
pub(crate) fn exists(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io(path, "stat", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(tag: &str, bytes: &[u8]) -> (PathBuf, File) {
        let path =
            std::env::temp_dir().join(format!("pola-store-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, bytes).expect("write");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        (path, f)
    }

    fn read(o: &Overlay, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        o.read(offset, &mut v).expect("read");
        v
    }

    #[test]
    fn overlay_reads_through_and_never_writes() {
        let original: Vec<u8> = (0..3 * BLOCK as usize + 100).map(|i| i as u8).collect();
        let (path, f) = temp_file("overlay", &original);
        let o = Overlay::new(f).expect("overlay");
        assert_eq!(o.len().expect("len"), original.len() as u64);
        assert_eq!(read(&o, 10, 5000), original[10..5010]);
        // A write spanning a block boundary shows in reads, not in the file.
        o.write(4090, &[0xee; 20]).expect("write");
        let mut expect = original.clone();
        expect[4090..4110].fill(0xee);
        assert_eq!(read(&o, 0, expect.len()), expect);
        // Growing, then writing past the old end.
        o.set_len(5 * BLOCK).expect("grow");
        expect.resize(5 * BLOCK as usize, 0);
        o.write(4 * BLOCK + 1, b"tail").expect("write");
        expect[4 * BLOCK as usize + 1..4 * BLOCK as usize + 5].copy_from_slice(b"tail");
        assert_eq!(read(&o, 0, expect.len()), expect);
        // Shrinking hides the file's bytes past the cut, even after growing.
        o.set_len(4100).expect("shrink");
        o.set_len(2 * BLOCK).expect("grow again");
        expect.truncate(4100);
        expect.resize(2 * BLOCK as usize, 0);
        assert_eq!(read(&o, 0, expect.len()), expect);
        assert!(
            o.read(2 * BLOCK - 1, &mut [0u8; 2]).is_err(),
            "read past the end"
        );
        o.sync_data().expect("sync");
        o.close().expect("close");
        assert_eq!(std::fs::read(&path).expect("read"), original);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn sibling_appends_to_the_file_name() {
        assert_eq!(
            sibling(Path::new("/a/b/host.store"), ".tmp"),
            PathBuf::from("/a/b/host.store.tmp")
        );
    }
}
