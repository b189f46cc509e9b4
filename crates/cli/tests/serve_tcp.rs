//! `pola serve --insecure-tcp-testing-only PORT`: the served objects are
//! reachable over the unencrypted interop netlayer too, by a real `pola
//! call` process and by a peer that has no Noise netlayer at all; the run
//! says it is insecure, and the flag is never written to `pola.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;

use common::{POLA, START, T, TempDir, pola};
use pola_captp::locator::{SturdyRef, Swiss};
use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig};
use pola_testkit::KillOnDrop;
use pola_vat::{Val, Vat};

#[test]
fn serve_also_listens_on_tcp_testing_only_and_says_it_is_insecure() {
    let state = TempDir::new("cli");
    let mut child = Command::new(POLA)
        .args(["serve", "--mint", "--listen", "127.0.0.1", "--port", "0"])
        .args(["--insecure-tcp-testing-only", "0", "--state"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let _child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((true, line));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send((false, line));
        }
    });
    let (mut objects, mut stderr) = (Vec::new(), Vec::new());
    loop {
        let (stdout, line) = rx.recv_timeout(START).expect("no `ready` in time");
        if !stdout {
            stderr.push(line);
        } else if line == "ready" {
            break;
        } else {
            let (name, uri) = line.split_once(' ').unwrap();
            objects.push((name.to_owned(), uri.to_owned()));
        }
    }
    let uri = |name: &str| {
        objects
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| SturdyRef::from_uri(u).unwrap())
            .unwrap_or_else(|| panic!("no {name} in {objects:?}"))
    };
    let names: Vec<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "mint",
            "mint.tcp-testing-only",
            "issuer",
            "issuer.tcp-testing-only"
        ]
    );
    let (noise, tcp) = (uri("issuer"), uri("issuer.tcp-testing-only"));
    assert_eq!(noise.peer.transport(), "noise");
    assert_eq!(tcp.peer.transport(), "tcp-testing-only");
    // One vat, one identity: the same designator and Swiss number.
    assert_eq!(tcp.peer.designator(), noise.peer.designator());
    assert_eq!(tcp.swiss, noise.swiss);
    // The warning is printed before anything is served. (It comes on
    // stderr, read by another thread than stdout's `ready`: it may reach
    // us a moment after.)
    let warned = |l: &String| l.contains("WARNING") && l.contains("UNENCRYPTED");
    while !stderr.iter().any(warned) {
        match rx.recv_timeout(START) {
            Ok((false, line)) => stderr.push(line),
            Ok((true, _)) => {}
            Err(_) => panic!("no warning: {stderr:?}"),
        }
    }
    // The flag lasts one run: pola.toml does not keep it.
    let toml = std::fs::read_to_string(state.join("pola.toml")).unwrap();
    assert!(!toml.contains("tcp"), "{toml}");

    // A real `pola call` process over tcp-testing-only gets real answers:
    // the issuer makes an empty purse and refuses to print money.
    let tcp_uri = tcp.to_uri();
    let (code, out, err) = pola(&["call", &tcp_uri, "make_purse", "0"]);
    assert_eq!((code, out.trim()), (0, "<ref>"), "{err}");
    let (code, _, err) = pola(&["call", &tcp_uri, "make_purse", "5"]);
    assert_ne!(code, 0);
    assert!(err.contains("broken"), "{err}");

    // A peer with no noise netlayer at all (what an implementation without
    // pola's framing is) calls through to a purse and reads its balance;
    // a guessed Swiss number on the same connection reaches nothing.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let net = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let vat = Vat::new("tcp-only");
    let peer = {
        let _g = rt.enter();
        Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap()
    };
    let issuer = peer.handle().enliven(tcp.clone());
    let purse = vat.send(&issuer, "make_purse", vec![Val::int(0i64)]);
    let balance = vat.send(&purse, "balance", vec![]);
    assert_eq!(vat.block_on(&balance, T).unwrap(), Val::int(0i64));
    let guessed = SturdyRef {
        peer: tcp.peer.clone(),
        swiss: Swiss::new(&b"mint"[..]),
    };
    let nothing = peer.handle().enliven(guessed);
    let refused = vat.block_on(&vat.send(&nothing, "make_purse", vec![Val::int(1i64)]), T);
    assert!(refused.is_err(), "{refused:?}");
    rt.block_on(peer.shutdown());
    vat.shutdown();
}
