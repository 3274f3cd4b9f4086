//! The WebAssembly plugin platform: decisions (segment cuts, evictions, container layout) are
//! made by components implementing the worlds of `wit/plugin.wit`, run in a sandbox.
//!
//! Owns: the shared wasmtime engine and compiled-component cache, plugin discovery (embedded
//! defaults + the plugin directory), the per-node wrappers [`Segmenter`], [`Evictor`] and
//! [`Formatter`], and fault containment (a failing plugin emits a `PluginFault` event, its
//! instance is replaced, and a built-in fallback answers so recording continues).
//!
//! Must not: do media I/O, touch the cache or decide policy itself beyond the fallbacks; grant a
//! plugin files, sockets, environment or clocks; let a plugin's answer through unchecked.

pub mod cli;
mod evictor;
mod formatter;
pub(crate) mod registry;
mod runtime;
mod segmenter;
pub mod types;
mod wit;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use evictor::Evictor;
pub use formatter::Formatter;
pub use registry::{PluginInfo, PluginSource, Rejected, WIT_PACKAGE, WIT_VERSION};
pub use segmenter::Segmenter;
pub use types::SegmenterConfig;

use crate::events::{Event, EventBus, catalog};
pub use crate::topology::PluginKind;
use crate::topology::PluginLookup;
use runtime::{ArtifactCache, Compiled, Runtime};

/// How a plugin misbehaved in one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The guest trapped (panic, unreachable, a refused host call...).
    Trap(String),
    /// The call burnt its whole fuel budget (an endless or runaway computation).
    Timeout,
    /// The guest tried to grow its memory past the cap.
    MemoryExhausted,
    /// The call returned, but the answer breaks the contract.
    InvalidAnswer(String),
    /// The segmenter let a cut point pass although the segment is twice its length.
    SegmentOverdue,
    /// The segmenter kept a fragment open for twice the maximum fragment length.
    FragmentOverdue,
    /// A fresh instance could not be created or configured.
    Instantiate(String),
}

impl Fault {
    /// A short machine-readable name, used in events.
    pub fn code(&self) -> &'static str {
        match self {
            Fault::Trap(_) => "trap",
            Fault::Timeout => "timeout",
            Fault::MemoryExhausted => "memoryExhausted",
            Fault::InvalidAnswer(_) => "invalidAnswer",
            Fault::SegmentOverdue => "segmentOverdue",
            Fault::FragmentOverdue => "fragmentOverdue",
            Fault::Instantiate(_) => "instantiate",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Trap(m) => write!(f, "trapped: {m}"),
            Fault::Timeout => f.write_str("ran out of its per-call fuel (runaway computation)"),
            Fault::MemoryExhausted => write!(
                f,
                "exceeded its memory cap of {} MiB",
                runtime::MEMORY_CAP >> 20
            ),
            Fault::InvalidAnswer(m) => write!(f, "returned an invalid answer: {m}"),
            Fault::SegmentOverdue => {
                f.write_str("did not cut a segment within twice segmentLength")
            }
            Fault::FragmentOverdue => {
                f.write_str("did not cut a fragment within twice the maximum fragment length")
            }
            Fault::Instantiate(m) => write!(f, "could not be instantiated: {m}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("unknown {kind} plugin {name:?} (known: {known})")]
    NotFound {
        name: String,
        kind: PluginKind,
        known: String,
    },
    #[error("plugin {name:?} is a {actual}, not a {expected}")]
    WrongKind {
        name: String,
        expected: PluginKind,
        actual: PluginKind,
    },
    #[error(
        "plugin {plugin:?} was built for an incompatible plugin interface: it exports {export}, \
         version {found}, but this host implements {}@{expected}",
        registry::WIT_PACKAGE
    )]
    IncompatibleVersion {
        plugin: String,
        export: String,
        found: String,
        expected: String,
    },
    #[error("{plugin:?} is not a mediagraph plugin: {reason}")]
    NotAPlugin { plugin: String, reason: String },
    #[error("plugin {plugin:?} failed to load: {reason}")]
    Load { plugin: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin manifest {}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("plugin {plugin:?} rejected its configuration: {message}")]
    Configure { plugin: String, message: String },
    #[error("plugin {plugin:?} {fault}")]
    Fault { plugin: String, fault: Fault },
    #[error("plugin {plugin:?} failed its contract test: {failures}")]
    ContractFailed { plugin: String, failures: String },
}

/// One per process: the registry of plugins and the factory of per-node plugin instances.
pub struct PluginHost {
    plugins: Vec<Arc<PluginInfo>>,
    rejected: Vec<Rejected>,
    events: EventBus,
    artifacts: Option<ArtifactCache>,
}

impl PluginHost {
    /// Registers the embedded defaults and every plugin in `plugin_dir` (a missing directory
    /// holds none). Compiled artifacts are cached in `<plugin_dir>/.compiled` when a directory
    /// is given, signed with the key `<plugin_dir>.artifact-key` beside it.
    pub fn new(plugin_dir: Option<PathBuf>, events: EventBus) -> Result<Self, PluginError> {
        let mut plugins: Vec<Arc<PluginInfo>> =
            registry::embedded().into_iter().map(Arc::new).collect();
        let mut rejected = Vec::new();
        if let Some(dir) = &plugin_dir {
            let (found, bad) = registry::scan_dir(dir)?;
            rejected = bad;
            for info in found {
                if plugins.iter().any(|p| p.name == info.name) {
                    let path = match &info.source {
                        PluginSource::File(p) => p.clone(),
                        PluginSource::Embedded => dir.clone(),
                    };
                    rejected.push(Rejected {
                        error: PluginError::Manifest {
                            path: path.clone(),
                            reason: format!(
                                "the name {:?} belongs to an embedded default plugin",
                                info.name
                            ),
                        },
                        path,
                    });
                } else {
                    plugins.push(Arc::new(info));
                }
            }
        }
        for r in &rejected {
            tracing::warn!("plugin {} skipped: {}", r.path.display(), r.error);
        }
        Ok(Self {
            plugins,
            rejected,
            events,
            artifacts: plugin_dir.as_deref().and_then(ArtifactCache::beside),
        })
    }

