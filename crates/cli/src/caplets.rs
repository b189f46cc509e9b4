//! Caplet packages served by `pola serve` (the `[[caplet]]` entries of
//! `pola.toml`): Rserve's object-capability mode generalised, a server
//! whose only abilities are the confined code it was given.
//!
//! Each caplet is a persistent object of the served vat (root
//! `caplet:NAME`) running its package's module under its own quotas,
//! with its state in its storage (see `pola_sandbox::vat`). It is made on
//! the first start; later starts resume it with its storage. When
//! `pola.toml` names a different package for it (a new `sha256`), the
//! caplet is upgraded in place: the same object (every reference to it)
//! runs the new code over the same storage.
//! It holds no capability but the ones clients send it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use pola_sandbox::vat::{CapletCode, CapletObject, Policy, UPGRADE, Upgrader, VatLink, kinds_with};
use pola_sandbox::{Config as SandboxConfig, Sandbox};
use pola_vat::persist::Kinds;
use pola_vat::{Ref, Val, Vat, error};
use sha2::{Digest as _, Sha256};

use crate::config::Caplet;

/// The root of caplet `name`.
fn root_name(name: &str) -> String {
    format!("caplet:{name}")
}

/// The sandboxes of a host's caplets: one per package (its quotas), and
/// a default one for stored code no package names any more.
#[derive(Clone)]
pub struct Sandboxes {
    by_hash: Arc<HashMap<[u8; 32], Sandbox<VatLink>>>,
    default: Sandbox<VatLink>,
}

impl Sandboxes {
    /// Makes the sandboxes for `caplets`.
    ///
    /// # Errors
    /// The WebAssembly engine could not be set up.
    pub fn new(caplets: &[Caplet]) -> Result<Sandboxes> {
        // The config the check of pola.toml judged each package under
        // (`Quotas::sandbox_config`), so what it accepted loads here.
        let make = |c: Option<&Caplet>| -> Result<Sandbox<VatLink>> {
            let config = c.map_or_else(SandboxConfig::default, |c| c.quotas.sandbox_config());
            Sandbox::new(config).map_err(|e| anyhow!("setting up WebAssembly: {e}"))
        };
        let mut by_hash = HashMap::new();
        let mut quotas: HashMap<[u8; 32], &Caplet> = HashMap::new();
        for c in caplets {
            if let Some(first) = quotas.insert(c.sha256, c)
                && first.quotas != c.quotas
            {
                bail!(
                    "caplets {:?} and {:?} run the same package with different quotas; give them the same quotas",
                    first.name,
                    c.name
                );
            }
            by_hash.insert(c.sha256, make(Some(c))?);
        }
        Ok(Sandboxes {
            by_hash: Arc::new(by_hash),
            default: make(None)?,
        })
    }

    fn pick(&self, wasm: &[u8]) -> Sandbox<VatLink> {
        let hash: [u8; 32] = Sha256::digest(wasm).into();
        self.by_hash
            .get(&hash)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }

    /// Registers the caplet kinds, reviving code in its package's sandbox.
    pub fn register(&self, kinds: &mut Kinds) {
        let me = self.clone();
        kinds_with(kinds, move |wasm| me.pick(wasm));
    }
}

/// The caplet objects to serve, `(name, object)`, made on the first start
/// and upgraded when their package changed.
///
/// # Errors
/// A package changed on disk since the config was checked, does not
/// load, or the vat refused the turn.
pub fn serve_all(
    vat: &Vat,
    sandboxes: &Sandboxes,
    caplets: &[Caplet],
    timeout: Duration,
) -> Result<Vec<(String, Ref)>> {
    let mut served = Vec::new();
    for c in caplets {
        let wasm = std::fs::read(&c.package)
            .map_err(|e| anyhow!("caplet {:?}: reading {}: {e}", c.name, c.package.display()))?;
        let hash: [u8; 32] = Sha256::digest(&wasm).into();
        if hash != c.sha256 {
            bail!(
                "caplet {:?}: {} changed since pola.toml was checked (its SHA-256 differs)",
                c.name,
                c.package.display()
            );
        }
        let code = CapletCode::load(&sandboxes.pick(&wasm), &wasm)
            .map_err(|e| anyhow!("caplet {:?}: {e}", c.name))?;
        let name = root_name(&c.name);
        let existing = vat.root(&name);
        let root = name.clone();
        let made = vat.run(move |cx| match existing {
            None => {
                let code = cx.spawn(code);
                let object = cx.spawn(CapletObject::persistent(code, Policy::Persistent));
                cx.set_root(&root, Some(&object))?;
                Ok(Val::null())
            }
            Some(old) => {
                let caplet = cx
                    .inspect::<CapletObject>(&old)
                    .ok_or_else(|| error("the stored caplet cannot be revived"))?;
                let same = caplet
                    .code()
                    .and_then(|r| cx.inspect::<CapletCode>(r))
                    .is_some_and(|stored| Sha256::digest(stored.wasm())[..] == hash[..]);
                if same {
                    return Ok(Val::null());
                }
                // A new package: the same object runs the new code over
                // its storage (an upgrade in place, so every reference to
                // it sees the new code).
                let code = cx.spawn(code);
                let upgrader = cx.spawn(Upgrader);
                Ok(Val::Ref(cx.send(
                    &old,
                    UPGRADE,
                    vec![Val::Ref(upgrader), Val::Ref(code)],
                )))
            }
        });
        vat.block_on(&made, timeout)
            .map_err(|e| anyhow!("caplet {:?}: {e:?}", c.name))?;
        let object = vat
            .root(&name)
            .ok_or_else(|| anyhow!("caplet {:?}: no object", c.name))?;
        served.push((c.name.clone(), object));
    }
    Ok(served)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// What the check of `pola.toml` accepts, the caplet's sandbox loads,
    /// and what it refuses, that sandbox refuses: both use the caplet's
    /// quotas.
    #[test]
    fn the_check_and_the_loader_agree_under_each_caplets_quotas() {
        let dir = std::env::temp_dir().join(format!("pola-caplets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // 20 MiB of initial memory: over the default 16 MiB.
        let wasm = wat::parse_str(
            r#"(module
                (memory (export "memory") 320)
                (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#,
        )
        .unwrap();
        std::fs::write(dir.join("big.wasm"), &wasm).unwrap();
        let sha = crate::hex::encode(&Sha256::digest(&wasm));
        let file = dir.join("pola.toml");
        for (quota, loads) in [(32u64 << 20, true), (16 << 20, false), (1 << 20, false)] {
            let text = format!(
                "[[caplet]]\nname = \"big\"\npackage = \"big.wasm\"\nsha256 = \"{sha}\"\nquotas = {{ memory_bytes = {quota} }}\n"
            );
            let checked = crate::config::Config::parse(&text, &file);
            assert_eq!(checked.is_ok(), loads, "quota {quota}: {checked:?}");
            // The caplet's sandbox, built from the same quotas.
            let caplet = Caplet {
                name: "big".into(),
                package: dir.join("big.wasm"),
                sha256: Sha256::digest(&wasm).into(),
                quotas: crate::config::Quotas {
                    memory_bytes: Some(quota),
                    ..Default::default()
                },
                line: 1,
            };
            let sandboxes = Sandboxes::new(std::slice::from_ref(&caplet)).unwrap();
            let loaded = CapletCode::load(&sandboxes.pick(&wasm), &wasm);
            assert_eq!(loaded.is_ok(), loads, "quota {quota}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
