//! Persistent objects: kinds, portraits, and the stored form of an object.
//!
//! A persistent object is an instance of a **kind**: a name and a version,
//! and a *maker* that rebuilds a behaviour from a **portrait** (a [`Val`]
//! holding the object's data and the references it keeps). Its behaviour
//! says what it looks like with [`Object::portrait`]; objects that return
//! `None` (closures made with [`crate::from_fn`], objects with interior
//! mutability) are ephemeral. A persistent vat ([`crate::Vat::open`])
//! keeps a registry of kinds ([`Kinds`]); when a turn commits it writes the
//! portrait of every persistent object the turn created or changed, and
//! after a restart it rebuilds an object from its portrait the first time
//! the object is used (lazily).
//!
//! Invariants (upheld by this module and the vat):
//! - What a persistent object holds can be stored: a portrait may hold
//!   references to persistent objects of its own vat, far references that
//!   know how to be made again ([`crate::Remote::recipe`], e.g. one made
//!   from a sturdyref) and broken references, nothing else. A turn that
//!   would store anything else (an ephemeral object, a promise, an object
//!   of another vat, a far reference without a recipe) fails with an
//!   error saying so; nothing is silently lost.
//! - A persistent object never becomes ephemeral (that turn fails too).
//! - Only registered kinds are written, so whatever is written can be
//!   revived by the same build.
//! - Stored bytes are untrusted when read back: a record that does not
//!   decode, names an unknown kind, comes from a newer version of its kind,
//!   or that its maker refuses, makes that one object unusable (messages to
//!   it break with a reason); the rest of the vat revives.
//!
//! # The stored form
//!
//! A record is the canonical Syrup of `<pola:object 'KIND VERSION STATE>`,
//! at most [`MAX_RECORD_BYTES`]. In `STATE` a reference to object `N` of
//! the vat is `<pola:ref N>`, a far reference `<pola:far RECIPE>` (revived
//! by the enlivener given to [`Kinds::set_enlivener`], lazily: making the
//! reference does not connect) and a broken reference
//! `<pola:broken REASON>`; a data record that happens to use one of those
//! labels (or `pola:literal`) is written as `<pola:literal LABEL FIELD…>`,
//! so data can never be read back as a reference.

use std::collections::HashMap;
use std::sync::Arc;

use pola_syrup::{Limits, NoRef, Record, Value};

use crate::refs::{Ref, RefInner, Val, error};
use crate::turn::Object;

/// The largest stored record (a portrait that encodes larger fails its
/// turn; a larger stored one is refused at revival).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Object ids a stored reference may name (far beyond what a vat
/// allocates; a larger one in a store would exhaust the id space).
pub(crate) const MAX_OBJECT_ID: u64 = 1 << 48;

/// Deepest nesting of a portrait's state.
const MAX_DEPTH: usize = 60;

const OBJECT: &str = "pola:object";
const REF: &str = "pola:ref";
const BROKEN: &str = "pola:broken";
const FAR: &str = "pola:far";
const LITERAL: &str = "pola:literal";

/// What a persistent object looks like: its kind, the kind's version that
/// wrote it, and its state (data and references).
#[derive(Debug)]
pub struct Portrait {
    /// The kind's name (registered with [`Kinds::add`]).
    pub kind: &'static str,
    /// The version of the kind that made this portrait.
    pub version: u32,
    /// The object's data and the references it holds.
    pub state: Val,
}

impl Portrait {
    /// A portrait of kind `kind` (at `version`) with `state`.
    pub fn new(kind: &'static str, version: u32, state: Val) -> Self {
        Portrait {
            kind,
            version,
            state,
        }
    }
}

/// A maker: the stored version and state → a behaviour.
type Maker = dyn Fn(u32, Val) -> Result<Box<dyn Object>, Val> + Send + Sync;

struct KindEntry {
    version: u32,
    make: Arc<Maker>,
}

