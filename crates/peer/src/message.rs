//! How CapTP argument lists map onto vat messages.
//!
//! On the wire a delivery carries one list of arguments; by convention a
//! method call starts with the method's symbol, `['method arg …]`, but any
//! list is legal (the OCapN test suite calls its echo object with
//! `["foo" 1 …]` and its car factory builder with `[]`). A vat
//! [`Message`] has a method name and arguments, so:
//!
//! - `['m a b]` ↔ `Message { method: "m", args: [a, b] }`;
//! - a list that is empty or does not start with a symbol ↔
//!   `Message { method: "", args: <the whole list> }`.
//!
//! The empty method name therefore means "no method symbol". (An empty
//! *symbol* as first argument maps to the same message; nothing uses one.)

use pola_syrup::Value;
use pola_vat::{Message, Val};

/// The vat message for a CapTP argument list.
pub fn message_from_args(mut args: Vec<Val>) -> Message {
    match args.first() {
        Some(Value::Symbol(_)) => {
            let method = match args.remove(0) {
                Value::Symbol(s) => s,
                _ => String::new(),
            };
            Message::new(method, args)
        }
        _ => Message::new("", args),
    }
}

/// The CapTP argument list for a vat message (inverse of
/// [`message_from_args`]).
pub fn args_from_message(msg: Message) -> Vec<Val> {
    if msg.method.is_empty() {
        return msg.args;
    }
    let mut out = Vec::with_capacity(msg.args.len().saturating_add(1));
    out.push(Value::Symbol(msg.method.into_owned()));
    out.extend(msg.args);
    out
}

/// The full argument list an object was called with, given the method and
/// arguments its `receive` got (for objects that treat arguments as data,
/// such as an echo).
pub fn full_args(method: &str, args: Vec<Val>) -> Vec<Val> {
    args_from_message(Message::new(method.to_owned(), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cases: Vec<Vec<Val>> = vec![
            vec![],
            vec![Value::sym("fetch"), Value::bytes(&b"x"[..])],
            vec![Value::str("foo"), Value::int(1i64), Value::Bool(false)],
            vec![Value::List(vec![Value::sym("red"), Value::sym("zoom")])],
            vec![Value::sym("only")],
        ];
        for args in cases {
            let m = message_from_args(args.clone());
            assert_eq!(args_from_message(m), args);
        }
    }

    #[test]
    fn method_symbol_splits_off() {
        let m = message_from_args(vec![Value::sym("fulfill"), Value::sym("ok")]);
        assert_eq!(m.method, "fulfill");
        assert_eq!(m.args, vec![Value::sym("ok")]);
        let m = message_from_args(vec![Value::str("Hello")]);
        assert_eq!(m.method, "");
        assert_eq!(full_args(&m.method, m.args), vec![Value::str("Hello")]);
    }
}
