//! HLS VOD playlists over a time range of an asset (LVA's
//! `manifest(format=m3u8-aapl,startTime=...,endTime=...).m3u8`).
//!
//! Every blob is a self-contained CMAF file, so each is one segment: its own `#EXT-X-MAP`
//! (the blob's init part, `/init.mp4`) and its fragments (`/media.mp4`), both cut out of the
//! blob by the server when asked, so writing a playlist reads no media. Segments are whole
//! blobs: a playlist covers the requested range rounded out to segment boundaries.
//! `#EXT-X-DISCONTINUITY` marks a hole or a new run (media timestamps restart with each run).
//!
//! Range rules (lva-spec.md, section e): no bounds → the most recent 4 hours recorded; start
//! only → everything since start, if start is less than 24 hours ago; end only → error; both →
//! start before end, at most 24 hours. Inside a hole → an empty playlist.

use std::fmt::Write;

use super::available::{check_span, param, parse_instant};
use super::{BlobFile, PlaybackError, encode_segment};
use crate::time::{Duration90k, Ticks90k};
use crate::topology::AssetName;
use crate::upload::{AssetStore, InRange, SEAM_TOLERANCE, StoredBlob, UploadError};

const RECENT: Duration90k = Duration90k::from_secs(4 * 3600);
const MAX_SPAN: Duration90k = Duration90k::from_secs(24 * 3600);

/// The parameters inside `manifest(...)`: `format=...,startTime=...,endTime=...`. `None` if
/// the path segment is not a manifest request; plain `manifest.m3u8` has none.
pub fn manifest_params(segment: &str) -> Option<Vec<(String, String)>> {
    if segment == "manifest.m3u8" {
        return Some(Vec::new());
    }
    let inner = segment.strip_prefix("manifest(")?.strip_suffix(").m3u8")?;
    Some(
        inner
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
                None => (kv.trim().to_owned(), String::new()),
            })
            .collect(),
    )
}

/// A validated playlist time range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaylistRange {
    /// No bounds: the most recent four hours recorded.
    Recent,
    /// Everything from `start` on.
    Since(Ticks90k),
    Between(Ticks90k, Ticks90k),
}

impl PlaylistRange {
    pub fn parse(params: &[(String, String)], now: Ticks90k) -> Result<Self, PlaybackError> {
        if let Some(format) = param(params, "format")
            && !matches!(format, "m3u8-aapl" | "m3u8-cmaf")
        {
            return Err(PlaybackError::UnknownFormat(format.to_owned()));
        }
        let start_text = param(params, "startTime");
        let end_text = param(params, "endTime");
        let start = start_text
            .map(|t| parse_instant("startTime", t))
            .transpose()?;
        let end = end_text.map(|t| parse_instant("endTime", t)).transpose()?;
        match (start, end) {
            (None, None) => Ok(PlaylistRange::Recent),
            (None, Some(_)) => Err(PlaybackError::MissingParameter {
                name: "startTime",
                why: " when endTime is given",
            }),
            (Some(s), None) => {
                if now - s >= MAX_SPAN {
                    return Err(PlaybackError::SpanTooLong {
                        start: start_text.unwrap_or_default().to_owned(),
                        end: "now".into(),
                        what: "a manifest without endTime",
                        max: "24 hours".into(),
                    });
                }
                Ok(PlaylistRange::Since(s))
            }
            (Some(s), Some(e)) => {
                let text = (start_text.unwrap_or_default(), end_text.unwrap_or_default());
                check_span((s, e), text, MAX_SPAN, "a manifest", "24 hours")?;
                Ok(PlaylistRange::Between(s, e))
            }
        }
    }
}

impl PlaylistRange {
    /// The blobs the range can choose from ([`segments`] picks them), listed by time range.
    /// The most recent four hours recorded are found from the newest blob: the blobs of the
    /// last four hours before `now` tell it when there are any, the spans of the whole asset
    /// otherwise.
    pub async fn listing(
        self,
        store: &dyn AssetStore,
        asset: &AssetName,
        now: Ticks90k,
    ) -> Result<InRange<StoredBlob>, UploadError> {
        let asset = asset.as_str();
        let (from, to) = match self {
            PlaylistRange::Between(s, e) => (s, e),
            PlaylistRange::Since(s) => (s, Ticks90k(i64::MAX)),
            PlaylistRange::Recent => {
                let recent = store
                    .list_range(asset, now + -RECENT, Ticks90k(i64::MAX))
                    .await?;
                let newest = match recent
                    .items
                    .iter()
                    .filter_map(|b| b.span())
                    .max_by_key(|s| s.1)
                {
                    Some((_, end)) => end,
                    None => {
                        let all = store
                            .spans(asset, Ticks90k(i64::MIN), Ticks90k(i64::MAX))
                            .await?;
                        match all.items.iter().map(|s| s.1).max() {
                            Some(end) => end,
                            None => {
                                return Ok(InRange {
                                    items: Vec::new(),
                                    asset_has_blobs: all.asset_has_blobs,
                                });
                            }
                        }
                    }
                };
                if newest >= now {
                    return Ok(recent);
                }
                (newest + -RECENT, newest + Duration90k(1))
            }
        };
        store.list_range(asset, from, to).await
    }
}

