//! The editor in a vat: opens its granted file, saves what was typed,
//! says so plainly when the grant is revoked, opens a file the powerbox
//! grants, and one dropped on it.

use pola_desk_apps::EDITOR;
use pola_vat::{Val, Vat};

use crate::{
    Answer, Pane, Powerbox, call, click, dict, env, grant, has_node, input, revoke, spawn_app,
    text_file,
};

fn has(words: &[String], s: &str) -> bool {
    words.iter().any(|w| w == s)
}

#[test]
fn edits_and_saves_its_granted_file_until_revoked() {
    let vat = Vat::new("editor");
    let pane = Pane::default();
    let pane_ref = vat.spawn(pane.clone());
    let powerbox = vat.spawn(Powerbox::new(Some(Answer::Refuse)));
    let (file, contents) = text_file(&vat, "notes.txt", "first line\n");
    let (fwd, revoker) = grant(&vat, &file);
    let app = spawn_app(&vat, EDITOR.wasm);

    call(
        &vat,
        &app,
        "launch",
        vec![env(&pane_ref, &powerbox, vec![("file", fwd)])],
    );
    let w = pane.wait_for(0, |w| has(w, "notes.txt"));
    assert!(has(&w, "first line\n"), "{w:?}");
    let tree = pane.last().unwrap();
    assert!(has_node(&tree, "textarea", "text"));
    assert!(has_node(&tree, "button", "save"));
    assert!(has_node(&tree, "button", "open"));

    // Typing is tracked; Save writes the latest text.
    call(&vat, &app, "event", vec![input("text", "second draft")]);
    let n = pane.count();
    call(&vat, &app, "event", vec![click("save")]);
    pane.wait_for(n, |w| has(w, "Saved."));
    assert_eq!(*contents.lock().unwrap(), "second draft");

    // Revoked (as the audit view does): the next save says so plainly.
    revoke(&vat, &revoker);
    call(&vat, &app, "event", vec![input("text", "third draft")]);
    let n = pane.count();
    call(&vat, &app, "event", vec![click("save")]);
    pane.wait_for(n, |w| has(w, "This file is no longer available: revoked"));
    assert_eq!(*contents.lock().unwrap(), "second draft");
    vat.shutdown();
}

#[test]
fn without_a_file_it_asks_the_powerbox_and_opens_what_it_gets() {
    let vat = Vat::new("editor");
    let pane = Pane::default();
    let pane_ref = vat.spawn(pane.clone());
    let (file, contents) = text_file(&vat, "letter.txt", "Dear Ada,");
    let pb = Powerbox::new(Some(Answer::Grant(file)));
    let requests = pb.requests.clone();
    let powerbox = vat.spawn(pb);
    let app = spawn_app(&vat, EDITOR.wasm);

    call(
        &vat,
        &app,
        "launch",
        vec![env(&pane_ref, &powerbox, vec![])],
    );
    let w = pane.wait_for(0, |w| has(w, "No file to edit"));
    assert!(has(&w, "Open another file…"), "{w:?}");

    let n = pane.count();
    call(&vat, &app, "event", vec![click("open")]);
    let w = pane.wait_for(n, |w| has(w, "letter.txt"));
    assert!(has(&w, "Dear Ada,"), "{w:?}");
    {
        let r = requests.lock().unwrap();
        assert_eq!(r.len(), 1);
        let (kind, reason, options) = &r[0];
        assert_eq!(kind, &Val::sym("file"));
        assert_eq!(reason, &Val::str("Choose a file to edit"));
        assert_eq!(
            crate::keys(options).get("access"),
            Some(&Val::sym("read-write"))
        );
    }
    call(&vat, &app, "event", vec![input("text", "Dear Ada, hello.")]);
    let n = pane.count();
    call(&vat, &app, "event", vec![click("save")]);
    pane.wait_for(n, |w| has(w, "Saved."));
    assert_eq!(*contents.lock().unwrap(), "Dear Ada, hello.");
    vat.shutdown();
}

#[test]
fn a_refused_request_is_shown_and_a_dropped_file_is_opened() {
    let vat = Vat::new("editor");
    let pane = Pane::default();
    let pane_ref = vat.spawn(pane.clone());
    let powerbox = vat.spawn(Powerbox::new(Some(Answer::Refuse)));
    let app = spawn_app(&vat, EDITOR.wasm);
    call(
        &vat,
        &app,
        "launch",
        vec![env(&pane_ref, &powerbox, vec![])],
    );
    pane.wait_for(0, |w| has(w, "No file to edit"));

    let n = pane.count();
    call(&vat, &app, "event", vec![click("open")]);
    pane.wait_for(n, |w| has(w, "No file opened: the user refused"));

    let (file, _) = text_file(&vat, "dropped.txt", "from the drop");
    let drop = dict(vec![
        ("type", Val::sym("drop")),
        ("name", Val::str("dropped.txt")),
        ("file", Val::Ref(file)),
    ]);
    let n = pane.count();
    call(&vat, &app, "event", vec![drop]);
    let w = pane.wait_for(n, |w| has(w, "dropped.txt"));
    assert!(has(&w, "from the drop"), "{w:?}");

    // Malformed events and unknown methods change nothing and crash nothing.
    for bad in [
        Val::str("click"),
        dict(vec![("type", Val::sym("click"))]),
        Val::int(7i64),
    ] {
        call(&vat, &app, "event", vec![bad]);
    }
    let p = vat.send(&app, "format_disk", vec![]);
    assert!(vat.block_on(&p, crate::T).is_err());
    let p = vat.send(&app, "launch", vec![Val::str("not an env")]);
    assert!(vat.block_on(&p, crate::T).is_err());
    let w = pane.last_words();
    assert!(has(&w, "from the drop"), "{w:?}");
    vat.shutdown();
}
