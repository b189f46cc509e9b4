//! What the browser's stock renderers (`caplets/browser-*`) share: reading
//! `render(env)` and the page's capability tree (`crates/desk/PROTOCOL.md`
//! section 4.1), the page's forms and what the user typed in them, and
//! drawing the tree with the pane's view vocabulary (section 2).
//!
//! Two drawings:
//! - [`styled`]: headings, paragraphs, inline styles, code, quotes, lists
//!   (ordered ones numbered in the text), tables as rows of columns,
//!   images, links and forms (inputs, textareas, checkboxes and selects as
//!   buttons, submit buttons);
//! - [`text_only`]: one column of paragraphs holding the page's text and
//!   its links (link labels only), images as `[image: alt]`, no forms.
//!
//! Both stay inside the pane's bounds whatever the tree: at most
//! [`MAX_NODES`] nodes from the page (the desk refuses more than 5 000),
//! nested at most [`MAX_DEPTH`] deep (deeper content is flattened into its
//! text; the desk refuses more than 32) and [`MAX_TEXT`] bytes of text
//! (the desk refuses more than 256 KiB). Past a bound the drawing stops
//! and ends with [`CUT_LINE`].
//!
//! This is not a caplet: it has no entry points and no state; each
//! renderer keeps its own [`Page`] and [`Form`]s.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use pola_caplet_sdk::view::{self, text};
use pola_caplet_sdk::{Ref, Val, Value};

/// Most nodes a drawing emits for the page's content.
pub const MAX_NODES: usize = 4_800;
/// Deepest nesting of a drawing (the root column is depth 1).
pub const MAX_DEPTH: usize = 30;
/// Most bytes of text a drawing holds.
pub const MAX_TEXT: usize = 250 * 1024;
/// The last line of a drawing cut at a bound.
pub const CUT_LINE: &str = "(the rest of the page is not shown)";
/// The line shown when the browser cut the page to the tree's bounds.
pub const TRUNCATED_LINE: &str = "(the browser shortened this page: it is larger than it may be)";
/// The longest value a form field takes (the form refuses more).
pub const MAX_VALUE: usize = 4096;
/// How deep a tree is walked at all (the browser sends at most 20).
const MAX_WALK: usize = 64;

/// What `render(env)` brings: the page and its pane.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The page's capability tree (normally a `'block`).
    pub tree: Val,
    /// The page's title (may be empty).
    pub title: String,
    /// The browser cut the page to the tree's bounds.
    pub truncated: bool,
    /// The pane of this page.
    pub pane: Ref,
}

fn key<'a>(d: &'a BTreeMap<Val, Val>, k: &str) -> Option<&'a Val> {
    d.get(&text(k))
}

impl Page {
    /// Reads `render`'s arguments: one dictionary with a reference under
    /// `"pane"` and a tree under `"tree"`; `"title"` (a string) and
    /// `"truncated"` (a boolean) may be absent.
    ///
    /// # Errors
    /// Plain words saying what is missing or of the wrong type.
    pub fn parse(args: Vec<Val>) -> Result<Page, &'static str> {
        let Ok::<[Val; 1], _>([Value::Dict(mut d)]) = args.try_into() else {
            return Err("render expects one environment dictionary");
        };
        let Some(Value::Ref(pane)) = key(&d, "pane") else {
            return Err("the environment has no pane");
        };
        let pane = *pane;
        // Taken, not copied: a big tree is costly to copy in a caplet.
        let Some(tree) = d.remove(&text("tree")) else {
            return Err("the environment has no tree");
        };
        let title = match key(&d, "title") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("the title is not a string"),
        };
        let truncated = match key(&d, "truncated") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("truncated is not a boolean"),
        };
        Ok(Page {
            tree,
            title,
            truncated,
            pane,
        })
    }

    /// Whether the tree is bigger than the browser ever sends
    /// ([`BIG_TREE`] nodes): then a renderer draws it in a turn of its own
    /// (after [`placeholder`] is shown), so that reading the tree and
    /// drawing it each get a full CPU budget.
    pub fn is_big(&self) -> bool {
        /// Counts nodes as the browser does: texts and records, not the
        /// numbers, flags, capabilities and strings inside a node.
        fn count(v: &Val, n: &mut usize, depth: usize) {
            if *n > BIG_TREE || depth > MAX_WALK {
                return;
            }
            match v {
                Value::String(_) => *n += 1,
                Value::Record(r) => {
                    *n += 1;
                    if !matches!(r.label.as_symbol(), Some("field" | "image" | "pre")) {
                        r.fields.iter().for_each(|f| count(f, n, depth + 1));
                    }
                }
                _ => {}
            }
        }
        let mut n = 0;
        count(&self.tree, &mut n, 0);
        n > BIG_TREE
    }
}

