//! LVA's availableMedia: which parts of an asset hold media, at a chosen precision.
//!
//! `GET .../availableMedia?precision=year|month|day|full&startTime=...&endTime=...` answers
//! `{"timeRanges":[{"start","end"}]}`. Rules (lva-spec.md, section e):
//! - `precision` is required. Bounds are UTC: `YYYY` (year, both optional, defaulting to the
//!   first/last year recorded), `YYYY-MM` (month, required), `YYYY-MM-DD` (day, required),
//!   ISO-8601 date-time (full, required; a bare `YYYY-MM-DD` means its midnight, as AVA's
//!   widget sends).
//! - year/month/day need `startTime <= endTime`, full needs `startTime < endTime`; bounds are
//!   inclusive. Maximum spans: month 12 months, day 31 days, full 25 hours, year unlimited.
//! - Ranges partly outside the query are clipped to it; nothing in range gives `[]`.
//! - Gaps split ranges. A unit range (day, month, year) means every unit from start to end,
//!   inclusive, holds some media.

use serde::Serialize;
use time::{Date, Month, OffsetDateTime, format_description::well_known::Rfc3339};

use super::PlaybackError;
use crate::time::{Duration90k, TICKS_PER_SECOND, Ticks90k};
use crate::upload::{SEAM_TOLERANCE, StoredBlob};

const FULL_MAX: Duration90k = Duration90k::from_secs(25 * 3600);
const MONTH_MAX: i64 = 12;
const DAY_MAX: i64 = 31;

/// A stretch of recorded media, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: Ticks90k,
    pub end: Ticks90k,
}

/// The time-ordered, merged spans of an asset's blobs (their `start`/`end` metadata).
///
/// An asset with no blobs is unknown (404); one whose blobs carry no span metadata was not
/// recorded by a media graph (400, as LVA answers).
pub fn recorded_spans(asset: &str, blobs: &[StoredBlob]) -> Result<Vec<Span>, PlaybackError> {
    if blobs.is_empty() {
        return Err(PlaybackError::AssetNotFound(asset.to_owned()));
    }
    let spans = merged(blobs.iter().filter_map(StoredBlob::span));
    if spans.is_empty() {
        return Err(PlaybackError::NotRecorded(asset.to_owned()));
    }
    Ok(spans)
}

/// Blob spans `(start, end)` sorted and merged as [`recorded_spans`] does (empty ones dropped).
pub fn merged(spans: impl IntoIterator<Item = (Ticks90k, Ticks90k)>) -> Vec<Span> {
    let mut spans: Vec<Span> = spans
        .into_iter()
        .filter(|(start, end)| start < end)
        .map(|(start, end)| Span { start, end })
        .collect();
    spans.sort_by_key(|s| s.start);
    merge(spans)
}

fn merge(sorted: Vec<Span>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::with_capacity(sorted.len());
    for s in sorted {
        match out.last_mut() {
            Some(last) if s.start <= last.end + SEAM_TOLERANCE => {
                last.end = last.end.max(s.end);
            }
            _ => out.push(s),
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Year,
    Month,
    Day,
    Full,
}

impl Precision {
    fn parse(text: &str) -> Result<Self, PlaybackError> {
        match text.to_ascii_lowercase().as_str() {
            "year" => Ok(Precision::Year),
            "month" => Ok(Precision::Month),
            "day" => Ok(Precision::Day),
            "full" => Ok(Precision::Full),
            _ => Err(PlaybackError::UnknownPrecision(text.to_owned())),
        }
    }

    fn format_hint(self) -> &'static str {
        match self {
            Precision::Year => "YYYY",
            Precision::Month => "YYYY-MM",
            Precision::Day => "YYYY-MM-DD",
            Precision::Full => "an ISO-8601 date-time such as 2019-12-21T00:00:00Z",
        }
    }
}

/// A validated availableMedia query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvailabilityQuery {
    /// precision=full: instants, inclusive.
    Full { start: Ticks90k, end: Ticks90k },
    /// precision=year|month|day: unit numbers (year, months since year 0, Julian day),
    /// inclusive; `None` (year only) means the first/last unit recorded.
    Units {
        precision: Precision,
        first: Option<i64>,
        last: Option<i64>,
    },
}

/// The JSON answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AvailableMedia {
    #[serde(rename = "timeRanges")]
    pub time_ranges: Vec<TimeRange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    pub start: String,
    pub end: String,
}

/// Looks a query parameter up case-insensitively (`startTime` and `starttime` both occur);
/// an empty value counts as absent.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

