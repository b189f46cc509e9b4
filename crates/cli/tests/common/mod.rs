//! Helpers shared by the cli's integration tests: scratch folders and a
//! running `pola serve`.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use pola_captp::locator::SturdyRef;
use pola_netlayer::{Identity, NoiseNetlayer};
use pola_peer::{Peer, PeerConfig, PeerHandle};
use pola_vat::{Ref, Val, Vat, WaitError};

pub const POLA: &str = env!("CARGO_BIN_EXE_pola");
pub const START: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique(tag: &str) -> String {
    format!(
        "pola{}{}{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub use pola_testkit::TempDir;

/// A running `pola serve`, killed on drop.
pub struct Served {
    pub child: Child,
    /// `(name, uri)` per printed object.
    pub objects: Vec<(String, String)>,
}

impl Served {
    /// Runs `cmd` (a `pola serve …`) and reads its `NAME URI` lines up to
    /// `ready`.
    pub fn start(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning pola serve");
        let rx = pola_testkit::stdout_lines(&mut child);
        let mut served = Served {
            child,
            objects: Vec::new(),
        };
        loop {
            let line = rx
                .recv_timeout(START)
                .expect("pola serve printed no `ready` in time (see its stderr)");
            if line == "ready" {
                return served;
            }
            let (name, uri) = line.split_once(' ').expect("a `NAME URI` line");
            served.objects.push((name.to_owned(), uri.to_owned()));
        }
    }

    pub fn uri(&self, name: &str) -> &str {
        &self
            .objects
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} served"))
            .1
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a client waits for an answer.
pub const T: Duration = Duration::from_secs(20);

/// A free loopback port (so URIs stay the same across restarts), below
/// the kernel's ephemeral range: a port the kernel hands to any `bind(0)`
/// or outgoing connection could be taken while a server is restarted.
/// Never the same twice in one test process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOW: u16 = 20000;
    let mut given = GIVEN.lock().unwrap();
    if ephemeral_low > LOW + 1000 {
        let span = u32::from(ephemeral_low - LOW);
        let seed = std::process::id().wrapping_mul(7919)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        for i in 0..span {
            let port = LOW + u16::try_from((seed.wrapping_add(i)) % span).unwrap();
            if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.push(port);
                return port;
            }
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    given.push(port);
    port
}

/// Starts `pola serve ROLE… --listen 127.0.0.1 --port PORT --state DIR`.
pub fn serve(state: &Path, port: u16, role: &[&str]) -> Served {
    let mut cmd = Command::new(POLA);
    cmd.arg("serve")
        .args(role)
        .args(["--listen", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--state")
        .arg(state);
    Served::start(cmd)
}

/// A client vat and peer in this process.
pub struct Client {
    pub vat: Vat,
    pub peer: PeerHandle,
    _peer: Peer,
    _rt: tokio::runtime::Runtime,
}

impl Client {
    pub fn new() -> Client {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let net = rt
            .block_on(NoiseNetlayer::bind(
                Identity::generate().unwrap(),
                "127.0.0.1",
                0,
            ))
            .unwrap();
        let vat = Vat::new("client");
        let peer = {
            let _g = rt.enter();
            Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap()
        };
        Client {
            vat,
            peer: peer.handle(),
            _peer: peer,
            _rt: rt,
        }
    }

    /// The object at `uri` (a far promise).
    pub fn fetch(&self, uri: &str) -> Ref {
        self.peer.enliven(SturdyRef::from_uri(uri).unwrap())
    }

    /// Calls `method` on the object at `uri` (fetched afresh) and waits.
    pub fn call(&self, uri: &str, method: &'static str, args: Vec<Val>) -> Result<Val, WaitError> {
        let target: Ref = self.peer.enliven(SturdyRef::from_uri(uri).unwrap());
        self.vat.block_on(&self.vat.send(&target, method, args), T)
    }

    /// A purse of `amount` from the mint at `mint`, as its sturdyref URI.
    pub fn purse(&self, mint: &str, amount: i64) -> String {
        let p = self
            .call(mint, "make_purse", vec![Val::int(amount)])
            .unwrap();
        let p = p.as_ref().cloned().unwrap();
        let uri = self
            .vat
            .block_on(&self.vat.send(&p, "sturdyref", vec![]), T)
            .unwrap();
        uri.as_str().unwrap().to_owned()
    }

    /// Moves `amount` from purse `from` into purse `to` (URIs).
    pub fn pay(&self, from: &str, to: &str, amount: i64) {
        let from = self.fetch(from);
        self.call(to, "deposit", vec![Val::int(amount), Val::Ref(from)])
            .unwrap();
    }

    /// The balances of the purses at `purses` (URIs).
    pub fn balances(&self, purses: &[String]) -> Vec<i64> {
        purses
            .iter()
            .map(|u| self.int(u, "balance", vec![]))
            .collect()
    }

    pub fn int(&self, uri: &str, method: &'static str, args: Vec<Val>) -> i64 {
        self.call(uri, method, args)
            .unwrap_or_else(|e| panic!("{method}: {e:?}"))
            .as_i64()
            .unwrap()
    }
}

/// Runs `pola args…`: (exit code, stdout, stderr).
pub fn pola(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(POLA).args(args).output().expect("run pola");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
