//! Helpers shared by the cli's integration tests: scratch folders and a
//! running `pola serve`.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub const POLA: &str = env!("CARGO_BIN_EXE_pola");
pub const START: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique(tag: &str) -> String {
    format!(
        "pola{}{}{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A scratch folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        use std::os::unix::fs::DirBuilderExt as _;
        let p = std::env::temp_dir().join(unique("-state"));
        // Private, as `pola serve` requires of a state folder.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&p)
            .unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `pola serve`, killed on drop.
pub struct Served {
    pub child: Child,
    /// `(name, uri)` per printed object.
    pub objects: Vec<(String, String)>,
}

impl Served {
    /// Runs `cmd` (a `pola serve …`) and reads its `NAME URI` lines up to
    /// `ready`.
    pub fn start(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning pola serve");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Served {
            child,
            objects: Vec::new(),
        };
        loop {
            let line = rx
                .recv_timeout(START)
                .expect("pola serve printed no `ready` in time (see its stderr)");
            if line == "ready" {
                return served;
            }
            let (name, uri) = line.split_once(' ').expect("a `NAME URI` line");
            served.objects.push((name.to_owned(), uri.to_owned()));
        }
    }

    pub fn uri(&self, name: &str) -> &str {
        &self
            .objects
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} served"))
            .1
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
