//! CapTP wire messages and descriptors as typed Rust values (DIGEST sections
//! 8, 9 and 15).
//!
//! [`Op::parse`] turns one decoded Syrup record into an [`Op`], validating
//! every field; [`Op::to_value`] builds the record in a chosen [`Dialect`].
//! Values inside messages (`args`, fulfilments) are `Value<Desc>`: every
//! descriptor record found inside has been lifted into a [`Desc`] reference,
//! so later layers never mistake a descriptor for data.
//!
//! Parsing is direction-neutral: positions stay raw [`Position`]s here, and
//! the session turns them into owned position types.
//!
//! Invariant: parse never panics and never allocates more than the decoded
//! value it is given (which the Syrup decoder has already capped).

use pola_syrup::{NoRef, Record, Value};

use crate::crypto::{PublicKey, Signature};
use crate::handoff::{Envelope, SignedGive, SignedReceive, parse_envelope};
use crate::ids::Position;
use crate::locator::PeerLocator;
pub use crate::shape::WireError;

/// Which variant of the protocol a session emits (DIGEST section 15). Every
/// variant is always accepted on input; see [`crate::dialects`] for how the
/// learning ones decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// Learn each form from what the peer sends, so that a peer of either
    /// dialect understands us without being told. Until the peer shows its
    /// form: fire-and-forget as `op:deliver … false <resolver>` (a resolver
    /// that ignores what it is told, a form every dialect decodes),
    /// `op:listen` with three fields, plural GC labels.
    #[default]
    Auto,
    /// Like [`Dialect::Auto`], but until the peer shows its GC labels they
    /// are singular, as in both branches of the public OCapN test suite
    /// (pola's test peer).
    AutoSuite,
    /// Always the public OCapN test suite's main branch: fire-and-forget is
    /// `op:deliver-only`, `op:listen` has three fields, GC labels are
    /// singular (`op:gc-export`, `op:gc-answer`).
    TestSuite,
    /// Always the current draft text: fire-and-forget is `op:deliver …
    /// false false`, `op:listen` has two fields, GC labels are plural.
    Current,
}

impl Dialect {
    /// The forms written before anything is learned from the peer (for
    /// [`Dialect::Auto`] and [`Dialect::AutoSuite`], fire-and-forget is
    /// then not written as such at all: see [`Dialect::Auto`]).
    pub fn forms(self) -> Forms {
        match self {
            Dialect::Auto => Forms {
                deliver_only: false,
                listen_wants_partial: true,
                gc_plural: true,
            },
            Dialect::AutoSuite => Forms {
                deliver_only: false,
                listen_wants_partial: true,
                gc_plural: false,
            },
            Dialect::TestSuite => Forms {
                deliver_only: true,
                listen_wants_partial: true,
                gc_plural: false,
            },
            Dialect::Current => Forms {
                deliver_only: false,
                listen_wants_partial: false,
                gc_plural: true,
            },
        }
    }
}

/// How each form that differs between the dialects is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Forms {
    /// Fire-and-forget as `<op:deliver-only to args>`; else `<op:deliver
    /// to args false false>`.
    pub deliver_only: bool,
    /// `op:listen` with its third field, `wants-partial`.
    pub listen_wants_partial: bool,
    /// Plural GC labels (`op:gc-exports`, `op:gc-answers`); else singular.
    pub gc_plural: bool,
}

/// A reference descriptor, lifted out of a value. Named, as on the wire, from
/// the **receiver's** point of view.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Desc {
    /// `<desc:export N>`: something the receiver exported at N.
    Export(Position),
    /// `<desc:import-object N>`: an object the sender exports at N.
    ImportObject(Position),
    /// `<desc:import-promise N>`: a promise the sender exports at N.
    ImportPromise(Position),
    /// `<desc:answer N>`: the receiver's answer at the sender's question N.
    Answer(Position),
    /// `<desc:sig-envelope <desc:handoff-give …> sig>`: a third-party
    /// reference.
    Give(Box<SignedGive>),
    /// `<desc:sig-envelope <desc:handoff-receive …> sig>`: a redemption
    /// certificate (argument of `withdraw-gift`).
    Receive(Box<SignedReceive>),
}

