//! Runs one resolved graph instance: for every RTSP source node one source task (one camera
//! session), feeding each of its sinks' recorder tasks through a bounded queue of its own
//! (`source::handoff`), and a progress line per sink.
//!
//! Owns the wiring and the lifecycle (start, clean stop that seals every open segment). It must
//! not validate topologies (topology did), lay out bytes (record/plugins do) or touch files
//! other than through `cache`.

pub mod cli;
pub mod demo;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::{Cache, CacheError, FileNamer, Recovery, sanitize_dir_name};
use crate::events::{Event, EventBus, catalog};
use crate::plugin::types::SegmenterConfig;
use crate::plugin::{PluginError, PluginHost};
use crate::record::{Plugins, Recorder, RecorderStats};
use crate::retry::Backoff;
use crate::source::handoff::{self, Batches, Joiner};
use crate::source::{self, SourceConfig, SourceCredentials};
use crate::sync::LockExt;
use crate::time::{Duration90k, Ticks90k};
use crate::topology::{
    AssetSinkSpec, FileSinkSpec, MediaSelection, OutputType, PluginSelection, ResolvedGraph,
    RtspSourceSpec,
};
use crate::upload::uploader::{SinkTarget, StatusReader, UploadSetup, Uploader, UploaderStatus};

/// Batches in flight between one camera's session and each of its sinks (each at most
/// [`handoff::MAX_BATCH_ITEMS`] frames). Bounded so a slow disk never grows memory: it slows
/// the session (TCP back pressure) when its sink is the camera's only one, and costs that sink
/// alone frames when there are others.
const QUEUE_BATCHES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("sink {sink:?}: cache {path:?}: {source}")]
    Cache {
        sink: String,
        path: PathBuf,
        source: CacheError,
    },
    #[error("sink {sink:?}: {source}")]
    Plugin { sink: String, source: PluginError },
    #[error("sink {sink:?} reads from {source_node:?}, which is not an RTSP source of this graph")]
    NoSource { sink: String, source_node: String },
    #[error("the graph has no sink to record (asset sink, video sink or file sink)")]
    NothingToRecord,
    #[error("sink {sink:?}: cache {path:?} is already used by another sink of this graph")]
    CacheShared { sink: String, path: PathBuf },
}

