//! What an operator does to a running or stopped `pola serve`: serve
//! caplet packages from `pola.toml` (persistent, upgradable), revoke
//! sturdyrefs, collect unreachable objects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use pola_vat::{Val, WaitError, error_message};
use sha2::{Digest as _, Sha256};

mod common;

use common::{Client, POLA, Served, TempDir, free_port, pola, serve};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn broken(r: Result<Val, WaitError>) -> String {
    match r {
        Err(WaitError::Broken(e)) => error_message(&e).unwrap_or("?").to_owned(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Writes `DIR/pola.toml` serving one caplet `counter` from `wasm`.
fn caplet_config(dir: &Path, port: u16, wasm: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let package = dir.join("counter.wasm");
    std::fs::write(&package, wasm).unwrap();
    let sha: String = Sha256::digest(wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        dir.join("pola.toml"),
        format!(
            "[net]\nlisten = \"127.0.0.1\"\nport = {port}\n\n[[caplet]]\nname = \"counter\"\npackage = \"counter.wasm\"\nsha256 = \"{sha}\"\nquotas = {{ fuel_per_call = 50000000 }}\n"
        ),
    )
    .unwrap();
}

fn serve_from_config(dir: &Path) -> Served {
    let mut cmd = Command::new(POLA);
    cmd.arg("serve").arg("--state").arg(dir);
    Served::start(cmd)
}

#[test]
fn a_caplet_package_is_served_persistently_and_upgraded_with_its_storage() {
    let tmp = TempDir::new("cli");
    let dir = tmp.join("host");
    let port = free_port();
    let client = Client::new();
    caplet_config(&dir, port, pola_sandbox_guests::BENIGN);
    let host = serve_from_config(&dir);
    let uri = host.uri("counter").to_owned();
    // The benign caplet counts its calls in its storage.
    for n in 1..=3 {
        assert_eq!(client.int(&uri, "calls", vec![]), n);
    }
    drop(host); // kill -9
    let host = serve_from_config(&dir);
    assert_eq!(host.uri("counter"), uri, "same URI after a restart");
    assert_eq!(client.int(&uri, "calls", vec![]), 4);
    drop(host);

    // A new package for the same name runs over the same storage: the echo
    // caplet does not count, the benign one again carries on.
    caplet_config(&dir, port, pola_sandbox_guests::ECHO);
    let host = serve_from_config(&dir);
    assert!(
        client.call(&uri, "echo", vec![Val::int(1i64)]).is_ok(),
        "the new code runs"
    );
    drop(host);
    caplet_config(&dir, port, pola_sandbox_guests::BENIGN);
    let host = serve_from_config(&dir);
    assert_eq!(client.int(&uri, "calls", vec![]), 5);
    drop(host);
}

#[test]
fn revoked_sturdyrefs_stay_revoked_and_collection_frees_what_nothing_reaches() {
    let tmp = TempDir::new("cli");
    let dir = tmp.join("mint");
    let port = free_port();
    let client = Client::new();
    let host = serve(&dir, port, &["--mint"]);
    let mint_uri = host.uri("mint").to_owned();
    let issuer_uri = host.uri("issuer").to_owned();
    let mint = client.fetch(&mint_uri);
    let make = |amount: i64| client.vat.send(&mint, "make_purse", vec![Val::int(amount)]);
    let sturdy = |purse: &pola_vat::Ref| {
        let uri = client
            .vat
            .block_on(&client.vat.send(purse, "sturdyref", vec![]), common::T)
            .unwrap();
        uri.as_str().unwrap().to_owned()
    };
    let kept = sturdy(&make(7));
    let doomed = sturdy(&make(3));
    // Five purses nobody will be able to reach once this client goes.
    for _ in 0..5 {
        client.vat.block_on(&make(1), common::T).unwrap();
    }
    assert_eq!(client.int(&doomed, "balance", vec![]), 3);

    // Revoking while the host runs: at once, and for good.
    let (code, out, err) = pola(&["revoke", "--state", s(&dir), &doomed]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(
        broken(client.call(&doomed, "balance", vec![])),
        "no such object"
    );
    let (code, _, err) = pola(&["revoke", "--state", s(&dir), &doomed]);
    assert_ne!(code, 0);
    assert!(err.contains("no sturdyref of this host"), "{err}");
    let (code, _, err) = pola(&["revoke", "--state", s(&dir), "not a uri"]);
    assert_ne!(code, 0, "{err}");
    // Another host's sturdyref is not this host's to revoke, even with a
    // Swiss number this host knows.
    let other = serve(&tmp.join("other"), 0, &["--mint"]);
    let foreign = format!(
        "{}/s/{}",
        other.uri("mint").split("/s/").next().unwrap(),
        doomed.split("/s/").nth(1).unwrap()
    );
    let (code, _, err) = pola(&["revoke", "--state", s(&dir), &foreign]);
    assert_ne!(code, 0);
    assert!(err.contains("another host"), "{err}");
    drop(other);
    // Collection while running keeps everything a client still holds.
    let field = |out: &str, name: &str| -> u64 {
        let words: Vec<&str> = out.split_whitespace().collect();
        let i = words.iter().position(|w| *w == name).unwrap();
        words[i + 1].parse().unwrap()
    };
    let (code, online, err) = pola(&["collect", "--state", s(&dir)]);
    assert_eq!(code, 0, "{err}");
    assert!(online.contains("savepoint before-collect-"), "{online}");
    assert!(online.contains("stored "), "{online}");
    assert_eq!(client.int(&kept, "balance", vec![]), 7);
    drop(host);
    drop(client);

    // Stopped: revoke a served object's URI, collect what nobody reaches.
    let (code, out, err) = pola(&["revoke", "--state", s(&dir), &issuer_uri]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("issuer"), "{out}");
    let (code, out, err) = pola(&["collect", "--state", s(&dir), "--migrate"]);
    assert_eq!(code, 0, "{err}");
    // The five unreachable purses and their accounts, and the revoked
    // purse and its account, went (some already while the host ran, once
    // the client had dropped them); the mint, the issuer and the kept
    // purse and its account stay.
    assert_eq!(
        field(&online, "deleted") + field(&out, "deleted"),
        12,
        "{online} / {out}"
    );
    assert_eq!(field(&out, "kept"), 4, "{out}");
    assert_eq!(field(&out, "migrated"), 0, "{out}");

    let client = Client::new();
    let host = serve(&dir, port, &["--mint"]);
    assert_eq!(host.uri("mint"), mint_uri);
    assert_ne!(host.uri("issuer"), issuer_uri, "a revoked URI is replaced");
    assert_eq!(
        broken(client.call(&issuer_uri, "make_purse", vec![Val::int(0i64)])),
        "no such object"
    );
    assert_eq!(
        broken(client.call(&doomed, "balance", vec![])),
        "no such object"
    );
    assert_eq!(client.int(&kept, "balance", vec![]), 7);
}