impl Desc {
    /// The descriptor record.
    pub fn to_value(&self) -> Value {
        let pos = |label: &str, p: &Position| Value::record(label, vec![Value::int(p.0)]);
        match self {
            Desc::Export(p) => pos("desc:export", p),
            Desc::ImportObject(p) => pos("desc:import-object", p),
            Desc::ImportPromise(p) => pos("desc:import-promise", p),
            Desc::Answer(p) => pos("desc:answer", p),
            Desc::Give(g) => g.to_value(),
            Desc::Receive(r) => r.to_value(),
        }
    }

    /// If `v` is a descriptor record, parses it (`Ok(None)` if it is not a
    /// descriptor at all).
    ///
    /// # Errors
    /// [`WireError::Descriptor`] for a descriptor label with a bad body.
    pub fn parse<R>(v: &Value<R>) -> Result<Option<Desc>, WireError> {
        let Some(r) = v.as_record() else {
            return Ok(None);
        };
        let Some(label) = r.label.as_symbol() else {
            return Ok(None);
        };
        let pos_desc = |make: fn(Position) -> Desc, what: &'static str| match r.fields.as_slice() {
            [p] => position(p, what)
                .map(|p| Some(make(p)))
                .map_err(|_| WireError::Descriptor(what)),
            _ => Err(WireError::Descriptor(what)),
        };
        match label {
            "desc:export" => pos_desc(Desc::Export, "desc:export"),
            "desc:import-object" => pos_desc(Desc::ImportObject, "desc:import-object"),
            "desc:import-promise" => pos_desc(Desc::ImportPromise, "desc:import-promise"),
            "desc:answer" => pos_desc(Desc::Answer, "desc:answer"),
            "desc:sig-envelope" => match parse_envelope(v)? {
                Envelope::Give(g) => Ok(Some(Desc::Give(Box::new(g)))),
                Envelope::Receive(r) => Ok(Some(Desc::Receive(Box::new(r)))),
            },
            // A bare certificate outside an envelope is never valid.
            "desc:handoff-give" | "desc:handoff-receive" => {
                Err(WireError::Descriptor("unsigned certificate"))
            }
            _ => Ok(None),
        }
    }
}

fn position<R>(v: &Value<R>, what: &'static str) -> Result<Position, WireError> {
    v.as_i64()
        .and_then(|i| u64::try_from(i).ok())
        .map(Position)
        .ok_or(WireError::Field(what))
}

/// Lifts every descriptor record inside `v` into a [`Desc`] reference.
///
/// # Errors
/// A malformed descriptor anywhere inside.
pub fn lift(v: Value) -> Result<Value<Desc>, WireError> {
    v.try_lift_refs(&mut |v| Desc::parse(v))
}

/// Lowers a value with descriptors back into plain Syrup data.
pub fn lower(v: Value<Desc>) -> Value {
    match v.try_map_refs::<NoRef, std::convert::Infallible>(&mut |d| Ok(d.to_value())) {
        Ok(v) => v,
        Err(e) => match e {},
    }
}

/// `<op:start-session captp-version session-pubkey acceptable-location acceptable-location-sig>`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpStartSession {
    /// Must be `"1.0"`; checked by the session, not the parser.
    pub captp_version: String,
    /// The sender's per-session public key.
    pub session_pubkey: PublicKey,
    /// Where the sender can be reached.
    pub acceptable_location: PeerLocator,
    /// Signature over `<my-location acceptable-location>`.
    pub acceptable_location_sig: Signature,
}

/// `<op:deliver to-desc args answer-pos resolve-me-desc>`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpDeliver {
    /// `<desc:export N>` or `<desc:answer N>`.
    pub to: Desc,
    /// The argument list.
    pub args: Vec<Value<Desc>>,
    /// Where the receiver should host the answer, if anywhere.
    pub answer_pos: Option<Position>,
    /// A resolver the sender exports (`desc:import-object`/`-promise`).
    pub resolve_me: Option<Desc>,
}

/// `<op:deliver-only to-desc args>` (legacy fire-and-forget).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpDeliverOnly {
    /// `<desc:export N>` or `<desc:answer N>`.
    pub to: Desc,
    /// The argument list.
    pub args: Vec<Value<Desc>>,
}

