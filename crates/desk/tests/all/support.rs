//! A real desk on a real port, and a hand-written HTTP/1.1 client.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pola_desk::{Desk, Options};
use pola_desk_apps::StockApp;
use serde_json::{Value as Json, json};

/// The policy PROTOCOL.md section 3 puts on every response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long a test waits for an app (debug builds of the sandbox are
/// slow; this bounds a hang, it is no speed claim).
pub const PATIENCE: Duration = Duration::from_secs(180);

/// How long a client waits for one HTTP answer (bounds a hang).
pub const ANSWER_PATIENCE: Duration = Duration::from_secs(30);

/// A desk served on 127.0.0.1.
pub struct Desktop {
    /// The desk (the server holds another reference).
    pub desk: Arc<Desk>,
    /// The token in its URL.
    pub token: String,
    /// Its port.
    pub port: u16,
    /// Its documents folder (canonical).
    pub docs: PathBuf,
    rt: Option<tokio::runtime::Runtime>,
}

/// A desk in a fresh temporary folder (removed when the folder is
/// dropped: keep it alive as long as the desk).
pub fn fresh() -> (tempfile::TempDir, Desktop) {
    let dir = tempfile::Builder::new()
        .prefix("pola-desk-test-")
        .tempdir()
        .expect("a temporary folder");
    let d = Desktop::start(dir.path());
    (dir, d)
}

impl Desktop {
    /// Opens (or reopens) the desk whose state and documents are under
    /// `root`, and serves it on a fresh port.
    pub fn start(root: &Path) -> Desktop {
        let state = root.join("state");
        let docs = root.join("Documents");
        std::fs::create_dir_all(&state).expect("state folder");
        std::fs::create_dir_all(&docs).expect("documents folder");
        let docs = docs.canonicalize().expect("documents folder");
        let desk = Desk::open(&Options {
            state,
            documents: docs.clone(),
        })
        .expect("the desk opens");
        let token = pola_desk::token(&desk).expect("a token");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .expect("a port");
        let port = listener.local_addr().expect("a port").port();
        let served = desk.clone();
        let t = token.clone();
        rt.spawn(async move {
            let _ = pola_desk::web::serve(listener, served, &t).await;
        });
        Desktop {
            desk,
            token,
            port,
            docs,
            rt: Some(rt),
        }
    }