impl GraphError {
    /// The `errorCode` of the `SinkStartFailed` diagnostic.
    pub fn code(&self) -> &'static str {
        match self {
            GraphError::Cache { .. } => "CacheUnavailable",
            GraphError::Plugin { .. } => "PluginUnavailable",
            GraphError::NoSource { .. } => "NoSource",
            GraphError::NothingToRecord => "NothingToRecord",
            GraphError::CacheShared { .. } => "CacheShared",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Cache paths from the topology are taken relative to this directory (like the bind mount
    /// of LVA's applicationDataDirectory); `None` uses them as they are.
    pub data_dir: Option<PathBuf>,
    pub progress_every: Duration,
    /// Where and how every sink's uploader sends sealed segments.
    pub upload: UploadSetup,
}

/// One camera → sink pipeline, as it is running.
struct Camera {
    label: String,
    sink: String,
    source: String,
    asset: String,
    stats: Arc<RecorderStats>,
    cache: Arc<Cache>,
    /// `None` for a file sink, which uploads nothing.
    upload: Option<StatusReader>,
}

/// What one running sink reports: read by the service's status and metrics.
pub struct SinkStatus {
    pub sink: String,
    pub source: String,
    pub asset: String,
    pub stats: Arc<RecorderStats>,
    pub cache_used_bytes: u64,
    pub cache_limit_bytes: u64,
    pub upload: UploaderStatus,
    /// The gaps the sink's cache keeps (`gaps.log`), from memory.
    pub gaps: Vec<crate::cache::Gap>,
}

/// A graph instance recording in the background until [`RunningGraph::stop`].
pub struct RunningGraph {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), GraphError>>,
    cameras: Cameras,
    /// Set to the error the task ended with; its sender is dropped when the task ends (also
    /// by a panic), which is how [`RunningGraph::failure`] learns of the end at once.
    ended: watch::Receiver<Option<String>>,
}

/// What stopping left behind.
pub struct StopSummary {
    /// Every sink's upload backlog was flushed within the policy's flush timeout.
    pub drained: bool,
    /// Segments still cached for the next start (0 when drained).
    pub left_segments: usize,
}

/// Starts recording `graph` as [`run`] does, with its own shutdown signal, and returns at once:
/// each sink starts (and is retried) in the background. Only a graph that can never record
/// is refused here.
pub fn start(
    graph: ResolvedGraph,
    plugins: Arc<PluginHost>,
    events: EventBus,
    options: RunOptions,
) -> Result<RunningGraph, GraphError> {
    if sinks(&graph).is_empty() {
        return Err(GraphError::NothingToRecord);
    }
    let mut dirs = HashSet::new();
    for sink in &graph.asset_sinks {
        let path = rooted(options.data_dir.as_deref(), &sink.cache_path)
            .join(cache_dir_name(&graph, &sink.node));
        if !dirs.insert(path.clone()) {
            return Err(GraphError::CacheShared {
                sink: sink.node.clone(),
                path,
            });
        }
    }
    let (shutdown, rx) = watch::channel(false);
    let cameras = Cameras::default();
    let (ended_tx, ended) = watch::channel(None);
    let task = tokio::spawn({
        let cameras = cameras.clone();
        async move {
            let result = run_cameras(&graph, &plugins, &events, &options, rx, cameras).await;
            if let Err(e) = &result {
                ended_tx.send_replace(Some(e.to_string()));
            }
            result
        }
    });
    Ok(RunningGraph {
        shutdown,
        task,
        cameras,
        ended,
    })
}

impl RunningGraph {
    /// The sinks that have started, as they are now.
    pub fn status(&self) -> Vec<SinkStatus> {
        self.cameras
            .lock_unpoisoned()
            .iter()
            .map(|c| SinkStatus {
                sink: c.sink.clone(),
                source: c.source.clone(),
                asset: c.asset.clone(),
                stats: c.stats.clone(),
                cache_used_bytes: c.cache.used_bytes(),
                cache_limit_bytes: c.cache.limit_bytes(),
                upload: c.upload.as_ref().map(StatusReader::get).unwrap_or_default(),
                gaps: c.cache.gaps(),
            })
            .collect()
    }

    /// Resolves when the graph ends without having been asked to stop, with why: its error,
    /// or that it ended unexpectedly (a panic). Resolves to `None` when it ends after
    /// [`RunningGraph::stop`] asked it to. Does not keep the graph alive.
    pub fn failure(&self) -> impl Future<Output = Option<String>> + Send + 'static {
        let mut ended = self.ended.clone();
        let stopping = self.shutdown.subscribe();
        async move {
            // Only the end of the task drops the sender.
            while ended.changed().await.is_ok() {}
            let error = ended.borrow().clone();
            match error {
                Some(e) => Some(e),
                None if *stopping.borrow() => None,
                None => Some("the graph's task ended unexpectedly".to_owned()),
            }
        }
    }

    /// Stops the sources (TEARDOWN), seals every open segment, then flushes every sink's
    /// upload backlog (bounded by the policy's flush timeout; what is left stays cached).
    pub async fn stop(self) -> StopSummary {
        let _ = self.shutdown.send(true);
        match self.task.await {
            Ok(Err(e)) => tracing::error!(error = %e, "the graph ended with an error"),
            Err(e) => tracing::error!(error = %e, "the graph task panicked"),
            Ok(Ok(())) => {}
        }
        let left_segments = self
            .cameras
            .lock_unpoisoned()
            .iter()
            .filter_map(|c| c.upload.as_ref())
            .map(|u| u.get().backlog.segments)
            .sum();
        StopSummary {
            drained: left_segments == 0,
            left_segments,
        }
    }
}

/// The cache directory of one sink: topology, instance and sink together, so no two
/// instances (of the same or another topology) can share one. Topology and instance names
/// hold only letters, digits and dashes (LVA's rule), so the dots separate unambiguously.
pub fn cache_dir_name(graph: &ResolvedGraph, sink: &str) -> String {
    sanitize_dir_name(&format!(
        "{}.{}.{}",
        graph.topology_name, graph.instance_name, sink
    ))
}

/// The cameras recording now, for the progress line (sinks join as they start).
type Cameras = Arc<Mutex<Vec<Camera>>>;