impl AvailabilityQuery {
    pub fn parse(params: &[(String, String)]) -> Result<Self, PlaybackError> {
        let precision = param(params, "precision").ok_or(PlaybackError::MissingParameter {
            name: "precision",
            why: " (year, month, day or full)",
        })?;
        let precision = Precision::parse(precision)?;
        let start = param(params, "startTime");
        let end = param(params, "endTime");
        if precision == Precision::Full {
            let (start_text, end_text) = required(precision, start, end)?;
            let start = parse_instant("startTime", start_text)?;
            let end = parse_instant("endTime", end_text)?;
            check_span(
                (start, end),
                (start_text, end_text),
                FULL_MAX,
                "precision=full",
                "25 hours",
            )?;
            return Ok(AvailabilityQuery::Full { start, end });
        }
        let (start, end) = if precision == Precision::Year {
            (start, end)
        } else {
            let (s, e) = required(precision, start, end)?;
            (Some(s), Some(e))
        };
        let first = start
            .map(|t| parse_unit(precision, "startTime", t))
            .transpose()?;
        let last = end
            .map(|t| parse_unit(precision, "endTime", t))
            .transpose()?;
        if let (Some(f), Some(l), Some(s), Some(e)) = (first, last, start, end) {
            if f > l {
                return Err(PlaybackError::Order {
                    start: s.to_owned(),
                    end: e.to_owned(),
                    rule: "the same as or before",
                });
            }
            let (max, what, max_text) = match precision {
                Precision::Month => (MONTH_MAX, "precision=month", "12 months"),
                Precision::Day => (DAY_MAX, "precision=day", "31 days"),
                _ => (i64::MAX, "", ""),
            };
            if l - f + 1 > max {
                return Err(PlaybackError::SpanTooLong {
                    start: s.to_owned(),
                    end: e.to_owned(),
                    what,
                    max: max_text.to_owned(),
                });
            }
        }
        Ok(AvailabilityQuery::Units {
            precision,
            first,
            last,
        })
    }

    /// The instants the answer depends on, `[from, to)`: only blobs overlapping them need to
    /// be listed. Unbounded ends (year precision) are the extremes.
    pub fn bounds(&self) -> (Ticks90k, Ticks90k) {
        match *self {
            AvailabilityQuery::Full { start, end } => (start, end + Duration90k(1)),
            AvailabilityQuery::Units {
                precision,
                first,
                last,
            } => (
                first
                    .and_then(|u| unit_start(precision, u))
                    .unwrap_or(Ticks90k(i64::MIN)),
                last.and_then(|u| unit_start(precision, u + 1))
                    .unwrap_or(Ticks90k(i64::MAX)),
            ),
        }
    }

    /// The answer for an asset's merged spans (from [`recorded_spans`]).
    pub fn answer(&self, spans: &[Span]) -> AvailableMedia {
        let time_ranges = match *self {
            AvailabilityQuery::Full { start, end } => spans
                .iter()
                .filter_map(|s| {
                    let (a, b) = (s.start.max(start), s.end.min(end));
                    (a < b).then(|| TimeRange {
                        start: a.to_rfc3339_millis(),
                        end: b.to_rfc3339_millis(),
                    })
                })
                .collect(),
            AvailabilityQuery::Units {
                precision,
                first,
                last,
            } => {
                // A span [start, end) touches the units of start and of its last tick.
                let units: Vec<(i64, i64)> = spans
                    .iter()
                    .map(|s| {
                        (
                            unit_of(precision, s.start),
                            unit_of(precision, s.end - Duration90k(1)),
                        )
                    })
                    .collect();
                let (Some(lo), Some(hi)) = (units.first(), units.last()) else {
                    return AvailableMedia {
                        time_ranges: Vec::new(),
                    };
                };
                let first = first.unwrap_or(lo.0);
                let last = last.unwrap_or(hi.1);
                let mut merged: Vec<(i64, i64)> = Vec::new();
                for (a, b) in units {
                    let (a, b) = (a.max(first), b.min(last));
                    if a > b {
                        continue;
                    }
                    match merged.last_mut() {
                        Some(m) if a <= m.1 + 1 => m.1 = m.1.max(b),
                        _ => merged.push((a, b)),
                    }
                }
                merged
                    .into_iter()
                    .map(|(a, b)| TimeRange {
                        start: format_unit(precision, a),
                        end: format_unit(precision, b),
                    })
                    .collect()
            }
        };
        AvailableMedia { time_ranges }
    }
}

fn required<'a>(
    precision: Precision,
    start: Option<&'a str>,
    end: Option<&'a str>,
) -> Result<(&'a str, &'a str), PlaybackError> {
    let why = match precision {
        Precision::Month => " for precision=month (YYYY-MM)",
        Precision::Day => " for precision=day (YYYY-MM-DD)",
        _ => " for precision=full (ISO-8601 date-time)",
    };
    Ok((
        start.ok_or(PlaybackError::MissingParameter {
            name: "startTime",
            why,
        })?,
        end.ok_or(PlaybackError::MissingParameter {
            name: "endTime",
            why,
        })?,
    ))
}

