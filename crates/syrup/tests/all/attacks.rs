//! Hostile inputs: each cap in `Limits` holds against an input built to
//! break it, with default limits, whole and streaming.

use pola_syrup::{DecodeErrorKind as K, Decoder, Limits, decode};

fn stream_error(input: &[u8], chunk: usize) -> (usize, K) {
    let mut d = Decoder::new();
    for piece in input.chunks(chunk) {
        d.feed(piece);
        loop {
            match d.next_value() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return (e.offset, e.kind),
            }
        }
    }
    panic!("no error; {} bytes buffered", d.buffered());
}

#[test]
fn announced_terabyte_is_refused_before_any_body_byte() {
    let header = b"[t1099511627776:";
    let e = decode(header).unwrap_err();
    assert_eq!((e.offset, e.kind), (2, K::LengthLimit));
    // Streaming: refused as soon as the marker arrives, with nothing of the
    // body buffered.
    assert_eq!(stream_error(header, 1), (2, K::LengthLimit));
    // Just over the 16 MiB default, likewise.
    let e = decode(format!("{}:", (16 << 20) + 1).as_bytes()).unwrap_err();
    assert_eq!((e.offset, e.kind), (0, K::LengthLimit));
    // At the limit, the length is fine and the decoder just waits.
    let e = decode(format!("{}\"", 16 << 20).as_bytes()).unwrap_err();
    assert_eq!(e.kind, K::Incomplete);
}

#[test]
fn deep_nesting_stops_at_the_depth_limit_without_recursion() {
    let deep = vec![b'['; 1_000_000];
    let e = decode(&deep).unwrap_err();
    assert_eq!((e.offset, e.kind), (64, K::DepthLimit));
    assert_eq!(stream_error(&deep, 4096), (64, K::DepthLimit));
    let mut ok = vec![b'<'; 64];
    ok.extend(vec![b't'; 1]);
    ok.extend(vec![b'>'; 64]);
    assert!(decode(&ok).is_ok());
}

#[test]
fn one_byte_atoms_cannot_blow_up_memory() {
    // 1 Mi + 1 items in one list: refused at the first item over the cap.
    let mut many = vec![b'['];
    many.extend(std::iter::repeat_n(b't', (1 << 20) + 1));
    many.push(b']');
    let e = decode(&many).unwrap_err();
    assert_eq!((e.offset, e.kind), (1 + (1 << 20), K::ItemsLimit));
    // Spread over nested lists instead: the total value cap (4 Mi) holds.
    let mut spread = vec![b'['];
    for _ in 0..5 {
        spread.push(b'[');
        spread.extend(std::iter::repeat_n(b't', 1 << 20));
        spread.push(b']');
    }
    spread.push(b']');
    let e = decode(&spread).unwrap_err();
    assert_eq!(e.kind, K::ValuesLimit);
}

#[test]
fn endless_integer_is_refused_before_its_end() {
    let digits = vec![b'7'; 10_000];
    let e = decode(&digits).unwrap_err();
    assert_eq!((e.offset, e.kind), (0, K::IntegerDigitsLimit));
    assert_eq!(stream_error(&digits, 100), (0, K::IntegerDigitsLimit));
    // 4096 digits is allowed.
    let mut ok = vec![b'7'; 4096];
    ok.push(b'-');
    assert!(decode(&ok).is_ok());
}

#[test]
fn streaming_never_buffers_past_the_value_size_limit() {
    let mut limits = Limits::default();
    limits.max_value_bytes = 1 << 16;
    // A list that never ends, fed in 1 KiB chunks.
    let mut d = Decoder::with_limits(limits);
    let chunk = [b't'; 1024];
    d.feed(b"[");
    let mut fed = 1;
    let e = loop {
        d.feed(&chunk);
        fed += chunk.len();
        match d.next_value() {
            Ok(None) => assert!(fed <= (1 << 16) + chunk.len()),
            Ok(Some(v)) => panic!("unexpected value {v}"),
            Err(e) => break e,
        }
    };
    assert_eq!((e.offset, e.kind), (1 << 16, K::ValueSizeLimit));
    // A byte string whose announced end is past the limit is refused at
    // once.
    let mut d = Decoder::with_limits(limits);
    d.feed(b"65536:");
    let e = d.next_value().unwrap_err();
    assert_eq!((e.offset, e.kind), (0, K::ValueSizeLimit));
    // After an error the decoder drops its buffer and stays failed.
    d.feed(&[b't'; 4096]);
    assert_eq!(d.buffered(), 0);
    assert_eq!(d.next_value().unwrap_err(), e);
}

#[test]
fn malformed_utf8_is_never_repaired() {
    // A UTF-8-encoded surrogate (U+D800), an overlong `/`, a truncated
    // sequence, and a code point above U+10FFFF.
    for (body, bad_at) in [
        (&b"\xed\xa0\x80"[..], 0),
        (&b"a\xc0\xaf"[..], 1),
        (&b"ab\xe2\x82"[..], 2),
        (&b"\xf4\x90\x80\x80"[..], 0),
    ] {
        for marker in [b'"', b'\''] {
            let mut input = body.len().to_string().into_bytes();
            input.push(marker);
            input.extend_from_slice(body);
            let e = decode(&input).unwrap_err();
            assert_eq!(e.kind, K::InvalidUtf8);
            assert_eq!(e.offset, 2 + bad_at);
        }
    }
}
