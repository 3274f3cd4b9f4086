//! Clip export: one MP4 file for a time range of an asset (`mediagraph export`, and
//! `GET /assets/{asset}/export.mp4?startTime=&endTime=`).
//!
//! Owns: choosing the blobs a range spans, finding the keyframe at or before `startTime`, and
//! rewriting the stored CMAF fragments into one fragmented MP4: the first blob's `ftyp` +
//! `moov` (with the clip's length in `mvhd` and `mehd`, so players know it before reading the
//! fragments), then every stored fragment as a new `moof` + `mdat` holding only the samples in
//! range, with decode times rebased onto the clip's timeline. Must not: write to a store, hold
//! more than one blob (and the fragment being written) in memory, or decode media.
//!
//! - Start: the last keyframe of the video track (the first track for audio-only recordings)
//!   whose presentation instant is at or before `startTime`, else the first one after it.
//!   Audio starts at that keyframe's instant. End: samples decoded at or after `endTime` are
//!   dropped, so the clip ends at `endTime` to within one frame.
//! - Time mapping: every track of a run shares one media timeline (the recorder scales the
//!   run's elapsed time to each track's clock), and a blob's `start` metadata is the wall
//!   instant of its first video frame, which anchors that blob's media times to wall time.
//! - Gaps are closed ([`GAPS_POLICY`], sent as [`GAPS_HEADER`]): a hole between blobs, or a
//!   new run (media times restart), continues the clip right where the media before it ended.
//!   Players then need no gap handling (Chromium and ffplay both stall or freeze on a hole in
//!   a fragmented file's timeline), and the clip is as long as what was recorded. Within one
//!   run, blobs that follow each other keep their exact decode times (only shifted).
//! - The first blob's init describes the whole clip. A later blob whose tracks have other
//!   codec parameters (a resolution change starts a new segment) cannot follow under that
//!   init, so the clip ends before it (logged); tracks the first blob does not have are left
//!   out.
//! - Memory: the output is a stream of chunks, one per stored fragment; one blob is read at a
//!   time (the store hands out whole blobs, bounded by segmentLength), never the whole clip.
//!
//! The boxes are decoded and encoded with the `mp4-atom` crate; this module only decides which
//! samples stay and what their decode times become.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use mp4_atom::{
    Atom, Decode, Encode, FourCC, Header, Mehd, Mfhd, Moof, Moov, Tfdt, Tfhd, Traf, Trun, TrunEntry,
};

use super::available::{check_span, parse_instant};
use super::{BlobFile, PlaybackError};
use crate::time::{Duration90k, TICKS_PER_SECOND, Ticks90k};
use crate::topology::AssetName;
use crate::upload::{AssetStore, SEAM_TOLERANCE, StoredBlob, UploadError};

/// The longest clip exported unless configured otherwise: LVA's limit for a time-range
/// playlist.
pub const DEFAULT_MAX_SPAN_SECS: u64 = 24 * 3600;
/// Response header naming how gaps are treated (lowercase, as HTTP/2 and `HeaderName` want).
pub const GAPS_HEADER: &str = "x-mediagraph-gaps";
/// Gaps are closed: the media after a gap follows the media before it directly.
pub const GAPS_POLICY: &str = "closed";
/// `sample_is_non_sync_sample` of ISO-BMFF sample flags.
const NON_SYNC: u32 = 0x0001_0000;
const VIDEO: FourCC = FourCC::new(b"vide");

/// A validated export range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipRange {
    pub start: Ticks90k,
    pub end: Ticks90k,
}

impl ClipRange {
    /// `startTime`/`endTime` as ISO-8601 text: start before end, at most `max_secs` apart.
    pub fn parse(start: &str, end: &str, max_secs: u64) -> Result<Self, PlaybackError> {
        let s = parse_instant("startTime", start)?;
        let e = parse_instant("endTime", end)?;
        let max_span = Duration90k(
            i64::try_from(max_secs)
                .unwrap_or(i64::MAX / TICKS_PER_SECOND)
                .saturating_mul(TICKS_PER_SECOND),
        );
        let max_text = if max_secs.is_multiple_of(3600) {
            format!("{} hours", max_secs / 3600)
        } else {
            format!("{max_secs} seconds")
        };
        check_span((s, e), (start, end), max_span, "an export", &max_text)?;
        Ok(Self { start: s, end: e })
    }
}

/// One blob the range spans, from the listing.
#[derive(Clone, Debug)]
struct PlannedBlob {
    name: String,
    start: Ticks90k,
    end: Ticks90k,
    run: Option<u64>,
}

