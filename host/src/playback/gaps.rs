//! The gaps of an asset and their causes: `GET /assets/{asset}/gaps?startTime=&endTime=`.
//!
//! Answers `{"gaps":[{"start","end","cause"}]}` from the store's gap records
//! ([`crate::upload::gaps`]), by start: every gap that touches `[startTime, endTime)`, with
//! its own bounds (not clipped to the range, so a client sees how long the hole really was).
//! Both bounds are required (RFC 3339, or a bare date for its midnight), start before end, at
//! most 31 days apart (the page's widest timeline is 7 days). A `ClockJump` gap of a clock
//! stepped back has its `end` before its `start`. An asset without gap records answers `[]`.

use serde::Serialize;

use super::PlaybackError;
use super::available::{check_span, param, parse_instant};
use crate::cache::Gap;
use crate::time::{Duration90k, Ticks90k};

const MAX_SPAN: Duration90k = Duration90k::from_secs(31 * 24 * 3600);

/// A validated gaps query: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapQuery {
    pub start: Ticks90k,
    pub end: Ticks90k,
}

impl GapQuery {
    pub fn parse(params: &[(String, String)]) -> Result<Self, PlaybackError> {
        let required = |name| {
            param(params, name).ok_or(PlaybackError::MissingParameter {
                name,
                why: " (ISO-8601 date-time)",
            })
        };
        let (start_text, end_text) = (required("startTime")?, required("endTime")?);
        let start = parse_instant("startTime", start_text)?;
        let end = parse_instant("endTime", end_text)?;
        check_span(
            (start, end),
            (start_text, end_text),
            MAX_SPAN,
            "gaps",
            "31 days",
        )?;
        Ok(Self { start, end })
    }
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct GapList {
    pub gaps: Vec<GapItem>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct GapItem {
    pub start: String,
    pub end: String,
    pub cause: &'static str,
}

/// The JSON answer for the store's gap records (already filtered and ordered by the store).
pub fn answer(gaps: &[Gap]) -> GapList {
    GapList {
        gaps: gaps
            .iter()
            .map(|g| GapItem {
                start: g.start.to_rfc3339_millis(),
                end: g.end.to_rfc3339_millis(),
                cause: g.cause.as_str(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::GapCause;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn both_bounds_are_required_ordered_and_at_most_31_days_apart() {
        let ok = GapQuery::parse(&params(&[
            ("startTime", "2026-12-04T10:00:00Z"),
            ("endtime", "2026-12-05"),
        ]))
        .unwrap();
        assert_eq!(ok.end - ok.start, Duration90k::from_secs(14 * 3600));
        let code = |pairs: &[(&str, &str)]| GapQuery::parse(&params(pairs)).unwrap_err().code();
        assert_eq!(code(&[("startTime", "2026-12-04")]), "MissingParameter");
        assert_eq!(code(&[("endTime", "2026-12-04")]), "MissingParameter");
        assert_eq!(
            code(&[("startTime", "2026-12-04"), ("endTime", "yesterday")]),
            "InvalidTimeFormat"
        );
        assert_eq!(
            code(&[("startTime", "2026-12-04"), ("endTime", "2026-12-04")]),
            "InvalidTimeOrder"
        );
        assert_eq!(
            code(&[
                ("startTime", "2026-11-01"),
                ("endTime", "2026-12-02T00:00:01Z")
            ]),
            "TimeRangeTooLong"
        );
        assert!(
            GapQuery::parse(&params(&[
                ("startTime", "2026-11-01"),
                ("endTime", "2026-12-02")
            ]))
            .is_ok(),
            "exactly 31 days"
        );
    }

    #[test]
    fn the_answer_names_each_cause_with_the_gaps_own_bounds() {
        let t = Ticks90k::from_secs;
        let list = answer(&[
            Gap {
                start: t(1_800_000_000),
                end: t(1_800_000_030),
                cause: GapCause::CameraOffline,
            },
            Gap {
                start: t(1_800_000_100),
                end: t(1_800_000_090),
                cause: GapCause::ClockJump,
            },
        ]);
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            serde_json::json!({"gaps": [
                {"start": "2027-01-15T08:00:00.000Z", "end": "2027-01-15T08:00:30.000Z", "cause": "CameraOffline"},
                {"start": "2027-01-15T08:01:40.000Z", "end": "2027-01-15T08:01:30.000Z", "cause": "ClockJump"},
            ]})
        );
    }
}
