//! Daemon state persisted across restarts (e.g. bindings): a JSON file replaced atomically
//! ([`StateFile`], [`StateWriter`]), or an append-only journal of compact binary records
//! compacted now and then ([`Journal`]) for tables of 100,000 entries that change one at a
//! time.

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

/// A record of a [`Journal`]: one entry's fixed binary encoding, and the key that a later
/// record for the same entry replaces.
pub trait JournalRecord: Sized {
    type Key: Eq + std::hash::Hash + Clone;
    fn key(&self) -> Self::Key;
    /// Appends the encoding (at most 250 bytes) to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Option<Self>;
    fn encode_key(key: &Self::Key, out: &mut Vec<u8>);
    fn decode_key(bytes: &[u8]) -> Option<Self::Key>;
}

/// One change to journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalEntry<R: JournalRecord> {
    /// The entry is now this (added or changed).
    Put(R),
    /// The entry is gone.
    Delete(R::Key),
    /// Daemon-wide data (e.g. the settings to put back at a clean stop); the last one holds.
    Meta(Vec<u8>),
}

/// What [`Journal::open`] found.
#[derive(Debug)]
pub struct JournalState<R: JournalRecord> {
    pub records: std::collections::HashMap<R::Key, R>,
    pub meta: Option<Vec<u8>>,
    /// Bytes at the end that were not a whole, valid record (a write cut short by a crash):
    /// cut off, and worth a warning.
    pub torn_bytes: u64,
    /// The file was not a journal (e.g. the JSON state of an older version): left for the
    /// caller to read, and replaced by the first compaction.
    pub foreign: bool,
}

/// An append-only state file: every change is one record (`len | kind | body | crc32`), so a
/// change costs its own few bytes instead of rewriting every binding. [`Journal::append`]
/// writes a batch and syncs it before returning: a daemon that answers only after it keeps
/// every acknowledged change across a crash. [`Journal::compact`] rewrites the file with one
/// record per live entry beside it and renames it over (atomic, like [`StateFile::store`]);
/// call it when [`Journal::needs_compaction`] says the dead records outweigh the live ones.
/// Blocking I/O: from async code, call from `spawn_blocking` or accept the fsync latency.
#[derive(Debug)]
pub struct Journal<R: JournalRecord> {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    /// The longest record written or read (with framing): live entries times this bounds
    /// what a compaction would keep.
    max_record: u64,
    _record: PhantomData<fn() -> R>,
}

const JOURNAL_MAGIC: &[u8; 8] = b"MIPJRNL1";
const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_META: u8 = 3;
/// The length is one byte: a record body (meta included) is at most this long.
const MAX_BODY: usize = 255;
/// Compaction once the file is this many times the size of its live records (and at least
/// [`COMPACT_MIN_BYTES`]).
const COMPACT_RATIO: u64 = 4;
const COMPACT_MIN_BYTES: u64 = 1 << 20;

