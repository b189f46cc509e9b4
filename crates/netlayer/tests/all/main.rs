//! Integration tests for pola-netlayer: real TCP sockets on 127.0.0.1 and
//! the in-memory network.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod memory;
mod noise;
mod noise_endo;
mod tcp;

use pola_netlayer::{MessageReader, NetError};

/// Reads until `want` bytes have arrived (or end of stream).
pub async fn read_exactly(r: &mut dyn MessageReader, want: usize) -> Result<Vec<u8>, NetError> {
    let mut got = Vec::new();
    while got.len() < want {
        match r.recv().await? {
            Some(chunk) => got.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(got)
}
