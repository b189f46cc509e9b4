//! The pola desk: a web desktop for confined WebAssembly apps.
//!
//! The protocols (packages, the app protocol with its pane and powerbox,
//! the desk's HTTP API) are specified in `PROTOCOL.md` next to this
//! crate.
#![forbid(unsafe_code)]
