//! The segment writer of one asset sink: frames in, sealed segment files out.
//!
//! Owns: holding each frame until the next one of its track arrives (its duration is then
//! known), asking the segmenter plugin where to cut, asking the formatter plugin for the byte
//! layout of each fragment and splicing the frames' payload into it (payload never enters the
//! guest), making room through the cache (evictor plugin chooses), sealing segments, and the
//! gap recorded before each run.
//!
//! A full cache file system (ENOSPC/EDQUOT) is handled here: reported once per episode
//! (`Mediagraph.Diagnostics.CacheDiskFull`), the evictor frees room and the write is retried;
//! with nothing left to evict, frames are dropped (a `DiskFull` gap) and recording resumes
//! at a keyframe once space returns. Any other failure of the cache's disk (EROFS, EIO,
//! EACCES, ...) is reported once per episode (`Mediagraph.Diagnostics.CacheDiskError`): what
//! was written is sealed and every keyframe tries again, so recording resumes by itself when
//! the disk comes back; the episode ends with the next durable fragment.
//!
//! Must not: do network I/O or interpret container bytes. Invariants it keeps: every segment
//! starts with a video keyframe and its own init (a new run or new codec parameters always
//! start a new segment), and every byte is handed to the cache as whole fragments.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;

use crate::cache::{Cache, CacheError, Gap, GapCause, RunId, SegmentId, SegmentMeta};
use crate::events::catalog::{self, RecordingOutput};
use crate::events::{Body, Event, EventBus};
use crate::plugin::types::{
    Budget, CacheEntry, Codec, Decision, FrameInfo, MediaKind, Piece, Sample, Track,
};
use crate::plugin::{Evictor, Formatter, PluginError, Segmenter};
use crate::source::clock::JUMP;
use crate::source::{Frame, RunEndReason, SourceItem, TrackCodec, TrackParams};
use crate::time::Ticks90k;
use crate::topology::OutputType;

/// A fragment is cut by the host if the segmenter lets it grow past this many bytes: it bounds
/// memory per camera and the loss on a crash.
const MAX_FRAGMENT_BYTES: usize = 8 << 20;

/// A disk-full episode ends when the cache holds this much more than the most it held when
/// the disk was found full: the file system has room again (an eviction ring on a disk that
/// stays full never gets there).
const DISK_ROOM_AGAIN_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("formatter: {0}")]
    Formatter(#[from] PluginError),
}

/// Counters for the progress line; updated by the recorder, read by anyone.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub bytes: AtomicU64,
    pub segments: AtomicU64,
    pub run: AtomicU64,
    pub frames: AtomicU64,
    pub dropped_frames: AtomicU64,
    /// Wall-clock time of the newest frame recorded, in 90 kHz ticks since the Unix epoch
    /// (0 before the first).
    pub last_frame_wall: AtomicI64,
}

/// The plugins one recorder uses.
pub struct Plugins {
    pub segmenter: Segmenter,
    pub formatter: Formatter,
    pub evictor: Evictor,
}

/// A file sink's recorder: each segment is a file of the sink's output directory.
pub struct FileOutput {
    /// The output directory as the events name it.
    pub dir: std::path::PathBuf,
    /// A file is ended at the first video keyframe once it holds this many bytes.
    pub max_file_bytes: u64,
    events: EventBus,
    subject: String,
}

impl FileOutput {
    /// Each file is a recording: RecordingStarted with its first durable fragment,
    /// RecordingStopped once it is finished, `outputType` `filePath` with its path.
    fn emit<B: Into<Body>>(&self, event: fn(RecordingOutput) -> B, file: &str) {
        let output = RecordingOutput {
            output_type: OutputType::FilePath,
            output_location: self.dir.join(file).to_string_lossy().into_owned(),
        };
        self.events
            .emit(Event::new(self.subject.clone(), event(output)));
    }
}

