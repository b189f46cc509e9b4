//! The clock in a vat: reads its granted clock at launch and on Refresh.

use std::sync::atomic::{AtomicI64, Ordering};

use pola_desk_apps::STOCK;
use pola_vat::{Object, Outcome, Turn, Val, Vat, error};

use crate::{Answer, Pane, Powerbox, call, click, env, has_node, spawn_app};

/// A clock that moves on by one second and a bit at each reading.
struct Clock(AtomicI64);

impl Object for Clock {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, _args: Vec<Val>) -> Outcome {
        match method {
            "now" => Ok(Val::int(self.0.fetch_add(1_250, Ordering::SeqCst))),
            _ => Err(error("no such method")),
        }
    }
}

#[test]
fn shows_the_utc_time_and_refreshes() {
    let vat = Vat::new("clock");
    let pane = Pane::default();
    let pane_ref = vat.spawn(pane.clone());
    let powerbox = vat.spawn(Powerbox::new(Some(Answer::Refuse)));
    // 2026-12-03T12:34:56Z.
    let clock = vat.spawn(Clock(AtomicI64::new(1_796_301_296_000)));
    let app = spawn_app(&vat, STOCK[2].wasm);
    call(
        &vat,
        &app,
        "launch",
        vec![env(&pane_ref, &powerbox, vec![("clock", clock)])],
    );
    let w = pane.wait_for(0, |w| w.iter().any(|s| s == "12:34:56"));
    assert!(w.iter().any(|s| s == "Thursday, 3 December 2026"), "{w:?}");
    assert!(has_node(&pane.last().unwrap(), "button", "refresh"));
    let n = pane.count();
    call(&vat, &app, "event", vec![click("refresh")]);
    pane.wait_for(n, |w| w.iter().any(|s| s == "12:34:57"));
    vat.shutdown();
}

#[test]
fn without_a_clock_it_says_so() {
    let vat = Vat::new("clock");
    let pane = Pane::default();
    let pane_ref = vat.spawn(pane.clone());
    let powerbox = vat.spawn(Powerbox::new(Some(Answer::Refuse)));
    let app = spawn_app(&vat, STOCK[2].wasm);
    call(
        &vat,
        &app,
        "launch",
        vec![env(&pane_ref, &powerbox, vec![])],
    );
    pane.wait_for(0, |w| {
        w.iter().any(|s| s == "This clock was not given the time.")
    });
    vat.shutdown();
}
