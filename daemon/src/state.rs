//! Daemon state persisted across restarts (e.g. bindings), as JSON replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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
#[derive(Debug)]
pub struct StateFile<T> {
    path: PathBuf,
    _state: PhantomData<fn() -> T>,
}

// Not derived: a handle on a path is cloneable whatever `T` is.
impl<T> Clone for StateFile<T> {
    fn clone(&self) -> Self {
        StateFile {
            path: self.path.clone(),
            _state: PhantomData,
        }
    }
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
        // Compact: at 100k bindings the pretty form is several times larger, and the file is
        // rewritten after every burst of changes.
        let bytes = serde_json::to_vec(state).map_err(|source| StateError::Encode {
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

/// How a write of a [`StateWriter`] ended, for a counter.
pub type WriteOutcome = Result<(), StateError>;

/// Writes a [`StateFile`] in the background, debounced: the first change after a write
/// schedules the next one `delay` later, and every change until then (or while a write is
/// still on disk) joins it. So a daemon rewrites the file at most once per `delay` plus one
/// write time, however many changes arrive; at 100k bindings a write takes seconds.
///
/// Disk I/O runs on tokio's blocking pool; the snapshot is taken on the caller's thread when
/// the write starts. Drive it from the daemon's `select!` loop with [`Self::due`].
pub struct StateWriter<T> {
    file: StateFile<T>,
    delay: Duration,
    due_at: Option<Instant>,
    writing: Option<JoinHandle<WriteOutcome>>,
    on_outcome: Box<dyn FnMut(&WriteOutcome) + Send>,
}

impl<T: Serialize + DeserializeOwned + Send + 'static> StateWriter<T> {
    /// `on_outcome` sees the result of every write (to count it); failures are also logged.
    pub fn new(
        file: StateFile<T>,
        delay: Duration,
        on_outcome: impl FnMut(&WriteOutcome) + Send + 'static,
    ) -> Self {
        StateWriter {
            file,
            delay,
            due_at: None,
            writing: None,
            on_outcome: Box::new(on_outcome),
        }
    }

    pub fn file(&self) -> &StateFile<T> {
        &self.file
    }

    /// The state changed: schedules a write `delay` from now unless one is already scheduled.
    pub fn mark_dirty(&mut self) {
        let delay = self.delay;
        self.due_at.get_or_insert_with(|| Instant::now() + delay);
    }

    /// Whether a write is scheduled (changes not on disk yet, nor being written).
    pub fn is_dirty(&self) -> bool {
        self.due_at.is_some()
    }

    /// Resolves when a write should start (then call [`Self::start`]); meanwhile collects
    /// finished writes and reports them. Never resolves while nothing is scheduled, and not
    /// before the running write has finished. Cancel-safe, for `select!`.
    pub async fn due(&mut self) {
        loop {
            if let Some(handle) = self.writing.as_mut() {
                let result = handle.await;
                self.writing = None;
                self.report(result);
                continue;
            }
            crate::clock::sleep_until(self.due_at).await;
            return;
        }
    }

    /// Starts writing `snapshot()` in the background. If a write is still running (a caller
    /// that did not wait for [`Self::due`]), the write is only scheduled instead.
    pub fn start(&mut self, snapshot: impl FnOnce() -> T) {
        if self.writing.is_some() {
            self.mark_dirty();
            return;
        }
        self.due_at = None;
        let state = snapshot();
        let file = self.file.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || file.store(&state)));
    }

    /// Waits for a running write, then writes `snapshot` and waits for it too (start-up and
    /// shutdown). Returns this write's outcome; both are reported.
    pub async fn write_now(&mut self, snapshot: T) -> WriteOutcome {
        if let Some(handle) = self.writing.take() {
            self.report(handle.await);
        }
        self.due_at = None;
        let file = self.file.clone();
        let result = tokio::task::spawn_blocking(move || file.store(&snapshot)).await;
        let outcome = self.flatten(result);
        self.observe(&outcome);
        outcome
    }

    fn report(&mut self, result: Result<WriteOutcome, tokio::task::JoinError>) {
        let outcome = self.flatten(result);
        self.observe(&outcome);
    }

    fn observe(&mut self, outcome: &WriteOutcome) {
        if let Err(e) = outcome {
            tracing::error!(error = %e, "cannot write the state file");
        }
        (self.on_outcome)(outcome);
    }

    /// A writer task that panicked or was cancelled is a failed write of the file.
    fn flatten(&self, result: Result<WriteOutcome, tokio::task::JoinError>) -> WriteOutcome {
        result.unwrap_or_else(|e| Err(self.file.io_error(io::Error::other(e.to_string()))))
    }
}
