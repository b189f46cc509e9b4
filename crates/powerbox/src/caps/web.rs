//! The web capability: HTTP(S) GET to granted sites only.
//!
//! A request is allowed when its URL's origin (scheme, host, port, as the
//! `url` crate parses and normalises them: lower-case host, default port
//! made explicit, IDNA, IPv4 and IPv6 forms canonical) equals one of the
//! granted origins, or, for a grant of "anywhere", when it is any
//! `http`/`https` URL whose host is not a private address. Addresses with a
//! user name or password are refused outright.
//!
//! Private networks: a host *name* is only ever connected to at public
//! addresses (the resolver drops loopback, private, link-local, shared,
//! multicast and reserved addresses), so a site granted by name cannot
//! lead the app to the desk itself or to the local network by pointing its
//! DNS there. A private address is reachable only when a granted origin
//! names it literally (`http://127.0.0.1:8080`) or is `localhost`.
//!
//! Redirects are followed by this module, not by the HTTP client, and
//! only to URLs the grant allows (each hop is checked like the first); a
//! redirect elsewhere breaks the answer. Requests run on worker threads
//! (at most `max_in_flight` per capability, the rest waiting in a bounded
//! queue), never on the vat's thread, and settle their promise from there.
//! Proxies from the environment are not used.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pola_vat::{Object, Outcome, Resolver, Turn, Val, error};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver as UreqResolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use url::{Host, Origin, Url};

use super::CapError;

/// The refusal for a URL outside the grant.
const REFUSED: &str = "this app may not connect to that site";

/// The sites a web capability may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sites {
    /// Any public `http`/`https` site (a grant of `["*"]`).
    Anywhere,
    /// Exactly these origins.
    Origins(Vec<Origin>),
    /// Any public site, and these origins too even when they are private
    /// (the browser: the public web, and the local sites the user typed).
    AnywhereAnd(Vec<Origin>),
}

/// The most origins one grant names (PROTOCOL.md).
pub const MAX_SITES: usize = 16;

impl Sites {
    /// Parses a grant's site list: `["*"]` for anywhere, else origins of
    /// the form `http(s)://host[:port]` (a trailing `/` is allowed; a path,
    /// query, fragment, user name or password is not).
    ///
    /// # Errors
    /// [`CapError::BadSite`] saying what is wrong.
    ///
    /// ```
    /// use pola_powerbox::caps::Sites;
    /// assert!(Sites::parse(&["https://example.org"]).is_ok());
    /// assert_eq!(Sites::parse(&["*"]).ok(), Some(Sites::Anywhere));
    /// assert!(Sites::parse(&["https://example.org/path"]).is_err());
    /// ```
    pub fn parse<S: AsRef<str>>(sites: &[S]) -> Result<Sites, CapError> {
        if sites.len() == 1 && sites[0].as_ref() == "*" {
            return Ok(Sites::Anywhere);
        }
        if sites.is_empty() {
            return Err(CapError::BadSite("a web grant needs at least one site"));
        }
        if sites.len() > MAX_SITES {
            return Err(CapError::BadSite("a web grant names at most 16 sites"));
        }
        let mut out = Vec::with_capacity(sites.len());
        for s in sites {
            let s = s.as_ref();
            if s == "*" {
                return Err(CapError::BadSite("'*' (anywhere) must be the only site"));
            }
            let url = Url::parse(s).map_err(|_| {
                CapError::BadSite("a site must look like https://host or http://host:port")
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(CapError::BadSite("a site must be http or https"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(CapError::BadSite(
                    "a site may not carry a user name or password",
                ));
            }
            if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                return Err(CapError::BadSite(
                    "a site is only scheme, host and port: no path",
                ));
            }
            if url.host().is_none() {
                return Err(CapError::BadSite("a site needs a host"));
            }
            out.push(url.origin());
        }
        Ok(Sites::Origins(out))
    }

    /// The sites of a manifest's web request (or of the user's narrowed
    /// choice), as [`crate::package::Sites`] holds them.
    ///
    /// # Errors
    /// [`CapError::BadSite`] for [`crate::package::Sites::None`] or an
    /// empty list.
    pub fn from_grant(sites: &crate::package::Sites) -> Result<Sites, CapError> {
        match sites {
            crate::package::Sites::Anywhere => Ok(Sites::Anywhere),
            crate::package::Sites::Some(list) => {
                let text: Vec<String> = list.iter().map(ToString::to_string).collect();
                Sites::parse(&text)
            }
            crate::package::Sites::None => {
                Err(CapError::BadSite("a web grant needs at least one site"))
            }
        }
    }

    /// Whether `url` may be fetched under this grant (see the module doc).
    pub fn allows(&self, url: &Url) -> bool {
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        match self {
            Sites::Origins(list) => list.contains(&url.origin()),
            Sites::AnywhereAnd(list) if list.contains(&url.origin()) => true,
            Sites::Anywhere | Sites::AnywhereAnd(_) => match url.host() {
                Some(Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
                Some(Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
                Some(Host::Domain(d)) => !is_local_name(d),
                None => false,
            },
        }
    }

    /// Whether a host name was granted as such and is `localhost` (the only
    /// name that may resolve to a private address).
    fn grants_localhost_name(&self) -> bool {
        match self {
            Sites::Anywhere => false,
            Sites::Origins(list) | Sites::AnywhereAnd(list) => list.iter().any(|o| match o {
                Origin::Tuple(_, Host::Domain(d), _) => is_local_name(d),
                _ => false,
            }),
        }
    }
}

fn is_local_name(d: &str) -> bool {
    let d = d.trim_end_matches('.');
    d == "localhost" || d.ends_with(".localhost")
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, shared, multicast, documentation or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64: could reach any IPv4
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)) // IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240) // reserved
}

/// Limits of a web capability. [`Default`] gives PROTOCOL.md's: connect
/// within 5 s, the whole request within 20 s, bodies up to 4 MiB, 4
/// requests in flight, 64 waiting, 5 redirects.
#[derive(Clone, Debug)]
pub struct WebOptions {
    /// Time to connect (name lookup, TCP, TLS).
    pub connect_timeout: Duration,
    /// Time for each request (each hop of a redirect), body included.
    pub total_timeout: Duration,
    /// The largest body answered.
    pub max_body: u64,
    /// Requests running at once for one capability.
    pub max_in_flight: usize,
    /// Requests waiting for a free slot; more are refused.
    pub max_queued: usize,
    /// Redirects followed (each to an allowed URL).
    pub max_redirects: u32,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            max_body: 4 << 20,
            max_in_flight: 4,
            max_queued: 64,
            max_redirects: 5,
        }
    }
}

