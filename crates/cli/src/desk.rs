//! `pola desk`'s companions: `pola install`, `pola caplet pack` and the
//! package side of `pola caplet check`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use pola_powerbox::package::PackageError;

use crate::shown;

/// The desk's default state folder: `$XDG_DATA_HOME/pola/desk`, else
/// `~/.local/share/pola/desk`.
///
/// # Errors
/// Neither variable is set.
pub fn default_state() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("pola/desk"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("no HOME: give --state DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/pola/desk"))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `pola caplet pack`.
///
/// # Errors
/// An unreadable input or a package the desk would refuse.
pub fn pack(manifest: &Path, wasm: &Path, icon: Option<&Path>, output: &Path) -> Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let icon = icon.map(read).transpose()?;
    // Checked against the desk's bounds: packages are for the desk.
    let bytes = pola_desk::pack_package(&text, read(wasm)?, icon)
        .map_err(|e| anyhow!("{}: {}", manifest.display(), e))?;
    std::fs::write(output, &bytes).with_context(|| format!("writing {}", output.display()))?;
    println!("{} ({} bytes)", output.display(), bytes.len());
    Ok(())
}

/// `pola caplet check PKG`: the manifest, the module's confinement, and
/// whether it loads under the desk's bounds (those the desk decodes and
/// loads apps with), compiling included.
///
/// # Errors
/// Never for a bad package (that is the exit status): only I/O.
pub fn check_package(file: &Path, bytes: &[u8]) -> Result<()> {
    let path = shown(&file.display().to_string());
    let config = pola_desk::sandbox_config();
    let bounds = format!(
        "bounds: the desk's (apps run under them): {}",
        crate::bounds_text(&config)
    );
    let package = match pola_desk::decode_package(bytes) {
        Ok(p) => p,
        Err(e) => {
            println!("{path}: refused: {}", shown(&e.to_string()));
            match e {
                PackageError::NotConfined { .. } => println!("confined: NO"),
                PackageError::WouldNotLoad { problem } => {
                    println!("confined: yes");
                    println!("{bounds}");
                    println!("loads: NO");
                    println!("  - {}", shown(&problem));
                }
                _ => {}
            }
            std::process::exit(1);
        }
    };
    if let Err(e) = crate::load_under(&config, &package.wasm) {
        println!("{path}: refused: its module does not load: {}", shown(&e));
        println!("confined: yes");
        println!("{bounds}");
        println!("loads: NO");
        std::process::exit(1);
    }
    let m = &package.manifest;
    println!("{path}");
    println!("calls itself: {}", shown(&m.name));
    for r in &m.requests {
        println!(
            "  asks: {} — {}",
            shown(&pola_powerbox::words::describe(r)),
            shown(&r.reason)
        );
    }
    println!("confined: yes");
    println!("{bounds}");
    println!("loads: yes (within these bounds; compiled)");
    println!("ok: the desk would accept it (its module is confined and loads)");
    Ok(())
}

/// `pola install PKG`.
///
/// # Errors
/// A refused package, warnings without --despite-warnings, or a desk
/// that is running (its store is locked).
pub fn install(
    package: &Path,
    state: &Path,
    documents: Option<PathBuf>,
    name: Option<String>,
    despite_warnings: bool,
) -> Result<()> {
    let bytes = read(package)?;
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let documents = documents.unwrap_or_else(|| state.join("Documents"));
    std::fs::create_dir_all(&documents)
        .with_context(|| format!("creating {}", documents.display()))?;
    pola_desk::check_apart(state, &documents)?;
    let desk = pola_desk::Desk::open(&pola_desk::Options {
        state: state.to_path_buf(),
        documents: documents.canonicalize()?,
    })?;
    let review = desk
        .review(&bytes)
        .map_err(|e| anyhow!("{}: {e}", package.display()))?;
    let warnings = review["warnings"].as_array().cloned().unwrap_or_default();
    for w in &warnings {
        println!(
            "warning (Granma's rule {}): {}",
            w["rule"],
            shown(w["text"].as_str().unwrap_or_default())
        );
    }
    if !warnings.is_empty() && !despite_warnings {
        desk.shutdown();
        bail!(
            "not installed: Granma's rules warn (install it in the desk to decide each request, or give --despite-warnings)"
        );
    }
    let calls_itself = review["calls_itself"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pet = name.unwrap_or(calls_itself);
    let result = desk.install_trusted(&bytes, &pet);
    desk.shutdown();
    let id = result.map_err(|e| anyhow!("{e}"))?;
    println!(
        "installed {} as {:?} (app {id})",
        package.display(),
        shown(&pet)
    );
    Ok(())
}
