//! Making the capability a grant describes (from `pola_powerbox::caps`).

use std::path::Path;

use pola_powerbox::caps::{self, Access, ClockCap, RandomCap, RelPath, WebCap};
use pola_vat::{Ref, Turn};

use crate::desk::DeskError;
use crate::model::Spec;

/// Makes the capability for `spec` in the running turn. `offers` are the
/// objects running apps offer for an object spec's interface (the first
/// is used).
pub fn make(
    cx: &mut Turn<'_>,
    documents: &Path,
    spec: &Spec,
    offers: &[Ref],
) -> Result<Ref, DeskError> {
    let fail = |e: caps::CapError| DeskError::bad(e.to_string());
    let access = |write: bool| {
        if write {
            Access::ReadWrite
        } else {
            Access::Read
        }
    };
    Ok(match spec {
        Spec::File { rel, write } => {
            let root = caps::open_documents(documents).map_err(fail)?;
            let rel = RelPath::parse(rel).map_err(fail)?;
            cx.spawn(caps::file(&root, &rel, access(*write)).map_err(fail)?)
        }
        Spec::Folder { rel, write } => {
            let root = caps::open_documents(documents).map_err(fail)?;
            let rel = RelPath::parse(rel).map_err(fail)?;
            cx.spawn(caps::folder(&root, &rel, access(*write)).map_err(fail)?)
        }
        Spec::Web { sites } => {
            let sites = match sites {
                None => caps::Sites::Anywhere,
                Some(list) => caps::Sites::parse(list).map_err(fail)?,
            };
            cx.spawn(WebCap::new(sites, caps::WebOptions::default()))
        }
        Spec::Clock => cx.spawn(ClockCap),
        Spec::Random => cx.spawn(RandomCap),
        Spec::Storage => return Err(DeskError::bad("storage is the app's own")),
        Spec::Object { interface, .. } => offers
            .first()
            .cloned()
            .ok_or_else(|| DeskError::bad(format!("no running app offers {interface:?} now")))?,
    })
}
