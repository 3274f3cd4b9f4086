//! `serve`'s settings: a TOML file (`--config FILE`) whose names follow LVA's module twin where
//! it has one (`applicationDataDirectory`, `allowUnsecuredEndpoints`, `logLevel`,
//! `diagnosticsLevel`), overridden by the flags given on the command line.
//!
//! Owns reading the file (an unknown key is an error naming it; nothing is guessed) and the
//! merge with the flags into one [`Settings`]. Must not open stores, bind listeners or start
//! anything: `service::cli` does, with the result.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::events::DiagnosticsLevel;
use crate::topology::UnsupportedNodes;
use crate::upload::config::StoreArgs;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings file {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// toml's message names the key and its line (an unknown key: "unknown field `x`").
    #[error("settings file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// How much the log says (LVA's `logLevel`: Verbose, Information, Warning, Error, None).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Verbose,
    Information,
    Warning,
    Error,
    None,
}

impl LogLevel {
    /// The `tracing` filter directive of this level.
    pub fn directive(self) -> &'static str {
        match self {
            Self::Verbose => "debug",
            Self::Information => "info",
            Self::Warning => "warn",
            Self::Error => "error",
            Self::None => "off",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;

    /// LVA's names, case-insensitively, and the usual short forms.
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "verbose" | "debug" => Self::Verbose,
            "information" | "info" => Self::Information,
            "warning" | "warn" => Self::Warning,
            "error" => Self::Error,
            "none" | "off" => Self::None,
            _ => {
                return Err(format!(
                    "log level '{s}' is not one of Verbose, Information, Warning, Error, None"
                ));
            }
        })
    }
}

/// How each stderr line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (events are a JSON object inside the line).
    #[default]
    Text,
    /// Every line one JSON object (`timestamp`, `level`, `target`, `fields`).
    Json,
}

/// Deserializes a `FromStr` type from a TOML string, keeping its error message.
fn from_text<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr<Err = String>,
{
    Option::<String>::deserialize(d)?
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// The file as written: every key optional, no other key allowed.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingsFile {
    pub application_data_directory: Option<PathBuf>,
    pub listen: Option<String>,
    pub api_token_file: Option<PathBuf>,
    pub allow_unsecured_endpoints: Option<bool>,
    #[serde(default, deserialize_with = "from_text")]
    pub log_level: Option<LogLevel>,
    pub log_format: Option<LogFormat>,
    #[serde(default, deserialize_with = "from_text")]
    pub diagnostics_level: Option<DiagnosticsLevel>,
    pub unsupported_nodes: Option<UnsupportedNodes>,
    pub progress_seconds: Option<u64>,
    pub asset_store: Option<String>,
    pub asset_store_file: Option<PathBuf>,
    pub azure_connection_string: Option<String>,
    pub azure_container: Option<String>,
    pub azure_create_container: Option<bool>,
    #[serde(rename = "uploadBlockMiB")]
    pub upload_block_mib: Option<u32>,
    pub upload_request_timeout_seconds: Option<u64>,
    pub upload_request_retries: Option<u32>,
    pub upload_backoff_max_seconds: Option<u64>,
    pub upload_flush_timeout_seconds: Option<u64>,
}

impl SettingsFile {
    pub fn parse(text: &str, path: &Path) -> Result<Self, SettingsError> {
        let file: Self = toml::from_str(text).map_err(|e| SettingsError::Invalid {
            path: path.to_owned(),
            // toml's Display quotes the offending line, which may hold a secret value: the
            // message and the position are enough to find it.
            message: match e.span() {
                Some(span) => format!(
                    "{} (at line {})",
                    without_value(e.message()),
                    1 + text.as_bytes()[..span.start.min(text.len())]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                ),
                None => without_value(e.message()),
            },
        })?;
        let choices = [
            file.asset_store.is_some(),
            file.asset_store_file.is_some(),
            file.azure_connection_string.is_some(),
        ];
        if choices.iter().filter(|c| **c).count() > 1 {
            return Err(SettingsError::Invalid {
                path: path.to_owned(),
                message: "assetStore, assetStoreFile and azureConnectionString each choose the \
                          asset store: give one of them"
                    .into(),
            });
        }
        Ok(file)
    }

