//! The desk's stock apps. (Being built: see `build.rs`.)
#![forbid(unsafe_code)]