/// An ISO-8601 (RFC 3339) date-time, converted to UTC; a bare date means its midnight UTC.
pub fn parse_instant(name: &'static str, text: &str) -> Result<Ticks90k, PlaybackError> {
    let bad = || PlaybackError::BadTime {
        name,
        value: text.to_owned(),
        expected: Precision::Full.format_hint(),
    };
    let t = if text.len() == 10 {
        parse_date(text).ok_or_else(bad)?.midnight().assume_utc()
    } else {
        OffsetDateTime::parse(text, &Rfc3339).map_err(|_| bad())?
    };
    let ticks = t.unix_timestamp_nanos() * i128::from(TICKS_PER_SECOND) / 1_000_000_000;
    Ok(Ticks90k(i64::try_from(ticks).map_err(|_| bad())?))
}

/// `start` strictly before `end`, at most `max` apart; errors quote the request's text.
pub(super) fn check_span(
    (start, end): (Ticks90k, Ticks90k),
    (start_text, end_text): (&str, &str),
    max_span: Duration90k,
    what: &'static str,
    max: &str,
) -> Result<(), PlaybackError> {
    if start >= end {
        return Err(PlaybackError::Order {
            start: start_text.to_owned(),
            end: end_text.to_owned(),
            rule: "before",
        });
    }
    if end - start > max_span {
        return Err(PlaybackError::SpanTooLong {
            start: start_text.to_owned(),
            end: end_text.to_owned(),
            what,
            max: max.to_owned(),
        });
    }
    Ok(())
}

fn digits(text: &str) -> Option<i32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `YYYY-MM` → (year, month).
fn parse_year_month(text: &str) -> Option<(i32, Month)> {
    let (y, m) = text.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let month = Month::try_from(u8::try_from(digits(m)?).ok()?).ok()?;
    Some((digits(y)?, month))
}

fn parse_date(text: &str) -> Option<Date> {
    if text.len() != 10 || text.as_bytes()[7] != b'-' {
        return None;
    }
    let (year, month) = parse_year_month(&text[..7])?;
    let day = u8::try_from(digits(&text[8..])?).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

fn parse_unit(precision: Precision, name: &'static str, text: &str) -> Result<i64, PlaybackError> {
    let unit = match precision {
        Precision::Year => (text.len() == 4)
            .then(|| digits(text))
            .flatten()
            .map(i64::from),
        Precision::Month => parse_year_month(text).map(|(y, m)| month_unit(y, m)),
        Precision::Day => parse_date(text).map(|d| i64::from(d.to_julian_day())),
        Precision::Full => None,
    };
    unit.ok_or(PlaybackError::BadTime {
        name,
        value: text.to_owned(),
        expected: precision.format_hint(),
    })
}

fn month_unit(year: i32, month: Month) -> i64 {
    i64::from(year) * 12 + i64::from(u8::from(month)) - 1
}

fn utc(t: Ticks90k) -> OffsetDateTime {
    let nanos = i128::from(t.0) * 1_000_000_000 / i128::from(TICKS_PER_SECOND);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Midnight UTC of the first day of `unit`; `None` outside the calendar's range.
fn unit_start(precision: Precision, unit: i64) -> Option<Ticks90k> {
    let date = match precision {
        Precision::Year => Date::from_calendar_date(i32::try_from(unit).ok()?, Month::January, 1),
        Precision::Month => Date::from_calendar_date(
            i32::try_from(unit.div_euclid(12)).ok()?,
            Month::try_from(u8::try_from(unit.rem_euclid(12) + 1).ok()?).ok()?,
            1,
        ),
        Precision::Day | Precision::Full => Date::from_julian_day(i32::try_from(unit).ok()?),
    }
    .ok()?;
    let secs = date.midnight().assume_utc().unix_timestamp();
    Some(Ticks90k(secs.checked_mul(TICKS_PER_SECOND)?))
}

fn unit_of(precision: Precision, t: Ticks90k) -> i64 {
    let date = utc(t).date();
    match precision {
        Precision::Year => i64::from(date.year()),
        Precision::Month => month_unit(date.year(), date.month()),
        Precision::Day | Precision::Full => i64::from(date.to_julian_day()),
    }
}

fn format_unit(precision: Precision, unit: i64) -> String {
    match precision {
        Precision::Year => format!("{unit:04}"),
        Precision::Month => format!("{:04}-{:02}", unit.div_euclid(12), unit.rem_euclid(12) + 1),
        Precision::Day | Precision::Full => i32::try_from(unit)
            .ok()
            .and_then(|d| Date::from_julian_day(d).ok())
            .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
