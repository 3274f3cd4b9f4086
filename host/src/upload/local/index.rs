//! The local store's per-asset index, `<root>/<asset>/index.log`: what the asset's folder
//! holds (blobs with their span, run, sequence, size and codec; gap records), so that a
//! time-range question is answered from memory instead of by reading one metadata file per
//! blob.
//!
//! The folder is the truth and the index is derived from it:
//! - **Append-only.** The store appends a line after it placed a blob or a gap record (`+`,
//!   `g`) and before it deletes one (`-`, `x`). Lines are applied idempotently (adding what is
//!   there or removing what is not changes nothing), so a line written twice is harmless.
//! - **Crash.** A line is appended with one `write(2)` after the blob is durable, and is not
//!   synced: losing it (a crash between the blob and the line) is repaired the first time a
//!   process loads the index, which compares it with the folder's names (one directory read;
//!   only the blobs the index lacks have their metadata read). A torn last line is ignored, and
//!   the next append first ends it with a newline so it cannot glue onto the new line.
//! - **Missing or unreadable** (deleted, another version's header): rebuilt from the folder,
//!   reading every blob's metadata once, written to a temporary name and renamed into place.
//! - **Many processes.** Appends hold a shared `flock` on the asset's folder, replacing the file
//!   (rebuild, compaction) an exclusive one, so no append goes to a replaced file. Readers take
//!   no lock: one `stat` per question tells them whether the file grew (read the new lines) or
//!   was replaced (load it again).
//!
//! In memory an asset costs 48 bytes per blob (ext and codec interned): 4 MiB for 30 days of
//! PT30S segments. The in-memory lock is never held across file-system calls.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::cache::{Gap, GapCause};
use crate::sync::LockExt;
use crate::time::Ticks90k;
use crate::upload::gaps::{self, GAPS_DIR};
use crate::upload::{SegmentFacts, StoredBlob};

pub(super) const INDEX_FILE: &str = "index.log";
const HEADER: &str = "mediagraph asset index 1\n";
const META: &str = ".json";

/// One blob as the index line holds it: everything its metadata file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BlobRecord {
    pub start: Ticks90k,
    pub end: Ticks90k,
    pub run: u64,
    pub sequence: u64,
    pub bytes: u64,
    pub extension: String,
    pub codecs: String,
}

impl BlobRecord {
    /// The blob's name, `<asset>/<file>`.
    pub fn name(&self, asset: &str) -> String {
        self.facts(asset).blob_name()
    }

    pub fn of(facts: &SegmentFacts, bytes: u64) -> Self {
        Self {
            start: facts.start,
            end: facts.end,
            run: facts.run,
            sequence: facts.sequence,
            bytes,
            extension: facts.extension.clone(),
            codecs: facts.codecs.clone(),
        }
    }

    fn facts(&self, asset: &str) -> SegmentFacts {
        SegmentFacts {
            asset: asset.to_owned(),
            run: self.run,
            sequence: self.sequence,
            start: self.start,
            end: self.end,
            codecs: self.codecs.clone(),
            extension: self.extension.clone(),
        }
    }

    /// The record of a listed blob, if mediagraph's uploader wrote it: its metadata names the
    /// asset, run, sequence and span its name was made from.
    fn from_stored(asset: &str, blob: &StoredBlob) -> Option<Self> {
        let m = &blob.metadata;
        let number = |k: &str| m.get(k)?.parse::<u64>().ok();
        let (start, end) = blob.span()?;
        let record = Self {
            start,
            end,
            run: number("run")?,
            sequence: number("sequence")?,
            bytes: blob.bytes,
            extension: blob.name.rsplit_once('.')?.1.to_owned(),
            codecs: m.get("codec").cloned().unwrap_or_default(),
        };
        let facts = record.facts(asset);
        (m.get("asset").map(String::as_str) == Some(asset) && facts.blob_name() == blob.name)
            .then_some(record)
    }
}

/// One line of the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Record {
    Blob(BlobRecord),
    Unblob(BlobRecord),
    Gap(Gap),
    Ungap(Gap),
}

