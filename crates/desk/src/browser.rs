//! The desk's built-in browser (PROTOCOL.md section 4): the URL field,
//! the title, history and fetching are the desk's; each page is drawn by a
//! fresh renderer caplet holding only the page's capability tree and a
//! pane for that page.
//!
//! A page's capabilities (its links, images and forms, and the
//! renderer's pane) name the page by number; the browser window holds the
//! number of its current page, and a capability of any other page answers
//! "this page is gone". Navigating moves that number first, so nothing of
//! the old page works once the URL field has changed.
//!
//! Fetching runs on a thread of its own per navigation (never on the vat's
//! thread); a navigation that a newer one overtook is dropped when it
//! finishes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use pola_browser::{Limits, Page, Slot, Submission};
use pola_powerbox::caps::{Sites, WebCap, WebOptions};
use pola_sandbox::CapletModule;
use pola_sandbox::vat::{CapletObject, Policy, Stopper, VatLink};
use pola_vat::{Object, Outcome, Ref, Turn, Val, error};
use serde_json::{Value as Json, json};
use url::Url;

use super::{Desk, DeskError, R, Window};

/// The browser's app id.
pub const APP: &str = "browser";
/// The browser's name on the desk.
pub const NAME: &str = "Browser";
/// Largest image the desk paints, in pixels on the longer side (larger
/// ones are scaled down).
const MAX_IMAGE_SIDE: u32 = 1600;
/// Largest image the desk decodes, in pixels (4 bytes each while decoded;
/// at most [`IMAGE_WORKERS`] decode at once per page).
const MAX_IMAGE_PIXELS: u64 = 16_000_000;
/// Most bytes of re-encoded images the desk keeps for one page.
const MAX_PAGE_IMAGE_BYTES: usize = 64 << 20;
/// Images fetched at once for one page.
const IMAGE_WORKERS: usize = 4;
/// History entries kept per window.
const MAX_HISTORY: usize = 100;

/// A fetched image of a page: re-encoded as PNG, or why not. The slot's
/// lock is held while it is fetched, so a second asker waits for the
/// first fetch instead of repeating it.
type ImageSlot = Arc<Mutex<Option<Result<Arc<Vec<u8>>, String>>>>;

/// A page as fetched and parsed: kept while it is the window's page, so
/// that switching renderers draws it again without fetching it again.
pub(super) struct Loaded {
    url: Url,
    page: Page,
    images: Vec<ImageSlot>,
    /// Bytes of re-encoded images kept (at most [`MAX_PAGE_IMAGE_BYTES`]).
    image_bytes: std::sync::atomic::AtomicUsize,
}

/// What a browser window holds besides its pane.
pub(super) struct BrowserState {
    /// The URL field: what the window shows, always the page being loaded
    /// or shown.
    url: String,
    title: String,
    loading: bool,
    error: Option<String>,
    /// The renderer id of the next page (and of the current one).
    renderer: &'static str,
    history: Vec<String>,
    /// The index of the current entry of `history`.
    at: usize,
    /// The current page's number: capabilities of other pages are dead.
    pub(super) page: u64,
    /// The latest navigation: a fetch of an older one is dropped.
    nav: u64,
    /// Origins the user typed: reachable even when private.
    typed: Vec<url::Origin>,
    web: WebCap,
    current: Option<Arc<Loaded>>,
    /// Stops the current page's renderer (when the page goes).
    stopper: Option<Stopper>,
    /// What the desk handed the current page's renderer, kept for the
    /// tests below (which call a dead page's capabilities themselves).
    #[cfg(test)]
    sent: Option<tests::Sent>,
}

impl BrowserState {
    pub(super) fn new() -> BrowserState {
        BrowserState {
            url: String::new(),
            title: String::new(),
            loading: false,
            error: None,
            renderer: pola_desk_apps::RENDERERS[0].id,
            history: Vec::new(),
            at: 0,
            page: 0,
            nav: 0,
            typed: Vec::new(),
            web: web_cap(&[]),
            current: None,
            stopper: None,
            #[cfg(test)]
            sent: None,
        }
    }

    /// Stops the renderer of the page being left, at once: its pending
    /// callbacks and loops end with it (its capabilities are already dead
    /// by the page number).
    pub(super) fn stop_renderer(&mut self) {
        if let Some(s) = self.stopper.take() {
            s.stop();
        }
    }

    /// The chrome's state for the page (`WINDOW.browser`).
    pub(super) fn json(&self) -> Json {
        json!({
            "url": self.url, "title": self.title, "loading": self.loading, "error": self.error,
            "renderer": self.renderer,
            "renderers": pola_desk_apps::RENDERERS.iter().map(|r| json!({"id": r.id, "label": r.label})).collect::<Vec<_>>(),
            "back": self.at > 0 && !self.history.is_empty(),
            "forward": self.at + 1 < self.history.len(),
            "truncated": self.current.as_ref().is_some_and(|c| c.page.truncated),
            // The current renderer stopped by its budget, in plain words.
            "renderer_stopped": self.stopper.as_ref().and_then(Stopper::stopped).map(|r| r.public_reason()),
        })
    }
}

