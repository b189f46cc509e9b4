//! The desk's runtime: installed apps, running windows, the powerbox, and
//! the audit trail, over one persistent vat.
//!
//! Every capability an app receives goes app → revocable forwarder (this
//! launch's) → audit counter → the capability. Closing the window revokes
//! every forwarder of the launch, and the pane and powerbox too.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pola_powerbox::icon::Icon;
use pola_powerbox::package::{Access, Kind, Package, Request, Sites};
use pola_sandbox::Sandbox;
use pola_sandbox::vat::{CapletCode, CapletObject, Policy, RESTART, Stopper, Upgrader, VatLink};
use pola_store::Store;
use pola_vat::patterns::{forward, revocable};
use pola_vat::{Object, Outcome, Ref, Resolver, Turn, Val, Vat, error};
use serde_json::{Value as Json, json};
use sha2::{Digest as _, Sha256};

use crate::model::{App, Endowment, GrantRecord, Model, Origin, Spec};
use crate::pane;

#[path = "browser.rs"]
pub mod browser;

/// The host-table row holding the model.
const MODEL_ROW: &str = "desk-model";
/// How long the desk waits on its vat.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Reviews kept waiting for the user's decision.
const MAX_REVIEWS: usize = 8;
/// Powerbox requests per window per minute.
const REQUESTS_PER_MINUTE: usize = 10;
/// Uses kept for the timeline.
const MAX_TIMELINE: usize = 500;
/// Views a window may show per second.
const SHOWS_PER_SECOND: usize = 30;
/// Largest view message sent to the page (JSON bytes).
const MAX_VIEW_JSON: usize = 1024 * 1024;
/// Longest pet name, in characters.
const MAX_PET: usize = 64;

/// A desk error: plain words for the person, and whether it was their
/// request (4xx) or the desk (5xx).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DeskError {
    /// What went wrong, in plain words.
    pub message: String,
    /// The HTTP status it maps to.
    pub status: u16,
}

impl DeskError {
    /// The request was wrong (400).
    pub fn bad(message: impl Into<String>) -> DeskError {
        DeskError {
            message: message.into(),
            status: 400,
        }
    }
    /// No such thing (404).
    pub fn missing(message: impl Into<String>) -> DeskError {
        DeskError {
            message: message.into(),
            status: 404,
        }
    }
    /// The desk failed (500).
    pub fn internal(message: impl Into<String>) -> DeskError {
        DeskError {
            message: message.into(),
            status: 500,
        }
    }
}

type R<T> = Result<T, DeskError>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // The desk cannot run without randomness; an id of zeros would still
    // be refused as a duplicate rather than shared.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The two sandboxes apps run in: with storage (the app was granted its
/// own storage) and without (every storage write fails with
/// `storage-full`). Stored code is revived in the one its app was given,
/// by the hash of its module.
#[derive(Clone)]
struct Sandboxes {
    with_storage: Sandbox<VatLink>,
    without_storage: Sandbox<VatLink>,
    /// SHA-256 (hex) of the modules whose apps were granted storage.
    stored: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl Sandboxes {
    fn new(model: &Model) -> anyhow::Result<Sandboxes> {
        let setup = |e: pola_sandbox::SetupError| anyhow::anyhow!("setting up WebAssembly: {e}");
        let mut none = crate::sandbox_config();
        none.storage_keys = 0;
        let stored = model
            .apps
            .iter()
            .filter(|a| a.endowments.iter().any(|e| e.spec == Spec::Storage))
            .map(|a| a.wasm_sha256.clone())
            .collect();
        Ok(Sandboxes {
            with_storage: Sandbox::new(crate::sandbox_config()).map_err(setup)?,
            without_storage: Sandbox::new(none).map_err(setup)?,
            stored: Arc::new(Mutex::new(stored)),
        })
    }

    fn has_storage(&self, hash: &str) -> bool {
        self.stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(hash)
    }

    fn grant_storage(&self, hash: String) {
        self.stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash);
    }

    fn pick(&self, wasm: &[u8]) -> Sandbox<VatLink> {
        if self.has_storage(&sha256_hex(wasm)) {
            self.with_storage.clone()
        } else {
            self.without_storage.clone()
        }
    }
}

/// SHA-256 of `bytes`, lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A package waiting for the user's decisions.
struct Review {
    package: Package,
    code: CapletCode,
    icon: Option<Icon>,
    json: Json,
}

/// A powerbox request shown in a window's chrome.
struct Prompt {
    id: String,
    request: Request,
    resolver: Resolver,
}

/// A running app's window.
struct Window {
    app: String,
    /// The app's object, held while the window is open so the vat keeps
    /// it (and its instance's memory) resident: an object nothing holds
    /// may be swept from memory and revived from its portrait.
    caplet: Ref,
    view: Option<Json>,
    links: Vec<Ref>,
    /// For each image of the view, its index in the browser page's images.
    images: Vec<usize>,
    seq: u64,
    /// Revokers of everything this launch was given, with grant numbers
    /// (`None` for the pane and powerbox).
    revokers: Vec<(Option<u64>, Ref)>,
    prompt: Option<Prompt>,
    requests: VecDeque<Instant>,
    /// When its last views were shown (for the rate limit).
    shows: VecDeque<Instant>,
    /// A view newer than the page's waits for the next flush.
    dirty: bool,
    /// The browser's state, in a browser window.
    browser: Option<browser::BrowserState>,
    /// Tells whether the app's caplet was stopped by its budget across
    /// turns (an app's window; the browser's renderers have their own).
    stopper: Option<Stopper>,
}

/// An object a running app offers to others.
struct Offer {
    id: String,
    window: u64,
    app: String,
    interface: String,
    object: Ref,
}

/// One use of a grant, for the timeline.
#[derive(Clone)]
struct Use {
    at: u64,
    app: String,
    grant: u64,
    words: String,
    method: String,
}

struct Inner {
    model: Model,
    windows: BTreeMap<u64, Window>,
    reviews: HashMap<String, Review>,
    review_order: VecDeque<String>,
    offers: Vec<Offer>,
    timeline: VecDeque<Use>,
    next_window: u64,
}

/// What the desk's objects share with it (not the vat: objects live in
/// the vat).
pub struct Shared {
    inner: Mutex<Inner>,
    events: tokio::sync::broadcast::Sender<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        let _ = self.events.send(json!({"type": "changed"}).to_string());
    }
}

/// The desk.
pub struct Desk {
    vat: Vat,
    renderers: browser::Renderers,
    store: Arc<Store>,
    sandbox: Sandboxes,
    documents: PathBuf,
    shared: Arc<Shared>,
}

/// Options for [`Desk::open`].
pub struct Options {
    /// The state folder (store).
    pub state: PathBuf,
    /// The documents folder: the only files apps can be given.
    pub documents: PathBuf,
}

