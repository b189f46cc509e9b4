//! Packages (`*.polapkg`) and their manifests: the format of
//! `crates/desk/PROTOCOL.md` section 1, read strictly.
//!
//! A package is one canonical Syrup value, `<'pola-package 1 MANIFEST ICON
//! WASM>`, at most [`MAX_PACKAGE_BYTES`]. [`Package::decode`] refuses, with
//! a [`PackageError`] whose `Display` is a plain sentence for a person:
//!
//! - anything over the size cap, before decoding a byte of it;
//! - malformed or non-canonical Syrup, and values deeper, longer or with
//!   more items than a package can have (the decoder's [`Limits`] are set
//!   to what the format needs, so a hostile package cannot make it
//!   allocate much more than the package's own size);
//! - another label, another version, other fields;
//! - a manifest that breaks any rule of [`Manifest::check`];
//! - an icon that [`Icon::from_png`] refuses;
//! - a module that is not valid WebAssembly, not a confined caplet, or
//!   one the host would not load (checked with `pola_sandbox::check_with`
//!   under the sandbox [`Config`](pola_sandbox::Config) the module will be
//!   loaded with, last, since it is the costliest).
//!
//! Whether a module loads depends on the host's bounds (its memory cap,
//! for one), so the decoder is given them: [`Package::decode_with`] the
//! config the host loads apps with (the desk's); [`Package::decode`] checks
//! against the sandbox's defaults, for tools that do not load the module.
//!
//! Every string an app chose is escaped ([`crate::text::quote`]) before it
//! goes into an error message.
//!
//! [`pack`] builds a package from a TOML manifest of the same shape (the
//! file a developer writes) through the same checks, and
//! [`Package::encode`] writes the canonical bytes back.
//!
//! # Invariants
//!
//! A [`Package`] made by [`Package::decode`], [`Package::new`] or [`pack`]
//! has a manifest that passes [`Manifest::check`], an icon that passed
//! [`Icon::from_png`] and a confined module that loads under the bounds
//! it was checked against. The fields are public so the
//! desk can read them; code that builds one by hand must call
//! [`Package::new`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use pola_syrup::{Limits, Value};
use serde::Deserialize;

use crate::icon::{Icon, IconError};
use crate::origin::{Origin, OriginError};
use crate::text::{self, TextProblem, quote};

/// The largest package, in bytes (16 MiB).
pub const MAX_PACKAGE_BYTES: usize = 16 << 20;
/// The record label of a package.
pub const PACKAGE_LABEL: &str = "pola-package";
/// The format version this crate reads and writes.
pub const FORMAT_VERSION: i64 = 1;
/// The longest name an app may call itself, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 280;
/// The longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 280;
/// The longest path hint, in characters (not in PROTOCOL.md's table: this
/// crate's choice, twice a long real path).
pub const MAX_PATH_CHARS: usize = 256;
/// The most requests in one manifest.
pub const MAX_REQUESTS: usize = 32;
/// The most interfaces in `"offers"`.
pub const MAX_OFFERS: usize = 8;
/// The most sites in one web request.
pub const MAX_SITES: usize = 16;
/// The longest request name, in characters.
pub const MAX_REQUEST_NAME: usize = 32;
/// The longest interface name, in characters.
pub const MAX_INTERFACE_NAME: usize = 64;

/// A kind of authority a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// One file the user chooses.
    File,
    /// One folder the user chooses.
    Folder,
    /// HTTP(S) to some sites, or anywhere.
    Web,
    /// The current time.
    Clock,
    /// Random bytes.
    Random,
    /// The app's own storage.
    Storage,
    /// An object another app offers for an interface.
    Object,
}

impl Kind {
    /// Every kind, in order.
    pub const ALL: [Kind; 7] = [
        Kind::File,
        Kind::Folder,
        Kind::Web,
        Kind::Clock,
        Kind::Random,
        Kind::Storage,
        Kind::Object,
    ];

    /// Its name in a manifest (`file`, `folder`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Folder => "folder",
            Kind::Web => "web",
            Kind::Clock => "clock",
            Kind::Random => "random",
            Kind::Storage => "storage",
            Kind::Object => "object",
        }
    }

    /// The kind named `s`, if any.
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// "a file", "the web", …: for sentences.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::File => "a file",
            Kind::Folder => "a folder",
            Kind::Web => "the web",
            Kind::Clock => "the clock",
            Kind::Random => "random numbers",
            Kind::Storage => "its own storage",
            Kind::Object => "another app's object",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a file or folder request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Read only.
    Read,
    /// Read and change.
    ReadWrite,
}

impl Access {
    /// Its name in a manifest (`read`, `read-write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::ReadWrite => "read-write",
        }
    }

    /// The access named `s`, if any.
    pub fn from_name(s: &str) -> Option<Access> {
        match s {
            "read" => Some(Access::Read),
            "read-write" => Some(Access::ReadWrite),
            _ => None,
        }
    }
}

