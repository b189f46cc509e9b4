//! The capabilities a powerbox grants, driven through a real vat over real
//! folders, FIFOs, symbolic links and HTTP servers: their normal use and the
//! attacks on them.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pola_powerbox::caps::{
    self, Access, CapError, ClockCap, FolderCap, RandomCap, RelPath, Sites, WebCap, WebOptions,
};
use pola_vat::{Ref, Val, Vat, WaitError, error_message};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- helpers

/// A scratch folder removed on drop: `docs/` is the documents folder,
/// `outside/` holds a secret the capabilities must never reach.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pola-caps-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("docs")).unwrap();
        std::fs::create_dir_all(p.join("outside")).unwrap();
        std::fs::write(p.join("outside/secret.txt"), "the secret").unwrap();
        Scratch(p)
    }
    fn docs(&self) -> PathBuf {
        self.0.join("docs")
    }
    fn root(&self) -> cap_std::fs::Dir {
        caps::open_documents(&self.docs()).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "mkfifo failed");
}

/// Sends and waits; Ok(value) or Err(the broken reason's message).
fn ask(vat: &Vat, target: &Ref, method: &'static str, args: Vec<Val>) -> Result<Val, String> {
    let answer = vat.send(target, method, args);
    match vat.block_on(&answer, WAIT) {
        Ok(v) => Ok(v),
        Err(WaitError::Broken(reason)) => {
            Err(error_message(&reason).unwrap_or("(no message)").to_owned())
        }
        Err(e) => panic!("{method}: {e}"),
    }
}

fn refused(vat: &Vat, target: &Ref, method: &'static str, args: Vec<Val>) -> String {
    match ask(vat, target, method, args) {
        Ok(v) => panic!("{method} should have been refused, answered {v:?}"),
        Err(msg) => msg,
    }
}

fn get_ref(v: Val) -> Ref {
    match v {
        Val::Ref(r) => r,
        other => panic!("expected a capability, got {other:?}"),
    }
}

fn s(x: &str) -> Val {
    Val::str(x)
}

/// Every error message a test saw must be free of host paths.
fn assert_no_host_path(messages: &[String], scratch: &Scratch) {
    let root = scratch.0.to_string_lossy().into_owned();
    let tmp = std::env::temp_dir().to_string_lossy().into_owned();
    for m in messages {
        assert!(!m.is_empty());
        assert!(!m.contains(&root), "{m:?} names the scratch folder");
        assert!(!m.contains(&tmp), "{m:?} names the temp folder");
        assert!(!m.contains("/etc"), "{m:?} names /etc");
        assert!(!m.contains("outside"), "{m:?} names the outside folder");
        assert!(!m.contains("docs"), "{m:?} names the documents folder");
    }
}

// ---------------------------------------------------------------- files

#[test]
fn a_file_reads_and_writes_through_the_vat() {
    let sc = Scratch::new("file");
    std::fs::write(sc.docs().join("notes.txt"), "hello").unwrap();
    let vat = Vat::new("files");
    let rel = RelPath::parse("notes.txt").unwrap();
    let f = vat.spawn(caps::file(&sc.root(), &rel, Access::ReadWrite).unwrap());

    assert_eq!(ask(&vat, &f, "name", vec![]), Ok(s("notes.txt")));
    assert_eq!(
        ask(&vat, &f, "read", vec![]),
        Ok(Val::bytes(b"hello".to_vec()))
    );
    assert_eq!(ask(&vat, &f, "read_text", vec![]), Ok(s("hello")));
    assert_eq!(ask(&vat, &f, "size", vec![]), Ok(Val::int(5i64)));

    assert_eq!(
        ask(&vat, &f, "write", vec![s("new text, longer")]),
        Ok(Val::Bool(true))
    );
    assert_eq!(
        std::fs::read_to_string(sc.docs().join("notes.txt")).unwrap(),
        "new text, longer"
    );
    assert_eq!(
        ask(&vat, &f, "write", vec![Val::bytes(vec![0xff, 0, 1])]),
        Ok(Val::Bool(true))
    );
    assert_eq!(ask(&vat, &f, "size", vec![]), Ok(Val::int(3i64)));
    assert_eq!(
        refused(&vat, &f, "read_text", vec![]),
        "this file is not text (not UTF-8)"
    );
    assert_eq!(
        refused(&vat, &f, "write", vec![Val::int(1i64)]),
        "write needs bytes or a string"
    );
    assert_eq!(refused(&vat, &f, "delete", vec![]), "no such method");
    vat.shutdown();
}

