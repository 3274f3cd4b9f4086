//! The uploader of one asset sink: takes sealed segments from the sink's cache, oldest first,
//! puts them into the asset store and marks them uploaded once the store verified them.
//!
//! Rules it keeps: the oldest pending segment is always the next one tried, and a failure
//! retries that same segment (so failures never reorder); in steady state (at most one pending
//! segment) it uploads at most once per `segmentLength`; with a backlog (after an outage or a
//! restart) it uploads back to back as fast as the link allows; during an outage it backs off
//! exponentially with jitter and reports each failure as a `StorageError` diagnostic. On stop it
//! flushes the backlog for a bounded time; what is left stays in the cache for the next start.
//! It never deletes or evicts anything: eviction is the cache's decision.
//!
//! Between segments it copies the gaps the cache recorded (`Cache::gaps`) into the store's gap
//! records of the asset (`AssetStore::put_gaps`, idempotent), so they outlive the cache. Only
//! between attempts: a segment evicted while it is being uploaded gets an `EvictedBeforeUpload`
//! gap that its successful upload takes back, and by the next copy that has happened.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{AssetStore, SegmentFacts, SegmentUpload, UploadError};
use crate::cache::{Cache, Gap, SegmentMeta};
use crate::events::catalog::{self, RecordingOutput};
use crate::events::{Event, EventBus};
use crate::retry::Backoff;
use crate::sync::LockExt;
use crate::time::{Duration90k, Ticks90k};
use crate::topology::OutputType;

/// The store and timing every uploader of a process uses.
#[derive(Clone)]
pub struct UploadSetup {
    pub store: Arc<dyn AssetStore>,
    pub policy: UploaderPolicy,
}

impl std::fmt::Debug for UploadSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSetup")
            .field("store", &self.store.location())
            .field("policy", &self.policy)
            .finish()
    }
}

/// Which sink this uploader serves.
#[derive(Clone, Debug)]
pub struct SinkTarget {
    /// Event subject, e.g. `/graphInstances/Sample-Graph-1/sinks/assetSink`.
    pub subject: String,
    /// Resolved asset name: the blob-name prefix.
    pub asset: String,
    /// How the recording events name the asset (LVA's asset, AVA's video).
    pub output_type: OutputType,
    pub segment_length: Duration,
}

impl SinkTarget {
    /// The target of an asset sink of a resolved graph instance.
    pub fn for_sink(instance: &str, sink: &crate::topology::AssetSinkSpec) -> Self {
        Self {
            subject: format!("/graphInstances/{instance}/sinks/{}", sink.node),
            asset: sink.asset_name.as_str().to_owned(),
            output_type: sink.output_type,
            segment_length: Duration::from_secs(sink.segment_length.as_secs()),
        }
    }

    /// The sink's output as the recording events name it.
    pub fn output(&self) -> RecordingOutput {
        RecordingOutput {
            output_type: self.output_type,
            output_location: self.asset.clone(),
        }
    }
}

/// Timing of the uploader: explicit and configurable.
#[derive(Clone, Debug)]
pub struct UploaderPolicy {
    /// How often the cache is checked for newly sealed segments.
    pub poll_interval: Duration,
    /// First pause after a failure; doubles per consecutive failure up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long `stop` keeps uploading the backlog before giving up (it stays cached).
    pub flush_timeout: Duration,
}

impl Default for UploaderPolicy {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            flush_timeout: Duration::from_secs(300),
        }
    }
}

/// What is waiting in the cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub segments: usize,
    pub bytes: u64,
    /// Start of the oldest pending segment.
    pub oldest_start: Option<Ticks90k>,
    /// Media time of the pending segments together.
    pub media: Duration90k,
}

impl Backlog {
    fn of(pending: &[SegmentMeta]) -> Self {
        Self {
            segments: pending.len(),
            bytes: pending.iter().map(|p| p.bytes).sum(),
            oldest_start: pending.first().map(|p| p.start),
            // A segment across a clock step back has end < start: it holds no less media.
            media: pending.iter().map(|p| (p.end - p.start).abs()).sum(),
        }
    }

