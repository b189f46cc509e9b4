//! The sturdyrefs objects of a served vat make of themselves (a purse's
//! `sturdyref()`), kept in the vat's store as roots.
//!
//! A sturdyref is a root named `sturdy:HEX` (for good) or
//! `sturdy:HEX@MS` (until the Unix time `MS`, in milliseconds), where
//! `HEX` is its Swiss number; the root is the object. A vat keeps at most
//! [`MAX_STURDYREFS`] of them (each `sturdyref()` adds one: anyone holding
//! a purse could otherwise grow the host's memory and store without bound). Making one is part of the turn
//! that asked for it, so the URI is answered only once it is durable.
//! Revoking one deletes its root (a later fetch fails: "no such object");
//! an expired one is refused ("this sturdyref has expired") and its root
//! is deleted at the next start.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use pola_apps::mint::SturdyMaker;
use pola_captp::locator::SturdyRef;
use pola_peer::PeerHandle;
use pola_peer::swiss::random_swiss;
use pola_store::Store;
use pola_vat::{Val, Vat, error};

/// The prefix of sturdyref roots.
const PREFIX: &str = "sturdy:";

/// Most seconds a sturdyref may be made valid for (about 100 years).
const MAX_VALID_SECS: u64 = 100 * 365 * 24 * 3600;

/// Most sturdyrefs objects of one served vat may have made (live ones).
pub const MAX_STURDYREFS: usize = 100_000;

/// How many sturdyrefs the served vat keeps (made, not yet revoked or
/// expired): what the cap counts.
pub type Count = Arc<std::sync::atomic::AtomicUsize>;

/// A sturdyref root's name.
fn root_name(swiss: &[u8], expires: Option<u64>) -> String {
    match expires {
        Some(at) => format!("{PREFIX}{}@{at}", crate::hex::encode(swiss)),
        None => format!("{PREFIX}{}", crate::hex::encode(swiss)),
    }
}

/// Reads a sturdyref root's name: the Swiss number and expiry (`None`
/// for a root that is not one).
fn parse_root(name: &str) -> Option<(Vec<u8>, Option<u64>)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (hex, expires) = match rest.split_once('@') {
        Some((hex, at)) => (hex, Some(at.parse().ok()?)),
        None => (rest, None),
    };
    Some((crate::hex::decode(hex).filter(|s| !s.is_empty())?, expires))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a purse makes a sturdyref to itself: a fresh Swiss number, stored
/// as a root in the purse's own turn and registered with the peer.
pub fn maker(peer: Arc<OnceLock<PeerHandle>>, count: Count) -> SturdyMaker {
    maker_with_cap(peer, count, MAX_STURDYREFS)
}

fn maker_with_cap(peer: Arc<OnceLock<PeerHandle>>, count: Count, cap: usize) -> SturdyMaker {
    use std::sync::atomic::Ordering;
    Arc::new(move |cx, target, valid_for| {
        let peer = peer.get().ok_or_else(|| error("not serving yet"))?;
        let expires = match valid_for {
            None => None,
            Some(s) if s == 0 || s > MAX_VALID_SECS => {
                return Err(error(format!(
                    "a sturdyref is valid for 1 to {MAX_VALID_SECS} seconds"
                )));
            }
            Some(s) => Some(now_ms().saturating_add(s * 1000)),
        };
        if count.fetch_add(1, Ordering::SeqCst) >= cap {
            count.fetch_sub(1, Ordering::SeqCst);
            return Err(error(format!(
                "this host keeps at most {cap} sturdyrefs; revoke some first"
            )));
        }
        let swiss = random_swiss().map_err(|_| error("no randomness"))?;
        cx.set_root(&root_name(swiss.bytes(), expires), Some(target))?;
        peer.register_until(swiss.clone(), target.clone(), expires.and_then(at_time));
        Ok(SturdyRef {
            peer: peer.location().clone(),
            swiss,
        }
        .to_uri())
    })
}

/// Whether a sturdyref expiring at `at` (ms) has expired at `now` (one
/// past what the clock can hold counts as expired).
fn is_expired(at: u64, now: u64) -> bool {
    at <= now || at_time(at).is_none()
}