/// A sink that cannot start (its cache cannot be opened, a plugin cannot be loaded) is
/// reported and retried, first after this long, doubling up to [`START_RETRY_MAX`].
const START_RETRY_FIRST: Duration = Duration::from_secs(5);
const START_RETRY_MAX: Duration = Duration::from_secs(60);

/// Records until `shutdown` turns true, then seals every open segment and returns. Each sink
/// starts on its own: one that cannot start is reported at once and retried while the others
/// record.
pub async fn run(
    graph: &ResolvedGraph,
    plugins: &Arc<PluginHost>,
    events: &EventBus,
    options: &RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), GraphError> {
    run_cameras(
        graph,
        plugins,
        events,
        options,
        shutdown,
        Cameras::default(),
    )
    .await
}

/// A sink this host records: an LVA asset sink or AVA video sink (cache + upload), or a file
/// sink (MP4 files in a local directory).
#[derive(Clone, Copy)]
enum Sink<'g> {
    Asset(&'g AssetSinkSpec),
    File(&'g FileSinkSpec),
}

impl Sink<'_> {
    fn node(&self) -> &str {
        match self {
            Sink::Asset(s) => &s.node,
            Sink::File(s) => &s.node,
        }
    }

    fn source(&self) -> &str {
        match self {
            Sink::Asset(s) => &s.source,
            Sink::File(s) => &s.source,
        }
    }

    fn media(&self) -> MediaSelection {
        match self {
            Sink::Asset(s) => s.media,
            Sink::File(s) => s.media,
        }
    }
}

fn sinks(graph: &ResolvedGraph) -> Vec<Sink<'_>> {
    let assets = graph.asset_sinks.iter().map(Sink::Asset);
    assets
        .chain(graph.file_sinks.iter().map(Sink::File))
        .collect()
}

/// [`run`], registering each sink in `cameras` as it starts.
async fn run_cameras(
    graph: &ResolvedGraph,
    plugins: &Arc<PluginHost>,
    events: &EventBus,
    options: &RunOptions,
    shutdown: watch::Receiver<bool>,
    cameras: Cameras,
) -> Result<(), GraphError> {
    let all = sinks(graph);
    if all.is_empty() {
        return Err(GraphError::NothingToRecord);
    }
    for node in &graph.ignored_nodes {
        tracing::warn!(instance = %graph.instance_name, node = %node.node, node_type = %node.node_type, "not run (unsupportedNodes: ignore)");
        let (subject, body) = catalog::NodeNotRun::of(&graph.instance_name, node);
        events.emit(Event::new(subject, body));
    }
    let progress = tokio::spawn(progress_loop(
        cameras.clone(),
        options.progress_every,
        shutdown.clone(),
    ));
    // One RTSP session per source node, whatever the number of its sinks; each sink joins
    // its source's hand-over once it has started.
    let mut joiners = HashMap::new();
    let mut sources = Vec::new();
    for spec in &graph.sources {
        let fed: Vec<&Sink<'_>> = all.iter().filter(|s| s.source() == spec.node).collect();
        if fed.is_empty() {
            continue;
        }
        let audio = fed
            .iter()
            .any(|s| s.media() == MediaSelection::AudioAndVideo);
        let (handoff, joiner) = handoff::fan_out(fed.len(), events.clone());
        sources.push(tokio::spawn(source::run(
            source_config(graph, spec, audio),
            handoff,
            events.clone(),
            shutdown.clone(),
        )));
        joiners.insert(spec.node.as_str(), joiner);
    }
    let running: Vec<_> = all
        .iter()
        .map(|&sink| {
            run_sink(
                graph,
                sink,
                joiners.get(sink.source()).cloned(),
                plugins,
                events,
                options,
                &cameras,
                shutdown.clone(),
            )
        })
        .collect();
    // Only the sinks may join now: once they all have (or gave up), a source without sinks
    // ends.
    drop(joiners);
    let results = futures::future::join_all(running).await;
    for task in sources {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a source task panicked");
        }
    }
    progress.abort();
    results.into_iter().collect()
}