/// The blobs of `blobs` (any order) whose media overlaps `range`, in time order.
fn overlapping(blobs: &[StoredBlob], range: ClipRange) -> VecDeque<PlannedBlob> {
    let mut chosen: Vec<PlannedBlob> = blobs
        .iter()
        .filter(|b| BlobFile::parse(BlobFile::of(b)).is_ok())
        .filter_map(|b| {
            let (start, end) = b.span()?;
            (start < end && start < range.end && end > range.start).then(|| PlannedBlob {
                name: b.name.clone(),
                start,
                end,
                run: b.metadata.get("run").and_then(|r| r.parse().ok()),
            })
        })
        .collect();
    chosen.sort_by(|a, b| (a.start, &a.name).cmp(&(b.start, &b.name)));
    chosen.into()
}

/// A track of the clip, from the first blob's init.
#[derive(Clone, Debug, PartialEq)]
struct TrackInfo {
    id: u32,
    timescale: u32,
    video: bool,
    /// Sample description, compared with later blobs'.
    stsd: mp4_atom::Stsd,
    defaults: SampleDefaults,
}

/// `trex` defaults a fragment may rely on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct SampleDefaults {
    duration: u32,
    size: u32,
    flags: u32,
}

/// The init part of a blob: raw `ftyp`, decoded `moov`, and where the fragments begin.
struct Init {
    ftyp: Vec<u8>,
    moov: Moov,
    tracks: Vec<TrackInfo>,
    len: usize,
}

/// One sample of a stored fragment, resolved against the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    /// Decode time in track units on the run's timeline.
    dts: u64,
    duration: u32,
    size: u32,
    flags: u32,
    cts: i64,
    /// Byte position of the payload in the blob.
    at: usize,
}

impl Sample {
    fn keyframe(&self) -> bool {
        self.flags & NON_SYNC == 0
    }
    fn pts(&self) -> i64 {
        self.dts as i64 + self.cts
    }
}

/// The samples of one track in one stored fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Run {
    track: u32,
    samples: Vec<Sample>,
}

type Fragment = Vec<Run>;

/// Top-level boxes of `bytes`: (type, start, total length).
fn boxes(bytes: &[u8]) -> impl Iterator<Item = Result<(FourCC, usize, usize), String>> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let mut rest = &bytes[at..];
        let before = rest.len();
        let header = match Header::decode(&mut rest) {
            Ok(h) => h,
            Err(e) => {
                at = bytes.len();
                return Some(Err(format!("box header at byte {at}: {e}")));
            }
        };
        let header_len = before - rest.len();
        let total = header.size.map_or(bytes.len() - at, |s| s + header_len);
        if total > bytes.len() - at {
            let err = format!("box {} at byte {at} runs past the end", header.kind);
            at = bytes.len();
            return Some(Err(err));
        }
        let item = (header.kind, at, total);
        at += total;
        Some(Ok(item))
    })
}

fn parse_init(bytes: &[u8]) -> Result<Init, String> {
    let mut ftyp = Vec::new();
    let mut moov = None;
    for b in boxes(bytes) {
        let (kind, at, len) = b?;
        match kind {
            k if k == mp4_atom::Ftyp::KIND => ftyp = bytes[at..at + len].to_vec(),
            k if k == Moov::KIND => {
                let m =
                    Moov::decode(&mut &bytes[at..at + len]).map_err(|e| format!("moov: {e}"))?;
                moov = Some(m);
            }
            k if k == Moof::KIND => {
                let moov = moov.ok_or("no moov before the first moof")?;
                let tracks = tracks_of(&moov);
                return Ok(Init {
                    ftyp,
                    moov,
                    tracks,
                    len: at,
                });
            }
            _ => {}
        }
    }
    Err("no fragment (moof) in the blob".into())
}

fn tracks_of(moov: &Moov) -> Vec<TrackInfo> {
    moov.trak
        .iter()
        .map(|t| {
            let id = t.tkhd.track_id;
            let trex = moov
                .mvex
                .as_ref()
                .and_then(|m| m.trex.iter().find(|x| x.track_id == id));
            TrackInfo {
                id,
                timescale: t.mdia.mdhd.timescale.max(1),
                video: t.mdia.hdlr.handler == VIDEO,
                stsd: t.mdia.minf.stbl.stsd.clone(),
                defaults: trex.map_or(SampleDefaults::default(), |x| SampleDefaults {
                    duration: x.default_sample_duration,
                    size: x.default_sample_size,
                    flags: x.default_sample_flags,
                }),
            }
        })
        .collect()
}