#[test]
fn a_write_is_atomic_and_keeps_permissions() {
    use std::os::unix::fs::MetadataExt;
    let sc = Scratch::new("atomic");
    let path = sc.docs().join("a.txt");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let rel = RelPath::parse("a.txt").unwrap();
    let f = caps::file(&sc.root(), &rel, Access::ReadWrite).unwrap();
    let before = std::fs::metadata(&path).unwrap();
    f.write(b"new").unwrap();
    let after = std::fs::metadata(&path).unwrap();
    // Replaced by rename: a new inode, never the old one rewritten in place.
    assert_ne!(before.ino(), after.ino());
    assert_eq!(after.permissions().mode() & 0o777, 0o640);
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(sc.docs())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);

    // A file deleted after the grant is written again (same name, same folder).
    std::fs::remove_file(&path).unwrap();
    f.write(b"again").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"again");
}

#[test]
fn a_read_only_file_refuses_to_write() {
    let sc = Scratch::new("ro");
    std::fs::write(sc.docs().join("r.txt"), "keep").unwrap();
    let vat = Vat::new("ro");
    let rel = RelPath::parse("r.txt").unwrap();
    let f = vat.spawn(caps::file(&sc.root(), &rel, Access::Read).unwrap());
    assert_eq!(
        refused(&vat, &f, "write", vec![s("changed")]),
        "this file was given for reading only"
    );
    assert_eq!(
        std::fs::read_to_string(sc.docs().join("r.txt")).unwrap(),
        "keep"
    );
    // Narrowing a read-only capability never widens it.
    let cap = caps::file(&sc.root(), &rel, Access::Read).unwrap();
    assert_eq!(cap.narrowed(Access::ReadWrite).access(), Access::Read);
    assert_eq!(
        cap.narrowed(Access::ReadWrite).write(b"x"),
        Err(CapError::ReadOnly("file"))
    );
    vat.shutdown();
}

