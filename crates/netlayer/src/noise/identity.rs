//! Vat identities: an Ed25519 signing key, its public half as a designator,
//! and the key file that keeps it across restarts.
//!
//! Invariants (upheld here):
//! - the secret key never appears in `Debug` output;
//! - a designator is accepted only in its canonical form (52 lowercase
//!   base32 characters, zero padding bits), so two designators name the
//!   same key exactly when they are equal strings;
//! - a key file is created with mode 0600 under a temporary name and linked
//!   into place (never overwriting an existing file), so a reader sees
//!   either no file or a complete one; a file readable by group or others is
//!   refused, never "fixed".

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::error::{IdentityError, NoiseError};

/// RFC 4648 base32 alphabet, lowercase (as Endo's OCapN designators use).
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Length of a designator: 256 bits in 5-bit characters, rounded up.
pub const DESIGNATOR_LEN: usize = 52;

/// First line of a key file.
const KEY_FILE_HEADER: &str = "pola-noise-ed25519-secret-v1";

/// Largest key file read (a valid one is 94 bytes).
const KEY_FILE_MAX: u64 = 256;

/// A peer's long-term identity: an Ed25519 public (verifying) key.
///
/// Its [`Display`](fmt::Display) form is the designator used in `noise`
/// locators.
///
/// Holds the 32 bytes of a key that has been checked to be a valid Ed25519
/// point.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey([u8; 32]);

impl PeerKey {
    /// The key from its 32 bytes.
    ///
    /// # Errors
    /// [`NoiseError::BadDesignator`] if the bytes are not a valid Ed25519
    /// point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, NoiseError> {
        VerifyingKey::from_bytes(bytes)
            .map(|_| PeerKey(*bytes))
            .map_err(|_| NoiseError::BadDesignator)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The designator: the key in lowercase unpadded base32 (52 characters).
    pub fn to_designator(&self) -> String {
        base32_encode(&self.0)
    }

    /// Parses a designator.
    ///
    /// # Errors
    /// [`NoiseError::BadDesignator`] unless `s` is exactly the canonical
    /// designator of a valid Ed25519 key.
    pub fn from_designator(s: &str) -> Result<Self, NoiseError> {
        let bytes = base32_decode_key(s).ok_or(NoiseError::BadDesignator)?;
        Self::from_bytes(&bytes)
    }

    /// Verifies `signature` over `message` (strict Ed25519 verification).
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = Signature::from_bytes(signature);
        VerifyingKey::from_bytes(&self.0).is_ok_and(|k| k.verify_strict(message, &sig).is_ok())
    }
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_designator())
    }
}

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKey({})", self.to_designator())
    }
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes a canonical 52-character designator into 32 bytes.
fn base32_decode_key(s: &str) -> Option<[u8; 32]> {
    if s.len() != DESIGNATOR_LEN {
        return None;
    }
    let mut out = [0u8; 32];
    let mut n = 0usize;
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)?;
        acc = (acc << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = ((acc >> bits) & 0xff) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    // 52 * 5 = 260 bits: 4 padding bits, which must be zero.
    (n == 32 && acc == 0).then_some(out)
}

