//! Default segmenter: a segment ends at the first video keyframe at or after `segment-length`
//! since the segment started (less 0.1 % for the host's clock slew, so that 30 s of media does
//! not become a 31 s segment). A fragment holds as many whole GOPs as fit in `max-fragment` (the
//! GOP just closed predicts the next), and is cut at any frame once it reaches `max-fragment`,
//! so a crash loses at most that much. Packing GOPs matters for short GOPs: every fragment
//! costs the host an fsync. Audio-only streams cut at any frame (every AAC frame is a sync
//! sample).
//!
//! Sees frame metadata only and keeps nothing but three instants: the segment's, the
//! fragment's and the last video keyframe's.

use std::cell::RefCell;

use exports::mediagraph::plugin::segmenter::{Config, Decision, Guest};
use mediagraph::plugin::types::{FrameInfo, MediaKind};

wit_bindgen::generate!({ world: "segmenter-plugin", path: "../../wit" });

#[derive(Default)]
struct State {
    config: Option<Config>,
    segment_start: Option<i64>,
    fragment_start: i64,
    /// The last video keyframe.
    gop_start: i64,
    saw_video: bool,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct GopSegmenter;

impl Guest for GopSegmenter {
    fn configure(config: Config) -> Result<(), String> {
        if config.segment_length == 0 {
            return Err("segment-length must be positive".into());
        }
        if config.max_fragment == 0 {
            return Err("max-fragment must be positive".into());
        }
        STATE.with_borrow_mut(|s| {
            *s = State {
                config: Some(config),
                ..State::default()
            }
        });
        Ok(())
    }

    fn on_frame(frame: FrameInfo) -> Decision {
        STATE.with_borrow_mut(|s| s.decide(&frame))
    }
}

impl State {
    fn decide(&mut self, f: &FrameInfo) -> Decision {
        let video = f.kind == MediaKind::Video;
        self.saw_video |= video;
        let Some(config) = self.config else {
            // Not configured: never cut; the host's deadline check takes over.
            return Decision::None;
        };
        let closed_gop = f.dts.saturating_sub(self.gop_start);
        if video && f.keyframe {
            self.gop_start = f.dts;
        }
        let Some(segment_start) = self.segment_start else {
            self.segment_start = Some(f.dts);
            self.fragment_start = f.dts;
            return Decision::Segment;
        };
        let cut_point = f.keyframe && (video || !self.saw_video);
        let since_segment = f.dts.saturating_sub(segment_start);
        if cut_point && segment_is_due(since_segment, config.segment_length as i64) {
            self.segment_start = Some(f.dts);
            self.fragment_start = f.dts;
            return Decision::Segment;
        }
        let since_fragment = f.dts.saturating_sub(self.fragment_start);
        let max = config.max_fragment as i64;
        let full_at_gop = video
            && f.keyframe
            && since_fragment > 0
            && !another_gop_fits(since_fragment, closed_gop, max);
        if full_at_gop || since_fragment >= max {
            self.fragment_start = f.dts;
            return Decision::Fragment;
        }
        Decision::None
    }
}

/// Whether a segment `so_far` long has reached `length`. Timestamps are wall-clock times slewed
/// toward the host clock by up to 500 ppm, so the keyframe at exactly `length` of media time can
/// read up to 0.05 % early; 0.1 % slack keeps it from pushing the cut one GOP later.
fn segment_is_due(so_far: i64, length: i64) -> bool {
    so_far.saturating_add(length / 1000) >= length
}

/// Whether a fragment `so_far` long can take one more GOP as long as the one just closed
/// without exceeding `max`, allowing 1 % for the wall-clock slew in timestamps.
fn another_gop_fits(so_far: i64, gop: i64, max: i64) -> bool {
    so_far.saturating_add(gop) <= max + max / 100
}

export!(GopSegmenter);
