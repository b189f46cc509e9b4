//! File and folder capabilities over cap-std.
//!
//! A [`FileCap`] holds a handle to the folder that contains the file and
//! the file's name; a [`FolderCap`] holds a handle to the folder. Every
//! open goes through cap-std relative to such a handle, one component at a
//! time, with symbolic links refused: a capability never reaches outside
//! the folder handle it was made from.

use std::io::{self, Read, Write};
use std::sync::Arc;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use pola_vat::{Object, Outcome, Turn, Val, error};

use super::{Access, CapError, RelPath, check_name};

/// The largest file a capability reads or writes: 16 MiB.
pub const MAX_FILE: u64 = 16 << 20;

/// The most entries `list()` answers; a larger folder is refused.
pub const MAX_LIST: usize = 10_000;

/// Names of the temporary files `write` makes (hidden from `list`).
const TEMP_PREFIX: &str = ".pola-write-";

/// Maps an I/O error to plain words; `what` is said when nothing more
/// precise fits. Never includes the error's own text (it could name a
/// host path).
pub(crate) fn io_error(e: &io::Error, what: &'static str) -> CapError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => CapError::Symlink,
        Some(libc::ENOTDIR) => CapError::NotAFolder,
        Some(libc::EISDIR) | Some(libc::ENXIO) => CapError::NotAFile,
        Some(libc::ENOENT) => CapError::NotFound,
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => CapError::Denied,
        Some(libc::EEXIST) => CapError::Exists,
        Some(libc::EFBIG) => CapError::TooLarge,
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => CapError::Io("the disk is full"),
        Some(_) => CapError::Io(what),
        // cap-std's own refusals carry no OS error number: a path that
        // would leave the folder is `PermissionDenied`.
        None => match e.kind() {
            io::ErrorKind::PermissionDenied => CapError::Escapes,
            io::ErrorKind::NotFound => CapError::NotFound,
            _ => CapError::Io(what),
        },
    }
}

/// Opens the folder `name` directly inside `parent`, refusing symbolic
/// links and anything that is not a folder.
fn open_dir_at(parent: &Dir, name: &str) -> Result<Dir, CapError> {
    let meta = parent
        .symlink_metadata(name)
        .map_err(|e| io_error(&e, "the folder could not be opened"))?;
    if meta.file_type().is_symlink() {
        return Err(CapError::Symlink);
    }
    if !meta.is_dir() {
        return Err(CapError::NotAFolder);
    }
    // The check above is for a clear message; this open is what makes it
    // safe (a link swapped in meanwhile is refused here).
    parent
        .open_dir_nofollow(name)
        .map_err(|e| io_error(&e, "the folder could not be opened"))
}

/// Opens the folder at `components` under `root`.
fn open_dir_path(root: &Dir, components: &[String]) -> Result<Dir, CapError> {
    let mut cur = root
        .try_clone()
        .map_err(|e| io_error(&e, "the folder could not be opened"))?;
    for c in components {
        cur = open_dir_at(&cur, c)?;
    }
    Ok(cur)
}

/// Opens `name` in `dir` for reading: no symbolic link, non-blocking (a
/// FIFO does not hang the open), and refused unless it is a regular file.
fn open_regular(dir: &Dir, name: &str) -> Result<(cap_std::fs::File, u64), CapError> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .follow(FollowSymlinks::No)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    let f = dir.open_with(name, &opts).map_err(|e| {
        // Say "symbolic link" or "folder" when that is why.
        match dir.symlink_metadata(name) {
            Ok(m) if m.file_type().is_symlink() => CapError::Symlink,
            Ok(m) if m.is_dir() => CapError::NotAFile,
            _ => io_error(&e, "the file could not be opened"),
        }
    })?;
    let meta = f
        .metadata()
        .map_err(|e| io_error(&e, "the file could not be opened"))?;
    if !meta.is_file() {
        return Err(CapError::NotAFile);
    }
    Ok((f, meta.len()))
}

