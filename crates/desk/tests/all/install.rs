//! Installing through `POST api/packages` and the install dialog's
//! decisions: hostile packages refused, Granma's warnings, narrowing,
//! refusing, and decisions that would widen or escape.

use std::collections::BTreeSet;

use pola_desk_apps::{EDITOR, HOSTILE, NOTES};
use pola_powerbox::package::Manifest;
use pola_syrup::Value;
use serde_json::{Value as Json, json};

use crate::support::{Desktop, fresh, pack};

/// A package record written by hand (so it can break every rule `pack`
/// keeps).
fn package(manifest: Value, icon: Value, wasm: &[u8]) -> Vec<u8> {
    pola_syrup::encode(&Value::record(
        "pola-package",
        vec![
            Value::int(1i64),
            manifest,
            icon,
            Value::bytes(wasm.to_vec()),
        ],
    ))
}

fn editor_manifest() -> Manifest {
    Manifest::from_toml(EDITOR.manifest).expect("the editor's manifest")
}

fn png(width: u32, height: u32, noise: bool) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    let img = image::RgbaImage::from_fn(width, height, |_, _| {
        if noise {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            image::Rgba(x.to_le_bytes())
        } else {
            image::Rgba([200, 30, 30, 255])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("a PNG");
    out.into_inner()
}

/// Posts `bytes` as a package; checks it is refused with plain words and
/// that nothing changed.
fn refused(d: &Desktop, what: &str, bytes: &[u8]) -> String {
    let before = d.snapshot();
    let r = d.post_bytes("api/packages", bytes, "application/octet-stream");
    assert_eq!(r.status, 400, "{what}: {}", r.text());
    let words = r.assert_error(400);
    assert!(
        !words.chars().any(|c| c.is_control()
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)),
        "{what}: the refusal carries a control character: {words:?}"
    );
    assert_eq!(before, d.snapshot(), "{what}: the desk changed");
    words
}

#[test]
fn hostile_packages_are_refused_and_install_nothing() {
    let (_tmp, d) = fresh();
    let good = pack(&EDITOR);
    // A control: the untouched package is reviewed.
    let r = d.post_bytes("api/packages", &good, "application/octet-stream");
    assert_eq!(r.status, 200, "{}", r.text());
    let rid = r.json()["id"].as_str().expect("a review id").to_owned();
    assert_eq!(d.ok(&format!("api/reviews/{rid}/cancel"), ""), json!({}));

    refused(&d, "empty", b"");
    refused(&d, "truncated", &good[..good.len() / 2]);
    refused(&d, "one byte short", &good[..good.len() - 1]);
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"3:abc");
    refused(&d, "trailing bytes", &trailing);
    refused(&d, "not Syrup", b"hello, I am a package, trust me");
    refused(&d, "JSON", br#"{"name":"Editor","wasm":"AGFzbQ=="}"#);
    refused(&d, "a huge length prefix", b"99999999999999999999:abc");

    let manifest = editor_manifest();
    let wasm = EDITOR.wasm;
    let icon = Value::bytes(EDITOR.icon.to_vec());
    let wrong_label = pola_syrup::encode(&Value::record(
        "pola-pkg",
        vec![
            Value::int(1i64),
            manifest.to_value(),
            icon.clone(),
            Value::bytes(wasm.to_vec()),
        ],
    ));
    refused(&d, "wrong label", &wrong_label);
    let version2 = pola_syrup::encode(&Value::record(
        "pola-package",
        vec![
            Value::int(2i64),
            manifest.to_value(),
            icon.clone(),
            Value::bytes(wasm.to_vec()),
        ],
    ));
    refused(&d, "version 2", &version2);
    let five = pola_syrup::encode(&Value::record(
        "pola-package",
        vec![
            Value::int(1i64),
            manifest.to_value(),
            icon.clone(),
            Value::bytes(wasm.to_vec()),
            Value::str("extra"),
        ],
    ));
    refused(&d, "five fields", &five);

    // A module that imports WASI: it could reach the host's files.
    let wasi = wat::parse_str(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "path_open"
                (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
            (memory (export "memory") 1))"#,
    )
    .expect("wat");
    refused(
        &d,
        "WASI imports",
        &package(manifest.to_value(), icon.clone(), &wasi),
    );
    refused(
        &d,
        "not WebAssembly",
        &package(manifest.to_value(), icon.clone(), b"\0asm\x01\0\0\0garbage"),
    );
    refused(
        &d,
        "no code",
        &package(manifest.to_value(), icon.clone(), b""),
    );

    // Icons: too wide, too heavy, not a PNG.
    refused(
        &d,
        "a 1024x1024 icon",
        &package(
            manifest.to_value(),
            Value::bytes(png(1024, 1024, false)),
            wasm,
        ),
    );
    let heavy = png(300, 300, true);
    assert!(heavy.len() > 256 * 1024, "{}", heavy.len());
    refused(
        &d,
        "a 350 KiB icon",
        &package(manifest.to_value(), Value::bytes(heavy), wasm),
    );
    refused(
        &d,
        "a GIF icon",
        &package(
            manifest.to_value(),
            Value::bytes(b"GIF89a\x01\0\x01\0".to_vec()),
            wasm,
        ),
    );

    // Manifests: bidi overrides in the name and reason, unknown keys.
    let mut bidi = editor_manifest();
    bidi.name = "Edit\u{202e}rotidE".to_owned();
    refused(
        &d,
        "a bidi name",
        &package(bidi.to_value(), icon.clone(), wasm),
    );
    let mut bidi = editor_manifest();
    bidi.requests[0].reason = "harmless \u{2067}evil\u{2069}".to_owned();
    refused(
        &d,
        "a bidi reason",
        &package(bidi.to_value(), icon.clone(), wasm),
    );
    let mut control = editor_manifest();
    control.description = "line\u{7}bell".to_owned();
    refused(
        &d,
        "a control character",
        &package(control.to_value(), icon.clone(), wasm),
    );
    let Value::Dict(mut dict) = manifest.to_value() else {
        panic!("a manifest is a dictionary");
    };
    dict.insert(Value::str("backdoor"), Value::Bool(true));
    refused(
        &d,
        "an unknown key",
        &package(Value::Dict(dict), icon.clone(), wasm),
    );
    let mut many = editor_manifest();
    let first = many.requests[0].clone();
    many.requests = (0..40)
        .map(|i| {
            let mut r = first.clone();
            r.name = format!("file-{i}");
            r
        })
        .collect();
    refused(&d, "40 requests", &package(many.to_value(), icon, wasm));
    assert!(d.state()["apps"].as_array().is_some_and(Vec::is_empty));
}

fn review(d: &Desktop, bytes: &[u8]) -> Json {
    let r = d.post_bytes("api/packages", bytes, "application/octet-stream");
    assert_eq!(r.status, 200, "review: {}", r.text());
    r.assert_secure();
    r.json()
}

#[test]
fn the_hostile_package_gets_all_six_warnings() {
    let (_tmp, d) = fresh();
    d.install_stock(&NOTES);
    let rev = review(&d, &pack(&HOSTILE));
    assert_eq!(rev["calls_itself"], "Notes");
    assert_eq!(
        rev["suggested_pet"], "",
        "a look-alike name is not suggested"
    );
    let rules: BTreeSet<u64> = rev["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| {
            assert!(w["text"].as_str().is_some_and(|t| !t.is_empty()), "{w}");
            w["rule"].as_u64().expect("a rule number")
        })
        .collect();
    assert_eq!(rules, (1..=6).collect(), "{}", rev["warnings"]);
    let names: BTreeSet<&str> = rev["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for w in rev["warnings"].as_array().expect("warnings") {
        for n in w["requests"].as_array().expect("request names") {
            assert!(names.contains(n.as_str().unwrap_or_default()), "{w}");
        }
    }
    // The stock editor, for contrast, raises none.
    let calm = review(&d, &pack(&EDITOR));
    assert_eq!(calm["warnings"], json!([]), "{calm}");
    // A cancelled review cannot be installed.
    let rid = rev["id"].as_str().expect("id");
    d.ok(&format!("api/reviews/{rid}/cancel"), "");
    d.post(
        &format!("api/reviews/{rid}/install"),
        r#"{"pet":"Mallory","decisions":[]}"#,
    )
    .assert_error(404);
    assert_eq!(d.state()["apps"].as_array().map(Vec::len), Some(1));
}

