//! The fuzz oracle, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/syrup_decode.rs`) and the stable harness
//! (`cargo run --release --example fuzz_decode`). It panics if the decoder
//! misbehaves on `data`.

use bytes::Bytes;
use pola_syrup::{
    DecodeErrorKind, Decoder, Limits, Value, decode, decode_bytes, decode_with, encode, text,
};

/// Runs every check on one input.
pub fn check(data: &[u8]) {
    let whole = decode(data);
    let zero_copy = decode_bytes(Bytes::copy_from_slice(data));
    assert_eq!(whole, zero_copy, "decode and decode_bytes disagree");

    match &whole {
        Ok(v) => {
            // Strict canonical: what was accepted re-encodes to itself.
            assert_eq!(encode(v), data, "accepted input is not canonical");
            let printed = v.to_string();
            let parsed = text::parse(&printed).expect("printed text parses");
            assert_eq!(&parsed, v, "text form does not round-trip: {printed}");
        }
        Err(e) => {
            assert!(e.offset <= data.len(), "error offset past the input: {e:?}");
            if e.kind == DecodeErrorKind::Incomplete {
                assert_eq!(e.offset, data.len(), "Incomplete not at the end");
            }
        }
    }

    // Streaming, in chunk sizes taken from the input itself.
    let chunk = usize::from(data.first().copied().unwrap_or(1) % 16) + 1;
    let streamed = stream(data, chunk, Limits::default());
    if let Ok(v) = &whole {
        assert_eq!(
            streamed.as_ref().map(|(vs, _)| vs.as_slice()),
            Ok(std::slice::from_ref(v))
        );
    }
    if let Ok((values, rest)) = &streamed {
        // What the stream yielded is exactly the bytes it consumed.
        let mut wire = Vec::new();
        for v in values {
            wire.extend_from_slice(&encode(v));
        }
        assert_eq!(wire.len() + rest, data.len());
        assert_eq!(wire.as_slice(), &data[..wire.len()]);
    }

    // Tight limits: still no panic, and never a different successful value.
    let mut tight = Limits::default();
    tight.max_len = 16;
    tight.max_depth = 4;
    tight.max_int_digits = 24;
    tight.max_items = 8;
    tight.max_values = 32;
    tight.max_value_bytes = 128;
    let limited = decode_with(data, &tight);
    if let Ok(v) = &limited {
        assert_eq!(
            whole.as_ref(),
            Ok(v),
            "tight limits accepted what defaults did not"
        );
    }
    let _ = stream(data, 1, tight);
}

/// Feeds `data` in `chunk`-byte pieces; returns the values and how many
/// bytes were left buffered.
fn stream(
    data: &[u8],
    chunk: usize,
    limits: Limits,
) -> Result<(Vec<Value>, usize), pola_syrup::DecodeError> {
    let mut d = Decoder::with_limits(limits);
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        d.feed(piece);
        while let Some(v) = d.next_value()? {
            out.push(v);
        }
    }
    Ok((out, d.buffered()))
}