pub struct Recorder {
    cache: Arc<Cache>,
    plugins: Plugins,
    events: EventBus,
    /// Event subject of the sink, e.g. `/graphInstances/g1/sinks/assetSink`.
    subject: String,
    /// Where the media goes, as the recording events name it.
    output: RecordingOutput,
    stats: Arc<RecorderStats>,
    /// Cause of the gap between the newest recorded media and the next run.
    gap_cause: GapCause,
    run: Option<Run>,
    /// RecordingStarted was emitted (on the first durable fragment of this activation).
    recording_started: bool,
    /// In a disk-full episode: the most bytes the cache held when a write failed on a full
    /// disk. Reported once per episode.
    disk_full_level: Option<u64>,
    /// Media dropped on a full disk with nothing left to evict: (first dropped, end so far).
    disk_drop: Option<(Ticks90k, Ticks90k)>,
    /// A segment was dropped: the segmenter starts over at the next segment.
    restart_segmenter: bool,
    /// In a disk-error episode (reported once): the cache's disk failed and no fragment was
    /// durably written since.
    disk_error: bool,
    /// Set for a file sink ([`Recorder::into_files`]).
    files: Option<FileOutput>,
}

struct Run {
    id: RunId,
    tracks: Vec<TrackParams>,
    /// Per track: the newest frame, waiting for the next one to know its duration.
    pending: Vec<Option<Frame>>,
    /// Per track: the last known frame duration in track units, used for a run's last frame.
    last_duration: Vec<i64>,
    next_sequence: u64,
    gap_recorded: bool,
    segment: Option<OpenSegment>,
}

struct OpenSegment {
    start: Ticks90k,
    /// The formatter's init pieces, written in front of the first fragment.
    init: Option<Vec<Piece>>,
    in_cache: bool,
    fragment_sequence: u32,
    samples: Vec<Sample>,
    payloads: Vec<Bytes>,
    payload_bytes: usize,
    first_wall: Option<Ticks90k>,
    /// Wall time of the current fragment's first frame.
    fragment_start: Ticks90k,
    end: Ticks90k,
}

impl Recorder {
    /// `crashed`: the cache's start-up found the previous process died; the first gap gets
    /// that cause.
    pub fn new(
        cache: Arc<Cache>,
        plugins: Plugins,
        events: EventBus,
        subject: String,
        output: RecordingOutput,
        crashed: bool,
    ) -> Self {
        Self {
            cache,
            plugins,
            events,
            subject,
            output,
            stats: Arc::default(),
            gap_cause: if crashed {
                GapCause::Crash
            } else {
                GapCause::RecorderStopped
            },
            run: None,
            recording_started: false,
            disk_full_level: None,
            disk_drop: None,
            restart_segmenter: false,
            disk_error: false,
            files: None,
        }
    }

    /// Makes this the recorder of a file sink whose cache is in the file-sink layout
    /// ([`Cache::open_files`]): every file is its own recording (events with its path under
    /// `dir`), and a file ends at the first video keyframe once it holds `max_file_bytes`.
    pub fn into_files(mut self, dir: std::path::PathBuf, max_file_bytes: u64) -> Self {
        self.files = Some(FileOutput {
            dir,
            max_file_bytes,
            events: self.events.clone(),
            subject: self.subject.clone(),
        });
        self
    }

    pub fn stats(&self) -> Arc<RecorderStats> {
        self.stats.clone()
    }

    /// Handles one item; a failure is reported and recovered from: what was written is
    /// sealed, the run is kept and recording resumes at its next keyframe. A failing cache
    /// disk is reported once per episode, not at every keyframe.
    pub fn handle_or_recover(&mut self, item: SourceItem) {
        let Err(e) = self.handle(item) else {
            return;
        };
        let first = self.report_disk_error(&e);
        if first {
            tracing::error!(sink = %self.subject, error = %e, "recording failed; the open segment is sealed and recording resumes at the next keyframe");
        } else {
            tracing::debug!(sink = %self.subject, error = %e, "recording failed again");
        }
        if let Err(e) = self.abandon_segment() {
            // The cache keeps a segment whose seal failed and seals it with the next one.
            if first {
                tracing::error!(sink = %self.subject, error = %e, "sealing after the failure failed too; retried with the next segment");
            }
        }
    }

    /// Reports a failure of the cache's disk other than a full one, once per episode;
    /// `true` unless the episode was already reported.
    fn report_disk_error(&mut self, e: &RecordError) -> bool {
        let RecordError::Cache(e) = e else {
            return true;
        };
        if !e.is_disk_error() {
            return true;
        }
        if std::mem::replace(&mut self.disk_error, true) {
            return false;
        }
        self.events.emit(Event::new(
            self.subject.clone(),
            catalog::CacheDiskError {
                error_code: e.io_code(),
                error_message: e.to_string(),
                action: "what was written is kept; recording resumes at a keyframe once the cache can be written again",
            },
        ));
        true
    }

