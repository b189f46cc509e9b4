//! A hostile caplet: each method tries something a caplet must not be able
//! to do. The host's tests (crates/sandbox/tests/all/attacks.rs) call each
//! method and check that it fails, with a clear error.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use std::collections::BTreeSet;
use std::hint::black_box;

use pola_caplet_sdk::{Caplet, Error, Ref, Reply, Val, caplet, storage};

/// The hostile object.
#[derive(Default)]
pub struct Malicious {
    kept: Option<Ref>,
    hoard: Vec<Vec<u8>>,
    held: Option<pola_caplet_sdk::Resolver>,
}

fn outcome(r: Result<(), Error>) -> Val {
    match r {
        Ok(()) => Val::str("ok"),
        Err(e) => Val::str(e.name()),
    }
}

fn names(set: BTreeSet<&'static str>) -> Val {
    Val::List(set.into_iter().map(Val::str).collect())
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    // black_box keeps this a real call, not a loop.
    black_box(recurse(black_box(n.wrapping_add(1)))).wrapping_add(1)
}

/// One step of the `when` loops: optionally queue 5 big sends on `hang`,
/// then ping `r` and do it all again once the answer comes.
fn when_loop(r: Ref, hang: Option<Ref>) {
    if let Some(h) = hang {
        let msg = pola_caplet_sdk::encode(&pola_caplet_sdk::message(
            "eat",
            vec![Val::bytes(vec![3u8; (1 << 20) - 64])],
        ));
        for _ in 0..5 {
            let _ = black_box(pola_caplet_sys::send_only_bytes(h.handle(), &msg));
        }
    }
    if let Ok(p) = r.send("ping", Vec::new()) {
        // Drop the answer's handle once watched, so the c-list never
        // fills and the loop can run for ever.
        let h = p.as_ref();
        let _ = p.when(move |_me: &mut Malicious, _outcome| when_loop(r, hang));
        let _ = h.drop_ref();
    }
}

