//! The local media cache of one asset sink: crash-safe segment files under a size budget.
//!
//! Owns the cache directory (`localMediaCachePath/<sink dir>`, opened once as a cap-std `Dir`
//! so no name can escape it), the segment files and their index, the durable "uploaded" marks
//! and the gap log. It must not know container formats (bytes come from the recorder) nor
//! choose eviction victims (a chooser passed in decides; the cache verifies and deletes).
//!
//! Parts: [`names`] (file names), [`recovery`] (start-up reconciliation), [`logs`] (the two
//! logs, compaction, atomic replacement), [`writer`] (the open segment: begin, append, seal),
//! [`evict`] (making room), [`live`] (the view players read before upload).
//!
//! On-disk layout (all names produced here, never taken from topology values):
//! - `<id>.open` + `<id>.journal`: the segment being written. The journal's first line is a
//!   JSON header; each further line `"<byte_end> <end_ticks>\n"` is appended only after the
//!   fragment's bytes are written and `fdatasync`ed, so every journal line describes durable
//!   bytes. The journal line is itself `fdatasync`ed before the append returns (before the next
//!   fragment is written), and the header and the directory entries of both files are synced
//!   before the first fragment: after a power cut at most the fragment being written is lost.
//! - `<id>_<run>_<seq>_<start>_<end>_<codecs>.<ext>`: a sealed segment. It appears only by an
//!   atomic rename after the file was fsynced, and the directory is fsynced after the rename.
//! - `uploaded.log`: ids marked uploaded (fsynced append). `gaps.log`: JSON lines of gaps.
//!   Both count against the budget and are compacted while running (see [`logs`]).
//! - `running`: present while a recorder owns the cache; found at start-up it means a crash.
//! - `*.tmp`: never valid; removed at start-up.
//!
//! Ids are handed out in recording order and never reused, even after every segment is gone
//! (`uploaded.log` keeps the high-water mark): ids, not wall-clock times, order eviction.
//!
//! Locks: the index lock is held only for memory operations, never across a file-system
//! call. The open segment (recorder only), `uploaded.log` (uploader only) and `gaps.log`
//! (recorder only) each have their own lock, held across their writes and syncs: a slow sync
//! only ever waits the party that asked for it, and `used_bytes` (the progress line) never
//! waits on a disk.
//!
//! A full file system (ENOSPC, EDQUOT) on any write leaves every file as it was before that
//! write: a partly written fragment or log line is cut off again, so sealed segments, the
//! open segment up to its last complete fragment and the logs stay valid. The error is returned
//! ([`CacheError::is_disk_full`]) for the recorder to decide (evict, drop); a gap that cannot be
//! logged is kept in memory and logged with the next durable write.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File};
use serde::{Deserialize, Serialize};

use crate::sync::LockExt;
use crate::time::Ticks90k;

mod evict;
mod files;
mod live;
mod logs;
mod names;
mod recovery;
mod writer;

use files::Files;
pub use files::{BOOKKEEPING_DIR, FileNamer, plain_file_name};
pub use live::{LiveCaches, LiveFragment, LiveSegment, LiveView};
use logs::{AppendLog, GAPS_LOG, UPLOADED_LOG};
pub use names::sanitize_dir_name;
use recovery::RUNNING;

/// Monotonically increasing per cache, never reused: the recording order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SegmentId(pub u64);

/// One recording session (an uninterrupted RTSP session); unique per cache across restarts.
pub type RunId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    pub id: SegmentId,
    pub run: RunId,
    /// Segment number within its run, from 0.
    pub sequence: u64,
    pub start: Ticks90k,
    pub end: Ticks90k,
    pub bytes: u64,
    /// RFC 6381 codec strings joined with `,`.
    pub codecs: String,
    pub file_name: String,
    pub uploaded: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GapCause {
    CameraOffline,
    EvictedBeforeUpload,
    Crash,
    /// The wall clock stepped. A step back gives a gap whose `end` is before its `start`: the
    /// next media recorded is stamped earlier than the newest media before it.
    ClockJump,
    /// The recorder was stopped cleanly and later started again.
    RecorderStopped,
    /// Evicted before upload to make room on a full cache file system (ENOSPC/EDQUOT).
    EvictedDiskFull,
    /// Frames dropped because the cache file system was full and nothing was left to evict.
    DiskFull,
    /// Uploaded media deleted from the asset store by its retention (age or size). Recorded by
    /// the store, never by the cache.
    Retention,
    /// Frames dropped because this sink could not keep up (its queue was full) while another
    /// sink of the same camera recorded them.
    SinkBehind,
}