struct Job {
    url: Url,
    resolver: Resolver,
}

#[derive(Default)]
struct Pool {
    in_flight: usize,
    queue: VecDeque<Job>,
}

struct Shared {
    sites: Sites,
    agent: ureq::Agent,
    options: WebOptions,
    pool: Mutex<Pool>,
}

impl Shared {
    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A resolver that keeps only public addresses for host names, except
/// `localhost` when the grant names it; literal IP hosts pass (the grant
/// check has already decided about them).
#[derive(Debug)]
struct PublicOnly {
    inner: DefaultResolver,
    allow_localhost: bool,
}

impl UreqResolver for PublicOnly {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = self.inner.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or("");
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        if literal || (self.allow_localhost && is_local_name(host)) {
            return Ok(all);
        }
        let mut kept = self.empty();
        for a in all.iter().filter(|a| is_public(a.ip())) {
            kept.push(*a);
        }
        if kept.is_empty() {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                REFUSED,
            )));
        }
        Ok(kept)
    }
}

/// A web capability: `get(URL)` → `{"status" N "type" MIME "body"
/// BYTES}` for a URL the grant allows; anything else breaks with "this app
/// may not connect to that site". The answer is a promise, settled from a
/// worker thread.
#[derive(Clone)]
pub struct WebCap(Arc<Shared>);

impl std::fmt::Debug for WebCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebCap")
            .field("sites", &self.0.sites)
            .finish()
    }
}

impl WebCap {
    /// A web capability for `sites`, with `options`' limits.
    pub fn new(sites: Sites, options: WebOptions) -> WebCap {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.total_timeout))
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .proxy(None)
            .build();
        let resolver = PublicOnly {
            inner: DefaultResolver::default(),
            allow_localhost: sites.grants_localhost_name(),
        };
        let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), resolver);
        WebCap(Arc::new(Shared {
            sites,
            agent,
            options,
            pool: Mutex::new(Pool::default()),
        }))
    }

    /// The sites this capability may reach.
    pub fn sites(&self) -> &Sites {
        &self.0.sites
    }

    /// Fetches `url` on the calling thread (never call it on a vat's
    /// thread): GET, or POST of `form` (URL-encoded). The same checks,
    /// limits and redirect rules as `get`.
    ///
    /// # Errors
    /// Plain words: the URL is refused, or the request failed.
    pub fn fetch_now(&self, url: &str, form: Option<Vec<u8>>) -> Result<Fetched, &'static str> {
        let mut url = Url::parse(url).map_err(|_| "that is not a web address")?;
        if !self.0.sites.allows(&url) {
            return Err(REFUSED);
        }
        url.set_fragment(None);
        fetch(&self.0, url, form)
    }

    /// Checks `url` against the grant and starts the request; `resolver`
    /// is settled (from a worker thread) with the answer.
    ///
    /// # Errors
    /// An error value when the URL is refused or too many requests wait;
    /// `resolver` is then left alone.
    pub fn start(&self, url: &str, resolver: Resolver) -> Result<(), Val> {
        let mut url = Url::parse(url).map_err(|_| error("that is not a web address"))?;
        if !self.0.sites.allows(&url) {
            return Err(error(REFUSED));
        }
        url.set_fragment(None);
        let job = Job { url, resolver };
        let mut pool = self.0.pool();
        if pool.in_flight < self.0.options.max_in_flight.max(1) {
            pool.in_flight += 1;
            drop(pool);
            let shared = self.0.clone();
            let spawned = std::thread::Builder::new()
                .name("pola-web".into())
                .spawn(move || worker(shared, job));
            if spawned.is_err() {
                self.0.pool().in_flight -= 1;
                return Err(error("the request could not be started"));
            }
        } else if pool.queue.len() < self.0.options.max_queued {
            pool.queue.push_back(job);
        } else {
            return Err(error(
                "too many web requests at once: wait for some to finish",
            ));
        }
        Ok(())
    }
}

