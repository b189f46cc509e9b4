//! A real web site on loopback for the browser's tests: a thread serving
//! HTTP/1.1 from a table of pages, logging every request it gets (so a
//! test can show what never reached it).

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One page: status, content type, body.
#[derive(Clone)]
pub struct Page {
    pub status: u16,
    pub mime: String,
    pub body: Vec<u8>,
    /// A `Location` header (for redirects).
    pub location: Option<String>,
    /// Held until this gate opens (the request is logged at once).
    pub gate: Option<Gate>,
}

/// A gate holding a page's answers back until the test opens it.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// Lets every held and later request of the page be answered.
    pub fn open(&self) {
        *self.0.0.lock().expect("gate") = true;
        self.0.1.notify_all();
    }

    /// Waits until the gate opens (at most a minute: bounds a hang).
    fn pass(&self) {
        let open = self.0.0.lock().expect("gate");
        let _ = self
            .0
            .1
            .wait_timeout_while(open, Duration::from_secs(60), |open| !*open);
    }
}

/// A request the site got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub body: String,
}

/// A site on `127.0.0.1:PORT`.
pub struct Site {
    pub port: u16,
    pages: Arc<Mutex<HashMap<String, Page>>>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Site {
    /// Starts serving (until the process ends).
    pub fn start() -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the site");
        let port = listener.local_addr().expect("a port").port();
        let pages: Arc<Mutex<HashMap<String, Page>>> = Arc::default();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let (p, h) = (pages.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (p, h) = (p.clone(), h.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &p, &h);
                });
            }
        });
        Site { port, pages, hits }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT/PATH` (path without its leading `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.origin())
    }

    /// Serves `body` as HTML at `/path` (every query).
    pub fn html(&self, path: &str, body: &str) {
        self.put(
            path,
            200,
            "text/html; charset=utf-8",
            body.as_bytes().to_vec(),
        );
    }

    /// Serves a page.
    pub fn put(&self, path: &str, status: u16, mime: &str, body: Vec<u8>) {
        self.pages.lock().expect("pages").insert(
            format!("/{path}"),
            Page {
                status,
                mime: mime.to_owned(),
                body,
                location: None,
                gate: None,
            },
        );
    }

    /// Serves `body` as HTML at `/path`, but answers each request only
    /// once the gate returned is opened (the request is in
    /// [`Site::hits`] as soon as it arrives).
    pub fn gated(&self, path: &str, body: &str) -> Gate {
        let gate = Gate::default();
        self.pages.lock().expect("pages").insert(
            format!("/{path}"),
            Page {
                status: 200,
                mime: "text/html; charset=utf-8".to_owned(),
                body: body.as_bytes().to_vec(),
                location: None,
                gate: Some(gate.clone()),
            },
        );
        gate
    }

    /// Redirects `/path` to `to`.
    pub fn redirect(&self, path: &str, to: &str) {
        self.pages.lock().expect("pages").insert(
            format!("/{path}"),
            Page {
                status: 302,
                mime: "text/plain".to_owned(),
                body: Vec::new(),
                location: Some(to.to_owned()),
                gate: None,
            },
        );
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    /// Whether any request's path, query or body contains `needle`.
    pub fn saw(&self, needle: &str) -> bool {
        self.hits()
            .iter()
            .any(|h| h.target.contains(needle) || h.body.contains(needle))
    }
}

fn serve(
    stream: TcpStream,
    pages: &Mutex<HashMap<String, Page>>,
    hits: &Mutex<Vec<Hit>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length.min(1 << 20)];
        reader.read_exact(&mut body)?;
        hits.lock().expect("hits").push(Hit {
            method,
            target: target.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let path = target.split('?').next().unwrap_or("/").to_owned();
        let page = pages.lock().expect("pages").get(&path).cloned();
        let page = page.unwrap_or(Page {
            status: 404,
            mime: "text/html".to_owned(),
            body: b"<title>Not found</title><p>No such page.</p>".to_vec(),
            location: None,
            gate: None,
        });
        if let Some(g) = &page.gate {
            g.pass();
        }
        let mut head = format!(
            "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
            page.status,
            page.mime,
            page.body.len()
        );
        if let Some(l) = &page.location {
            head.push_str(&format!("location: {l}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(&page.body)?;
        out.flush()?;
    }
}
