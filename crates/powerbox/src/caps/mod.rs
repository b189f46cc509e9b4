//! The capabilities a powerbox grants (PROTOCOL.md section 2, "Capabilities
//! the desk makes"), as vat objects.
//!
//! | capability | made by | methods |
//! |---|---|---|
//! | [`FileCap`] | [`file()`], [`create_file`], a folder's `file`/`create` | `name`, `read`, `read_text`, `size`, `write` |
//! | [`FolderCap`] | [`folder`], a folder's `folder` | `list`, `file`, `folder`, `create` |
//! | [`WebCap`] | [`WebCap::new`] | `get` |
//! | [`ClockCap`] | `ClockCap` | `now` |
//! | [`RandomCap`] | `RandomCap` | `bytes` |
//!
//! Invariants, upheld by this module:
//! - a file or folder capability reaches only what lies under the folder
//!   handle it was made from: every path is opened through cap-std, one
//!   component at a time, with symbolic links refused (not followed, even
//!   when they would stay inside), so neither `..` nor a link can lead
//!   out; the only ambient authority is [`open_documents`];
//! - no error an app can see names a host path: messages are fixed plain
//!   words, at most repeating a name the app itself gave;
//! - reading never blocks on a special file (a FIFO, a device): files are
//!   opened non-blocking and refused unless they are regular files;
//! - files are at most [`MAX_FILE`] bytes, read or written; a write
//!   replaces the file atomically (temporary file, sync, rename, sync of
//!   the folder), so a crash leaves the old or the new content, never half;
//! - a web capability connects only to the origins it was granted
//!   (compared after parsing, with the `url` crate), never blocks the vat's
//!   thread, and caps time, body size and requests in flight.
//!
//! None of these objects is persistent: the desk makes them again at each
//! launch from its grant records, and hands them out through revocable
//! forwarders.

use std::path::Path;

mod basic;
mod fs;
mod web;

pub use basic::{ClockCap, MAX_RANDOM, RandomCap};
pub use fs::{Entry, FileCap, FolderCap, MAX_FILE, MAX_LIST, create_file, file, folder};
pub use web::{Fetched, MAX_SITES, Sites, WebCap, WebOptions, is_public};

/// How much a file or folder capability lets its holder do (the same
/// type as a manifest's request access).
pub use crate::package::Access;