/// Reads a whole regular file, at most [`MAX_FILE`] bytes.
fn read_file(dir: &Dir, name: &str) -> Result<Vec<u8>, CapError> {
    let (f, len) = open_regular(dir, name)?;
    if len > MAX_FILE {
        return Err(CapError::TooLarge);
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The file may grow while we read: never take more than the limit.
    (&f).take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(&e, "the file could not be read"))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(CapError::TooLarge);
    }
    Ok(buf)
}

/// Syncs a folder's entries to disk (after a rename or a create).
fn sync_dir(dir: &Dir) -> Result<(), CapError> {
    let mut opts = OpenOptions::new();
    opts.read(true).maybe_dir(true).follow(FollowSymlinks::No);
    let d = dir
        .open_with(".", &opts)
        .map_err(|e| io_error(&e, "the folder could not be synced"))?;
    d.sync_all()
        .map_err(|e| io_error(&e, "the folder could not be synced"))
}

fn temp_name() -> Result<String, CapError> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|_| CapError::Io("the system's random source failed"))?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{TEMP_PREFIX}{hex}.tmp"))
}

/// Replaces `name` in `dir` with `data`, atomically: a temporary file in
/// the same folder is written and synced, renamed over `name`, and the
/// folder is synced. An existing file keeps its permissions. Refuses to
/// replace a symbolic link or anything but a regular file.
fn atomic_write(dir: &Dir, name: &str, data: &[u8]) -> Result<(), CapError> {
    if data.len() as u64 > MAX_FILE {
        return Err(CapError::TooLarge);
    }
    let permissions = match dir.symlink_metadata(name) {
        Ok(m) if m.file_type().is_symlink() => return Err(CapError::Symlink),
        Ok(m) if !m.is_file() => return Err(CapError::NotAFile),
        Ok(m) => Some(m.permissions()),
        // Deleted since the capability was made: the write creates it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&e, "the file could not be saved")),
    };
    let tmp = temp_name()?;
    let mut opts = OpenOptions::new();
    opts.write(true)
        .create_new(true)
        .follow(FollowSymlinks::No)
        .mode(0o600);
    let mut f = dir
        .open_with(&tmp, &opts)
        .map_err(|e| io_error(&e, "the file could not be saved"))?;
    let result = (|| {
        f.write_all(data)?;
        if let Some(p) = permissions {
            f.set_permissions(p)?;
        } else {
            f.set_permissions(cap_std::fs::Permissions::from_std(
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            ))?;
        }
        f.sync_all()?;
        dir.rename(&tmp, dir, name)
    })();
    if let Err(e) = result {
        let _ = dir.remove_file(&tmp);
        return Err(io_error(&e, "the file could not be saved"));
    }
    sync_dir(dir)
}

/// A file capability: one regular file, by its folder and name.
///
/// Methods (PROTOCOL.md): `name()` → string; `read()` → bytes;
/// `read_text()` → string (breaks if the file is not UTF-8); `size()` →
/// integer; `write(BYTES-or-STRING)` → `t` (read-write only; atomic).
#[derive(Debug, Clone)]
pub struct FileCap {
    dir: Arc<Dir>,
    name: String,
    access: Access,
}

impl FileCap {
    /// The file's name (its last path component).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What this capability allows.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The same file with less (or equal) authority: `Read` narrows a
    /// read-write capability; asking for more than it has keeps what it
    /// has.
    pub fn narrowed(&self, access: Access) -> FileCap {
        let access = if self.access == Access::Read {
            Access::Read
        } else {
            access
        };
        FileCap {
            access,
            ..self.clone()
        }
    }

    /// Reads the whole file (at most [`MAX_FILE`] bytes).
    ///
    /// # Errors
    /// A [`CapError`] in plain words.
    pub fn read(&self) -> Result<Vec<u8>, CapError> {
        read_file(&self.dir, &self.name)
    }

    /// Replaces the file's content atomically.
    ///
    /// # Errors
    /// [`CapError::ReadOnly`] on a read-only capability,
    /// [`CapError::TooLarge`] over [`MAX_FILE`], or another [`CapError`].
    pub fn write(&self, data: &[u8]) -> Result<(), CapError> {
        if self.access != Access::ReadWrite {
            return Err(CapError::ReadOnly("file"));
        }
        atomic_write(&self.dir, &self.name, data)
    }