/// More nodes than the browser's tree ever has (PROTOCOL.md 4.1).
pub const BIG_TREE: usize = 4_000;

/// A view shown while a big tree is drawn.
pub fn placeholder() -> Val {
    view::column([view::para([view::em([text("Drawing the page\u{2026}")])])])
}

/// A form field's kind (`KIND` in the tree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `'text`, `'password`, `'email`, `'search`, `'number`: one line.
    Line,
    /// `'textarea`.
    Textarea,
    /// `'checkbox`: value `"on"` or `""`.
    Checkbox,
    /// `'select`: one of its options.
    Select,
    /// `'submit`: a button; its value is its label.
    Submit,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "text" | "password" | "email" | "search" | "number" => Kind::Line,
            "textarea" => Kind::Textarea,
            "checkbox" => Kind::Checkbox,
            "select" => Kind::Select,
            "submit" => Kind::Submit,
            _ => return None,
        })
    }
}

/// One field of a form, with its current value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name (may be empty: then it is not sent).
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its value now (what the user typed, toggled or picked).
    pub value: String,
    /// Its label.
    pub label: String,
    /// A select's options.
    pub options: Vec<String>,
}

/// A form of the page: its capability and its fields, in tree order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    /// The form capability (`submit(FIELDS)`).
    pub cap: Ref,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// `<'field NAME KIND VALUE "label" OPTIONS>`, or `None` if malformed.
