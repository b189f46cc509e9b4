//! The loader and `check`: only the caplet interface may be imported.

use pola_sandbox::{LoadError, Problem, check};
use pola_sandbox_guests::{BENIGN, ECHO, MALICIOUS, WASI_ATTACKER};

use crate::{module_with, sandbox, wat};

#[test]
fn built_caplets_are_confined() {
    for (name, bytes) in [("echo", ECHO), ("benign", BENIGN), ("malicious", MALICIOUS)] {
        let r = check(bytes).unwrap();
        assert!(r.confined, "{name}: {:?}", r.problems);
        assert!(
            r.imports.iter().all(|i| i.module == "pola"),
            "{name}: {:?}",
            r.imports
        );
        let exports: Vec<&str> = r.exports.iter().map(|e| e.name.as_str()).collect();
        assert!(exports.contains(&"pola_deliver") && exports.contains(&"memory"));
        crate::caplet(bytes);
    }
}

#[test]
fn check_lists_imports_with_types() {
    let bytes = module_with(r#"(import "pola" "send" (func (param i64 i32 i32) (result i64)))"#);
    let r = check(&bytes).unwrap();
    assert!(r.confined);
    assert_eq!(r.imports.len(), 1);
    assert_eq!(r.imports[0].name, "send");
    assert_eq!(r.imports[0].ty, "func (i64, i32, i32) -> (i64)");
}

/// Loads a module importing `module::name` and expects a refusal naming it.
fn refused(import: &str, module: &str, name: &str) {
    let bytes = module_with(import);
    let report = check(&bytes).unwrap();
    assert!(!report.confined);
    let err = sandbox().load(&bytes).unwrap_err();
    assert_eq!(
        err,
        LoadError::NotConfined(Problem::ForbiddenImport {
            module: module.into(),
            name: name.into()
        })
    );
    let text = err.to_string();
    assert!(text.contains(&format!("{module}::{name}")), "{text}");
}

#[test]
fn wasi_file_read_is_refused() {
    refused(
        r#"(import "wasi_snapshot_preview1" "path_open"
            (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#,
        "wasi_snapshot_preview1",
        "path_open",
    );
    refused(
        r#"(import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))"#,
        "wasi_snapshot_preview1",
        "fd_read",
    );
}

#[test]
fn wasi_file_write_is_refused() {
    refused(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        "wasi_snapshot_preview1",
        "fd_write",
    );
}

#[test]
fn sockets_are_refused() {
    refused(
        r#"(import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))"#,
        "wasi_snapshot_preview1",
        "sock_accept",
    );
    refused(
        r#"(import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-connect" (func (param i32 i32)))"#,
        "wasi:sockets/tcp@0.2.0",
        "[method]tcp-socket.start-connect",
    );
}

#[test]
fn clock_and_random_are_refused() {
    refused(
        r#"(import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))"#,
        "wasi_snapshot_preview1",
        "clock_time_get",
    );
    refused(
        r#"(import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))"#,
        "wasi_snapshot_preview1",
        "random_get",
    );
}

#[test]
fn env_and_non_function_imports_are_refused() {
    refused(
        r#"(import "env" "getenv" (func (param i32) (result i32)))"#,
        "env",
        "getenv",
    );
    // A `pola` name that is not in the interface.
    refused(r#"(import "pola" "exec" (func))"#, "pola", "exec");
    // Importing memory, a table or a global, even from `pola`.
    refused(r#"(import "pola" "send" (global i32))"#, "pola", "send");
    refused(
        r#"(import "env" "table" (table 1 funcref))"#,
        "env",
        "table",
    );
}

#[test]
fn wrong_signature_and_missing_exports_are_refused() {
    let bytes = module_with(r#"(import "pola" "send" (func (param i32) (result i32)))"#);
    assert_eq!(
        sandbox().load(&bytes).unwrap_err(),
        LoadError::NotConfined(Problem::WrongImportType {
            name: "send".into()
        })
    );
    let no_entry = wat(r#"(module (memory (export "memory") 1))"#);
    assert_eq!(
        sandbox().load(&no_entry).unwrap_err(),
        LoadError::NotConfined(Problem::MissingExport {
            name: "pola_deliver"
        })
    );
    let bad_entry = wat(r#"(module (memory (export "memory") 1)
            (func (export "pola_deliver") (param i32) (result i32) i32.const 0))"#);
    assert_eq!(
        sandbox().load(&bad_entry).unwrap_err(),
        LoadError::NotConfined(Problem::WrongExportType {
            name: "pola_deliver".into()
        })
    );
}

#[test]
fn garbage_and_components_are_invalid() {
    assert!(matches!(check(b"not wasm"), Err(LoadError::Invalid(_))));
    assert!(matches!(
        sandbox().load(b"\0asm\x01\0\0"),
        Err(LoadError::Invalid(_))
    ));
    // The component-model preamble (version 0x0d, layer 1).
    let component = b"\0asm\x0d\0\x01\0";
    assert!(matches!(
        sandbox().load(component),
        Err(LoadError::Invalid(_))
    ));
}

#[test]
fn oversized_module_is_refused_before_compiling() {
    let mut c = pola_sandbox::Config::default();
    c.max_module_bytes = 1024;
    c.max_instances = 4;
    let sb = pola_sandbox::Sandbox::<crate::world::Link>::new(c).unwrap();
    assert!(matches!(sb.load(ECHO), Err(LoadError::TooLarge { .. })));
}

/// A real Rust caplet built for `wasm32-wasip1` with std (`caplets/wasi-attacker`):
/// `std::fs`, `SystemTime::now`, `RandomState`, `std::env` and `println!`
/// compile to WASI imports, and the loader refuses the module before any
/// of it can run, naming the first one.
#[test]
fn rust_std_wasi_build_is_refused_naming_its_first_wasi_import() {
    let report = check(WASI_ATTACKER).unwrap();
    assert!(!report.confined);
    let first = report
        .imports
        .iter()
        .find(|i| i.module != "pola")
        .expect("a WASI import");
    assert_eq!(first.module, "wasi_snapshot_preview1");
    let err = sandbox().load(WASI_ATTACKER).unwrap_err();
    assert_eq!(
        err,
        LoadError::NotConfined(Problem::ForbiddenImport {
            module: first.module.clone(),
            name: first.name.clone(),
        })
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("wasi_snapshot_preview1::{}", first.name)),
        "{text}"
    );
}

#[test]
fn check_lists_every_wasi_import_of_the_rust_std_build() {
    let report = check(WASI_ATTACKER).unwrap();
    let wasi: Vec<&str> = report
        .imports
        .iter()
        .filter(|i| i.module == "wasi_snapshot_preview1")
        .map(|i| i.name.as_str())
        .collect();
    // Files, output, clock, randomness, environment.
    for needed in [
        "path_open",
        "fd_read",
        "fd_write",
        "clock_time_get",
        "random_get",
        "environ_get",
    ] {
        assert!(wasi.contains(&needed), "{needed} not in {wasi:?}");
    }
    // Every import outside `pola` is a problem, each named once; nothing
    // else is wrong with the module (it exports a caplet's entry points).
    let forbidden: Vec<(&str, &str)> = report
        .problems
        .iter()
        .map(|p| match p {
            Problem::ForbiddenImport { module, name } => (module.as_str(), name.as_str()),
            other => panic!("unexpected problem {other:?}"),
        })
        .collect();
    let outside: Vec<(&str, &str)> = report
        .imports
        .iter()
        .filter(|i| i.module != "pola")
        .map(|i| (i.module.as_str(), i.name.as_str()))
        .collect();
    assert_eq!(forbidden, outside);
    assert!(report.imports.iter().any(|i| i.module == "pola"));
    let exports: Vec<&str> = report.exports.iter().map(|e| e.name.as_str()).collect();
    assert!(exports.contains(&"pola_deliver") && exports.contains(&"memory"));
}

/// The loader reads the import section and refuses before compiling: a
/// module with a forbidden import is refused for that import even when its
/// code would not even validate (so hostile modules cost no compile time),
/// and `check`, which decides by the same function, says the same.
#[test]
fn forbidden_imports_are_refused_before_compiling() {
    let bytes = wat(r#"(module
        (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "pola_deliver") (param i32 i64) (result i32) i64.const 0))"#);
    assert_eq!(
        sandbox().load(&bytes).unwrap_err(),
        LoadError::NotConfined(Problem::ForbiddenImport {
            module: "wasi_snapshot_preview1".into(),
            name: "random_get".into(),
        })
    );
    let report = check(&bytes).unwrap();
    assert!(!report.confined && !report.loads);
    assert_eq!(
        report.problems,
        [Problem::ForbiddenImport {
            module: "wasi_snapshot_preview1".into(),
            name: "random_get".into(),
        }]
    );
}
