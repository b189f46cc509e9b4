//! The control socket of a running `pola serve`: `DIR/control.sock`.
//!
//! A running host holds its store's lock, so commands that need the store
//! while it runs (`pola export`, `pola savepoint`, `pola savepoints`,
//! with or without `--instance`) ask the host through this Unix socket
//! instead. The socket is made mode 0600 inside the 0700 state folder:
//! whoever can open it is the host's owner, and it grants exactly what the
//! state folder already grants.
//!
//! Protocol (one request per connection; line-based, bounded):
//! - the client sends one line of at most [`MAX_REQUEST`] bytes, UTF-8,
//!   ending in `\n`: a command word and its arguments separated by spaces;
//! - the host answers one line, `ok[ DETAIL]` or `error MESSAGE`, and for
//!   some commands a body after an `ok` line, ending when the host closes
//!   the connection.
//!
//! | request | answer |
//! |---|---|
//! | `ping` | `ok pola serve PID` |
//! | `export` | `ok`, then a whole-store export (with the config) |
//! | `export-instance NAME` | `ok`, then an export of one instance |
//! | `savepoint NAME` | `ok` once the savepoint is durable |
//! | `delete-savepoint NAME` | `ok` if it existed, else `error` |
//! | `savepoints` | `ok`, then lines `NAME UNIX-SECONDS`, oldest first |
//! | `savepoint-instance INSTANCE NAME` | `ok` once the instance's savepoint is durable |
//! | `delete-instance-savepoint INSTANCE NAME` | `ok` if it existed, else `error` |
//! | `instance-savepoints INSTANCE` | `ok`, then lines `NAME UNIX-SECONDS`, oldest first |
//! | `revoke URI` | `ok WHAT` once the sturdyref's row is deleted (durably) |
//! | `collect` / `collect migrate` | `ok stored N kept N deleted N migrated N not-migrated N` |
//!
//! A malformed request (too long, unterminated, not UTF-8, an unknown
//! command, wrong arguments) gets an `error` line and the connection is
//! closed; a client that sends nothing is dropped after [`READ_TIMEOUT`];
//! at most [`MAX_CLIENTS`] are served at once. Nothing a client sends can
//! panic the host. Add a command: one arm in [`dispatch`].

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use pola_peer::PeerHandle;
use pola_store::Store;
use pola_vat::Vat;

/// The socket's name in a state folder.
pub const SOCKET: &str = "control.sock";
/// Longest request line, newline included.
pub const MAX_REQUEST: usize = 1024;
/// How long the host waits for a request line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one write to a client may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Clients served at once.
pub const MAX_CLIENTS: usize = 8;

/// What the control socket serves from.
struct Host {
    store: Arc<Store>,
    config: Option<Vec<u8>>,
    live: Live,
    busy: AtomicUsize,
}

/// What a running host serves with.
pub struct Serving {
    /// The served vat.
    pub vat: Vat,
    /// Its peer.
    pub peer: PeerHandle,
    /// How many sturdyrefs its objects keep.
    pub sturdies: crate::sturdy::Count,
}

/// The running host's vat and peer, set once it serves (commands that
/// need them are refused before).
pub type Live = Arc<OnceLock<Serving>>;