/// A vat's long-term identity: its Ed25519 signing key.
///
/// The public half ([`Identity::public_key`]) is the designator of the
/// vat's `noise` locators, so a locator names a key and a connection to it
/// proves possession of the secret half.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh identity from the OS RNG.
    ///
    /// # Errors
    /// [`IdentityError::Rng`] if the OS RNG failed.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|_| IdentityError::Rng)?;
        Ok(Self::from_secret_bytes(&secret))
    }

    /// The identity with this 32-byte Ed25519 secret key (seed).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Identity {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte Ed25519 secret key (seed), for keeping the identity
    /// somewhere other than a key file (a host's state store). Whoever has
    /// these bytes is this vat: keep them as secret as the key file.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key, which peers know this vat by.
    pub fn public_key(&self) -> PeerKey {
        PeerKey(self.signing.verifying_key().to_bytes())
    }

    /// The designator of this vat's `noise` locators.
    pub fn designator(&self) -> String {
        self.public_key().to_designator()
    }

    /// Signs `message` with the identity key.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Loads the identity kept in `path`, creating it (mode 0600, created
    /// atomically) if the file does not exist. A vat calls this at start-up
    /// so its identity, and with it every locator it handed out, survives
    /// restarts.
    ///
    /// # Errors
    /// [`IdentityError::Permissions`] if the file is readable or writable by
    /// group or others, [`IdentityError::BadContents`] if it does not hold a
    /// key, [`IdentityError::NotAFile`], [`IdentityError::Rng`], or I/O.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        let path = path.as_ref();
        match Self::load(path) {
            Err(IdentityError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let fresh = Self::generate()?;
                match fresh.create_file(path) {
                    Ok(()) => Ok(fresh),
                    // Someone else created it first: theirs wins.
                    Err(IdentityError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Self::load(path)
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Loads the identity kept in `path`.
    ///
    /// # Errors
    /// As [`Identity::load_or_create`], and I/O `NotFound` if there is no
    /// file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        let path = path.as_ref();
        let io = |source| IdentityError::Io {
            path: path.to_owned(),
            source,
        };
        // A key file must not be a symlink someone else planted: look at
        // the link itself, open, then check the opened file is that one.
        let link = fs::symlink_metadata(path).map_err(io)?;
        if !link.file_type().is_file() {
            return Err(IdentityError::NotAFile(path.to_owned()));
        }
        // Neither follow a link nor block: a FIFO swapped in after the look
        // above must not hang the caller.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() || meta.ino() != link.ino() || meta.dev() != link.dev() {
            return Err(IdentityError::NotAFile(path.to_owned()));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let mut text = String::new();
        file.take(KEY_FILE_MAX)
            .read_to_string(&mut text)
            .map_err(|_| IdentityError::BadContents(path.to_owned()))?;
        let secret =
            parse_key_file(&text).ok_or_else(|| IdentityError::BadContents(path.into()))?;
        Ok(Self::from_secret_bytes(&secret))
    }

    /// Writes a new key file at `path` without ever replacing an existing
    /// one: the key goes to a fresh temporary file (mode 0600) in the same
    /// directory, is synced, then hard-linked into place.
    fn create_file(&self, path: &Path) -> Result<(), IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|_| IdentityError::Rng)?;
        let tmp_name = format!(
            ".pola-key-{}.tmp",
            nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let tmp = dir.join(tmp_name);
        let result = (|| {
            let mut f: File = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(key_file_text(&self.signing.to_bytes()).as_bytes())?;
            f.sync_all()?;
            fs::hard_link(&tmp, path)?;
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        let _ = fs::remove_file(&tmp);
        result.map_err(io)
    }
}

fn key_file_text(secret: &[u8; 32]) -> String {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_FILE_HEADER}\n{hex}\n")
}

fn parse_key_file(text: &str) -> Option<[u8; 32]> {
    let rest = text.strip_prefix(KEY_FILE_HEADER)?.strip_prefix('\n')?;
    let hex = rest.strip_suffix('\n')?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2)?;
        if !pair.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        // RFC 4648 section 10, lowercased, unpadded.
        for (input, want) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_encode(input.as_bytes()), want);
        }
    }

    #[test]
    fn designator_round_trips_and_is_canonical() {
        let id = Identity::generate().unwrap();
        let d = id.designator();
        assert_eq!(d.len(), DESIGNATOR_LEN);
        assert_eq!(PeerKey::from_designator(&d).unwrap(), id.public_key());
        // Uppercase, wrong length and non-zero padding bits are refused.
        assert!(PeerKey::from_designator(&d.to_uppercase()).is_err());
        assert!(PeerKey::from_designator(&d[..51]).is_err());
        let mut last = d.clone().into_bytes();
        let i = ALPHABET.iter().position(|&a| a == last[51]).unwrap();
        last[51] = ALPHABET[i ^ 1];
        assert!(PeerKey::from_designator(std::str::from_utf8(&last).unwrap()).is_err());
        assert!(PeerKey::from_designator("").is_err());
    }

    #[test]
    fn key_file_parse_is_strict() {
        let text = key_file_text(&[7u8; 32]);
        assert_eq!(parse_key_file(&text), Some([7u8; 32]));
        assert_eq!(parse_key_file(&text.to_uppercase()), None);
        assert_eq!(parse_key_file(text.trim_end()), None);
        assert_eq!(parse_key_file(&text.replace("07", "0g")), None);
        assert_eq!(parse_key_file(&format!("{text}x")), None);
    }

    #[test]
    fn signatures_verify_only_for_their_message() {
        let id = Identity::generate().unwrap();
        let sig = id.sign(b"static key");
        assert!(id.public_key().verifies(b"static key", &sig));
        assert!(!id.public_key().verifies(b"other key", &sig));
        let other = Identity::generate().unwrap();
        assert!(!other.public_key().verifies(b"static key", &sig));
    }
}