impl Record {
    /// `+|- start end run sequence bytes ext codecs` or `g|x start end Cause`. The codecs
    /// string is the rest of the line (it holds no newline).
    pub fn line(&self) -> String {
        match self {
            Record::Blob(b) | Record::Unblob(b) => format!(
                "{} {} {} {} {} {} {} {}\n",
                if matches!(self, Record::Blob(_)) {
                    '+'
                } else {
                    '-'
                },
                b.start.0,
                b.end.0,
                b.run,
                b.sequence,
                b.bytes,
                b.extension,
                b.codecs.replace('\n', " ")
            ),
            Record::Gap(g) | Record::Ungap(g) => format!(
                "{} {} {} {}\n",
                if matches!(self, Record::Gap(_)) {
                    'g'
                } else {
                    'x'
                },
                g.start.0,
                g.end.0,
                g.cause.as_str()
            ),
        }
    }

    fn parse(line: &str) -> Option<Record> {
        let (op, rest) = line.split_once(' ')?;
        match op {
            "+" | "-" => {
                let mut f = rest.splitn(7, ' ');
                let mut int = || f.next()?.parse::<i64>().ok();
                let (start, end, run, sequence, bytes) = (int()?, int()?, int()?, int()?, int()?);
                let blob = BlobRecord {
                    start: Ticks90k(start),
                    end: Ticks90k(end),
                    run: u64::try_from(run).ok()?,
                    sequence: u64::try_from(sequence).ok()?,
                    bytes: u64::try_from(bytes).ok()?,
                    extension: f.next()?.to_owned(),
                    codecs: f.next().unwrap_or("").to_owned(),
                };
                Some(if op == "+" {
                    Record::Blob(blob)
                } else {
                    Record::Unblob(blob)
                })
            }
            "g" | "x" => {
                let mut f = rest.split(' ');
                let start = Ticks90k(f.next()?.parse().ok()?);
                let end = Ticks90k(f.next()?.parse().ok()?);
                let gap = Gap {
                    start,
                    end,
                    cause: GapCause::parse(f.next()?)?,
                };
                Some(if op == "g" {
                    Record::Gap(gap)
                } else {
                    Record::Ungap(gap)
                })
            }
            _ => None,
        }
    }
}

/// A blob in memory: its extension and codecs are an index into [`Loaded::kinds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    start: Ticks90k,
    end: Ticks90k,
    run: u64,
    sequence: u64,
    bytes: u64,
    kind: u32,
}

impl Entry {
    fn key(&self) -> (Ticks90k, u64, u64) {
        (self.start, self.run, self.sequence)
    }
}

/// The file as read, applied.
struct Loaded {
    /// (device, inode) of the file read: another one means it was replaced.
    file: (u64, u64),
    /// Bytes of complete lines applied.
    consumed: u64,
    /// By (start, run, sequence).
    entries: Vec<Entry>,
    /// (extension, codecs) of the entries.
    kinds: Vec<(String, String)>,
    /// The longest span of any entry, so a range lookup knows how far back to start.
    longest: i64,
    /// Bytes of all entries.
    bytes: u64,
    /// By (start, end, cause).
    gaps: Vec<Gap>,
}

impl Loaded {
    fn empty(file: (u64, u64)) -> Self {
        Self {
            file,
            consumed: 0,
            entries: Vec::new(),
            kinds: Vec::new(),
            longest: 0,
            bytes: 0,
            gaps: Vec::new(),
        }
    }

