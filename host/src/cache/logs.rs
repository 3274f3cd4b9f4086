//! The two append-only logs (`uploaded.log`, `gaps.log`), their compaction, and the atomic
//! file replacement and directory sync they and the segments rely on.
//!
//! `uploaded.log` lines: `<id> <run>` per segment marked uploaded (older caches wrote `<id>`
//! only), and, first after a compaction, `next <id> <run>`: the ids and runs the cache had
//! handed out by then. Ids and runs never restart below anything this log has seen, so a
//! stale mark can never name a new segment, nor a reused run a stored blob.

use std::collections::BTreeSet;
use std::io::Write;

use cap_std::fs::{Dir, File, OpenOptions};

use super::{CacheError, Gap, RunId, SegmentId, io};

pub(super) const UPLOADED_LOG: &str = "uploaded.log";
pub(super) const GAPS_LOG: &str = "gaps.log";

/// An fsynced append-only log whose appends are all or nothing: a failed append (a full disk)
/// is cut back, so no torn line can glue itself to the next one.
pub(super) struct AppendLog {
    name: &'static str,
    file: File,
    pub(super) len: u64,
    /// Lines appended since the log was opened or compacted, plus the lines it had then.
    pub(super) lines: u64,
}

impl AppendLog {
    pub(super) fn open(dir: &Dir, name: &'static str) -> Result<Self, CacheError> {
        let file = dir
            .open_with(name, OpenOptions::new().append(true).create(true))
            .map_err(io("open", name))?;
        let len = file.metadata().map_err(io("stat", name))?.len();
        let lines = dir
            .read_to_string(name)
            .map_err(io("read", name))?
            .lines()
            .count() as u64;
        Ok(Self {
            name,
            file,
            len,
            lines,
        })
    }

    pub(super) fn append(&mut self, line: &str) -> Result<(), CacheError> {
        let result = self
            .file
            .write_all(line.as_bytes())
            .map_err(io("append", self.name))
            .and_then(|()| self.file.sync_data().map_err(io("fsync", self.name)));
        match result {
            Ok(()) => {
                self.len += line.len() as u64;
                self.lines += 1;
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

    /// Replaces the log's content atomically (a crash leaves the old or the new log).
    pub(super) fn replace(&mut self, dir: &Dir, content: &str) -> Result<(), CacheError> {
        write_atomically(dir, self.name, content.as_bytes())?;
        *self = Self::open(dir, self.name)?;
        Ok(())
    }
}

/// What `uploaded.log` says: ids marked uploaded, and the highest id and run it has seen.
#[derive(Default)]
pub(super) struct UploadedLog {
    pub ids: BTreeSet<SegmentId>,
    /// Every id and run below these were handed out before.
    pub next_id: u64,
    pub next_run: RunId,
}

pub(super) fn uploaded_line(id: SegmentId, run: RunId) -> String {
    format!("{} {run}\n", id.0)
}

/// The compacted log: the high-water mark, then the ids still in the cache that are uploaded.
pub(super) fn uploaded_compacted(
    next_id: u64,
    next_run: RunId,
    live: impl Iterator<Item = (SegmentId, RunId)>,
) -> String {
    let mut s = format!("next {next_id} {next_run}\n");
    for (id, run) in live {
        s.push_str(&uploaded_line(id, run));
    }
    s
}

pub(super) fn read_uploaded(dir: &Dir) -> Result<UploadedLog, CacheError> {
    let text = match dir.read_to_string(UPLOADED_LOG) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UploadedLog::default()),
        Err(e) => return Err(io("read", UPLOADED_LOG)(e)),
    };
    let mut log = UploadedLog::default();
    // A torn last line (crash mid-append) is skipped: it has no newline.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut words = line.split_whitespace();
        let first = words.next();
        let mut number = || words.next().and_then(|w| w.parse::<u64>().ok());
        if first == Some("next") {
            if let (Some(id), Some(run)) = (number(), number()) {
                log.next_id = log.next_id.max(id);
                log.next_run = log.next_run.max(run);
            }
        } else if let Some(id) = first.and_then(|w| w.parse::<u64>().ok()) {
            log.ids.insert(SegmentId(id));
            log.next_id = log.next_id.max(id + 1);
            if let Some(run) = number() {
                log.next_run = log.next_run.max(run + 1);
            }
        }
    }
    Ok(log)
}

pub(super) fn gap_line(gap: &Gap) -> String {
    let mut line = serde_json::to_string(gap).expect("gap serializes");
    line.push('\n');
    line
}

pub(super) fn read_gaps(dir: &Dir) -> Result<Vec<Gap>, CacheError> {
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

/// The newest gaps whose lines fit in `bytes`, oldest first.
pub(super) fn newest_gaps(gaps: &[Gap], bytes: u64) -> (usize, String) {
    let mut kept = Vec::new();
    let mut total = 0u64;
    for gap in gaps.iter().rev() {
        let line = gap_line(gap);
        if total + line.len() as u64 > bytes {
            break;
        }
        total += line.len() as u64;
        kept.push(line);
    }
    let first = gaps.len() - kept.len();
    kept.reverse();
    (first, kept.concat())
}

pub(super) fn write_atomically(dir: &Dir, name: &str, data: &[u8]) -> Result<(), CacheError> {
    let tmp = format!("{name}.tmp");
    let result = (|| {
        let mut f = dir.create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(data).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        dir.rename(&tmp, dir, name).map_err(io("rename", &tmp))
    })();
    if result.is_err() {
        let _ = dir.remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

pub(super) fn sync_dir(dir: &Dir) -> Result<(), CacheError> {
    dir.open(".")
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", "."))
}
