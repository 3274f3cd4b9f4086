//! The per-sink segmenter: asks the plugin where each frame goes, checks the answer against the
//! cutting rules, and falls back to the default GOP rule (the `cut-rule` crate, which
//! `segmenter-gop` answers with too) while a faulty instance is replaced.
//!
//! Cutting rules the host enforces: the first frame of a run starts a segment; a segment may
//! only start at a cut point (a video keyframe, or any keyframe while no video has been seen);
//! a cut point more than twice `segment_length` into a segment must cut; a fragment may not
//! stay open for more than twice `max_fragment`.

use std::sync::Arc;

use cut_rule::{Cut, Cuts, Frame};
use wasmtime::Store;

use super::runtime::{self, Compiled, Ctx};
use super::types::{Decision, FrameInfo, MediaKind, SegmenterConfig};
use super::wit::types as wit_types;
use super::{Fault, PluginError, PluginInfo, Reporter};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "segmenter-plugin",
        with: { "mediagraph:plugin/types": super::super::wit::types },
    });
}

use bindings::exports::mediagraph::plugin::segmenter as wit;

const RECOVERY: &str = "instance dropped; the built-in GOP rule cuts until the next segment, where a fresh instance takes over";

struct Live {
    store: Store<Ctx>,
    bindings: bindings::SegmenterPlugin,
}

pub struct Segmenter {
    plugin: Arc<PluginInfo>,
    pre: bindings::SegmenterPluginPre<Ctx>,
    runtime: &'static runtime::Runtime,
    config: SegmenterConfig,
    reporter: Reporter,
    /// `None` while the fallback drives (after a fault, until the next segment cut).
    live: Option<Live>,
    /// The cuts as the host saw them, whoever decided them.
    cuts: Cuts,
}

impl Segmenter {
    pub(crate) fn new(
        plugin: Arc<PluginInfo>,
        compiled: Compiled,
        config: SegmenterConfig,
        reporter: Reporter,
    ) -> Result<Self, PluginError> {
        let pre = bindings::SegmenterPluginPre::new((*compiled.pre).clone()).map_err(|e| {
            PluginError::NotAPlugin {
                plugin: plugin.name.clone(),
                reason: format!("{e:#}"),
            }
        })?;
        let mut s = Self {
            plugin,
            pre,
            runtime: compiled.runtime,
            config,
            reporter,
            live: None,
            cuts: Cuts::default(),
        };
        s.live = Some(s.instantiate().map_err(|fault| match fault {
            Fault::InvalidAnswer(message) => PluginError::Configure {
                plugin: s.plugin.name.clone(),
                message,
            },
            fault => PluginError::Fault {
                plugin: s.plugin.name.clone(),
                fault,
            },
        })?);
        Ok(s)
    }

    pub fn plugin(&self) -> &str {
        &self.plugin.name
    }

    /// Starts over for a new run: a fresh instance, and the next frame starts a segment.
    pub fn reset(&mut self) {
        self.cuts = Cuts::default();
        self.live = match self.instantiate() {
            Ok(live) => Some(live),
            Err(fault) => {
                self.reporter.fault(&self.plugin, &fault, RECOVERY);
                None
            }
        };
    }

    /// Where `f` goes. Never fails: faults are reported and the fallback answers.
    pub fn on_frame(&mut self, f: &FrameInfo) -> Decision {
        let frame = rule_frame(f);
        let fallback: Decision = (self.cuts)
            .decide(frame, self.config.segment_length, self.config.max_fragment)
            .into();
        let decision = match self.live.as_mut() {
            Some(live) => match call(live, f).and_then(|d| check(&self.cuts, d, f, &self.config)) {
                Ok(d) => d,
                Err(fault) => {
                    self.live = None;
                    self.reporter.fault(&self.plugin, &fault, RECOVERY);
                    fallback
                }
            },
            None => {
                if fallback == Decision::Segment {
                    self.take_over(f);
                }
                fallback
            }
        };
        self.cuts.record(decision.into(), frame);
        decision
    }

    /// A fresh instance takes over at a segment cut; `f` is the first frame it sees, so its own
    /// idea of the segment start matches the host's.
    fn take_over(&mut self, f: &FrameInfo) {
        let result = self
            .instantiate()
            .and_then(|mut live| call(&mut live, f).map(|_| live));
        match result {
            Ok(live) => self.live = Some(live),
            Err(fault) => self.reporter.fault(&self.plugin, &fault, RECOVERY),
        }
    }

    fn instantiate(&self) -> Result<Live, Fault> {
        let mut store = self.runtime.store();
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| Fault::Instantiate(format!("{e:#}")))?;
        runtime::arm(&mut store);
        let config = wit::Config {
            segment_length: self.config.segment_length,
            max_fragment: self.config.max_fragment,
        };
        bindings
            .mediagraph_plugin_segmenter()
            .call_configure(&mut store, config)
            .map_err(|e| runtime::classify(&e))?
            .map_err(Fault::InvalidAnswer)?;
        Ok(Live { store, bindings })
    }
}

