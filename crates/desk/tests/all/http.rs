//! Hostile HTTP against one shared desk (the Editor installed, one window
//! open). Every test here must change nothing, so they can share it: each
//! compares the desk's state before and after, and checks the documented
//! status, the security headers on the refusal, and no CORS header.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;

use crate::support::{Desktop, PATIENCE, exchange};

struct Shared {
    d: Desktop,
    editor: String,
    window: String,
}

/// The shared desk, in a folder of the target's temporary folder named
/// after this process (folders of earlier, finished runs are removed).
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("desk-http-")
                    && !PathBuf::from(format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let root = base.join(format!("desk-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let d = Desktop::start(&root);
        let editor = d.install_stock(&pola_desk_apps::EDITOR);
        // A link in the documents folder pointing out of it.
        std::os::unix::fs::symlink("/etc", d.docs.join("out")).expect("a symbolic link");
        let window = d.launch(&editor);
        d.wait_view(&window, "the editor's first view", |t| {
            t.iter().any(|s| s == "Save")
        });
        // The editor's first reads are counted in memory; a rename to the
        // same name writes the model row now, so that the positive controls
        // of the tests below (the same rename) leave the row as it is.
        d.ok(&format!("api/apps/{editor}/rename"), r#"{"pet":"Editor"}"#);
        Shared { d, editor, window }
    })
}

/// Runs `attack`, then checks the desk's state is what it was and that
/// the server still answers.
fn unchanged(d: &Desktop, attack: impl FnOnce()) {
    let before = d.snapshot();
    attack();
    let after = d.snapshot();
    assert_eq!(before, after, "the desk's state changed");
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("Connection: close\r\n\r\n");
    r.push_str(body);
    r.into_bytes()
}

#[test]
fn without_the_right_token_everything_is_not_found() {
    let s = shared();
    let d = &s.d;
    let t = &d.token;
    assert_eq!(t.len(), 43, "a 256-bit token in URL-safe base64");
    // The right token works (so the refusals below are the token's doing).
    let page = d.get("");
    assert_eq!(page.status, 200);
    page.assert_secure();
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    let mut wrong: Vec<u8> = t.as_bytes().to_vec();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).expect("ASCII");
    let mut last = t.as_bytes().to_vec();
    let n = last.len() - 1;
    last[n] = if last[n] == b'A' { b'B' } else { b'A' };
    let last = String::from_utf8(last).expect("ASCII");
    let swapped: String = t
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    assert_ne!(&swapped, t);
    let paths = [
        "/".to_owned(),
        "/d/".to_owned(),
        "/d//api/state".to_owned(),
        format!("/d/{wrong}/api/state"),
        format!("/d/{last}/api/state"),
        format!("/d/{}/api/state", &t[..42]),
        format!("/d/{}/api/state", &t[..8]),
        format!("/d/{t}A/api/state"),
        format!("/d/{swapped}/api/state"),
        format!("/d/{}/api/state", t.to_uppercase()),
        format!("/d/{t}"),
        format!("/D/{t}/api/state"),
        format!("/{t}/api/state"),
        format!("/d/%{}/api/state", &t[1..]),
        format!("/x/{t}/api/state"),
        format!("/d/{t}%2Fapi/state"),
    ];
    unchanged(d, || {
        for p in &paths {
            let r = d.raw(&request("GET", p, &[("Host", &d.host())], ""));
            r.assert_plain(404);
            assert!(!r.text().contains(t.as_str()), "the token leaked: {p}");
            // A state-changing request with a wrong token changes nothing.
            let launch = p.replace("api/state", &format!("api/apps/{}/uninstall", s.editor));
            let r = d.raw(&request(
                "POST",
                &launch,
                &[("Host", &d.host()), ("Origin", &d.origin())],
                "",
            ));
            r.assert_plain(404);
        }
    });
}

