//! Runs the OCapN test peer: `test-peer [ocapn test-peer] --port N [--current]`.
//! Prints the peer's `ocapn://` locator as the first line, then serves until
//! killed. (The `pola` binary offers the same as `pola ocapn test-peer`.)
#![forbid(unsafe_code)]

use std::io::Write as _;

use pola_peer::PeerConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = 0u16;
    let mut config = PeerConfig::test_suite();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => port = it.next().ok_or("--port needs a value")?.parse()?,
            "--current" => config = PeerConfig::default(),
            _ => {}
        }
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let served = pola_peer::test_peer::serve("127.0.0.1", port, config).await?;
        println!("{}", served.peer.location().to_uri());
        std::io::stdout().flush()?;
        std::future::pending::<()>().await;
        Ok(())
    })
}