fn parse_field(fields: &[Val]) -> Option<Field> {
    let [name, kind, value, label, options] = fields else {
        return None;
    };
    let options = match options {
        Value::List(l) => l
            .iter()
            .filter_map(|o| o.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Some(Field {
        name: name.as_str()?.to_owned(),
        kind: Kind::parse(kind.as_symbol()?)?,
        value: value.as_str()?.to_owned(),
        label: label.as_str()?.to_owned(),
        options,
    })
}

fn label(v: &Val) -> Option<(&str, &[Val])> {
    let r = v.as_record()?;
    Some((r.label.as_symbol()?, r.fields.as_slice()))
}

/// The page's forms in tree order, each with the fields inside it (a
/// field belongs to its innermost form; fields outside any form are
/// left out).
pub fn forms(tree: &Val) -> Vec<Form> {
    fn walk(v: &Val, depth: usize, current: Option<usize>, out: &mut Vec<Form>) {
        if depth > MAX_WALK {
            return;
        }
        let Some((l, f)) = label(v) else {
            return;
        };
        match l {
            "form" => {
                let Some(Value::Ref(cap)) = f.first() else {
                    return;
                };
                out.push(Form {
                    cap: *cap,
                    fields: Vec::new(),
                });
                let me = out.len() - 1;
                for c in &f[1..] {
                    walk(c, depth + 1, Some(me), out);
                }
            }
            "field" => {
                if let (Some(i), Some(field)) = (current, parse_field(f))
                    && let Some(form) = out.get_mut(i)
                {
                    form.fields.push(field);
                }
            }
            _ => {
                for c in f {
                    walk(c, depth + 1, current, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, 0, None, &mut out);
    out
}

/// The id of field `j` of form `i` in a drawing: `f<i>.<j>`.
pub fn field_id(form: usize, field: usize) -> String {
    format!("f{form}.{field}")
}

/// The id of the submit button added to a form with no submit field.
pub fn submit_id(form: usize) -> String {
    format!("f{form}.submit")
}

/// What a button or input id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Field `.1` of form `.0`.
    Field(usize, usize),
    /// The added submit button of form `.0`.
    Submit(usize),
}

/// Reads an id made by [`field_id`] or [`submit_id`]; `None` for any
/// other string.
pub fn parse_id(id: &str) -> Option<Target> {
    let rest = id.strip_prefix('f')?;
    let (i, j) = rest.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(i) {
        return None;
    }
    let i = i.parse().ok()?;
    if j == "submit" {
        return Some(Target::Submit(i));
    }
    if !digits(j) {
        return None;
    }
    Some(Target::Field(i, j.parse().ok()?))
}

/// What the user did to a form, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do (unknown id, or a change needing no redraw).
    None,
    /// A checkbox or select changed: draw again.
    Redraw,
    /// Submit form `.0` with these values.
    Submit(usize, BTreeMap<String, String>),
}

/// `id` typed `value`: kept in the field (text-like fields only).
pub fn on_input(forms: &mut [Form], id: &str, value: &str) {
    if let Some(Target::Field(i, j)) = parse_id(id)
        && let Some(f) = forms.get_mut(i).and_then(|f| f.fields.get_mut(j))
        && matches!(f.kind, Kind::Line | Kind::Textarea)
    {
        value.clone_into(&mut f.value);
    }
}

/// `id` was clicked: a checkbox toggles, a select moves to its next
/// option, a submit button collects the form's values.
pub fn on_click(forms: &mut [Form], id: &str) -> Action {
    let (i, clicked) = match parse_id(id) {
        Some(Target::Field(i, j)) => (i, Some(j)),
        Some(Target::Submit(i)) => (i, None),
        None => return Action::None,
    };
    let Some(form) = forms.get_mut(i) else {
        return Action::None;
    };
    if let Some(j) = clicked {
        let Some(f) = form.fields.get_mut(j) else {
            return Action::None;
        };
        match f.kind {
            Kind::Checkbox => {
                f.value = if f.value.is_empty() { "on" } else { "" }.to_owned();
                return Action::Redraw;
            }
            Kind::Select => {
                let at = f.options.iter().position(|o| *o == f.value);
                let next = at.map_or(0, |p| p.saturating_add(1)) % f.options.len().max(1);
                if let Some(o) = f.options.get(next) {
                    f.value.clone_from(o);
                }
                return Action::Redraw;
            }
            Kind::Submit => {}
            Kind::Line | Kind::Textarea => return Action::None,
        }
    }
    Action::Submit(i, values(form, clicked))
}

/// The values a submit sends, as a browser would: named fields only,
/// checked checkboxes only, and of the submit buttons only the clicked one.
pub fn values(form: &Form, clicked: Option<usize>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (j, f) in form.fields.iter().enumerate() {
        let send = match f.kind {
            Kind::Submit => clicked == Some(j),
            Kind::Checkbox => !f.value.is_empty(),
            _ => true,
        };
        if send && !f.name.is_empty() {
            out.insert(f.name.clone(), f.value.clone());
        }
    }
    out
}

/// The values as the dictionary `submit(FIELDS)` takes.
pub fn values_val(values: &BTreeMap<String, String>) -> Val {
    Value::Dict(values.iter().map(|(k, v)| (text(k), text(v))).collect())
}

/// Whether the tree has a level-1 heading.
pub fn has_h1(tree: &Val) -> bool {
    fn walk(v: &Val, depth: usize) -> bool {
        if depth > MAX_WALK {
            return false;
        }
        let Some((l, f)) = label(v) else {
            return false;
        };
        if l == "heading" && f.first().and_then(Value::as_i64) == Some(1) {
            return true;
        }
        f.iter().any(|c| walk(c, depth + 1))
    }
    walk(tree, 0)
}

/// All the text of a subtree (link labels, alt texts and field labels
/// included), joined by spaces, at most `max` bytes.
pub fn all_text(v: &Val, max: usize) -> String {
    fn walk(v: &Val, depth: usize, max: usize, out: &mut String) {
        if depth > MAX_WALK || out.len() >= max {
            return;
        }
        match v {
            Value::String(s) => push_words(out, s, max),
            Value::Record(r) => {
                let l = r.label.as_symbol().unwrap_or("");
                match (l, r.fields.as_slice()) {
                    ("image", [_, alt]) => push_words(out, alt.as_str().unwrap_or(""), max),
                    ("field", [_, _, _, label, _]) => {
                        push_words(out, label.as_str().unwrap_or(""), max);
                    }
                    ("heading", [_, rest @ ..]) | ("list", [_, rest @ ..]) => {
                        rest.iter().for_each(|c| walk(c, depth + 1, max, out));
                    }
                    ("cell", [_, rest @ ..]) => {
                        rest.iter().for_each(|c| walk(c, depth + 1, max, out));
                    }
                    _ => r.fields.iter().for_each(|c| walk(c, depth + 1, max, out)),
                }
            }
            Value::List(l) => l.iter().for_each(|c| walk(c, depth + 1, max, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    walk(v, 0, max, &mut out);
    out
}

fn push_words(out: &mut String, s: &str, max: usize) {
    let s = s.trim();
    if s.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    let room = max.saturating_sub(out.len());
    out.push_str(cut(s, room));
}

/// The longest prefix of `s` of at most `max` bytes, on a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A drawing under way: what it has spent of the bounds.
struct Draw<'a> {
    forms: &'a [Form],
    nodes: usize,
    text: usize,
    max_nodes: usize,
    cut: bool,
    /// Form index of each form met so far, in tree order.
    next_form: usize,
    /// Fields met so far, per form.
    fields_seen: Vec<usize>,
    /// The innermost form being drawn.
    form: Option<usize>,
    /// How many blocks are being drawn, one inside the other.
    stack: usize,
}

impl Draw<'_> {
    /// Counts one node; false (and the drawing is cut) past the bound.
    fn take(&mut self) -> bool {
        if self.cut || self.nodes >= self.max_nodes {
            self.cut = true;
            return false;
        }
        self.nodes += 1;
        true
    }

    /// A text node of `s`, cut to the text bound.
    fn text(&mut self, s: &str) -> Option<Val> {
        if !self.take() {
            return None;
        }
        let room = MAX_TEXT.saturating_sub(self.text);
        let s2 = cut(s, room);
        if s2.len() < s.len() {
            self.cut = true;
        }
        self.text += s2.len();
        Some(text(s2))
    }

    /// Counts a text the desk counts (labels, input values), cut to the
    /// text bound.
    fn words(&mut self, s: &str) -> String {
        let room = MAX_TEXT.saturating_sub(self.text);
        let s2 = cut(s, room);
        if s2.len() < s.len() {
            self.cut = true;
        }
        self.text += s2.len();
        s2.to_owned()
    }

    /// A container node (`para`, `row`, …) around `children`, or `None`
    /// when the bound is reached.
    fn node(&mut self, label: &str, children: Vec<Val>) -> Option<Val> {
        if !self.take() {
            return None;
        }
        Some(Value::record(label, children))
    }

    /// Walks a subtree without drawing it, so that form and field numbers
    /// stay in step with [`forms`].
    fn skip(&mut self, v: &Val, depth: usize) {
        if depth > MAX_WALK {
            return;
        }
        let Some((l, f)) = label(v) else {
            return;
        };
        match l {
            "form" => {
                if !matches!(f.first(), Some(Value::Ref(_))) {
                    return;
                }
                let outer = self.enter_form();
                for c in &f[1..] {
                    self.skip(c, depth + 1);
                }
                self.form = outer;
            }
            "field" => {
                let _ = self.next_field(f);
            }
            _ => f.iter().for_each(|c| self.skip(c, depth + 1)),
        }
    }

    fn enter_form(&mut self) -> Option<usize> {
        let me = self.next_form;
        self.next_form += 1;
        self.fields_seen.push(0);
        self.form.replace(me)
    }

    /// The (form, field) numbers of a field met now, if it is well formed
    /// and inside a form.
    fn next_field(&mut self, f: &[Val]) -> Option<(usize, usize)> {
        let i = self.form?;
        parse_field(f)?;
        let seen = self.fields_seen.get_mut(i)?;
        let j = *seen;
        *seen += 1;
        Some((i, j))
    }
}

fn is_inline(v: &Val) -> bool {
    match v {
        Value::String(_) => true,
        _ => matches!(
            label(v).map(|(l, _)| l),
            Some("strong" | "em" | "code" | "link" | "image")
        ),
    }
}

fn blank(run: &[Val]) -> bool {
    run.iter()
        .all(|v| v.as_str().is_some_and(|s| s.trim().is_empty()))
}

/// The styled drawing.
mod styled_draw {
    use super::*;

    impl Draw<'_> {
        /// `kids` as block-level nodes at `depth`: runs of inline nodes
        /// become paragraphs (bold ones for table headers); a break ends a
        /// paragraph.
        pub(super) fn blocks(&mut self, kids: &[Val], depth: usize, bold: bool) -> Vec<Val> {
            let mut out = Vec::new();
            let mut run = Vec::new();
            let inline_depth = depth + 1 + usize::from(bold);
            for k in kids {
                if self.cut {
                    self.skip(k, 0);
                    continue;
                }
                if is_inline(k) {
                    run.extend(self.inline(k, inline_depth));
                } else if label(k).is_some_and(|(l, _)| l == "break") {
                    self.flush(&mut run, &mut out, bold);
                } else {
                    self.flush(&mut run, &mut out, bold);
                    out.extend(self.block(k, depth));
                }
            }
            self.flush(&mut run, &mut out, bold);
            out
        }

        fn flush(&mut self, run: &mut Vec<Val>, out: &mut Vec<Val>, bold: bool) {
            let run = std::mem::take(run);
            if run.is_empty() || blank(&run) {
                return;
            }
            let inner = if bold {
                match self.node("strong", run) {
                    Some(s) => vec![s],
                    None => return,
                }
            } else {
                run
            };
            out.extend(self.node("para", inner));
        }

        /// `kids` drawn as inline nodes at `depth`; block content among
        /// them is flattened into its text.
        fn inlines(&mut self, kids: &[Val], depth: usize) -> Vec<Val> {
            let mut out = Vec::new();
            for k in kids {
                let l = label(k).map(|(l, _)| l);
                if self.cut {
                    self.skip(k, 0);
                } else if is_inline(k) {
                    out.extend(self.inline(k, depth));
                } else if l == Some("break") {
                    out.extend(self.text(" "));
                } else if let (Some("field"), Some((_, f))) = (l, label(k)) {
                    if depth + 2 < MAX_DEPTH {
                        out.extend(self.field(f));
                    } else {
                        self.skip(k, 0);
                    }
                } else {
                    self.skip(k, 0);
                    let t = all_text(k, MAX_TEXT);
                    if !t.is_empty() {
                        out.extend(self.text(&format!(" {t} ")));
                    }
                }
            }
            out
        }

        /// One inline node at `depth`.
        fn inline(&mut self, v: &Val, depth: usize) -> Vec<Val> {
            if let Value::String(s) = v {
                return self.text(s).into_iter().collect();
            }
            let Some((l, f)) = label(v) else {
                return Vec::new();
            };
            if depth + 1 >= MAX_DEPTH {
                self.skip(v, 0);
                let t = all_text(v, MAX_TEXT);
                return self.text(&t).into_iter().collect();
            }
            match (l, f) {
                ("strong" | "em" | "code", _) => {
                    let c = self.inlines(f, depth + 1);
                    self.node(l, c).into_iter().collect()
                }
                ("link", [Value::Ref(target), rest @ ..]) => {
                    if !self.take() {
                        return Vec::new();
                    }
                    let mut c = self.inlines(rest, depth + 1);
                    if c.iter()
                        .all(|n| n.as_str().is_some_and(|s| s.trim().is_empty()))
                    {
                        c.extend(self.text("(link)"));
                    }
                    vec![view::link(*target, c)]
                }
                ("image", [Value::Ref(target), alt]) => {
                    if !self.take() {
                        return Vec::new();
                    }
                    let alt = self.words(alt.as_str().unwrap_or(""));
                    vec![view::image(*target, &alt)]
                }
                _ => Vec::new(),
            }
        }

        /// One block node at `depth`.
        fn block(&mut self, v: &Val, depth: usize) -> Vec<Val> {
            let Some((l, f)) = label(v) else {
                return Vec::new();
            };
            if depth + 3 >= MAX_DEPTH || self.stack >= MAX_WALK {
                // Too deep to draw as boxes: its text, as one paragraph.
                self.skip(v, 0);
                let t = all_text(v, MAX_TEXT);
                if t.is_empty() {
                    return Vec::new();
                }
                let Some(t) = self.text(&t) else {
                    return Vec::new();
                };
                return self.node("para", vec![t]).into_iter().collect();
            }
            self.stack += 1;
            let out = self.block_inner(l, f, depth);
            self.stack -= 1;
            out
        }

        fn block_inner(&mut self, l: &str, f: &[Val], depth: usize) -> Vec<Val> {
            match (l, f) {
                ("block", _) => self.blocks(f, depth, false),
                ("heading", [n, rest @ ..]) => {
                    let n = n.as_i64().unwrap_or(3).clamp(1, 6);
                    if n <= 3 {
                        let mut c = vec![Val::int(n)];
                        c.extend(self.inlines(rest, depth + 1));
                        self.node("heading", c).into_iter().collect()
                    } else {
                        let c = self.inlines(rest, depth + 2);
                        let Some(s) = self.node("strong", c) else {
                            return Vec::new();
                        };
                        self.node("para", vec![s]).into_iter().collect()
                    }
                }
                ("para", _) => {
                    let c = self.inlines(f, depth + 1);
                    if blank(&c) {
                        return Vec::new();
                    }
                    self.node("para", c).into_iter().collect()
                }
                ("pre", [t]) => {
                    let Some(t) = self.text(t.as_str().unwrap_or("")) else {
                        return Vec::new();
                    };
                    let Some(c) = self.node("code", vec![t]) else {
                        return Vec::new();
                    };
                    self.node("para", vec![c]).into_iter().collect()
                }
                ("quote", _) => {
                    let Some(bar) = self.text("\u{2502}") else {
                        return Vec::new();
                    };
                    let c = self.blocks(f, depth + 2, false);
                    let Some(col) = self.node("column", c) else {
                        return Vec::new();
                    };
                    self.node("row", vec![bar, col]).into_iter().collect()
                }
                ("list", [ordered, items @ ..]) => {
                    let ordered = ordered.as_bool().unwrap_or(false);
                    let mut out = Vec::new();
                    for (n, item) in items.iter().enumerate() {
                        if self.cut {
                            self.skip(item, 0);
                            continue;
                        }
                        let kids = match label(item) {
                            Some(("item", k)) => k,
                            _ => std::slice::from_ref(item),
                        };
                        out.extend(self.item(kids, depth + 1, ordered.then_some(n + 1)));
                    }
                    self.node("list", out).into_iter().collect()
                }
                ("table", rows) => {
                    let mut out = Vec::new();
                    for tr in rows {
                        if self.cut {
                            self.skip(tr, 0);
                            continue;
                        }
                        let cells = match label(tr) {
                            Some(("tr", c)) => c,
                            _ => std::slice::from_ref(tr),
                        };
                        let mut row = Vec::new();
                        for cell in cells {
                            if self.cut {
                                self.skip(cell, 0);
                                continue;
                            }
                            let (header, kids) = match label(cell) {
                                Some(("cell", [h, k @ ..])) => (h.as_bool().unwrap_or(false), k),
                                _ => (false, std::slice::from_ref(cell)),
                            };
                            let c = self.blocks(kids, depth + 3, header);
                            row.extend(self.node("column", c));
                        }
                        out.extend(self.node("row", row));
                    }
                    self.node("column", out).into_iter().collect()
                }
                ("rule", _) => {
                    let Some(t) = self.text("\u{2500}".repeat(16).as_str()) else {
                        return Vec::new();
                    };
                    self.node("para", vec![t]).into_iter().collect()
                }
                ("form", [Value::Ref(_), rest @ ..]) => {
                    let outer = self.enter_form();
                    let me = self.form.unwrap_or(0);
                    let mut c = self.blocks(rest, depth + 1, false);
                    let has_submit = self
                        .forms
                        .get(me)
                        .is_some_and(|f| f.fields.iter().any(|x| x.kind == Kind::Submit));
                    if !has_submit && self.take() {
                        c.push(view::button(&submit_id(me), "Submit"));
                    }
                    self.form = outer;
                    self.node("column", c).into_iter().collect()
                }
                ("field", _) => self.field(f),
                _ => self.blocks(f, depth, false),
            }
        }

        /// A list item's content at `depth`, numbered if `number`.
        fn item(&mut self, kids: &[Val], depth: usize, number: Option<usize>) -> Vec<Val> {
            let mut nodes = self.blocks(kids, depth + 1, false);
            if let Some(n) = number {
                let Some(t) = self.text(&format!("{n}. ")) else {
                    return Vec::new();
                };
                match nodes.first_mut().and_then(|v| match v {
                    Value::Record(r) if r.label.as_symbol() == Some("para") => Some(r),
                    _ => None,
                }) {
                    Some(p) => p.fields.insert(0, t),
                    None => match self.node("para", vec![t]) {
                        Some(p) => nodes.insert(0, p),
                        None => return Vec::new(),
                    },
                }
            }
            match nodes.len() {
                0 => self.text("").into_iter().collect(),
                1 => nodes,
                _ => self.node("column", nodes).into_iter().collect(),
            }
        }

        /// A form field: inputs with ids, buttons for checkboxes, selects
        /// and submits.
        fn field(&mut self, f: &[Val]) -> Vec<Val> {
            let Some((i, j)) = self.next_field(f) else {
                return Vec::new();
            };
            let forms = self.forms;
            let Some(field) = forms.get(i).and_then(|x| x.fields.get(j)) else {
                return Vec::new();
            };
            let id = field_id(i, j);
            let control = match field.kind {
                Kind::Line | Kind::Textarea => {
                    if !self.take() {
                        return Vec::new();
                    }
                    let v = self.words(&field.value);
                    if field.kind == Kind::Line {
                        view::input(&id, &v)
                    } else {
                        view::textarea(&id, &v)
                    }
                }
                Kind::Checkbox => {
                    if !self.take() {
                        return Vec::new();
                    }
                    let mark = if field.value.is_empty() {
                        "\u{2610}"
                    } else {
                        "\u{2611}"
                    };
                    let l = self.words(&format!("{mark} {}", field.label));
                    return vec![view::button(&id, &l)];
                }
                Kind::Select => {
                    if !self.take() {
                        return Vec::new();
                    }
                    let l = self.words(&format!("{} \u{25be}", field.value));
                    view::button(&id, &l)
                }
                Kind::Submit => {
                    if !self.take() {
                        return Vec::new();
                    }
                    let l = if field.value.trim().is_empty() {
                        "Submit"
                    } else {
                        field.value.as_str()
                    };
                    let l = self.words(l);
                    return vec![view::button(&id, &l)];
                }
            };
            if field.label.trim().is_empty() {
                return vec![control];
            }
            let Some(l) = self.text(&field.label) else {
                return Vec::new();
            };
            self.node("row", vec![l, control]).into_iter().collect()
        }
    }
}

/// The styled drawing of `page` (forms drawn with `forms`' values), at
/// most `max_nodes` nodes of content (capped at [`MAX_NODES`]), as a
/// column starting with `top` (nodes the caller adds; they must fit in the
/// 200 nodes left and be at most 2 deep).
pub fn styled(page: &Page, forms: &[Form], top: Vec<Val>, max_nodes: usize) -> Val {
    let (top_nodes, top_text) = measure(&top);
    let mut d = Draw {
        forms,
        nodes: top_nodes,
        text: top_text,
        max_nodes: max_nodes.min(MAX_NODES),
        cut: false,
        next_form: 0,
        fields_seen: Vec::new(),
        form: None,
        stack: 0,
    };
    let mut out = top;
    if !page.title.trim().is_empty() && !has_h1(&page.tree) {
        let t = d.words(cut(&page.title, 1024));
        out.push(view::heading(1, [text(t)]));
    }
    let tree = std::slice::from_ref(&page.tree);
    out.extend(d.blocks(tree, 2, false));
    finish(out, d.cut, page.truncated)
}

/// Nodes and bytes of text (as the desk counts them) in `nodes`.
pub fn measure(nodes: &[Val]) -> (usize, usize) {
    fn walk(v: &Val, n: &mut usize, t: &mut usize) {
        *n += 1;
        match v {
            Value::String(s) => *t += s.len(),
            Value::Record(r) => match (r.label.as_symbol(), r.fields.as_slice()) {
                (Some("button" | "input" | "textarea"), [_, Value::String(s)]) => *t += s.len(),
                (Some("image"), [_, Value::String(s)]) => *t += s.len(),
                (Some("heading"), [_, rest @ ..]) => rest.iter().for_each(|c| walk(c, n, t)),
                (Some("link"), [_, rest @ ..]) => rest.iter().for_each(|c| walk(c, n, t)),
                _ => r.fields.iter().for_each(|c| walk(c, n, t)),
            },
            _ => {}
        }
    }
    let (mut n, mut t) = (0, 0);
    nodes.iter().for_each(|v| walk(v, &mut n, &mut t));
    (n, t)
}

fn finish(mut out: Vec<Val>, cut: bool, truncated: bool) -> Val {
    if cut {
        out.push(view::para([text(CUT_LINE)]));
    }
    if truncated {
        out.push(view::para([view::em([text(TRUNCATED_LINE)])]));
    }
    view::column(out)
}

/// The text-only drawing of `page`: one column of paragraphs of text and
/// links (their labels only), images as `[image: alt]`, no forms, at most
/// [`MAX_NODES`] nodes.
pub fn text_only(page: &Page) -> Val {
    struct T {
        paras: Vec<Val>,
        run: Vec<Val>,
        /// Text waiting to be merged into one text node.
        words: String,
        nodes: usize,
        text: usize,
        cut: bool,
    }
    impl T {
        fn room(&mut self, nodes: usize) -> bool {
            if self.cut || self.nodes + nodes > MAX_NODES {
                self.cut = true;
                return false;
            }
            self.nodes += nodes;
            true
        }
        fn word(&mut self, s: &str) {
            if self.cut {
                return;
            }
            let room = MAX_TEXT.saturating_sub(self.text);
            let s2 = cut(s, room);
            if s2.len() < s.len() {
                self.cut = true;
            }
            self.text += s2.len();
            self.words.push_str(s2);
        }
        fn end_words(&mut self) {
            if self.words.is_empty() {
                return;
            }
            let w = std::mem::take(&mut self.words);
            if self.room(1) {
                self.run.push(text(w));
            }
        }
        fn end_para(&mut self) {
            self.end_words();
            let run = std::mem::take(&mut self.run);
            if run.is_empty() || blank(&run) {
                return;
            }
            if self.room(1) {
                self.paras.push(view::para(run));
            }
        }
        fn walk(&mut self, v: &Val, depth: usize) {
            if self.cut || depth > MAX_WALK {
                return;
            }
            if let Value::String(s) = v {
                return self.word(s);
            }
            let Some((l, f)) = label(v) else {
                return;
            };
            match (l, f) {
                ("strong" | "em" | "code" | "block" | "form" | "tr" | "item", _) => {
                    let block = matches!(l, "block" | "form" | "tr" | "item");
                    if block {
                        self.end_para();
                    }
                    let kids = if l == "form" {
                        f.get(1..).unwrap_or_default()
                    } else {
                        f
                    };
                    for (n, k) in kids.iter().enumerate() {
                        if l == "tr" && n > 0 {
                            self.word(" | ");
                        }
                        self.walk(k, depth + 1);
                    }
                    if block {
                        self.end_para();
                    }
                }
                ("heading", [_, rest @ ..]) | ("quote", rest) | ("para", rest) => {
                    self.end_para();
                    rest.iter().for_each(|k| self.walk(k, depth + 1));
                    self.end_para();
                }
                ("cell", [_, rest @ ..]) => rest.iter().for_each(|k| self.walk(k, depth + 1)),
                ("list", [ordered, items @ ..]) => {
                    let ordered = ordered.as_bool().unwrap_or(false);
                    for (n, item) in items.iter().enumerate() {
                        self.end_para();
                        if ordered {
                            self.word(&format!("{}. ", n + 1));
                        } else {
                            self.word("\u{2022} ");
                        }
                        match label(item) {
                            Some(("item", kids)) => {
                                kids.iter().for_each(|k| self.walk(k, depth + 1));
                            }
                            _ => self.walk(item, depth + 1),
                        }
                    }
                    self.end_para();
                }
                ("table", rows) => rows.iter().for_each(|r| self.walk(r, depth + 1)),
                ("pre", [t]) => {
                    self.end_para();
                    self.word(t.as_str().unwrap_or(""));
                    self.end_para();
                }
                ("break" | "rule", _) => self.end_para(),
                ("link", [Value::Ref(target), rest @ ..]) => {
                    self.end_words();
                    let label = all_text(&Value::List(rest.to_vec()), 4096);
                    let label = if label.is_empty() {
                        "(link)".to_owned()
                    } else {
                        label
                    };
                    let room = MAX_TEXT.saturating_sub(self.text);
                    let l = cut(&label, room).to_owned();
                    if l.len() < label.len() {
                        self.cut = true;
                    }
                    self.text += l.len();
                    if self.room(2) {
                        self.run.push(view::link(*target, [text(l)]));
                    }
                }
                ("image", [_, alt]) => {
                    self.word(&format!(" [image: {}] ", alt.as_str().unwrap_or("")));
                }
                _ => {}
            }
        }
    }
    let mut t = T {
        paras: Vec::new(),
        run: Vec::new(),
        words: String::new(),
        nodes: 0,
        text: 0,
        cut: false,
    };
    if !page.title.trim().is_empty() && !has_h1(&page.tree) {
        t.word(cut(&page.title, 1024));
        t.end_para();
    }
    t.walk(&page.tree, 0);
    t.end_para();
    finish(t.paras, t.cut, page.truncated)
}

#[cfg(test)]
mod tests;
