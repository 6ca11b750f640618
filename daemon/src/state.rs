//! Daemon state persisted across restarts (e.g. bindings), as JSON replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The file exists but is not a state this daemon wrote; the daemon decides whether to
    /// start empty (and overwrite it) or stop.
    #[error("state file {} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot encode state for {}: {source}", path.display())]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A JSON file holding one `T`.
///
/// [`StateFile::store`] writes `.<name>.tmp` beside the file, syncs it, renames it over the
/// file and syncs the directory, so after a crash the file holds either the old or the new
/// state, never a mix. A temporary file left by a crash is never read and is overwritten by
/// the next store. Both calls block on disk I/O (fsync): from async code, call them from
/// `spawn_blocking` if stores are frequent.
#[derive(Debug, Clone)]
pub struct StateFile<T> {
    path: PathBuf,
    _state: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> StateFile<T> {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            _state: PhantomData,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(None)` when the file does not exist (first start).
    pub fn load(&self) -> Result<Option<T>, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io_error(source)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            })
    }

    pub fn store(&self, state: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Encode {
            path: self.path.clone(),
            source,
        })?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = self
            .path
            .file_name()
            .ok_or_else(|| self.io_error(io::Error::other("path has no file name")))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(".tmp");
        let temp = dir.join(temp_name);

        let write = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(&bytes)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&temp, &self.path)?;
            // The rename is only durable once the directory entry is on disk.
            File::open(dir)?.sync_all()
        };
        write().map_err(|source| self.io_error(source))
    }

    fn io_error(&self, source: io::Error) -> StateError {
        StateError::Io {
            path: self.path.clone(),
            source,
        }
    }
}