#[test]
fn chooser_paths_cannot_leave_the_documents_folder() {
    let sc = Scratch::new("escape");
    let root = sc.root();
    let d = sc.docs();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/ok.txt"), "ok").unwrap();
    // Links out of the folder: to a file, to /etc/passwd, to a folder.
    std::os::unix::fs::symlink(sc.0.join("outside/secret.txt"), d.join("secret-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap();
    std::os::unix::fs::symlink("../outside", d.join("out")).unwrap();
    // Links that stay inside: still not followed.
    std::os::unix::fs::symlink("sub", d.join("inner")).unwrap();
    std::os::unix::fs::symlink("sub/ok.txt", d.join("inner-file")).unwrap();

    let mut messages = Vec::new();
    for bad in [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "/etc/passwd",
        "sub//ok.txt",
        "./sub/ok.txt",
    ] {
        let e = RelPath::parse(bad).unwrap_err();
        messages.push(e.to_string());
    }
    for (rel, want) in [
        ("secret-link", CapError::Symlink),
        ("passwd", CapError::Symlink),
        ("out/secret.txt", CapError::Symlink),
        ("inner/ok.txt", CapError::Symlink),
        ("inner-file", CapError::Symlink),
        ("sub", CapError::NotAFile),
        ("missing.txt", CapError::NotFound),
        ("sub/ok.txt/x", CapError::NotAFolder),
    ] {
        let rel = RelPath::parse(rel).unwrap();
        for access in [Access::Read, Access::ReadWrite] {
            let e = caps::file(&root, &rel, access).unwrap_err();
            assert_eq!(e, want, "{rel:?}");
            messages.push(e.to_string());
        }
    }
    for (rel, want) in [
        ("out", CapError::Symlink),
        ("inner", CapError::Symlink),
        ("sub/ok.txt", CapError::NotAFolder),
    ] {
        let e = caps::folder(&root, &RelPath::parse(rel).unwrap(), Access::Read).unwrap_err();
        assert_eq!(e, want, "{rel}");
        messages.push(e.to_string());
    }
    assert_eq!(
        caps::file(&root, &RelPath::root(), Access::Read).unwrap_err(),
        CapError::BadPath("a file needs a name")
    );
    // The ordinary path still works.
    let ok = caps::file(&root, &RelPath::parse("sub/ok.txt").unwrap(), Access::Read).unwrap();
    assert_eq!(ok.read().unwrap(), b"ok");
    assert_no_host_path(&messages, &sc);
}

#[test]
fn a_file_swapped_for_a_link_after_the_grant_is_refused() {
    let sc = Scratch::new("swap");
    let path = sc.docs().join("doc.txt");
    std::fs::write(&path, "mine").unwrap();
    let vat = Vat::new("swap");
    let rel = RelPath::parse("doc.txt").unwrap();
    let f = vat.spawn(caps::file(&sc.root(), &rel, Access::ReadWrite).unwrap());
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(sc.0.join("outside/secret.txt"), &path).unwrap();
    let mut messages = vec![
        refused(&vat, &f, "read", vec![]),
        refused(&vat, &f, "size", vec![]),
        refused(&vat, &f, "write", vec![s("overwrite the secret")]),
    ];
    assert_eq!(messages[0], "symbolic links are not followed");
    assert_eq!(messages[2], "symbolic links are not followed");
    assert_eq!(
        std::fs::read_to_string(sc.0.join("outside/secret.txt")).unwrap(),
        "the secret"
    );
    // Swapped for a FIFO: refused at once, no hang.
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    messages.push(refused(&vat, &f, "read", vec![]));
    assert_eq!(messages[3], "that is not a regular file");
    messages.push(refused(&vat, &f, "write", vec![s("x")]));
    assert_no_host_path(&messages, &sc);
    vat.shutdown();
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let sc = Scratch::new("fifo");
    mkfifo(&sc.docs().join("pipe"));
    // On a thread, so that an open that blocks fails the test instead of
    // hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let docs = sc.docs();
    std::thread::spawn(move || {
        let root = caps::open_documents(&docs).unwrap();
        for access in [Access::Read, Access::ReadWrite] {
            let _ = tx.send(caps::file(&root, &RelPath::parse("pipe").unwrap(), access).err());
        }
    });
    for _ in 0..2 {
        assert_eq!(rx.recv_timeout(WAIT), Ok(Some(CapError::NotAFile)));
    }
    let root = sc.root();
    // Through the vat (each `ask` gives up after WAIT: a blocked open
    // would fail the test rather than hang it).
    let vat = Vat::new("fifo");
    let folder = vat.spawn(caps::folder(&root, &RelPath::root(), Access::ReadWrite).unwrap());
    assert_eq!(
        refused(&vat, &folder, "file", vec![s("pipe")]),
        "that is not a regular file"
    );
    assert_eq!(
        refused(&vat, &folder, "create", vec![s("pipe")]),
        "there is already something of that name here"
    );
    // list leaves it out.
    assert_eq!(ask(&vat, &folder, "list", vec![]), Ok(Val::List(vec![])));
    vat.shutdown();
}

#[test]
fn files_over_16_mib_are_refused() {
    let sc = Scratch::new("big");
    let big = std::fs::File::create(sc.docs().join("big.bin")).unwrap();
    big.set_len(caps::MAX_FILE + 1).unwrap();
    let exact = std::fs::File::create(sc.docs().join("exact.bin")).unwrap();
    exact.set_len(caps::MAX_FILE).unwrap();
    let vat = Vat::new("big");
    let root = sc.root();
    let big = caps::file(
        &root,
        &RelPath::parse("big.bin").unwrap(),
        Access::ReadWrite,
    )
    .unwrap();
    let f = vat.spawn(big);
    assert_eq!(
        refused(&vat, &f, "read", vec![]),
        "files are limited to 16 MiB"
    );
    assert_eq!(
        refused(&vat, &f, "read_text", vec![]),
        "files are limited to 16 MiB"
    );
    assert_eq!(
        ask(&vat, &f, "size", vec![]),
        Ok(Val::int(caps::MAX_FILE + 1))
    );
    let exact = caps::file(
        &root,
        &RelPath::parse("exact.bin").unwrap(),
        Access::ReadWrite,
    )
    .unwrap();
    let e = vat.spawn(exact);
    match ask(&vat, &e, "read", vec![]) {
        Ok(Val::Bytes(b)) => assert_eq!(b.len() as u64, caps::MAX_FILE),
        other => panic!("16 MiB exactly should read: {other:?}"),
    }
    let too_much = vec![b'x'; (caps::MAX_FILE + 1) as usize];
    assert_eq!(
        refused(&vat, &e, "write", vec![Val::bytes(too_much)]),
        "files are limited to 16 MiB"
    );
    // The refused write changed nothing.
    assert_eq!(
        std::fs::metadata(sc.docs().join("exact.bin"))
            .unwrap()
            .len(),
        caps::MAX_FILE
    );
    vat.shutdown();
}

// ---------------------------------------------------------------- folders

#[test]
fn a_folder_lists_opens_and_creates() {
    let sc = Scratch::new("folder");
    let d = sc.docs();
    std::fs::write(d.join("b.txt"), "b").unwrap();
    std::fs::write(d.join("a.txt"), "a").unwrap();
    std::fs::create_dir(d.join("c")).unwrap();
    std::fs::write(d.join("c/inner.txt"), "inner").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
    mkfifo(&d.join("pipe"));
    std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
    std::fs::write(d.join(".pola-write-0011223344556677.tmp"), "half").unwrap();

    let vat = Vat::new("folder");
    let folder = vat.spawn(caps::folder(&sc.root(), &RelPath::root(), Access::ReadWrite).unwrap());
    let entry = |n: &str, k: &str| {
        Val::Dict(
            [(s("name"), s(n)), (s("kind"), Val::sym(k))]
                .into_iter()
                .collect(),
        )
    };
    assert_eq!(
        ask(&vat, &folder, "list", vec![]),
        Ok(Val::List(vec![
            entry("a.txt", "file"),
            entry("b.txt", "file"),
            entry("c", "folder")
        ]))
    );

    let c = get_ref(ask(&vat, &folder, "folder", vec![s("c")]).unwrap());
    let inner = get_ref(ask(&vat, &c, "file", vec![s("inner.txt")]).unwrap());
    assert_eq!(ask(&vat, &inner, "read_text", vec![]), Ok(s("inner")));
    assert_eq!(
        ask(&vat, &inner, "write", vec![s("changed")]),
        Ok(Val::Bool(true))
    );
    assert_eq!(
        std::fs::read_to_string(d.join("c/inner.txt")).unwrap(),
        "changed"
    );

    let new = get_ref(ask(&vat, &c, "create", vec![s("new.txt")]).unwrap());
    assert_eq!(ask(&vat, &new, "size", vec![]), Ok(Val::int(0i64)));
    assert_eq!(
        ask(&vat, &new, "write", vec![s("fresh")]),
        Ok(Val::Bool(true))
    );
    assert_eq!(
        std::fs::read_to_string(d.join("c/new.txt")).unwrap(),
        "fresh"
    );
    // create never replaces: an existing file is refused, and kept.
    assert_eq!(
        refused(&vat, &c, "create", vec![s("new.txt")]),
        "there is already something of that name here"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("c/new.txt")).unwrap(),
        "fresh"
    );

    // Names are single components.
    let mut messages = Vec::new();
    for method in ["file", "folder", "create"] {
        for bad in [
            "..",
            ".",
            "",
            "c/inner.txt",
            "../outside",
            "a\0b",
            "/etc/passwd",
        ] {
            let m = refused(&vat, &folder, method, vec![s(bad)]);
            assert!(m.starts_with("a name may not"), "{method}({bad:?}): {m}");
            messages.push(m);
        }
        messages.push(refused(&vat, &folder, method, vec![Val::int(3i64)]));
        messages.push(refused(&vat, &folder, method, vec![]));
    }
    let ends = [
        refused(&vat, &folder, "file", vec![s("link")]),
        refused(&vat, &folder, "folder", vec![s("link")]),
        refused(&vat, &folder, "file", vec![s("missing")]),
        refused(&vat, &folder, "folder", vec![s("a.txt")]),
    ];
    assert_eq!(
        ends,
        [
            "symbolic links are not followed",
            "symbolic links are not followed",
            "there is no file or folder of that name",
            "that is not a folder",
        ]
    );
    messages.extend(ends);
    assert_no_host_path(&messages, &sc);
    vat.shutdown();
}

#[test]
fn a_read_only_folder_gives_read_only_files_and_creates_nothing() {
    let sc = Scratch::new("rofolder");
    std::fs::create_dir(sc.docs().join("sub")).unwrap();
    std::fs::write(sc.docs().join("sub/x.txt"), "x").unwrap();
    let vat = Vat::new("rofolder");
    let sub = caps::folder(&sc.root(), &RelPath::parse("sub").unwrap(), Access::Read).unwrap();
    let folder = vat.spawn(sub);
    assert_eq!(
        refused(&vat, &folder, "create", vec![s("y.txt")]),
        "this folder was given for reading only"
    );
    assert!(!sc.docs().join("sub/y.txt").exists());
    let x = get_ref(ask(&vat, &folder, "file", vec![s("x.txt")]).unwrap());
    assert_eq!(ask(&vat, &x, "read_text", vec![]), Ok(s("x")));
    assert_eq!(
        refused(&vat, &x, "write", vec![s("no")]),
        "this file was given for reading only"
    );
    assert_eq!(
        std::fs::read_to_string(sc.docs().join("sub/x.txt")).unwrap(),
        "x"
    );
    vat.shutdown();
}

#[test]
fn a_folder_cannot_be_climbed_out_of() {
    // A folder capability for docs/sub never reaches docs/ (its parent),
    // even by a link planted inside it later.
    let sc = Scratch::new("climb");
    std::fs::create_dir(sc.docs().join("sub")).unwrap();
    std::fs::write(sc.docs().join("top.txt"), "top").unwrap();
    let sub: FolderCap = caps::folder(
        &sc.root(),
        &RelPath::parse("sub").unwrap(),
        Access::ReadWrite,
    )
    .unwrap();
    std::os::unix::fs::symlink("../top.txt", sc.docs().join("sub/up")).unwrap();
    std::os::unix::fs::symlink("..", sc.docs().join("sub/parent")).unwrap();
    assert_eq!(sub.file("up").unwrap_err(), CapError::Symlink);
    assert_eq!(sub.folder("parent").unwrap_err(), CapError::Symlink);
    assert!(sub.file("..").is_err());
    assert!(sub.folder("..").is_err());
    assert_eq!(sub.list().unwrap(), vec![]);
    // create_file: makes a missing file, keeps an existing one as it is.
    let made = caps::create_file(&sc.root(), &RelPath::parse("sub/made.txt").unwrap()).unwrap();
    assert_eq!(made.read().unwrap(), b"");
    let kept = caps::create_file(&sc.root(), &RelPath::parse("top.txt").unwrap()).unwrap();
    assert_eq!(kept.read().unwrap(), b"top");
    assert_eq!(
        caps::create_file(&sc.root(), &RelPath::parse("sub/parent").unwrap()).unwrap_err(),
        CapError::Symlink
    );
}

#[test]
fn the_documents_root_error_names_no_path() {
    let sc = Scratch::new("rooterr");
    let e = caps::open_documents(&sc.0.join("missing")).unwrap_err();
    assert_eq!(e, CapError::NotFound);
    let e = caps::open_documents(&sc.0.join("outside/secret.txt")).unwrap_err();
    assert_no_host_path(&[e.to_string()], &sc);
}

// ---------------------------------------------------------------- clock, random

#[test]
fn the_clock_tells_milliseconds_since_1970() {
    let vat = Vat::new("clock");
    let clock = vat.spawn(ClockCap);
    let ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = ms();
    let now = ask(&vat, &clock, "now", vec![]).unwrap().as_i64().unwrap();
    let after = ms();
    assert!(
        before <= now && now <= after,
        "{before} <= {now} <= {after}"
    );
    assert_eq!(
        refused(&vat, &clock, "set", vec![Val::int(0i64)]),
        "no such method"
    );
    vat.shutdown();
}

#[test]
fn randomness_is_bounded_and_fresh() {
    let vat = Vat::new("random");
    let r = vat.spawn(RandomCap);
    let a = ask(&vat, &r, "bytes", vec![Val::int(32i64)]).unwrap();
    let b = ask(&vat, &r, "bytes", vec![Val::int(32i64)]).unwrap();
    assert_eq!(a.as_bytes().map(|b| b.len()), Some(32));
    assert_ne!(a, b);
    assert_eq!(
        ask(&vat, &r, "bytes", vec![Val::int(0i64)]),
        Ok(Val::bytes(Vec::new()))
    );
    let max = ask(&vat, &r, "bytes", vec![Val::int(4096i64)]).unwrap();
    assert_eq!(max.as_bytes().map(|b| b.len()), Some(4096));
    for bad in [Val::int(4097i64), Val::int(-1i64), Val::int(u64::MAX)] {
        assert_eq!(
            refused(&vat, &r, "bytes", vec![bad]),
            "bytes(N): N must be from 0 to 4096"
        );
    }
    assert_eq!(
        refused(&vat, &r, "bytes", vec![s("8")]),
        "bytes(N): N must be a whole number"
    );
    assert_eq!(
        refused(&vat, &r, "bytes", vec![]),
        "bytes(N): N must be a whole number"
    );
    vat.shutdown();
}

// ---------------------------------------------------------------- web

/// A tiny HTTP/1.1 server on 127.0.0.1 for the web tests: answers by path,
/// records the paths asked for, and the largest number served at once.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    busy: Arc<AtomicUsize>,
    most_busy: Arc<AtomicUsize>,
}

