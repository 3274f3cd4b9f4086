//! `mediagraph validate`: reads the files, runs [`check`](super::check) and prints either a
//! summary (exit 0) or one `target: code: message` line per finding (exit 2).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use super::resolve::{OutputType, ResolvedGraph, check_with};
use super::types::{MediaSelection, PluginLookup, UnsupportedNodes};

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Topology JSON file (LVA @apiVersion 1.0 or 2.0).
    pub topology: PathBuf,
    /// Graph instance JSON file (GraphInstanceSet payload) giving the parameter values.
    #[arg(long)]
    pub instance: Option<PathBuf>,
    /// Parameter value, applied over the instance's; may be repeated.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Parameter value read from a file (a trailing newline is dropped), for secrets that must
    /// not be on the command line; may be repeated.
    #[arg(long = "param-file", value_name = "NAME=FILE", value_parser = parse_param)]
    pub param_files: Vec<(String, String)>,
    /// Print JSON: the LVA error body when invalid, the resolved graph when valid.
    #[arg(long)]
    pub json: bool,
    /// Node types this host does not run (motion detection, extensions, IoT Hub nodes):
    /// `reject` refuses the topology; `ignore` accepts it when every sink is fed straight from
    /// the RTSP source and lists those nodes as not run.
    #[arg(long, value_enum, default_value_t = UnsupportedNodes::Reject)]
    pub unsupported_nodes: UnsupportedNodes,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
}

/// Exit status of a topology that breaks a rule.
pub const EXIT_INVALID: u8 = 2;

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        // The text is not echoed: it may be a secret typed without its name.
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

/// `params` followed by the values of `files` (`NAME=FILE` pairs), each read from its file
/// without a trailing newline: `--param-file` keeps secrets out of `/proc/*/cmdline`.
pub fn with_param_files(
    params: &[(String, String)],
    files: &[(String, String)],
) -> Result<Vec<(String, String)>, (PathBuf, std::io::Error)> {
    let mut all = params.to_vec();
    for (name, file) in files {
        let text = std::fs::read_to_string(file).map_err(|e| (PathBuf::from(file), e))?;
        let value = text.strip_suffix('\n').unwrap_or(&text);
        all.push((
            name.clone(),
            value.strip_suffix('\r').unwrap_or(value).to_owned(),
        ));
    }
    Ok(all)
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Runs the command; `plugins` decides which plugin names a topology may use.
pub fn run_validate(args: &ValidateArgs, plugins: &dyn PluginLookup) -> Result<ExitCode, CliError> {
    let topology = read(&args.topology)?;
    let instance = args.instance.as_deref().map(read).transpose()?;
    let params = with_param_files(&args.params, &args.param_files)
        .map_err(|(path, source)| CliError::Read { path, source })?;
    let validation = check_with(
        &topology,
        instance.as_deref(),
        &params,
        plugins,
        SystemTime::now(),
        args.unsupported_nodes,
    );
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    if !args.json {
        for w in &validation.warnings {
            writeln!(err, "warning: {w}")?;
        }
    }
    match validation.outcome {
        Ok(graph) => {
            if args.json {
                let report = serde_json::json!({ "valid": true, "graph": graph, "warnings": validation.warnings });
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                )?;
            } else {
                write_summary(&mut out, &graph)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(body) => {
            if args.json {
                writeln!(out, "{}", body.to_json_pretty())?;
            } else {
                for d in body.details() {
                    writeln!(err, "{d}")?;
                }
                writeln!(
                    err,
                    "invalid: {} error(s) in {}",
                    body.details().len(),
                    args.topology.display()
                )?;
            }
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// What an operator wants to see before starting a recording. Never prints credentials.
fn write_summary(out: &mut impl Write, g: &ResolvedGraph) -> std::io::Result<()> {
    let sinks = g.asset_sinks.len() + g.file_sinks.len();
    writeln!(
        out,
        "valid: topology '{}' (@apiVersion {}), instance '{}'",
        g.topology_name, g.api_version, g.instance_name
    )?;
    writeln!(
        out,
        "nodes: {} ({} source(s), {} sink(s){})",
        g.sources.len() + sinks + g.ignored_nodes.len(),
        g.sources.len(),
        sinks,
        match g.ignored_nodes.len() {
            0 => String::new(),
            n => format!(", {n} ignored"),
        }
    )?;
    for s in &g.sources {
        let credentials = if s.credentials.is_some() {
            "credentials set (not shown)"
        } else {
            "no credentials"
        };
        let tls = if s.tls.is_some() { ", TLS" } else { "" };
        writeln!(
            out,
            "source {}: {} (transport {:?}{tls}, {credentials})",
            s.node, s.display_url, s.transport
        )?;
    }
    for a in &g.asset_sinks {
        let plugin = |p: &Option<String>| p.clone().unwrap_or_else(|| "default".into());
        let (kind, what) = match a.output_type {
            OutputType::AssetName => ("asset sink", "asset"),
            OutputType::VideoName => ("video sink", "video"),
            OutputType::FilePath => ("file sink", "file"),
        };
        writeln!(
            out,
            "{kind} {} <- {}: {what} '{}', segment length {} ({} s), cache {} max {} MiB ({} bytes), {}, plugins: segmenter {}, evictor {}, formatter {}",
            a.node,
            a.source,
            a.asset_name,
            a.segment_length.to_iso8601(),
            a.segment_length.as_secs(),
            a.cache_path.display(),
            a.cache_max_bytes / (1024 * 1024),
            a.cache_max_bytes,
            media(a.media),
            plugin(&a.plugins.segmenter),
            plugin(&a.plugins.evictor),
            plugin(&a.plugins.formatter),
        )?;
    }
    for n in &g.ignored_nodes {
        writeln!(
            out,
            "ignored {} {} ({}, {}): not run by this host (unsupportedNodes: ignore)",
            &n.list[..n.list.len() - 1],
            n.node,
            n.node_type,
            n.target
        )?;
    }
    for f in &g.file_sinks {
        let limit = f.max_bytes.map_or("no size limit".to_owned(), |b| {
            format!("max {} MiB", b / (1024 * 1024))
        });
        writeln!(
            out,
            "file sink {} <- {}: {}/{}.mp4, {limit}, {}",
            f.node,
            f.source,
            f.base_directory.display(),
            f.file_name_pattern,
            media(f.media)
        )?;
    }
    Ok(())
}

fn media(m: MediaSelection) -> &'static str {
    match m {
        MediaSelection::VideoOnly => "video only",
        MediaSelection::AudioAndVideo => "audio and video",
    }
}