fn web_cap(typed: &[url::Origin]) -> WebCap {
    WebCap::new(Sites::AnywhereAnd(typed.to_vec()), WebOptions::default())
}

/// How a navigation started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// Typed in the URL field, a link, or a form: a new history entry.
    New,
    /// Back, forward or reload to history entry `.0`: the history stays,
    /// and its position moves only if the navigation starts.
    History(usize),
}

/// The renderers' modules, compiled once, in a sandbox without storage.
pub(super) struct Renderers {
    sandbox: pola_sandbox::Sandbox<VatLink>,
    modules: Mutex<BTreeMap<&'static str, CapletModule<VatLink>>>,
}

impl Renderers {
    pub(super) fn new() -> anyhow::Result<Renderers> {
        let mut config = crate::sandbox_config();
        config.storage_keys = 0;
        let sandbox = pola_sandbox::Sandbox::new(config)
            .map_err(|e| anyhow::anyhow!("setting up WebAssembly: {e}"))?;
        Ok(Renderers {
            sandbox,
            modules: Mutex::new(BTreeMap::new()),
        })
    }

    /// Compiles renderer `id` ahead of its first page.
    pub(super) fn warm(&self, id: &str) {
        let _ = self.module(id);
    }

    fn module(&self, id: &str) -> R<(&'static str, CapletModule<VatLink>)> {
        let r = pola_desk_apps::RENDERERS
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| DeskError::bad("no such renderer"))?;
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = modules.get(r.id) {
            return Ok((r.id, m.clone()));
        }
        let m = self.sandbox.load(r.wasm).map_err(|e| {
            DeskError::internal(format!("the {} renderer does not load: {e}", r.label))
        })?;
        modules.insert(r.id, m.clone());
        Ok((r.id, m))
    }
}

/// Reads what the user typed in the URL field as an address: a missing
/// scheme is `http://` for `localhost` and IP addresses, `https://`
/// otherwise.
///
/// # Errors
/// Not an http(s) address, in plain words.
pub fn typed_url(text: &str) -> R<Url> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DeskError::bad("type a web address"));
    }
    if text.len() > 8192 {
        return Err(DeskError::bad("that address is too long"));
    }
    let url = if text.contains("://") {
        Url::parse(text)
    } else {
        let host = text.split(['/', ':', '?', '#']).next().unwrap_or("");
        let local = host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok();
        Url::parse(&format!(
            "{}://{text}",
            if local { "http" } else { "https" }
        ))
    }
    .map_err(|_| DeskError::bad("that is not a web address"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DeskError::bad(
            "the browser opens only http and https addresses",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DeskError::bad(
            "an address with a user name or password is not opened",
        ));
    }
    if url.host().is_none() {
        return Err(DeskError::bad("that address has no host"));
    }
    Ok(url)
}

impl Desk {
    fn browser_mut(w: &mut Window) -> R<&mut BrowserState> {
        w.browser
            .as_mut()
            .ok_or_else(|| DeskError::bad("that window is not a browser"))
    }

    /// Sends the page the browser chrome of `window` (before any view
    /// of the page it names, on the same channel).
    fn chrome_changed(&self, window: u64, w: &Window) {
        let Some(b) = &w.browser else { return };
        let msg = json!({"type": "browser", "window": window.to_string(), "browser": b.json()});
        let _ = self.shared.events.send(msg.to_string());
    }

    /// The desk's own view in a browser window (loading, errors): drawn
    /// by the desk, not by a renderer.
    fn own_view(&self, w: &mut Window, window: u64, lines: &[&str]) {
        let c: Vec<Json> = lines
            .iter()
            .map(|l| json!({"k": "para", "c": [{"k": "text", "s": l}]}))
            .collect();
        let view = json!({"k": "column", "c": c});
        w.seq += 1;
        w.view = Some(view.clone());
        w.links.clear();
        w.images.clear();
        w.dirty = false;
        let msg = json!({"type": "view", "window": window.to_string(), "view": view, "seq": w.seq});
        let _ = self.shared.events.send(msg.to_string());
    }

    /// `POST api/windows/W/navigate {"url"}`: the user typed an address.
    ///
    /// # Errors
    /// Not a browser window, or not a web address.
    pub fn browse(self: &Arc<Self>, window: u64, text: &str) -> R<()> {
        let url = typed_url(text)?;
        {
            let mut inner = self.shared.lock();
            let w = browser_window(&mut inner.windows, window)?;
            let b = Self::browser_mut(w)?;
            let origin = url.origin();
            if !b.typed.contains(&origin) {
                b.typed.push(origin);
                if b.typed.len() > 64 {
                    b.typed.remove(0);
                }
                b.web = web_cap(&b.typed);
            }
        }
        self.navigate(window, None, url, None, How::New)
    }