impl Server {
    fn start(redirect_to: Option<u16>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let busy = Arc::new(AtomicUsize::new(0));
        let most_busy = Arc::new(AtomicUsize::new(0));
        let (rq, b, mb) = (requests.clone(), busy.clone(), most_busy.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (rq, b, mb) = (rq.clone(), b.clone(), mb.clone());
                std::thread::spawn(move || serve(conn, port, redirect_to, &rq, &b, &mb));
            }
        });
        Server {
            port,
            requests,
            busy,
            most_busy,
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    mut conn: TcpStream,
    port: u16,
    redirect_to: Option<u16>,
    requests: &Mutex<Vec<String>>,
    busy: &AtomicUsize,
    most_busy: &AtomicUsize,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    requests.lock().unwrap().push(path.clone());
    let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
    most_busy.fetch_max(now, Ordering::SeqCst);
    // Every arm but /hang answers once through `reply`, which counts the
    // request finished before writing: a client that has read the answer
    // must never find it still counted as running.
    let reply = |conn: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
        busy.fetch_sub(1, Ordering::SeqCst);
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
            body.len()
        );
        let _ = conn.write_all(body);
    };
    match path.as_str() {
        "/hello" => reply(&mut conn, "200 OK", "Content-Type: text/plain\r\n", b"hi"),
        "/missing" => reply(
            &mut conn,
            "404 Not Found",
            "Content-Type: text/plain\r\n",
            b"no",
        ),
        "/exact" => reply(&mut conn, "200 OK", "", &vec![b'x'; 4 << 20]),
        "/big" => reply(&mut conn, "200 OK", "", &vec![b'x'; (4 << 20) + 1]),
        "/redirect-in" => reply(&mut conn, "302 Found", "Location: /hello\r\n", b""),
        "/redirect-loop" => reply(&mut conn, "302 Found", "Location: /redirect-loop\r\n", b""),
        "/redirect-out" => {
            let to = format!(
                "Location: http://127.0.0.1:{}/hello\r\n",
                redirect_to.unwrap_or(port)
            );
            reply(&mut conn, "302 Found", &to, b"");
        }
        "/slow" => {
            std::thread::sleep(Duration::from_millis(300));
            reply(&mut conn, "200 OK", "", b"slow");
        }
        "/hang" => {
            std::thread::sleep(Duration::from_secs(60));
            busy.fetch_sub(1, Ordering::SeqCst);
        }
        _ => reply(&mut conn, "400 Bad Request", "", b""),
    }
}

