//! A small arena DOM that html5ever builds into.
//!
//! Invariants (upheld here, relied on by `build`):
//! - a node's index is its handle; index 0 is the document; handles are
//!   never reused, so a stale handle names a detached node, never another;
//! - `parent` and `children` agree: a node is in its parent's `children`
//!   exactly once, and a detached node has no parent;
//! - only the attributes the tree can use are kept (`KEPT_ATTRIBUTES`):
//!   every other attribute is dropped as the parser hands it over, so
//!   nothing else can ever reach the tree; of `hidden` and `style` only
//!   whether they hide the element is kept ([`Hides`]), never their text;
//! - comments, processing instructions and the doctype are never stored.
//!
//! The arena is flat, so dropping it never recurses however deep the page
//! nests. Nothing here panics on any input: a handle the arena does not
//! know is treated as a detached, nameless node.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use html5ever::tendril::StrTendril;
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, LocalName, Namespace, QualName, local_name, ns};

/// The only attributes kept from the page; every other one is dropped
/// as the parser creates the element.
pub(crate) const KEPT_ATTRIBUTES: &[LocalName] = &[
    local_name!("href"),
    local_name!("src"),
    local_name!("alt"),
    local_name!("action"),
    local_name!("method"),
    local_name!("name"),
    local_name!("type"),
    local_name!("value"),
    local_name!("checked"),
    local_name!("selected"),
    local_name!("placeholder"),
];

/// What a node is.
#[derive(Debug)]
pub(crate) enum Data {
    /// The document (index 0) or a template's contents.
    Document,
    /// An element: its name and its kept attributes.
    Element {
        /// Its namespace (HTML, SVG, MathML).
        ns: Namespace,
        /// Its local name.
        local: LocalName,
        /// Its kept attributes, in source order.
        attrs: Vec<(LocalName, StrTendril)>,
        /// For a `template`: the node holding its contents.
        template: Option<usize>,
        /// Whether its `hidden` or `style` attribute hides it.
        hides: Hides,
    },
    /// Text.
    Text(StrTendril),
    /// A comment, processing instruction: kept only as a place holder,
    /// with no content.
    Nothing,
}

/// What an element's `hidden` and inline `style` attributes say about
/// showing it: a browser draws no box for it or anything inside.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Hides {
    /// It has a `hidden` attribute (any value: `until-found` hides too).
    attr: bool,
    /// Its `style`, if it has one: whether that says `display: none`.
    style: Option<bool>,
}

impl Hides {
    /// Whether the element is hidden.
    pub(crate) fn hidden(self) -> bool {
        self.attr || self.style == Some(true)
    }

    /// Takes in one attribute, unless the element already has one of
    /// that name (the parser hands a duplicate attribute over only
    /// through `add_attrs_if_missing`, which must not replace).
    fn add(&mut self, a: &Attribute) {
        if a.name.ns != ns!() {
            return;
        }
        if a.name.local == local_name!("hidden") {
            self.attr = true;
        } else if a.name.local == local_name!("style") && self.style.is_none() {
            self.style = Some(crate::style::display_none(&a.value));
        }
    }
}

/// One node of the arena.
#[derive(Debug)]
pub(crate) struct Node {
    /// Its depth when it was last put into a parent (the document is 0).
    depth: u32,
    pub(crate) parent: Option<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) data: Data,
}

/// The element name html5ever asks for: owned atoms (cheap to clone).
#[derive(Debug)]
pub(crate) struct Name {
    ns: Namespace,
    local: LocalName,
}

impl html5ever::interface::ElemName for Name {
    fn ns(&self) -> &Namespace {
        &self.ns
    }
    fn local_name(&self) -> &LocalName {
        &self.local
    }
}

