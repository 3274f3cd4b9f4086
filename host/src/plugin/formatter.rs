//! The per-sink formatter: asks the plugin for the byte layout of segment headers and
//! fragments, and verifies every plan (payload ranges inside the samples, bounded inline bytes).
//!
//! Containment keeps files whole: on a fault the instance is replaced, `init` is replayed to it
//! and the call is retried once. If `fragment` fails again, the formatter switches to the
//! embedded default (`format-cmaf`) and returns [`PluginError::Fault`]: the caller ends the
//! segment after its last good fragment and starts a new one with `init` (then passes the same
//! samples again), so no file mixes two layouts. If `init` fails twice, the default answers it.

use std::sync::Arc;

use wasmtime::Store;

use super::runtime::{self, Compiled, Ctx};
use super::types::{FormatInfo, PayloadRange, Piece, Sample, Track};
use super::{Fault, PluginError, PluginInfo, Reporter};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "formatter-plugin",
        with: { "mediagraph:plugin/types": super::super::wit::types },
    });
}

use super::wit::types as wit_types;
use bindings::exports::mediagraph::plugin::formatter as wit;

/// Inline bytes an `init` plan may carry (a moov with codec configs is a few KiB).
const MAX_INIT_BYTES: usize = 1 << 20;
/// Inline bytes a `fragment` plan may carry beyond this allowance per sample.
const MAX_FRAGMENT_BASE_BYTES: usize = 64 << 10;
const MAX_FRAGMENT_BYTES_PER_SAMPLE: usize = 256;

struct Live {
    store: Store<Ctx>,
    bindings: bindings::FormatterPlugin,
}

/// One plugin the formatter can run: its identity, how to instantiate it, its format.
struct Slot {
    plugin: Arc<PluginInfo>,
    pre: bindings::FormatterPluginPre<Ctx>,
    runtime: &'static runtime::Runtime,
    info: FormatInfo,
}

pub struct Formatter {
    current: Slot,
    /// The embedded default, used once `current` has failed twice in a row.
    fallback: Option<Slot>,
    live: Option<Live>,
    tracks: Option<Vec<Track>>,
    reporter: Reporter,
}

impl Formatter {
    pub(crate) fn new(
        chosen: (Arc<PluginInfo>, Compiled),
        fallback: (Arc<PluginInfo>, Compiled),
        reporter: Reporter,
    ) -> Result<Self, PluginError> {
        let same = chosen.0.name == fallback.0.name;
        let (current, live) = Slot::new(chosen.0, chosen.1)?;
        let fallback = if same {
            None
        } else {
            Some(Slot::new(fallback.0, fallback.1)?.0)
        };
        Ok(Self {
            current,
            fallback,
            live: Some(live),
            tracks: None,
            reporter,
        })
    }

    /// The plugin currently formatting (after a switch: the default).
    pub fn plugin(&self) -> &str {
        &self.current.plugin.name
    }

    /// Extension and content type of the files this formatter produces now.
    pub fn info(&self) -> &FormatInfo {
        &self.current.info
    }

    /// The header of a new segment.
    pub fn init(&mut self, tracks: &[Track]) -> Result<Vec<Piece>, PluginError> {
        self.tracks = Some(tracks.to_vec());
        let first = self.try_init(tracks);
        let fault = match first {
            Ok(p) => return Ok(p),
            Err(f) => f,
        };
        self.reporter.fault(
            &self.current.plugin,
            &fault,
            "instance replaced; init retried once",
        );
        let again = match self.try_init(tracks) {
            Ok(p) => return Ok(p),
            Err(f) => f,
        };
        if !self.switch_to_fallback(&again) {
            return Err(self.error(again));
        }
        self.try_init(tracks).map_err(|f| self.error(f))
    }