/// `<op:listen to-desc listen-desc>` or legacy `<op:listen to-desc listen-desc wants-partial>`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpListen {
    /// The promise to listen to (`desc:export` or `desc:answer`).
    pub to: Desc,
    /// The resolver to notify (`desc:import-object`/`-promise`).
    pub listener: Desc,
    /// Legacy flag; `false` when the two-field form was used.
    pub wants_partial: bool,
}

/// What an [`OpGetOrIndex`] projects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Projection {
    /// `op:get`: a Struct field by name.
    Field(String),
    /// `op:index`: a List element (zero-based).
    Index(u64),
}

/// `<op:get receiver-desc field-name new-answer-pos>` / `<op:index receiver-desc index new-answer-pos>`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpGetOrIndex {
    /// `desc:answer`, `desc:export` or `desc:import-promise`.
    pub receiver: Desc,
    /// The field or index.
    pub projection: Projection,
    /// Where to host the projected promise.
    pub new_answer_pos: Position,
}

/// `<op:untag receiver-desc tag new-answer-pos>`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpUntag {
    /// `desc:answer`, `desc:export` or `desc:import-promise`.
    pub receiver: Desc,
    /// The expected tag.
    pub tag: String,
    /// Where to host the projected promise.
    pub new_answer_pos: Position,
}

/// `<op:gc-exports export-pos-list wire-delta-list>` (legacy label `op:gc-export`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpGcExports {
    /// (position, delta) pairs; positions are the receiver's exports.
    pub entries: Vec<(Position, u64)>,
}

/// `<op:gc-answers answer-pos-list>` (legacy label `op:gc-answer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpGcAnswers {
    /// Answer positions the questioner no longer needs.
    pub positions: Vec<Position>,
}

/// `<op:abort reason>`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpAbort {
    /// Free text.
    pub reason: String,
}

/// One CapTP operation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Op {
    /// `op:start-session`
    StartSession(OpStartSession),
    /// `op:deliver`
    Deliver(OpDeliver),
    /// `op:deliver-only`
    DeliverOnly(OpDeliverOnly),
    /// `op:listen`
    Listen(OpListen),
    /// `op:get` / `op:index`
    GetOrIndex(OpGetOrIndex),
    /// `op:untag`
    Untag(OpUntag),
    /// `op:gc-exports` / `op:gc-export`
    GcExports(OpGcExports),
    /// `op:gc-answers` / `op:gc-answer`
    GcAnswers(OpGcAnswers),
    /// `op:abort`
    Abort(OpAbort),
}

fn target<R>(v: &Value<R>, what: &'static str) -> Result<Desc, WireError> {
    match Desc::parse(v)? {
        Some(d @ (Desc::Export(_) | Desc::Answer(_))) => Ok(d),
        _ => Err(WireError::Descriptor(what)),
    }
}

fn receiver(v: &Value, what: &'static str) -> Result<Desc, WireError> {
    match Desc::parse(v)? {
        Some(d @ (Desc::Export(_) | Desc::Answer(_) | Desc::ImportPromise(_))) => Ok(d),
        _ => Err(WireError::Descriptor(what)),
    }
}

fn resolver<R>(v: &Value<R>, what: &'static str) -> Result<Desc, WireError> {
    match Desc::parse(v)? {
        Some(d @ (Desc::ImportObject(_) | Desc::ImportPromise(_))) => Ok(d),
        _ => Err(WireError::Descriptor(what)),
    }
}

fn args(v: Value) -> Result<Vec<Value<Desc>>, WireError> {
    match v {
        Value::List(l) => l.into_iter().map(lift).collect(),
        _ => Err(WireError::Field("args")),
    }
}

fn positions(v: &Value, what: &'static str) -> Result<Vec<Position>, WireError> {
    v.as_list()
        .ok_or(WireError::Field(what))?
        .iter()
        .map(|p| position(p, what))
        .collect()
}