    pub fn read(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

/// serde's "invalid type: string \"VALUE\", expected ..." quotes the value, which may be a
/// secret typed into the wrong key: the quoted value is cut out. Other messages (an unknown
/// key: "unknown field `name`") only name keys and are kept.
fn without_value(message: &str) -> String {
    if !(message.starts_with("invalid type: ") || message.starts_with("invalid value: ")) {
        return message.to_owned();
    }
    let Some(open) = message.find(['`', '"']) else {
        return message.to_owned();
    };
    let quote = message[open..].chars().next().unwrap_or('`');
    match message[open + 1..].rfind(quote) {
        Some(close) => format!(
            "{}{}",
            message[..open].trim_end(),
            &message[open + 1 + close + 1..]
        ),
        None => message[..open].trim_end().to_owned(),
    }
}

/// Every setting of `serve`, decided.
#[derive(Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub api_token_file: Option<PathBuf>,
    pub allow_unsecured_endpoints: bool,
    /// `None`: `RUST_LOG`, or Information.
    pub log_level: Option<LogLevel>,
    pub log_format: LogFormat,
    pub diagnostics_level: DiagnosticsLevel,
    pub unsupported_nodes: UnsupportedNodes,
    pub progress_every: Duration,
    pub store: StoreArgs,
}

impl fmt::Debug for Settings {
    /// `store` has its own redacted `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("api_token_file", &self.api_token_file)
            .field("allow_unsecured_endpoints", &self.allow_unsecured_endpoints)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("diagnostics_level", &self.diagnostics_level)
            .field("unsupported_nodes", &self.unsupported_nodes)
            .field("progress_every", &self.progress_every)
            .field("store", &self.store)
            .finish()
    }
}

/// The flags as parsed (with their defaults) and which of them were given: a flag given on
/// the command line wins over the file, the file over the flag's default.
pub struct Flags<'a, F: Fn(&str) -> bool> {
    pub args: &'a super::cli::ServeArgs,
    pub given: F,
}

