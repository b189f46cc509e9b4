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

/// The renderer of one page: it keeps the page only to draw a big one in
/// a turn of its own.
#[derive(Default)]
pub struct TextOnly {
    page: Option<Page>,
}

impl TextOnly {
    fn draw(&self) {
        if let Some(page) = &self.page {
            let _ = view::show(page.pane, draw::text_only(page));
        }
    }
}

impl Caplet for TextOnly {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "render" => match Page::parse(args) {
                Ok(page) => {
                    let (pane, big) = (page.pane, page.is_big());
                    self.page = Some(page);
                    if !big
                        || view::ask(
                            pane,
                            "show",
                            vec![draw::placeholder()],
                            |me: &mut TextOnly, _| me.draw(),
                        )
                        .is_err()
                    {
                        self.draw();
                    }
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
