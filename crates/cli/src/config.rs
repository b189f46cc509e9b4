//! `DIR/pola.toml`: the one declarative file of what a host serves and
//! where; everything else about the host (identity, Swiss numbers, object
//! state) is state and lives in `DIR/state.redb`.
//!
//! ```toml
//! [net]
//! netlayer = "noise"          # the only one pola serve offers yet
//! listen = "127.0.0.1"        # address to listen on
//! port = 7777                 # 0 picks a free port (URIs then change)
//! advertise = "example.org"   # optional: host put in the URIs
//!
//! [mint]                      # serve a new currency: `mint` and `issuer`
//!
//! [wallet]                    # serve `wallet` and `payee` over a purse
//! from = "ocapn://….noise/s/…?host=…&port=…"   # a mint or issuer
//! initial = 100
//!
//! [[caplet]]                  # a confined WebAssembly package
//! name = "counter"
//! package = "counter.wasm"    # relative to the folder of pola.toml
//! sha256 = "…64 hex digits…"
//! quotas = { fuel_per_call = 50000000, memory_bytes = 16777216 }
//! # also fuel_per_second = 1000000000, fuel_burst = 5000000000: the
//! # budget across turns (raise it for a caplet that serves many calls)
//! ```
//!
//! Invariants (upheld here): a [`Config`] exists only for a file that
//! parsed (TOML, no unknown keys, right types) and validated as a whole:
//! something is served, the port is in range, a wallet names a sturdyref,
//! caplet names are valid and distinct, every caplet package exists,
//! hashes to its `sha256` and is a confined module. Every error names
//! `FILE:LINE`. Nothing is started before this check has passed.
//!
//! How the file relates to `pola serve`'s flags (see [`resolve`]): no
//! role flags → run from the file; role flags and no file → write the file
//! from the flags (mode 0600, temporary file, fsync, link, fsync of the
//! folder) and run from it; role flags and a file → they must agree.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{Read as _, Write as _};
use std::ops::Range;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use pola_captp::locator::SturdyRef;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use toml::Spanned;

/// The config file's name in a state folder.
pub const FILE_NAME: &str = "pola.toml";

/// Largest config file read.
const MAX_FILE: u64 = 1 << 20;

/// Largest caplet package read.
const MAX_PACKAGE: u64 = 64 << 20;

/// Names `pola serve` gives its own roles' objects; a caplet may not take
/// them.
const ROLE_NAMES: [&str; 4] = ["mint", "issuer", "wallet", "payee"];

/// Which netlayer a host listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Netlayer {
    /// Noise XX with the host's Ed25519 identity (encrypted).
    Noise,
    /// Plain TCP, for interop tests only (not offered by `pola serve`).
    TcpTestingOnly,
}

/// Where a host listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    /// The netlayer.
    pub netlayer: Netlayer,
    /// Address to listen on.
    pub listen: String,
    /// TCP port (0 picks one at each start).
    pub port: u16,
    /// Host to put in URIs instead of `listen`.
    pub advertise: Option<String>,
}

/// The wallet role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wallet {
    /// The mint or issuer sturdyref URI the purse comes from.
    pub from: String,
    /// The opening balance asked of it.
    pub initial: u64,
}

/// Limits for a caplet's instances (the sandbox's defaults when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Fuel for each entry into the caplet.
    pub fuel_per_call: Option<u64>,
    /// Most linear memory of one instance, in bytes.
    pub memory_bytes: Option<u64>,
    /// The budget across turns: fuel per second of wall time.
    pub fuel_per_second: Option<u64>,
    /// The budget across turns: fuel when the bucket is full.
    pub fuel_burst: Option<u64>,
}

impl Quotas {
    /// The sandbox configuration the caplet runs under: the defaults with
    /// these quotas. Both the check of `pola.toml` and the loader use it,
    /// so a package the check accepts is one its sandbox loads.
    pub fn sandbox_config(&self) -> pola_sandbox::Config {
        let mut config = pola_sandbox::Config::default();
        if let Some(fuel) = self.fuel_per_call {
            config.fuel_per_call = fuel;
        }
        if let Some(bytes) = self.memory_bytes {
            config.memory_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(rate) = self.fuel_per_second {
            config.fuel_per_second = rate;
        }
        if let Some(burst) = self.fuel_burst {
            config.fuel_burst = burst;
        }
        config
    }
}

/// A caplet package to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caplet {
    /// The name its object is served under.
    pub name: String,
    /// The package file (resolved against the config's folder).
    pub package: PathBuf,
    /// Its SHA-256, checked against the file.
    pub sha256: [u8; 32],
    /// Its quotas.
    pub quotas: Quotas,
    /// The line of its `[[caplet]]` entry.
    pub line: usize,
}