fn web(vat: &Vat, sites: &[&str], options: WebOptions) -> Ref {
    vat.spawn(WebCap::new(Sites::parse(sites).unwrap(), options))
}

fn field<'a>(v: &'a Val, key: &str) -> &'a Val {
    match v {
        Val::Dict(d) => d
            .get(&s(key))
            .unwrap_or_else(|| panic!("no {key} in {v:?}")),
        _ => panic!("not a dictionary: {v:?}"),
    }
}

#[test]
fn web_gets_from_a_granted_site() {
    let server = Server::start(None);
    let vat = Vat::new("web");
    let w = web(&vat, &[&server.origin()], WebOptions::default());
    let got = ask(&vat, &w, "get", vec![s(&server.url("/hello"))]).unwrap();
    assert_eq!(field(&got, "status"), &Val::int(200i64));
    assert_eq!(field(&got, "type"), &s("text/plain"));
    assert_eq!(field(&got, "body"), &Val::bytes(b"hi".to_vec()));
    let missing = ask(&vat, &w, "get", vec![s(&server.url("/missing"))]).unwrap();
    assert_eq!(field(&missing, "status"), &Val::int(404i64));
    // The same origin written differently: upper case, a fragment, another
    // form of the same address.
    for u in [
        format!("HTTP://127.0.0.1:{}/hello", server.port),
        format!("http://127.0.0.1:{}/hello#frag", server.port),
        format!("http://0x7f.0.0.1:{}/hello", server.port),
    ] {
        let got = ask(&vat, &w, "get", vec![s(&u)]).unwrap();
        assert_eq!(field(&got, "body"), &Val::bytes(b"hi".to_vec()), "{u}");
    }
    // The fragment never reaches the server.
    assert!(server.seen().iter().all(|p| !p.contains('#')));
    // Exactly 4 MiB is answered.
    let exact = ask(&vat, &w, "get", vec![s(&server.url("/exact"))]).unwrap();
    assert_eq!(
        field(&exact, "body").as_bytes().map(|b| b.len()),
        Some(4 << 20)
    );
    vat.shutdown();
}