impl<R: JournalRecord> Journal<R> {
    /// Opens (creating) the journal at `path` and replays it. A torn tail is cut off (see
    /// [`JournalState::torn_bytes`]); a file that is not a journal at all is reported as
    /// [`JournalState::foreign`] and left untouched until the first [`Self::compact`].
    pub fn open(path: impl Into<PathBuf>) -> Result<(Journal<R>, JournalState<R>), StateError> {
        let path = path.into();
        let io_err = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(e)),
        };
        let mut state = JournalState {
            records: std::collections::HashMap::new(),
            meta: None,
            torn_bytes: 0,
            foreign: false,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        let mut journal = Journal {
            path: path.clone(),
            file,
            len: 0,
            max_record: 0,
            _record: PhantomData,
        };
        if bytes.is_empty() {
            journal.file.write_all(JOURNAL_MAGIC).map_err(io_err)?;
            journal.file.sync_all().map_err(io_err)?;
            journal.len = JOURNAL_MAGIC.len() as u64;
            return Ok((journal, state));
        }
        let Some(mut rest) = bytes.strip_prefix(JOURNAL_MAGIC.as_slice()) else {
            state.foreign = true;
            // Not ours to append to: the first compaction replaces it.
            journal.len = bytes.len() as u64;
            return Ok((journal, state));
        };
        let mut good = JOURNAL_MAGIC.len();
        while !rest.is_empty() {
            let Some((kind, body, used)) = split_record(rest) else {
                break;
            };
            match kind {
                KIND_PUT => {
                    let Some(r) = R::decode(body) else { break };
                    journal.max_record = journal.max_record.max(used as u64);
                    state.records.insert(r.key(), r);
                }
                KIND_DELETE => {
                    let Some(k) = R::decode_key(body) else { break };
                    state.records.remove(&k);
                }
                KIND_META => state.meta = Some(body.to_vec()),
                _ => break,
            }
            good += used;
            rest = rest.get(used..).unwrap_or_default();
        }
        state.torn_bytes = (bytes.len() - good) as u64;
        if state.torn_bytes > 0 {
            journal.file.set_len(good as u64).map_err(io_err)?;
            journal.file.sync_all().map_err(io_err)?;
        }
        journal.len = good as u64;
        Ok((journal, state))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len <= JOURNAL_MAGIC.len() as u64
    }

    /// Appends `entries` in one write and syncs the file (fdatasync) before returning.
    pub fn append(&mut self, entries: &[JournalEntry<R>]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.len() * 96);
        for e in entries {
            let n = push_entry(&mut buf, e).map_err(|source| self.io_error(source))?;
            if matches!(e, JournalEntry::Put(_)) {
                self.max_record = self.max_record.max(n as u64);
            }
        }
        let write = |file: &mut File| -> io::Result<()> {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::End(0))?;
            file.write_all(&buf)?;
            file.sync_data()
        };
        write(&mut self.file).map_err(|source| self.io_error(source))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Whether the file holds mostly dead records, given how many entries are live (see the
    /// type's documentation).
    pub fn needs_compaction(&self, live_records: usize) -> bool {
        let live = (live_records as u64).saturating_mul(self.max_record.max(1));
        self.len > COMPACT_MIN_BYTES && self.len > live.saturating_mul(COMPACT_RATIO)
    }

    /// Rewrites the journal as one record per live entry (plus `meta`), atomically: a crash
    /// leaves the old file or the new one.
    pub fn compact<'a>(
        &mut self,
        live: impl IntoIterator<Item = &'a R>,
        meta: Option<&[u8]>,
    ) -> Result<(), StateError>
    where
        R: 'a,
    {
        let mut buf = JOURNAL_MAGIC.to_vec();
        if let Some(m) = meta {
            push_entry::<R>(&mut buf, &JournalEntry::Meta(m.to_vec()))
                .map_err(|source| self.io_error(source))?;
        }
        let mut record = Vec::with_capacity(128);
        for r in live {
            record.clear();
            r.encode(&mut record);
            push_record(&mut buf, KIND_PUT, &record).map_err(|source| self.io_error(source))?;
        }
        let file = StateFile::<()>::new(self.path.clone());
        let file = file
            .replace_with(&buf)
            .map_err(|source| self.io_error(source))?;
        self.file = file;
        self.len = buf.len() as u64;
        Ok(())
    }

    fn io_error(&self, source: io::Error) -> StateError {
        StateError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

fn push_entry<R: JournalRecord>(buf: &mut Vec<u8>, e: &JournalEntry<R>) -> io::Result<usize> {
    let mut body = Vec::with_capacity(96);
    let kind = match e {
        JournalEntry::Put(r) => {
            r.encode(&mut body);
            KIND_PUT
        }
        JournalEntry::Delete(k) => {
            R::encode_key(k, &mut body);
            KIND_DELETE
        }
        JournalEntry::Meta(m) => {
            body.extend_from_slice(m);
            KIND_META
        }
    };
    push_record(buf, kind, &body)
}

/// `len (1) | kind (1) | body | crc32 of kind and body (4, big endian)`.
fn push_record(buf: &mut Vec<u8>, kind: u8, body: &[u8]) -> io::Result<usize> {
    let len = u8::try_from(body.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_BODY)
        .ok_or_else(|| io::Error::other("journal record longer than 255 bytes"))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(body);
    buf.push(len);
    buf.push(kind);
    buf.extend_from_slice(body);
    buf.extend_from_slice(&crc.finalize().to_be_bytes());
    Ok(body.len() + 6)
}

/// The first record of `bytes`: (kind, body, bytes used); None if incomplete or corrupt.
fn split_record(bytes: &[u8]) -> Option<(u8, &[u8], usize)> {
    let (&len, rest) = bytes.split_first()?;
    let (&kind, rest) = rest.split_first()?;
    let body = rest.get(..usize::from(len))?;
    let sum = rest.get(usize::from(len)..usize::from(len) + 4)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(body);
    (crc.finalize().to_be_bytes() == sum).then_some((kind, body, usize::from(len) + 6))
}

impl<T> StateFile<T> {
    /// Writes `bytes` to `.<name>.tmp`, syncs, renames it over the file, syncs the directory,
    /// and returns the new file open for appending.
    fn replace_with(&self, bytes: &[u8]) -> io::Result<File> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = self
            .path
            .file_name()
            .ok_or_else(|| io::Error::other("path has no file name"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(".tmp");
        let temp = dir.join(temp_name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &self.path)?;
        File::open(dir)?.sync_all()?;
        Ok(file)
    }
}

impl<R: JournalRecord> Journal<R>
where
    R::Key: Ord + Copy,
{
    /// The state writer of one settled round: every key the round touched (once each, in
    /// order) is written as its record now, or deleted when `current` has none, and synced.
    /// None when the round touched nothing (nothing written).
    pub fn append_round(
        &mut self,
        mut touched: Vec<R::Key>,
        mut current: impl FnMut(&R::Key) -> Option<R>,
    ) -> Option<Result<(), StateError>> {
        if touched.is_empty() {
            return None;
        }
        touched.sort_unstable();
        touched.dedup();
        let entries: Vec<JournalEntry<R>> = touched
            .iter()
            .map(|key| match current(key) {
                Some(record) => JournalEntry::Put(record),
                None => JournalEntry::Delete(*key),
            })
            .collect();
        Some(self.append(&entries))
    }
}

#[cfg(test)]
mod journal_tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Rec {
        id: u32,
        value: u64,
    }

    impl JournalRecord for Rec {
        type Key = u32;
        fn key(&self) -> u32 {
            self.id
        }
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.id.to_be_bytes());
            out.extend_from_slice(&self.value.to_be_bytes());
        }
        fn decode(b: &[u8]) -> Option<Rec> {
            let (id, value) = b.split_first_chunk::<4>()?;
            Some(Rec {
                id: u32::from_be_bytes(*id),
                value: u64::from_be_bytes(value.try_into().ok()?),
            })
        }
        fn encode_key(k: &u32, out: &mut Vec<u8>) {
            out.extend_from_slice(&k.to_be_bytes());
        }
        fn decode_key(b: &[u8]) -> Option<u32> {
            Some(u32::from_be_bytes(b.try_into().ok()?))
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("journal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("state")
    }

    #[test]
    fn a_round_writes_each_touched_key_once_as_it_is_now() {
        let path = temp("round");
        let (mut j, _) = Journal::<Rec>::open(&path).unwrap();
        assert!(j.append_round(Vec::new(), |_| None).is_none());
        let before = fs::metadata(&path).unwrap().len();
        j.append_round(vec![2, 1, 2], |&id| Some(Rec { id, value: 7 }))
            .unwrap()
            .unwrap();
        // Two puts (12-byte body + 6 bytes of framing), not three.
        assert_eq!(fs::metadata(&path).unwrap().len(), before + 2 * 18);
        j.append_round(vec![1, 2], |&id| (id == 1).then_some(Rec { id, value: 8 }))
            .unwrap()
            .unwrap();
        drop(j);
        let (_, st) = Journal::<Rec>::open(&path).unwrap();
        assert_eq!(st.records.len(), 1);
        assert_eq!(st.records[&1], Rec { id: 1, value: 8 });
    }

    #[test]
    fn replays_puts_deletes_and_meta() {
        let path = temp("replay");
        let (mut j, st) = Journal::<Rec>::open(&path).unwrap();
        assert!(st.records.is_empty() && !st.foreign && st.torn_bytes == 0);
        j.append(&[
            JournalEntry::Put(Rec { id: 1, value: 10 }),
            JournalEntry::Put(Rec { id: 2, value: 20 }),
            JournalEntry::Meta(b"m1".to_vec()),
        ])
        .unwrap();
        j.append(&[
            JournalEntry::Put(Rec { id: 1, value: 11 }),
            JournalEntry::Delete(2),
        ])
        .unwrap();
        drop(j);
        let (_, st) = Journal::<Rec>::open(&path).unwrap();
        assert_eq!(st.records.len(), 1);
        assert_eq!(st.records[&1], Rec { id: 1, value: 11 });
        assert_eq!(st.meta.as_deref(), Some(&b"m1"[..]));
        // Header, three puts (12-byte body + 6 bytes of framing), the meta, the delete.
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            8 + 3 * 18 + (2 + 6) + (4 + 6)
        );
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_reported() {
        let path = temp("torn");
        let (mut j, _) = Journal::<Rec>::open(&path).unwrap();
        j.append(&[JournalEntry::Put(Rec { id: 1, value: 10 })])
            .unwrap();
        j.append(&[JournalEntry::Put(Rec { id: 2, value: 20 })])
            .unwrap();
        drop(j);
        let full = fs::read(&path).unwrap();
        for cut in 1..18 {
            fs::write(&path, &full[..full.len() - cut]).unwrap();
            let (mut j, st) = Journal::<Rec>::open(&path).unwrap();
            assert_eq!(st.torn_bytes, 18 - cut as u64, "cut {cut}");
            assert_eq!(st.records.len(), 1, "cut {cut}");
            // Appending after the cut gives a clean journal.
            j.append(&[JournalEntry::Put(Rec { id: 3, value: 30 })])
                .unwrap();
            drop(j);
            let (_, st) = Journal::<Rec>::open(&path).unwrap();
            assert_eq!(st.torn_bytes, 0);
            assert_eq!(st.records.len(), 2);
            fs::write(&path, &full).unwrap();
        }
        // A flipped bit in the last record: its checksum fails.
        let mut bad = full.clone();
        *bad.last_mut().unwrap() ^= 1;
        fs::write(&path, &bad).unwrap();
        let (_, st) = Journal::<Rec>::open(&path).unwrap();
        assert_eq!((st.records.len(), st.torn_bytes), (1, 18));
    }

    #[test]
    fn compaction_keeps_only_live_records_atomically() {
        let path = temp("compact");
        let (mut j, _) = Journal::<Rec>::open(&path).unwrap();
        for v in 0..100u64 {
            j.append(&[JournalEntry::Put(Rec { id: 7, value: v })])
                .unwrap();
        }
        assert!(!j.needs_compaction(1), "below the minimum size");
        let many: Vec<JournalEntry<Rec>> = (0..COMPACT_MIN_BYTES / 18)
            .map(|v| JournalEntry::Put(Rec { id: 7, value: v }))
            .collect();
        j.append(&many).unwrap();
        assert!(j.needs_compaction(1));
        assert!(!j.needs_compaction(usize::MAX / 64), "all live");
        let live = [Rec { id: 7, value: 999 }];
        j.compact(live.iter(), Some(b"meta")).unwrap();
        assert_eq!(j.len(), 8 + (4 + 6) + 18);
        assert_eq!(fs::metadata(&path).unwrap().len(), j.len());
        j.append(&[JournalEntry::Put(Rec { id: 8, value: 1 })])
            .unwrap();
        drop(j);
        let (_, st) = Journal::<Rec>::open(&path).unwrap();
        assert_eq!(st.records.len(), 2);
        assert_eq!(st.records[&7].value, 999);
        assert_eq!(st.meta.as_deref(), Some(&b"meta"[..]));
        assert!(!path.with_file_name(".state.tmp").exists());
    }

    #[test]
    fn a_foreign_file_is_reported_and_replaced_by_compaction() {
        let path = temp("foreign");
        fs::write(&path, b"{\"bindings\":[]}\n").unwrap();
        let (mut j, st) = Journal::<Rec>::open(&path).unwrap();
        assert!(st.foreign);
        assert_eq!(
            fs::read(&path).unwrap(),
            b"{\"bindings\":[]}\n",
            "left alone"
        );
        j.compact([Rec { id: 1, value: 1 }].iter(), None).unwrap();
        let (_, st) = Journal::<Rec>::open(&path).unwrap();
        assert!(!st.foreign);
        assert_eq!(st.records.len(), 1);
    }
}

/// A binding's payload in a [`BindingEntry`]: the daemon's own fixed encoding. It is given
/// the binding's home address, so that it can leave out what the address determines.
pub trait PayloadCodec: Sized {
    fn encode(&self, hoa: &std::net::Ipv6Addr, out: &mut Vec<u8>);
    /// Decodes from the front of `bytes`, advancing it.
    fn decode(hoa: &std::net::Ipv6Addr, bytes: &mut &[u8]) -> Option<Self>;
}

impl PayloadCodec for () {
    fn encode(&self, _: &std::net::Ipv6Addr, _: &mut Vec<u8>) {}
    fn decode(_: &std::net::Ipv6Addr, _: &mut &[u8]) -> Option<()> {
        Some(())
    }
}

/// A binding cache record as a [`Journal`] record, keyed by home address: a fixed binary
/// layout where the common values are left out (flags say which are present).
///
/// ```text
/// flags (1) | hoa (16) | coa (16) | [peer (16)] | [local (16)] | sequence (2) | lifetime_s (4)
/// | registered_unix_ms (8) | expires_unix_ms (8) | [refresh_unix_ms (8)] | last_timestamp (8)
/// | spi (4) | payload
/// ```
/// `peer` is left out when it equals the care-of address, `local` when it is the daemon's
/// own address (`me`; a decoded record has it unspecified until [`BindingEntry::with_local`]).
/// So a home agent's record is 67 bytes (73 with the journal's framing) for a BU from its
/// care-of address, 91 (97) with a separate source and a refresh time due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingEntry<P> {
    pub record: mipcast_binding::BindingRecord<P>,
    pub me: std::net::Ipv6Addr,
}

