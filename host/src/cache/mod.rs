//! The local media cache of one asset sink: crash-safe segment files under a size budget.
//!
//! Owns the cache directory (`localMediaCachePath/<sink dir>`, opened once as a cap-std `Dir`
//! so no name can escape it), the segment files and their index, the durable "uploaded" marks
//! and the gap log. It must not know container formats (bytes come from the recorder) nor
//! choose eviction victims (a chooser passed in decides; the cache verifies and deletes).
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
//! - `running`: present while a recorder owns the cache; found at start-up it means a crash.
//! - `*.tmp`: never valid; removed at start-up.
//!
//! A full file system (ENOSPC, EDQUOT) on any write leaves every file as it was before that
//! write: a partly written fragment or log line is cut off again, so sealed segments, the
//! open segment up to its last complete fragment and the logs stay valid. The error is returned
//! ([`CacheError::is_disk_full`]) for the recorder to decide (evict, drop); a gap that cannot be
//! logged is kept in memory and logged with the next durable write.

use std::collections::BTreeMap;
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, OpenOptions};
use serde::{Deserialize, Serialize};

use crate::sync::LockExt;
use crate::time::Ticks90k;

/// Monotonically increasing per cache.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GapCause {
    CameraOffline,
    EvictedBeforeUpload,
    Crash,
    ClockJump,
    /// The recorder was stopped cleanly and later started again.
    RecorderStopped,
    /// Evicted before upload to make room on a full cache file system (ENOSPC/EDQUOT).
    EvictedDiskFull,
    /// Frames dropped because the cache file system was full and nothing was left to evict.
    DiskFull,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub start: Ticks90k,
    pub end: Ticks90k,
    pub cause: GapCause,
}

/// What the chooser sees when the cache must make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit_bytes: u64,
    /// Sealed segments plus the open segment.
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

    /// `ENOSPC`/`EDQUOT` for a full disk, else the I/O error kind; `None` if not an I/O error.
    pub fn io_code(&self) -> Option<String> {
        match self {
            CacheError::Io { source, .. } => Some(match source.kind() {
                std::io::ErrorKind::StorageFull => "ENOSPC".to_owned(),
                std::io::ErrorKind::QuotaExceeded => "EDQUOT".to_owned(),
                kind => format!("{kind:?}"),
            }),
            _ => None,
        }
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
}

struct OpenSeg {
    id: SegmentId,
    header: JournalHeader,
    file: File,
    journal: File,
    /// Length of the journal file: a failed append is cut back to it.
    journal_len: u64,
    bytes: u64,
    end: Ticks90k,
    fragments: u64,
}

struct State {
    sealed: BTreeMap<SegmentId, SegmentMeta>,
    open: Option<OpenSeg>,
    next_id: u64,
    next_run: RunId,
    gaps: Vec<Gap>,
    /// Gaps not yet in `gaps.log` because the disk was full; written with the next write.
    unlogged_gaps: Vec<Gap>,
    /// Segments whose seal failed before the rename (e.g. a full disk): complete up to their
    /// last fragment, counted in `used`, sealed again by the next `begin_segment`/`seal`.
    unsealed: Vec<Unsealed>,
    uploaded_log: AppendLog,
    gaps_log: AppendLog,
}

/// An fsynced append-only log whose appends are all or nothing: a failed append (a full disk)
/// is cut back, so no torn line can glue itself to the next one.
struct AppendLog {
    name: &'static str,
    file: File,
    len: u64,
}

impl AppendLog {
    fn open(dir: &Dir, name: &'static str) -> Result<Self, CacheError> {
        let file = dir
            .open_with(name, OpenOptions::new().append(true).create(true))
            .map_err(io("open", name))?;
        let len = file.metadata().map_err(io("stat", name))?.len();
        Ok(Self { name, file, len })
    }

    fn append(&mut self, line: &str) -> Result<(), CacheError> {
        let result = self
            .file
            .write_all(line.as_bytes())
            .map_err(io("append", self.name))
            .and_then(|()| self.file.sync_data().map_err(io("fsync", self.name)));
        match result {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.len) {
                    tracing::error!(log = self.name, error = %cut, "cannot cut back a failed append");
                }
                Err(e)
            }
        }
    }
}