/// The registry of kinds a persistent vat can revive.
///
/// A maker receives the version that wrote the portrait and its state (with
/// references already revived) and returns the behaviour; to upgrade a
/// kind, register it with a higher version and let its maker migrate
/// older states. A maker is the place to give revived objects what is not
/// state (a handle to the host, say): it can capture it.
///
/// ```
/// use pola_vat::persist::{Kinds, Portrait};
/// use pola_vat::{Object, Outcome, Turn, Val, error};
///
/// struct Counter(i64);
/// impl Object for Counter {
///     fn receive(&self, cx: &mut Turn<'_>, m: &str, _a: Vec<Val>) -> Outcome {
///         match m {
///             "inc" => { cx.become_(Counter(self.0 + 1))?; Ok(Val::int(self.0 + 1)) }
///             _ => Err(error("no such method")),
///         }
///     }
///     fn portrait(&self) -> Option<Portrait> {
///         Some(Portrait::new("counter", 1, Val::int(self.0)))
///     }
/// }
/// let mut kinds = Kinds::new();
/// kinds.add("counter", 1, |_version, state| {
///     state.as_i64().map(Counter).ok_or_else(|| error("counter: not an integer"))
/// });
/// assert!(kinds.knows("counter"));
/// ```
#[derive(Clone, Default)]
pub struct Kinds {
    kinds: HashMap<String, Arc<KindEntry>>,
    enlivener: Option<Arc<Enlivener>>,
}

/// Makes a far reference again from its stored recipe (see
/// [`Kinds::set_enlivener`]).
type Enlivener = dyn Fn(&Val) -> Ref + Send + Sync;

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.kinds.keys().collect();
        names.sort();
        f.debug_struct("Kinds").field("kinds", &names).finish()
    }
}

impl Kinds {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) kind `name` at `version` with its maker.
    pub fn add<O: Object>(
        &mut self,
        name: &str,
        version: u32,
        make: impl Fn(u32, Val) -> Result<O, Val> + Send + Sync + 'static,
    ) -> &mut Self {
        let make: Arc<Maker> =
            Arc::new(move |v, state| make(v, state).map(|o| Box::new(o) as Box<dyn Object>));
        self.kinds
            .insert(name.to_owned(), Arc::new(KindEntry { version, make }));
        self
    }

    /// Sets how far references are made again after a restart: `enliven`
    /// gets the recipe a far reference gave when it was stored
    /// ([`crate::Remote::recipe`]) and returns the reference. It is called
    /// when the object holding it is revived, so it must not block or
    /// connect: return a reference that connects on first use (the OCapN
    /// peer's sturdy references do). Without an enlivener, stored far
    /// references revive broken.
    pub fn set_enlivener(
        &mut self,
        enliven: impl Fn(&Val) -> Ref + Send + Sync + 'static,
    ) -> &mut Self {
        self.enlivener = Some(Arc::new(enliven));
        self
    }

    /// Makes the far reference stored as `recipe`.
    pub(crate) fn enliven(&self, recipe: &Val) -> Ref {
        match &self.enlivener {
            Some(f) => f(recipe),
            None => dormant(
                recipe,
                "cannot reach a far reference: this vat has no enlivener",
            ),
        }
    }

    /// Whether kind `name` is registered.
    pub fn knows(&self, name: &str) -> bool {
        self.kinds.contains_key(name)
    }

    /// The registered version of kind `name`.
    pub fn version(&self, name: &str) -> Option<u32> {
        self.kinds.get(name).map(|k| k.version)
    }

    /// Rebuilds a behaviour of kind `name` from a state written by
    /// `version`.
    pub(crate) fn make(
        &self,
        name: &str,
        version: u32,
        state: Val,
    ) -> Result<Box<dyn Object>, Val> {
        let kind = self
            .kinds
            .get(name)
            .ok_or_else(|| error(format!("cannot revive object: unknown kind {name:?}")))?;
        if version > kind.version {
            return Err(error(format!(
                "cannot revive object: kind {name:?} was stored by version {version}, this build has version {}",
                kind.version
            )));
        }
        (kind.make)(version, state)
    }
}

/// A far reference that cannot be reached now (no enlivener, or no
/// network yet) but keeps its recipe: every message to it breaks with
/// `reason`, and an object that holds it and is stored again stores the
/// same recipe, so nothing is lost (an offline migration, say).
pub fn dormant(recipe: &Val, reason: &str) -> Ref {
    Ref::remote(Arc::new(Dormant {
        recipe: recipe.clone(),
        reason: error(reason),
    }))
}