#[test]
fn a_forged_host_is_forbidden() {
    let s = shared();
    let d = &s.d;
    let port = d.port;
    let other = if port == 65535 { port - 1 } else { port + 1 };
    let hosts = [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{other}"),
        format!("127.0.0.1.evil:{port}"),
        format!("localhost.evil:{port}"),
        format!("127.0.0.1:{port}.evil"),
        format!("127.0.0.1:{port}@evil.example"),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
        format!("0.0.0.0:{port}"),
        format!("LOCALHOST:{port}x"),
        String::new(),
    ];
    // Both names of the loopback are allowed (so the refusals are Host's).
    for h in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let r = d.raw(&request("GET", &d.path("api/state"), &[("Host", &h)], ""));
        assert_eq!(r.status, 200, "{h}");
    }
    unchanged(d, || {
        for h in &hosts {
            let r = d.raw(&request("GET", &d.path("api/state"), &[("Host", h)], ""));
            r.assert_plain(403);
            assert!(!r.text().contains("apps"), "state leaked to Host {h:?}");
            let r = d.raw(&request(
                "POST",
                &d.path(&format!("api/apps/{}/rename", s.editor)),
                &[("Host", h), ("Origin", &d.origin())],
                r#"{"pet":"Pwned"}"#,
            ));
            r.assert_plain(403);
        }
        // No Host at all.
        let r = d.raw(
            format!(
                "GET {} HTTP/1.1\r\nConnection: close\r\n\r\n",
                d.path("api/state")
            )
            .as_bytes(),
        );
        assert!(
            r.status == 403 || r.status == 400,
            "no Host: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("apps"));
        // HTTP/1.0 without a Host.
        let r = d.raw(format!("GET {} HTTP/1.0\r\n\r\n", d.path("api/state")).as_bytes());
        assert!(r.status == 403 || r.status == 400, "{r:?}");
        assert!(!r.text().contains("apps"));
        // An evil Host first, the right one second.
        let r = d.raw(&request(
            "GET",
            &d.path("api/state"),
            &[("Host", "evil.example"), ("Host", &d.host())],
            "",
        ));
        assert!(r.status == 403 || r.status == 400, "{r:?}");
        assert!(!r.text().contains("apps"));
    });
}

#[test]
fn a_post_from_another_origin_is_forbidden() {
    let s = shared();
    let d = &s.d;
    let port = d.port;
    let rename = d.path(&format!("api/apps/{}/rename", s.editor));
    // From the desk's own page, under either name, it works.
    for o in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let r = d.raw(&request(
            "POST",
            &rename,
            &[("Host", &d.host()), ("Origin", &o)],
            r#"{"pet":"Editor"}"#,
        ));
        assert_eq!(r.status, 200, "{o}: {}", r.text());
        r.assert_secure();
    }
    let origins: Vec<Option<String>> = vec![
        Some("http://evil.example".to_owned()),
        None,
        Some("null".to_owned()),
        Some(String::new()),
        Some(format!("http://127.0.0.1:{port}.evil.example")),
        Some(format!("http://127.0.0.1:{}", port.wrapping_add(1))),
        Some(format!("https://127.0.0.1:{port}")),
        Some(format!("http://localhost.evil:{port}")),
        Some(format!("http://127.0.0.1:{port}/")),
        Some(format!("http://user@127.0.0.1:{port}")),
        Some(format!("HTTP://127.0.0.1:{port}")),
    ];
    unchanged(d, || {
        for o in &origins {
            let mut h = vec![("Host", d.host())];
            if let Some(o) = o {
                h.push(("Origin", o.clone()));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            for (method, path, body) in [
                ("POST", rename.clone(), r#"{"pet":"Pwned"}"#),
                (
                    "POST",
                    d.path(&format!("api/apps/{}/uninstall", s.editor)),
                    "",
                ),
                (
                    "POST",
                    d.path(&format!("api/windows/{}/close", s.window)),
                    "",
                ),
                ("PUT", rename.clone(), r#"{"pet":"Pwned"}"#),
                (
                    "DELETE",
                    d.path(&format!("api/apps/{}/uninstall", s.editor)),
                    "",
                ),
                ("OPTIONS", rename.clone(), ""),
                ("PATCH", rename.clone(), r#"{"pet":"Pwned"}"#),
            ] {
                let r = d.raw(&request(method, &path, &h, body));
                r.assert_plain(403);
            }
        }
        // A read from another origin is answered, but with no CORS header
        // a browser keeps it from the other page.
        let r = d.raw(&request(
            "GET",
            &d.path("api/state"),
            &[("Host", &d.host()), ("Origin", "http://evil.example")],
            "",
        ));
        assert_eq!(r.status, 200);
        r.assert_secure();
    });
}

/// A WebSocket handshake to `api/events` with `origin`; the stream.
fn upgrade(d: &Desktop, origin: Option<&str>) -> (u16, TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        d.path("api/events"),
        d.host()
    );
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let r = crate::support::parse(&head).expect("an HTTP answer");
    (r.status, s, head)
}

#[test]
fn the_websocket_upgrade_checks_origin() {
    let s = shared();
    let d = &s.d;
    unchanged(d, || {
        for origin in [Some("http://evil.example"), None, Some("null")] {
            let (status, mut stream, head) = upgrade(d, origin);
            assert_eq!(status, 403, "{origin:?}");
            let r = crate::support::parse(&head).expect("HTTP");
            r.assert_secure();
            // Nothing follows: no frames for a refused page.
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            assert!(
                !rest.windows(6).any(|w| w == b"\"type\""),
                "a message after a refused upgrade"
            );
        }
    });
    // From the desk's own page it upgrades and pushes "changed".
    let (status, mut stream, _) = upgrade(d, Some(&d.origin()));
    assert_eq!(status, 101);
    let r = d.post(
        &format!("api/apps/{}/rename", s.editor),
        r#"{"pet":"Editor"}"#,
    );
    assert_eq!(r.status, 200);
    let mut frame = [0u8; 2];
    stream.read_exact(&mut frame).expect("a frame");
    assert_eq!(frame[0], 0x81, "a text frame");
    let len = match frame[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).expect("a length");
            usize::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).expect("a length");
            usize::try_from(u64::from_be_bytes(n)).expect("a length")
        }
        n => usize::from(n),
    };
    let mut text = vec![0u8; len];
    stream.read_exact(&mut text).expect("the message");
    let msg: serde_json::Value = serde_json::from_slice(&text).expect("JSON");
    assert!(msg["type"] == "changed" || msg["type"] == "view", "{msg}");
}

