//! The local-directory asset store (`file:///dir`), the default when nothing else is configured.
//!
//! Layout: `<root>/<asset>/<blob file>` plus `<blob file>.json` holding the metadata. Both are
//! put in place with `link(2)`, which never replaces an existing name: the metadata first (so a
//! blob is never visible without it), then the blob. On the cache's filesystem the blob is a
//! hard link to the sealed (immutable, already fsynced) cache file rather than a copy, so
//! storing a segment reads none of its bytes; elsewhere a synced copy under a unique
//! `*.partial` name is linked. A name that is already taken is kept when it holds this very
//! segment (same metadata and bytes: a re-upload after a crash) and otherwise refused as a
//! `Conflict`, so a second writer on the same asset name never replaces the first one's blob.
//! A crash leaves at most a `*.partial` file, which listings ignore.
//!
//! Gap records ([`super::gaps`]) are files in `<root>/<asset>/gaps/`, put in place the same
//! way (a synced `*.partial`, then `link(2)`): a name already there is the same gap.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

mod index;
pub mod retention;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use index::{AssetIndex, BlobRecord, INDEX_FILE, Record};
pub use retention::Retention;

use super::gaps::{self, GAPS_DIR};
use super::{AssetStore, ByteStream, InRange, SegmentUpload, StoredBlob, UploadError};
use crate::cache::Gap;
use crate::sync::LockExt;
use crate::time::Ticks90k;

const PARTIAL: &str = ".partial";
const META: &str = ".json";
/// Bytes read per chunk when streaming a blob: large enough for few syscalls, small enough
/// that many concurrent readers hold little memory.
const READ_CHUNK: usize = 64 << 10;

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// The asset indexes this store has loaded, by asset.
    indexes: Arc<Mutex<HashMap<String, Arc<AssetIndex>>>>,
    retention: Arc<Retention>,
    /// The caches whose budgets must stay free: key → (device, budget bytes).
    caches: Arc<Mutex<HashMap<String, (u64, u64)>>>,
    retention_pass: Arc<Mutex<()>>,
}

impl LocalStore {
    /// A store that keeps what it must to keep its file system's free space (see
    /// [`retention`]), and otherwise everything.
    pub fn new(root: PathBuf) -> Self {
        Self::with_retention(root, Retention::default())
    }

    pub fn with_retention(root: PathBuf, retention: Retention) -> Self {
        Self {
            root,
            indexes: Arc::default(),
            retention: Arc::new(retention),
            caches: Arc::default(),
            retention_pass: Arc::default(),
        }
    }

    fn index(&self, asset: &str) -> Arc<AssetIndex> {
        self.indexes
            .lock_unpoisoned()
            .entry(asset.to_owned())
            .or_insert_with(|| Arc::new(AssetIndex::new(&self.root, asset)))
            .clone()
    }

    fn index_err(&self, asset: &str) -> impl FnOnce(std::io::Error) -> UploadError + use<> {
        let path = self.root.join(asset).join(INDEX_FILE);
        move |source| UploadError::Local { path, source }
    }

    /// Places the blob, then its index line (a crash between the two is repaired when the
    /// index is next loaded).
    fn store_blob(&self, segment: SegmentUpload) -> Result<StoredBlob, UploadError> {
        let record = BlobRecord::of(&segment.facts, segment.bytes);
        let asset = segment.facts.asset.clone();
        let stored = self.write_blob(segment)?;
        self.index(&asset)
            .append(&[Record::Blob(record)])
            .map_err(self.index_err(&asset))?;
        // The blob is stored either way; a failed pass is tried again after the next one.
        if let Err(e) = self.enforce_retention() {
            tracing::warn!(target: "upload", error = %e, "asset store retention failed");
        }
        Ok(stored)
    }

