//! The arena DOM to the capability tree.
//!
//! One iterative walk (an explicit stack, so a page nested 100 000 deep
//! costs no native stack) over the DOM in document order. Output records
//! stay open on a second stack; a record is closed into its parent when
//! its element ends. Invariants upheld here:
//! - nothing but the elements named in `classify` and the kept attributes
//!   reaches the tree; foreign (SVG, MathML) elements and every dropped
//!   element are skipped with their whole subtree;
//! - at most `max_depth` records are open at once (deeper elements are
//!   flattened: their content goes to the open record); a `'list` is only
//!   opened with room for its items, a `'table` with room for rows and
//!   cells, so those shapes always hold;
//! - node, text, link, image, form and field counts never pass their
//!   limits: a record, string or slot is counted before it is added;
//! - every `Link(i)`, `Image(i)`, `Form(i)`, `Field(f, j)` indexes an
//!   entry pushed before it (the slot lists only grow).

use html5ever::tendril::TendrilSink;
use html5ever::tree_builder::TreeBuilderOpts;
use html5ever::{LocalName, ParseOpts, local_name, ns, parse_document};
use pola_syrup::Value;
use url::Url;

use crate::dom::{Data, Sink};
use crate::form::{Field, FieldKind, Form, Method};
use crate::{Image, Limits, MAX_OPTIONS, MAX_TITLE, MAX_URL, Page};

/// The most nodes the parser may make before the rest of the page is
/// dropped. Misnested formatting tags (`<b><p>…</p><p>…`) make the parser
/// re-open elements the source wrote once; this keeps that bounded.
const MAX_DOM_NODES: usize = 500_000;

/// The deepest the parser may nest elements before the rest of the page is
/// dropped (as deep as Chromium's parser goes before it flattens). The
/// parser looks through its stack of open elements for many tags, so its
/// work per tag grows with the depth.
const MAX_PARSE_DEPTH: u32 = 512;

/// The parser's work budget (element names it looks at on its stack):
/// this much, plus `WORK_PER_BYTE` per byte of page. Ordinary pages use a
/// small fraction of it; a page built to make the parser scan a deep stack
/// again and again is cut when it runs out.
const WORK_BASE: u64 = 4_000_000;
const WORK_PER_BYTE: u64 = 16;

/// The page is fed to the parser in pieces this long (bytes), so the
/// counts above are checked often (and a piece can add at most a few
/// hundred elements, so it can overshoot them only by a bounded amount).
const CHUNK: usize = 1024;

/// Depth above which `max_depth` is not honoured (the tree is turned into
/// a value recursively).
const DEPTH_CEILING: usize = 256;

/// A node of the tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A text string.
    Text(String),
    /// A record and its child nodes.
    Rec(Kind, Vec<Node>),
}

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Block,
    Heading(u8),
    Para,
    Strong,
    Em,
    Code,
    /// Its one child is the text.
    Pre,
    Quote,
    List(bool),
    Item,
    Table,
    Tr,
    Cell(bool),
    Break,
    Rule,
    Link(usize),
    Image(usize),
    Form(usize),
    Field(usize, usize),
}

impl Kind {
    /// Block-level: whitespace at its edges is dropped.
    fn is_block(self) -> bool {
        !matches!(
            self,
            Kind::Strong | Kind::Em | Kind::Code | Kind::Link(_) | Kind::Image(_) | Kind::Field(..)
        )
    }
}

/// How an element is drawn.
enum Class {
    /// Left out with everything inside it.
    Drop,
    /// Its content goes to its parent, inline.
    Transparent,
    /// Its content goes to its parent, as a block (text does not run on).
    TransparentBlock,
    /// A record of this kind around its content.
    Rec(Kind),
    Pre,
    List(bool),
    Item,
    Table,
    Tr,
    Cell(bool),
    Break,
    Rule,
    A,
    Img,
    Form,
    Input,
    Textarea,
    Select,
    Button,
}

