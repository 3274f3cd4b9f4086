//! Time on LVA's timescale: instants as 90 kHz ticks since the Unix epoch (UTC), and the spans
//! between them.
//!
//! Every instant the host stores or exchanges (index entries, blob metadata, plugin calls, API
//! answers) is a [`Ticks90k`]; the difference of two instants is a [`Duration90k`], never a bare
//! integer. A media clock of another rate ([`ClockRate`], e.g. 48 kHz audio) converts to 90 kHz
//! in one place. Conversion to and from wall-clock text happens only at the edges.

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

    /// The instant as a `SystemTime` (to the nanosecond, rounded down).
    pub fn to_system_time(self) -> SystemTime {
        let nanos = i128::from(self.0) * 1_000_000_000 / i128::from(TICKS_PER_SECOND);
        let d = Duration::from_nanos(nanos.unsigned_abs() as u64);
        if nanos >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
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

/// A signed span of time in 90 kHz ticks: the difference of two [`Ticks90k`].
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
pub struct Duration90k(pub i64);

impl Duration90k {
    pub const ZERO: Duration90k = Duration90k(0);

    pub const fn from_secs(secs: i64) -> Self {
        Self(secs * TICKS_PER_SECOND)
    }

    pub const fn from_millis(millis: i64) -> Self {
        Self(millis * TICKS_PER_SECOND / 1000)
    }

    /// A std duration, truncating sub-tick remainders.
    pub fn from_std(d: Duration) -> Self {
        Self(duration_to_ticks(d))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TICKS_PER_SECOND as f64
    }

    /// The std duration of a span, zero for a negative one.
    pub fn to_std(self) -> Duration {
        Duration::from_nanos(
            (self.0.max(0) as u128 * 1_000_000_000 / TICKS_PER_SECOND as u128) as u64,
        )
    }

    pub fn abs(self) -> Self {
        Self(self.0.abs())
    }
}

impl std::ops::Add<Duration90k> for Ticks90k {
    type Output = Ticks90k;
    fn add(self, d: Duration90k) -> Ticks90k {
        Ticks90k(self.0 + d.0)
    }
}

impl std::ops::AddAssign<Duration90k> for Ticks90k {
    fn add_assign(&mut self, d: Duration90k) {
        self.0 += d.0;
    }
}

impl std::ops::Sub<Duration90k> for Ticks90k {
    type Output = Ticks90k;
    fn sub(self, d: Duration90k) -> Ticks90k {
        Ticks90k(self.0 - d.0)
    }
}

impl std::ops::Sub for Ticks90k {
    type Output = Duration90k;
    fn sub(self, other: Ticks90k) -> Duration90k {
        Duration90k(self.0 - other.0)
    }
}

impl std::ops::Add for Duration90k {
    type Output = Duration90k;
    fn add(self, other: Duration90k) -> Duration90k {
        Duration90k(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Duration90k {
    fn add_assign(&mut self, other: Duration90k) {
        self.0 += other.0;
    }
}

impl std::ops::Sub for Duration90k {
    type Output = Duration90k;
    fn sub(self, other: Duration90k) -> Duration90k {
        Duration90k(self.0 - other.0)
    }
}

impl std::ops::Neg for Duration90k {
    type Output = Duration90k;
    fn neg(self) -> Duration90k {
        Duration90k(-self.0)
    }
}

impl std::iter::Sum for Duration90k {
    fn sum<I: Iterator<Item = Duration90k>>(iter: I) -> Duration90k {
        Duration90k(iter.map(|d| d.0).sum())
    }
}

/// The tick rate of a media clock (an RTP clock: 90 kHz video, 48 kHz audio, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClockRate(std::num::NonZeroU32);

impl From<std::num::NonZeroU32> for ClockRate {
    fn from(hz: std::num::NonZeroU32) -> Self {
        Self(hz)
    }
}

impl ClockRate {
    /// LVA's timescale, which every instant the host keeps is on.
    pub const HZ_90K: ClockRate = ClockRate(std::num::NonZeroU32::new(90_000).unwrap());

    /// `None` for a rate of zero.
    pub fn new(hz: u32) -> Option<Self> {
        std::num::NonZeroU32::new(hz).map(Self)
    }

    pub fn hz(self) -> u32 {
        self.0.get()
    }

    /// `ticks` of this clock as a 90 kHz span, truncated toward zero.
    pub fn to_90k(self, ticks: i64) -> Duration90k {
        if self == Self::HZ_90K {
            return Duration90k(ticks);
        }
        let scaled = i128::from(ticks) * i128::from(TICKS_PER_SECOND);
        Duration90k((scaled / i128::from(self.hz())) as i64)
    }

    /// A 90 kHz span in ticks of this clock, rounded toward negative infinity.
    pub fn from_90k(self, d: Duration90k) -> i64 {
        (i128::from(d.0) * i128::from(self.hz())).div_euclid(i128::from(TICKS_PER_SECOND)) as i64
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

    #[test]
    fn instants_and_spans_keep_their_units() {
        let a = Ticks90k::from_secs(10);
        let b = a + Duration90k::from_millis(1500);
        assert_eq!(b - a, Duration90k(135_000));
        assert_eq!((a - b).as_secs_f64(), -1.5);
        assert_eq!((b - a).to_std(), Duration::from_millis(1500));
        assert_eq!((a - b).to_std(), Duration::ZERO);
        assert_eq!(b - Duration90k::from_millis(1500), a);
    }

    #[test]
    fn media_clocks_convert_to_90k_and_back() {
        let audio = ClockRate::new(48_000).unwrap();
        assert_eq!(audio.to_90k(1024), Duration90k(1920));
        assert_eq!(audio.to_90k(48_000), Duration90k::from_secs(1));
        assert_eq!(ClockRate::new(44_100).unwrap().to_90k(1), Duration90k(2));
        assert_eq!(ClockRate::new(44_100).unwrap().to_90k(-1), Duration90k(-2));
        assert_eq!(ClockRate::HZ_90K.to_90k(3000), Duration90k(3000));
        assert_eq!(audio.from_90k(Duration90k(1920)), 1024);
        assert_eq!(audio.from_90k(Duration90k(-1)), -1);
        assert!(ClockRate::new(0).is_none());
    }
}
