//! A well-behaved caplet: uses the capabilities it is handed, and nothing
//! else.
#![deny(unsafe_code)]

use pola_caplet_sdk::{Caplet, Ref, Reply, Val, caplet};

/// The benign object: remembers one granted reference.
#[derive(Default)]
pub struct Benign {
    kept: Option<Ref>,
    calls: i64,
}

fn err_val(e: pola_caplet_sdk::Error) -> Val {
    Val::str(e.name())
}

impl Caplet for Benign {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        self.calls += 1;
        match (method, args.as_slice()) {
            ("hello", _) => reply.ok(Val::str("hi")),
            ("calls", _) => reply.ok(Val::int(self.calls)),
            // Send `method(rest…)` to `target` and answer with its answer.
            ("call", [Val::Ref(target), Val::Symbol(m), rest @ ..]) => {
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
                            // `resolver` moved into the reaction that was
                            // discarded; the host breaks the promise.
                            let _ = e;
                        }
                    }
                    Err(e) => reply.err(err_val(e)),
                }
            }
            ("tell", [Val::Ref(target), Val::Symbol(m), rest @ ..]) => {
                reply.result(
                    target
                        .send_only(m, rest.to_vec())
                        .map(|()| Val::Bool(true))
                        .map_err(err_val),
                );
            }
            ("keep", [Val::Ref(r)]) => {
                self.kept = Some(*r);
                reply.ok(Val::Bool(true));
            }
            // Use the kept grant once, with send-only.
            ("use-kept", [Val::Symbol(m), rest @ ..]) => match self.kept {
                Some(r) => reply.result(
                    r.send_only(m, rest.to_vec())
                        .map(|()| Val::Bool(true))
                        .map_err(err_val),
                ),
                None => reply.err(Val::str("nothing kept")),
            },
            // Hand the kept grant to `target` in a message `take(kept)`.
            ("pass-kept", [Val::Ref(target)]) => match self.kept {
                Some(r) => reply.result(
                    target
                        .send_only("take", vec![r.val()])
                        .map(|()| Val::Bool(true))
                        .map_err(err_val),
                ),
                None => reply.err(Val::str("nothing kept")),
            },
            ("drop-kept", _) => match self.kept.take() {
                Some(r) => reply.result(r.drop_ref().map(|()| Val::Bool(true)).map_err(err_val)),
                None => reply.err(Val::str("nothing kept")),
            },
            _ => reply.err(Val::str("no such method")),
        }
    }
}

caplet!(Benign);
