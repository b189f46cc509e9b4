//! Integration tests for pola-syrup: the zoo.bin test vector, properties,
//! and the text form.
#![allow(clippy::unwrap_used)]

mod attacks;
mod cost;
mod props;
mod zoo;
