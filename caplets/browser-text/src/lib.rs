//! The browser's text renderer: the page's text and link labels only
//! (`crates/desk/PROTOCOL.md` section 4), one column of paragraphs. Links
//! stay links (clicking one makes the desk follow it); images are
//! `[image: alt]`; forms are not drawn, so it sends nothing anywhere.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use pola_caplet_browser_draw::{self as draw, Page};
use pola_caplet_sdk::view::{self, text};
use pola_caplet_sdk::{Caplet, Reply, Val, caplet};

/// The renderer of one page: it keeps nothing.
#[derive(Default)]
pub struct TextOnly;

impl Caplet for TextOnly {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "render" => match Page::parse(&args) {
                Ok(page) => {
                    let _ = view::show(page.pane, draw::text_only(&page));
                    reply.ok(Val::Bool(true));
                }
                Err(why) => reply.err(text(why)),
            },
            // Nothing in its drawing sends events; links go to the desk.
            "event" => reply.ok(Val::Bool(true)),
            _ => reply.err(text("no such method")),
        }
    }
}

caplet!(TextOnly);
