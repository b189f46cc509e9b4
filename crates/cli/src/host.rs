//! A host's state folder: `DIR/state.redb` (the store: identity key, Swiss
//! numbers of served objects, every vat's objects) and `DIR/pola.toml`
//! (the config), and the commands over it: `pola export`, `pola import`,
//! `pola savepoint`, `pola savepoints`, `pola rollback`.
//!
//! Host rows (the store's host table):
//! - `identity`: the vat's Ed25519 secret key (32 bytes);
//! - `swiss/NAME`: the Swiss number (as its hex text) of served object
//!   `NAME`.
//!
//! Earlier versions kept these in `DIR/identity.key` and `DIR/sturdyrefs`.
//! At start-up those files, if present, are moved into the store (one
//! durable transaction) and then **removed**, so the state of a host is
//! exactly `state.redb` + `pola.toml`. A file whose contents differ from
//! what the store already holds is refused, not overwritten.
//!
//! While a host runs it holds the store's lock; the commands then go
//! through its control socket ([`crate::control`]). `pola rollback` needs
//! the host stopped.

use std::collections::BTreeMap;
use std::fs;
use std::io::{IsTerminal as _, Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use pola_captp::locator::Swiss;
use pola_netlayer::Identity;
use pola_peer::swiss::random_swiss;
use pola_store::{Store, StoreError};
use sha2::{Digest as _, Sha256};

use crate::config;
use crate::control::{self, Reply};

/// The store's name in a state folder.
pub const STORE_FILE: &str = "state.redb";
/// The identity row.
const IDENTITY: &str = "identity";
/// Prefix of the Swiss-number rows.
pub(crate) const SWISS: &str = "swiss/";
/// The legacy files.
const LEGACY_KEY: &str = "identity.key";
const LEGACY_SWISS: &str = "sturdyrefs";
/// Most bytes read from the legacy sturdyrefs file.
const STURDY_FILE_MAX: u64 = 64 * 1024;

/// Opens the host's store in `dir` (made if new) and returns it with the
/// host's identity (made once) and its Swiss-number table, after moving
/// any legacy `identity.key`/`sturdyrefs` into it.
///
/// # Errors
/// The store is refused (see [`Store::open`]) or locked by a running
/// host; a legacy file is unreadable or disagrees with the store; a
/// stored identity is not 32 bytes.
pub fn open_state(dir: &Path) -> Result<(Arc<Store>, Identity, SwissTable)> {
    let store = Store::open(&dir.join(STORE_FILE)).map_err(|e| locked_hint(dir, e))?;
    migrate_legacy(dir, &store)?;
    let identity = match store.host_get(IDENTITY).map_err(|e| anyhow!("{e}"))? {
        Some(bytes) => identity_from(dir, &bytes)?,
        None => {
            let fresh = Identity::generate().map_err(|e| anyhow!("{e}"))?;
            store
                .host_put(IDENTITY, Some(&fresh.secret_bytes()))
                .map_err(|e| anyhow!("{e}"))?;
            fresh
        }
    };
    let store = Arc::new(store);
    Ok((
        store.clone(),
        identity,
        SwissTable {
            store,
            dir: dir.to_path_buf(),
        },
    ))
}

fn identity_from(dir: &Path, bytes: &[u8]) -> Result<Identity> {
    let secret = <[u8; 32]>::try_from(bytes).map_err(|_| {
        anyhow!(
            "{}: the host's identity row is {} bytes, not 32",
            dir.join(STORE_FILE).display(),
            bytes.len()
        )
    })?;
    Ok(Identity::from_secret_bytes(&secret))
}

/// Moves `identity.key` and `sturdyrefs` into the store, then removes
/// them.
fn migrate_legacy(dir: &Path, store: &Store) -> Result<()> {
    let key_path = dir.join(LEGACY_KEY);
    let swiss_path = dir.join(LEGACY_SWISS);
    let key = match fs::symlink_metadata(&key_path) {
        Ok(_) => Some(
            Identity::load(&key_path)
                .with_context(|| format!("moving {} into the store", key_path.display()))?,
        ),
        Err(_) => None,
    };
    let swiss = read_legacy_swiss(&swiss_path)?;
    if key.is_none() && swiss.is_none() {
        return Ok(());
    }
    let mut rows: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(key) = &key {
        match store.host_get(IDENTITY).map_err(|e| anyhow!("{e}"))? {
            Some(stored) if stored != key.secret_bytes() => bail!(
                "{} holds another key than {}; remove the one that is wrong",
                key_path.display(),
                dir.join(STORE_FILE).display()
            ),
            Some(_) => {}
            None => rows.push((IDENTITY.to_string(), key.secret_bytes().to_vec())),
        }
    }
    for (name, hex) in swiss.iter().flatten() {
        let row = format!("{SWISS}{name}");
        match store.host_get(&row) {
            Ok(Some(stored)) if stored != hex.as_bytes() => bail!(
                "{} gives {name} another Swiss number than {}; remove the one that is wrong",
                swiss_path.display(),
                dir.join(STORE_FILE).display()
            ),
            Ok(Some(_)) => {}
            Ok(None) => rows.push((row, hex.as_bytes().to_vec())),
            Err(e) => bail!("{}: bad name {name:?}: {e}", swiss_path.display()),
        }
    }
    let refs: Vec<(&str, Option<&[u8]>)> = rows
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
        .collect();
    store.host_put_all(&refs).map_err(|e| anyhow!("{e}"))?;
    for (path, present) in [(&key_path, key.is_some()), (&swiss_path, swiss.is_some())] {
        if present {
            fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
            eprintln!(
                "pola: moved {} into {} and removed it",
                path.display(),
                dir.join(STORE_FILE).display()
            );
        }
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// The legacy `NAME HEX` file, if present.
fn read_legacy_swiss(path: &Path) -> Result<Option<BTreeMap<String, String>>> {
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading {} (a symbolic link?)", path.display()));
        }
        Ok(f) => f,
    };
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!("{} is not a plain file", path.display());
    }
    if meta.mode() & 0o077 != 0 {
        bail!(
            "{} is readable or writable by others (mode {:o}); it holds capabilities: chmod 600 it",
            path.display(),
            meta.mode() & 0o777
        );
    }
    let mut text = String::new();
    file.take(STURDY_FILE_MAX)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut entries = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || anyhow!("{}:{}: expected `NAME HEX`", path.display(), n + 1);
        let (name, hex) = line.split_once(' ').ok_or_else(bad)?;
        let hex = hex.trim();
        if !swiss_hex_ok(hex) {
            return Err(bad());
        }
        entries.insert(name.to_owned(), hex.to_owned());
    }
    Ok(Some(entries))
}

