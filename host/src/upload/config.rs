//! Asset-store configuration: command-line flags, `file:///` URLs, Azure connection strings and
//! container SAS URLs, validated once here into typed specs, plus the explicit transfer and
//! retry policies. Secrets (account keys, SAS tokens) never appear in `Debug` output or errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use url::Url;

use super::azure::AzureBlobStore;
use super::local::{LocalStore, Retention};
use super::{AssetStore, UploadError};

/// Environment variable read when `--azure-connection-string` is not given.
pub const CONNECTION_STRING_ENV: &str = "MEDIAGRAPH_AZURE_CONNECTION_STRING";

/// Azurite's well-known development account (public, documented; not a secret).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Local directory used when no asset store is configured.
pub const DEFAULT_LOCAL_STORE: &str = "mediagraph-assets";

/// A validated asset-store choice.
#[derive(Debug, Clone)]
pub enum StoreSpec {
    Local(PathBuf),
    Azure(AzureSpec),
}

/// Where and how to reach one Azure Blob container.
#[derive(Debug, Clone)]
pub struct AzureSpec {
    pub account: String,
    /// The blob service endpoint, e.g. `https://acct.blob.core.windows.net/` or Azurite's
    /// path-style `http://127.0.0.1:10000/devstoreaccount1/`.
    pub blob_endpoint: Url,
    pub container: String,
    pub credential: AzureCredential,
    /// Create the container when it is missing (needs account-level rights).
    pub create_container: bool,
}

/// How requests are authorized.
#[derive(Clone)]
pub enum AzureCredential {
    /// Decoded account key: the store signs short-lived account SAS tokens with it.
    AccountKey(Vec<u8>),
    /// A SAS query string supplied by the operator (e.g. a container SAS).
    Sas(String),
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureCredential::AccountKey(_) => f.write_str("AccountKey(***)"),
            AzureCredential::Sas(_) => f.write_str("Sas(***)"),
        }
    }
}

/// How bytes move: explicit timeouts and the per-request retry policy. The uploader's own
/// outage backoff (see [`super::uploader::UploaderPolicy`]) sits above this.
#[derive(Debug, Clone)]
pub struct TransferPolicy {
    /// Bytes per staged block; one block is the most the uploader holds in memory per sink.
    pub block_size: usize,
    /// Client-side limit for one HTTP request (a block, a commit, a listing page).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries of one request inside the client (exponential) before the error reaches the
    /// uploader, which then backs off with jitter and tries the whole segment again.
    pub request_retries: u32,
    /// Lifetime of the SAS tokens signed from an account key; they are re-signed at half-life.
    pub sas_lifetime: Duration,
}

impl Default for TransferPolicy {
    fn default() -> Self {
        Self {
            block_size: 4 << 20,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            request_retries: 3,
            sas_lifetime: Duration::from_secs(3600),
        }
    }
}

/// Parses `file:///abs/dir` or an `http(s)` container URL that carries a SAS query.
pub fn parse_store_url(text: &str) -> Result<StoreSpec, UploadError> {
    let shown = without_query(text);
    let url = Url::parse(text)
        .map_err(|e| UploadError::Config(format!("--asset-store {shown:?}: not a URL: {e}")))?;
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|_| {
                UploadError::Config(format!(
                    "--asset-store {shown:?}: a file URL needs an absolute path"
                ))
            })?;
            Ok(StoreSpec::Local(path))
        }
        "http" | "https" => parse_container_sas_url(&url).map(StoreSpec::Azure),
        other => Err(UploadError::Config(format!(
            "--asset-store {shown:?}: unsupported scheme {other:?} (use file:///dir or an https container URL with a SAS)"
        ))),
    }
}

/// A store URL as it may be shown: a mistyped one still carries its SAS in the query (or, with
/// the `?` missing, from the first `sig=` on), so that part is cut off.
fn without_query(text: &str) -> String {
    match text.find('?').or_else(|| text.find("sig=")) {
        Some(at) => format!("{}?***", &text[..at]),
        None => text.to_owned(),
    }
}