    /// Age of the oldest pending media relative to `now`, in seconds.
    pub fn oldest_age_secs(&self, now: Ticks90k) -> Option<f64> {
        self.oldest_start.map(|s| (now - s).as_secs_f64())
    }

    fn catch_up(&self) -> catalog::UploadCatchUp {
        catalog::UploadCatchUp {
            segments: self.segments,
            bytes: self.bytes,
            oldest_age_seconds: self.oldest_age_secs(Ticks90k::now()),
        }
    }
}

/// Live state of an uploader, for logs, the API and tests.
#[derive(Clone, Debug, Default)]
pub struct UploaderStatus {
    pub backlog: Backlog,
    pub uploaded_segments: u64,
    pub uploaded_bytes: u64,
    /// Names of the blobs uploaded, in upload order.
    pub uploaded: Vec<String>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

/// Result of stopping: what was flushed and what is left in the cache.
#[derive(Clone, Debug)]
pub struct StopReport {
    pub status: UploaderStatus,
    /// True when the backlog was fully drained within the flush timeout.
    pub drained: bool,
}

/// A shared view of one uploader's [`UploaderStatus`].
#[derive(Clone)]
pub struct StatusReader(Arc<Mutex<UploaderStatus>>);

impl StatusReader {
    pub fn get(&self) -> UploaderStatus {
        self.0.lock_unpoisoned().clone()
    }
}

/// A running uploader task.
pub struct Uploader {
    stop: watch::Sender<bool>,
    task: JoinHandle<StopReport>,
    status: Arc<Mutex<UploaderStatus>>,
}

impl Uploader {
    /// Starts uploading for one sink.
    pub fn spawn(
        target: SinkTarget,
        policy: UploaderPolicy,
        store: Arc<dyn AssetStore>,
        cache: Arc<Cache>,
        events: EventBus,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let status = Arc::new(Mutex::new(UploaderStatus::default()));

        let worker = Worker {
            target,
            policy,
            store,
            cache,
            events,
            status: status.clone(),
            stop: stop_rx,
            available: false,
            mark_failing: false,
            gaps_stored: HashSet::new(),
        };
        let task = tokio::spawn(worker.run());
        Self { stop, task, status }
    }

    pub fn status(&self) -> UploaderStatus {
        self.status.lock_unpoisoned().clone()
    }

    /// Reads this uploader's status from elsewhere (the service's status and metrics), also
    /// after the uploader itself has moved or stopped.
    pub fn status_reader(&self) -> StatusReader {
        StatusReader(self.status.clone())
    }

    /// Flushes the backlog (bounded by the policy's flush timeout). Call after the recorder
    /// sealed its open segment.
    pub async fn stop(self) -> StopReport {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(report) => report,
            Err(e) => {
                let mut status = self.status.lock_unpoisoned().clone();
                status.last_error = Some(format!("uploader task failed: {e}"));
                StopReport {
                    status,
                    drained: false,
                }
            }
        }
    }
}

struct Worker {
    target: SinkTarget,
    policy: UploaderPolicy,
    store: Arc<dyn AssetStore>,
    cache: Arc<Cache>,
    events: EventBus,
    status: Arc<Mutex<UploaderStatus>>,
    stop: watch::Receiver<bool>,
    available: bool,
    /// Marking segments uploaded fails (the cache's disk); reported once per episode.
    mark_failing: bool,
    /// The cache's gaps already in the store's gap records (by this process).
    gaps_stored: HashSet<Gap>,
}

/// Outcome of one attempt at the oldest pending segment.
enum Attempt {
    Uploaded,
    /// The segment vanished from the pending list meanwhile (evicted): not a store failure.
    Gone,
    Failed(UploadError),
}

