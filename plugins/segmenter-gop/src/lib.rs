//! Default segmenter: the `cut-rule` crate's rule (a segment ends at the first video keyframe
//! at or after `segment-length`; a fragment packs the whole GOPs that fit in `max-fragment`),
//! which the host also falls back to while a faulty segmenter is replaced.
//!
//! Sees frame metadata only and keeps nothing but the rule's three instants: the segment's,
//! the fragment's and the last video keyframe's.

use std::cell::RefCell;

use cut_rule::{Cut, Cuts, Frame};
use exports::mediagraph::plugin::segmenter::{Config, Decision, Guest};
use mediagraph::plugin::types::{FrameInfo, MediaKind};

wit_bindgen::generate!({ world: "segmenter-plugin", path: "../../wit" });

#[derive(Default)]
struct State {
    config: Option<Config>,
    cuts: Cuts,
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
                cuts: Cuts::default(),
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
        let Some(config) = self.config else {
            // Not configured: never cut; the host's deadline check takes over.
            return Decision::None;
        };
        let frame = Frame {
            dts: f.dts,
            video: f.kind == MediaKind::Video,
            keyframe: f.keyframe,
        };
        let cut = self
            .cuts
            .decide(frame, config.segment_length, config.max_fragment);
        self.cuts.record(cut, frame);
        match cut {
            Cut::None => Decision::None,
            Cut::Fragment => Decision::Fragment,
            Cut::Segment => Decision::Segment,
        }
    }
}

export!(GopSegmenter);