#[test]
fn web_refuses_every_other_site() {
    let server = Server::start(None);
    let other = Server::start(None);
    let vat = Vat::new("web-refuse");
    let w = web(&vat, &[&server.origin()], WebOptions::default());
    let p = server.port;
    for u in [
        format!("http://127.0.0.1:{}/hello", other.port),
        format!("https://127.0.0.1:{p}/hello"),
        format!("http://127.0.0.1.evil:{p}/hello"),
        format!("http://127.0.0.1:{p}@127.0.0.1:{}/hello", other.port),
        format!("http://user@127.0.0.1:{p}/hello"),
        format!("http://user:pw@127.0.0.1:{p}/hello"),
        format!("http://[::1]:{p}/hello"),
        format!("http://[::ffff:127.0.0.1]:{p}/hello"),
        format!("http://localhost:{p}/hello"),
        format!("ftp://127.0.0.1:{p}/hello"),
        "file:///etc/passwd".to_owned(),
        "data:text/plain,hi".to_owned(),
        "javascript:alert(1)".to_owned(),
    ] {
        assert_eq!(
            refused(&vat, &w, "get", vec![s(&u)]),
            "this app may not connect to that site",
            "{u}"
        );
    }
    assert_eq!(
        refused(&vat, &w, "get", vec![s("not a url")]),
        "that is not a web address"
    );
    assert_eq!(
        refused(&vat, &w, "get", vec![Val::int(1i64)]),
        "get(URL): URL must be a string"
    );
    assert!(other.seen().is_empty(), "the other server was reached");
    assert!(
        server.seen().is_empty(),
        "a refused request reached the server"
    );
    vat.shutdown();
}

