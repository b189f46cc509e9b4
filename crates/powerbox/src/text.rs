//! Character rules for the text an app chooses (its name, description,
//! reasons, path hints), and [`quote`], the one way such text is put into a
//! message for a person.
//!
//! # The rules
//!
//! Text an app chooses is shown to a person in the install dialog, so it
//! must mean what it shows. [`check`] refuses, wherever they appear:
//!
//! - control characters (C0, DEL, C1), and line or paragraph separators
//!   (U+2028, U+2029): the text is one line;
//! - bidirectional controls: the embeddings and overrides (U+202A–U+202E),
//!   the isolates (U+2066–U+2069) and the marks (U+200E, U+200F, U+061C),
//!   which can make text read in an order other than it is stored;
//! - invisible characters that have no business in a name: zero-width
//!   space (U+200B), word joiner and invisible operators (U+2060–U+2064),
//!   the byte-order mark (U+FEFF), the soft hyphen (U+00AD), the Mongolian
//!   vowel separator (U+180E), the tag characters (U+E0000–U+E007F), the
//!   interlinear annotation controls (U+FFF9–U+FFFB), and Hangul fillers
//!   (U+115F, U+1160, U+3164, U+FFA0);
//! - private-use characters (their look depends on the font) and
//!   noncharacters;
//! - whitespace other than the ASCII space; a space at the start or the
//!   end, or two spaces in a row;
//! - a zero-width joiner or non-joiner (U+200D, U+200C) that does not
//!   stand between two visible characters, or two of them in a row: they
//!   are needed inside emoji sequences and some scripts (Persian, the
//!   Indic scripts), and nowhere else;
//! - a combining mark at the start, or more than three combining marks in
//!   a row ("Zalgo" text that draws over its neighbours).
//!
//! Lengths are counted in characters (Unicode scalar values), not bytes.

use std::fmt;

use pola_syrup::text::{
    hidden, is_bidi, is_control, is_invisible, is_joiner, is_private_or_nonchar,
};

/// How many combining marks may follow one another.
const MAX_MARKS_IN_A_ROW: usize = 3;

/// Why a piece of text breaks the character rules. Positions count
/// characters from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextProblem {
    /// Fewer characters than allowed (for most fields: empty).
    TooShort {
        /// The fewest allowed.
        min: usize,
    },
    /// More characters than allowed.
    TooLong {
        /// Its length in characters.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// A control character, or a line or paragraph separator.
    Control {
        /// Position (from 1).
        at: usize,
        /// The character.
        ch: char,
    },
    /// A bidirectional embedding, override, isolate or mark.
    Bidi {
        /// Position (from 1).
        at: usize,
        /// The character.
        ch: char,
    },
    /// An invisible character.
    Invisible {
        /// Position (from 1).
        at: usize,
        /// The character.
        ch: char,
    },
    /// A private-use character or a noncharacter.
    PrivateUse {
        /// Position (from 1).
        at: usize,
        /// The character.
        ch: char,
    },
    /// Whitespace other than one ASCII space between visible characters.
    Spacing {
        /// Position (from 1).
        at: usize,
    },
    /// A zero-width joiner or non-joiner not between two visible
    /// characters.
    Joiner {
        /// Position (from 1).
        at: usize,
    },
    /// A combining mark at the start, or too many in a row.
    Marks {
        /// Position (from 1).
        at: usize,
    },
}

impl fmt::Display for TextProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextProblem::TooShort { min: 1 } => f.write_str("is empty"),
            TextProblem::TooShort { min } => write!(f, "is shorter than {min} characters"),
            TextProblem::TooLong { len, max } => {
                write!(f, "is {len} characters long; at most {max} are allowed")
            }
            TextProblem::Control { at, ch } => write!(
                f,
                "has a control character ({}) at character {at}",
                code(*ch)
            ),
            TextProblem::Bidi { at, ch } => write!(
                f,
                "has a character that changes the direction of text ({}) at character {at}",
                code(*ch)
            ),
            TextProblem::Invisible { at, ch } => write!(
                f,
                "has an invisible character ({}) at character {at}",
                code(*ch)
            ),
            TextProblem::PrivateUse { at, ch } => write!(
                f,
                "has a character with no agreed look ({}) at character {at}",
                code(*ch)
            ),
            TextProblem::Spacing { at } => write!(
                f,
                "has a space that is not one plain space between words at character {at}"
            ),
            TextProblem::Joiner { at } => write!(
                f,
                "has a zero-width joiner that does not join two characters at character {at}"
            ),
            TextProblem::Marks { at } => write!(
                f,
                "has an accent with nothing to sit on, or too many accents stacked, at character {at}"
            ),
        }
    }
}

