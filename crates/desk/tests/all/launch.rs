//! Launch, use, revoke, close and relaunch through the HTTP API, with the
//! real stock editor and the hostile app.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::support::{Desktop, PATIENCE, fresh, texts};

fn grants(audit: &Json) -> Vec<Json> {
    audit["grants"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_editor_saves_until_revoked_and_a_relaunch_gets_a_fresh_grant() {
    let (_tmp, d) = fresh();
    let app = d.install_stock(&pola_desk_apps::EDITOR);
    let file = d.docs.join("notes.txt");
    let w = d.launch(&app);
    assert_eq!(d.state()["apps"][0]["running"], w.as_str());
    // Launching a running app answers its window.
    assert_eq!(d.launch(&app), w);
    d.wait_view(&w, "the file's text", |t| {
        t.iter().any(|s| s == "Welcome to the pola desk.\n")
    });
    d.type_and_click(&w, "text", "first save", "save");
    d.wait_view(&w, "Saved.", |t| t.iter().any(|s| s == "Saved."));
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "first save");

    // The audit lists the grant, used; the timeline has the write.
    let audit = d.audit(&app);
    let g = grants(&audit);
    assert_eq!(g.len(), 1, "{audit}");
    assert_eq!(g[0]["origin"], "install");
    assert_eq!(g[0]["live"], true);
    assert!(g[0]["uses"].as_u64().is_some_and(|n| n >= 1), "{audit}");
    assert!(g[0]["last_use"].is_u64());
    let gid = g[0]["id"].as_str().expect("a grant id").to_owned();
    let timeline = d.get("api/timeline").json();
    assert!(
        timeline["uses"]
            .as_array()
            .expect("uses")
            .iter()
            .any(|u| u["grant"] == gid.as_str()
                && u["method"] == "write"
                && u["app"] == app.as_str()),
        "{timeline}"
    );

    // Revoked: the next save fails and the file stays.
    assert_eq!(d.ok(&format!("api/grants/{gid}/revoke"), ""), json!({}));
    assert_eq!(grants(&d.audit(&app))[0]["live"], false);
    d.post(&format!("api/grants/{gid}/revoke"), "")
        .assert_error(404);
    d.type_and_click(&w, "text", "second save", "save");
    let t = d.wait_view(&w, "the revocation", |t| {
        t.iter().any(|s| s.contains("revoked"))
    });
    assert!(!t.iter().any(|s| s == "Saved."), "{t:?}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "first save");
    let uses = grants(&d.audit(&app))[0]["uses"].clone();

    // Closed: the window is gone; closing again is refused.
    assert_eq!(d.ok(&format!("api/windows/{w}/close"), ""), json!({}));
    assert!(d.window(&w).is_null());
    assert_eq!(d.state()["apps"][0]["running"], Json::Null);
    d.post(&format!("api/windows/{w}/close"), "")
        .assert_error(404);
    d.post(
        &format!("api/windows/{w}/event"),
        r#"{"type":"click","id":"save"}"#,
    )
    .assert_error(404);

    // Relaunched: a fresh grant, which works.
    let w2 = d.launch(&app);
    assert_ne!(w2, w);
    d.wait_view(&w2, "the file's text again", |t| {
        t.iter().any(|s| s == "first save")
    });
    d.type_and_click(&w2, "text", "third save", "save");
    d.wait_view(&w2, "Saved.", |t| t.iter().any(|s| s == "Saved."));
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "third save");
    let g = grants(&d.audit(&app));
    assert_eq!(g.len(), 2);
    let new = g
        .iter()
        .find(|x| x["id"] != gid.as_str())
        .expect("the new grant");
    assert_eq!(new["live"], true);
    let old = g
        .iter()
        .find(|x| x["id"] == gid.as_str())
        .expect("the old grant");
    assert_eq!(old["live"], false);
    assert_eq!(old["uses"], uses, "a revoked grant was used");

    // Revoke-all, then close: everything dead.
    d.ok(&format!("api/apps/{app}/revoke-all"), "");
    assert!(grants(&d.audit(&app)).iter().all(|g| g["live"] == false));
    d.type_and_click(&w2, "text", "fourth save", "save");
    d.wait_view(&w2, "the revocation", |t| {
        t.iter().any(|s| s.contains("revoked"))
    });
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "third save");
}

/// Waits until the hostile app's view satisfies `done`. The desk keeps
/// only the latest of views that come faster than 30 a second, so the
/// test waits for the view to be still for a moment; if it is not done
/// then, a click on "Use the file" makes the app draw its lines again.
fn settle(d: &Desktop, w: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mut seq = d.window(w)["seq"].clone();
        let mut since = Instant::now();
        while since.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(100));
            let now = d.window(w)["seq"].clone();
            if now != seq {
                seq = now;
                since = Instant::now();
            }
        }
        let t = texts(&d.window(w)["view"]);
        if done(&t) {
            return t;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "window {w}: the attack did not end; it shows {t:#?}"
        );
        d.click(w, "use-file");
    }
}

/// The lines of the hostile app's list.
fn verdicts(texts: &[String]) -> Vec<&String> {
    texts
        .iter()
        .filter(|s| {
            ["BLOCKED:", "ESCAPED:", "PENDING:", "USED:", "SENT-AS-TEXT:"]
                .iter()
                .any(|p| s.starts_with(p))
        })
        .collect()
}