    pub fn handle(&mut self, item: SourceItem) -> Result<(), RecordError> {
        match item {
            SourceItem::RunStarted { tracks } => {
                // A failed end of the old run does not keep the new one from recording; what
                // the old run wrote is sealed first (the cache holds one open segment).
                let ended = self.end_run();
                if ended.is_err() {
                    let _ = self.abandon_segment();
                }
                self.plugins.segmenter.reset();
                let id = self.cache.new_run();
                self.stats.run.store(id, Ordering::Relaxed);
                let n = tracks.len();
                self.run = Some(Run {
                    id,
                    tracks,
                    pending: vec![None; n],
                    last_duration: vec![0; n],
                    next_sequence: 0,
                    gap_recorded: false,
                    segment: None,
                });
                ended
            }
            SourceItem::Frame(f) => self.on_frame(f),
            SourceItem::RunEnded { reason } => {
                let ended = self.end_run();
                self.gap_cause = match reason {
                    RunEndReason::Disconnected(_) | RunEndReason::Stalled => {
                        GapCause::CameraOffline
                    }
                    RunEndReason::ClockJump => GapCause::ClockJump,
                    RunEndReason::Shutdown => GapCause::RecorderStopped,
                    RunEndReason::SinkBehind { frames } => {
                        self.stats
                            .dropped_frames
                            .fetch_add(frames, Ordering::Relaxed);
                        GapCause::SinkBehind
                    }
                };
                ended
            }
        }
    }

    /// Writes everything buffered and seals the open segment (end of run or shutdown).
    pub fn end_run(&mut self) -> Result<(), RecordError> {
        let Some(run) = self.run.as_mut() else {
            return Ok(());
        };
        let mut leftovers: Vec<(Frame, i64)> = Vec::new();
        for (t, p) in run.pending.iter_mut().enumerate() {
            if let Some(f) = p.take() {
                let default = i64::from(run.tracks[t].clock_rate.hz())
                    / if run.tracks[t].is_video() { 25 } else { 50 };
                let d = if run.last_duration[t] > 0 {
                    run.last_duration[t]
                } else {
                    default
                };
                leftovers.push((f, d));
            }
        }
        leftovers.sort_by_key(|(f, _)| f.wall);
        for (f, d) in leftovers {
            self.place(f, d)?;
        }
        let result = self.close_segment();
        self.run = None;
        if let Some((start, end)) = self.disk_drop.take() {
            self.cache.record_gap(Gap {
                start,
                end,
                cause: GapCause::DiskFull,
            })?;
        }
        result
    }

    /// Deactivation: seals what is open and reports the end of the recording (once, as LVA
    /// does; camera reconnects within an activation are gaps, not new recordings).
    pub fn finish(&mut self) -> Result<(), RecordError> {
        let result = self.end_run();
        if self.recording_started && self.files.is_none() {
            self.events.emit(Event::new(
                self.subject.clone(),
                catalog::RecordingStopped(self.output.clone()),
            ));
        }
        result
    }

    /// After a failed write: seals the open segment as far as it was durably written (whole
    /// fragments only) and drops the fragment being built, but keeps the run, so recording
    /// resumes at the run's next keyframe. By then the plugin host has replaced a faulty
    /// formatter or switched to the default one. The segmenter starts over too, so the next
    /// segment's length counts from its own start.
    pub fn abandon_segment(&mut self) -> Result<(), RecordError> {
        let Some(run) = self.run.as_mut() else {
            return Ok(());
        };
        self.plugins.segmenter.reset();
        let Some(seg) = run.segment.take() else {
            return Ok(());
        };
        self.stats
            .dropped_frames
            .fetch_add(seg.samples.len() as u64, Ordering::Relaxed);
        if seg.in_cache {
            seal_in_cache(&self.cache, run, &self.stats, self.files.as_ref())?;
        }
        Ok(())
    }