/// `U+XXXX`.
fn code(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Whether `c` is a visible character for the joiner rule: not a space,
/// not a joiner, not refused.
fn is_visible(c: char) -> bool {
    !c.is_whitespace() && !hidden(c)
}

/// Checks `s` against the character rules (see the module doc) and its
/// length, in characters, against `min..=max`.
///
/// # Errors
/// The first problem found.
///
/// ```
/// use pola_powerbox::text::{check, TextProblem};
/// assert!(check("Notes ✍️", 1, 64).is_ok());
/// assert!(matches!(check("evil\u{202E}txt", 1, 64), Err(TextProblem::Bidi { at: 5, .. })));
/// ```
pub fn check(s: &str, min: usize, max: usize) -> Result<(), TextProblem> {
    let chars: Vec<char> = s.chars().take(max.saturating_add(1)).collect();
    let len = if chars.len() > max {
        s.chars().count()
    } else {
        chars.len()
    };
    if len < min {
        return Err(TextProblem::TooShort { min });
    }
    if len > max {
        return Err(TextProblem::TooLong { len, max });
    }
    let mut marks = 0usize;
    for (i, &c) in chars.iter().enumerate() {
        let at = i + 1;
        if is_control(c) {
            return Err(TextProblem::Control { at, ch: c });
        }
        if is_bidi(c) {
            return Err(TextProblem::Bidi { at, ch: c });
        }
        if is_invisible(c) {
            return Err(TextProblem::Invisible { at, ch: c });
        }
        if is_private_or_nonchar(c) {
            return Err(TextProblem::PrivateUse { at, ch: c });
        }
        let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let after = chars.get(i + 1).copied();
        if c.is_whitespace() {
            let lone_space = c == ' '
                && before.is_some_and(|b| !b.is_whitespace())
                && after.is_some_and(|a| !a.is_whitespace());
            if !lone_space {
                return Err(TextProblem::Spacing { at });
            }
        }
        if is_joiner(c) && !(before.is_some_and(is_visible) && after.is_some_and(is_visible)) {
            return Err(TextProblem::Joiner { at });
        }
        if unicode_normalization::char::is_combining_mark(c) {
            marks += 1;
            if i == 0 || marks > MAX_MARKS_IN_A_ROW {
                return Err(TextProblem::Marks { at });
            }
        } else {
            marks = 0;
        }
    }
    Ok(())
}

/// How many characters of an app's text [`quote`] shows at most.
pub const QUOTE_MAX: usize = 64;

/// How many characters of a module's text [`escape`] keeps at most.
pub const ESCAPE_MAX: usize = 200;

/// Makes text an app (or its module) chose safe to put into a message
/// without quotes: as [`quote`], but `"` and `\` are kept, and the text is
/// cut at [`ESCAPE_MAX`] characters.
///
/// ```
/// use pola_powerbox::text::escape;
/// assert_eq!(escape("import `wasi::fd_write\u{1b}[2J`"), "import `wasi::fd_write\\u{1b}[2J`");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == ESCAPE_MAX {
            out.push('…');
            break;
        }
        if c == ' ' || (!c.is_whitespace() && !is_joiner(c) && is_visible(c)) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out
}

