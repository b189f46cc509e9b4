//! What the Chromium tests share: the tools they need, a scratch folder,
//! a running `pola desk`, and running one of the Node scripts of
//! `crates/desk/tests/e2e` against it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const POLA: &str = env!("CARGO_BIN_EXE_pola");
/// A debug build's first start compiles the stock apps: give it time.
pub const START: Duration = Duration::from_secs(180);
/// One run of a Node script, all scenarios.
pub const SCRIPT: Duration = Duration::from_secs(900);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

pub fn e2e() -> PathBuf {
    repo().join("crates/desk/tests/e2e")
}

/// Fails, saying what to run, when the browser or the Node modules are
/// missing: this test never passes without having run.
pub fn require_tools() {
    let chromium = std::env::var_os("POLA_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.exists(),
        "{} is missing: run .ci/run (it installs Debian's chromium), or set POLA_CHROMIUM",
        chromium.display()
    );
    assert!(
        e2e()
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "crates/desk/tests/e2e/node_modules is missing: run .ci/run (it runs npm ci there)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: run .ci/run"
    );
}

/// A scratch folder, removed on drop unless the test failed.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        use std::os::unix::fs::DirBuilderExt as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&p)
            .unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running `pola desk`, killed on drop.
pub struct Desk {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Desk {
    pub fn start(state: &Path, docs: &Path, log: PathBuf) -> Desk {
        let err = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(POLA)
            .arg("desk")
            .arg("--state")
            .arg(state)
            .arg("--port")
            .arg("0")
            .arg("--documents")
            .arg(docs)
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawning pola desk");
        let rx = pola_testkit::stdout_lines(&mut child);
        let deadline = Instant::now() + START;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("desk: ") {
                        break url.trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "pola desk printed no URL within {START:?}; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        Desk { child, url, log }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one Node script against `desk`; fails the test with its output
/// and the desk's log if it fails.
pub fn node(script: &str, desk: &Desk, env: &[(&str, &Path)]) {
    let mut cmd = Command::new("node");
    cmd.arg(e2e().join(script))
        .arg(&desk.url)
        .current_dir(e2e())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawning node");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCRIPT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for node") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    print!("{out}");
    if !status.is_some_and(|s| s.success()) {
        panic!(
            "{script} failed ({}):\n{out}\n{err}\nthe desk's log ({}):\n{}",
            status.map_or_else(|| format!("no end within {SCRIPT:?}"), |s| s.to_string()),
            desk.log.display(),
            std::fs::read_to_string(&desk.log).unwrap_or_default()
        );
    }
}