fn call(live: &mut Live, f: &FrameInfo) -> Result<Decision, Fault> {
    runtime::arm(&mut live.store);
    let frame = wit_types::FrameInfo::from(f);
    let d = live
        .bindings
        .mediagraph_plugin_segmenter()
        .call_on_frame(&mut live.store, frame)
        .map_err(|e| runtime::classify(&e))?;
    Ok(match d {
        wit::Decision::None => Decision::None,
        wit::Decision::Fragment => Decision::Fragment,
        wit::Decision::Segment => Decision::Segment,
    })
}

/// Holds the plugin's answer `d` for `f` to the cutting rules.
fn check(
    cuts: &Cuts,
    d: Decision,
    f: &FrameInfo,
    config: &SegmenterConfig,
) -> Result<Decision, Fault> {
    let frame = rule_frame(f);
    let Some(in_segment) = cuts.since_segment(frame) else {
        // The first frame of a run opens the first segment whatever the plugin says.
        return Ok(Decision::Segment);
    };
    let cut_point = cuts.is_cut_point(frame);
    match d {
        Decision::Segment if !cut_point => Err(Fault::InvalidAnswer(format!(
            "segment cut at a frame that is not a cut point (track {}, {:?}, keyframe {})",
            f.track, f.kind, f.keyframe
        ))),
        Decision::None | Decision::Fragment
            if cut_point && in_segment >= 2 * config.segment_length =>
        {
            Err(Fault::SegmentOverdue)
        }
        Decision::None if cuts.since_fragment(frame) >= 2 * config.max_fragment => {
            Err(Fault::FragmentOverdue)
        }
        d => Ok(d),
    }
}

/// What the cut rule sees of a frame.
fn rule_frame(f: &FrameInfo) -> Frame {
    Frame {
        dts: f.dts.0,
        video: f.kind == MediaKind::Video,
        keyframe: f.keyframe,
    }
}

impl From<Cut> for Decision {
    fn from(cut: Cut) -> Self {
        match cut {
            Cut::None => Decision::None,
            Cut::Fragment => Decision::Fragment,
            Cut::Segment => Decision::Segment,
        }
    }
}

impl From<Decision> for Cut {
    fn from(d: Decision) -> Self {
        match d {
            Decision::None => Cut::None,
            Decision::Fragment => Cut::Fragment,
            Decision::Segment => Cut::Segment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Ticks90k;

    /// The fallback's decisions (frame number, decision) for 25 fps video with a keyframe every
    /// `gop` frames, whose wall-clock timestamps run `slow_ppm` slow.
    fn fallback_cuts(frames: i64, gop: i64, slow_ppm: i64) -> Vec<(i64, Decision)> {
        let config = SegmenterConfig::new(30 * 90_000);
        let mut cuts = Cuts::default();
        let mut found = Vec::new();
        for i in 0..frames {
            let f = FrameInfo {
                track: 0,
                kind: MediaKind::Video,
                dts: Ticks90k(i * 3600 * (1_000_000 - slow_ppm) / 1_000_000),
                duration: 3600,
                keyframe: i % gop == 0,
                size: 1000,
            };
            let frame = rule_frame(&f);
            let d: Decision = cuts
                .decide(frame, config.segment_length, config.max_fragment)
                .into();
            cuts.record(d.into(), frame);
            if d != Decision::None {
                found.push((i, d));
            }
        }
        found
    }

    /// The fallback's first `count` fragment cuts, after the segment cut at frame 0.
    fn fallback_fragment_cuts(gop: i64, count: usize) -> Vec<i64> {
        let cuts = fallback_cuts(25 * 25, gop, 0).into_iter();
        let fragments = cuts.filter(|&(_, d)| d == Decision::Fragment);
        fragments.map(|(i, _)| i).take(count).collect()
    }

    #[test]
    fn the_fallback_cuts_segments_on_time_when_the_clock_slews() {
        // 25 fps, 1 s GOPs, wall time running 500 ppm slow: the keyframe at 30 s of media reads
        // 29.985 s and still closes the segment.
        let segments: Vec<i64> = (fallback_cuts(25 * 95, 25, 500).into_iter())
            .filter(|&(_, d)| d == Decision::Segment)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(segments, vec![0, 750, 1500, 2250]);
    }

    #[test]
    fn the_fallback_packs_gops_like_segmenter_gop() {
        assert_eq!(fallback_fragment_cuts(25, 3), vec![50, 100, 150]);
        assert_eq!(fallback_fragment_cuts(20, 3), vec![40, 80, 120]);
        assert_eq!(fallback_fragment_cuts(30, 3), vec![30, 60, 90]);
        assert_eq!(fallback_fragment_cuts(75, 4), vec![50, 75, 125, 150]);
    }
}