/// Every fragment after the init, with each sample's payload position.
fn parse_fragments(bytes: &[u8], init: &Init) -> Result<Vec<Fragment>, String> {
    let mut fragments = Vec::new();
    for b in boxes(&bytes[init.len..]) {
        let (kind, at, len) = b?;
        if kind != Moof::KIND {
            continue;
        }
        let moof_at = init.len + at;
        let moof = Moof::decode(&mut &bytes[moof_at..moof_at + len])
            .map_err(|e| format!("moof at byte {moof_at}: {e}"))?;
        let mut runs = Vec::new();
        // Without a base offset or default-base-is-moof, a traf's data follows the previous
        // traf's (the first one's starts at the moof).
        let mut next_data = moof_at;
        for traf in &moof.traf {
            let id = traf.tfhd.track_id;
            let Some(track) = init.tracks.iter().find(|t| t.id == id) else {
                continue;
            };
            let mut dts = traf.tfdt.as_ref().map_or(0, |t| t.base_media_decode_time);
            let base = match traf.tfhd.base_data_offset {
                Some(b) => usize::try_from(b).map_err(|_| "base data offset too large")?,
                None if traf.tfhd.default_base_is_moof => moof_at,
                None => next_data,
            };
            let mut samples = Vec::new();
            let mut data = base;
            for trun in &traf.trun {
                if let Some(off) = trun.data_offset {
                    data = base
                        .checked_add_signed(off as isize)
                        .ok_or("trun data offset before the file start")?;
                }
                for e in trun.samples.iter() {
                    let s = Sample {
                        dts,
                        duration: e
                            .duration
                            .or(traf.tfhd.default_sample_duration)
                            .unwrap_or(track.defaults.duration),
                        size: e
                            .size
                            .or(traf.tfhd.default_sample_size)
                            .unwrap_or(track.defaults.size),
                        flags: e
                            .flags
                            .or(traf.tfhd.default_sample_flags)
                            .unwrap_or(track.defaults.flags),
                        cts: e.cts.unwrap_or(0),
                        at: data,
                    };
                    let end = data
                        .checked_add(s.size as usize)
                        .filter(|&end| end <= bytes.len())
                        .ok_or_else(|| format!("track {id}: a sample runs past the blob's end"))?;
                    dts += u64::from(s.duration);
                    data = end;
                    samples.push(s);
                }
            }
            next_data = data;
            runs.push(Run { track: id, samples });
        }
        fragments.push(runs);
    }
    Ok(fragments)
}

/// Maps one blob's media times to wall instants: `start` is the wall instant of its first
/// sample of the key track (the video, else the first track).
#[derive(Clone, Copy, Debug)]
struct WallMap {
    /// Wall instant of media time 0 of the blob's run.
    origin: Ticks90k,
}

impl WallMap {
    fn new(start: Ticks90k, key: &TrackInfo, fragments: &[Fragment]) -> Option<Self> {
        let first = fragments
            .iter()
            .flatten()
            .find(|r| r.track == key.id)?
            .samples
            .first()?;
        Some(Self {
            origin: start - Duration90k(to_90k(first.pts(), key.timescale)),
        })
    }

    fn wall(&self, t: i64, timescale: u32) -> Ticks90k {
        self.origin + Duration90k(to_90k(t, timescale))
    }
}

fn to_90k(t: i64, timescale: u32) -> i64 {
    (i128::from(t) * i128::from(TICKS_PER_SECOND) / i128::from(timescale)) as i64
}

fn from_90k(t: i64, timescale: u32) -> i64 {
    (i128::from(t) * i128::from(timescale)).div_euclid(i128::from(TICKS_PER_SECOND)) as i64
}

/// The clip's timeline: which samples stay and where they land.
#[derive(Debug)]
struct Timeline {
    range: ClipRange,
    /// Wall instant of the start keyframe's presentation, once found.
    start: Option<Ticks90k>,
    /// Output time (90 kHz) of media time 0 of the current stretch's run.
    base: i64,
    /// The blob before, for telling a seam from a gap: (run, wall end).
    previous: Option<(Option<u64>, Ticks90k)>,
    /// Where the output ends so far (90 kHz).
    cursor: i64,
}

/// What one blob contributes: per fragment, per track, the kept samples and their new decode
/// time.
type Selection = Vec<KeptFragment>;

impl Timeline {
    fn new(range: ClipRange) -> Self {
        Self {
            range,
            start: None,
            base: 0,
            previous: None,
            cursor: 0,
        }
    }

    /// The start keyframe in this blob, if the clip has not started: (its decode time, its
    /// wall presentation instant).
    fn find_start(
        &self,
        key: &TrackInfo,
        map: WallMap,
        fragments: &[Fragment],
    ) -> Option<(u64, Ticks90k)> {
        let keyframes = fragments
            .iter()
            .flatten()
            .filter(|r| r.track == key.id)
            .flat_map(|r| r.samples.iter())
            .filter(|s| s.keyframe())
            .map(|s| (s.dts, map.wall(s.pts(), key.timescale)));
        let mut chosen = None;
        for (dts, wall) in keyframes {
            if wall <= self.range.start || chosen.is_none() {
                chosen = Some((dts, wall));
            } else {
                break;
            }
        }
        chosen.filter(|(_, wall)| *wall < self.range.end)
    }