#[test]
fn oversized_bodies_are_refused() {
    let s = shared();
    let d = &s.d;
    let rename = format!("api/apps/{}/rename", s.editor);
    unchanged(d, || {
        // Just over 64 KiB of valid JSON on a normal route.
        let pad = " ".repeat(64 * 1024);
        let body = format!(r#"{{"pet":"Pwned"{pad}}}"#);
        assert!(body.len() > 64 * 1024);
        let r = d.post(&rename, &body);
        assert_eq!(r.status, 413, "{}", r.text());
        r.assert_secure();
        // Just under it is read (and refused only for what it says).
        let body = format!(r#"{{"pet":"{}"}}"#, "a".repeat(60 * 1024));
        d.post(&rename, &body).assert_error(400);
        // The same, chunked (no Content-Length to check up front).
        let big = format!(r#"{{"pet":"Pwned"{}}}"#, " ".repeat(70 * 1024));
        let mut req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            d.path(&rename),
            d.host(),
            d.origin()
        )
        .into_bytes();
        for chunk in big.as_bytes().chunks(8192) {
            req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            req.extend_from_slice(chunk);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        let r = d.raw(&req);
        assert_eq!(r.status, 413, "{}", r.text());
        r.assert_secure();
        // A huge Content-Length with no body: refused without waiting.
        let r = d.raw(
            format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n",
                d.path(&rename),
                d.host(),
                d.origin()
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 413, "{}", r.text());
        r.assert_secure();
        // Over 16 MiB on packages.
        let package = vec![b'x'; 16 * 1024 * 1024 + 1];
        let r = d.post_bytes("api/packages", &package, "application/octet-stream");
        assert_eq!(r.status, 413, "{}", r.text());
        r.assert_secure();
    });
}

#[test]
fn a_lying_content_length_changes_nothing() {
    let s = shared();
    let d = &s.d;
    let rename = d.path(&format!("api/apps/{}/rename", s.editor));
    let head = |cl: &str| {
        format!(
            "POST {rename} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Length: {cl}\r\nConnection: close\r\n\r\n",
            d.host(),
            d.origin()
        )
    };
    unchanged(d, || {
        // Shorter than the body: the JSON is cut, the rest is not a request.
        let r = d.raw(format!("{}{}", head("8"), r#"{"pet":"Pwned"}"#).as_bytes());
        r.assert_error(400);
        // Longer than the body, then the client stops sending.
        let mut s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        s.write_all(format!("{}{}", head("1000"), r#"{"pet":"Pwned"}"#).as_bytes())
            .expect("write");
        s.shutdown(Shutdown::Write).expect("shutdown");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if !out.is_empty() {
            let r = crate::support::parse(&out).expect("HTTP");
            assert!(r.status >= 400, "{r:?}");
        }
        // Not a number, too big a number, two different lengths.
        for cl in ["abc", "-1", "99999999999999999999999", "1e3", "0x10"] {
            let r = d.raw(format!("{}{}", head(cl), r#"{"pet":"Pwned"}"#).as_bytes());
            assert_eq!(r.status, 400, "Content-Length {cl}: {r:?}");
        }
        let two = format!(
            "POST {rename} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Length: 15\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{}",
            d.host(),
            d.origin(),
            r#"{"pet":"Pwned"}"#
        );
        let r = d.raw(two.as_bytes());
        assert!(r.status == 400 || r.status == 413, "{r:?}");
    });
}

#[test]
fn traversal_and_unknown_routes_are_not_found() {
    let s = shared();
    let d = &s.d;
    let t = &d.token;
    let paths = [
        format!("/d/{t}/../x"),
        format!("/d/{t}/../../etc/passwd"),
        format!("/d/{t}/%2e%2e/%2e%2e/etc/passwd"),
        format!("/d/{t}/%2E%2E%2Fstate%2Fstate.redb"),
        format!("/d/{t}//api/state"),
        format!("//d/{t}/api/state"),
        format!("/d/{t}/api/state/.."),
        format!("/d/{t}/api/./state"),
        format!("/d/{t}/./api/state"),
        format!("/d/{t}/api/nope"),
        format!("/d/{t}/api/"),
        format!("/d/{t}/index.html"),
        format!("/d/{t}/state/state.redb"),
        format!("/d/{t}/desk.js/.."),
        format!("/d/{t}/api/icons/..%2f..%2fstate.redb"),
        format!("/d/{t}/api/icons/%2e%2e"),
        format!("/d/{t}/api/reviews/..%2f/icon"),
    ];
    unchanged(d, || {
        for p in &paths {
            let r = d.raw(&request("GET", p, &[("Host", &d.host())], ""));
            r.assert_plain(404);
            assert!(!r.text().contains("root:"), "{p}");
        }
        // The chooser's listing stays inside the documents folder.
        for dir in [
            "..", "%2e%2e", "../..", "/etc", "/", "out", "out/..", "a/../..", "..%2F..", "%00",
        ] {
            let r = d.get(&format!("api/files?dir={dir}"));
            if dir == "/" {
                // The documents folder itself.
                assert_eq!(r.status, 200, "{dir}");
                r.assert_secure();
                continue;
            }
            let words = r.assert_error(400);
            assert!(!r.text().contains("passwd"), "{dir}: {words}");
        }
        // A POST on a GET route, a GET on a POST route.
        let r = d.post("api/state", "{}");
        assert!(r.status == 404 || r.status == 405, "{r:?}");
        r.assert_secure();
        let r = d.get(&format!("api/apps/{}/uninstall", s.editor));
        assert!(r.status == 404 || r.status == 405, "{r:?}");
        r.assert_secure();
    });
}

#[test]
fn malformed_json_and_wrong_types_are_refused() {
    let s = shared();
    let d = &s.d;
    let rename = format!("api/apps/{}/rename", s.editor);
    let event = format!("api/windows/{}/event", s.window);
    let drop = format!("api/windows/{}/drop", s.window);
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let long = "a".repeat(60_000);
    unchanged(d, || {
        for body in [
            "",
            "{",
            r#"{"pet":"#,
            "not json",
            "\u{0}\u{1}\u{2}",
            "{\"pet\":\"Pw\u{0}ned\"}",
            r#"{"pet":5}"#,
            r#"{"pet":"5"}5"#,
            r#"{"pet":["Pwned"]}"#,
            r#"{"pet":[["Pwned"]]}"#,
            r#"{"pet":{"a":"Pwned"}}"#,
            r#"{"pet":null}"#,
            r#"{"pet":true}"#,
            r#"["Pwned"]"#,
            r#""Pwned""#,
            "{\"pet\":\"Pw\u{202e}ned\"}",
            "{\"pet\":\"Pw\u{7}ned\"}",
            r#"{"pet":"   "}"#,
            &format!(r#"{{"pet":"{long}"}}"#),
            &deep,
            r#"{"pet":"\ud800"}"#,
        ] {
            let r = d.post(&rename, body);
            let words = r.assert_error(400);
            assert!(
                !words.contains('\u{202e}') && !words.contains('\u{0}'),
                "the refusal repeats a control character: {words:?}"
            );
        }
        // Two keys: JSON keeps the last; neither is "Pwned" then.
        for body in [
            r#"{"type":"click","id":5}"#,
            r#"{"type":"click"}"#,
            r#"{"type":"click","id":""}"#,
            &format!(r#"{{"type":"click","id":"{}"}}"#, "x".repeat(65)),
            r#"{"type":"click","id":["save"]}"#,
            r#"{"type":["click"],"id":"save"}"#,
            r#"{"type":"CLICK","id":"save"}"#,
            r#"{"type":"input","id":"text","value":5}"#,
            r#"{"type":"input","id":"text"}"#,
            r#"{"type":"input","id":7,"value":"x"}"#,
            r#"{"type":"link","n":"0"}"#,
            r#"{"type":"link","n":-1}"#,
            r#"{"type":"link","n":1e30}"#,
            r#"{"type":"link","n":18446744073709551616}"#,
            r#"{"type":"link","n":0}"#,
            r#"{"type":"drop","path":"notes.txt"}"#,
            r#"{"type":"follow"}"#,
            "[]",
            "null",
            "{}",
            &deep,
        ] {
            d.post(&event, body).assert_error(400);
        }
        for body in [
            "{}",
            r#"{"path":5}"#,
            r#"{"path":["notes.txt"]}"#,
            r#"{"path":"../x"}"#,
            r#"{"path":"/etc/passwd"}"#,
            r#"{"path":"out/passwd"}"#,
            r#"{"path":"nope.txt"}"#,
            r#"{"path":""}"#,
            &format!(r#"{{"path":"{long}"}}"#),
            "not json",
        ] {
            d.post(&drop, body).assert_error(400);
        }
        // Bodies to things that do not exist are refused as missing.
        d.post("api/reviews/nope/install", r#"{"pet":"x","decisions":[]}"#)
            .assert_error(404);
        d.post("api/prompts/nope/answer", r#"{"grant":true}"#)
            .assert_error(404);
    });
}

#[test]
fn invalid_ids_are_refused() {
    let s = shared();
    let d = &s.d;
    let long = "1".repeat(10 * 1024);
    let ids = [
        "-1",
        "18446744073709551616",
        "99999999999999999999999999999",
        "abc",
        long.as_str(),
        "0x1",
        "%00",
        "1%20",
        "%E2%80%AE1",
        "1.0",
    ];
    unchanged(d, || {
        for id in ids {
            let body = json!({"type": "click", "id": "save"}).to_string();
            for (path, body) in [
                (format!("api/windows/{id}/close"), String::new()),
                (format!("api/windows/{id}/event"), body.clone()),
                (
                    format!("api/windows/{id}/drop"),
                    r#"{"path":"notes.txt"}"#.to_owned(),
                ),
                (format!("api/grants/{id}/revoke"), String::new()),
                (format!("api/apps/{id}/launch"), String::new()),
                (
                    format!("api/apps/{id}/rename"),
                    r#"{"pet":"Pwned"}"#.to_owned(),
                ),
                (format!("api/apps/{id}/uninstall"), String::new()),
                (format!("api/apps/{id}/revoke-all"), String::new()),
                (
                    format!("api/prompts/{id}/answer"),
                    r#"{"grant":true}"#.to_owned(),
                ),
                (
                    format!("api/reviews/{id}/install"),
                    r#"{"pet":"x","decisions":[]}"#.to_owned(),
                ),
            ] {
                let r = d.post(&path, &body);
                r.assert_error(404);
            }
            d.get(&format!("api/apps/{id}/audit")).assert_error(404);
            d.get(&format!("api/icons/{id}")).assert_plain(404);
            d.get(&format!("api/reviews/{id}/icon")).assert_plain(404);
            // Cancelling a review that does not exist is a harmless no-op.
            let r = d.post(&format!("api/reviews/{id}/cancel"), "");
            assert_eq!(r.status, 200);
            r.assert_secure();
        }
    });
}

#[test]
fn garbage_instead_of_http_hurts_nothing() {
    let s = shared();
    let d = &s.d;
    let mut noise = vec![0u8; 4096];
    getrandom_fill(&mut noise);
    let long_header = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        d.path("api/state"),
        d.host(),
        "a".repeat(1 << 20)
    );
    let inputs: Vec<Vec<u8>> = vec![
        noise,
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"FOO BAR BAZ QUX\r\n\r\n".to_vec(),
        format!(
            "GET {} HTTP/1.1\r\nHost {}\r\n\r\n",
            d.path("api/state"),
            d.host()
        )
        .into_bytes(),
        [
            format!("GET {} HTTP/1.1\r\nHost: ", d.path("api/state")).as_bytes(),
            b"\xff\xfe\r\n\r\n",
        ]
        .concat(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        long_header.into_bytes(),
        format!(
            "GET {}\u{202e} HTTP/1.1\r\nHost: {}\r\n\r\n",
            d.path("api/state"),
            d.host()
        )
        .into_bytes(),
        b"\r\n\r\n\r\nGARBAGE\r\n\r\n".to_vec(),
    ];
    unchanged(d, || {
        for input in &inputs {
            match exchange(d.port, input) {
                // A Host that is not text is a wrong Host.
                Ok(r) if r.status == 403 => r.assert_plain(403),
                // A path that is not the desk's.
                Ok(r) if r.status == 404 => r.assert_plain(404),
                Ok(r) => assert!(
                    r.status == 400 || r.status == 431 || r.status == 505,
                    "{r:?}"
                ),
                Err(e) => {
                    // Closed without an answer: acceptable for garbage.
                    assert!(
                        matches!(
                            e.kind(),
                            std::io::ErrorKind::InvalidData
                                | std::io::ErrorKind::ConnectionReset
                                | std::io::ErrorKind::BrokenPipe
                        ),
                        "{e}: {:?}",
                        String::from_utf8_lossy(&input[..input.len().min(80)])
                    );
                }
            }
        }
    });
}

fn getrandom_fill(b: &mut [u8]) {
    // Not security: any bytes that are not HTTP.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    for v in b.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x.to_le_bytes()[0];
    }
}

#[test]
fn a_slow_client_does_not_block_others() {
    let s = shared();
    let d = &s.d;
    let mut slow = Vec::new();
    for i in 0..32 {
        let mut c = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
        // Half a request line, half the headers, or headers then half a
        // body: each connection stops mid-request and stays open.
        let part = match i % 3 {
            0 => "GET /d/".to_owned(),
            1 => format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nX-Slow: ",
                d.path("api/state"),
                d.host()
            ),
            _ => format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Length: 100\r\n\r\n{{\"pet\":",
                d.path(&format!("api/apps/{}/rename", s.editor)),
                d.host(),
                d.origin()
            ),
        };
        c.write_all(part.as_bytes()).expect("write");
        slow.push(c);
    }
    unchanged(d, || {
        for _ in 0..5 {
            let r = d.get("api/state");
            assert_eq!(r.status, 200);
        }
    });
    for c in &slow {
        c.set_read_timeout(Some(Duration::from_millis(1)))
            .expect("timeout");
    }
    drop(slow);
    let r = d.get("api/state");
    assert_eq!(r.status, 200);
}
