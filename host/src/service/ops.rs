//! `mediagraph ops FILE.json`: replays an LVA/AVA sample-app operations file against a running
//! `serve`, so an LVA user's operation files work unchanged.
//!
//! The file is `{"apiVersion", "operations": [{"opName", "opParams"}]}`. Every operation but
//! `WaitForInput` is one direct method (`POST /methods`); `"@apiVersion"` is added to its
//! payload as the sample apps do. A topology Set may name its topology by `topologyUrl`, or by
//! `topologyFile` / `pipelineTopologyFile` (a path relative to the operations file). Each
//! request and response is printed. A method that answers with an error status does not stop
//! the replay (as in the sample apps); a service that cannot be reached does. An operation whose
//! topology cannot be read is skipped and makes the exit status 1.
//!
//! What is printed of a request has its secrets masked (SecretString parameters of the
//! topologies this replay sets, parameters named like a password, literal passwords, user
//! info in URLs); the service masks its answers itself. `--api-token-file` sends the token.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value, json};

#[derive(clap::Args, Debug)]
pub struct OpsArgs {
    /// The operations file (LVA/AVA sample-app format).
    pub file: PathBuf,
    /// Base address of the running `mediagraph serve`.
    #[arg(long, default_value = "http://127.0.0.1:9600")]
    pub url: String,
    /// Do not wait for Enter at `WaitForInput`.
    #[arg(long)]
    pub no_wait: bool,
    /// responseTimeoutInSeconds of each call (the sample apps use 30).
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Read a `topologyUrl` of LVA's samples repository
    /// (`.../MediaGraph/topologies/NAME[/VERSION]/topology.json`) from DIR/NAME[@VERSION].json
    /// instead of downloading it.
    #[arg(long, value_name = "DIR")]
    pub topologies: Option<PathBuf>,
    /// File holding the API token of the service (sent as `Authorization: Bearer`).
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not an operations file: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("cannot call {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
    #[error(transparent)]
    Token(#[from] crate::http::HttpError),
}

pub async fn run(args: &OpsArgs) -> Result<ExitCode, OpsError> {
    let token = args
        .api_token_file
        .as_deref()
        .map(crate::http::read_token_file)
        .transpose()?;
    let text = std::fs::read_to_string(&args.file).map_err(|source| OpsError::Read {
        path: args.file.clone(),
        source,
    })?;
    let format_err = |message: &str| OpsError::Format {
        path: args.file.clone(),
        message: message.to_owned(),
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| format_err(&e.to_string()))?;
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| format_err("'apiVersion' (a string) is missing"))?
        .to_owned();
    let operations = doc
        .get("operations")
        .and_then(Value::as_array)
        .ok_or_else(|| format_err("'operations' (an array) is missing"))?;
    let base_dir = args.file.parent().unwrap_or(Path::new("."));
    // reqwest is built without a TLS provider of its own (see upload::azure); a topologyUrl
    // may be https.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("{}/methods", args.url.trim_end_matches('/'));
    let mut out = std::io::stdout();
    let mut skipped = 0;
    // SecretString parameters of the topologies set so far: masked in what is printed.
    let mut secrets: Vec<String> = Vec::new();
    for (index, op) in operations.iter().enumerate() {
        let name = op
            .get("opName")
            .and_then(Value::as_str)
            .ok_or_else(|| format_err(&format!("operation {index} has no 'opName'")))?;
        let params = op
            .get("opParams")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if name == "WaitForInput" {
            let message = params
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("Press Enter to continue");
            writeln!(out, "{message}")?;
            out.flush()?;
            if !args.no_wait {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
            }
            continue;
        }
        let payload = match payload_of(args, base_dir, &client, &params, &api_version).await {
            Ok(p) => p,
            Err(message) => {
                // The replay goes on (as the sample apps do); the exit status tells.
                writeln!(
                    out,
                    "-------- {name} (operation {index}) skipped: {message}"
                )?;
                skipped += 1;
                continue;
            }
        };
        secrets.extend(super::methods::secret_parameter_names(&payload));
        let shown = json!({
            "methodName": name,
            "responseTimeoutInSeconds": args.timeout_secs,
            "payload": super::methods::masked_for_print(&payload, &secrets),
        });
        let request = json!({
            "methodName": name,
            "responseTimeoutInSeconds": args.timeout_secs,
            "payload": payload,
        });
        writeln!(out, "-------- {name} request --------")?;
        writeln!(out, "{}", pretty(&shown))?;
        let http = |source| OpsError::Http {
            url: url.clone(),
            source,
        };
        let mut post = client.post(&url).header("content-type", "application/json");
        if let Some(token) = &token {
            post = post.bearer_auth(token);
        }
        let answer = post.body(request.to_string()).send().await.map_err(http)?;
        let http_status = answer.status().as_u16();
        let body = answer.text().await.map_err(http)?;
        writeln!(
            out,
            "-------- {name} response (HTTP {http_status}) --------"
        )?;
        match serde_json::from_str::<Value>(&body) {
            Ok(v) => writeln!(out, "{}", pretty(&v))?,
            Err(_) => writeln!(out, "{body}")?,
        }
    }
    Ok(if skipped == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{skipped} operation(s) skipped: their topology could not be read");
        ExitCode::FAILURE
    })
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The method payload of one operation: its params with `@apiVersion`, or for a topology Set
/// that names a file or URL, that topology.
async fn payload_of(
    args: &OpsArgs,
    base_dir: &Path,
    client: &reqwest::Client,
    params: &Map<String, Value>,
    api_version: &str,
) -> Result<Value, String> {
    let file = params
        .get("topologyFile")
        .or_else(|| params.get("pipelineTopologyFile"))
        .and_then(Value::as_str);
    let topology_url = params.get("topologyUrl").and_then(Value::as_str);
    let mut payload = if let Some(file) = file {
        let path = base_dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read topology {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("topology {} is not JSON: {e}", path.display()))?
    } else if let Some(url) = topology_url {
        topology_from_url(args, client, url).await?
    } else {
        Value::Object(params.clone())
    };
    if let Value::Object(m) = &mut payload {
        m.entry("@apiVersion").or_insert_with(|| json!(api_version));
    }
    Ok(payload)
}

async fn topology_from_url(
    args: &OpsArgs,
    client: &reqwest::Client,
    url: &str,
) -> Result<Value, String> {
    if let Some(dir) = &args.topologies
        && let Some(local) = local_copy(dir, url)
    {
        let text = std::fs::read_to_string(&local)
            .map_err(|e| format!("cannot read {} (for {url}): {e}", local.display()))?;
        return serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", local.display()));
    }
    let answer = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot download {url}: {e}"))?;
    if !answer.status().is_success() {
        return Err(format!("cannot download {url}: HTTP {}", answer.status()));
    }
    let text = answer
        .text()
        .await
        .map_err(|e| format!("cannot download {url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{url} is not JSON: {e}"))
}

/// `.../topologies/NAME/VERSION/topology.json` → `DIR/NAME@VERSION.json`,
/// `.../topologies/NAME/topology.json` → `DIR/NAME.json`.
fn local_copy(dir: &Path, url: &str) -> Option<PathBuf> {
    let rest = url.split("/topologies/").nth(1)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [name, version, "topology.json"] => Some(dir.join(format!("{name}@{version}.json"))),
        [name, "topology.json"] => Some(dir.join(format!("{name}.json"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_repository_urls_map_to_the_local_copies() {
        let dir = Path::new("/t");
        assert_eq!(
            local_copy(
                dir,
                "https://raw.githubusercontent.com/Azure/live-video-analytics/master/MediaGraph/topologies/motion-detection/2.0/topology.json"
            ),
            Some(PathBuf::from("/t/motion-detection@2.0.json"))
        );
        assert_eq!(
            local_copy(
                dir,
                "https://raw.githubusercontent.com/Azure/live-video-analytics/master/MediaGraph/topologies/grpcExtension/topology.json"
            ),
            Some(PathBuf::from("/t/grpcExtension.json"))
        );
        assert_eq!(local_copy(dir, "https://example.com/x.json"), None);
    }
}