    /// `POST api/windows/W/back`, `…/forward`, `…/reload`.
    ///
    /// # Errors
    /// Not a browser window, or nothing to go to.
    pub fn history(self: &Arc<Self>, window: u64, step: i64) -> R<()> {
        let (to, url) = {
            let mut inner = self.shared.lock();
            let w = browser_window(&mut inner.windows, window)?;
            let b = Self::browser_mut(w)?;
            let to = i64::try_from(b.at).unwrap_or(0) + step;
            let to = usize::try_from(to)
                .ok()
                .filter(|t| *t < b.history.len())
                .ok_or_else(|| DeskError::bad("there is no page to go to"))?;
            (to, b.history[to].clone())
        };
        let url = Url::parse(&url).map_err(|_| DeskError::internal("a bad history entry"))?;
        self.navigate(window, None, url, None, How::History(to))
    }

    /// `POST api/windows/W/renderer {"renderer"}`: draws the current page
    /// again with another renderer (a fresh instance; the page's old
    /// capabilities die).
    ///
    /// # Errors
    /// Not a browser window, or no such renderer.
    pub fn set_renderer(self: &Arc<Self>, window: u64, id: &str) -> R<()> {
        let (id, _) = self.renderers.module(id)?;
        let current = {
            let mut inner = self.shared.lock();
            let w = browser_window(&mut inner.windows, window)?;
            let b = Self::browser_mut(w)?;
            b.renderer = id;
            if b.loading { None } else { b.current.clone() }
        };
        match current {
            Some(loaded) => self.present(window, None, &loaded),
            None => {
                let inner = self.shared.lock();
                if let Some(w) = inner.windows.get(&window) {
                    self.chrome_changed(window, w);
                }
                Ok(())
            }
        }
    }

    /// A link of page `page` was followed.
    fn follow(self: &Arc<Self>, window: u64, page: u64, n: usize) -> Result<(), Val> {
        let url = {
            let inner = self.shared.lock();
            let b = current_page(&inner.windows, window, page)?;
            let loaded = b.current.as_ref().ok_or_else(|| error(GONE))?;
            loaded
                .page
                .links
                .get(n)
                .cloned()
                .ok_or_else(|| error(GONE))?
        };
        self.navigate(window, Some(page), url, None, How::New)
            .map_err(|e| error(e.message))
    }