/// The sites a web request names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Sites {
    /// No `"sites"` field (every kind but web).
    None,
    /// These origins (for a valid web request: 1 to [`MAX_SITES`], distinct).
    Some(Vec<Origin>),
    /// `["*"]`: any site.
    Anywhere,
}

/// One authority the app asks for at install.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// The key the app receives the grant under (`[a-z][a-z0-9-]{0,31}`).
    pub name: String,
    /// What it asks for.
    pub kind: Kind,
    /// Why, in the app's words (1–280 characters).
    pub reason: String,
    /// For files and folders: read or read-write.
    pub access: Option<Access>,
    /// For files and folders: the place the app suggests.
    pub path: Option<String>,
    /// For web: the sites.
    pub sites: Sites,
    /// For objects: the interface wanted.
    pub interface: Option<String>,
}

/// What an app says about itself and asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Manifest {
    /// The name the app calls itself (1–64 characters).
    pub name: String,
    /// What it says it does (0–280 characters).
    pub description: String,
    /// The authorities it asks for at install (at most 32, names unique).
    pub requests: Vec<Request>,
    /// Interfaces it may offer to other apps (at most 8, distinct).
    pub offers: Vec<String>,
    /// Whether it says it is a web browser (Granma's rule 5).
    pub browser: bool,
}

/// A package: the manifest, the icon and the confined module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// The manifest (checked).
    pub manifest: Manifest,
    /// The icon (decoded and re-encoded), if the package has one.
    pub icon: Option<Icon>,
    /// The caplet module (checked confined).
    pub wasm: Vec<u8>,
}

/// Where in a manifest a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// The manifest itself.
    Manifest,
    /// A request, by position (from 1), before its name is known good.
    RequestAt(usize),
    /// A request, by its (valid) name.
    Request(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Manifest => f.write_str("the manifest"),
            Place::RequestAt(i) => write!(f, "the manifest's request number {i}"),
            Place::Request(name) => write!(f, "the manifest's request {}", quote(name)),
        }
    }
}

/// Why a manifest is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest is not a dictionary.
    #[error("the manifest is not a dictionary")]
    NotADictionary,
    /// A request is not a dictionary.
    #[error("the manifest's request number {index} is not a dictionary")]
    RequestNotADictionary {
        /// Position (from 1).
        index: usize,
    },
    /// A field name that is not a string.
    #[error("{place} has a field whose name is not a string")]
    KeyNotAString {
        /// Where.
        place: Place,
    },
    /// A field this format does not have.
    #[error("{place} has an unknown field {}", quote(.key))]
    UnknownKey {
        /// Where.
        place: Place,
        /// The field's name.
        key: String,
    },
    /// A required field is absent.
    #[error("{place} has no \"{key}\"")]
    MissingKey {
        /// Where.
        place: Place,
        /// The field's name.
        key: &'static str,
    },
    /// A field of the wrong type.
    #[error("{place}'s \"{key}\" is not {expected}")]
    WrongType {
        /// Where.
        place: Place,
        /// The field's name.
        key: &'static str,
        /// What it should be, in words ("a string", "a list of strings").
        expected: &'static str,
    },
    /// A text field breaks the character rules or its length.
    #[error("{place}'s {key} {problem}")]
    Text {
        /// Where.
        place: Place,
        /// The field's name.
        key: &'static str,
        /// What is wrong.
        problem: TextProblem,
    },
    /// A list is too long.
    #[error("{place} lists {len} {what}; at most {max} are allowed")]
    TooMany {
        /// Where.
        place: Place,
        /// What is listed ("requests", "offers", "sites").
        what: &'static str,
        /// How many.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// A request name outside `[a-z][a-z0-9-]{0,31}`.
    #[error(
        "{place} is named {}, but a request name must be a lower-case letter followed by at most 31 lower-case letters, digits or hyphens",
        quote(.name)
    )]
    BadRequestName {
        /// Where.
        place: Place,
        /// The name.
        name: String,
    },
    /// Two requests with one name.
    #[error("the manifest has two requests named {}", quote(.name))]
    DuplicateRequest {
        /// The name.
        name: String,
    },
    /// An interface name outside `[a-z][a-z0-9.-]{0,63}`.
    #[error(
        "{place} names the interface {}, but an interface name must be a lower-case letter followed by at most 63 lower-case letters, digits, dots or hyphens",
        quote(.name)
    )]
    BadInterface {
        /// Where.
        place: Place,
        /// The name.
        name: String,
    },
    /// An interface listed twice under `"offers"`.
    #[error("the manifest offers the interface {} twice", quote(.name))]
    DuplicateOffer {
        /// The name.
        name: String,
    },
    /// A kind this format does not have.
    #[error(
        "{place} asks for {}, which is not a kind of authority (file, folder, web, clock, random, storage, object)",
        quote(.kind)
    )]
    UnknownKind {
        /// Where.
        place: Place,
        /// The kind given.
        kind: String,
    },
    /// An access other than `read` and `read-write`.
    #[error("{place} asks for access {}, which is neither read nor read-write", quote(.access))]
    UnknownAccess {
        /// Where.
        place: Place,
        /// The access given.
        access: String,
    },
    /// A file or folder request without `"access"`.
    #[error("{place} asks for {} but says no access (read or read-write)", .kind.noun())]
    MissingAccess {
        /// Where.
        place: Place,
        /// File or folder.
        kind: Kind,
    },
    /// A field that this kind of request does not take.
    #[error("{place} asks for {}, which takes no \"{key}\"", .kind.noun())]
    NotAllowed {
        /// Where.
        place: Place,
        /// The kind.
        kind: Kind,
        /// The field.
        key: &'static str,
    },
    /// A web request without sites.
    #[error(
        "{place} asks for the web but names no sites (list the sites, or [\"*\"] for anywhere)"
    )]
    MissingSites {
        /// Where.
        place: Place,
    },
    /// An object request without an interface.
    #[error("{place} asks for another app's object but names no interface")]
    MissingInterface {
        /// Where.
        place: Place,
    },
    /// A site that is not a canonical origin.
    #[error("{place} names the site {}, which {problem}", quote(.site))]
    BadSite {
        /// Where.
        place: Place,
        /// The site given.
        site: String,
        /// What is wrong.
        problem: OriginError,
    },
    /// A site listed twice.
    #[error("{place} names the site {} twice", quote(.site))]
    DuplicateSite {
        /// Where.
        place: Place,
        /// The site.
        site: String,
    },
    /// `"*"` together with other sites.
    #[error("{place} names \"*\" (anywhere) together with other sites; \"*\" must stand alone")]
    AnywhereWithOthers {
        /// Where.
        place: Place,
    },
}