impl GapCause {
    pub const ALL: [GapCause; 9] = [
        GapCause::CameraOffline,
        GapCause::EvictedBeforeUpload,
        GapCause::Crash,
        GapCause::ClockJump,
        GapCause::RecorderStopped,
        GapCause::EvictedDiskFull,
        GapCause::DiskFull,
        GapCause::Retention,
        GapCause::SinkBehind,
    ];

    /// The cause's name, as `gaps.log`, gap records and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::CameraOffline => "CameraOffline",
            GapCause::EvictedBeforeUpload => "EvictedBeforeUpload",
            GapCause::Crash => "Crash",
            GapCause::ClockJump => "ClockJump",
            GapCause::RecorderStopped => "RecorderStopped",
            GapCause::EvictedDiskFull => "EvictedDiskFull",
            GapCause::DiskFull => "DiskFull",
            GapCause::Retention => "Retention",
            GapCause::SinkBehind => "SinkBehind",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gap {
    pub start: Ticks90k,
    pub end: Ticks90k,
    pub cause: GapCause,
}

/// What the chooser sees when the cache must make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit_bytes: u64,
    /// Sealed segments, the open segment and the logs.
    pub used_bytes: u64,
    pub incoming_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache I/O: {op} {name:?}: {source}")]
    Io {
        op: &'static str,
        name: String,
        source: std::io::Error,
    },
    #[error("no segment {0:?} in the cache")]
    UnknownSegment(SegmentId),
    #[error("no segment is open")]
    NotOpen,
    #[error("a segment is already open")]
    AlreadyOpen,
    #[error(
        "{incoming} bytes do not fit: budget {limit}, open segment {open} bytes, nothing left to evict"
    )]
    NoRoom {
        incoming: u64,
        limit: u64,
        open: u64,
    },
    #[error("invalid {what} {value:?} for a cache file name")]
    BadName { what: &'static str, value: String },
}

