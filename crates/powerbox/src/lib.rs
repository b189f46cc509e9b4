//! The powerbox layer of pola: what a person installs and what an app is
//! given.
//!
//! - packages and manifests (a caplet's wasm, its icon, and the
//!   endowments it asks for, each with a reason);
//! - Granma's rules of POLA, the install-time warnings, as one pure
//!   function;
//! - look-alike detection for names (Unicode confusable skeletons plus
//!   edit distance) and icons (a perceptual hash);
//! - the capabilities a powerbox grants: one file or folder (cap-std: no
//!   path, no parent, no `..`, no symbolic links), web access to named
//!   sites, a clock, randomness.
//!
//! It knows nothing of HTTP or of the desk's page: `pola-desk` draws the
//! dialogs and wires grants through revocable forwarders.
//! The formats are specified in `crates/desk/PROTOCOL.md`.
#![forbid(unsafe_code)]

pub mod icon;
pub mod lookalike;
pub mod origin;
pub mod package;
pub mod rules;
pub mod text;
pub mod words;

pub use icon::{Icon, IconError, looks_like};
pub use lookalike::name_looks_like;
pub use origin::{Origin, OriginError};
pub use package::{
    Access, Kind, Manifest, ManifestError, Package, PackageError, Place, Request, Sites, pack,
};
pub use rules::{InstalledApp, Warning, warnings};
pub use words::describe;
pub mod caps;
