//! Retention of the local store: how much uploaded media it keeps, so that the disk under a box
//! on defaults stays bounded. After each blob it stores, the store deletes its oldest blobs
//! while any rule is broken:
//! - **age** (`max_age`): blobs that ended longer ago than this;
//! - **size per asset** (`max_bytes_per_asset`) and **in total** (`max_bytes`): a blob counts
//!   its whole length, also while the cache still shares its inode (hard link), so the store's
//!   count never undercounts what it will hold alone once the cache lets go;
//! - **free space** (always on): the store's file system keeps free at least the budgets of the
//!   caches on it (registered by their uploaders, [`AssetStore::hold_room`]) plus `min_free`
//!   (default 2 % of its size, at most 1 GiB). Only blobs the store alone holds (link count 1) are deleted for
//!   this rule, since deleting a blob the cache still links frees nothing. With the caches'
//!   whole budgets kept free, a cache can always fill its budget without meeting a full disk,
//!   so its evictor never has to drop media that is not uploaded for want of space.
//!
//! Oldest means by start, across assets for the total and free-space rules. Each deleted blob
//! is taken out of the index first, then its file and metadata are removed. What an asset lost
//! is one `Retention` gap record per asset, from the oldest media ever deleted to the end of the
//! newest deleted; it replaces the previous one and every gap record it covers.
//!
//! [`AssetStore::hold_room`]: crate::upload::AssetStore::hold_room

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use super::LocalStore;
use super::index::{BlobRecord, Record};
use crate::cache::{Gap, GapCause};
use crate::sync::LockExt;
use crate::time::{Duration90k, Ticks90k};
use crate::upload::UploadError;
use crate::upload::gaps::{self, GAPS_DIR};

/// Blobs looked at from the oldest when searching for one the store alone holds.
const SCAN: usize = 64;

/// How much the local store keeps; every rule is optional except the free space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_bytes_per_asset: Option<u64>,
    pub max_bytes: Option<u64>,
    /// Free space kept beyond the caches' budgets; `None`: 2 % of the file system, at most
    /// 1 GiB.
    pub min_free_bytes: Option<u64>,
}

/// Why a blob is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Age,
    AssetSize,
    TotalSize,
    FreeSpace,
}

struct AssetState {
    asset: String,
    bytes: u64,
    oldest: Option<BlobRecord>,
    /// Deleted in this pass: (first start, last end).
    deleted: Option<(Ticks90k, Ticks90k)>,
}

impl LocalStore {
    /// Deletes the oldest blobs while a rule is broken. One pass at a time per store (a pass
    /// already running will see the newest blob too).
    pub(super) fn enforce_retention(&self) -> Result<(), UploadError> {
        let Ok(_pass) = self.retention_pass.try_lock() else {
            return Ok(());
        };
        let mut assets = Vec::new();
        for asset in self.asset_names()? {
            let (bytes, oldest) = self
                .index(&asset)
                .oldest(0)
                .map_err(self.index_err(&asset))?;
            assets.push(AssetState {
                asset,
                bytes,
                oldest,
                deleted: None,
            });
        }
        let horizon = self
            .retention
            .max_age
            .map(|age| Ticks90k::now() - Duration90k::from_std(age));
        loop {
            let (free, reserve) = self.free_and_reserve()?;
            let total: u64 = assets.iter().map(|a| a.bytes).sum();
            let broken = |a: &AssetState| -> Option<Rule> {
                let oldest = a.oldest.as_ref()?;
                if horizon.is_some_and(|h| oldest.end < h) {
                    return Some(Rule::Age);
                }
                if self
                    .retention
                    .max_bytes_per_asset
                    .is_some_and(|m| a.bytes > m)
                {
                    return Some(Rule::AssetSize);
                }
                None
            };
            let victim = match assets.iter().position(|a| broken(a).is_some()) {
                Some(at) => Some((at, broken(&assets[at]).unwrap_or(Rule::Age))),
                None => {
                    let globally_oldest = || {
                        (0..assets.len())
                            .filter(|&i| assets[i].oldest.is_some())
                            .min_by_key(|&i| assets[i].oldest.as_ref().map(|o| o.start))
                    };
                    if self.retention.max_bytes.is_some_and(|m| total > m) {
                        globally_oldest().map(|at| (at, Rule::TotalSize))
                    } else if free < reserve {
                        globally_oldest().map(|at| (at, Rule::FreeSpace))
                    } else {
                        None
                    }
                }
            };
            let Some((at, rule)) = victim else { break };
            let state = &mut assets[at];
            let record = if rule == Rule::FreeSpace {
                // The oldest blob the store alone holds, if any in reach.
                match self.oldest_held_alone(&state.asset)? {
                    Some(r) => r,
                    None => {
                        tracing::warn!(
                            free,
                            reserve,
                            "asset store: the disk is short of room, but every old blob is still shared with a cache"
                        );
                        break;
                    }
                }
            } else {
                state.oldest.clone().expect("a broken rule names a blob")
            };
            self.delete_blob(&state.asset, &record)?;
            tracing::info!(target: "upload", asset = %state.asset, blob = %record.name(&state.asset), ?rule, "retention deleted a blob");
            let (first, last) = state.deleted.unwrap_or((record.start, record.end));
            state.deleted = Some((first.min(record.start), last.max(record.end)));
            let (bytes, oldest) = self
                .index(&state.asset)
                .oldest(0)
                .map_err(self.index_err(&state.asset))?;
            (state.bytes, state.oldest) = (bytes, oldest);
        }
        for state in assets {
            if let Some(span) = state.deleted {
                self.record_retention_gap(&state.asset, span)?;
            }
        }
        Ok(())
    }

