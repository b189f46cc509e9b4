//! The one thing read from an element's inline `style`: whether it says
//! `display: none`. Nothing else of the attribute is kept (the arena
//! stores only the answer), so no text or URL of a style can reach the
//! tree.
//!
//! CSS's own rules, as far as they decide this one question: comments
//! are dropped; declarations are split at `;` outside strings, brackets
//! and escapes; a property name may be escaped (`\64 isplay`) and is
//! matched without regard to ASCII case; the last `display` whose value
//! is a keyword wins, except that a later one does not override an
//! `!important` one. A value that is not keywords (`display: 5px`) is
//! invalid and ignored, as a browser ignores it; an unknown keyword
//! counts as shown (a browser would ignore it and perhaps hide: the
//! element is then drawn, which is what this crate did for every inline
//! style before). Stylesheets (`<style>`, classes) are not read at all.
//!
//! Linear in the attribute's length; never panics.

/// Whether an inline style's declarations hide the element
/// (`display: none`).
pub(crate) fn display_none(style: &str) -> bool {
    let mut none = false;
    let mut important = false;
    for decl in declarations(&strip_comments(style)) {
        let Some((prop, value)) = decl.split_once(':') else {
            continue;
        };
        if !unescape(prop.trim()).eq_ignore_ascii_case("display") {
            continue;
        }
        let (value, is_important) = split_important(value);
        let value = unescape(value.trim());
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '-' || c.is_ascii_whitespace())
        {
            continue;
        }
        if important && !is_important {
            continue;
        }
        important = is_important;
        none = value.eq_ignore_ascii_case("none");
    }
    none
}

/// `s` without its `/* … */` comments (an unclosed one runs to the end),
/// outside strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '/' && chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = '\0';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
                // A comment separates tokens like whitespace.
                out.push(' ');
            }
            None => {
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                out.push(c);
                if c == '\\'
                    && let Some(n) = chars.next()
                {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// The declarations of a style: split at `;` outside strings, brackets
/// and escapes.
fn declarations(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (_, '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[' | '{') => depth = depth.saturating_add(1),
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (None, ';') if depth == 0 => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or(""));
    out
}

/// A value without a trailing `!important` (any case, spaces allowed
/// after the `!`), and whether it had one.
fn split_important(value: &str) -> (&str, bool) {
    let v = value.trim_end();
    if let Some(bang) = v.rfind('!') {
        let (before, after) = v.split_at(bang);
        if after
            .get(1..)
            .is_some_and(|w| w.trim_start().eq_ignore_ascii_case("important"))
        {
            return (before, true);
        }
    }
    (v, false)
}

/// CSS escapes resolved: `\` and one to six hex digits (and one
/// following space) is that code point (U+FFFD if none), `\` and any
/// other character is that character, `\` at the end is U+FFFD.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut code: u32 = 0;
        let mut digits = 0;
        while digits < 6 {
            match chars.peek().and_then(|d| d.to_digit(16)) {
                Some(d) => {
                    code = code * 16 + d;
                    digits += 1;
                    chars.next();
                }
                None => break,
            }
        }
        if digits > 0 {
            if chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                chars.next();
            }
            let ch = match code {
                0 => '\u{fffd}',
                _ => char::from_u32(code).unwrap_or('\u{fffd}'),
            };
            out.push(ch);
        } else {
            // A `\` at the end escapes nothing: CSS reads U+FFFD there.
            out.push(chars.next().unwrap_or('\u{fffd}'));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::display_none;

    #[test]
    fn what_hides_and_what_does_not() {
        for s in [
            "display:none",
            "display: none",
            " DISPLAY : None ; ",
            "color: red; display: none",
            "display: block; display: none",
            "display: none !important; display: block",
            "display: none ! IMPORTANT",
            "display/* a */:/* b */none",
            "\\64 isplay: none",
            "disp\\lay: n\\6f ne",
            "background: url(\"a;b\"); display: none",
            "display: none; display: 5px",
            "display: none; display:",
        ] {
            assert!(display_none(s), "{s:?} hides");
        }
        for s in [
            "",
            "display: block",
            "display: none; display: block",
            "display: inline !important; display: none",
            "content: \"display: none\"",
            "/* display: none */",
            "background: url(a;display:none)",
            "x-display: none",
            "display-none: yes",
            "visibility: hidden",
            "display: nonesuch",
            "display",
            "\\",
            "display: none\\",
            ";;;:::",
            "display: \"none\"",
            "'unclosed; display: none",
            "/* unclosed; display: none",
        ] {
            assert!(!display_none(s), "{s:?} does not hide");
        }
    }

    /// Styles made of the pieces this code treats specially (and
    /// multi-byte characters around them), 200 000 of them: none panics.
    #[test]
    fn no_style_panics() {
        let pieces = [
            "display",
            ":",
            "none",
            ";",
            "!",
            "important",
            "/*",
            "*/",
            "\\",
            "'",
            "\"",
            "(",
            ")",
            "[",
            "}",
            " ",
            "\t",
            "6f",
            "64 ",
            "é",
            "€",
            "😀",
            "\u{0}",
            "block",
            "-",
        ];
        let mut s: u32 = 0x2545_f491;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut hid = 0;
        for _ in 0..200_000 {
            let len = next() % 24;
            let style: String = (0..len)
                .map(|_| pieces[next() as usize % pieces.len()])
                .collect();
            hid += usize::from(display_none(&style));
        }
        // The generator is not degenerate: some made-up styles hide.
        assert!(hid > 0);
    }
}