struct Dormant {
    recipe: Val,
    reason: Val,
}

impl crate::Remote for Dormant {
    fn deliver(&self, _message: crate::Message, resolver: Option<crate::Resolver>) {
        if let Some(r) = resolver {
            r.break_now(self.reason.clone());
        }
    }

    fn recipe(&self) -> Option<Val> {
        Some(self.recipe.clone())
    }
}

/// A reference as it is stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum StoredRef {
    /// An object of the same vat.
    Local(u64),
    /// A far reference, made again from this recipe.
    Far(Value<NoRef>),
    /// A broken reference with this reason.
    Broken(Value<NoRef>),
}

/// Encodes a portrait, turning each reference into its stored form with
/// `store_ref`.
///
/// # Errors
/// What `store_ref` refuses, a state nested too deep, or a record larger
/// than [`MAX_RECORD_BYTES`].
pub(crate) fn encode_record(
    portrait: &Portrait,
    store_ref: &mut impl FnMut(&Ref) -> Result<StoredRef, Val>,
) -> Result<Vec<u8>, Val> {
    let bytes = if is_plain(&portrait.state, 0) {
        // Fast path (most portraits): no reference and no record to
        // escape, so the state is written as it is.
        let mut out = Vec::with_capacity(32 + portrait.kind.len());
        out.push(b'<');
        pola_syrup::push_decimal(OBJECT.len() as u64, &mut out);
        out.push(b'\'');
        out.extend_from_slice(OBJECT.as_bytes());
        pola_syrup::push_decimal(portrait.kind.len() as u64, &mut out);
        out.push(b'\'');
        out.extend_from_slice(portrait.kind.as_bytes());
        pola_syrup::push_decimal(u64::from(portrait.version), &mut out);
        out.push(b'+');
        pola_syrup::encode_with_refs(&portrait.state, &mut out, &mut |_, _| {});
        out.push(b'>');
        out
    } else {
        let state = escape(&portrait.state, store_ref, 0)?;
        let record = Value::record(
            OBJECT,
            vec![
                Value::sym(portrait.kind),
                Value::int(i64::from(portrait.version)),
                state,
            ],
        );
        pola_syrup::encode(&record)
    };
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(error(format!(
            "cannot persist a {}: its portrait is {} bytes (at most {MAX_RECORD_BYTES})",
            portrait.kind,
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Whether `v` holds neither references nor records (nothing to escape).
fn is_plain(v: &Val, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::Ref(_) | Value::Record(_) => false,
        Value::List(l) => l.iter().all(|x| is_plain(x, depth + 1)),
        Value::Set(s) => s.iter().all(|x| is_plain(x, depth + 1)),
        Value::Dict(m) => m
            .iter()
            .all(|(k, x)| is_plain(k, depth + 1) && is_plain(x, depth + 1)),
        _ => true,
    }
}

fn escape(
    v: &Val,
    store_ref: &mut impl FnMut(&Ref) -> Result<StoredRef, Val>,
    depth: usize,
) -> Result<Value<NoRef>, Val> {
    if depth > MAX_DEPTH {
        return Err(error("cannot persist: portrait nested too deep"));
    }
    let d = depth + 1;
    Ok(match v {
        Value::Ref(r) => match store_ref(r)? {
            StoredRef::Local(id) => Value::record(REF, vec![Value::int(id)]),
            StoredRef::Far(recipe) => Value::record(FAR, vec![recipe]),
            StoredRef::Broken(reason) => Value::record(BROKEN, vec![reason]),
        },
        Value::List(l) => Value::List(
            l.iter()
                .map(|x| escape(x, store_ref, d))
                .collect::<Result<_, _>>()?,
        ),
        Value::Dict(m) => {
            let mut out = std::collections::BTreeMap::new();
            for (k, x) in m {
                out.insert(escape(k, store_ref, d)?, escape(x, store_ref, d)?);
            }
            Value::Dict(out)
        }
        Value::Set(s) => Value::Set(
            s.iter()
                .map(|x| escape(x, store_ref, d))
                .collect::<Result<_, _>>()?,
        ),
        Value::Record(r) => {
            let label = escape(&r.label, store_ref, d)?;
            let mut fields = r
                .fields
                .iter()
                .map(|x| escape(x, store_ref, d))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(&label, Value::Symbol(s) if s == REF || s == BROKEN || s == FAR || s == LITERAL)
            {
                fields.insert(0, label);
                Value::record(LITERAL, fields)
            } else {
                Value::Record(Box::new(Record { label, fields }))
            }
        }
        Value::Bool(b) => Value::Bool(*b),
        Value::Int(i) => Value::Int(i.clone()),
        Value::Float32(x) => Value::Float32(*x),
        Value::Float64(x) => Value::Float64(*x),
        Value::Bytes(b) => Value::Bytes(b.clone()),
        Value::String(s) => Value::String(s.clone()),
        Value::Symbol(s) => Value::Symbol(s.clone()),
    })
}

/// A decoded record: kind, version and the state with stored references.
pub(crate) struct Decoded {
    pub(crate) kind: String,
    pub(crate) version: u32,
    pub(crate) state: Value<NoRef>,
}

/// Decodes a stored record (untrusted bytes).
///
/// # Errors
/// Bytes that are not a record of this form, or exceed the limits.
pub(crate) fn decode_record(bytes: &[u8]) -> Result<Decoded, Val> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(error("cannot revive object: stored record too large"));
    }
    let mut limits = Limits::default();
    limits.max_value_bytes = MAX_RECORD_BYTES;
    limits.max_depth = MAX_DEPTH + 4;
    let v = pola_syrup::decode_with(bytes, &limits).map_err(|e| {
        error(format!(
            "cannot revive object: stored record is corrupt ({e})"
        ))
    })?;
    let bad = || error("cannot revive object: stored record is not an object");
    let fields = v.as_record_labelled(OBJECT).ok_or_else(bad)?;
    let [kind, version, state] = fields else {
        return Err(bad());
    };
    let kind = kind.as_symbol().ok_or_else(bad)?.to_owned();
    let version = version
        .as_i64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(bad)?;
    Ok(Decoded {
        kind,
        version,
        state: state.clone(),
    })
}

/// The ids of the vat's objects a stored state refers to.
pub(crate) fn refs_of(v: &Value<NoRef>, out: &mut Vec<u64>) {
    match v {
        Value::Record(r) => match &r.label {
            Value::Symbol(s) if s == REF => {
                if let [id] = r.fields.as_slice()
                    && let Some(id) = id.as_i64().and_then(|i| u64::try_from(i).ok())
                {
                    out.push(id);
                }
            }
            Value::Symbol(s) if s == BROKEN || s == FAR => {}
            Value::Symbol(s) if s == LITERAL => {
                r.fields.iter().skip(1).for_each(|f| refs_of(f, out));
            }
            label => {
                refs_of(label, out);
                r.fields.iter().for_each(|f| refs_of(f, out));
            }
        },
        Value::List(l) => l.iter().for_each(|x| refs_of(x, out)),
        Value::Set(s) => s.iter().for_each(|x| refs_of(x, out)),
        Value::Dict(m) => m.iter().for_each(|(k, x)| {
            refs_of(k, out);
            refs_of(x, out);
        }),
        _ => {}
    }
}

/// Rebuilds a stored state with live references (`local(id)` makes the ref
/// to object `id` of the vat, `far(recipe)` a far reference).
///
/// # Errors
/// A malformed stored reference.
pub(crate) fn unescape(
    v: Value<NoRef>,
    local: &mut impl FnMut(u64) -> Ref,
    far: &mut impl FnMut(&Val) -> Ref,
) -> Result<Val, Val> {
    let bad = || error("cannot revive object: malformed stored reference");
    Ok(match v {
        Value::Record(r) => {
            let Record { label, fields } = *r;
            match &label {
                Value::Symbol(s) if s == REF => {
                    let [id] = fields.as_slice() else {
                        return Err(bad());
                    };
                    let id = id
                        .as_i64()
                        .and_then(|i| u64::try_from(i).ok())
                        .filter(|i| *i < MAX_OBJECT_ID)
                        .ok_or_else(bad)?;
                    Value::Ref(local(id))
                }
                Value::Symbol(s) if s == FAR => {
                    let [recipe] = fields.as_slice() else {
                        return Err(bad());
                    };
                    Value::Ref(far(&recipe.clone().with_refs()))
                }
                Value::Symbol(s) if s == BROKEN => {
                    let [reason] = fields.as_slice() else {
                        return Err(bad());
                    };
                    Value::Ref(Ref(RefInner::Broken(Arc::new(reason.clone().with_refs()))))
                }
                Value::Symbol(s) if s == LITERAL => {
                    let mut fields = fields.into_iter();
                    let label = fields.next().ok_or_else(bad)?;
                    Value::Record(Box::new(Record {
                        label: unescape(label, local, far)?,
                        fields: fields
                            .map(|f| unescape(f, local, far))
                            .collect::<Result<_, _>>()?,
                    }))
                }
                _ => Value::Record(Box::new(Record {
                    label: unescape(label, local, far)?,
                    fields: fields
                        .into_iter()
                        .map(|f| unescape(f, local, far))
                        .collect::<Result<_, _>>()?,
                })),
            }
        }
        Value::List(l) => Value::List(
            l.into_iter()
                .map(|x| unescape(x, local, far))
                .collect::<Result<_, _>>()?,
        ),
        Value::Dict(m) => {
            let mut out = std::collections::BTreeMap::new();
            for (k, x) in m {
                out.insert(unescape(k, local, far)?, unescape(x, local, far)?);
            }
            Value::Dict(out)
        }
        Value::Set(s) => Value::Set(
            s.into_iter()
                .map(|x| unescape(x, local, far))
                .collect::<Result<_, _>>()?,
        ),
        leaf => leaf.with_refs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_that_looks_like_a_reference_stays_data() {
        let tricky: Val = Value::List(vec![
            Value::record(REF, vec![Value::int(7i64)]),
            Value::record(FAR, vec![Value::str("ocapn://x/s/y")]),
            Value::record(LITERAL, vec![Value::record(BROKEN, vec![])]),
            Value::Ref(Ref::broken(error("gone"))),
        ]);
        let p = Portrait::new("k", 1, tricky.clone());
        let bytes = encode_record(&p, &mut |r| match r.broken_reason() {
            Some(e) => Ok(StoredRef::Broken(
                e.clone()
                    .try_map_refs::<NoRef, ()>(&mut |_| Err(()))
                    .unwrap_or_else(|()| Value::null()),
            )),
            None => Err(error("no")),
        })
        .unwrap_or_default();
        let d = decode_record(&bytes).ok().map(|d| d.state);
        let back = d.and_then(|s| {
            unescape(s, &mut |_| Ref::broken(error("forged")), &mut |_| {
                Ref::broken(error("forged"))
            })
            .ok()
        });
        // Equal, and in particular no forged local reference appeared.
        assert_eq!(back.as_ref(), Some(&tricky));
    }

    #[test]
    fn the_fast_path_writes_the_same_bytes() {
        let state: Val = Value::List(vec![Value::int(-5i64), Value::str("x"), Value::sym("y")]);
        let p = Portrait::new("kind.name", 7, state.clone());
        let fast = encode_record(&p, &mut |_| Err(error("no refs"))).unwrap_or_default();
        let slow = pola_syrup::encode(&Value::record(
            OBJECT,
            vec![
                Value::sym("kind.name"),
                Value::int(7i64),
                state
                    .try_map_refs::<NoRef, ()>(&mut |_| Err(()))
                    .unwrap_or_else(|()| Value::null()),
            ],
        ));
        assert_eq!(fast, slow);
    }

    #[test]
    fn garbage_is_refused() {
        for bytes in [
            &b""[..],
            b"t",
            b"<11'pola:object1'k>",
            b"<11'pola:object1'k1-t>",
        ] {
            assert!(decode_record(bytes).is_err(), "{bytes:?}");
        }
    }
}
