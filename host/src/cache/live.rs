//! The cache's live view: what a player may read before upload.
//!
//! Owns the published [`LiveView`] of one cache (a `tokio::sync::watch` channel, replaced
//! after every journal sync, seal, upload mark and eviction) and [`LiveCaches`], the
//! process-wide map from asset name to the cache recording it, which the playback server
//! reads. Must not hold a lock across a file-system call nor make the recorder wait for a
//! reader: publishing is a memory operation (the live lock, then the index lock, each held for
//! a copy), and readers only ever clone an `Arc` out of the channel.
//!
//! Only durable bytes are described: a fragment enters the view after its journal line is
//! synced, so a player can never be served bytes a crash would take back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use cap_std::fs::File;
use tokio::sync::watch;

use super::names::open_name;
use super::{Cache, CacheError, RunId, SegmentId, io, lock};
use crate::time::{Duration90k, Ticks90k};

/// One durable fragment of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveFragment {
    /// Byte offset in the segment file; the first fragment starts at 0 and so includes the
    /// segment's init (header) bytes.
    pub offset: u64,
    pub len: u64,
    /// Wall-clock instant of its first sample.
    pub start: Ticks90k,
    pub end: Ticks90k,
    /// It starts with a video keyframe: a player can begin decoding here.
    pub independent: bool,
}

impl LiveFragment {
    pub fn duration(&self) -> Duration90k {
        self.end - self.start
    }
}

/// A segment a player can read from the cache: sealed (complete), or the open one up to its
/// last durable fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSegment {
    pub id: SegmentId,
    pub run: RunId,
    pub sequence: u64,
    pub start: Ticks90k,
    pub end: Ticks90k,
    /// Durable bytes (for a sealed segment, the whole file).
    pub bytes: u64,
    pub sealed: bool,
    pub uploaded: bool,
    /// Its fragments, when this process wrote it (a segment found at start-up has none).
    pub fragments: Arc<[LiveFragment]>,
}

/// What the cache holds for a player, oldest first; the open segment, if it has a durable
/// fragment, is last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveView {
    pub segments: Vec<LiveSegment>,
}

impl LiveView {
    pub fn open(&self) -> Option<&LiveSegment> {
        self.segments.last().filter(|s| !s.sealed)
    }
}

/// The writer's side, kept apart from the writer lock (which is held across syncs).
#[derive(Default)]
pub(super) struct LiveState {
    open: Option<LiveSegment>,
    /// Fragment lists of segments sealed by this process, dropped once they leave the index.
    sealed_fragments: BTreeMap<SegmentId, Arc<[LiveFragment]>>,
}

pub(super) type LiveSender = watch::Sender<Arc<LiveView>>;

impl Cache {
    /// The live view, updated after every durable change.
    pub fn live(&self) -> watch::Receiver<Arc<LiveView>> {
        self.live_sender.subscribe()
    }

    /// A segment was begun: it becomes visible with its first durable fragment.
    pub(super) fn live_begin(&self, id: SegmentId, run: RunId, sequence: u64, start: Ticks90k) {
        lock(&self.live).open = Some(LiveSegment {
            id,
            run,
            sequence,
            start,
            end: start,
            bytes: 0,
            sealed: false,
            uploaded: false,
            fragments: Arc::from([]),
        });
    }

    /// A fragment of the open segment `id` is durable (its journal line is synced).
    pub(super) fn live_fragment(
        &self,
        id: SegmentId,
        offset: u64,
        len: u64,
        end: Ticks90k,
        independent: bool,
    ) {
        {
            let mut live = lock(&self.live);
            let Some(open) = live.open.as_mut().filter(|o| o.id == id) else {
                return;
            };
            let fragment = LiveFragment {
                offset,
                len,
                start: open.end,
                end,
                independent,
            };
            let mut fragments = open.fragments.to_vec();
            fragments.push(fragment);
            open.fragments = fragments.into();
            open.end = end;
            open.bytes = offset + len;
        }
        self.publish_live();
    }

    /// The open segment `id` was sealed (or removed, having no fragment).
    pub(super) fn live_sealed(&self, id: SegmentId) {
        {
            let mut live = lock(&self.live);
            if let Some(open) = live.open.take_if(|o| o.id == id)
                && !open.fragments.is_empty()
            {
                live.sealed_fragments.insert(id, open.fragments);
            }
        }
        self.publish_live();
    }

    /// Publishes the view as the index and the open segment are now.
    pub(super) fn publish_live(&self) {
        let view = {
            let mut live = lock(&self.live);
            let index = lock(&self.index);
            live.sealed_fragments
                .retain(|id, _| index.sealed.contains_key(id));
            let mut segments: Vec<LiveSegment> = index
                .sealed
                .values()
                .map(|m| LiveSegment {
                    id: m.id,
                    run: m.run,
                    sequence: m.sequence,
                    start: m.start,
                    end: m.end,
                    bytes: m.bytes,
                    sealed: true,
                    uploaded: m.uploaded,
                    fragments: live
                        .sealed_fragments
                        .get(&m.id)
                        .cloned()
                        .unwrap_or_else(|| Arc::from([])),
                })
                .collect();
            segments.extend(
                live.open
                    .iter()
                    .filter(|o| !o.fragments.is_empty())
                    .cloned(),
            );
            LiveView { segments }
        };
        self.live_sender.send_replace(Arc::new(view));
    }

    /// Opens segment `id` for reading, wherever it is now: the open file, or its sealed name
    /// (a seal renames the file between two looks; an open handle survives the rename and an
    /// eviction). Blocking: call it off the async runtime.
    pub fn open_live(&self, id: SegmentId) -> Result<File, CacheError> {
        // A seal renames before it indexes: a few looks cover that window.
        for _ in 0..20 {
            let sealed = lock(&self.index)
                .sealed
                .get(&id)
                .map(|m| m.file_name.clone());
            let name = sealed.unwrap_or_else(|| open_name(id));
            match self.media().open(&name) {
                Ok(file) => return Ok(file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(io("open", name)(e)),
            }
        }
        Err(CacheError::UnknownSegment(id))
    }
}

/// The caches recording now, by asset name, for the playback server. Holds them weakly: a
/// cache that was closed and dropped is gone from here too.
#[derive(Default)]
pub struct LiveCaches {
    caches: Mutex<HashMap<String, Weak<Cache>>>,
}

impl LiveCaches {
    /// The process's map: the graph registers its asset sinks' caches, `serve`, `run --http`
    /// and `demo` read it.
    pub fn global() -> Arc<LiveCaches> {
        static GLOBAL: OnceLock<Arc<LiveCaches>> = OnceLock::new();
        GLOBAL.get_or_init(Arc::default).clone()
    }

    /// `cache` records `asset` from now on (replacing an earlier cache of that asset).
    pub fn register(&self, asset: &str, cache: &Arc<Cache>) {
        let mut caches = lock(&self.caches);
        caches.retain(|_, c| c.strong_count() > 0);
        caches.insert(asset.to_owned(), Arc::downgrade(cache));
    }

    pub fn get(&self, asset: &str) -> Option<Arc<Cache>> {
        lock(&self.caches).get(asset).and_then(Weak::upgrade)
    }
}
