//! A readable text form of [`Value`], for people: what `Display` prints and
//! what [`parse`] reads back.
//!
//! It follows OCapN's abstract notation (`Notation.md`) where that covers a
//! type, and extends it so that every Syrup value has exactly one printed
//! form and `parse(&v.to_string()) == Ok(v)` for every plain value:
//!
//! | value | text | examples |
//! | --- | --- | --- |
//! | boolean | `t`, `f` | `t` |
//! | integer | optional sign, decimal digits, no leading zeros | `0`, `42`, `-7` |
//! | double | decimal with `.` or an exponent; `inf`, `-inf`, `nan` | `1.5`, `-0.0`, `1e300` |
//! | double, other NaN bits | `f64:0x` and 16 hex digits (the IEEE bits) | `f64:0x7ff0000000000001` |
//! | single float | `f32:0x` and 8 hex digits (the IEEE bits) | `f32:0x3fc00000` |
//! | string | `"…"` with escapes `\" \\ \n \r \t \u{hex}` (every [hidden] character is escaped) | `"björn"` |
//! | symbol | `'` and a bare name, or `'` and a quoted string | `'fetch`, `'"two words"` |
//! | byte string | `:` and hex digits (even count) | `:636174`, `:` (empty) |
//! | list | `[` values `]` | `[1 2 3]` |
//! | dictionary | `{` key value … `}` | `{'a 1 'b 2}` |
//! | set | `#{` values `}` | `#{1 2 3}` |
//! | record | `<` label values `>`; a bare-name label is a symbol | `<op:deliver-only <desc:export 5> ['ping]>` |
//!
//! Tokens are separated by ASCII space, tab, CR or LF; a bare token (number,
//! name, hex) ends at whitespace or at one of `[ ] { } < > "`. A bare name
//! uses ASCII letters, digits and `- _ : ? ! * + / . = @ % & ~ ^ $ |`; any
//! other symbol prints in its quoted form. `nan` means the canonical NaN
//! `0x7ff8000000000000`. The words `t`, `f`, `inf`, `nan` and tokens
//! starting `f32:`/`f64:` always mean the values above, so a record labelled
//! with the symbol `t` prints as `<'t>`.
//!
//! Dictionaries and sets print in [`Value`]'s own order, not in canonical
//! byte order (the wire order); the text form is for reading, the wire form
//! is [`encode`](crate::encode).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use bytes::Bytes;
use num_bigint::BigInt;

use crate::decode::Limits;
use crate::value::{Int, NoRef, Record, Value};

/// The canonical NaN's bits, printed `nan`.
const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_:?!*+/.=@%&~^$|".contains(c)
}

/// Bare words that mean something other than a symbol.
fn is_reserved(s: &str) -> bool {
    matches!(s, "t" | "f" | "inf" | "nan") || s.starts_with("f32:") || s.starts_with("f64:")
}

/// Whether `c` would act on a terminal or a reader's eye instead of being
/// seen as itself: one of [`is_control`], [`is_bidi`], [`is_invisible`] or
/// [`is_private_or_nonchar`], or a zero-width joiner ([`is_joiner`]). The text form writes these as `\u{…}`
/// escapes, so a value a peer or a module chose can be printed to a
/// terminal as it is; the desk's text rules refuse them in names.
pub fn hidden(c: char) -> bool {
    is_control(c) || is_bidi(c) || is_invisible(c) || is_joiner(c) || is_private_or_nonchar(c)
}

/// A zero-width joiner or non-joiner (U+200D, U+200C): invisible, but
/// part of some emoji and scripts between two visible characters.
pub fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

/// A control character, or a line or paragraph separator.
pub fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{0085}')
}

/// A bidirectional control character (it can reorder the text around it).
pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A character with no glyph of its own: zero-width and formatting
/// characters (not the joiners, [`is_joiner`]), tag characters,
/// invisible fillers. Variation selectors are not: they change the glyph
/// before them (emoji presentation).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{0600}'..='\u{0605}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'
            | '\u{0891}'
            | '\u{08E2}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{034F}'
            | '\u{17B4}'
            | '\u{17B5}'
    )
}

