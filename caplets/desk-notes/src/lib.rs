//! The desk's notes app: a list of short notes kept in the app's own
//! caplet storage, so they outlast the window, relaunches and desk
//! restarts. It asks for nothing but the right to write that storage (the
//! request `storage`); without it, every change is refused and the app
//! says so.
//!
//! The app protocol is `crates/desk/PROTOCOL.md`, section 2.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use pola_caplet_sdk::view::{self, Env, Event, text};
use pola_caplet_sdk::{Caplet, Error, Ref, Reply, Val, caplet, storage};

/// The storage key of the notes: a list of strings, oldest first.
pub const KEY: &str = "notes";
/// The most notes kept.
pub const MAX_NOTES: usize = 200;
/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 280;

/// The notes app of one launch: only the pane, the text being typed and a
/// status line live in memory; the notes are read from storage each time.
#[derive(Default)]
pub struct Notes {
    pane: Option<Ref>,
    draft: String,
    status: String,
}

/// The notes in storage (an absent or malformed value reads as none).
fn load() -> Result<Vec<String>, Error> {
    Ok(match storage::get(KEY)? {
        Some(Val::List(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Val::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

fn save(notes: &[String]) -> Result<(), Error> {
    storage::put(KEY, &Val::List(notes.iter().map(text).collect()))
}

fn refused(e: Error) -> String {
    match e {
        Error::StorageFull => {
            "Cannot keep notes: this app may not write its storage, or it is full".to_owned()
        }
        e => format!("Cannot keep notes: {e}"),
    }
}

impl Notes {
    fn draw(&self) {
        let Some(pane) = self.pane else {
            return;
        };
        let mut items = vec![view::heading(1, [text("Notes")])];
        match load() {
            Ok(notes) if notes.is_empty() => items.push(view::para([text("No notes yet.")])),
            Ok(notes) => items.push(view::list(notes.iter().enumerate().map(|(i, n)| {
                view::row([text(n), view::button(&format!("delete-{i}"), "Delete")])
            }))),
            Err(e) => items.push(view::para([text(format!("Cannot read the notes: {e}"))])),
        }
        items.push(view::row([
            view::input("new", &self.draft),
            view::button("add", "Add"),
        ]));
        if !self.status.is_empty() {
            items.push(view::para([text(&self.status)]));
        }
        let _ = view::show(pane, view::column(items));
    }

    fn add(&mut self) {
        let note = self.draft.trim();
        if note.is_empty() {
            self.status = "Type a note first.".to_owned();
            return;
        }
        if note.chars().count() > MAX_NOTE_CHARS {
            self.status = format!("A note holds at most {MAX_NOTE_CHARS} characters.");
            return;
        }
        let note = note.to_owned();
        self.status = match load() {
            Ok(notes) if notes.len() >= MAX_NOTES => {
                format!("At most {MAX_NOTES} notes: delete one first.")
            }
            Ok(mut notes) => {
                notes.push(note);
                match save(&notes) {
                    Ok(()) => {
                        self.draft.clear();
                        String::new()
                    }
                    Err(e) => refused(e),
                }
            }
            Err(e) => refused(e),
        };
    }

    fn delete(&mut self, index: &str) {
        let Ok(i) = index.parse::<usize>() else {
            return;
        };
        self.status = match load() {
            Ok(mut notes) if i < notes.len() => {
                notes.remove(i);
                match save(&notes) {
                    Ok(()) => String::new(),
                    Err(e) => refused(e),
                }
            }
            Ok(_) => "That note is already gone.".to_owned(),
            Err(e) => refused(e),
        };
    }
}

impl Caplet for Notes {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "launch" => {
                let Some(env) = Env::parse(&args) else {
                    return reply.err(text("launch expects one environment dictionary"));
                };
                *self = Notes {
                    pane: Some(env.pane),
                    ..Notes::default()
                };
                self.draw();
                reply.ok(Val::Bool(true));
            }
            "event" => {
                match Event::parse(&args) {
                    Some(Event::Input { id, value }) if id == "new" => {
                        // Not redrawn: the input already shows it.
                        self.draft = value;
                        return reply.ok(Val::Bool(true));
                    }
                    Some(Event::Click { id }) if id == "add" => self.add(),
                    Some(Event::Click { id }) => {
                        if let Some(i) = id.strip_prefix("delete-") {
                            self.delete(i);
                        }
                    }
                    _ => return reply.ok(Val::Bool(true)),
                }
                self.draw();
                reply.ok(Val::Bool(true));
            }
            _ => reply.err(text("no such method")),
        }
    }
}

caplet!(Notes);
