//! The default cut rule, written once: `segmenter-gop` answers with it, and the host's
//! segmenter falls back to it while a faulty plugin instance is replaced, so the two cannot
//! drift apart.
//!
//! A segment ends at the first cut point at or after `segment_length` since it started (less
//! 0.1 % for the host's clock slew, so that 30 s of media does not become a 31 s segment). A
//! fragment holds as many whole GOPs as fit in `max_fragment` (the GOP just closed predicts the
//! next) and is cut at any frame once it reaches `max_fragment`, so a crash loses at most that
//! much. Packing GOPs matters for short GOPs: every fragment costs the host an fsync.
//! Audio-only streams cut at any frame (every AAC frame is a sync sample).
//!
//! All instants are 90 kHz ticks of wall-clock decode time; lengths are 90 kHz ticks.

#![no_std]

/// What the rule needs to know of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Wall-clock decode time, 90 kHz ticks.
    pub dts: i64,
    pub video: bool,
    pub keyframe: bool,
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Append to the current fragment.
    None,
    /// Close the current fragment; this frame starts the next one.
    Fragment,
    /// Close the current segment; this frame starts the next one.
    Segment,
}

/// Where the current segment and fragment started: all the rule remembers of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cuts {
    segment_start: Option<i64>,
    fragment_start: i64,
    /// The last video keyframe.
    gop_start: i64,
    saw_video: bool,
}

impl Cuts {
    /// Whether `f` may start a segment: a video keyframe, or any keyframe while the run has
    /// shown no video.
    pub fn is_cut_point(&self, f: Frame) -> bool {
        f.keyframe && (f.video || !self.saw_video)
    }

    /// Ticks since the current segment started, `None` before the run's first frame.
    pub fn since_segment(&self, f: Frame) -> Option<u64> {
        self.segment_start.map(|start| since(start, f))
    }

    /// Ticks since the current fragment started.
    pub fn since_fragment(&self, f: Frame) -> u64 {
        since(self.fragment_start, f)
    }

    /// The default rule's answer for `f`. Does not remember `f`: call [`Cuts::record`] with
    /// the decision taken, whoever took it.
    pub fn decide(&self, f: Frame, segment_length: u64, max_fragment: u64) -> Cut {
        let Some(in_segment) = self.since_segment(f) else {
            return Cut::Segment;
        };
        if self.is_cut_point(f) && segment_is_due(in_segment, segment_length) {
            return Cut::Segment;
        }
        let in_fragment = self.since_fragment(f);
        let full_at_gop = f.video
            && f.keyframe
            && in_fragment > 0
            && !another_gop_fits(in_fragment, since(self.gop_start, f), max_fragment);
        if full_at_gop || in_fragment >= max_fragment {
            Cut::Fragment
        } else {
            Cut::None
        }
    }

    /// Remembers `f` and the decision taken for it.
    pub fn record(&mut self, cut: Cut, f: Frame) {
        self.saw_video |= f.video;
        if f.video && f.keyframe {
            self.gop_start = f.dts;
        }
        match cut {
            Cut::Segment => {
                self.segment_start = Some(f.dts);
                self.fragment_start = f.dts;
            }
            Cut::Fragment => self.fragment_start = f.dts,
            Cut::None => {}
        }
    }
}

/// Whether a segment `so_far` long has reached `length`. Timestamps are wall-clock times slewed
/// toward the host clock by up to 500 ppm, so the keyframe at exactly `length` of media time can
/// read up to 0.05 % early; 0.1 % slack keeps it from pushing the cut one GOP later.
fn segment_is_due(so_far: u64, length: u64) -> bool {
    so_far.saturating_add(length / 1000) >= length
}

/// Whether a fragment `so_far` long can take one more GOP as long as the one just closed
/// without exceeding `max`, allowing 1 % for the wall-clock slew in timestamps.
fn another_gop_fits(so_far: u64, gop: u64, max: u64) -> bool {
    so_far.saturating_add(gop) <= max + max / 100
}

/// Ticks from `start` to the frame (0 if the frame is earlier, e.g. after a clock step).
fn since(start: i64, f: Frame) -> u64 {
    u64::try_from(f.dts.saturating_sub(start)).unwrap_or(0)
}