/// A parsed, wholly validated `pola.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Where to listen.
    pub net: Net,
    /// Whether a mint is served.
    pub mint: bool,
    /// The wallet role, if served.
    pub wallet: Option<Wallet>,
    /// Caplet packages to serve.
    pub caplets: Vec<Caplet>,
    /// The text it was parsed from (what exports carry).
    pub text: String,
    /// Line of each top-level section (`net`, `mint`, `wallet`), for
    /// messages.
    lines: BTreeMap<&'static str, usize>,
}

/// Why a config file was refused: one or more `FILE:LINE: message`s.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Each fault: (line, message).
    pub faults: Vec<(usize, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (line, msg)) in self.faults.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{line}: {msg}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    net: Option<Spanned<RawNet>>,
    mint: Option<Spanned<RawMint>>,
    wallet: Option<Spanned<RawWallet>>,
    #[serde(default)]
    caplet: Vec<Spanned<RawCaplet>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNet {
    netlayer: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    advertise: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMint {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWallet {
    from: Option<Spanned<String>>,
    initial: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaplet {
    name: Spanned<String>,
    package: Spanned<String>,
    sha256: Spanned<String>,
    quotas: Option<Spanned<RawQuotas>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuotas {
    fuel_per_call: Option<Spanned<i64>>,
    memory_bytes: Option<Spanned<i64>>,
    fuel_per_second: Option<Spanned<i64>>,
    fuel_burst: Option<Spanned<i64>>,
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Collects faults with their lines.
struct Faults<'a> {
    text: &'a str,
    list: Vec<(usize, String)>,
}

impl Faults<'_> {
    fn at(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.list.push((line_of(self.text, span.start), msg.into()));
    }
}

impl Config {
    /// Reads and validates the config file at `file`.
    ///
    /// # Errors
    /// The file cannot be read (or is not a plain file), or any fault of
    /// [`Config::parse`].
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = read_plain(file, MAX_FILE).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            faults: vec![(0, e)],
        })?;
        let text = String::from_utf8(text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            faults: vec![(
                line_of(
                    &String::from_utf8_lossy(e.as_bytes()),
                    e.utf8_error().valid_up_to(),
                ),
                "the file is not UTF-8".to_string(),
            )],
        })?;
        Config::parse(&text, file)
    }

    /// Parses and validates config text that was read from `file` (caplet
    /// package paths are resolved against `file`'s folder).
    ///
    /// # Errors
    /// Every fault found, each with its line: TOML syntax, unknown keys,
    /// wrong types, nothing to serve, a port out of range, a wallet without
    /// `from` or with a `from` that is not a sturdyref, duplicate or
    /// reserved caplet names, a missing package, a hash that does not
    /// match, a module that is not confined.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let err = |faults| ConfigError {
            file: file.to_path_buf(),
            faults,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            err(vec![(line, e.message().trim().to_string())])
        })?;
        let mut faults = Faults {
            text,
            list: Vec::new(),
        };
        let mut lines = BTreeMap::new();
        let folder = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));

        let mut net = Net {
            netlayer: Netlayer::Noise,
            listen: "127.0.0.1".to_string(),
            port: 0,
            advertise: None,
        };
        if let Some(raw_net) = &raw.net {
            lines.insert("net", line_of(text, raw_net.span().start));
            let n = raw_net.get_ref();
            if let Some(layer) = &n.netlayer {
                match layer.get_ref().as_str() {
                    "noise" => net.netlayer = Netlayer::Noise,
                    "tcp-testing-only" => {
                        net.netlayer = Netlayer::TcpTestingOnly;
                        faults.at(
                        layer.span(),
                        "netlayer \"tcp-testing-only\" is not offered by pola serve (it is unencrypted, for interop tests); use \"noise\"",
                    );
                    }
                    other => faults.at(
                        layer.span(),
                        format!("unknown netlayer {other:?}; the one offered is \"noise\""),
                    ),
                }
            }
            if let Some(listen) = &n.listen {
                if host_ok(listen.get_ref()) {
                    net.listen = listen.get_ref().clone();
                } else {
                    faults.at(listen.span(), "listen must be a host name or address");
                }
            }
            if let Some(port) = &n.port {
                match u16::try_from(*port.get_ref()) {
                    Ok(p) => net.port = p,
                    Err(_) => faults.at(
                        port.span(),
                        format!("port {} is out of range (0 to 65535)", port.get_ref()),
                    ),
                }
            }
            if let Some(adv) = &n.advertise {
                if host_ok(adv.get_ref()) {
                    net.advertise = Some(adv.get_ref().clone());
                } else {
                    faults.at(adv.span(), "advertise must be a host name or address");
                }
            }
        }

        if let Some(m) = &raw.mint {
            lines.insert("mint", line_of(text, m.span().start));
        }

        let mut wallet = None;
        if let Some(w) = &raw.wallet {
            lines.insert("wallet", line_of(text, w.span().start));
            let inner = w.get_ref();
            let initial = match &inner.initial {
                None => Some(0),
                Some(i) => match u64::try_from(*i.get_ref()) {
                    Ok(v) if i64::try_from(v).is_ok() => Some(v),
                    _ => {
                        faults.at(i.span(), "initial must be 0 or more");
                        None
                    }
                },
            };
            match &inner.from {
                None => faults.at(
                    w.span(),
                    "[wallet] needs `from = \"ocapn://…\"`: the mint or issuer its purse comes from",
                ),
                Some(from) => match SturdyRef::from_uri(from.get_ref()) {
                    Ok(_) => {
                        if let Some(initial) = initial {
                            wallet = Some(Wallet {
                                from: from.get_ref().clone(),
                                initial,
                            });
                        }
                    }
                    Err(e) => faults.at(
                        from.span(),
                        format!("wallet `from` is not a sturdyref URI: {e}"),
                    ),
                },
            }
        }

        let mut caplets = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for c in &raw.caplet {
            let line = line_of(text, c.span().start);
            if let Some(caplet) = check_caplet(c.get_ref(), line, folder, &mut faults, &mut names) {
                caplets.push(caplet);
            }
        }

        if raw.mint.is_none() && raw.wallet.is_none() && raw.caplet.is_empty() {
            faults.list.push((
                1,
                "nothing to serve: add [mint], [wallet] or [[caplet]]".to_string(),
            ));
        }
        if !faults.list.is_empty() {
            faults.list.sort_by_key(|(line, _)| *line);
            return Err(err(faults.list));
        }
        Ok(Config {
            file: file.to_path_buf(),
            net,
            mint: raw.mint.is_some(),
            wallet,
            caplets,
            text: text.to_string(),
            lines,
        })
    }

    /// The line of section `name` (`net`, `mint`, `wallet`), or 1.
    pub fn line(&self, name: &str) -> usize {
        self.lines.get(name).copied().unwrap_or(1)
    }

    /// The TOML text of a config serving what `flags` say (for a first
    /// start with role flags).
    pub fn render(flags: &ServeFlags) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut t = String::from(
            "# pola serve: what this host serves, and where. Its state (identity,\n\
             # Swiss numbers, objects) is in state.redb beside this file.\n\
             # Written from the command line on the first start; edit and restart.\n\n",
        );
        t.push_str("[net]\nnetlayer = \"noise\"\n");
        t.push_str(&format!(
            "listen = {}\n",
            q(flags.listen.as_deref().unwrap_or("127.0.0.1"))
        ));
        t.push_str(&format!("port = {}\n", flags.port.unwrap_or(0)));
        if let Some(adv) = &flags.advertise {
            t.push_str(&format!("advertise = {}\n", q(adv)));
        }
        if flags.mint {
            t.push_str(
                "\n# A new currency: `mint` (prints money: keep private) and `issuer`.\n[mint]\n",
            );
        }
        if let Some(from) = &flags.wallet_from {
            t.push_str(&format!(
                "\n[wallet]\nfrom = {}\ninitial = {}\n",
                q(from),
                flags.initial.unwrap_or(0)
            ));
        }
        t
    }

    /// How `flags` differ from this config, as messages naming the line
    /// (empty if they agree). Only what the flags say is compared: a flag
    /// not given agrees with anything.
    pub fn differences(&self, flags: &ServeFlags) -> Vec<String> {
        let file = self.file.display();
        let mut out = Vec::new();
        let net = self.line("net");
        if let Some(l) = &flags.listen
            && *l != self.net.listen
        {
            out.push(format!(
                "{file}:{net}: says listen = {:?}, the flags say --listen {l}",
                self.net.listen
            ));
        }
        if let Some(p) = flags.port
            && p != self.net.port
        {
            out.push(format!(
                "{file}:{net}: says port = {}, the flags say --port {p}",
                self.net.port
            ));
        }
        if flags.advertise.is_some() && flags.advertise != self.net.advertise {
            out.push(format!(
                "{file}:{net}: says advertise = {:?}, the flags say --advertise {}",
                self.net.advertise.as_deref().unwrap_or("(none)"),
                flags.advertise.as_deref().unwrap_or("")
            ));
        }
        if flags.has_roles() {
            if flags.mint != self.mint {
                out.push(if self.mint {
                    format!(
                        "{file}:{}: serves [mint], the flags do not say --mint",
                        self.line("mint")
                    )
                } else {
                    format!("{file}:1: has no [mint], the flags say --mint")
                });
            }
            match (&flags.wallet_from, &self.wallet) {
                (None, Some(_)) => out.push(format!(
                    "{file}:{}: serves [wallet], the flags give no --wallet-from",
                    self.line("wallet")
                )),
                (Some(_), None) => out.push(format!(
                    "{file}:1: has no [wallet], the flags give --wallet-from"
                )),
                (Some(from), Some(w)) => {
                    let line = self.line("wallet");
                    if *from != w.from {
                        out.push(format!(
                            "{file}:{line}: says wallet from = {:?}, the flags say --wallet-from {from}",
                            w.from
                        ));
                    }
                    let initial = flags.initial.unwrap_or(0);
                    if initial != w.initial {
                        out.push(format!(
                            "{file}:{line}: says wallet initial = {}, the flags say --initial {initial}",
                            w.initial
                        ));
                    }
                }
                (None, None) => {}
            }
        }
        out
    }
}