/// How long a `collect` may take.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a `revoke` may wait for its turn to be durable.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Listens on `dir/control.sock` for the life of the process, serving
/// requests against `store` (exports carry `config`, the bytes of
/// `pola.toml` the host started from).
///
/// The caller holds the store's lock, so a socket file already there is a
/// leftover of a host that died: it is replaced (anything other than a
/// socket is refused).
///
/// # Errors
/// Something other than a socket is at the path; binding failed.
pub fn listen(dir: &Path, store: Arc<Store>, config: Option<Vec<u8>>) -> Result<Live> {
    let path = dir.join(SOCKET);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_socket() => {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} is not a socket; move it away (pola serve makes its control socket there)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))?;
    let live = Live::default();
    let host = Arc::new(Host {
        store,
        config,
        live: live.clone(),
        busy: AtomicUsize::new(0),
    });
    std::thread::Builder::new()
        .name("pola-control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if host.busy.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                    host.busy.fetch_sub(1, Ordering::SeqCst);
                    let _ = conn.set_write_timeout(Some(READ_TIMEOUT));
                    let _ = conn.write_all(b"error busy: too many control clients\n");
                    continue;
                }
                let host = host.clone();
                let spawned = std::thread::Builder::new()
                    .name("pola-control-client".into())
                    .spawn({
                        let host = host.clone();
                        move || {
                            serve_client(&host, conn);
                            host.busy.fetch_sub(1, Ordering::SeqCst);
                        }
                    });
                if spawned.is_err() {
                    host.busy.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
        .context("starting the control socket's thread")?;
    Ok(live)
}

fn serve_client(host: &Host, conn: UnixStream) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut out = &conn;
    let line = match read_request(&conn) {
        Ok(line) => line,
        Err(msg) => {
            let _ = writeln!(out, "error {msg}");
            return;
        }
    };
    let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
    if let Err(e) = dispatch(host, &words, &mut out) {
        // Before any `ok`, this is the answer; after one, the client sees
        // a body cut short (exports carry their own checksum).
        let msg = format!("{e:#}").replace(['\n', '\r'], " ");
        let _ = writeln!(out, "error {msg}");
    }
}

/// Reads one request line: at most [`MAX_REQUEST`] bytes, ending in
/// `\n`, UTF-8 without control characters.
fn read_request(conn: &UnixStream) -> Result<String, &'static str> {
    let mut buf = Vec::with_capacity(64);
    let mut reader = BufReader::new(conn.take(MAX_REQUEST as u64));
    match reader.read_until(b'\n', &mut buf) {
        Ok(_) => {}
        Err(_) => return Err("no request line in time"),
    }
    if buf.pop() != Some(b'\n') {
        return Err("the request must be one line of at most 1024 bytes, ending in a newline");
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let line = String::from_utf8(buf).map_err(|_| "the request is not UTF-8")?;
    if line.chars().any(char::is_control) {
        return Err("the request has control characters");
    }
    Ok(line)
}

