//! A stand-in for the `pola` binary's OCapN subcommands, compiling the very
//! module the binary uses (`crates/cli/src/ocapn.rs`):
//!
//! ```text
//! pola-ocapn ocapn test-peer --port N
//! pola-ocapn call URI METHOD [ARGS...]
//! ```
#![forbid(unsafe_code)]

#[path = "../../cli/src/ocapn.rs"]
mod ocapn;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ocapn", "test-peer", rest @ ..] => {
            let port = match rest {
                ["--port", p] => p.parse()?,
                [] => 0,
                _ => anyhow::bail!("usage: ocapn test-peer [--port N]"),
            };
            ocapn::test_peer(port)
        }
        ["call", uri, method, rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
            ocapn::call(uri, method, &rest)
        }
        _ => {
            anyhow::bail!("usage: pola-ocapn (ocapn test-peer --port N | call URI METHOD ARGS...)")
        }
    }
}
