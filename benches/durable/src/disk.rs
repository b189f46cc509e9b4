//! Where a benchmark's files go: a fresh folder under `POLA_BENCH_DIR`
//! (default: the system's temporary folder), removed when dropped. A
//! folder on a memory file system (tmpfs, ramfs) is refused, since fsync
//! there costs nothing and a durable figure would be a lie.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A benchmark's own folder, removed (with what is in it) when dropped.
#[derive(Debug)]
pub struct BenchDir {
    path: PathBuf,
    fs_type: String,
}

impl BenchDir {
    /// Makes a new empty folder `pola-bench-<tag>-<pid>` under
    /// `POLA_BENCH_DIR` or the temporary folder.
    ///
    /// # Errors
    /// The folder cannot be made, or it is on a memory file system.
    pub fn new(tag: &str) -> Result<BenchDir> {
        let base = std::env::var_os("POLA_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!("pola-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("make {}", path.display()))?;
        let path = path
            .canonicalize()
            .with_context(|| format!("resolve {}", path.display()))?;
        let fs_type = fs_type(&path).unwrap_or_else(|| "unknown".to_string());
        let dir = BenchDir { path, fs_type };
        if matches!(dir.fs_type.as_str(), "tmpfs" | "ramfs") {
            bail!(
                "{} is on {} (memory): fsync there costs nothing; set POLA_BENCH_DIR to a folder on a disk",
                dir.path.display(),
                dir.fs_type
            );
        }
        Ok(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The type of the file system the folder is on (from
    /// `/proc/self/mounts`), or `unknown`.
    pub fn fs_type(&self) -> &str {
        &self.fs_type
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The file system type of the longest mount point that contains `path`.
fn fs_type(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (_dev, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
        // Mount points with spaces are octal-escaped; such a mount point
        // simply never matches, which is fine for a benchmark.
        if path.starts_with(mount) && best.as_ref().is_none_or(|(len, _)| mount.len() >= *len) {
            best = Some((mount.len(), kind.to_string()));
        }
    }
    best.map(|(_, kind)| kind)
}
