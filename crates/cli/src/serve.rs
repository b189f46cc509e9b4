//! `pola serve`: a vat that exposes nothing but the objects it registers as
//! sturdyrefs at start-up, over the encrypted `noise` netlayer.
//!
//! In the spirit of Rserve's object-capability mode: there is no eval and
//! no way to reach anything but the printed sturdyrefs (and what they hand
//! out). On start-up it prints one line per served object, `NAME URI`, then
//! a line `ready`, and serves until killed.
//!
//! With `--insecure-tcp-testing-only PORT` it also listens with the
//! `tcp-testing-only` netlayer (no encryption, no authentication), so
//! OCapN implementations without pola's Noise framing can reach the same
//! objects; each object then gets a second line, `NAME.tcp-testing-only
//! URI`, and a warning goes to stderr. The flag is never written to
//! `pola.toml`: it lasts one run. Every session, over either netlayer,
//! announces the noise location (the vat's identity), and the insecure
//! URIs carry the same designator.
//!
//! State folder (`--state DIR`, created mode 0700 if missing):
//! - `DIR/pola.toml`: what is served and where ([`crate::config`]),
//!   written from the flags on a first start.
//! - `DIR/state.redb`: the state store (pola-store). Its host table holds
//!   the vat's long-term Ed25519 key (generated once; its public key is the
//!   designator in every URI, so a restart keeps the vat's identity) and
//!   the Swiss number of each served object, so the URIs survive restarts
//!   too ([`crate::host`]; older `identity.key`/`sturdyrefs` files are
//!   moved in). The served vat is
//!   persistent: the mint, its issuer, every purse and balance live there,
//!   and so does the table of sturdyrefs made by `sturdyref()` on a purse
//!   (roots named `sturdy:HEX`). A restart (clean, or after `kill -9`)
//!   resumes the same currency: the mint is made once, on the first start.
//!   Every answer leaves only once the turn that made it is durable.
//!   The wallet and payee are persistent too (`pola_apps::wallet`): they
//!   hold their purses at the mint as sturdyref URIs, made again on first
//!   use after a restart of either side.
//!
//! Roles (objects served):
//! - `--mint`: a new currency. Serves `mint` (`make_purse(amount)`: the
//!   authority to print money, meant for the operator only; keep its URI
//!   private) and `issuer` (`make_purse(0)` only: anyone may get an *empty*
//!   purse of this currency, which is harmless, and fill it by deposits).
//! - `--wallet-from URI --initial N`: on the first start, asks the mint or
//!   issuer at `URI` for a purse holding `N` and an empty one for incoming
//!   payments, and serves two facets over them (later starts resume it;
//!   it is never credited again). `wallet` is the owner's (spends; keep it
//!   private): `balance()`, `pay(payee_uri, amount)` (sprouts a payment
//!   purse at the mint, moves `amount` into it and sends it to the payee's
//!   `receive`), `deposit_received()` (moves what was received into the
//!   main purse; answers the new balance). `payee` is the one to give
//!   payers: `receive(payment, amount)` deposits the payment into the
//!   incoming purse at once (so a fake or short payment is refused); it
//!   can neither spend nor read the balance.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use pola_apps::mint::{kinds as mint_kinds, new_issuer, new_mint};
use pola_apps::wallet::{Enliven, kinds as wallet_kinds, new_wallet};
use pola_captp::locator::{Hints, PeerLocator, SturdyRef};
use pola_netlayer::{Netlayer, NoiseNetlayer, TcpTestingOnly};
use pola_peer::{Peer, PeerConfig, PeerHandle};
use pola_vat::persist::Kinds;
use pola_vat::{Ref, Val, Vat, error};

