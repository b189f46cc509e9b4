//! `pola-browser`: a fetched web page as pola's **capability tree**.
//!
//! The browser's trusted side (in the desk) fetches a page and calls
//! [`parse`] (or [`plain_text`]); it gets a [`Page`]: the title, the lists
//! of [`links`](Page::links), [`images`](Page::images) and
//! [`forms`](Page::forms), and a private tree of the page's content. The
//! desk mints one capability per link, image and form and calls
//! [`Page::tree`], which fills each capability slot: the result is the
//! Syrup value a confined renderer receives (`crates/desk/PROTOCOL.md`
//! section 4.1). No link, image or form target, script, style, comment
//! or attribute of the page is in it, nor what a browser would not draw
//! (the `hidden` attribute, an inline `display: none`); the page's text
//! is, and the strings it gives as `alt`, field values, placeholders and
//! button labels, as written (a URL written there is only text).
//!
//! ```text
//!  bytes ──decode──▶ text ──html5ever──▶ arena DOM ──build──▶ Page
//!                                                         │  links[i], images[i], forms[i]
//!                      desk mints caps ─▶ Page::tree(link, image, form) ─▶ Value
//! ```
//!
//! What this crate is not: it does no I/O (no fetching, no clock), knows
//! nothing of vats or capabilities beyond the slots the caller fills, and
//! runs no script. Parsing is HTML's own algorithm (html5ever), so a page
//! is read the way a browser reads it; what reaches the tree is then
//! chosen here, by allow-list.
//!
//! Bounds ([`Limits`]) are counted while the tree is built; content past
//! one is dropped and [`Page::truncated`] is set. Input over 4 MiB is cut.
//! Nothing here panics on any input.
//!
//! ```
//! use pola_browser::{Limits, Slot, parse};
//! use pola_syrup::Value;
//!
//! let base = url::Url::parse("https://example.com/news/").unwrap();
//! let html = br#"<p>Read <a href="today.html" onclick="steal()">today's</a> news
//!     <!-- <a href="https://evil.example/">hidden</a> --></p>"#;
//! let page = parse(html, &base, &Limits::default());
//! assert_eq!(page.links[0].as_str(), "https://example.com/news/today.html");
//! // The desk fills each slot with a capability; here, a stand-in.
//! let tree: Value = page.tree(&mut |slot, i| match slot {
//!     Slot::Link => Value::record("link-cap", vec![Value::int(i as i64)]),
//!     Slot::Image | Slot::Form => Value::null(),
//! });
//! assert_eq!(tree.to_string(), r#"<block <para "Read " <link <link-cap 0> "today's"> " news">>"#);
//! ```

#![forbid(unsafe_code)]

mod build;
mod decode;
mod dom;
mod form;
mod style;

use pola_syrup::Value;
use url::Url;

pub use form::{Field, FieldKind, Form, FormError, MAX_VALUE, Method, Submission, values_from};

/// The most input read: a page longer than this is cut (and
/// [`Page::truncated`] set).
pub const MAX_INPUT: usize = 4 * 1024 * 1024;

/// The longest title kept, in bytes (cut at a character boundary).
pub const MAX_TITLE: usize = 1024;

/// The longest URL kept as a link, image or form action, in bytes; a
/// longer one is treated as unusable.
pub const MAX_URL: usize = 8 * 1024;

/// The most options kept in one select.
pub const MAX_OPTIONS: usize = 256;

/// The tree's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most nodes (records and text strings) in the tree.
    pub max_nodes: usize,
    /// Most nested records (a text string inside the deepest record is
    /// allowed); deeper content is flattened into its ancestor at this
    /// depth. Values above 256 are treated as 256.
    pub max_depth: usize,
    /// Most bytes of text in the tree (text, `pre`, alt texts, and the
    /// names, values, labels and options of fields).
    pub max_text: usize,
    /// Most links.
    pub max_links: usize,
    /// Most images.
    pub max_images: usize,
    /// Most forms.
    pub max_forms: usize,
    /// Most fields, all forms together (hidden ones included).
    pub max_fields: usize,
}

impl Default for Limits {
    /// The bounds of PROTOCOL.md 4.1: 4 000 nodes, depth 20, 256 KiB of
    /// text, 1 000 links, 100 images, 20 forms, 200 fields.
    fn default() -> Limits {
        Limits {
            max_nodes: 4000,
            max_depth: 20,
            max_text: 256 * 1024,
            max_links: 1000,
            max_images: 100,
            max_forms: 20,
            max_fields: 200,
        }
    }
}

/// An image of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Where the image is (http or https).
    pub url: Url,
    /// Its alt text (`""` when the page gives none).
    pub alt: String,
}

/// A parsed page.
#[derive(Debug, Clone)]
pub struct Page {
    /// The page's title (whitespace collapsed, at most [`MAX_TITLE`]
    /// bytes), `""` when it has none.
    pub title: String,
    /// The links, in page order: `links[i]` fills the tree's `i`th link
    /// slot. Every one is http or https, without user name or password.
    pub links: Vec<Url>,
    /// The images, in page order (http or https).
    pub images: Vec<Image>,
    /// The forms, in page order.
    pub forms: Vec<Form>,
    /// Content was dropped to keep within the bounds.
    pub truncated: bool,
    root: build::Node,
    nodes: usize,
    text: usize,
}

/// Parses an HTML page into a [`Page`].
///
/// `base` is the page's final URL (after redirects). Relative URLs resolve
/// against it, or against the page's first `<base href>` when that is
/// http(s). The bytes are decoded by their byte-order mark, else by a
/// `<meta charset>` in the first 1 024 bytes, else as UTF-8; bad bytes
/// become U+FFFD.
pub fn parse(html: &[u8], base: &Url, limits: &Limits) -> Page {
    let cut = html.len() > MAX_INPUT;
    let text = decode::decode(html.get(..MAX_INPUT).unwrap_or(html));
    let mut page = build::build(&text, base, limits);
    page.truncated |= cut;
    page
}

/// A `text/plain` body as a page: one `<'pre>` in a `<'block>`, at most
/// `limits.max_text` bytes (UTF-8, or as its byte-order mark says).
pub fn plain_text(body: &[u8], limits: &Limits) -> Page {
    let cut = body.len() > MAX_INPUT;
    let text = decode::decode_plain(body.get(..MAX_INPUT).unwrap_or(body));
    build::plain(&text, limits, cut)
}

/// What a capability slot of the tree stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A link: the desk makes it `follow()`.
    Link,
    /// An image the desk paints.
    Image,
    /// A form: the desk makes it `submit(FIELDS)`, to the form's action.
    Form,
}

impl Page {
    /// The tree as a Syrup value (a `<'block …>`), each capability slot
    /// filled by the caller: `fill(Slot::Link, i)` for `links[i]`,
    /// `fill(Slot::Image, i)` for `images[i]`, `fill(Slot::Form, i)` for
    /// `forms[i]`. It is called once per slot, in page order.
    pub fn tree<R: Clone>(&self, fill: &mut dyn FnMut(Slot, usize) -> Value<R>) -> Value<R> {
        build::to_value(self, &self.root, fill)
    }

    /// Bytes of text in the tree (as [`Limits::max_text`] counts them).
    pub fn text_len(&self) -> usize {
        self.text
    }

    /// Nodes in the tree (as [`Limits::max_nodes`] counts them).
    pub fn node_count(&self) -> usize {
        self.nodes
    }
}
