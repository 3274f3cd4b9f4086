//! The file-sink layout: the same crash-safe writer, journal, recovery, budget and eviction as a
//! cache, but each sealed segment is a user-visible file named by the sink's pattern, in the
//! sink's output directory, and the cache's bookkeeping lives in its `.mediagraph/` subdirectory.
//!
//! ```text
//! <output dir>/<name>.mp4                  finished files (never renamed over another file)
//! <output dir>/.mediagraph/<id>.open       the file being written, with <id>.journal
//! <output dir>/.mediagraph/files.log       JSON lines: one per finished file (its index entry)
//! <output dir>/.mediagraph/{gaps.log, uploaded.log, running}   as in a cache
//! ```
//!
//! A file's names cannot carry its index entry (they are the operator's), so `files.log` does:
//! its line is appended and fsynced before the file is renamed into the output directory, and a
//! line whose file is gone (deleted by the operator, or evicted) is dropped when the log is read
//! and compacted. Files sit in the output directory only once complete: the open one is cut at
//! its last complete fragment by start-up recovery, exactly as a cache's open segment is.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};

use super::logs::{AppendLog, sync_dir, write_atomically};
use super::{CacheError, RunId, SegmentId, SegmentMeta, io, lock};
use crate::time::Ticks90k;

/// The bookkeeping subdirectory of an output directory.
pub const BOOKKEEPING_DIR: &str = ".mediagraph";
pub(super) const FILES_LOG: &str = "files.log";

/// The file name (without extension) of a file whose media starts at the given instant.
pub type FileNamer = Box<dyn Fn(Ticks90k) -> String + Send + Sync>;

/// One finished file, as `files.log` keeps it.
#[derive(Serialize, Deserialize)]
struct Entry {
    id: SegmentId,
    run: RunId,
    sequence: u64,
    start: Ticks90k,
    end: Ticks90k,
    codecs: String,
    name: String,
}

pub(super) struct Files {
    /// The output directory: where finished files are.
    pub(super) media: Dir,
    namer: FileNamer,
    log: Mutex<AppendLog>,
    pub(super) log_bytes: AtomicU64,
}