/// Why a package is refused. `Display` is one plain sentence for a person;
/// every string the package chose is escaped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    // Limits.
    /// Over [`MAX_PACKAGE_BYTES`]; nothing was decoded.
    #[error("the package is {len} bytes; at most {max} bytes (16 MiB) are allowed")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The Syrup is deeper, longer or has more items than any package can.
    #[error(
        "the package is not a pola package: it holds more, or nests deeper, than a package can (at byte {offset})"
    )]
    TooComplex {
        /// Where the decoder stopped.
        offset: usize,
    },

    // Malformed bytes.
    /// The bytes end inside the value.
    #[error("the package is cut short: its bytes end in the middle (is the file complete?)")]
    Truncated,
    /// Malformed or non-canonical Syrup.
    #[error("the package is damaged: its bytes are not well formed at byte {offset} ({detail})")]
    Malformed {
        /// Where.
        offset: usize,
        /// What the decoder found.
        detail: String,
    },

    // Broke the format's rules.
    /// Not a `pola-package` record.
    #[error("this is not a pola package")]
    NotAPackage,
    /// Another format version.
    #[error("the package is format version {version}; this desk reads version 1 only")]
    UnsupportedVersion {
        /// The version it says, escaped.
        version: String,
    },
    /// The record's fields are not `1 MANIFEST ICON WASM`.
    #[error("the package is not laid out as a version 1 package: {detail}")]
    Layout {
        /// What is wrong.
        detail: &'static str,
    },
    /// The manifest breaks a rule.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The icon is refused.
    #[error(transparent)]
    Icon(#[from] IconError),
    /// The module is not valid WebAssembly.
    #[error("the package's program is not a valid WebAssembly module: {detail}")]
    InvalidWasm {
        /// The validator's first line, escaped.
        detail: String,
    },
    /// The module asks for more than the caplet interface.
    #[error("the package's program is not confined: {problem}")]
    NotConfined {
        /// The first problem, escaped.
        problem: String,
    },
    /// The module is confined but over the host's bounds (too big or too
    /// deeply nested to compile safely, more than one memory, …).
    #[error("the package's program would not load: {problem}")]
    WouldNotLoad {
        /// The first bound it exceeds, in plain words (escaped).
        problem: String,
    },
    /// A TOML manifest (for [`pack`]) that does not parse.
    #[error("the manifest file is not valid: {detail}")]
    Toml {
        /// What the TOML reader said, with the line, escaped.
        detail: String,
    },

    // Local fault.
    /// The sandbox's checking engine could not be set up (not the
    /// package's fault).
    #[error("the desk could not check the package's program: {detail}")]
    Checker {
        /// What failed.
        detail: String,
    },
}

impl PackageError {
    fn from_syrup(e: pola_syrup::DecodeError) -> PackageError {
        if e.kind.is_incomplete() {
            PackageError::Truncated
        } else if e.kind.is_limit() {
            PackageError::TooComplex { offset: e.offset }
        } else {
            PackageError::Malformed {
                offset: e.offset,
                detail: e.kind.to_string(),
            }
        }
    }
}