fn swiss_hex_ok(hex: &str) -> bool {
    (32..=256).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The Swiss numbers of the objects a host serves by name, kept in its
/// store.
pub struct SwissTable {
    store: Arc<Store>,
    dir: PathBuf,
}

impl SwissTable {
    /// The Swiss number of served object `name`; a new one is made and
    /// stored durably before this returns. (Stored as hex text, and that
    /// text is the number: the form older hosts gave out.)
    ///
    /// # Errors
    /// A bad name, a stored row that is not a Swiss number, the OS RNG or
    /// the store failed.
    pub fn get_or_create(&mut self, name: &str) -> Result<Swiss> {
        let row = format!("{SWISS}{name}");
        if let Some(bytes) = self.store.host_get(&row).map_err(|e| anyhow!("{e}"))? {
            return String::from_utf8(bytes)
                .ok()
                .filter(|h| swiss_hex_ok(h))
                .map(|h| Swiss::new(h.into_bytes()))
                .ok_or_else(|| {
                    anyhow!(
                        "{}: the Swiss number of {name} is damaged",
                        self.dir.join(STORE_FILE).display()
                    )
                });
        }
        let fresh = random_swiss().map_err(|e| anyhow!("OS RNG failed: {e}"))?;
        let hex = crate::hex::encode(fresh.bytes());
        self.store
            .host_put(&row, Some(hex.as_bytes()))
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Swiss::new(hex.into_bytes()))
    }
}