const BR_PEER: u8 = 0x01;
const BR_LOCAL: u8 = 0x02;
const BR_REFRESH: u8 = 0x04;
const BR_LINGERING: u8 = 0x08;

impl<P> BindingEntry<P> {
    /// The decoded record with an elided `local` filled in with the daemon's address.
    pub fn with_local(mut self, me: std::net::Ipv6Addr) -> mipcast_binding::BindingRecord<P> {
        if self.record.local.is_unspecified() {
            self.record.local = me;
        }
        self.record
    }
}

/// Takes N bytes from the front of `bytes`.
pub fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    *bytes = rest;
    Some(*head)
}

impl<P: PayloadCodec> JournalRecord for BindingEntry<P> {
    type Key = std::net::Ipv6Addr;

    fn key(&self) -> std::net::Ipv6Addr {
        self.record.hoa
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let r = &self.record;
        let mut flags = 0;
        if r.peer != r.coa {
            flags |= BR_PEER;
        }
        if r.local != self.me {
            flags |= BR_LOCAL;
        }
        if r.refresh_unix_ms.is_some() {
            flags |= BR_REFRESH;
        }
        if r.state == mipcast_binding::BindingState::Lingering {
            flags |= BR_LINGERING;
        }
        out.push(flags);
        out.extend_from_slice(&r.hoa.octets());
        out.extend_from_slice(&r.coa.octets());
        if flags & BR_PEER != 0 {
            out.extend_from_slice(&r.peer.octets());
        }
        if flags & BR_LOCAL != 0 {
            out.extend_from_slice(&r.local.octets());
        }
        out.extend_from_slice(&r.sequence.to_be_bytes());
        out.extend_from_slice(&r.lifetime_s.to_be_bytes());
        out.extend_from_slice(&r.registered_unix_ms.to_be_bytes());
        out.extend_from_slice(&r.expires_unix_ms.to_be_bytes());
        if let Some(at) = r.refresh_unix_ms {
            out.extend_from_slice(&at.to_be_bytes());
        }
        out.extend_from_slice(&r.last_timestamp.to_be_bytes());
        out.extend_from_slice(&r.spi.to_be_bytes());
        r.payload.encode(&r.hoa, out);
    }

