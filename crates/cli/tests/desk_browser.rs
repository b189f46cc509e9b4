//! The desk in a real browser: starts `pola desk` on a scratch state
//! folder, drives it with headless Chromium through the Node scripts in
//! `crates/desk/tests/e2e` (install with Granma's warnings, grants chosen
//! in the desk's chooser, the powerbox, revocation, the hostile app, drag
//! and drop, hostile HTTP), then kills the desk, starts it again on the
//! same folder and checks that everything persisted.
//!
//! Needs `/usr/bin/chromium` and `npm ci` in `crates/desk/tests/e2e`:
//! `.ci/run` installs both. Without them this test fails and says so.
//! Screenshots are left in the scratch folder printed on failure; with
//! `POLA_UPDATE_SCREENSHOT=1` the desk's picture is copied to
//! `docs/desk.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const POLA: &str = env!("CARGO_BIN_EXE_pola");
/// A debug build's first start compiles the stock apps: give it time.
const START: Duration = Duration::from_secs(180);
/// One run of a Node script, all scenarios.
const SCRIPT: Duration = Duration::from_secs(900);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

fn e2e() -> PathBuf {
    repo().join("crates/desk/tests/e2e")
}

/// Fails, saying what to run, when the browser or the Node modules are
/// missing: this test never passes without having run.
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
        let p =
            std::env::temp_dir().join(format!("pola-desk-browser-{}-{nanos}", std::process::id()));
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

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds `.polapkg` files of the hostile app and the editor with `pola
/// caplet pack`, from the modules the stock-app crate built.
fn pack(dir: &Path, app: &pola_desk_apps::StockApp) -> PathBuf {
    let wasm = dir.join(format!("{}.wasm", app.id));
    let manifest = dir.join(format!("{}.toml", app.id));
    let icon = dir.join(format!("{}.png", app.id));
    let out = dir.join(format!("{}.polapkg", app.id));
    std::fs::write(&wasm, app.wasm).unwrap();
    std::fs::write(&manifest, app.manifest).unwrap();
    std::fs::write(&icon, app.icon).unwrap();
    let o = Command::new(POLA)
        .args(["caplet", "pack", "--manifest"])
        .arg(&manifest)
        .arg("--wasm")
        .arg(&wasm)
        .arg("--icon")
        .arg(&icon)
        .arg("--output")
        .arg(&out)
        .output()
        .expect("running pola caplet pack");
    assert!(
        o.status.success(),
        "pola caplet pack {}: {}{}",
        app.id,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Runs one Node script against `desk`; fails the test with its output
/// and the desk's log if it fails.
fn node(script: &str, desk: &Desk, env: &[(&str, &Path)]) {
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

#[test]
fn desk_in_chromium() {
    require_tools();
    let scratch = Scratch::new();
    let state = scratch.0.join("state");
    let docs = scratch.0.join("docs");
    let shots = scratch.0.join("screenshots");
    let packages = scratch.0.join("packages");
    for d in [&docs, &shots, &packages] {
        std::fs::create_dir_all(d).unwrap();
    }
    let hostile = pack(&packages, &pola_desk_apps::HOSTILE);
    let editor = pack(&packages, &pola_desk_apps::EDITOR);
    let repo = repo();
    let env: Vec<(&str, &Path)> = vec![
        ("POLA_DESK_DOCS", &docs),
        ("POLA_DESK_OUT", &shots),
        ("POLA_DESK_HOSTILE_PKG", &hostile),
        ("POLA_DESK_EDITOR_PKG", &editor),
        ("POLA_REPO", &repo),
    ];
    println!("screenshots: {}", shots.display());

    let mut desk = Desk::start(&state, &docs, scratch.0.join("desk-1.log"));
    node("run.mjs", &desk, &env);
    desk.stop();

    let desk = Desk::start(&state, &docs, scratch.0.join("desk-2.log"));
    node("after_restart.mjs", &desk, &env);
}