/// A store error, with a hint when the store is locked by a running host.
fn locked_hint(dir: &Path, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Locked { .. } => anyhow!(
            "{e}: a pola serve is running on {} (or starting); stop it first",
            dir.display()
        ),
        e => anyhow!("{e}"),
    }
}

/// Opens the store of a host that is not running; refuses a folder with no
/// store (so nothing is created by a typo).
fn open_stopped(dir: &Path) -> Result<Store> {
    let path = dir.join(STORE_FILE);
    if fs::symlink_metadata(&path).is_err() {
        bail!("{}: no host state here (no {STORE_FILE})", dir.display());
    }
    Store::open(&path).map_err(|e| locked_hint(dir, e))
}

/// `pola export --state DIR [--instance NAME]`: writes one export file to
/// stdout, through the running host if there is one.
///
/// # Errors
/// Stdout is a terminal; no state; the export failed or arrived damaged.
pub fn export(dir: &Path, instance: Option<&str>) -> Result<()> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        bail!(
            "refusing to write a binary export to a terminal: redirect it, `pola export --state DIR > host.pola`"
        );
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let request = match instance {
        Some(name) => format!("export-instance {name}"),
        None => "export".to_string(),
    };
    match control::request(dir, &request)? {
        Reply::Ok(_, mut body) => {
            let n = copy_checked(&mut body, &mut out)?;
            out.flush().context("writing the export")?;
            eprintln!("pola: exported {n} bytes from the running host");
        }
        Reply::NoHost => {
            let store = open_stopped(dir)?;
            let stats = match instance {
                Some(name) => store.export_instance(name, &mut out),
                None => {
                    let cfg = dir.join(config::FILE_NAME);
                    let bytes = match fs::symlink_metadata(&cfg) {
                        Ok(_) => Some(
                            config::read_plain(&cfg, pola_store::MAX_CONFIG as u64)
                                .map_err(|e| anyhow!("{e}"))?,
                        ),
                        Err(_) => None,
                    };
                    store.export(&mut out, bytes.as_deref())
                }
            }
            .map_err(|e| anyhow!("{e}"))?;
            out.flush().context("writing the export")?;
            eprintln!(
                "pola: exported {} instances, {} rows, {} bytes",
                stats.instances, stats.rows, stats.bytes
            );
        }
    }
    Ok(())
}

/// Copies an export from `input` to `out`, checking that it ends with the
/// SHA-256 of what precedes it (so an export cut short by a failing host
/// is an error, not a silently short file). Returns the bytes copied.
fn copy_checked(input: &mut impl Read, out: &mut impl Write) -> Result<u64> {
    let mut hash = Sha256::new();
    let mut tail: Vec<u8> = Vec::with_capacity(64);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the export from the host"),
        };
        let chunk = &buf[..n];
        out.write_all(chunk).context("writing the export")?;
        total += n as u64;
        tail.extend_from_slice(chunk);
        if tail.len() > 32 {
            let keep = tail.len() - 32;
            hash.update(&tail[..keep]);
            tail.drain(..keep);
        }
    }
    if tail.len() != 32 || hash.finalize().as_slice() != tail.as_slice() {
        bail!(
            "the export from the running host is incomplete or damaged (see its stderr); do not use it"
        );
    }
    Ok(total)
}

