//! The sandbox every plugin instance runs in: one process-wide wasmtime `Engine` that meters
//! guest work with fuel, a linker that offers WASI p2 with no capabilities, per-instance stores with a
//! memory cap, and compiled components cached in memory and (optionally) on disk.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::Fault;
use crate::sync::LockExt;

/// Memory one plugin instance may use (linear memories and tables together stay far below).
pub(crate) const MEMORY_CAP: usize = 64 << 20;
/// Fuel (about one unit per wasm instruction) a call may burn: some 50–200 ms of guest work on
/// this class of machine, while a default plugin call needs a few thousand units. Fuel, not
/// an epoch deadline: it needs no ticker thread waking the recorder 100 times a second, and a
/// busy or descheduled host cannot turn a healthy call into a fault.
const CALL_FUEL: u64 = 200_000_000;
/// Instantiation may run guest start-up code; it gets more room than a call.
const INSTANTIATE_FUEL: u64 = 1_000_000_000;

/// What each store holds: a WASI context that grants nothing, and the memory limiter.
pub(crate) struct Ctx {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A clock stuck at the epoch: plugins decide from the times the host hands them, never from
/// the host's clock.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The process-wide engine, linker and compiled-component cache.
pub(crate) struct Runtime {
    engine: Engine,
    linker: Linker<Ctx>,
    compiled: Mutex<HashMap<[u8; 32], Component>>,
}

impl Runtime {
    /// The shared runtime; the first call builds the engine.
    pub(crate) fn get() -> Result<&'static Runtime, String> {
        static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
        RUNTIME
            .get_or_init(|| Runtime::build().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn build() -> wasmtime::Result<Runtime> {
        let mut config = Config::new();
        config.consume_fuel(true);
        // Plugin calls are synchronous; without the async machinery a call costs ~3x less.
        config.concurrency_support(false);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        // Guests built with std import wasi:cli/io/filesystem; they link, but the context below
        // grants no directories, sockets, environment, arguments or clocks.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // Blocking on a pollable would hold the host thread inside a host call, where fuel is
        // not burnt, so waiting is refused outright.
        linker.allow_shadowing(true);
        let mut poll = linker.instance("wasi:io/poll@0.2.12")?;
        for name in ["poll", "[method]pollable.block"] {
            poll.func_new(name, |_, _, _, _| {
                Err(wasmtime::Error::msg("plugins may not block (wasi:io/poll)"))
            })?;
        }

        Ok(Runtime {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// Compiles `wasm`, or reuses an earlier compilation of the same bytes: from memory, else
    /// from `cache_dir` (serialized artifacts named by the wasm's SHA-256 and the engine's
    /// compatibility hash).
    pub(crate) fn component(
        &self,
        wasm: &[u8],
        cache_dir: Option<&Path>,
    ) -> Result<Component, String> {
        let hash: [u8; 32] = Sha256::digest(wasm).into();
        let artifact = cache_dir.map(|dir| dir.join(self.artifact_name(&hash)));
        let in_memory = self.compiled.lock_unpoisoned().get(&hash).cloned();
        if let Some(c) = in_memory {
            if let Some(path) = artifact.as_deref().filter(|p| !p.exists()) {
                keep_artifact(&c, path);
            }
            return Ok(c);
        }
        let component = match artifact.as_deref().and_then(|p| self.load_artifact(p)) {
            Some(c) => c,
            None => {
                let component = Component::new(&self.engine, wasm).map_err(|e| format!("{e:#}"))?;
                if let Some(path) = &artifact {
                    keep_artifact(&component, path);
                }
                component
            }
        };
        self.compiled
            .lock_unpoisoned()
            .insert(hash, component.clone());
        Ok(component)
    }

    fn artifact_name(&self, hash: &[u8; 32]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}-{:016x}.cwasm", h.finish())
    }

    fn load_artifact(&self, path: &Path) -> Option<Component> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: the artifact cache lives in the host's own data directory, written only by
        // `store_artifact` below; wasmtime checks that it was produced by a compatible engine
        // and falls back to an error (then we recompile) otherwise.
        match unsafe { Component::deserialize_file(&self.engine, path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("ignoring plugin artifact {}: {e:#}", path.display());
                None
            }
        }
    }

    pub(crate) fn instance_pre(&self, component: &Component) -> Result<InstancePre<Ctx>, String> {
        self.linker
            .instantiate_pre(component)
            .map_err(|e| format!("{e:#}"))
    }

    /// A fresh store for one plugin instance: no capabilities, capped memory, fuel enough
    /// to instantiate.
    pub(crate) fn store(&self) -> Store<Ctx> {
        let wasi = WasiCtx::builder()
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(MEMORY_CAP)
            .instances(64)
            .tables(64)
            .memories(16)
            .table_elements(1 << 20)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            Ctx {
                wasi,
                table: ResourceTable::new(),
                limits,
            },
        );
        store.limiter(|ctx| &mut ctx.limits);
        store
            .set_fuel(INSTANTIATE_FUEL)
            .expect("the engine consumes fuel");
        store
    }
}

/// Refuels for one call; every call starts with the same budget.
pub(crate) fn arm(store: &mut Store<Ctx>) {
    store.set_fuel(CALL_FUEL).expect("the engine consumes fuel");
}

/// Names what went wrong in a failed wasmtime call.
pub(crate) fn classify(err: &wasmtime::Error) -> Fault {
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Fault::Timeout,
        _ => {
            let text = format!("{err:#}");
            if text.contains("forcing trap when growing memory")
                || text.contains("memory size limit")
            {
                Fault::MemoryExhausted
            } else {
                Fault::Trap(text)
            }
        }
    }
}

/// A cache that cannot be written only costs a recompilation next time.
fn keep_artifact(component: &Component, path: &Path) {
    if let Err(e) = store_artifact(component, path) {
        tracing::warn!("plugin artifact cache {}: {e}", path.display());
    }
}

fn store_artifact(component: &Component, path: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write-then-rename so a concurrent reader never sees half an artifact.
    let tmp: PathBuf = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A compiled plugin ready to instantiate in the shared runtime.
#[derive(Clone)]
pub(crate) struct Compiled {
    pub(crate) runtime: &'static Runtime,
    pub(crate) pre: Arc<InstancePre<Ctx>>,
}