/// The time `ms` after the epoch (`None` past what the clock can hold:
/// treated as expired).
fn at_time(ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// Registers with `peer` every sturdyref `vat` keeps, deletes the roots
/// of expired ones, and sets `count` to how many are kept.
pub fn register_all(vat: &Vat, peer: &PeerHandle, count: &Count) {
    let now = now_ms();
    let mut registered = 0;
    for name in vat.root_names() {
        let Some((swiss, expires)) = parse_root(&name) else {
            continue;
        };
        if expires.is_some_and(|at| is_expired(at, now)) {
            continue;
        }
        if let Some(object) = vat.root(&name) {
            peer.register_until(swiss, object, expires.and_then(at_time));
            registered += 1;
        }
    }
    count.store(registered, std::sync::atomic::Ordering::SeqCst);
    // Best effort: a failure leaves them for later, refused meanwhile
    // since they were not registered.
    let _ = drop_expired(vat, None);
}

/// Deletes the roots of expired sturdyrefs (waiting up to `timeout` if
/// given); returns how many.
///
/// # Errors
/// The turn failed or did not finish in time.
pub fn drop_expired(vat: &Vat, timeout: Option<Duration>) -> anyhow::Result<usize> {
    let now = now_ms();
    let expired: Vec<String> = vat
        .root_names()
        .into_iter()
        .filter(|name| {
            parse_root(name).is_some_and(|(_, e)| e.is_some_and(|at| is_expired(at, now)))
        })
        .collect();
    let n = expired.len();
    if n == 0 {
        return Ok(0);
    }
    let done = vat.run(move |cx| {
        for name in &expired {
            cx.set_root(name, None)?;
        }
        Ok(Val::null())
    });
    if let Some(t) = timeout {
        vat.block_on(&done, t)
            .map_err(|e| anyhow!("deleting expired sturdyrefs: {e:?}"))?;
    }
    Ok(n)
}

/// Revokes the sturdyref `uri` of this host: one an object made (its
/// root is deleted, durably, in a turn of `vat`), or a served object's
/// (its Swiss number is deleted from the store: the next start gives the
/// object a new URI). Then `peer` (if the host runs) forgets it, so later
/// fetches fail with "no such object". Answers what was revoked.
///
/// # Errors
/// Not a sturdyref URI; no sturdyref of this host has that Swiss number;
/// the store or the turn failed (the sturdyref is then still valid).
pub fn revoke(
    store: &Store,
    vat: &Vat,
    live: Option<(&PeerHandle, &Count)>,
    designator: &str,
    uri: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let sturdy = SturdyRef::from_uri(uri).map_err(|e| anyhow!("not a sturdyref URI: {e}"))?;
    if sturdy.peer.designator() != designator {
        bail!("this sturdyref names another host, not this one ({designator})");
    }
    let swiss = sturdy.swiss.bytes().to_vec();
    let made = vat
        .root_names()
        .into_iter()
        .find(|name| parse_root(name).is_some_and(|(s, _)| s == swiss));
    let what = if let Some(name) = made {
        let done = vat.run(move |cx| {
            cx.set_root(&name, None)?;
            Ok(Val::null())
        });
        vat.block_on(&done, timeout)
            .map_err(|e| anyhow!("revoking: the vat refused: {e:?}"))?;
        if let Some((_, count)) = live {
            let _ = count.fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            );
        }
        "revoked a sturdyref an object made".to_string()
    } else {
        let mut found = None;
        for key in store
            .host_keys(crate::host::SWISS)
            .map_err(|e| anyhow!("{e}"))?
        {
            let row = store.host_get(&key).map_err(|e| anyhow!("{e}"))?;
            // A served object's Swiss number is the text of its row.
            if row.as_deref() == Some(swiss.as_slice()) {
                found = Some(key);
                break;
            }
        }
        let Some(key) = found else {
            bail!(
                "no sturdyref of this host has that Swiss number (revoked or expired already, or another host's)"
            );
        };
        store.host_put(&key, None).map_err(|e| anyhow!("{e}"))?;
        let name = key.strip_prefix(crate::host::SWISS).unwrap_or(&key);
        format!("revoked the URI of served object {name}: the next start gives it a new one")
    };
    if let Some((peer, _)) = live {
        // Holds as soon as it returns: a fetch handled later is refused.
        peer.revoke(&sturdy.swiss);
    }
    Ok(what)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_sturdyref_requests_stops_at_the_cap() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let net = rt
            .block_on(pola_netlayer::TcpTestingOnly::bind("127.0.0.1", 0))
            .unwrap();
        let _in_rt = rt.enter();
        let mut kinds = pola_vat::persist::Kinds::new();
        pola_apps::mint::kinds(&mut kinds, None);
        let vat = Vat::open("t", pola_vat::backend::MemoryBackend::new(), kinds).unwrap();
        let peer = pola_peer::Peer::start(
            vat.clone(),
            vec![Arc::new(net)],
            pola_peer::PeerConfig::default(),
        )
        .unwrap();
        let cell = Arc::new(OnceLock::new());
        let _ = cell.set(peer.handle());
        let count = Count::default();
        let make = maker_with_cap(cell, count.clone(), 3);
        let ask = |make: SturdyMaker| {
            let asked = vat.run(move |cx| {
                // A persistent object to name (a mint will do).
                let target = pola_apps::mint::new_mint(cx, None);
                Ok(Val::str(make(cx, &target, None)?))
            });
            vat.block_on(&asked, Duration::from_secs(10))
        };
        for _ in 0..3 {
            assert!(ask(make.clone()).is_ok());
        }
        let refused = format!("{:?}", ask(make.clone()).unwrap_err());
        assert!(refused.contains("at most 3"), "{refused}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
        vat.shutdown();
    }

    #[test]
    fn the_largest_expiry_a_store_can_name_is_far_future_not_a_panic() {
        // A crafted store could name one; it must not crash every start
        // (adding it to the epoch is checked).
        let (_, at) = parse_root(&format!("{PREFIX}00@{}", u64::MAX)).unwrap();
        let at = at.unwrap();
        assert!(at_time(at).is_none_or(|t| t > SystemTime::now()));
        assert!(!is_expired(at, now_ms()));
        assert!(is_expired(1, now_ms()));
        // One digit more does not parse: no sturdyref at all.
        assert!(parse_root(&format!("{PREFIX}00@{}0", u64::MAX)).is_none());
    }

    #[test]
    fn root_names_round_trip_and_garbage_is_no_sturdyref() {
        let swiss = [1u8, 2, 254, 255];
        assert_eq!(
            parse_root(&root_name(&swiss, None)),
            Some((swiss.to_vec(), None))
        );
        assert_eq!(
            parse_root(&root_name(&swiss, Some(17))),
            Some((swiss.to_vec(), Some(17)))
        );
        for bad in [
            "mint",
            "sturdy:",
            "sturdy:0",
            "sturdy:zz",
            "sturdy:00@",
            "sturdy:00@-1",
            "sturdy:00@x",
        ] {
            assert!(parse_root(bad).is_none(), "{bad}");
        }
    }
}
