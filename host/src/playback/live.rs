//! Live view of an asset: a Low-Latency HLS playlist (`/assets/{asset}/live.m3u8`) whose
//! newest entries come from the cache before upload, and the cache's bytes it points to.
//!
//! Owns the merge of the store's newest blobs with the recording cache's [`LiveView`]
//! (sealed-but-not-uploaded segments and the open segment's durable fragments, as
//! `#EXT-X-PART`s), the media sequence numbers that keep a segment's place while its source
//! switches from the cache to the store, blocking playlist reloads (`_HLS_msn`/`_HLS_part`),
//! and reading segment bytes from the cache (only what the view lists, so only durable
//! bytes). Must not write to the cache or the store, nor read the cache's files on the async
//! runtime (reads go to the blocking pool).
//!
//! Naming: a segment is known by its run and sequence, which the cache and the blob name
//! share; its URLs (`/assets/{asset}/live/r{run}-s{sequence}/...`) say only that, so they
//! stay the same when the segment moves from the cache to the store (hls.js refuses a
//! playlist in which a segment's URI changed), and the server picks the source per request.
//!
//! Numbering: The first time a segment is listed it takes the next media sequence number, and it
//! keeps it (and its discontinuity sequence) for as long as this server runs, whichever
//! source serves it; the playlist lists only the contiguous run of numbers ending at the
//! newest, so a segment evicted before upload ends the window instead of breaking it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{BlobFile, PlaybackError, encode_segment, mp4};
use crate::cache::{Cache, LiveFragment, LiveSegment, LiveView, SegmentId};
use crate::time::{Duration90k, Ticks90k};
use crate::topology::AssetName;
use crate::upload::{SEAM_TOLERANCE, StoredBlob};

/// The leaf name of the live playlist.
pub const LIVE_PLAYLIST: &str = "live.m3u8";
/// How far back the store is listed for uploaded segments.
pub const STORE_WINDOW: Duration90k = Duration90k::from_secs(180);
/// Complete segments listed before the open one.
const COMPLETE_SEGMENTS: usize = 4;
/// Segments at the live edge whose parts are listed (the open one and the one before it, so
/// a player loading parts when a segment seals finds the rest of them).
const SEGMENTS_WITH_PARTS: usize = 2;
/// Numbers remembered per asset beyond the window.
const REMEMBERED: u64 = 64;
/// A blocking reload waits at most this many part targets for its part.
const BLOCKING_PARTS: f64 = 3.0;
/// Bytes read per chunk when serving a segment from the cache.
const CHUNK: u64 = 64 << 10;

/// Where a segment's bytes are served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An uploaded blob (its file name under the asset).
    Store(String),
    /// A segment in the recording cache.
    Cache(SegmentId),
}

/// One segment of the live window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveEntry {
    pub run: u64,
    pub sequence: u64,
    pub start: Ticks90k,
    pub end: Ticks90k,
    pub source: Source,
    /// The segment is complete (sealed or uploaded); the open one is not.
    pub complete: bool,
    /// Its durable fragments in the cache, served as parts (none once it left the cache or
    /// when the cache did not write it).
    pub parts: Option<Arc<[LiveFragment]>>,
}

/// The segments to list, in recording order: the store's blobs (`store`, from a listing of the
/// recent past) and the cache's view; a segment in both is served from the store once
/// uploaded, from the cache before. At most [`COMPLETE_SEGMENTS`] complete ones, then the
/// open one.
pub fn merge(store: &[StoredBlob], cache: Option<&LiveView>) -> Vec<LiveEntry> {
    let mut by_key: BTreeMap<(u64, u64), LiveEntry> = BTreeMap::new();
    for blob in store {
        let (Some((start, end)), Ok(file)) = (blob.span(), BlobFile::parse(BlobFile::of(blob)))
        else {
            continue;
        };
        let number = |k: &str| blob.metadata.get(k).and_then(|v| v.parse::<u64>().ok());
        let (Some(run), Some(sequence)) = (number("run"), number("sequence")) else {
            continue;
        };
        by_key.insert(
            (run, sequence),
            LiveEntry {
                run,
                sequence,
                start,
                end,
                source: Source::Store(file.as_str().to_owned()),
                complete: true,
                parts: None,
            },
        );
    }
    for s in cache.map_or(&[][..], |v| &v.segments[..]) {
        let parts = (!s.fragments.is_empty()).then(|| s.fragments.clone());
        let key = (s.run, s.sequence);
        match by_key.get_mut(&key) {
            Some(stored) if s.uploaded => stored.parts = parts,
            _ => {
                by_key.insert(
                    key,
                    LiveEntry {
                        run: s.run,
                        sequence: s.sequence,
                        start: s.start,
                        end: s.end,
                        source: Source::Cache(s.id),
                        complete: s.sealed,
                        parts,
                    },
                );
            }
        }
    }
    // In recording order (run, then sequence), not by wall-clock start.
    let mut all: Vec<LiveEntry> = by_key.into_values().filter(|e| e.start < e.end).collect();
    // Between a seal and the next segment's first durable fragment, the sealed segment stays
    // the live edge, listed by its parts only: it gets its #EXTINF together with the next
    // segment's first part. hls.js, given a playlist that ends in a complete segment with no
    // part after it, seeks a segment length ahead of the media and stops loading.
    if cache.is_some_and(|v| v.open().is_none())
        && let Some(last) = all.last_mut().filter(|e| e.parts.is_some())
    {
        last.complete = false;
    }
    let open = all.last().filter(|e| !e.complete).cloned();
    let mut complete: Vec<LiveEntry> = all.into_iter().filter(|e| e.complete).collect();
    let skip = complete.len().saturating_sub(COMPLETE_SEGMENTS);
    complete.drain(..skip);
    complete.extend(open);
    complete
}