impl Files {
    /// Opens `files.log` in `bookkeeping` and reads the finished files that still exist in
    /// `media`, by id. A name listed twice (a name freed by an eviction and taken again) is
    /// the newest entry's.
    pub(super) fn open(
        media: Dir,
        bookkeeping: &Dir,
        namer: FileNamer,
    ) -> Result<(Files, BTreeMap<SegmentId, SegmentMeta>), CacheError> {
        let text = match bookkeeping.read_to_string(FILES_LOG) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io("read", FILES_LOG)(e)),
        };
        let mut by_name: BTreeMap<String, Entry> = BTreeMap::new();
        // A torn last line (crash mid-append) has no newline: its file was never renamed.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            if let Ok(entry) = serde_json::from_str::<Entry>(line) {
                match by_name.get(&entry.name) {
                    Some(known) if known.id >= entry.id => {}
                    _ => {
                        by_name.insert(entry.name.clone(), entry);
                    }
                }
            }
        }
        let mut sealed = BTreeMap::new();
        for entry in by_name.into_values() {
            let bytes = match media.metadata(&entry.name) {
                Ok(m) if m.is_file() => m.len(),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("stat", &entry.name)(e)),
            };
            sealed.insert(entry.id, meta_of(&entry, bytes));
        }
        let log = AppendLog::open(bookkeeping, FILES_LOG)?;
        let files = Files {
            media,
            namer,
            log_bytes: AtomicU64::new(log.len),
            log: Mutex::new(log),
        };
        Ok((files, sealed))
    }

    /// A free name in the output directory for a file starting at `start`: the pattern's,
    /// made a plain file name, with `-1`, `-2`, ... when taken (by a file of the index, or any
    /// file there).
    pub(super) fn choose_name(
        &self,
        start: Ticks90k,
        ext: &str,
        taken: &HashSet<String>,
    ) -> Result<String, CacheError> {
        let stem = plain_file_name(&(self.namer)(start));
        let dotted = format!(".{ext}");
        let stem = stem.strip_suffix(&dotted).unwrap_or(&stem).to_owned();
        for n in 0u32.. {
            let name = match n {
                0 => format!("{stem}{dotted}"),
                n => format!("{stem}-{n}{dotted}"),
            };
            if taken.contains(&name) {
                continue;
            }
            match self.media.symlink_metadata(&name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(name),
                Err(e) => return Err(io("stat", &name)(e)),
                Ok(_) => {}
            }
        }
        unreachable!("some suffix is free")
    }

    /// Makes a sealed `.open` file (complete and fsynced) a finished file: its entry first,
    /// then the rename into the output directory, then that directory's sync.
    pub(super) fn place(
        &self,
        bookkeeping: &Dir,
        open_name: &str,
        meta: &SegmentMeta,
    ) -> Result<(), CacheError> {
        let entry = Entry {
            id: meta.id,
            run: meta.run,
            sequence: meta.sequence,
            start: meta.start,
            end: meta.end,
            codecs: meta.codecs.clone(),
            name: meta.file_name.clone(),
        };
        let mut line = serde_json::to_string(&entry).expect("entry serializes");
        line.push('\n');
        {
            let mut log = lock(&self.log);
            let appended = log.append(&line);
            self.log_bytes.store(log.len, Ordering::Release);
            appended?;
        }
        if self.media.symlink_metadata(&meta.file_name).is_ok() {
            // Someone put a file under this name since it was chosen: never replace it.
            return Err(CacheError::BadName {
                what: "file (the name is taken)",
                value: meta.file_name.clone(),
            });
        }
        bookkeeping
            .rename(open_name, &self.media, &meta.file_name)
            .map_err(io("rename", open_name))?;
        sync_dir(&self.media)
    }

    /// Rewrites `files.log` with the entries of `live` once most of its lines name files that
    /// are gone (on a full disk it stays as it is).
    pub(super) fn compact(&self, bookkeeping: &Dir, live: &[SegmentMeta], force: bool) {
        let mut log = lock(&self.log);
        if !force && log.lines <= 2 * live.len() as u64 + 64 {
            return;
        }
        let content: String = live
            .iter()
            .map(|m| {
                let entry = Entry {
                    id: m.id,
                    run: m.run,
                    sequence: m.sequence,
                    start: m.start,
                    end: m.end,
                    codecs: m.codecs.clone(),
                    name: m.file_name.clone(),
                };
                let mut line = serde_json::to_string(&entry).expect("entry serializes");
                line.push('\n');
                line
            })
            .collect();
        if let Err(e) = write_atomically(bookkeeping, FILES_LOG, content.as_bytes())
            .and_then(|()| AppendLog::open(bookkeeping, FILES_LOG))
            .map(|reopened| *log = reopened)
        {
            tracing::warn!(error = %e, "files.log not compacted");
        }
        self.log_bytes.store(log.len, Ordering::Release);
    }
}

fn meta_of(e: &Entry, bytes: u64) -> SegmentMeta {
    SegmentMeta {
        id: e.id,
        run: e.run,
        sequence: e.sequence,
        start: e.start,
        end: e.end,
        bytes,
        codecs: e.codecs.clone(),
        file_name: e.name.clone(),
        // A file sink uploads nothing: a finished file is done.
        uploaded: true,
    }
}

/// `raw` as one plain, visible file name: path separators and NUL become `_`, a leading dot
/// (a hidden file, `.`, `..`, the bookkeeping directory) gets a `_` in front, and it is cut to
/// 200 bytes. The output directory is a capability handle besides, so no name can leave it.
pub fn plain_file_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    while name.len() > 200 {
        name.pop();
    }
    name
}
