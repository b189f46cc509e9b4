//! The store's errors, grouped by fault. Every message names the file it
//! is about, so an operator can act on it without a backtrace.

use std::io;
use std::path::{Path, PathBuf};

/// Why the store refused or failed an operation.
///
/// The variants fall into groups (see [`StoreError::fault`]):
/// - the file is not a pola store, or its contents are damaged;
/// - the file was made by a newer pola (or a newer storage engine);
/// - the path names the wrong kind of file, or one others may read;
/// - an export being imported is malformed or exceeds a limit;
/// - the caller asked for something impossible (a bad name, an instance
///   in use, a savepoint that does not exist);
/// - the operating system failed an I/O call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file is not a pola store: not a redb file at all, or a redb
    /// file without pola's `meta` table. Nothing was written to it.
    #[error("{path}: not a pola store ({reason}); the file was left as it is")]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },

    /// The file is a store but its contents are damaged (a checksum does
    /// not match, a record has the wrong shape). Nothing was written to it.
    #[error("{path}: store is corrupt ({reason}); the file was left as it is")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The store says it has a format this build does not know.
    #[error(
        "{path}: store format {found} was made by a newer pola (this one reads format {supported}); the file was left as it is"
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The format number in the file.
        found: u64,
        /// The format number this build reads and writes.
        supported: u64,
    },

    /// An export being imported was made by a newer pola (its export
    /// version or store format is one this build does not know).
    #[error("{path}: import refused: the export (version {found}) was made by a newer pola")]
    NewerExport {
        /// The store the import was writing.
        path: PathBuf,
        /// The version or format number in the export.
        found: u64,
    },

    /// The storage engine's own file format is one this build cannot read.
    #[error("{path}: storage engine file format {found} is not supported by this build")]
    EngineVersion {
        /// The file.
        path: PathBuf,
        /// The engine's format number in the file.
        found: u8,
    },

    /// The path names something other than a regular file (a symbolic
    /// link, a FIFO, a directory, a device, a socket).
    #[error("{path}: is {kind}, not a regular file; refusing to use it as a store")]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is ("a symbolic link", "a FIFO", …).
        kind: &'static str,
    },

    /// The file may be read or written by other users.
    #[error(
        "{path}: mode {mode:04o} lets group or others at the host's state; chmod 600 it to use it"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// Another process (or another `Store` in this one) has the file open.
    #[error("{path}: store is open elsewhere (another pola process holds its lock)")]
    Locked {
        /// The file.
        path: PathBuf,
    },

    /// An export being imported is malformed: bad magic, a bad length, a
    /// record out of place, a checksum that does not match, trailing bytes.
    /// Nothing was created or changed.
    #[error("{path}: import refused: export is malformed at byte {offset}: {reason}")]
    BadExport {
        /// The store the import was writing.
        path: PathBuf,
        /// Where in the export the fault was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A value is over one of the store's limits (a record too large to
    /// export, a config too large to carry).
    #[error("{path}: {what} is {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// The store.
        path: PathBuf,
        /// What is too large.
        what: String,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },

    /// A vat instance or savepoint name is not allowed.
    #[error("{path}: bad {what} name {name:?}: {reason}")]
    InvalidName {
        /// The store.
        path: PathBuf,
        /// "instance", "savepoint" or "host key".
        what: &'static str,
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// The thing named does not exist.
    #[error("{path}: no {what} named {name:?}")]
    NotFound {
        /// The store.
        path: PathBuf,
        /// "instance" or "savepoint".
        what: &'static str,
        /// The name.
        name: String,
    },

    /// The thing to be created already exists.
    #[error("{path}: {what} already exists")]
    AlreadyExists {
        /// The store (or the file an import would create).
        path: PathBuf,
        /// What exists.
        what: String,
    },

    /// The operation needs what is still in use: an instance with a live
    /// [`crate::VatBackend`], or the whole store (for a rollback) while any
    /// backend is live.
    #[error("{path}: {what} is in use; stop its vats (drop their backends) first")]
    InUse {
        /// The store.
        path: PathBuf,
        /// What is in use.
        what: String,
    },

    /// An I/O call failed.
    #[error("{path}: {op} failed: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The storage engine failed in a way none of the above describes.
    #[error("{path}: storage engine error: {detail}")]
    Engine {
        /// The file.
        path: PathBuf,
        /// The engine's message.
        detail: String,
    },
}

/// The group a [`StoreError`] belongs to, for callers that act by fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Not a pola store, or a damaged one.
    Corrupt,
    /// Made by a newer pola or engine.
    Version,
    /// Wrong kind of file, or mode open to others.
    FileKind,
    /// A malformed or oversized export.
    BadInput,
    /// The caller asked for something impossible.
    Misuse,
    /// Local I/O or the engine failed.
    Io,
}

impl StoreError {
    /// Which group of faults this error is in.
    pub fn fault(&self) -> Fault {
        match self {
            Self::NotAStore { .. } | Self::Corrupt { .. } => Fault::Corrupt,
            Self::NewerFormat { .. } | Self::NewerExport { .. } | Self::EngineVersion { .. } => {
                Fault::Version
            }
            Self::NotRegularFile { .. } | Self::Permissions { .. } => Fault::FileKind,
            Self::BadExport { .. } | Self::TooLarge { .. } => Fault::BadInput,
            Self::InvalidName { .. }
            | Self::NotFound { .. }
            | Self::AlreadyExists { .. }
            | Self::InUse { .. }
            | Self::Locked { .. } => Fault::Misuse,
            Self::Io { .. } | Self::Engine { .. } => Fault::Io,
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotAStore { path, .. }
            | Self::Corrupt { path, .. }
            | Self::NewerFormat { path, .. }
            | Self::NewerExport { path, .. }
            | Self::EngineVersion { path, .. }
            | Self::NotRegularFile { path, .. }
            | Self::Permissions { path, .. }
            | Self::Locked { path }
            | Self::BadExport { path, .. }
            | Self::TooLarge { path, .. }
            | Self::InvalidName { path, .. }
            | Self::NotFound { path, .. }
            | Self::AlreadyExists { path, .. }
            | Self::InUse { path, .. }
            | Self::Io { path, .. }
            | Self::Engine { path, .. } => path,
        }
    }

    pub(crate) fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    /// Maps an engine error met while using a store that opened fine.
    pub(crate) fn engine(path: &Path, err: impl Into<redb::Error>) -> Self {
        let path = path.to_path_buf();
        match err.into() {
            redb::Error::Corrupted(reason) => Self::Corrupt { path, reason },
            redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
                Self::Locked { path }
            }
            redb::Error::UpgradeRequired(found) => Self::EngineVersion { path, found },
            redb::Error::Io(source) => Self::Io {
                path,
                op: "store I/O",
                source,
            },
            e @ redb::Error::TableTypeMismatch { .. } => Self::Corrupt {
                path,
                reason: format!("a table has unexpected types: {e}"),
            },
            redb::Error::TableIsMultimap(name) => Self::Corrupt {
                path,
                reason: format!("table {name:?} has an unexpected shape"),
            },
            other => Self::Engine {
                path,
                detail: other.to_string(),
            },
        }
    }
}

/// `Result` with a [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
