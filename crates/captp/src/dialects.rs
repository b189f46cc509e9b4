//! How a session is understood by a peer of either dialect without being
//! told which one it speaks (doc only).
//!
//! Nothing on the wire names a dialect: both sides announce `captp-version
//! "1.0"`. The forms that differ (DIGEST section 15), and who decodes what:
//!
//! | form | current text | Endo (`1fa6c227`) | suite `main` | suite `remove-op-deliver-only` |
//! | --- | --- | --- | --- | --- |
//! | fire-and-forget | `op:deliver … false false` | same | `op:deliver-only` only; **crashes** on an `op:deliver` whose resolver is `false` | `op:deliver … false false`; **crashes** on `op:deliver-only` |
//! | `op:listen` | two fields | three (`wants-partial` required) | three | three |
//! | GC labels | plural | plural | singular | singular |
//!
//! So no fixed choice of forms is understood by all of them. The default
//! [`Dialect::Auto`](crate::Dialect::Auto) learns each form from what the
//! peer sends ([`Session::learned`](crate::Session::learned)), and until it
//! has, writes a form every one of them decodes where there is one:
//!
//! - **Fire-and-forget** (a `'fulfill`/`'break` to a resolver, a message
//!   sent with no answer wanted, `deposit-gift`): until the peer shows its
//!   form, `<op:deliver to args false <desc:import-object S>>`, where `S`
//!   is a resolver of ours that ignores what it is told and never answers
//!   (so two such sinks cannot talk for ever). It costs another
//!   implementation one resolver notification and one import to release
//!   (a learning pola peer only the release); it is what lets a
//!   peer that never reveals its dialect before it needs an answer (the
//!   suite's very first message is a `fetch` with a resolver) read that
//!   answer. The peer shows `op:deliver-only` by sending one, and the
//!   current form by sending an `op:deliver` without a resolver, a
//!   two-field `op:listen` or a plural GC label.
//! - **`op:listen`**: three fields (with `wants-partial`) until the peer
//!   sends a listen of its own; two once it sends a two-field one (or
//!   shows itself as a learning pola peer, see below). The text
//!   has two, but every decoder known to us requires three.
//! - **GC labels**: plural (the text, Endo) until the peer sends a GC
//!   operation or `op:deliver-only` (whose writers all use the singular
//!   labels). [`Dialect::AutoSuite`](crate::Dialect::AutoSuite), for pola's
//!   test peer, starts from singular: both suite branches use them and
//!   neither sends a GC operation before it expects ours.
//! - **`op:get`, `op:index`, `op:untag`** are refused
//!   ([`Misuse::NotInDialect`](crate::Misuse::NotInDialect)) once the peer
//!   has sent `op:deliver-only` (and always in the suite's dialects).
//!
//! The first sign of each form decides it: a peer that wrote a form can
//! decode it. pola's sink travels as `<desc:import-promise S>`, a resolver
//! no other implementation sends: a learning pola peer that sees one knows
//! it talks to pola, which decodes every form, and writes the current
//! text's from then on. Two pola peers so learn each other at the first
//! answer and the first GC report, after which fire-and-forget is one
//! `op:deliver … false false` (the in-process handoff cost is unchanged:
//! cold 6 messages / 2 round trips, warm 4 / 1).
//!
//! What stays weak: a peer that never shows its GC labels is never sent
//! GC reports under `Auto` (its exports to us are freed only when the
//! session ends), and a keepalive is not sent to it either; a peer that
//! decodes only the text's two-field `op:listen` and never sends one of
//! its own would refuse our three-field listens (none is known to us).
//!
//! [`Dialect::Current`](crate::Dialect::Current) and
//! [`Dialect::TestSuite`](crate::Dialect::TestSuite) still force one
//! dialect (for tests, and for a peer known in advance).
