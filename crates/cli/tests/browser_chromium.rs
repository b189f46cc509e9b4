//! The desk's browser (issue 13) in a real Chromium: starts a fresh `pola
//! desk` on a scratch state folder and runs
//! `crates/desk/tests/e2e/browser.mjs` against it. The script serves its
//! own web site on loopback and drives the Browser app through the desk's
//! page: a typed address, a link (the URL field changes before the new
//! page shows), Back/Forward/Reload, a form, images, the three renderers
//! (a screenshot of each), the hostile renderer on the red team's page.
//!
//! Needs `/usr/bin/chromium` (or `POLA_CHROMIUM`), node, and `npm ci` in
//! `crates/desk/tests/e2e`: `.ci/run` installs them. Without them this test
//! fails and says so. Screenshots are left in the scratch folder printed
//! on failure; with `POLA_UPDATE_SCREENSHOT=1` the benign and hostile
//! renderers' pictures are copied to `docs/browser.png` and
//! `docs/browser-red-team.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const POLA: &str = env!("CARGO_BIN_EXE_pola");
/// A debug build's first start compiles the stock apps: give it time.
const START: Duration = Duration::from_secs(180);
/// The whole script.
const SCRIPT: Duration = Duration::from_secs(600);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

fn e2e() -> PathBuf {
    repo().join("crates/desk/tests/e2e")
}

/// Fails, saying what to run, when a tool is missing: this test never
/// passes without having run.
fn require_tools() {
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
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        use std::os::unix::fs::DirBuilderExt as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!(
            "pola-browser-chromium-{}-{nanos}",
            std::process::id()
        ));
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
struct Desk {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Desk {
    fn start(state: &Path, docs: &Path, log: PathBuf) -> Desk {
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
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a pipe to the end on a thread of its own.
fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

#[test]
fn browser_in_chromium() {
    require_tools();
    let scratch = Scratch::new();
    let state = scratch.0.join("state");
    let docs = scratch.0.join("docs");
    let shots = scratch.0.join("screenshots");
    for d in [&docs, &shots] {
        std::fs::create_dir_all(d).unwrap();
    }
    println!("screenshots: {}", shots.display());
    let desk = Desk::start(&state, &docs, scratch.0.join("desk.log"));

    let mut child = Command::new("node")
        .arg(e2e().join("browser.mjs"))
        .arg(&desk.url)
        .current_dir(e2e())
        .env("POLA_DESK_OUT", &shots)
        .env("POLA_REPO", repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning node");
    let out = drain(child.stdout.take().expect("piped"));
    let err = drain(child.stderr.take().expect("piped"));
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
            "browser.mjs failed ({}):\n{out}\n{err}\nscreenshots in {}\nthe desk's log ({}):\n{}",
            status.map_or_else(|| format!("no end within {SCRIPT:?}"), |s| s.to_string()),
            shots.display(),
            desk.log.display(),
            std::fs::read_to_string(&desk.log).unwrap_or_default()
        );
    }
    // The script's own claims, checked from outside: it drew each renderer.
    for name in ["browser-benign", "browser-text", "browser-hostile"] {
        let png = shots.join(format!("{name}.png"));
        let bytes =
            std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot {}: {e}", png.display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
            "{} is not a real screenshot",
            png.display()
        );
    }
}