/// The decoder limits for a package: what the format needs and no more.
fn package_limits() -> Limits {
    let mut limits = Limits::default();
    // record > manifest > requests > request > sites > site.
    limits.max_depth = 5;
    limits.max_len = MAX_PACKAGE_BYTES;
    limits.max_int_digits = 20;
    // The longest list: 32 requests; a request has 7 keys; 16 sites.
    limits.max_items = 2 * MAX_REQUESTS;
    // 32 requests of 7 keys, 7 values and 16 sites, plus the rest.
    limits.max_values = 1024 + MAX_REQUESTS * (14 + MAX_SITES + 1);
    limits.max_value_bytes = MAX_PACKAGE_BYTES;
    limits
}

impl Package {
    /// Decodes and checks a package (see the module doc for every check),
    /// its module against the sandbox's default bounds
    /// (`pola_sandbox::Config::default()`). A host that will load the module
    /// decodes with [`Package::decode_with`] and the config it loads with.
    ///
    /// # Errors
    /// The first problem found, as a [`PackageError`].
    pub fn decode(bytes: &[u8]) -> Result<Package, PackageError> {
        Package::decode_with(bytes, &pola_sandbox::Config::default())
    }

    /// Decodes and checks a package (see the module doc for every check),
    /// its module with `pola_sandbox::check_with(wasm, config)`: the same
    /// decision a sandbox built with `config` makes when it loads it, so a
    /// package accepted here is one that sandbox loads (compiling aside).
    ///
    /// # Errors
    /// The first problem found, as a [`PackageError`];
    /// [`PackageError::WouldNotLoad`] names the first of `config`'s bounds
    /// the module exceeds.
    pub fn decode_with(
        bytes: &[u8],
        config: &pola_sandbox::Config,
    ) -> Result<Package, PackageError> {
        if bytes.len() > MAX_PACKAGE_BYTES {
            return Err(PackageError::TooLarge {
                len: bytes.len(),
                max: MAX_PACKAGE_BYTES,
            });
        }
        let value =
            pola_syrup::decode_with(bytes, &package_limits()).map_err(PackageError::from_syrup)?;
        let Value::Record(record) = value else {
            return Err(PackageError::NotAPackage);
        };
        if record.label.as_symbol() != Some(PACKAGE_LABEL) {
            return Err(PackageError::NotAPackage);
        }
        let fields = record.fields;
        let Some(version) = fields.first() else {
            return Err(PackageError::Layout {
                detail: "it has no version",
            });
        };
        match version {
            Value::Int(i) if i.as_i64() == Some(FORMAT_VERSION) => {}
            Value::Int(i) => {
                return Err(PackageError::UnsupportedVersion {
                    version: text::escape(&i.to_string()),
                });
            }
            _ => {
                return Err(PackageError::Layout {
                    detail: "its version is not a number",
                });
            }
        }
        let [_, manifest, icon, wasm] = <[Value; 4]>::try_from(fields).map_err(|_| {
            PackageError::Layout {
                detail: "it must have exactly four fields: the version, the manifest, the icon and the program",
            }
        })?;
        let manifest = manifest_from_value(&manifest)?;
        manifest.check()?;
        let icon = match icon {
            Value::Bool(false) => None,
            Value::Bytes(b) => Some(Icon::from_png(&b)?),
            _ => {
                return Err(PackageError::Layout {
                    detail: "its icon is neither PNG bytes nor f (no icon)",
                });
            }
        };
        let Value::Bytes(wasm) = wasm else {
            return Err(PackageError::Layout {
                detail: "its program is not bytes",
            });
        };
        check_wasm(&wasm, config)?;
        Ok(Package {
            manifest,
            icon,
            wasm: wasm.to_vec(),
        })
    }

    /// A package from its parts, checked as [`Package::decode`] checks
    /// (the module against the sandbox's default bounds).
    ///
    /// # Errors
    /// The manifest's first problem, or the module's.
    pub fn new(
        manifest: Manifest,
        icon: Option<Icon>,
        wasm: Vec<u8>,
    ) -> Result<Package, PackageError> {
        Package::new_with(manifest, icon, wasm, &pola_sandbox::Config::default())
    }

    /// A package from its parts, checked as [`Package::decode_with`]
    /// checks (the module against `config`'s bounds).
    ///
    /// # Errors
    /// The manifest's first problem, or the module's.
    pub fn new_with(
        manifest: Manifest,
        icon: Option<Icon>,
        wasm: Vec<u8>,
        config: &pola_sandbox::Config,
    ) -> Result<Package, PackageError> {
        manifest.check()?;
        check_wasm(&wasm, config)?;
        Ok(Package {
            manifest,
            icon,
            wasm,
        })
    }