    /// Runs `job` with this store in the blocking pool: its file system calls block.
    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(LocalStore) -> Result<T, UploadError> + Send + 'static,
    ) -> Result<T, UploadError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || job(store))
            .await
            .map_err(|e| UploadError::Local {
                path: self.root.clone(),
                source: std::io::Error::other(e),
            })?
    }

    fn err(&self, path: &Path) -> impl FnOnce(std::io::Error) -> UploadError {
        let path = path.to_owned();
        move |source| UploadError::Local { path, source }
    }

    /// As [`LocalStore::err`], but a missing file is [`UploadError::BlobNotFound`].
    fn not_found_or(&self, name: &str, path: &Path) -> impl FnOnce(std::io::Error) -> UploadError {
        let (name, path) = (name.to_owned(), path.to_owned());
        move |source| match source.kind() {
            std::io::ErrorKind::NotFound => UploadError::BlobNotFound { blob: name },
            _ => UploadError::Local { path, source },
        }
    }

    fn write_blob(&self, segment: SegmentUpload) -> Result<StoredBlob, UploadError> {
        let name = segment.facts.blob_name();
        let final_path = self.root.join(&name);
        let dir = final_path.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(self.err(&dir))?;
        let actual = segment
            .file
            .metadata()
            .map_err(|source| UploadError::ReadSegment {
                segment: name.clone(),
                source,
            })?
            .len();
        if actual != segment.bytes {
            return Err(UploadError::SegmentSize {
                segment: name,
                expected: segment.bytes,
                actual,
            });
        }
        if final_path.exists() {
            // A re-upload after a crash, or another writer's blob: only the first is replaced.
            return self.keep_existing(&name, &segment);
        }

        // Metadata first: a blob file is never visible without the metadata describing it. It
        // is linked into place, never renamed over, so another writer's metadata is not
        // replaced either; ours from an interrupted attempt is.
        let metadata = segment.facts.metadata(None);
        let meta_path = path_with_suffix(&final_path, META);
        let meta_tmp = unique_partial(&meta_path);
        let json = serde_json::to_vec_pretty(&metadata).unwrap_or_default();
        write_synced(&meta_tmp, &json).map_err(self.err(&meta_tmp))?;
        let linked = link_new(&meta_tmp, &meta_path);
        let placed = match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match self.read_metadata(&meta_path) {
                    Ok(theirs) => match segment.facts.differs_from(&theirs, None) {
                        Some(why) => Err(UploadError::Conflict {
                            blob: name.clone(),
                            why,
                        }),
                        None => fs::rename(&meta_tmp, &meta_path).map_err(self.err(&meta_path)),
                    },
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(self.err(&meta_path)(e)),
        };
        let _ = fs::remove_file(&meta_tmp);
        placed?;

        // On the cache's filesystem the sealed file itself is linked into place; elsewhere a
        // synced copy is. Either way the link refuses an existing name.
        let linked = match link_to(&segment.file, &final_path) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::EXIST => {
                Err(std::io::ErrorKind::AlreadyExists.into())
            }
            Err(_) => self.copy_into_place(&segment, &final_path),
        };
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return self.keep_existing(&name, &segment);
            }
            Err(e) => return Err(self.err(&final_path)(e)),
        }
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(self.err(&dir))?;

        let stored = self.read_blob(&name)?;
        verify(&stored, None, segment.bytes)?;
        Ok(stored)
    }

    /// Writes a synced copy of the segment next to `final_path`, then links it there.
    fn copy_into_place(&self, segment: &SegmentUpload, final_path: &Path) -> std::io::Result<()> {
        let partial = unique_partial(final_path);
        let result = (|| {
            let mut out = fs::File::create_new(&partial)?;
            std::io::copy(&mut &segment.file, &mut out)?;
            out.sync_all()?;
            link_new(&partial, final_path)
        })();
        let _ = fs::remove_file(&partial);
        result
    }

    /// The blob already stored under the segment's name, if it is this segment (same
    /// metadata and the same bytes); otherwise a `Conflict`, and the blob is left alone.
    fn keep_existing(
        &self,
        name: &str,
        segment: &SegmentUpload,
    ) -> Result<StoredBlob, UploadError> {
        let conflict = |why: String| UploadError::Conflict {
            blob: name.to_owned(),
            why,
        };
        let path = self.root.join(name);
        let theirs = match self.read_metadata(&path_with_suffix(&path, META)) {
            Ok(m) => m,
            Err(_) => return Err(conflict("it has no readable metadata".into())),
        };
        if let Some(why) = segment.facts.differs_from(&theirs, None) {
            return Err(conflict(why));
        }
        let same =
            same_content(&segment.file, &path).map_err(|source| UploadError::ReadSegment {
                segment: name.to_owned(),
                source,
            })?;
        if !same {
            return Err(conflict("its content differs".into()));
        }
        let stored = self.read_blob(name)?;
        verify(&stored, None, segment.bytes)?;
        Ok(stored)
    }

    fn read_metadata(&self, meta_path: &Path) -> Result<BTreeMap<String, String>, UploadError> {
        let text = fs::read(meta_path).map_err(self.err(meta_path))?;
        serde_json::from_slice(&text).map_err(|e| UploadError::Local {
            path: meta_path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    fn read_blob(&self, name: &str) -> Result<StoredBlob, UploadError> {
        let path = self.root.join(name);
        let bytes = fs::metadata(&path).map_err(self.err(&path))?.len();
        let metadata = self.read_metadata(&path_with_suffix(&path, META))?;
        Ok(StoredBlob {
            name: name.to_owned(),
            bytes,
            metadata,
        })
    }

    fn list(&self, asset: &str) -> Result<Vec<StoredBlob>, UploadError> {
        let dir = self.root.join(asset);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(UploadError::Local {
                    path: dir,
                    source: e,
                });
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(self.err(&dir))?;
            // The gap records' folder (and anything else that is not a file) is no blob, and
            // neither is the index.
            if entry.file_type().map_err(self.err(&dir))?.is_dir() {
                continue;
            }
            let file = entry.file_name().to_string_lossy().into_owned();
            if !file.ends_with(PARTIAL) && !file.ends_with(META) && file != INDEX_FILE {
                names.push(format!("{asset}/{file}"));
            }
        }
        names.sort();
        names.iter().map(|n| self.read_blob(n)).collect()
    }

    fn write_gaps(&self, asset: &str, gaps: &[Gap]) -> Result<(), UploadError> {
        let dir = self.root.join(asset).join(GAPS_DIR);
        let mut created = Vec::new();
        for gap in gaps {
            let path = self.root.join(gaps::record_name(asset, gap));
            if path.exists() {
                continue;
            }
            if created.is_empty() {
                fs::create_dir_all(&dir).map_err(self.err(&dir))?;
            }
            let tmp = unique_partial(&path);
            let placed =
                write_synced(&tmp, &gaps::record_json(gap)).and_then(|()| {
                    match link_new(&tmp, &path) {
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                        other => other,
                    }
                });
            let _ = fs::remove_file(&tmp);
            placed.map_err(self.err(&path))?;
            created.push(Record::Gap(*gap));
        }
        if created.is_empty() {
            return Ok(());
        }
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(self.err(&dir))?;
        self.index(asset)
            .append(&created)
            .map_err(self.index_err(asset))
    }
}

#[async_trait]
impl AssetStore for LocalStore {
    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn prepare(&self) -> Result<(), UploadError> {
        fs::create_dir_all(&self.root).map_err(self.err(&self.root))
    }

    async fn put_segment(&self, segment: SegmentUpload) -> Result<StoredBlob, UploadError> {
        self.blocking(move |store| store.store_blob(segment)).await
    }

    async fn list_range(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<InRange<StoredBlob>, UploadError> {
        let asset = asset.to_owned();
        self.blocking(move |store| {
            let found = store
                .index(&asset)
                .blobs(from, to)
                .map_err(store.index_err(&asset))?;
            Ok(found.map_or_else(InRange::no_asset, |items| InRange {
                items,
                asset_has_blobs: true,
            }))
        })
        .await
    }

    async fn spans(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<InRange<(Ticks90k, Ticks90k)>, UploadError> {
        let asset = asset.to_owned();
        self.blocking(move |store| {
            let found = store
                .index(&asset)
                .spans(from, to)
                .map_err(store.index_err(&asset))?;
            Ok(found.map_or_else(InRange::no_asset, |items| InRange {
                items,
                asset_has_blobs: true,
            }))
        })
        .await
    }

    async fn list_asset(&self, asset: &str) -> Result<Vec<StoredBlob>, UploadError> {
        let asset = asset.to_owned();
        self.blocking(move |store| store.list(&asset)).await
    }

    fn hold_room(&self, key: &str, device: u64, budget: u64) {
        self.caches
            .lock_unpoisoned()
            .insert(key.to_owned(), (device, budget));
    }

    fn release_room(&self, key: &str) {
        self.caches.lock_unpoisoned().remove(key);
    }

    async fn put_gaps(&self, asset: &str, gaps: &[Gap]) -> Result<(), UploadError> {
        let (asset, gaps) = (asset.to_owned(), gaps.to_vec());
        self.blocking(move |store| store.write_gaps(&asset, &gaps))
            .await
    }

    async fn list_gaps(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<Vec<Gap>, UploadError> {
        let asset = asset.to_owned();
        self.blocking(move |store| {
            let mut found = store
                .index(&asset)
                .gaps(from, to)
                .map_err(store.index_err(&asset))?;
            gaps::normalize(&mut found);
            Ok(found)
        })
        .await
    }

    async fn read_blob(&self, name: &str) -> Result<Vec<u8>, UploadError> {
        let path = self.root.join(name);
        tokio::fs::read(&path)
            .await
            .map_err(self.not_found_or(name, &path))
    }

    async fn blob_len(&self, name: &str) -> Result<u64, UploadError> {
        let path = self.root.join(name);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(self.not_found_or(name, &path))?;
        Ok(meta.len())
    }

    async fn read_blob_range(
        &self,
        name: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, UploadError> {
        use futures::TryStreamExt;
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.root.join(name);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(self.not_found_or(name, &path))?;
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(self.err(&path))?;
        let part = file.take(range.end.saturating_sub(range.start));
        let chunks = tokio_util::io::ReaderStream::with_capacity(part, READ_CHUNK);
        Ok(Box::pin(chunks.map_err(move |source| UploadError::Local {
            path: path.clone(),
            source,
        })))
    }
}

/// Checks what the store reports against what was sent.
/// `sha256_hex`, when the store computed one while sending, must be in the metadata.
pub(super) fn verify(
    stored: &StoredBlob,
    sha256_hex: Option<&str>,
    bytes: u64,
) -> Result<(), UploadError> {
    if stored.bytes != bytes {
        return Err(UploadError::Verify {
            blob: stored.name.clone(),
            what: format!("store has {} bytes, segment has {bytes}", stored.bytes),
        });
    }
    if stored.metadata.get("sha256").map(String::as_str) != sha256_hex {
        return Err(UploadError::Verify {
            blob: stored.name.clone(),
            what: "sha256 metadata does not match".into(),
        });
    }
    Ok(())
}

/// Hard-links the open file `file` at `to` (Linux: through `/proc/self/fd`, which needs no
/// privilege, unlike `AT_EMPTY_PATH`). Fails across filesystems; the caller then copies.
fn link_to(file: &fs::File, to: &Path) -> rustix::io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        proc_path.as_str(),
        rustix::fs::CWD,
        to,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
}

/// Links `from` at `to`, failing with `AlreadyExists` instead of replacing what is there.
fn link_new(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::hard_link(from, to)
}

/// A temporary name beside `path` that no other writer uses; listings skip it.
fn unique_partial(path: &Path) -> PathBuf {
    let tag: u64 = rand::random();
    path_with_suffix(path, &format!(".{tag:016x}{PARTIAL}"))
}

/// Whether the open segment and the file at `path` hold the same bytes (the same inode when
/// the blob was linked from the cache, so the comparison reads nothing then).
fn same_content(file: &fs::File, path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek};
    use std::os::unix::fs::MetadataExt;
    let (ours, theirs) = (file.metadata()?, fs::metadata(path)?);
    if ours.dev() == theirs.dev() && ours.ino() == theirs.ino() {
        return Ok(true);
    }
    if ours.len() != theirs.len() {
        return Ok(false);
    }
    let mut a = file.try_clone()?;
    a.seek(std::io::SeekFrom::Start(0))?;
    let mut b = fs::File::open(path)?;
    let (mut x, mut y) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn path_with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Duration90k, Ticks90k};
    use crate::upload::SegmentFacts;

    fn is_same_file(a: &fs::File, b: &fs::File) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (a.metadata(), b.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    fn segment(dir: &Path, seq: u64, body: &[u8]) -> SegmentUpload {
        let path = dir.join(format!("seg{seq}.mp4"));
        fs::write(&path, body).unwrap();
        SegmentUpload {
            facts: SegmentFacts {
                asset: "asset-1".into(),
                run: 1,
                sequence: seq,
                start: Ticks90k::from_secs(1_700_000_000 + 30 * seq as i64),
                end: Ticks90k::from_secs(1_700_000_030 + 30 * seq as i64),
                codecs: "avc1.640028".into(),
                extension: "mp4".into(),
            },
            file: fs::File::open(&path).unwrap(),
            bytes: body.len() as u64,
        }
    }

    #[tokio::test]
    async fn on_the_cache_filesystem_a_blob_shares_the_sealed_file_and_otherwise_is_copied() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_owned());
        store.prepare().await.unwrap();
        let body: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();

        let seg = segment(cache.path(), 1, &body);
        let cached = seg.file.try_clone().unwrap();
        let blob = store.put_segment(seg).await.unwrap();
        let stored = fs::File::open(root.path().join(&blob.name)).unwrap();
        assert!(is_same_file(&stored, &cached), "expected a hard link");

        // Evicted while the upload was starting: nothing left to link, so the open file is copied.
        let seg = segment(cache.path(), 2, &body);
        fs::remove_file(cache.path().join("seg2.mp4")).unwrap();
        let cached = seg.file.try_clone().unwrap();
        let blob = store.put_segment(seg).await.unwrap();
        let stored = fs::File::open(root.path().join(&blob.name)).unwrap();
        assert!(!is_same_file(&stored, &cached), "expected a copy");
        assert_eq!(fs::read(root.path().join(&blob.name)).unwrap(), body);
        assert_eq!(blob.bytes, body.len() as u64);
    }

    #[tokio::test]
    async fn upload_list_verify_and_idempotent_reupload() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_owned());
        store.prepare().await.unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let first = store
            .put_segment(segment(cache.path(), 2, &body))
            .await
            .unwrap();
        store
            .put_segment(segment(cache.path(), 1, b"older"))
            .await
            .unwrap();
        // Re-upload after a "crash": same name, overwritten, not duplicated.
        let again = store
            .put_segment(segment(cache.path(), 2, &body))
            .await
            .unwrap();
        assert_eq!(first, again);
        // A torn earlier attempt is invisible.
        fs::write(root.path().join("asset-1/zzz.mp4.partial"), b"torn").unwrap();
        let listed = store.list_asset("asset-1").await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].bytes, 5);
        assert_eq!(listed[1], first);
        assert_eq!(listed[1].metadata["sequence"], "2");
        assert_eq!(fs::read(root.path().join(&first.name)).unwrap(), body);
        assert!(store.list_asset("other").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_second_writer_on_the_same_asset_name_fails_and_leaves_the_first_blob() {
        let (first_cache, second_cache) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_owned());
        store.prepare().await.unwrap();
        let ours = store
            .put_segment(segment(first_cache.path(), 1, b"first writer"))
            .await
            .unwrap();
        let path = root.path().join(&ours.name);

        // Same asset, run, sequence and second, other bytes: another process on this asset.
        let err = store
            .put_segment(segment(second_cache.path(), 1, b"second writer"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ConditionNotMet", "{err}");
        assert!(err.to_string().contains("its content differs"), "{err}");
        // Other metadata under the name (another span): refused on the metadata alone.
        let mut other = segment(second_cache.path(), 1, b"first writer");
        other.facts.end += Duration90k(90_000);
        let err = store.put_segment(other).await.unwrap_err();
        assert_eq!(err.code(), "ConditionNotMet", "{err}");
        assert!(err.to_string().contains("its end is"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"first writer");
        assert_eq!(
            store.list_asset("asset-1").await.unwrap(),
            vec![ours.clone()]
        );

        // The same segment again (a crash before it was marked uploaded) is kept, not refused.
        let again = store
            .put_segment(segment(first_cache.path(), 1, b"first writer"))
            .await
            .unwrap();
        assert_eq!(again, ours);

        // Metadata left by an interrupted attempt of this segment is taken over; another
        // writer's (its blob still in flight) is not.
        let second = segment(first_cache.path(), 2, b"two");
        let meta = root
            .path()
            .join(format!("{}{META}", second.facts.blob_name()));
        let mut foreign = second.facts.metadata(None);
        foreign.insert("run".into(), "9".into());
        fs::write(&meta, serde_json::to_vec(&foreign).unwrap()).unwrap();
        let err = store.put_segment(second).await.unwrap_err();
        assert_eq!(err.code(), "ConditionNotMet", "{err}");
        let second = segment(first_cache.path(), 2, b"two");
        fs::write(
            &meta,
            serde_json::to_vec(&second.facts.metadata(None)).unwrap(),
        )
        .unwrap();
        store.put_segment(second).await.unwrap();
        let names: Vec<String> = fs::read_dir(root.path().join("asset-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(PARTIAL))
            .collect();
        assert!(names.is_empty(), "leftovers: {names:?}");
    }

    #[tokio::test]
    async fn gap_records_are_idempotent_listed_by_range_and_are_not_blobs() {
        use crate::cache::GapCause;
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_owned());
        store.prepare().await.unwrap();
        store
            .put_segment(segment(cache.path(), 1, b"media"))
            .await
            .unwrap();
        let t = |s: i64| Ticks90k::from_secs(1_700_000_000 + s);
        let offline = Gap {
            start: t(60),
            end: t(90),
            cause: GapCause::CameraOffline,
        };
        let crash = Gap {
            start: t(300),
            end: t(302),
            cause: GapCause::Crash,
        };
        store.put_gaps("asset-1", &[crash, offline]).await.unwrap();
        let file = root.path().join(gaps::record_name("asset-1", &offline));
        let first = fs::metadata(&file).unwrap();
        // Again, after a restart: the same records, none added, none rewritten.
        store.put_gaps("asset-1", &[offline, crash]).await.unwrap();
        let again = fs::metadata(&file).unwrap();
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                (first.ino(), first.mtime_nsec()),
                (again.ino(), again.mtime_nsec())
            );
        }
        let record: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
        assert_eq!(record["cause"], "CameraOffline");
        assert_eq!(record["startUtc"], t(60).to_rfc3339_millis());
        fs::write(file.with_extension("json.00.partial"), b"torn").unwrap();

        let all = store.list_gaps("asset-1", t(0), t(1000)).await.unwrap();
        assert_eq!(all, vec![offline, crash], "by start, no leftovers");
        assert_eq!(
            store.list_gaps("asset-1", t(80), t(100)).await.unwrap(),
            vec![offline]
        );
        assert!(
            store
                .list_gaps("asset-1", t(90), t(300))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .list_gaps("other", t(0), t(1000))
                .await
                .unwrap()
                .is_empty()
        );
        let blobs = store.list_asset("asset-1").await.unwrap();
        assert_eq!(blobs.len(), 1, "the gaps folder is not a blob: {blobs:?}");
    }

    #[tokio::test]
    async fn a_segment_shorter_than_the_index_says_is_refused() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_owned());
        let mut seg = segment(cache.path(), 1, b"12345");
        seg.bytes = 9;
        let err = store.put_segment(seg).await.unwrap_err().to_string();
        assert!(err.contains("has 5 bytes, the cache index says 9"), "{err}");
        assert!(store.list_asset("asset-1").await.unwrap().is_empty());
    }
}
