//! The local-directory asset store (`file:///dir`), the default when nothing else is configured.
//!
//! Layout: `<root>/<asset>/<blob file>` plus `<blob file>.json` holding the metadata. A blob is
//! written as `<blob file>.partial`, fsynced, then renamed into place after its metadata, so a
//! crash leaves either the previous complete blob or a `.partial` that listings ignore and the
//! next attempt overwrites. On the cache's filesystem the partial is a hard link to the sealed
//! (immutable, already fsynced) cache file rather than a copy, so storing a segment reads none
//! of its bytes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{AssetStore, SegmentUpload, StoredBlob, UploadError};

const PARTIAL: &str = ".partial";
const META: &str = ".json";

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
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

    fn write_blob(&self, segment: SegmentUpload) -> Result<StoredBlob, UploadError> {
        let name = segment.facts.blob_name();
        let final_path = self.root.join(&name);
        let dir = final_path.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(self.err(&dir))?;
        let partial = path_with_suffix(&final_path, PARTIAL);

        // A stale partial from an interrupted attempt would make the link fail.
        match fs::remove_file(&partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(self.err(&partial)(e));
            }
            _ => {}
        }
        let linked = link_to(&segment.file, &partial).is_ok();
        if !linked {
            let mut out = fs::File::create(&partial).map_err(self.err(&partial))?;
            std::io::copy(&mut &segment.file, &mut out).map_err(|source| {
                UploadError::ReadSegment {
                    segment: name.clone(),
                    source,
                }
            })?;
            out.sync_all().map_err(self.err(&partial))?;
        }
        let stored_bytes = fs::metadata(&partial).map_err(self.err(&partial))?.len();
        if stored_bytes != segment.bytes {
            return Err(UploadError::SegmentSize {
                segment: name,
                expected: segment.bytes,
                actual: stored_bytes,
            });
        }

        // No content digest here: the blob is the sealed inode itself, or a copy made from the
        // page cache on this machine, so re-reading either would only hash the same memory. The
        // cost showed: hashing every segment was 15 % of recording CPU.
        let metadata = segment.facts.metadata(None);
        let meta_path = path_with_suffix(&final_path, META);
        let meta_tmp = path_with_suffix(&meta_path, PARTIAL);
        let json = serde_json::to_vec_pretty(&metadata).unwrap_or_default();
        write_synced(&meta_tmp, &json).map_err(self.err(&meta_tmp))?;
        // Metadata first: a blob file is never visible without the metadata describing it.
        fs::rename(&meta_tmp, &meta_path).map_err(self.err(&meta_path))?;
        fs::rename(&partial, &final_path).map_err(self.err(&final_path))?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(self.err(&dir))?;

        let stored = self.read_blob(&name)?;
        verify(&stored, None, segment.bytes)?;
        Ok(stored)
    }

    fn read_blob(&self, name: &str) -> Result<StoredBlob, UploadError> {
        let path = self.root.join(name);
        let bytes = fs::metadata(&path).map_err(self.err(&path))?.len();
        let meta_path = path_with_suffix(&path, META);
        let text = fs::read(&meta_path).map_err(self.err(&meta_path))?;
        let metadata: BTreeMap<String, String> =
            serde_json::from_slice(&text).map_err(|e| UploadError::Local {
                path: meta_path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
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
            let file = entry
                .map_err(self.err(&dir))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if !file.ends_with(PARTIAL) && !file.ends_with(META) {
                names.push(format!("{asset}/{file}"));
            }
        }
        names.sort();
        names.iter().map(|n| self.read_blob(n)).collect()
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
        self.blocking(move |store| store.write_blob(segment)).await
    }

    async fn list_asset(&self, asset: &str) -> Result<Vec<StoredBlob>, UploadError> {
        let asset = asset.to_owned();
        self.blocking(move |store| store.list(&asset)).await
    }

    async fn read_blob(&self, name: &str) -> Result<Vec<u8>, UploadError> {
        let path = self.root.join(name);
        tokio::fs::read(&path).await.map_err(self.err(&path))
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
    use crate::time::Ticks90k;
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