fn request_named<'a>(rev: &'a Json, name: &str) -> &'a Json {
    rev["requests"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no request {name}: {rev}"))
}

#[test]
fn a_narrowed_install_gets_only_what_was_granted() {
    let (_tmp, d) = fresh();
    std::fs::write(d.docs.join("notes.txt"), "the welcome note\n").expect("write");
    std::fs::write(d.docs.join("other.txt"), "the other file\n").expect("write");
    // The editor: read-write narrowed to read, on a file the user chose.
    let rev = review(&d, &pack(&EDITOR));
    let req = request_named(&rev, "file");
    assert_eq!(req["access"], "read-write");
    assert_eq!(req["narrow"], json!(["read"]));
    let rid = rev["id"].as_str().expect("id");
    let app = d.ok(
        &format!("api/reviews/{rid}/install"),
        &json!({"pet": "My Editor", "decisions": [
            {"name": "file", "grant": true, "access": "read", "path": "other.txt"}]})
        .to_string(),
    )["app"]
        .as_str()
        .expect("an app id")
        .to_owned();
    let state = d.state();
    let a = &state["apps"][0];
    assert_eq!(a["pet"], "My Editor");
    assert_eq!(a["calls_itself"], "Editor");
    let audit = d.audit(&app);
    assert_eq!(
        audit["endowments"],
        json!([{"name": "file", "words": "Read the file \"other.txt\""}])
    );
    // Launched, it sees that file and cannot write it.
    let w = d.launch(&app);
    d.wait_view(&w, "the chosen file", |t| {
        t.iter().any(|s| s == "the other file\n")
    });
    d.type_and_click(&w, "text", "overwritten", "save");
    let t = d.wait_view(&w, "a refused save", |t| {
        t.iter().any(|s| s.starts_with("Could not save"))
    });
    assert!(!t.iter().any(|s| s == "Saved."), "{t:?}");
    assert_eq!(
        std::fs::read_to_string(d.docs.join("other.txt")).expect("read"),
        "the other file\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.docs.join("notes.txt")).expect("read"),
        "the welcome note\n"
    );

    // The hostile app: the web refused, a file narrowed, the rest left
    // out; named by the user.
    std::fs::write(d.docs.join("secret.txt"), "not so secret\n").expect("write");
    let rev = review(&d, &pack(&HOSTILE));
    let rid = rev["id"].as_str().expect("id");
    for site in [
        json!(5),
        json!(["https://example.org"]),
        json!("not a site"),
    ] {
        d.post(
            &format!("api/reviews/{rid}/install"),
            &json!({"pet": "Mallory", "decisions": [{"name": "web", "grant": true, "site": site}]})
                .to_string(),
        )
        .assert_error(400);
    }
    let app = d.ok(
        &format!("api/reviews/{rid}/install"),
        &json!({"pet": "Mallory", "decisions": [
            {"name": "web", "grant": false},
            {"name": "clock", "grant": true},
            {"name": "file", "grant": true, "access": "read", "path": "secret.txt"}]})
        .to_string(),
    )["app"]
        .as_str()
        .expect("an app id")
        .to_owned();
    let audit = d.audit(&app);
    assert_eq!(audit["pet"], "Mallory");
    assert_eq!(
        audit["endowments"],
        json!([
            {"name": "file", "words": "Read the file \"secret.txt\""},
            {"name": "clock", "words": "Know the time"}
        ]),
        "{audit}"
    );
    let reach = audit["reach"].to_string();
    assert!(!reach.contains("Connect"), "{reach}");
    let w = d.launch(&app);
    d.wait_view(&w, "the hostile app", |t| t.iter().any(|s| s == "Attack"));
    d.click(&w, "use-file");
    let t = d.wait_view(&w, "a use of the file", |t| {
        t.iter().any(|s| s.starts_with("USED: current file grant"))
    });
    assert!(
        t.iter()
            .any(|s| s == "USED: current file grant: read 14 bytes"),
        "{t:?}"
    );
}