    fn kind(&mut self, extension: &str, codecs: &str) -> u32 {
        match self
            .kinds
            .iter()
            .position(|(e, c)| e == extension && c == codecs)
        {
            Some(at) => at as u32,
            None => {
                self.kinds.push((extension.to_owned(), codecs.to_owned()));
                (self.kinds.len() - 1) as u32
            }
        }
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Blob(b) => {
                let key = (b.start, b.run, b.sequence);
                if let Err(at) = self.entries.binary_search_by_key(&key, Entry::key) {
                    let kind = self.kind(&b.extension, &b.codecs);
                    self.longest = self.longest.max((b.end - b.start).0);
                    self.bytes += b.bytes;
                    self.entries.insert(
                        at,
                        Entry {
                            start: b.start,
                            end: b.end,
                            run: b.run,
                            sequence: b.sequence,
                            bytes: b.bytes,
                            kind,
                        },
                    );
                }
            }
            Record::Unblob(b) => {
                let key = (b.start, b.run, b.sequence);
                if let Ok(at) = self.entries.binary_search_by_key(&key, Entry::key) {
                    let gone = self.entries.remove(at);
                    self.bytes -= gone.bytes;
                }
            }
            Record::Gap(g) => {
                if let Err(at) = self.gaps.binary_search_by_key(&gap_key(&g), gap_key) {
                    self.gaps.insert(at, g);
                }
            }
            Record::Ungap(g) => {
                if let Ok(at) = self.gaps.binary_search_by_key(&gap_key(&g), gap_key) {
                    self.gaps.remove(at);
                }
            }
        }
    }

    /// The entries whose span overlaps `[from, to)`, by start.
    fn overlapping(&self, from: Ticks90k, to: Ticks90k) -> impl Iterator<Item = &Entry> {
        let earliest = Ticks90k(from.0.saturating_sub(self.longest));
        let first = self.entries.partition_point(|e| e.start < earliest);
        self.entries[first..]
            .iter()
            .take_while(move |e| e.start < to)
            .filter(move |e| e.end > from)
    }

    fn record(&self, e: &Entry) -> BlobRecord {
        let (extension, codecs) = &self.kinds[e.kind as usize];
        BlobRecord {
            start: e.start,
            end: e.end,
            run: e.run,
            sequence: e.sequence,
            bytes: e.bytes,
            extension: extension.clone(),
            codecs: codecs.clone(),
        }
    }

    /// What the folder's metadata files say about the blobs overlapping the range.
    fn blobs(&self, asset: &str, from: Ticks90k, to: Ticks90k) -> Vec<StoredBlob> {
        self.overlapping(from, to)
            .map(|e| {
                let record = self.record(e);
                let facts = record.facts(asset);
                StoredBlob {
                    name: facts.blob_name(),
                    bytes: e.bytes,
                    metadata: facts.metadata(None),
                }
            })
            .collect()
    }

    fn spans(&self, from: Ticks90k, to: Ticks90k) -> Vec<(Ticks90k, Ticks90k)> {
        self.overlapping(from, to)
            .map(|e| (e.start, e.end))
            .collect()
    }

    fn gaps(&self, from: Ticks90k, to: Ticks90k) -> Vec<Gap> {
        self.gaps
            .iter()
            .filter(|g| gaps::overlaps(g, from, to))
            .copied()
            .collect()
    }

    /// The names of every blob file, as the folder would list them.
    fn blob_names(&self, asset: &str) -> HashSet<String> {
        self.entries
            .iter()
            .map(|e| self.record(e).facts(asset).blob_name())
            .collect()
    }
}

fn gap_key(g: &Gap) -> (Ticks90k, Ticks90k, &'static str) {
    (g.start, g.end, g.cause.as_str())
}
/// The index of one asset's folder, as one store instance knows it.
pub(super) struct AssetIndex {
    asset: String,
    dir: PathBuf,
    path: PathBuf,
    loaded: Mutex<Option<Loaded>>,
}

impl AssetIndex {
    pub fn new(root: &Path, asset: &str) -> Self {
        let dir = root.join(asset);
        Self {
            asset: asset.to_owned(),
            path: dir.join(INDEX_FILE),
            dir,
            loaded: Mutex::new(None),
        }
    }

    /// The blobs overlapping `[from, to)`, by start, as their metadata files describe them.
    pub fn blobs(&self, from: Ticks90k, to: Ticks90k) -> std::io::Result<Option<Vec<StoredBlob>>> {
        self.ask(|l| l.blobs(&self.asset, from, to))
    }

    pub fn spans(
        &self,
        from: Ticks90k,
        to: Ticks90k,
    ) -> std::io::Result<Option<Vec<(Ticks90k, Ticks90k)>>> {
        self.ask(|l| l.spans(from, to))
    }

    /// The gap records touching `[from, to)` (an asset without blobs may have gaps).
    pub fn gaps(&self, from: Ticks90k, to: Ticks90k) -> std::io::Result<Vec<Gap>> {
        Ok(self.with_loaded(|l| l.gaps(from, to))?.unwrap_or_default())
    }

    /// The bytes of the asset's blobs and its `nth` oldest blob (by start), for retention.
    pub fn oldest(&self, nth: usize) -> std::io::Result<(u64, Option<BlobRecord>)> {
        Ok(self
            .with_loaded(|l| (l.bytes, l.entries.get(nth).map(|e| l.record(e))))?
            .unwrap_or((0, None)))
    }

