//! Deletes entries that are already uploaded before any that are not, oldest first within each
//! group, until the incoming bytes fit. Keeps not-yet-uploaded media as long as possible.

use exports::mediagraph::plugin::evictor::{Budget, Entry, Guest};

wit_bindgen::generate!({ world: "evictor-plugin", path: "../../wit" });

struct EvictUploadedFirst;

impl Guest for EvictUploadedFirst {
    fn choose(mut entries: Vec<Entry>, budget: Budget) -> Vec<u64> {
        // Oldest by id (recording order), not by wall-clock start.
        entries.sort_by_key(|e| (!e.uploaded, e.id));
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

export!(EvictUploadedFirst);
