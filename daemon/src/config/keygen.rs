//! `<daemon> keygen PATH`: makes an RFC 4285 MN-HA key file the way [`SecretKey::load`]
//! wants it (hex, mode 600), so operators never have to hand-roll one.
//!
//! [`SecretKey::load`]: super::SecretKey::load
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::sa::SaAlgorithm;

/// Where the key's randomness comes from: the kernel's CSPRNG (the same pool getrandom(2)
/// draws from; reading the device needs no extra crate and blocks only before the pool is
/// initialised at boot).
const RANDOM_SOURCE: &str = "/dev/urandom";

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{}: already exists; keygen never overwrites a key (remove the file first to replace it, and update every peer that shares it)", path.display())]
    Exists { path: PathBuf },
    #[error("{}: cannot create the key file in {}: {source}", path.display(), dir.display())]
    Create {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot write the key file: {source} (nothing was left behind)", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{RANDOM_SOURCE}: cannot read random bytes: {0}")]
    Random(std::io::Error),
}

impl SaAlgorithm {
    /// The key length the algorithm's hash wants (RFC 2104 §3: a key as long as the hash
    /// output; shorter keys weaken it, longer ones add nothing).
    pub fn key_len(self) -> usize {
        match self {
            SaAlgorithm::HmacSha1_96 => 20,
            SaAlgorithm::HmacSha256_128 => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SaAlgorithm::HmacSha1_96 => "hmac-sha1-96",
            SaAlgorithm::HmacSha256_128 => "hmac-sha256-128",
        }
    }
}

/// Writes a fresh random key for `algorithm` to `path` as hex, mode 600. The file is created
/// exclusively (an existing file, even a dangling symlink, is an error and left untouched);
/// missing parent directories are created with mode 700. Returns the key length in bytes.
pub fn keygen(path: &Path, algorithm: SaAlgorithm) -> Result<usize, KeygenError> {
    let mut key = vec![0u8; algorithm.key_len()];
    std::fs::File::open(RANDOM_SOURCE)
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(KeygenError::Random)?;
    let mut text = String::with_capacity(key.len() * 2 + 1);
    for b in &key {
        let _ = write!(text, "{b:02x}");
    }
    text.push('\n');

    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let create_err = |source| KeygenError::Create {
        path: path.to_owned(),
        dir: dir.clone(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(create_err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeygenError::Exists {
                path: path.to_owned(),
            },
            _ => create_err(source),
        })?;
    if let Err(source) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // A half-written key would later load as a different (shorter) key: remove it.
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(KeygenError::Write {
            path: path.to_owned(),
            source,
        });
    }
    Ok(key.len())
}