/// A private-use character or a noncharacter.
pub fn is_private_or_nonchar(c: char) -> bool {
    let u = u32::from(c);
    matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{10FFFF}')
        || (0xFDD0..=0xFDEF).contains(&u)
        || (u & 0xFFFE) == 0xFFFE
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if hidden(c) => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn write_symbol(f: &mut fmt::Formatter<'_>, s: &str, bare: bool) -> fmt::Result {
    let plain = !s.is_empty() && s.chars().all(is_name_char);
    if bare && plain && s.starts_with(|c: char| c.is_ascii_alphabetic()) && !is_reserved(s) {
        f.write_str(s)
    } else if plain {
        write!(f, "'{s}")
    } else {
        f.write_char('\'')?;
        write_quoted(f, s)
    }
}

fn write_value<R: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    v: &Value<R>,
    label: bool,
) -> fmt::Result {
    match v {
        Value::Bool(true) => f.write_str("t"),
        Value::Bool(false) => f.write_str("f"),
        Value::Int(i) => write!(f, "{i}"),
        Value::Float64(bits) => {
            let x = f64::from_bits(*bits);
            if x.is_nan() {
                if *bits == CANONICAL_NAN {
                    f.write_str("nan")
                } else {
                    write!(f, "f64:0x{bits:016x}")
                }
            } else if x.is_infinite() {
                f.write_str(if x > 0.0 { "inf" } else { "-inf" })
            } else {
                // Debug prints the shortest text that reads back to the same
                // bits, always with a `.` or an exponent.
                write!(f, "{x:?}")
            }
        }
        Value::Float32(bits) => write!(f, "f32:0x{bits:08x}"),
        Value::String(s) => write_quoted(f, s),
        Value::Symbol(s) => write_symbol(f, s, label),
        Value::Bytes(b) => {
            f.write_char(':')?;
            for byte in b.iter() {
                write!(f, "{byte:02x}")?;
            }
            Ok(())
        }
        Value::List(items) => {
            f.write_char('[')?;
            write_seq(f, items.iter())?;
            f.write_char(']')
        }
        Value::Set(items) => {
            f.write_str("#{")?;
            write_seq(f, items.iter())?;
            f.write_char('}')
        }
        Value::Dict(map) => {
            f.write_char('{')?;
            write_seq(f, map.iter().flat_map(|(k, v)| [k, v]))?;
            f.write_char('}')
        }
        Value::Record(r) => {
            f.write_char('<')?;
            write_value(f, &r.label, true)?;
            for field in &r.fields {
                f.write_char(' ')?;
                write_value(f, field, false)?;
            }
            f.write_char('>')
        }
        Value::Ref(r) => write!(f, "{r}"),
    }
}

fn write_seq<'a, R: fmt::Display + 'a>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = &'a Value<R>>,
) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_char(' ')?;
        }
        write_value(f, item, false)?;
    }
    Ok(())
}

/// Prints the value in the text form described in the [`text`](crate::text)
/// module; [`parse`] reads plain values back.
///
/// A reference prints as its own `Display` form, which [`parse`] does not
/// read (plain data has none).
///
/// ```
/// use pola_syrup::Value;
/// let v: Value = Value::record("op:deliver-only", vec![Value::int(5i64), Value::sym("ping")]);
/// assert_eq!(v.to_string(), "<op:deliver-only 5 'ping>");
/// let r: Value<&str> = Value::List(vec![Value::Ref("@alice"), Value::Bool(true)]);
/// assert_eq!(r.to_string(), "[@alice t]");
/// ```
impl<R: fmt::Display> fmt::Display for Value<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_value(f, self, false)
    }
}