    /// Decides the samples of one blob and advances the timeline.
    fn select(
        &mut self,
        blob: &PlannedBlob,
        tracks: &[TrackInfo],
        fragments: &[Fragment],
    ) -> Selection {
        let Some(key) = tracks.iter().find(|t| t.video).or(tracks.first()) else {
            return Vec::new();
        };
        let Some(map) = WallMap::new(blob.start, key, fragments) else {
            return Vec::new();
        };
        // Samples before the start keyframe (its decode time on the key track, its
        // presentation instant on the others) are left out of the first blob.
        let mut from_key_dts = 0u64;
        let mut from_wall = Ticks90k(i64::MIN);
        match self.start {
            None => {
                let Some((dts, wall)) = self.find_start(key, map, fragments) else {
                    return Vec::new();
                };
                self.start = Some(wall);
                from_key_dts = dts;
                from_wall = wall;
                self.base = -to_90k(dts as i64, key.timescale);
            }
            Some(_) => {
                let (run, end) = self.previous.unwrap_or_default();
                let seam = run == blob.run && (blob.start - end).abs() <= SEAM_TOLERANCE;
                if !seam {
                    // Close the gap: this blob's first sample lands where the clip ends now.
                    let first = fragments
                        .iter()
                        .flatten()
                        .filter_map(|r| {
                            let t = tracks.iter().find(|t| t.id == r.track)?;
                            Some(to_90k(r.samples.first()?.dts as i64, t.timescale))
                        })
                        .min()
                        .unwrap_or(0);
                    self.base = self.cursor - first;
                }
            }
        }
        self.previous = Some((blob.run, blob.end));
        let mut out = Vec::with_capacity(fragments.len());
        for fragment in fragments {
            let mut kept = Vec::new();
            for run in fragment {
                let Some(t) = tracks.iter().find(|t| t.id == run.track) else {
                    continue;
                };
                let samples: Vec<Sample> = run
                    .samples
                    .iter()
                    .filter(|s| {
                        let started = if t.id == key.id {
                            s.dts >= from_key_dts
                        } else {
                            map.wall(s.pts(), t.timescale) >= from_wall
                        };
                        started && map.wall(s.dts as i64, t.timescale) < self.range.end
                    })
                    .copied()
                    .collect();
                let Some(first) = samples.first() else {
                    continue;
                };
                let shift = from_90k(self.base, t.timescale);
                let dts = u64::try_from(first.dts as i64 + shift).unwrap_or(0);
                let end: u64 = dts + samples.iter().map(|s| u64::from(s.duration)).sum::<u64>();
                self.cursor = self.cursor.max(to_90k(end as i64, t.timescale));
                kept.push((t.id, dts, samples));
            }
            if !kept.is_empty() {
                out.push(kept);
            }
        }
        out
    }
}

/// `moof` + `mdat` for the kept samples of one fragment.
fn write_fragment(
    sequence: u32,
    runs: &[(u32, u64, Vec<Sample>)],
    blob: &[u8],
) -> Result<Vec<u8>, mp4_atom::Error> {
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: runs
            .iter()
            .map(|(track, dts, samples)| Traf {
                tfhd: Tfhd {
                    track_id: *track,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: *dts,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: samples
                        .iter()
                        .map(|s| TrunEntry {
                            duration: Some(s.duration),
                            size: Some(s.size),
                            flags: Some(s.flags),
                            cts: Some(s.cts),
                        })
                        .collect::<Vec<_>>()
                        .into(),
                }],
                ..Default::default()
            })
            .collect(),
    };
    // The data offsets count from the moof's start, so they depend on its encoded size
    // (which they do not change: every trun has one).
    let mut probe = Vec::new();
    moof.encode(&mut probe)?;
    let payload: usize = runs
        .iter()
        .flat_map(|(_, _, s)| s.iter())
        .map(|s| s.size as usize)
        .sum();
    let mut offset = probe.len() + 8;
    for (traf, (_, _, samples)) in moof.traf.iter_mut().zip(runs) {
        traf.trun[0].data_offset =
            Some(i32::try_from(offset).map_err(|_| mp4_atom::Error::TooLarge(Moof::KIND))?);
        offset += samples.iter().map(|s| s.size as usize).sum::<usize>();
    }
    let mut out = Vec::with_capacity(probe.len() + 8 + payload);
    moof.encode(&mut out)?;
    let mdat_len = u32::try_from(payload + 8).map_err(|_| mp4_atom::Error::TooLarge(Moof::KIND))?;
    out.extend_from_slice(&mdat_len.to_be_bytes());
    out.extend_from_slice(b"mdat");
    for (_, _, samples) in runs {
        for s in samples {
            out.extend_from_slice(&blob[s.at..s.at + s.size as usize]);
        }
    }
    Ok(out)
}