/// A segment of the window with its numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Numbered {
    pub entry: LiveEntry,
    pub msn: u64,
    /// Discontinuity sequence: how many discontinuities precede it.
    pub discontinuity: u64,
}

#[derive(Clone, Copy, Debug)]
struct Known {
    key: (u64, u64),
    msn: u64,
    discontinuity: u64,
    end: Ticks90k,
    run: u64,
}

/// The media sequence numbers handed out for one asset, and where the store keeps the
/// segments it listed.
#[derive(Debug, Default)]
pub struct SequenceBook {
    known: BTreeMap<(u64, u64), Known>,
    /// Blob files of listed segments that are in the store.
    blobs: BTreeMap<(u64, u64), String>,
    next_msn: u64,
    newest: Option<Known>,
    /// The longest segment listed so far, in whole seconds: `#EXT-X-TARGETDURATION` only
    /// grows.
    target: u64,
}

impl SequenceBook {
    /// Numbers `entries` (recording order): known segments keep their numbers, newer ones
    /// take the next; a segment older than the newest numbered one that was never listed is
    /// left out. Returns the contiguous run of numbers that ends at the newest entry.
    pub fn number(&mut self, entries: &[LiveEntry]) -> Vec<Numbered> {
        let mut numbered = Vec::new();
        for e in entries {
            let key = (e.run, e.sequence);
            if let Source::Store(file) = &e.source {
                self.blobs.insert(key, file.clone());
            }
            let known = match self.known.get_mut(&key) {
                Some(k) => {
                    k.end = e.end;
                    *k
                }
                // Runs and sequences grow in recording order (a clock stepped back does not
                // change that), so a key above the newest is a newer segment.
                None if self.newest.is_none_or(|n| key > n.key) => {
                    let discontinuity = match self.newest {
                        None => 0,
                        Some(n) if n.run != e.run || e.start > n.end + SEAM_TOLERANCE => {
                            n.discontinuity + 1
                        }
                        Some(n) => n.discontinuity,
                    };
                    let k = Known {
                        key,
                        msn: self.next_msn,
                        discontinuity,
                        end: e.end,
                        run: e.run,
                    };
                    self.next_msn += 1;
                    self.known.insert(key, k);
                    k
                }
                None => continue,
            };
            if self.newest.is_none_or(|n| known.msn >= n.msn) {
                self.newest = Some(known);
            }
            numbered.push(Numbered {
                entry: e.clone(),
                msn: known.msn,
                discontinuity: known.discontinuity,
            });
        }
        let floor = self.next_msn.saturating_sub(REMEMBERED);
        self.known.retain(|_, k| k.msn >= floor);
        let known = &self.known;
        self.blobs.retain(|key, _| known.contains_key(key));
        // The contiguous tail: a hole in the numbers (a segment evicted before upload) ends
        // the window there.
        let keep = numbered
            .windows(2)
            .rposition(|w| w[1].msn != w[0].msn + 1)
            .map_or(0, |i| i + 1);
        numbered.drain(..keep);
        for n in &numbered {
            self.target = self
                .target
                .max(secs(n.entry.end - n.entry.start).ceil() as u64);
        }
        numbered
    }

    /// The blob file of segment `key` in the store, if a listing showed it there.
    pub fn blob(&self, key: (u64, u64)) -> Option<&str> {
        self.blobs.get(&key).map(String::as_str)
    }

    /// `#EXT-X-TARGETDURATION`: the longest segment listed so far, at least `at_least`.
    pub fn target_duration(&self, at_least: f64) -> u64 {
        self.target.max(at_least.ceil() as u64)
    }
}

