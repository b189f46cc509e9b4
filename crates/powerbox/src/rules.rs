//! Granma's rules of POLA (the DarpaBrowser report, appendix 6) as one pure
//! function, [`warnings`], run on a manifest at install.
//!
//! | rule | fires when | why this line |
//! | --- | --- | --- |
//! | 1 | the name the app calls itself looks like an installed app's pet name or the name that app calls itself ([`name_looks_like`]), or its icon looks like an installed app's icon ([`looks_like`]) | "looks a lot like": confusables and small edits are the phishing tricks |
//! | 2 | it asks for 4 or more of the 5 kinds that reach beyond the app (file, folder, web, storage, object), or for 5 or more such requests in all | the stock apps need 1 or 2 kinds; a mail app needs 3 (web, storage, a folder); clock and random numbers reach nothing of the user's and are not counted |
//! | 3 | a file or folder request's path hint is outside the documents folder: absolute or `~`-relative and not under it, or climbing out with `..` | the hint is all the manifest says about where; the chooser itself only shows the documents folder |
//! | 4 | it asks to change a folder (everything in it), or to change 3 or more files | one or two read-write files is an editor or a converter; a folder or three files is "a bunch of stuff" |
//! | 5 | it asks for any web site (`"*"`), or more than 2 sites in all, and does not say it is a browser | Granma's own line: "one or two specific sites" |
//! | 6 | it asks to read anything (a file or a folder, read or read-write) and for any web access | reading plus a connection is how files leave the machine |
//!
//! The function does no I/O: paths are compared lexically (`.` and `..`
//! resolved on the text, `~` replaced by the home folder given).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::icon::{Icon, looks_like};
use crate::lookalike::name_looks_like;
use crate::package::{Access, Kind, Manifest, Request, Sites};
use crate::text::quote;
use crate::words::and_list;

/// An app already installed, as rule 1 sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledApp {
    /// The user's name for it.
    pub pet: String,
    /// The name it calls itself.
    pub calls_itself: String,
    /// Its icon's perceptual hash ([`Icon::hash`]), if it has an icon.
    pub icon_hash: Option<u64>,
}

/// One warning of the install dialog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Which of Granma's rules (1 to 6).
    pub rule: u8,
    /// What to do, in plain words for a person (app-chosen text quoted and
    /// escaped).
    pub text: String,
    /// The names of the requests it concerns (empty for rule 1).
    pub requests: Vec<String>,
}

/// Kinds counted by rule 2.
const FAR_KINDS: [Kind; 5] = [
    Kind::File,
    Kind::Folder,
    Kind::Web,
    Kind::Storage,
    Kind::Object,
];
/// Rule 2: this many distinct far-reaching kinds.
pub const MANY_KINDS: usize = 4;
/// Rule 2: this many far-reaching requests.
pub const MANY_REQUESTS: usize = 5;
/// Rule 4: this many read-write files.
pub const MANY_EDITS: usize = 3;
/// Rule 5: more than this many sites is wide web access.
pub const FEW_SITES: usize = 2;

/// The warnings of Granma's rules for installing `manifest` (with its
/// decoded `icon`, if any) next to the `installed` apps, where the user's
/// documents folder is `documents` and their home folder `home` (both
/// absolute). At most one warning per rule, in rule order.
pub fn warnings(
    manifest: &Manifest,
    icon: Option<&Icon>,
    installed: &[InstalledApp],
    documents: &Path,
    home: &Path,
) -> Vec<Warning> {
    let mut out = Vec::new();
    out.extend(rule1(manifest, icon, installed));
    out.extend(rule2(manifest));
    out.extend(rule3(manifest, documents, home));
    out.extend(rule4(manifest));
    out.extend(rule5(manifest));
    out.extend(rule6(manifest));
    out
}

fn names<'a>(requests: impl IntoIterator<Item = &'a Request>) -> Vec<String> {
    requests.into_iter().map(|r| r.name.clone()).collect()
}

