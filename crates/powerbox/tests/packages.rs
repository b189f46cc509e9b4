//! Attacks on the package decoder and on `pack`: every hostile or broken
//! package is refused with the right typed error and a sentence a person
//! can read.

use pola_powerbox::icon::{IconError, MAX_ICON_BYTES};
use pola_powerbox::package::MAX_PACKAGE_BYTES;
use pola_powerbox::{
    Access, Kind, ManifestError, Package, PackageError, Place, Sites, describe, pack,
};
use pola_syrup::Value;

/// The smallest confined caplet.
fn confined_wasm() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#,
    )
    .expect("wat")
}

/// A module that imports WASI (and a name with a terminal escape in it).
fn wasi_wasm() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write\1b[2Jconfined: yes"
                (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#,
    )
    .expect("wat")
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
    });
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        img.as_raw(),
        width,
        height,
        image::ExtendedColorType::Rgba8,
    )
    .expect("png");
    out
}

const GOOD_TOML: &str = r#"
name = "Notes"
description = "Keeps your notes."
offers = ["text-source"]

[[request]]
name = "doc"
kind = "file"
access = "read-write"
path = "notes.txt"
reason = "to open and save your notes"

[[request]]
name = "sync"
kind = "web"
sites = ["https://notes.example", "http://localhost:8080"]
reason = "to sync your notes"

[[request]]
name = "time"
kind = "clock"
reason = "to date each note"

[[request]]
name = "peer"
kind = "object"
interface = "spell.check"
reason = "to check your spelling"
"#;

fn manifest(text: &str) -> Value {
    pola_syrup::text::parse(text).expect("test manifest parses")
}

const GOOD_MANIFEST: &str = r#"{"name" "Notes" "description" "" "requests" [] "offers" []}"#;

fn package_value(fields: Vec<Value>) -> Vec<u8> {
    pola_syrup::encode(&Value::record("pola-package", fields))
}

fn with_manifest(m: &str) -> Vec<u8> {
    package_value(vec![
        Value::int(1i64),
        manifest(m),
        Value::Bool(false),
        Value::bytes(confined_wasm()),
    ])
}

/// A request inside an otherwise good manifest.
fn with_request(request: &str) -> Vec<u8> {
    with_manifest(&format!(
        r#"{{"name" "Notes" "description" "" "requests" [{request}] "offers" []}}"#
    ))
}

/// Decodes, expects an error, and checks its sentence is fit for a person.
fn refused(bytes: &[u8]) -> PackageError {
    let e = Package::decode(bytes).expect_err("the package must be refused");
    readable(&e);
    e
}

