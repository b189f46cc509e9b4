//! The desk's stock apps, built from source: the caplets `caplets/desk-*`
//! compiled for `wasm32-unknown-unknown` by this crate's build script (no
//! `.wasm` is committed), each with its package manifest (TOML, the shape
//! of `crates/desk/PROTOCOL.md` section 1) and its 64×64 PNG icon.
//!
//! - [`STOCK`]: the editor, the notes app and the clock, which the desk
//!   installs on its first start;
//! - [`HOSTILE`]: an app that asks for too much and tries every escape,
//!   installed only by tests;
//! - [`RENDERERS`]: the browser's stock renderers (`caplets/browser-*`,
//!   `PROTOCOL.md` section 4.2): styled, text only, and the red team's.
//!
//! Needs `rustup target add wasm32-unknown-unknown`.
#![forbid(unsafe_code)]

/// One app: what `pola caplet pack` needs to make its package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockApp {
    /// A short stable id: `"editor"`, `"notes"`, `"clock"`, `"hostile"`.
    pub id: &'static str,
    /// The confined caplet module.
    pub wasm: &'static [u8],
    /// The package manifest, TOML with `[[request]]` tables.
    pub manifest: &'static str,
    /// The suggested icon, a 64×64 PNG.
    pub icon: &'static [u8],
}

/// `caplets/desk-editor`: edits one granted file (install grant, powerbox
/// request or drop).
pub const EDITOR: StockApp = StockApp {
    id: "editor",
    wasm: include_bytes!(env!("POLA_DESK_APP_EDITOR")),
    manifest: include_str!("../../../../caplets/desk-editor/manifest.toml"),
    icon: include_bytes!("../../../../caplets/desk-editor/icon.png"),
};

/// `caplets/desk-notes`: notes kept in the app's own storage.
pub const NOTES: StockApp = StockApp {
    id: "notes",
    wasm: include_bytes!(env!("POLA_DESK_APP_NOTES")),
    manifest: include_str!("../../../../caplets/desk-notes/manifest.toml"),
    icon: include_bytes!("../../../../caplets/desk-notes/icon.png"),
};

/// `caplets/desk-clock`: the time in UTC, from a clock grant.
pub const CLOCK: StockApp = StockApp {
    id: "clock",
    wasm: include_bytes!(env!("POLA_DESK_APP_CLOCK")),
    manifest: include_str!("../../../../caplets/desk-clock/manifest.toml"),
    icon: include_bytes!("../../../../caplets/desk-clock/icon.png"),
};

/// The apps the desk installs on its first start.
pub const STOCK: &[StockApp] = &[EDITOR, NOTES, CLOCK];

/// `caplets/desk-hostile`: calls itself "Notes" with a look-alike icon,
/// asks for everything, and on "Attack" tries every escape, showing one
/// `BLOCKED:` / `ESCAPED:` / `SENT-AS-TEXT:` line per attempt. For tests
/// only.
pub const HOSTILE: StockApp = StockApp {
    id: "hostile",
    wasm: include_bytes!(env!("POLA_DESK_APP_HOSTILE")),
    manifest: include_str!("../../../../caplets/desk-hostile/manifest.toml"),
    icon: include_bytes!("../../../../caplets/desk-hostile/icon.png"),
};

/// One of the browser's renderers: a confined caplet that draws a page's
/// capability tree in its pane (`crates/desk/PROTOCOL.md` section 4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renderer {
    /// A short stable id: `"benign"`, `"text"` or `"hostile"`.
    pub id: &'static str,
    /// What the browser's chrome calls it.
    pub label: &'static str,
    /// The confined caplet module.
    pub wasm: &'static [u8],
}

/// The browser's stock renderers: `caplets/browser-benign` (the page
/// styled: headings, lists, tables, images, links, forms),
/// `caplets/browser-text` (its text and links only) and
/// `caplets/browser-hostile` (the red team's: it attacks the browser and
/// reports each attempt). Benign first, hostile last.
pub const RENDERERS: &[Renderer] = &[
    Renderer {
        id: "benign",
        label: "Styled",
        wasm: include_bytes!(env!("POLA_BROWSER_RENDERER_BENIGN")),
    },
    Renderer {
        id: "text",
        label: "Text only",
        wasm: include_bytes!(env!("POLA_BROWSER_RENDERER_TEXT")),
    },
    Renderer {
        id: "hostile",
        label: "Red team (hostile)",
        wasm: include_bytes!(env!("POLA_BROWSER_RENDERER_HOSTILE")),
    },
];