impl Op {
    /// Parses one decoded top-level value. Every variant of every dialect is
    /// accepted.
    ///
    /// # Errors
    /// [`WireError`] on any deviation from the message's shape.
    pub fn parse(v: Value) -> Result<Op, WireError> {
        let Value::Record(r) = v else {
            return Err(WireError::NotAnOp);
        };
        let Record { label, fields } = *r;
        let Value::Symbol(label) = label else {
            return Err(WireError::NotAnOp);
        };
        let label = label.as_str();
        let arity = |n: usize, what: &'static str| {
            if fields.len() == n {
                Ok(())
            } else {
                Err(WireError::Arity(what))
            }
        };
        let mut it = fields.iter();
        // `next` never fails after an arity check; the fallback keeps this
        // path free of panics anyway.
        let mut next = || it.next().ok_or(WireError::Arity("message"));
        match label {
            "op:start-session" => {
                arity(4, "op:start-session")?;
                let version = next()?
                    .as_str()
                    .ok_or(WireError::Field("captp-version"))?
                    .to_owned();
                let key = PublicKey::from_value(next()?)
                    .map_err(|_| WireError::Field("session-pubkey"))?;
                let loc = PeerLocator::from_value(next()?)
                    .map_err(|_| WireError::Field("acceptable-location"))?;
                let sig = Signature::from_value(next()?)
                    .map_err(|_| WireError::Field("acceptable-location-sig"))?;
                Ok(Op::StartSession(OpStartSession {
                    captp_version: version,
                    session_pubkey: key,
                    acceptable_location: loc,
                    acceptable_location_sig: sig,
                }))
            }
            "op:deliver" => {
                arity(4, "op:deliver")?;
                let to = target(next()?, "to-desc")?;
                let a = args(next()?.clone())?;
                let answer_pos = match next()? {
                    Value::Bool(false) => None,
                    p => Some(position(p, "answer-pos")?),
                };
                let resolve_me = match next()? {
                    Value::Bool(false) => None,
                    d => Some(resolver(d, "resolve-me-desc")?),
                };
                Ok(Op::Deliver(OpDeliver {
                    to,
                    args: a,
                    answer_pos,
                    resolve_me,
                }))
            }
            "op:deliver-only" => {
                arity(2, "op:deliver-only")?;
                let to = target(next()?, "to-desc")?;
                let a = args(next()?.clone())?;
                Ok(Op::DeliverOnly(OpDeliverOnly { to, args: a }))
            }
            "op:listen" => {
                if fields.len() != 2 && fields.len() != 3 {
                    return Err(WireError::Arity("op:listen"));
                }
                let to = target(next()?, "to-desc")?;
                let listener = resolver(next()?, "listen-desc")?;
                let wants_partial = match it.next() {
                    None => false,
                    Some(b) => b.as_bool().ok_or(WireError::Field("wants-partial"))?,
                };
                Ok(Op::Listen(OpListen {
                    to,
                    listener,
                    wants_partial,
                }))
            }
            "op:get" | "op:index" => {
                arity(3, "op:get")?;
                let recv = receiver(next()?, "receiver-desc")?;
                let projection = if label == "op:get" {
                    Projection::Field(
                        next()?
                            .as_str()
                            .ok_or(WireError::Field("field-name"))?
                            .to_owned(),
                    )
                } else {
                    Projection::Index(position(next()?, "index")?.0)
                };
                let new_answer_pos = position(next()?, "new-answer-pos")?;
                Ok(Op::GetOrIndex(OpGetOrIndex {
                    receiver: recv,
                    projection,
                    new_answer_pos,
                }))
            }
            "op:untag" => {
                arity(3, "op:untag")?;
                let recv = receiver(next()?, "receiver-desc")?;
                let tag = next()?.as_str().ok_or(WireError::Field("tag"))?.to_owned();
                let new_answer_pos = position(next()?, "new-answer-pos")?;
                Ok(Op::Untag(OpUntag {
                    receiver: recv,
                    tag,
                    new_answer_pos,
                }))
            }
            "op:gc-exports" | "op:gc-export" => {
                arity(2, "op:gc-exports")?;
                let pos = positions(next()?, "export-pos-list")?;
                let deltas = positions(next()?, "wire-delta-list")?;
                if pos.len() != deltas.len() {
                    return Err(WireError::Field("wire-delta-list"));
                }
                Ok(Op::GcExports(OpGcExports {
                    entries: pos
                        .into_iter()
                        .zip(deltas.into_iter().map(|d| d.0))
                        .collect(),
                }))
            }
            "op:gc-answers" | "op:gc-answer" => {
                arity(1, "op:gc-answers")?;
                Ok(Op::GcAnswers(OpGcAnswers {
                    positions: positions(next()?, "answer-pos-list")?,
                }))
            }
            "op:abort" => {
                arity(1, "op:abort")?;
                let reason = next()?
                    .as_str()
                    .ok_or(WireError::Field("reason"))?
                    .to_owned();
                Ok(Op::Abort(OpAbort { reason }))
            }
            _ => Err(WireError::UnknownOp),
        }
    }

    /// Builds the record in `dialect`'s initial [`Forms`].
    pub fn to_value(&self, dialect: Dialect) -> Value {
        self.to_value_in(dialect.forms())
    }

    /// Builds the record in `forms`.
    ///
    /// Without `deliver_only` an [`OpDeliverOnly`] is written as
    /// `op:deliver … false false`; with it an [`OpDeliver`] with neither
    /// answer position nor resolver is written as `op:deliver-only` (the
    /// suite's main branch cannot decode the other form).
    pub fn to_value_in(&self, forms: Forms) -> Value {
        let pos = |p: &Position| Value::int(p.0);
        let list = |items: &[Value<Desc>]| lower(Value::List(items.to_vec()));
        match self {
            Op::StartSession(s) => Value::record(
                "op:start-session",
                vec![
                    Value::str(s.captp_version.as_str()),
                    s.session_pubkey.to_value(),
                    s.acceptable_location.to_value(),
                    s.acceptable_location_sig.to_value(),
                ],
            ),
            Op::Deliver(d) => {
                if forms.deliver_only && d.answer_pos.is_none() && d.resolve_me.is_none() {
                    return Value::record("op:deliver-only", vec![d.to.to_value(), list(&d.args)]);
                }
                Value::record(
                    "op:deliver",
                    vec![
                        d.to.to_value(),
                        list(&d.args),
                        d.answer_pos.as_ref().map_or(Value::Bool(false), pos),
                        d.resolve_me
                            .as_ref()
                            .map_or(Value::Bool(false), Desc::to_value),
                    ],
                )
            }
            Op::DeliverOnly(d) => match forms.deliver_only {
                true => Value::record("op:deliver-only", vec![d.to.to_value(), list(&d.args)]),
                false => Value::record(
                    "op:deliver",
                    vec![
                        d.to.to_value(),
                        list(&d.args),
                        Value::Bool(false),
                        Value::Bool(false),
                    ],
                ),
            },
            Op::Listen(l) => {
                let mut f = vec![l.to.to_value(), l.listener.to_value()];
                if forms.listen_wants_partial {
                    f.push(Value::Bool(l.wants_partial));
                }
                Value::record("op:listen", f)
            }
            Op::GetOrIndex(g) => {
                let (label, p) = match &g.projection {
                    Projection::Field(f) => ("op:get", Value::str(f.as_str())),
                    Projection::Index(i) => ("op:index", Value::int(*i)),
                };
                Value::record(
                    label,
                    vec![g.receiver.to_value(), p, pos(&g.new_answer_pos)],
                )
            }
            Op::Untag(u) => Value::record(
                "op:untag",
                vec![
                    u.receiver.to_value(),
                    Value::str(u.tag.as_str()),
                    pos(&u.new_answer_pos),
                ],
            ),
            Op::GcExports(g) => Value::record(
                if forms.gc_plural {
                    "op:gc-exports"
                } else {
                    "op:gc-export"
                },
                vec![
                    Value::List(g.entries.iter().map(|(p, _)| pos(p)).collect()),
                    Value::List(g.entries.iter().map(|(_, d)| Value::int(*d)).collect()),
                ],
            ),
            Op::GcAnswers(g) => Value::record(
                if forms.gc_plural {
                    "op:gc-answers"
                } else {
                    "op:gc-answer"
                },
                vec![Value::List(g.positions.iter().map(pos).collect())],
            ),
            Op::Abort(a) => Value::record("op:abort", vec![Value::str(a.reason.as_str())]),
        }
    }

    /// The operation's name, for diagnostics.
    pub fn name(&self) -> &'static str {
        match self {
            Op::StartSession(_) => "op:start-session",
            Op::Deliver(_) => "op:deliver",
            Op::DeliverOnly(_) => "op:deliver-only",
            Op::Listen(_) => "op:listen",
            Op::GetOrIndex(_) => "op:get",
            Op::Untag(_) => "op:untag",
            Op::GcExports(_) => "op:gc-exports",
            Op::GcAnswers(_) => "op:gc-answers",
            Op::Abort(_) => "op:abort",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::SessionKeys;
    use crate::locator::Hints;

    fn p(n: u64) -> Position {
        Position(n)
    }

    fn all_ops() -> Vec<Op> {
        let keys = SessionKeys::from_seed([3; 32]);
        let loc = PeerLocator::new("tcp-testing-only", "abc", Hints::Absent).unwrap();
        vec![
            Op::StartSession(OpStartSession {
                captp_version: "1.0".into(),
                session_pubkey: *keys.public(),
                acceptable_location_sig: keys.sign_location(&loc),
                acceptable_location: loc,
            }),
            Op::Deliver(OpDeliver {
                to: Desc::Export(p(0)),
                args: vec![
                    Value::sym("fetch"),
                    Value::Ref(Desc::ImportObject(p(4))),
                    Value::List(vec![
                        Value::Ref(Desc::Export(p(2))),
                        Value::Ref(Desc::Answer(p(1))),
                    ]),
                ],
                answer_pos: Some(p(3)),
                resolve_me: Some(Desc::ImportObject(p(5))),
            }),
            Op::Deliver(OpDeliver {
                to: Desc::Answer(p(3)),
                args: vec![],
                answer_pos: Some(p(4)),
                resolve_me: None,
            }),
            Op::Listen(OpListen {
                to: Desc::Answer(p(1)),
                listener: Desc::ImportPromise(p(9)),
                wants_partial: false,
            }),
            Op::GetOrIndex(OpGetOrIndex {
                receiver: Desc::Answer(p(1)),
                projection: Projection::Field("x".into()),
                new_answer_pos: p(2),
            }),
            Op::GetOrIndex(OpGetOrIndex {
                receiver: Desc::Export(p(1)),
                projection: Projection::Index(7),
                new_answer_pos: p(2),
            }),
            Op::Untag(OpUntag {
                receiver: Desc::ImportPromise(p(1)),
                tag: "t".into(),
                new_answer_pos: p(2),
            }),
            Op::GcExports(OpGcExports {
                entries: vec![(p(1), 2), (p(5), 1)],
            }),
            Op::GcAnswers(OpGcAnswers {
                positions: vec![p(0), p(3)],
            }),
            Op::Abort(OpAbort {
                reason: "bye".into(),
            }),
        ]
    }

    #[test]
    fn every_op_round_trips_in_both_dialects() {
        for dialect in [Dialect::Current, Dialect::TestSuite] {
            for op in all_ops() {
                let v = op.to_value(dialect);
                let bytes = pola_syrup::encode(&v);
                assert_eq!(Op::parse(v).unwrap(), op, "{dialect:?}");
                assert!(!bytes.is_empty());
            }
        }
    }

    #[test]
    fn dialect_labels_and_arities() {
        let only = Op::DeliverOnly(OpDeliverOnly {
            to: Desc::Export(p(1)),
            args: vec![Value::sym("ping")],
        });
        let cur = only.to_value(Dialect::Current);
        assert_eq!(
            cur.as_record_labelled("op:deliver").map(<[_]>::len),
            Some(4)
        );
        let suite = only.to_value(Dialect::TestSuite);
        assert_eq!(
            suite.as_record_labelled("op:deliver-only").map(<[_]>::len),
            Some(2)
        );
        // Both decode to a fire-and-forget send.
        assert!(matches!(Op::parse(suite).unwrap(), Op::DeliverOnly(_)));
        assert!(matches!(
            Op::parse(cur).unwrap(),
            Op::Deliver(OpDeliver {
                answer_pos: None,
                resolve_me: None,
                ..
            })
        ));
        let listen = Op::Listen(OpListen {
            to: Desc::Export(p(1)),
            listener: Desc::ImportObject(p(2)),
            wants_partial: true,
        });
        assert_eq!(
            listen
                .to_value(Dialect::Current)
                .as_record_labelled("op:listen")
                .map(<[_]>::len),
            Some(2)
        );
        assert_eq!(
            listen
                .to_value(Dialect::TestSuite)
                .as_record_labelled("op:listen")
                .map(<[_]>::len),
            Some(3)
        );
        let gc = Op::GcExports(OpGcExports {
            entries: vec![(p(1), 1)],
        });
        assert!(
            gc.to_value(Dialect::TestSuite)
                .as_record_labelled("op:gc-export")
                .is_some()
        );
        assert!(
            gc.to_value(Dialect::Current)
                .as_record_labelled("op:gc-exports")
                .is_some()
        );
        let gca = Op::GcAnswers(OpGcAnswers {
            positions: vec![p(1)],
        });
        assert!(
            gca.to_value(Dialect::TestSuite)
                .as_record_labelled("op:gc-answer")
                .is_some()
        );
        assert!(
            gca.to_value(Dialect::Current)
                .as_record_labelled("op:gc-answers")
                .is_some()
        );
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let exp = |n: i64| Value::record("desc:export", vec![Value::int(n)]);
        let bad: Vec<(Value, WireError)> = vec![
            (Value::Bool(true), WireError::NotAnOp),
            (Value::record("op:frobnicate", vec![]), WireError::UnknownOp),
            (
                Value::record("op:deliver", vec![exp(1)]),
                WireError::Arity("op:deliver"),
            ),
            (
                Value::record(
                    "op:deliver",
                    vec![exp(-1), Value::List(vec![]), false.into(), false.into()],
                ),
                WireError::Descriptor("desc:export"),
            ),
            (
                Value::record(
                    "op:deliver",
                    vec![
                        Value::record("desc:import-object", vec![Value::int(1i64)]),
                        Value::List(vec![]),
                        false.into(),
                        false.into(),
                    ],
                ),
                WireError::Descriptor("to-desc"),
            ),
            (
                Value::record(
                    "op:deliver",
                    vec![exp(1), Value::int(3i64), false.into(), false.into()],
                ),
                WireError::Field("args"),
            ),
            (
                Value::record(
                    "op:deliver",
                    vec![exp(1), Value::List(vec![]), true.into(), false.into()],
                ),
                WireError::Field("answer-pos"),
            ),
            (
                Value::record(
                    "op:deliver",
                    vec![exp(1), Value::List(vec![]), false.into(), exp(2)],
                ),
                WireError::Descriptor("resolve-me-desc"),
            ),
            (
                Value::record(
                    "op:deliver-only",
                    vec![
                        exp(1),
                        Value::List(vec![Value::record("desc:answer", vec![Value::str("x")])]),
                    ],
                ),
                WireError::Descriptor("desc:answer"),
            ),
            (
                Value::record(
                    "op:gc-exports",
                    vec![Value::List(vec![Value::int(1i64)]), Value::List(vec![])],
                ),
                WireError::Field("wire-delta-list"),
            ),
            (
                Value::record(
                    "op:gc-answer",
                    vec![Value::List(vec![Value::int(u64::MAX)])],
                ),
                WireError::Field("answer-pos-list"),
            ),
            (
                Value::record("op:abort", vec![Value::sym("x")]),
                WireError::Field("reason"),
            ),
            (
                Value::record(
                    "op:listen",
                    vec![
                        exp(1),
                        Value::record("desc:import-object", vec![Value::int(1i64)]),
                        Value::int(1i64),
                    ],
                ),
                WireError::Field("wants-partial"),
            ),
            (
                Value::record(
                    "op:deliver-only",
                    vec![
                        exp(1),
                        Value::List(vec![Value::record("desc:sig-envelope", vec![])]),
                    ],
                ),
                WireError::Arity("desc:sig-envelope"),
            ),
        ];
        for (v, want) in bad {
            assert_eq!(Op::parse(v.clone()), Err(want), "{v:?}");
        }
    }

    #[test]
    fn data_records_stay_data() {
        let v: Value = Value::List(vec![
            Value::null(),
            Value::error("e"),
            Value::tagged("t", Value::int(1i64)),
        ]);
        let lifted = lift(v.clone()).unwrap();
        assert!(!lifted.has_refs());
        assert_eq!(lower(lifted), v);
    }
}
