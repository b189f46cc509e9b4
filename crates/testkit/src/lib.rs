//! Helpers shared by the tests of several pola crates, so each is written
//! once: a runtime, waiting for a condition, a scratch folder, a child
//! process that cannot outlive its test, and CapTP sessions driven by hand
//! (the hostile or hand-made peer of many tests).
//!
//! A dev-dependency only: no trusted crate depends on it, and it may panic
//! (a failed helper is a failed test).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub mod captp;

/// The runtime most tests need: multi-threaded with two workers, timers
/// and I/O enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        // Test code: a failed step fails the test that called it.
        .expect("a tokio runtime")
}

/// Polls `cond` (every few milliseconds) until it holds; panics naming
/// `what` if `limit` passes first.
pub fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A fresh, private (mode 0700) folder under the system's temp folder,
/// named after `tag`; removed with everything in it when dropped, even if
/// the test fails.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// Makes the folder.
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt as _;
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("pola-{tag}-"))
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir()
                // Test code: a failed step fails the test that called it.
                .expect("a scratch folder"),
        )
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// `name` inside the folder.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.path().join(name)
    }
}

/// A child process killed (and reaped) when this is dropped, so a failing
/// test leaves no server behind.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `noise` netlayer with a fresh identity on 127.0.0.1, any port.
pub fn noise(rt: &tokio::runtime::Runtime) -> pola_netlayer::NoiseNetlayer {
    rt.block_on(pola_netlayer::NoiseNetlayer::bind(
        // Test code: a failed step fails the test that called it.
        pola_netlayer::Identity::generate().expect("an identity"),
        "127.0.0.1",
        0,
    ))
    // Test code: a failed step fails the test that called it.
    .expect("a noise netlayer")
}

/// The lines `child` writes to its piped stdout, read on a thread of their
/// own as they come (so a test can wait for one with a timeout).
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    // Test code: a failed step fails the test that called it.
    let out = child.stdout.take().expect("a piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_is_private_and_goes_away() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("kit");
        let path = dir.path().to_path_buf();
        // Test code: a failed step fails the test that called it.
        std::fs::write(dir.join("f"), b"x").unwrap();
        // Test code: a failed step fails the test that called it.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    #[should_panic(expected = "timed out waiting for: never")]
    fn eventually_gives_up() {
        eventually("never", Duration::from_millis(20), || false);
    }
}
