//! A formatter whose fragments are wrong in the way the first track's `width % 10` names:
//! 0 no payload at all (the media silently dropped), 1 a payload range past the end of its sample, 2 a range naming a sample that does not exist,
//! 3 a megabyte of inline bytes, 4 a trap. `init` always succeeds.

use std::cell::Cell;

use exports::mediagraph::plugin::formatter::{FormatInfo, Guest, PayloadRange, Piece, Sample};
use mediagraph::plugin::types::Track;

wit_bindgen::generate!({ world: "formatter-plugin", path: "../../../../wit" });

thread_local! {
    static MODE: Cell<u32> = const { Cell::new(0) };
}

struct Hostile;

impl Guest for Hostile {
    fn info() -> FormatInfo {
        FormatInfo {
            extension: "bin".into(),
            content_type: "application/octet-stream".into(),
        }
    }

    fn init(tracks: Vec<Track>) -> Result<Vec<Piece>, String> {
        MODE.set(tracks.first().map_or(0, |t| t.width % 10));
        Ok(vec![Piece::Bytes(b"HOSTILE".to_vec())])
    }

    fn fragment(_sequence: u32, samples: Vec<Sample>) -> Result<Vec<Piece>, String> {
        let size = samples.first().map_or(0, |s| s.size);
        match MODE.get() {
            1 => Ok(vec![Piece::Payload(PayloadRange {
                sample: 0,
                offset: 1,
                length: size,
            })]),
            2 => Ok(vec![Piece::Payload(PayloadRange {
                sample: samples.len() as u32,
                offset: 0,
                length: 1,
            })]),
            3 => Ok(vec![Piece::Bytes(vec![0; 1 << 20])]),
            4 => unreachable!("hostile formatter traps on purpose"),
            _ => Ok(Vec::new()),
        }
    }
}

export!(Hostile);