    /// A form of page `page` was submitted with `values`.
    fn submit(self: &Arc<Self>, window: u64, page: u64, n: usize, values: &Val) -> Result<(), Val> {
        let Val::Dict(d) = values else {
            return Err(error("submit takes a dictionary of field names to strings"));
        };
        let mut fields = BTreeMap::new();
        for (k, v) in d {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                return Err(error("submit takes a dictionary of field names to strings"));
            };
            fields.insert(k.to_owned(), v.to_owned());
        }
        let submission = {
            let inner = self.shared.lock();
            let b = current_page(&inner.windows, window, page)?;
            let loaded = b.current.as_ref().ok_or_else(|| error(GONE))?;
            let form = loaded.page.forms.get(n).ok_or_else(|| error(GONE))?;
            form.submission(&fields).map_err(|e| error(e.to_string()))?
        };
        let (url, body) = match submission {
            Submission::Get(url) => (url, None),
            Submission::Post { url, body } => (url, Some(body)),
        };
        self.navigate(window, Some(page), url, body, How::New)
            .map_err(|e| error(e.message))
    }

    /// Starts a navigation: the URL field changes at once (and the page
    /// being left loses its capabilities), then a thread fetches. `from`
    /// is the page whose link or form started it (`None` for the user):
    /// a page that is no longer current starts nothing.
    fn navigate(
        self: &Arc<Self>,
        window: u64,
        from: Option<u64>,
        url: Url,
        form: Option<Vec<u8>>,
        how: How,
    ) -> R<()> {
        let (nav, web) = {
            let mut inner = self.shared.lock();
            let w = browser_window(&mut inner.windows, window)?;
            let b = Self::browser_mut(w)?;
            if from.is_some_and(|p| p != b.page) {
                return Err(DeskError::bad(GONE));
            }
            if !b.web.sites().allows(&url) {
                return Err(DeskError::bad(match how {
                    How::New => {
                        "a page may not lead the browser to a local address: type it in the address bar"
                    }
                    How::History(_) => {
                        "that page is at a local address no longer typed in this window: type it in the address bar"
                    }
                }));
            }
            // The position in the history moves only now that the
            // navigation starts: a refused Back leaves it where the URL
            // field is.
            if let How::History(to) = how {
                if b.history.get(to).is_none_or(|h| h.as_str() != url.as_str()) {
                    return Err(DeskError::bad("the history changed meanwhile: try again"));
                }
                b.at = to;
            }
            b.nav += 1;
            b.page += 1;
            b.stop_renderer();
            b.current = None;
            b.loading = true;
            b.error = None;
            b.title.clear();
            b.url = url.to_string();
            if how == How::New {
                b.history.truncate(b.at + 1);
                if b.history.is_empty() {
                    b.at = 0;
                } else {
                    b.at += 1;
                }
                b.history.push(b.url.clone());
                if b.history.len() > MAX_HISTORY {
                    b.history.remove(0);
                    b.at -= 1;
                }
            }
            let (nav, web) = (b.nav, b.web.clone());
            let shown = format!("Opening {url} …");
            self.chrome_changed(window, w);
            self.own_view(w, window, &[&shown]);
            // The old renderer gets no more events.
            w.caplet = Ref::broken(error(GONE));
            (nav, web)
        };
        let me = self.clone();
        std::thread::Builder::new()
            .name("pola-browse".into())
            .spawn(move || me.load(window, nav, &url, form, &web))
            .map_err(|_| DeskError::internal("could not start loading the page"))?;
        Ok(())
    }

    /// The navigation thread: fetch, parse, present.
    fn load(
        self: &Arc<Self>,
        window: u64,
        nav: u64,
        url: &Url,
        form: Option<Vec<u8>>,
        web: &WebCap,
    ) {
        let page = match web.fetch_now(url.as_str(), form) {
            Err(e) => Err(e.to_owned()),
            Ok(f) => {
                let mime = f
                    .mime
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                let limits = Limits::default();
                match mime.as_str() {
                    "text/html" | "application/xhtml+xml" | "" => {
                        Ok((f.url.clone(), pola_browser::parse(&f.body, &f.url, &limits)))
                    }
                    "text/plain" => Ok((f.url.clone(), pola_browser::plain_text(&f.body, &limits))),
                    other => Err(format!(
                        "the browser shows web pages (HTML) and plain text; this address is {}",
                        other.chars().take(64).collect::<String>()
                    )),
                }
            }
        };
        let loaded = match page {
            Ok((url, page)) => {
                let images = (0..page.images.len())
                    .map(|_| ImageSlot::default())
                    .collect();
                Arc::new(Loaded {
                    url,
                    page,
                    images,
                    image_bytes: std::sync::atomic::AtomicUsize::new(0),
                })
            }
            Err(e) => {
                let mut inner = self.shared.lock();
                let Some(w) = inner.windows.get_mut(&window) else {
                    return;
                };
                let Some(b) = w.browser.as_mut().filter(|b| b.nav == nav) else {
                    return;
                };
                b.loading = false;
                b.error = Some(e.clone());
                let shown = format!("Could not open {url}");
                self.chrome_changed(window, w);
                self.own_view(w, window, &[&shown, &e]);
                return;
            }
        };
        if self.present(window, Some(nav), &loaded).is_ok() {
            self.prefetch(window, &loaded);
        }
    }

    /// Shows `loaded` in `window` with a fresh renderer: a new page
    /// number, fresh capabilities, a new instance. With `nav`, only if
    /// that navigation is still the latest.
    fn present(self: &Arc<Self>, window: u64, nav: Option<u64>, loaded: &Arc<Loaded>) -> R<()> {
        let (page, renderer) = {
            let mut inner = self.shared.lock();
            let w = browser_window(&mut inner.windows, window)?;
            let b = Self::browser_mut(w)?;
            if nav.is_some_and(|n| n != b.nav) {
                return Err(DeskError::bad("overtaken by a newer navigation"));
            }
            b.page += 1;
            b.stop_renderer();
            b.loading = false;
            b.error = None;
            b.url = loaded.url.to_string();
            if let Some(h) = b.history.get_mut(b.at) {
                h.clone_from(&b.url);
            }
            b.title = if loaded.page.title.is_empty() {
                loaded.url.host_str().unwrap_or_default().to_owned()
            } else {
                loaded.page.title.clone()
            };
            b.current = Some(loaded.clone());
            let (page, renderer) = (b.page, b.renderer);
            self.chrome_changed(window, w);
            (page, renderer)
        };
        let (_, module) = self.renderers.module(renderer)?;
        let me = self.clone();
        let loaded = loaded.clone();
        let made = self.vat.run(move |cx| {
            let p = &loaded.page;
            // One capability per slot of the tree, made as the tree is built.
            #[cfg(test)]
            let mut minted: Vec<(Slot, Ref)> = Vec::new();
            let tree = p.tree(&mut |slot, n| {
                let cap = cx.spawn(PageCap {
                    desk: Arc::downgrade(&me),
                    window,
                    page,
                    slot,
                    n,
                });
                #[cfg(test)]
                minted.push((slot, cap.clone()));
                Val::Ref(cap)
            });
            let pane = cx.spawn(super::PaneObject {
                desk: Arc::downgrade(&me),
                window,
                page: Some(page),
            });
            let object = CapletObject::new(module, Policy::Persistent);
            let stopper = object.stopper();
            let renderer = cx.spawn(object);
            let mut env = BTreeMap::new();
            env.insert(Val::str("tree"), tree);
            env.insert(Val::str("title"), Val::str(loaded.page.title.clone()));
            env.insert(Val::str("truncated"), Val::Bool(loaded.page.truncated));
            env.insert(Val::str("pane"), Val::Ref(pane.clone()));
            let env = Val::Dict(env);
            {
                let mut inner = me.shared.lock();
                let Some(w) = inner
                    .windows
                    .get_mut(&window)
                    .filter(|w| w.browser.as_ref().is_some_and(|b| b.page == page))
                else {
                    stopper.stop();
                    return Ok(Val::null());
                };
                w.caplet = renderer.clone();
                if let Some(b) = w.browser.as_mut() {
                    #[cfg(test)]
                    {
                        b.sent = Some(tests::Sent {
                            page,
                            env: env.clone(),
                            pane,
                            links: tests::of(&minted, Slot::Link),
                            images: tests::of(&minted, Slot::Image),
                            forms: tests::of(&minted, Slot::Form),
                            renderer: renderer.clone(),
                            stopper: stopper.clone(),
                        });
                    }
                    b.stopper = Some(stopper);
                }
            }
            let answer = cx.send(&renderer, "render", vec![env]);
            let desk = Arc::downgrade(&me);
            cx.when(&answer, move |_cx, outcome| {
                if let (Err(reason), Some(desk)) = (&outcome, desk.upgrade()) {
                    desk.renderer_failed(window, page, reason);
                }
                Ok(Val::null())
            });
            Ok(Val::null())
        });
        self.wait(&made)?;
        Ok(())
    }

    /// The renderer of `page` failed to draw it (it trapped, ran out of
    /// its budget, or refused): the desk says so in the pane, in its own
    /// words, while the page is still the current one.
    fn renderer_failed(&self, window: u64, page: u64, reason: &Val) {
        let why: String = pola_vat::error_message(reason)
            .or_else(|| reason.as_str())
            .unwrap_or("it failed")
            .chars()
            .take(200)
            .collect();
        let mut inner = self.shared.lock();
        let Some(w) = inner.windows.get_mut(&window) else {
            return;
        };
        if w.browser.as_ref().map(|b| b.page) != Some(page) {
            return;
        }
        let name = w
            .browser
            .as_ref()
            .and_then(|b| {
                pola_desk_apps::RENDERERS
                    .iter()
                    .find(|r| r.id == b.renderer)
            })
            .map_or("renderer", |r| r.label);
        let line = format!("The renderer \"{name}\" could not draw this page: {why}.");
        self.own_view(
            w,
            window,
            &[
                &line,
                "Choose another renderer above, or go to another page.",
            ],
        );
        if let Some(b) = w.browser.as_mut() {
            b.error = Some(format!("the renderer failed: {why}"));
        }
        self.chrome_changed(window, w);
    }

    /// Fetches the images of a page in the background (a few at a time),
    /// so they are ready when its view asks for them.
    fn prefetch(self: &Arc<Self>, window: u64, loaded: &Arc<Loaded>) {
        if loaded.images.is_empty() {
            return;
        }
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..IMAGE_WORKERS.min(loaded.images.len()) {
            let (me, loaded, next) = (Arc::downgrade(self), loaded.clone(), next.clone());
            let web = {
                let inner = self.shared.lock();
                match inner.windows.get(&window).and_then(|w| w.browser.as_ref()) {
                    Some(b) => b.web.clone(),
                    None => return,
                }
            };
            let _ = std::thread::Builder::new()
                .name("pola-images".into())
                .spawn(move || {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= loaded.images.len() || me.upgrade().is_none() {
                            return;
                        }
                        let _ = fill(&loaded, i, &web);
                    }
                });
        }
    }

    /// `GET api/images/W/N`: image N of window W's current view, as PNG.
    ///
    /// # Errors
    /// No such image, or it could not be fetched or decoded.
    pub fn image(&self, window: u64, n: usize) -> R<Arc<Vec<u8>>> {
        let (loaded, i, web) = {
            let inner = self.shared.lock();
            let w = inner
                .windows
                .get(&window)
                .ok_or_else(|| DeskError::missing("that window is closed"))?;
            let i = w
                .images
                .get(n)
                .copied()
                .ok_or_else(|| DeskError::missing("no such image in this view"))?;
            let b = w
                .browser
                .as_ref()
                .ok_or_else(|| DeskError::missing("no such image in this view"))?;
            let loaded = b
                .current
                .clone()
                .ok_or_else(|| DeskError::missing("no such image in this view"))?;
            (loaded, i, b.web.clone())
        };
        fill(&loaded, i, &web).map_err(DeskError::missing)
    }
}