fn worker(shared: Arc<Shared>, first: Job) {
    let mut job = first;
    loop {
        let outcome = fetch(&shared, job.url, None)
            .map(|f| {
                Val::Dict(
                    [
                        (Val::str("status"), Val::int(i64::from(f.status))),
                        (Val::str("type"), Val::str(f.mime)),
                        (Val::str("body"), Val::bytes(f.body)),
                    ]
                    .into_iter()
                    .collect(),
                )
            })
            .map_err(error);
        job.resolver.settle_now(outcome);
        let mut pool = shared.pool();
        match pool.queue.pop_front() {
            Some(next) => job = next,
            None => {
                pool.in_flight -= 1;
                return;
            }
        }
    }
}

/// An answer from a site.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The URL that answered (after redirects), without a fragment.
    pub url: Url,
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` (at most 256 bytes; `application/octet-stream`
    /// when missing).
    pub mime: String,
    /// The body (at most the capability's `max_body`).
    pub body: Vec<u8>,
}

/// What `fetch` sends: nothing (GET), or a form (POST,
/// `application/x-www-form-urlencoded`).
fn fetch(
    shared: &Shared,
    mut url: Url,
    mut form: Option<Vec<u8>>,
) -> Result<Fetched, &'static str> {
    let mut hops = 0;
    loop {
        let called = match &form {
            None => shared.agent.get(url.as_str()).call(),
            Some(body) => shared
                .agent
                .post(url.as_str())
                .content_type("application/x-www-form-urlencoded")
                .send(&body[..]),
        };
        let mut response = called.map_err(|e| plain(&e))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok());
        if let (301 | 302 | 303 | 307 | 308, Some(location)) = (status, location) {
            if hops >= shared.options.max_redirects {
                return Err("the site redirected too many times");
            }
            hops += 1;
            let mut next = url
                .join(location)
                .map_err(|_| "the site redirected to a bad address")?;
            if !shared.sites.allows(&next) {
                return Err("the site redirected to a site this app may not connect to");
            }
            next.set_fragment(None);
            url = next;
            // As browsers do: only 307 and 308 repeat a form's POST.
            if !matches!(status, 307 | 308) {
                form = None;
            }
            continue;
        }
        let mime = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .filter(|s| s.len() <= 256)
            .unwrap_or("application/octet-stream")
            .to_owned();
        let body = response
            .body_mut()
            .with_config()
            .limit(shared.options.max_body)
            .read_to_vec()
            .map_err(|e| plain(&e))?;
        return Ok(Fetched {
            url,
            status,
            mime,
            body,
        });
    }
}

/// A client error in plain words (never the client's own text).
fn plain(e: &ureq::Error) -> &'static str {
    match e {
        ureq::Error::Timeout(_) => "the site did not answer in time",
        ureq::Error::HostNotFound => "the site could not be found",
        ureq::Error::BodyExceedsLimit(_) => "the site's answer is larger than 4 MiB",
        ureq::Error::ConnectionFailed => "could not connect to the site",
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => REFUSED,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "could not connect to the site"
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            "the site did not answer in time"
        }
        ureq::Error::Io(_) => "the connection to the site failed",
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => "the site's secure connection failed",
        ureq::Error::LargeResponseHeader(..) => "the site's answer headers are too large",
        _ => "the request failed",
    }
}

impl Object for WebCap {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "get" => {
                let url = match args.first() {
                    Some(Val::String(s)) => s.clone(),
                    _ => return Err(error("get(URL): URL must be a string")),
                };
                let (promise, resolver) = cx.promise();
                self.start(&url, resolver)?;
                Ok(Val::Ref(promise))
            }
            _ => Err(error("no such method")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
            assert!(!is_public(ip), "{ip} counted as public");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert!(is_public(ip), "{ip} counted as private");
        }
    }

    #[test]
    fn anywhere_excludes_local_hosts() {
        let any = Sites::Anywhere;
        for u in [
            "http://127.0.0.1/",
            "http://localhost:8080/",
            "http://a.localhost/",
            "http://[::1]/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://10.0.0.1/",
            "ftp://example.org/",
            "file:///etc/passwd",
            "http://user@example.org/",
        ] {
            let url = Url::parse(u).ok();
            assert!(!url.is_some_and(|u| any.allows(&u)), "{u} allowed");
        }
        let ok = Url::parse("https://example.org/a?b").ok();
        assert!(ok.is_some_and(|u| any.allows(&u)));
    }
}
