//! Shared secrets (RFC 4285 MN-HA keys) read from key files.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// Larger files are refused: a key file that big is almost certainly the wrong file.
const MAX_KEY_FILE: u64 = 4096;

/// Key material. `Debug` prints only the length; there is deliberately no `Serialize` and no
/// `Display`, so a key cannot end up in a log line or a dumped config by accident.
///
/// In a config, a `SecretKey` field holds the key file's path and deserializing it reads the
/// file (relative paths are relative to the configuration file's directory), so a bad key file is
/// reported with the field's path and line like any other config error.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<u8>);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{}: no such key file; make one with `{} keygen {}` (add `--algorithm hmac-sha1-96` for an hmac-sha1-96 association)",
        path.display(),
        keygen_program(),
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("{}: cannot read key file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: key file is accessible to all users (mode {mode:04o}); refusing to use it, run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{}: key file is empty", path.display())]
    Empty { path: PathBuf },
    #[error("{}: key file is larger than {MAX_KEY_FILE} bytes; is it the right file?", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: key file {reason}", path.display())]
    NotRegular {
        path: PathBuf,
        reason: super::limits::NotRegular,
    },
}

/// The daemon whose `keygen` subcommand a missing-key error points to.
static KEYGEN_PROGRAM: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Names the running daemon in missing-key errors (`home-agent keygen PATH`); the shared
/// `main` calls it first thing. Without it the errors say `<daemon> keygen PATH`.
pub fn set_keygen_program(name: &'static str) {
    let _ = KEYGEN_PROGRAM.set(name);
}

fn keygen_program() -> &'static str {
    KEYGEN_PROGRAM.get().copied().unwrap_or("<daemon>")
}

impl SecretKey {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Reads a key file. A file whose content, without surrounding whitespace, is an even
    /// number of hex digits is decoded as hex; any other content is the key byte for byte.
    /// Refuses files that other users can read or write.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let read_err = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        // Before opening: opening a FIFO for reading would block the daemon silently.
        super::limits::regular_or_absent(path).map_err(|reason| KeyError::NotRegular {
            path: path.to_owned(),
            reason,
        })?;
        let file = std::fs::File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                KeyError::Missing {
                    path: path.to_owned(),
                }
            } else {
                read_err(source)
            }
        })?;
        // Check the opened file, not the path, so a swapped file cannot slip past the check.
        let metadata = file.metadata().map_err(read_err)?;
        if !metadata.is_file() {
            return Err(KeyError::NotRegular {
                path: path.to_owned(),
                reason: super::limits::NotRegular {
                    kind: "special file",
                },
            });
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o006 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        if mode & 0o040 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:04o}"), "key file is readable by its group");
        }
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(KeyError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = bytes.trim_ascii();
        if text.is_empty() {
            return Err(KeyError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self(decode_hex(text).unwrap_or(bytes)))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    let pairs = text.chunks_exact(2);
    if text.is_empty() || !pairs.remainder().is_empty() {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16);
    pairs
        .map(|pair| match pair {
            [hi, lo] => Some((nibble(*hi)? << 4 | nibble(*lo)?) as u8),
            _ => None,
        })
        .collect()
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<{} bytes>)", self.0.len())
    }
}

// serde gives a Deserialize impl no context, so the directory of the configuration file being
// loaded reaches it through a thread-local set by `config::parse` for the duration of a parse.
thread_local! {
    static CONFIG_DIR: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// Resolves relative key-file paths against `dir` until the guard is dropped.
pub(super) struct ConfigDirGuard(Option<PathBuf>);

impl ConfigDirGuard {
    pub(super) fn set(dir: Option<&Path>) -> ConfigDirGuard {
        ConfigDirGuard(CONFIG_DIR.with(|d| d.replace(dir.map(Path::to_owned))))
    }
}

impl Drop for ConfigDirGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CONFIG_DIR.with(|d| *d.borrow_mut() = previous);
    }
}

/// A key file path as written in a configuration file: relative paths are relative to the
/// directory of that file, as an operator reading the file expects.
impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let path = PathBuf::deserialize(deserializer)?;
        let path = match CONFIG_DIR.with(|d| d.borrow().clone()) {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        };
        Self::load(&path).map_err(serde::de::Error::custom)
    }
}