/// `pola import FILE --state NEWDIR`: a new host folder from an export.
/// With `instance`, adds the instance export in `FILE` to the existing,
/// stopped host in `dir` under that name instead.
///
/// # Errors
/// A non-empty `dir` (whole-store), a damaged export (nothing is left
/// behind), a running host (instance import), I/O.
pub fn import(file: &Path, dir: &Path, instance: Option<&str>) -> Result<()> {
    let mut input: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(fs::File::open(file).with_context(|| format!("opening {}", file.display()))?)
    };
    let mut input = std::io::BufReader::with_capacity(1 << 20, &mut input);
    if let Some(name) = instance {
        let store = open_stopped(dir)?;
        let stats = store
            .import_instance(&mut input, name)
            .map_err(|e| anyhow!("{e}"))?;
        eprintln!(
            "pola: imported instance {name:?} into {}: {} rows",
            dir.display(),
            stats.rows
        );
        return Ok(());
    }
    let created = prepare_new_dir(dir)?;
    let result = (|| -> Result<pola_store::ExportStats> {
        let imported =
            Store::import(&mut input, &dir.join(STORE_FILE)).map_err(|e| anyhow!("{e}"))?;
        let stats = imported.stats;
        imported.store.close().map_err(|e| anyhow!("{e}"))?;
        if let Some(cfg) = imported.config {
            let path = dir.join(config::FILE_NAME);
            config::write_new_private(&path, &cfg)?;
            if let Err(e) = config::Config::load(&path) {
                eprintln!(
                    "pola: warning: the imported config does not validate here (fix it before `pola serve`):\n{e}"
                );
            }
        }
        Ok(stats)
    })();
    match result {
        Ok(stats) => {
            eprintln!(
                "pola: imported {} instances, {} rows into {}",
                stats.instances,
                stats.rows,
                dir.display()
            );
            Ok(())
        }
        Err(e) => {
            // Leave the folder as it was: absent, or empty.
            if created {
                let _ = fs::remove_dir_all(dir);
            } else {
                for name in [STORE_FILE, config::FILE_NAME] {
                    let _ = fs::remove_file(dir.join(name));
                }
            }
            Err(e)
        }
    }
}

/// Makes `dir` (mode 0700) or checks that it is an empty folder (and
/// makes it 0700). Returns whether it was created.
fn prepare_new_dir(dir: &Path) -> Result<bool> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
        Ok(meta) => {
            if !meta.is_dir() {
                bail!("{} exists and is not a folder", dir.display());
            }
            if fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .next()
                .is_some()
            {
                bail!(
                    "{} exists and is not empty; import into a new folder",
                    dir.display()
                );
            }
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("chmod 700 {}", dir.display()))?;
            Ok(false)
        }
    }
}

/// Refuses a name that could not be a store name (1 to 64 bytes of
/// `[A-Za-z0-9._-]`) before it goes into a control request, where a space
/// or a newline would change the request.
fn check_word(what: &str, name: &str) -> Result<()> {
    pola_store::name_rule(name).map_err(|reason| anyhow!("bad {what} name {name:?}: {reason}"))
}

/// `pola savepoint --state DIR NAME [--instance I]` (or `--delete`).
///
/// # Errors
/// The host refused, or the store did.
pub fn savepoint(dir: &Path, name: &str, delete: bool, instance: Option<&str>) -> Result<()> {
    check_word("savepoint", name)?;
    if let Some(i) = instance {
        check_word("instance", i)?;
    }
    let request = match (delete, instance) {
        (true, None) => format!("delete-savepoint {name}"),
        (false, None) => format!("savepoint {name}"),
        (true, Some(i)) => format!("delete-instance-savepoint {i} {name}"),
        (false, Some(i)) => format!("savepoint-instance {i} {name}"),
    };
    let of = instance
        .map(|i| format!(" of instance {i}"))
        .unwrap_or_default();
    match control::request(dir, &request)? {
        Reply::Ok(..) => {}
        Reply::NoHost => {
            let store = open_stopped(dir)?;
            let e = |e: pola_store::StoreError| anyhow!("{e}");
            match (delete, instance) {
                (true, None) => {
                    if !store.delete_savepoint(name).map_err(e)? {
                        bail!("{}: no savepoint named {name:?}", dir.display());
                    }
                }
                (false, None) => store.savepoint(name).map_err(e)?,
                (true, Some(i)) => {
                    if !store.delete_instance_savepoint(i, name).map_err(e)? {
                        bail!(
                            "{}: no savepoint named {name:?} of instance {i:?}",
                            dir.display()
                        );
                    }
                }
                (false, Some(i)) => store.savepoint_instance(i, name).map_err(e)?,
            }
            store.close().map_err(|e| anyhow!("{e}"))?;
        }
    }
    if delete {
        println!("deleted savepoint {name}{of}");
    } else {
        println!("savepoint {name}{of}");
    }
    Ok(())
}