/// Fetches and re-encodes image `i` of `loaded` unless it was already.
fn fill(loaded: &Loaded, i: usize, web: &WebCap) -> Result<Arc<Vec<u8>>, String> {
    let Some(slot) = loaded.images.get(i) else {
        return Err("no such image".to_owned());
    };
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = slot.as_ref() {
        return done.clone();
    }
    let url = loaded.page.images[i].url.as_str();
    let done = web
        .fetch_now(url, None)
        .map_err(str::to_owned)
        .and_then(|f| {
            if f.status >= 400 {
                return Err(format!("the site answered {}", f.status));
            }
            reencode(&f.body)
        })
        .and_then(|png| {
            let kept = loaded
                .image_bytes
                .fetch_add(png.len(), std::sync::atomic::Ordering::Relaxed);
            if kept.saturating_add(png.len()) > MAX_PAGE_IMAGE_BYTES {
                return Err("the page's pictures are too large to show them all".to_owned());
            }
            Ok(png)
        })
        .map(Arc::new);
    *slot = Some(done.clone());
    done
}

/// Decodes an image (PNG, JPEG or GIF, within bounds) and encodes it again
/// as PNG, scaled down to [`MAX_IMAGE_SIDE`]: the page is only ever served
/// pixels the desk made.
fn reencode(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| "the image could not be read".to_owned())?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 4);
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|_| "the image is not a PNG, JPEG or GIF the desk can read".to_owned())?;
    if u64::from(img.width()) * u64::from(img.height()) > MAX_IMAGE_PIXELS {
        return Err("the image is too large".to_owned());
    }
    let img = if img.width().max(img.height()) > MAX_IMAGE_SIDE {
        img.thumbnail(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE)
    } else {
        img
    };
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .map_err(|_| "the image could not be encoded".to_owned())?;
    Ok(out)
}