    /// The package as a Syrup value (the icon as the app's own PNG bytes).
    pub fn to_value(&self) -> Value {
        let icon = match &self.icon {
            Some(icon) => Value::bytes(icon.source().to_vec()),
            None => Value::Bool(false),
        };
        Value::record(
            PACKAGE_LABEL,
            vec![
                Value::int(FORMAT_VERSION),
                self.manifest.to_value(),
                icon,
                Value::bytes(self.wasm.clone()),
            ],
        )
    }

    /// The canonical bytes: [`Package::decode`] of them gives back an equal
    /// package, and decoding then encoding a package gives back its bytes
    /// (but for an explicit `"browser" f`, which is written only when true).
    pub fn encode(&self) -> Vec<u8> {
        pola_syrup::encode(&self.to_value())
    }
}

/// Checks a module with the sandbox's one checker, under the bounds of the
/// sandbox that will load it.
fn check_wasm(wasm: &[u8], config: &pola_sandbox::Config) -> Result<(), PackageError> {
    match pola_sandbox::check_with(wasm, config) {
        Ok(report) if report.loads => Ok(()),
        Ok(report) if report.confined => Err(PackageError::WouldNotLoad {
            problem: report.problems.first().map_or_else(
                || "the sandbox refuses it".to_owned(),
                |p| text::escape(&p.to_string()),
            ),
        }),
        Ok(report) => Err(PackageError::NotConfined {
            problem: report.problems.first().map_or_else(
                || "the sandbox refuses it".to_owned(),
                |p| text::escape(&p.to_string()),
            ),
        }),
        Err(pola_sandbox::LoadError::Invalid(detail)) => Err(PackageError::InvalidWasm {
            detail: text::escape(&detail),
        }),
        Err(e) => Err(PackageError::Checker {
            detail: text::escape(&e.to_string()),
        }),
    }
}

/// A request name: `[a-z][a-z0-9-]{0,31}`.
fn is_request_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && s.len() <= MAX_REQUEST_NAME
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An interface name: `[a-z][a-z0-9.-]{0,63}`.
pub fn is_interface_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && s.len() <= MAX_INTERFACE_NAME
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl Manifest {
    /// Checks every rule of PROTOCOL.md section 1 that the types do not
    /// already enforce: the character rules and lengths of the name (1–64),
    /// description (0–280), reasons (1–280) and path hints (1–256; see
    /// [`crate::text`]); at most 32 requests with unique names
    /// `[a-z][a-z0-9-]{0,31}`; at most 8 distinct offers named
    /// `[a-z][a-z0-9.-]{0,63}`; and for each request the fields its kind
    /// takes: `access` (required) and `path` (optional) for files and
    /// folders only, `sites` (required, 1–16 distinct, or anywhere) for web
    /// only, `interface` (required) for objects only.
    ///
    /// # Errors
    /// The first problem found.
    pub fn check(&self) -> Result<(), ManifestError> {
        let text_rule = |place: Place, key, s: &str, min, max| {
            text::check(s, min, max).map_err(|problem| ManifestError::Text {
                place,
                key,
                problem,
            })
        };
        text_rule(Place::Manifest, "name", &self.name, 1, MAX_NAME_CHARS)?;
        text_rule(
            Place::Manifest,
            "description",
            &self.description,
            0,
            MAX_DESCRIPTION_CHARS,
        )?;
        if self.requests.len() > MAX_REQUESTS {
            return Err(ManifestError::TooMany {
                place: Place::Manifest,
                what: "requests",
                len: self.requests.len(),
                max: MAX_REQUESTS,
            });
        }
        if self.offers.len() > MAX_OFFERS {
            return Err(ManifestError::TooMany {
                place: Place::Manifest,
                what: "offers",
                len: self.offers.len(),
                max: MAX_OFFERS,
            });
        }
        let mut offers = BTreeSet::new();
        for offer in &self.offers {
            if !is_interface_name(offer) {
                return Err(ManifestError::BadInterface {
                    place: Place::Manifest,
                    name: offer.clone(),
                });
            }
            if !offers.insert(offer) {
                return Err(ManifestError::DuplicateOffer {
                    name: offer.clone(),
                });
            }
        }
        let mut names = BTreeSet::new();
        for (i, request) in self.requests.iter().enumerate() {
            if !is_request_name(&request.name) {
                return Err(ManifestError::BadRequestName {
                    place: Place::RequestAt(i + 1),
                    name: request.name.clone(),
                });
            }
            if !names.insert(&request.name) {
                return Err(ManifestError::DuplicateRequest {
                    name: request.name.clone(),
                });
            }
            request.check()?;
        }
        Ok(())
    }

    /// The manifest as a Syrup dictionary (the canonical form: `"browser"`
    /// only when true, optional request fields only when present).
    pub fn to_value(&self) -> Value {
        let mut dict = BTreeMap::new();
        dict.insert(Value::str("name"), Value::str(self.name.clone()));
        dict.insert(
            Value::str("description"),
            Value::str(self.description.clone()),
        );
        dict.insert(
            Value::str("requests"),
            Value::List(self.requests.iter().map(Request::to_value).collect()),
        );
        dict.insert(
            Value::str("offers"),
            Value::List(self.offers.iter().map(|o| Value::str(o.clone())).collect()),
        );
        if self.browser {
            dict.insert(Value::str("browser"), Value::Bool(true));
        }
        Value::Dict(dict)
    }

    /// Reads a manifest from TOML (the file `pola caplet pack` takes) and
    /// checks it. Keys as in the Syrup form; `[[request]]` tables hold the
    /// requests, and `kind` and `access` are strings. `description`,
    /// `offers` and the requests may be left out (empty).
    ///
    /// ```
    /// let m = pola_powerbox::Manifest::from_toml(r#"
    /// name = "Notes"
    /// [[request]]
    /// name = "doc"
    /// kind = "file"
    /// access = "read-write"
    /// path = "notes.txt"
    /// reason = "to keep your notes"
    /// "#).unwrap();
    /// assert_eq!(m.requests[0].kind, pola_powerbox::Kind::File);
    /// ```
    ///
    /// # Errors
    /// [`PackageError::Toml`] if the TOML does not parse or has unknown or
    /// mistyped keys; [`PackageError::Manifest`] if it breaks a rule.
    pub fn from_toml(source: &str) -> Result<Manifest, PackageError> {
        let raw: TomlManifest = toml::from_str(source).map_err(|e| toml_error(source, &e))?;
        let mut requests = Vec::with_capacity(raw.request.len().min(MAX_REQUESTS));
        if raw.request.len() > MAX_REQUESTS {
            return Err(ManifestError::TooMany {
                place: Place::Manifest,
                what: "requests",
                len: raw.request.len(),
                max: MAX_REQUESTS,
            }
            .into());
        }
        for (i, r) in raw.request.into_iter().enumerate() {
            let place = Place::RequestAt(i + 1);
            let kind = Kind::from_name(&r.kind).ok_or_else(|| ManifestError::UnknownKind {
                place: place.clone(),
                kind: r.kind.clone(),
            })?;
            let access = r.access.map(|a| parse_access(&place, &a)).transpose()?;
            let sites = match r.sites {
                None => Sites::None,
                Some(list) => parse_sites(&place, &list)?,
            };
            requests.push(Request {
                name: r.name,
                kind,
                reason: r.reason,
                access,
                path: r.path,
                sites,
                interface: r.interface,
            });
        }
        let manifest = Manifest {
            name: raw.name,
            description: raw.description,
            requests,
            offers: raw.offers,
            browser: raw.browser,
        };
        manifest.check()?;
        Ok(manifest)
    }
}