/// One blob chosen for a playlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub file: String,
    pub start: Ticks90k,
    pub end: Ticks90k,
    pub run: Option<u64>,
}

/// The blobs (time order) whose media overlaps the range.
pub fn segments(blobs: &[StoredBlob], range: PlaylistRange) -> Vec<Segment> {
    let mut all: Vec<Segment> = blobs
        .iter()
        .filter(|b| BlobFile::parse(BlobFile::of(b)).is_ok())
        .filter_map(|b| {
            let (start, end) = b.span()?;
            (start < end).then(|| Segment {
                file: BlobFile::of(b).to_owned(),
                start,
                end,
                run: b.metadata.get("run").and_then(|r| r.parse().ok()),
            })
        })
        .collect();
    all.sort_by_key(|s| s.start);
    let (from, to) = match range {
        PlaylistRange::Recent => {
            let last = all.iter().map(|s| s.end).max().unwrap_or_default();
            (last - RECENT, last)
        }
        PlaylistRange::Since(s) => (s, Ticks90k(i64::MAX)),
        PlaylistRange::Between(s, e) => (s, e),
    };
    all.retain(|s| s.start < to && s.end > from);
    all
}

/// The playlist text for `segments` of `asset` (URLs are absolute paths on this server, each
/// with `?query` when one is given).
pub fn playlist(asset: &AssetName, segments: &[Segment], query: Option<&str>) -> String {
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let base = format!("/assets/{}/blobs", encode_segment(asset.as_str()));
    let secs = |s: &Segment| (s.end - s.start).as_secs_f64();
    let target = segments.iter().map(secs).fold(1.0f64, f64::max).ceil() as u64;
    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    let mut previous: Option<&Segment> = None;
    for s in segments {
        if let Some(p) = previous
            && (s.start > p.end + SEAM_TOLERANCE || s.run != p.run)
        {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let file = encode_segment(&s.file);
        let _ = write!(
            out,
            "#EXT-X-MAP:URI=\"{base}/{file}/init.mp4{query}\"\n#EXT-X-PROGRAM-DATE-TIME:{}\n\
             #EXTINF:{:.3},\n{base}/{file}/media.mp4{query}\n",
            s.start.to_rfc3339_millis(),
            secs(s)
        );
        previous = Some(s);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::SegmentFacts;

    const T0: i64 = 1_600_000_000;

    fn blob(start: i64, end: i64, run: u64, seq: u64) -> StoredBlob {
        let facts = SegmentFacts {
            asset: "cam".into(),
            run,
            sequence: seq,
            start: Ticks90k::from_secs(T0 + start),
            end: Ticks90k::from_secs(T0 + end),
            codecs: "avc1.64001f".into(),
            extension: "mp4".into(),
        };
        StoredBlob {
            name: facts.blob_name(),
            bytes: 1,
            metadata: facts.metadata(None),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn at(secs: i64) -> String {
        Ticks90k::from_secs(T0 + secs).to_rfc3339_millis()
    }

    #[test]
    fn lva_manifest_paths_carry_their_parameters() {
        let p = manifest_params(
            "manifest(format=m3u8-aapl,startTime=2019-12-21T08:00:00Z,endTime=2019-12-21T10:00:00Z).m3u8",
        )
        .unwrap();
        assert_eq!(
            p,
            params(&[
                ("format", "m3u8-aapl"),
                ("startTime", "2019-12-21T08:00:00Z"),
                ("endTime", "2019-12-21T10:00:00Z")
            ])
        );
        assert_eq!(manifest_params("manifest.m3u8"), Some(Vec::new()));
        assert_eq!(manifest_params("manifest(format=m3u8-aapl).mpd"), None);
        assert_eq!(manifest_params("other.m3u8"), None);
    }

    #[test]
    fn range_rules_follow_lva() {
        let now = Ticks90k::from_secs(T0 + 3600);
        assert_eq!(
            PlaylistRange::parse(&[], now).unwrap(),
            PlaylistRange::Recent
        );
        let e = PlaylistRange::parse(&params(&[("endTime", &at(0))]), now).unwrap_err();
        assert!(
            e.to_string()
                .contains("'startTime' is required when endTime is given"),
            "{e}"
        );
        assert_eq!(
            PlaylistRange::parse(&params(&[("starttime", &at(0))]), now).unwrap(),
            PlaylistRange::Since(Ticks90k::from_secs(T0))
        );
        let e = PlaylistRange::parse(&params(&[("startTime", &at(3600 - 24 * 3600))]), now)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("maximum allowed time range for a manifest without endTime is 24 hours"),
            "{e}"
        );
        let e = PlaylistRange::parse(
            &params(&[("startTime", &at(0)), ("endTime", &at(24 * 3600 + 1))]),
            now,
        )
        .unwrap_err();
        assert_eq!(e.code(), "TimeRangeTooLong");
        let e = PlaylistRange::parse(
            &params(&[("startTime", &at(10)), ("endTime", &at(10))]),
            now,
        )
        .unwrap_err();
        assert_eq!(e.code(), "InvalidTimeOrder");
        let e = PlaylistRange::parse(&params(&[("format", "mpd-time-cmaf")]), now).unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "InvalidManifestFormat"));
    }

    #[test]
    fn a_playlist_maps_each_blob_and_marks_holes_and_new_runs() {
        let blobs = [
            blob(0, 30, 1, 0),
            blob(30, 60, 1, 1),
            blob(62, 90, 1, 2),  // 2 s hole
            blob(90, 120, 2, 0), // contiguous, but a new run restarts media time
        ];
        let asset = AssetName::new("cam").unwrap();
        let segs = segments(&blobs, PlaylistRange::Recent);
        assert_eq!(segs.len(), 4);
        let text = playlist(&asset, &segs, None);
        assert!(
            text.starts_with(
                "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:30\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY").count(), 2, "{text}");
        assert_eq!(text.matches("#EXT-X-MAP:URI=").count(), 4, "{text}");
        let first = BlobFile::of(&blobs[0]);
        assert!(text.contains(&format!(
            "#EXT-X-MAP:URI=\"/assets/cam/blobs/{first}/init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:30.000,\n/assets/cam/blobs/{first}/media.mp4\n",
            at(0)
        )), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let hole = lines
            .iter()
            .position(|l| l.contains(BlobFile::of(&blobs[2])))
            .unwrap();
        assert_eq!(lines[hole - 1], "#EXT-X-DISCONTINUITY");
    }

    #[test]
    fn a_range_selects_the_overlapping_blobs_and_a_hole_gives_an_empty_playlist() {
        let blobs = [blob(0, 30, 1, 0), blob(30, 60, 1, 1), blob(600, 630, 1, 2)];
        let between =
            |a, b| PlaylistRange::Between(Ticks90k::from_secs(T0 + a), Ticks90k::from_secs(T0 + b));
        let files = |r| {
            segments(&blobs, r)
                .into_iter()
                .map(|s| s.file)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            files(between(10, 40)),
            [BlobFile::of(&blobs[0]), BlobFile::of(&blobs[1])]
        );
        assert_eq!(files(between(30, 31)), [BlobFile::of(&blobs[1])]);
        assert!(files(between(100, 500)).is_empty());
        assert_eq!(
            files(PlaylistRange::Since(Ticks90k::from_secs(T0 + 59))).len(),
            2
        );
        let empty = playlist(&AssetName::new("cam").unwrap(), &[], None);
        assert!(!empty.contains("#EXTINF") && empty.ends_with("#EXT-X-ENDLIST\n"));
        // Only the last four hours recorded by default.
        let old = [blob(-5 * 3600, -5 * 3600 + 30, 1, 0), blob(0, 30, 1, 1)];
        assert_eq!(segments(&old, PlaylistRange::Recent).len(), 1);
    }

    #[test]
    fn names_in_urls_are_percent_encoded() {
        let asset = AssetName::new("cam 1#x").unwrap();
        let segs = segments(&[blob(0, 30, 1, 0)], PlaylistRange::Recent);
        let text = playlist(&asset, &segs, None);
        assert!(text.contains("/assets/cam%201%23x/blobs/"), "{text}");
    }

    #[test]
    fn a_given_query_is_carried_by_every_segment_url() {
        let asset = AssetName::new("cam").unwrap();
        let segs = segments(
            &[blob(0, 30, 1, 0), blob(30, 60, 1, 1)],
            PlaylistRange::Recent,
        );
        let text = playlist(&asset, &segs, Some("token=k"));
        let urls: Vec<&str> = text.lines().filter(|l| l.contains("/assets/")).collect();
        assert_eq!(urls.len(), 4, "{text}");
        assert!(
            urls.iter()
                .all(|l| l.contains(".mp4?token=k") && !l.contains("??")),
            "{text}"
        );
    }
}