/// The first blob's `ftyp` + `moov`, with the clip's duration.
fn write_init(init: &Init, duration_90k: i64) -> Result<Vec<u8>, mp4_atom::Error> {
    let mut moov = init.moov.clone();
    let scale = moov.mvhd.timescale.max(1);
    let duration = u64::try_from(from_90k(duration_90k.max(0), scale)).unwrap_or(0);
    moov.mvhd.duration = duration;
    if let Some(mvex) = moov.mvex.as_mut() {
        mvex.mehd = Some(Mehd {
            fragment_duration: duration,
        });
    }
    let mut out = init.ftyp.clone();
    moov.encode(&mut out)?;
    Ok(out)
}

/// A clip ready to stream: the range was found to hold media, the first blob is read.
pub struct Clip {
    store: Arc<dyn AssetStore>,
    pending: VecDeque<PlannedBlob>,
    tracks: Vec<TrackInfo>,
    timeline: Timeline,
    init: Option<Vec<u8>>,
    current: Option<Current>,
    sequence: u32,
}

/// The blob being written out: its bytes and the kept runs of the fragments still to write.
struct Current {
    name: String,
    bytes: Vec<u8>,
    selection: std::vec::IntoIter<KeptFragment>,
}

/// The kept runs of one fragment: (track, new decode time, samples).
type KeptFragment = Vec<(u32, u64, Vec<Sample>)>;

impl Clip {
    /// Finds the blobs `range` spans and the keyframe the clip starts at. 404 if the asset
    /// has no media in the range.
    pub async fn open(
        store: Arc<dyn AssetStore>,
        asset: &AssetName,
        range: ClipRange,
    ) -> Result<Self, PlaybackError> {
        let listing = store
            .list_range(asset.as_str(), range.start, range.end)
            .await?;
        if !listing.asset_has_blobs {
            return Err(PlaybackError::AssetNotFound(asset.as_str().to_owned()));
        }
        let mut pending = overlapping(&listing.items, range);
        drop(listing);
        let mut timeline = Timeline::new(range);
        while let Some(blob) = pending.pop_front() {
            let bytes = read(store.as_ref(), &blob.name).await?;
            let bad = |what: String| PlaybackError::BadMedia {
                blob: blob.name.clone(),
                what,
            };
            let init = parse_init(&bytes).map_err(bad)?;
            let fragments = parse_fragments(&bytes, &init).map_err(bad)?;
            let selection = timeline.select(&blob, &init.tracks, &fragments);
            let Some(start) = timeline.start else {
                continue;
            };
            // The clip's length as the listing tells it (gaps closed), for mvhd/mehd.
            let duration: Duration90k = std::iter::once(&blob)
                .chain(pending.iter())
                .map(|b| (b.end.min(range.end) - b.start.max(start)).max(Duration90k::ZERO))
                .sum();
            let head = write_init(&init, duration.0).map_err(|e| bad(e.to_string()))?;
            return Ok(Self {
                store,
                pending,
                tracks: init.tracks,
                timeline,
                init: Some(head),
                current: Some(Current {
                    name: blob.name,
                    bytes,
                    selection: selection.into_iter(),
                }),
                sequence: 0,
            });
        }
        Err(PlaybackError::NoMedia {
            asset: asset.as_str().to_owned(),
            start: range.start.to_rfc3339_millis(),
            end: range.end.to_rfc3339_millis(),
        })
    }

    /// The clip as MP4 bytes: the init, then one chunk per stored fragment.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, PlaybackError>> + Send {
        futures::stream::try_unfold(self, |mut clip| async move {
            Ok(clip.next_chunk().await?.map(|chunk| (chunk, clip)))
        })
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, PlaybackError> {
        if let Some(init) = self.init.take() {
            return Ok(Some(init.into()));
        }
        loop {
            if let Some(current) = self.current.as_mut() {
                if let Some(runs) = current.selection.next() {
                    self.sequence += 1;
                    let chunk =
                        write_fragment(self.sequence, &runs, &current.bytes).map_err(|e| {
                            PlaybackError::BadMedia {
                                blob: current.name.clone(),
                                what: e.to_string(),
                            }
                        })?;
                    return Ok(Some(chunk.into()));
                }
                // Done with this blob: free it before reading the next.
                self.current = None;
            }
            let Some(blob) = self.pending.pop_front() else {
                return Ok(None);
            };
            let bytes = read(self.store.as_ref(), &blob.name).await?;
            let bad = |what: String| PlaybackError::BadMedia {
                blob: blob.name.clone(),
                what,
            };
            let init = parse_init(&bytes).map_err(bad)?;
            let same = self.tracks.iter().all(|t| {
                init.tracks
                    .iter()
                    .find(|o| o.id == t.id)
                    .is_none_or(|o| o.timescale == t.timescale && o.stsd == t.stsd)
            });
            if !same {
                tracing::warn!(blob = %blob.name, "clip export: the codec parameters change here; the clip ends before this blob");
                self.pending.clear();
                return Ok(None);
            }
            let fragments = parse_fragments(&bytes, &init).map_err(bad)?;
            let selection = self.timeline.select(&blob, &self.tracks, &fragments);
            self.current = Some(Current {
                name: blob.name,
                bytes,
                selection: selection.into_iter(),
            });
        }
    }
}

