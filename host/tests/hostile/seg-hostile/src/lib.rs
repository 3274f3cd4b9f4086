//! A segmenter that behaves for four frames, then misbehaves in the way its configuration
//! names: `max-fragment % 100` = 1 loops forever, 2 allocates without bound, 3 panics, 4 never
//! cuts, 5 cuts a segment at every frame, 6 sleeps (a blocking host call).

use std::cell::Cell;

use exports::mediagraph::plugin::segmenter::{Config, Decision, Guest};
use mediagraph::plugin::types::FrameInfo;

wit_bindgen::generate!({ world: "segmenter-plugin", path: "../../../../wit" });

thread_local! {
    static MODE: Cell<u64> = const { Cell::new(0) };
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

struct Hostile;

impl Guest for Hostile {
    fn configure(config: Config) -> Result<(), String> {
        MODE.set(config.max_fragment % 100);
        Ok(())
    }

    fn on_frame(_frame: FrameInfo) -> Decision {
        let seen = SEEN.get();
        SEEN.set(seen + 1);
        if seen == 0 {
            return Decision::Segment;
        }
        if seen < 4 {
            return Decision::None;
        }
        match MODE.get() {
            1 => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            2 => {
                // Untouched capacity: memory grows 8 MiB at a time without spending time on
                // writes, so the cap, not the deadline, stops it.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(Vec::with_capacity(8 << 20));
                    std::hint::black_box(&hoard);
                }
            }
            3 => panic!("hostile segmenter panics on purpose"),
            4 => Decision::None,
            5 => Decision::Segment,
            6 => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Decision::None
            }
            _ => Decision::None,
        }
    }
}

export!(Hostile);