impl CacheError {
    /// The cache's file system (or the user's quota on it) is full: ENOSPC or EDQUOT.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, CacheError::Io { source, .. } if is_disk_full(source))
    }

    /// The cache's disk failed for another reason than room: read-only (EROFS), I/O error
    /// (EIO), permissions (EACCES, EPERM) and the like.
    pub fn is_disk_error(&self) -> bool {
        matches!(self, CacheError::Io { source, .. } if !is_disk_full(source))
    }

    /// The errno name (`ENOSPC`, `EROFS`, `EIO`, `EACCES`, ...), else the I/O error kind;
    /// `None` if not an I/O error.
    pub fn io_code(&self) -> Option<String> {
        let CacheError::Io { source, .. } = self else {
            return None;
        };
        let known = match source.raw_os_error() {
            Some(libc::ENOSPC) => Some("ENOSPC"),
            Some(libc::EDQUOT) => Some("EDQUOT"),
            Some(libc::EROFS) => Some("EROFS"),
            Some(libc::EIO) => Some("EIO"),
            Some(libc::EACCES) => Some("EACCES"),
            Some(libc::EPERM) => Some("EPERM"),
            Some(libc::ENOENT) => Some("ENOENT"),
            Some(libc::EMFILE) => Some("EMFILE"),
            _ => None,
        };
        Some(match (known, source.kind()) {
            (Some(name), _) => name.to_owned(),
            (None, std::io::ErrorKind::StorageFull) => "ENOSPC".to_owned(),
            (None, std::io::ErrorKind::QuotaExceeded) => "EDQUOT".to_owned(),
            (None, kind) => format!("{kind:?}"),
        })
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

fn io(op: &'static str, name: impl Into<String>) -> impl FnOnce(std::io::Error) -> CacheError {
    let name = name.into();
    move |source| CacheError::Io { op, name, source }
}

/// What start-up reconciliation found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The previous process did not shut down cleanly.
    pub crashed: bool,
    /// Segments that were open and got sealed up to their last complete fragment.
    pub sealed_open: Vec<SegmentId>,
    /// Bytes of torn trailing fragments cut off.
    pub truncated_bytes: u64,
    /// Files removed: temp files, empty open segments, orphan journals.
    pub removed: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct JournalHeader {
    run: RunId,
    sequence: u64,
    start: Ticks90k,
    codecs: String,
    ext: String,
    /// File-sink layout: the finished file's name in the output directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// The in-memory index. Its lock is never held across a file-system call.
struct Index {
    sealed: BTreeMap<SegmentId, SegmentMeta>,
    sealed_bytes: u64,
    next_id: u64,
    next_run: RunId,
    /// The segment the uploader opened last and has not marked yet.
    uploading: Option<SegmentId>,
    /// That segment, if it was evicted meanwhile, with the gap its eviction logged: if its
    /// mark comes, the blob exists, so the mark is taken and the gap taken back.
    evicted_uploading: Option<(SegmentId, RunId, Option<Gap>)>,
    /// Victims whose gap is logged but whose file could not be removed yet.
    gap_logged: HashSet<SegmentId>,
}

/// `gaps.log` with every gap in memory (the newest ones, as compaction keeps them).
struct GapLog {
    log: AppendLog,
    gaps: Vec<Gap>,
    /// Gaps not yet in `gaps.log` because the disk was full; written with the next write.
    unlogged: Vec<Gap>,
}

/// Shared as `Arc<Cache>`: the recorder writes, the uploader reads and marks.
pub struct Cache {
    dir: Dir,
    limit: u64,
    index: Mutex<Index>,
    writer: Mutex<writer::Writer>,
    uploaded_log: Mutex<AppendLog>,
    gaps_log: Mutex<GapLog>,
    /// Bytes of the open segment and of segments whose seal failed (the writer's files).
    writer_bytes: AtomicU64,
    /// Bytes of `uploaded.log` and `gaps.log`.
    uploaded_log_bytes: AtomicU64,
    gaps_log_bytes: AtomicU64,
    /// The file-sink layout ([`Cache::open_files`]): finished segments are named files in an
    /// output directory, and `dir` is its bookkeeping subdirectory.
    files: Option<Files>,
    /// The open segment's durable fragments as players see them (see [`live`]); memory only.
    live: Mutex<live::LiveState>,
    live_sender: live::LiveSender,
}

/// Room kept for the journal, so the directory as a whole stays within the budget: 1/64 of
/// the budget, at most 64 KiB.
const BOOKKEEPING_BYTES: u64 = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock_unpoisoned()
}

impl Cache {
    /// Opens (creating if needed) the cache directory at `path`, reconciles it with what is on
    /// disk and marks it as in use.
    pub fn open(path: &Path, limit_bytes: u64) -> Result<(Cache, Recovery), CacheError> {
        let shown = path.display().to_string();
        Dir::create_ambient_dir_all(path, ambient_authority())
            .map_err(io("create directory", &shown))?;
        let dir = Dir::open_ambient_dir(path, ambient_authority())
            .map_err(io("open directory", &shown))?;
        Self::open_dir(dir, limit_bytes)
    }

    /// Like [`Cache::open`] on an already opened directory.
    pub fn open_dir(dir: Dir, limit_bytes: u64) -> Result<(Cache, Recovery), CacheError> {
        let (sealed, recovery) = recovery::reconcile(&dir, &mut |open_name, meta| {
            dir.rename(open_name, &dir, &meta.file_name)
                .map_err(io("rename", open_name))
        })?;
        Self::open_with(dir, limit_bytes, sealed, recovery, None)
    }

    /// A file sink's output directory `media` in the file-sink layout (see [`files`]): each
    /// segment is a finished file named `namer(start)` (plus the formatter's extension, and
    /// `-N` if the name is taken), the oldest are evicted to stay within `limit_bytes`, and
    /// what was being written when the process died is cut at its last complete fragment
    /// and finished at the next open.
    pub fn open_files(
        media: Dir,
        limit_bytes: u64,
        namer: FileNamer,
    ) -> Result<(Cache, Recovery), CacheError> {
        media
            .create_dir_all(BOOKKEEPING_DIR)
            .map_err(io("create directory", BOOKKEEPING_DIR))?;
        let dir = media
            .open_dir(BOOKKEEPING_DIR)
            .map_err(io("open directory", BOOKKEEPING_DIR))?;
        let (files, mut sealed) = Files::open(media, &dir, namer)?;
        let (recovered, recovery) = recovery::reconcile(&dir, &mut |open_name, meta| {
            files.place(&dir, open_name, meta)
        })?;
        for mut meta in recovered.into_values() {
            meta.uploaded = true;
            sealed.insert(meta.id, meta);
        }
        let live: Vec<SegmentMeta> = sealed.values().cloned().collect();
        files.compact(&dir, &live, true);
        Self::open_with(dir, limit_bytes, sealed, recovery, Some(files))
    }

    fn open_with(
        dir: Dir,
        limit_bytes: u64,
        mut sealed: BTreeMap<SegmentId, SegmentMeta>,
        recovery: Recovery,
        files: Option<Files>,
    ) -> Result<(Cache, Recovery), CacheError> {
        let uploaded = logs::read_uploaded(&dir)?;
        for id in &uploaded.ids {
            if let Some(m) = sealed.get_mut(id) {
                m.uploaded = true;
            }
        }
        let next_id = sealed
            .keys()
            .next_back()
            .map_or(1, |k| k.0 + 1)
            .max(uploaded.next_id);
        let next_run = sealed
            .values()
            .map(|m| m.run + 1)
            .max()
            .unwrap_or(1)
            .max(uploaded.next_run);
        let mut uploaded_log = AppendLog::open(&dir, UPLOADED_LOG)?;
        // Keep only live ids (and the high-water mark) so the log does not grow forever.
        let live = logs::uploaded_compacted(
            next_id,
            next_run,
            sealed
                .values()
                .filter(|m| m.uploaded)
                .map(|m| (m.id, m.run)),
        );
        if let Err(e) = uploaded_log.replace(&dir, &live) {
            // Compaction is an optimisation: on a full disk start with the log as it is (ids
            // still continue above everything it names).
            if !e.is_disk_full() {
                return Err(e);
            }
            tracing::warn!(error = %e, "uploaded.log not compacted: the disk is full");
        }
        let gaps = logs::read_gaps(&dir)?;
        let gaps_log = AppendLog::open(&dir, GAPS_LOG)?;
        dir.write(RUNNING, b"").map_err(io("create", RUNNING))?;
        logs::sync_dir(&dir)?;

        let sealed_bytes = sealed.values().map(|m| m.bytes).sum();
        let cache = Cache {
            dir,
            limit: limit_bytes,
            index: Mutex::new(Index {
                sealed,
                sealed_bytes,
                next_id,
                next_run,
                uploading: None,
                evicted_uploading: None,
                gap_logged: HashSet::new(),
            }),
            writer: Mutex::new(writer::Writer::default()),
            uploaded_log_bytes: AtomicU64::new(uploaded_log.len),
            gaps_log_bytes: AtomicU64::new(gaps_log.len),
            uploaded_log: Mutex::new(uploaded_log),
            gaps_log: Mutex::new(GapLog {
                log: gaps_log,
                gaps,
                unlogged: Vec::new(),
            }),
            writer_bytes: AtomicU64::new(0),
            files,
            live: Mutex::default(),
            live_sender: tokio::sync::watch::channel(Default::default()).0,
        };
        cache.publish_live();
        Ok((cache, recovery))
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit
    }

    /// The device (file system) the cache directory is on.
    pub fn device(&self) -> Result<u64, CacheError> {
        use cap_std::fs::MetadataExt;
        Ok(self.dir.dir_metadata().map_err(io("stat", "."))?.dev())
    }

    /// The part of the budget segment files and logs may use (the rest is for the journal).
    fn media_limit(&self) -> u64 {
        self.limit - (self.limit / 64).min(BOOKKEEPING_BYTES)
    }

    /// Bytes held now: sealed segments, the open segment and the two logs. Never waits on a
    /// disk.
    pub fn used_bytes(&self) -> u64 {
        lock(&self.index).sealed_bytes
            + self.writer_bytes.load(Ordering::Acquire)
            + self.uploaded_log_bytes.load(Ordering::Acquire)
            + self.gaps_log_bytes.load(Ordering::Acquire)
            + self
                .files
                .as_ref()
                .map_or(0, |f| f.log_bytes.load(Ordering::Acquire))
    }

    /// Where sealed segments are: the cache directory, or a file sink's output directory.
    fn media(&self) -> &Dir {
        self.files.as_ref().map_or(&self.dir, |f| &f.media)
    }

    /// Every sealed segment, oldest (lowest id) first.
    pub fn sealed(&self) -> Vec<SegmentMeta> {
        lock(&self.index).sealed.values().cloned().collect()
    }

    /// Sealed, not yet uploaded, oldest first.
    pub fn sealed_pending(&self) -> Vec<SegmentMeta> {
        lock(&self.index)
            .sealed
            .values()
            .filter(|m| !m.uploaded)
            .cloned()
            .collect()
    }

    /// Opens a sealed segment to upload it.
    pub fn open_sealed(&self, id: SegmentId) -> Result<File, CacheError> {
        let name = {
            let mut index = lock(&self.index);
            let name = index
                .sealed
                .get(&id)
                .ok_or(CacheError::UnknownSegment(id))?
                .file_name
                .clone();
            index.uploading = Some(id);
            name
        };
        self.media().open(&name).map_err(io("open", name))
    }

    /// Durable: the mark is fsynced before this returns. An error means the mark is not
    /// durable; it is kept in memory all the same (the blob is stored, so the segment is not
    /// uploaded again by this process). A segment evicted while it was being uploaded is
    /// marked too (its blob exists), is no error, and the gap its eviction logged is taken
    /// back.
    pub fn mark_uploaded(&self, id: SegmentId) -> Result<(), CacheError> {
        let mut log = lock(&self.uploaded_log);
        let mut false_gap = None;
        let run = {
            let mut guard = lock(&self.index);
            let index = &mut *guard;
            if index.uploading == Some(id) {
                index.uploading = None;
            }
            match index.sealed.get_mut(&id) {
                Some(meta) if meta.uploaded => return Ok(()),
                Some(meta) => {
                    meta.uploaded = true;
                    meta.run
                }
                None => match index.evicted_uploading.take() {
                    Some((evicted, run, gap)) if evicted == id => {
                        tracing::info!(
                            segment = id.0,
                            "segment evicted while it was uploaded; its blob is stored"
                        );
                        false_gap = gap;
                        run
                    }
                    other => {
                        index.evicted_uploading = other;
                        return Err(CacheError::UnknownSegment(id));
                    }
                },
            }
        };
        let result = log.append(&logs::uploaded_line(id, run));
        self.uploaded_log_bytes.store(log.len, Ordering::Release);
        result?;
        self.compact_uploaded_log(&mut log);
        drop(log);
        if let Some(gap) = false_gap {
            self.retract_gap(gap);
        }
        self.publish_live();
        Ok(())
    }

    /// Takes back a gap logged for media that was stored after all: `gaps.log` is rewritten
    /// without it (atomically; on failure the gap stays, which only overstates a loss).
    fn retract_gap(&self, gap: Gap) {
        let mut g = lock(&self.gaps_log);
        let Some(at) = g.gaps.iter().rposition(|x| *x == gap) else {
            return;
        };
        g.gaps.remove(at);
        if let Some(at) = g.unlogged.iter().rposition(|x| *x == gap) {
            g.unlogged.remove(at);
            return;
        }
        let logged = g.gaps.len() - g.unlogged.len();
        let content: String = g.gaps[..logged].iter().map(logs::gap_line).collect();
        if let Err(e) = g.log.replace(&self.dir, &content) {
            tracing::warn!(error = %e, ?gap, "gaps.log keeps a gap for media that was uploaded");
        }
        self.gaps_log_bytes.store(g.log.len, Ordering::Release);
    }

    /// Rewrites `uploaded.log` once most of its lines name segments that are gone.
    fn compact_uploaded_log(&self, log: &mut AppendLog) {
        let (content, live) = {
            let index = lock(&self.index);
            let live: Vec<(SegmentId, RunId)> = index
                .sealed
                .values()
                .filter(|m| m.uploaded)
                .map(|m| (m.id, m.run))
                .collect();
            if log.lines <= 2 * live.len() as u64 + 64 {
                return;
            }
            let n = live.len();
            (
                logs::uploaded_compacted(index.next_id, index.next_run, live.into_iter()),
                n,
            )
        };
        match log.replace(&self.dir, &content) {
            Ok(()) => tracing::debug!(live, "uploaded.log compacted"),
            Err(e) => tracing::warn!(error = %e, "uploaded.log not compacted"),
        }
        self.uploaded_log_bytes.store(log.len, Ordering::Release);
    }

    /// The gaps recorded (the newest ones, as `gaps.log` keeps them).
    pub fn gaps(&self) -> Vec<Gap> {
        lock(&self.gaps_log).gaps.clone()
    }

    /// Durably records a gap; on a full disk it is kept in memory (`gaps()` has it) until the
    /// next durable write logs it.
    pub fn record_gap(&self, gap: Gap) -> Result<(), CacheError> {
        let mut g = lock(&self.gaps_log);
        g.gaps.push(gap);
        g.unlogged.push(gap);
        self.log_unlogged_gaps(&mut g)
    }

    /// Writes the gaps kept in memory; a full disk is not an error (they stay for the next
    /// try). Compacts the log once it outgrows its share of the budget.
    fn log_unlogged_gaps(&self, g: &mut GapLog) -> Result<(), CacheError> {
        let mut result = Ok(());
        while let Some(gap) = g.unlogged.first().copied() {
            match g.log.append(&logs::gap_line(&gap)) {
                Ok(()) => {
                    g.unlogged.remove(0);
                }
                Err(e) if e.is_disk_full() => {
                    tracing::warn!(error = %e, ?gap, "gap kept in memory until the disk has room");
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let allowance = self.gaps_log_allowance();
        if g.unlogged.is_empty() && g.log.len > allowance {
            let (first, content) = logs::newest_gaps(&g.gaps, allowance / 2);
            match g.log.replace(&self.dir, &content) {
                Ok(()) => {
                    g.gaps.drain(..first);
                    tracing::debug!(kept = g.gaps.len(), "gaps.log compacted");
                }
                Err(e) => tracing::warn!(error = %e, "gaps.log not compacted"),
            }
        }
        self.gaps_log_bytes.store(g.log.len, Ordering::Release);
        result
    }

    /// `gaps.log` keeps the newest gaps within 1/128 of the budget (at least 8 KiB).
    fn gaps_log_allowance(&self) -> u64 {
        (self.limit / 128).max(8 * 1024)
    }

    /// Logs gaps kept in memory after a full disk, now that a write went through.
    fn retry_unlogged_gaps(&self) {
        let mut g = lock(&self.gaps_log);
        if g.unlogged.is_empty() {
            return;
        }
        if let Err(e) = self.log_unlogged_gaps(&mut g) {
            tracing::warn!(error = %e, "gaps.log not written; the gaps are kept in memory");
        }
    }

    /// A fresh run id, never used before in this cache.
    pub fn new_run(&self) -> RunId {
        let mut index = lock(&self.index);
        let r = index.next_run;
        index.next_run += 1;
        r
    }

    /// Clean shutdown: the next start-up will not report a crash. Seals first.
    pub fn close(&self) -> Result<(), CacheError> {
        self.seal_for_close()?;
        self.dir
            .remove_file(RUNNING)
            .map_err(io("remove", RUNNING))?;
        logs::sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests;