impl Desk {
    /// Opens (or creates) the desk in `opts.state`.
    ///
    /// # Errors
    /// The store cannot be opened, or holds a damaged model.
    pub fn open(opts: &Options) -> anyhow::Result<Arc<Desk>> {
        let store = Arc::new(Store::open(&opts.state.join("state.redb"))?);
        let model: Model = match store.host_get(MODEL_ROW)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: the desk's record of installed apps is damaged ({e})",
                    opts.state.display()
                )
            })?,
            None => Model::default(),
        };
        let sandboxes = Sandboxes::new(&model)?;
        let mut kinds = pola_vat::persist::Kinds::new();
        let picker = sandboxes.clone();
        pola_sandbox::vat::kinds_with(&mut kinds, move |wasm| picker.pick(wasm));
        let backend = store.vat("desk")?;
        let vat = Vat::open("desk", backend, kinds).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (events, _) = tokio::sync::broadcast::channel(32);
        let mut model = model;
        // Grants of an earlier run are dead: their launch ended with it.
        for g in &mut model.grants {
            g.live = false;
        }
        let desk = Arc::new(Desk {
            vat,
            renderers: browser::Renderers::new()?,
            store,
            sandbox: sandboxes,
            documents: opts.documents.clone(),
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    model,
                    windows: BTreeMap::new(),
                    reviews: HashMap::new(),
                    review_order: VecDeque::new(),
                    offers: Vec::new(),
                    timeline: VecDeque::new(),
                    next_window: 1,
                }),
                events,
            }),
        });
        desk.drop_orphans()?;
        Ok(desk)
    }

    /// The store (for the token row).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The documents folder.
    pub fn documents(&self) -> &Path {
        &self.documents
    }

    /// A receiver of the page's live messages.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.shared.events.subscribe()
    }

    /// Whether any app is installed.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().model.apps.is_empty()
    }

    /// Roots `app:ID` with no app in the model (a crash between the two
    /// writes of an install) are removed.
    fn drop_orphans(&self) -> anyhow::Result<()> {
        let known: Vec<String> = self
            .shared
            .lock()
            .model
            .apps
            .iter()
            .map(|a| format!("app:{}", a.id))
            .collect();
        let orphans: Vec<String> = self
            .vat
            .root_names()
            .into_iter()
            .filter(|n| n.starts_with("app:") && !known.contains(n))
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        let done = self.vat.run(move |cx| {
            for n in &orphans {
                cx.set_root(n, None)?;
            }
            Ok(Val::null())
        });
        self.vat
            .block_on(&done, TIMEOUT)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    }

    fn save(&self, inner: &mut Inner) -> R<()> {
        inner.model.trim();
        let bytes = serde_json::to_vec(&inner.model)
            .map_err(|e| DeskError::internal(format!("saving the desk: {e}")))?;
        self.store
            .host_put(MODEL_ROW, Some(&bytes))
            .map_err(|e| DeskError::internal(format!("saving the desk: {e}")))
    }

    fn wait(&self, r: &Ref) -> R<Val> {
        self.vat
            .block_on(r, TIMEOUT)
            .map_err(|e| DeskError::internal(format!("the desk's vat: {e:?}")))
    }

    // ----- state for the page -----

    /// `GET api/state`.
    pub fn state(&self) -> Json {
        let inner = self.shared.lock();
        let running: HashMap<&str, u64> = inner
            .windows
            .iter()
            .map(|(id, w)| (w.app.as_str(), *id))
            .collect();
        let browser_app = json!({
            "id": browser::APP, "pet": browser::NAME, "calls_itself": browser::NAME,
            "description": "The desk's web browser: each page is drawn by a confined renderer.",
            "icon": true, "installed_at": 0, "builtin": true,
            "running": running.get(browser::APP).map(|w| w.to_string()),
        });
        let apps: Vec<Json> = inner
            .model
            .apps
            .iter()
            .map(|a| {
                json!({
                    "id": a.id, "pet": a.pet, "calls_itself": a.calls_itself,
                    "description": a.description, "icon": a.icon.is_some(),
                    "installed_at": a.installed_at,
                    "running": running.get(a.id.as_str()).map(|w| w.to_string()),
                })
            })
            .collect();
        let windows: Vec<Json> = inner
            .windows
            .iter()
            .map(|(id, w)| {
                let pet = if w.app == browser::APP {
                    Some(browser::NAME.to_owned())
                } else {
                    inner.model.app(&w.app).map(|a| a.pet.clone())
                };
                json!({
                    "id": id.to_string(), "app": w.app, "pet": pet, "view": w.view,
                    "seq": w.seq,
                    "prompt": w.prompt.as_ref().map(|p| prompt_json(&inner, p)),
                    "browser": w.browser.as_ref().map(browser::BrowserState::json),
                    // The app stopped by its budget, in plain words.
                    "stopped": w.stopper.as_ref().and_then(Stopper::stopped).map(|r| r.public_reason()),
                })
            })
            .collect();
        json!({"builtin": [browser_app], "apps": apps, "windows": windows, "documents": self.documents.display().to_string()})
    }

    /// The icon of an app, re-encoded by the desk.
    pub fn icon(&self, app: &str) -> Option<Vec<u8>> {
        if app == browser::APP {
            return Some(browser::icon());
        }
        self.shared.lock().model.app(app)?.icon.clone()
    }

    /// The icon of a package under review.
    pub fn review_icon(&self, review: &str) -> Option<Vec<u8>> {
        let inner = self.shared.lock();
        Some(inner.reviews.get(review)?.icon.as_ref()?.png().to_vec())
    }

    // ----- install -----

    /// `POST api/packages`: checks a package and returns what the install
    /// dialog shows.
    ///
    /// # Errors
    /// A malformed, oversized or hostile package, in plain words.
    pub fn review(&self, bytes: &[u8]) -> R<Json> {
        let package = crate::decode_package(bytes).map_err(|e| DeskError::bad(e.to_string()))?;
        let code = CapletCode::load(&self.sandbox.with_storage, &package.wasm)
            .map_err(|e| DeskError::bad(format!("the app's code does not load: {e}")))?;
        let icon = package.icon.clone();
        let mut inner = self.shared.lock();
        let installed: Vec<pola_powerbox::rules::InstalledApp> = inner
            .model
            .apps
            .iter()
            .map(|a| pola_powerbox::rules::InstalledApp {
                pet: a.pet.clone(),
                calls_itself: a.calls_itself.clone(),
                icon_hash: a.icon_hash,
            })
            .collect();
        let warnings = pola_powerbox::rules::warnings(
            &package.manifest,
            icon.as_ref(),
            &installed,
            &self.documents,
            &home(),
        );
        let id = random_hex(16);
        let m = &package.manifest;
        let requests: Vec<Json> = m.requests.iter().map(|r| request_json(&inner, r)).collect();
        let rule1 = warnings.iter().any(|w| w.rule == 1);
        let suggested = if rule1 || inner.model.apps.iter().any(|a| a.pet == m.name) {
            String::new()
        } else {
            m.name.clone()
        };
        let json = json!({
            "id": id, "calls_itself": m.name, "description": m.description,
            "suggested_pet": suggested, "icon": icon.is_some(), "requests": requests,
            "warnings": warnings.iter().map(|w| json!({"rule": w.rule, "text": w.text, "requests": w.requests})).collect::<Vec<_>>(),
        });
        inner.reviews.insert(
            id.clone(),
            Review {
                package,
                code,
                icon,
                json: json.clone(),
            },
        );
        inner.review_order.push_back(id);
        while inner.review_order.len() > MAX_REVIEWS {
            if let Some(old) = inner.review_order.pop_front() {
                inner.reviews.remove(&old);
            }
        }
        Ok(json)
    }

    /// `POST api/reviews/RID/cancel`.
    pub fn cancel(&self, review: &str) {
        let mut inner = self.shared.lock();
        inner.reviews.remove(review);
        inner.review_order.retain(|r| r != review);
    }

    /// `POST api/reviews/RID/install`: installs with the user's decisions.
    ///
    /// # Errors
    /// An unknown review, a bad pet name, or a decision that does not fit
    /// its request; nothing is installed then.
    pub fn install(&self, review: &str, pet: &str, decisions: &[Json]) -> R<String> {
        let (endowments, pet, review) = {
            let mut inner = self.shared.lock();
            let pet = check_pet(&inner.model, pet, None)?;
            let r = inner.reviews.get(review).ok_or_else(|| {
                DeskError::missing("this install dialog has expired; pick the package again")
            })?;
            let endowments = self.decide(&inner, &r.package, decisions)?;
            let r = inner
                .reviews
                .remove(review)
                .ok_or_else(|| DeskError::missing("this install dialog has expired"))?;
            inner.review_order.retain(|x| x != review);
            (endowments, pet, r)
        };
        let _ = review.json;
        self.add_app(review.package, review.code, review.icon, pet, endowments)
    }

    /// Installs a package with every request granted as asked (files and
    /// folders at their suggested place inside the documents folder): the
    /// stock apps at first start, and `pola install --grant-all`.
    ///
    /// # Errors
    /// As for [`Desk::review`].
    pub fn install_trusted(&self, bytes: &[u8], pet: &str) -> R<String> {
        let package = crate::decode_package(bytes).map_err(|e| DeskError::bad(e.to_string()))?;
        let code = CapletCode::load(&self.sandbox.with_storage, &package.wasm)
            .map_err(|e| DeskError::bad(format!("the app's code does not load: {e}")))?;
        let icon = package.icon.clone();
        let mut endowments = Vec::new();
        for r in &package.manifest.requests {
            let spec = match r.kind {
                Kind::File | Kind::Folder => {
                    let Some(rel) = r.path.as_deref().and_then(inside_documents) else {
                        continue;
                    };
                    let write = r.access == Some(Access::ReadWrite);
                    if r.kind == Kind::File {
                        Spec::File { rel, write }
                    } else {
                        Spec::Folder { rel, write }
                    }
                }
                Kind::Web => continue,
                Kind::Clock => Spec::Clock,
                Kind::Random => Spec::Random,
                Kind::Storage => Spec::Storage,
                Kind::Object => continue,
            };
            endowments.push(Endowment {
                name: r.name.clone(),
                words: pola_powerbox::words::describe(r),
                spec,
            });
        }
        let pet = {
            let inner = self.shared.lock();
            check_pet(&inner.model, pet, None)?
        };
        self.add_app(package, code, icon, pet, endowments)
    }

    fn decide(&self, inner: &Inner, package: &Package, decisions: &[Json]) -> R<Vec<Endowment>> {
        let mut out = Vec::new();
        for d in decisions {
            let name = d["name"].as_str().unwrap_or_default();
            if !package.manifest.requests.iter().any(|r| r.name == name) {
                return Err(DeskError::bad(format!(
                    "a decision names a request the app did not make: {name:?}"
                )));
            }
        }
        for r in &package.manifest.requests {
            let Some(d) = decisions
                .iter()
                .find(|d| d["name"].as_str() == Some(&r.name))
            else {
                continue;
            };
            if d["grant"].as_bool() != Some(true) {
                continue;
            }
            let spec = self.narrowed(inner, r, d)?;
            out.push(Endowment {
                name: r.name.clone(),
                words: spec_words(&spec),
                spec,
            });
        }
        Ok(out)
    }

    /// The spec for granting request `r` as the user decided in `d`
    /// (never more than asked).
    fn narrowed(&self, inner: &Inner, r: &Request, d: &Json) -> R<Spec> {
        let asked_write = r.access == Some(Access::ReadWrite);
        Ok(match r.kind {
            Kind::File | Kind::Folder => {
                // Absent: as asked. Anything but one of the two words
                // (a number, a list, null) is refused, not read as absent.
                let write = match d.get("access").map(Json::as_str) {
                    None => asked_write,
                    Some(Some("read")) => false,
                    Some(Some("read-write")) if asked_write => true,
                    Some(_) => {
                        return Err(DeskError::bad(format!(
                            "request {:?}: the access can only be narrowed to \"read\"",
                            r.name
                        )));
                    }
                };
                let rel = d["path"].as_str().ok_or_else(|| {
                    DeskError::bad(format!(
                        "request {:?}: choose a {} in the documents folder first",
                        r.name,
                        if r.kind == Kind::File {
                            "file"
                        } else {
                            "folder"
                        }
                    ))
                })?;
                let rel = self.check_rel(rel, r.kind == Kind::File)?;
                if r.kind == Kind::File {
                    Spec::File { rel, write }
                } else {
                    Spec::Folder { rel, write }
                }
            }
            Kind::Web => {
                if d.get("site").is_some_and(|s| !s.is_string()) {
                    return Err(DeskError::bad(format!(
                        "request {:?}: a site is written as https://example.org",
                        r.name
                    )));
                }
                let sites = match d["site"].as_str() {
                    Some(site) => {
                        let site = normalise_origin(site).ok_or_else(|| {
                            DeskError::bad(format!(
                                "{site:?} is not a web site (write it as https://example.org)"
                            ))
                        })?;
                        let allowed = match &r.sites {
                            Sites::Anywhere => true,
                            Sites::Some(list) => list.iter().any(|o| o.to_string() == site),
                            Sites::None => false,
                        };
                        if !allowed {
                            return Err(DeskError::bad(format!(
                                "request {:?}: {site} is not one of the sites it asked for",
                                r.name
                            )));
                        }
                        Some(vec![site])
                    }
                    None => match &r.sites {
                        Sites::Anywhere => None,
                        Sites::Some(list) => Some(list.iter().map(ToString::to_string).collect()),
                        Sites::None => Some(Vec::new()),
                    },
                };
                Spec::Web { sites }
            }
            Kind::Clock => Spec::Clock,
            Kind::Random => Spec::Random,
            Kind::Storage => Spec::Storage,
            Kind::Object => {
                let interface = r.interface.clone().unwrap_or_default();
                let oid = d["offer"].as_str().ok_or_else(|| {
                    DeskError::bad(format!("request {:?}: choose one of the offers", r.name))
                })?;
                let provider = inner
                    .offers
                    .iter()
                    .find(|o| o.id == oid && o.interface == interface)
                    .map(|o| o.app.clone())
                    .ok_or_else(|| {
                        DeskError::bad(format!("request {:?}: that offer is gone", r.name))
                    })?;
                Spec::Object {
                    interface,
                    provider: Some(provider),
                }
            }
        })
    }

    /// Checks a path chosen in the chooser: relative, inside the
    /// documents folder, naming an existing file (or folder).
    fn check_rel(&self, rel: &str, file: bool) -> R<String> {
        let rel = inside_documents(rel)
            .ok_or_else(|| DeskError::bad("choose something inside the documents folder"))?;
        // Opened exactly as a launch will open it (cap-std, one component
        // at a time, no symbolic links), so a grant that passes here is
        // one a launch can make.
        let root = pola_powerbox::caps::open_documents(&self.documents)
            .map_err(|e| DeskError::internal(format!("the documents folder: {e}")))?;
        let path =
            pola_powerbox::caps::RelPath::parse(&rel).map_err(|e| DeskError::bad(e.to_string()))?;
        let read = pola_powerbox::caps::Access::Read;
        let as_file = pola_powerbox::caps::file(&root, &path, read).map(drop);
        let as_folder = pola_powerbox::caps::folder(&root, &path, read).map(drop);
        match (file, as_file, as_folder) {
            (true, Ok(()), _) | (false, _, Ok(())) => Ok(rel),
            (true, Err(_), Ok(())) => Err(DeskError::bad("choose a file, not a folder")),
            (false, Ok(()), Err(_)) => Err(DeskError::bad("choose a folder, not a file")),
            (true, Err(e), Err(_)) | (false, _, Err(e)) => Err(DeskError::bad(e.to_string())),
        }
    }

    fn docs_dir(&self) -> R<cap_std::fs::Dir> {
        // The desk holds the user's authority; this is where it opens the
        // one folder apps can be given parts of.
        cap_std::fs::Dir::open_ambient_dir(&self.documents, cap_std::ambient_authority())
            .map_err(|e| DeskError::internal(format!("opening the documents folder: {e}")))
    }

    fn add_app(
        &self,
        package: Package,
        code: CapletCode,
        icon: Option<Icon>,
        pet: String,
        endowments: Vec<Endowment>,
    ) -> R<String> {
        let id = random_hex(8);
        let root = format!("app:{id}");
        let wasm_sha256 = sha256_hex(&package.wasm);
        let storage = endowments.iter().any(|e| e.spec == Spec::Storage);
        let code = if storage {
            self.sandbox.grant_storage(wasm_sha256.clone());
            code
        } else if self.sandbox.has_storage(&wasm_sha256) {
            // Another installed app runs the same code with storage: the
            // code object is shared by sandbox, so this one gets it too
            // (said in the README).
            code
        } else {
            CapletCode::load(&self.sandbox.without_storage, &package.wasm)
                .map_err(|e| DeskError::bad(format!("the app's code does not load: {e}")))?
        };
        let made = self.vat.run(move |cx| {
            let code = cx.spawn(code);
            let object = cx.spawn(CapletObject::persistent(code, Policy::Persistent));
            cx.set_root(&root, Some(&object))?;
            Ok(Val::null())
        });
        self.wait(&made)?;
        let m = package.manifest;
        let app = App {
            id: id.clone(),
            pet,
            calls_itself: m.name.clone(),
            description: m.description.clone(),
            icon: icon.as_ref().map(|i| i.png().to_vec()),
            icon_hash: icon.as_ref().map(Icon::hash),
            installed_at: now_ms(),
            offers: m.offers.clone(),
            browser: m.browser,
            endowments,
            wasm_sha256,
        };
        let mut inner = self.shared.lock();
        inner.model.apps.push(app);
        if let Err(e) = self.save(&mut inner) {
            inner.model.apps.retain(|a| a.id != id);
            return Err(e);
        }
        drop(inner);
        self.shared.changed();
        Ok(id)
    }

    /// `POST api/apps/ID/rename`.
    ///
    /// # Errors
    /// No such app, or a bad or duplicate name.
    pub fn rename(&self, app: &str, pet: &str) -> R<()> {
        let mut inner = self.shared.lock();
        let pet = check_pet(&inner.model, pet, Some(app))?;
        let Some(a) = inner.model.apps.iter_mut().find(|a| a.id == app) else {
            return Err(DeskError::missing("no such app"));
        };
        let old = std::mem::replace(&mut a.pet, pet);
        if let Err(e) = self.save(&mut inner) {
            if let Some(a) = inner.model.apps.iter_mut().find(|a| a.id == app) {
                a.pet = old;
            }
            return Err(e);
        }
        drop(inner);
        self.shared.changed();
        Ok(())
    }

    /// `POST api/apps/ID/uninstall`: closes it, forgets it, and deletes
    /// its object (code and storage).
    ///
    /// # Errors
    /// No such app, or the store failed.
    pub fn uninstall(&self, app: &str) -> R<()> {
        while let Some(w) = self.window_of(app) {
            self.close(w)?;
        }
        let mut inner = self.shared.lock();
        let before = inner.model.apps.len();
        let removed: Vec<App> = inner
            .model
            .apps
            .iter()
            .filter(|a| a.id == app)
            .cloned()
            .collect();
        inner.model.apps.retain(|a| a.id != app);
        if inner.model.apps.len() == before {
            return Err(DeskError::missing("no such app"));
        }
        if let Err(e) = self.save(&mut inner) {
            inner.model.apps.extend(removed);
            return Err(e);
        }
        drop(inner);
        let root = format!("app:{app}");
        let done = self.vat.run(move |cx| {
            cx.set_root(&root, None)?;
            Ok(Val::null())
        });
        self.wait(&done)?;
        // Its code and storage go now, not at some later collection.
        if let Err(e) = self.vat.collect(false, TIMEOUT) {
            return Err(DeskError::internal(format!(
                "the app is uninstalled but its data could not be deleted yet: {e}"
            )));
        }
        self.shared.changed();
        Ok(())
    }

    fn window_of(&self, app: &str) -> Option<u64> {
        self.shared
            .lock()
            .windows
            .iter()
            .find(|(_, w)| w.app == app)
            .map(|(id, _)| *id)
    }

    // ----- launch, events, close -----

    /// `POST api/apps/ID/launch`: a new window with a fresh pane and
    /// powerbox, and the install-time grants made again behind fresh
    /// revocable forwarders. Launching a running app answers its window.
    ///
    /// # Errors
    /// No such app; a grant could not be made (e.g. its file is gone: the
    /// app is launched without it and the failure is said).
    pub fn launch(self: &Arc<Self>, app: &str) -> R<u64> {
        if app == browser::APP {
            return Ok(self.launch_browser());
        }
        let caplet = self
            .vat
            .root(&format!("app:{app}"))
            .ok_or_else(|| DeskError::missing("no such app"))?;
        let (window, endowments) = {
            let mut inner = self.shared.lock();
            if let Some((w, _)) = inner.windows.iter().find(|(_, w)| w.app == app) {
                return Ok(*w);
            }
            let a = inner
                .model
                .app(app)
                .ok_or_else(|| DeskError::missing("no such app"))?;
            let endowments = a.endowments.clone();
            let window = inner.next_window;
            inner.next_window += 1;
            inner.windows.insert(
                window,
                Window {
                    app: app.to_owned(),
                    caplet: caplet.clone(),
                    view: None,
                    links: Vec::new(),
                    images: Vec::new(),
                    seq: 0,
                    revokers: Vec::new(),
                    prompt: None,
                    requests: VecDeque::new(),
                    shows: VecDeque::new(),
                    dirty: false,
                    browser: None,
                    stopper: None,
                },
            );
            (window, endowments)
        };
        let me = self.clone();
        let app_id = app.to_owned();
        let made = self.vat.run(move |cx| {
            let pane = cx.spawn(PaneObject {
                desk: Arc::downgrade(&me),
                window,
                page: None,
            });
            let (pane_fwd, pane_rev) = revocable(cx, pane);
            let pb = cx.spawn(PowerboxObject {
                desk: Arc::downgrade(&me),
                window,
            });
            let (pb_fwd, pb_rev) = revocable(cx, pb);
            let mut revokers = vec![(None, pane_rev), (None, pb_rev)];
            let mut grants = BTreeMap::new();
            for e in &endowments {
                if e.spec == Spec::Storage {
                    continue;
                }
                let Ok(cap) = me.make_cap(cx, &e.spec) else {
                    continue;
                };
                let (fwd, rev, gid) =
                    me.wrap(cx, &app_id, cap, e.spec.kind(), &e.words, Origin::Install);
                revokers.push((Some(gid), rev));
                grants.insert(Val::str(e.name.clone()), Val::Ref(fwd));
            }
            if !me.attach(cx, window, revokers) {
                // Closed while this turn waited: nothing is handed over.
                return Ok(Val::null());
            }
            if let Some(object) = cx.inspect::<CapletObject>(&caplet) {
                let stopper = object.stopper();
                // The page hears of a stop at once (the hook only wakes it).
                let shared = Arc::downgrade(&me.shared);
                stopper.on_stop(move |_| {
                    if let Some(shared) = shared.upgrade() {
                        shared.changed();
                    }
                });
                if let Some(w) = me.shared.lock().windows.get_mut(&window) {
                    w.stopper = Some(stopper);
                }
            }
            let mut env = BTreeMap::new();
            env.insert(Val::str("pane"), Val::Ref(pane_fwd));
            env.insert(Val::str("powerbox"), Val::Ref(pb_fwd));
            env.insert(Val::str("grants"), Val::Dict(grants));
            cx.send_only(&caplet, "launch", vec![Val::Dict(env)]);
            Ok(Val::null())
        });
        if let Err(e) = self.wait(&made) {
            // The turn may still run: closing now makes it revoke what it
            // makes instead of handing it over.
            let _ = self.close(window);
            return Err(e);
        }
        let mut inner = self.shared.lock();
        let _ = self.save(&mut inner);
        drop(inner);
        self.shared.changed();
        Ok(window)
    }

    /// Opens the browser's window (or answers the open one).
    fn launch_browser(self: &Arc<Self>) -> u64 {
        let window = {
            let mut inner = self.shared.lock();
            if let Some((w, _)) = inner.windows.iter().find(|(_, w)| w.app == browser::APP) {
                return *w;
            }
            let window = inner.next_window;
            inner.next_window += 1;
            let start = json!({"k": "column", "c": [
                {"k": "heading", "level": 2, "c": [{"k": "text", "s": "Type a web address above"}]},
                {"k": "para", "c": [{"k": "text", "s": "Each page is drawn by a renderer that holds only that page: its text, and its links, images and forms as capabilities. It cannot see addresses, change the address bar or the title, reach the web or your files, or keep anything from one page to the next."}]},
            ]});
            inner.windows.insert(
                window,
                Window {
                    app: browser::APP.to_owned(),
                    caplet: Ref::broken(error("no page is shown")),
                    view: Some(start),
                    links: Vec::new(),
                    images: Vec::new(),
                    seq: 1,
                    revokers: Vec::new(),
                    prompt: None,
                    requests: VecDeque::new(),
                    shows: VecDeque::new(),
                    dirty: false,
                    browser: Some(browser::BrowserState::new()),
                    stopper: None,
                },
            );
            window
        };
        // The default renderer compiles in the background while the
        // person types an address, so that the first page does not wait
        // for it (the others compile when first chosen).
        let warm = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("pola-renderers".into())
            .spawn(move || {
                if let Some(d) = warm.upgrade() {
                    d.renderers.warm(pola_desk_apps::RENDERERS[0].id);
                }
            });
        self.shared.changed();
        window
    }

    /// Gives window `window` the revokers of what this turn made for it.
    /// If the window was closed meanwhile, revokes them at once (and marks
    /// their grants dead) and answers `false`: the caller must then hand
    /// nothing over.
    fn attach(&self, cx: &mut Turn<'_>, window: u64, revokers: Vec<(Option<u64>, Ref)>) -> bool {
        let mut inner = self.shared.lock();
        if let Some(w) = inner.windows.get_mut(&window) {
            w.revokers.extend(revokers);
            return true;
        }
        for (gid, rev) in revokers {
            if let Some(g) = gid.and_then(|gid| inner.model.grants.iter_mut().find(|g| g.id == gid))
            {
                g.live = false;
            }
            cx.send_only(&rev, "revoke", Vec::new());
        }
        false
    }

    /// Wraps `cap` for app `app`: an audit counter behind a revocable
    /// forwarder. Returns `(forwarder, revoker, grant number)`.
    fn wrap(
        self: &Arc<Self>,
        cx: &mut Turn<'_>,
        app: &str,
        cap: Ref,
        kind: &str,
        words: &str,
        origin: Origin,
    ) -> (Ref, Ref, u64) {
        let gid = {
            let mut inner = self.shared.lock();
            let gid = inner.model.next_grant;
            inner.model.next_grant += 1;
            inner.model.grants.push(GrantRecord {
                id: gid,
                app: app.to_owned(),
                kind: kind.to_owned(),
                words: words.to_owned(),
                origin,
                at: now_ms(),
                uses: 0,
                last_use: None,
                live: true,
            });
            gid
        };
        let audited = cx.spawn(Audited {
            shared: Arc::downgrade(&self.shared),
            grant: gid,
            target: cap,
        });
        let (fwd, rev) = revocable(cx, audited);
        (fwd, rev, gid)
    }

    /// Makes the capability a spec describes.
    fn make_cap(&self, cx: &mut Turn<'_>, spec: &Spec) -> R<Ref> {
        crate::caps::make(cx, &self.documents, spec, &self.shared_offers(spec))
    }

    fn shared_offers(&self, spec: &Spec) -> Vec<Ref> {
        let Spec::Object {
            interface,
            provider,
        } = spec
        else {
            return Vec::new();
        };
        self.shared
            .lock()
            .offers
            .iter()
            .filter(|o| &o.interface == interface && provider.as_ref() == Some(&o.app))
            .map(|o| o.object.clone())
            .collect()
    }

    /// `POST api/windows/W/event`.
    ///
    /// # Errors
    /// No such window, or a malformed event.
    pub fn event(&self, window: u64, ev: &Json) -> R<()> {
        let (caplet, link) = {
            let inner = self.shared.lock();
            let w = inner
                .windows
                .get(&window)
                .ok_or_else(|| DeskError::missing("that window is closed"))?;
            let link = match ev["type"].as_str() {
                Some("link") => {
                    let n = ev["n"]
                        .as_u64()
                        .ok_or_else(|| DeskError::bad("a link event needs n"))?;
                    Some(
                        usize::try_from(n)
                            .ok()
                            .and_then(|n| w.links.get(n).cloned())
                            .ok_or_else(|| DeskError::bad("no such link in this view"))?,
                    )
                }
                _ => None,
            };
            (w.caplet.clone(), link)
        };
        if let Some(target) = link {
            self.vat.send_only(&target, "follow", Vec::new());
            return Ok(());
        }
        let mut d = BTreeMap::new();
        match ev["type"].as_str() {
            Some("click") => {
                d.insert(Val::str("type"), Val::sym("click"));
                d.insert(Val::str("id"), Val::str(event_id(ev)?));
            }
            Some("input") => {
                let value = ev["value"]
                    .as_str()
                    .ok_or_else(|| DeskError::bad("an input event needs its value"))?;
                if value.len() > pane::MAX_TEXT {
                    return Err(DeskError::bad("that text is too long"));
                }
                d.insert(Val::str("type"), Val::sym("input"));
                d.insert(Val::str("id"), Val::str(event_id(ev)?));
                d.insert(Val::str("value"), Val::str(value));
            }
            _ => return Err(DeskError::bad("unknown event type")),
        }
        self.vat.send_only(&caplet, "event", vec![Val::Dict(d)]);
        Ok(())
    }

    /// `POST api/windows/W/drop`: the user dropped a document on the
    /// window: a read-write grant of that file, then a `drop` event.
    ///
    /// # Errors
    /// No such window or document.
    pub fn drop_file(self: &Arc<Self>, window: u64, rel: &str) -> R<()> {
        if self
            .shared
            .lock()
            .windows
            .get(&window)
            .is_some_and(|w| w.browser.is_some())
        {
            return Err(DeskError::bad(
                "the browser takes no documents: its pages get nothing from your files",
            ));
        }
        let rel = self.check_rel(rel, true)?;
        let app = self
            .shared
            .lock()
            .windows
            .get(&window)
            .map(|w| w.app.clone())
            .ok_or_else(|| DeskError::missing("that window is closed"))?;
        let caplet = self
            .vat
            .root(&format!("app:{app}"))
            .ok_or_else(|| DeskError::missing("no such app"))?;
        let me = self.clone();
        let made = self.vat.run(move |cx| {
            let spec = Spec::File {
                rel: rel.clone(),
                write: true,
            };
            let cap = me.make_cap(cx, &spec).map_err(|e| error(e.message))?;
            let (fwd, rev, gid) = me.wrap(cx, &app, cap, "file", &spec_words(&spec), Origin::Drop);
            if !me.attach(cx, window, vec![(Some(gid), rev)]) {
                return Ok(Val::null());
            }
            let name = rel.rsplit('/').next().unwrap_or_default().to_owned();
            let mut d = BTreeMap::new();
            d.insert(Val::str("type"), Val::sym("drop"));
            d.insert(Val::str("name"), Val::str(name));
            d.insert(Val::str("file"), Val::Ref(fwd));
            cx.send_only(&caplet, "event", vec![Val::Dict(d)]);
            Ok(Val::null())
        });
        self.wait(&made)?;
        let mut inner = self.shared.lock();
        let _ = self.save(&mut inner);
        Ok(())
    }

    /// `POST api/windows/W/close`: revokes everything the launch was
    /// given, breaks a pending request, withdraws its offers.
    ///
    /// # Errors
    /// No such window.
    pub fn close(&self, window: u64) -> R<()> {
        let (w, offers) = {
            let mut inner = self.shared.lock();
            let w = inner
                .windows
                .remove(&window)
                .ok_or_else(|| DeskError::missing("that window is closed"))?;
            let offers: Vec<Offer> = {
                let (gone, kept): (Vec<Offer>, Vec<Offer>) =
                    inner.offers.drain(..).partition(|o| o.window == window);
                inner.offers = kept;
                gone
            };
            for (gid, _) in &w.revokers {
                if let Some(g) =
                    gid.and_then(|gid| inner.model.grants.iter_mut().find(|g| g.id == gid))
                {
                    g.live = false;
                }
            }
            let _ = self.save(&mut inner);
            (w, offers)
        };
        drop(offers);
        let mut w = w;
        if let Some(b) = w.browser.as_mut() {
            b.stop_renderer();
        }
        if let Some(p) = w.prompt {
            p.resolver.settle_now(Err(error("the window was closed")));
        }
        let revokers: Vec<Ref> = w.revokers.into_iter().map(|(_, r)| r).collect();
        // An app starts afresh at its next launch: whatever it was still
        // doing (callbacks, loops) ends with its window, and a stop by its
        // budget is lifted. Its storage stays. (A browser window's
        // renderer was stopped above.)
        let app = (w.browser.is_none()).then_some(w.caplet);
        let done = self.vat.run(move |cx| {
            for r in &revokers {
                cx.send_only(r, "revoke", Vec::new());
            }
            let Some(app) = app else {
                return Ok(Val::null());
            };
            let key = cx.spawn(Upgrader);
            Ok(Val::Ref(cx.send(&app, RESTART, vec![Val::Ref(key)])))
        });
        self.wait(&done)?;
        self.shared.changed();
        Ok(())
    }

    /// `POST api/windows/W/restart`: closes an app's window (taking back
    /// what that launch was given) and launches the app again, fresh;
    /// answers the new window.
    ///
    /// # Errors
    /// No such window, a browser window, or the launch's errors.
    pub fn restart(self: &Arc<Self>, window: u64) -> R<u64> {
        let app = {
            let inner = self.shared.lock();
            let w = inner
                .windows
                .get(&window)
                .ok_or_else(|| DeskError::missing("that window is closed"))?;
            if w.browser.is_some() {
                return Err(DeskError::bad(
                    "the browser is not restarted: reload the page",
                ));
            }
            w.app.clone()
        };
        self.close(window)?;
        self.launch(&app)
    }

    // ----- the powerbox -----

    /// `POST api/prompts/P/answer`.
    ///
    /// # Errors
    /// No such prompt, or an answer that does not fit the request (the
    /// prompt stays then).
    pub fn answer(self: &Arc<Self>, prompt: &str, a: &Json) -> R<()> {
        let (window, app, request) = {
            let inner = self.shared.lock();
            let Some((id, w)) = inner
                .windows
                .iter()
                .find(|(_, w)| w.prompt.as_ref().is_some_and(|p| p.id == prompt))
            else {
                return Err(DeskError::missing("that request was already answered"));
            };
            let request = w.prompt.as_ref().map(|p| p.request.clone());
            (*id, w.app.clone(), request)
        };
        let Some(request) = request else {
            return Err(DeskError::missing("that request was already answered"));
        };
        // Only this prompt: a repeated answer must not settle the app's
        // next request, which the user has not seen.
        let take = |me: &Desk| {
            let mut inner = me.shared.lock();
            let w = inner.windows.get_mut(&window)?;
            if w.prompt.as_ref().is_some_and(|p| p.id == prompt) {
                w.prompt.take()
            } else {
                None
            }
        };
        if a["grant"].as_bool() != Some(true) {
            if let Some(p) = take(self) {
                p.resolver.settle_now(Err(error("the user refused")));
            }
            self.shared.changed();
            return Ok(());
        }
        let spec = match request.kind {
            Kind::Object => {
                let oid = a["offer"]
                    .as_str()
                    .ok_or_else(|| DeskError::bad("choose one of the offers"))?;
                let inner = self.shared.lock();
                let o = inner
                    .offers
                    .iter()
                    .find(|o| o.id == oid && Some(&o.interface) == request.interface.as_ref())
                    .ok_or_else(|| DeskError::bad("that offer is gone"))?;
                let object = o.object.clone();
                let words = format!(
                    "Use the {:?} object of {}",
                    o.interface,
                    inner
                        .model
                        .app(&o.app)
                        .map_or("another app", |a| a.pet.as_str())
                );
                drop(inner);
                let p = take(self)
                    .ok_or_else(|| DeskError::missing("that request was already answered"))?;
                let me = self.clone();
                let made = self.vat.run(move |cx| {
                    let (fwd, rev, gid) =
                        me.wrap(cx, &app, object, "object", &words, Origin::Request);
                    if me.attach(cx, window, vec![(Some(gid), rev)]) {
                        cx.resolve(&p.resolver, Val::Ref(fwd));
                    } else {
                        cx.break_promise(&p.resolver, error("the window was closed"));
                    }
                    Ok(Val::null())
                });
                self.wait(&made)?;
                self.shared.changed();
                return Ok(());
            }
            _ => {
                let inner = self.shared.lock();
                self.narrowed(&inner, &request, a)?
            }
        };
        let p =
            take(self).ok_or_else(|| DeskError::missing("that request was already answered"))?;
        let me = self.clone();
        let words = spec_words(&spec);
        let made = self.vat.run(move |cx| {
            match me.make_cap(cx, &spec) {
                Ok(cap) => {
                    let (fwd, rev, gid) =
                        me.wrap(cx, &app, cap, spec.kind(), &words, Origin::Request);
                    if me.attach(cx, window, vec![(Some(gid), rev)]) {
                        cx.resolve(&p.resolver, Val::Ref(fwd));
                    } else {
                        cx.break_promise(&p.resolver, error("the window was closed"));
                    }
                }
                Err(e) => cx.break_promise(&p.resolver, error(e.message)),
            }
            Ok(Val::null())
        });
        self.wait(&made)?;
        let mut inner = self.shared.lock();
        let _ = self.save(&mut inner);
        drop(inner);
        self.shared.changed();
        Ok(())
    }

    // ----- revocation and audit -----

    /// `POST api/grants/G/revoke`.
    ///
    /// # Errors
    /// No such live grant.
    pub fn revoke(&self, grant: u64) -> R<()> {
        let revoker = {
            let mut inner = self.shared.lock();
            let mut found = None;
            for w in inner.windows.values_mut() {
                if let Some(i) = w.revokers.iter().position(|(g, _)| *g == Some(grant)) {
                    found = Some(w.revokers.remove(i).1);
                }
            }
            let Some(found) = found else {
                return Err(DeskError::missing("that grant is not live"));
            };
            if let Some(g) = inner.model.grants.iter_mut().find(|g| g.id == grant) {
                g.live = false;
            }
            let _ = self.save(&mut inner);
            found
        };
        let done = self.vat.run(move |cx| {
            cx.send_only(&revoker, "revoke", Vec::new());
            Ok(Val::null())
        });
        self.wait(&done)?;
        self.shared.changed();
        Ok(())
    }

    /// `POST api/apps/ID/revoke-all`: every live grant of the app (its
    /// window stays open with its pane and powerbox).
    ///
    /// # Errors
    /// No such app.
    pub fn revoke_all(&self, app: &str) -> R<()> {
        let live: Vec<u64> = {
            let inner = self.shared.lock();
            if inner.model.app(app).is_none() {
                return Err(DeskError::missing("no such app"));
            }
            inner
                .windows
                .values()
                .filter(|w| w.app == app)
                .flat_map(|w| w.revokers.iter().filter_map(|(g, _)| *g))
                .collect()
        };
        for g in live {
            self.revoke(g)?;
        }
        Ok(())
    }

    /// `GET api/apps/ID/audit`.
    ///
    /// # Errors
    /// No such app.
    pub fn audit(&self, app: &str) -> R<Json> {
        if app == browser::APP {
            let words = "Connect to any public web site, and to the local sites you type in its address bar";
            return Ok(json!({
                "app": browser::APP, "pet": browser::NAME, "calls_itself": browser::NAME,
                "endowments": [{"name": "web", "words": words}],
                "grants": [],
                "reach": [format!("Built in: {words}"),
                          "Its renderers hold one page each: that page's links, images and forms, and a pane that dies when the page goes".to_owned()],
            }));
        }
        let inner = self.shared.lock();
        let a = inner
            .model
            .app(app)
            .ok_or_else(|| DeskError::missing("no such app"))?;
        let grants: Vec<Json> = inner
            .model
            .grants
            .iter()
            .filter(|g| g.app == app)
            .rev()
            .map(|g| {
                json!({"id": g.id.to_string(), "kind": g.kind, "words": g.words, "origin": g.origin,
                       "at": g.at, "uses": g.uses, "last_use": g.last_use, "live": g.live})
            })
            .collect();
        let mut reach: Vec<String> = Vec::new();
        let running = inner.windows.values().any(|w| w.app == app);
        for g in inner.model.grants.iter().filter(|g| g.app == app && g.live) {
            reach.push(format!("Now: {}", g.words));
        }
        for e in &a.endowments {
            reach.push(format!(
                "{}: {}",
                if running {
                    "At every launch"
                } else {
                    "When launched"
                },
                e.words
            ));
        }
        if reach.is_empty() {
            reach.push("Nothing beyond its own window and its own data.".to_owned());
        }
        Ok(json!({
            "app": a.id, "pet": a.pet, "calls_itself": a.calls_itself,
            "endowments": a.endowments.iter().map(|e| json!({"name": e.name, "words": e.words})).collect::<Vec<_>>(),
            "grants": grants, "reach": reach,
        }))
    }

    /// `GET api/timeline`.
    pub fn timeline(&self) -> Json {
        let inner = self.shared.lock();
        let uses: Vec<Json> = inner
            .timeline
            .iter()
            .rev()
            .map(|u| {
                let pet = inner.model.app(&u.app).map(|a| a.pet.clone());
                json!({"at": u.at, "app": u.app, "pet": pet, "grant": u.grant.to_string(),
                       "words": u.words, "method": u.method})
            })
            .collect();
        json!({ "uses": uses })
    }

    /// `GET api/files?dir=REL`: one folder of the documents folder.
    ///
    /// # Errors
    /// Not a folder inside the documents folder.
    pub fn files(&self, dir: &str) -> R<Json> {
        let rel = inside_documents(dir)
            .ok_or_else(|| DeskError::bad("only the documents folder can be browsed"))?;
        let root = self.docs_dir()?;
        let d = if rel.is_empty() {
            root
        } else {
            root.open_dir(&rel)
                .map_err(|_| DeskError::bad("no such folder in the documents folder"))?
        };
        let mut entries = Vec::new();
        let list = d
            .entries()
            .map_err(|_| DeskError::bad("that folder cannot be read"))?;
        for e in list.flatten().take(10_000) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let Ok(ft) = e.file_type() else { continue };
            let kind = if ft.is_dir() {
                "folder"
            } else if ft.is_file() {
                "file"
            } else {
                continue;
            };
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            entries.push(json!({"name": name, "kind": kind, "size": size}));
        }
        entries.sort_by(|a, b| {
            (a["kind"] != "folder", a["name"].as_str())
                .cmp(&(b["kind"] != "folder", b["name"].as_str()))
        });
        Ok(json!({"dir": rel, "entries": entries}))
    }

    /// Sends the page the latest view of each window whose views came
    /// faster than the rate allows (call it a few times a second).
    pub fn flush_views(&self) {
        let now = Instant::now();
        let mut out = Vec::new();
        {
            let mut inner = self.shared.lock();
            for (id, w) in &mut inner.windows {
                if !w.dirty {
                    continue;
                }
                while w
                    .shows
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
                {
                    w.shows.pop_front();
                }
                if w.shows.len() >= SHOWS_PER_SECOND {
                    continue;
                }
                w.dirty = false;
                w.shows.push_back(now);
                out.push(
                    json!({"type": "view", "window": id.to_string(), "view": w.view, "seq": w.seq})
                        .to_string(),
                );
            }
        }
        for msg in out {
            let _ = self.shared.events.send(msg);
        }
    }

    /// Stops the vat (flushing what it holds).
    pub fn shutdown(&self) {
        self.vat.shutdown();
    }
}