#[test]
fn web_follows_redirects_only_inside_the_grant() {
    let other = Server::start(None);
    let server = Server::start(Some(other.port));
    let vat = Vat::new("web-redirect");
    let w = web(&vat, &[&server.origin()], WebOptions::default());
    let got = ask(&vat, &w, "get", vec![s(&server.url("/redirect-in"))]).unwrap();
    assert_eq!(field(&got, "body"), &Val::bytes(b"hi".to_vec()));
    assert_eq!(
        refused(&vat, &w, "get", vec![s(&server.url("/redirect-out"))]),
        "the site redirected to a site this app may not connect to"
    );
    assert!(other.seen().is_empty(), "the redirect was followed");
    assert_eq!(
        refused(&vat, &w, "get", vec![s(&server.url("/redirect-loop"))]),
        "the site redirected too many times"
    );
    // Granted both: the redirect is followed.
    let both = web(
        &vat,
        &[&server.origin(), &other.origin()],
        WebOptions::default(),
    );
    let got = ask(&vat, &both, "get", vec![s(&server.url("/redirect-out"))]).unwrap();
    assert_eq!(field(&got, "body"), &Val::bytes(b"hi".to_vec()));
    assert_eq!(other.seen(), vec!["/hello".to_owned()]);
    vat.shutdown();
}

#[test]
fn web_caps_the_body() {
    let server = Server::start(None);
    let vat = Vat::new("web-big");
    let w = web(&vat, &[&server.origin()], WebOptions::default());
    assert_eq!(
        refused(&vat, &w, "get", vec![s(&server.url("/big"))]),
        "the site's answer is larger than 4 MiB"
    );
    vat.shutdown();
}

#[test]
fn a_silent_site_times_out_without_stalling_the_vat() {
    let server = Server::start(None);
    let vat = Vat::new("web-hang");
    let options = WebOptions {
        total_timeout: Duration::from_secs(2),
        ..WebOptions::default()
    };
    let w = web(&vat, &[&server.origin()], options);
    let started = Instant::now();
    let hung = vat.send(&w, "get", vec![s(&server.url("/hang"))]);
    // While the request waits, the vat keeps answering.
    let clock = vat.spawn(ClockCap);
    for _ in 0..20 {
        let t = vat.send(&clock, "now", vec![]);
        assert!(
            vat.block_on(&t, Duration::from_secs(1)).is_ok(),
            "the vat stalled"
        );
    }
    let fine = ask(&vat, &w, "get", vec![s(&server.url("/hello"))]).unwrap();
    assert_eq!(field(&fine, "status"), &Val::int(200i64));
    match vat.block_on(&hung, WAIT) {
        Err(WaitError::Broken(r)) => {
            assert_eq!(error_message(&r), Some("the site did not answer in time"))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2) && took < WAIT, "{took:?}");
    vat.shutdown();
}

#[test]
fn web_runs_at_most_four_requests_at_once() {
    let server = Server::start(None);
    let vat = Vat::new("web-pool");
    let w = web(&vat, &[&server.origin()], WebOptions::default());
    let slow = server.url("/slow");
    let answers: Vec<Ref> = (0..12)
        .map(|_| vat.send(&w, "get", vec![s(&slow)]))
        .collect();
    for a in &answers {
        let got = vat.block_on(a, WAIT).unwrap();
        assert_eq!(field(&got, "body"), &Val::bytes(b"slow".to_vec()));
    }
    let most = server.most_busy.load(Ordering::SeqCst);
    assert!((1..=4).contains(&most), "{most} requests ran at once");
    assert_eq!(server.busy.load(Ordering::SeqCst), 0);

    // With room for one running and one waiting, the rest are refused.
    let tight = WebOptions {
        max_in_flight: 1,
        max_queued: 1,
        ..WebOptions::default()
    };
    let w = web(&vat, &[&server.origin()], tight);
    let answers: Vec<Ref> = (0..4)
        .map(|_| vat.send(&w, "get", vec![s(&slow)]))
        .collect();
    let outcomes: Vec<_> = answers.iter().map(|a| vat.block_on(a, WAIT)).collect();
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok(), "{outcomes:?}");
    for o in &outcomes[2..] {
        match o {
            Err(WaitError::Broken(r)) => assert_eq!(
                error_message(r),
                Some("too many web requests at once: wait for some to finish")
            ),
            other => panic!("{other:?}"),
        }
    }
    vat.shutdown();
}