#[test]
fn a_duplicate_pet_name_is_refused() {
    let (_tmp, d) = fresh();
    let notes = d.install_stock(&NOTES);
    let rev = review(&d, &pack(&EDITOR));
    let rid = rev["id"].as_str().expect("id");
    let install = format!("api/reviews/{rid}/install");
    let before = d.snapshot();
    for pet in ["Notes", "notes", " NOTES ", "", "   ", &"x".repeat(65)] {
        let words = d
            .post(&install, &json!({"pet": pet, "decisions": []}).to_string())
            .assert_error(400);
        assert!(!words.is_empty(), "{pet}");
    }
    assert_eq!(before, d.snapshot());
    // The review is still there: a good name installs.
    let app = d.ok(
        &install,
        &json!({"pet": "Writer", "decisions": []}).to_string(),
    )["app"]
        .as_str()
        .expect("id")
        .to_owned();
    // Renaming onto another app's name is refused too.
    let before = d.snapshot();
    d.post(&format!("api/apps/{app}/rename"), r#"{"pet":"NOTES"}"#)
        .assert_error(400);
    d.post(&format!("api/apps/{notes}/rename"), r#"{"pet":"writer"}"#)
        .assert_error(400);
    assert_eq!(before, d.snapshot());
    d.ok(&format!("api/apps/{app}/rename"), r#"{"pet":"Scribe"}"#);
    assert_eq!(d.app_id("Scribe"), app);
}

#[test]
fn decisions_that_do_not_fit_are_refused() {
    let (_tmp, d) = fresh();
    let docs = &d.docs;
    std::fs::write(docs.join("notes.txt"), "notes\n").expect("write");
    std::fs::create_dir(docs.join("sub")).expect("mkdir");
    std::fs::write(docs.join("sub/inner.txt"), "inner\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", docs.join("link.txt")).expect("link");
    std::os::unix::fs::symlink("/etc", docs.join("etcdir")).expect("link");
    std::os::unix::fs::symlink("../notes.txt", docs.join("sub/up.txt")).expect("link");
    // A package asking to read one file and to change one folder.
    let toml = r#"
name = "Reader"
description = "Reads one file."
offers = []

[[request]]
name = "file"
kind = "file"
access = "read"
path = "notes.txt"
reason = "To show it"

[[request]]
name = "box"
kind = "folder"
access = "read-write"
path = "sub"
reason = "To keep things"
"#;
    let bytes = pola_powerbox::package::pack(toml, EDITOR.wasm.to_vec(), None).expect("pack");
    let rev = review(&d, &bytes);
    let rid = rev["id"].as_str().expect("id");
    let install = format!("api/reviews/{rid}/install");
    let before = d.snapshot();
    let file = |extra: Json| {
        let mut d = json!({"name": "file", "grant": true, "path": "notes.txt"});
        for (k, v) in extra.as_object().expect("an object") {
            d[k] = v.clone();
        }
        d
    };
    let bad: Vec<Json> = vec![
        json!([{"name": "nope", "grant": true}]),
        json!([{"name": "file", "grant": true, "path": "notes.txt"}, {"name": "storage", "grant": true}]),
        json!([file(json!({"access": "read-write"}))]),
        json!([file(json!({"access": "write"}))]),
        json!([file(json!({"access": 5}))]),
        json!([file(json!({"access": ["read"]}))]),
        json!([file(json!({"path": "../x"}))]),
        json!([file(json!({"path": "../state/state.redb"}))]),
        json!([file(json!({"path": "/etc/passwd"}))]),
        json!([file(json!({"path": "link.txt"}))]),
        json!([file(json!({"path": "etcdir/passwd"}))]),
        json!([file(json!({"path": "sub/up.txt"}))]),
        json!([file(json!({"path": "sub/../notes.txt"}))]),
        json!([file(json!({"path": "./notes.txt"}))]),
        json!([file(json!({"path": "sub"}))]),
        json!([file(json!({"path": ""}))]),
        json!([file(json!({"path": "nope.txt"}))]),
        json!([file(json!({"path": "notes.txt\u{0}"}))]),
        json!([file(json!({"path": 5}))]),
        json!([{"name": "file", "grant": true}]),
        json!([{"name": "box", "grant": true, "path": "notes.txt"}]),
        json!([{"name": "box", "grant": true, "path": ".."}]),
        json!([{"name": "box", "grant": true, "path": "etcdir"}]),
        json!([{"name": "box", "grant": true, "path": "sub", "access": "admin"}]),
        json!([{"name": "file", "grant": "yes", "path": "notes.txt"}]),
        json!([{"name": 5, "grant": true}]),
        json!(["file"]),
        json!("all"),
        json!({"file": true}),
    ];
    for decisions in &bad {
        let body = json!({"pet": "Reader", "decisions": decisions}).to_string();
        let r = d.post(&install, &body);
        assert_eq!(r.status, 400, "{decisions}: {}", r.text());
        let words = r.assert_error(400);
        assert!(!words.contains("passwd") || decisions.to_string().contains("passwd"));
        assert_eq!(before, d.snapshot(), "{decisions}: the desk changed");
    }
    for body in [
        json!({"pet": 5, "decisions": []}),
        json!({"decisions": []}),
        json!({"pet": ["Reader"], "decisions": []}),
    ] {
        d.post(&install, &body.to_string()).assert_error(400);
        assert_eq!(before, d.snapshot(), "{body}");
    }
    // The review survived every refusal: a fitting decision installs,
    // read-write narrowed to read on the folder.
    let app = d.ok(
        &install,
        &json!({"pet": "Reader", "decisions": [
            {"name": "file", "grant": true, "path": "sub/inner.txt"},
            {"name": "box", "grant": true, "path": "sub", "access": "read"}]})
        .to_string(),
    )["app"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        d.audit(&app)["endowments"],
        json!([
            {"name": "file", "words": "Read the file \"sub/inner.txt\""},
            {"name": "box", "words": "Read the folder \"sub\""}
        ])
    );
}