/// How long start-up waits for a wallet's purse.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What `pola serve` serves, and where.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The state folder (identity key, Swiss numbers).
    pub state: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// Port (0 picks one).
    pub port: u16,
    /// Host to put in the URIs instead of `listen` (e.g. when listening on
    /// `0.0.0.0`).
    pub advertise: Option<String>,
    /// Serve a new mint (`mint` and `issuer`).
    pub mint: bool,
    /// Serve a wallet whose purse comes from this mint/issuer URI.
    pub wallet_from: Option<String>,
    /// The wallet's opening balance (asked of the mint).
    pub initial: u64,
    /// Caplet packages to serve (checked).
    pub caplets: Vec<crate::config::Caplet>,
    /// The bytes of `pola.toml`, carried by exports taken while serving.
    pub config: Option<Vec<u8>>,
    /// Also listen on this port with the insecure `tcp-testing-only`
    /// netlayer (for interop tests; never written to `pola.toml`).
    pub insecure_tcp_port: Option<u16>,
}

impl ServeOptions {
    /// What to serve, from a validated config in state folder `state`.
    pub fn from_config(state: PathBuf, config: &crate::config::Config) -> ServeOptions {
        ServeOptions {
            state,
            listen: config.net.listen.clone(),
            port: config.net.port,
            advertise: config.net.advertise.clone(),
            mint: config.mint,
            wallet_from: config.wallet.as_ref().map(|w| w.from.clone()),
            initial: config.wallet.as_ref().map_or(0, |w| w.initial),
            caplets: config.caplets.clone(),
            config: Some(config.text.clone().into_bytes()),
            insecure_tcp_port: None,
        }
    }
}

