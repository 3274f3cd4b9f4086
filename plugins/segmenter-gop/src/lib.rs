//! Default segmenter: a segment ends at the first video keyframe at or after `segment-length`
//! since the segment started; fragments follow GOPs and are capped at `max-fragment`, so a crash
//! loses at most one fragment. Audio-only streams cut at any frame (every AAC frame is a sync
//! sample).
//!
//! Sees frame metadata only and keeps nothing but the two cut instants.

use std::cell::RefCell;

use exports::mediagraph::plugin::segmenter::{Config, Decision, Guest};
use mediagraph::plugin::types::{FrameInfo, MediaKind};

wit_bindgen::generate!({ world: "segmenter-plugin", path: "../../wit" });

#[derive(Default)]
struct State {
    config: Option<Config>,
    segment_start: Option<i64>,
    fragment_start: i64,
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
        let Some(segment_start) = self.segment_start else {
            self.segment_start = Some(f.dts);
            self.fragment_start = f.dts;
            return Decision::Segment;
        };
        let cut_point = f.keyframe && (video || !self.saw_video);
        let since_segment = f.dts.saturating_sub(segment_start);
        if cut_point && since_segment >= config.segment_length as i64 {
            self.segment_start = Some(f.dts);
            self.fragment_start = f.dts;
            return Decision::Segment;
        }
        let since_fragment = f.dts.saturating_sub(self.fragment_start);
        let new_gop = video && f.keyframe && since_fragment > 0;
        if new_gop || since_fragment >= config.max_fragment as i64 {
            self.fragment_start = f.dts;
            return Decision::Fragment;
        }
        Decision::None
    }
}

export!(GopSegmenter);