fn classify(local: &LocalName) -> Class {
    match *local {
        local_name!("script")
        | local_name!("style")
        | local_name!("template")
        | local_name!("noscript")
        | local_name!("iframe")
        | local_name!("object")
        | local_name!("embed")
        | local_name!("applet")
        | local_name!("head")
        | local_name!("title")
        | local_name!("meta")
        | local_name!("link")
        | local_name!("base")
        | local_name!("frameset")
        | local_name!("frame")
        | local_name!("noframes")
        | local_name!("param")
        | local_name!("source")
        | local_name!("track")
        | local_name!("area")
        | local_name!("datalist")
        | local_name!("option")
        | local_name!("optgroup")
        | local_name!("wbr") => Class::Drop,
        local_name!("div")
        | local_name!("section")
        | local_name!("article")
        | local_name!("main")
        | local_name!("header")
        | local_name!("footer")
        | local_name!("nav")
        | local_name!("aside")
        | local_name!("center")
        | local_name!("figure")
        | local_name!("figcaption")
        | local_name!("details")
        | local_name!("summary")
        | local_name!("address")
        | local_name!("hgroup")
        | local_name!("fieldset")
        | local_name!("legend")
        | local_name!("dl")
        | local_name!("dt")
        | local_name!("dd")
        | local_name!("dialog")
        | local_name!("search") => Class::Rec(Kind::Block),
        local_name!("html") | local_name!("body") | local_name!("caption") => {
            Class::TransparentBlock
        }
        local_name!("tbody") | local_name!("thead") | local_name!("tfoot") => Class::Transparent,
        local_name!("h1") => Class::Rec(Kind::Heading(1)),
        local_name!("h2") => Class::Rec(Kind::Heading(2)),
        local_name!("h3") => Class::Rec(Kind::Heading(3)),
        local_name!("h4") => Class::Rec(Kind::Heading(4)),
        local_name!("h5") => Class::Rec(Kind::Heading(5)),
        local_name!("h6") => Class::Rec(Kind::Heading(6)),
        local_name!("p") => Class::Rec(Kind::Para),
        local_name!("b") | local_name!("strong") => Class::Rec(Kind::Strong),
        local_name!("i")
        | local_name!("em")
        | local_name!("cite")
        | local_name!("var")
        | local_name!("dfn") => Class::Rec(Kind::Em),
        local_name!("code") | local_name!("kbd") | local_name!("samp") | local_name!("tt") => {
            Class::Rec(Kind::Code)
        }
        local_name!("pre")
        | local_name!("listing")
        | local_name!("xmp")
        | local_name!("plaintext") => Class::Pre,
        local_name!("blockquote") => Class::Rec(Kind::Quote),
        local_name!("ul") | local_name!("menu") | local_name!("dir") => Class::List(false),
        local_name!("ol") => Class::List(true),
        local_name!("li") => Class::Item,
        local_name!("table") => Class::Table,
        local_name!("tr") => Class::Tr,
        local_name!("td") => Class::Cell(false),
        local_name!("th") => Class::Cell(true),
        local_name!("br") => Class::Break,
        local_name!("hr") => Class::Rule,
        local_name!("a") => Class::A,
        local_name!("img") => Class::Img,
        local_name!("form") => Class::Form,
        local_name!("input") => Class::Input,
        local_name!("textarea") => Class::Textarea,
        local_name!("select") => Class::Select,
        local_name!("button") => Class::Button,
        _ => Class::Transparent,
    }
}

/// What to do when an element's walk ends.
enum Exit {
    /// Close this many records (implicit wrappers above it included).
    Close,
    /// Nothing was opened; `block` says whether it was a block.
    Flat { block: bool },
    /// A form ends: restore the form that was current before it.
    EndForm {
        previous: Option<usize>,
        opened: bool,
    },
}

enum Step {
    Enter(usize),
    Exit(Exit),
}

/// An open record.
struct Open {
    kind: Kind,
    children: Vec<Node>,
    /// Opened by the builder to keep a shape (a row around stray table
    /// content, an item around stray list content).
    implicit: bool,
}

struct Builder<'a> {
    limits: Limits,
    dom: &'a [crate::dom::Node],
    base: Url,
    page_url: &'a Url,
    open: Vec<Open>,
    links: Vec<Url>,
    images: Vec<Image>,
    forms: Vec<Form>,
    fields: usize,
    nodes: usize,
    text: usize,
    truncated: bool,
    /// A node or text bound was reached: nothing more is added.
    full: bool,
    /// A space may start the next text (false at a block's edge and
    /// after a space).
    space_ok: bool,
    /// A block edge or line break was passed since the last node: text
    /// that follows is not run into the text before it.
    edge: bool,
    form: Option<usize>,
}

/// Parses `text` (already decoded) and builds the page.
pub(crate) fn build(text: &str, page_url: &Url, limits: &Limits) -> Page {
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts {
            scripting_enabled: true,
            ..TreeBuilderOpts::default()
        },
        ..ParseOpts::default()
    };
    let mut parser = parse_document(Sink::new(), opts);
    let mut rest = text;
    let mut dom_cut = false;
    let budget = WORK_BASE.saturating_add(WORK_PER_BYTE.saturating_mul(text.len() as u64));
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, after) = rest.split_at(end);
        parser.process(piece.into());
        rest = after;
        let sink = &parser.tokenizer.sink.sink;
        if sink.made() > MAX_DOM_NODES || sink.deepest() > MAX_PARSE_DEPTH || sink.work() > budget {
            dom_cut = true;
            break;
        }
    }
    let sink = parser.finish();
    let dom = sink.nodes.into_inner();

    let mut limits = limits.clone();
    limits.max_depth = limits.max_depth.min(DEPTH_CEILING);
    let title = find_title(&dom);
    let base = find_base(&dom, page_url).unwrap_or_else(|| page_url.clone());
    let mut b = Builder {
        limits,
        dom: &dom,
        base,
        page_url,
        open: Vec::new(),
        links: Vec::new(),
        images: Vec::new(),
        forms: Vec::new(),
        fields: 0,
        nodes: 0,
        text: 0,
        truncated: dom_cut,
        full: false,
        space_ok: false,
        edge: false,
        form: None,
    };
    let root = b.walk();
    Page {
        title,
        links: b.links,
        images: b.images,
        forms: b.forms,
        truncated: b.truncated,
        root,
        nodes: b.nodes,
        text: b.text,
    }
}

