//! A deterministic simulator: sessions wired output-to-input in memory.

use pola_captp::locator::{Hints, PeerLocator};
use pola_captp::{Dialect, Event, Session, SessionConfig};

pub fn loc(name: &str) -> PeerLocator {
    PeerLocator::new("sim", name, Hints::Absent).unwrap()
}

pub fn session(dialect: Dialect, seed: u8, name: &str) -> Session {
    Session::new(SessionConfig::new(dialect, [seed; 32], loc(name)))
}

/// Two sessions joined by a lossless in-order link.
pub struct Pair {
    pub a: Session,
    pub b: Session,
    /// Every message sent, as (from_a, bytes), in order.
    pub wire: Vec<(bool, Vec<u8>)>,
    /// Feed bytes in chunks of this size (exercises partial frames).
    pub chunk: usize,
}

impl Pair {
    pub fn new(dialect: Dialect, seed_a: u8, seed_b: u8) -> Pair {
        Pair::named(dialect, seed_a, "alice", seed_b, "bob")
    }

    pub fn named(dialect: Dialect, seed_a: u8, name_a: &str, seed_b: u8, name_b: &str) -> Pair {
        let mut p = Pair {
            a: session(dialect, seed_a, name_a),
            b: session(dialect, seed_b, name_b),
            wire: Vec::new(),
            chunk: 7,
        };
        let (ea, eb) = p.run();
        assert!(
            matches!(ea.as_slice(), [Event::Established { .. }]),
            "{ea:?}"
        );
        assert!(
            matches!(eb.as_slice(), [Event::Established { .. }]),
            "{eb:?}"
        );
        p
    }

    /// Moves bytes both ways until both are quiet; returns the events each
    /// side produced, in order.
    pub fn run(&mut self) -> (Vec<Event>, Vec<Event>) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        loop {
            let moved = self.move_bytes();
            while let Some(e) = self.a.poll_event() {
                ea.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                eb.push(e);
            }
            if !moved {
                return (ea, eb);
            }
        }
    }

    /// Moves every queued message once each way (a's first), without
    /// polling events; returns whether anything moved.
    pub fn move_bytes(&mut self) -> bool {
        let mut moved = false;
        while let Some(m) = self.a.poll_transmit() {
            moved = true;
            for c in m.chunks(self.chunk) {
                let _ = self.b.handle_bytes(c);
            }
            self.wire.push((true, m));
        }
        while let Some(m) = self.b.poll_transmit() {
            moved = true;
            for c in m.chunks(self.chunk) {
                let _ = self.a.handle_bytes(c);
            }
            self.wire.push((false, m));
        }
        moved
    }

    /// The labels of every message sent so far by a (or b), decoded.
    pub fn labels(&self, from_a: bool) -> Vec<String> {
        self.wire
            .iter()
            .filter(|(f, _)| *f == from_a)
            .map(|(_, m)| label(m))
            .collect()
    }
}

pub fn label(m: &[u8]) -> String {
    let v = pola_syrup::decode(m).unwrap();
    let r = v.as_record().unwrap();
    let l = r.label.as_symbol().unwrap().to_owned();
    if l == "op:listen" || l == "op:deliver" {
        format!("{l}/{}", r.fields.len())
    } else {
        l
    }
}