impl Request {
    /// Checks this request's reason, path hint and the fields its kind
    /// takes (see [`Manifest::check`]).
    ///
    /// # Errors
    /// The first problem found.
    pub fn check(&self) -> Result<(), ManifestError> {
        let place = || Place::Request(self.name.clone());
        text::check(&self.reason, 1, MAX_REASON_CHARS).map_err(|problem| ManifestError::Text {
            place: place(),
            key: "reason",
            problem,
        })?;
        let not_allowed = |key| ManifestError::NotAllowed {
            place: place(),
            kind: self.kind,
            key,
        };
        let file_like = matches!(self.kind, Kind::File | Kind::Folder);
        if file_like {
            if self.access.is_none() {
                return Err(ManifestError::MissingAccess {
                    place: place(),
                    kind: self.kind,
                });
            }
            if let Some(path) = &self.path {
                text::check(path, 1, MAX_PATH_CHARS).map_err(|problem| ManifestError::Text {
                    place: place(),
                    key: "path",
                    problem,
                })?;
            }
        } else {
            if self.access.is_some() {
                return Err(not_allowed("access"));
            }
            if self.path.is_some() {
                return Err(not_allowed("path"));
            }
        }
        match (&self.sites, self.kind) {
            (Sites::None, Kind::Web) => return Err(ManifestError::MissingSites { place: place() }),
            (Sites::Some(list), Kind::Web) => {
                if list.is_empty() {
                    return Err(ManifestError::MissingSites { place: place() });
                }
                if list.len() > MAX_SITES {
                    return Err(ManifestError::TooMany {
                        place: place(),
                        what: "sites",
                        len: list.len(),
                        max: MAX_SITES,
                    });
                }
                let mut seen = BTreeSet::new();
                for o in list {
                    if !seen.insert(o) {
                        return Err(ManifestError::DuplicateSite {
                            place: place(),
                            site: o.to_string(),
                        });
                    }
                }
            }
            (Sites::Anywhere, Kind::Web) | (Sites::None, _) => {}
            (_, _) => return Err(not_allowed("sites")),
        }
        match (&self.interface, self.kind) {
            (None, Kind::Object) => return Err(ManifestError::MissingInterface { place: place() }),
            (Some(i), Kind::Object) if !is_interface_name(i) => {
                return Err(ManifestError::BadInterface {
                    place: place(),
                    name: i.clone(),
                });
            }
            (Some(_), Kind::Object) | (None, _) => {}
            (Some(_), _) => return Err(not_allowed("interface")),
        }
        Ok(())
    }