/// A text/plain page.
pub(crate) fn plain(text: &str, limits: &Limits, cut: bool) -> Page {
    let (text, over) = cut_to(text, limits.max_text);
    let (root, nodes, text_len, fits) = if limits.max_nodes >= 3 && limits.max_depth >= 2 {
        let len = text.len();
        (
            Node::Rec(
                Kind::Block,
                vec![Node::Rec(Kind::Pre, vec![Node::Text(text.to_owned())])],
            ),
            3,
            len,
            true,
        )
    } else {
        (Node::Rec(Kind::Block, Vec::new()), 1, 0, false)
    };
    Page {
        title: String::new(),
        links: Vec::new(),
        images: Vec::new(),
        forms: Vec::new(),
        truncated: cut || over || !fits,
        root,
        nodes,
        text: text_len,
    }
}

/// The longest prefix of `s` within `max` bytes, and whether it was cut.
fn cut_to(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Collapses runs of ASCII whitespace to one space.
fn collapse(s: &str, out: &mut String) {
    let mut in_space = false;
    for c in s.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}') {
            if !in_space {
                out.push(' ');
                in_space = true;
            }
        } else {
            out.push(c);
            in_space = false;
        }
    }
}

fn elem(dom: &[crate::dom::Node], id: usize) -> Option<(&LocalName, bool)> {
    match dom.get(id).map(|n| &n.data) {
        Some(Data::Element { ns, local, .. }) => Some((local, *ns == ns!(html))),
        _ => None,
    }
}

fn attr<'d>(dom: &'d [crate::dom::Node], id: usize, name: &LocalName) -> Option<&'d str> {
    match dom.get(id).map(|n| &n.data) {
        Some(Data::Element { attrs, .. }) => {
            attrs.iter().find(|(n, _)| n == name).map(|(_, v)| &**v)
        }
        _ => None,
    }
}

/// Every node under `id` in document order (not `id`), as `visit` says.
/// The arena is a tree, so each node comes once; should it ever hold a
/// cycle, the walk still ends after as many steps as there are nodes.
fn descendants(dom: &[crate::dom::Node], id: usize, mut visit: impl FnMut(usize) -> Walk) {
    let mut stack: Vec<usize> = match dom.get(id) {
        Some(n) => n.children.iter().rev().copied().collect(),
        None => return,
    };
    let mut steps = dom.len();
    while let Some(n) = stack.pop() {
        if steps == 0 {
            return;
        }
        steps -= 1;
        match visit(n) {
            Walk::Stop => return,
            Walk::Skip => {}
            Walk::Into => {
                if let Some(node) = dom.get(n) {
                    stack.extend(node.children.iter().rev());
                }
            }
        }
    }
}

enum Walk {
    Into,
    Skip,
    Stop,
}

/// Is this element left out with its content (in text collection too)?
/// Dropped kinds, foreign elements, and elements a browser would not draw
/// (`hidden`, inline `display: none`).
fn left_out(dom: &[crate::dom::Node], id: usize) -> bool {
    match elem(dom, id) {
        Some((local, true)) => matches!(classify(local), Class::Drop) || hidden(dom, id),
        Some((_, false)) => true,
        None => false,
    }
}

/// Does the element's `hidden` attribute or inline style hide it?
fn hidden(dom: &[crate::dom::Node], id: usize) -> bool {
    matches!(dom.get(id).map(|n| &n.data), Some(Data::Element { hides, .. }) if hides.hidden())
}

/// The text under `id` (dropped elements skipped, `br` as a newline), at
/// most `max` bytes; and whether there was more.
fn text_under(dom: &[crate::dom::Node], id: usize, max: usize) -> (String, bool) {
    let mut out = String::new();
    let mut over = false;
    descendants(dom, id, |n| {
        if left_out(dom, n) {
            return Walk::Skip;
        }
        if let Some((local, _)) = elem(dom, n) {
            if *local == local_name!("br") {
                out.push('\n');
            }
            return Walk::Into;
        }
        if let Some(Data::Text(t)) = dom.get(n).map(|n| &n.data) {
            out.push_str(t);
            if out.len() > max {
                over = true;
                return Walk::Stop;
            }
        }
        Walk::Into
    });
    if over {
        let keep = cut_to(&out, max).0.len();
        out.truncate(keep);
    }
    (out, over)
}

/// Collapsed and trimmed text under `id`, at most `max` bytes.
fn label_under(dom: &[crate::dom::Node], id: usize, max: usize) -> String {
    let (raw, _) = text_under(dom, id, max.saturating_mul(4).max(max));
    let mut s = String::new();
    collapse(&raw, &mut s);
    cut_to(s.trim(), max).0.to_owned()
}