    fn on_frame(&mut self, f: Frame) -> Result<(), RecordError> {
        let Some(run) = self.run.as_mut() else {
            return Ok(());
        };
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_frame_wall
            .store(f.wall.0, Ordering::Relaxed);
        if !run.gap_recorded {
            run.gap_recorded = true;
            if let Some(last) = self.cache.last_end() {
                // Well before the newest media: the wall clock stepped back, whatever ended
                // the previous run (a gap whose end is before its start). Less is the
                // mapping's tolerance, not a step.
                let cause = if f.wall > last {
                    Some(self.gap_cause)
                } else if f.wall + JUMP < last {
                    Some(GapCause::ClockJump)
                } else {
                    None
                };
                if let Some(cause) = cause {
                    self.cache.record_gap(Gap {
                        start: last,
                        end: f.wall,
                        cause,
                    })?;
                }
            }
        }
        let t = f.track;
        let decode_time = f.decode_time;
        let Some(prev) = run.pending[t].replace(f) else {
            return Ok(());
        };
        // Decode order: with B-frames presentation times go back and forth.
        let duration = (decode_time - prev.decode_time).max(1);
        run.last_duration[t] = duration;
        self.place(prev, duration)
    }

    /// Puts one frame (whose duration is now known) into the current fragment, cutting first
    /// where the segmenter or the host's invariants say so.
    fn place(&mut self, f: Frame, duration: i64) -> Result<(), RecordError> {
        let run = self.run.as_mut().expect("frames only arrive within a run");
        if let Some(p) = &f.new_params {
            run.tracks[f.track] = p.clone();
        }
        let track = &run.tracks[f.track];
        let video = track.is_video();
        let clock = track.clock_rate;
        let duration_90k = clock.to_90k(duration);
        let composition_offset = f.media_time - f.decode_time;
        let info = FrameInfo {
            track: f.track as u32 + 1,
            kind: if video {
                MediaKind::Video
            } else {
                MediaKind::Audio
            },
            // `wall` is the presentation instant; the segmenter sees the decode instant.
            dts: f.wall - clock.to_90k(composition_offset),
            duration: u32::try_from(duration_90k.0).unwrap_or(u32::MAX),
            keyframe: f.keyframe,
            size: u32::try_from(f.data.len()).unwrap_or(u32::MAX),
        };
        let starts_segment = video && f.keyframe;
        let no_segment = run.segment.is_none();
        if no_segment && starts_segment && std::mem::take(&mut self.restart_segmenter) {
            // After a drop the segmenter starts over at this keyframe, so the next segment's
            // length counts from its own start.
            self.plugins.segmenter.reset();
        }
        let decision = self.plugins.segmenter.on_frame(&info);
        if no_segment && !starts_segment {
            // Waiting for a keyframe after dropped data: nothing before it could be decoded.
            self.stats.dropped_frames.fetch_add(1, Ordering::Relaxed);
            if let Some((_, end)) = &mut self.disk_drop {
                *end = (*end).max(f.wall + duration_90k);
            }
            return Ok(());
        }
        let pending_bytes = run.segment.as_ref().map_or(0, |s| s.payload_bytes);
        // A file sink's file ends once it is full (the open part plus what waits for it).
        let file_full = starts_segment
            && self.files.as_ref().is_some_and(|files| {
                let written = self.cache.open_progress().map_or(0, |(bytes, _)| bytes);
                written + pending_bytes as u64 >= files.max_file_bytes
            });
        if no_segment
            || (starts_segment
                && (decision == Decision::Segment || f.new_params.is_some() || file_full))
        {
            self.close_segment()?;
            self.begin_segment(f.wall)?;
        } else if decision != Decision::None || pending_bytes + f.data.len() > MAX_FRAGMENT_BYTES {
            self.flush_fragment()?;
        }
        let run = self.run.as_mut().expect("run");
        let Some(seg) = run.segment.as_mut() else {
            return Ok(());
        };
        if seg.samples.is_empty() {
            seg.fragment_start = f.wall;
        }
        seg.samples.push(Sample {
            track: f.track as u32 + 1,
            decode_time: u64::try_from(f.decode_time).unwrap_or(0),
            composition_offset: i32::try_from(composition_offset).unwrap_or(i32::MAX),
            duration: u32::try_from(duration).unwrap_or(u32::MAX),
            keyframe: f.keyframe,
            size: info.size,
        });
        seg.payload_bytes += f.data.len();
        seg.payloads.push(f.data);
        seg.first_wall.get_or_insert(f.wall);
        seg.end = seg.end.max(f.wall + duration_90k);
        Ok(())
    }

