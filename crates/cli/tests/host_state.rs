//! A host's state as a user handles it: `pola.toml`, `pola export` of a
//! running host, `pola import` into a new folder, savepoints and rollback,
//! the control socket under attack, damaged exports, and the move of the
//! old `identity.key`/`sturdyrefs` files into the store. Real `pola`
//! processes, real files, the encrypted netlayer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pola_captp::locator::SturdyRef;
use pola_netlayer::Identity;

mod common;

use common::{Client, POLA, Served, T, TempDir, free_port, pola};

/// `pola serve --state DIR` plus `args`.
fn serve(state: &Path, args: &[&str]) -> Served {
    let mut cmd = Command::new(POLA);
    cmd.arg("serve").arg("--state").arg(state).args(args);
    Served::start(cmd)
}

/// `pola export --state DIR > file`; returns stderr, panics on failure.
fn export(state: &Path, file: &Path) -> String {
    let out = Command::new(POLA)
        .arg("export")
        .arg("--state")
        .arg(state)
        .stdout(Stdio::from(std::fs::File::create(file).unwrap()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "export failed: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_running_mint_exported_and_imported_answers_the_same_uris() {
    let dir = TempDir::new("cli");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let port = free_port();
    let server = serve(&a, &["--mint", "--port", &port.to_string()]);
    // The first start wrote the config from the flags; the old loose
    // files are not made any more.
    let toml = std::fs::read_to_string(a.join("pola.toml")).unwrap();
    assert!(toml.contains("[mint]") && toml.contains(&format!("port = {port}")));
    assert_eq!(mode(&a.join("pola.toml")), 0o600);
    assert!(!a.join("identity.key").exists() && !a.join("sturdyrefs").exists());

    let client = Client::new();
    let mint = server.uri("mint").to_owned();
    let purses: Vec<String> = [100, 50, 0]
        .iter()
        .map(|&n| client.purse(&mint, n))
        .collect();
    client.pay(&purses[0], &purses[2], 30);
    client.pay(&purses[1], &purses[2], 5);
    assert_eq!(client.balances(&purses), vec![70, 45, 35]);

    // Exported while it runs (it holds the store's lock).
    let file = dir.join("host.pola");
    export(&a, &file);
    // A payment after the export is not in it.
    client.pay(&purses[0], &purses[1], 1);
    let before: Vec<(String, String)> = server.objects.clone();
    drop(server);

    let (code, _, err) = pola(&["import", s(&file), "--state", s(&b)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode(&b), 0o700);
    assert_eq!(mode(&b.join("state.redb")), 0o600);
    assert_eq!(mode(&b.join("pola.toml")), 0o600);
    assert_eq!(std::fs::read_to_string(b.join("pola.toml")).unwrap(), toml);
    let mut names: Vec<String> = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["pola.toml", "state.redb"]);

    // The imported host runs from its pola.toml alone.
    let server = serve(&b, &[]);
    assert_eq!(server.objects, before, "the URIs changed");
    assert_eq!(client.balances(&purses), vec![70, 45, 35]);
    // And through `pola call`, as a user would.
    let (code, out, err) = pola(&["call", &purses[2], "balance"]);
    assert_eq!((code, out.trim()), (0, "35"), "{err}");
    drop(server);

    // Importing again into a folder that is not empty is refused.
    let (code, _, err) = pola(&["import", s(&file), "--state", s(&b)]);
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn savepoint_while_running_then_rollback_when_stopped() {
    let dir = TempDir::new("cli");
    let a = dir.join("a");
    let port = free_port().to_string();
    let server = serve(&a, &["--mint", "--port", &port]);
    let client = Client::new();
    let mint = server.uri("mint").to_owned();
    let purses = vec![client.purse(&mint, 10), client.purse(&mint, 0)];
    client.pay(&purses[0], &purses[1], 4);

    let (code, out, err) = pola(&["savepoint", "--state", s(&a), "before"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("savepoint before"), "{out}");
    // Names are checked; taken names refused.
    let (code, _, err) = pola(&["savepoint", "--state", s(&a), "../x"]);
    assert_ne!(code, 0);
    assert!(err.contains("bad savepoint name"), "{err}");
    let (code, _, err) = pola(&["savepoint", "--state", s(&a), "before"]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");

    client.pay(&purses[0], &purses[1], 6);
    assert_eq!(client.balances(&purses), vec![0, 10]);
    let (code, out, err) = pola(&["savepoints", "--state", s(&a)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("before 20") && out.contains("UTC"), "{out}");

    // No rollback under a running host.
    let (code, _, err) = pola(&["rollback", "--state", s(&a), "before"]);
    assert_ne!(code, 0);
    assert!(err.contains("stop it first"), "{err}");
    drop(server);

    let (code, _, err) = pola(&["rollback", "--state", s(&a), "nosuch"]);
    assert_ne!(code, 0);
    assert!(err.contains("no savepoint named"), "{err}");
    let (code, _, err) = pola(&["rollback", "--state", s(&a), "before"]);
    assert_eq!(code, 0, "{err}");
    let server = serve(&a, &["--mint", "--port", &port]);
    assert_eq!(
        client.balances(&purses),
        vec![6, 4],
        "not as at the savepoint"
    );
    drop(server);

    // Listed and deleted while stopped, too.
    let (_, out, _) = pola(&["savepoints", "--state", s(&a)]);
    assert!(out.starts_with("before "), "{out}");
    let (code, _, err) = pola(&["savepoint", "--state", s(&a), "--delete", "before"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = pola(&["savepoints", "--state", s(&a)]);
    assert_eq!(out, "");
    let (code, _, _) = pola(&["savepoint", "--state", s(&a), "--delete", "before"]);
    assert_ne!(code, 0);
}

#[test]
fn an_instance_savepoint_while_running_then_its_rollback_when_stopped() {
    let dir = TempDir::new("cli");
    let a = dir.join("a");
    let port = free_port().to_string();
    let server = serve(&a, &["--mint", "--port", &port]);
    let client = Client::new();
    let mint = server.uri("mint").to_owned();
    let purses = vec![client.purse(&mint, 10), client.purse(&mint, 0)];
    client.pay(&purses[0], &purses[1], 4);

    // Through the running host's control socket.
    let at = ["--instance", "serve"];
    let (code, out, err) = pola(&[&["savepoint", "--state", s(&a), "before"], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("savepoint before of instance serve"), "{out}");
    let (code, out, err) = pola(&[&["savepoints", "--state", s(&a)], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("before 20") && out.contains("UTC"), "{out}");
    // Not a whole-store savepoint.
    let (_, out, _) = pola(&["savepoints", "--state", s(&a)]);
    assert_eq!(out, "");
    // Refused: a taken name, an unknown instance, bad names (checked
    // before anything is sent).
    let (code, _, err) = pola(&[&["savepoint", "--state", s(&a), "before"], &at[..]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = pola(&["savepoint", "--state", s(&a), "x", "--instance", "nosuch"]);
    assert_ne!(code, 0);
    assert!(err.contains("no instance named"), "{err}");
    for bad in ["a b", "serve\nping", ""] {
        let (code, _, err) = pola(&["savepoint", "--state", s(&a), "x", "--instance", bad]);
        assert_ne!(code, 0);
        assert!(err.contains("bad instance name"), "{err}");
    }
    // Taken and deleted while it runs.
    let (code, _, err) = pola(&[&["savepoint", "--state", s(&a), "tmp"], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    let delete = ["savepoint", "--state", s(&a), "--delete", "tmp"];
    let (code, out, err) = pola(&[&delete[..], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("deleted savepoint tmp of instance serve"),
        "{out}"
    );
    let (code, _, err) = pola(&[&delete[..], &at[..]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("no savepoint named"), "{err}");

    client.pay(&purses[0], &purses[1], 6);
    assert_eq!(client.balances(&purses), vec![0, 10]);
    // No rollback under a running host.
    let (code, _, err) = pola(&[&["rollback", "--state", s(&a), "before"], &at[..]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("stop it first"), "{err}");
    drop(server);

    let (code, _, err) = pola(&[&["rollback", "--state", s(&a), "tmp"], &at[..]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("no instance savepoint named"), "{err}");
    let (code, out, err) = pola(&[&["rollback", "--state", s(&a), "before"], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("back to its savepoint before"), "{out}");
    let server = serve(&a, &["--mint", "--port", &port]);
    assert_eq!(
        client.balances(&purses),
        vec![6, 4],
        "not as at the savepoint"
    );
    drop(server);

    // Listed and deleted while stopped; the rollback kept it.
    let (_, out, _) = pola(&[&["savepoints", "--state", s(&a)], &at[..]].concat());
    assert!(
        out.starts_with("before ") && out.lines().count() == 1,
        "{out}"
    );
    let delete = ["savepoint", "--state", s(&a), "--delete", "before"];
    let (code, _, err) = pola(&[&delete[..], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = pola(&[&["savepoints", "--state", s(&a)], &at[..]].concat());
    assert_eq!(out, "");
    let (code, _, _) = pola(&[&delete[..], &at[..]].concat());
    assert_ne!(code, 0);
}

fn write_config(dir: &Path, text: &str) {
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(dir)
        .unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("pola.toml"), text).unwrap();
}

#[test]
fn config_errors_name_the_file_and_line_and_start_nothing() {
    let dir = TempDir::new("cli");
    let a = dir.join("a");
    let file = format!("{}:", a.join("pola.toml").display());

    write_config(&a, "[mint]\n\n[net]\nprot = 7\n");
    let (code, _, err) = pola(&["serve", "--state", s(&a)]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{file}4:")), "{err}");
    assert!(err.contains("prot"), "{err}");
    assert!(!a.join("state.redb").exists(), "a store was made");

    write_config(
        &a,
        "[mint]\n\n[[caplet]]\nname = \"c\"\npackage = \"gone.wasm\"\nsha256 = \"00\"\n",
    );
    let (code, _, err) = pola(&["serve", "--state", s(&a)]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{file}5:")), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains(&format!("{file}6:")), "every fault: {err}");

    write_config(&a, "[net]\nport = 7\n\n[mint]\n");
    let (code, _, err) = pola(&["serve", "--state", s(&a), "--mint", "--port", "8"]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("{file}1: says port = 7, the flags say --port 8")),
        "{err}"
    );
    assert!(err.contains("edit it or drop the flags"), "{err}");
    let (code, _, err) = pola(&["serve", "--state", s(&a), "--wallet-from", "ocapn://x"]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{file}4: serves [mint]")), "{err}");

    // No file and no flags.
    let b = dir.join("b");
    let (code, _, err) = pola(&["serve", "--state", s(&b)]);
    assert_ne!(code, 0);
    assert!(err.contains("pola.toml does not exist"), "{err}");
    assert!(!b.join("state.redb").exists());
}

/// Sends `bytes` on a fresh control connection and reads the answer.
fn control(sock: &Path, bytes: &[u8]) -> String {
    let mut c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    let _ = c.write_all(bytes);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_hostile_control_client_gets_errors_and_the_host_keeps_serving() {
    let dir = TempDir::new("cli");
    let a = dir.join("a");
    let server = serve(&a, &["--mint"]);
    let sock = a.join("control.sock");
    assert_eq!(mode(&sock) & 0o077, 0, "the socket is open to others");

    // Idle clients hold slots; past the limit the host says busy.
    let idle: Vec<UnixStream> = (0..8)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    // (The host takes them in its own time: wait until it says busy,
    // then, once they are gone, until it answers again.)
    let until = |want: &str| {
        let deadline = std::time::Instant::now() + T;
        loop {
            let got = control(&sock, b"ping\n");
            if got.starts_with(want) || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert!(until("error busy").starts_with("error busy"));
    drop(idle);
    assert!(until("ok pola serve").starts_with("ok pola serve"));

    let long = vec![b'a'; 5000];
    for (request, want) in [
        (&b"ping\n"[..], "ok pola serve"),
        (b"nonsense\n", "error unknown command"),
        (b"\n", "error empty request"),
        (b"savepoint\n", "error wrong arguments"),
        (b"savepoint a b\n", "error wrong arguments"),
        (b"savepoint ../../etc\n", "error "),
        (b"export-instance nosuch\n", "error no instance"),
        (b"\xff\xfe\n", "error the request is not UTF-8"),
        (
            b"ping\x00\x07\n",
            "error the request has control characters",
        ),
        (&long[..], "error the request must be one line"),
        (b"ping", "error the request must be one line"),
        (b"delete-savepoint never\n", "error no savepoint"),
    ] {
        let answer = control(&sock, request);
        assert!(
            answer.starts_with(want) && !answer.contains("panick"),
            "{:?} → {answer:?}",
            String::from_utf8_lossy(request)
        );
    }
    let answer = control(&sock, b"savepoint ../../etc\n");
    assert!(answer.contains("bad savepoint name"), "{answer}");
    // A client that sends a partial line and stalls is dropped in time.
    let mut slow = UnixStream::connect(&sock).unwrap();
    slow.write_all(b"expo").unwrap();
    slow.set_read_timeout(Some(T)).unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("error"), "{answer:?}");

    // Still serving, over the network and the socket.
    let client = Client::new();
    let p = client.purse(server.uri("mint"), 3);
    assert_eq!(client.balances(&[p]), vec![3]);
    assert!(control(&sock, b"ping\n").starts_with("ok"));
}

#[test]
fn a_damaged_export_is_refused_and_leaves_no_folder() {
    let dir = TempDir::new("cli");
    let a = dir.join("a");
    let server = serve(&a, &["--mint"]);
    let client = Client::new();
    client.purse(server.uri("mint"), 9);
    drop(server);
    // Exported with no host running: straight from the store.
    let file = dir.join("host.pola");
    let err = export(&a, &file);
    assert!(err.contains("exported 1 instances"), "{err}");
    let good = std::fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    let cut = good[..good.len() - 7].to_vec();
    for (what, bytes) in [("flipped", flipped), ("cut", cut), ("empty", Vec::new())] {
        let bad = dir.join(format!("{what}.pola"));
        std::fs::write(&bad, bytes).unwrap();
        let target = dir.join(format!("new-{what}"));
        let (code, _, err) = pola(&["import", s(&bad), "--state", s(&target)]);
        assert_ne!(code, 0, "{what}");
        assert!(err.contains("import refused"), "{what}: {err}");
        assert!(
            !target.exists(),
            "{what}: the refused import left {target:?}"
        );
        // An empty folder stays empty.
        std::fs::create_dir(&target).unwrap();
        let (code, _, _) = pola(&["import", s(&bad), "--state", s(&target)]);
        assert_ne!(code, 0);
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "{what}");
    }
    // The good one imports into an existing empty folder.
    let target = dir.join("new-flipped");
    let (code, _, err) = pola(&["import", s(&file), "--state", s(&target)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode(&target), 0o700);
}

#[test]
fn old_key_and_sturdyref_files_move_into_the_store() {
    let dir = TempDir::new("cli");
    let a = dir.join("a");
    std::fs::DirBuilder::new().create(&a).unwrap();
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o700)).unwrap();
    let identity = Identity::load_or_create(a.join("identity.key")).unwrap();
    let swiss = "0123456789abcdef0123456789abcdef";
    let sturdy = a.join("sturdyrefs");
    std::fs::write(&sturdy, format!("# old\nmint {swiss}\n")).unwrap();
    std::fs::set_permissions(&sturdy, std::fs::Permissions::from_mode(0o600)).unwrap();

    let port = free_port().to_string();
    let server = serve(&a, &["--mint", "--port", &port]);
    let mint = server.uri("mint").to_owned();
    assert!(mint.contains(&identity.designator()), "{mint}");
    let parsed = SturdyRef::from_uri(&mint).unwrap();
    assert_eq!(parsed.swiss.bytes().as_ref(), swiss.as_bytes());
    assert!(!a.join("identity.key").exists() && !sturdy.exists());
    drop(server);
    // The store alone keeps them now.
    let server = serve(&a, &["--mint", "--port", &port]);
    assert_eq!(server.uri("mint"), mint);
    drop(server);

    // A key file that disagrees with the store is refused, not used.
    Identity::load_or_create(a.join("identity.key")).unwrap();
    let (code, _, err) = pola(&["serve", "--state", s(&a)]);
    assert_ne!(code, 0);
    assert!(err.contains("holds another key"), "{err}");
    assert!(a.join("identity.key").exists());
}
