//! Gap records: the holes of an asset and their causes, kept in the asset store beside its
//! blobs so that they outlive the cache that noticed them (whose `gaps.log` keeps only the
//! newest few and is gone with the cache).
//!
//! One record per gap, `<asset>/gaps/<UTC start yyyyMMddTHHmmssZ>-<start>-<end>-<Cause>.json`
//! (start and end in 90 kHz ticks, 16 digits each), holding the same facts as JSON. The name
//! says everything, so listing the records answers a query without reading one, and since the
//! name depends only on the gap, storing a gap again (the uploader re-sends every gap its cache
//! holds after a restart) lands on the same record: both stores create a record only if the
//! name is free, and a taken name is the same gap. Names sort in time order, so a listing by a
//! time prefix is a listing of a time range, as for blobs.

use crate::cache::{Gap, GapCause};
use crate::time::Ticks90k;

/// The folder of an asset's gap records, below the asset's own prefix (`<asset>/gaps/`): it
/// cannot be mistaken for a blob, whose names start with a digit.
pub const GAPS_DIR: &str = "gaps";
const EXTENSION: &str = ".json";
/// Ticks are written with this many digits (zero padded), so names sort by start.
const TICK_DIGITS: usize = 16;

/// The file part of a gap's record name.
pub fn record_file(gap: &Gap) -> String {
    format!(
        "{}-{:0w$}-{:0w$}-{}{EXTENSION}",
        super::utc_stamp(gap.start),
        gap.start.0,
        gap.end.0,
        gap.cause.as_str(),
        w = TICK_DIGITS
    )
}

/// The store's name for a gap record of `asset`.
pub fn record_name(asset: &str, gap: &Gap) -> String {
    format!("{asset}/{GAPS_DIR}/{}", record_file(gap))
}

/// The gap a record's file name describes; `None` for anything else (a temporary file, a
/// cause this version does not know, a name that does not add up).
pub fn parse_record_file(file: &str) -> Option<Gap> {
    let stem = file.strip_suffix(EXTENSION)?;
    let mut parts = stem.splitn(4, '-');
    let (stamp, start, end, cause) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let ticks = |t: &str| {
        (t.len() == TICK_DIGITS && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok().map(Ticks90k))
            .flatten()
    };
    let gap = Gap {
        start: ticks(start)?,
        end: ticks(end)?,
        cause: GapCause::parse(cause)?,
    };
    (super::utc_stamp(gap.start) == stamp).then_some(gap)
}

/// The record's content: the facts of its name, readable on their own.
pub fn record_json(gap: &Gap) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "start": gap.start.0,
        "end": gap.end.0,
        "cause": gap.cause.as_str(),
        "startUtc": gap.start.to_rfc3339_millis(),
        "endUtc": gap.end.to_rfc3339_millis(),
    }))
    .unwrap_or_default()
}

/// Whether `gap` touches `[from, to)`. A gap whose end is before its start (the clock stepped
/// back) covers the instants between the two; an empty one counts where it stands.
pub fn overlaps(gap: &Gap, from: Ticks90k, to: Ticks90k) -> bool {
    let (lo, hi) = (gap.start.min(gap.end), gap.start.max(gap.end));
    lo < to && (hi > from || lo >= from)
}

/// Sorts gap records by start and drops repeats (two listings, or a record seen twice).
pub fn normalize(gaps: &mut Vec<Gap>) {
    gaps.sort_by_key(|g| (g.start, g.end, g.cause.as_str()));
    gaps.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(start: i64, end: i64, cause: GapCause) -> Gap {
        Gap {
            start: Ticks90k::from_secs(start),
            end: Ticks90k::from_secs(end),
            cause,
        }
    }

    #[test]
    fn record_names_round_trip_every_cause_and_sort_by_start() {
        for cause in GapCause::ALL {
            let g = gap(1_800_000_000, 1_800_000_042, cause);
            assert_eq!(parse_record_file(&record_file(&g)), Some(g));
            // One spelling: the records' and the API's is gaps.log's.
            assert_eq!(serde_json::to_value(cause).unwrap(), cause.as_str());
        }
        let g = gap(1_800_000_000, 1_800_000_042, GapCause::CameraOffline);
        assert_eq!(
            record_name("cam-1", &g),
            "cam-1/gaps/20270115T080000Z-0162000000000000-0162000003780000-CameraOffline.json"
        );
        // A clock stepped back: the end is before the start.
        let back = gap(1_800_000_100, 1_800_000_040, GapCause::ClockJump);
        assert_eq!(parse_record_file(&record_file(&back)), Some(back));
        let mut names = [
            record_file(&gap(1_800_000_100, 1_800_000_110, GapCause::Crash)),
            record_file(&gap(1_799_999_000, 1_800_000_000, GapCause::Retention)),
            record_file(&gap(1_800_000_050, 1_800_000_060, GapCause::CameraOffline)),
        ];
        names.sort();
        let starts: Vec<_> = names
            .iter()
            .map(|n| parse_record_file(n).unwrap().start.as_unix_secs())
            .collect();
        assert_eq!(starts, [1_799_999_000, 1_800_000_050, 1_800_000_100]);
    }

    #[test]
    fn other_files_are_not_gap_records() {
        let good = record_file(&gap(1_800_000_000, 1_800_000_042, GapCause::Crash));
        for bad in [
            "".to_owned(),
            format!("{good}.0123456789abcdef.partial"),
            good.replace("Crash", "Flood"),
            good.replace("20270115T080000Z", "20270115T080001Z"),
            good.replace("-0162000000000000-", "-162000000000000-"),
            good.replace(".json", ".mp4"),
            "20270115T080000Z-r0000000007-s0000000002.mp4".to_owned(),
        ] {
            assert_eq!(parse_record_file(&bad), None, "{bad}");
        }
    }

    #[test]
    fn overlap_counts_backward_and_empty_gaps_where_they_are() {
        let t = Ticks90k::from_secs;
        let g = gap(100, 200, GapCause::CameraOffline);
        assert!(overlaps(&g, t(150), t(160)));
        assert!(overlaps(&g, t(0), t(101)));
        assert!(!overlaps(&g, t(0), t(100)), "[from, to) excludes to");
        assert!(!overlaps(&g, t(200), t(300)));
        let back = gap(200, 100, GapCause::ClockJump);
        assert!(overlaps(&back, t(150), t(160)));
        let empty = gap(100, 100, GapCause::Crash);
        assert!(overlaps(&empty, t(100), t(101)));
        assert!(!overlaps(&empty, t(101), t(102)));
    }
}
