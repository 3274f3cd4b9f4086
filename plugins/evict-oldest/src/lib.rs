//! LVA's eviction rule: delete the oldest entries first until the incoming bytes fit.

use exports::mediagraph::plugin::evictor::{Budget, Entry, Guest};

wit_bindgen::generate!({ world: "evictor-plugin", path: "../../wit" });

struct EvictOldest;

impl Guest for EvictOldest {
    fn choose(mut entries: Vec<Entry>, budget: Budget) -> Vec<u64> {
        // Ids are the cache's recording order; start times are wall-clock and go back when
        // the clock steps back.
        entries.sort_by_key(|e| e.id);
        let mut over =
            (budget.used_bytes + budget.incoming_bytes).saturating_sub(budget.limit_bytes);
        let mut victims = Vec::new();
        for e in entries {
            if over == 0 {
                break;
            }
            over = over.saturating_sub(e.bytes);
            victims.push(e.id);
        }
        victims
    }
}

export!(EvictOldest);
