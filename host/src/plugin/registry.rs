//! Which plugins exist: the defaults embedded in the binary plus `NAME.wasm` files (with an
//! optional `NAME.toml` or `NAME.json` manifest) in the plugin directory. A plugin's kind and
//! WIT version are read from its component exports without compiling it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::{PluginError, PluginKind};

/// The WIT package the host was built against (`wit/plugin.wit`).
pub const WIT_PACKAGE: &str = "mediagraph:plugin";
pub const WIT_VERSION: &str = "0.1.0";

pub(crate) const DEFAULT_SEGMENTER: &str = "segmenter-gop";
pub(crate) const DEFAULT_EVICTOR: &str = "evict-oldest";
pub(crate) const DEFAULT_FORMATTER: &str = "format-cmaf";

const EMBEDDED: &[(&str, &[u8])] = &[
    (
        "segmenter-gop",
        include_bytes!(concat!(env!("OUT_DIR"), "/segmenter_gop.wasm")),
    ),
    (
        "evict-oldest",
        include_bytes!(concat!(env!("OUT_DIR"), "/evict_oldest.wasm")),
    ),
    (
        "evict-uploaded-first",
        include_bytes!(concat!(env!("OUT_DIR"), "/evict_uploaded_first.wasm")),
    ),
    (
        "format-cmaf",
        include_bytes!(concat!(env!("OUT_DIR"), "/format_cmaf.wasm")),
    ),
];

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// Built with the host and embedded in the binary.
    Embedded,
    /// A `.wasm` file in the plugin directory (or given on the command line).
    File(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::Embedded => f.write_str("embedded"),
            PluginSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A plugin the host knows, before compilation.
pub struct PluginInfo {
    pub name: String,
    pub kind: PluginKind,
    /// The plugin's own version, from its manifest (embedded plugins: the host's version).
    pub version: Option<String>,
    /// The WIT package version its exports name, e.g. `0.1.0`.
    pub wit_version: String,
    pub source: PluginSource,
    pub(crate) wasm: Arc<[u8]>,
    pub(crate) compiled: OnceLock<Result<super::runtime::Compiled, String>>,
}

impl fmt::Debug for PluginInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginInfo")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("wit_version", &self.wit_version)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A file in the plugin directory that could not be registered, and why.
#[derive(Debug)]
pub struct Rejected {
    pub path: PathBuf,
    pub error: PluginError,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: Option<String>,
    kind: Option<String>,
    version: Option<String>,
}

pub(crate) fn embedded() -> Vec<PluginInfo> {
    EMBEDDED
        .iter()
        .map(|(name, wasm)| {
            let (kind, wit_version) = inspect(name, wasm).unwrap_or_else(|e| {
                // The build embeds these; a failure here is a broken build, not bad input.
                panic!("embedded plugin {name} is not a valid plugin: {e}")
            });
            PluginInfo {
                name: (*name).to_string(),
                kind,
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
                wit_version,
                source: PluginSource::Embedded,
                wasm: Arc::from(*wasm),
                compiled: OnceLock::new(),
            }
        })
        .collect()
}

/// Registers every `NAME.wasm` in `dir`. A missing directory holds no plugins; a file that is
/// not a usable plugin is reported in the second list and skipped.
pub(crate) fn scan_dir(dir: &Path) -> Result<(Vec<PluginInfo>, Vec<Rejected>), PluginError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(source) => {
            return Err(PluginError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    paths.sort();
    let mut found = Vec::new();
    let mut rejected = Vec::new();
    for path in paths {
        match load_file(&path) {
            Ok(info) => found.push(info),
            Err(error) => rejected.push(Rejected { path, error }),
        }
    }
    Ok((found, rejected))
}

/// Reads one plugin file and its manifest, checking name, kind and WIT version.
pub fn load_file(path: &Path) -> Result<PluginInfo, PluginError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| valid_name(s))
        .ok_or_else(|| PluginError::Manifest {
            path: path.to_path_buf(),
            reason: "the file name must be NAME.wasm with NAME of letters, digits, '-' or '_'"
                .into(),
        })?
        .to_string();
    let wasm = std::fs::read(path).map_err(|source| PluginError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (kind, wit_version) = inspect(&stem, &wasm)?;
    let manifest = read_manifest(path)?;
    let mut version = None;
    if let Some(m) = manifest {
        if let Some(name) = m.name
            && name != stem
        {
            return Err(PluginError::Manifest {
                path: path.to_path_buf(),
                reason: format!("manifest name {name:?} differs from the file name {stem:?}"),
            });
        }
        if let Some(k) = m.kind
            && k != kind.to_string()
        {
            return Err(PluginError::Manifest {
                path: path.to_path_buf(),
                reason: format!("manifest kind {k:?} but the component exports a {kind} interface"),
            });
        }
        version = m.version;
    }
    Ok(PluginInfo {
        name: stem,
        kind,
        version,
        wit_version,
        source: PluginSource::File(path.to_path_buf()),
        wasm: Arc::from(wasm),
        compiled: OnceLock::new(),
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn read_manifest(wasm_path: &Path) -> Result<Option<Manifest>, PluginError> {
    for ext in ["toml", "json"] {
        let path = wasm_path.with_extension(ext);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(PluginError::Io { path, source }),
        };
        let parsed = if ext == "toml" {
            toml::from_str::<Manifest>(&text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str::<Manifest>(&text).map_err(|e| e.to_string())
        };
        return parsed
            .map(Some)
            .map_err(|reason| PluginError::Manifest { path, reason });
    }
    Ok(None)
}

/// Reads the component's top-level exports: exactly one of the plugin interfaces, of a WIT
/// version this host accepts.
pub(crate) fn inspect(name: &str, wasm: &[u8]) -> Result<(PluginKind, String), PluginError> {
    let exports = top_level_exports(wasm).map_err(|reason| PluginError::NotAPlugin {
        plugin: name.to_string(),
        reason,
    })?;
    let prefix = format!("{WIT_PACKAGE}/");
    let mut ours = Vec::new();
    for export in &exports {
        let Some(rest) = export.strip_prefix(&prefix) else {
            continue;
        };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
        let kind = match iface {
            "segmenter" => PluginKind::Segmenter,
            "evictor" => PluginKind::Evictor,
            "formatter" => PluginKind::Formatter,
            _ => continue,
        };
        ours.push((kind, version.to_string(), export.clone()));
    }
    let (kind, version, export) = match ours.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(PluginError::NotAPlugin {
                plugin: name.to_string(),
                reason: format!(
                    "it exports none of {WIT_PACKAGE}/{{segmenter,evictor,formatter}}@{WIT_VERSION} \
                     (its exports: {})",
                    if exports.is_empty() {
                        "none".to_string()
                    } else {
                        exports.join(", ")
                    }
                ),
            });
        }
        many => {
            return Err(PluginError::NotAPlugin {
                plugin: name.to_string(),
                reason: format!(
                    "it exports several plugin interfaces ({}); a plugin implements one world",
                    many.iter()
                        .map(|m| m.2.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    };
    if !compatible(&version) {
        return Err(PluginError::IncompatibleVersion {
            plugin: name.to_string(),
            export,
            found: if version.is_empty() {
                "unversioned".into()
            } else {
                version
            },
            expected: WIT_VERSION.to_string(),
        });
    }
    Ok((kind, version))
}

/// Same major version; for 0.x the minor version must match too (semver's rule for 0.x).
fn compatible(version: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(version), parse(WIT_VERSION)) {
        (Some((0, a)), Some((0, b))) => a == b,
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
}

fn top_level_exports(wasm: &[u8]) -> Result<Vec<String>, String> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("not a WebAssembly file: {e}"))? {
            Payload::Version { encoding, .. } if depth == 0 && encoding != Encoding::Component => {
                return Err("it is a core WebAssembly module, not a component \
                            (build it for wasm32-wasip2 with wit-bindgen)"
                    .into());
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| format!("bad export section: {e}"))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(exports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_semver_for_0x() {
        assert!(compatible("0.1.0"));
        assert!(compatible("0.1.7"));
        assert!(!compatible("0.2.0"));
        assert!(!compatible("1.1.0"));
        assert!(!compatible(""));
    }

    #[test]
    fn embedded_plugins_declare_their_kinds() {
        let kinds: Vec<_> = embedded().into_iter().map(|p| (p.name, p.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("segmenter-gop".to_string(), PluginKind::Segmenter),
                ("evict-oldest".to_string(), PluginKind::Evictor),
                ("evict-uploaded-first".to_string(), PluginKind::Evictor),
                ("format-cmaf".to_string(), PluginKind::Formatter),
            ]
        );
    }

    #[test]
    fn topology_knows_the_embedded_plugins() {
        let embedded: Vec<_> = embedded().into_iter().map(|p| (p.name, p.kind)).collect();
        let named: Vec<_> = crate::topology::DefaultPluginNames::ALL
            .iter()
            .map(|(n, k)| (n.to_string(), *k))
            .collect();
        assert_eq!(embedded, named);
    }

    #[test]
    fn a_core_module_is_refused_with_the_reason() {
        // The 8-byte header of an empty core module.
        let err = inspect("m", b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
    }
}