fn secs(d: Duration90k) -> f64 {
    d.as_secs_f64()
}

/// The part target: the longest part listed, at least 1 s, rounded up to a tenth of a second
/// so that the few milliseconds parts differ by do not change it from one reload to the next.
pub fn part_target(window: &[Numbered]) -> f64 {
    let longest = window
        .iter()
        .filter_map(|n| n.entry.parts.as_ref())
        .flat_map(|parts| parts.iter().map(|p| secs(p.duration())))
        .fold(1.0f64, f64::max);
    // Less a microsecond, so that 2.000 stays 2.0 despite floating point.
    ((longest - 1e-6) * 10.0).ceil() / 10.0
}

/// Whether a blocking reload for part `part` (or, without it, the whole segment) of segment
/// `msn` can be answered from `window`.
pub fn has_part(window: &[Numbered], msn: u64, part: Option<u64>) -> bool {
    window.iter().any(|n| {
        n.msn > msn
            || (n.msn == msn
                && match part {
                    None => n.entry.complete,
                    Some(p) => {
                        n.entry.complete
                            || n.entry.parts.as_ref().is_some_and(|f| f.len() as u64 > p)
                    }
                })
    })
}

/// The longest a blocking reload waits.
pub fn blocking_limit(window: &[Numbered]) -> Duration {
    Duration::from_secs_f64(BLOCKING_PARTS * part_target(window))
}

/// The path segment naming a segment in live URLs: its run and sequence, which stay the same
/// whether the cache or the store serves it (hls.js treats a segment whose URI changed as
/// a broken playlist).
pub fn segment_path(run: u64, sequence: u64) -> String {
    format!("r{run}-s{sequence}")
}

/// The playlist text for `window` of `asset`, with `#EXT-X-TARGETDURATION:target` (URLs are
/// absolute paths on this server, each with `?query` when one is given).
pub fn playlist(
    asset: &AssetName,
    window: &[Numbered],
    target: u64,
    query: Option<&str>,
) -> String {
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let asset = encode_segment(asset.as_str());
    let live = format!("/assets/{asset}/live");
    let part_target = part_target(window);
    let target = target.max(part_target.ceil() as u64);
    let first = window.first();
    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
         #EXT-X-PART-INF:PART-TARGET={part_target:.3}\n\
         #EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n",
        // The least RFC 8216bis allows: a player may choose to play closer (the page does).
        2.0 * part_target,
        first.map_or(0, |n| n.msn),
        first.map_or(0, |n| n.discontinuity),
    );
    let with_parts = window.len().saturating_sub(SEGMENTS_WITH_PARTS);
    let mut previous: Option<&Numbered> = None;
    for (i, n) in window.iter().enumerate() {
        let e = &n.entry;
        if previous.is_some_and(|p| p.discontinuity != n.discontinuity) {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let segment = format!("{live}/{}", segment_path(e.run, e.sequence));
        let (init, media) = (
            format!("{segment}/init.mp4{query}"),
            format!("{segment}/media.mp4{query}"),
        );
        let _ = write!(
            out,
            "#EXT-X-MAP:URI=\"{init}\"\n#EXT-X-PROGRAM-DATE-TIME:{}\n",
            e.start.to_rfc3339_millis()
        );
        if let Some(parts) = e.parts.as_ref().filter(|_| i >= with_parts) {
            for (p, part) in parts.iter().enumerate() {
                let independent = if part.independent {
                    ",INDEPENDENT=YES"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "#EXT-X-PART:DURATION={:.3},URI=\"{segment}/part-{p}.mp4{query}\"{independent}",
                    secs(part.duration()),
                );
            }
        }
        if e.complete {
            let _ = write!(out, "#EXTINF:{:.3},\n{media}\n", secs(e.end - e.start));
        }
        previous = Some(n);
    }
    out
}

/// The blocking-reload request of a playlist query: `_HLS_msn` and `_HLS_part`. `Ok(None)`
/// without one; a part without a segment number, or numbers that are not numbers, are 400.
pub fn blocking_request(
    params: &[(String, String)],
) -> Result<Option<(u64, Option<u64>)>, PlaybackError> {
    let get = |name: &'static str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| {
                v.parse::<u64>().map_err(|_| PlaybackError::Parameter {
                    name,
                    value: v.clone(),
                    rule: "must be a non-negative integer",
                })
            })
            .transpose()
    };
    match (get("_HLS_msn")?, get("_HLS_part")?) {
        (Some(msn), part) => Ok(Some((msn, part))),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(PlaybackError::MissingParameter {
            name: "_HLS_msn",
            why: " when _HLS_part is given",
        }),
    }
}