/// `pola savepoints --state DIR [--instance I]`: `NAME TIME` lines,
/// oldest first.
///
/// # Errors
/// The host or the store failed.
pub fn savepoints(dir: &Path, instance: Option<&str>) -> Result<()> {
    if let Some(i) = instance {
        check_word("instance", i)?;
    }
    let request = match instance {
        Some(i) => format!("instance-savepoints {i}"),
        None => "savepoints".to_string(),
    };
    let list: Vec<(String, u64)> = match control::request(dir, &request)? {
        Reply::Ok(_, mut body) => {
            let mut text = String::new();
            (&mut body)
                .take(16 << 20)
                .read_to_string(&mut text)
                .context("reading the savepoint list")?;
            text.lines()
                .filter_map(|l| {
                    let (n, t) = l.split_once(' ')?;
                    Some((n.to_string(), t.parse().ok()?))
                })
                .collect()
        }
        Reply::NoHost => {
            let store = open_stopped(dir)?;
            match instance {
                Some(i) => store.instance_savepoints(i),
                None => store.savepoints(),
            }
            .map_err(|e| anyhow!("{e}"))?
        }
    };
    let mut out = std::io::stdout().lock();
    for (name, at) in list {
        writeln!(out, "{name} {} ({at})", utc(at))?;
    }
    Ok(())
}

