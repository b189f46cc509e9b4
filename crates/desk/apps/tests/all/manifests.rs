//! The manifests have the shape of `crates/desk/PROTOCOL.md` section 1
//! (as TOML, `[[request]]` tables), and the icons are 64×64 PNGs.
//!
//! These check the protocol's rules on their own, apart from the
//! powerbox's parser (which `packages.rs` runs): two readings of the
//! protocol that must agree.

use std::collections::BTreeSet;

use pola_desk_apps::{EDITOR, HOSTILE, NOTES, STOCK, StockApp};
use toml::{Table, Value};

const KINDS: [&str; 7] = [
    "file", "folder", "web", "clock", "random", "storage", "object",
];

fn plain_chars(s: &str) -> bool {
    !s.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
    })
}

fn name_ok(s: &str, max: usize) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some('a'..='z'))
        && s.chars().count() <= max + 1
        && cs.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '.'))
}

fn origin_ok(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = rest.split_once(':').unwrap_or((rest, "443"));
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port.parse::<u16>().is_ok()
}

fn text(t: &Table, key: &str) -> String {
    t.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key} is not a string"))
        .to_owned()
}

/// Checks one manifest against the protocol; answers its parsed table.
fn check(app: &StockApp) -> Table {
    let m: Table = app
        .manifest
        .parse()
        .unwrap_or_else(|e| panic!("{}: not TOML: {e}", app.id));
    for k in m.keys() {
        assert!(
            ["name", "description", "request", "offers", "browser"].contains(&k.as_str()),
            "{}: unknown key {k}",
            app.id
        );
    }
    let name = text(&m, "name");
    assert!((1..=64).contains(&name.chars().count()) && plain_chars(&name));
    let description = text(&m, "description");
    assert!(description.chars().count() <= 280 && plain_chars(&description));
    let offers = m["offers"].as_array().expect("offers is a list");
    assert!(offers.len() <= 8);
    if let Some(b) = m.get("browser") {
        assert!(b.is_bool());
    }
    let requests = m["request"].as_array().expect("[[request]] tables");
    assert!(!requests.is_empty() && requests.len() <= 32);
    let mut names = BTreeSet::new();
    for r in requests {
        let r = r.as_table().expect("a request is a table");
        let rname = text(r, "name");
        assert!(name_ok(&rname, 31), "{}: request name {rname}", app.id);
        assert!(names.insert(rname.clone()), "{}: {rname} twice", app.id);
        let kind = text(r, "kind");
        assert!(KINDS.contains(&kind.as_str()), "{}: kind {kind}", app.id);
        let reason = text(r, "reason");
        assert!((1..=280).contains(&reason.chars().count()) && plain_chars(&reason));
        let mut allowed = vec!["name", "kind", "reason"];
        match kind.as_str() {
            "file" | "folder" => {
                allowed.extend(["access", "path"]);
                assert!(["read", "read-write"].contains(&text(r, "access").as_str()));
                if r.contains_key("path") {
                    assert!(!text(r, "path").is_empty());
                }
            }
            "web" => {
                allowed.push("sites");
                let sites = r["sites"].as_array().expect("sites is a list");
                assert!(!sites.is_empty() && sites.len() <= 16);
                for s in sites {
                    let s = s.as_str().expect("a site is a string");
                    assert!(s == "*" || origin_ok(s), "{}: site {s}", app.id);
                }
            }
            "object" => {
                allowed.push("interface");
                assert!(name_ok(&text(r, "interface"), 63));
            }
            _ => {}
        }
        for k in r.keys() {
            assert!(
                allowed.contains(&k.as_str()),
                "{}: {kind} request key {k}",
                app.id
            );
        }
    }
    m
}

fn requests(m: &Table) -> Vec<Table> {
    m["request"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_table().unwrap().clone())
        .collect()
}

#[test]
fn every_manifest_follows_the_protocol() {
    for app in STOCK.iter().chain([&HOSTILE]) {
        check(app);
    }
}

#[test]
fn each_stock_app_asks_for_what_it_needs_only() {
    let kinds = |app: &StockApp| -> Vec<String> {
        requests(&check(app))
            .iter()
            .map(|r| text(r, "kind"))
            .collect()
    };
    assert_eq!(kinds(&STOCK[0]), ["file"]);
    assert_eq!(kinds(&STOCK[1]), ["storage"]);
    assert_eq!(kinds(&STOCK[2]), ["clock"]);
    let file = &requests(&check(&EDITOR))[0];
    assert_eq!(text(file, "name"), "file");
    assert_eq!(text(file, "access"), "read-write");
    assert_eq!(text(file, "path"), "notes.txt");
    assert_eq!(
        text(&requests(&check(&NOTES))[0], "reason"),
        "To keep your notes between uses"
    );
}

#[test]
fn the_hostile_manifest_asks_for_everything_under_another_apps_name() {
    let m = check(&HOSTILE);
    assert_eq!(text(&m, "name"), text(&check(&NOTES), "name"));
    let rs = requests(&m);
    let kinds: BTreeSet<String> = rs.iter().map(|r| text(r, "kind")).collect();
    for k in KINDS {
        assert!(kinds.contains(k), "missing {k}");
    }
    assert!(rs.iter().any(
        |r| r.get("path").and_then(Value::as_str) == Some("~/.ssh/id_rsa")
            && text(r, "access") == "read-write"
    ));
    assert!(rs.iter().any(
        |r| r.get("sites").and_then(Value::as_array) == Some(&vec![Value::String("*".into())])
    ));
}

/// Width and height from a PNG's IHDR, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn icons_are_distinct_64_by_64_pngs() {
    let all: Vec<_> = STOCK.iter().chain([&HOSTILE]).collect();
    for app in &all {
        assert_eq!(png_size(app.icon), (64, 64), "{}", app.id);
    }
    let distinct: BTreeSet<&[u8]> = all.iter().map(|a| a.icon).collect();
    assert_eq!(distinct.len(), all.len());
}
