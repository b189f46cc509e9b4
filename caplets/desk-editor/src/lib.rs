//! The desk's text editor: edits one file it was granted, at install (the
//! request `file`), through the powerbox ("Open another file…"), or by the
//! user dropping a document on its window. It holds nothing else: no path,
//! no folder, no way to name a file of its own.
//!
//! The app protocol is `crates/desk/PROTOCOL.md`, section 2. Everything it
//! knows lives in memory for one launch: the file capability dies when the
//! window closes, so there is nothing worth keeping in storage.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use pola_caplet_sdk::view::{self, Env, Event, text};
use pola_caplet_sdk::{Caplet, Ref, Reply, Val, caplet};

/// The editor of one launch.
#[derive(Default)]
pub struct Editor {
    /// This launch's pane and powerbox (none before `launch`).
    pane: Option<Ref>,
    powerbox: Option<Ref>,
    /// The file being edited, once its text is read.
    file: Option<Ref>,
    /// Its name (as the file says).
    name: String,
    /// The text, as last typed (from `input` events).
    text: String,
    /// A file is being opened (its text not read yet).
    opening: bool,
    /// A line under the buttons: "Saved.", or what went wrong.
    status: String,
    /// Bumped at each launch and each file opened, so that a late answer
    /// about an older file changes nothing.
    generation: u64,
}

fn no_longer(reason: &str) -> String {
    if reason == "revoked" {
        "This file is no longer available: revoked".to_owned()
    } else {
        format!("Could not save: {reason}")
    }
}

impl Editor {
    fn draw(&self) {
        let Some(pane) = self.pane else {
            return;
        };
        let open = view::button("open", "Open another file…");
        let mut items = Vec::new();
        if self.file.is_some() {
            items.push(view::heading(1, [text(&self.name)]));
            items.push(view::textarea("text", &self.text));
            items.push(view::row([view::button("save", "Save"), open]));
        } else {
            items.push(view::heading(1, [text("Editor")]));
            let words = if self.opening {
                "Opening the file…"
            } else {
                "No file to edit"
            };
            items.push(view::para([text(words)]));
            items.push(view::row([open]));
        }
        if !self.status.is_empty() {
            items.push(view::para([text(&self.status)]));
        }
        // A refused tree leaves the old view; nothing better to do.
        let _ = view::show(pane, view::column(items));
    }

    /// Starts editing `file`: asks its name and text, shows it when both
    /// are in. Until then the old file (if any) stays on screen.
    fn open(&mut self, file: Ref) {
        self.generation = self.generation.wrapping_add(1);
        let g = self.generation;
        self.opening = true;
        let named = view::ask(file, "name", vec![], move |ed: &mut Editor, r| {
            if ed.generation != g {
                return;
            }
            ed.name = match r {
                Ok(Val::String(n)) => n,
                _ => "Untitled".to_owned(),
            };
        });
        let read = view::ask(file, "read_text", vec![], move |ed: &mut Editor, r| {
            if ed.generation != g {
                return;
            }
            ed.opening = false;
            match r {
                Ok(Val::String(t)) => {
                    ed.file = Some(file);
                    ed.text = t;
                    ed.status.clear();
                }
                Ok(_) => ed.status = "Could not open the file: it gave no text".to_owned(),
                Err(reason) => {
                    let reason = view::reason_text(&reason);
                    ed.status = if reason == "revoked" {
                        "This file is no longer available: revoked".to_owned()
                    } else {
                        format!("Could not open the file: {reason}")
                    };
                }
            }
            ed.draw();
        });
        if let Err(e) = named.and(read) {
            self.opening = false;
            self.status = format!("Could not open the file: {e}");
            self.draw();
        }
    }

    fn save(&mut self) {
        let Some(file) = self.file else {
            self.status = "No file to save to".to_owned();
            return self.draw();
        };
        let g = self.generation;
        let sent = view::ask(
            file,
            "write",
            vec![text(&self.text)],
            move |ed: &mut Editor, r| {
                if ed.generation != g {
                    return;
                }
                ed.status = match r {
                    Ok(_) => "Saved.".to_owned(),
                    Err(reason) => no_longer(&view::reason_text(&reason)),
                };
                ed.draw();
            },
        );
        match sent {
            Ok(()) => self.status = "Saving…".to_owned(),
            Err(e) => self.status = no_longer(e.name()),
        }
        self.draw();
    }

    fn choose(&mut self) {
        let Some(powerbox) = self.powerbox else {
            return;
        };
        let g = self.generation;
        let asked = view::request(
            powerbox,
            "file",
            "Choose a file to edit",
            [("access", Val::sym("read-write"))],
            move |ed: &mut Editor, r| {
                if ed.generation != g {
                    return;
                }
                match r {
                    Ok(Val::Ref(file)) => ed.open(file),
                    Ok(_) => {
                        ed.status = "No file opened: the answer was not a file".to_owned();
                        ed.draw();
                    }
                    Err(reason) => {
                        ed.status = format!("No file opened: {}", view::reason_text(&reason));
                        ed.draw();
                    }
                }
            },
        );
        if let Err(e) = asked {
            self.status = format!("No file opened: {e}");
            self.draw();
        }
    }
}

impl Caplet for Editor {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "launch" => {
                let Some(env) = Env::parse(&args) else {
                    return reply.err(text("launch expects one environment dictionary"));
                };
                *self = Editor {
                    pane: Some(env.pane),
                    powerbox: Some(env.powerbox),
                    generation: self.generation.wrapping_add(1),
                    ..Editor::default()
                };
                if let Some(file) = env.grant("file") {
                    self.open(file);
                }
                self.draw();
                reply.ok(Val::Bool(true));
            }
            "event" => {
                match Event::parse(&args) {
                    Some(Event::Input { id, value }) if id == "text" => self.text = value,
                    Some(Event::Click { id }) if id == "save" => self.save(),
                    Some(Event::Click { id }) if id == "open" => self.choose(),
                    Some(Event::Drop { file, .. }) => self.open(file),
                    _ => {}
                }
                reply.ok(Val::Bool(true));
            }
            _ => reply.err(text("no such method")),
        }
    }
}

caplet!(Editor);