    fn begin_segment(&mut self, start: Ticks90k) -> Result<(), RecordError> {
        let run = self.run.as_mut().expect("run");
        let tracks = plugin_tracks(&run.tracks);
        let init = self.plugins.formatter.init(&tracks)?;
        run.segment = Some(OpenSegment {
            start,
            init: Some(init),
            in_cache: false,
            fragment_sequence: 1,
            samples: Vec::new(),
            payloads: Vec::new(),
            payload_bytes: 0,
            first_wall: None,
            fragment_start: start,
            end: start,
        });
        Ok(())
    }

    fn close_segment(&mut self) -> Result<(), RecordError> {
        self.flush_fragment()?;
        let Some(run) = self.run.as_mut() else {
            return Ok(());
        };
        let Some(seg) = run.segment.take() else {
            return Ok(());
        };
        if seg.in_cache {
            seal_in_cache(&self.cache, run, &self.stats, self.files.as_ref())?;
        }
        Ok(())
    }

    /// Lays out and durably appends the current fragment.
    fn flush_fragment(&mut self) -> Result<(), RecordError> {
        let Some(run) = self.run.as_mut() else {
            return Ok(());
        };
        let Some(seg) = run.segment.as_mut() else {
            return Ok(());
        };
        if seg.samples.is_empty() {
            return Ok(());
        }
        let samples = std::mem::take(&mut seg.samples);
        let payloads = std::mem::take(&mut seg.payloads);
        seg.payload_bytes = 0;
        let first_keyframe =
            samples[0].keyframe && run.tracks[samples[0].track as usize - 1].is_video();
        let end = seg.end;
        let fragment_start = seg.fragment_start;

        let mut parts = self.layout(&samples, &payloads)?;
        let needed: u64 = parts.iter().map(|p| p.len() as u64).sum();
        match self.reserve(needed) {
            Ok(()) => {}
            Err(RecordError::Cache(CacheError::NoRoom { .. })) => {
                // Only the open segment is left: seal it so it can be evicted, and carry on
                // in a new segment if this fragment can start one.
                let run = self.run.as_mut().expect("run");
                let had_file = run.segment.take().is_some_and(|s| s.in_cache);
                if had_file {
                    seal_in_cache(&self.cache, run, &self.stats, self.files.as_ref())?;
                    if first_keyframe {
                        self.begin_segment(fragment_start)?;
                        let seg = self
                            .run
                            .as_mut()
                            .and_then(|r| r.segment.as_mut())
                            .expect("segment");
                        seg.first_wall = Some(fragment_start);
                        seg.end = end;
                        parts = self.layout(&samples, &payloads)?;
                        let needed: u64 = parts.iter().map(|p| p.len() as u64).sum();
                        if self.reserve(needed).is_ok() {
                            return self.append_or_make_room(
                                parts,
                                fragment_start,
                                end,
                                samples.len(),
                                first_keyframe,
                            );
                        }
                        self.run.as_mut().expect("run").segment = None;
                    }
                }
                self.drop_fragment(&samples, needed);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.append_or_make_room(parts, fragment_start, end, samples.len(), first_keyframe)
    }

    /// Appends a fragment spanning `start..end`. On a full file system: reports it (once per
    /// episode), asks the evictor for room as if the bytes held now were the limit, and
    /// retries; with nothing left to evict, seals the open segment (it keeps every complete
    /// fragment) and drops this fragment, so recording resumes at a later keyframe.
    fn append_or_make_room(
        &mut self,
        parts: Vec<Bytes>,
        start: Ticks90k,
        end: Ticks90k,
        frames: usize,
        keyframe: bool,
    ) -> Result<(), RecordError> {
        let needed: u64 = parts.iter().map(|p| p.len() as u64).sum();
        loop {
            let full = match self.append(parts.clone(), end, keyframe) {
                Ok(()) => return self.disk_has_room(start),
                Err(RecordError::Cache(e)) if e.is_disk_full() => e,
                Err(e) => return Err(e),
            };
            self.report_disk_full(&full);
            match self.evict(needed, true) {
                // Each round deletes at least one segment, so this ends.
                Ok(()) => continue,
                Err(RecordError::Cache(CacheError::NoRoom { .. })) => {
                    let run = self.run.as_mut().expect("run");
                    if run.segment.take().is_some_and(|s| s.in_cache) {
                        seal_in_cache(&self.cache, run, &self.stats, self.files.as_ref())?;
                    }
                    self.restart_segmenter = true;
                    self.drop_on_full_disk(start, end, frames, needed);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn report_disk_full(&mut self, e: &CacheError) {
        let used = self.cache.used_bytes();
        let first = self.disk_full_level.is_none();
        self.disk_full_level = Some(self.disk_full_level.unwrap_or(0).max(used));
        tracing::warn!(sink = %self.subject, error = %e, used, "cache file system full; evicting");
        if first {
            self.events.emit(Event::new(
                self.subject.clone(),
                catalog::CacheDiskFull {
                    error_code: e.io_code(),
                    error_message: e.to_string(),
                    local_media_cache_used_bytes: used,
                    local_media_cache_maximum_size_bytes: self.cache.limit_bytes(),
                    action: "evicting the oldest media (evictor plugin); frames are dropped while nothing is left to evict",
                },
            ));
        }
    }

    fn drop_on_full_disk(&mut self, start: Ticks90k, end: Ticks90k, frames: usize, bytes: u64) {
        self.stats
            .dropped_frames
            .fetch_add(frames as u64, Ordering::Relaxed);
        match &mut self.disk_drop {
            Some((_, until)) => *until = (*until).max(end),
            None => {
                self.disk_drop = Some((start, end));
                tracing::warn!(sink = %self.subject, "cache file system full and nothing left to evict; dropping frames until space returns");
                self.events.emit(Event::new(
                    self.subject.clone(),
                    catalog::DataDropped {
                        data_type: "video",
                        reason: "diskFull",
                        bytes,
                    },
                ));
            }
        }
    }

    /// A fragment starting at `start` is durable: a drop on a full disk ends there, and the
    /// episode ends once the cache outgrew the level at which the disk was full.
    fn disk_has_room(&mut self, start: Ticks90k) -> Result<(), RecordError> {
        if let Some((from, _)) = self.disk_drop.take() {
            tracing::info!(sink = %self.subject, "cache file system has room again; recording resumed");
            self.cache.record_gap(Gap {
                start: from,
                end: start,
                cause: GapCause::DiskFull,
            })?;
        }
        if let Some(level) = self.disk_full_level
            && self.cache.used_bytes() > level + DISK_ROOM_AGAIN_BYTES
        {
            tracing::info!(sink = %self.subject, "cache file system no longer full");
            self.disk_full_level = None;
        }
        Ok(())
    }

    /// The fragment's bytes in file order: init (first fragment of a segment only), then the
    /// formatter's pieces with payload ranges spliced from the frames (zero-copy slices).
    fn layout(
        &mut self,
        samples: &[Sample],
        payloads: &[Bytes],
    ) -> Result<Vec<Bytes>, RecordError> {
        let run = self.run.as_mut().expect("run");
        let seg = run.segment.as_mut().expect("segment");
        let pieces = self
            .plugins
            .formatter
            .fragment(seg.fragment_sequence, samples)?;
        let mut parts = Vec::with_capacity(pieces.len() + 2);
        let init = if seg.in_cache {
            None
        } else {
            seg.init.as_ref()
        };
        for p in init.into_iter().flatten().chain(pieces.iter()) {
            match p {
                Piece::Bytes(b) => parts.push(Bytes::copy_from_slice(b)),
                Piece::Payload(r) => {
                    // The plugin host verified the range against the sample sizes.
                    let data = &payloads[r.sample as usize];
                    let start = r.offset as usize;
                    parts.push(data.slice(start..start + r.length as usize));
                }
            }
        }
        Ok(parts)
    }

    fn reserve(&mut self, needed: u64) -> Result<(), RecordError> {
        self.evict(needed, false)
    }

    /// Makes room for `needed` bytes under the budget, or (`full_disk`) frees `needed` bytes
    /// of what the cache holds because the file system is full.
    fn evict(&mut self, needed: u64, full_disk: bool) -> Result<(), RecordError> {
        let evictor = &mut self.plugins.evictor;
        let mut choose = |entries: &[SegmentMeta], b: crate::cache::Budget| {
            let view: Vec<CacheEntry> = entries
                .iter()
                .map(|e| CacheEntry {
                    id: e.id.0,
                    start: e.start,
                    end: e.end,
                    bytes: e.bytes,
                    uploaded: e.uploaded,
                })
                .collect();
            let budget = Budget {
                limit_bytes: b.limit_bytes,
                used_bytes: b.used_bytes,
                incoming_bytes: b.incoming_bytes,
            };
            evictor
                .choose(&view, budget)
                .into_iter()
                .map(SegmentId)
                .collect()
        };
        let evicted = if full_disk {
            self.cache.evict_for_full_disk(needed, &mut choose)?
        } else {
            self.cache.reserve(needed, &mut choose)?
        };
        for e in evicted {
            tracing::debug!(segment = %e.file_name, uploaded = e.uploaded, full_disk, "evicted");
        }
        Ok(())
    }

    /// Appends a fragment; `keyframe`: it starts with a video keyframe (for live players).
    fn append(
        &mut self,
        parts: Vec<Bytes>,
        end: Ticks90k,
        keyframe: bool,
    ) -> Result<(), RecordError> {
        let run = self.run.as_mut().expect("run");
        let seg = run.segment.as_mut().expect("segment");
        if !seg.in_cache {
            let codecs: Vec<&str> = run.tracks.iter().map(|t| t.rfc6381.as_str()).collect();
            let ext = self.plugins.formatter.info().extension.clone();
            let start = seg.first_wall.unwrap_or(seg.start);
            self.cache
                .begin_segment(run.id, run.next_sequence, start, &codecs.join(","), &ext)?;
            seg.in_cache = true;
        }
        let slices: Vec<&[u8]> = parts.iter().map(|b| b.as_ref()).collect();
        self.cache.append_fragment_flagged(&slices, end, keyframe)?;
        if std::mem::take(&mut self.disk_error) {
            tracing::info!(sink = %self.subject, "the cache can be written again; recording resumed");
        }
        seg.fragment_sequence += 1;
        let bytes: u64 = slices.iter().map(|s| s.len() as u64).sum();
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(files) = &self.files {
            if seg.fragment_sequence == 2 {
                let name = self.cache.open_file_name().unwrap_or_default();
                files.emit(catalog::RecordingStarted, &name);
            }
        } else if !self.recording_started {
            self.recording_started = true;
            self.events.emit(Event::new(
                self.subject.clone(),
                catalog::RecordingStarted(self.output.clone()),
            ));
        }
        Ok(())
    }

    fn drop_fragment(&mut self, samples: &[Sample], bytes: u64) {
        self.stats
            .dropped_frames
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        tracing::warn!(sink = %self.subject, bytes, limit = self.cache.limit_bytes(), "fragment does not fit the cache budget; dropped");
        self.events.emit(Event::new(
            self.subject.clone(),
            catalog::DataDropped {
                data_type: "video",
                reason: "localMediaCacheMaximumSizeMiB",
                bytes,
            },
        ));
    }
}

/// Seals the run's segment in the cache. A segment whose seal failed stays in the cache and
/// is sealed later (see `Cache::seal`), so its sequence number is used either way.
fn seal_in_cache(
    cache: &Cache,
    run: &mut Run,
    stats: &RecorderStats,
    files: Option<&FileOutput>,
) -> Result<(), RecordError> {
    match cache.seal() {
        Ok(None) => Ok(()),
        Ok(Some(meta)) => {
            run.next_sequence += 1;
            stats.segments.fetch_add(1, Ordering::Relaxed);
            if let Some(files) = files {
                files.emit(catalog::RecordingStopped, &meta.file_name);
            }
            Ok(())
        }
        Err(e) => {
            run.next_sequence += 1;
            Err(e.into())
        }
    }
}

fn plugin_tracks(tracks: &[TrackParams]) -> Vec<Track> {
    tracks
        .iter()
        .enumerate()
        .map(|(i, t)| Track {
            id: i as u32 + 1,
            kind: if t.is_video() {
                MediaKind::Video
            } else {
                MediaKind::Audio
            },
            codec: match t.codec {
                TrackCodec::H264 => Codec::H264,
                TrackCodec::H265 => Codec::H265,
                TrackCodec::Aac => Codec::Aac,
            },
            timescale: t.clock_rate.hz(),
            width: t.width,
            height: t.height,
            sample_rate: t.sample_rate,
            channels: t.channels,
            decoder_config: t.decoder_config.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