    /// One fragment (`sequence` counts from 1 within the segment) of `samples`, in decode order.
    pub fn fragment(
        &mut self,
        sequence: u32,
        samples: &[Sample],
    ) -> Result<Vec<Piece>, PluginError> {
        let fault = match self.try_fragment(sequence, samples) {
            Ok(p) => return Ok(p),
            Err(f) => f,
        };
        self.reporter.fault(
            &self.current.plugin,
            &fault,
            "instance replaced; init replayed and the fragment retried once",
        );
        let retried = self
            .replay_init()
            .and_then(|_| self.try_fragment(sequence, samples));
        match retried {
            Ok(p) => Ok(p),
            Err(again) => {
                self.switch_to_fallback(&again);
                Err(self.error(again))
            }
        }
    }

    fn error(&self, fault: Fault) -> PluginError {
        PluginError::Fault {
            plugin: self.current.plugin.name.clone(),
            fault,
        }
    }

    /// Makes the default the current formatter; `false` if the default is what failed.
    fn switch_to_fallback(&mut self, fault: &Fault) -> bool {
        let Some(fallback) = self.fallback.take() else {
            return false;
        };
        self.reporter.fault(
            &self.current.plugin,
            fault,
            &format!(
                "failed twice in a row; {} formats from the next segment on (the current segment ends at its last good fragment)",
                fallback.plugin.name
            ),
        );
        self.current = fallback;
        self.live = None;
        true
    }

    fn live(&mut self) -> Result<&mut Live, Fault> {
        if self.live.is_none() {
            self.live = Some(self.current.instantiate()?);
        }
        Ok(self.live.as_mut().expect("just set"))
    }

    fn try_init(&mut self, tracks: &[Track]) -> Result<Vec<Piece>, Fault> {
        let wit_tracks: Vec<wit_types::Track> = tracks.iter().map(wit_types::Track::from).collect();
        let result = self.live().and_then(|live| {
            runtime::arm(&mut live.store);
            live.bindings
                .mediagraph_plugin_formatter()
                .call_init(&mut live.store, &wit_tracks)
                .map_err(|e| runtime::classify(&e))?
                .map_err(|m| Fault::InvalidAnswer(format!("init refused: {m}")))
        });
        let result = result.and_then(|plan| verify(plan, &[], MAX_INIT_BYTES));
        if result.is_err() {
            self.live = None;
        }
        result
    }

    /// Brings a fresh instance to the state the failed one had: it has seen `init`.
    fn replay_init(&mut self) -> Result<(), Fault> {
        match self.tracks.clone() {
            Some(tracks) => self.try_init(&tracks).map(drop),
            None => Ok(()),
        }
    }

    fn try_fragment(&mut self, sequence: u32, samples: &[Sample]) -> Result<Vec<Piece>, Fault> {
        let wit_samples: Vec<wit::Sample> = samples
            .iter()
            .map(|s| wit::Sample {
                track: s.track,
                decode_time: s.decode_time,
                composition_offset: s.composition_offset,
                duration: s.duration,
                keyframe: s.keyframe,
                size: s.size,
            })
            .collect();
        let result = self.live().and_then(|live| {
            runtime::arm(&mut live.store);
            live.bindings
                .mediagraph_plugin_formatter()
                .call_fragment(&mut live.store, sequence, &wit_samples)
                .map_err(|e| runtime::classify(&e))?
                .map_err(|m| Fault::InvalidAnswer(format!("fragment refused: {m}")))
        });
        let cap = MAX_FRAGMENT_BASE_BYTES
            .saturating_add(samples.len().saturating_mul(MAX_FRAGMENT_BYTES_PER_SAMPLE));
        let result = result.and_then(|plan| verify(plan, samples, cap));
        if result.is_err() {
            self.live = None;
        }
        result
    }
}

