//! Builds the desk's stock apps (`caplets/desk-*`) and the browser's
//! renderers (`caplets/browser-*`) for
//! `wasm32-unknown-unknown` with a nested cargo, in a target directory of
//! their own under `OUT_DIR` (so it never waits on the outer build's
//! lock), and exports the paths of the `.wasm` files as
//! `POLA_DESK_APP_<NAME>` and `POLA_BROWSER_RENDERER_<NAME>` for the
//! library.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const APPS: [&str; 4] = ["editor", "notes", "clock", "hostile"];
const RENDERERS: [&str; 3] = ["benign", "text", "hostile"];
const TARGET: &str = "wasm32-unknown-unknown";

fn watch(path: &Path) {
    if path.is_file() {
        println!("cargo:rerun-if-changed={}", path.display());
        return;
    }
    let Ok(entries) = fs::read_dir(path) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name() == "target" {
            continue;
        }
        watch(&e.path());
    }
}

/// `cargo run` on a fresh machine must just work: when the WebAssembly
/// target's standard library is missing and rustup is there, add it
/// (once; rustup fetches it from its usual server).
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.is_some_and(|d| d.exists()) {
        return;
    }
    println!(
        "cargo:warning=adding the Rust target {TARGET} with rustup (the desk's apps are built for it)"
    );
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !added {
        println!("cargo:warning=could not run `rustup target add {TARGET}`; run it yourself");
    }
}

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../../..");
    let caplets = root.join("caplets");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = out.join("desk-apps-target");
    for p in ["Cargo.toml", "Cargo.lock", "sdk", "sys"] {
        watch(&caplets.join(p));
    }
    for app in APPS {
        watch(&caplets.join(format!("desk-{app}")));
    }
    watch(&caplets.join("browser-draw"));
    for r in RENDERERS {
        watch(&caplets.join(format!("browser-{r}")));
    }
    watch(&root.join("crates/syrup"));

    ensure_target();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&caplets)
        .args(["build", "--release", "--target", TARGET]);
    for app in APPS {
        cmd.arg("-p").arg(format!("pola-caplet-desk-{app}"));
    }
    for r in RENDERERS {
        cmd.arg("-p").arg(format!("pola-caplet-browser-{r}"));
    }
    // The outer build's flags and wrappers are for the host, not the guest.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    let status = cmd.status().expect("run cargo for caplets/");
    if !status.success() {
        panic!(
            "building the desk's apps (caplets/desk-*, caplets/browser-*) for {TARGET} failed; \
             if the target is missing, run `rustup target add {TARGET}`"
        );
    }
    let wasm_dir = target_dir.join(TARGET).join("release");
    for app in APPS {
        let file = wasm_dir.join(format!("pola_caplet_desk_{app}.wasm"));
        assert!(file.exists(), "missing {}", file.display());
        println!(
            "cargo:rustc-env=POLA_DESK_APP_{}={}",
            app.to_uppercase(),
            file.display()
        );
    }
    for r in RENDERERS {
        let file = wasm_dir.join(format!("pola_caplet_browser_{r}.wasm"));
        assert!(file.exists(), "missing {}", file.display());
        println!(
            "cargo:rustc-env=POLA_BROWSER_RENDERER_{}={}",
            r.to_uppercase(),
            file.display()
        );
    }
}