    /// Stops the server and the desk, as `pola desk` does at its end.
    pub fn stop(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(10));
        }
        self.desk.shutdown();
    }

    /// Installs a stock app as the desk's first start does (every request
    /// granted as asked), under the name it calls itself. Writes the
    /// first start's `notes.txt` if there is none.
    pub fn install_stock(&self, app: &StockApp) -> String {
        let notes = self.docs.join("notes.txt");
        if !notes.exists() {
            std::fs::write(&notes, "Welcome to the pola desk.\n").expect("notes.txt");
        }
        let package = pack(app);
        let name = pola_powerbox::package::Manifest::from_toml(app.manifest)
            .expect("a stock manifest")
            .name;
        self.desk
            .install_trusted(&package, &name)
            .expect("a stock app installs")
    }

    /// Installs a stock app's package through the install dialog's API
    /// (upload, review, install) with the person's `decisions` (a JSON
    /// list) under the pet name `pet`; the app's id.
    pub fn install_reviewed(&self, app: &StockApp, pet: &str, decisions: Json) -> String {
        let rev = self.post_bytes("api/packages", &pack(app), "application/octet-stream");
        assert_eq!(rev.status, 200, "{}", rev.text());
        let rid = rev.json()["id"].as_str().expect("id").to_owned();
        self.ok(
            &format!("api/reviews/{rid}/install"),
            &serde_json::json!({"pet": pet, "decisions": decisions}).to_string(),
        )["app"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `/d/TOKEN/REL`.
    pub fn path(&self, rel: &str) -> String {
        format!("/d/{}/{rel}", self.token)
    }

    /// Sends raw bytes, reads the answer.
    pub fn raw(&self, bytes: &[u8]) -> Reply {
        exchange(self.port, bytes).expect("an answer")
    }

    /// A well-formed GET of `/d/TOKEN/REL`.
    pub fn get(&self, rel: &str) -> Reply {
        self.raw(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.path(rel),
                self.host()
            )
            .as_bytes(),
        )
    }

    /// A well-formed POST of `body` to `/d/TOKEN/REL`, from the desk's own
    /// page.
    pub fn post(&self, rel: &str, body: &str) -> Reply {
        self.post_bytes(rel, body.as_bytes(), "application/json")
    }

    /// As [`Desktop::post`], for any body.
    pub fn post_bytes(&self, rel: &str, body: &[u8], kind: &str) -> Reply {
        let mut req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path(rel),
            self.host(),
            self.origin(),
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.raw(&req)
    }

    /// A POST that must succeed; its JSON answer.
    pub fn ok(&self, rel: &str, body: &str) -> Json {
        let r = self.post(rel, body);
        assert_eq!(r.status, 200, "POST {rel} {body}: {}", r.text());
        r.json()
    }

    /// `GET api/state`.
    pub fn state(&self) -> Json {
        let r = self.get("api/state");
        assert_eq!(r.status, 200, "api/state: {}", r.text());
        r.json()
    }

    /// Everything a refused request must leave alone: the page's state,
    /// the model row in the store, the timeline, and the documents.
    pub fn snapshot(&self) -> Snapshot {
        let model = self
            .desk
            .store()
            .host_get("desk-model")
            .expect("the model row");
        let timeline = self.get("api/timeline").json();
        Snapshot {
            state: self.state(),
            model,
            timeline,
            documents: listing(&self.docs),
        }
    }

    /// The app whose pet name is `pet`.
    pub fn app_id(&self, pet: &str) -> String {
        let state = self.state();
        state["apps"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["pet"] == pet))
            .and_then(|a| a["id"].as_str())
            .unwrap_or_else(|| panic!("no app called {pet:?} in {state}"))
            .to_owned()
    }

    /// Launches app `id` through the API; its window id.
    pub fn launch(&self, id: &str) -> String {
        let r = self.ok(&format!("api/apps/{id}/launch"), "");
        r["window"]
            .as_str()
            .unwrap_or_else(|| panic!("launch answered {r}"))
            .to_owned()
    }

    /// The window `w` in `api/state` (`Null` when it is closed).
    pub fn window(&self, w: &str) -> Json {
        let state = self.state();
        state["windows"]
            .as_array()
            .and_then(|ws| ws.iter().find(|x| x["id"] == w))
            .cloned()
            .unwrap_or(Json::Null)
    }

    /// Polls the window's view until `done` holds of its texts; the texts.
    pub fn wait_view(&self, w: &str, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let start = Instant::now();
        loop {
            let win = self.window(w);
            let texts = texts(&win["view"]);
            if done(&texts) {
                return texts;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "window {w}: waited in vain for {what}; it shows {texts:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Polls until the window has a prompt; the prompt.
    pub fn wait_prompt(&self, w: &str) -> Json {
        let start = Instant::now();
        loop {
            let p = self.window(w)["prompt"].clone();
            if !p.is_null() {
                return p;
            }
            assert!(start.elapsed() < PATIENCE, "window {w}: no prompt came");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// An input event then a click, as the page sends them.
    pub fn type_and_click(&self, w: &str, input: &str, value: &str, button: &str) {
        self.ok(
            &format!("api/windows/{w}/event"),
            &json!({"type": "input", "id": input, "value": value}).to_string(),
        );
        self.click(w, button);
    }

    /// A click on a button.
    pub fn click(&self, w: &str, button: &str) {
        self.ok(
            &format!("api/windows/{w}/event"),
            &json!({"type": "click", "id": button}).to_string(),
        );
    }

    /// `GET api/apps/ID/audit`.
    pub fn audit(&self, id: &str) -> Json {
        let r = self.get(&format!("api/apps/{id}/audit"));
        assert_eq!(r.status, 200, "audit: {}", r.text());
        r.json()
    }
}

/// What [`Desktop::snapshot`] compares.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    state: Json,
    model: Option<Vec<u8>>,
    timeline: Json,
    documents: Vec<(PathBuf, Vec<u8>)>,
}

/// Every file under `dir` with its bytes (links as their targets' names).
fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_symlink() {
                let target = std::fs::read_link(&p).unwrap_or_default();
                out.push((p, target.into_os_string().into_encoded_bytes()));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// The package of a stock app.
pub fn pack(app: &StockApp) -> Vec<u8> {
    pola_powerbox::package::pack(app.manifest, app.wasm.to_vec(), Some(app.icon.to_vec()))
        .expect("a stock app packs")
}

/// Every text of a view, in order: text nodes, button labels, input
/// values.
pub fn texts(view: &Json) -> Vec<String> {
    let mut out = Vec::new();
    walk(view, &mut out);
    out
}

fn walk(node: &Json, out: &mut Vec<String>) {
    match node["k"].as_str() {
        Some("text") => out.extend(node["s"].as_str().map(str::to_owned)),
        Some("button") => out.extend(node["label"].as_str().map(str::to_owned)),
        Some("input" | "textarea") => out.extend(node["value"].as_str().map(str::to_owned)),
        _ => {
            if let Some(c) = node["c"].as_array() {
                for n in c {
                    walk(n, out);
                }
            }
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The security headers of PROTOCOL.md section 3 are all there, and
    /// no CORS header is.
    pub fn assert_secure(&self) {
        assert_eq!(
            self.header("content-security-policy"),
            Some(CSP),
            "{self:?}"
        );
        assert_eq!(self.header("x-frame-options"), Some("DENY"), "{self:?}");
        assert_eq!(
            self.header("x-content-type-options"),
            Some("nosniff"),
            "{self:?}"
        );
        assert_eq!(
            self.header("referrer-policy"),
            Some("no-referrer"),
            "{self:?}"
        );
        assert_eq!(self.header("cache-control"), Some("no-store"), "{self:?}");
        assert!(
            !self
                .headers
                .iter()
                .any(|(k, _)| k.starts_with("access-control-")),
            "a CORS header: {self:?}"
        );
    }

    /// A refusal as documented: `status`, secure headers, plain text.
    pub fn assert_plain(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?} {}", self.text());
        self.assert_secure();
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "not plain text: {self:?}"
        );
    }

    /// An error as documented: `status`, secure headers, `{"error": words}`.
    pub fn assert_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{} {}", self.status, self.text());
        self.assert_secure();
        let j = self.json();
        let words = j["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error words: {j}"))
            .to_owned();
        assert!(!words.is_empty());
        assert_eq!(j.as_object().map(serde_json::Map::len), Some(1), "{j}");
        assert!(
            !words.contains("panicked") && !words.contains("RUST_BACKTRACE"),
            "{words}"
        );
        words
    }
}

/// Writes `request` on a new connection and reads the answer to its end.
///
/// # Errors
/// The connection failed or the answer is not HTTP.
pub fn exchange(port: u16, request: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(ANSWER_PATIENCE))?;
    s.set_write_timeout(Some(ANSWER_PATIENCE))?;
    // The server may answer (and close) before reading a refused body.
    let mut w = s.try_clone()?;
    let req = request.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&req);
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let read = loop {
        if complete(&raw) {
            break Ok(());
        }
        match s.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    if raw.is_empty() {
        read?;
    }
    parse(&raw)
}

/// Whether `raw` holds a whole answer (the connection may stay open).
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    match head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) => body.len() >= n,
        // 101 and friends have no body; others end at the close.
        None => head.starts_with("http/1.1 1"),
    }
}

/// Parses one HTTP/1.1 answer.
pub fn parse(raw: &[u8]) -> std::io::Result<Reply> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunks"))?;
    } else if let Some(n) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line]).ok()?.trim(), 16).ok()?;
        b = &b[line + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}