/// `https://acct.blob.core.windows.net/container?sv=...&sig=...` or the emulator's path-style
/// `http://127.0.0.1:10000/devstoreaccount1/container?...`.
fn parse_container_sas_url(url: &Url) -> Result<AzureSpec, UploadError> {
    let redacted = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    );
    let sas = url.query().filter(|q| q.contains("sig=")).ok_or_else(|| {
        UploadError::Config(format!(
            "--asset-store {redacted}: an Azure container URL needs a SAS query (sv=...&sig=...); \
             or use --azure-connection-string"
        ))
    })?;
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let host = url.host_str().unwrap_or_default();
    let path_style = host.parse::<std::net::IpAddr>().is_ok() || host == "localhost";
    let (account, container, endpoint_path) = match (path_style, segments.as_slice()) {
        (true, [account, container]) => (
            (*account).to_owned(),
            (*container).to_owned(),
            format!("/{account}/"),
        ),
        (false, [container]) => (
            host.split('.').next().unwrap_or_default().to_owned(),
            (*container).to_owned(),
            "/".to_owned(),
        ),
        _ => {
            return Err(UploadError::Config(format!(
                "--asset-store {redacted}: expected the URL of one container (https://ACCOUNT.blob.core.windows.net/CONTAINER?SAS \
                 or http://127.0.0.1:PORT/ACCOUNT/CONTAINER?SAS)"
            )));
        }
    };
    let mut blob_endpoint = url.clone();
    blob_endpoint.set_query(None);
    blob_endpoint.set_path(&endpoint_path);
    validate_container(&container)?;
    Ok(AzureSpec {
        account,
        blob_endpoint,
        container,
        credential: AzureCredential::Sas(sas.to_owned()),
        create_container: false,
    })
}

/// Parses an Azure Storage connection string (`Key=Value;...`). Keys are case-insensitive;
/// `UseDevelopmentStorage=true` means Azurite's well-known account on 127.0.0.1:10000.
pub fn parse_connection_string(
    text: &str,
    container: &str,
    create_container: bool,
) -> Result<AzureSpec, UploadError> {
    let mut protocol = "https".to_owned();
    let (mut account, mut key, mut endpoint, mut suffix, mut sas) = (None, None, None, None, None);
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            let name = part.chars().take(24).collect::<String>();
            UploadError::Config(format!("connection string: {name:?} is not Key=Value"))
        })?;
        match k.to_ascii_lowercase().as_str() {
            "usedevelopmentstorage" if v.eq_ignore_ascii_case("true") => {
                protocol = "http".into();
                account = Some(DEV_ACCOUNT.to_owned());
                key = Some(DEV_ACCOUNT_KEY.to_owned());
                endpoint = Some(format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"));
            }
            "defaultendpointsprotocol" => protocol = v.to_ascii_lowercase(),
            "accountname" => account = Some(v.to_owned()),
            "accountkey" => key = Some(v.to_owned()),
            "blobendpoint" => endpoint = Some(v.to_owned()),
            "endpointsuffix" => suffix = Some(v.to_owned()),
            "sharedaccesssignature" => sas = Some(v.trim_start_matches('?').to_owned()),
            // Other services' endpoints and unknown keys do not concern blob upload.
            _ => {}
        }
    }
    let account = account
        .ok_or_else(|| UploadError::Config("connection string: AccountName is missing".into()))?;
    let credential = match (key, sas) {
        (_, Some(sas)) => AzureCredential::Sas(sas),
        (Some(key), None) => AzureCredential::AccountKey(
            base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .map_err(|e| {
                    UploadError::Config(format!(
                        "connection string: AccountKey is not valid base64: {e}"
                    ))
                })?,
        ),
        (None, None) => {
            return Err(UploadError::Config(
                "connection string: needs AccountKey or SharedAccessSignature".into(),
            ));
        }
    };
    let endpoint = endpoint.unwrap_or_else(|| {
        format!(
            "{protocol}://{account}.blob.{}",
            suffix.as_deref().unwrap_or("core.windows.net")
        )
    });
    let mut blob_endpoint = Url::parse(&endpoint).map_err(|e| {
        UploadError::Config(format!(
            "connection string: BlobEndpoint {endpoint:?} is not a URL: {e}"
        ))
    })?;
    if !blob_endpoint.path().ends_with('/') {
        let path = format!("{}/", blob_endpoint.path());
        blob_endpoint.set_path(&path);
    }
    validate_container(container)?;
    Ok(AzureSpec {
        account,
        blob_endpoint,
        container: container.to_owned(),
        credential,
        create_container,
    })
}