/// Runs one request; writes `ok…` (and any body) to `out`, or returns the
/// error to send.
fn dispatch(host: &Host, words: &[&str], out: &mut impl Write) -> Result<()> {
    let store = &host.store;
    match words {
        ["ping"] => writeln!(out, "ok pola serve {}", std::process::id())?,
        ["export"] => {
            // Fail before `ok` if the store cannot even be read.
            store.instances().map_err(|e| anyhow!("{e}"))?;
            writeln!(out, "ok")?;
            store
                .export(out, host.config.as_deref())
                .map_err(|e| anyhow!("{e}"))?;
        }
        ["export-instance", name] => {
            if !store
                .instances()
                .map_err(|e| anyhow!("{e}"))?
                .iter()
                .any(|n| n == name)
            {
                bail!("no instance named {name:?}");
            }
            writeln!(out, "ok")?;
            store
                .export_instance(name, out)
                .map_err(|e| anyhow!("{e}"))?;
        }
        ["savepoint", name] => {
            store.savepoint(name).map_err(|e| anyhow!("{e}"))?;
            writeln!(out, "ok")?;
        }
        ["delete-savepoint", name] => {
            if !store.delete_savepoint(name).map_err(|e| anyhow!("{e}"))? {
                bail!("no savepoint named {name:?}");
            }
            writeln!(out, "ok")?;
        }
        ["savepoints"] => {
            let list = store.savepoints().map_err(|e| anyhow!("{e}"))?;
            writeln!(out, "ok")?;
            for (name, at) in list {
                writeln!(out, "{name} {at}")?;
            }
        }
        ["savepoint-instance", instance, name] => {
            store
                .savepoint_instance(instance, name)
                .map_err(|e| anyhow!("{e}"))?;
            writeln!(out, "ok")?;
        }
        ["delete-instance-savepoint", instance, name] => {
            if !store
                .delete_instance_savepoint(instance, name)
                .map_err(|e| anyhow!("{e}"))?
            {
                bail!("no savepoint named {name:?} of instance {instance:?}");
            }
            writeln!(out, "ok")?;
        }
        ["instance-savepoints", instance] => {
            let list = store
                .instance_savepoints(instance)
                .map_err(|e| anyhow!("{e}"))?;
            writeln!(out, "ok")?;
            for (name, at) in list {
                writeln!(out, "{name} {at}")?;
            }
        }
        ["revoke", uri] => {
            let s = host.live.get().ok_or_else(|| anyhow!("not serving yet"))?;
            let me = s.peer.location().designator().to_owned();
            let live = Some((&s.peer, &s.sturdies));
            let what = crate::sturdy::revoke(store, &s.vat, live, &me, uri, REVOKE_TIMEOUT)?;
            writeln!(out, "ok {what}")?;
        }
        ["collect", rest @ ..] if rest.is_empty() || rest == ["migrate"] => {
            let s = host.live.get().ok_or_else(|| anyhow!("not serving yet"))?;
            crate::sturdy::drop_expired(&s.vat, Some(REVOKE_TIMEOUT))?;
            let done = s
                .vat
                .collect(!rest.is_empty(), COLLECT_TIMEOUT)
                .map_err(|e| anyhow!("{e}"))?;
            writeln!(out, "ok {}", crate::host::collected_line(&done))?;
        }
        [] => bail!("empty request"),
        [cmd, ..] if KNOWN.contains(cmd) => bail!("wrong arguments for {cmd:?}"),
        [cmd, ..] => bail!(
            "unknown command {:?} (known: {})",
            cmd.chars().take(32).collect::<String>(),
            KNOWN.join(", ")
        ),
    }
    out.flush()?;
    Ok(())
}

const KNOWN: [&str; 11] = [
    "ping",
    "revoke",
    "collect",
    "export",
    "export-instance",
    "savepoint",
    "delete-savepoint",
    "savepoints",
    "savepoint-instance",
    "delete-instance-savepoint",
    "instance-savepoints",
];

/// A host's answer to a request.
pub enum Reply {
    /// No host listens on the folder's socket.
    NoHost,
    /// `ok`: the rest of the `ok` line, and the body that follows.
    Ok(String, BufReader<UnixStream>),
}

/// Sends `request` (one line, no newline) to the host running on `dir`.
///
/// # Errors
/// The host answered `error …` (the message is the error); the socket
/// failed mid-way; the answer is not `ok`/`error`.
pub fn request(dir: &Path, request: &str) -> Result<Reply> {
    let path: PathBuf = dir.join(SOCKET);
    let conn = match UnixStream::connect(&path) {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(Reply::NoHost);
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", path.display())),
    };
    // Longer than the longest command (a collection).
    conn.set_read_timeout(Some(COLLECT_TIMEOUT + Duration::from_secs(60)))?;
    (&conn)
        .write_all(format!("{request}\n").as_bytes())
        .with_context(|| format!("writing to {}", path.display()))?;
    let mut reader = BufReader::new(conn);
    let mut first = Vec::new();
    (&mut reader)
        .take(64 * 1024)
        .read_until(b'\n', &mut first)
        .with_context(|| format!("reading from {}", path.display()))?;
    let first = String::from_utf8_lossy(&first);
    let first = first.trim_end_matches('\n');
    if let Some(msg) = first.strip_prefix("error ") {
        bail!("the running host refused: {msg}");
    }
    match first.strip_prefix("ok") {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
            Ok(Reply::Ok(rest.trim_start().to_string(), reader))
        }
        _ => bail!(
            "{} answered something other than ok/error: {first:?}",
            path.display()
        ),
    }
}