/// `mediagraph export ASSET --start ISO --end ISO -o clip.mp4`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The resolved asset name (the blob-name prefix).
    pub asset: String,
    /// First instant of the clip (ISO 8601, e.g. 2026-12-04T10:00:00Z); the clip starts at
    /// the keyframe at or before it.
    #[arg(long, value_name = "ISO")]
    pub start: String,
    /// Instant the clip ends at (ISO 8601).
    #[arg(long, value_name = "ISO")]
    pub end: String,
    /// The MP4 file to write (replaced if it exists).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: std::path::PathBuf,
    /// Longest clip allowed, in seconds.
    #[arg(long, default_value_t = DEFAULT_MAX_SPAN_SECS)]
    pub max_span_secs: u64,
    #[command(flatten)]
    pub store: crate::upload::config::StoreArgs,
}

/// Why `mediagraph export` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Playback(#[from] PlaybackError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Writes the clip chunk by chunk; a failed export leaves no file behind. Returns the bytes
/// written.
pub async fn run(args: &ExportArgs) -> Result<u64, ExportError> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;

    let asset = super::asset_name(&args.asset)?;
    let range = ClipRange::parse(&args.start, &args.end, args.max_span_secs)?;
    let store = args.store.open().map_err(PlaybackError::from)?;
    let clip = Clip::open(store, &asset, range).await?;
    let write_err = |source| ExportError::Write {
        path: args.output.clone(),
        source,
    };
    let mut file = tokio::fs::File::create(&args.output)
        .await
        .map_err(write_err)?;
    let mut written = 0u64;
    let mut chunks = std::pin::pin!(clip.into_stream());
    let result = async {
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await.map_err(write_err)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(write_err)?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        drop(file);
        let _ = tokio::fs::remove_file(&args.output).await;
        return Err(e);
    }
    Ok(written)
}

