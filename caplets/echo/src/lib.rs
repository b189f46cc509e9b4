//! The smallest useful caplet: answers `echo` with its arguments and `add`
//! with a sum. Used by the benchmarks.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use pola_caplet_sdk::{Caplet, Reply, Val, caplet};

/// The echo object.
#[derive(Default)]
pub struct Echo;

impl Caplet for Echo {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "echo" => reply.ok(Val::List(args)),
            "add" => {
                let sum = args
                    .iter()
                    .try_fold(0i64, |acc, a| a.as_i64().and_then(|x| acc.checked_add(x)));
                match sum {
                    Some(s) => reply.ok(Val::int(s)),
                    None => reply.err(Val::str("bad arguments")),
                }
            }
            "ping" => match args.first().and_then(Val::as_ref) {
                // Send one message to the given reference (caplet -> host).
                Some(r) => reply.result(
                    r.send_only("pong", Vec::new())
                        .map(|()| Val::Bool(true))
                        .map_err(|e| Val::str(e.name())),
                ),
                None => reply.err(Val::str("bad arguments")),
            },
            _ => reply.err(Val::str("no such method")),
        }
    }
}

caplet!(Echo);
