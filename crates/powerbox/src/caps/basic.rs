//! The clock and randomness capabilities.

use std::time::{SystemTime, UNIX_EPOCH};

use pola_vat::{Object, Outcome, Turn, Val, error};

/// The most bytes one `bytes(N)` call gives.
pub const MAX_RANDOM: usize = 4096;

/// The clock: `now()` answers the wall-clock time in whole milliseconds
/// since 1970-01-01 UTC (negative if the host's clock is set before it).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClockCap;

impl Object for ClockCap {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, _args: Vec<Val>) -> Outcome {
        match method {
            "now" => {
                let ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
                    Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
                    Err(before) => {
                        i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |m| -m)
                    }
                };
                Ok(Val::int(ms))
            }
            _ => Err(error("no such method")),
        }
    }
}

/// Randomness: `bytes(N)` answers N bytes from the operating system's
/// random source (`getrandom`), for N from 0 to [`MAX_RANDOM`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomCap;

impl Object for RandomCap {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "bytes" => {
                let n = match args.first() {
                    Some(Val::Int(i)) => i.as_i64(),
                    _ => return Err(error("bytes(N): N must be a whole number")),
                };
                let n = n
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n <= MAX_RANDOM)
                    .ok_or_else(|| error("bytes(N): N must be from 0 to 4096"))?;
                let mut buf = vec![0u8; n];
                getrandom::fill(&mut buf)
                    .map_err(|_| error("the system's random source failed"))?;
                Ok(Val::bytes(buf))
            }
            _ => Err(error("no such method")),
        }
    }
}