/// A powerbox request at run time: `request(KIND, REASON, OPTIONS)`.
fn runtime_request(args: &[Val]) -> Result<Request, String> {
    let [kind, reason, rest @ ..] = args else {
        return Err("request takes a kind, a reason and options".to_owned());
    };
    let kind = kind
        .as_symbol()
        .and_then(Kind::from_name)
        .filter(|k| matches!(k, Kind::File | Kind::Folder | Kind::Web | Kind::Object))
        .ok_or("the kind must be 'file, 'folder, 'web or 'object")?;
    let reason = reason.as_str().ok_or("the reason must be a string")?;
    pola_powerbox::text::check(reason, 1, 280).map_err(|e| format!("the reason: {e}"))?;
    let options = match rest {
        [] => BTreeMap::new(),
        [Val::Dict(d)] => d.clone(),
        _ => return Err("the options must be a dictionary".to_owned()),
    };
    let get = |k: &str| options.get(&Val::str(k));
    let mut request = Request {
        name: "request".to_owned(),
        kind,
        reason: reason.to_owned(),
        access: None,
        path: None,
        sites: Sites::None,
        interface: None,
    };
    match kind {
        Kind::File | Kind::Folder => {
            let access = get("access")
                .and_then(|a| a.as_symbol().or(a.as_str()))
                .unwrap_or("read");
            request.access =
                Some(Access::from_name(access).ok_or("access must be 'read or 'read-write")?);
        }
        Kind::Web => {
            let Some(Val::List(list)) = get("sites") else {
                return Err("a web request names its sites".to_owned());
            };
            if list.len() == 1 && list[0].as_str() == Some("*") {
                request.sites = Sites::Anywhere;
            } else {
                let mut sites = Vec::new();
                for s in list.iter().take(16) {
                    let s = s.as_str().ok_or("a site must be a string")?;
                    sites.push(
                        pola_powerbox::origin::Origin::parse(s)
                            .map_err(|e| format!("a site: {e}"))?,
                    );
                }
                if sites.is_empty() {
                    return Err("a web request names its sites".to_owned());
                }
                request.sites = Sites::Some(sites);
            }
        }
        _ => {
            let i = get("interface")
                .and_then(|i| i.as_str())
                .filter(|i| pola_powerbox::package::is_interface_name(i))
                .ok_or("an object request names its interface")?;
            request.interface = Some(i.to_owned());
        }
    }
    Ok(request)
}

