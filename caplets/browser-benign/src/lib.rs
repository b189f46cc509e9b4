//! The browser's benign renderer: a faithful, readable drawing of the
//! page (`crates/desk/PROTOCOL.md` section 4): headings, paragraphs,
//! inline styles, code, quotes, lists, tables as rows of columns, images,
//! links and forms.
//!
//! Forms: text-like fields are inputs and textareas (what is typed
//! arrives as `input` events before any click); checkboxes and selects
//! are buttons (a click toggles or moves to the next option, and the page
//! is drawn again); a submit button sends the form's values with
//! `FORM.submit(values)`. If the form refuses, a plain line says why.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use pola_caplet_browser_draw::{self as draw, Action, Form, Page};
use pola_caplet_sdk::view::{self, Event, text};
use pola_caplet_sdk::{Caplet, Reply, Val, caplet};

/// The renderer of one page.
#[derive(Default)]
pub struct Benign {
    page: Option<Page>,
    forms: Vec<Form>,
    /// A plain line above the page (a refused form).
    status: Option<String>,
}

impl Benign {
    fn draw(&self) {
        let Some(page) = &self.page else {
            return;
        };
        let top = self
            .status
            .iter()
            .map(|s| view::para([view::strong([text(draw::cut(s, 1024))])]))
            .collect();
        let _ = view::show(
            page.pane,
            draw::styled(page, &self.forms, top, draw::MAX_NODES),
        );
    }

    fn submit(&mut self, form: usize, values: &std::collections::BTreeMap<String, String>) {
        let Some(f) = self.forms.get(form) else {
            return;
        };
        let sent = view::ask(
            f.cap,
            "submit",
            vec![draw::values_val(values)],
            |me: &mut Benign, outcome| {
                if let Err(reason) = outcome {
                    me.status = Some(format!(
                        "The form was not sent: {}",
                        view::reason_text(&reason)
                    ));
                    me.draw();
                }
            },
        );
        if let Err(e) = sent {
            self.status = Some(format!("The form was not sent: {e}"));
            self.draw();
        }
    }
}

impl Caplet for Benign {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "render" => match Page::parse(args) {
                Ok(page) => {
                    self.forms = draw::forms(&page.tree);
                    let (pane, big) = (page.pane, page.is_big());
                    self.page = Some(page);
                    self.status = None;
                    if !big
                        || view::ask(
                            pane,
                            "show",
                            vec![draw::placeholder()],
                            |me: &mut Benign, _| me.draw(),
                        )
                        .is_err()
                    {
                        self.draw();
                    }
                    reply.ok(Val::Bool(true));
                }
                Err(why) => reply.err(text(why)),
            },
            "event" => {
                match Event::parse(&args) {
                    Some(Event::Input { id, value }) => {
                        draw::on_input(&mut self.forms, &id, &value)
                    }
                    Some(Event::Click { id }) => match draw::on_click(&mut self.forms, &id) {
                        Action::Redraw => self.draw(),
                        Action::Submit(i, values) => self.submit(i, &values),
                        Action::None => {}
                    },
                    _ => {}
                }
                reply.ok(Val::Bool(true));
            }
            _ => reply.err(text("no such method")),
        }
    }
}

caplet!(Benign);
