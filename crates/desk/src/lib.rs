//! The pola desk: a web desktop for confined WebAssembly apps, in the
//! line of CapDesk.
//!
//! A person installs app packages (a caplet plus a manifest of the
//! endowments it asks for, each with a reason), sees Granma's rules as
//! warnings, grants, narrows or refuses each request, and names the app.
//! A launched app gets a window: a pane it draws in with view trees (no
//! HTML, CSS or script of its own ever reaches the page), a powerbox to
//! ask the user for more at run time, and its grants, each behind a
//! revocable forwarder of this launch. Closing the window revokes them
//! all; the audit view shows every grant, where it came from and how
//! often it was used, and revokes any of them at once.
//!
//! The protocols (packages, the app protocol with its pane and powerbox,
//! the desk's HTTP API) are specified in `PROTOCOL.md` next to this
//! crate. The desk is reached only on loopback, with an unguessable token
//! in its URL ([`web`]).
#![forbid(unsafe_code)]
// `Val` dictionaries hold `Ref`s, whose identity (Eq/Ord) reads only
// immutable ids; the interior mutability clippy sees is behind an Arc.
#![allow(clippy::mutable_key_type)]

mod caps;
pub mod desk;
pub mod model;
pub mod pane;
pub mod web;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};

pub use desk::{Desk, DeskError, Options};

/// The store row holding the desk's URL token.
const TOKEN_ROW: &str = "desk-token";
/// The store row saying the first start (stock apps) is done.
const STARTED_ROW: &str = "desk-started";

/// The quotas every app runs under.
pub fn sandbox_config() -> pola_sandbox::Config {
    let mut config = pola_sandbox::Config::default();
    config.memory_bytes = 64 * 1024 * 1024;
    config
}

/// Decodes and checks a package for this desk: its module is judged
/// under [`sandbox_config`], the bounds the desk loads apps with, so a
/// package accepted here is one the desk's sandbox loads (and one refused
/// names the desk's bound it exceeds).
///
/// # Errors
/// The package's first problem.
pub fn decode_package(
    bytes: &[u8],
) -> Result<pola_powerbox::package::Package, pola_powerbox::package::PackageError> {
    pola_powerbox::package::Package::decode_with(bytes, &sandbox_config())
}

/// Packs a package for this desk ([`pola_powerbox::package::pack_with`]
/// under [`sandbox_config`]).
///
/// # Errors
/// The first problem with the manifest, icon or module.
pub fn pack_package(
    manifest_toml: &str,
    wasm: Vec<u8>,
    icon: Option<Vec<u8>>,
) -> Result<Vec<u8>, pola_powerbox::package::PackageError> {
    pola_powerbox::package::pack_with(manifest_toml, wasm, icon, &sandbox_config())
}

/// How `pola desk` runs.
pub struct RunOptions {
    /// The state folder.
    pub state: PathBuf,
    /// The documents folder (default: `STATE/Documents`).
    pub documents: Option<PathBuf>,
    /// The port on 127.0.0.1 (0 picks one).
    pub port: u16,
}

/// The token in the desk's URL: made once per state folder (256 bits,
/// URL-safe base64), kept in the store.
///
/// # Errors
/// The store failed.
pub fn token(desk: &Desk) -> Result<String> {
    use base64::Engine as _;
    if let Some(t) = desk.store().host_get(TOKEN_ROW)? {
        return String::from_utf8(t).map_err(|_| anyhow!("the desk's token row is damaged"));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness for the desk's token: {e}"))?;
    let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    desk.store().host_put(TOKEN_ROW, Some(t.as_bytes()))?;
    Ok(t)
}

/// The state folder must not be the documents folder or inside it: an
/// app given a folder could otherwise read the desk's store (its token,
/// every app's storage) or replace it.
///
/// # Errors
/// They overlap, or the state folder cannot be resolved.
pub fn check_apart(state: &std::path::Path, documents: &std::path::Path) -> Result<()> {
    let state = state
        .canonicalize()
        .with_context(|| format!("opening {}", state.display()))?;
    let documents = documents
        .canonicalize()
        .with_context(|| format!("opening {}", documents.display()))?;
    if state.starts_with(&documents) {
        return Err(anyhow!(
            "the state folder {} is inside the documents folder {}: apps given documents could read or replace the desk's own store; choose folders apart (--state, --documents)",
            state.display(),
            documents.display()
        ));
    }
    Ok(())
}

fn make_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// The first start: a documents folder with a note, and the stock apps.
fn first_start(desk: &Desk) -> Result<()> {
    let notes = desk.documents().join("notes.txt");
    if !notes.exists() {
        std::fs::write(
            &notes,
            "Welcome to the pola desk.\n\nThis file is in your documents folder. The Editor was given it when it was installed; no other app can read it unless you give it.\n",
        )
        .with_context(|| format!("writing {}", notes.display()))?;
    }
    for app in pola_desk_apps::STOCK {
        let package = pack_package(app.manifest, app.wasm.to_vec(), Some(app.icon.to_vec()))
            .map_err(|e| anyhow!("stock app {}: {e}", app.id))?;
        let manifest = decode_package(&package)
            .map_err(|e| anyhow!("stock app {}: {e}", app.id))?
            .manifest;
        desk.install_trusted(&package, &manifest.name)
            .map_err(|e| anyhow!("installing stock app {}: {e}", app.id))?;
    }
    Ok(())
}

/// Runs the desk until the process ends: prints one line
/// `desk: http://127.0.0.1:PORT/d/TOKEN/`.
///
/// # Errors
/// The state folder, store or port could not be used.
pub fn run(opts: &RunOptions) -> Result<()> {
    make_dir(&opts.state)?;
    let documents = opts
        .documents
        .clone()
        .unwrap_or_else(|| opts.state.join("Documents"));
    make_dir(&documents)?;
    let documents = documents
        .canonicalize()
        .with_context(|| format!("opening {}", documents.display()))?;
    check_apart(&opts.state, &documents)?;
    let desk = Desk::open(&Options {
        state: opts.state.clone(),
        documents,
    })?;
    if desk.store().host_get(STARTED_ROW)?.is_none() {
        if desk.is_empty() {
            first_start(&desk)?;
        }
        desk.store().host_put(STARTED_ROW, Some(b"1"))?;
    }
    let token = token(&desk)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the desk's runtime")?;
    let desk2: Arc<Desk> = desk.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .with_context(|| format!("listening on 127.0.0.1:{}", opts.port))?;
        let port = listener.local_addr()?.port();
        let mut out = std::io::stdout().lock();
        writeln!(out, "desk: http://127.0.0.1:{port}/d/{token}/")?;
        out.flush()?;
        drop(out);
        web::serve(listener, desk2, &token).await?;
        Ok::<(), anyhow::Error>(())
    })?;
    desk.shutdown();
    Ok(())
}
