//! `pola call` against `pola ocapn test-peer`, two real processes: an echo
//! at the depth limit answers with a clear error instead of a reply its
//! caller's decoder would refuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use common::{POLA, pola};
use pola_captp::locator::{PeerLocator, SturdyRef, Swiss};
use pola_test_peer::ECHO;
use pola_testkit::KillOnDrop;

/// A value `depth` lists deep.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// A `pola ocapn test-peer` process and the URI of its echo.
fn echo_peer() -> (KillOnDrop, String) {
    let mut child = Command::new(POLA)
        .args(["ocapn", "test-peer", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let echo = SturdyRef {
        peer: PeerLocator::from_uri(line.trim()).unwrap(),
        swiss: Swiss::new(ECHO.as_bytes().to_vec()),
    }
    .to_uri();
    (child, echo)
}

#[test]
fn an_echo_one_level_too_deep_fails_with_a_clear_error() {
    let (_child, echo) = echo_peer();
    // `<op:deliver to [arg] …>` holds the argument two levels down: 62 is
    // the deepest argument a 64-deep message can carry.
    let (code, out, err) = pola(&["call", &echo, "", &nested(62)]);
    // The echo answers with the list of its arguments: 63 deep, one level
    // more than fits: the test peer breaks the answer instead.
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("result nested deeper than the peer accepts"),
        "{err}"
    );
    // One level less fits, both ways.
    let (code, out, err) = pola(&["call", &echo, "", &nested(61)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("[{}]", nested(61)));
}

#[test]
fn what_a_peer_answers_is_printed_escaped() {
    // The far side chooses what comes back: here, through the echo, a
    // string that would clear the screen and reverse the rest of the line.
    let (_child, echo) = echo_peer();
    let (code, out, err) = pola(&[
        "call",
        &echo,
        "",
        "\"\\u{1b}[2J\\u{1b}[Hpaid\\u{202e}txt.exe\\u{200b}\\u{e0041}\"",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.trim().chars().any(pola_syrup::text::hidden), "{out:?}");
    assert_eq!(
        out.trim(),
        "[\"\\u{1b}[2J\\u{1b}[Hpaid\\u{202e}txt.exe\\u{200b}\\u{e0041}\"]"
    );
}