    fn decode(bytes: &[u8]) -> Option<BindingEntry<P>> {
        use std::net::Ipv6Addr;
        let mut b = bytes;
        let [flags] = take::<1>(&mut b)?;
        let hoa = Ipv6Addr::from(take::<16>(&mut b)?);
        let coa = Ipv6Addr::from(take::<16>(&mut b)?);
        let peer = if flags & BR_PEER != 0 {
            Ipv6Addr::from(take::<16>(&mut b)?)
        } else {
            coa
        };
        let local = if flags & BR_LOCAL != 0 {
            Ipv6Addr::from(take::<16>(&mut b)?)
        } else {
            Ipv6Addr::UNSPECIFIED
        };
        let sequence = u16::from_be_bytes(take(&mut b)?);
        let lifetime_s = u32::from_be_bytes(take(&mut b)?);
        let registered_unix_ms = u64::from_be_bytes(take(&mut b)?);
        let expires_unix_ms = u64::from_be_bytes(take(&mut b)?);
        let refresh_unix_ms = if flags & BR_REFRESH != 0 {
            Some(u64::from_be_bytes(take(&mut b)?))
        } else {
            None
        };
        let last_timestamp = u64::from_be_bytes(take(&mut b)?);
        let spi = u32::from_be_bytes(take(&mut b)?);
        let payload = P::decode(&hoa, &mut b)?;
        if !b.is_empty() {
            return None;
        }
        Some(BindingEntry {
            record: mipcast_binding::BindingRecord {
                hoa,
                coa,
                peer,
                local,
                sequence,
                lifetime_s,
                registered_unix_ms,
                expires_unix_ms,
                refresh_unix_ms,
                last_timestamp,
                spi,
                state: if flags & BR_LINGERING != 0 {
                    mipcast_binding::BindingState::Lingering
                } else {
                    mipcast_binding::BindingState::Active
                },
                payload,
            },
            me: Ipv6Addr::UNSPECIFIED,
        })
    }