/// The user's home folder, for Granma's rule 3 (`~` in a suggested
/// path); a path no suggestion can be inside when there is none.
fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from("/nonexistent-home"), PathBuf::from)
}

fn event_id(ev: &Json) -> R<String> {
    let id = ev["id"]
        .as_str()
        .ok_or_else(|| DeskError::bad("an event needs an id"))?;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(DeskError::bad("bad id"));
    }
    Ok(id.to_owned())
}

/// A path inside the documents folder, lexically: relative, no `..`,
/// `.`, empty parts, NUL or backslash. `""` is the folder itself.
pub fn inside_documents(rel: &str) -> Option<String> {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        return Some(String::new());
    }
    if rel.len() > 4096 || rel.contains('\0') || rel.contains('\\') {
        return None;
    }
    let ok = rel
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..");
    ok.then(|| rel.to_owned())
}

fn normalise_origin(site: &str) -> Option<String> {
    let o = pola_powerbox::origin::Origin::parse(site).ok()?;
    Some(o.to_string())
}

/// Plain words for a spec.
pub fn spec_words(spec: &Spec) -> String {
    match spec {
        Spec::File { rel, write } => format!(
            "{} the file \"{rel}\"",
            if *write { "Read and change" } else { "Read" }
        ),
        Spec::Folder { rel, write } => format!(
            "{} the folder \"{}\"",
            if *write { "Read and change" } else { "Read" },
            if rel.is_empty() { "Documents" } else { rel }
        ),
        Spec::Web { sites: None } => "Connect to any web site".to_owned(),
        Spec::Web { sites: Some(s) } => format!("Connect to {}", s.join(", ")),
        Spec::Clock => "Know the time".to_owned(),
        Spec::Random => "Get random numbers".to_owned(),
        Spec::Storage => "Keep its own data".to_owned(),
        Spec::Object { interface, .. } => format!("Use an object that offers {interface:?}"),
    }
}

