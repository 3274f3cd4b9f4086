//! The sandbox every plugin instance runs in: one process-wide wasmtime `Engine` that meters
//! guest work with fuel, a linker that offers WASI p2 with no capabilities, per-instance stores with a
//! memory cap, and compiled components cached in memory and (optionally) on disk.
//!
//! A compiled artifact is native code, so one on disk is loaded only when it carries an
//! HMAC-SHA256, under a key kept outside the plugin directory, over its name and bytes: whoever
//! can write the plugin directory can replace an artifact, but not make one this host accepts.
//! Anything else is ignored with a warning and recompiled from the `.wasm`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::Fault;
use crate::sync::LockExt;

/// Memory one plugin instance may use: all its linear memories and tables together.
pub(crate) const MEMORY_CAP: usize = 64 << 20;
/// What wasmtime spends per table element (a pointer).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();
/// Length of the artifact key and of the HMAC-SHA256 tag appended to each artifact.
const KEY_BYTES: usize = 32;
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
    limits: StoreBudget,
}

/// The store's memory cap, counted over every linear memory and table of the store together
/// (wasmtime's own `StoreLimits` caps each memory on its own, so a component with many core
/// instances could take the cap many times over). Memories and tables never shrink, so a
/// running total is exact. A refused growth traps, like `trap_on_grow_failure`.
#[derive(Default)]
struct StoreBudget {
    used: usize,
    /// The last growth granted, taken back if the allocation then fails.
    granted: usize,
}

impl StoreBudget {
    fn grow(&mut self, what: &str, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        let total = self.used.saturating_add(more);
        if total > MEMORY_CAP {
            return Err(wasmtime::Error::msg(format!(
                "plugin memory size limit: growing a {what} would bring the store to {total} bytes, \
                 over the {MEMORY_CAP} bytes all its memories and tables may use together"
            )));
        }
        self.used = total;
        self.granted = more;
        Ok(true)
    }

    fn failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= self.granted;
        self.granted = 0;
        Err(error.context("forcing a growth failure to be a trap"))
    }
}

