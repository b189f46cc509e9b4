//! Each app packs with `pola_powerbox::pack` (the same checks as `pola
//! caplet pack` and the desk's install), and Granma's rules judge the
//! manifests as intended: the stock apps raise no warning, the hostile app
//! every one.

use std::collections::BTreeSet;
use std::path::Path;

use pola_desk_apps::{HOSTILE, STOCK, StockApp};
use pola_powerbox::rules::{InstalledApp, warnings};
use pola_powerbox::{Icon, Manifest, Package, pack};

fn packed(app: &StockApp) -> Package {
    let bytes = pack(app.manifest, app.wasm.to_vec(), Some(app.icon.to_vec()))
        .unwrap_or_else(|e| panic!("{}: {e}", app.id));
    Package::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", app.id))
}

fn installed(app: &StockApp) -> InstalledApp {
    let p = packed(app);
    InstalledApp {
        pet: p.manifest.name.clone(),
        calls_itself: p.manifest.name,
        icon_hash: p.icon.as_ref().map(Icon::hash),
    }
}

fn rules(manifest: &Manifest, icon: Option<&Icon>, others: &[InstalledApp]) -> BTreeSet<u8> {
    let home = Path::new("/home/ada");
    warnings(manifest, icon, others, &home.join("Documents"), home)
        .into_iter()
        .map(|w| w.rule)
        .collect()
}

#[test]
fn every_app_packs_and_its_package_decodes_to_the_same_manifest() {
    for app in STOCK.iter().chain([&HOSTILE]) {
        let p = packed(app);
        let again = Manifest::from_toml(app.manifest).unwrap();
        assert_eq!(p.manifest, again, "{}", app.id);
        assert_eq!(p.wasm, app.wasm, "{}", app.id);
        assert!(p.icon.is_some(), "{}", app.id);
    }
}

#[test]
fn the_stock_apps_raise_no_warning_and_the_hostile_app_raises_all_six() {
    let stock: Vec<InstalledApp> = STOCK.iter().map(installed).collect();
    for (i, app) in STOCK.iter().enumerate() {
        let p = packed(app);
        let others: Vec<InstalledApp> = stock
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| a.clone())
            .collect();
        let got = rules(&p.manifest, p.icon.as_ref(), &others);
        assert!(got.is_empty(), "{}: rules {got:?}", app.id);
    }
    let p = packed(&HOSTILE);
    let got = rules(&p.manifest, p.icon.as_ref(), &stock);
    assert_eq!(got, (1..=6).collect(), "hostile");
}