    /// The file's size in bytes.
    ///
    /// # Errors
    /// A [`CapError`] in plain words.
    pub fn size(&self) -> Result<u64, CapError> {
        open_regular(&self.dir, &self.name).map(|(_, len)| len)
    }
}

impl Object for FileCap {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "name" => Ok(Val::str(self.name.clone())),
            "read" => Ok(Val::bytes(self.read()?)),
            "read_text" => {
                let bytes = self.read()?;
                String::from_utf8(bytes)
                    .map(Val::str)
                    .map_err(|_| error("this file is not text (not UTF-8)"))
            }
            "size" => Ok(Val::int(self.size()?)),
            "write" => {
                if self.access != Access::ReadWrite {
                    return Err(CapError::ReadOnly("file").to_val());
                }
                match args.first() {
                    Some(Val::Bytes(b)) => self.write(b)?,
                    Some(Val::String(s)) => self.write(s.as_bytes())?,
                    _ => return Err(error("write needs bytes or a string")),
                }
                Ok(Val::Bool(true))
            }
            _ => Err(error("no such method")),
        }
    }
}

/// A folder capability: one folder and everything under it.
///
/// Methods (PROTOCOL.md): `list()` → list of `{"name" N "kind"
/// 'file|'folder}`, sorted by name (entries that are neither regular
/// files nor folders, such as symbolic links, and names that are not valid
/// UTF-8 are left out; more than [`MAX_LIST`] entries is refused);
/// `file(NAME)` → file capability with the folder's access;
/// `folder(NAME)` → folder capability; `create(NAME)` → file capability
/// for a new, empty file (read-write only; refused if anything of that
/// name exists: to replace a file, use `file(NAME)` and `write`).
#[derive(Debug, Clone)]
pub struct FolderCap {
    dir: Arc<Dir>,
    access: Access,
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name.
    pub name: String,
    /// `true` for a folder, `false` for a regular file.
    pub is_folder: bool,
}

impl FolderCap {
    /// What this capability allows.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The folder's regular files and folders, sorted by name.
    ///
    /// # Errors
    /// A [`CapError`] in plain words, or [`CapError::Io`] when the folder
    /// has more than [`MAX_LIST`] entries.
    pub fn list(&self) -> Result<Vec<Entry>, CapError> {
        let entries = self
            .dir
            .entries()
            .map_err(|e| io_error(&e, "the folder could not be read"))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&e, "the folder could not be read"))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            // The entry's own type: a symbolic link is not followed.
            let Ok(ty) = entry.file_type() else { continue };
            let is_folder = if ty.is_dir() {
                true
            } else if ty.is_file() {
                false
            } else {
                continue;
            };
            if out.len() >= MAX_LIST {
                return Err(CapError::Io("this folder has more than 10000 entries"));
            }
            out.push(Entry { name, is_folder });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The file `name` in this folder, with this folder's access.
    ///
    /// # Errors
    /// [`CapError::BadPath`] for a bad name, or the reason the file cannot
    /// be opened (missing, a folder, a link, a FIFO…).
    pub fn file(&self, name: &str) -> Result<FileCap, CapError> {
        check_name(name)?;
        open_regular(&self.dir, name)?;
        Ok(FileCap {
            dir: self.dir.clone(),
            name: name.to_owned(),
            access: self.access,
        })
    }

    /// The folder `name` in this folder, with this folder's access.
    ///
    /// # Errors
    /// [`CapError::BadPath`] for a bad name, or why it cannot be opened.
    pub fn folder(&self, name: &str) -> Result<FolderCap, CapError> {
        check_name(name)?;
        Ok(FolderCap {
            dir: Arc::new(open_dir_at(&self.dir, name)?),
            access: self.access,
        })
    }

    /// Creates a new, empty file `name` (read-write capabilities only).
    ///
    /// # Errors
    /// [`CapError::ReadOnly`], [`CapError::BadPath`], [`CapError::Exists`]
    /// when anything of that name exists, or another [`CapError`].
    pub fn create(&self, name: &str) -> Result<FileCap, CapError> {
        if self.access != Access::ReadWrite {
            return Err(CapError::ReadOnly("folder"));
        }
        check_name(name)?;
        new_file(&self.dir, name, false)
    }
}

