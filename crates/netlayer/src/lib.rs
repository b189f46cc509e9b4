//! pola netlayer layer (see DESIGN.md).
#![forbid(unsafe_code)]