/// `pola rollback --state DIR NAME [--instance I]`: the stopped host's
/// whole store, or instance `I` alone, back to savepoint `NAME`.
///
/// # Errors
/// The host is running; no such savepoint; the store failed.
pub fn rollback(dir: &Path, name: &str, instance: Option<&str>) -> Result<()> {
    if let Ok(Reply::Ok(who, _)) = control::request(dir, "ping") {
        bail!(
            "{who} is running on {}: stop it first (a savepoint can be taken while it runs, a rollback cannot)",
            dir.display()
        );
    }
    let mut store = open_stopped(dir)?;
    match instance {
        Some(i) => {
            store
                .rollback_instance(i, name)
                .map_err(|e| anyhow!("{e}"))?;
            store.close().map_err(|e| anyhow!("{e}"))?;
            println!(
                "rolled instance {i} of {} back to its savepoint {name}",
                dir.display()
            );
        }
        None => {
            store.rollback(name).map_err(|e| anyhow!("{e}"))?;
            store.close().map_err(|e| anyhow!("{e}"))?;
            println!("rolled {} back to savepoint {name}", dir.display());
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS UTC` of unix seconds.
fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm), for days since 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One line saying what a collection did.
pub fn collected_line(c: &pola_vat::Collected) -> String {
    format!(
        "stored {} kept {} deleted {} migrated {} not-migrated {}",
        c.stored, c.kept, c.deleted, c.migrated, c.not_migrated
    )
}

/// How long an offline `collect` may take.
const OFFLINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Opens the served vat of a stopped host (with the kinds `pola serve`
/// registers, its caplets' from `pola.toml` if there is one).
fn open_served_vat(dir: &Path, store: &Store) -> Result<pola_vat::Vat> {
    if !store
        .instances()
        .map_err(|e| anyhow!("{e}"))?
        .iter()
        .any(|n| n == "serve")
    {
        bail!("{}: this host has no served vat yet", dir.display());
    }
    let file = dir.join(config::FILE_NAME);
    let caplets = if fs::symlink_metadata(&file).is_ok() {
        config::Config::load(&file)
            .map_err(|e| anyhow!("{e}"))?
            .caplets
    } else {
        Vec::new()
    };
    let sandboxes = crate::caplets::Sandboxes::new(&caplets)?;
    let (kinds, _) = crate::serve::kinds(&Arc::default(), &sandboxes, &Arc::default());
    let backend = store.vat("serve").map_err(|e| anyhow!("{e}"))?;
    pola_vat::Vat::open("serve", backend, kinds)
        .map_err(|e| anyhow!("{}: {e}", dir.join(STORE_FILE).display()))
}

/// `pola revoke --state DIR URI`: revokes a sturdyref of the host, through
/// the running host if there is one.
///
/// # Errors
/// Not a sturdyref of this host; the host or the store failed.
pub fn revoke(dir: &Path, uri: &str) -> Result<()> {
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("a sturdyref URI has no spaces or control characters");
    }
    let what = match control::request(dir, &format!("revoke {uri}"))? {
        Reply::Ok(what, _) => what,
        Reply::NoHost => {
            let store = open_stopped(dir)?;
            let me = match store.host_get(IDENTITY).map_err(|e| anyhow!("{e}"))? {
                Some(bytes) => identity_from(dir, &bytes)?.designator(),
                None => bail!("{}: this host has no identity yet", dir.display()),
            };
            let vat = open_served_vat(dir, &store)?;
            let what = crate::sturdy::revoke(&store, &vat, None, &me, uri, OFFLINE_TIMEOUT);
            vat.shutdown();
            what?
        }
    };
    println!("{what}");
    Ok(())
}

/// `pola collect --state DIR [--migrate]`: takes a savepoint, then deletes
/// the served vat's unreachable objects (and with `--migrate` rewrites old records by
/// their kinds' current versions), through the running host if there is
/// one.
///
/// # Errors
/// The host or the store failed; an unreadable record (nothing deleted).
pub fn collect(dir: &Path, migrate: bool) -> Result<()> {
    // Deleting and migrating cannot be undone by themselves: a savepoint
    // first, so a bad migration or a surprise leaves the old state.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("before-collect-{secs}-{}", std::process::id());
    savepoint(dir, &name, false, None)?;
    println!(
        "(roll back with `pola rollback --state {0} {name}`; delete it with `pola savepoint --state {0} --delete {name}`)",
        dir.display()
    );
    let request = if migrate {
        "collect migrate"
    } else {
        "collect"
    };
    let line = match control::request(dir, request)? {
        Reply::Ok(line, _) => line,
        Reply::NoHost => {
            let store = open_stopped(dir)?;
            let vat = open_served_vat(dir, &store)?;
            let done = crate::sturdy::drop_expired(&vat, Some(OFFLINE_TIMEOUT))
                .map_err(|e| e.to_string())
                .and_then(|_| vat.collect(migrate, OFFLINE_TIMEOUT));
            vat.shutdown();
            collected_line(&done.map_err(|e| anyhow!("{}: {e}", dir.display()))?)
        }
    };
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn checked_copy_refuses_a_cut_export() {
        let mut good = b"some export bytes".to_vec();
        let digest = Sha256::digest(&good);
        good.extend_from_slice(&digest);
        let mut out = Vec::new();
        assert_eq!(
            copy_checked(&mut good.as_slice(), &mut out).unwrap(),
            good.len() as u64
        );
        assert_eq!(out, good);
        for cut in [0, 1, 31, 32, good.len() - 1] {
            let mut out = Vec::new();
            assert!(copy_checked(&mut &good[..cut], &mut out).is_err(), "{cut}");
        }
        let mut flipped = good.clone();
        flipped[3] ^= 1;
        assert!(copy_checked(&mut flipped.as_slice(), &mut Vec::new()).is_err());
    }
}
