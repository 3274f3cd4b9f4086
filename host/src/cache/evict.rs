//! Making room: the chooser (the evictor plugin) is asked without any lock held; each victim's
//! gap is logged before its file is removed, and it leaves the index only once the file is
//! gone. A victim the uploader has open may still be stored: its gap is taken back if so.

use super::logs::sync_dir;
use super::{Budget, Cache, CacheError, Gap, GapCause, SegmentId, SegmentMeta, io, lock};
use crate::time::Ticks90k;

impl Cache {
    /// Makes room for `incoming` bytes: while over budget, asks `choose` for victims among the
    /// sealed segments, verifies and deletes them (falling back to oldest first when the
    /// answer is unusable), and records evicted ranges that were never uploaded as gaps.
    pub fn reserve(
        &self,
        incoming: u64,
        choose: &mut dyn FnMut(&[SegmentMeta], Budget) -> Vec<SegmentId>,
    ) -> Result<Vec<SegmentMeta>, CacheError> {
        let mut evicted = Vec::new();
        loop {
            let used = self.used_bytes();
            if used + incoming <= self.media_limit() {
                return Ok(evicted);
            }
            let budget = Budget {
                limit_bytes: self.media_limit(),
                used_bytes: used,
                incoming_bytes: incoming,
            };
            if !self.evict_round(budget, choose, GapCause::EvictedBeforeUpload, &mut evicted)? {
                return Err(CacheError::NoRoom {
                    incoming,
                    limit: self.media_limit(),
                    open: self.open_bytes(),
                });
            }
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
        let used = self.used_bytes();
        let budget = Budget {
            limit_bytes: used,
            used_bytes: used,
            incoming_bytes: incoming,
        };
        let mut evicted = Vec::new();
        if !self.evict_round(budget, choose, GapCause::EvictedDiskFull, &mut evicted)? {
            return Err(CacheError::NoRoom {
                incoming,
                limit: used,
                open: self.open_bytes(),
            });
        }
        Ok(evicted)
    }

    fn open_bytes(&self) -> u64 {
        self.open_progress().map_or(0, |(bytes, _)| bytes)
    }

    /// One answer of the chooser, verified (known ids, not empty; else the lowest id),
    /// deleted, and logged as gaps with `cause` where never uploaded. `false` when nothing
    /// sealed is left to evict.
    fn evict_round(
        &self,
        budget: Budget,
        choose: &mut dyn FnMut(&[SegmentMeta], Budget) -> Vec<SegmentId>,
        cause: GapCause,
        evicted: &mut Vec<SegmentMeta>,
    ) -> Result<bool, CacheError> {
        let entries: Vec<SegmentMeta> = lock(&self.index).sealed.values().cloned().collect();
        if entries.is_empty() {
            return Ok(false);
        }
        let mut victims: Vec<SegmentId> = choose(&entries, budget);
        victims.sort();
        victims.dedup();
        let valid =
            !victims.is_empty() && victims.iter().all(|v| entries.iter().any(|e| e.id == *v));
        if !valid {
            tracing::warn!(
                ?victims,
                "evictor answer unusable; evicting the oldest segment"
            );
            victims = vec![entries[0].id];
        }
        for v in victims {
            if let Some(meta) = self.evict_one(v, cause)? {
                evicted.push(meta);
            }
        }
        sync_dir(self.media())?;
        if let Some(files) = &self.files {
            let live: Vec<SegmentMeta> = lock(&self.index).sealed.values().cloned().collect();
            files.compact(&self.dir, &live, false);
        }
        self.publish_live();
        Ok(true)
    }

    /// Gap first (a crash after the unlink must not lose its cause), then the unlink, then
    /// the index (the bytes stay counted until the file is gone).
    fn evict_one(&self, id: SegmentId, cause: GapCause) -> Result<Option<SegmentMeta>, CacheError> {
        let gap = Gap {
            start: Ticks90k(0),
            end: Ticks90k(0),
            cause,
        };
        let (meta, log_gap) = {
            let index = lock(&self.index);
            let Some(meta) = index.sealed.get(&id) else {
                return Ok(None);
            };
            (
                meta.clone(),
                !meta.uploaded && !index.gap_logged.contains(&id),
            )
        };
        let gap = Gap {
            start: meta.start,
            end: meta.end,
            ..gap
        };
        if log_gap {
            self.record_gap(gap)?;
            lock(&self.index).gap_logged.insert(id);
        }
        self.media()
            .remove_file(&meta.file_name)
            .map_err(io("remove", &meta.file_name))?;
        let mut index = lock(&self.index);
        if let Some(gone) = index.sealed.remove(&id) {
            index.sealed_bytes -= gone.bytes;
        }
        let logged = index.gap_logged.remove(&id);
        if index.uploading == Some(id) {
            // Its upload may still succeed: then the gap was false and is taken back.
            index.uploading = None;
            index.evicted_uploading = Some((id, meta.run, logged.then_some(gap)));
        }
        Ok(Some(meta))
    }
}
