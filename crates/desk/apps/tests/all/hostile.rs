//! The hostile app in a vat, against a pane that accepts every tree (the
//! desk's checks of trees are the desk's tests): what the sandbox and the
//! vat stop must read `BLOCKED`, what the pane accepted must read
//! `ESCAPED` (the app must not hide an escape), and grants kept across a
//! relaunch must be dead.

use pola_desk_apps::HOSTILE;
use pola_vat::{Val, Vat};

use crate::{Pane, Powerbox, call, click, env, grant, has_node, revoke, spawn_app, text_file};

/// The items of the view's list (its text leaves).
fn list_items(tree: &Val) -> Vec<String> {
    fn find(v: &Val) -> Option<&[Val]> {
        let r = v.as_record()?;
        if r.label.as_symbol() == Some("list") {
            return Some(&r.fields);
        }
        r.fields.iter().find_map(find)
    }
    find(tree)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn line<'a>(w: &'a [String], key: &str) -> &'a str {
    w.iter()
        .find(|l| {
            l.split_once(": ")
                .is_some_and(|(_, rest)| rest.starts_with(key))
        })
        .map_or("", String::as_str)
}

/// Every attempt has reported (they are all listed, pending, at once),
/// and the grant kept for the next launch is known to be stored.
fn settled(w: &[String]) -> bool {
    !line(w, "spam the powerbox").is_empty()
        && w.iter().all(|l| !l.starts_with("PENDING"))
        && w.iter()
            .any(|l| l.starts_with("A grant is kept in storage"))
}

#[test]
fn every_attempt_is_reported_and_grants_die_with_the_launch() {
    let vat = Vat::new("hostile");
    let pane = Pane::default();
    let pane_ref = vat.spawn(pane.clone());
    // One request pending at a time, the rest refused at once.
    let powerbox = vat.spawn(Powerbox::new(None));
    let (file, _) = text_file(&vat, "id_rsa", "-----BEGIN SECRET-----");
    let (fwd, revoker) = grant(&vat, &file);
    let app = spawn_app(&vat, HOSTILE.wasm);

    call(
        &vat,
        &app,
        "launch",
        vec![env(&pane_ref, &powerbox, vec![("file", fwd)])],
    );
    let w = pane.wait_for(0, |w| w.iter().any(|s| s.contains("earlier attack")));
    assert!(line(&w, "old grant after relaunch").is_empty(), "{w:?}");
    assert!(
        w.iter()
            .any(|l| l.starts_with("No file grant from an earlier launch")),
        "{w:?}"
    );
    let tree = pane.last().unwrap();
    assert!(has_node(&tree, "button", "attack") && has_node(&tree, "button", "use-file"));

    // A legitimate use of the live grant.
    let n = pane.count();
    call(&vat, &app, "event", vec![click("use-file")]);
    let w = pane.wait_for(n, |w| line(w, "current file grant").starts_with("USED"));
    assert_eq!(
        line(&w, "current file grant"),
        "USED: current file grant: read 22 bytes"
    );

    let n = pane.count();
    call(&vat, &app, "event", vec![click("attack")]);
    let w = pane.wait_for(n, settled);
    for l in &w {
        eprintln!("{l}");
    }
    // Stopped by the pane object (no such methods) and by the sandbox.
    for key in [
        "forge the window title",
        "forge the window icon",
        "draw in the chrome",
    ] {
        assert_eq!(line(&w, key), format!("BLOCKED: {key}: no such method"));
    }
    let ten = line(&w, "a 10 MiB string");
    assert!(
        ten.starts_with("BLOCKED") && (ten.contains("too-large") || ten.contains("memory")),
        "{ten}"
    );
    let guess = line(&w, "guess capability handles");
    assert!(
        guess.starts_with("BLOCKED: guess capability handles: all ")
            && guess.ends_with("guesses unknown"),
        "{guess}"
    );
    assert_eq!(
        line(&w, "spam the powerbox"),
        "BLOCKED: spam the powerbox: 29 of 30 requests refused at once as too many"
    );
    assert!(line(&w, "read the Notes app's storage").starts_with("BLOCKED"));
    // Markup as text is reported with its payload, to be checked on the page.
    assert_eq!(
        line(&w, "script markup as text"),
        "SENT-AS-TEXT: script markup as text: <script>window.__pwned=1</script>"
    );
    assert!(line(&w, "image markup as text").starts_with("SENT-AS-TEXT"));
    // This pane accepts any tree, so the app must say the tree got through.
    for key in [
        "html node",
        "script node",
        "style node",
        "become a drop target",
        "iframe node",
        "button ID with quote and angle bracket",
        "tree of 5 001 nodes",
        "tree nested 40 deep",
        "300 KiB of text",
    ] {
        assert_eq!(
            line(&w, key),
            format!("ESCAPED: {key}: the desk accepted it")
        );
    }
    // Too big or too deep for the host's message decoder, or accepted.
    for key in ["tree of 100 000 nodes", "tree nested 1 000 deep"] {
        let l = line(&w, key);
        assert!(
            l.starts_with("BLOCKED") || l.starts_with("ESCAPED"),
            "{key}: {l}"
        );
    }
    // Every list item is a verdict (the page tests read them).
    let items = list_items(&pane.last().unwrap());
    assert!(items.len() > 20, "{items:?}");
    for l in &items {
        assert!(
            ["BLOCKED: ", "ESCAPED: ", "SENT-AS-TEXT: ", "USED: "]
                .iter()
                .any(|p| l.starts_with(p)),
            "{l}"
        );
    }

    // The window closes (its grants are revoked) and the app is launched
    // again with a new grant: the old one, in memory and in storage, is dead.
    revoke(&vat, &revoker);
    let (fwd2, revoker2) = grant(&vat, &file);
    let pane2 = Pane::default();
    let pane2_ref = vat.spawn(pane2.clone());
    call(
        &vat,
        &app,
        "launch",
        vec![env(&pane2_ref, &powerbox, vec![("file", fwd2)])],
    );
    let w = pane2.wait_for(0, |w| {
        line(w, "old grant after relaunch").starts_with("BLOCKED")
            && line(w, "grant kept in storage after relaunch").starts_with("BLOCKED")
    });
    assert_eq!(
        line(&w, "old grant after relaunch"),
        "BLOCKED: old grant after relaunch: revoked"
    );
    assert_eq!(
        line(&w, "grant kept in storage after relaunch"),
        "BLOCKED: grant kept in storage after relaunch: revoked"
    );
    // The new grant works until revoked (as from the audit view).
    let n = pane2.count();
    call(&vat, &app, "event", vec![click("use-file")]);
    pane2.wait_for(n, |w| line(w, "current file grant").starts_with("USED"));
    revoke(&vat, &revoker2);
    let n = pane2.count();
    call(&vat, &app, "event", vec![click("use-file")]);
    let w = pane2.wait_for(n, |w| line(w, "current file grant").starts_with("BLOCKED"));
    assert_eq!(
        line(&w, "current file grant"),
        "BLOCKED: current file grant: revoked"
    );
    vat.shutdown();
}
