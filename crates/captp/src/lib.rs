//! pola captp layer (see DESIGN.md).
#![forbid(unsafe_code)]