/// Creates `name` in `dir` (or, with `existing_ok`, opens the regular file
/// already there), synced, and answers a read-write capability for it.
fn new_file(dir: &Arc<Dir>, name: &str, existing_ok: bool) -> Result<FileCap, CapError> {
    let mut opts = OpenOptions::new();
    opts.write(true)
        .create_new(true)
        .follow(FollowSymlinks::No)
        .mode(0o644);
    match dir.open_with(name, &opts) {
        Ok(f) => {
            f.sync_all()
                .map_err(|e| io_error(&e, "the file could not be created"))?;
            sync_dir(dir)?;
        }
        Err(e) if existing_ok && e.raw_os_error() == Some(libc::EEXIST) => {
            open_regular(dir, name)?;
        }
        Err(e) => return Err(io_error(&e, "the file could not be created")),
    }
    Ok(FileCap {
        dir: dir.clone(),
        name: name.to_owned(),
        access: Access::ReadWrite,
    })
}

impl Object for FolderCap {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let name = || match args.first() {
            Some(Val::String(s)) => Ok(s.as_str()),
            _ => Err(error(format!("{method}(NAME): NAME must be a string"))),
        };
        match method {
            "list" => {
                let items = self
                    .list()?
                    .into_iter()
                    .map(|e| {
                        let kind = if e.is_folder { "folder" } else { "file" };
                        Val::Dict(
                            [
                                (Val::str("name"), Val::str(e.name)),
                                (Val::str("kind"), Val::sym(kind)),
                            ]
                            .into_iter()
                            .collect(),
                        )
                    })
                    .collect();
                Ok(Val::List(items))
            }
            "file" => Ok(Val::Ref(cx.spawn(self.file(name()?)?))),
            "folder" => Ok(Val::Ref(cx.spawn(self.folder(name()?)?))),
            "create" => Ok(Val::Ref(cx.spawn(self.create(name()?)?))),
            _ => Err(error("no such method")),
        }
    }
}

/// A file capability for the regular file at `rel` under `root` (the
/// documents folder, from [`super::open_documents`]), as the desk's chooser
/// designates it. The file must exist.
///
/// # Errors
/// [`CapError::BadPath`] if `rel` is the folder itself, or why the file
/// cannot be reached (missing, a folder, a symbolic link anywhere on the
/// way, a FIFO or device…).
pub fn file(root: &Dir, rel: &RelPath, access: Access) -> Result<FileCap, CapError> {
    let (parents, name) = split(rel)?;
    let dir = Arc::new(open_dir_path(root, parents)?);
    open_regular(&dir, name)?;
    Ok(FileCap {
        dir,
        name: name.to_owned(),
        access,
    })
}

/// A read-write file capability for `rel` under `root`, creating an empty
/// file there if there is none (an existing regular file is kept as it
/// is, not truncated): what a chooser's "new file" designates.
///
/// # Errors
/// As [`file()`]; the folders on the way must exist.
pub fn create_file(root: &Dir, rel: &RelPath) -> Result<FileCap, CapError> {
    let (parents, name) = split(rel)?;
    let dir = Arc::new(open_dir_path(root, parents)?);
    new_file(&dir, name, true)
}

/// A folder capability for the folder at `rel` under `root` (the empty
/// path is `root` itself).
///
/// # Errors
/// Why the folder cannot be reached (missing, not a folder, a symbolic
/// link anywhere on the way…).
pub fn folder(root: &Dir, rel: &RelPath, access: Access) -> Result<FolderCap, CapError> {
    Ok(FolderCap {
        dir: Arc::new(open_dir_path(root, rel.components())?),
        access,
    })
}

fn split(rel: &RelPath) -> Result<(&[String], &str), CapError> {
    match rel.components().split_last() {
        Some((name, parents)) => Ok((parents, name.as_str())),
        None => Err(CapError::BadPath("a file needs a name")),
    }
}