    /// The request as a Syrup dictionary (canonical: absent fields are
    /// left out).
    pub fn to_value(&self) -> Value {
        let mut dict = BTreeMap::new();
        dict.insert(Value::str("name"), Value::str(self.name.clone()));
        dict.insert(Value::str("kind"), Value::sym(self.kind.as_str()));
        dict.insert(Value::str("reason"), Value::str(self.reason.clone()));
        if let Some(a) = self.access {
            dict.insert(Value::str("access"), Value::sym(a.as_str()));
        }
        if let Some(p) = &self.path {
            dict.insert(Value::str("path"), Value::str(p.clone()));
        }
        match &self.sites {
            Sites::None => {}
            Sites::Anywhere => {
                dict.insert(Value::str("sites"), Value::List(vec![Value::str("*")]));
            }
            Sites::Some(list) => {
                dict.insert(
                    Value::str("sites"),
                    Value::List(list.iter().map(|o| Value::str(o.to_string())).collect()),
                );
            }
        }
        if let Some(i) = &self.interface {
            dict.insert(Value::str("interface"), Value::str(i.clone()));
        }
        Value::Dict(dict)
    }
}

fn parse_access(place: &Place, s: &str) -> Result<Access, ManifestError> {
    Access::from_name(s).ok_or_else(|| ManifestError::UnknownAccess {
        place: place.clone(),
        access: s.to_owned(),
    })
}

fn parse_sites(place: &Place, list: &[String]) -> Result<Sites, ManifestError> {
    if list.len() > MAX_SITES {
        return Err(ManifestError::TooMany {
            place: place.clone(),
            what: "sites",
            len: list.len(),
            max: MAX_SITES,
        });
    }
    if list.iter().any(|s| s == "*") {
        return if list.len() == 1 {
            Ok(Sites::Anywhere)
        } else {
            Err(ManifestError::AnywhereWithOthers {
                place: place.clone(),
            })
        };
    }
    let origins = list
        .iter()
        .map(|s| {
            Origin::parse(s).map_err(|problem| ManifestError::BadSite {
                place: place.clone(),
                site: s.clone(),
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Sites::Some(origins))
}

/// A dictionary's entries with string keys, refusing unknown keys.
fn string_dict<'a>(
    dict: &'a BTreeMap<Value, Value>,
    place: &Place,
    known: &[&'static str],
) -> Result<BTreeMap<&'static str, &'a Value>, ManifestError> {
    let mut out = BTreeMap::new();
    for (k, v) in dict {
        let Value::String(k) = k else {
            return Err(ManifestError::KeyNotAString {
                place: place.clone(),
            });
        };
        let Some(key) = known.iter().find(|n| **n == k.as_str()) else {
            return Err(ManifestError::UnknownKey {
                place: place.clone(),
                key: k.clone(),
            });
        };
        out.insert(*key, v);
    }
    Ok(out)
}

fn get_str(
    fields: &BTreeMap<&'static str, &Value>,
    place: &Place,
    key: &'static str,
) -> Result<Option<String>, ManifestError> {
    match fields.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ManifestError::WrongType {
            place: place.clone(),
            key,
            expected: "a string",
        }),
    }
}

fn get_symbol<'a>(
    fields: &BTreeMap<&'static str, &'a Value>,
    place: &Place,
    key: &'static str,
) -> Result<Option<&'a str>, ManifestError> {
    match fields.get(key) {
        None => Ok(None),
        Some(Value::Symbol(s)) => Ok(Some(s)),
        Some(_) => Err(ManifestError::WrongType {
            place: place.clone(),
            key,
            expected: "a symbol",
        }),
    }
}