    /// The assets in the store: folders whose names are asset names (no `.`).
    fn asset_names(&self) -> Result<Vec<String>, UploadError> {
        let mut names = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(self.err(&self.root)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(self.err(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().map_err(self.err(&self.root))?.is_dir() && !name.contains('.') {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Free bytes of the store's file system, and what must stay free: the budgets of the
    /// caches on it plus `min_free`.
    fn free_and_reserve(&self) -> Result<(u64, u64), UploadError> {
        let stat = rustix::fs::statvfs(&self.root)
            .map_err(|e| self.err(&self.root)(std::io::Error::from(e)))?;
        let size = stat.f_blocks * stat.f_frsize;
        let free = stat.f_bavail * stat.f_frsize;
        let device = fs::metadata(&self.root)
            .map_err(self.err(&self.root))?
            .dev();
        let caches: u64 = self
            .caches
            .lock_unpoisoned()
            .values()
            .filter(|(dev, _)| *dev == device)
            .map(|(_, budget)| budget)
            .sum();
        let min_free = self
            .retention
            .min_free_bytes
            .unwrap_or((size / 50).min(1 << 30));
        Ok((free, caches + min_free))
    }

    fn oldest_held_alone(&self, asset: &str) -> Result<Option<BlobRecord>, UploadError> {
        let index = self.index(asset);
        for nth in 0..SCAN {
            let (_, Some(record)) = index.oldest(nth).map_err(self.index_err(asset))? else {
                return Ok(None);
            };
            let path = self.root.join(record.name(asset));
            match fs::metadata(&path) {
                Ok(m) if m.nlink() > 1 => continue,
                Ok(_) => return Ok(Some(record)),
                // Gone from the folder already: removing it from the index frees nothing but
                // is right all the same.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(record)),
                Err(e) => return Err(self.err(&path)(e)),
            }
        }
        Ok(None)
    }

    /// Out of the index first (readers stop offering it), then the file and its metadata.
    fn delete_blob(&self, asset: &str, record: &BlobRecord) -> Result<(), UploadError> {
        self.index(asset)
            .append(&[Record::Unblob(record.clone())])
            .map_err(self.index_err(asset))?;
        let path = self.root.join(record.name(asset));
        for p in [path.clone(), super::path_with_suffix(&path, super::META)] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(&p)(e)),
            }
        }
        Ok(())
    }

    /// One `Retention` gap per asset: from the oldest media ever deleted to `span`'s end,
    /// replacing the previous one and the gap records it now covers.
    fn record_retention_gap(
        &self,
        asset: &str,
        (first, last): (Ticks90k, Ticks90k),
    ) -> Result<(), UploadError> {
        let index = self.index(asset);
        let known = index
            .gaps(Ticks90k(i64::MIN), Ticks90k(i64::MAX))
            .map_err(self.index_err(asset))?;
        let start = known
            .iter()
            .filter(|g| g.cause == GapCause::Retention)
            .map(|g| g.start)
            .fold(first, Ticks90k::min);
        let gap = Gap {
            start,
            end: last,
            cause: GapCause::Retention,
        };
        self.write_gaps(asset, &[gap])?;
        let covered: Vec<Gap> = known
            .into_iter()
            .filter(|g| *g != gap && g.start.max(g.end) <= last)
            .collect();
        if covered.is_empty() {
            return Ok(());
        }
        index
            .append(
                &covered
                    .iter()
                    .map(|g| Record::Ungap(*g))
                    .collect::<Vec<_>>(),
            )
            .map_err(self.index_err(asset))?;
        for g in &covered {
            let path = self.root.join(gaps::record_name(asset, g));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(&path)(e)),
            }
        }
        let dir = self.root.join(asset).join(GAPS_DIR);
        let _ = fs::File::open(&dir).and_then(|d| d.sync_all());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::{AssetStore, SegmentFacts, SegmentUpload};

    fn facts(asset: &str, seq: u64, start: Ticks90k) -> SegmentFacts {
        SegmentFacts {
            asset: asset.into(),
            run: 1,
            sequence: seq,
            start,
            end: start + Duration90k::from_secs(30),
            codecs: "avc1.640028".into(),
            extension: "mp4".into(),
        }
    }

    /// Stores a 1000-byte segment (a copy, so the store alone holds it, unless `keep` links it).
    async fn put(store: &LocalStore, cache: &std::path::Path, f: SegmentFacts) {
        let path = cache.join(format!("{}-{}.mp4", f.asset, f.sequence));
        fs::write(&path, vec![7u8; 1000]).unwrap();
        let file = fs::File::open(&path).unwrap();
        fs::remove_file(&path).unwrap(); // evicted from the cache: the store copies it
        store
            .put_segment(SegmentUpload {
                facts: f,
                file,
                bytes: 1000,
            })
            .await
            .unwrap();
    }

    fn sequences(store: &LocalStore, asset: &str) -> Vec<u64> {
        let index = store.index(asset);
        (0..)
            .map_while(|n| index.oldest(n).unwrap().1)
            .map(|r| r.sequence)
            .collect()
    }

    #[tokio::test]
    async fn size_caps_delete_the_oldest_per_asset_and_in_total_and_leave_one_retention_gap() {
        let (cache, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = LocalStore::with_retention(
            root.path().to_owned(),
            Retention {
                max_bytes_per_asset: Some(3000),
                max_bytes: Some(5000),
                min_free_bytes: Some(0),
                ..Retention::default()
            },
        );
        let t0 = Ticks90k::from_secs(1_800_000_000);
        let at = |n: i64| t0 + Duration90k::from_secs(n * 30);
        let offline = Gap {
            start: at(1) - Duration90k(10),
            end: at(1),
            cause: GapCause::CameraOffline,
        };
        store.put_gaps("a", &[offline]).await.unwrap();
        for n in 0..5 {
            put(&store, cache.path(), facts("a", n, at(n as i64))).await;
        }
        assert_eq!(sequences(&store, "a"), [2, 3, 4], "3000 bytes per asset");
        // Another asset, recorded later: the total cap deletes the oldest across both.
        for n in 0..3 {
            put(&store, cache.path(), facts("b", n, at(10 + n as i64))).await;
        }
        assert_eq!(sequences(&store, "a"), [3, 4]);
        assert_eq!(sequences(&store, "b"), [0, 1, 2]);
        let files = fs::read_dir(root.path().join("a")).unwrap().count();
        assert_eq!(files, 2 * 2 + 2, "blobs, metadata, index, gaps folder");

        // One Retention gap from the first media deleted to the end of the last, which took
        // the offline gap it covers with it.
        let gaps = store
            .list_gaps("a", Ticks90k(i64::MIN), Ticks90k(i64::MAX))
            .await
            .unwrap();
        assert_eq!(
            gaps,
            vec![Gap {
                start: at(0),
                end: at(3),
                cause: GapCause::Retention
            }]
        );
        let records = fs::read_dir(root.path().join("a").join(GAPS_DIR))
            .unwrap()
            .count();
        assert_eq!(records, 1);
        // A fresh store (another process) reads the same from the folder.
        let fresh = LocalStore::new(root.path().to_owned());
        let again = fresh
            .list_range("a", Ticks90k(i64::MIN), Ticks90k(i64::MAX))
            .await
            .unwrap();
        assert_eq!(again.items.len(), 2);
    }

    #[tokio::test]
    async fn old_media_goes_by_age() {
        let (cache, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = LocalStore::with_retention(
            root.path().to_owned(),
            Retention {
                max_age: Some(Duration::from_secs(3600)),
                min_free_bytes: Some(0),
                ..Retention::default()
            },
        );
        let now = Ticks90k::now();
        let hour = Duration90k::from_secs(3600);
        put(
            &store,
            cache.path(),
            facts("a", 0, now - hour - hour - hour),
        )
        .await;
        put(&store, cache.path(), facts("a", 1, now - hour - hour)).await;
        assert!(sequences(&store, "a").is_empty(), "both older than an hour");
        put(
            &store,
            cache.path(),
            facts("a", 2, now - Duration90k::from_secs(60)),
        )
        .await;
        assert_eq!(sequences(&store, "a"), [2]);
    }

    #[tokio::test]
    async fn the_free_space_rule_deletes_only_what_the_store_alone_holds() {
        let (cache, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // More free space asked for than the file system has: every blob held alone goes.
        let store = LocalStore::with_retention(
            root.path().to_owned(),
            Retention {
                min_free_bytes: Some(u64::MAX / 4),
                ..Retention::default()
            },
        );
        let t0 = Ticks90k::from_secs(1_800_000_000);
        put(&store, cache.path(), facts("a", 0, t0)).await;
        assert!(sequences(&store, "a").is_empty());
        // A blob still linked by its cache frees nothing when deleted: it stays.
        let path = cache.path().join("linked.mp4");
        fs::write(&path, vec![1u8; 1000]).unwrap();
        store
            .put_segment(SegmentUpload {
                facts: facts("a", 1, t0 + Duration90k(1)),
                file: fs::File::open(&path).unwrap(),
                bytes: 1000,
            })
            .await
            .unwrap();
        assert_eq!(sequences(&store, "a"), [1]);
    }
}