    /// `None` when the asset holds no blob at all.
    fn ask<T>(&self, question: impl FnOnce(&Loaded) -> T) -> std::io::Result<Option<T>> {
        Ok(self
            .with_loaded(|l| (!l.entries.is_empty()).then(|| question(l)))?
            .flatten())
    }

    /// Brings the memory up to date with the file (reading new lines, loading a replaced
    /// file, rebuilding a missing one), then answers from it. `None` without the folder.
    fn with_loaded<T>(&self, question: impl FnOnce(&Loaded) -> T) -> std::io::Result<Option<T>> {
        loop {
            let have = self
                .loaded
                .lock_unpoisoned()
                .as_ref()
                .map(|l| (l.file, l.consumed));
            let meta = match fs::metadata(&self.path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !self.dir.is_dir() {
                        return Ok(None);
                    }
                    self.rebuild()?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let file = (meta.dev(), meta.ino());
            match have {
                Some((had, consumed)) if had == file && meta.len() == consumed => break,
                Some((had, consumed)) if had == file && meta.len() > consumed => {
                    let (records, read) = match read_lines(&self.path, file, consumed) {
                        Ok(found) => found,
                        // Replaced or removed since the stat: look again.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    let mut guard = self.loaded.lock_unpoisoned();
                    if let Some(l) = guard.as_mut()
                        && (l.file, l.consumed) == (file, consumed)
                    {
                        records.into_iter().for_each(|r| l.apply(r));
                        l.consumed = consumed + read;
                    }
                    if read == 0 {
                        break; // only a torn line so far: answer from what is complete
                    }
                }
                _ => {
                    let first = have.is_none();
                    let loaded = match self.load(file) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        other => other?,
                    };
                    let Some(mut loaded) = loaded else {
                        // Unreadable header: another version's file. Rebuilt from the folder.
                        self.replace_with_rebuild()?;
                        continue;
                    };
                    if first {
                        self.reconcile(&mut loaded)?;
                    }
                    *self.loaded.lock_unpoisoned() = Some(loaded);
                }
            }
        }
        Ok(self.loaded.lock_unpoisoned().as_ref().map(question))
    }

    /// Reads the whole file; `None` if it does not start with this version's header.
    fn load(&self, file: (u64, u64)) -> std::io::Result<Option<Loaded>> {
        let mut loaded = Loaded::empty(file);
        let (records, read) = match read_lines(&self.path, file, 0) {
            Ok(found) => found,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Ok(None),
            Err(e) => return Err(e),
        };
        records.into_iter().for_each(|r| loaded.apply(r));
        loaded.consumed = read;
        Ok(Some(loaded))
    }

    /// Appends what the folder holds and the index lacks (a crash between a blob and its
    /// line), and removes what the folder lost: names only, plus the metadata of the missing.
    fn reconcile(&self, loaded: &mut Loaded) -> std::io::Result<()> {
        let (names, gap_files) = self.folder_names()?;
        let indexed = loaded.blob_names(&self.asset);
        let mut repairs = Vec::new();
        for name in names.iter().filter(|n| !indexed.contains(*n)) {
            if let Some(record) = self.read_record(name)? {
                repairs.push(Record::Blob(record));
            }
        }
        for e in &loaded.entries {
            let record = loaded.record(e);
            if !names.contains(&record.facts(&self.asset).blob_name()) {
                repairs.push(Record::Unblob(record));
            }
        }
        let stored: HashSet<Gap> = gap_files.iter().copied().collect();
        let known: HashSet<Gap> = loaded.gaps.iter().copied().collect();
        repairs.extend(stored.difference(&known).map(|g| Record::Gap(*g)));
        repairs.extend(known.difference(&stored).map(|g| Record::Ungap(*g)));
        if repairs.is_empty() {
            return Ok(());
        }
        tracing::info!(asset = %self.asset, repairs = repairs.len(), "asset index brought in line with its folder");
        self.append(&repairs)?;
        // Applied here too; read again from the file later, which changes nothing.
        repairs.into_iter().for_each(|r| loaded.apply(r));
        Ok(())
    }

    /// The blob names (files with their metadata file) and gap records in the folder.
    fn folder_names(&self) -> std::io::Result<(HashSet<String>, Vec<Gap>)> {
        let mut files = HashSet::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.insert(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let names = files
            .iter()
            .filter(|f| files.contains(&format!("{f}{META}")))
            .map(|f| format!("{}/{f}", self.asset))
            .collect();
        let gaps = match fs::read_dir(self.dir.join(GAPS_DIR)) {
            Ok(entries) => {
                let mut found = Vec::new();
                for entry in entries {
                    if let Some(gap) = entry?
                        .file_name()
                        .to_str()
                        .and_then(gaps::parse_record_file)
                    {
                        found.push(gap);
                    }
                }
                found
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok((names, gaps))
    }

    /// The record of blob `name` from its metadata file; `None` if it is not the uploader's.
    fn read_record(&self, name: &str) -> std::io::Result<Option<BlobRecord>> {
        let file = name.rsplit('/').next().unwrap_or(name);
        let path = self.dir.join(file);
        let bytes = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let metadata = match fs::read(self.dir.join(format!("{file}{META}"))) {
            Ok(text) => serde_json::from_slice(&text).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let blob = StoredBlob {
            name: name.to_owned(),
            bytes,
            metadata,
        };
        let record = BlobRecord::from_stored(&self.asset, &blob);
        if record.is_none() {
            tracing::warn!(blob = %name, "not indexed: its metadata is not the uploader's");
        }
        Ok(record)
    }

    /// Appends lines, after making sure the index exists (a missing index is rebuilt from the
    /// folder first, so it never starts with only the newest lines). Holds the folder's shared
    /// lock, so the file is not replaced meanwhile.
    pub fn append(&self, records: &[Record]) -> std::io::Result<()> {
        let lines: String = records.iter().map(Record::line).collect();
        loop {
            if !self.path.exists() {
                self.rebuild()?;
            }
            let lock = fs::File::open(&self.dir)?;
            lock.lock_shared()?;
            let mut file = match fs::OpenOptions::new().append(true).open(&self.path) {
                Ok(f) => f,
                // Removed between the check and the lock: rebuild and try again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let len = file.metadata()?.len();
            let mut text = String::with_capacity(lines.len() + 1);
            if len > 0 && !ends_with_newline(&self.path, len)? {
                text.push('\n'); // a torn line left by a crash stays alone
            }
            text.push_str(&lines);
            return file.write_all(text.as_bytes());
        }
    }

    /// Writes the index from the folder if it is (still) missing.
    fn rebuild(&self) -> std::io::Result<()> {
        self.rebuild_if(|path| !path.exists())
    }

    fn replace_with_rebuild(&self) -> std::io::Result<()> {
        self.rebuild_if(|path| {
            fs::File::open(path)
                .and_then(|mut f| {
                    let mut head = vec![0u8; HEADER.len()];
                    f.read_exact(&mut head).map(|()| head != HEADER.as_bytes())
                })
                .unwrap_or(true)
        })
    }

    /// Under the folder's exclusive lock, rebuilds the index from the folder when `needed`.
    fn rebuild_if(&self, needed: impl Fn(&Path) -> bool) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let lock = fs::File::open(&self.dir)?;
        lock.lock()?;
        if !needed(&self.path) {
            return Ok(());
        }
        let (names, gap_files) = self.folder_names()?;
        let mut names: Vec<&String> = names.iter().collect();
        names.sort();
        let mut content = String::from(HEADER);
        for name in names {
            if let Some(record) = self.read_record(name)? {
                content.push_str(&Record::Blob(record).line());
            }
        }
        for gap in gap_files {
            content.push_str(&Record::Gap(gap).line());
        }
        tracing::info!(asset = %self.asset, "asset index rebuilt from its folder");
        self.write_replacing(&content)
    }

    /// Replaces the file atomically (temporary name, fsync, rename, fsync of the folder). The
    /// caller holds the folder's exclusive lock.
    fn write_replacing(&self, content: &str) -> std::io::Result<()> {
        let tag: u64 = rand::random();
        let tmp = self.dir.join(format!("{INDEX_FILE}.{tag:016x}.partial"));
        let written = (|| {
            let mut f = fs::File::create_new(&tmp)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// The complete lines of the file from byte `from` (the header first when `from` is 0), and
/// how many bytes they take. `InvalidData` for a file without this version's header; a file
/// replaced since `file` was seen reads as `NotFound`, so the caller looks again.
fn read_lines(path: &Path, file: (u64, u64), from: u64) -> std::io::Result<(Vec<Record>, u64)> {
    let mut f = fs::File::open(path)?;
    let meta = f.metadata()?;
    if (meta.dev(), meta.ino()) != file {
        return Err(std::io::ErrorKind::NotFound.into());
    }
    f.seek(std::io::SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let mut lines = text.lines();
    if from == 0 && complete > 0 && lines.next() != Some(HEADER.trim_end()) {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    if from == 0 && complete == 0 {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    Ok((lines.filter_map(Record::parse).collect(), complete as u64))
}

fn ends_with_newline(path: &Path, len: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut last = [0u8; 1];
    fs::File::open(path)?.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::local::LocalStore;
    use crate::upload::{AssetStore, SegmentUpload};

    const T0: i64 = 1_700_000_000;

    fn t(secs: i64) -> Ticks90k {
        Ticks90k::from_secs(T0 + secs)
    }

    fn facts(seq: u64, start: i64, end: i64) -> SegmentFacts {
        SegmentFacts {
            asset: "cam".into(),
            run: 3,
            sequence: seq,
            start: t(start),
            end: t(end),
            codecs: "avc1.640028,mp4a.40.2".into(),
            extension: "mp4".into(),
        }
    }

    async fn put(store: &LocalStore, cache: &Path, f: SegmentFacts) {
        let path = cache.join(format!("{}.mp4", f.sequence));
        let body = format!("segment {}", f.sequence).repeat(50);
        fs::write(&path, &body).unwrap();
        store
            .put_segment(SegmentUpload {
                facts: f,
                file: fs::File::open(&path).unwrap(),
                bytes: body.len() as u64,
            })
            .await
            .unwrap();
    }

    /// Four 30 s segments from T0, one gap record.
    async fn recorded() -> (tempfile::TempDir, tempfile::TempDir, LocalStore) {
        let (cache, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = LocalStore::new(root.path().to_owned());
        store.prepare().await.unwrap();
        for seq in 0..4 {
            let s = 30 * seq as i64;
            put(&store, cache.path(), facts(seq, s, s + 30)).await;
        }
        let gap = Gap {
            start: t(120),
            end: t(150),
            cause: GapCause::CameraOffline,
        };
        store.put_gaps("cam", &[gap]).await.unwrap();
        (cache, root, store)
    }

    async fn everything(store: &LocalStore) -> Vec<StoredBlob> {
        let all = store
            .list_range("cam", Ticks90k(i64::MIN), Ticks90k(i64::MAX))
            .await
            .unwrap();
        assert!(all.asset_has_blobs);
        all.items
    }

    fn index_path(root: &Path) -> PathBuf {
        root.join("cam").join(INDEX_FILE)
    }

    #[tokio::test]
    async fn the_index_says_what_the_metadata_files_say_and_answers_ranges() {
        let (_cache, _root, store) = recorded().await;
        // Exactly the blobs, names and metadata the folder's own listing reads.
        assert_eq!(
            everything(&store).await,
            store.list_asset("cam").await.unwrap()
        );
        let store = &store;
        let files = |from, to| async move {
            let found = store.list_range("cam", t(from), t(to)).await.unwrap();
            found
                .items
                .iter()
                .map(|b| b.metadata["sequence"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(files(29, 31).await, ["0", "1"]);
        assert_eq!(files(30, 60).await, ["1"]);
        assert_eq!(files(119, 1000).await, ["3"]);
        assert!(files(120, 1000).await.is_empty());
        let spans = store.spans("cam", t(45), t(75)).await.unwrap();
        assert_eq!(spans.items, [(t(30), t(60)), (t(60), t(90))]);
        let none = store.list_range("nobody", t(0), t(100)).await.unwrap();
        assert!(!none.asset_has_blobs && none.items.is_empty());
        assert_eq!(
            store.list_gaps("cam", t(0), t(1000)).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn a_long_blob_is_found_from_an_instant_near_its_end() {
        let (cache, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = LocalStore::new(root.path().to_owned());
        put(&store, cache.path(), facts(0, 0, 600)).await;
        put(&store, cache.path(), facts(1, 600, 630)).await;
        let found = store.list_range("cam", t(590), t(591)).await.unwrap();
        assert_eq!(found.items.len(), 1);
        assert_eq!(found.items[0].metadata["sequence"], "0");
    }

    #[tokio::test]
    async fn a_missing_or_foreign_index_is_rebuilt_from_the_folder() {
        let (_cache, root, store) = recorded().await;
        let expected = everything(&store).await;
        fs::remove_file(index_path(root.path())).unwrap();
        // A new process (a fresh store) finds no index: rebuilt from the metadata files.
        let fresh = LocalStore::new(root.path().to_owned());
        assert_eq!(everything(&fresh).await, expected);
        assert_eq!(
            fresh.list_gaps("cam", t(0), t(1000)).await.unwrap().len(),
            1
        );
        let text = fs::read_to_string(index_path(root.path())).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("+ ")).count(),
            4,
            "{text}"
        );

        // An index of another format version is replaced the same way.
        fs::write(
            index_path(root.path()),
            "mediagraph asset index 99\n+ garbage\n",
        )
        .unwrap();
        let fresh = LocalStore::new(root.path().to_owned());
        assert_eq!(everything(&fresh).await, expected);
        // And removed under a running reader: it rebuilds and answers the same.
        fs::remove_file(index_path(root.path())).unwrap();
        assert_eq!(everything(&fresh).await, expected);
    }

    #[tokio::test]
    async fn a_crash_between_blob_and_index_line_is_repaired_on_the_next_load() {
        let (cache, root, store) = recorded().await;
        let expected = everything(&store).await;
        // The last blob's line never made it, and a torn line was left (power cut mid-write).
        let path = index_path(root.path());
        let text = fs::read_to_string(&path).unwrap();
        let last_blob = text
            .lines()
            .rfind(|l| l.starts_with("+ "))
            .unwrap()
            .to_owned();
        let mut torn = text.replace(&format!("{last_blob}\n"), "");
        torn.push_str("+ 1530000000");
        fs::write(&path, &torn).unwrap();
        // A blob deleted from the folder without its line (a crash in the other order).
        let gone = &expected[0].name;
        fs::remove_file(root.path().join(gone)).unwrap();
        fs::remove_file(root.path().join(format!("{gone}{META}"))).unwrap();

        let fresh = LocalStore::new(root.path().to_owned());
        assert_eq!(everything(&fresh).await, expected[1..].to_vec());
        // The torn line stays alone: an append after it is read whole.
        put(&store, cache.path(), facts(4, 120, 150)).await;
        assert_eq!(everything(&fresh).await.len(), 4);
        let another = LocalStore::new(root.path().to_owned());
        assert_eq!(everything(&another).await, everything(&fresh).await);
        assert_eq!(
            everything(&another).await,
            another.list_asset("cam").await.unwrap()
        );
    }

    #[tokio::test]
    async fn a_reader_sees_what_another_store_appends() {
        let (cache, root, writer) = recorded().await;
        let reader = LocalStore::new(root.path().to_owned());
        assert_eq!(everything(&reader).await.len(), 4);
        put(&writer, cache.path(), facts(4, 120, 150)).await;
        let gap = Gap {
            start: t(200),
            end: t(201),
            cause: GapCause::Crash,
        };
        writer.put_gaps("cam", &[gap]).await.unwrap();
        assert_eq!(everything(&reader).await.len(), 5);
        assert_eq!(
            reader.list_gaps("cam", t(200), t(300)).await.unwrap(),
            vec![gap]
        );
    }

    #[test]
    fn lines_round_trip() {
        let blob = BlobRecord::of(&facts(7, 0, 30), 1234);
        for record in [
            Record::Blob(blob.clone()),
            Record::Unblob(blob),
            Record::Gap(Gap {
                start: t(0),
                end: t(-5),
                cause: GapCause::ClockJump,
            }),
            Record::Ungap(Gap {
                start: t(0),
                end: t(5),
                cause: GapCause::Retention,
            }),
        ] {
            let line = record.line();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            assert_eq!(Record::parse(line.trim_end_matches('\n')), Some(record));
        }
        assert_eq!(Record::parse("+ 1 2"), None);
        assert_eq!(Record::parse("g 1 2 Flood"), None);
    }
}
