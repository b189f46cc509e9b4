//! Web origins as a manifest names them: `http(s)://host[:port]`, in one
//! canonical spelling.
//!
//! The parser is strict on purpose: an origin is shown to a person and
//! later compared byte for byte with the URLs an app fetches, so there is
//! exactly one way to write each. Refused: any scheme but `http` and
//! `https`; upper case anywhere; a user name, path (even `/`), query or
//! fragment; an IPv6 address; a port with a leading zero, out of range, or
//! equal to the scheme's default (leave it out); a host name that is not
//! dot-separated labels of `a-z`, `0-9` and `-` (1–63 characters, no
//! hyphen at either end, at most 253 in all, no trailing dot); a host whose
//! last label is all digits but is not a dotted IPv4 address.

use std::fmt;

/// The longest origin accepted, in bytes.
pub const MAX_ORIGIN_LEN: usize = 300;

/// A web origin: scheme, host and port. Made only by [`Origin::parse`], so
/// every value is in canonical form; `Display` writes it back exactly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    secure: bool,
    host: String,
    port: Option<u16>,
}

/// Why a string is not an origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// Longer than [`MAX_ORIGIN_LEN`] bytes.
    #[error("is too long")]
    TooLong,
    /// Not `http://` or `https://` (in lower case).
    #[error("does not start with http:// or https://")]
    Scheme,
    /// A user name, path, query or fragment after the host.
    #[error(
        "has more than a scheme, a host and a port (no path, not even \"/\", no query, no user name)"
    )]
    Extra,
    /// An IPv6 address.
    #[error("is an IPv6 address, which is not supported")]
    Ipv6,
    /// Upper-case letters.
    #[error("has upper-case letters (write it in lower case)")]
    UpperCase,
    /// A malformed host name or IPv4 address.
    #[error("does not have a valid host name")]
    Host,
    /// A malformed or out-of-range port.
    #[error("does not have a valid port (1 to 65535, no leading zero)")]
    Port,
    /// The scheme's default port written out.
    #[error("names the default port of its scheme (leave it out)")]
    DefaultPort,
}

impl Origin {
    /// Parses a canonical origin (see the module doc).
    ///
    /// # Errors
    /// [`OriginError`] saying what is wrong.
    ///
    /// ```
    /// use pola_powerbox::Origin;
    /// let o = Origin::parse("https://example.org:8443").unwrap();
    /// assert_eq!(o.to_string(), "https://example.org:8443");
    /// assert!(Origin::parse("https://example.org/").is_err());
    /// assert!(Origin::parse("HTTPS://example.org").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Origin, OriginError> {
        if s.len() > MAX_ORIGIN_LEN {
            return Err(OriginError::TooLong);
        }
        let (secure, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(OriginError::Scheme);
        };
        if rest.contains(['/', '?', '#', '@', '\\']) {
            return Err(OriginError::Extra);
        }
        if rest.starts_with('[') {
            return Err(OriginError::Ipv6);
        }
        if rest.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(OriginError::UpperCase);
        }
        let (host, port) = match rest.split_once(':') {
            Some((h, p)) => (h, Some(parse_port(p)?)),
            None => (rest, None),
        };
        let default = if secure { 443 } else { 80 };
        if port == Some(default) {
            return Err(OriginError::DefaultPort);
        }
        check_host(host)?;
        Ok(Origin {
            secure,
            host: host.to_owned(),
            port,
        })
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.secure
    }

    /// The host name or IPv4 address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if it is not the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

fn parse_port(p: &str) -> Result<u16, OriginError> {
    if p.is_empty() || p.len() > 5 || p.starts_with('0') || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OriginError::Port);
    }
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(OriginError::Port),
    }
}

fn check_host(host: &str) -> Result<(), OriginError> {
    if host.is_empty() || host.len() > 253 {
        return Err(OriginError::Host);
    }
    let labels: Vec<&str> = host.split('.').collect();
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(OriginError::Host);
        }
    }
    let numeric = |l: &str| l.bytes().all(|b| b.is_ascii_digit());
    if labels.last().is_some_and(|l| numeric(l)) {
        // Then it must be a dotted IPv4 address, written canonically.
        let ipv4 = labels.len() == 4
            && labels.iter().all(|l| {
                numeric(l) && (l.len() == 1 || !l.starts_with('0')) && l.parse::<u8>().is_ok()
            });
        if !ipv4 {
            return Err(OriginError::Host);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_origins_round_trip() {
        for s in [
            "https://example.org",
            "http://localhost:8080",
            "https://xn--bcher-kva.example",
            "http://127.0.0.1:3000",
            "https://a-b.c0.example:1",
            "https://10.0.0.1",
        ] {
            assert_eq!(Origin::parse(s).map(|o| o.to_string()), Ok(s.to_owned()));
        }
    }

    #[test]
    fn bad_origins_are_refused() {
        use OriginError::*;
        for (s, e) in [
            ("ftp://example.org", Scheme),
            ("HTTPS://example.org", Scheme),
            ("https:/example.org", Scheme),
            ("example.org", Scheme),
            ("*", Scheme),
            ("https://example.org/", Extra),
            ("https://example.org/path", Extra),
            ("https://user@example.org", Extra),
            ("https://example.org?q", Extra),
            ("https://example.org#f", Extra),
            ("https://[::1]:80", Ipv6),
            ("https://Example.org", UpperCase),
            ("https://example.org:0", Port),
            ("https://example.org:65536", Port),
            ("https://example.org:080", Port),
            ("https://example.org:", Port),
            ("https://example.org:1:2", Port),
            ("https://example.org:443", DefaultPort),
            ("http://example.org:80", DefaultPort),
            ("https://", Host),
            ("https://exa mple.org", Host),
            ("https://example..org", Host),
            ("https://example.org.", Host),
            ("https://-x.org", Host),
            ("https://ex_ample.org", Host),
            ("https://bücher.example", Host),
            ("https://1.2.3", Host),
            ("https://1.2.3.256", Host),
            ("https://01.2.3.4", Host),
            ("https://0x7f.1", Host),
        ] {
            assert_eq!(Origin::parse(s), Err(e), "{s}");
        }
        assert_eq!(
            Origin::parse(&format!("https://{}", "a".repeat(400))),
            Err(TooLong)
        );
        let long_label = format!("https://{}.org", "a".repeat(64));
        assert_eq!(Origin::parse(&long_label), Err(Host));
    }
}