/// Browser window `window`, or why not.
fn browser_window(windows: &mut BTreeMap<u64, Window>, window: u64) -> R<&mut Window> {
    windows
        .get_mut(&window)
        .filter(|w| w.browser.is_some())
        .ok_or_else(|| DeskError::missing("that window is closed, or not a browser"))
}

/// The refusal of a capability of a page that is no longer shown.
const GONE: &str = "this page is gone: the browser has moved on";

fn current_page(
    windows: &BTreeMap<u64, Window>,
    window: u64,
    page: u64,
) -> Result<&BrowserState, Val> {
    windows
        .get(&window)
        .and_then(|w| w.browser.as_ref())
        .filter(|b| b.page == page)
        .ok_or_else(|| error(GONE))
}

/// Whether `r` is an image of `window`'s current page, and which.
pub(super) fn page_image(cx: &mut Turn<'_>, r: &Ref, window: u64, page: u64) -> Option<usize> {
    let img = cx.inspect::<PageCap>(r)?;
    (img.slot == Slot::Image && img.window == window && img.page == page).then_some(img.n)
}

/// A link, image or form of one page: element `n` of its kind. It works
/// only while its page is the window's current one.
struct PageCap {
    desk: Weak<Desk>,
    window: u64,
    page: u64,
    slot: Slot,
    n: usize,
}

impl Object for PageCap {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let desk = || {
            self.desk
                .upgrade()
                .ok_or_else(|| error("the desk is closing"))
        };
        match (self.slot, method, args.as_slice()) {
            (Slot::Link, "follow", []) => desk()?.follow(self.window, self.page, self.n)?,
            (Slot::Link, "follow", _) => {
                return Err(error(
                    "follow() takes nothing: a link goes where the page said",
                ));
            }
            (Slot::Link, ..) => return Err(error("a link answers only follow()")),
            (Slot::Form, "submit", [fields]) => {
                desk()?.submit(self.window, self.page, self.n, fields)?;
            }
            (Slot::Form, "submit", _) => {
                return Err(error("submit takes one dictionary of fields"));
            }
            (Slot::Form, ..) => return Err(error("a form answers only submit(fields)")),
            (Slot::Image, ..) => {
                return Err(error(
                    "an image answers nothing: put it in a view's <'image IMAGE alt> and the desk paints it",
                ));
            }
        }
        Ok(Val::Bool(true))
    }
}

/// The browser's built-in icon: a globe, drawn by the desk (64×64 PNG).
pub fn icon() -> Vec<u8> {
    let mut img = image::RgbaImage::new(64, 64);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let (dx, dy) = (f64::from(x) - 31.5, f64::from(y) - 31.5);
        let r = (dx * dx + dy * dy).sqrt();
        if r > 28.0 {
            continue;
        }
        let ring = (r - 27.0).abs() < 1.5;
        let meridian = (dx.abs() - (28.0 * 28.0 - dy * dy).max(0.0).sqrt() * 0.45).abs() < 1.2
            || dx.abs() < 1.2;
        let parallel = (dy.abs() - 10.0).abs() < 1.2 || dy.abs() < 1.2;
        *p = if ring || meridian || parallel {
            image::Rgba([235, 244, 255, 255])
        } else {
            image::Rgba([46, 110, 200, 255])
        };
    }
    let mut out = Vec::new();
    let _ = image::DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
    out
}