    fn encode_key(key: &std::net::Ipv6Addr, out: &mut Vec<u8>) {
        out.extend_from_slice(&key.octets());
    }

    fn decode_key(bytes: &[u8]) -> Option<std::net::Ipv6Addr> {
        <[u8; 16]>::try_from(bytes)
            .ok()
            .map(std::net::Ipv6Addr::from)
    }
}

#[cfg(test)]
mod binding_entry_tests {
    use super::*;
    use mipcast_binding::{BindingRecord, BindingState};
    use std::net::Ipv6Addr;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn record(peer: &str, local: &str, refresh: Option<u64>) -> BindingRecord<()> {
        BindingRecord {
            hoa: a("2001:db8:1::100"),
            coa: a("2001:db8:2::9"),
            peer: a(peer),
            local: a(local),
            sequence: 7,
            lifetime_s: 400,
            registered_unix_ms: 1_700_000_000_000,
            expires_unix_ms: 1_700_000_400_000,
            refresh_unix_ms: refresh,
            last_timestamp: 0xdead_beef_0000_0001,
            spi: 1000,
            state: BindingState::Active,
            payload: (),
        }
    }

    #[test]
    fn round_trips_within_100_bytes_framed() {
        let me = a("2001:db8:1::1");
        for (r, len) in [
            (record("2001:db8:2::9", "2001:db8:1::1", None), 67),
            (record("2001:db8:2::8", "2001:db8:1::1", Some(1)), 91),
            (record("2001:db8:2::8", "2001:db8:1::5", Some(1)), 107),
        ] {
            let mut out = Vec::new();
            BindingEntry {
                record: r.clone(),
                me,
            }
            .encode(&mut out);
            assert_eq!(out.len(), len);
            let back = BindingEntry::<()>::decode(&out).unwrap().with_local(me);
            assert_eq!(back, r);
            assert_eq!(
                BindingEntry::<()>::decode(&out[..len - 1]),
                None,
                "truncated"
            );
        }
    }
}
