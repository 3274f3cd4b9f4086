//! Instants on LVA's timescale: 90 kHz ticks since the Unix epoch (UTC).
//!
//! Every instant the host stores or exchanges (index entries, blob metadata, plugin calls, API
//! answers) is a [`Ticks90k`]. Conversion to and from wall-clock text happens only at the edges.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Ticks per second of LVA's media timescale.
pub const TICKS_PER_SECOND: i64 = 90_000;

/// An instant: 90 kHz ticks since 1970-01-01T00:00:00Z.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Ticks90k(pub i64);

impl Ticks90k {
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(duration_to_ticks(d)),
            Err(e) => Self(-duration_to_ticks(e.duration())),
        }
    }

    pub fn from_secs(secs: i64) -> Self {
        Self(secs * TICKS_PER_SECOND)
    }

    /// Whole seconds since the epoch, rounded toward negative infinity.
    pub fn as_unix_secs(self) -> i64 {
        self.0.div_euclid(TICKS_PER_SECOND)
    }

    /// RFC 3339 UTC text with millisecond precision, e.g. `2020-05-12T23:33:09.381Z`.
    pub fn to_rfc3339_millis(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000_000 / i128::from(TICKS_PER_SECOND);
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        t.format(&fmt).unwrap_or_default()
    }
}

impl std::ops::Add<i64> for Ticks90k {
    type Output = Ticks90k;
    fn add(self, ticks: i64) -> Ticks90k {
        Ticks90k(self.0 + ticks)
    }
}

impl std::ops::Sub for Ticks90k {
    type Output = i64;
    fn sub(self, other: Ticks90k) -> i64 {
        self.0 - other.0
    }
}

/// Converts a duration to 90 kHz ticks, truncating sub-tick remainders.
pub fn duration_to_ticks(d: Duration) -> i64 {
    (d.as_nanos() * TICKS_PER_SECOND as u128 / 1_000_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lva_example_instant_formats_as_in_the_docs() {
        // From LVA's monitoring docs: 143039375044290 ticks = 2020-05-12T23:33:09.381Z.
        assert_eq!(
            Ticks90k(143_039_375_044_290).to_rfc3339_millis(),
            "2020-05-12T23:33:09.381Z"
        );
    }

    #[test]
    fn duration_conversion_is_exact_for_whole_milliseconds() {
        assert_eq!(duration_to_ticks(Duration::from_millis(1500)), 135_000);
        assert_eq!(Ticks90k::from_secs(2).as_unix_secs(), 2);
        assert_eq!(Ticks90k(-1).as_unix_secs(), -1);
    }
}