#[test]
fn anywhere_means_public_sites_only() {
    let server = Server::start(None);
    let vat = Vat::new("web-anywhere");
    let w = web(&vat, &["*"], WebOptions::default());
    let p = server.port;
    for u in [
        format!("http://127.0.0.1:{p}/hello"),
        format!("http://localhost:{p}/hello"),
        format!("http://[::1]:{p}/hello"),
        format!("http://2130706433:{p}/hello"),
        format!("http://0.0.0.0:{p}/hello"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://192.168.0.1/".to_owned(),
    ] {
        assert_eq!(
            refused(&vat, &w, "get", vec![s(&u)]),
            "this app may not connect to that site",
            "{u}"
        );
    }
    assert!(server.seen().is_empty());
    vat.shutdown();
}

#[test]
fn a_granted_name_that_resolves_to_a_private_address_is_refused() {
    // This machine's own name resolves (through /etc/hosts) to a loopback
    // or private address: a site granted by that name must not reach it.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let private = (name.as_str(), 80)
        .to_socket_addrs()
        .map(|mut a| a.any(|a| !caps::is_public(a.ip())))
        .unwrap_or(false);
    if name.is_empty()
        || !private
        || name == "localhost"
        || name.parse::<std::net::IpAddr>().is_ok()
    {
        eprintln!("skipped: the host name {name:?} does not resolve to a private address");
        return;
    }
    let server = Server::start(None);
    let vat = Vat::new("web-rebind");
    let origin = format!("http://{name}:{}", server.port);
    let w = web(&vat, &[&origin], WebOptions::default());
    assert_eq!(
        refused(&vat, &w, "get", vec![s(&format!("{origin}/hello"))]),
        "this app may not connect to that site"
    );
    assert!(server.seen().is_empty());
    // `localhost` granted by name is the exception.
    let local = format!("http://localhost:{}", server.port);
    let w = web(&vat, &[&local], WebOptions::default());
    let got = ask(&vat, &w, "get", vec![s(&format!("{local}/hello"))]).unwrap();
    assert_eq!(field(&got, "status"), &Val::int(200i64));
    vat.shutdown();
}

#[test]
fn site_lists_are_checked() {
    for bad in [
        vec!["https://example.org/path"],
        vec!["https://example.org?q"],
        vec!["https://user@example.org"],
        vec!["ftp://example.org"],
        vec!["javascript:alert(1)"],
        vec!["example.org"],
        vec!["*", "https://example.org"],
        vec![],
    ] {
        assert!(Sites::parse(&bad).is_err(), "{bad:?} accepted");
    }
    let many: Vec<String> = (0..17).map(|i| format!("https://s{i}.example")).collect();
    assert!(Sites::parse(&many).is_err());
    assert!(Sites::parse(&many[..16]).is_ok());
    // A manifest's origins (pola_powerbox::Origin, canonical) give the same grant.
    let manifest = pola_powerbox::Sites::Some(vec![
        pola_powerbox::Origin::parse("https://example.org").unwrap(),
        pola_powerbox::Origin::parse("http://127.0.0.1:8080").unwrap(),
    ]);
    let granted = Sites::from_grant(&manifest).unwrap();
    for (u, ok) in [
        ("https://example.org/a", true),
        ("http://127.0.0.1:8080/", true),
        ("http://example.org/", false),
        ("http://127.0.0.1:8081/", false),
    ] {
        assert_eq!(granted.allows(&url::Url::parse(u).unwrap()), ok, "{u}");
    }
    assert_eq!(
        Sites::from_grant(&pola_powerbox::Sites::Anywhere),
        Ok(Sites::Anywhere)
    );
    assert!(Sites::from_grant(&pola_powerbox::Sites::None).is_err());
    let sites = Sites::parse(&["HTTPS://Example.ORG:443/"]).unwrap();
    let url = url::Url::parse("https://example.org/x").unwrap();
    assert!(sites.allows(&url));
}