fn check_pet(model: &Model, pet: &str, except: Option<&str>) -> R<String> {
    let pet = pet.trim();
    let n = pet.chars().count();
    if n == 0 {
        return Err(DeskError::bad("give the app a name"));
    }
    if n > MAX_PET {
        return Err(DeskError::bad(format!(
            "a name has at most {MAX_PET} characters"
        )));
    }
    if let Err(e) = pola_powerbox::text::check(pet, 1, MAX_PET) {
        return Err(DeskError::bad(format!("that name cannot be used: {e}")));
    }
    if model
        .apps
        .iter()
        .any(|a| Some(a.id.as_str()) != except && a.pet.to_lowercase() == pet.to_lowercase())
    {
        return Err(DeskError::bad(format!(
            "you already have an app called {pet:?}"
        )));
    }
    Ok(pet.to_owned())
}

fn request_json(inner: &Inner, r: &Request) -> Json {
    let mut j = json!({
        "name": r.name, "kind": kind_name(r.kind), "words": pola_powerbox::words::describe(r),
        "reason": r.reason,
    });
    if let Some(a) = r.access {
        j["access"] = json!(access_name(a));
        if a == Access::ReadWrite {
            j["narrow"] = json!(["read"]);
        }
    }
    if let Some(p) = &r.path {
        j["path"] = json!(p);
    }
    match &r.sites {
        Sites::Anywhere => j["sites"] = json!(["*"]),
        Sites::Some(list) => {
            j["sites"] = json!(list.iter().map(ToString::to_string).collect::<Vec<_>>())
        }
        Sites::None => {}
    }
    if let Some(i) = &r.interface {
        j["interface"] = json!(i);
        j["offers"] = offers_json(inner, i);
    }
    j
}