/// Never called: there is no `NoRef` value. Lets plain values use the
/// generic `Display` for [`Value`].
impl fmt::Display for NoRef {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

/// Parses the text form; the same as [`parse`].
///
/// ```
/// use pola_syrup::Value;
/// let v: Value = "['ping 1 t]".parse().unwrap();
/// assert_eq!(v, Value::List(vec![Value::sym("ping"), Value::int(1i64), Value::Bool(true)]));
/// ```
impl std::str::FromStr for Value<NoRef> {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Self, TextError> {
        parse(s)
    }
}

/// A text-form parse failure: what went wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("syrup text: {kind} at byte {offset}")]
pub struct TextError {
    /// Byte offset in the input text.
    pub offset: usize,
    /// What went wrong.
    pub kind: TextErrorKind,
}

/// What went wrong while parsing the text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextErrorKind {
    /// The text ends inside a value.
    #[error("unexpected end of text")]
    UnexpectedEnd,
    /// A character that cannot start or continue a value here.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// A malformed number (including leading zeros).
    #[error("malformed number")]
    BadNumber,
    /// A malformed escape in a quoted string.
    #[error("malformed escape")]
    BadEscape,
    /// Malformed hex in a byte string or raw float.
    #[error("malformed hex")]
    BadHex,
    /// A bare word that is not `t`, `f`, `inf`, `nan` or a record label;
    /// symbols need a leading `'`.
    #[error("bare word (symbols are written 'name)")]
    BareWord,
    /// `#t` or `#f`: booleans are written `t` and `f` (one syntax).
    #[error("booleans are written t and f, not #t and #f")]
    HashBoolean,
    /// A dictionary key given twice.
    #[error("duplicate dictionary key")]
    DuplicateKey,
    /// A set member given twice.
    #[error("duplicate set member")]
    DuplicateMember,
    /// A dictionary that closes after a key with no value.
    #[error("dictionary key without a value")]
    MissingDictValue,
    /// `<>`: a record needs a label.
    #[error("record without a label")]
    MissingRecordLabel,
    /// Nesting deeper than the default [`Limits::max_depth`].
    #[error("nesting exceeds the depth limit")]
    DepthLimit,
    /// An integer longer than the default [`Limits::max_int_digits`].
    #[error("integer exceeds the digit limit")]
    IntegerDigitsLimit,
    /// Text after the one value.
    #[error("trailing text after the value")]
    TrailingInput,
}

