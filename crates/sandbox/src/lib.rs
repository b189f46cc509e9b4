//! pola sandbox layer (see DESIGN.md).
#![forbid(unsafe_code)]
