//! Snapshots of a peer's sessions and tables ([`crate::PeerHandle::stats`]),
//! for tests and diagnostics: plain data, below the loop that fills them
//! and the command that asks for them.

use pola_captp::locator::PeerLocator;
use pola_captp::session::TableSizes;
use pola_netlayer::Direction;

/// A snapshot of one session, for tests and diagnostics.
#[derive(Clone, Debug)]
pub struct SessionStats {
    /// The location the peer announced, once established.
    pub peer: Option<PeerLocator>,
    /// Who dialled.
    pub direction: Direction,
    /// Whether the session has ended.
    pub terminated: bool,
    /// The session's own table sizes.
    pub tables: TableSizes,
    /// Bytes of ours the peer makes the session hold.
    pub held_bytes: usize,
    /// Import positions with a live far reference in a vat.
    pub live_imports: usize,
    /// Our questions still waiting for an answer.
    pub open_questions: usize,
    /// Answers we host for the peer.
    pub answers: usize,
    /// Whether the connection is read on the vat's own thread (plain TCP)
    /// rather than on a runtime task.
    pub read_on_vat: bool,
}

/// A snapshot of a whole peer.
#[derive(Clone, Debug, Default)]
pub struct PeerStats {
    /// One entry per connection.
    pub sessions: Vec<SessionStats>,
    /// Local objects currently exported on some session.
    pub exported_locals: usize,
    /// Objects registered under Swiss numbers.
    pub sturdyrefs: usize,
    /// Bytes all sessions hold, as charged to the shared budget.
    pub held_bytes: usize,
}