fn get_strings(
    fields: &BTreeMap<&'static str, &Value>,
    place: &Place,
    key: &'static str,
) -> Result<Option<Vec<String>>, ManifestError> {
    let wrong = || ManifestError::WrongType {
        place: place.clone(),
        key,
        expected: "a list of strings",
    };
    match fields.get(key) {
        None => Ok(None),
        Some(Value::List(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(wrong))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

fn required<T>(v: Option<T>, place: &Place, key: &'static str) -> Result<T, ManifestError> {
    v.ok_or_else(|| ManifestError::MissingKey {
        place: place.clone(),
        key,
    })
}

/// Reads a manifest from its Syrup form (types only: [`Manifest::check`]
/// applies the rules).
fn manifest_from_value(value: &Value) -> Result<Manifest, ManifestError> {
    let Value::Dict(dict) = value else {
        return Err(ManifestError::NotADictionary);
    };
    let place = Place::Manifest;
    let fields = string_dict(
        dict,
        &place,
        &["name", "description", "requests", "offers", "browser"],
    )?;
    let name = required(get_str(&fields, &place, "name")?, &place, "name")?;
    let description = required(
        get_str(&fields, &place, "description")?,
        &place,
        "description",
    )?;
    let offers = required(get_strings(&fields, &place, "offers")?, &place, "offers")?;
    let browser = match fields.get("browser") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ManifestError::WrongType {
                place,
                key: "browser",
                expected: "t or f",
            });
        }
    };
    let list = match fields.get("requests") {
        None => {
            return Err(ManifestError::MissingKey {
                place,
                key: "requests",
            });
        }
        Some(Value::List(list)) => list,
        Some(_) => {
            return Err(ManifestError::WrongType {
                place,
                key: "requests",
                expected: "a list",
            });
        }
    };
    if list.len() > MAX_REQUESTS {
        return Err(ManifestError::TooMany {
            place,
            what: "requests",
            len: list.len(),
            max: MAX_REQUESTS,
        });
    }
    let requests = list
        .iter()
        .enumerate()
        .map(|(i, v)| request_from_value(i + 1, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Manifest {
        name,
        description,
        requests,
        offers,
        browser,
    })
}

fn request_from_value(index: usize, value: &Value) -> Result<Request, ManifestError> {
    let Value::Dict(dict) = value else {
        return Err(ManifestError::RequestNotADictionary { index });
    };
    let place = Place::RequestAt(index);
    let fields = string_dict(
        dict,
        &place,
        &[
            "name",
            "kind",
            "reason",
            "access",
            "path",
            "sites",
            "interface",
        ],
    )?;
    let name = required(get_str(&fields, &place, "name")?, &place, "name")?;
    let kind_name = required(get_symbol(&fields, &place, "kind")?, &place, "kind")?;
    let kind = Kind::from_name(kind_name).ok_or_else(|| ManifestError::UnknownKind {
        place: place.clone(),
        kind: kind_name.to_owned(),
    })?;
    let reason = required(get_str(&fields, &place, "reason")?, &place, "reason")?;
    let access = get_symbol(&fields, &place, "access")?
        .map(|a| parse_access(&place, a))
        .transpose()?;
    let path = get_str(&fields, &place, "path")?;
    let sites = match get_strings(&fields, &place, "sites")? {
        None => Sites::None,
        Some(list) => parse_sites(&place, &list)?,
    };
    let interface = get_str(&fields, &place, "interface")?;
    Ok(Request {
        name,
        kind,
        reason,
        access,
        path,
        sites,
        interface,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlManifest {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    browser: bool,
    #[serde(default)]
    offers: Vec<String>,
    #[serde(default)]
    request: Vec<TomlRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlRequest {
    name: String,
    kind: String,
    reason: String,
    access: Option<String>,
    path: Option<String>,
    sites: Option<Vec<String>>,
    interface: Option<String>,
}

fn toml_error(source: &str, e: &toml::de::Error) -> PackageError {
    let line = e
        .span()
        .and_then(|s| source.get(..s.start))
        .map(|before| before.bytes().filter(|b| *b == b'\n').count() + 1);
    let message = text::escape(e.message().trim());
    PackageError::Toml {
        detail: match line {
            Some(n) => format!("line {n}: {message}"),
            None => message,
        },
    }
}

/// Builds a package: reads and checks the TOML manifest, decodes and
/// re-encodes the icon (if any), checks the module is a confined caplet
/// that loads under the sandbox's default bounds, and returns the
/// canonical package bytes. [`pack_with`] checks against a host's own
/// bounds.
///
/// # Errors
/// The first problem found; [`PackageError::TooLarge`] if the package
/// would be over [`MAX_PACKAGE_BYTES`].
pub fn pack(
    manifest_toml: &str,
    wasm: Vec<u8>,
    icon: Option<Vec<u8>>,
) -> Result<Vec<u8>, PackageError> {
    pack_with(manifest_toml, wasm, icon, &pola_sandbox::Config::default())
}

/// [`pack`], the module checked against `config`'s bounds (those of the
/// host the package is for, as [`Package::decode_with`]).
///
/// # Errors
/// As [`pack`].
pub fn pack_with(
    manifest_toml: &str,
    wasm: Vec<u8>,
    icon: Option<Vec<u8>>,
    config: &pola_sandbox::Config,
) -> Result<Vec<u8>, PackageError> {
    let manifest = Manifest::from_toml(manifest_toml)?;
    let icon = icon.map(|png| Icon::from_png(&png)).transpose()?;
    let package = Package::new_with(manifest, icon, wasm, config)?;
    let bytes = package.encode();
    if bytes.len() > MAX_PACKAGE_BYTES {
        return Err(PackageError::TooLarge {
            len: bytes.len(),
            max: MAX_PACKAGE_BYTES,
        });
    }
    Ok(bytes)
}