/// Runs `pola serve` until killed.
///
/// # Errors
/// Bad state folder or key file, an unbindable address, an unreachable
/// mint for `--wallet-from`, or nothing to serve.
pub fn serve(opts: &ServeOptions) -> Result<()> {
    if !opts.mint && opts.wallet_from.is_none() && opts.caplets.is_empty() {
        bail!(
            "nothing to serve: give --mint and/or --wallet-from URI, or [[caplet]] entries in pola.toml"
        );
    }
    let sandboxes = crate::caplets::Sandboxes::new(&opts.caplets)?;
    make_state_dir(&opts.state)?;
    let (store, identity, mut swiss) = crate::host::open_state(&opts.state)?;
    let live = crate::control::listen(&opts.state, store.clone(), opts.config.clone())?;
    let rt = crate::ocapn::runtime()?;
    rt.block_on(async move {
        let mut net = NoiseNetlayer::bind(identity, &opts.listen, opts.port)
            .await
            .with_context(|| format!("listening on {}:{}", opts.listen, opts.port))?;
        if let Some(host) = &opts.advertise {
            let port = net.local_addr().port();
            net.set_advertised(host, port);
        }
        // The noise location goes first: it is the one every session
        // announces, so the tcp-testing-only URIs carry its designator too.
        let designator = net.location().designator.clone();
        let mut netlayers: Vec<Arc<dyn Netlayer>> = vec![Arc::new(net)];
        let mut insecure = None;
        if let Some(port) = opts.insecure_tcp_port {
            let mut tcp = TcpTestingOnly::bind_as(&opts.listen, port, designator)
                .await
                .with_context(|| format!("listening on {}:{port}", opts.listen))?;
            let bound = tcp.local_addr()?.port();
            if let Some(host) = &opts.advertise {
                tcp.set_advertised(host, bound);
            }
            let loc = tcp.location();
            insecure = Some(PeerLocator::new(
                loc.transport.clone(),
                loc.designator.clone(),
                Hints::Map(loc.hints.clone()),
            )?);
            eprintln!(
                "pola serve: WARNING: also serving UNENCRYPTED and UNAUTHENTICATED on tcp-testing-only at {}:{bound} (--insecure-tcp-testing-only): anyone who can reach that port and read the traffic can use the served objects; for interop tests only",
                opts.listen
            );
            netlayers.push(Arc::new(tcp));
        }
        let peer_cell: Arc<OnceLock<PeerHandle>> = Arc::new(OnceLock::new());
        let sturdies = crate::sturdy::Count::default();
        let (kinds, sturdy) = kinds(&peer_cell, &sandboxes, &sturdies);
        let backend = store.vat("serve").map_err(|e| anyhow!("{e}"))?;
        let vat = Vat::open("serve", backend, kinds)
            .map_err(|e| anyhow!("{}: {e}", opts.state.join("state.redb").display()))?;
        let peer = Peer::start(vat.clone(), netlayers, PeerConfig::default())?;
        let handle = peer.handle();
        let _ = peer_cell.set(handle.clone());
        // Sturdyrefs made by purses in earlier runs (expired ones go).
        crate::sturdy::register_all(&vat, &handle, &sturdies);
        let _ = live.set(crate::control::Serving {
            vat: vat.clone(),
            peer: handle.clone(),
            sturdies,
        });
        let mut served: Vec<(&str, Ref)> = Vec::new();
        if opts.mint {
            if vat.root("mint").is_none() {
                let made = vat.run(move |cx| {
                    let mint = new_mint(cx, Some(sturdy));
                    let issuer = new_issuer(cx, &mint);
                    cx.set_root("mint", Some(&mint))?;
                    cx.set_root("issuer", Some(&issuer))?;
                    Ok(Val::null())
                });
                let waiter = vat.clone();
                tokio::task::spawn_blocking(move || waiter.block_on(&made, START_TIMEOUT))
                    .await?
                    .map_err(|e| anyhow!("making the mint: {e}"))?;
            }
            let root = |name: &str| {
                vat.root(name)
                    .ok_or_else(|| anyhow!("the store has no {name}"))
            };
            served.push(("mint", root("mint")?));
            served.push(("issuer", root("issuer")?));
        }
        if let Some(uri) = &opts.wallet_from {
            // The wallet is made once, on the first start: a restart with
            // the same flags resumes it and is not credited again.
            if vat.root("wallet").is_none() {
                make_wallet(
                    &vat,
                    &handle,
                    payee_enliven(peer_cell.clone()),
                    uri,
                    opts.initial,
                )
                .await?;
            }
            let root = |name: &str| {
                vat.root(name)
                    .ok_or_else(|| anyhow!("the store has no {name}"))
            };
            served.push(("wallet", root("wallet")?));
            served.push(("payee", root("payee")?));
        }
        let mut served: Vec<(String, Ref)> =
            served.into_iter().map(|(n, r)| (n.to_owned(), r)).collect();
        if !opts.caplets.is_empty() {
            let (vat, caplets) = (vat.clone(), opts.caplets.clone());
            served.extend(
                tokio::task::spawn_blocking(move || {
                    crate::caplets::serve_all(&vat, &sandboxes, &caplets, START_TIMEOUT)
                })
                .await??,
            );
        }
        let mut out = std::io::stdout().lock();
        for (name, object) in served {
            let name = name.as_str();
            let number = swiss.get_or_create(name)?;
            handle.register(number.clone(), object);
            let sturdy = SturdyRef {
                peer: handle.location().clone(),
                swiss: number.clone(),
            };
            writeln!(out, "{name} {}", sturdy.to_uri())?;
            if let Some(tcp) = &insecure {
                let sturdy = SturdyRef {
                    peer: tcp.clone(),
                    swiss: number,
                };
                writeln!(out, "{name}.tcp-testing-only {}", sturdy.to_uri())?;
            }
        }
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        peer.stopped().await;
        Ok(())
    })
}

