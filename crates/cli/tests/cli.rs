//! The `pola` binary, run as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod common;

use common::pola;

#[test]
fn demo_moves_the_money_and_refuses_the_attacks() {
    let (code, out, err) = pola(&["demo"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("balances: Alice 90, Bob 60, payment 0"),
        "{out}"
    );
    assert_eq!(out.matches("refused").count(), 4, "{out}");
    assert!(
        out.contains("balances unchanged: Alice 90, Bob 60"),
        "{out}"
    );
}

#[test]
fn caplet_check_accepts_a_confined_caplet() {
    let (code, out, err) = pola(&["caplet", "check", pola_sandbox_guests::MALICIOUS_PATH]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("confined: yes"), "{out}");
    assert!(out.contains("pola::send"), "{out}");
    assert!(out.contains("pola_deliver"), "{out}");
}

#[test]
fn caplet_check_names_a_forbidden_wasi_import() {
    let wasm = wat::parse_str(
        r#"(module
            (import "wasi_snapshot_preview1" "path_open"
                (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#,
    )
    .expect("wat");
    let dir = std::env::temp_dir().join(format!("pola-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("wasi.wasm");
    std::fs::write(&file, wasm).expect("write");
    let (code, out, _) = pola(&["caplet", "check", file.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("confined: NO"), "{out}");
    assert!(
        out.contains("forbidden import `wasi_snapshot_preview1::path_open`"),
        "{out}"
    );
    std::fs::write(&file, b"not wasm").expect("write");
    let (code, _, err) = pola(&["caplet", "check", file.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a valid WebAssembly module"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `pola serve --mint --state DIR`, which must refuse to start: returns
/// its stderr. Fails the test if it is still running after 20 s.
fn serve_refusal(state: &std::path::Path) -> String {
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_pola"))
        .args(["serve", "--mint", "--state"])
        .arg(state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run pola serve");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success(), "serve started on a bad state folder");
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
                .expect("read stderr");
            return err;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("serve did not refuse the state folder (hung or started)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_state_others_could_read_swap_or_block_on() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = std::env::temp_dir().join(format!("pola-cli-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("mkdir");

    // A folder open to others.
    let open = root.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = serve_refusal(&open);
    assert!(err.contains("chmod 700"), "{err}");

    // A folder that is a symbolic link.
    let real = root.join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = root.join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let err = serve_refusal(&link);
    assert!(err.contains("not a folder"), "{err}");

    // A sturdyrefs file that is a link to a private-looking file elsewhere.
    let elsewhere = root.join("elsewhere");
    std::fs::write(&elsewhere, "mint 00112233445566778899aabbccddeeff\n").expect("write");
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::symlink(&elsewhere, real.join("sturdyrefs")).expect("symlink");
    let err = serve_refusal(&real);
    assert!(err.contains("symbolic link"), "{err}");

    // A FIFO in its place must not hang the server.
    std::fs::remove_file(real.join("sturdyrefs")).expect("rm");
    let fifo = real.join("sturdyrefs");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = serve_refusal(&real);
    assert!(err.contains("not a plain file"), "{err}");

    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn errors_are_one_plain_line_and_booleans_have_one_syntax() {
    // Even with RUST_BACKTRACE set, a user sees the error, not a trace.
    let out = std::process::Command::new(common::POLA)
        .args([
            "call",
            "ocapn://aaaa.tcp-testing-only/s/abc?host=127.0.0.1&port=1",
            "",
            "#t",
        ])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run pola");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("booleans are written t and f"), "{err}");
    assert!(
        !err.contains("backtrace") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn caplet_check_escapes_the_names_a_module_chose() {
    // An import name that would clear the screen and print a clean report,
    // and an export name with a right-to-left override.
    let wasm = wat::parse_str(
        r#"(module
            (import "pola" "\1b[2J\1b[Hconfined: yes" (func))
            (func (export "ok\e2\80\aeevil")))"#,
    )
    .unwrap();
    let dir = common::TempDir::new("cli");
    let file = dir.join("evil.wasm");
    std::fs::write(&file, wasm).unwrap();
    let (code, out, _) = pola(&["caplet", "check", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert!(
        out.contains("\\u{1b}[2J") && out.contains("\\u{202e}"),
        "{out}"
    );
    assert!(out.contains("confined: NO"), "{out}");
}

/// `pola caplet pack`, `pola caplet check PKG` and `pola install`: a
/// package the desk accepts, one it refuses, and an install that Granma's
/// rules stop until the user insists.
#[test]
fn packages_are_packed_checked_and_installed() {
    let dir = common::TempDir::new("cli");
    let p = |name: &str| dir.join(name).to_str().expect("utf8").to_owned();
    let pack = |app: &pola_desk_apps::StockApp, out: &str| {
        std::fs::write(p(&format!("{}.toml", app.id)), app.manifest).expect("write");
        std::fs::write(p(&format!("{}.wasm", app.id)), app.wasm).expect("write");
        std::fs::write(p(&format!("{}.png", app.id)), app.icon).expect("write");
        pola(&[
            "caplet",
            "pack",
            "--manifest",
            &p(&format!("{}.toml", app.id)),
            "--wasm",
            &p(&format!("{}.wasm", app.id)),
            "--icon",
            &p(&format!("{}.png", app.id)),
            "-o",
            &p(out),
        ])
    };
    let (code, out, err) = pack(&pola_desk_apps::EDITOR, "editor.polapkg");
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = pola(&["caplet", "check", &p("editor.polapkg")]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("the desk would accept it"), "{out}");
    // A cut package is refused in plain words.
    let bytes = std::fs::read(p("editor.polapkg")).expect("read");
    std::fs::write(p("cut.polapkg"), &bytes[..bytes.len() / 2]).expect("write");
    let (code, out, _) = pola(&["caplet", "check", &p("cut.polapkg")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused"), "{out}");
    // A manifest the desk would refuse is not packed.
    std::fs::write(p("bad.toml"), "name = \"evil\\u202Etxt\"\n").expect("write");
    let (code, _, err) = pola(&[
        "caplet",
        "pack",
        "--manifest",
        &p("bad.toml"),
        "--wasm",
        &p("editor.wasm"),
        "-o",
        &p("bad.polapkg"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(!std::path::Path::new(&p("bad.polapkg")).exists());
    // Installing the hostile app: refused while Granma's rules warn.
    let (code, _, _) = pack(&pola_desk_apps::HOSTILE, "hostile.polapkg");
    assert_eq!(code, 0);
    let state = p("desk");
    let (code, out, err) = pola(&["install", &p("hostile.polapkg"), "--state", &state]);
    assert_eq!(code, 1, "{out}\n{err}");
    // Rules 2 to 6 (rule 1 needs an installed app it looks like: this
    // desk has none).
    for rule in 2..=6 {
        assert!(
            out.contains(&format!("warning (Granma's rule {rule})")),
            "{out}"
        );
    }
    assert!(err.contains("not installed"), "{err}");
    // The editor installs; the desk then knows it under the given name.
    let (code, out, err) = pola(&[
        "install",
        &p("editor.polapkg"),
        "--state",
        &state,
        "--name",
        "My editor",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("\"My editor\""), "{out}");
    // A state folder inside the documents folder is refused.
    let (code, _, err) = pola(&[
        "install",
        &p("editor.polapkg"),
        "--state",
        &p("docs/state"),
        "--documents",
        &p("docs"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("inside the documents folder"), "{err}");
}
