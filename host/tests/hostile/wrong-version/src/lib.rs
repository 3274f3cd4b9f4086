//! A segmenter built against a future, incompatible version of the plugin interface.

use exports::mediagraph::plugin::segmenter::{Config, Decision, Guest};
use mediagraph::plugin::types::FrameInfo;

wit_bindgen::generate!({ world: "segmenter-plugin", path: "wit" });

struct Future;

impl Guest for Future {
    fn configure(_config: Config) -> Result<(), String> {
        Ok(())
    }

    fn on_frame(_frame: FrameInfo) -> Decision {
        Decision::None
    }
}

export!(Future);
