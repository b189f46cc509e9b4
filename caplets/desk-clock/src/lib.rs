//! The desk's clock: shows the time in UTC, read from the clock it was
//! granted (the request `clock`: `now()` answers milliseconds since 1970).
//! A caplet has no timers, so it reads the clock at launch and when the
//! user clicks "Refresh".
//!
//! The app protocol is `crates/desk/PROTOCOL.md`, section 2.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use pola_caplet_sdk::view::{self, Env, Event, text};
use pola_caplet_sdk::{Caplet, Ref, Reply, Val, caplet};

/// The clock of one launch.
#[derive(Default)]
pub struct Clock {
    pane: Option<Ref>,
    clock: Option<Ref>,
    /// What to show under the heading: the time, or why there is none.
    shown: Shown,
}

#[derive(Default)]
enum Shown {
    #[default]
    Asking,
    Time(i64),
    Problem(String),
}

const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The civil date (year, month 1–12, day 1–31) of day `days` since
/// 1970-01-01 in the proleptic Gregorian calendar. Counts in 400-year eras
/// of 146 097 days, each starting on a 1 March, so the leap day is the
/// last day of its year.
pub fn civil(days: i64) -> (i64, u32, u32) {
    // 1970-01-01 is day 719 468 after 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March year
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `("HH:MM:SS", "Weekday, D Month YYYY")` in UTC for `ms` milliseconds
/// since 1970 (negative values are before 1970).
pub fn format_utc(ms: i64) -> (String, String) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    let time = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    let (y, m, d) = civil(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m as usize).saturating_sub(1) % 12];
    (time, format!("{weekday}, {d} {month} {y}"))
}

impl Clock {
    fn draw(&self) {
        let Some(pane) = self.pane else {
            return;
        };
        let mut items = vec![view::heading(1, [text("Clock")])];
        match &self.shown {
            Shown::Asking => items.push(view::para([text("Reading the clock…")])),
            Shown::Time(ms) => {
                let (time, date) = format_utc(*ms);
                items.push(view::heading(2, [text(time), text(" UTC")]));
                items.push(view::para([text(date)]));
            }
            Shown::Problem(p) => items.push(view::para([text(p)])),
        }
        items.push(view::button("refresh", "Refresh"));
        let _ = view::show(pane, view::column(items));
    }

    fn read(&mut self) {
        let Some(clock) = self.clock else {
            self.shown = Shown::Problem("This clock was not given the time.".to_owned());
            return self.draw();
        };
        let asked = view::ask(clock, "now", vec![], |c: &mut Clock, r| {
            c.shown = match r {
                Ok(v) => match v.as_i64() {
                    Some(ms) => Shown::Time(ms),
                    None => Shown::Problem("The clock gave no time.".to_owned()),
                },
                Err(reason) => Shown::Problem(format!(
                    "Cannot read the clock: {}",
                    view::reason_text(&reason)
                )),
            };
            c.draw();
        });
        if let Err(e) = asked {
            self.shown = Shown::Problem(format!("Cannot read the clock: {e}"));
        }
        self.draw();
    }
}

impl Caplet for Clock {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "launch" => {
                let Some(env) = Env::parse(&args) else {
                    return reply.err(text("launch expects one environment dictionary"));
                };
                *self = Clock {
                    pane: Some(env.pane),
                    clock: env.grant("clock"),
                    shown: Shown::Asking,
                };
                self.read();
                reply.ok(Val::Bool(true));
            }
            "event" => {
                if let Some(Event::Click { id }) = Event::parse(&args)
                    && id == "refresh"
                {
                    self.read();
                }
                reply.ok(Val::Bool(true));
            }
            _ => reply.err(text("no such method")),
        }
    }
}

caplet!(Clock);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(
            format_utc(0),
            ("00:00:00".into(), "Thursday, 1 January 1970".into())
        );
        // 2000-02-29T23:59:59.999Z, a leap day in a century leap year.
        assert_eq!(
            format_utc(951_868_799_999),
            ("23:59:59".into(), "Tuesday, 29 February 2000".into())
        );
        // 2026-12-03T12:34:56Z.
        assert_eq!(
            format_utc(1_796_301_296_000),
            ("12:34:56".into(), "Thursday, 3 December 2026".into())
        );
        // One millisecond before 1970.
        assert_eq!(
            format_utc(-1),
            ("23:59:59".into(), "Wednesday, 31 December 1969".into())
        );
        // 1900 was not a leap year: 1 March follows 28 February.
        assert_eq!(civil(-25_508), (1900, 3, 1));
        assert_eq!(civil(-25_509), (1900, 2, 28));
    }

    #[test]
    fn extreme_times_do_not_panic() {
        for ms in [i64::MIN, i64::MAX, i64::MIN + 1, -86_400_000] {
            let _ = format_utc(ms);
        }
    }
}
