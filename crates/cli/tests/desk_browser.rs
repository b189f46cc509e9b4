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
//! `docs/desk.png`, and a stopped app's window to `docs/desk-stopped.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod chromium;
use chromium::{Desk, POLA, Scratch, node, repo, require_tools};

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

#[test]
fn desk_in_chromium() {
    require_tools();
    let scratch = Scratch::new("pola-desk-browser");
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