fn rule1(manifest: &Manifest, icon: Option<&Icon>, installed: &[InstalledApp]) -> Option<Warning> {
    let name_match = installed.iter().find_map(|app| {
        [&app.pet, &app.calls_itself]
            .into_iter()
            .find(|n| name_looks_like(&manifest.name, n))
            .map(|n| (app, n))
    });
    let icon_match = icon.and_then(|icon| {
        installed
            .iter()
            .find(|app| app.icon_hash.is_some_and(|h| looks_like(icon.hash(), h)))
    });
    let text = match (name_match, icon_match) {
        (None, None) => return None,
        (Some((app, n)), icon) => {
            let also = match icon {
                Some(i) => format!(" Its icon also looks like the icon of {}.", quote(&i.pet)),
                None => String::new(),
            };
            let whose = if *n == app.pet {
                format!("your app {}", quote(&app.pet))
            } else {
                format!(
                    "{}, the name your app {} calls itself",
                    quote(n),
                    quote(&app.pet)
                )
            };
            format!(
                "It calls itself {}, which looks like {whose}.{also} Give it a new name and a new icon, so you can tell them apart.",
                quote(&manifest.name)
            )
        }
        (None, Some(app)) => format!(
            "Its icon looks like the icon of your app {}. Give it a new icon (and a new name), so you can tell them apart.",
            quote(&app.pet)
        ),
    };
    Some(Warning {
        rule: 1,
        text,
        requests: Vec::new(),
    })
}

fn rule2(manifest: &Manifest) -> Option<Warning> {
    let far: Vec<&Request> = manifest
        .requests
        .iter()
        .filter(|r| FAR_KINDS.contains(&r.kind))
        .collect();
    let kinds: BTreeSet<Kind> = far.iter().map(|r| r.kind).collect();
    if kinds.len() < MANY_KINDS && far.len() < MANY_REQUESTS {
        return None;
    }
    let nouns: Vec<String> = kinds.iter().map(|k| k.noun().to_owned()).collect();
    Some(Warning {
        rule: 2,
        text: format!(
            "It asks for many different things ({} requests: {}). Ordinary apps need one or two. Just say no, unless you know why it needs them all.",
            far.len(),
            and_list(&nouns)
        ),
        requests: names(far),
    })
}