/// One blob's bytes; a blob listed a moment ago but gone now is 404.
async fn read(store: &dyn AssetStore, name: &str) -> Result<Vec<u8>, PlaybackError> {
    match store.read_blob(name).await {
        Ok(b) => Ok(b),
        Err(UploadError::Local { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(PlaybackError::BlobNotFound(name.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::SegmentFacts;
    use mp4_atom::{Hdlr, Mvex, Trak, Trex};

    const T0: i64 = 1_600_000_000;
    const VIDEO_TS: u32 = 90_000;
    const AUDIO_TS: u32 = 48_000;
    /// 25 fps.
    const FRAME: u32 = 3_600;
    const AAC_FRAME: u32 = 1_024;

    fn trak(id: u32, timescale: u32, handler: &[u8; 4]) -> Trak {
        let mut t = Trak::default();
        t.tkhd.track_id = id;
        t.mdia.mdhd.timescale = timescale;
        t.mdia.hdlr = Hdlr {
            handler: FourCC::new(handler),
            name: String::new(),
        };
        t
    }

    fn init_bytes() -> Vec<u8> {
        let moov = Moov {
            trak: vec![trak(1, VIDEO_TS, b"vide"), trak(2, AUDIO_TS, b"soun")],
            mvex: Some(Mvex {
                mehd: None,
                trex: [1, 2]
                    .map(|id| Trex {
                        track_id: id,
                        default_sample_description_index: 1,
                        ..Default::default()
                    })
                    .to_vec(),
            }),
            ..Default::default()
        };
        let mut out = Vec::new();
        mp4_atom::Ftyp {
            major_brand: FourCC::new(b"iso6"),
            minor_version: 0,
            compatible_brands: vec![FourCC::new(b"cmfc")],
        }
        .encode(&mut out)
        .unwrap();
        moov.encode(&mut out).unwrap();
        out
    }

    /// A stored blob of `secs` seconds whose media starts at `from` seconds of its run's
    /// timeline: 25 fps video with a keyframe every second, AAC at 48 kHz, one fragment per
    /// two seconds. Each payload is 6 bytes: track, then its decode time.
    fn blob_bytes(from: u32, secs: u32) -> Vec<u8> {
        let mut out = init_bytes();
        for (n, f) in (from..from + secs).step_by(2).enumerate() {
            let mut scratch = Vec::new();
            let mut runs = Vec::new();
            for (track, timescale, step) in [(1u32, VIDEO_TS, FRAME), (2, AUDIO_TS, AAC_FRAME)] {
                let first = u64::from(f) * u64::from(timescale);
                let first = first.div_ceil(u64::from(step)) * u64::from(step);
                let end = u64::from(f + 2) * u64::from(timescale);
                let mut samples = Vec::new();
                let mut dts = first;
                while dts < end {
                    let key = track == 2 || dts % u64::from(timescale) == 0;
                    samples.push(Sample {
                        dts,
                        duration: step,
                        size: 6,
                        flags: if key { 0x0200_0000 } else { 0x0101_0000 },
                        cts: 0,
                        at: scratch.len(),
                    });
                    scratch.push(track as u8);
                    scratch.extend_from_slice(&(dts as u32 / step).to_be_bytes()[..]);
                    scratch.push(0xee);
                    dts += u64::from(step);
                }
                runs.push((track, first, samples));
            }
            out.extend(write_fragment(n as u32 + 1, &runs, &scratch).unwrap());
        }
        out
    }

    fn planned(start: i64, end: i64, run: u64) -> PlannedBlob {
        let facts = SegmentFacts {
            asset: "cam".into(),
            run,
            sequence: 0,
            start: Ticks90k::from_secs(T0 + start),
            end: Ticks90k::from_secs(T0 + end),
            codecs: "avc1".into(),
            extension: "mp4".into(),
        };
        PlannedBlob {
            name: facts.blob_name(),
            start: facts.start,
            end: facts.end,
            run: Some(run),
        }
    }

    fn range(start_ms: i64, end_ms: i64) -> ClipRange {
        ClipRange {
            start: Ticks90k::from_secs(T0) + Duration90k(start_ms * 90),
            end: Ticks90k::from_secs(T0) + Duration90k(end_ms * 90),
        }
    }

    /// Selects `blob` and returns, per track, every kept (output dts, payload) in order.
    fn select(
        timeline: &mut Timeline,
        planned: &PlannedBlob,
        bytes: &[u8],
    ) -> Vec<(u32, u64, bool, Vec<u8>)> {
        let init = parse_init(bytes).unwrap();
        let fragments = parse_fragments(bytes, &init).unwrap();
        let mut out = Vec::new();
        for fragment in timeline.select(planned, &init.tracks, &fragments) {
            // Through the writer and back: what a player reads.
            let written = write_fragment(1, &fragment, bytes).unwrap();
            let mut file = init_bytes();
            let init_len = file.len();
            file.extend(written);
            let reread = parse_fragments(
                &file,
                &Init {
                    len: init_len,
                    ..parse_init(&file).unwrap()
                },
            )
            .unwrap();
            for run in reread.into_iter().flatten() {
                for s in run.samples {
                    let payload = file[s.at..s.at + s.size as usize].to_vec();
                    out.push((run.track, s.dts, s.keyframe(), payload));
                }
            }
        }
        out
    }

    fn video(samples: &[(u32, u64, bool, Vec<u8>)]) -> Vec<(u64, bool)> {
        samples
            .iter()
            .filter(|s| s.0 == 1)
            .map(|s| (s.1, s.2))
            .collect()
    }

    #[test]
    fn stored_fragments_parse_with_their_payload_positions() {
        let bytes = blob_bytes(0, 4);
        let init = parse_init(&bytes).unwrap();
        assert_eq!(init.tracks.len(), 2);
        assert!(init.tracks[0].video && !init.tracks[1].video);
        let fragments = parse_fragments(&bytes, &init).unwrap();
        assert_eq!(fragments.len(), 2);
        let video = &fragments[1][0];
        assert_eq!((video.track, video.samples.len()), (1, 50));
        assert_eq!(video.samples[0].dts, 2 * 90_000);
        assert!(video.samples[0].keyframe() && !video.samples[1].keyframe());
        let s = video.samples[3];
        assert_eq!(&bytes[s.at..s.at + 6], &[1, 0, 0, 0, 53, 0xee]);
        let audio = &fragments[0][1];
        assert_eq!(audio.samples[1].dts, 1024);
        assert_eq!(&bytes[audio.samples[1].at..][..6], &[2, 0, 0, 0, 1, 0xee]);
    }

    #[test]
    fn a_clip_starts_at_the_keyframe_before_start_and_ends_at_end() {
        // Two blobs of one run, 0-4 s and 4-8 s; the clip asks for 2.5 s to 5.5 s.
        let mut timeline = Timeline::new(range(2_500, 5_500));
        let a = select(&mut timeline, &planned(0, 4, 1), &blob_bytes(0, 4));
        let b = select(&mut timeline, &planned(4, 8, 1), &blob_bytes(4, 4));
        assert_eq!(timeline.start, Some(Ticks90k::from_secs(T0 + 2)));
        let v: Vec<_> = video(&a).into_iter().chain(video(&b)).collect();
        // From the keyframe at 2 s (output 0) to the last frame decoded before 5.5 s.
        assert_eq!(v[0], (0, true));
        assert_eq!(v.len(), 88, "2.00 s to 5.48 s at 25 fps");
        assert!(
            v.windows(2).all(|w| w[1].0 == w[0].0 + u64::from(FRAME)),
            "decode times continue across the seam: {v:?}"
        );
        let first = &a.iter().find(|s| s.0 == 1).unwrap().3;
        assert_eq!(
            first,
            &[1, 0, 0, 0, 50, 0xee],
            "the payload of the 2 s keyframe"
        );
        // Audio starts at the keyframe's instant and ends before 5.5 s, on the same clock.
        let audio: Vec<u64> = a
            .iter()
            .chain(&b)
            .filter(|s| s.0 == 2)
            .map(|s| s.1)
            .collect();
        assert!(audio[0] < u64::from(AAC_FRAME), "{}", audio[0]);
        // The last AAC frame starts within one frame before 5.5 s (3.5 s into the clip).
        let last = *audio.last().unwrap();
        assert!((168_000 - 1024..168_000).contains(&last), "{last}");
    }

    #[test]
    fn a_gap_or_a_new_run_is_closed() {
        // 0-4 s, then a new run (media time restarts) after a 16 s hole.
        let mut timeline = Timeline::new(range(0, 30_000));
        let a = select(&mut timeline, &planned(0, 4, 1), &blob_bytes(0, 4));
        let c = select(&mut timeline, &planned(20, 24, 2), &blob_bytes(0, 4));
        let end_a = video(&a).last().unwrap().0 + u64::from(FRAME);
        let start_c = video(&c)[0];
        assert!(start_c.1);
        assert_eq!(end_a, 4 * 90_000);
        // Audio ran a little past the video, so the next stretch starts after both.
        assert!(
            (end_a..end_a + u64::from(FRAME)).contains(&start_c.0),
            "{start_c:?} after {end_a}"
        );
        let audio_c = c.iter().find(|s| s.0 == 2).unwrap().1;
        let audio_a_end = a.iter().rfind(|s| s.0 == 2).unwrap().1 + 1024;
        assert!(audio_c >= audio_a_end, "{audio_c} < {audio_a_end}");
    }

    #[test]
    fn a_range_before_any_keyframe_ends_is_empty_and_blobs_outside_are_skipped() {
        let mut timeline = Timeline::new(range(-10_000, -5_000));
        assert!(select(&mut timeline, &planned(0, 4, 1), &blob_bytes(0, 4)).is_empty());
        assert_eq!(timeline.start, None);
        let listing: Vec<StoredBlob> = [(0, 30), (30, 60), (600, 630)]
            .iter()
            .map(|&(s, e)| {
                let facts = SegmentFacts {
                    asset: "cam".into(),
                    run: 1,
                    sequence: s as u64,
                    start: Ticks90k::from_secs(T0 + s),
                    end: Ticks90k::from_secs(T0 + e),
                    codecs: "avc1".into(),
                    extension: "mp4".into(),
                };
                StoredBlob {
                    name: facts.blob_name(),
                    bytes: 1,
                    metadata: facts.metadata(None),
                }
            })
            .collect();
        let picked = |a: i64, b: i64| overlapping(&listing, range(a * 1000, b * 1000)).len();
        assert_eq!(picked(20, 40), 2);
        assert_eq!(picked(100, 500), 0);
        assert_eq!(
            picked(60, 600),
            0,
            "bounds touching a blob do not overlap it"
        );
    }

    #[test]
    fn the_init_carries_the_clip_duration() {
        let bytes = blob_bytes(0, 4);
        let init = parse_init(&bytes).unwrap();
        let head = write_init(&init, 90 * 90_000).unwrap();
        let again = parse_init(&[head, bytes[init.len..].to_vec()].concat()).unwrap();
        assert_eq!(
            again.moov.mvhd.duration,
            90 * u64::from(again.moov.mvhd.timescale)
        );
        let mehd = again.moov.mvex.unwrap().mehd.unwrap();
        assert_eq!(mehd.fragment_duration, again.moov.mvhd.duration);
    }

    #[test]
    fn ranges_longer_than_the_maximum_or_reversed_are_refused() {
        let e = ClipRange::parse("2026-12-01T00:00:00Z", "2026-12-02T00:00:01Z", 24 * 3600)
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "TimeRangeTooLong"));
        assert!(e.to_string().contains("for an export is 24 hours"), "{e}");
        let e = ClipRange::parse("2026-12-01T00:00:10Z", "2026-12-01T00:00:00Z", 60).unwrap_err();
        assert_eq!(e.code(), "InvalidTimeOrder");
        let e = ClipRange::parse("yesterday", "2026-12-01T00:00:00Z", 60).unwrap_err();
        assert_eq!(e.code(), "InvalidTimeFormat");
        assert!(ClipRange::parse("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", 86_400).is_ok());
    }
}