/// Parses one value in the text form (see the [`text`](crate::text) module),
/// surrounded by optional whitespace.
///
/// # Errors
/// A [`TextError`] with the byte offset of the problem.
///
/// ```
/// use pola_syrup::{encode, text};
/// let v = text::parse("<op:deliver-only <desc:export 5> ['ping 1.5 :00ff]>").unwrap();
/// assert_eq!(encode(&v), b"<15'op:deliver-only<11'desc:export5+>[4'pingD\x3f\xf8\0\0\0\0\0\02:\x00\xff]>");
/// ```
pub fn parse(text: &str) -> Result<Value<NoRef>, TextError> {
    let limits = Limits::default();
    let mut p = Parser {
        text,
        pos: 0,
        max_depth: limits.max_depth,
        max_digits: limits.max_int_digits,
    };
    let v = p.value(0, false)?;
    p.skip_ws();
    if p.pos != text.len() {
        return p.fail(TextErrorKind::TrailingInput);
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    max_depth: usize,
    max_digits: usize,
}

fn is_delimiter(c: char) -> bool {
    matches!(c, '[' | ']' | '{' | '}' | '<' | '>' | '"') || c.is_ascii_whitespace()
}

impl<'a> Parser<'a> {
    fn fail<T>(&self, kind: TextErrorKind) -> Result<T, TextError> {
        Err(TextError {
            offset: self.pos,
            kind,
        })
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.pos += rest.len() - trimmed.len();
    }

    /// Takes a bare token: everything up to whitespace or a delimiter.
    fn bare(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest.find(is_delimiter).unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    fn value(&mut self, depth: usize, label: bool) -> Result<Value<NoRef>, TextError> {
        self.skip_ws();
        let start = self.pos;
        let Some(c) = self.peek() else {
            return self.fail(TextErrorKind::UnexpectedEnd);
        };
        match c {
            '[' | '{' | '<' | '#' => {
                if depth >= self.max_depth {
                    return self.fail(TextErrorKind::DepthLimit);
                }
                self.container(c, depth + 1)
            }
            '"' => Ok(Value::String(self.quoted()?)),
            '\'' => {
                self.pos += 1;
                if self.peek() == Some('"') {
                    return Ok(Value::Symbol(self.quoted()?));
                }
                let name = self.bare();
                if name.is_empty() {
                    return self.fail(TextErrorKind::UnexpectedEnd);
                }
                Ok(Value::Symbol(name.to_owned()))
            }
            ':' => {
                self.pos += 1;
                let hex = self.bare();
                match decode_hex(hex) {
                    Some(b) => Ok(Value::Bytes(Bytes::from(b))),
                    None => Err(TextError {
                        offset: start,
                        kind: TextErrorKind::BadHex,
                    }),
                }
            }
            ']' | '}' | '>' => self.fail(TextErrorKind::UnexpectedChar(c)),
            _ => {
                let word = self.bare();
                let at = |kind| TextError {
                    offset: start,
                    kind,
                };
                if word.is_empty() {
                    return self.fail(TextErrorKind::UnexpectedChar(c));
                }
                match word {
                    "t" => return Ok(Value::Bool(true)),
                    "f" => return Ok(Value::Bool(false)),
                    "nan" => return Ok(Value::Float64(CANONICAL_NAN)),
                    "inf" | "+inf" => return Ok(Value::f64(f64::INFINITY)),
                    "-inf" => return Ok(Value::f64(f64::NEG_INFINITY)),
                    _ => {}
                }
                if let Some(hex) = word.strip_prefix("f64:0x") {
                    return match hex_bits(hex, 16) {
                        Some(bits) => Ok(Value::Float64(bits)),
                        None => Err(at(TextErrorKind::BadHex)),
                    };
                }
                if let Some(hex) = word.strip_prefix("f32:0x") {
                    return match hex_bits(hex, 8).and_then(|b| u32::try_from(b).ok()) {
                        Some(bits) => Ok(Value::Float32(bits)),
                        None => Err(at(TextErrorKind::BadHex)),
                    };
                }
                if word.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
                    return self.number(word, start);
                }
                if label && word.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    return Ok(Value::Symbol(word.to_owned()));
                }
                Err(at(TextErrorKind::BareWord))
            }
        }
    }

    fn number(&self, word: &str, start: usize) -> Result<Value<NoRef>, TextError> {
        let bad = |kind| {
            Err(TextError {
                offset: start,
                kind,
            })
        };
        if !word
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
        {
            return bad(TextErrorKind::BadNumber);
        }
        if word.contains(['.', 'e', 'E']) {
            // Needs a digit somewhere, and Rust's grammar otherwise.
            if !word.contains(|c: char| c.is_ascii_digit()) {
                return bad(TextErrorKind::BadNumber);
            }
            return match word.parse::<f64>() {
                Ok(x) => Ok(Value::f64(x)),
                Err(_) => bad(TextErrorKind::BadNumber),
            };
        }
        let (negative, digits) = match word.as_bytes().first() {
            Some(b'-') => (true, word.get(1..).unwrap_or("")),
            Some(b'+') => (false, word.get(1..).unwrap_or("")),
            _ => (false, word),
        };
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return bad(TextErrorKind::BadNumber);
        }
        if digits.len() > self.max_digits {
            return bad(TextErrorKind::IntegerDigitsLimit);
        }
        let Some(magnitude) = BigInt::parse_bytes(digits.as_bytes(), 10) else {
            return bad(TextErrorKind::BadNumber);
        };
        Ok(Value::Int(Int::from_big(if negative {
            -magnitude
        } else {
            magnitude
        })))
    }

    /// A quoted string starting at the current `"`.
    fn quoted(&mut self) -> Result<String, TextError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                return self.fail(TextErrorKind::UnexpectedEnd);
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    let esc_at = self.pos;
                    self.pos += 1;
                    let bad = TextError {
                        offset: esc_at,
                        kind: TextErrorKind::BadEscape,
                    };
                    let Some(e) = self.peek() else {
                        return self.fail(TextErrorKind::UnexpectedEnd);
                    };
                    self.pos += e.len_utf8();
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let rest = self.rest();
                            let Some(body) = rest.strip_prefix('{') else {
                                return Err(bad);
                            };
                            let Some(close) = body.find('}') else {
                                return Err(bad);
                            };
                            let hex = body.get(..close).unwrap_or("");
                            if hex.is_empty() || hex.len() > 6 {
                                return Err(bad);
                            }
                            let ch = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                            let Some(ch) = ch else { return Err(bad) };
                            out.push(ch);
                            self.pos += close + 2;
                        }
                        _ => return Err(bad),
                    }
                }
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// A container whose opening character `open` is at the current
    /// position; `depth` counts it.
    fn container(&mut self, open: char, depth: usize) -> Result<Value<NoRef>, TextError> {
        let start = self.pos;
        self.pos += 1;
        let close = match open {
            '[' => ']',
            '<' => '>',
            '{' => '}',
            _ => {
                // `#{`
                match self.peek() {
                    Some('{') => {}
                    // Scheme's booleans: say how they are written here.
                    Some('t' | 'f') => return self.fail(TextErrorKind::HashBoolean),
                    Some(c) => return self.fail(TextErrorKind::UnexpectedChar(c)),
                    None => return self.fail(TextErrorKind::UnexpectedEnd),
                }
                self.pos += 1;
                '}'
            }
        };
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => return self.fail(TextErrorKind::UnexpectedEnd),
                Some(c) if c == close => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {
                    let label = open == '<' && items.is_empty();
                    items.push((self.pos, self.value(depth, label)?));
                }
            }
        }
        let end = self.pos;
        let at = |offset, kind| Err(TextError { offset, kind });
        match open {
            '[' => Ok(Value::List(items.into_iter().map(|(_, v)| v).collect())),
            '<' => {
                let mut it = items.into_iter().map(|(_, v)| v);
                let Some(label) = it.next() else {
                    return at(start, TextErrorKind::MissingRecordLabel);
                };
                Ok(Value::Record(Box::new(Record {
                    label,
                    fields: it.collect(),
                })))
            }
            '{' => {
                if items.len() % 2 == 1 {
                    return at(end - 1, TextErrorKind::MissingDictValue);
                }
                let mut map = BTreeMap::new();
                let mut it = items.into_iter();
                while let (Some((kpos, k)), Some((_, v))) = (it.next(), it.next()) {
                    if map.insert(k, v).is_some() {
                        return at(kpos, TextErrorKind::DuplicateKey);
                    }
                }
                Ok(Value::Dict(map))
            }
            _ => {
                let mut set = BTreeSet::new();
                for (mpos, m) in items {
                    if !set.insert(m) {
                        return at(mpos, TextErrorKind::DuplicateMember);
                    }
                }
                Ok(Value::Set(set))
            }
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let raw = hex.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    raw.chunks_exact(2)
        .map(|pair| match pair {
            [h, l] => Some(hex_digit(*h)? << 4 | hex_digit(*l)?),
            _ => None,
        })
        .collect()
}