fn offers_json(inner: &Inner, interface: &str) -> Json {
    Json::Array(
        inner
            .offers
            .iter()
            .filter(|o| o.interface == interface)
            .map(|o| json!({"id": o.id, "app_pet": inner.model.app(&o.app).map(|a| a.pet.clone())}))
            .collect(),
    )
}

fn prompt_json(inner: &Inner, p: &Prompt) -> Json {
    let mut j = request_json(inner, &p.request);
    j["id"] = json!(p.id);
    j
}

fn kind_name(k: Kind) -> &'static str {
    k.as_str()
}

fn access_name(a: Access) -> &'static str {
    a.as_str()
}

// ----- the objects apps hold -----

/// A window's pane: `show(VIEW)`.
struct PaneObject {
    desk: std::sync::Weak<Desk>,
    window: u64,
    /// For a browser page's renderer: the page it may draw.
    page: Option<u64>,
}

impl Object for PaneObject {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        if method != "show" {
            return Err(error("a pane answers only show(view)"));
        }
        let [tree] = args.as_slice() else {
            return Err(error("show takes one view"));
        };
        let page = self.page;
        let window = self.window;
        let mut pages_images = Vec::new();
        let view = pane::check_with(tree, &mut |r| {
            let Some(p) = page else { return false };
            match browser::page_image(cx, r, window, p) {
                Some(i) => {
                    pages_images.push(i);
                    true
                }
                None => false,
            }
        })
        .map_err(|e| error(e.0))?;
        let desk = self
            .desk
            .upgrade()
            .ok_or_else(|| error("the desk is closing"))?;
        let mut inner = desk.shared.lock();
        let Some(w) = inner.windows.get_mut(&self.window) else {
            return Err(error("the window was closed"));
        };
        if page.is_some() && w.browser.as_ref().map(|b| b.page) != page {
            return Err(error("this page is gone: the browser has moved on"));
        }
        // A page redraws every view it is sent: an app may not flood it.
        let now = Instant::now();
        while w
            .shows
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            w.shows.pop_front();
        }
        let msg = json!({"type": "view", "window": self.window.to_string(), "view": view.json, "seq": w.seq + 1})
            .to_string();
        if msg.len() > MAX_VIEW_JSON {
            return Err(error("the view is too large to draw"));
        }
        w.seq += 1;
        w.view = Some(view.json);
        w.links = view.links;
        w.images = pages_images;
        if w.shows.len() >= SHOWS_PER_SECOND {
            // Over the rate: the page gets the latest view at the next
            // flush (Desk::flush_views), not every one in between.
            w.dirty = true;
            return Ok(Val::Bool(true));
        }
        w.shows.push_back(now);
        w.dirty = false;
        drop(inner);
        let _ = desk.shared.events.send(msg);
        Ok(Val::Bool(true))
    }
}

