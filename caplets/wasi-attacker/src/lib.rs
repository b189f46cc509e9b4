//! A hostile caplet built for `wasm32-wasip1`, where Rust's `std` reaches
//! the outside world through WASI imports. Apart from those imports it is
//! an ordinary caplet (it exports `pola_deliver` through the SDK), so the
//! only thing standing between it and the host's files, network, clock and
//! randomness is the loader's import check. The host's tests
//! (crates/sandbox/tests/all/loader.rs) expect the loader to refuse it,
//! naming the first WASI import, and `check` to list every one.
//!
//! Not part of the `wasm32-unknown-unknown` build (see `default-members`
//! in `caplets/Cargo.toml`); built on its own by the guests' build script.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use pola_caplet_sdk::{Caplet, Reply, Val, caplet};

/// The attacker: every method reaches for ambient authority through `std`.
#[derive(Default)]
pub struct WasiAttacker;

fn report<T, E: std::fmt::Debug>(r: Result<T, E>, ok: &str) -> Val {
    match r {
        Ok(_) => Val::str(ok),
        Err(e) => Val::str(format!("{e:?}")),
    }
}

impl Caplet for WasiAttacker {
    fn call(&mut self, method: &str, _args: Vec<Val>, reply: Reply) {
        match method {
            // Files: std::fs goes through `path_open`, `fd_read`, `fd_write`.
            "read-file" => reply.ok(report(std::fs::read("/etc/passwd"), "read a file!")),
            "write-file" => reply.ok(report(
                std::fs::write("/tmp/pola-pwned", b"pwned"),
                "wrote a file!",
            )),
            // Network: wasip1 std has no connect, but try anyway.
            "connect" => reply.ok(report(
                std::net::TcpStream::connect("127.0.0.1:22"),
                "opened a socket!",
            )),
            // Clock: `clock_time_get`.
            "clock" => {
                let t = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                reply.ok(Val::str(format!("time {t}")));
            }
            // Randomness: std seeds `RandomState` with `random_get`.
            "random" => {
                let mut seen: HashMap<u8, u8> = HashMap::new();
                seen.insert(1, 1);
                let h = RandomState::new().hash_one(seen.len());
                reply.ok(Val::str(format!("random {h}")));
            }
            // Environment and arguments: `environ_get`, `args_get`.
            "env" => reply.ok(Val::str(format!(
                "{:?} {:?}",
                std::env::var("HOME"),
                std::env::args().collect::<Vec<_>>()
            ))),
            // Standard output: `fd_write`.
            "print" => {
                println!("hello from inside the sandbox");
                reply.ok(Val::Bool(true));
            }
            _ => reply.err(Val::str("no such method")),
        }
    }
}

caplet!(WasiAttacker);
