//! pola's OCapN peer: the glue that joins a vat to CapTP sessions over
//! netlayers.
//!
//! A [`Peer`] owns one event loop per vat. It listens on its netlayers,
//! accepts and dials connections, and drives the sans-IO
//! `pola_captp::endpoint::Endpoint`, which owns a `pola_captp::Session` per
//! connection and decides admission, the one session per remote peer
//! (reusing inbound sessions too), crossed hellos and duplicates, who a
//! connection may claim to be, deadlines and handoff routing; the peer
//! carries out its decisions and turns session events into vat deliveries
//! and vat sends into session commands.
//! Far references to objects on other peers are ordinary vat [`Ref`]s
//! (through the vat's `Remote` seam), so `send`, `send_only`, pipelining and
//! `when` work on them unchanged.
//!
//! # Threads
//!
//! The sessions and tables live in one core, locked by whoever works on
//! it. Work that starts on the vat's own thread (a message sent through a
//! far reference, an answer or listen result the vat settled, a dropped
//! import) is queued there and done on that thread when the vat goes idle
//! (by the peer's `pola_vat::Driver` on the vat): the message is encoded
//! and written to the socket directly, with no wake-up of another thread.
//! The same driver makes the vat sleep in `epoll` on its sessions' sockets
//! (for the first peer on a vat) and read them on its own thread; other
//! connections are read on runtime tasks. Either reader hands what it reads
//! to the peer's one ingress, on its own thread, as it arrives (no hand-off
//! to the event loop's task), and the vat deliveries one chunk makes are
//! posted as one batch after the core is unlocked, so the vat wakes at most
//! once and finds the core free. Everything else (accepts, dials, the
//! public API, timers) runs on the peer's tokio task. A write starts on the
//! calling thread when nothing is queued for the connection; all messages
//! one step produces leave in one write.
//!
//! A second established session with a peer that already has one is held
//! for a short grace (the old one may be ending), then the endpoint's rule
//! decides: crossed hellos by the OCapN comparison, a duplicate in the same
//! direction aborted while the established one stays.
//!
//! What it is not: it holds no protocol logic (that is `pola-captp`) and
//! moves no bytes itself (that is `pola-netlayer`).
//!
//! Main types: [`Peer`], [`PeerHandle`], [`PeerConfig`]. The objects the
//! OCapN test suite expects are test code, in the `pola-test-peer` crate.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pola_netlayer::TcpTestingOnly;
//! use pola_peer::{Peer, PeerConfig};
//! use pola_syrup::Value;
//! use pola_vat::{Vat, from_fn};
//!
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! let (net_a, net_b) = rt.block_on(async {
//!     (
//!         TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap(),
//!         TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap(),
//!     )
//! });
//! let _in_runtime = rt.enter();
//! let (vat_a, vat_b) = (Vat::new("a"), Vat::new("b"));
//! let a = Peer::start(vat_a.clone(), vec![Arc::new(net_a)], PeerConfig::default()).unwrap();
//! let b = Peer::start(vat_b.clone(), vec![Arc::new(net_b)], PeerConfig::default()).unwrap();
//!
//! // B offers a greeter under a fresh sturdyref…
//! let greeter = vat_b.spawn(from_fn(|_turn, _method, args| {
//!     let name = args.first().and_then(|v| v.as_str()).unwrap_or("stranger").to_owned();
//!     Ok(Value::str(format!("hello, {name}")))
//! }));
//! let sturdy = b.mint_sturdyref(greeter).unwrap();
//!
//! // …and A, given only its URI, calls it like any other reference.
//! let uri = sturdy.to_uri();
//! let far = a.enliven(pola_captp::locator::SturdyRef::from_uri(&uri).unwrap());
//! let answer = vat_a.send(&far, "greet", vec![Value::str("alice")]);
//! let got = vat_a.block_on(&answer, Duration::from_secs(10)).unwrap();
//! assert_eq!(got, Value::str("hello, alice"));
//! # rt.block_on(a.shutdown());
//! # rt.block_on(b.shutdown());
//! # vat_a.shutdown();
//! # vat_b.shutdown();
//! ```
//!
//! [`Ref`]: pola_vat::Ref
#![forbid(unsafe_code)]

pub mod conn;
mod ingress;
mod io;
pub mod message;
mod peer;
pub mod remote;
mod stats;
pub mod swiss;

pub use peer::{Peer, PeerConfig, PeerError, PeerHandle};
pub use stats::{PeerStats, SessionStats};
