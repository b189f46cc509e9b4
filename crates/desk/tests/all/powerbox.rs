//! The powerbox at run time, through the editor's "Open another file…".

use serde_json::json;

use crate::support::fresh;

#[test]
fn the_editors_requests_are_answered_refused_or_dropped_with_the_window() {
    let (_tmp, d) = fresh();
    let app = d.install_stock(&pola_desk_apps::EDITOR);
    let docs = &d.docs;
    std::fs::write(docs.join("other.txt"), "the other file\n").expect("write");
    std::fs::create_dir(docs.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/passwd", docs.join("link.txt")).expect("link");
    std::os::unix::fs::symlink("/etc", docs.join("etcdir")).expect("link");
    let w = d.launch(&app);
    d.wait_view(&w, "the editor", |t| t.iter().any(|s| s == "Save"));

    d.click(&w, "open");
    let prompt = d.wait_prompt(&w);
    assert_eq!(prompt["kind"], "file");
    assert_eq!(prompt["access"], "read-write");
    assert_eq!(prompt["reason"], "Choose a file to edit");
    let pid = prompt["id"].as_str().expect("a prompt id").to_owned();
    let answer = format!("api/prompts/{pid}/answer");

    // Answers that do not fit are refused and the prompt stays.
    let before = d.snapshot();
    for a in [
        json!({"grant": true, "path": "../x"}),
        json!({"grant": true, "path": "../state/state.redb"}),
        json!({"grant": true, "path": "/etc/passwd"}),
        json!({"grant": true, "path": "link.txt"}),
        json!({"grant": true, "path": "etcdir/passwd"}),
        json!({"grant": true, "path": "sub"}),
        json!({"grant": true, "path": "nope.txt"}),
        json!({"grant": true, "path": ""}),
        json!({"grant": true, "path": 5}),
        json!({"grant": true}),
        json!({"grant": true, "path": "other.txt", "access": "admin"}),
        json!({"grant": true, "path": "other.txt", "offer": "x", "access": "write"}),
    ] {
        d.post(&answer, &a.to_string()).assert_error(400);
        assert_eq!(d.window(&w)["prompt"]["id"], pid.as_str(), "{a}");
    }
    assert_eq!(before, d.snapshot(), "a refused answer changed the desk");

    // A good answer opens the file, as a grant of origin "request".
    assert_eq!(
        d.ok(
            &answer,
            &json!({"grant": true, "path": "other.txt"}).to_string()
        ),
        json!({})
    );
    d.wait_view(&w, "the chosen file", |t| {
        t.iter().any(|s| s == "other.txt") && t.iter().any(|s| s == "the other file\n")
    });
    assert!(d.window(&w)["prompt"].is_null());
    d.post(&answer, r#"{"grant":true,"path":"other.txt"}"#)
        .assert_error(404);
    d.type_and_click(&w, "text", "changed through the powerbox", "save");
    d.wait_view(&w, "Saved.", |t| t.iter().any(|s| s == "Saved."));
    assert_eq!(
        std::fs::read_to_string(docs.join("other.txt")).expect("read"),
        "changed through the powerbox"
    );
    let audit = d.audit(&app);
    let req: Vec<_> = audit["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .filter(|g| g["origin"] == "request")
        .collect();
    assert_eq!(req.len(), 1, "{audit}");
    assert_eq!(req[0]["words"], "Read and change the file \"other.txt\"");
    assert_eq!(req[0]["live"], true);

    // Refused: the app's promise breaks with the user's refusal.
    d.click(&w, "open");
    let pid = d.wait_prompt(&w)["id"].as_str().expect("id").to_owned();
    d.ok(&format!("api/prompts/{pid}/answer"), r#"{"grant":false}"#);
    d.wait_view(&w, "the refusal", |t| {
        t.iter().any(|s| s == "No file opened: the user refused")
    });
    assert!(d.window(&w)["prompt"].is_null());

    // Pending when the window closes: the prompt goes with it.
    d.click(&w, "open");
    let pid = d.wait_prompt(&w)["id"].as_str().expect("id").to_owned();
    d.ok(&format!("api/windows/{w}/close"), "");
    d.post(
        &format!("api/prompts/{pid}/answer"),
        r#"{"grant":true,"path":"other.txt"}"#,
    )
    .assert_error(404);
    let audit = d.audit(&app);
    assert!(
        audit["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .all(|g| g["live"] == false),
        "{audit}"
    );
    // A new launch has a new powerbox that works.
    let w2 = d.launch(&app);
    d.wait_view(&w2, "the editor", |t| t.iter().any(|s| s == "Save"));
    d.click(&w2, "open");
    let pid = d.wait_prompt(&w2)["id"].as_str().expect("id").to_owned();
    d.ok(
        &format!("api/prompts/{pid}/answer"),
        r#"{"grant":true,"path":"other.txt","access":"read"}"#,
    );
    d.wait_view(&w2, "the file, read only", |t| {
        t.iter().any(|s| s == "changed through the powerbox")
    });
    d.type_and_click(&w2, "text", "must not be written", "save");
    d.wait_view(&w2, "a refused save", |t| {
        t.iter().any(|s| s.starts_with("Could not save"))
    });
    assert_eq!(
        std::fs::read_to_string(docs.join("other.txt")).expect("read"),
        "changed through the powerbox"
    );
}