/// A launch's powerbox: `request(KIND, REASON, OPTIONS)`,
/// `offer(INTERFACE, OBJECT)`.
struct PowerboxObject {
    desk: std::sync::Weak<Desk>,
    window: u64,
}

impl Object for PowerboxObject {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let desk = self
            .desk
            .upgrade()
            .ok_or_else(|| error("the desk is closing"))?;
        match method {
            "request" => {
                let request = runtime_request(&args).map_err(error)?;
                let mut inner = desk.shared.lock();
                let Some(w) = inner.windows.get_mut(&self.window) else {
                    return Err(error("the window was closed"));
                };
                let now = Instant::now();
                while w
                    .requests
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
                {
                    w.requests.pop_front();
                }
                if w.prompt.is_some() || w.requests.len() >= REQUESTS_PER_MINUTE {
                    return Err(error("too many requests: wait"));
                }
                w.requests.push_back(now);
                let (promise, resolver) = cx.promise();
                w.prompt = Some(Prompt {
                    id: random_hex(8),
                    request,
                    resolver,
                });
                drop(inner);
                desk.shared.changed();
                Ok(Val::Ref(promise))
            }
            "offer" => {
                let [Val::String(interface), Val::Ref(object)] = args.as_slice() else {
                    return Err(error("offer takes an interface name and an object"));
                };
                let mut inner = desk.shared.lock();
                let Some(app) = inner.windows.get(&self.window).map(|w| w.app.clone()) else {
                    return Err(error("the window was closed"));
                };
                let allowed = inner
                    .model
                    .app(&app)
                    .is_some_and(|a| a.offers.iter().any(|o| o == interface));
                if !allowed {
                    return Err(error(
                        "the app's manifest does not list that interface under offers",
                    ));
                }
                if inner
                    .offers
                    .iter()
                    .filter(|o| o.window == self.window)
                    .count()
                    >= 16
                {
                    return Err(error("too many offers"));
                }
                // What others get lasts only while this window is open.
                let (object, revoker) = revocable(cx, object.clone());
                if let Some(w) = inner.windows.get_mut(&self.window) {
                    w.revokers.push((None, revoker));
                }
                inner.offers.push(Offer {
                    id: random_hex(8),
                    window: self.window,
                    app,
                    interface: interface.clone(),
                    object,
                });
                drop(inner);
                desk.shared.changed();
                Ok(Val::Bool(true))
            }
            _ => Err(error("a powerbox answers request and offer")),
        }
    }
}

/// Counts uses of a grant, then passes the message on.
struct Audited {
    shared: std::sync::Weak<Shared>,
    grant: u64,
    target: Ref,
}

impl Object for Audited {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        // Revocation takes effect when the desk marks the grant dead,
        // before its revoke message is handled.
        let shared = self.shared.upgrade().ok_or_else(|| error("revoked"))?;
        {
            let mut inner = shared.lock();
            let at = now_ms();
            let mut record = None;
            if let Some(g) = inner
                .model
                .grants
                .iter_mut()
                .rev()
                .find(|g| g.id == self.grant)
            {
                if !g.live {
                    return Err(error("revoked"));
                }
                g.uses += 1;
                g.last_use = Some(at);
                record = Some((g.app.clone(), g.words.clone()));
            }
            if record.is_none() {
                return Err(error("revoked"));
            }
            if let Some((app, words)) = record {
                inner.timeline.push_back(Use {
                    at,
                    app,
                    grant: self.grant,
                    words,
                    method: method
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                        .take(32)
                        .collect(),
                });
                while inner.timeline.len() > MAX_TIMELINE {
                    inner.timeline.pop_front();
                }
            }
        }
        forward(cx, &self.target, method, args)
    }
}