impl Caplet for Malicious {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match (method, args.as_slice()) {
            // Try a spread of guessed handle numbers; report every outcome.
            ("guess", _) => {
                let mut seen = BTreeSet::new();
                let mut guesses: Vec<i64> = vec![0, 1, 2, 3, -1, i64::MIN, i64::MAX];
                guesses.extend((0..64).map(|i| (1i64 << 32) + i));
                guesses.extend((0..64).map(|i| (1i64 << 61) + i));
                guesses.extend((0..64).map(|i| i * 0x0123_4567_89ab));
                for g in guesses {
                    let r = Ref::from_handle(g).send_only("steal", Vec::new());
                    seen.insert(match r {
                        Ok(()) => "ok",
                        Err(e) => e.name(),
                    });
                }
                reply.ok(names(seen));
            }
            // Use a handle number handed in as plain data.
            ("use-handle", [n]) => {
                let h = n.as_i64().unwrap_or(0);
                reply.ok(outcome(Ref::from_handle(h).send_only("steal", Vec::new())));
            }
            // Give away the number of a handle (to try it elsewhere later).
            ("leak", [Val::Ref(r)]) => reply.ok(Val::int(r.handle())),
            ("keep", [Val::Ref(r)]) => {
                self.kept = Some(*r);
                reply.ok(Val::Bool(true));
            }
            // Plain storage access, to look at what the attacks below left.
            ("sput", [Val::String(key), value]) => {
                reply.ok(outcome(storage::put(key, value)));
            }
            ("sget", [Val::String(key)]) => match storage::get(key) {
                Ok(v) => reply.ok(v.unwrap_or(Val::Bool(false))),
                Err(e) => reply.err(Val::str(e.name())),
            },
            // Write storage and send, then give up on the delivery (the
            // entry point returns a failure code): both must be undone.
            ("store-send-abort", [Val::Ref(target)]) => {
                let _ = storage::put("victim", &Val::str("overwritten"));
                let _ = storage::put("extra", &target.val());
                let _ = target.send_only("increment", Vec::new());
                reply.abort();
            }
            // The same, ending in a trap.
            ("store-send-panic", [Val::Ref(target)]) => {
                let _ = storage::put("victim", &Val::str("overwritten"));
                let _ = storage::delete("kept");
                let _ = target.send_only("increment", Vec::new());
                panic!("after writing");
            }
            // Fill storage with values of `size` bytes until the host says
            // no; answer how many fit and the error.
            ("hoard", [size]) => {
                let size = usize::try_from(size.as_i64().unwrap_or(0)).unwrap_or(0);
                let mut n = 0i64;
                let err = loop {
                    match storage::put(format!("k{n}"), &Val::bytes(vec![7u8; size])) {
                        Ok(()) => n += 1,
                        Err(e) => break e,
                    }
                };
                reply.ok(Val::List(vec![Val::int(n), Val::str(err.name())]));
            }
            // Store `n` bytes under `key`.
            ("oversize", [Val::String(key), n]) => {
                let n = usize::try_from(n.as_i64().unwrap_or(0)).unwrap_or(0);
                reply.ok(outcome(storage::put(key, &Val::bytes(vec![1u8; n]))));
            }
            // A key of `n` bytes.
            ("long-key", [n]) => {
                let n = usize::try_from(n.as_i64().unwrap_or(0)).unwrap_or(0);
                reply.ok(outcome(storage::put(vec![b'k'; n], &Val::Bool(true))));
            }
            // Store a forged handle, and this delivery's own resolver.
            ("store-forged", _) => {
                let forged = storage::put("forged", &Ref::from_handle(12345).val());
                let Some(resolver) = reply.later() else {
                    return;
                };
                let own = storage::put("resolver", &Ref::from_handle(resolver.handle()).val());
                let _ = resolver.resolve(&Val::List(vec![outcome(forged), outcome(own)]));
            }
            ("use-kept", _) => match self.kept {
                Some(r) => reply.ok(outcome(r.send_only("steal", Vec::new()))),
                None => reply.err(Val::str("nothing kept")),
            },
            ("pass-kept", [Val::Ref(target)]) => match self.kept {
                Some(r) => reply.ok(outcome(target.send_only("take", vec![r.val()]))),
                None => reply.err(Val::str("nothing kept")),
            },
            // Make the host work in a loop: big sends, forever.
            ("flood", [Val::Ref(r)]) => {
                let msg = pola_caplet_sdk::encode(&pola_caplet_sdk::message(
                    "eat",
                    vec![Val::bytes(vec![1u8; 512 << 10])],
                ));
                loop {
                    let _ = black_box(pola_caplet_sys::send_only_bytes(r.handle(), &msg));
                }
            }
            // Make the host stage answers in a loop: small sends with
            // answers forever, dropping each answer so the c-list never
            // fills.
            ("flood-answers", [Val::Ref(r)]) => loop {
                if let Ok(p) = r.send("ping", Vec::new()) {
                    let _ = black_box(p.as_ref().drop_ref());
                }
            },
            // Pile up `when` registrations on promises that never settle,
            // hoping the host keeps every one of them forever.
            ("watch", [Val::Ref(r), n]) => {
                let n = n.as_i64().unwrap_or(0);
                let mut accepted = 0i64;
                for _ in 0..n {
                    let Ok(p) = r.send("hang", Vec::new()) else {
                        break;
                    };
                    if p.when(|_me: &mut Self, _outcome| {}).is_ok() {
                        accepted += 1;
                    }
                }
                reply.ok(Val::int(accepted))
            }
            // Keep the answer's resolver and never settle it.
            ("keep-answer", _) => self.held = reply.later(),
            // Hold the vat's CPU forever through `when`: every answer from
            // `r` asks for another (each notification is a fresh entry).
            ("when-loop", [Val::Ref(r)]) => {
                when_loop(*r, None);
                reply.ok(Val::Bool(true));
            }
            // The same, and on every turn queue 5 sends of about 1 MiB on
            // `hang`, a promise that never settles, so the host keeps them.
            ("flood-hang", [Val::Ref(hang), Val::Ref(r)]) => {
                when_loop(*r, Some(*hang));
                reply.ok(Val::Bool(true));
            }
            // Send itself (`me`, its own reference) the same message again,
            // twice, on every delivery: a queue that doubles each turn.
            ("self-loop", [Val::Ref(me)]) => {
                let _ = me.send_only("self-loop", vec![me.val()]);
                let _ = me.send_only("self-loop", vec![me.val()]);
                reply.ok(Val::Bool(true));
            }
            // Send `n` one-byte atoms in one message (each becomes a value
            // of several dozen bytes in the host); report the outcome.
            ("atoms", [Val::Ref(r), n]) => {
                let n = usize::try_from(n.as_i64().unwrap_or(0)).unwrap_or(0);
                let atoms = Val::List(vec![Val::Bool(true); n]);
                reply.ok(outcome(r.send_only("eat", vec![atoms])));
            }
            ("spin", _) => {
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            ("bomb", _) => loop {
                self.hoard.push(black_box(vec![0xA5u8; 1 << 20]));
            },
            ("recurse", _) => reply.ok(Val::int(recurse(0) as i64)),
            ("panic", _) => panic!("secret detail from inside the caplet"),
            // Send messages too large for the host, or not in our memory.
            ("huge", [Val::Ref(r)]) => {
                let mut seen = BTreeSet::new();
                let big = Val::bytes(vec![7u8; 5 << 18]);
                seen.insert(match r.send_only("eat", vec![big]) {
                    Ok(()) => "ok",
                    Err(e) => e.name(),
                });
                for (ptr, len) in [
                    (0usize, 0x7fff_ffffusize),
                    (0xffff_fff0, 64),
                    (usize::MAX, 1),
                ] {
                    let code = pola_caplet_sys::send_raw(r.handle(), ptr, len);
                    seen.insert(if code > 0 {
                        "ok"
                    } else {
                        Error::from_code(code as i32).name()
                    });
                }
                reply.ok(names(seen));
            }
            ("garbage", [Val::Ref(r)]) => {
                let code = pola_caplet_sys::send_bytes(r.handle(), b"\xff not syrup");
                reply.ok(Val::str(if code > 0 {
                    "ok"
                } else {
                    Error::from_code(code as i32).name()
                }));
            }
            // Write a reference record by hand, naming a handle we never got.
            ("forge", [Val::Ref(r)]) => {
                let forged = Val::Ref(Ref::from_handle(r.handle() + 1000));
                reply.ok(outcome(r.send_only("take", vec![forged])));
            }
            // Misuse our own resolver: send to it, settle it twice.
            ("resolver-tricks", [Val::Ref(reporter)]) => {
                let Some(resolver) = reply.later() else {
                    return;
                };
                let h = resolver.handle();
                let mut seen = Vec::new();
                seen.push(outcome(Ref::from_handle(h).send_only("x", Vec::new())));
                seen.push(outcome(resolver.resolve(&Val::str("first"))));
                let again = pola_caplet_sys::resolve_bytes(h, b"t");
                seen.push(Val::str(Error::from_code(again).name()));
                let _ = reporter.send_only("report", seen);
            }
            // Ambient authority through std: none on wasm32-unknown-unknown.
            ("std-fs", _) => reply.ok(Val::str(match std::fs::read("/etc/passwd") {
                Ok(_) => "read a file!",
                Err(_) => "no file access",
            })),
            ("std-net", _) => reply.ok(Val::str(
                match std::net::TcpStream::connect("127.0.0.1:22") {
                    Ok(_) => "opened a socket!",
                    Err(_) => "no network",
                },
            )),
            // No clock either: std's clock is unimplemented here (a trap).
            ("std-clock", _) => {
                let t = std::time::SystemTime::now();
                reply.ok(Val::str(format!("{t:?}")));
            }
            ("std-env", _) => reply.ok(Val::str(match std::env::var("HOME") {
                Ok(_) => "read the environment!",
                Err(_) => "no environment",
            })),
            _ => reply.err(Val::str("no such method")),
        }
    }
}

caplet!(Malicious);