fn find_title(dom: &[crate::dom::Node]) -> String {
    let mut title = None;
    descendants(dom, 0, |n| match elem(dom, n) {
        Some((_, false)) => Walk::Skip,
        Some((local, true)) if *local == local_name!("title") => {
            title = Some(n);
            Walk::Stop
        }
        Some((local, true)) if *local == local_name!("template") => Walk::Skip,
        _ => Walk::Into,
    });
    title.map_or_else(String::new, |t| label_under(dom, t, MAX_TITLE))
}

fn find_base(dom: &[crate::dom::Node], page_url: &Url) -> Option<Url> {
    let mut href = None;
    descendants(dom, 0, |n| match elem(dom, n) {
        Some((_, false)) => Walk::Skip,
        Some((local, true)) if *local == local_name!("base") => {
            match attr(dom, n, &local_name!("href")) {
                Some(h) => {
                    href = Some(h);
                    Walk::Stop
                }
                None => Walk::Into,
            }
        }
        _ => Walk::Into,
    });
    usable(page_url, href?)
}

/// `s` resolved against `base`, if the result is http(s), not too long;
/// without user name and password.
fn usable(base: &Url, s: &str) -> Option<Url> {
    if s.len() > MAX_URL {
        return None;
    }
    let mut url = base.join(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.as_str().len() > MAX_URL {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Both succeed on an http(s) URL (it always has a host).
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    Some(url)
}

impl Builder<'_> {
    /// The walk; returns the root `'block`.
    fn walk(&mut self) -> Node {
        self.nodes = 1;
        self.open.push(Open {
            kind: Kind::Block,
            children: Vec::new(),
            implicit: false,
        });
        let mut seen = vec![false; self.dom.len()];
        let mut stack: Vec<Step> = self
            .dom
            .first()
            .map(|d| d.children.iter().rev().map(|&c| Step::Enter(c)).collect())
            .unwrap_or_default();
        while let Some(step) = stack.pop() {
            if self.full {
                break;
            }
            match step {
                Step::Exit(exit) => self.exit(exit),
                Step::Enter(id) => {
                    match seen.get_mut(id) {
                        Some(s) if !*s => *s = true,
                        _ => continue,
                    }
                    self.enter(id, &mut stack);
                }
            }
        }
        while self.open.len() > 1 {
            self.close_one();
        }
        let root = self.open.pop().map_or_else(Vec::new, |o| o.children);
        Node::Rec(Kind::Block, root)
    }

    fn enter(&mut self, id: usize, stack: &mut Vec<Step>) {
        let Some(node) = self.dom.get(id) else { return };
        let local = match &node.data {
            Data::Text(t) => {
                let t = t.clone();
                self.text(&t);
                return;
            }
            Data::Element {
                ns, local, hides, ..
            } if *ns == ns!(html) => {
                if hides.hidden() {
                    // Not drawn, as in a browser; its fields are still
                    // the form's (a browser sends them too).
                    self.hidden_fields(id);
                    return;
                }
                local.clone()
            }
            // Foreign elements (SVG, MathML), comments, documents.
            _ => return,
        };
        let children = |stack: &mut Vec<Step>| {
            stack.extend(node.children.iter().rev().map(|&c| Step::Enter(c)));
        };
        match classify(&local) {
            Class::Drop => {}
            Class::Transparent => children(stack),
            Class::TransparentBlock => {
                self.block_edge();
                stack.push(Step::Exit(Exit::Flat { block: true }));
                children(stack);
            }
            Class::Rec(kind) => {
                self.open_or_flatten(kind, 0, stack);
                children(stack);
            }
            Class::List(ordered) => {
                self.open_or_flatten(Kind::List(ordered), 1, stack);
                children(stack);
            }
            Class::Item => {
                let kind = if self.top_is(|k| matches!(k, Kind::List(_))) {
                    Kind::Item
                } else {
                    Kind::Block
                };
                self.open_or_flatten(kind, 0, stack);
                children(stack);
            }
            Class::Table => {
                self.open_or_flatten(Kind::Table, 2, stack);
                children(stack);
            }
            Class::Tr => {
                let kind = if self.top_is(|k| k == Kind::Table) {
                    Kind::Tr
                } else {
                    Kind::Block
                };
                self.open_or_flatten(kind, 1, stack);
                children(stack);
            }
            Class::Cell(header) => {
                let kind = if self.top_is(|k| k == Kind::Tr) {
                    Kind::Cell(header)
                } else {
                    Kind::Block
                };
                self.open_or_flatten(kind, 0, stack);
                children(stack);
            }
            Class::Pre => {
                let room = self.limits.max_text.saturating_sub(self.text);
                let (text, over) = text_under(self.dom, id, room);
                if self.leaf_fits() && self.take_node(2) {
                    self.block_edge();
                    self.count_text(text.len());
                    self.truncated |= over;
                    self.push_node(Node::Rec(Kind::Pre, vec![Node::Text(text)]));
                    self.block_edge();
                } else {
                    // Too deep for a record: its text, as it is.
                    self.block_edge();
                    self.raw_text(&text);
                    self.block_edge();
                }
            }
            Class::Break => {
                if self.leaf_fits() && self.take_node(1) {
                    self.push_node(Node::Rec(Kind::Break, Vec::new()));
                } else {
                    self.edge = true;
                }
                self.space_ok = false;
            }
            Class::Rule => {
                self.block_edge();
                if self.leaf_fits() && self.take_node(1) {
                    self.push_node(Node::Rec(Kind::Rule, Vec::new()));
                }
                self.block_edge();
            }
            Class::A => {
                let url =
                    attr(self.dom, id, &local_name!("href")).and_then(|h| usable(&self.base, h));
                match url {
                    Some(url) if self.links.len() < self.limits.max_links => {
                        if self.open_or_flatten(Kind::Link(self.links.len()), 0, stack) {
                            self.links.push(url);
                        }
                    }
                    Some(_) => {
                        self.truncated = true;
                        stack.push(Step::Exit(Exit::Flat { block: false }));
                    }
                    None => stack.push(Step::Exit(Exit::Flat { block: false })),
                }
                children(stack);
            }
            Class::Img => self.image(id),
            Class::Form => self.form(id, stack),
            Class::Input => self.input(id),
            Class::Textarea => {
                if self.form.is_some() {
                    let room = self.limits.max_text.saturating_sub(self.text);
                    let (value, _) = text_under(self.dom, id, room.saturating_add(1));
                    self.field(
                        id,
                        FieldKind::Textarea,
                        value,
                        Vec::new(),
                        Vec::new(),
                        String::new(),
                    );
                }
            }
            Class::Select => {
                if self.form.is_some() {
                    self.select(id);
                }
            }
            Class::Button => {
                let kind =
                    attr(self.dom, id, &local_name!("type")).map(|t| t.trim().to_ascii_lowercase());
                let submit = matches!(kind.as_deref(), None | Some("submit"));
                if submit && self.form.is_some() {
                    let label = label_under(self.dom, id, crate::MAX_VALUE);
                    let sent = attr(self.dom, id, &local_name!("value"))
                        .unwrap_or("")
                        .to_owned();
                    self.field(id, FieldKind::Submit, label, Vec::new(), Vec::new(), sent);
                } else {
                    children(stack);
                }
            }
        }
    }

    fn exit(&mut self, exit: Exit) {
        match exit {
            Exit::Close => {
                while self.open.last().is_some_and(|o| o.implicit) {
                    self.close_one();
                }
                self.close_one();
            }
            Exit::Flat { block } => {
                if block {
                    self.block_edge();
                }
            }
            Exit::EndForm { previous, opened } => {
                if opened {
                    while self.open.last().is_some_and(|o| o.implicit) {
                        self.close_one();
                    }
                    self.close_one();
                } else {
                    self.block_edge();
                }
                self.form = previous;
            }
        }
    }

    fn top_is(&self, f: impl Fn(Kind) -> bool) -> bool {
        // Implicit wrappers are closed before a real row, cell or item.
        self.open
            .iter()
            .rev()
            .find(|o| !o.implicit)
            .is_some_and(|o| f(o.kind))
    }

    /// Counts `n` nodes if there is room; else the tree is full.
    fn take_node(&mut self, n: usize) -> bool {
        if self.nodes.saturating_add(n) > self.limits.max_nodes {
            self.truncated = true;
            self.full = true;
            false
        } else {
            self.nodes += n;
            true
        }
    }

    fn count_text(&mut self, n: usize) {
        self.text = self.text.saturating_add(n);
    }

    /// A leaf record fits under the open records.
    fn leaf_fits(&mut self) -> bool {
        if self.full {
            return false;
        }
        if self.open.len() < self.limits.max_depth {
            self.fit();
            // `fit` may have opened wrappers.
            if self.open.len() < self.limits.max_depth {
                return true;
            }
        }
        self.truncated = true;
        false
    }

    /// Opens a record of `kind` (with room for `below` more levels under
    /// it), or flattens it; pushes the matching exit. True if opened.
    fn open_or_flatten(&mut self, kind: Kind, below: usize, stack: &mut Vec<Step>) -> bool {
        if kind.is_block() {
            self.block_edge();
        }
        let structural = matches!(kind, Kind::Tr | Kind::Item | Kind::Cell(_));
        if structural {
            while self.open.last().is_some_and(|o| o.implicit) {
                self.close_one();
            }
        } else {
            self.fit();
        }
        let depth = self.open.len() + 1 + below;
        if self.full || depth > self.limits.max_depth || !self.take_node(1) {
            self.truncated = true;
            stack.push(Step::Exit(Exit::Flat {
                block: kind.is_block(),
            }));
            return false;
        }
        self.open.push(Open {
            kind,
            children: Vec::new(),
            implicit: false,
        });
        stack.push(Step::Exit(Exit::Close));
        true
    }

    /// Before content goes into a table, row or list: open the row, cell
    /// or item it needs.
    fn fit(&mut self) {
        loop {
            let need = match self.open.last().map(|o| o.kind) {
                Some(Kind::Table) => Kind::Tr,
                Some(Kind::Tr) => Kind::Cell(false),
                Some(Kind::List(_)) => Kind::Item,
                _ => return,
            };
            // A table, row or list is only opened with room below it.
            if self.full || self.open.len() >= self.limits.max_depth || !self.take_node(1) {
                return;
            }
            self.open.push(Open {
                kind: need,
                children: Vec::new(),
                implicit: true,
            });
        }
    }

    fn close_one(&mut self) {
        if self.open.len() <= 1 {
            return;
        }
        if let Some(o) = self.open.pop() {
            if o.kind.is_block() {
                self.space_ok = false;
            }
            let mut children = o.children;
            if o.kind.is_block() {
                self.trim_end(&mut children);
            }
            self.push_node(Node::Rec(o.kind, children));
            if o.kind.is_block() {
                self.block_edge();
            }
        }
    }

    fn push_node(&mut self, node: Node) {
        self.edge = false;
        if let Some(top) = self.open.last_mut() {
            top.children.push(node);
        }
    }

    /// A block starts or ends here: no space carries over it.
    fn block_edge(&mut self) {
        self.space_ok = false;
        self.edge = true;
        if let Some(mut top) = self.open.pop() {
            self.trim_end(&mut top.children);
            self.open.push(top);
        }
    }

    /// Drops a trailing space from the last text child (and the child if
    /// it is left empty), uncounting what it drops.
    fn trim_end(&mut self, children: &mut Vec<Node>) {
        if let Some(Node::Text(t)) = children.last_mut() {
            if t.ends_with(' ') {
                t.pop();
                self.text = self.text.saturating_sub(1);
            }
            if t.is_empty() {
                children.pop();
                self.nodes = self.nodes.saturating_sub(1);
            }
        }
    }

    /// Page text, whitespace collapsed.
    fn text(&mut self, t: &str) {
        if self.full {
            return;
        }
        let mut s = String::with_capacity(t.len().min(4096));
        collapse(t, &mut s);
        let s = if self.space_ok {
            s.as_str()
        } else {
            s.strip_prefix(' ').unwrap_or(&s)
        };
        let structured = matches!(
            self.open.last().map(|o| o.kind),
            Some(Kind::Table | Kind::Tr | Kind::List(_))
        );
        if s.is_empty() || (s == " " && structured) {
            return;
        }
        let ends_in_space = s.ends_with(' ');
        let s = s.to_owned();
        self.raw_text(&s);
        self.space_ok = !ends_in_space;
    }

    /// Text as it is (counted, cut to the text bound, merged with a text
    /// neighbour).
    fn raw_text(&mut self, s: &str) {
        if self.full || s.is_empty() {
            return;
        }
        self.fit();
        let room = self.limits.max_text.saturating_sub(self.text);
        let (s, over) = cut_to(s, room);
        if over {
            self.truncated = true;
            self.full = true;
        }
        if s.is_empty() {
            return;
        }
        let merge = matches!(
            self.open.last().and_then(|o| o.children.last()),
            Some(Node::Text(_))
        );
        if !merge && !self.take_node(1) {
            return;
        }
        // Across a block edge, merged text gets a space (if there is room).
        let gap = merge && self.edge && self.text.saturating_add(s.len()) < self.limits.max_text;
        self.edge = false;
        self.count_text(s.len() + usize::from(gap));
        if let Some(top) = self.open.last_mut() {
            match top.children.last_mut() {
                Some(Node::Text(prev)) if merge => {
                    if gap {
                        prev.push(' ');
                    }
                    prev.push_str(s);
                }
                _ => top.children.push(Node::Text(s.to_owned())),
            }
        }
    }

    fn image(&mut self, id: usize) {
        let alt = label_under_attr(attr(self.dom, id, &local_name!("alt")));
        let url = attr(self.dom, id, &local_name!("src")).and_then(|s| usable(&self.base, s));
        let Some(url) = url else {
            self.text(&alt);
            return;
        };
        if self.images.len() >= self.limits.max_images {
            self.truncated = true;
            self.text(&alt);
            return;
        }
        if self.text.saturating_add(alt.len()) > self.limits.max_text {
            self.truncated = true;
            self.full = true;
            return;
        }
        if !self.leaf_fits() || !self.take_node(1) {
            self.text(&alt);
            return;
        }
        self.count_text(alt.len());
        let i = self.images.len();
        self.images.push(Image { url, alt });
        self.push_node(Node::Rec(Kind::Image(i), Vec::new()));
        self.space_ok = true;
    }

    fn form(&mut self, id: usize, stack: &mut Vec<Step>) {
        let previous = self.form;
        let action = match attr(self.dom, id, &local_name!("action")).map(str::trim) {
            None | Some("") => None,
            Some(a) => usable(&self.base, a),
        }
        .unwrap_or_else(|| self.page_url.clone());
        let method = match attr(self.dom, id, &local_name!("method")) {
            Some(m) if m.trim().eq_ignore_ascii_case("post") => Method::Post,
            _ => Method::Get,
        };
        let mut opened = false;
        if self.forms.len() >= self.limits.max_forms {
            self.truncated = true;
            self.block_edge();
        } else {
            let i = self.forms.len();
            let mut scratch = Vec::new();
            if self.open_or_flatten(Kind::Form(i), 0, &mut scratch) {
                self.forms.push(Form {
                    action,
                    method,
                    fields: Vec::new(),
                });
                opened = true;
            }
        }
        self.form = if opened {
            Some(self.forms.len() - 1)
        } else {
            None
        };
        stack.push(Step::Exit(Exit::EndForm { previous, opened }));
        if let Some(node) = self.dom.get(id) {
            stack.extend(node.children.iter().rev().map(|&c| Step::Enter(c)));
        }
    }

    /// The fields in a hidden element (itself included), added to the
    /// current form as hidden fields: never in the tree, sent with the
    /// page's values, as a browser sends a field it does not show. A
    /// hidden form is left out whole (nobody can see it to submit it).
    fn hidden_fields(&mut self, id: usize) {
        if self.form.is_none() {
            return;
        }
        let dom = self.dom;
        if matches!(self.hidden_field(id), Walk::Into) {
            descendants(dom, id, |n| self.hidden_field(n));
        }
    }

    /// One node of a hidden element, as `hidden_fields` walks it.
    fn hidden_field(&mut self, id: usize) -> Walk {
        let dom = self.dom;
        let local = match elem(dom, id) {
            Some((local, true)) => local,
            _ => return Walk::Skip,
        };
        let value = match classify(local) {
            Class::Drop | Class::Form | Class::Button => return Walk::Skip,
            Class::Input => {
                let ty = attr(dom, id, &local_name!("type"))
                    .map(|t| t.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                let value = attr(dom, id, &local_name!("value")).unwrap_or("");
                match ty.as_str() {
                    // Not pressed, so not sent; files are never sent.
                    "submit" | "image" | "button" | "reset" | "file" => return Walk::Skip,
                    "checkbox" | "radio" if attr(dom, id, &local_name!("checked")).is_none() => {
                        return Walk::Skip;
                    }
                    "checkbox" if value.is_empty() => "on".to_owned(),
                    _ => value.to_owned(),
                }
            }
            Class::Textarea => text_under(dom, id, crate::MAX_VALUE).0,
            Class::Select => {
                let mut first = None;
                let mut chosen = None;
                descendants(dom, id, |n| match elem(dom, n) {
                    Some((l, true)) if *l == local_name!("option") => {
                        let v = || {
                            attr(dom, n, &local_name!("value")).map_or_else(
                                || label_under(dom, n, crate::MAX_VALUE),
                                str::to_owned,
                            )
                        };
                        if attr(dom, n, &local_name!("selected")).is_some() {
                            chosen = Some(v());
                            return Walk::Stop;
                        }
                        if first.is_none() {
                            first = Some(v());
                        }
                        Walk::Skip
                    }
                    Some((l, true)) if *l == local_name!("optgroup") => Walk::Into,
                    _ => Walk::Skip,
                });
                match chosen.or(first) {
                    Some(v) => v,
                    None => return Walk::Skip,
                }
            }
            _ => return Walk::Into,
        };
        self.field(
            id,
            FieldKind::Hidden,
            value,
            Vec::new(),
            Vec::new(),
            String::new(),
        );
        Walk::Skip
    }

    fn input(&mut self, id: usize) {
        if self.form.is_none() {
            return;
        }
        let ty = attr(self.dom, id, &local_name!("type"))
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let value = attr(self.dom, id, &local_name!("value"))
            .unwrap_or("")
            .to_owned();
        let (kind, value, sent) = match ty.as_str() {
            "password" => (FieldKind::Password, value, String::new()),
            "email" => (FieldKind::Email, value, String::new()),
            "search" => (FieldKind::Search, value, String::new()),
            "number" => (FieldKind::Number, value, String::new()),
            "hidden" => (FieldKind::Hidden, value, String::new()),
            "checkbox" => {
                let checked = attr(self.dom, id, &local_name!("checked")).is_some();
                let sent = if value.is_empty() {
                    "on".to_owned()
                } else {
                    value
                };
                (
                    FieldKind::Checkbox,
                    if checked { "on" } else { "" }.to_owned(),
                    sent,
                )
            }
            "submit" => {
                let label = if value.is_empty() {
                    "Submit".to_owned()
                } else {
                    value.clone()
                };
                (FieldKind::Submit, label, value)
            }
            "image" => {
                let alt = attr(self.dom, id, &local_name!("alt")).unwrap_or("").trim();
                let label = if alt.is_empty() { "Submit" } else { alt };
                (FieldKind::Submit, label.to_owned(), value)
            }
            // Buttons that do not submit, and files (nothing is uploaded).
            "button" | "reset" | "file" => return,
            _ => (FieldKind::Text, value, String::new()),
        };
        self.field(id, kind, value, Vec::new(), Vec::new(), sent);
    }

    fn select(&mut self, id: usize) {
        let mut labels = Vec::new();
        let mut values = Vec::new();
        let mut selected = None;
        let mut over = false;
        let dom = self.dom;
        descendants(dom, id, |n| match elem(dom, n) {
            Some((local, true)) if *local == local_name!("option") => {
                if labels.len() >= MAX_OPTIONS {
                    over = true;
                    return Walk::Stop;
                }
                let label = label_under(dom, n, crate::MAX_VALUE);
                let value = attr(dom, n, &local_name!("value"))
                    .map_or_else(|| label.clone(), str::to_owned);
                if selected.is_none() && attr(dom, n, &local_name!("selected")).is_some() {
                    selected = Some(labels.len());
                }
                labels.push(label);
                values.push(value);
                Walk::Skip
            }
            Some((local, true)) if *local == local_name!("optgroup") => Walk::Into,
            _ => Walk::Skip,
        });
        self.truncated |= over;
        let value = labels
            .get(selected.unwrap_or(0))
            .cloned()
            .unwrap_or_default();
        self.field(id, FieldKind::Select, value, labels, values, String::new());
    }

    /// Adds a field to the current form (and, unless hidden, to the tree).
    fn field(
        &mut self,
        id: usize,
        kind: FieldKind,
        value: String,
        options: Vec<String>,
        option_values: Vec<String>,
        sent_value: String,
    ) {
        let Some(f) = self.form else { return };
        if self.full {
            return;
        }
        if self.fields >= self.limits.max_fields {
            self.truncated = true;
            return;
        }
        let name = attr(self.dom, id, &local_name!("name"))
            .unwrap_or("")
            .to_owned();
        // A hidden field is never shown, so it has no label.
        let label = if kind == FieldKind::Hidden {
            String::new()
        } else {
            label_under_attr(attr(self.dom, id, &local_name!("placeholder")))
        };
        let field = Field {
            name,
            kind,
            value,
            label,
            options,
            option_values,
            sent_value,
        };
        if kind != FieldKind::Hidden {
            let text = field.name.len()
                + field.value.len()
                + field.label.len()
                + field.options.iter().map(String::len).sum::<usize>();
            if self.text.saturating_add(text) > self.limits.max_text {
                self.truncated = true;
                self.full = true;
                return;
            }
            if !self.leaf_fits() || !self.take_node(1) {
                return;
            }
            self.count_text(text);
        }
        let Some(form) = self.forms.get_mut(f) else {
            return;
        };
        self.fields += 1;
        let j = form.fields.len();
        form.fields.push(field);
        if kind != FieldKind::Hidden {
            self.push_node(Node::Rec(Kind::Field(f, j), Vec::new()));
            self.space_ok = true;
        }
    }
}

/// An attribute's text, whitespace collapsed and trimmed, at most 4 KiB.
fn label_under_attr(a: Option<&str>) -> String {
    let Some(a) = a else { return String::new() };
    let mut s = String::new();
    collapse(cut_to(a, crate::MAX_VALUE * 4).0, &mut s);
    cut_to(s.trim(), crate::MAX_VALUE).0.to_owned()
}

/// The callback that fills capability slots.
pub(crate) type Slots<'a, R> = dyn FnMut(crate::Slot, usize) -> Value<R> + 'a;

/// The tree as a Syrup value (recursive: the depth is at most 257).
pub(crate) fn to_value<R: Clone>(page: &Page, node: &Node, slots: &mut Slots<'_, R>) -> Value<R> {
    let (kind, children) = match node {
        Node::Text(s) => return Value::String(s.clone()),
        Node::Rec(kind, children) => (*kind, children),
    };
    let mut fields: Vec<Value<R>> = Vec::with_capacity(children.len() + 2);
    let label = match kind {
        Kind::Block => "block",
        Kind::Heading(n) => {
            fields.push(Value::int(i64::from(n)));
            "heading"
        }
        Kind::Para => "para",
        Kind::Strong => "strong",
        Kind::Em => "em",
        Kind::Code => "code",
        Kind::Pre => "pre",
        Kind::Quote => "quote",
        Kind::List(ordered) => {
            fields.push(Value::Bool(ordered));
            "list"
        }
        Kind::Item => "item",
        Kind::Table => "table",
        Kind::Tr => "tr",
        Kind::Cell(header) => {
            fields.push(Value::Bool(header));
            "cell"
        }
        Kind::Break => "break",
        Kind::Rule => "rule",
        Kind::Link(i) => {
            fields.push(slots(crate::Slot::Link, i));
            "link"
        }
        Kind::Image(i) => {
            fields.push(slots(crate::Slot::Image, i));
            let alt = page.images.get(i).map_or("", |im| im.alt.as_str());
            fields.push(Value::str(alt));
            "image"
        }
        Kind::Form(i) => {
            fields.push(slots(crate::Slot::Form, i));
            "form"
        }
        Kind::Field(f, j) => {
            let Some(field) = page.forms.get(f).and_then(|f| f.fields.get(j)) else {
                return Value::str("");
            };
            fields.push(Value::str(field.name.as_str()));
            fields.push(Value::sym(field.kind.symbol()));
            fields.push(Value::str(field.value.as_str()));
            fields.push(Value::str(field.label.as_str()));
            fields.push(Value::List(
                field
                    .options
                    .iter()
                    .map(|o| Value::str(o.as_str()))
                    .collect(),
            ));
            "field"
        }
    };
    for c in children {
        fields.push(to_value(page, c, slots));
    }
    Value::record(label, fields)
}
