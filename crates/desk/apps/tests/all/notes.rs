//! The notes app in a persistent vat: notes added are kept in its caplet
//! storage, seen by a fresh instance after the vat is reopened (as after a
//! desk restart), and can be deleted.

use pola_desk_apps::NOTES;
use pola_sandbox::vat::{CapletCode, CapletObject, Policy, kinds};
use pola_vat::backend::MemoryBackend;
use pola_vat::persist::Kinds;
use pola_vat::{Ref, Val, Vat, error};

use crate::{Answer, Pane, Powerbox, call, click, env, has_node, input, sandbox};

fn open(backend: &MemoryBackend) -> Vat {
    let mut k = Kinds::new();
    kinds(&mut k, sandbox());
    Vat::open("notes", backend.clone(), k).unwrap()
}

/// Launches the app rooted as "notes" with a fresh pane; answers the pane.
fn launch(vat: &Vat, app: &Ref) -> Pane {
    let pane = Pane::default();
    let pane_ref = vat.spawn(pane.clone());
    let powerbox = vat.spawn(Powerbox::new(Some(Answer::Refuse)));
    call(vat, app, "launch", vec![env(&pane_ref, &powerbox, vec![])]);
    pane.wait_for(0, |w| w.iter().any(|s| s == "Notes"));
    pane
}

fn event(vat: &Vat, app: &Ref, pane: &Pane, ev: Val) -> Vec<String> {
    let n = pane.count();
    call(vat, app, "event", vec![ev]);
    pane.wait_for(n, |_| true)
}

#[test]
fn notes_survive_a_restart_and_can_be_deleted() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let made = vat.run(|cx| {
        let code = CapletCode::load(sandbox(), NOTES.wasm).map_err(|e| error(e.to_string()))?;
        let code = cx.spawn(code);
        let app = cx.spawn(CapletObject::persistent(code, Policy::Persistent));
        cx.set_root("notes", Some(&app))?;
        Ok(Val::Bool(true))
    });
    vat.block_on(&made, crate::T).unwrap();
    let app = vat.root("notes").unwrap();

    let pane = launch(&vat, &app);
    assert!(pane.last_words().iter().any(|s| s == "No notes yet."));
    let tree = pane.last().unwrap();
    assert!(has_node(&tree, "input", "new") && has_node(&tree, "button", "add"));

    // An empty note is refused with a plain word; real ones are listed.
    let w = event(&vat, &app, &pane, click("add"));
    assert!(w.iter().any(|s| s == "Type a note first."), "{w:?}");
    for note in ["buy milk", "call Ada"] {
        call(&vat, &app, "event", vec![input("new", note)]);
        let w = event(&vat, &app, &pane, click("add"));
        assert!(w.iter().any(|s| s == note), "{w:?}");
    }
    // The input is emptied after an add: the note is shown once, listed.
    let w = pane.last_words();
    assert_eq!(w.iter().filter(|s| *s == "call Ada").count(), 1, "{w:?}");
    vat.shutdown();

    // A desk restart: every object revived from the store, the app with a
    // fresh instance (its memory gone) and its storage back.
    let vat = open(&backend);
    let app = vat.root("notes").unwrap();
    let pane = launch(&vat, &app);
    let w = pane.last_words();
    assert!(
        w.iter().any(|s| s == "buy milk") && w.iter().any(|s| s == "call Ada"),
        "{w:?}"
    );
    assert!(has_node(&pane.last().unwrap(), "button", "delete-1"));
    let w = event(&vat, &app, &pane, click("delete-0"));
    assert!(
        !w.iter().any(|s| s == "buy milk") && w.iter().any(|s| s == "call Ada"),
        "{w:?}"
    );
    // Deleting what is not there, or a malformed ID, changes nothing.
    for id in [
        "delete-7",
        "delete-",
        "delete--1",
        "delete-99999999999999999999999",
    ] {
        let w = event(&vat, &app, &pane, click(id));
        assert!(w.iter().any(|s| s == "call Ada"), "{id}: {w:?}");
    }
    vat.shutdown();

    let vat = open(&backend);
    let app = vat.root("notes").unwrap();
    let pane = launch(&vat, &app);
    let w = pane.last_words();
    assert!(
        !w.iter().any(|s| s == "buy milk") && w.iter().any(|s| s == "call Ada"),
        "{w:?}"
    );
    vat.shutdown();
}

#[test]
fn overlong_notes_are_refused() {
    let vat = Vat::new("notes");
    let app = crate::spawn_app(&vat, NOTES.wasm);
    let pane = launch(&vat, &app);
    call(&vat, &app, "event", vec![input("new", &"x".repeat(281))]);
    let w = event(&vat, &app, &pane, click("add"));
    assert!(
        w.iter()
            .any(|s| s == "A note holds at most 280 characters."),
        "{w:?}"
    );
    assert!(w.iter().any(|s| s == "No notes yet."), "{w:?}");
    vat.shutdown();
}
