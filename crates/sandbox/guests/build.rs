//! Builds the guest workspace `caplets/` for `wasm32-unknown-unknown`, and
//! its hostile `wasi-attacker` for `wasm32-wasip1`, with a nested cargo, in a target directory of its own under `OUT_DIR` (so it
//! never waits on the outer build's lock), and exports the paths of the
//! `.wasm` files as `POLA_CAPLET_<NAME>` for the library.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CAPLETS: [&str; 3] = ["echo", "benign", "malicious"];

fn watch(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if p.is_dir() {
            watch(&p);
        } else {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

/// Runs `cargo build --release ARGS` in `caplets/` with its own target dir.
fn cargo_build(caplets: &Path, target_dir: &Path, args: &[&str]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(caplets)
        .arg("build")
        .arg("--release")
        .args(args);
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
    cmd.env("CARGO_TARGET_DIR", target_dir);
    let status = cmd.status().expect("run cargo for caplets/");
    if !status.success() {
        let target = args.get(1).copied().unwrap_or_default();
        panic!(
            "building caplets/ for {target} failed; is the target installed? \
             (rustup target add {target})"
        );
    }
}

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../../..");
    let caplets = root.join("caplets");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = out.join("caplets-target");
    watch(&caplets);
    watch(&root.join("crates/syrup"));

    cargo_build(
        &caplets,
        &target_dir,
        &["--target", "wasm32-unknown-unknown"],
    );
    // The hostile WASI caplet: std with its WASI back end.
    cargo_build(
        &caplets,
        &target_dir,
        &[
            "--target",
            "wasm32-wasip1",
            "-p",
            "pola-caplet-wasi-attacker",
        ],
    );
    let file = target_dir.join("wasm32-wasip1/release/pola_caplet_wasi_attacker.wasm");
    assert!(file.exists(), "missing {}", file.display());
    println!(
        "cargo:rustc-env=POLA_CAPLET_WASI_ATTACKER={}",
        file.display()
    );
    let wasm_dir = target_dir.join("wasm32-unknown-unknown/release");
    for name in CAPLETS {
        let file = wasm_dir.join(format!("pola_caplet_{name}.wasm"));
        assert!(file.exists(), "missing {}", file.display());
        println!(
            "cargo:rustc-env=POLA_CAPLET_{}={}",
            name.to_uppercase(),
            file.display()
        );
    }
}