/// A closed `.open` file waiting to be sealed.
struct Unsealed {
    id: SegmentId,
    header: JournalHeader,
    end: Ticks90k,
    bytes: u64,
}

impl State {
    fn used(&self) -> u64 {
        self.sealed.values().map(|m| m.bytes).sum::<u64>()
            + self.open.as_ref().map_or(0, |o| o.bytes)
            + self.unsealed.iter().map(|u| u.bytes).sum::<u64>()
    }
}

/// Shared as `Arc<Cache>`: the recorder writes, the uploader reads and marks.
pub struct Cache {
    dir: Dir,
    limit: u64,
    state: Mutex<State>,
}

/// Room kept for the journal and the logs, so the directory as a whole stays within the budget:
/// 1/64 of the budget, at most 64 KiB.
const BOOKKEEPING_BYTES: u64 = 64 * 1024;

const UPLOADED_LOG: &str = "uploaded.log";
const GAPS_LOG: &str = "gaps.log";
const RUNNING: &str = "running";

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
        let mut recovery = Recovery {
            crashed: dir.exists(RUNNING),
            ..Recovery::default()
        };
        let mut sealed = BTreeMap::new();
        let mut opens = Vec::new();
        let mut journals = Vec::new();
        for entry in dir.entries().map_err(io("list", "."))? {
            let entry = entry.map_err(io("list", "."))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                dir.remove_file(&name).map_err(io("remove", &name))?;
                recovery.removed.push(name);
            } else if let Some(id) = name.strip_suffix(".open") {
                opens.push((id.to_owned(), name));
            } else if let Some(id) = name.strip_suffix(".journal") {
                journals.push((id.to_owned(), name));
            } else if let Some(mut meta) = parse_sealed(&name) {
                meta.bytes = entry.metadata().map_err(io("stat", &name))?.len();
                sealed.insert(meta.id, meta);
            }
        }
        for (id, name) in &journals {
            if !opens.iter().any(|(o, _)| o == id) {
                // The segment was sealed (renamed) but the crash came before the journal went.
                dir.remove_file(name).map_err(io("remove", name))?;
                recovery.removed.push(name.clone());
            }
        }
        for (id, name) in opens {
            let journal_name = format!("{id}.journal");
            match recover_open(&dir, &name, &journal_name)? {
                Some((meta, cut)) => {
                    recovery.truncated_bytes += cut;
                    recovery.sealed_open.push(meta.id);
                    sealed.insert(meta.id, meta);
                }
                None => recovery.removed.push(name),
            }
        }
        if !recovery.sealed_open.is_empty() {
            recovery.crashed = true;
        }

        let uploaded_ids = read_uploaded(&dir)?;
        for id in uploaded_ids {
            if let Some(m) = sealed.get_mut(&id) {
                m.uploaded = true;
            }
        }
        // Rewrite the uploaded log with only live ids so it does not grow forever.
        let live: String = sealed
            .values()
            .filter(|m| m.uploaded)
            .map(|m| format!("{}\n", m.id.0))
            .collect();
        if let Err(e) = write_atomically(&dir, UPLOADED_LOG, live.as_bytes()) {
            // Compaction is an optimisation: on a full disk start with the log as it is.
            if !e.is_disk_full() {
                return Err(e);
            }
            tracing::warn!(error = %e, "uploaded.log not compacted: the disk is full");
            let _ = dir.remove_file(format!("{UPLOADED_LOG}.tmp"));
        }
        let gaps = read_gaps(&dir)?;

        let uploaded_log = AppendLog::open(&dir, UPLOADED_LOG)?;
        let gaps_log = AppendLog::open(&dir, GAPS_LOG)?;
        dir.write(RUNNING, b"").map_err(io("create", RUNNING))?;
        sync_dir(&dir)?;

        let next_id = sealed.keys().next_back().map_or(1, |k| k.0 + 1);
        let next_run = sealed.values().map(|m| m.run + 1).max().unwrap_or(1);
        let state = State {
            sealed,
            open: None,
            next_id,
            next_run,
            gaps,
            unlogged_gaps: Vec::new(),
            unsealed: Vec::new(),
            uploaded_log,
            gaps_log,
        };
        Ok((
            Cache {
                dir,
                limit: limit_bytes,
                state: Mutex::new(state),
            },
            recovery,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock_unpoisoned()
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit
    }

    /// The part of the budget segment files may use.
    fn media_limit(&self) -> u64 {
        self.limit - (self.limit / 64).min(BOOKKEEPING_BYTES)
    }

    /// Bytes held now, the open segment included.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used()
    }

    /// Every sealed segment, oldest first.
    pub fn sealed(&self) -> Vec<SegmentMeta> {
        self.lock().sealed.values().cloned().collect()
    }

    /// Sealed, not yet uploaded, oldest first.
    pub fn sealed_pending(&self) -> Vec<SegmentMeta> {
        self.lock()
            .sealed
            .values()
            .filter(|m| !m.uploaded)
            .cloned()
            .collect()
    }

    pub fn open_sealed(&self, id: SegmentId) -> Result<File, CacheError> {
        let name = self
            .lock()
            .sealed
            .get(&id)
            .ok_or(CacheError::UnknownSegment(id))?
            .file_name
            .clone();
        self.dir.open(&name).map_err(io("open", name))
    }

    /// Durable: the mark is fsynced before this returns.
    pub fn mark_uploaded(&self, id: SegmentId) -> Result<(), CacheError> {
        let mut st = self.lock();
        let meta = st
            .sealed
            .get_mut(&id)
            .ok_or(CacheError::UnknownSegment(id))?;
        if meta.uploaded {
            return Ok(());
        }
        st.uploaded_log.append(&format!("{}\n", id.0))?;
        if let Some(meta) = st.sealed.get_mut(&id) {
            meta.uploaded = true;
        }
        Ok(())
    }

    pub fn gaps(&self) -> Vec<Gap> {
        self.lock().gaps.clone()
    }

    /// Durably records a gap.
    pub fn record_gap(&self, gap: Gap) -> Result<(), CacheError> {
        let mut st = self.lock();
        record_gap_locked(&mut st, gap)
    }

    /// End of the newest recorded media, if any.
    pub fn last_end(&self) -> Option<Ticks90k> {
        let st = self.lock();
        st.open
            .as_ref()
            .map(|o| o.end)
            .or_else(|| st.sealed.values().map(|m| m.end).max())
    }

    /// A fresh run id, never used before in this cache.
    pub fn new_run(&self) -> RunId {
        let mut st = self.lock();
        let r = st.next_run;
        st.next_run += 1;
        r
    }

    /// Starts a segment; `header` is its first bytes (the formatter's init), written as part of
    /// the first fragment's accounting.
    pub fn begin_segment(
        &self,
        run: RunId,
        sequence: u64,
        start: Ticks90k,
        codecs: &str,
        ext: &str,
    ) -> Result<SegmentId, CacheError> {
        check_name_part("codecs", codecs, |c| {
            c.is_ascii_alphanumeric() || ".,+-".contains(c)
        })?;
        check_name_part("extension", ext, |c| c.is_ascii_alphanumeric())?;
        let mut st = self.lock();
        if st.open.is_some() {
            return Err(CacheError::AlreadyOpen);
        }
        self.retry_unsealed(&mut st);
        let id = SegmentId(st.next_id);
        st.next_id += 1;
        st.next_run = st.next_run.max(run + 1);
        let name = format!("{:012}.open", id.0);
        let jname = format!("{:012}.journal", id.0);
        let header = JournalHeader {
            run,
            sequence,
            start,
            codecs: codecs.to_owned(),
            ext: ext.to_owned(),
        };
        let file = self
            .dir
            .open_with(&name, OpenOptions::new().write(true).create_new(true))
            .map_err(io("create", &name))?;
        let mut line = serde_json::to_string(&header).expect("header serializes");
        line.push('\n');
        // The header and both directory entries are durable before the first fragment is:
        // recovery removes an `.open` whose journal has no header, and after a power cut a
        // file whose directory entry was never synced is gone whatever its data.
        let journal = self
            .dir
            .open_with(&jname, OpenOptions::new().append(true).create_new(true))
            .map_err(io("create", &jname))
            .and_then(|mut j| {
                j.write_all(line.as_bytes())
                    .map_err(io("write", &jname))
                    .and_then(|()| j.sync_data().map_err(io("fsync", &jname)))
                    .and_then(|()| sync_dir(&self.dir))
                    .map(|()| j)
            });
        let journal = match journal {
            Ok(j) => j,
            Err(e) => {
                // No segment without its header: remove both (a full disk, usually).
                drop(file);
                let _ = self.dir.remove_file(&name);
                let _ = self.dir.remove_file(&jname);
                return Err(e);
            }
        };
        st.open = Some(OpenSeg {
            id,
            header,
            file,
            journal,
            journal_len: line.len() as u64,
            bytes: 0,
            end: start,
            fragments: 0,
        });
        Ok(id)
    }

    /// Makes room for `incoming` bytes: while over budget, asks `choose` for victims among the
    /// sealed segments, verifies and deletes them (falling back to oldest first when the
    /// answer is unusable), and records evicted ranges that were never uploaded as gaps.
    pub fn reserve(
        &self,
        incoming: u64,
        choose: &mut dyn FnMut(&[SegmentMeta], Budget) -> Vec<SegmentId>,
    ) -> Result<Vec<SegmentMeta>, CacheError> {
        let mut st = self.lock();
        let mut evicted = Vec::new();
        loop {
            let used = st.used();
            if used + incoming <= self.media_limit() {
                return Ok(evicted);
            }
            if st.sealed.is_empty() {
                let open = st.open.as_ref().map_or(0, |o| o.bytes);
                return Err(CacheError::NoRoom {
                    incoming,
                    limit: self.media_limit(),
                    open,
                });
            }
            let budget = Budget {
                limit_bytes: self.media_limit(),
                used_bytes: used,
                incoming_bytes: incoming,
            };
            self.evict_round(
                &mut st,
                budget,
                choose,
                GapCause::EvictedBeforeUpload,
                &mut evicted,
            )?;
        }
    }

    /// After a write failed on a full file system: the file system, not the budget, is the
    /// limit now. Asks `choose` to free `incoming` bytes from what the cache holds (as if the
    /// limit were the bytes used now), deletes the victims and records the evicted spans that
    /// were never uploaded as `EvictedDiskFull` gaps. `NoRoom` when nothing sealed is left.
    pub fn evict_for_full_disk(
        &self,
        incoming: u64,
        choose: &mut dyn FnMut(&[SegmentMeta], Budget) -> Vec<SegmentId>,
    ) -> Result<Vec<SegmentMeta>, CacheError> {
        let mut st = self.lock();
        let used = st.used();
        if st.sealed.is_empty() {
            return Err(CacheError::NoRoom {
                incoming,
                limit: used,
                open: st.open.as_ref().map_or(0, |o| o.bytes),
            });
        }
        let budget = Budget {
            limit_bytes: used,
            used_bytes: used,
            incoming_bytes: incoming,
        };
        let mut evicted = Vec::new();
        self.evict_round(
            &mut st,
            budget,
            choose,
            GapCause::EvictedDiskFull,
            &mut evicted,
        )?;
        Ok(evicted)
    }

    /// One answer of the chooser, verified (known ids, not empty; else the oldest segment),
    /// deleted, and logged as gaps with `cause` where never uploaded. `st.sealed` is not empty.
    fn evict_round(
        &self,
        st: &mut State,
        budget: Budget,
        choose: &mut dyn FnMut(&[SegmentMeta], Budget) -> Vec<SegmentId>,
        cause: GapCause,
        evicted: &mut Vec<SegmentMeta>,
    ) -> Result<(), CacheError> {
        let entries: Vec<SegmentMeta> = st.sealed.values().cloned().collect();
        let mut victims: Vec<SegmentId> = choose(&entries, budget);
        victims.sort();
        victims.dedup();
        let valid = !victims.is_empty() && victims.iter().all(|v| st.sealed.contains_key(v));
        if !valid {
            tracing::warn!(
                ?victims,
                "evictor answer unusable; evicting the oldest segment"
            );
            victims = vec![*st.sealed.keys().next().expect("not empty")];
        }
        for v in victims {
            let meta = st.sealed.remove(&v).expect("verified above");
            self.dir
                .remove_file(&meta.file_name)
                .map_err(io("remove", &meta.file_name))?;
            if !meta.uploaded {
                record_gap_locked(
                    st,
                    Gap {
                        start: meta.start,
                        end: meta.end,
                        cause,
                    },
                )?;
            }
            evicted.push(meta);
        }
        sync_dir(&self.dir)
    }

    /// Appends one fragment (the concatenation of `parts`) that ends at `end`, durably.
    /// Call [`Cache::reserve`] for its size first.
    pub fn append_fragment(&self, parts: &[&[u8]], end: Ticks90k) -> Result<(), CacheError> {
        let mut st = self.lock();
        let open = st.open.as_mut().ok_or(CacheError::NotOpen)?;
        let name = format!("{:012}.open", open.id.0);
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let line = format!("{} {}\n", open.bytes + len, end.0);
        let written = write_all_vectored(&mut open.file, parts)
            .map_err(io("write", &name))
            // Data before journal: a journal line may only describe bytes already on disk.
            .and_then(|()| open.file.sync_data().map_err(io("fsync", &name)))
            .and_then(|()| {
                let jname = format!("{:012}.journal", open.id.0);
                // Journal before acknowledging: once this returns, the fragment survives a
                // power cut, not only a crash of the process.
                open.journal
                    .write_all(line.as_bytes())
                    .map_err(io("append", &jname))
                    .and_then(|()| open.journal.sync_data().map_err(io("fsync", &jname)))
            });
        if let Err(e) = written {
            // All or nothing: cut the file and the journal back to the last whole fragment
            // (a full disk writes part of a fragment, or of a journal line).
            let cut = open
                .file
                .set_len(open.bytes)
                .and_then(|()| open.file.seek(SeekFrom::Start(open.bytes)).map(drop))
                .and_then(|()| open.journal.set_len(open.journal_len));
            if let Err(cut) = cut {
                tracing::error!(segment = %name, error = %cut, "cannot cut back a failed fragment; it is cut at sealing");
            }
            return Err(e);
        }
        open.bytes += len;
        open.journal_len += line.len() as u64;
        open.end = end;
        open.fragments += 1;
        log_unlogged_gaps(&mut st);
        Ok(())
    }

    /// Bytes and fragments of the open segment.
    pub fn open_progress(&self) -> Option<(u64, u64)> {
        self.lock().open.as_ref().map(|o| (o.bytes, o.fragments))
    }

    /// Seals the open segment: fsync, atomic rename to its final name, fsync of the directory.
    /// An open segment without any fragment is removed instead.
    pub fn seal(&self) -> Result<Option<SegmentMeta>, CacheError> {
        let mut st = self.lock();
        self.retry_unsealed(&mut st);
        let OpenSeg {
            id,
            header,
            file,
            journal,
            bytes,
            end,
            fragments,
            ..
        } = st.open.take().ok_or(CacheError::NotOpen)?;
        drop(journal);
        if fragments == 0 {
            let name = format!("{:012}.open", id.0);
            let jname = format!("{:012}.journal", id.0);
            drop(file);
            self.dir.remove_file(&name).map_err(io("remove", &name))?;
            self.dir.remove_file(&jname).map_err(io("remove", &jname))?;
            return Ok(None);
        }
        let segment = Unsealed {
            id,
            header,
            end,
            bytes,
        };
        match self.finish_seal(Some(file), &segment) {
            Ok(meta) => {
                st.sealed.insert(meta.id, meta.clone());
                Ok(Some(meta))
            }
            Err(e) => {
                tracing::warn!(segment = id.0, error = %e, "seal failed; retried with the next segment");
                st.unsealed.push(segment);
                Err(e)
            }
        }
    }

    /// Truncate to the journaled length, fsync, rename into place; then the directory fsync
    /// and the journal's removal, whose failure start-up reconciliation repairs.
    fn finish_seal(&self, file: Option<File>, u: &Unsealed) -> Result<SegmentMeta, CacheError> {
        let name = format!("{:012}.open", u.id.0);
        let file = match file {
            Some(f) => f,
            None => self
                .dir
                .open_with(&name, OpenOptions::new().write(true))
                .map_err(io("open", &name))?,
        };
        // A fragment whose failed write could not be cut back is cut here.
        file.set_len(u.bytes).map_err(io("truncate", &name))?;
        file.sync_all().map_err(io("fsync", &name))?;
        drop(file);
        let meta = sealed_meta(u.id, &u.header, u.end, u.bytes);
        self.dir
            .rename(&name, &self.dir, &meta.file_name)
            .map_err(io("rename", &name))?;
        let jname = format!("{:012}.journal", u.id.0);
        let rest = sync_dir(&self.dir)
            .and_then(|()| self.dir.remove_file(&jname).map_err(io("remove", &jname)));
        if let Err(e) = rest {
            tracing::warn!(segment = %meta.file_name, error = %e, "sealed, but the directory fsync or the journal removal failed; start-up reconciles it");
        }
        Ok(meta)
    }

    fn retry_unsealed(&self, st: &mut State) {
        for u in std::mem::take(&mut st.unsealed) {
            match self.finish_seal(None, &u) {
                Ok(meta) => {
                    tracing::info!(segment = %meta.file_name, "sealed after an earlier failure");
                    st.sealed.insert(meta.id, meta);
                }
                Err(_) => st.unsealed.push(u),
            }
        }
    }

    /// Clean shutdown: the next start-up will not report a crash. Seal first.
    pub fn close(&self) -> Result<(), CacheError> {
        if self.lock().open.is_some() {
            self.seal()?;
        } else {
            let mut st = self.lock();
            self.retry_unsealed(&mut st);
        }
        self.dir
            .remove_file(RUNNING)
            .map_err(io("remove", RUNNING))?;
        sync_dir(&self.dir)
    }
}

