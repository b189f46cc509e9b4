//! Test objects shared by the modules.

use std::time::Duration;

use pola_vat::{Object, Outcome, Ref, Turn, Val, error};

/// Generous wait: a correct run settles in microseconds.
pub const T: Duration = Duration::from_secs(20);

pub fn int(v: &Val) -> i64 {
    v.as_i64().unwrap_or(i64::MIN)
}

/// A counter whose state changes only by `become`.
pub struct Counter(pub i64);

impl Object for Counter {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "inc" => {
                cx.become_(Counter(self.0 + 1))?;
                Ok(Val::int(self.0 + 1))
            }
            "add" => {
                let n = args
                    .first()
                    .and_then(Val::as_i64)
                    .ok_or_else(|| error("bad arg"))?;
                cx.become_(Counter(self.0 + n))?;
                Ok(Val::int(self.0 + n))
            }
            "get" => Ok(Val::int(self.0)),
            "fail" => Err(error("counter refuses")),
            "inc_then_fail" => {
                cx.become_(Counter(self.0 + 1))?;
                Err(error("counter refuses after inc"))
            }
            _ => Err(error("no such method")),
        }
    }
}

/// A log of values, appended with `add`, read with `get`.
#[derive(Default)]
pub struct Log(pub Vec<Val>);

impl Object for Log {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "add" => {
                let mut next = self.0.clone();
                next.extend(args);
                cx.become_(Log(next))?;
                Ok(Val::null())
            }
            "get" => Ok(Val::List(self.0.clone())),
            "len" => Ok(Val::int(self.0.len() as i64)),
            _ => Err(error("no such method")),
        }
    }
}

/// Makes counters: `make(start)` returns a new counter; `next()` on a made
/// counter maker returns another maker (for pipelining chains).
pub struct Maker;

impl Object for Maker {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "make" => {
                let start = args.first().and_then(Val::as_i64).unwrap_or(0);
                Ok(Val::Ref(cx.spawn(Counter(start))))
            }
            "next" => Ok(Val::Ref(cx.spawn(Maker))),
            "data" => Ok(Val::int(42i64)),
            _ => Err(error("no such method")),
        }
    }
}

pub fn list_ints(v: &Val) -> Vec<i64> {
    v.as_list().unwrap_or(&[]).iter().map(int).collect()
}

pub fn as_ref(v: &Val) -> Ref {
    match v {
        Val::Ref(r) => r.clone(),
        other => panic!("expected a ref, got {other:?}"),
    }
}

/// An integer value.
pub fn n(i: i64) -> Val {
    Val::int(i)
}
