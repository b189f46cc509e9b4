//! The `pola` binary.
#![forbid(unsafe_code)]

fn main() {
    println!("pola");
}