/// Why a capability could not be made (or a method refused). The
/// [`Display`](std::fmt::Display) text is plain words for the user or the
/// app, and never contains a host path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapError {
    /// A relative path or a name broke a rule (the text says which).
    #[error("{0}")]
    BadPath(&'static str),
    /// Nothing of that name exists.
    #[error("there is no file or folder of that name")]
    NotFound,
    /// The thing named is not a regular file (a folder, a FIFO, a device…).
    #[error("that is not a regular file")]
    NotAFile,
    /// The thing named is not a folder.
    #[error("that is not a folder")]
    NotAFolder,
    /// The thing named is a symbolic link, which is never followed.
    #[error("symbolic links are not followed")]
    Symlink,
    /// A file is larger than [`MAX_FILE`] bytes, or a write would make it so.
    #[error("files are limited to 16 MiB")]
    TooLarge,
    /// A write or create on a read-only capability.
    #[error("this {0} was given for reading only")]
    ReadOnly(&'static str),
    /// `create` of a name that already exists.
    #[error("there is already something of that name here")]
    Exists,
    /// The system refused access.
    #[error("the system refused access")]
    Denied,
    /// The path would lead outside the folder.
    #[error("that leads outside the folder")]
    Escapes,
    /// A web grant's site list broke a rule (the text says which).
    #[error("{0}")]
    BadSite(&'static str),
    /// Another input/output failure, in plain words (`what` failed).
    #[error("{0}")]
    Io(&'static str),
}

impl CapError {
    /// The error as a vat error value (what a method breaks with).
    pub fn to_val(&self) -> pola_vat::Val {
        pola_vat::error(self.to_string())
    }
}

impl From<CapError> for pola_vat::Val {
    fn from(e: CapError) -> Self {
        e.to_val()
    }
}

/// The longest name (one path component), in bytes.
pub const MAX_NAME: usize = 255;

/// The most components a relative path may have.
pub const MAX_DEPTH: usize = 64;

/// Checks one path component: not empty, not `.` or `..`, no `/` or NUL,
/// at most [`MAX_NAME`] bytes.
///
/// # Errors
/// [`CapError::BadPath`] saying which rule the name breaks.
pub fn check_name(name: &str) -> Result<(), CapError> {
    if name.is_empty() {
        return Err(CapError::BadPath("a name may not be empty"));
    }
    if name == "." || name == ".." {
        return Err(CapError::BadPath("a name may not be '.' or '..'"));
    }
    if name.contains('/') {
        return Err(CapError::BadPath("a name may not contain '/'"));
    }
    if name.contains('\0') {
        return Err(CapError::BadPath("a name may not contain a NUL character"));
    }
    if name.len() > MAX_NAME {
        return Err(CapError::BadPath("a name may be at most 255 bytes long"));
    }
    Ok(())
}

/// A path inside the documents folder, as the desk's chooser gives it:
/// components separated by `/`, each checked by [`check_name`]. The empty
/// string is the documents folder itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelPath(Vec<String>);

impl RelPath {
    /// The documents folder itself.
    pub fn root() -> RelPath {
        RelPath(Vec::new())
    }

    /// Parses and checks a relative path.
    ///
    /// # Errors
    /// [`CapError::BadPath`] for an absolute path, an empty component
    /// (`a//b`, a trailing `/`), `.` or `..`, a NUL, a component longer
    /// than [`MAX_NAME`] bytes, or more than [`MAX_DEPTH`] components.
    ///
    /// ```
    /// use pola_powerbox::caps::RelPath;
    /// assert!(RelPath::parse("notes/today.txt").is_ok());
    /// assert!(RelPath::parse("../secret").is_err());
    /// assert!(RelPath::parse("/etc/passwd").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<RelPath, CapError> {
        if s.is_empty() {
            return Ok(RelPath::root());
        }
        if s.starts_with('/') {
            return Err(CapError::BadPath(
                "a path must be inside the documents folder, not absolute",
            ));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > MAX_DEPTH {
            return Err(CapError::BadPath("a path may have at most 64 parts"));
        }
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            check_name(p)?;
            out.push(p.to_owned());
        }
        Ok(RelPath(out))
    }

    /// The components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The last component (the file's or folder's own name), if any.
    pub fn name(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }
}

/// Opens the documents folder: the one place in this module that uses
/// ambient authority (`cap_std::ambient_authority()`), and so the root of
/// every file and folder capability. Call it once, with the folder the
/// person chose (or the desk's default); everything else is reached
/// through the handle it returns.
///
/// # Errors
/// [`CapError::NotFound`], [`CapError::NotAFolder`] or [`CapError::Denied`];
/// the error does not repeat `path` (the caller knows it).
pub fn open_documents(path: &Path) -> Result<cap_std::fs::Dir, CapError> {
    cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
        .map_err(|e| fs::io_error(&e, "the documents folder could not be opened"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        for bad in ["", ".", "..", "a/b", "/", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_name(&"x".repeat(256)).is_err());
        for good in ["a", "notes.txt", ".hidden", "...", "a b", "ü"] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn relative_paths_are_checked_part_by_part() {
        for bad in ["/etc", "a//b", "a/", "a/../b", "./a", "a/.", "..", "a/\0"] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RelPath::parse(&vec!["a"; 65].join("/")).is_err());
        assert_eq!(RelPath::parse("").ok(), Some(RelPath::root()));
        let p = RelPath::parse("a/b.txt").ok();
        assert_eq!(p.as_ref().and_then(|p| p.name()), Some("b.txt"));
    }
}
