//! What the desk remembers: installed apps (pet names, icons, the
//! endowments the user granted at install) and the history of grants, for
//! the audit view. Kept as one JSON row in the store's host table,
//! written durably on every change; each app's caplet object (its code
//! and storage) is a root `app:ID` of the desk's persistent vat.

use serde::{Deserialize, Serialize};

/// Everything the desk remembers besides the apps' own objects.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Model {
    /// Installed apps, in install order.
    pub apps: Vec<App>,
    /// Grants made so far (newest last), at most [`MAX_GRANTS`].
    pub grants: Vec<GrantRecord>,
    /// The next grant number.
    pub next_grant: u64,
}

/// How many grant records are kept (the oldest dead ones go first).
pub const MAX_GRANTS: usize = 5_000;

/// One installed app.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct App {
    /// The desk's id for it (16 hex digits).
    pub id: String,
    /// The user's name for it: the only name the desk shows.
    pub pet: String,
    /// The name it proposed (shown only as "calls itself …").
    pub calls_itself: String,
    /// Its description.
    pub description: String,
    /// Its icon, decoded and re-encoded by the desk (PNG, 64×64).
    pub icon: Option<Vec<u8>>,
    /// The icon's perceptual hash.
    pub icon_hash: Option<u64>,
    /// When it was installed (ms since 1970).
    pub installed_at: u64,
    /// Interfaces it may offer to other apps.
    pub offers: Vec<String>,
    /// It says it is a web browser.
    pub browser: bool,
    /// What the user granted at install, by request name.
    pub endowments: Vec<Endowment>,
    /// SHA-256 of its package's wasm, hex.
    pub wasm_sha256: String,
}

/// One install-time endowment as the user decided it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endowment {
    /// The request's name (the key the app receives it under).
    pub name: String,
    /// Plain words for what it is.
    pub words: String,
    /// What to make at each launch.
    pub spec: Spec,
}

/// What a grant gives, as the desk makes it again at each launch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Spec {
    /// One file inside the documents folder.
    File {
        /// Its path relative to the documents folder.
        rel: String,
        /// Read-write (else read only).
        write: bool,
    },
    /// One folder inside the documents folder.
    Folder {
        /// Its path relative to the documents folder ("" = the whole one).
        rel: String,
        /// Read-write (else read only).
        write: bool,
    },
    /// Web access to these origins, or anywhere (`None`).
    Web {
        /// The allowed origins; `None` = anywhere.
        sites: Option<Vec<String>>,
    },
    /// The time.
    Clock,
    /// Random bytes.
    Random,
    /// Its own storage (always the app's; shown so the user knows).
    Storage,
    /// An object another app offers (made when that app is running).
    Object {
        /// The interface.
        interface: String,
        /// The app whose offer the user chose (the grant is made only
        /// from that app's offer, while it runs).
        #[serde(default)]
        provider: Option<String>,
    },
}

/// Where a grant came from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Chosen at install, made at launch.
    Install,
    /// A powerbox request the user granted.
    Request,
    /// A document the user dropped on the window.
    Drop,
}

/// One grant made to a running app, for the audit view.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrantRecord {
    /// Its number.
    pub id: u64,
    /// The app.
    pub app: String,
    /// Kind, as in the protocol (`file`, `folder`, `web`, …).
    pub kind: String,
    /// Plain words.
    pub words: String,
    /// Where it came from.
    pub origin: Origin,
    /// When it was made (ms since 1970).
    pub at: u64,
    /// Messages sent through it.
    pub uses: u64,
    /// The last of them (ms since 1970).
    pub last_use: Option<u64>,
    /// Not yet revoked.
    pub live: bool,
}

impl Spec {
    /// The protocol's name for the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Spec::File { .. } => "file",
            Spec::Folder { .. } => "folder",
            Spec::Web { .. } => "web",
            Spec::Clock => "clock",
            Spec::Random => "random",
            Spec::Storage => "storage",
            Spec::Object { .. } => "object",
        }
    }
}

impl Model {
    /// The app with this id.
    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.id == id)
    }

    /// Keeps the grant history bounded: drops the oldest revoked records.
    pub fn trim(&mut self) {
        while self.grants.len() > MAX_GRANTS {
            match self.grants.iter().position(|g| !g.live) {
                Some(i) => {
                    self.grants.remove(i);
                }
                None => break,
            }
        }
    }
}