impl ResourceLimiter for StoreBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Err(wasmtime::Error::msg(format!(
                "forcing trap when growing memory to {desired} bytes (past its maximum)"
            )));
        }
        self.grow("memory", current, desired)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Err(wasmtime::Error::msg(format!(
                "forcing trap when growing table to {desired} elements (past its maximum)"
            )));
        }
        let bytes = |n: usize| n.saturating_mul(TABLE_ELEMENT_BYTES);
        self.grow("table", bytes(current), bytes(desired))
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed(error)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
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
    /// from the on-disk `cache` (artifacts named by the wasm's SHA-256 and the engine's
    /// compatibility hash, each signed with the cache's key).
    pub(crate) fn component(
        &self,
        wasm: &[u8],
        cache: Option<&ArtifactCache>,
    ) -> Result<Component, String> {
        let hash: [u8; 32] = Sha256::digest(wasm).into();
        let name = self.artifact_name(&hash);
        let in_memory = self.compiled.lock_unpoisoned().get(&hash).cloned();
        if let Some(c) = in_memory {
            if let Some(cache) = cache.filter(|c| !c.dir.join(&name).exists()) {
                cache.keep(&c, &name);
            }
            return Ok(c);
        }
        let component = match cache.and_then(|c| c.load(&self.engine, &name)) {
            Some(c) => c,
            None => {
                let component = Component::new(&self.engine, wasm).map_err(|e| format!("{e:#}"))?;
                if let Some(cache) = cache {
                    cache.keep(&component, &name);
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
        let mut store = Store::new(
            &self.engine,
            Ctx {
                wasi,
                table: ResourceTable::new(),
                limits: StoreBudget::default(),
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

/// Compiled artifacts on disk, signed with a key that lives outside the plugin directory.
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    key_path: PathBuf,
    /// Read or created at the first compile, so listing or validating touches no file.
    key: OnceLock<Option<[u8; KEY_BYTES]>>,
}

impl ArtifactCache {
    /// The cache `<plugin_dir>/.compiled`, keyed by `<plugin_dir>.artifact-key` beside the
    /// plugin directory (created 0600 on first use).
    pub(crate) fn beside(plugin_dir: &Path) -> Option<Self> {
        let mut key_name = plugin_dir.file_name()?.to_owned();
        key_name.push(".artifact-key");
        Some(Self {
            dir: plugin_dir.join(".compiled"),
            key_path: plugin_dir.with_file_name(key_name),
            key: OnceLock::new(),
        })
    }

    /// The key; `None`, with one warning, when it cannot be made or is not private to this
    /// user: plugins are then compiled at each start.
    fn key(&self) -> Option<&[u8; KEY_BYTES]> {
        self.key
            .get_or_init(|| match read_or_create_key(&self.key_path) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::warn!(
                        "plugin artifacts are not cached on disk (plugins compile at each \
                         start): key {}: {e}",
                        self.key_path.display()
                    );
                    None
                }
            })
            .as_ref()
    }

    fn tag(key: &[u8; KEY_BYTES], name: &str, bytes: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(bytes);
        mac
    }

    fn load(&self, engine: &Engine, name: &str) -> Option<Component> {
        let key = self.key()?;
        let path = self.dir.join(name);
        let file = match std::fs::read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("ignoring plugin artifact {}: {e}", path.display());
                return None;
            }
        };
        let split = file.len().checked_sub(KEY_BYTES)?;
        let (bytes, tag) = file.split_at(split);
        if Self::tag(key, name, bytes).verify_slice(tag).is_err() {
            tracing::warn!(
                "ignoring plugin artifact {}: this host did not make it (its HMAC does not \
                 verify); recompiling from the .wasm",
                path.display()
            );
            return None;
        }
        // SAFETY: the bytes are in memory (no later swap of the file can reach them) and carry
        // an HMAC under this host's private key over exactly these bytes and this name, which
        // only `keep` below produces, from `Component::serialize` of this engine. wasmtime also
        // checks the engine compatibility and refuses (then we recompile) otherwise.
        match unsafe { Component::deserialize(engine, bytes) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("ignoring plugin artifact {}: {e:#}", path.display());
                None
            }
        }
    }

    /// A cache that cannot be written only costs a recompilation next time.
    fn keep(&self, component: &Component, name: &str) {
        let Some(key) = self.key() else {
            return;
        };
        let path = self.dir.join(name);
        if let Err(e) = self.store(key, component, name, &path) {
            tracing::warn!("plugin artifact cache {}: {e}", path.display());
        }
    }

    fn store(
        &self,
        key: &[u8; KEY_BYTES],
        component: &Component,
        name: &str,
        path: &Path,
    ) -> std::io::Result<()> {
        let mut bytes = component.serialize().map_err(std::io::Error::other)?;
        let tag = Self::tag(key, name, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        std::fs::create_dir_all(&self.dir)?;
        // Write-then-rename so a concurrent reader never sees half an artifact.
        let tmp: PathBuf = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

/// The artifact key at `path`: read if it is a regular file of this user that nobody else can
/// read or write, created (0600, atomically) if missing, refused otherwise.
fn read_or_create_key(path: &Path) -> std::io::Result<[u8; KEY_BYTES]> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let open = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let mut file = match open {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; KEY_BYTES] = rand::random();
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(format!(".tmp{}", std::process::id()));
            let tmp = PathBuf::from(tmp);
            let written = (|| {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                std::io::Write::write_all(&mut f, &key)?;
                f.sync_all()?;
                // A link never replaces: if another process made a key first, theirs is used.
                std::fs::hard_link(&tmp, path)
            })();
            let _ = std::fs::remove_file(&tmp);
            return match written {
                Ok(()) => Ok(key),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_or_create_key(path),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "must be a regular file owned by uid {me} with mode 0600 (it is uid {}, mode {:o})",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    let mut key = [0u8; KEY_BYTES];
    file.read_exact(&mut key)?;
    if file.read(&mut [0u8])? != 0 {
        return Err(std::io::Error::other(format!(
            "must hold exactly {KEY_BYTES} bytes"
        )));
    }
    Ok(key)
}

/// A compiled plugin ready to instantiate in the shared runtime.
#[derive(Clone)]
pub(crate) struct Compiled {
    pub(crate) runtime: &'static Runtime,
    pub(crate) pre: Arc<InstancePre<Ctx>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component of three core instances, each with its own memory, and an export
    /// `run(pages: u32) -> s32` that grows each memory by `pages` and sums the old sizes.
    fn three_memories() -> Vec<u8> {
        use wasm_encoder::{
            CodeSection, ComponentBuilder, ComponentExportKind, ComponentValType, EntityType,
            ExportKind, ExportSection, Function, FunctionSection, ImportSection, Instruction,
            MemorySection, MemoryType, Module, ModuleArg, PrimitiveValType, TypeSection, ValType,
        };
        let i32_to_i32 = || {
            let mut types = TypeSection::new();
            types.ty().function([ValType::I32], [ValType::I32]);
            types
        };
        let mut grower = Module::new();
        grower.section(&i32_to_i32());
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        grower.section(&funcs);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        grower.section(&memories);
        let mut exports = ExportSection::new();
        exports.export("grow", ExportKind::Func, 0);
        grower.section(&exports);
        let mut code = CodeSection::new();
        let mut grow = Function::new([]);
        grow.instruction(&Instruction::LocalGet(0))
            .instruction(&Instruction::MemoryGrow(0))
            .instruction(&Instruction::End);
        code.function(&grow);
        grower.section(&code);

        let names = ["a", "b", "c"];
        let mut main = Module::new();
        main.section(&i32_to_i32());
        let mut imports = ImportSection::new();
        for n in names {
            imports.import(n, "grow", EntityType::Function(0));
        }
        main.section(&imports);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        main.section(&funcs);
        let mut exports = ExportSection::new();
        exports.export("run", ExportKind::Func, 3);
        main.section(&exports);
        let mut code = CodeSection::new();
        let mut run = Function::new([]);
        for (i, _) in names.iter().enumerate() {
            run.instruction(&Instruction::LocalGet(0))
                .instruction(&Instruction::Call(i as u32));
            if i > 0 {
                run.instruction(&Instruction::I32Add);
            }
        }
        run.instruction(&Instruction::End);
        code.function(&run);
        main.section(&code);

        let mut c = ComponentBuilder::default();
        let grower = c.core_module(None, &grower);
        let main = c.core_module(None, &main);
        let instances: Vec<u32> = names
            .iter()
            .map(|_| c.core_instantiate(None, grower, Vec::<(&str, ModuleArg)>::new()))
            .collect();
        let args: Vec<(&str, ModuleArg)> = names
            .iter()
            .zip(&instances)
            .map(|(n, i)| (*n, ModuleArg::Instance(*i)))
            .collect();
        let main = c.core_instantiate(None, main, args);
        let core_run = c.core_alias_export(None, main, "run", ExportKind::Func);
        let (ty, mut f) = c.type_function(None);
        f.params([("pages", ComponentValType::Primitive(PrimitiveValType::U32))])
            .result(Some(ComponentValType::Primitive(PrimitiveValType::S32)));
        let run = c.lift_func(None, core_run, ty, []);
        c.export("run", ComponentExportKind::Func, run, None);
        c.finish()
    }

    #[test]
    fn the_artifact_key_is_created_private_and_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugins.artifact-key");
        let key = read_or_create_key(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_BYTES as u64);
        assert_eq!(
            read_or_create_key(&path).unwrap(),
            key,
            "the same key next time"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_or_create_key(&path).unwrap_err().to_string();
        assert!(err.contains("mode 0600 (it is uid"), "{err}");
        let link = dir.path().join("link.artifact-key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(
            read_or_create_key(&link).is_err(),
            "a symlink is not followed"
        );
    }

    /// Three memories grown by 25 MiB each: every memory stays below the cap, the three
    /// together do not.
    #[test]
    fn the_memory_cap_holds_for_all_memories_of_a_store_together() {
        let rt = Runtime::get().unwrap();
        let component = Component::new(&rt.engine, three_memories()).unwrap();
        let run = |pages: u32| {
            let mut store = rt.store();
            let instance = rt.linker.instantiate(&mut store, &component).unwrap();
            let run = instance
                .get_typed_func::<(u32,), (i32,)>(&mut store, "run")
                .unwrap();
            arm(&mut store);
            run.call(&mut store, (pages,)).map(|(old,)| old)
        };
        // 3 × 16 MiB fit: each grow returns the old size, one page.
        assert_eq!(run(256).unwrap(), 3);
        // 3 × 25 MiB do not, although each memory alone would.
        let err = run(400).unwrap_err();
        assert_eq!(classify(&err), Fault::MemoryExhausted, "{err:#}");
        assert!(
            format!("{err:#}").contains("all its memories and tables"),
            "{err:#}"
        );
    }
}