/// The tree sink: an arena of nodes, plus a count of nodes made so the
/// caller can stop feeding a page that makes too many (misnested
/// formatting elements make the parser create elements the source does
/// not spell out).
pub(crate) struct Sink {
    pub(crate) nodes: RefCell<Vec<Node>>,
    made: Cell<usize>,
    /// Element names asked for: the parser asks once per element it looks
    /// at on its stack, so this measures its work.
    work: Cell<u64>,
    /// The deepest an element has been put.
    deepest: Cell<u32>,
}

impl Sink {
    pub(crate) fn new() -> Sink {
        Sink {
            nodes: RefCell::new(vec![Node {
                depth: 0,
                parent: None,
                children: Vec::new(),
                data: Data::Document,
            }]),
            made: Cell::new(1),
            work: Cell::new(0),
            deepest: Cell::new(0),
        }
    }

    /// How many element names the parser has asked for.
    pub(crate) fn work(&self) -> u64 {
        self.work.get()
    }

    /// The deepest an element has been put in the tree.
    pub(crate) fn deepest(&self) -> u32 {
        self.deepest.get()
    }

    /// How many nodes the parser has made so far.
    pub(crate) fn made(&self) -> usize {
        self.made.get()
    }

    fn push(&self, data: Data) -> usize {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            depth: 0,
            parent: None,
            children: Vec::new(),
            data,
        });
        self.made.set(self.made.get().saturating_add(1));
        nodes.len() - 1
    }

    fn detach(nodes: &mut [Node], child: usize) {
        let Some(parent) = nodes.get(child).and_then(|n| n.parent) else {
            return;
        };
        if let Some(p) = nodes.get_mut(parent)
            && let Some(i) = p.children.iter().rposition(|&c| c == child)
        {
            p.children.remove(i);
        }
        if let Some(c) = nodes.get_mut(child) {
            c.parent = None;
        }
    }

    /// Puts `child` (or text) into `parent` at `at` (an index into its
    /// children; `None` for the end), merging text with a text neighbour.
    fn insert(&self, parent: usize, at: Option<usize>, child: NodeOrText<usize>) {
        match child {
            NodeOrText::AppendText(text) => {
                {
                    let mut nodes = self.nodes.borrow_mut();
                    let Some(p) = nodes.get(parent) else { return };
                    let before = match at {
                        None => p.children.last().copied(),
                        Some(0) => None,
                        Some(i) => p.children.get(i - 1).copied(),
                    };
                    if let Some(b) = before
                        && let Some(Node {
                            data: Data::Text(t),
                            ..
                        }) = nodes.get_mut(b)
                    {
                        t.push_tendril(&text);
                        return;
                    }
                }
                let id = self.push(Data::Text(text));
                self.link(parent, at, id);
            }
            NodeOrText::AppendNode(id) => {
                {
                    let mut nodes = self.nodes.borrow_mut();
                    Self::detach(&mut nodes, id);
                }
                // The index may have moved if `id` was a sibling before `at`.
                self.link(parent, at, id);
            }
        }
    }

    fn link(&self, parent: usize, at: Option<usize>, id: usize) {
        let mut nodes = self.nodes.borrow_mut();
        if parent == id || nodes.get(id).is_none() {
            return;
        }
        let Some(p) = nodes.get_mut(parent) else {
            return;
        };
        match at {
            Some(i) if i <= p.children.len() => p.children.insert(i, id),
            _ => p.children.push(id),
        }
        let depth = p.depth.saturating_add(1);
        if let Some(c) = nodes.get_mut(id) {
            c.parent = Some(parent);
            c.depth = depth;
        }
        self.deepest.set(self.deepest.get().max(depth));
    }
}

impl TreeSink for Sink {
    type Handle = usize;
    type Output = Sink;
    type ElemName<'a> = Name;

