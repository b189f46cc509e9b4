//! pola vat layer (see DESIGN.md).
#![forbid(unsafe_code)]