/// Logs the gap durably; on a full disk keeps it in memory (`gaps()` has it) until the next
/// durable write logs it.
fn record_gap_locked(st: &mut State, gap: Gap) -> Result<(), CacheError> {
    st.gaps.push(gap);
    st.unlogged_gaps.push(gap);
    log_unlogged_gaps_or(st)
}

fn log_unlogged_gaps(st: &mut State) {
    if let Err(e) = log_unlogged_gaps_or(st) {
        tracing::warn!(error = %e, "gaps.log not written; the gaps are kept in memory");
    }
}

/// Writes the gaps kept in memory; a full disk is not an error (they stay for the next try).
fn log_unlogged_gaps_or(st: &mut State) -> Result<(), CacheError> {
    while let Some(gap) = st.unlogged_gaps.first().copied() {
        let mut line = serde_json::to_string(&gap).expect("gap serializes");
        line.push('\n');
        match st.gaps_log.append(&line) {
            Ok(()) => {
                st.unlogged_gaps.remove(0);
            }
            Err(e) if e.is_disk_full() => {
                tracing::warn!(error = %e, ?gap, "gap kept in memory until the disk has room");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn check_name_part(
    what: &'static str,
    value: &str,
    ok: impl Fn(char) -> bool,
) -> Result<(), CacheError> {
    if value.is_empty() || value.len() > 200 || !value.chars().all(ok) {
        return Err(CacheError::BadName {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn sealed_meta(id: SegmentId, h: &JournalHeader, end: Ticks90k, bytes: u64) -> SegmentMeta {
    let file_name = format!(
        "{:012}_{}_{}_{}_{}_{}.{}",
        id.0,
        h.run,
        h.sequence,
        h.start.0,
        end.0,
        h.codecs.replace(',', "+"),
        h.ext
    );
    SegmentMeta {
        id,
        run: h.run,
        sequence: h.sequence,
        start: h.start,
        end,
        bytes,
        codecs: h.codecs.clone(),
        file_name,
        uploaded: false,
    }
}

fn parse_sealed(name: &str) -> Option<SegmentMeta> {
    let parts: Vec<&str> = name.splitn(6, '_').collect();
    let [id, run, seq, start, end, rest] = parts.as_slice() else {
        return None;
    };
    let (codecs, _ext) = rest.rsplit_once('.')?;
    Some(SegmentMeta {
        id: SegmentId(id.parse().ok()?),
        run: run.parse().ok()?,
        sequence: seq.parse().ok()?,
        start: Ticks90k(start.parse().ok()?),
        end: Ticks90k(end.parse().ok()?),
        bytes: 0,
        codecs: codecs.replace('+', ","),
        file_name: name.to_owned(),
        uploaded: false,
    })
}

/// Seals a segment left open by a crash up to its last journaled fragment whose bytes are
/// on disk; removes it if it has none. Returns the sealed meta and the bytes cut off.
fn recover_open(
    dir: &Dir,
    name: &str,
    journal_name: &str,
) -> Result<Option<(SegmentMeta, u64)>, CacheError> {
    let id: u64 = name
        .trim_end_matches(".open")
        .parse()
        .map_err(|_| CacheError::BadName {
            what: "open segment",
            value: name.to_owned(),
        })?;
    let mut text = String::new();
    if let Ok(mut j) = dir.open(journal_name) {
        j.read_to_string(&mut text)
            .map_err(io("read", journal_name))?;
    }
    let file = dir
        .open_with(name, OpenOptions::new().read(true).write(true))
        .map_err(io("open", name))?;
    let len = file.metadata().map_err(io("stat", name))?.len();
    let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    let header: Option<JournalHeader> = lines.next().and_then(|l| serde_json::from_str(l).ok());
    let mut last: Option<(u64, Ticks90k)> = None;
    if header.is_some() {
        for l in lines {
            let mut it = l.split_whitespace();
            let (Some(b), Some(t)) = (
                it.next().and_then(|b| b.parse().ok()),
                it.next().and_then(|t| t.parse().ok()),
            ) else {
                break;
            };
            if b > len {
                break;
            }
            last = Some((b, Ticks90k(t)));
        }
    }
    let (Some(header), Some((bytes, end))) = (header, last) else {
        drop(file);
        dir.remove_file(name).map_err(io("remove", name))?;
        if dir.exists(journal_name) {
            dir.remove_file(journal_name)
                .map_err(io("remove", journal_name))?;
        }
        sync_dir(dir)?;
        return Ok(None);
    };
    file.set_len(bytes).map_err(io("truncate", name))?;
    file.sync_all().map_err(io("fsync", name))?;
    drop(file);
    let meta = sealed_meta(SegmentId(id), &header, end, bytes);
    dir.rename(name, dir, &meta.file_name)
        .map_err(io("rename", name))?;
    sync_dir(dir)?;
    dir.remove_file(journal_name)
        .map_err(io("remove", journal_name))?;
    tracing::info!(segment = %meta.file_name, cut = len - bytes, "sealed a segment left open by a crash");
    Ok(Some((meta, len - bytes)))
}

fn read_uploaded(dir: &Dir) -> Result<Vec<SegmentId>, CacheError> {
    let text = match dir.read_to_string(UPLOADED_LOG) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", UPLOADED_LOG)(e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .map(SegmentId)
        .collect())
}

fn read_gaps(dir: &Dir) -> Result<Vec<Gap>, CacheError> {
    let text = match dir.read_to_string(GAPS_LOG) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", GAPS_LOG)(e)),
    };
    // A torn last line (crash mid-append) is skipped; complete lines were fsynced.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Writes every part in as few system calls as the kernel allows: a fragment is dozens of
/// slices (boxes and spliced frame payloads), and one write per slice costs more than the copy.
fn write_all_vectored(file: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0); // skips empty leading parts
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_atomically(dir: &Dir, name: &str, data: &[u8]) -> Result<(), CacheError> {
    let tmp = format!("{name}.tmp");
    let mut f = dir.create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(data).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    dir.rename(&tmp, dir, name).map_err(io("rename", &tmp))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Dir) -> Result<(), CacheError> {
    dir.open(".")
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", "."))
}

/// Makes a directory name from topology values (instance, sink node): anything outside
/// `[A-Za-z0-9._-]` becomes `_`, and names that would mean something to the file system are
/// prefixed so they cannot.
pub fn sanitize_dir_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests;