#[test]
fn the_hostile_app_escapes_nothing() {
    let (_tmp, d) = fresh();
    std::fs::write(d.docs.join("notes.txt"), "a note\n").expect("write");
    // Given what a careless person might give it (not the web).
    let app = d.install_reviewed(
        &pola_desk_apps::HOSTILE,
        "Mallory",
        json!([
            {"name": "file", "grant": true, "path": "notes.txt"},
            {"name": "home", "grant": true, "path": ""},
            {"name": "clock", "grant": true},
            {"name": "random", "grant": true},
            {"name": "storage", "grant": true}]),
    );
    let w = d.launch(&app);
    d.wait_view(&w, "the hostile app", |t| t.iter().any(|s| s == "Attack"));
    d.click(&w, "attack");
    let done = |t: &[String]| {
        t.iter().any(|s| {
            s.starts_with("BLOCKED: tree of 100 000 nodes")
                || s.starts_with("ESCAPED: tree of 100 000 nodes")
        }) && t
            .iter()
            .any(|s| s.starts_with("BLOCKED: spam") || s.starts_with("ESCAPED: spam"))
            && t.iter()
                .any(|s| s.starts_with("BLOCKED: guess") || s.starts_with("ESCAPED: guess"))
            && !t.iter().any(|s| s.starts_with("PENDING"))
    };
    let texts = settle(&d, &w, done);
    let lines = verdicts(&texts);
    let escaped: Vec<&&String> = lines.iter().filter(|s| s.starts_with("ESCAPED")).collect();
    assert!(escaped.is_empty(), "escapes: {escaped:#?}");
    let blocked = lines.iter().filter(|s| s.starts_with("BLOCKED")).count();
    assert!(
        blocked >= 18,
        "only {blocked} attempts reported: {lines:#?}"
    );
    for key in [
        "forge the window title",
        "forge the window icon",
        "draw in the chrome",
        "html node",
        "script node",
        "style node",
        "become a drop target",
        "iframe node",
        "button ID with quote and angle bracket",
        "tree of 5 001 nodes",
        "tree nested 40 deep",
        "300 KiB of text",
        "a 10 MiB string",
        "tree nested 1 000 deep",
        "read the Notes app's storage",
        "spam the powerbox",
    ] {
        assert!(
            lines
                .iter()
                .any(|s| s.starts_with(&format!("BLOCKED: {key}"))),
            "no verdict for {key:?}: {lines:#?}"
        );
    }
    // The markup went as text, untouched.
    for (_, payload) in pola_desk_apps_payloads() {
        assert!(
            lines
                .iter()
                .any(|s| s.ends_with(payload) && s.starts_with("SENT-AS-TEXT")),
            "{payload}: {lines:#?}"
        );
    }
    // The spam left one prompt, the first request.
    let prompt = d.window(&w)["prompt"].clone();
    assert_eq!(prompt["reason"], "I need one more file", "{prompt}");
    // Storing a grant is refused by the sandbox or, if it was kept, it
    // must be dead at the next launch.
    let kept_in_storage = texts
        .iter()
        .any(|s| s.contains("A grant is kept in storage"));
    assert!(
        kept_in_storage
            || texts
                .iter()
                .any(|s| s.contains("The grant was not kept in storage")),
        "{texts:#?}"
    );

    // Closed with the prompt pending, then relaunched: what it kept is dead.
    let pid = prompt["id"].as_str().expect("a prompt id").to_owned();
    d.ok(&format!("api/windows/{w}/close"), "");
    d.post(
        &format!("api/prompts/{pid}/answer"),
        r#"{"grant":true,"path":"notes.txt"}"#,
    )
    .assert_error(404);
    let w2 = d.launch(&app);
    let texts = settle(&d, &w2, |t| {
        t.iter()
            .any(|s| s.contains("from an earlier launch") || s.contains("old grant after relaunch"))
            && t.iter().any(|s| {
                s.contains("by an earlier attack")
                    || s.contains("grant kept in storage after relaunch")
            })
            && !t.iter().any(|s| s.starts_with("PENDING"))
    });
    let lines = verdicts(&texts);
    let tried: Vec<&&String> = lines
        .iter()
        .filter(|s| s.contains("after relaunch"))
        .collect();
    assert!(tried.iter().all(|s| s.starts_with("BLOCKED")), "{tried:#?}");
    if kept_in_storage {
        assert!(
            tried
                .iter()
                .any(|s| s.contains("grant kept in storage after relaunch")),
            "{texts:#?}"
        );
    }
    // Which of the kept grants the app could try is said in the log.
    eprintln!("hostile relaunch: {tried:?}");
    // And the fresh grant works.
    d.click(&w2, "use-file");
    d.wait_view(&w2, "a use of the fresh grant", |t| {
        t.iter()
            .any(|s| s == "USED: current file grant: read 7 bytes")
    });
    // Revoked while it runs: its next use is refused.
    let live: Vec<String> = grants(&d.audit(&app))
        .iter()
        .filter(|g| g["live"] == true && g["kind"] == "file")
        .filter_map(|g| g["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(live.len(), 1, "one live file grant");
    d.ok(&format!("api/grants/{}/revoke", live[0]), "");
    d.click(&w2, "use-file");
    let t = settle(&d, &w2, |t| {
        t.iter()
            .any(|s| s.starts_with("BLOCKED: current file grant"))
    });
    assert!(
        t.iter()
            .any(|s| s.starts_with("BLOCKED: current file grant") && s.contains("revoked")),
        "{t:#?}"
    );
    // Nothing it did reached the documents.
    assert_eq!(
        std::fs::read_to_string(d.docs.join("notes.txt")).expect("read"),
        "a note\n"
    );
}

fn pola_desk_apps_payloads() -> [(&'static str, &'static str); 2] {
    [
        ("script markup as text", "<script>window.__pwned=1</script>"),
        (
            "image markup as text",
            "<img src=x onerror=\"window.__pwned=1\">",
        ),
    ]
}
