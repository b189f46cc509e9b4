//! `pola caplet check`, `pola serve` and `pola install` agree with the
//! loader: one checker decides whether a module loads, under the bounds of
//! the host that will load it (pola serve's defaults or a caplet's quotas,
//! the desk's for a package), and the check says which bounds it used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use pola_powerbox::package::{Manifest, Package};
use sha2::{Digest as _, Sha256};

mod common;

use common::{POLA, Served, TempDir, pola};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A confined caplet: it imports nothing and exports its entry point and
/// its memory. `memories` are its memory declarations (the first is
/// exported); `body` goes into `pola_deliver`.
fn caplet(memories: &[u32], body: &str) -> Vec<u8> {
    let mut wat = String::from("(module\n");
    for (i, pages) in memories.iter().enumerate() {
        if i == 0 {
            wat.push_str(&format!("(memory (export \"memory\") {pages})\n"));
        } else {
            wat.push_str(&format!("(memory {pages})\n"));
        }
    }
    wat.push_str(&format!(
        "(func (export \"pola_deliver\") (param i32 i64) (result i32) {body} i32.const 0))"
    ));
    wat::parse_str(wat).unwrap()
}

/// A package holding `wasm`, written without `pack`'s checks (which refuse
/// a module that would not load), as a hostile author could.
fn raw_package(wasm: Vec<u8>) -> Vec<u8> {
    Package {
        manifest: Manifest::from_toml("name = \"Big\"\n").unwrap(),
        icon: None,
        wasm,
    }
    .encode()
}

/// `pola caplet check FILE`: (exit code, stdout).
fn check(file: &Path) -> (i32, String) {
    let (code, out, err) = pola(&["caplet", "check", s(file)]);
    assert!(err.is_empty(), "{err}");
    (code, out)
}

#[test]
fn a_confined_module_that_would_not_load_is_said_so_as_a_file_and_as_a_package() {
    let dir = TempDir::new("cli");
    let deep = format!("{}{}", "(block ".repeat(600), ")".repeat(600));
    let cases = [
        // Two memories: the host gives an instance one.
        ("two-memories", caplet(&[1, 1], ""), "2 memories"),
        // 2000 pages (125 MiB): over pola serve's 16 MiB and the desk's
        // 64 MiB.
        (
            "big-memory",
            caplet(&[2000], ""),
            "131072000 bytes of initial memory",
        ),
        // Nested 600 deep: the bound is 512.
        ("deep", caplet(&[1], &deep), "nests blocks"),
    ];
    for (name, wasm, reason) in cases {
        let file = dir.join(format!("{name}.wasm"));
        std::fs::write(&file, &wasm).unwrap();
        let (code, out) = check(&file);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains("confined: yes"), "{name}: {out}");
        assert!(out.contains("\nloads: NO\n"), "{name}: {out}");
        assert!(out.contains(reason), "{name}: {out}");
        assert!(
            out.contains("bounds: pola serve's defaults (a caplet without quotas): memory up to 16777216 bytes"),
            "{name}: {out}"
        );

        let pkg = dir.join(format!("{name}.polapkg"));
        std::fs::write(&pkg, raw_package(wasm)).unwrap();
        let (code, out) = check(&pkg);
        assert_eq!(code, 1, "{name} package: {out}");
        assert!(out.contains("would not load"), "{name} package: {out}");
        assert!(out.contains("confined: yes"), "{name} package: {out}");
        assert!(out.contains("\nloads: NO\n"), "{name} package: {out}");
        assert!(out.contains(reason), "{name} package: {out}");
        assert!(
            out.contains("bounds: the desk's (apps run under them): memory up to 67108864 bytes"),
            "{name} package: {out}"
        );
    }
}