/// Azure's container naming rule: 3–63 chars, lowercase letters, digits and single hyphens,
/// starting and ending with a letter or digit.
fn validate_container(name: &str) -> Result<(), UploadError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(UploadError::Config(format!(
            "container name {name:?} is invalid: 3-63 lowercase letters, digits and single hyphens"
        )))
    }
}

/// The asset-store flags of `mediagraph run` (and any command that uploads).
#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// Asset store: `file:///abs/dir` (default: DATA_DIR/assets for `run --data-dir`, else
    /// ./mediagraph-assets) or an Azure container URL
    /// with a SAS query (`https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=...`).
    #[arg(long, value_name = "URL")]
    pub asset_store: Option<String>,
    /// Reads the `--asset-store` URL from a file, so its SAS is not on the command line
    /// (visible to every local user in /proc/*/cmdline).
    #[arg(long, value_name = "FILE", conflicts_with = "asset_store")]
    pub asset_store_file: Option<PathBuf>,
    /// Azure Storage connection string (AccountName + AccountKey [+ BlobEndpoint], or
    /// `UseDevelopmentStorage=true`); also read from MEDIAGRAPH_AZURE_CONNECTION_STRING.
    #[arg(long, value_name = "CONNECTION_STRING", conflicts_with_all = ["asset_store", "asset_store_file"])]
    pub azure_connection_string: Option<String>,
    /// Container for assets when a connection string is used.
    #[arg(long, default_value = "mediagraph")]
    pub azure_container: String,
    /// Create the container if it does not exist (otherwise a missing container is an error).
    #[arg(long)]
    pub azure_create_container: bool,
    /// Size of one staged block, in MiB (1..=100).
    #[arg(long, default_value_t = 4)]
    pub upload_block_mib: u32,
    /// Client-side timeout of one storage request, in seconds.
    #[arg(long, default_value_t = 30)]
    pub upload_request_timeout_secs: u64,
    /// Retries of one storage request inside the client before the uploader backs off.
    #[arg(long, default_value_t = 3)]
    pub upload_request_retries: u32,
    /// Longest pause between upload attempts during an outage, in seconds (jittered).
    #[arg(long, default_value_t = 60)]
    pub upload_backoff_max_secs: u64,
    /// How long stopping waits for the upload backlog to drain, in seconds.
    #[arg(long, default_value_t = 300)]
    pub upload_flush_timeout_secs: u64,
    /// Local store: delete blobs that ended more than this many days ago.
    #[arg(long, value_name = "DAYS")]
    pub asset_retention_days: Option<u32>,
    /// Local store: most MiB it keeps in all (oldest blobs deleted first).
    #[arg(long, value_name = "MIB")]
    pub asset_max_mib: Option<u64>,
    /// Local store: most MiB it keeps per asset.
    #[arg(long, value_name = "MIB")]
    pub asset_max_mib_per_asset: Option<u64>,
    /// Local store: MiB kept free on its file system beyond the budgets of the caches on it
    /// (default: 2 % of the file system, at most 1 GiB).
    #[arg(long, value_name = "MIB")]
    pub asset_min_free_mib: Option<u64>,
}

