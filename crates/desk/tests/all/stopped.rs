//! An app that holds the desk's vat turn after turn (no single turn long)
//! is stopped by its budget across turns: the window says so, the other
//! apps keep working, and "Restart" gives it a fresh start with its
//! storage; closing a window ends whatever its app was still doing.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::support::{Desktop, fresh};

const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until window `w` says its app was stopped; the reason.
fn wait_stopped(d: &Desktop, w: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(why) = d.window(w)["stopped"].as_str() {
            return why.to_owned();
        }
        assert!(
            start.elapsed() < PATIENCE,
            "window {w}: the app was not stopped: {}",
            d.window(w)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_app_that_holds_the_vat_is_stopped_said_and_restarted_fresh() {
    let (_tmp, d) = fresh();
    let editor = d.install_stock(&pola_desk_apps::EDITOR);
    let bad = d.install_reviewed(&pola_desk_apps::HOSTILE, "Mallory", json!([]));
    let e = d.launch(&editor);
    d.wait_view(&e, "the file's text", |t| {
        t.iter().any(|s| s == "Welcome to the pola desk.\n")
    });
    let w = d.launch(&bad);
    d.wait_view(&w, "the hostile app", |t| t.iter().any(|s| s == "Spin"));
    assert_eq!(d.window(&w)["stopped"], Json::Null);

    let started = Instant::now();
    d.click(&w, "spin");
    let why = wait_stopped(&d, &w);
    let took = started.elapsed();
    eprintln!("spin: stopped after {took:?}: {why}");
    assert_eq!(
        why,
        "this caplet was stopped: it used more than its CPU budget"
    );
    // The other app answered meanwhile and still does.
    d.type_and_click(&e, "text", "saved beside a stopped app", "save");
    d.wait_view(&e, "Saved.", |t| t.iter().any(|s| s == "Saved."));

    // A restart: a new window, the app fresh and drawing again.
    let r = d.ok(&format!("api/windows/{w}/restart"), "");
    let w2 = r["window"].as_str().expect("a window").to_owned();
    assert_ne!(w2, w);
    assert!(d.window(&w).is_null());
    assert_eq!(d.window(&w2)["stopped"], Json::Null);
    d.wait_view(&w2, "the hostile app again", |t| {
        t.iter().any(|s| s == "Spin")
    });
    d.post(&format!("api/windows/{w}/restart"), "")
        .assert_error(404);

    // Spinning again, then closed at once: the loop ends with the window,
    // so the relaunched app is never stopped by what it did before.
    d.click(&w2, "spin");
    std::thread::sleep(Duration::from_millis(200));
    d.ok(&format!("api/windows/{w2}/close"), "");
    let w3 = d.launch(&bad);
    d.wait_view(&w3, "the hostile app once more", |t| {
        t.iter().any(|s| s == "Spin")
    });
    // Longer than the first loop took to be stopped.
    std::thread::sleep((took * 2).max(Duration::from_secs(3)));
    assert_eq!(d.window(&w3)["stopped"], Json::Null, "the old loop went on");
}

#[test]
fn the_browser_is_not_restarted() {
    let (_tmp, d) = fresh();
    let w = d.launch("browser");
    let why = d
        .post(&format!("api/windows/{w}/restart"), "")
        .assert_error(400);
    assert!(why.contains("reload"), "{why}");
}