impl Slot {
    fn new(plugin: Arc<PluginInfo>, compiled: Compiled) -> Result<(Self, Live), PluginError> {
        let pre = bindings::FormatterPluginPre::new((*compiled.pre).clone()).map_err(|e| {
            PluginError::NotAPlugin {
                plugin: plugin.name.clone(),
                reason: format!("{e:#}"),
            }
        })?;
        let mut slot = Slot {
            plugin,
            pre,
            runtime: compiled.runtime,
            info: FormatInfo {
                extension: String::new(),
                content_type: String::new(),
            },
        };
        let fault = |fault| PluginError::Fault {
            plugin: slot.plugin.name.clone(),
            fault,
        };
        let mut live = slot.instantiate().map_err(fault)?;
        runtime::arm(&mut live.store);
        let info = live
            .bindings
            .mediagraph_plugin_formatter()
            .call_info(&mut live.store)
            .map_err(|e| runtime::classify(&e))
            .and_then(check_info)
            .map_err(fault)?;
        slot.info = info;
        Ok((slot, live))
    }

    fn instantiate(&self) -> Result<Live, Fault> {
        let mut store = self.runtime.store();
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| Fault::Instantiate(format!("{e:#}")))?;
        Ok(Live { store, bindings })
    }
}

/// The extension becomes part of file and blob names, so it is held to a safe alphabet.
fn check_info(info: wit::FormatInfo) -> Result<FormatInfo, Fault> {
    let ext_ok = !info.extension.is_empty()
        && info.extension.len() <= 16
        && info.extension.chars().all(|c| c.is_ascii_alphanumeric());
    if !ext_ok {
        return Err(Fault::InvalidAnswer(format!(
            "file extension {:?} must be 1-16 ASCII letters or digits",
            info.extension
        )));
    }
    let ct_ok = info.content_type.len() <= 128
        && info.content_type.contains('/')
        && info
            .content_type
            .chars()
            .all(|c| c.is_ascii_graphic() || c == ' ');
    if !ct_ok {
        return Err(Fault::InvalidAnswer(format!(
            "content type {:?} is not a media type",
            info.content_type
        )));
    }
    Ok(FormatInfo {
        extension: info.extension,
        content_type: info.content_type,
    })
}

fn verify(
    plan: Vec<wit::Piece>,
    samples: &[Sample],
    max_inline: usize,
) -> Result<Vec<Piece>, Fault> {
    let mut inline = 0usize;
    let mut pieces = Vec::with_capacity(plan.len());
    // Media is never dropped or duplicated by a plan: each sample's payload is referenced
    // exactly once, in order, byte for byte. `spliced[i]` is where sample i's next range must start.
    let mut spliced = vec![0u32; samples.len()];
    for piece in plan {
        match piece {
            wit::Piece::Bytes(b) => {
                inline = inline.saturating_add(b.len());
                if inline > max_inline {
                    return Err(Fault::InvalidAnswer(format!(
                        "plan carries more than {max_inline} inline bytes"
                    )));
                }
                pieces.push(Piece::Bytes(b));
            }
            wit::Piece::Payload(r) => {
                let Some(sample) = samples.get(r.sample as usize) else {
                    return Err(Fault::InvalidAnswer(format!(
                        "payload range names sample {} of {}",
                        r.sample,
                        samples.len()
                    )));
                };
                let end = u64::from(r.offset) + u64::from(r.length);
                if end > u64::from(sample.size) {
                    return Err(Fault::InvalidAnswer(format!(
                        "payload range {}..{end} exceeds sample {} of {} bytes",
                        r.offset, r.sample, sample.size
                    )));
                }
                let next = &mut spliced[r.sample as usize];
                if r.offset != *next {
                    return Err(Fault::InvalidAnswer(format!(
                        "payload range {}..{end} of sample {} does not continue at byte {}",
                        r.offset, r.sample, *next
                    )));
                }
                *next = end as u32;
                pieces.push(Piece::Payload(PayloadRange {
                    sample: r.sample,
                    offset: r.offset,
                    length: r.length,
                }));
            }
        }
    }
    if let Some((i, (done, sample))) = spliced
        .iter()
        .zip(samples)
        .enumerate()
        .find(|(_, (done, sample))| **done != sample.size)
    {
        return Err(Fault::InvalidAnswer(format!(
            "plan splices {done} of the {} payload bytes of sample {i}",
            sample.size
        )));
    }
    Ok(pieces)
}