impl fmt::Debug for StoreArgs {
    /// Redacted: a connection string holds a key and a store URL may hold a SAS.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self
            .asset_store
            .as_deref()
            .map(|u| u.split('?').next().unwrap_or(u));
        f.debug_struct("StoreArgs")
            .field("asset_store", &url)
            .field("asset_store_file", &self.asset_store_file)
            .field(
                "azure_connection_string",
                &self.azure_connection_string.as_ref().map(|_| "***"),
            )
            .field("azure_container", &self.azure_container)
            .field("azure_create_container", &self.azure_create_container)
            .field("upload_block_mib", &self.upload_block_mib)
            .field(
                "upload_request_timeout_secs",
                &self.upload_request_timeout_secs,
            )
            .field("upload_request_retries", &self.upload_request_retries)
            .field("upload_backoff_max_secs", &self.upload_backoff_max_secs)
            .field("upload_flush_timeout_secs", &self.upload_flush_timeout_secs)
            .field("retention", &self.retention())
            .finish()
    }
}

impl Default for StoreArgs {
    /// The same values as the flags' defaults.
    fn default() -> Self {
        Self {
            asset_store: None,
            asset_store_file: None,
            azure_connection_string: None,
            azure_container: "mediagraph".into(),
            azure_create_container: false,
            upload_block_mib: 4,
            upload_request_timeout_secs: 30,
            upload_request_retries: 3,
            upload_backoff_max_secs: 60,
            upload_flush_timeout_secs: 300,
            asset_retention_days: None,
            asset_max_mib: None,
            asset_max_mib_per_asset: None,
            asset_min_free_mib: None,
        }
    }
}

impl StoreArgs {
    /// Validates the flags into a store spec (the env var stands in for a missing
    /// `--azure-connection-string`).
    pub fn spec(&self) -> Result<StoreSpec, UploadError> {
        self.spec_or(Path::new(DEFAULT_LOCAL_STORE))
    }

    /// Like [`StoreArgs::spec`], with the local directory used when nothing is configured.
    pub fn spec_or(&self, default_local: &Path) -> Result<StoreSpec, UploadError> {
        let from_env = std::env::var(CONNECTION_STRING_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty());
        let from_file = match &self.asset_store_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map(|text| text.trim().to_owned())
                    .map_err(|e| {
                        UploadError::Config(format!("--asset-store-file {}: {e}", path.display()))
                    })?,
            ),
            None => None,
        };
        let asset_store = self.asset_store.as_ref().or(from_file.as_ref());
        match (&self.azure_connection_string, asset_store, from_env) {
            (Some(cs), _, _) => {
                parse_connection_string(cs, &self.azure_container, self.azure_create_container)
                    .map(StoreSpec::Azure)
            }
            (None, Some(url), _) => parse_store_url(url),
            (None, None, Some(cs)) => {
                parse_connection_string(&cs, &self.azure_container, self.azure_create_container)
                    .map(StoreSpec::Azure)
            }
            (None, None, None) => Ok(StoreSpec::Local(default_local.to_owned())),
        }
    }

    pub fn transfer_policy(&self) -> Result<TransferPolicy, UploadError> {
        if !(1..=100).contains(&self.upload_block_mib) {
            return Err(UploadError::Config(format!(
                "--upload-block-mib {}: must be 1..=100",
                self.upload_block_mib
            )));
        }
        if self.upload_request_timeout_secs == 0 {
            return Err(UploadError::Config(
                "--upload-request-timeout-secs must be at least 1".into(),
            ));
        }
        Ok(TransferPolicy {
            block_size: self.upload_block_mib as usize * (1 << 20),
            request_timeout: Duration::from_secs(self.upload_request_timeout_secs),
            request_retries: self.upload_request_retries,
            ..TransferPolicy::default()
        })
    }

    pub fn uploader_policy(&self) -> super::uploader::UploaderPolicy {
        super::uploader::UploaderPolicy {
            backoff_max: Duration::from_secs(self.upload_backoff_max_secs.max(1)),
            flush_timeout: Duration::from_secs(self.upload_flush_timeout_secs),
            ..super::uploader::UploaderPolicy::default()
        }
    }

    /// What the local store keeps (`--asset-*` flags).
    pub fn retention(&self) -> Retention {
        const MIB: u64 = 1 << 20;
        Retention {
            max_age: self
                .asset_retention_days
                .map(|d| Duration::from_secs(u64::from(d) * 86_400)),
            max_bytes_per_asset: self.asset_max_mib_per_asset.map(|m| m * MIB),
            max_bytes: self.asset_max_mib.map(|m| m * MIB),
            min_free_bytes: self.asset_min_free_mib.map(|m| m * MIB),
        }
    }

    /// Builds the configured store.
    pub fn open(&self) -> Result<Arc<dyn AssetStore>, UploadError> {
        open_retained(self.spec()?, self.transfer_policy()?, self.retention())
    }

    /// The store and uploader timing for `mediagraph run`; `default_local` is used when no
    /// store is configured.
    pub fn setup(&self, default_local: &Path) -> Result<super::uploader::UploadSetup, UploadError> {
        Ok(super::uploader::UploadSetup {
            store: open_retained(
                self.spec_or(default_local)?,
                self.transfer_policy()?,
                self.retention(),
            )?,
            policy: self.uploader_policy(),
        })
    }
}