impl<F: Fn(&str) -> bool> Flags<'_, F> {
    fn pick<T>(&self, id: &str, flag: T, file: Option<T>) -> T {
        if (self.given)(id) {
            flag
        } else {
            file.unwrap_or(flag)
        }
    }

    /// Merges `file` under the flags.
    pub fn merge(&self, file: SettingsFile) -> Result<Settings, String> {
        let a = self.args;
        let listen = match file.listen.as_deref() {
            Some(text) if !(self.given)("listen") => {
                crate::http::parse_listen_addr(text).map_err(|e| format!("listen: {e}"))?
            }
            _ => a.listen,
        };
        let store_flag_given = ["asset_store", "asset_store_file", "azure_connection_string"]
            .iter()
            .any(|id| (self.given)(id));
        let s = &a.store;
        let mut store = StoreArgs {
            azure_container: self.pick(
                "azure_container",
                s.azure_container.clone(),
                file.azure_container,
            ),
            azure_create_container: self.pick(
                "azure_create_container",
                s.azure_create_container,
                file.azure_create_container,
            ),
            upload_block_mib: self.pick(
                "upload_block_mib",
                s.upload_block_mib,
                file.upload_block_mib,
            ),
            upload_request_timeout_secs: self.pick(
                "upload_request_timeout_secs",
                s.upload_request_timeout_secs,
                file.upload_request_timeout_seconds,
            ),
            upload_request_retries: self.pick(
                "upload_request_retries",
                s.upload_request_retries,
                file.upload_request_retries,
            ),
            upload_backoff_max_secs: self.pick(
                "upload_backoff_max_secs",
                s.upload_backoff_max_secs,
                file.upload_backoff_max_seconds,
            ),
            upload_flush_timeout_secs: self.pick(
                "upload_flush_timeout_secs",
                s.upload_flush_timeout_secs,
                file.upload_flush_timeout_seconds,
            ),
            ..s.clone()
        };
        // The store is one choice: a store flag replaces the file's choice whole.
        if !store_flag_given {
            store.asset_store = file.asset_store;
            store.asset_store_file = file.asset_store_file;
            store.azure_connection_string = file.azure_connection_string;
        }
        Ok(Settings {
            data_dir: self.pick(
                "data_dir",
                a.data_dir.clone(),
                file.application_data_directory,
            ),
            listen,
            api_token_file: if (self.given)("api_token_file") {
                a.api_token_file.clone()
            } else {
                file.api_token_file.or_else(|| a.api_token_file.clone())
            },
            allow_unsecured_endpoints: self.pick(
                "allow_unsecured_endpoints",
                a.allow_unsecured_endpoints,
                file.allow_unsecured_endpoints,
            ),
            log_level: if (self.given)("log_level") {
                a.log_level
            } else {
                file.log_level.or(a.log_level)
            },
            log_format: self.pick("log_format", a.log_format, file.log_format),
            diagnostics_level: self.pick(
                "diagnostics_level",
                a.diagnostics_level,
                file.diagnostics_level,
            ),
            unsupported_nodes: self.pick(
                "unsupported_nodes",
                a.unsupported_nodes,
                file.unsupported_nodes,
            ),
            progress_every: Duration::from_secs(
                self.pick("progress_secs", a.progress_secs, file.progress_seconds)
                    .max(1),
            ),
            store,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::cli::ServeArgs;
    use clap::{CommandFactory, FromArgMatches, Parser, parser::ValueSource};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// The settings of `serve ARGS...` with `file` as the settings file.
    fn settings(args: &[&str], file: &str) -> Result<Settings, String> {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        let file = SettingsFile::parse(file, Path::new("/etc/mediagraph.toml"))
            .map_err(|e| e.to_string())?;
        Flags {
            args: &cli.serve,
            given: |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine),
        }
        .merge(file)
    }

    const FILE: &str = r#"
applicationDataDirectory = "/srv/mediagraph"
listen = "127.0.0.1:9700"
apiTokenFile = "/etc/mediagraph/token"
allowUnsecuredEndpoints = false
logLevel = "Warning"
logFormat = "json"
diagnosticsLevel = "Error"
unsupportedNodes = "ignore"
progressSeconds = 30
assetStore = "file:///srv/assets"
uploadBlockMiB = 8
uploadFlushTimeoutSeconds = 10
"#;

    #[test]
    fn the_file_sets_what_no_flag_gives() {
        let s = settings(&[], FILE).unwrap();
        assert_eq!(s.data_dir, Path::new("/srv/mediagraph"));
        assert_eq!(s.listen, "127.0.0.1:9700".parse().unwrap());
        assert_eq!(
            s.api_token_file.as_deref(),
            Some(Path::new("/etc/mediagraph/token"))
        );
        assert!(!s.allow_unsecured_endpoints);
        assert_eq!(s.log_level, Some(LogLevel::Warning));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.diagnostics_level, DiagnosticsLevel::Error);
        assert_eq!(s.unsupported_nodes, UnsupportedNodes::Ignore);
        assert_eq!(s.progress_every, Duration::from_secs(30));
        assert_eq!(s.store.asset_store.as_deref(), Some("file:///srv/assets"));
        assert_eq!(s.store.upload_block_mib, 8);
        assert_eq!(s.store.upload_flush_timeout_secs, 10);
        // Not in the file: the flag's default.
        assert_eq!(s.store.upload_request_retries, 3);
    }

    #[test]
    fn flags_given_override_the_file() {
        let s = settings(
            &[
                "--data-dir",
                "/tmp/d",
                "--listen",
                "9800",
                "--allow-unsecured-endpoints",
                "true",
                "--log-level",
                "verbose",
                "--upload-block-mib",
                "2",
                "--azure-connection-string",
                "UseDevelopmentStorage=true",
            ],
            FILE,
        )
        .unwrap();
        assert_eq!(s.data_dir, Path::new("/tmp/d"));
        assert_eq!(s.listen, "127.0.0.1:9800".parse().unwrap());
        assert!(s.allow_unsecured_endpoints);
        assert_eq!(s.log_level, Some(LogLevel::Verbose));
        assert_eq!(s.store.upload_block_mib, 2);
        // A store flag replaces the file's store choice.
        assert_eq!(s.store.asset_store, None);
        assert!(s.store.azure_connection_string.is_some());
        // What no flag gave still comes from the file.
        assert_eq!(s.diagnostics_level, DiagnosticsLevel::Error);
    }

    #[test]
    fn without_a_file_the_defaults_hold() {
        let s = settings(&[], "").unwrap();
        assert_eq!(s.data_dir, Path::new("/var/lib/mediagraph"));
        assert_eq!(s.listen, "127.0.0.1:9600".parse().unwrap());
        assert!(s.allow_unsecured_endpoints, "no TLS camera transport yet");
        assert_eq!(s.log_level, None);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.diagnostics_level, DiagnosticsLevel::Information);
        assert_eq!(s.unsupported_nodes, UnsupportedNodes::Reject);
    }

    #[test]
    fn an_unknown_or_bad_key_is_an_error_naming_it() {
        let e = settings(&[], "logLevel = \"Information\"\nlogLevell = \"x\"\n").unwrap_err();
        assert!(e.contains("logLevell") && e.contains("line 2"), "{e}");
        assert!(e.contains("/etc/mediagraph.toml"), "{e}");
        let e = settings(&[], "logLevel = \"Loud\"").unwrap_err();
        assert!(e.contains("Loud") && e.contains("Verbose"), "{e}");
        let e = settings(&[], "allowUnsecuredEndpoints = \"yes\"").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = settings(&[], "unsupportedNodes = \"skip\"").unwrap_err();
        assert!(e.contains("skip"), "{e}");
        let e = settings(
            &[],
            "assetStore = \"file:///a\"\nazureConnectionString = \"AccountKey=c2VjcmV0\"",
        )
        .unwrap_err();
        assert!(e.contains("give one of them"), "{e}");
        assert!(!e.contains("c2VjcmV0"), "{e}");
    }

    #[test]
    fn a_bad_value_is_reported_without_quoting_the_line() {
        // A type error in the connection string's line must not echo the line (a key).
        let e = settings(&[], "azureConnectionString = 12345678901234").unwrap_err();
        assert!(!e.contains("12345678901234"), "{e}");
        assert!(e.contains("line 1") && e.contains("invalid type"), "{e}");
        let e = settings(&[], "uploadBlockMiB = \"AccountKey=c2VjcmV0\"").unwrap_err();
        assert!(!e.contains("c2VjcmV0"), "{e}");
    }
}
