//! Bytes to text: the byte-order mark, else a `<meta charset>` near the
//! start, else UTF-8. Invalid sequences become U+FFFD; nothing fails.

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252, X_USER_DEFINED};

/// How far into the page a `<meta>` may name the encoding (as in HTML's
/// prescan).
const PRESCAN: usize = 1024;

/// The page's text.
pub(crate) fn decode(bytes: &[u8]) -> String {
    let encoding = Encoding::for_bom(bytes)
        .map(|(e, _)| e)
        .or_else(|| meta_charset(bytes))
        .unwrap_or(UTF_8);
    let (text, _, _) = encoding.decode(bytes);
    text.into_owned()
}

/// A text/plain body: its byte-order mark, else UTF-8.
pub(crate) fn decode_plain(bytes: &[u8]) -> String {
    let encoding = Encoding::for_bom(bytes).map_or(UTF_8, |(e, _)| e);
    let (text, _, _) = encoding.decode(bytes);
    text.into_owned()
}

/// A simplified HTML prescan: the first `<meta …>` in the first 1024
/// bytes with a `charset=` (either form: `charset="x"` or
/// `content="text/html; charset=x"`). A UTF-16 label means UTF-8 here
/// (the bytes are ASCII-compatible, or the prescan could not have read
/// them), and `x-user-defined` means windows-1252, as HTML says.
fn meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes.get(..PRESCAN).unwrap_or(bytes).to_ascii_lowercase();
    let mut rest = head.as_slice();
    while let Some(start) = find(rest, b"<meta") {
        let tag = &rest[start + 5..];
        let end = tag.iter().position(|&b| b == b'>').unwrap_or(tag.len());
        let tag = &tag[..end];
        if let Some(label) = charset_in(tag) {
            return Encoding::for_label(label).map(|e| {
                if e == UTF_16BE || e == UTF_16LE {
                    UTF_8
                } else if e == X_USER_DEFINED {
                    WINDOWS_1252
                } else {
                    e
                }
            });
        }
        rest = &rest[start + 5..];
    }
    None
}

fn charset_in(tag: &[u8]) -> Option<&[u8]> {
    let at = find(tag, b"charset")?;
    let mut s = &tag[at + 7..];
    s = trim_start(s);
    s = s.strip_prefix(b"=")?;
    s = trim_start(s);
    let s = match s.first() {
        Some(b'"') | Some(b'\'') => &s[1..],
        _ => s,
    };
    let len = s
        .iter()
        .position(|&b| matches!(b, b'"' | b'\'' | b';' | b' ' | b'\t' | b'\n' | b'\r' | b'/'))
        .unwrap_or(s.len());
    let label = &s[..len];
    (!label.is_empty()).then_some(label)
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let Some((first, rest)) = s.split_first() {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_charset_forms() {
        assert_eq!(
            decode(b"<meta charset=windows-1252>caf\xe9"),
            "<meta charset=windows-1252>caf\u{e9}"
        );
        assert_eq!(
            decode(b"<META http-equiv=content-type CONTENT='text/html; charset=ISO-8859-1'>\xe9"),
            "<META http-equiv=content-type CONTENT='text/html; charset=ISO-8859-1'>\u{e9}"
        );
        assert_eq!(
            decode(b"<meta charset=\"utf-16\">\xc3\xa9"),
            "<meta charset=\"utf-16\">\u{e9}"
        );
        assert_eq!(
            decode(b"<meta charset=bogus>\xe9"),
            "<meta charset=bogus>\u{fffd}"
        );
        assert_eq!(
            decode(b"\xef\xbb\xbf<meta charset=latin1>\xc3\xa9"),
            "<meta charset=latin1>\u{e9}"
        );
        assert_eq!(decode(b"<meta charset"), "<meta charset");
        assert_eq!(decode(b"<meta charset=  "), "<meta charset=  ");
    }
}