/// Builds a store from a validated spec (a local one with the default retention).
pub fn open_store(
    spec: StoreSpec,
    policy: TransferPolicy,
) -> Result<Arc<dyn AssetStore>, UploadError> {
    open_retained(spec, policy, Retention::default())
}

/// Builds a store; `retention` applies to a local store (Azure's is lifecycle management).
pub fn open_retained(
    spec: StoreSpec,
    policy: TransferPolicy,
    retention: Retention,
) -> Result<Arc<dyn AssetStore>, UploadError> {
    Ok(match spec {
        StoreSpec::Local(root) => Arc::new(LocalStore::with_retention(root, retention)),
        StoreSpec::Azure(spec) => Arc::new(AzureBlobStore::new(spec, policy)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_flags_match_the_clap_defaults() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            store: StoreArgs,
        }
        let parsed = <Cli as clap::Parser>::parse_from(["mediagraph"]).store;
        let default = StoreArgs::default();
        assert_eq!(parsed.azure_container, default.azure_container);
        assert_eq!(parsed.upload_block_mib, default.upload_block_mib);
        assert_eq!(
            parsed.upload_request_timeout_secs,
            default.upload_request_timeout_secs
        );
        assert_eq!(
            parsed.upload_request_retries,
            default.upload_request_retries
        );
        assert_eq!(
            parsed.upload_backoff_max_secs,
            default.upload_backoff_max_secs
        );
        assert_eq!(
            parsed.upload_flush_timeout_secs,
            default.upload_flush_timeout_secs
        );
    }

    #[test]
    fn development_storage_means_azurite_on_loopback() {
        let spec = parse_connection_string("UseDevelopmentStorage=true", "assets", true).unwrap();
        assert_eq!(spec.account, DEV_ACCOUNT);
        assert_eq!(
            spec.blob_endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/"
        );
        assert!(matches!(spec.credential, AzureCredential::AccountKey(ref k) if k.len() == 64));
    }

    #[test]
    fn full_connection_string_is_parsed_and_the_key_is_redacted() {
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};\
             BlobEndpoint=http://127.0.0.1:12345/devstoreaccount1;QueueEndpoint=http://x"
        );
        let spec = parse_connection_string(&cs, "cctv-1", false).unwrap();
        assert_eq!(
            spec.blob_endpoint.as_str(),
            "http://127.0.0.1:12345/devstoreaccount1/"
        );
        let debug = format!("{spec:?}");
        assert!(!debug.contains("Eby8"), "{debug}");
        let cloud = parse_connection_string(
            "AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
            "c01",
            false,
        )
        .unwrap();
        assert_eq!(
            cloud.blob_endpoint.as_str(),
            "https://acct.blob.core.windows.net/"
        );
    }

    #[test]
    fn bad_connection_strings_name_what_is_wrong() {
        let err = |cs: &str| {
            parse_connection_string(cs, "assets", false)
                .unwrap_err()
                .to_string()
        };
        assert!(err("AccountKey=a2V5").contains("AccountName is missing"));
        assert!(err("AccountName=a").contains("needs AccountKey or SharedAccessSignature"));
        assert!(err("AccountName=a;AccountKey=***").contains("AccountKey is not valid base64"));
        assert!(err("AccountName=a;garbage").contains("\"garbage\" is not Key=Value"));
        let bad_container =
            parse_connection_string("UseDevelopmentStorage=true", "Bad_Name", false).unwrap_err();
        assert!(
            bad_container
                .to_string()
                .contains("container name \"Bad_Name\" is invalid")
        );
    }

    #[test]
    fn store_urls_select_local_or_sas_container() {
        assert!(
            matches!(parse_store_url("file:///var/assets").unwrap(), StoreSpec::Local(p) if p == Path::new("/var/assets"))
        );
        let StoreSpec::Azure(az) =
            parse_store_url("https://acct.blob.core.windows.net/cams?sv=2022-11-02&sig=abc")
                .unwrap()
        else {
            panic!("expected Azure")
        };
        assert_eq!(
            (az.account.as_str(), az.container.as_str()),
            ("acct", "cams")
        );
        assert_eq!(
            az.blob_endpoint.as_str(),
            "https://acct.blob.core.windows.net/"
        );
        let StoreSpec::Azure(emu) =
            parse_store_url("http://127.0.0.1:10000/devstoreaccount1/cams?sv=1&sig=x").unwrap()
        else {
            panic!("expected Azure")
        };
        assert_eq!(
            emu.blob_endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/"
        );
        let no_sas = parse_store_url("https://acct.blob.core.windows.net/cams")
            .unwrap_err()
            .to_string();
        assert!(no_sas.contains("needs a SAS query"), "{no_sas}");
        assert!(
            parse_store_url("s3://bucket")
                .unwrap_err()
                .to_string()
                .contains("unsupported scheme \"s3\"")
        );
    }

    #[test]
    fn mistyped_store_urls_are_shown_without_their_sas() {
        for typo in [
            "htps://acct.blob.core.windows.net/c?sv=1&sig=SECRET",
            "https//acct.blob.core.windows.net/c?sv=1&sig=SECRET",
            "https//acct.blob.core.windows.net/c&sig=SECRET",
            "file://host/c?sig=SECRET",
        ] {
            let err = parse_store_url(typo).unwrap_err().to_string();
            assert!(!err.contains("SECRET"), "{err}");
            assert!(err.contains("acct") || err.contains("host"), "{err}");
        }
    }

    #[test]
    fn the_store_url_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store-url");
        std::fs::write(
            &file,
            "https://acct.blob.core.windows.net/cams?sv=1&sig=abc\n",
        )
        .unwrap();
        let args = StoreArgs {
            asset_store_file: Some(file),
            ..StoreArgs::default()
        };
        let StoreSpec::Azure(az) = args.spec().unwrap() else {
            panic!("expected Azure")
        };
        assert!(matches!(az.credential, AzureCredential::Sas(ref s) if s == "sv=1&sig=abc"));
        let missing = StoreArgs {
            asset_store_file: Some(dir.path().join("nope")),
            ..StoreArgs::default()
        };
        assert!(
            missing
                .spec()
                .unwrap_err()
                .to_string()
                .contains("--asset-store-file")
        );
    }
}
