//! What survives stopping the desk and opening its folder again.

use serde_json::{Value as Json, json};

use crate::support::Desktop;

/// The apps as the page sees them, without what a run changes.
fn apps(d: &Desktop) -> Vec<Json> {
    let mut apps = d.state()["apps"].as_array().cloned().unwrap_or_default();
    for a in &mut apps {
        a["running"] = Json::Null;
    }
    apps
}

#[test]
fn installs_names_endowments_and_app_storage_survive_a_restart() {
    let tmp = tempfile::Builder::new()
        .prefix("pola-desk-persist-")
        .tempdir()
        .expect("a temporary folder");
    let d = Desktop::start(tmp.path());
    let editor = d.install_stock(&pola_desk_apps::EDITOR);
    let notes = d.install_stock(&pola_desk_apps::NOTES);
    std::fs::write(d.docs.join("other.txt"), "read me\n").expect("write");
    // An install narrowed by the user: the editor's code, reading one file.
    let viewer = d.install_reviewed(
        &pola_desk_apps::EDITOR,
        "Viewer",
        json!([{"name": "file", "grant": true, "access": "read", "path": "other.txt"}]),
    );
    d.ok(&format!("api/apps/{notes}/rename"), r#"{"pet":"Jottings"}"#);
    // A note, kept in the notes app's own storage.
    let w = d.launch(&notes);
    d.wait_view(&w, "the notes app", |t| t.iter().any(|s| s == "Add"));
    d.type_and_click(&w, "new", "remember the milk", "add");
    d.wait_view(&w, "the note", |t| {
        t.iter().any(|s| s == "remember the milk")
    });
    // A window left open, with a grant, at the stop.
    let we = d.launch(&editor);
    d.wait_view(&we, "the editor", |t| t.iter().any(|s| s == "Save"));
    let before = apps(&d);
    let endowments: Vec<Json> = [&editor, &notes, &viewer]
        .iter()
        .map(|a| d.audit(a)["endowments"].clone())
        .collect();
    let grants_before = d.audit(&editor)["grants"].clone();
    assert!(
        grants_before
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["live"] == true))
    );
    let token = d.token.clone();
    d.stop();

    let d = Desktop::start(tmp.path());
    assert_eq!(d.token, token, "the desk's URL changed");
    assert_eq!(apps(&d), before);
    assert!(d.state()["windows"].as_array().is_some_and(Vec::is_empty));
    let after: Vec<Json> = [&editor, &notes, &viewer]
        .iter()
        .map(|a| d.audit(a)["endowments"].clone())
        .collect();
    assert_eq!(after, endowments);
    assert_eq!(
        endowments[2],
        json!([{"name": "file", "words": "Read the file \"other.txt\""}])
    );
    // The grants of the first run are listed, and dead.
    let grants = d.audit(&editor)["grants"].clone();
    let ids = |g: &Json| -> Vec<Json> {
        g.as_array()
            .map(|g| g.iter().map(|x| x["id"].clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids(&grants), ids(&grants_before));
    assert!(
        grants
            .as_array()
            .is_some_and(|g| g.iter().all(|g| g["live"] == false)),
        "{grants}"
    );
    // The note is there.
    let w = d.launch(&notes);
    d.wait_view(&w, "the note after the restart", |t| {
        t.iter().any(|s| s == "remember the milk")
    });
    assert_eq!(d.app_id("Jottings"), notes);
    // The narrowed install still reads its file, and only reads it.
    let wv = d.launch(&viewer);
    d.wait_view(&wv, "the viewer's file", |t| {
        t.iter().any(|s| s == "read me\n")
    });
    d.type_and_click(&wv, "text", "nope", "save");
    d.wait_view(&wv, "a refused save", |t| {
        t.iter().any(|s| s.starts_with("Could not save"))
    });
    assert_eq!(
        std::fs::read_to_string(d.docs.join("other.txt")).expect("read"),
        "read me\n"
    );
    // A fresh grant for the editor, live.
    let we = d.launch(&editor);
    d.wait_view(&we, "the editor", |t| t.iter().any(|s| s == "Save"));
    let grants = d.audit(&editor)["grants"].clone();
    assert_eq!(
        grants
            .as_array()
            .map(|g| g.iter().filter(|g| g["live"] == true).count()),
        Some(1),
        "{grants}"
    );
    d.stop();
}