/// `path` resolved lexically: `None` if it climbs above the root.
fn resolve(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// Whether a path hint points outside `documents` (lexically).
fn outside(hint: &str, documents: &Path, home: &Path) -> bool {
    let full = if hint == "~" {
        home.to_path_buf()
    } else if let Some(rest) = hint.strip_prefix("~/") {
        home.join(rest)
    } else if hint.starts_with('~') {
        // `~user`: another person's home.
        return true;
    } else if Path::new(hint).is_absolute() {
        PathBuf::from(hint)
    } else {
        documents.join(hint)
    };
    match (resolve(&full), resolve(documents)) {
        (Some(p), Some(d)) => !p.starts_with(d),
        _ => true,
    }
}

fn rule3(manifest: &Manifest, documents: &Path, home: &Path) -> Option<Warning> {
    let out: Vec<&Request> = manifest
        .requests
        .iter()
        .filter(|r| matches!(r.kind, Kind::File | Kind::Folder))
        .filter(|r| {
            r.path
                .as_deref()
                .is_some_and(|p| outside(p, documents, home))
        })
        .collect();
    if out.is_empty() {
        return None;
    }
    let places: Vec<String> = out
        .iter()
        .filter_map(|r| r.path.as_deref().map(quote))
        .collect();
    let verb = if out.iter().any(|r| r.access == Some(Access::ReadWrite)) {
        "read or change"
    } else {
        "read"
    };
    Some(Warning {
        rule: 3,
        text: format!(
            "It asks to {verb} {}, outside your documents folder. Just say no; if you must, choose something inside your documents folder instead.",
            and_list(&places)
        ),
        requests: names(out),
    })
}

fn rule4(manifest: &Manifest) -> Option<Warning> {
    let edits = |k: Kind| {
        manifest
            .requests
            .iter()
            .filter(move |r| r.kind == k && r.access == Some(Access::ReadWrite))
    };
    let folders: Vec<&Request> = edits(Kind::Folder).collect();
    let files: Vec<&Request> = edits(Kind::File).collect();
    if folders.is_empty() && files.len() < MANY_EDITS {
        return None;
    }
    let text = if folders.is_empty() {
        format!(
            "It asks to change {} different files. Just say no, or let it only read them.",
            files.len()
        )
    } else {
        "It asks to change a whole folder and everything in it. Just say no, or let it only read, or give it one file instead.".to_owned()
    };
    Some(Warning {
        rule: 4,
        text,
        requests: names(folders.into_iter().chain(files)),
    })
}

fn rule5(manifest: &Manifest) -> Option<Warning> {
    if manifest.browser {
        return None;
    }
    let web: Vec<&Request> = manifest
        .requests
        .iter()
        .filter(|r| r.kind == Kind::Web)
        .collect();
    let anywhere = web.iter().any(|r| r.sites == Sites::Anywhere);
    let sites: BTreeSet<String> = web
        .iter()
        .filter_map(|r| match &r.sites {
            Sites::Some(list) => Some(list.iter().map(ToString::to_string)),
            _ => None,
        })
        .flatten()
        .collect();
    if !anywhere && sites.len() <= FEW_SITES {
        return None;
    }
    let what = if anywhere {
        "any web site".to_owned()
    } else {
        format!("{} web sites", sites.len())
    };
    Some(Warning {
        rule: 5,
        text: format!(
            "It asks to connect to {what}, but it does not say it is a web browser. Say yes only if you will use it as your web browser; otherwise let it reach one site."
        ),
        requests: names(web),
    })
}

fn rule6(manifest: &Manifest) -> Option<Warning> {
    let reads: Vec<&Request> = manifest
        .requests
        .iter()
        .filter(|r| matches!(r.kind, Kind::File | Kind::Folder))
        .collect();
    let web: Vec<&Request> = manifest
        .requests
        .iter()
        .filter(|r| r.kind == Kind::Web)
        .collect();
    if reads.is_empty() || web.is_empty() {
        return None;
    }
    let what = if reads.iter().any(|r| r.kind == Kind::Folder) {
        "a folder of yours"
    } else {
        "your files"
    };
    Some(Warning {
        rule: 6,
        text: format!(
            "It asks to read {what} and also to connect to the web: it could send what it reads away. Just say no to one or the other, unless you trust it."
        ),
        requests: names(reads.into_iter().chain(web)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;

    const DOCS: &str = "/home/granma/Documents";
    const HOME: &str = "/home/granma";

    fn req(name: &str, kind: Kind) -> Request {
        Request {
            name: name.into(),
            kind,
            reason: "because".into(),
            access: matches!(kind, Kind::File | Kind::Folder).then_some(Access::Read),
            path: None,
            sites: if kind == Kind::Web {
                Sites::Some(vec![Origin::parse("https://example.org").expect("origin")])
            } else {
                Sites::None
            },
            interface: (kind == Kind::Object).then(|| "text-source".to_owned()),
        }
    }

    fn rw(mut r: Request) -> Request {
        r.access = Some(Access::ReadWrite);
        r
    }

    fn at(mut r: Request, path: &str) -> Request {
        r.path = Some(path.into());
        r
    }

    fn sites(mut r: Request, list: &[&str]) -> Request {
        r.sites = if list == ["*"] {
            Sites::Anywhere
        } else {
            Sites::Some(
                list.iter()
                    .map(|s| Origin::parse(s).expect("origin"))
                    .collect(),
            )
        };
        r
    }

    fn manifest(name: &str, requests: Vec<Request>) -> Manifest {
        let m = Manifest {
            name: name.into(),
            description: String::new(),
            requests,
            offers: Vec::new(),
            browser: false,
        };
        m.check().expect("test manifests are valid");
        m
    }

    fn installed() -> Vec<InstalledApp> {
        vec![
            InstalledApp {
                pet: "My notes".into(),
                calls_itself: "Notes".into(),
                icon_hash: Some(0x0f0f_0f0f_0f0f_0f0f),
            },
            InstalledApp {
                pet: "Bank".into(),
                calls_itself: "Hansa Bank".into(),
                icon_hash: None,
            },
        ]
    }

    fn fired(m: &Manifest) -> Vec<u8> {
        warnings(m, None, &installed(), Path::new(DOCS), Path::new(HOME))
            .iter()
            .map(|w| w.rule)
            .collect()
    }

    fn warning(m: &Manifest, rule: u8) -> Warning {
        warnings(m, None, &installed(), Path::new(DOCS), Path::new(HOME))
            .into_iter()
            .find(|w| w.rule == rule)
            .expect("the rule fires")
    }

    #[test]
    fn small_honest_apps_get_no_warning() {
        let editor = manifest(
            "Text editor",
            vec![
                rw(at(req("doc", Kind::File), "notes.txt")),
                req("time", Kind::Clock),
            ],
        );
        assert_eq!(fired(&editor), Vec::<u8>::new());
        let weather = manifest(
            "Weather",
            vec![
                sites(req("forecast", Kind::Web), &["https://weather.example"]),
                req("prefs", Kind::Storage),
                req("time", Kind::Clock),
                req("dice", Kind::Random),
            ],
        );
        assert_eq!(fired(&weather), Vec::<u8>::new());
    }

    #[test]
    fn rule1_names_that_look_alike() {
        let m = manifest("N0tes", vec![]);
        let w = warning(&m, 1);
        assert!(w.text.contains("\"N0tes\""), "{}", w.text);
        assert!(w.text.contains("\"My notes\""), "{}", w.text);
        // The pet name counts too.
        assert_eq!(fired(&manifest("Bank", vec![])), vec![1]);
        assert_eq!(fired(&manifest("Hansa Bаnk", vec![])), vec![1]); // Cyrillic а
    }

    #[test]
    fn rule1_icons_that_look_alike() {
        let png = {
            let img = image::RgbaImage::from_fn(64, 64, |x, _| {
                image::Rgba(if x < 32 { [0, 0, 0, 255] } else { [0, 0, 0, 0] })
            });
            let mut out = Vec::new();
            image::ImageEncoder::write_image(
                image::codecs::png::PngEncoder::new(&mut out),
                img.as_raw(),
                64,
                64,
                image::ExtendedColorType::Rgba8,
            )
            .expect("png");
            out
        };
        let icon = Icon::from_png(&png).expect("icon");
        let mut apps = installed();
        let m = manifest("Sketch", vec![]);
        let run = |apps: &[InstalledApp]| {
            warnings(&m, Some(&icon), apps, Path::new(DOCS), Path::new(HOME))
        };
        assert!(run(&apps).is_empty(), "no installed icon is alike yet");
        apps[1].icon_hash = Some(icon.hash() ^ 0b111);
        let w = run(&apps);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].rule, 1);
        assert!(w[0].text.contains("icon"), "{}", w[0].text);
        assert!(w[0].text.contains("\"Bank\""), "{}", w[0].text);
    }

    #[test]
    fn rule1_near_miss() {
        assert_eq!(fired(&manifest("Clock", vec![])), Vec::<u8>::new());
        assert_eq!(fired(&manifest("Nodes app", vec![])), Vec::<u8>::new());
    }

    #[test]
    fn rule2_many_kinds() {
        let m = manifest(
            "Everything",
            vec![
                req("doc", Kind::File),
                req("pics", Kind::Folder),
                req("data", Kind::Storage),
                req("peer", Kind::Object),
            ],
        );
        let w = warning(&m, 2);
        assert_eq!(w.requests, vec!["doc", "pics", "data", "peer"]);
        // Five requests of fewer kinds fire it too.
        let files = manifest(
            "Files",
            (1..=5).map(|i| req(&format!("f{i}"), Kind::File)).collect(),
        );
        assert!(fired(&files).contains(&2));
    }

    #[test]
    fn rule2_near_miss() {
        // Three far kinds plus clock and random: a mail app.
        let m = manifest(
            "Mail",
            vec![
                sites(req("server", Kind::Web), &["https://mail.example"]),
                req("box", Kind::Storage),
                req("doc", Kind::File),
                req("time", Kind::Clock),
                req("ids", Kind::Random),
            ],
        );
        assert!(!fired(&m).contains(&2), "{:?}", fired(&m));
        let four = manifest(
            "Files",
            (1..=4).map(|i| req(&format!("f{i}"), Kind::File)).collect(),
        );
        assert!(!fired(&four).contains(&2));
    }

    #[test]
    fn rule3_outside_documents() {
        for hint in [
            "~/.ssh",
            "/etc/passwd",
            "../secret.txt",
            "letters/../../.bashrc",
            "~",
            "~root/x",
            "/home/granma/Documents/../.config",
            "/home/granma/Documents2/x",
        ] {
            let m = manifest("Reader", vec![at(req("doc", Kind::File), hint)]);
            let w = warning(&m, 3);
            assert_eq!(w.requests, vec!["doc"], "{hint}");
        }
        let m = manifest("Keys", vec![rw(at(req("keys", Kind::Folder), "~/.ssh"))]);
        assert!(warning(&m, 3).text.contains("read or change \"~/.ssh\""));
    }

    #[test]
    fn rule3_near_miss() {
        for hint in [
            "notes.txt",
            "letters/bobbie.txt",
            "letters/../notes.txt",
            "./notes.txt",
            "~/Documents/notes.txt",
            "/home/granma/Documents",
            "/home/granma/Documents/cards/",
        ] {
            let m = manifest("Reader", vec![at(req("doc", Kind::File), hint)]);
            assert!(!fired(&m).contains(&3), "{hint}");
        }
        // No hint: the user picks in the chooser, inside the documents.
        assert!(!fired(&manifest("Reader", vec![req("doc", Kind::File)])).contains(&3));
    }

    #[test]
    fn rule4_edit_many_things() {
        let folder = manifest("Organiser", vec![rw(req("photos", Kind::Folder))]);
        assert_eq!(warning(&folder, 4).requests, vec!["photos"]);
        let files = manifest(
            "Merger",
            vec![
                rw(req("a", Kind::File)),
                rw(req("b", Kind::File)),
                rw(req("c", Kind::File)),
            ],
        );
        assert!(warning(&files, 4).text.contains("3 different files"));
    }

    #[test]
    fn rule4_near_miss() {
        let m = manifest(
            "Converter",
            vec![
                rw(req("in", Kind::File)),
                rw(req("out", Kind::File)),
                req("photos", Kind::Folder),
            ],
        );
        assert!(!fired(&m).contains(&4));
    }

    #[test]
    fn rule5_wide_web() {
        let any = manifest("Game", vec![sites(req("net", Kind::Web), &["*"])]);
        assert!(warning(&any, 5).text.contains("any web site"));
        let three = manifest(
            "Game",
            vec![
                sites(
                    req("a", Kind::Web),
                    &["https://a.example", "https://b.example"],
                ),
                sites(req("b", Kind::Web), &["https://c.example"]),
            ],
        );
        assert_eq!(warning(&three, 5).requests, vec!["a", "b"]);
    }

    #[test]
    fn rule5_near_miss() {
        let two = manifest(
            "Game",
            vec![
                sites(
                    req("a", Kind::Web),
                    &["https://a.example", "https://b.example"],
                ),
                sites(req("b", Kind::Web), &["https://a.example"]),
            ],
        );
        assert!(!fired(&two).contains(&5));
        let mut browser = manifest("Browser", vec![sites(req("net", Kind::Web), &["*"])]);
        browser.browser = true;
        assert!(!fired(&browser).contains(&5));
    }

    #[test]
    fn rule6_read_and_web() {
        let m = manifest(
            "Uploader",
            vec![req("doc", Kind::File), req("net", Kind::Web)],
        );
        assert_eq!(warning(&m, 6).requests, vec!["doc", "net"]);
        let folder = manifest(
            "Sync",
            vec![req("docs", Kind::Folder), req("net", Kind::Web)],
        );
        assert!(warning(&folder, 6).text.contains("a folder"));
    }

    #[test]
    fn rule6_near_miss() {
        // Web plus its own storage and an object: nothing of the user's read.
        let m = manifest(
            "Reader",
            vec![
                req("net", Kind::Web),
                req("cache", Kind::Storage),
                req("peer", Kind::Object),
            ],
        );
        assert!(!fired(&m).contains(&6));
    }

    #[test]
    fn app_text_in_warnings_is_escaped() {
        let m = manifest(
            "Reader",
            vec![at(req("doc", Kind::File), "/etc/\"x\u{200D}y")],
        );
        let w = warning(&m, 3);
        assert!(w.text.contains("\"/etc/\\u{22}x\\u{200d}y\""), "{}", w.text);
    }
}
