//! Every app is a confined caplet module that loads in the sandbox.

use pola_desk_apps::{HOSTILE, STOCK};

#[test]
fn every_app_is_confined_and_loads() {
    let ids: Vec<_> = STOCK.iter().map(|a| a.id).collect();
    assert_eq!(ids, ["editor", "notes", "clock"]);
    for app in STOCK.iter().chain([&HOSTILE]) {
        let report = pola_sandbox::check(app.wasm).unwrap();
        assert!(
            report.confined,
            "{}: {:?} (imports {:?})",
            app.id, report.problems, report.imports
        );
        assert!(
            report.imports.iter().all(|i| i.module == "pola"),
            "{}: {:?}",
            app.id,
            report.imports
        );
        crate::module(app.wasm);
    }
}

#[test]
fn the_modules_are_small() {
    // The caplets profile is size-optimised; a regression (say, a debug
    // build or a heavy dependency) would show here.
    for app in STOCK.iter().chain([&HOSTILE]) {
        assert!(
            app.wasm.len() < 512 << 10,
            "{}: {} bytes",
            app.id,
            app.wasm.len()
        );
    }
}
