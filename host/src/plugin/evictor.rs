//! The per-cache evictor: asks the plugin which entries to delete and verifies the answer
//! (known ids, no repeats, enough freed, not far more than enough). A fault or a bad answer is reported and LVA's rule,
//! oldest first, answers instead.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use wasmtime::Store;

use super::runtime::{self, Compiled, Ctx};
use super::types::{Budget, CacheEntry};
use super::{Fault, PluginError, PluginInfo, Reporter};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "evictor-plugin",
        with: { "mediagraph:plugin/types": super::super::wit::types },
    });
}

use bindings::exports::mediagraph::plugin::evictor as wit;

const RECOVERY: &str = "instance replaced; this answer came from the built-in oldest-first rule";

struct Live {
    store: Store<Ctx>,
    bindings: bindings::EvictorPlugin,
}

pub struct Evictor {
    plugin: Arc<PluginInfo>,
    pre: bindings::EvictorPluginPre<Ctx>,
    runtime: &'static runtime::Runtime,
    reporter: Reporter,
    live: Option<Live>,
}

impl Evictor {
    pub(crate) fn new(
        plugin: Arc<PluginInfo>,
        compiled: Compiled,
        reporter: Reporter,
    ) -> Result<Self, PluginError> {
        let pre = bindings::EvictorPluginPre::new((*compiled.pre).clone()).map_err(|e| {
            PluginError::NotAPlugin {
                plugin: plugin.name.clone(),
                reason: format!("{e:#}"),
            }
        })?;
        let mut e = Self {
            plugin,
            pre,
            runtime: compiled.runtime,
            reporter,
            live: None,
        };
        e.live = Some(e.instantiate().map_err(|fault| PluginError::Fault {
            plugin: e.plugin.name.clone(),
            fault,
        })?);
        Ok(e)
    }

    pub fn plugin(&self) -> &str {
        &self.plugin.name
    }

    /// The ids to delete so that `budget.incoming_bytes` fit. Never fails: faults are reported
    /// and oldest-first answers.
    pub fn choose(&mut self, entries: &[CacheEntry], budget: Budget) -> Vec<u64> {
        let answer = match self.live.as_mut() {
            Some(live) => call(live, entries, budget),
            None => self.instantiate().and_then(|mut live| {
                let answer = call(&mut live, entries, budget);
                self.live = Some(live);
                answer
            }),
        };
        match answer.and_then(|ids| verify(ids, entries, budget)) {
            Ok(ids) => ids,
            Err(fault) => {
                self.reporter.fault(&self.plugin, &fault, RECOVERY);
                // A trapped store is unusable; even after a bad answer a clean start is cheap.
                self.live = self.instantiate().ok();
                oldest_first(entries, budget)
            }
        }
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

fn call(live: &mut Live, entries: &[CacheEntry], budget: Budget) -> Result<Vec<u64>, Fault> {
    runtime::arm(&mut live.store);
    let entries: Vec<wit::Entry> = entries
        .iter()
        .map(|e| wit::Entry {
            id: e.id,
            start: e.start.0,
            end: e.end.0,
            bytes: e.bytes,
            uploaded: e.uploaded,
        })
        .collect();
    let budget = wit::Budget {
        limit_bytes: budget.limit_bytes,
        used_bytes: budget.used_bytes,
        incoming_bytes: budget.incoming_bytes,
    };
    live.bindings
        .mediagraph_plugin_evictor()
        .call_choose(&mut live.store, &entries, budget)
        .map_err(|e| runtime::classify(&e))
}

/// Only known ids, each once, and enough freed (or everything, if even that is not enough) but
/// not far more: an answer that would still free enough without its largest entry deletes
/// media for nothing, a bug (e.g. "every entry") that would wipe the cache at each call. Any
/// rule that picks entries in its own order until enough is freed stays below that bound.
fn verify(ids: Vec<u64>, entries: &[CacheEntry], budget: Budget) -> Result<Vec<u64>, Fault> {
    let sizes: HashMap<u64, u64> = entries.iter().map(|e| (e.id, e.bytes)).collect();
    let mut seen = HashSet::with_capacity(ids.len());
    let mut freed: u64 = 0;
    let mut largest: u64 = 0;
    for &id in &ids {
        let Some(bytes) = sizes.get(&id) else {
            return Err(Fault::InvalidAnswer(format!("unknown cache entry id {id}")));
        };
        if !seen.insert(id) {
            return Err(Fault::InvalidAnswer(format!(
                "cache entry id {id} named twice"
            )));
        }
        freed = freed.saturating_add(*bytes);
        largest = largest.max(*bytes);
    }
    let total: u64 = sizes.values().fold(0, |a, b| a.saturating_add(*b));
    let needed = budget.excess().min(total);
    if freed < needed {
        return Err(Fault::InvalidAnswer(format!(
            "frees {freed} bytes but {needed} must be freed"
        )));
    }
    if freed > needed && freed - largest >= needed {
        return Err(Fault::InvalidAnswer(format!(
            "frees {freed} bytes where {needed} must be freed: {} entries, and even without \
             the largest ({largest} bytes) it frees enough",
            ids.len()
        )));
    }
    Ok(ids)
}

/// LVA's rule: oldest first until the incoming bytes fit. Oldest by id, the cache's recording
/// order: wall-clock starts go back when the clock steps back.
pub(crate) fn oldest_first(entries: &[CacheEntry], budget: Budget) -> Vec<u64> {
    let mut sorted: Vec<&CacheEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.id);
    let mut over = budget.excess();
    let mut victims = Vec::new();
    for e in sorted {
        if over == 0 {
            break;
        }
        over = over.saturating_sub(e.bytes);
        victims.push(e.id);
    }
    victims
}
