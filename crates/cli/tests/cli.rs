//! The `pola` binary, run as a user would.

use std::process::Command;

fn pola(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pola"))
        .args(args)
        .output()
        .expect("run pola");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_moves_the_money_and_refuses_the_attacks() {
    let (code, out, err) = pola(&[]);
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