fn readable(e: &PackageError) {
    let msg = e.to_string();
    assert!(!msg.is_empty());
    assert!(
        msg.chars().all(|c| !c.is_control()
            && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
        "unsafe character in {msg:?}"
    );
    assert!(msg.starts_with("the ") || msg.starts_with("this "), "{msg}");
    assert!(msg.len() < 600, "{msg}");
}

fn manifest_error(bytes: &[u8]) -> ManifestError {
    match refused(bytes) {
        PackageError::Manifest(m) => m,
        other => panic!("expected a manifest error, got {other:?}"),
    }
}

#[test]
fn a_good_package_round_trips() {
    let icon = png(100, 80);
    let bytes = pack(GOOD_TOML, confined_wasm(), Some(icon.clone())).expect("pack");
    let p = Package::decode(&bytes).expect("decode");
    assert_eq!(p.encode(), bytes, "canonical");
    let m = &p.manifest;
    assert_eq!(m.name, "Notes");
    assert_eq!(m.offers, vec!["text-source"]);
    assert!(!m.browser);
    assert_eq!(m.requests.len(), 4);
    assert_eq!(m.requests[0].kind, Kind::File);
    assert_eq!(m.requests[0].access, Some(Access::ReadWrite));
    assert_eq!(m.requests[0].path.as_deref(), Some("notes.txt"));
    let Sites::Some(sites) = &m.requests[1].sites else {
        panic!("sites")
    };
    assert_eq!(sites[1].to_string(), "http://localhost:8080");
    assert_eq!(
        describe(&m.requests[1]),
        "Connect to https://notes.example and http://localhost:8080"
    );
    assert_eq!(m.requests[3].interface.as_deref(), Some("spell.check"));
    let i = p.icon.as_ref().expect("icon");
    assert_eq!(i.source(), icon.as_slice());
    assert_ne!(i.png(), icon.as_slice(), "the desk serves its own bytes");
}

#[test]
fn a_package_without_an_icon_and_a_browser() {
    let toml = "name = \"Browser\"\nbrowser = true\n[[request]]\nname = \"net\"\nkind = \"web\"\nsites = [\"*\"]\nreason = \"to browse\"\n";
    let bytes = pack(toml, confined_wasm(), None).expect("pack");
    let p = Package::decode(&bytes).expect("decode");
    assert!(p.icon.is_none() && p.manifest.browser);
    assert_eq!(p.manifest.requests[0].sites, Sites::Anywhere);
    assert_eq!(p.encode(), bytes);
}

#[test]
fn every_truncation_is_refused_as_cut_short() {
    let bytes = with_manifest(GOOD_MANIFEST);
    Package::decode(&bytes).expect("the whole package is good");
    for n in 0..bytes.len() {
        assert_eq!(refused(&bytes[..n]), PackageError::Truncated, "prefix {n}");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = with_manifest(GOOD_MANIFEST);
    bytes.push(b't');
    assert!(matches!(refused(&bytes), PackageError::Malformed { .. }));
}

#[test]
fn over_16_mib_is_refused_before_decoding() {
    let bytes = vec![b'<'; MAX_PACKAGE_BYTES + 1];
    assert_eq!(
        refused(&bytes),
        PackageError::TooLarge {
            len: MAX_PACKAGE_BYTES + 1,
            max: MAX_PACKAGE_BYTES
        }
    );
}

#[test]
fn huge_declared_sizes() {
    // A byte string announcing a terabyte.
    let mut bytes = b"<12'pola-package1+".to_vec();
    bytes.extend_from_slice(b"1099511627776:");
    assert!(matches!(refused(&bytes), PackageError::TooComplex { .. }));
    // Announcing 16 MiB and sending nothing: cut short, not allocated.
    let mut bytes = b"<12'pola-package1+".to_vec();
    bytes.extend_from_slice(format!("{}:", 16 << 20).as_bytes());
    assert_eq!(refused(&bytes), PackageError::Truncated);
    // A huge version number.
    let bytes = format!("<12'pola-package{}+>", "9".repeat(5000));
    assert!(matches!(
        refused(bytes.as_bytes()),
        PackageError::TooComplex { .. }
    ));
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bytes = format!("<12'pola-package1+{deep}f0:>");
    assert!(matches!(
        refused(bytes.as_bytes()),
        PackageError::TooComplex { .. }
    ));
    // Six levels is one too many for a package.
    let bytes =
        with_request(r#"{"name" "x" "kind" 'web "reason" "r" "sites" [["https://a.example"]]}"#);
    assert!(matches!(refused(&bytes), PackageError::TooComplex { .. }));
}

#[test]
fn too_many_items_are_refused() {
    let many = "t".repeat(100_000);
    let bytes = format!("<12'pola-package1+[{many}]f0:>");
    assert!(matches!(
        refused(bytes.as_bytes()),
        PackageError::TooComplex { .. }
    ));
    // 33 requests: within the decoder's item limit, over the manifest's.
    let requests: Vec<String> = (0..33)
        .map(|i| format!(r#"{{"name" "r{i}" "kind" 'clock "reason" "r"}}"#))
        .collect();
    let bytes = with_request(&requests.join(" "));
    assert!(matches!(
        manifest_error(&bytes),
        ManifestError::TooMany {
            what: "requests",
            len: 33,
            max: 32,
            ..
        }
    ));
}

#[test]
fn wrong_label_version_and_layout() {
    let wasm = || Value::bytes(confined_wasm());
    let m = || manifest(GOOD_MANIFEST);
    let other_label = pola_syrup::encode(&Value::record(
        "pola-packagf",
        vec![Value::int(1i64), m(), Value::Bool(false), wasm()],
    ));
    assert_eq!(refused(&other_label), PackageError::NotAPackage);
    let string_label = pola_syrup::encode(&Value::Record(Box::new(pola_syrup::Record {
        label: Value::str("pola-package"),
        fields: vec![Value::int(1i64), m(), Value::Bool(false), wasm()],
    })));
    assert_eq!(refused(&string_label), PackageError::NotAPackage);
    assert_eq!(
        refused(&pola_syrup::encode(&m())),
        PackageError::NotAPackage
    );
    let v2 = package_value(vec![Value::int(2i64), m(), Value::Bool(false), wasm()]);
    let e = refused(&v2);
    assert_eq!(
        e,
        PackageError::UnsupportedVersion {
            version: "2".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "the package is format version 2; this desk reads version 1 only"
    );
    let big = package_value(vec![Value::int(i64::MAX), m()]);
    assert!(matches!(
        refused(&big),
        PackageError::UnsupportedVersion { .. }
    ));
    let text_version = package_value(vec![Value::str("1"), m(), Value::Bool(false), wasm()]);
    assert!(matches!(
        refused(&text_version),
        PackageError::Layout { .. }
    ));
    let empty = package_value(vec![]);
    assert!(matches!(refused(&empty), PackageError::Layout { .. }));
    let extra = package_value(vec![
        Value::int(1i64),
        m(),
        Value::Bool(false),
        wasm(),
        Value::Bool(true),
    ]);
    assert!(matches!(refused(&extra), PackageError::Layout { .. }));
    let short = package_value(vec![Value::int(1i64), m(), Value::Bool(false)]);
    assert!(matches!(refused(&short), PackageError::Layout { .. }));
    let icon_true = package_value(vec![Value::int(1i64), m(), Value::Bool(true), wasm()]);
    assert!(matches!(refused(&icon_true), PackageError::Layout { .. }));
    let wasm_text = package_value(vec![
        Value::int(1i64),
        m(),
        Value::Bool(false),
        Value::str("(module)"),
    ]);
    assert!(matches!(refused(&wasm_text), PackageError::Layout { .. }));
    let not_a_dict = package_value(vec![
        Value::int(1i64),
        Value::List(vec![]),
        Value::Bool(false),
        wasm(),
    ]);
    assert_eq!(manifest_error(&not_a_dict), ManifestError::NotADictionary);
}

#[test]
fn non_canonical_bytes_are_refused() {
    let good = with_manifest(GOOD_MANIFEST);
    // Canonical order is by encoded bytes (shorter lengths first, so
    // "description" with its 11 sorts before "name" with its 4); swap them.
    let canonical = b"{11\"description0\"4\"name5\"Notes6\"offers[]8\"requests[]}";
    let swapped = b"{4\"name5\"Notes11\"description0\"6\"offers[]8\"requests[]}";
    let at = good
        .windows(canonical.len())
        .position(|w| w == canonical)
        .expect("manifest bytes");
    let mut reordered = good.clone();
    reordered[at..at + canonical.len()].copy_from_slice(swapped);
    assert!(matches!(
        refused(&reordered),
        PackageError::Malformed { .. }
    ));
}

#[test]
fn unknown_and_missing_fields() {
    let e = manifest_error(&with_manifest(
        r#"{"name" "Notes" "description" "" "requests" [] "offers" [] "homepage" "x"}"#,
    ));
    assert_eq!(
        e,
        ManifestError::UnknownKey {
            place: Place::Manifest,
            key: "homepage".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "the manifest has an unknown field \"homepage\""
    );
    let e = manifest_error(&with_request(
        r#"{"name" "t" "kind" 'clock "reason" "r" "colour" "red"}"#,
    ));
    assert!(matches!(
        e,
        ManifestError::UnknownKey {
            place: Place::RequestAt(1),
            ..
        }
    ));
    let e = manifest_error(&with_manifest(
        r#"{"description" "" "requests" [] "offers" []}"#,
    ));
    assert_eq!(
        e,
        ManifestError::MissingKey {
            place: Place::Manifest,
            key: "name"
        }
    );
    for missing in ["description", "requests", "offers"] {
        let all = [
            (r#""name""#, r#""Notes""#),
            (r#""description""#, r#""""#),
            (r#""requests""#, "[]"),
            (r#""offers""#, "[]"),
        ];
        let body: Vec<String> = all
            .iter()
            .filter(|(k, _)| *k != format!("\"{missing}\""))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let e = manifest_error(&with_manifest(&format!("{{{}}}", body.join(" "))));
        assert!(
            matches!(e, ManifestError::MissingKey { key, .. } if key == missing),
            "{missing}: {e:?}"
        );
    }
    let e = manifest_error(&with_request(r#"{"name" "t" "kind" 'clock}"#));
    assert!(matches!(e, ManifestError::MissingKey { key: "reason", .. }));
    let e = manifest_error(&with_manifest(
        r#"{"name" "Notes" "description" "" "requests" [] "offers" [] 'browser t}"#,
    ));
    assert!(matches!(e, ManifestError::KeyNotAString { .. }));
}

#[test]
fn every_field_type_mismatch() {
    let m = |body: &str| manifest_error(&with_manifest(body));
    let wrong = |e: ManifestError, want: &str| {
        assert!(
            matches!(&e, ManifestError::WrongType { key, .. } if *key == want),
            "{want}: {e:?}"
        );
        assert!(e.to_string().contains(&format!("\"{want}\" is not")), "{e}");
    };
    wrong(
        m(r#"{"name" 'Notes "description" "" "requests" [] "offers" []}"#),
        "name",
    );
    wrong(
        m(r#"{"name" "Notes" "description" 0 "requests" [] "offers" []}"#),
        "description",
    );
    wrong(
        m(r#"{"name" "Notes" "description" "" "requests" {} "offers" []}"#),
        "requests",
    );
    wrong(
        m(r#"{"name" "Notes" "description" "" "requests" [] "offers" ['x]}"#),
        "offers",
    );
    wrong(
        m(r#"{"name" "Notes" "description" "" "requests" [] "offers" "x"}"#),
        "offers",
    );
    wrong(
        m(r#"{"name" "Notes" "browser" "yes" "description" "" "requests" [] "offers" []}"#),
        "browser",
    );
    let r = |body: &str| manifest_error(&with_request(body));
    wrong(r(r#"{"name" 't "kind" 'clock "reason" "r"}"#), "name");
    wrong(r(r#"{"name" "t" "kind" "clock" "reason" "r"}"#), "kind");
    wrong(r(r#"{"name" "t" "kind" 'clock "reason" :72}"#), "reason");
    wrong(
        r(r#"{"name" "t" "kind" 'file "access" "read" "reason" "r"}"#),
        "access",
    );
    wrong(
        r(r#"{"name" "t" "kind" 'file "access" 'read "path" :6e "reason" "r"}"#),
        "path",
    );
    wrong(
        r(r#"{"name" "t" "kind" 'web "sites" "https://a.example" "reason" "r"}"#),
        "sites",
    );
    wrong(
        r(r#"{"name" "t" "kind" 'object "interface" 'text "reason" "r"}"#),
        "interface",
    );
    let e = r("7");
    assert_eq!(e, ManifestError::RequestNotADictionary { index: 1 });
}

#[test]
fn duplicate_request_names() {
    let e = manifest_error(&with_request(
        r#"{"name" "t" "kind" 'clock "reason" "r"} {"name" "t" "kind" 'random "reason" "r"}"#,
    ));
    assert_eq!(e, ManifestError::DuplicateRequest { name: "t".into() });
    assert_eq!(e.to_string(), "the manifest has two requests named \"t\"");
}

#[test]
fn bad_names_kinds_and_sites() {
    let r = |body: &str| manifest_error(&with_request(body));
    for name in ["", "T", "1a", "a_b", "a b", &"a".repeat(33), "é"] {
        let e = r(&format!(
            r#"{{"name" "{name}" "kind" 'clock "reason" "r"}}"#
        ));
        assert!(
            matches!(e, ManifestError::BadRequestName { .. }),
            "{name}: {e:?}"
        );
    }
    assert!(matches!(
        r(r#"{"name" "t" "kind" 'camera "reason" "r"}"#),
        ManifestError::UnknownKind { .. }
    ));
    assert!(matches!(
        r(r#"{"name" "t" "kind" 'file "access" 'write "reason" "r"}"#),
        ManifestError::UnknownAccess { .. }
    ));
    let e = r(r#"{"name" "web" "kind" 'web "sites" ["https://a.example/"] "reason" "r"}"#);
    assert!(matches!(e, ManifestError::BadSite { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the manifest's request number 1 names the site \"https://a.example/\", which has more than a scheme, a host and a port (no path, not even \"/\", no query, no user name)"
    );
    assert!(matches!(
        r(r#"{"name" "w" "kind" 'web "sites" ["*" "https://a.example"] "reason" "r"}"#),
        ManifestError::AnywhereWithOthers { .. }
    ));
    assert!(matches!(
        r(r#"{"name" "w" "kind" 'web "sites" [] "reason" "r"}"#),
        ManifestError::MissingSites { .. }
    ));
    assert!(matches!(
        r(
            r#"{"name" "w" "kind" 'web "sites" ["https://a.example" "https://a.example"] "reason" "r"}"#
        ),
        ManifestError::DuplicateSite { .. }
    ));
    let seventeen: Vec<String> = (0..17)
        .map(|i| format!("\"https://s{i}.example\""))
        .collect();
    assert!(matches!(
        r(&format!(
            r#"{{"name" "w" "kind" 'web "sites" [{}] "reason" "r"}}"#,
            seventeen.join(" ")
        )),
        ManifestError::TooMany { what: "sites", .. }
    ));
    assert!(matches!(
        r(r#"{"name" "o" "kind" 'object "interface" "Text" "reason" "r"}"#),
        ManifestError::BadInterface { .. }
    ));
    let e = manifest_error(&with_manifest(
        r#"{"name" "Notes" "description" "" "requests" [] "offers" ["a" "a"]}"#,
    ));
    assert!(matches!(e, ManifestError::DuplicateOffer { .. }));
    let nine: Vec<String> = (0..9).map(|i| format!("\"i{i}\"")).collect();
    let e = manifest_error(&with_manifest(&format!(
        r#"{{"name" "Notes" "description" "" "requests" [] "offers" [{}]}}"#,
        nine.join(" ")
    )));
    assert!(matches!(e, ManifestError::TooMany { what: "offers", .. }));
}

#[test]
fn fields_each_kind_requires_or_forbids() {
    let r = |body: &str| manifest_error(&with_request(body));
    let e = r(r#"{"name" "x" "kind" 'folder "reason" "r"}"#);
    assert_eq!(
        e.to_string(),
        "the manifest's request \"x\" asks for a folder but says no access (read or read-write)"
    );
    assert!(matches!(
        r(r#"{"name" "x" "kind" 'web "reason" "r"}"#),
        ManifestError::MissingSites { .. }
    ));
    assert!(matches!(
        r(r#"{"name" "x" "kind" 'object "reason" "r"}"#),
        ManifestError::MissingInterface { .. }
    ));
    for (body, key) in [
        (
            r#"{"name" "x" "kind" 'clock "access" 'read "reason" "r"}"#,
            "access",
        ),
        (
            r#"{"name" "x" "kind" 'storage "path" "a" "reason" "r"}"#,
            "path",
        ),
        (
            r#"{"name" "x" "kind" 'file "access" 'read "sites" ["*"] "reason" "r"}"#,
            "sites",
        ),
        (
            r#"{"name" "x" "kind" 'random "sites" [] "reason" "r"}"#,
            "sites",
        ),
        (
            r#"{"name" "x" "kind" 'web "sites" ["*"] "interface" "a" "reason" "r"}"#,
            "interface",
        ),
        (
            r#"{"name" "x" "kind" 'web "sites" ["*"] "access" 'read "reason" "r"}"#,
            "access",
        ),
    ] {
        let e = r(body);
        assert!(
            matches!(&e, ManifestError::NotAllowed { key: k, .. } if *k == key),
            "{body}: {e:?}"
        );
        assert!(
            e.to_string().contains(&format!("which takes no \"{key}\"")),
            "{e}"
        );
    }
}

#[test]
fn control_and_bidi_characters_in_text() {
    let name = |n: &str| {
        manifest_error(&with_manifest(&format!(
            r#"{{"name" "{n}" "description" "" "requests" [] "offers" []}}"#
        )))
    };
    for n in [
        "evil\\u{202e}txt.exe",
        "Notes\\u{7}",
        "No\\u{200b}tes",
        "Notes ",
        "",
        "\\u{2066}Notes\\u{2069}",
    ] {
        let e = name(n);
        assert!(
            matches!(e, ManifestError::Text { key: "name", .. }),
            "{n}: {e:?}"
        );
    }
    let e = name("evil\\u{202e}txt.exe");
    assert_eq!(
        e.to_string(),
        "the manifest's name has a character that changes the direction of text (U+202E) at character 5"
    );
    let long = "n".repeat(65);
    assert!(matches!(
        name(&long),
        ManifestError::Text {
            problem: pola_powerbox::text::TextProblem::TooLong { len: 65, max: 64 },
            ..
        }
    ));
    let reason = manifest_error(&with_request(
        r#"{"name" "x" "kind" 'clock "reason" "line one\nline two"}"#,
    ));
    assert!(matches!(reason, ManifestError::Text { key: "reason", .. }));
    let path = manifest_error(&with_request(
        r#"{"name" "x" "kind" 'file "access" 'read "path" "a\u{202e}b" "reason" "r"}"#,
    ));
    assert!(matches!(path, ManifestError::Text { key: "path", .. }));
    // A hostile unknown key is quoted and escaped in the message.
    let e = manifest_error(&with_manifest(
        r#"{"\u{1b}[2J\u{202e}" 1 "name" "Notes" "description" "" "requests" [] "offers" []}"#,
    ));
    assert_eq!(
        e.to_string(),
        "the manifest has an unknown field \"\\u{1b}[2J\\u{202e}\""
    );
}

#[test]
fn a_module_that_imports_wasi_is_refused() {
    let bytes = package_value(vec![
        Value::int(1i64),
        manifest(GOOD_MANIFEST),
        Value::Bool(false),
        Value::bytes(wasi_wasm()),
    ]);
    let e = refused(&bytes);
    let PackageError::NotConfined { problem } = &e else {
        panic!("{e:?}")
    };
    assert!(problem.contains("wasi_snapshot_preview1"), "{problem}");
    assert!(problem.contains("\\u{1b}"), "escaped: {problem}");
    assert!(
        e.to_string()
            .starts_with("the package's program is not confined: forbidden import")
    );
    let junk = package_value(vec![
        Value::int(1i64),
        manifest(GOOD_MANIFEST),
        Value::Bool(false),
        Value::bytes(b"\0asm\x01\0\0\0\x01\xff".to_vec()),
    ]);
    assert!(matches!(refused(&junk), PackageError::InvalidWasm { .. }));
    let nothing = package_value(vec![
        Value::int(1i64),
        manifest(GOOD_MANIFEST),
        Value::Bool(false),
        Value::bytes(Vec::new()),
    ]);
    assert!(matches!(
        refused(&nothing),
        PackageError::InvalidWasm { .. }
    ));
    // pack refuses it too.
    assert!(matches!(
        pack("name = \"x\"", wasi_wasm(), None),
        Err(PackageError::NotConfined { .. })
    ));
}

fn with_icon(icon: Vec<u8>) -> Vec<u8> {
    package_value(vec![
        Value::int(1i64),
        manifest(GOOD_MANIFEST),
        Value::bytes(icon),
        Value::bytes(confined_wasm()),
    ])
}

fn icon_error(bytes: &[u8]) -> IconError {
    match refused(bytes) {
        PackageError::Icon(e) => e,
        other => panic!("expected an icon error, got {other:?}"),
    }
}

/// CRC-32 (ISO-HDLC), to forge PNG chunks with a valid checksum.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real PNG whose header is rewritten to claim `width`×`height`, with a
/// correct checksum.
fn forged_png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(1, 1);
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn hostile_icons() {
    assert_eq!(
        icon_error(&with_icon(forged_png(100_000, 100_000))),
        IconError::TooManyPixels {
            width: 100_000,
            height: 100_000
        }
    );
    assert!(matches!(
        icon_error(&with_icon(forged_png(513, 1))),
        IconError::TooManyPixels { .. }
    ));
    // Within the side limit, but the data is for 1×1: damaged, not a crash.
    assert!(matches!(
        icon_error(&with_icon(forged_png(512, 512))),
        IconError::Damaged { .. }
    ));
    let mut big = png(64, 64);
    big.resize(MAX_ICON_BYTES + 1, 0);
    assert!(matches!(
        icon_error(&with_icon(big)),
        IconError::TooLarge { .. }
    ));
    for not_png in [
        b"GIF89a\x01\0\x01\0".to_vec(),
        b"\xff\xd8\xff\xe0\0\x10JFIF".to_vec(),
        b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
        Vec::new(),
    ] {
        assert_eq!(icon_error(&with_icon(not_png)), IconError::NotPng);
    }
    let cut = png(64, 64)[..60].to_vec();
    assert!(matches!(
        icon_error(&with_icon(cut)),
        IconError::Damaged { .. }
    ));
    let e = icon_error(&with_icon(forged_png(100_000, 100_000)));
    assert_eq!(
        e.to_string(),
        "the icon is 100000×100000 pixels; at most 512×512 are allowed"
    );
    // The largest allowed icon decodes.
    Package::decode(&with_icon(png(512, 512))).expect("a 512×512 icon is fine");
}

#[test]
fn pack_reads_toml_strictly() {
    let e =
        pack("name = \"x\"\ncolour = \"red\"\n", confined_wasm(), None).expect_err("unknown key");
    assert!(matches!(e, PackageError::Toml { .. }), "{e:?}");
    assert!(e.to_string().contains("line 2"), "{e}");
    readable(&e);
    let e = pack(
        "name = \"x\"\n[[request]]\nname = \"a\"\nkind = \"file\"\nreason = \"r\"\n",
        confined_wasm(),
        None,
    )
    .expect_err("no access");
    assert!(matches!(
        e,
        PackageError::Manifest(ManifestError::MissingAccess {
            kind: Kind::File,
            ..
        })
    ));
    let e = pack("name = 7", confined_wasm(), None).expect_err("mistyped");
    assert!(matches!(e, PackageError::Toml { .. }));
    let e = pack(
        "name = \"x\"\n[[request]]\nname = \"a\"\nkind = \"file\"\naccess = \"all\"\nreason = \"r\"\n",
        confined_wasm(),
        None,
    )
    .expect_err("bad access");
    assert!(matches!(
        e,
        PackageError::Manifest(ManifestError::UnknownAccess { .. })
    ));
    let e = pack("name = \"x\"", confined_wasm(), Some(b"GIF89a".to_vec())).expect_err("gif");
    assert_eq!(e, PackageError::Icon(IconError::NotPng));
}

#[test]
fn every_single_byte_change_is_decoded_or_refused_readably() {
    let good = pack(GOOD_TOML, confined_wasm(), Some(png(8, 8))).expect("pack");
    let mut accepted = 0;
    for i in 0..good.len() {
        for b in [
            0u8,
            b'[',
            b'"',
            0x7f,
            good[i] ^ 0x20,
            good[i].wrapping_add(1),
        ] {
            let mut bytes = good.clone();
            bytes[i] = b;
            match Package::decode(&bytes) {
                Ok(p) => {
                    accepted += 1;
                    let again = Package::decode(&p.encode()).expect("re-decodes");
                    assert_eq!(again, p);
                }
                Err(e) => readable(&e),
            }
        }
    }
    // Changing a letter inside a reason or a name is still a package.
    assert!(accepted > 0);
}

#[test]
fn a_confined_module_over_the_hosts_bounds_is_refused_before_compiling() {
    // Confined (it imports nothing) but nested 600 blocks deep: the
    // sandbox's bound is 512, and the package is refused in its words.
    let mut body = String::new();
    for _ in 0..600 {
        body.push_str("(block ");
    }
    for _ in 0..600 {
        body.push(')');
    }
    let wasm = wat::parse_str(format!(
        r#"(module
             (memory (export "memory") 1)
             (func (export "pola_deliver") (param i32 i64) (result i32) {body} i32.const 0))"#
    ))
    .expect("wat");
    let bytes = package_value(vec![
        Value::int(1i64),
        manifest(GOOD_MANIFEST),
        Value::Bool(false),
        Value::bytes(wasm.clone()),
    ]);
    let e = refused(&bytes);
    let PackageError::WouldNotLoad { problem } = &e else {
        panic!("{e:?}")
    };
    assert!(problem.contains("512"), "{problem}");
    assert!(matches!(
        pack("name = \"x\"", wasm, None),
        Err(PackageError::WouldNotLoad { .. })
    ));
}

/// A confined caplet whose memory starts at `pages` 64 KiB pages.
fn wasm_with_memory(pages: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (memory (export "memory") {pages})
             (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#
    ))
    .expect("wat")
}

#[test]
fn whether_a_module_loads_is_decided_under_the_hosts_own_bounds() {
    // A host whose apps may have 64 MiB of memory (the desk's quota), and
    // a module that starts with 20 MiB: over the sandbox's default 16 MiB,
    // under this host's cap. The package is judged by the bounds of the
    // host that will load it, as that host's loader judges it.
    let mut host = pola_sandbox::Config::default();
    host.memory_bytes = 64 << 20;
    let twenty = wasm_with_memory(320);
    let bytes = package_value(vec![
        Value::int(1i64),
        manifest(GOOD_MANIFEST),
        Value::Bool(false),
        Value::bytes(twenty.clone()),
    ]);
    let p = Package::decode_with(&bytes, &host).expect("loads under the host's 64 MiB");
    assert_eq!(p.wasm, twenty);
    pola_powerbox::package::pack_with("name = \"x\"", twenty.clone(), None, &host)
        .expect("packs for the host");
    // The host's own loader agrees.
    let sandbox =
        pola_sandbox::Sandbox::<pola_sandbox::vat::VatLink>::new(host.clone()).expect("sandbox");
    sandbox.load(&twenty).expect("the host loads it");

    // Under the default bounds the same package would not load, and the
    // refusal names the bound.
    let PackageError::WouldNotLoad { problem } = refused(&bytes) else {
        panic!("refused for another reason")
    };
    assert!(
        problem.contains("bytes of initial memory") && problem.contains(&(16u64 << 20).to_string()),
        "{problem}"
    );

    // Over the host's own cap (64 MiB and one page): refused by the
    // decoder and by the loader alike.
    let over = wasm_with_memory(1025);
    let bytes = package_value(vec![
        Value::int(1i64),
        manifest(GOOD_MANIFEST),
        Value::Bool(false),
        Value::bytes(over.clone()),
    ]);
    let e = Package::decode_with(&bytes, &host).expect_err("over the host's cap");
    readable(&e);
    let PackageError::WouldNotLoad { problem } = &e else {
        panic!("{e:?}")
    };
    assert!(
        problem.contains("bytes of initial memory") && problem.contains(&(64u64 << 20).to_string()),
        "{problem}"
    );
    assert!(matches!(
        pola_powerbox::package::pack_with("name = \"x\"", over.clone(), None, &host),
        Err(PackageError::WouldNotLoad { .. })
    ));
    assert!(sandbox.load(&over).is_err(), "the loader refuses it too");
}