    /// The embedded defaults plus one plugin loaded from a file (`plugins check`); the file's
    /// plugin wins a name clash.
    pub fn with_plugin(plugin: PluginInfo, events: EventBus) -> Result<Self, PluginError> {
        let mut host = Self::new(None, events)?;
        host.plugins.insert(0, Arc::new(plugin));
        Ok(host)
    }

    /// Every registered plugin, embedded defaults first.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.plugins.iter().map(|p| p.as_ref())
    }

    /// Files in the plugin directory that were skipped, with the reason.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// A segmenter for one sink node; `None` selects the default (`segmenter-gop`).
    pub fn segmenter(
        &self,
        name: Option<&str>,
        config: SegmenterConfig,
        subject: &str,
    ) -> Result<Segmenter, PluginError> {
        let info = self.find(
            name.unwrap_or(registry::DEFAULT_SEGMENTER),
            PluginKind::Segmenter,
        )?;
        let compiled = self.compiled(&info)?;
        Segmenter::new(info, compiled, config, self.reporter(subject))
    }

    /// An evictor for one cache; `None` selects the default (`evict-oldest`, LVA's rule).
    pub fn evictor(&self, name: Option<&str>, subject: &str) -> Result<Evictor, PluginError> {
        let info = self.find(
            name.unwrap_or(registry::DEFAULT_EVICTOR),
            PluginKind::Evictor,
        )?;
        let compiled = self.compiled(&info)?;
        Evictor::new(info, compiled, self.reporter(subject))
    }

    /// A formatter for one sink node; `None` selects the default (`format-cmaf`). The default
    /// is also the fallback a faulty formatter is replaced with.
    pub fn formatter(&self, name: Option<&str>, subject: &str) -> Result<Formatter, PluginError> {
        let info = self.find(
            name.unwrap_or(registry::DEFAULT_FORMATTER),
            PluginKind::Formatter,
        )?;
        let compiled = self.compiled(&info)?;
        let fallback = self.find(registry::DEFAULT_FORMATTER, PluginKind::Formatter)?;
        let fallback_compiled = self.compiled(&fallback)?;
        Formatter::new(
            (info, compiled),
            (fallback, fallback_compiled),
            self.reporter(subject),
        )
    }

    fn find(&self, name: &str, kind: PluginKind) -> Result<Arc<PluginInfo>, PluginError> {
        let Some(info) = self.plugins.iter().find(|p| p.name == name) else {
            let known: Vec<&str> = self
                .plugins
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.name.as_str())
                .collect();
            return Err(PluginError::NotFound {
                name: name.to_string(),
                kind,
                known: known.join(", "),
            });
        };
        if info.kind != kind {
            return Err(PluginError::WrongKind {
                name: name.to_string(),
                expected: kind,
                actual: info.kind,
            });
        }
        Ok(info.clone())
    }

    fn compiled(&self, info: &PluginInfo) -> Result<Compiled, PluginError> {
        let compiled = info.compiled.get_or_init(|| {
            let runtime = Runtime::get()?;
            let component = runtime.component(&info.wasm, self.artifacts.as_ref())?;
            let pre = runtime.instance_pre(&component)?;
            Ok(Compiled {
                runtime,
                pre: Arc::new(pre),
            })
        });
        compiled.clone().map_err(|reason| PluginError::Load {
            plugin: info.name.clone(),
            reason,
        })
    }

    fn reporter(&self, subject: &str) -> Reporter {
        Reporter {
            events: self.events.clone(),
            subject: subject.to_string(),
        }
    }
}

impl PluginLookup for PluginHost {
    fn kind_of(&self, name: &str) -> Option<PluginKind> {
        self.plugins.iter().find(|p| p.name == name).map(|p| p.kind)
    }
}

/// Emits fault events for one node.
#[derive(Clone)]
pub(crate) struct Reporter {
    events: EventBus,
    subject: String,
}

impl Reporter {
    fn fault(&self, plugin: &PluginInfo, fault: &Fault, action: &str) {
        tracing::warn!(subject = %self.subject, "plugin {} {fault}; {action}", plugin.name);
        self.events.emit(Event::new(
            self.subject.clone(),
            catalog::PluginFault {
                plugin: plugin.name.clone(),
                kind: plugin.kind.to_string(),
                fault: fault.code(),
                detail: fault.to_string(),
                action: action.to_owned(),
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record and cache rooms hold these in tokio tasks and share the host.
    #[test]
    fn plugin_handles_are_send() {
        fn send<T: Send>() {}
        send::<Segmenter>();
        send::<Evictor>();
        send::<Formatter>();
        send::<PluginError>();
        fn shared<T: Send + Sync>() {}
        shared::<PluginHost>();
    }
}
