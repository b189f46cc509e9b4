//! A real `pola serve --mint` process, attacked with a forged handoff
//! certificate over the encrypted `noise` netlayer.
//!
//! A gifter holding the Mint's `issuer` deposits it as a gift for a named
//! receiver (the receiver's key on the gifter–receiver session). Mallory,
//! who learnt the gift certificate but does not hold the receiver's key,
//! connects to the Mint and tries to withdraw it with a receipt signed by a
//! key of her own: refused (the answer is broken). The genuine receiver
//! then withdraws the same gift: accepted (so the refusal was about the
//! signature, not a broken setup). Hand-driven CapTP sessions over real
//! noise connections; the Mint is the `pola` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pola_captp::Dialect;
use pola_captp::locator::{Hints, PeerLocator, SturdyRef};
use pola_captp::session::{CapRef, Event, Session, SessionConfig};
use pola_netlayer::{Connection, Identity, Location, Netlayer, NoiseNetlayer};
use pola_syrup::Value;
use pola_testkit::captp::session_pair;
use pola_testkit::{KillOnDrop, TempDir, runtime};

const POLA: &str = env!("CARGO_BIN_EXE_pola");
const T: Duration = Duration::from_secs(10);

/// A CapTP session driven by hand over a noise connection.
struct Raw {
    conn: Connection,
    session: Session,
    // Keeps the netlayer (and its identity) alive.
    _net: NoiseNetlayer,
}

impl Raw {
    async fn connect(to: &Location, seed: u8) -> Raw {
        let net = NoiseNetlayer::bind(Identity::generate().unwrap(), "127.0.0.1", 0)
            .await
            .unwrap();
        let me = net.location();
        let me =
            PeerLocator::new(&me.transport, &me.designator, Hints::Map(me.hints.clone())).unwrap();
        let conn = net.connect(to).await.unwrap();
        let session = Session::new(SessionConfig::new(Dialect::Current, [seed; 32], me));
        let mut raw = Raw {
            conn,
            session,
            _net: net,
        };
        raw.until(|e| matches!(e, Event::Established { .. })).await;
        raw
    }

    async fn flush(&mut self) {
        while let Some(m) = self.session.poll_transmit() {
            self.conn.writer.send(&m).await.unwrap();
        }
    }

    async fn until(&mut self, mut want: impl FnMut(&Event) -> bool) -> Event {
        let start = Instant::now();
        loop {
            self.flush().await;
            while let Some(ev) = self.session.poll_event() {
                if want(&ev) {
                    self.flush().await;
                    return ev;
                }
            }
            let left = T.checked_sub(start.elapsed()).expect("timed out");
            match tokio::time::timeout(left, self.conn.reader.recv()).await {
                Ok(Ok(Some(chunk))) => self.session.handle_bytes(&chunk).unwrap(),
                Ok(Ok(None)) => panic!("connection closed"),
                Ok(Err(e)) => panic!("connection failed: {e}"),
                Err(_) => panic!("timed out"),
            }
        }
    }

    async fn answer(&mut self, q: pola_captp::QuestionPosition) -> Result<Value<CapRef>, String> {
        match self
            .until(|e| matches!(e, Event::Answer { question, .. } if *question == q))
            .await
        {
            Event::Answer { result, .. } => result.map_err(|e| format!("{e:?}")),
            _ => unreachable!(),
        }
    }
}

#[test]
fn a_forged_handoff_receipt_is_refused_by_pola_serve() {
    let scratch = TempDir::new("forged");
    let state = scratch.join("mint");
    let mut child = Command::new(POLA)
        .args(["serve", "--mint", "--state"])
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _mint = KillOnDrop(child);
    let mut issuer = None;
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        if let Some(uri) = line.strip_prefix("issuer ") {
            issuer = Some(SturdyRef::from_uri(uri).unwrap());
        }
    }
    let issuer = issuer.expect("an issuer URI");
    let p = &issuer.peer;
    let to = Location {
        transport: p.transport().to_owned(),
        designator: p.designator().to_owned(),
        hints: p
            .hints()
            .entries()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    };

    let rt = runtime();
    rt.block_on(async {
        let (_g_to_r, r_to_g) = session_pair("noise");

        // The gifter fetches the issuer and deposits it as a gift.
        let mut gifter = Raw::connect(&to, 1).await;
        let q = gifter.session.fetch(&issuer.swiss).unwrap();
        let Ok(Value::Ref(CapRef::Import(held))) = gifter.answer(q).await else {
            panic!("fetch failed");
        };
        let gift = gifter
            .session
            .give(held, *r_to_g.public_key(), Bytes::from_static(&[7u8; 32]))
            .unwrap();
        gifter.flush().await;

        // Mallory holds the certificate but not the receiver's key.
        let mut mallory = Raw::connect(&to, 2).await;
        let receive = mallory.session.handoff_receive(gift.clone()).unwrap();
        let forged = receive.sign(&pola_captp::crypto::SessionKeys::from_seed([9; 32]));
        let q = mallory.session.withdraw_gift(forged).unwrap();
        let refused = mallory.answer(q).await;
        assert!(refused.is_err(), "forged receipt accepted: {refused:?}");

        // The genuine receiver gets the gift.
        let mut receiver = Raw::connect(&to, 3).await;
        let receive = receiver.session.handoff_receive(gift).unwrap();
        let signed = r_to_g.sign_handoff_receive(receive).unwrap();
        let q = receiver.session.withdraw_gift(signed).unwrap();
        let got = receiver.answer(q).await;
        assert!(
            matches!(got, Ok(Value::Ref(CapRef::Import(_)))),
            "genuine withdrawal failed: {got:?}"
        );
    });
}