// The test site of the desk's integration tests (a real HTTP server on
// loopback), shared with the unit tests below.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, dead_code, missing_docs)]
#[path = "../tests/all/site.rs"]
mod test_site;

/// A dead page's capabilities, called directly: the renderer that held
/// them is stopped at navigation (so it never calls them itself, and no
/// renderer test can show what they answer); these tests keep what the
/// desk handed a renderer and call it after the page has gone.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::{Duration, Instant};

    use pola_sandbox::vat::StopReason;
    use pola_vat::WaitError;

    use super::test_site::Site;
    use super::*;

    /// Bounds a hang (debug builds of the sandbox are slow).
    const PATIENCE: Duration = Duration::from_secs(120);

    /// The capabilities of one kind, in page order.
    pub(super) fn of(minted: &[(Slot, Ref)], kind: Slot) -> Vec<Ref> {
        minted
            .iter()
            .filter(|(s, _)| *s == kind)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// What the desk handed one page's renderer.
    #[derive(Clone)]
    pub(super) struct Sent {
        pub(super) page: u64,
        /// The renderer's whole environment, as sent.
        pub(super) env: Val,
        pub(super) pane: Ref,
        pub(super) links: Vec<Ref>,
        pub(super) images: Vec<Ref>,
        pub(super) forms: Vec<Ref>,
        pub(super) renderer: Ref,
        pub(super) stopper: Stopper,
    }

    fn open() -> (tempfile::TempDir, Arc<Desk>) {
        let dir = tempfile::tempdir().unwrap();
        let (state, documents) = (dir.path().join("state"), dir.path().join("Documents"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&documents).unwrap();
        let desk = Desk::open(&crate::Options { state, documents }).unwrap();
        (dir, desk)
    }

    /// Waits until `window` shows `url` drawn by its renderer (its view
    /// holds `text`); what the desk handed that page's renderer.
    fn shown(desk: &Desk, window: u64, url: &str, text: &str) -> Sent {
        let start = Instant::now();
        loop {
            {
                let inner = desk.shared.lock();
                let w = &inner.windows[&window];
                let b = w.browser.as_ref().unwrap();
                let drawn = w
                    .view
                    .as_ref()
                    .is_some_and(|v| v.to_string().contains(text));
                if b.url == url
                    && !b.loading
                    && drawn
                    && let Some(s) = b.sent.as_ref().filter(|s| s.page == b.page)
                {
                    return s.clone();
                }
            }
            assert!(start.elapsed() < PATIENCE, "{url} was never drawn");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Calls `target` from outside the vat: its answer, or why it broke.
    fn call(desk: &Desk, target: &Ref, method: &str, args: Vec<Val>) -> Result<Val, String> {
        let answer = desk.vat.send(target, method.to_owned(), args);
        match desk.vat.block_on(&answer, PATIENCE) {
            Ok(v) => Ok(v),
            Err(WaitError::Broken(r)) => Err(pola_vat::error_message(&r)
                .or_else(|| r.as_str())
                .unwrap_or("(no reason)")
                .to_owned()),
            Err(e) => panic!("{method}: {e}"),
        }
    }

    fn para(s: &str) -> Val {
        Val::record("para", vec![Val::str(s)])
    }

    fn image(r: &Ref) -> Val {
        Val::record("image", vec![Val::Ref(r.clone()), Val::str("a picture")])
    }

    fn refs_in(v: &Val, out: &mut Vec<Ref>) {
        match v {
            Val::Ref(r) => out.push(r.clone()),
            Val::List(l) => l.iter().for_each(|x| refs_in(x, out)),
            Val::Set(l) => l.iter().for_each(|x| refs_in(x, out)),
            Val::Dict(d) => d.iter().for_each(|(k, x)| {
                refs_in(k, out);
                refs_in(x, out);
            }),
            Val::Record(r) => {
                refs_in(&r.label, out);
                r.fields.iter().for_each(|x| refs_in(x, out));
            }
            _ => {}
        }
    }

    /// Every capability `old` holds, called while another page is
    /// current: each breaks with "this page is gone", and its image is
    /// not painted in the current page's pane. `now` is the current
    /// page's (a control: the same calls on it work).
    fn all_dead(desk: &Desk, window: u64, old: &Sent, now: &Sent) {
        let r = call(desk, &old.pane, "show", vec![para("STALE-PAGE")]);
        assert_eq!(r, Err(GONE.to_owned()), "the old pane drew");
        for (n, link) in old.links.iter().enumerate() {
            let r = call(desk, link, "follow", vec![]);
            assert_eq!(r, Err(GONE.to_owned()), "old link {n} was followed");
        }
        for form in &old.forms {
            let mut fields = BTreeMap::new();
            fields.insert(Val::str("q"), Val::str("STALE-FORM"));
            let r = call(desk, form, "submit", vec![Val::Dict(fields)]);
            assert_eq!(r, Err(GONE.to_owned()), "the old form was submitted");
        }
        // An old image in the current pane shows its alt text only; the
        // current page's own image (the control) is painted.
        let paintable = |r: &Ref| {
            let view = Val::record("column", vec![para("CONTROL"), image(r)]);
            call(desk, &now.pane, "show", vec![view]).expect("the current pane draws");
            let inner = desk.shared.lock();
            let w = &inner.windows[&window];
            let v = w.view.clone().unwrap();
            assert!(v.to_string().contains("CONTROL"), "{v}");
            (v["c"][1]["n"].is_number(), w.images.clone())
        };
        for img in &old.images {
            let (painted, images) = paintable(img);
            assert!(!painted && images.is_empty(), "an old image was painted");
            assert!(desk.image(window, 0).is_err());
        }
        let (painted, images) = paintable(&now.images[0]);
        assert!(
            painted && images == [0],
            "the control image was not painted"
        );
    }

    #[test]
    fn a_pages_capabilities_and_renderer_die_when_it_goes_even_drawn_again() {
        let site = Site::start();
        let page = |name: &str| {
            format!(
                "<title>{name}</title><h1>{name} page</h1>\
                 <p><a href='/one'>one</a> <a href='/two'>two</a></p><img src='/pic.png' alt='pic'>\
                 <form action='/search'><input name='q'><input type='submit' value='Go'></form>"
            )
        };
        site.html("", &page("Home"));
        site.html("one", &page("One"));
        site.html("two", &page("Two"));
        site.html("search", &page("Search"));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgba8(image::RgbaImage::new(4, 4))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        site.put("pic.png", 200, "image/png", png);
        let (_dir, desk) = open();
        let w = desk.launch(APP).unwrap();
        let (home, one) = (site.url(""), site.url("one"));
        desk.browse(w, &home).unwrap();
        let first = shown(&desk, w, &home, "Home page");
        assert_eq!(
            (first.links.len(), first.images.len(), first.forms.len()),
            (2, 1, 1)
        );
        // The kept capabilities are all the renderer got.
        let mut held = Vec::new();
        refs_in(&first.env, &mut held);
        let minted: Vec<&Ref> = std::iter::once(&first.pane)
            .chain(&first.links)
            .chain(&first.images)
            .chain(&first.forms)
            .collect();
        assert!(held.iter().all(|r| minted.contains(&r)), "{held:?}");
        assert_eq!(held.len(), minted.len());

        // The user goes to page one (typed): the home page's renderer is
        // stopped, and each of its capabilities is dead.
        desk.browse(w, &one).unwrap();
        let second = shown(&desk, w, &one, "One page");
        assert_eq!(first.stopper.stopped(), Some(StopReason::Host));
        let click = Val::Dict(BTreeMap::from([
            (Val::str("type"), Val::sym("click")),
            (Val::str("id"), Val::str("x")),
        ]));
        let r = call(&desk, &first.renderer, "event", vec![click]);
        assert!(r.as_ref().is_err_and(|e| e.contains("stopped")), "{r:?}");
        let before = site.hits().len();
        let mut events = desk.subscribe();
        all_dead(&desk, w, &first, &second);

        // The same page drawn again by another renderer is a new page:
        // page one's links and form now name the very same targets the
        // current page has, and still only the page number refuses them.
        desk.set_renderer(w, "text").unwrap();
        let third = shown(&desk, w, &one, "One page");
        assert!(third.page > second.page);
        assert_eq!(second.stopper.stopped(), Some(StopReason::Host));
        all_dead(&desk, w, &second, &third);

        // Nothing was drawn or fetched for a dead page: no view of it, no
        // navigation, the URL field where the user left it.
        loop {
            match events.try_recv() {
                Ok(m) => assert!(!m.contains("STALE"), "a dead page drew: {m}"),
                Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
                Err(e) => panic!("the desk's messages: {e}"),
            }
        }
        let fetched: Vec<String> = site.hits()[before..]
            .iter()
            .map(|h| h.target.clone())
            .filter(|t| t != "/pic.png")
            .collect();
        assert!(fetched.is_empty(), "a dead page fetched {fetched:?}");
        {
            let inner = desk.shared.lock();
            let b = inner.windows[&w].browser.as_ref().unwrap();
            assert_eq!((b.url.as_str(), b.loading), (one.as_str(), false));
        }
        desk.shutdown();
    }
}