/// Exactly `width` hex digits as a number.
fn hex_bits(hex: &str, width: usize) -> Option<u64> {
    if hex.len() != width {
        return None;
    }
    hex.bytes()
        .try_fold(0u64, |acc, b| Some(acc << 4 | u64::from(hex_digit(b)?)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    fn p(s: &str) -> Value {
        parse(s).unwrap()
    }

    fn perr(s: &str) -> (usize, TextErrorKind) {
        let e = parse(s).unwrap_err();
        (e.offset, e.kind)
    }

    #[test]
    fn prints_captp_shaped_records() {
        let wire = b"<10'op:deliver<11'desc:export5+>[7'deposit10+<18'desc:import-object3+>]7+<18'desc:import-object9+>>";
        let v = decode(wire).unwrap();
        let text = v.to_string();
        assert_eq!(
            text,
            "<op:deliver <desc:export 5> ['deposit 10 <desc:import-object 3>] 7 <desc:import-object 9>>"
        );
        assert_eq!(encode(&p(&text)), wire);
    }

    #[test]
    fn atoms_print_and_parse() {
        let cases: &[(Value, &str)] = &[
            (Value::Bool(true), "t"),
            (Value::int(-7i64), "-7"),
            (Value::f64(1.5), "1.5"),
            (Value::f64(-0.0), "-0.0"),
            (Value::f64(1e300), "1e300"),
            (Value::f64(f64::NEG_INFINITY), "-inf"),
            (Value::Float64(CANONICAL_NAN), "nan"),
            (
                Value::Float64(0xfff8_0000_0000_0000),
                "f64:0xfff8000000000000",
            ),
            (Value::Float32(0x3fc0_0000), "f32:0x3fc00000"),
            (Value::str("a\"b\\c\n\u{7}ö"), "\"a\\\"b\\\\c\\n\\u{7}ö\""),
            (Value::sym("alive?"), "'alive?"),
            (Value::sym("two words"), "'\"two words\""),
            (Value::sym(""), "'\"\""),
            (Value::bytes(&b"cat"[..]), ":636174"),
            (Value::bytes(Bytes::new()), ":"),
        ];
        for (v, s) in cases {
            assert_eq!(&v.to_string(), s);
            assert_eq!(&p(s), v, "{s}");
        }
        assert_eq!(p("  +42\n"), Value::int(42i64));
        assert_eq!(p(".5"), Value::f64(0.5));
        assert_eq!(p(":CAFE"), Value::bytes(vec![0xca, 0xfe]));
        assert_eq!(p("<t>").to_string(), "<t>");
        assert_eq!(
            p("<'t>"),
            Value::Record(Box::new(Record {
                label: Value::sym("t"),
                fields: vec![]
            }))
        );
        assert_eq!(p("<'t>").to_string(), "<'t>");
        assert_eq!(p("{'b 2 'a 1}").to_string(), "{'a 1 'b 2}");
        assert_eq!(p("#{3 1 2}").to_string(), "#{1 2 3}");
    }

    #[test]
    fn hidden_characters_print_as_escapes_and_read_back() {
        // A terminal escape, a right-to-left override, a zero-width space
        // and a line separator, in a string and in a symbol.
        let s = "ok\u{1b}[2J\u{202e}txt\u{200b}\u{2028}\u{e0041}";
        for v in [Value::str(s), Value::sym(s)] {
            let text = v.to_string();
            assert!(!text.chars().any(hidden), "{text:?}");
            assert!(
                text.contains("\\u{1b}[2J\\u{202e}txt\\u{200b}\\u{2028}"),
                "{text}"
            );
            assert_eq!(p(&text), v);
        }
    }

    #[test]
    fn errors_have_offsets() {
        use TextErrorKind as K;
        assert_eq!(perr(""), (0, K::UnexpectedEnd));
        assert_eq!(perr("[1 2"), (4, K::UnexpectedEnd));
        assert_eq!(perr("t t"), (2, K::TrailingInput));
        assert_eq!(perr("[fetch]"), (1, K::BareWord));
        assert_eq!(perr("007"), (0, K::BadNumber));
        assert_eq!(perr("[1 -]"), (3, K::BadNumber));
        assert_eq!(perr("1.2.3"), (0, K::BadNumber));
        assert_eq!(perr(":abc"), (0, K::BadHex));
        assert_eq!(perr("f64:0x12"), (0, K::BadHex));
        assert_eq!(perr("\"\\q\""), (1, K::BadEscape));
        assert_eq!(perr("\"\\u{d800}\""), (1, K::BadEscape));
        assert_eq!(perr("{1 2 1 3}"), (5, K::DuplicateKey));
        assert_eq!(perr("#{1 1}"), (4, K::DuplicateMember));
        assert_eq!(perr("{1 2 3}"), (6, K::MissingDictValue));
        assert_eq!(perr("<>"), (0, K::MissingRecordLabel));
        assert_eq!(perr("]"), (0, K::UnexpectedChar(']')));
        assert_eq!(perr("#[]"), (1, K::UnexpectedChar('[')));
        assert_eq!(perr("[1 #t]"), (4, K::HashBoolean));
        assert_eq!(perr("#f"), (1, K::HashBoolean));
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert_eq!(perr(&deep), (64, K::DepthLimit));
        assert!(parse(&("[".repeat(64) + &"]".repeat(64))).is_ok());
        assert_eq!(perr(&"9".repeat(5000)), (0, K::IntegerDigitsLimit));
    }
}
