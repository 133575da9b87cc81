//! Signing key files (`ordq keygen`): an Ed25519 secret key (its 32-byte
//! seed) and its public key, one line of text each.
//!
//! ```text
//! secret file (mode 0600): ordq-ed25519-secret-v1 <64 hex digits>
//! public file:             ordq-ed25519-public-v1 <64 hex digits>
//! ```

use crate::error::{Error, Result};
use crate::hash;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const SECRET_TAG: &str = "ordq-ed25519-secret-v1";
const PUBLIC_TAG: &str = "ordq-ed25519-public-v1";

/// A new random secret key.
pub fn generate() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(seed)
}

/// The public key of a secret key.
pub fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(secret)
        .verifying_key()
        .to_bytes()
}

/// The key id of a public key (as checkpoints name it).
pub fn key_id(public: &[u8; 32]) -> String {
    hash::hex(&hash::digest(public)[..8])
}

fn write_new(path: &Path, mode: u32, text: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists(format!(
                "{} exists; a key file is never overwritten",
                path.display()
            )),
            _ => Error::Io(format!("{}: {e}", path.display())),
        })?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Writes a secret key file (mode 0600); refuses to overwrite one.
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<()> {
    write_new(
        path,
        0o600,
        &format!("{SECRET_TAG} {}\n", hash::hex(secret)),
    )
}

/// Writes a public key file; refuses to overwrite one.
pub fn write_public(path: &Path, public: &[u8; 32]) -> Result<()> {
    write_new(
        path,
        0o644,
        &format!("{PUBLIC_TAG} {}\n", hash::hex(public)),
    )
}

fn read_tagged(path: &Path) -> Result<(String, [u8; 32])> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::InvalidArgument(format!("cannot read key file {}: {e}", path.display()))
    })?;
    let bad = || {
        Error::InvalidArgument(format!(
            "{} is not an ordq key file (expected `{SECRET_TAG} <hex>` or `{PUBLIC_TAG} <hex>`)",
            path.display()
        ))
    };
    let mut words = text.split_whitespace();
    let (tag, hex) = (words.next().ok_or_else(bad)?, words.next().ok_or_else(bad)?);
    if words.next().is_some() {
        return Err(bad());
    }
    let bytes: [u8; 32] = hash::from_hex(hex)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    Ok((tag.to_string(), bytes))
}

/// Reads a secret key file.
pub fn read_secret(path: &Path) -> Result<[u8; 32]> {
    match read_tagged(path)? {
        (t, k) if t == SECRET_TAG => Ok(k),
        _ => Err(Error::InvalidArgument(format!(
            "{} is not a secret key file",
            path.display()
        ))),
    }
}

/// Reads a public key file, or the public key of a secret key file.
pub fn read_public(path: &Path) -> Result<[u8; 32]> {
    match read_tagged(path)? {
        (t, k) if t == PUBLIC_TAG => ed25519_dalek::VerifyingKey::from_bytes(&k)
            .map(|_| k)
            .map_err(|_| {
                Error::InvalidArgument(format!("{}: not an Ed25519 public key", path.display()))
            }),
        (_, k) => Ok(public_of(&k)),
    }
}
