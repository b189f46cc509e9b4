//! Noise netlayer benchmarks (filled in below).
fn main() {}