/// What a request under `/assets/{asset}/live/r{run}-s{sequence}/` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveLeaf {
    Init,
    /// The media after the init (complete segments only).
    Media,
    Part(usize),
}

impl LiveLeaf {
    /// The segment's (run, sequence) and the leaf.
    pub fn parse(segment: &str, leaf: &str) -> Result<((u64, u64), LiveLeaf), PlaybackError> {
        let bad = || PlaybackError::Parameter {
            name: "live segment",
            value: format!("{}/{}", segment.escape_debug(), leaf.escape_debug()),
            rule: "expected r<run>-s<sequence>/init.mp4, media.mp4 or part-<n>.mp4",
        };
        let number = |s: &str| {
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (run, sequence) = segment
            .strip_prefix('r')
            .and_then(|s| s.split_once("-s"))
            .ok_or_else(bad)?;
        let key = (
            number(run).ok_or_else(bad)?,
            number(sequence).ok_or_else(bad)?,
        );
        let leaf = match leaf {
            "init.mp4" => LiveLeaf::Init,
            "media.mp4" => LiveLeaf::Media,
            other => {
                let n = other
                    .strip_prefix("part-")
                    .and_then(|p| p.strip_suffix(".mp4"))
                    .and_then(number)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(bad)?;
                LiveLeaf::Part(n)
            }
        };
        Ok((key, leaf))
    }
}

/// The cached segment `key` (run, sequence) in `view`.
pub fn find(view: &LiveView, key: (u64, u64)) -> Option<&LiveSegment> {
    view.segments.iter().find(|s| (s.run, s.sequence) == key)
}

/// The byte range of `leaf` in the cached segment `s`, with the init length the file's box
/// headers give (`init_len`, asked only when needed). `None`: not there (a part not durable
/// yet, or an open segment's whole media).
pub fn leaf_range(s: &LiveSegment, leaf: LiveLeaf, init_len: u64) -> Option<Range<u64>> {
    let range = match leaf {
        LiveLeaf::Init => 0..init_len,
        LiveLeaf::Media if s.sealed => init_len..s.bytes,
        LiveLeaf::Media => return None,
        LiveLeaf::Part(n) => {
            let f = s.fragments.get(n)?;
            f.offset.max(init_len)..f.offset + f.len
        }
    };
    (range.start < range.end && range.end <= s.bytes).then_some(range)
}

/// Reads where segment `id`'s init ends (its first `moof`), from the cache. Blocking.
pub fn read_init_len(cache: &Cache, id: SegmentId, durable: u64) -> Result<u64, PlaybackError> {
    let unplayable = || PlaybackError::Unplayable(format!("live segment {}", id.0));
    let file = cache
        .open_live(id)
        .map_err(PlaybackError::Cache)?
        .into_std();
    let prefix_len = durable.min(64 << 10);
    let prefix =
        read_at(&file, 0..prefix_len).map_err(|e| PlaybackError::LiveRead(e.to_string()))?;
    let (mut at, mut saw_moov) = (0u64, false);
    for _ in 0..64 {
        let end = at.saturating_add(mp4::HEADER_LEN).min(prefix_len);
        let Some(header) = prefix.get(at as usize..end as usize) else {
            break;
        };
        match mp4::step(header, at, durable, &mut saw_moov) {
            mp4::Step::Init(n) => return Ok(n),
            mp4::Step::Next(n) => at = n,
            mp4::Step::NotFragmented => break,
        }
    }
    Err(unplayable())
}

fn read_at(file: &std::fs::File, range: Range<u64>) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; (range.end - range.start) as usize];
    file.read_exact_at(&mut buf, range.start)?;
    Ok(buf)
}

/// The bytes `range` of segment `id`, streamed from the cache in chunks read on the
/// blocking pool (the file is opened once: a seal's rename or an eviction does not cut it).
pub async fn stream(
    cache: Arc<Cache>,
    id: SegmentId,
    range: Range<u64>,
) -> Result<impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static, PlaybackError> {
    let file = tokio::task::spawn_blocking(move || cache.open_live(id))
        .await
        .map_err(|e| PlaybackError::LiveRead(e.to_string()))?
        .map_err(PlaybackError::Cache)?
        .into_std();
    let file = Arc::new(file);
    Ok(futures::stream::try_unfold(range.start, move |at| {
        let file = file.clone();
        let end = range.end;
        async move {
            if at >= end {
                return Ok(None);
            }
            let next = (at + CHUNK).min(end);
            let chunk = tokio::task::spawn_blocking(move || read_at(&file, at..next))
                .await
                .map_err(io::Error::other)??;
            Ok(Some((Bytes::from(chunk), next)))
        }
    }))
}

#[cfg(test)]
mod tests;