#[test]
fn a_package_is_judged_by_the_desks_bounds_from_check_to_install() {
    let dir = TempDir::new("cli");
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(p("big.toml"), "name = \"Big\"\n").unwrap();
    let pack = |wasm: &str, out: &str| {
        pola(&[
            "caplet",
            "pack",
            "--manifest",
            &p("big.toml"),
            "--wasm",
            &p(wasm),
            "-o",
            &p(out),
        ])
    };

    // 20 MiB of initial memory: over pola serve's default 16 MiB, under
    // the desk's 64 MiB.
    std::fs::write(p("twenty.wasm"), caplet(&[320], "")).unwrap();
    let (code, out) = check(&dir.join("twenty.wasm"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("confined: yes"), "{out}");
    assert!(
        out.contains("20971520 bytes of initial memory; the host's limit is 16777216"),
        "{out}"
    );
    // As a package for the desk it packs, checks and installs.
    let (code, out, err) = pack("twenty.wasm", "twenty.polapkg");
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out) = check(&dir.join("twenty.polapkg"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("loads: yes"), "{out}");
    assert!(out.contains("the desk would accept it"), "{out}");
    assert!(
        out.contains("bounds: the desk's (apps run under them): memory up to 67108864 bytes"),
        "{out}"
    );
    let state = p("desk");
    let (code, out, err) = pola(&[
        "install",
        &p("twenty.polapkg"),
        "--state",
        &state,
        "--despite-warnings",
    ]);
    assert_eq!(code, 0, "the desk installs it: {out}\n{err}");

    // 64 MiB and one page: over the desk's cap. Refused alike by pack,
    // check and install, each naming the bound.
    let over = caplet(&[1025], "");
    std::fs::write(p("over.wasm"), &over).unwrap();
    let (code, _, err) = pack("over.wasm", "over.polapkg");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the host's limit is 67108864"), "{err}");
    std::fs::write(p("over.polapkg"), raw_package(over)).unwrap();
    let (code, out) = check(&dir.join("over.polapkg"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\nloads: NO\n"), "{out}");
    assert!(
        out.contains("67174400 bytes of initial memory; the host's limit is 67108864"),
        "{out}"
    );
    let (code, out, err) = pola(&[
        "install",
        &p("over.polapkg"),
        "--state",
        &state,
        "--despite-warnings",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("would not load"), "{err}");
    assert!(err.contains("the host's limit is 67108864"), "{err}");
}

/// Writes `DIR/pola.toml` serving caplet `big` from `wasm` with a
/// `memory_bytes` quota.
fn serve_config(dir: &Path, wasm: &[u8], memory_bytes: u64) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("big.wasm"), wasm).unwrap();
    let sha: String = Sha256::digest(wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        dir.join("pola.toml"),
        format!(
            "[net]\nlisten = \"127.0.0.1\"\nport = 0\n\n[[caplet]]\nname = \"big\"\npackage = \"big.wasm\"\nsha256 = \"{sha}\"\nquotas = {{ memory_bytes = {memory_bytes} }}\n"
        ),
    )
    .unwrap();
}

#[test]
fn pola_serve_checks_each_caplet_under_its_own_quotas() {
    let tmp = TempDir::new("cli");
    // 20 pages (1.25 MiB) of initial memory under a 1 MiB quota: refused
    // before anything starts, naming the caplet, the line and the bound.
    let a = tmp.join("a");
    serve_config(&a, &caplet(&[20], ""), 1 << 20);
    let (code, _, err) = pola(&["serve", "--state", s(&a)]);
    assert_ne!(code, 0, "{err}");
    let at = format!("{}:7: caplet \"big\": ", a.join("pola.toml").display());
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("would not load under its quotas"), "{err}");
    assert!(
        err.contains("1310720 bytes of initial memory; the host's limit is 1048576"),
        "{err}"
    );
    assert!(!a.join("state.redb").exists(), "a store was made");

    // 20 MiB under a 32 MiB quota (over the default 16 MiB): accepted,
    // loaded and served.
    let b = tmp.join("b");
    serve_config(&b, &caplet(&[320], ""), 32 << 20);
    let mut cmd = Command::new(POLA);
    cmd.arg("serve").arg("--state").arg(&b);
    let host = Served::start(cmd);
    assert!(
        host.uri("big").starts_with("ocapn://"),
        "{:?}",
        host.objects
    );
}
