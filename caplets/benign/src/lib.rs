//! A well-behaved caplet: uses the capabilities it is handed, and nothing
//! else. Its state (the number of calls and the reference it keeps) lives
//! in its storage, so a fresh instance carries on where the last one
//! stopped.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use pola_caplet_sdk::{Caplet, Ref, Reply, Val, caplet, storage};

/// The benign object: remembers one granted reference (in storage, under
/// `"kept"`) and counts its calls (under `"calls"`). It keeps nothing in
/// memory.
#[derive(Default)]
pub struct Benign;

/// The kept reference, if any.
fn kept() -> Option<Ref> {
    match storage::get("kept") {
        Ok(Some(Val::Ref(r))) => Some(r),
        _ => None,
    }
}

fn keep(r: Ref) -> Result<(), pola_caplet_sdk::Error> {
    storage::put("kept", &r.val())
}

fn err_val(e: pola_caplet_sdk::Error) -> Val {
    Val::str(e.name())
}

/// Sends `m(rest…)` to `target` and answers with its answer, later.
fn ask(target: Ref, m: &str, rest: &[Val], reply: Reply) {
    match target.send(m, rest.to_vec()) {
        Ok(p) => {
            let Some(resolver) = reply.later() else {
                return;
            };
            let r = p.when(move |_: &mut Benign, outcome| {
                let _ = match outcome {
                    Ok(v) => resolver.resolve(&v),
                    Err(e) => resolver.reject(&e),
                };
            });
            if let Err(e) = r {
                // `resolver` moved into the reaction that was discarded;
                // the host breaks the promise.
                let _ = e;
            }
        }
        Err(e) => reply.err(err_val(e)),
    }
}

impl Caplet for Benign {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        let calls = match storage::get("calls") {
            Ok(v) => v.and_then(|v| v.as_i64()).unwrap_or(0).saturating_add(1),
            Err(e) => return reply.err(err_val(e)),
        };
        if let Err(e) = storage::put("calls", &Val::int(calls)) {
            return reply.err(err_val(e));
        }
        match (method, args.as_slice()) {
            ("hello", _) => reply.ok(Val::str("hi")),
            ("calls", _) => reply.ok(Val::int(calls)),
            // The value stored under `key` (a string), or `#f`.
            ("get", [Val::String(key)]) => reply.result(
                storage::get(key)
                    .map(|v| v.unwrap_or(Val::Bool(false)))
                    .map_err(err_val),
            ),
            // Send `method(rest…)` to `target` and answer with its answer.
            ("call", [Val::Ref(target), Val::Symbol(m), rest @ ..]) => {
                ask(*target, m, rest, reply);
            }
            // Send `make(i)` to `target` for each i below n, pipelining
            // `get()` on every third answer; answer with the list of
            // promises, and keep the first one.
            ("fan", [Val::Ref(target), n]) => {
                let n = n.as_i64().unwrap_or(0);
                let mut out = Vec::new();
                for i in 0..n {
                    let p = match target.send("make", vec![Val::int(i)]) {
                        Ok(p) => p,
                        Err(e) => return reply.err(err_val(e)),
                    };
                    if i == 0
                        && let Err(e) = keep(p.as_ref())
                    {
                        return reply.err(err_val(e));
                    }
                    if i % 3 == 0 {
                        match p.as_ref().send("get", Vec::new()) {
                            Ok(q) => out.push(q.as_ref().val()),
                            Err(e) => return reply.err(err_val(e)),
                        }
                    } else {
                        out.push(p.as_ref().val());
                    }
                }
                reply.ok(Val::List(out));
            }
            // Like `call`, to the kept reference.
            ("ask-kept", [Val::Symbol(m), rest @ ..]) => match kept() {
                Some(r) => ask(r, m, rest, reply),
                None => reply.err(Val::str("nothing kept")),
            },
            ("tell", [Val::Ref(target), Val::Symbol(m), rest @ ..]) => {
                reply.result(
                    target
                        .send_only(m, rest.to_vec())
                        .map(|()| Val::Bool(true))
                        .map_err(err_val),
                );
            }
            ("keep", [Val::Ref(r)]) => {
                reply.result(keep(*r).map(|()| Val::Bool(true)).map_err(err_val));
            }
            // Use the kept grant once, with send-only.
            ("use-kept", [Val::Symbol(m), rest @ ..]) => match kept() {
                Some(r) => reply.result(
                    r.send_only(m, rest.to_vec())
                        .map(|()| Val::Bool(true))
                        .map_err(err_val),
                ),
                None => reply.err(Val::str("nothing kept")),
            },
            // Hand the kept grant to `target` in a message `take(kept)`.
            ("pass-kept", [Val::Ref(target)]) => match kept() {
                Some(r) => reply.result(
                    target
                        .send_only("take", vec![r.val()])
                        .map(|()| Val::Bool(true))
                        .map_err(err_val),
                ),
                None => reply.err(Val::str("nothing kept")),
            },
            ("drop-kept", _) => match kept() {
                Some(r) => reply.result(
                    storage::delete("kept")
                        .and_then(|_| r.drop_ref())
                        .map(|()| Val::Bool(true))
                        .map_err(err_val),
                ),
                None => reply.err(Val::str("nothing kept")),
            },
            _ => reply.err(Val::str("no such method")),
        }
    }
}

caplet!(Benign);