/// The kinds of the served vat: the mint's, the wallet's and the
/// caplets', and the enlivener of stored far references; `peer` is set
/// once the peer runs (until then, and offline, what needs it says "not
/// serving yet"). Also the purse's sturdyref maker, for a new mint.
pub fn kinds(
    peer_cell: &Arc<OnceLock<PeerHandle>>,
    sandboxes: &crate::caplets::Sandboxes,
    sturdies: &crate::sturdy::Count,
) -> (Kinds, pola_apps::mint::SturdyMaker) {
    let sturdy = crate::sturdy::maker(peer_cell.clone(), sturdies.clone());
    let mut kinds = Kinds::new();
    mint_kinds(&mut kinds, Some(sturdy.clone()));
    wallet_kinds(&mut kinds, payee_enliven(peer_cell.clone()));
    sandboxes.register(&mut kinds);
    // Far references kept by persistent objects (the wallet's purses)
    // are stored as sturdyref URIs and made again on first use.
    let for_revival = peer_cell.clone();
    kinds.set_enlivener(move |recipe| match for_revival.get() {
        Some(peer) => peer.enliven_recipe(recipe),
        None => pola_vat::persist::dormant(recipe, "not serving yet"),
    });
    (kinds, sturdy)
}

/// How a wallet reaches the payee a URI names: a sturdy far reference,
/// which connects on first use (after the paying turn is durable).
fn payee_enliven(peer: Arc<OnceLock<PeerHandle>>) -> Enliven {
    Arc::new(move |uri| {
        let peer = peer.get().ok_or_else(|| error("not serving yet"))?;
        let sturdy = SturdyRef::from_uri(uri).map_err(|_| error("bad payee URI"))?;
        Ok(peer.sturdy(sturdy))
    })
}

/// Makes the wallet (roots `wallet` and `payee`): asks the mint or issuer
/// at `uri` for a purse holding `initial` and an empty one for incoming
/// payments, and keeps both as sturdy far references (so the wallet
/// survives restarts of either side).
async fn make_wallet(
    vat: &Vat,
    peer: &PeerHandle,
    enliven: Enliven,
    uri: &str,
    initial: u64,
) -> Result<()> {
    let source = SturdyRef::from_uri(uri).map_err(|e| anyhow!("bad --wallet-from URI: {e}"))?;
    let source = peer.enliven(source);
    let purse = vat.send(&source, "make_purse", vec![Val::int(initial)]);
    let incoming = vat.send(&purse, "sprout", Vec::new());
    let uris = [
        vat.send(&purse, "sturdyref", Vec::new()),
        vat.send(&incoming, "sturdyref", Vec::new()),
    ];
    let mut far = Vec::new();
    for answer in uris {
        let waiter = vat.clone();
        let got = tokio::task::spawn_blocking(move || waiter.block_on(&answer, START_TIMEOUT))
            .await?
            .map_err(|e| anyhow!("getting the wallet's purses: {e}"))?;
        let uri = got
            .as_str()
            .ok_or_else(|| anyhow!("the mint's purses give no sturdyref"))?;
        let sturdy =
            SturdyRef::from_uri(uri).map_err(|e| anyhow!("the mint gave a bad sturdyref: {e}"))?;
        far.push(peer.sturdy(sturdy));
    }
    let (Some(incoming), Some(purse)) = (far.pop(), far.pop()) else {
        bail!("the mint gave no purses");
    };
    let made = vat.run(move |cx| {
        let (wallet, payee) = new_wallet(cx, purse, incoming, enliven);
        cx.set_root("wallet", Some(&wallet))?;
        cx.set_root("payee", Some(&payee))?;
        Ok(Val::null())
    });
    let waiter = vat.clone();
    tokio::task::spawn_blocking(move || waiter.block_on(&made, START_TIMEOUT))
        .await?
        .map_err(|e| anyhow!("making the wallet: {e}"))?;
    Ok(())
}

/// Creates the state folder (mode 0700) if it does not exist.
pub(crate) fn make_state_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    // An existing folder is taken only if it is a real folder (not a link)
    // that nobody else can read or write: it holds the vat's key and
    // capabilities.
    let meta = fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.file_type().is_dir() {
        bail!("{} is not a folder (a symbolic link?)", dir.display());
    }
    if meta.mode() & 0o077 != 0 {
        bail!(
            "{} is open to others (mode {:o}); it holds the vat's key and capabilities: chmod 700 it",
            dir.display(),
            meta.mode() & 0o777
        );
    }
    Ok(())
}
