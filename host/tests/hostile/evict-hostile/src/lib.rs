//! An evictor whose answer is wrong in the way `limit-bytes % 10` names: 1 an unknown id,
//! 2 the same id twice, 3 far too little, 4 a huge list, 5 an endless loop.

use exports::mediagraph::plugin::evictor::{Budget, Entry, Guest};

wit_bindgen::generate!({ world: "evictor-plugin", path: "../../../../wit" });

struct Hostile;

impl Guest for Hostile {
    fn choose(entries: Vec<Entry>, budget: Budget) -> Vec<u64> {
        let first = entries.first().map_or(0, |e| e.id);
        match budget.limit_bytes % 10 {
            1 => vec![u64::MAX],
            2 => vec![first, first],
            3 => Vec::new(),
            4 => (0..500_000).collect(),
            5 => loop {
                std::hint::black_box(&entries);
            },
            _ => entries.iter().map(|e| e.id).collect(),
        }
    }
}

export!(Hostile);