impl Worker {
    async fn run(mut self) -> StopReport {
        // The store keeps room for this cache's budget on a file system they share.
        let cache = self.cache.clone();
        match tokio::task::spawn_blocking(move || cache.device()).await {
            Ok(Ok(device)) => {
                self.store
                    .hold_room(&self.target.subject, device, self.cache.limit_bytes())
            }
            Ok(Err(e)) => {
                tracing::warn!(target: "upload", error = %e, "the cache's file system is unknown to the store")
            }
            Err(e) => tracing::warn!(target: "upload", error = %e, "cache stat failed"),
        }
        let mut failures = 0u32;
        let mut last_upload: Option<(Instant, Ticks90k)> = None;
        let mut catch_up: Option<(Instant, u64)> = None;
        let mut prepared = false;
        let mut stop = self.stop.clone();
        while !*self.stop.borrow() {
            let pending = self.pending();
            if !prepared {
                match unless_stopped(&mut stop, self.store.prepare()).await {
                    None => break,
                    Some(Ok(())) => prepared = true,
                    Some(Err(e)) => {
                        failures += 1;
                        self.report_failure(None, &e, failures);
                        self.pause(self.backoff(failures)).await;
                        continue;
                    }
                }
            }
            match unless_stopped(&mut stop, self.store_gaps()).await {
                None => break,
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    failures += 1;
                    self.report_failure(None, &e, failures);
                    self.pause(self.backoff(failures)).await;
                    continue;
                }
            }
            let Some(oldest) = pending.first().cloned() else {
                self.pause(self.policy.poll_interval).await;
                continue;
            };
            if pending.len() == 1
                && let Some((last, last_wall)) = last_upload
                && oldest.end > last_wall
            {
                // Steady state (the segment was still being recorded at the last upload):
                // LVA uploads at most once per segmentLength. Backlog never waits.
                let due = last + self.target.segment_length;
                let now = Instant::now();
                if now < due {
                    self.pause((due - now).min(self.policy.poll_interval)).await;
                    continue;
                }
            }
            let attempt_started = Instant::now();
            let bytes_before = self.status_snapshot().uploaded_bytes;
            match self.attempt(&oldest).await {
                Attempt::Uploaded => {
                    failures = 0;
                    last_upload = Some((Instant::now(), Ticks90k::now()));
                    if catch_up.is_none() && pending.len() > 1 {
                        // A backlog (outage or restart): report it, then drain back to back.
                        let backlog = Backlog::of(&pending);
                        self.events
                            .emit(Event::new(&self.target.subject, backlog.catch_up()));
                        catch_up = Some((attempt_started, bytes_before));
                    }
                    let after = self.pending();
                    if after.len() <= 1
                        && let Some((since, bytes_before)) = catch_up.take()
                    {
                        let status = self.status_snapshot();
                        let secs = since.elapsed().as_secs_f64();
                        let bytes = status.uploaded_bytes - bytes_before;
                        self.events.emit(Event::new(
                            &self.target.subject,
                            catalog::UploadCaughtUp {
                                bytes,
                                seconds: secs,
                                megabytes_per_second: bytes as f64 / 1e6 / secs.max(1e-9),
                            },
                        ));
                    }
                }
                Attempt::Gone => {}
                Attempt::Failed(e) => {
                    failures += 1;
                    self.report_failure(Some(&oldest), &e, failures);
                    self.pause(self.backoff(failures)).await;
                }
            }
        }
        self.flush().await
    }

    /// Drains the backlog until empty or the flush deadline.
    async fn flush(mut self) -> StopReport {
        let deadline = Instant::now() + self.policy.flush_timeout;
        let mut failures = 0u32;
        let drained = loop {
            let Some(oldest) = self.pending().first().cloned() else {
                break true;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            match tokio::time::timeout(left, self.attempt(&oldest)).await {
                Err(_) => break false,
                Ok(Attempt::Uploaded | Attempt::Gone) => failures = 0,
                Ok(Attempt::Failed(e)) => {
                    failures += 1;
                    self.report_failure(Some(&oldest), &e, failures);
                    let pause = self
                        .backoff(failures)
                        .min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.store_gaps()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.report_failure(None, &e, failures + 1),
            Err(_) => {
                tracing::warn!(target: "upload", subject = %self.target.subject, "gaps not stored before the flush deadline; the next start stores them")
            }
        }
        self.pending();
        self.store.release_room(&self.target.subject);
        StopReport {
            status: self.status_snapshot(),
            drained,
        }
    }

    /// Copies the cache's gaps the store does not have yet into its gap records.
    async fn store_gaps(&mut self) -> Result<(), UploadError> {
        let gaps = self.cache.gaps();
        let new: Vec<Gap> = gaps
            .iter()
            .filter(|g| !self.gaps_stored.contains(g))
            .copied()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        self.store.put_gaps(&self.target.asset, &new).await?;
        tracing::debug!(target: "upload", subject = %self.target.subject, gaps = new.len(), "gap records stored");
        // Only what the cache still holds can come again.
        self.gaps_stored.retain(|g| gaps.contains(g));
        self.gaps_stored.extend(new);
        Ok(())
    }

    async fn attempt(&mut self, segment: &SegmentMeta) -> Attempt {
        let facts = SegmentFacts {
            asset: self.target.asset.clone(),
            run: segment.run,
            sequence: segment.sequence,
            start: segment.start,
            end: segment.end,
            codecs: segment.codecs.clone(),
            extension: segment
                .file_name
                .rsplit_once('.')
                .map_or("bin", |(_, ext)| ext)
                .to_owned(),
        };
        // Cache calls run on the blocking pool: a slow or hung cache disk must not stall the
        // runtime every camera's session shares.
        let (cache, id) = (self.cache.clone(), segment.id);
        let opened = tokio::task::spawn_blocking(move || cache.open_sealed(id)).await;
        let file = match opened.expect("open_sealed does not panic") {
            Ok(file) => file.into_std(),
            Err(e) => return self.unless_gone(segment, e.into()),
        };
        let upload = SegmentUpload {
            facts,
            file,
            bytes: segment.bytes,
        };
        let blob = match self.store.put_segment(upload).await {
            Ok(blob) => blob,
            Err(e @ UploadError::ReadSegment { .. }) => return self.unless_gone(segment, e),
            Err(e) => return Attempt::Failed(e),
        };
        let cache = self.cache.clone();
        let marked = tokio::task::spawn_blocking(move || cache.mark_uploaded(id)).await;
        match marked.expect("mark_uploaded does not panic") {
            Ok(()) => self.mark_failing = false,
            // The blob is stored and the cache keeps the mark in memory, so the segment is not
            // uploaded again; the cache's disk, not the store, failed (reported once).
            Err(e) => self.report_mark_failed(&e),
        }
        tracing::info!(
            target: "upload",
            blob = %blob.name, bytes = blob.bytes, subject = %self.target.subject,
            "segment uploaded and verified"
        );
        {
            let mut status = self.status.lock_unpoisoned();
            status.uploaded_segments += 1;
            status.uploaded_bytes += blob.bytes;
            status.uploaded.push(blob.name);
            status.consecutive_failures = 0;
        }
        if !self.available {
            self.available = true;
            self.events.emit(Event::new(
                &self.target.subject,
                catalog::RecordingAvailable(self.target.output()),
            ));
        }
        Attempt::Uploaded
    }

    fn report_mark_failed(&mut self, e: &crate::cache::CacheError) {
        tracing::warn!(target: "upload", subject = %self.target.subject, error = %e, "segment uploaded, but the cache could not note it durably; it may be uploaded again after a restart");
        if !std::mem::replace(&mut self.mark_failing, true) {
            self.events.emit(Event::new(
                &self.target.subject,
                catalog::CacheDiskError {
                    error_code: e.io_code(),
                    error_message: e.to_string(),
                    action: "uploaded segments are noted in memory; after a restart they may be uploaded again",
                },
            ));
        }
    }

    /// A read error on a segment the cache evicted meanwhile is not a failure.
    fn unless_gone(&mut self, segment: &SegmentMeta, e: UploadError) -> Attempt {
        if self.pending().iter().any(|p| p.id == segment.id) {
            Attempt::Failed(e)
        } else {
            Attempt::Gone
        }
    }

    /// Reads the pending list and publishes the backlog.
    fn pending(&mut self) -> Vec<SegmentMeta> {
        let pending = self.cache.sealed_pending();
        self.status.lock_unpoisoned().backlog = Backlog::of(&pending);
        pending
    }

    fn status_snapshot(&self) -> UploaderStatus {
        self.status.lock_unpoisoned().clone()
    }

    fn report_failure(&self, segment: Option<&SegmentMeta>, e: &UploadError, failures: u32) {
        tracing::warn!(target: "upload", subject = %self.target.subject, error = %e, failures, "upload failed");
        {
            let mut status = self.status.lock_unpoisoned();
            status.consecutive_failures = failures;
            status.last_error = Some(e.to_string());
        }
        self.events.emit(Event::new(
            &self.target.subject,
            catalog::StorageError {
                storage_account_name: self.store.location(),
                error_code: e.code(),
                error_message: e.to_string(),
                segment_start: segment.map(|s| s.start.to_rfc3339_millis()),
                consecutive_failures: failures,
            },
        ));
    }

    /// The pause after `failures` consecutive failures: jitter in [½·d, d], so many sinks
    /// recovering together spread out.
    fn backoff(&self, failures: u32) -> Duration {
        Backoff::new(
            self.policy.backoff_initial,
            self.policy.backoff_max,
            0.5..=1.0,
        )
        .delay(failures)
    }

    /// Sleeps, waking early when stop is requested.
    async fn pause(&mut self, d: Duration) {
        let _ = tokio::time::timeout(d, self.stop.wait_for(|stop| *stop)).await;
    }
}

/// `work`, unless the stop comes first. A store that accepts connections and never answers
/// would otherwise hold a stop for its request timeouts and retries (minutes) before the
/// bounded flush even starts. Only for calls that are safe to abandon and repeat (checking the
/// container, storing gap records); an upload in flight is let finish, and the flush bounds
/// its own attempts.
async fn unless_stopped<T>(
    stop: &mut watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        _ = stop.wait_for(|stop| *stop) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::cache::Cache;

    use super::*;
    use crate::events::Body;
    use crate::time::Duration90k;
    use crate::upload::local::LocalStore;

    /// A real cache in a temp dir that the tests record segments into.
    struct Segments {
        _dir: tempfile::TempDir,
        cache: Arc<Cache>,
    }

    impl Segments {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let (cache, _) = Cache::open(&dir.path().join("cache"), 1 << 30).unwrap();
            Self {
                _dir: dir,
                cache: Arc::new(cache),
            }
        }

        /// Records one sealed segment of sequence `seq`, 30 s of media time ending at `end`.
        fn add_ending(&self, seq: u64, end: Ticks90k) {
            let start = end - Duration90k::from_secs(30);
            let body = format!("segment {seq}").repeat(100);
            self.cache
                .begin_segment(1, seq, start, "avc1.640028", "mp4")
                .unwrap();
            self.cache.append_fragment(&[body.as_bytes()], end).unwrap();
            self.cache.seal().unwrap();
        }

        /// A segment recorded long ago (backlog, never subject to the cadence).
        fn add(&self, seq: u64) {
            self.add_ending(seq, Ticks90k::from_secs(1_700_000_030 + 30 * seq as i64));
        }
    }

    fn target(segment_length: Duration) -> SinkTarget {
        SinkTarget {
            subject: "/graphInstances/g/sinks/assetSink".into(),
            asset: "asset-1".into(),
            output_type: OutputType::AssetName,
            segment_length,
        }
    }

    fn fast_policy() -> UploaderPolicy {
        UploaderPolicy {
            poll_interval: Duration::from_millis(10),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(80),
            flush_timeout: Duration::from_secs(5),
        }
    }

    /// A store root that is a plain file: every write fails until it is removed (a real
    /// failure of the real local store, standing in for an outage).
    fn blocked_root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("assets");
        std::fs::write(&root, b"not a directory").unwrap();
        (dir, root)
    }

    async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn types(events: &EventBus) -> Vec<String> {
        events
            .recent()
            .into_iter()
            .map(|e| e.event_type().rsplit('.').next().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn outage_keeps_oldest_first_then_catches_up_and_reports() {
        let (_keep, root) = blocked_root();
        let store = Arc::new(LocalStore::new(root.clone()));
        let segments = Segments::new();
        for id in [1, 2, 3] {
            segments.add(id);
        }
        let events = EventBus::new();
        let uploader = Uploader::spawn(
            target(Duration::from_secs(30)),
            fast_policy(),
            store.clone(),
            segments.cache.clone(),
            events.clone(),
        );
        wait_for("repeated failures", || {
            uploader.status().consecutive_failures >= 3
        })
        .await;
        assert_eq!(uploader.status().uploaded_segments, 0);
        assert_eq!(uploader.status().backlog.segments, 3);
        segments.add(4); // recording goes on during the outage
        std::fs::remove_file(&root).unwrap(); // restore
        wait_for("catch-up", || uploader.status().uploaded_segments == 4).await;
        let report = uploader.stop().await;
        assert!(report.drained);
        let ids: Vec<_> = report
            .status
            .uploaded
            .iter()
            .map(|n| n.rsplit("-s").next().unwrap().to_owned())
            .collect();
        assert_eq!(
            ids,
            [
                "0000000001.mp4",
                "0000000002.mp4",
                "0000000003.mp4",
                "0000000004.mp4"
            ],
            "oldest first"
        );
        let listed = store.list_asset("asset-1").await.unwrap();
        assert_eq!(listed.len(), 4);

        let kinds = types(&events);
        assert!(
            !kinds
                .iter()
                .any(|k| k == "RecordingStarted" || k == "RecordingStopped"),
            "the recorder owns those"
        );
        let pos = |k: &str| {
            kinds
                .iter()
                .position(|x| x == k)
                .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
        };
        assert!(pos("StorageError") < pos("RecordingAvailable"));
        assert!(pos("StorageError") < pos("UploadCatchUp"));
        assert!(pos("UploadCatchUp") < pos("UploadCaughtUp"));
        assert_eq!(
            kinds.iter().filter(|k| *k == "RecordingAvailable").count(),
            1
        );
        let bodies: Vec<Body> = events.recent().into_iter().map(|e| e.body).collect();
        let catch_up = bodies
            .iter()
            .find_map(|b| match b {
                Body::UploadCatchUp(c) => Some(c),
                _ => None,
            })
            .unwrap();
        assert_eq!((catch_up.segments, catch_up.bytes), (4, 3600));
        assert!(catch_up.oldest_age_seconds.unwrap() > 0.0);
        let error = bodies
            .iter()
            .find_map(|b| match b {
                Body::StorageError(e) => Some(e),
                _ => None,
            })
            .unwrap();
        assert_eq!(error.error_code, "LocalStoreIo");
        let available = bodies
            .iter()
            .find_map(|b| match b {
                Body::RecordingAvailable(a) => Some(a),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            serde_json::to_value(available).unwrap(),
            serde_json::json!({ "outputType": "assetName", "outputLocation": "asset-1" })
        );
    }

    #[test]
    fn the_target_of_a_resolved_asset_sink() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/cvr-asset");
        let topology = std::fs::read_to_string(root.join("topology.json")).unwrap();
        let instance = std::fs::read_to_string(root.join("instance.json")).unwrap();
        let overrides = [("segmentLength".to_owned(), "PT1M".to_owned())];
        let graph = crate::topology::resolve(
            &topology,
            Some(&instance),
            &overrides,
            &crate::topology::DefaultPluginNames,
            std::time::SystemTime::now(),
        )
        .unwrap();
        let sink = &graph.asset_sinks[0];
        let target = SinkTarget::for_sink(&graph.instance_name, sink);
        assert_eq!(
            target.subject,
            format!(
                "/graphInstances/{}/sinks/{}",
                graph.instance_name, sink.node
            )
        );
        assert_eq!(target.asset, sink.asset_name.as_str());
        assert_eq!(target.segment_length, Duration::from_secs(60));
    }

    #[tokio::test]
    async fn steady_state_uploads_at_most_once_per_segment_length() {
        let root = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(root.path().to_owned()));
        let segments = Segments::new();
        let segment_length = Duration::from_millis(600);
        let uploader = Uploader::spawn(
            target(segment_length),
            fast_policy(),
            store,
            segments.cache.clone(),
            EventBus::new(),
        );
        segments.add_ending(1, Ticks90k::now());
        wait_for("first upload", || uploader.status().uploaded_segments == 1).await;
        let first = Instant::now();
        segments.add_ending(2, Ticks90k::now());
        wait_for("second upload", || uploader.status().uploaded_segments == 2).await;
        // Lower bound only: the uploader waited for the cadence, however slow the machine is.
        assert!(
            first.elapsed() >= segment_length - Duration::from_millis(50),
            "{:?}",
            first.elapsed()
        );
        uploader.stop().await;
    }

    #[tokio::test]
    async fn the_caches_gaps_are_stored_once_with_the_asset_and_outlive_the_cache() {
        use crate::cache::GapCause;
        let root = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(root.path().to_owned()));
        let segments = Segments::new();
        segments.add(1);
        let t = |s: i64| Ticks90k::from_secs(1_700_000_000 + s);
        let offline = Gap {
            start: t(60),
            end: t(75),
            cause: GapCause::CameraOffline,
        };
        segments.cache.record_gap(offline).unwrap();
        let all = || store.list_gaps("asset-1", t(0), t(10_000));
        let spawn = || {
            Uploader::spawn(
                target(Duration::from_secs(30)),
                fast_policy(),
                store.clone(),
                segments.cache.clone(),
                EventBus::new(),
            )
        };
        let uploader = spawn();
        wait_for("the segment", || uploader.status().uploaded_segments == 1).await;
        // A gap recorded while the uploader runs goes up too, without a segment after it.
        let crash = Gap {
            start: t(90),
            end: t(91),
            cause: GapCause::Crash,
        };
        segments.cache.record_gap(crash).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while all().await.unwrap().len() < 2 {
            assert!(Instant::now() < deadline, "gaps not stored");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(uploader.stop().await.drained);
        assert_eq!(all().await.unwrap(), vec![offline, crash]);

        // The next start sends them again: the same two records.
        let uploader = spawn();
        tokio::time::sleep(Duration::from_millis(100)).await;
        uploader.stop().await;
        assert_eq!(all().await.unwrap(), vec![offline, crash]);

        // The cache is gone; the asset keeps its gaps.
        drop(segments);
        let fresh = LocalStore::new(root.path().to_owned());
        assert_eq!(
            fresh.list_gaps("asset-1", t(0), t(10_000)).await.unwrap(),
            vec![offline, crash]
        );
    }

    #[tokio::test]
    async fn stop_flush_is_bounded_and_leaves_the_rest_cached() {
        let (_keep, root) = blocked_root();
        let segments = Segments::new();
        segments.add(1);
        segments.add(2);
        let policy = UploaderPolicy {
            flush_timeout: Duration::from_millis(300),
            ..fast_policy()
        };
        let store = Arc::new(LocalStore::new(root));
        let uploader = Uploader::spawn(
            target(Duration::from_secs(30)),
            policy,
            store,
            segments.cache.clone(),
            EventBus::new(),
        );
        let report = uploader.stop().await;
        assert!(!report.drained);
        assert_eq!(report.status.backlog.segments, 2);
        assert_eq!(
            segments.cache.sealed_pending().len(),
            2,
            "nothing lost: still pending in the cache"
        );
    }

    #[tokio::test]
    async fn stop_flushes_the_backlog_without_waiting_for_the_cadence() {
        let root = tempfile::tempdir().unwrap();
        let segments = Segments::new();
        let store = Arc::new(LocalStore::new(root.path().to_owned()));
        let uploader = Uploader::spawn(
            target(Duration::from_secs(300)),
            fast_policy(),
            store,
            segments.cache.clone(),
            EventBus::new(),
        );
        segments.add_ending(1, Ticks90k::now());
        wait_for("first upload", || uploader.status().uploaded_segments == 1).await;
        segments.add_ending(2, Ticks90k::now()); // sealed at stop; the cadence would hold it for 300 s
        let report = uploader.stop().await;
        assert!(report.drained);
        assert_eq!(report.status.uploaded_segments, 2);
        assert!(Path::new(&root.path().join(&report.status.uploaded[1])).exists());
    }
}