/// Puts text an app chose into double quotes for a message to a person:
/// every character the rules refuse, and `"` and `\`, is written as a
/// `\u{…}` escape, and text longer than [`QUOTE_MAX`] characters is cut
/// with `…`. The result never holds a control, bidirectional or invisible
/// character, whatever `s` holds.
///
/// ```
/// use pola_powerbox::text::quote;
/// assert_eq!(quote("notes.txt"), "\"notes.txt\"");
/// assert_eq!(quote("a\u{202E}b\n"), "\"a\\u{202e}b\\u{a}\"");
/// ```
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(QUOTE_MAX * 4) + 2);
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        if i == QUOTE_MAX {
            out.push('…');
            break;
        }
        let plain = c == ' '
            || (!c.is_whitespace() && c != '"' && c != '\\' && !is_joiner(c) && is_visible(c));
        if plain {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for s in [
            "Notes",
            "Clock 2",
            "Édition",
            "日本語のメモ",
            "نوت‌ها",
            "👩‍💻 Dev",
        ] {
            assert_eq!(check(s, 1, 64), Ok(()), "{s}");
        }
    }

    #[test]
    fn lengths_are_in_characters() {
        let s = "é".repeat(64);
        assert_eq!(s.len(), 128);
        assert_eq!(check(&s, 1, 64), Ok(()));
        assert_eq!(
            check(&"é".repeat(65), 1, 64),
            Err(TextProblem::TooLong { len: 65, max: 64 })
        );
        assert_eq!(check("", 1, 64), Err(TextProblem::TooShort { min: 1 }));
        assert_eq!(check("", 0, 64), Ok(()));
    }

    #[test]
    fn refused_characters() {
        type Expect = fn(&TextProblem) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("a\tb", |p| matches!(p, TextProblem::Control { at: 2, .. })),
            ("a\u{85}b", |p| matches!(p, TextProblem::Control { .. })),
            ("a\u{2028}b", |p| matches!(p, TextProblem::Control { .. })),
            ("a\u{202E}b", |p| matches!(p, TextProblem::Bidi { .. })),
            ("a\u{2067}b", |p| matches!(p, TextProblem::Bidi { .. })),
            ("a\u{200F}b", |p| matches!(p, TextProblem::Bidi { .. })),
            ("a\u{200B}b", |p| matches!(p, TextProblem::Invisible { .. })),
            ("a\u{FEFF}b", |p| matches!(p, TextProblem::Invisible { .. })),
            ("a\u{E0041}b", |p| {
                matches!(p, TextProblem::Invisible { .. })
            }),
            ("a\u{3164}b", |p| matches!(p, TextProblem::Invisible { .. })),
            ("a\u{E000}b", |p| {
                matches!(p, TextProblem::PrivateUse { .. })
            }),
            ("a\u{FFFF}b", |p| {
                matches!(p, TextProblem::PrivateUse { .. })
            }),
            ("a\u{FDD0}b", |p| {
                matches!(p, TextProblem::PrivateUse { .. })
            }),
            (" a", |p| matches!(p, TextProblem::Spacing { at: 1 })),
            ("a ", |p| matches!(p, TextProblem::Spacing { at: 2 })),
            ("a  b", |p| matches!(p, TextProblem::Spacing { at: 2 })),
            ("a\u{A0}b", |p| matches!(p, TextProblem::Spacing { .. })),
            ("a\u{3000}b", |p| matches!(p, TextProblem::Spacing { .. })),
            ("\u{200D}a", |p| matches!(p, TextProblem::Joiner { at: 1 })),
            ("a\u{200D}", |p| matches!(p, TextProblem::Joiner { .. })),
            ("a\u{200D}\u{200D}b", |p| {
                matches!(p, TextProblem::Joiner { .. })
            }),
            ("a \u{200C}b", |p| matches!(p, TextProblem::Joiner { .. })),
            ("\u{301}a", |p| matches!(p, TextProblem::Marks { at: 1 })),
            ("a\u{301}\u{302}\u{303}\u{304}", |p| {
                matches!(p, TextProblem::Marks { at: 5 })
            }),
        ];
        for (s, ok) in cases {
            let p = check(s, 1, 64).expect_err(s);
            assert!(ok(&p), "{s:?}: {p:?}");
            let msg = p.to_string();
            assert!(!msg.chars().any(|c| !is_visible(c) && c != ' '), "{msg}");
        }
        assert_eq!(check("a\u{301}\u{302}\u{303}", 1, 64), Ok(()));
    }

    #[test]
    fn quote_escapes_everything_refused() {
        let nasty = "x\u{202E}\u{200B}\u{200D}\n\"\\\u{E000}\u{1b}[2J ok";
        let q = quote(nasty);
        assert!(q.starts_with('"') && q.ends_with('"'));
        let inner = &q[1..q.len() - 1];
        assert!(!inner.contains('"'), "{q}");
        assert!(inner.chars().all(|c| c == ' ' || is_visible(c)), "{q}");
        assert!(q.contains("\\u{202e}"));
        assert!(q.ends_with(" ok\""));
    }

    #[test]
    fn quote_cuts_long_text() {
        let q = quote(&"a".repeat(1000));
        assert_eq!(q.chars().count(), QUOTE_MAX + 3);
        assert!(q.ends_with("…\""));
    }
}