    fn finish(self) -> Sink {
        self
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> usize {
        0
    }

    fn elem_name<'a>(&'a self, target: &'a usize) -> Name {
        self.work.set(self.work.get().saturating_add(1));
        match self.nodes.borrow().get(*target).map(|n| &n.data) {
            Some(Data::Element { ns, local, .. }) => Name {
                ns: ns.clone(),
                local: local.clone(),
            },
            _ => Name {
                ns: ns!(),
                local: local_name!(""),
            },
        }
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, _: ElementFlags) -> usize {
        let is_template = name.ns == ns!(html) && name.local == local_name!("template");
        let mut hides = Hides::default();
        for a in &attrs {
            hides.add(a);
        }
        let attrs = attrs
            .into_iter()
            .filter(|a| a.name.ns == ns!() && KEPT_ATTRIBUTES.contains(&a.name.local))
            .map(|a| (a.name.local, a.value))
            .collect();
        let template = is_template.then(|| self.push(Data::Document));
        self.push(Data::Element {
            ns: name.ns,
            local: name.local,
            attrs,
            template,
            hides,
        })
    }

    fn create_comment(&self, _text: StrTendril) -> usize {
        self.push(Data::Nothing)
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> usize {
        self.push(Data::Nothing)
    }

    fn append(&self, parent: &usize, child: NodeOrText<usize>) {
        self.insert(*parent, None, child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &usize,
        prev_element: &usize,
        child: NodeOrText<usize>,
    ) {
        let has_parent = self
            .nodes
            .borrow()
            .get(*element)
            .is_some_and(|n| n.parent.is_some());
        if has_parent {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    fn get_template_contents(&self, target: &usize) -> usize {
        match self.nodes.borrow().get(*target).map(|n| &n.data) {
            Some(Data::Element {
                template: Some(t), ..
            }) => *t,
            // Never asked for anything but a template; a detached
            // placeholder keeps a confused caller harmless.
            _ => usize::MAX,
        }
    }

    fn same_node(&self, x: &usize, y: &usize) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &usize, new_node: NodeOrText<usize>) {
        if let NodeOrText::AppendNode(id) = &new_node {
            let mut nodes = self.nodes.borrow_mut();
            Self::detach(&mut nodes, *id);
        }
        let (parent, at) = {
            let nodes = self.nodes.borrow();
            let Some(parent) = nodes.get(*sibling).and_then(|n| n.parent) else {
                return;
            };
            let Some(at) = nodes
                .get(parent)
                .and_then(|p| p.children.iter().rposition(|c| c == sibling))
            else {
                return;
            };
            (parent, at)
        };
        self.insert(parent, Some(at), new_node);
    }

    fn add_attrs_if_missing(&self, target: &usize, attrs: Vec<Attribute>) {
        let mut nodes = self.nodes.borrow_mut();
        if let Some(Node {
            data: Data::Element {
                attrs: have, hides, ..
            },
            ..
        }) = nodes.get_mut(*target)
        {
            for a in attrs {
                hides.add(&a);
                if a.name.ns == ns!()
                    && KEPT_ATTRIBUTES.contains(&a.name.local)
                    && !have.iter().any(|(n, _)| *n == a.name.local)
                {
                    have.push((a.name.local, a.value));
                }
            }
        }
    }

    fn remove_from_parent(&self, target: &usize) {
        let mut nodes = self.nodes.borrow_mut();
        Self::detach(&mut nodes, *target);
    }

    fn reparent_children(&self, node: &usize, new_parent: &usize) {
        if node == new_parent {
            return;
        }
        let mut nodes = self.nodes.borrow_mut();
        let moved = match nodes.get_mut(*node) {
            Some(n) => std::mem::take(&mut n.children),
            None => return,
        };
        for &c in &moved {
            if let Some(n) = nodes.get_mut(c) {
                n.parent = Some(*new_parent);
            }
        }
        match nodes.get_mut(*new_parent) {
            Some(p) => p.children.extend(moved),
            None => {
                for &c in &moved {
                    if let Some(n) = nodes.get_mut(c) {
                        n.parent = None;
                    }
                }
            }
        }
    }
}