/// Whether `s` can be a host name or address in a locator.
fn host_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
}

/// Checks one `[[caplet]]` entry; records its name.
fn check_caplet(
    c: &RawCaplet,
    line: usize,
    folder: &Path,
    faults: &mut Faults<'_>,
    names: &mut BTreeMap<String, usize>,
) -> Option<Caplet> {
    let before = faults.list.len();
    let name = c.name.get_ref();
    if let Err(reason) = pola_store::name_rule(name) {
        faults.at(c.name.span(), format!("caplet name {name:?}: {reason}"));
    } else if ROLE_NAMES.contains(&name.as_str()) {
        faults.at(
            c.name.span(),
            format!("caplet name {name:?} is taken by pola serve's own roles"),
        );
    } else if let Some(first) = names.get(name) {
        faults.at(
            c.name.span(),
            format!("caplet name {name:?} is used twice (first on line {first})"),
        );
    } else {
        names.insert(name.clone(), line);
    }
    let sha256 = match parse_sha256(c.sha256.get_ref()) {
        Some(h) => Some(h),
        None => {
            faults.at(
                c.sha256.span(),
                "sha256 must be 64 hexadecimal digits (the package's SHA-256)",
            );
            None
        }
    };
    let mut quotas = Quotas::default();
    if let Some(q) = &c.quotas {
        let q = q.get_ref();
        for (field, value, slot) in [
            ("fuel_per_call", &q.fuel_per_call, &mut quotas.fuel_per_call),
            (
                "fuel_per_second",
                &q.fuel_per_second,
                &mut quotas.fuel_per_second,
            ),
            ("fuel_burst", &q.fuel_burst, &mut quotas.fuel_burst),
        ] {
            if let Some(f) = value {
                match u64::try_from(*f.get_ref()) {
                    Ok(v) if v > 0 => *slot = Some(v),
                    _ => faults.at(f.span(), format!("{field} must be 1 or more")),
                }
            }
        }
        if let Some(m) = &q.memory_bytes {
            match u64::try_from(*m.get_ref()) {
                Ok(v) if (65_536..=4 << 30).contains(&v) => quotas.memory_bytes = Some(v),
                _ => faults.at(
                    m.span(),
                    "memory_bytes must be from 65536 (one page) to 4294967296 (4 GiB)",
                ),
            }
        }
    }
    let package = folder.join(c.package.get_ref());
    match read_plain(&package, MAX_PACKAGE) {
        Err(e) => faults.at(c.package.span(), format!("caplet {name:?}: {e}")),
        Ok(bytes) => {
            let got: [u8; 32] = Sha256::digest(&bytes).into();
            if let Some(want) = sha256
                && want != got
            {
                faults.at(
                    c.sha256.span(),
                    format!(
                        "caplet {name:?}: {} has SHA-256 {}, not the sha256 given",
                        package.display(),
                        crate::hex::encode(&got)
                    ),
                );
            } else {
                // The same decision, under the same bounds, as the loader
                // of this caplet's sandbox (its quotas).
                match pola_sandbox::check_with(&bytes, &quotas.sandbox_config()) {
                    Err(e) => faults.at(
                        c.package.span(),
                        format!(
                            "caplet {name:?}: {} is not a valid module: {e}",
                            package.display()
                        ),
                    ),
                    Ok(report) if !report.loads => {
                        let why: Vec<String> =
                            report.problems.iter().map(ToString::to_string).collect();
                        faults.at(
                            c.package.span(),
                            format!(
                                "caplet {name:?}: {} {}: {}",
                                package.display(),
                                if report.confined {
                                    "would not load under its quotas"
                                } else {
                                    "is not confined"
                                },
                                why.join("; ")
                            ),
                        );
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    if faults.list.len() != before {
        return None;
    }
    Some(Caplet {
        name: name.clone(),
        package,
        sha256: sha256?,
        quotas,
        line,
    })
}

/// The 32 bytes of a 64-digit hex SHA-256.
fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    crate::hex::decode(s)?.try_into().ok()
}

/// Reads a plain file (not through a link, never blocking on a FIFO) of
/// at most `max` bytes; the error is plain words.
pub fn read_plain(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
            _ if e.raw_os_error() == Some(libc::ELOOP) => {
                format!("{} is a symbolic link; refusing it", path.display())
            }
            _ => format!("cannot open {}: {e}", path.display()),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a plain file", path.display()));
    }
    if meta.len() > max {
        return Err(format!(
            "{} is {} bytes, over the limit of {max}",
            path.display(),
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{} grew over the limit of {max}", path.display()));
    }
    Ok(bytes)
}

/// Writes `bytes` to a new file `path` (mode 0600) that must not exist:
/// a temporary file in the same folder is written and synced, linked to
/// `path` (never replacing anything), removed, and the folder synced.
///
/// # Errors
/// Something is already at `path`, or I/O failed.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("OS RNG failed: {e}"))?;
    let tmp = folder.join(format!(".pola-{}.tmp", crate::hex::encode(&nonce)));
    let result = (|| -> anyhow::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::hard_link(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        fs::File::open(folder)?.sync_all()?;
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// What `pola serve`'s flags said (a flag not given is `None`/`false`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeFlags {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--advertise`.
    pub advertise: Option<String>,
    /// `--mint`.
    pub mint: bool,
    /// `--wallet-from`.
    pub wallet_from: Option<String>,
    /// `--initial`.
    pub initial: Option<u64>,
}

impl ServeFlags {
    /// Whether any role (object-serving) flag was given.
    pub fn has_roles(&self) -> bool {
        self.mint || self.wallet_from.is_some()
    }
}

/// The config `pola serve --state DIR` runs from, given its flags: read
/// from `DIR/pola.toml`, or (role flags and no file) written there from
/// the flags first. Flags that contradict an existing file are refused.
///
/// # Errors
/// No file and no role flags; a file that does not validate; flags that
/// contradict the file; the file cannot be written.
pub fn resolve(dir: &Path, flags: &ServeFlags) -> anyhow::Result<Config> {
    let file = dir.join(FILE_NAME);
    let exists = fs::symlink_metadata(&file).is_ok();
    if !exists {
        if !flags.has_roles() {
            anyhow::bail!(
                "{} does not exist: write it, or give --mint and/or --wallet-from URI to have it written",
                file.display()
            );
        }
        if flags.initial.is_some() && flags.wallet_from.is_none() {
            anyhow::bail!("--initial needs --wallet-from URI");
        }
        let text = Config::render(flags);
        // Validate before writing, so a bad flag leaves no file behind.
        Config::parse(&text, &file)?;
        write_new_private(&file, text.as_bytes())?;
    }
    let config = Config::load(&file)?;
    let diff = config.differences(flags);
    if !diff.is_empty() {
        anyhow::bail!("{}; edit it or drop the flags", diff.join("; "));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const URI: &str = "ocapn://mkisk3iskrycxvmk7pdahcksewdp5dbmoqdr6wcpwj3lsyvokpxq.noise/s/abcd?host=127.0.0.1&port=7";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/nowhere/pola.toml"))
    }

    /// The single fault's (line, message).
    fn fault(text: &str) -> (usize, String) {
        let e = parse(text).unwrap_err();
        let shown = e.to_string();
        assert!(shown.starts_with("/nowhere/pola.toml:"), "{shown}");
        assert_eq!(e.faults.len(), 1, "{shown}");
        e.faults.into_iter().next().unwrap()
    }

    #[test]
    fn a_full_file_parses() {
        let c = parse(&format!(
            "[net]\nnetlayer = \"noise\"\nlisten = \"0.0.0.0\"\nport = 7777\nadvertise = \"example.org\"\n\n[mint]\n\n[wallet]\nfrom = \"{URI}\"\ninitial = 5\n"
        ))
        .unwrap();
        assert_eq!(c.net.port, 7777);
        assert_eq!(c.net.listen, "0.0.0.0");
        assert_eq!(c.net.advertise.as_deref(), Some("example.org"));
        assert!(c.mint);
        assert_eq!(c.wallet.as_ref().unwrap().initial, 5);
        assert_eq!(c.line("mint"), 7);
        assert_eq!(c.line("wallet"), 9);
    }

    #[test]
    fn defaults_apply() {
        let c = parse("[mint]\n").unwrap();
        assert_eq!(c.net.netlayer, Netlayer::Noise);
        assert_eq!(c.net.listen, "127.0.0.1");
        assert_eq!(c.net.port, 0);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let (line, msg) = fault("[mint]\n\n[net]\nport = 1\nprot = 2\n");
        assert_eq!(line, 5, "{msg}");
        assert!(msg.contains("prot"), "{msg}");
        let (line, msg) = fault("[mint]\ncolour = \"red\"\n");
        assert_eq!(line, 2, "{msg}");
        let (line, msg) = fault("[mint]\n[minter]\n");
        assert_eq!(line, 2, "{msg}");
        assert!(msg.contains("minter"), "{msg}");
    }

    #[test]
    fn bad_types_and_syntax_are_refused() {
        let (line, msg) = fault("[mint]\n[net]\nport = \"seven\"\n");
        assert_eq!(line, 3, "{msg}");
        let (line, _) = fault("[mint]\n[net]\nport = 7\nport = 8\n");
        assert_eq!(line, 4);
        let (line, _) = fault("[mint]\n[mint]\n");
        assert_eq!(line, 2);
        let (line, _) = fault("[mint\n");
        assert_eq!(line, 1);
        let (line, _) = fault("mint = true\n");
        assert_eq!(line, 1);
    }

    #[test]
    fn port_out_of_range() {
        let (line, msg) = fault("[mint]\n[net]\nport = 70000\n");
        assert_eq!(line, 3);
        assert!(msg.contains("out of range"), "{msg}");
        let (_, msg) = fault("[mint]\n[net]\nport = -1\n");
        assert!(msg.contains("out of range"), "{msg}");
    }

    #[test]
    fn netlayers() {
        let (line, msg) = fault("[mint]\n[net]\nnetlayer = \"tcp-testing-only\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("not offered"), "{msg}");
        let (_, msg) = fault("[mint]\n[net]\nnetlayer = \"carrier-pigeon\"\n");
        assert!(msg.contains("unknown netlayer"), "{msg}");
        let (_, msg) = fault("[mint]\n[net]\nlisten = \"\"\n");
        assert!(msg.contains("listen"), "{msg}");
        let (_, msg) = fault("[mint]\n[net]\nadvertise = \"a b\"\n");
        assert!(msg.contains("advertise"), "{msg}");
    }

    #[test]
    fn nothing_served() {
        let (line, msg) = fault("[net]\nport = 1\n");
        assert_eq!(line, 1);
        assert!(msg.contains("nothing to serve"), "{msg}");
        assert!(fault("").1.contains("nothing to serve"));
    }

    #[test]
    fn wallet_needs_a_sturdyref() {
        let (line, msg) = fault("[net]\nport = 1\n\n[wallet]\ninitial = 3\n");
        assert_eq!(line, 4);
        assert!(msg.contains("needs `from"), "{msg}");
        let (line, msg) = fault("[wallet]\nfrom = \"http://example.org\"\n");
        assert_eq!(line, 2);
        assert!(msg.contains("not a sturdyref"), "{msg}");
        let (line, msg) = fault(&format!("[wallet]\nfrom = \"{URI}\"\ninitial = -4\n"));
        assert_eq!(line, 3);
        assert!(msg.contains("initial"), "{msg}");
    }

    #[test]
    fn every_fault_is_reported_in_line_order() {
        let e = parse("[net]\nport = 99999\nadvertise = \"\"\n[wallet]\n").unwrap_err();
        let lines: Vec<usize> = e.faults.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4], "{e}");
    }

    /// A scratch folder with a caplet package.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    fn scratch(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("pola-config-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    const CONFINED: &str = r#"(module
        (memory (export "memory") 1)
        (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#;

    fn caplet_file(dir: &Path, name: &str, wat: &str) -> String {
        let bytes = wat::parse_str(wat).unwrap();
        fs::write(dir.join(name), &bytes).unwrap();
        crate::hex::encode(&Sha256::digest(&bytes))
    }

    fn caplet_text(name: &str, package: &str, sha: &str) -> String {
        format!("[[caplet]]\nname = \"{name}\"\npackage = \"{package}\"\nsha256 = \"{sha}\"\n")
    }

    #[test]
    fn caplets_are_checked_whole() {
        let s = scratch("caplets");
        let file = s.0.join("pola.toml");
        let sha = caplet_file(&s.0, "c.wasm", CONFINED);
        // A good one, with quotas.
        let text = format!(
            "{}quotas = {{ fuel_per_call = 1000, memory_bytes = 65536, fuel_per_second = 7, fuel_burst = 9 }}\n",
            caplet_text("counter", "c.wasm", &sha)
        );
        let c = Config::parse(&text, &file).unwrap();
        assert_eq!(c.caplets.len(), 1);
        assert_eq!(c.caplets[0].package, s.0.join("c.wasm"));
        assert_eq!(c.caplets[0].quotas.fuel_per_call, Some(1000));
        let config = c.caplets[0].quotas.sandbox_config();
        assert_eq!((config.fuel_per_second, config.fuel_burst), (7, 9));
        assert_eq!(c.caplets[0].line, 1);

        let one = |text: &str| {
            let e = Config::parse(text, &file).unwrap_err();
            assert_eq!(e.faults.len(), 1, "{e}");
            assert!(e.to_string().contains("pola.toml:"), "{e}");
            e.faults.into_iter().next().unwrap()
        };
        // Missing package file.
        let (line, msg) = one(&format!("[mint]\n{}", caplet_text("c", "gone.wasm", &sha)));
        assert_eq!(line, 4);
        assert!(msg.contains("does not exist"), "{msg}");
        // Hash mismatch.
        let (line, msg) = one(&caplet_text("c", "c.wasm", &"0".repeat(64)));
        assert_eq!(line, 4);
        assert!(msg.contains("not the sha256 given"), "{msg}");
        // Malformed hash.
        let (_, msg) = one(&caplet_text("c", "c.wasm", "abc"));
        assert!(msg.contains("64 hexadecimal"), "{msg}");
        // Not confined.
        let wasi = caplet_file(
            &s.0,
            "w.wasm",
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                (memory (export "memory") 1)
                (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#,
        );
        let (_, msg) = one(&caplet_text("c", "w.wasm", &wasi));
        assert!(msg.contains("not confined"), "{msg}");
        // Not a module at all.
        fs::write(s.0.join("junk.wasm"), b"junk").unwrap();
        let junk = crate::hex::encode(&Sha256::digest(b"junk"));
        let (_, msg) = one(&caplet_text("c", "junk.wasm", &junk));
        assert!(msg.contains("not a valid module"), "{msg}");
        // Duplicate and reserved names.
        let (line, msg) = one(&format!(
            "{}\n{}",
            caplet_text("c", "c.wasm", &sha),
            caplet_text("c", "c.wasm", &sha)
        ));
        assert_eq!(line, 7, "the second name");
        assert!(msg.contains("used twice (first on line 1)"), "{msg}");
        let (_, msg) = one(&caplet_text("mint", "c.wasm", &sha));
        assert!(msg.contains("taken"), "{msg}");
        let (_, msg) = one(&caplet_text("a/b", "c.wasm", &sha));
        assert!(msg.contains("only letters"), "{msg}");
        // Bad quotas.
        let (line, msg) = one(&format!(
            "{}[caplet.quotas]\nmemory_bytes = 10\n",
            caplet_text("c", "c.wasm", &sha)
        ));
        assert_eq!(line, 6);
        assert!(msg.contains("memory_bytes"), "{msg}");
        // Missing field.
        let (line, msg) = one("[[caplet]]\nname = \"c\"\n");
        assert_eq!(line, 1);
        assert!(msg.contains("package"), "{msg}");
        // A package that is a link is refused.
        std::os::unix::fs::symlink(s.0.join("c.wasm"), s.0.join("link.wasm")).unwrap();
        let (_, msg) = one(&caplet_text("c", "link.wasm", &sha));
        assert!(msg.contains("symbolic link"), "{msg}");
    }

    /// A confined caplet whose memory starts at `pages` 64 KiB pages.
    fn with_memory(pages: u32) -> String {
        format!(
            r#"(module
                (memory (export "memory") {pages})
                (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#
        )
    }

    #[test]
    fn a_caplet_is_checked_under_its_own_quotas() {
        let s = scratch("quotas");
        let file = s.0.join("pola.toml");
        // 20 MiB of initial memory: over the sandbox's default 16 MiB.
        let sha = caplet_file(&s.0, "big.wasm", &with_memory(320));
        let quota = |bytes: u64| {
            format!(
                "{}quotas = {{ memory_bytes = {bytes} }}\n",
                caplet_text("big", "big.wasm", &sha)
            )
        };
        // Under a 32 MiB quota it loads, so pola serve accepts it.
        let c = Config::parse(&quota(32 << 20), &file).unwrap();
        assert_eq!(c.caplets[0].quotas.memory_bytes, Some(32 << 20));
        // Without a quota (the default 16 MiB) or under 1 MiB it does not:
        // refused before anything starts, naming the caplet and the bound.
        for text in [caplet_text("big", "big.wasm", &sha), quota(1 << 20)] {
            let e = Config::parse(&text, &file).unwrap_err();
            assert_eq!(e.faults.len(), 1, "{e}");
            let (line, msg) = &e.faults[0];
            assert_eq!(*line, 3, "the package line: {e}");
            assert!(msg.starts_with("caplet \"big\": "), "{msg}");
            assert!(msg.contains("would not load under its quotas"), "{msg}");
            assert!(msg.contains("20971520 bytes of initial memory"), "{msg}");
        }
        let e = Config::parse(&quota(1 << 20), &file).unwrap_err();
        assert!(e.to_string().contains("limit is 1048576"), "{e}");
        // A one-page module under a one-page quota is fine.
        let small = caplet_file(&s.0, "c.wasm", CONFINED);
        let text = format!(
            "{}quotas = {{ memory_bytes = 65536 }}\n",
            caplet_text("c", "c.wasm", &small)
        );
        Config::parse(&text, &file).unwrap();
    }

    #[test]
    fn flags_write_the_file_once_and_must_agree() {
        let s = scratch("flags");
        let flags = ServeFlags {
            mint: true,
            port: Some(7001),
            ..ServeFlags::default()
        };
        let c = resolve(&s.0, &flags).unwrap();
        assert!(c.mint);
        assert_eq!(c.net.port, 7001);
        let file = s.0.join(FILE_NAME);
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Same flags resume; no flags run from the file.
        assert_eq!(resolve(&s.0, &flags).unwrap(), c);
        assert_eq!(resolve(&s.0, &ServeFlags::default()).unwrap(), c);
        // A role flag the file does not have.
        let e = resolve(
            &s.0,
            &ServeFlags {
                wallet_from: Some(URI.to_string()),
                ..flags.clone()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("pola.toml:1: has no [wallet]"), "{e}");
        assert!(e.contains("edit it or drop the flags"), "{e}");
        // Another port.
        let e = resolve(
            &s.0,
            &ServeFlags {
                port: Some(7002),
                ..flags.clone()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("says port = 7001, the flags say --port 7002"),
            "{e}"
        );
        // Dropping --mint while giving another role.
        let e = resolve(
            &s.0,
            &ServeFlags {
                mint: false,
                wallet_from: Some(URI.to_string()),
                ..ServeFlags::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("serves [mint]"), "{e}");
    }

    #[test]
    fn no_file_and_no_roles_is_an_error() {
        let s = scratch("none");
        let e = resolve(&s.0, &ServeFlags::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert!(!s.0.join(FILE_NAME).exists());
        // A bad flag leaves no file either.
        let e = resolve(
            &s.0,
            &ServeFlags {
                wallet_from: Some("nonsense".into()),
                ..ServeFlags::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a sturdyref"), "{e}");
        assert!(!s.0.join(FILE_NAME).exists());
    }

    #[test]
    fn rendered_text_round_trips_odd_strings() {
        let flags = ServeFlags {
            mint: true,
            listen: Some("::1".into()),
            advertise: Some("example.org".into()),
            wallet_from: Some(URI.into()),
            initial: Some(9),
            port: None,
        };
        let c = parse(&Config::render(&flags)).unwrap();
        assert!(c.differences(&flags).is_empty());
        assert_eq!(c.wallet.unwrap().from, URI);
    }
}