/// How to reach the camera of source node `spec`; `audio` when any of its sinks records audio.
fn source_config(graph: &ResolvedGraph, spec: &RtspSourceSpec, audio: bool) -> SourceConfig {
    let credentials = spec.credentials.as_ref().map(|c| SourceCredentials {
        username: c.username.clone(),
        password: c.password.expose().to_owned(),
    });
    let subject = format!(
        "/graphInstances/{}/sources/{}",
        graph.instance_name, spec.node
    );
    SourceConfig::new(spec.url.clone(), credentials, audio, subject)
}

/// What a sink needs before it can record.
struct Started {
    cache: Arc<Cache>,
    recovery: Recovery,
    plugins: Plugins,
    /// A file sink's output directory, as events and logs name it.
    output_dir: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
async fn run_sink(
    graph: &ResolvedGraph,
    sink: Sink<'_>,
    joiner: Option<Joiner>,
    plugins: &Arc<PluginHost>,
    events: &EventBus,
    options: &RunOptions,
    cameras: &Cameras,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), GraphError> {
    let joiner = joiner.ok_or_else(|| GraphError::NoSource {
        sink: sink.node().to_owned(),
        source_node: sink.source().to_owned(),
    })?;
    let sink_subject = format!(
        "/graphInstances/{}/sinks/{}",
        graph.instance_name,
        sink.node()
    );
    // The same doubling as reconnects and uploads, with less jitter: a sink that cannot start
    // is an operator's problem to fix, so its retries may come in step.
    let mut backoff = Backoff::new(START_RETRY_FIRST, START_RETRY_MAX, 0.9..=1.0);
    let started = loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        match start_sink(graph, sink, plugins, options, &sink_subject).await {
            Ok(started) => break started,
            Err(e) => {
                let retry = backoff.next_delay();
                tracing::error!(sink = %sink_subject, error = %e, retry_secs = retry.as_secs(), "the sink cannot start; the others record, and it is retried");
                events.emit(Event::new(
                    sink_subject.clone(),
                    catalog::SinkStartFailed {
                        error_code: e.code(),
                        error_message: e.to_string(),
                        retry_in_seconds: retry.as_secs(),
                    },
                ));
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    };
    let Started {
        cache,
        recovery,
        plugins: recorder_plugins,
        output_dir,
    } = started;
    if recovery.crashed {
        tracing::warn!(sink = %sink.node(), ?recovery, "the previous run did not stop cleanly; cache reconciled");
    }
    let (uploader, recorder, asset) = match (sink, output_dir) {
        (Sink::Asset(spec), _) => {
            let uploader = Uploader::spawn(
                SinkTarget::for_sink(&graph.instance_name, spec),
                options.upload.policy.clone(),
                options.upload.store.clone(),
                cache.clone(),
                events.clone(),
            );
            let name = spec.asset_name.as_str().to_owned();
            // Players may watch it from the cache before upload (playback's live view).
            crate::cache::LiveCaches::global().register(&name, &cache);
            let recorder = Recorder::new(
                cache.clone(),
                recorder_plugins,
                events.clone(),
                sink_subject.clone(),
                catalog::RecordingOutput {
                    output_type: spec.output_type,
                    output_location: name.clone(),
                },
                recovery.crashed,
            );
            (Some(uploader), recorder, name)
        }
        (Sink::File(spec), dir) => {
            let dir = dir.expect("a file sink has an output directory");
            let recorder = Recorder::new(
                cache.clone(),
                recorder_plugins,
                events.clone(),
                sink_subject.clone(),
                catalog::RecordingOutput {
                    output_type: OutputType::FilePath,
                    output_location: dir.display().to_string(),
                },
                recovery.crashed,
            )
            .into_files(dir.clone(), max_file_bytes(spec));
            (None, recorder, dir.display().to_string())
        }
    };
    cameras.lock_unpoisoned().push(Camera {
        label: format!("{}: {}→{}", graph.instance_name, sink.source(), sink.node()),
        sink: sink.node().to_owned(),
        source: sink.source().to_owned(),
        asset,
        stats: recorder.stats(),
        cache: cache.clone(),
        upload: uploader.as_ref().map(Uploader::status_reader),
    });

    let audio = sink.media() == MediaSelection::AudioAndVideo;
    let (feed, batches) = handoff::feed(sink_subject.clone(), audio, QUEUE_BATCHES);
    joiner.join(feed);
    drop(joiner);
    if let Err(e) = tokio::spawn(record_loop(recorder, batches, cache)).await {
        tracing::error!(error = %e, "a recorder task panicked");
    }
    let Some(uploader) = uploader else {
        return Ok(());
    };
    // The open segment is sealed now: flush the upload backlog (bounded wait).
    let report = uploader.stop().await;
    let b = &report.status.backlog;
    if report.drained {
        tracing::info!(
            uploaded = report.status.uploaded_segments,
            "upload backlog flushed"
        );
    } else {
        tracing::warn!(
            left_segments = b.segments,
            left_bytes = b.bytes,
            "upload backlog not drained; it stays cached for the next start"
        );
    }
    Ok(())
}

/// A file sink's files hold media of at most this long, so the oldest can go in steps
/// (LVA documents no rule for continuous recording into files; see ARCHITECTURE.md, graph).
const FILE_SEGMENT_LENGTH: Duration90k = Duration90k::from_secs(3600);
/// A 1.0 file sink has no size limit; its files end at this size.
const FILE_MAX_BYTES_WITHOUT_LIMIT: u64 = 1 << 30;

/// A file ends once it holds a quarter of the sink's `maximumSizeMiB`: removing the oldest
/// files then keeps the sink within its limit while it still holds at least three of them.
fn max_file_bytes(spec: &FileSinkSpec) -> u64 {
    spec.max_bytes
        .map_or(FILE_MAX_BYTES_WITHOUT_LIMIT, |max| (max / 4).max(1))
}

/// A file sink's output directory: `<baseDirectoryPath>/<instance>-<sink>` (as LVA names it).
pub fn file_sink_dir(
    data_dir: Option<&Path>,
    graph: &ResolvedGraph,
    spec: &FileSinkSpec,
) -> PathBuf {
    rooted(data_dir, &spec.base_directory).join(sanitize_dir_name(&format!(
        "{}-{}",
        graph.instance_name, spec.node
    )))
}

/// Opens the sink's cache (on the blocking pool: a hung disk must not stall the runtime every
/// camera shares) and loads its plugins. A cache opened for plugins that then fail is closed
/// again, so the retry does not find a crash.
async fn start_sink(
    graph: &ResolvedGraph,
    sink: Sink<'_>,
    plugins: &Arc<PluginHost>,
    options: &RunOptions,
    sink_subject: &str,
) -> Result<Started, GraphError> {
    let node = sink.node().to_owned();
    let (path, output_dir, opened) = match sink {
        Sink::Asset(spec) => {
            let dir_name = cache_dir_name(graph, &spec.node);
            let root = rooted(options.data_dir.as_deref(), &spec.cache_path);
            let path = root.join(&dir_name);
            let limit = spec.cache_max_bytes;
            let opened =
                tokio::task::spawn_blocking(move || open_cache(&root, &dir_name, limit)).await;
            (path, None, opened)
        }
        Sink::File(spec) => {
            let dir = file_sink_dir(options.data_dir.as_deref(), graph, spec);
            let limit = spec.max_bytes.unwrap_or(u64::MAX);
            let named = spec.clone();
            let namer: FileNamer =
                Box::new(move |start: Ticks90k| named.file_name_at(start.to_system_time()));
            let at = dir.clone();
            let opened =
                tokio::task::spawn_blocking(move || open_file_sink(&at, limit, namer)).await;
            (dir.clone(), Some(dir), opened)
        }
    };
    let (cache, recovery) = opened
        .expect("opening a cache does not panic")
        .map_err(|source| GraphError::Cache {
            sink: node.clone(),
            path,
            source,
        })?;
    let cache = Arc::new(cache);
    let plugin_node = node.clone();
    let plugin_err = move |source| GraphError::Plugin {
        sink: plugin_node.clone(),
        source,
    };
    let (selection, config) = match sink {
        Sink::Asset(spec) => (
            spec.plugins.clone(),
            SegmenterConfig::new(spec.segment_length.ticks() as u64),
        ),
        Sink::File(_) => (
            PluginSelection::default(),
            SegmenterConfig::new(FILE_SEGMENT_LENGTH.0 as u64),
        ),
    };
    // Compiling a plugin takes cranelift seconds of CPU the first time: on the runtime thread
    // every camera shares, that would stall them all, so it runs on the blocking pool.
    let host = plugins.clone();
    let subject = sink_subject.to_owned();
    let loaded = tokio::task::spawn_blocking(move || {
        Ok(Plugins {
            segmenter: host
                .segmenter(selection.segmenter.as_deref(), config, &subject)
                .map_err(&plugin_err)?,
            formatter: host
                .formatter(selection.formatter.as_deref(), &subject)
                .map_err(&plugin_err)?,
            evictor: host
                .evictor(selection.evictor.as_deref(), &subject)
                .map_err(&plugin_err)?,
        })
    })
    .await
    .expect("loading plugins does not panic");
    match loaded {
        Ok(plugins) => Ok(Started {
            cache,
            recovery,
            plugins,
            output_dir,
        }),
        Err(e) => {
            let closing = cache.clone();
            let _ = tokio::task::spawn_blocking(move || closing.close()).await;
            Err(e)
        }
    }
}

/// A file sink's output directory (created if needed) in the file-sink layout.
fn open_file_sink(
    dir: &Path,
    limit: u64,
    namer: FileNamer,
) -> Result<(Cache, Recovery), CacheError> {
    let shown = dir.display().to_string();
    let io = |op| {
        let name = shown.clone();
        move |source| CacheError::Io { op, name, source }
    };
    Dir::create_ambient_dir_all(dir, ambient_authority()).map_err(io("create directory"))?;
    let media = Dir::open_ambient_dir(dir, ambient_authority()).map_err(io("open directory"))?;
    Cache::open_files(media, limit, namer)
}

/// `cache_path` re-rooted under `data_dir`.
fn rooted(data_dir: Option<&Path>, cache_path: &Path) -> PathBuf {
    match data_dir {
        None => cache_path.to_owned(),
        Some(d) => d.join(cache_path.strip_prefix("/").unwrap_or(cache_path)),
    }
}

/// The sink's own directory inside the configured cache root, reached only through the root's
/// `Dir` handle.
fn open_cache(root: &Path, dir_name: &str, limit: u64) -> Result<(Cache, Recovery), CacheError> {
    let shown = root.display().to_string();
    let io = |op| {
        let name = shown.clone();
        move |source| CacheError::Io { op, name, source }
    };
    Dir::create_ambient_dir_all(root, ambient_authority()).map_err(io("create directory"))?;
    let root_dir =
        Dir::open_ambient_dir(root, ambient_authority()).map_err(io("open directory"))?;
    root_dir
        .create_dir_all(dir_name)
        .map_err(io("create directory"))?;
    let dir = root_dir.open_dir(dir_name).map_err(io("open directory"))?;
    Cache::open_dir(dir, limit)
}

/// Feeds the recorder. Its file I/O (fsync included) runs on the blocking pool, one batch (a
/// group of pictures, see [`handoff`]) per trip.
async fn record_loop(mut recorder: Recorder, mut batches: Batches, cache: Arc<Cache>) {
    while let Some(items) = batches.recv().await {
        let joined = tokio::task::spawn_blocking(move || {
            for item in items {
                recorder.handle_or_recover(item);
            }
            recorder
        })
        .await;
        match joined {
            Ok(r) => recorder = r,
            Err(e) => {
                tracing::error!(error = %e, "recorder panicked");
                return;
            }
        }
    }
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = recorder.finish() {
            tracing::error!(error = %e, "sealing the last segment failed");
        }
        if let Err(e) = cache.close() {
            tracing::error!(error = %e, "closing the cache failed");
        }
    })
    .await;
}

async fn progress_loop(cameras: Cameras, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let cameras = cameras.lock_unpoisoned();
        for c in cameras.iter() {
            let s = &c.stats;
            tracing::info!(
                target: "progress",
                "{}: run {} · {} segments · {:.1} MiB written · {} frames ({} dropped) · cache {:.1}/{:.1} MiB",
                c.label,
                s.run.load(Ordering::Relaxed),
                s.segments.load(Ordering::Relaxed),
                s.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
                s.frames.load(Ordering::Relaxed),
                s.dropped_frames.load(Ordering::Relaxed),
                c.cache.used_bytes() as f64 / 1048576.0,
                c.cache.limit_bytes() as f64 / 1048576.0,
            );
        }
    }
}
