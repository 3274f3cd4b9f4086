//! `mediagraph plugins ...`: list the registered plugins, check a plugin file against its
//! contract, and benchmark plugin call costs. The binary only parses arguments and calls
//! [`run`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::types::{
    Budget, CacheEntry, Codec, Decision, FrameInfo, MediaKind, Piece, Sample, SegmenterConfig,
    Track,
};
use super::{PluginError, PluginHost, PluginKind, registry};
use crate::events::EventBus;
use crate::time::{Duration90k, Ticks90k};

#[derive(Debug, clap::Subcommand)]
pub enum PluginsCommand {
    /// List the plugins this host can run: name, kind, version, source.
    List {
        #[command(flatten)]
        dirs: PluginDirs,
    },
    /// Load a plugin file, verify its world and version, and run it through a short contract
    /// test.
    Check {
        /// The component, e.g. my-segmenter.wasm (an optional my-segmenter.toml beside it).
        file: PathBuf,
    },
    /// Measure plugin call costs of the default plugins (build with --release for real numbers).
    Bench {
        /// Frames fed to the segmenter.
        #[arg(long, default_value_t = 300_000)]
        frames: u32,
    },
}

#[derive(Debug, clap::Args)]
pub struct PluginDirs {
    /// Plugin directory [default: <data-dir>/plugins].
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// The service's data directory.
    #[arg(long, default_value = "/var/lib/mediagraph")]
    pub data_dir: PathBuf,
}

impl PluginDirs {
    pub fn plugin_dir(&self) -> PathBuf {
        self.plugin_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugins"))
    }
}

/// Runs one `plugins` subcommand, writing its report to `out`.
pub fn run(cmd: &PluginsCommand, out: &mut dyn Write) -> Result<(), PluginError> {
    match cmd {
        PluginsCommand::List { dirs } => list(&dirs.plugin_dir(), out),
        PluginsCommand::Check { file } => check(file, out),
        PluginsCommand::Bench { frames } => bench(*frames, out),
    }
}

fn io(e: std::io::Error) -> PluginError {
    PluginError::Io {
        path: PathBuf::from("<stdout>"),
        source: e,
    }
}

fn list(dir: &Path, out: &mut dyn Write) -> Result<(), PluginError> {
    let host = PluginHost::new(Some(dir.to_path_buf()), EventBus::new())?;
    writeln!(
        out,
        "{:<24} {:<10} {:<10} {:<8} SOURCE",
        "NAME", "KIND", "VERSION", "WIT"
    )
    .map_err(io)?;
    for p in host.plugins() {
        writeln!(
            out,
            "{:<24} {:<10} {:<10} {:<8} {}",
            p.name,
            p.kind.to_string(),
            p.version.as_deref().unwrap_or("-"),
            p.wit_version,
            p.source
        )
        .map_err(io)?;
    }
    for r in host.rejected() {
        writeln!(out, "skipped {}: {}", r.path.display(), r.error).map_err(io)?;
    }
    Ok(())
}

/// A synthetic camera: 30 fps H.264, a keyframe every second.
fn frame(i: u32, start: Ticks90k) -> FrameInfo {
    FrameInfo {
        track: 1,
        kind: MediaKind::Video,
        dts: start + Duration90k(i64::from(i) * 3000),
        duration: 3000,
        keyframe: i.is_multiple_of(30),
        size: if i.is_multiple_of(30) { 60_000 } else { 8_000 },
    }
}

fn h264_track() -> Track {
    Track {
        id: 1,
        kind: MediaKind::Video,
        codec: Codec::H264,
        timescale: 90_000,
        width: 1280,
        height: 720,
        sample_rate: 0,
        channels: 0,
        // avcC: version 1, High profile, level 3.1, 4-byte lengths, one SPS and one PPS.
        decoder_config: vec![
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xee,
        ],
    }
}

fn samples(n: u32) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            track: 1,
            decode_time: u64::from(i) * 3000,
            composition_offset: 0,
            duration: 3000,
            keyframe: i == 0,
            size: if i == 0 { 60_000 } else { 8_000 },
        })
        .collect()
}

fn entries(n: u64) -> Vec<CacheEntry> {
    (0..n)
        .map(|i| CacheEntry {
            id: 100 + i,
            start: Ticks90k::from_secs(1_700_000_000 + 30 * i as i64),
            end: Ticks90k::from_secs(1_700_000_030 + 30 * i as i64),
            bytes: 1_000_000,
            uploaded: i % 2 == 0,
        })
        .collect()
}

/// Loads `file` as an extra plugin and exercises it through the host's checks: any contained
/// fault (trap, timeout, invalid answer) fails the check.
fn check(file: &Path, out: &mut dyn Write) -> Result<(), PluginError> {
    let info = registry::load_file(file)?;
    let name = info.name.clone();
    let kind = info.kind;
    writeln!(
        out,
        "{name}: {kind} plugin, exports {}/{kind}@{}",
        registry::WIT_PACKAGE,
        info.wit_version
    )
    .map_err(io)?;
    let events = EventBus::new();
    let host = PluginHost::with_plugin(info, events.clone())?;
    let subject = format!("/plugins/{name}");
    let mut failures = Vec::new();
    match kind {
        PluginKind::Segmenter => {
            let mut s = host.segmenter(Some(&name), SegmenterConfig::new(30 * 90_000), &subject)?;
            let start = Ticks90k::from_secs(1_700_000_000);
            let mut cuts = Vec::new();
            let mut fragments = 0;
            for i in 0..(75 * 30) {
                match s.on_frame(&frame(i, start)) {
                    Decision::Segment => cuts.push(f64::from(i) / 30.0),
                    Decision::Fragment => fragments += 1,
                    Decision::None => {}
                }
            }
            writeln!(out, "  75 s at 30 fps, 1 s GOP, segmentLength 30 s: segments start at {cuts:?} s, {fragments} fragment cuts").map_err(io)?;
            if cuts.len() < 3 {
                failures.push(format!("expected segments at 0, 30 and 60 s, got {cuts:?}"));
            }
        }
        PluginKind::Evictor => {
            let mut e = host.evictor(Some(&name), &subject)?;
            let entries = entries(10);
            let budget = Budget {
                limit_bytes: 8_000_000,
                used_bytes: 10_000_000,
                incoming_bytes: 500_000,
            };
            let ids = e.choose(&entries, budget);
            writeln!(
                out,
                "  10 MB cached, 8 MB limit, 0.5 MB incoming: evicts {ids:?}"
            )
            .map_err(io)?;
            let none = e.choose(
                &entries,
                Budget {
                    limit_bytes: 20_000_000,
                    ..budget
                },
            );
            if !none.is_empty() {
                writeln!(
                    out,
                    "  note: evicts {none:?} although the cache is under budget"
                )
                .map_err(io)?;
            }
        }
        PluginKind::Formatter => {
            let mut f = host.formatter(Some(&name), &subject)?;
            let info = f.info().clone();
            writeln!(out, "  format: .{} ({})", info.extension, info.content_type).map_err(io)?;
            let init = f.init(&[h264_track()])?;
            let frag = f.fragment(1, &samples(30))?;
            let bytes = |p: &[Piece]| {
                p.iter()
                    .map(|p| if let Piece::Bytes(b) = p { b.len() } else { 0 })
                    .sum::<usize>()
            };
            let ranges = frag
                .iter()
                .filter(|p| matches!(p, Piece::Payload(_)))
                .count();
            writeln!(
                out,
                "  init: {} bytes; fragment of 30 samples: {} bytes + {ranges} payload ranges",
                bytes(&init),
                bytes(&frag)
            )
            .map_err(io)?;
            if ranges == 0 {
                failures.push("the fragment plan splices no sample payload".into());
            }
        }
    }
    for e in events.recent() {
        if let crate::events::Body::PluginFault(fault) = e.body {
            failures.push(fault.detail);
        }
    }
    failures.dedup();
    if failures.is_empty() {
        writeln!(out, "{name}: OK").map_err(io)?;
        Ok(())
    } else {
        Err(PluginError::ContractFailed {
            plugin: name,
            failures: failures.join("; "),
        })
    }
}

fn bench(frames: u32, out: &mut dyn Write) -> Result<(), PluginError> {
    const CAMERAS: f64 = 100.0;
    const FPS: f64 = 30.0;
    let host = PluginHost::new(None, EventBus::new())?;
    let mut s = host.segmenter(None, SegmenterConfig::new(30 * 90_000), "/bench")?;
    let start = Ticks90k::from_secs(1_700_000_000);
    let t = Instant::now();
    for i in 0..frames {
        std::hint::black_box(s.on_frame(&frame(i, start)));
    }
    let seg_ns = t.elapsed().as_nanos() as f64 / f64::from(frames);

    let mut f = host.formatter(None, "/bench")?;
    f.init(&[h264_track()])?;
    let batch = samples(30);
    let rounds = (frames / 30).max(100);
    let t = Instant::now();
    for seq in 0..rounds {
        std::hint::black_box(f.fragment(seq + 1, &batch)?);
    }
    let frag_ns = t.elapsed().as_nanos() as f64 / f64::from(rounds);

    let mut e = host.evictor(None, "/bench")?;
    let inventory = entries(1000);
    let budget = Budget {
        limit_bytes: 990_000_000,
        used_bytes: 1_000_000_000,
        incoming_bytes: 1_000_000,
    };
    let t = Instant::now();
    for _ in 0..1000 {
        std::hint::black_box(e.choose(&inventory, budget));
    }
    let evict_ns = t.elapsed().as_nanos() as f64 / 1000.0;

    // Per second at 100 cameras x 30 fps: one segmenter call per frame, one fragment per
    // 1-second GOP per camera.
    let seg_share = CAMERAS * FPS * seg_ns / 1e9 * 100.0;
    let frag_share = CAMERAS * frag_ns / 1e9 * 100.0;
    let w = |e| io(e);
    writeln!(
        out,
        "segmenter-gop  on_frame:          {seg_ns:>10.0} ns/call"
    )
    .map_err(w)?;
    writeln!(
        out,
        "format-cmaf    fragment (30 smp): {frag_ns:>10.0} ns/fragment"
    )
    .map_err(w)?;
    writeln!(
        out,
        "evict-oldest   choose (1000 ent): {evict_ns:>10.0} ns/call"
    )
    .map_err(w)?;
    writeln!(
        out,
        "100 cameras x 30 fps: segmenter {seg_share:.2} % + formatter {frag_share:.2} % = {:.2} % of one core",
        seg_share + frag_share
    )
    .map_err(w)?;
    Ok(())
}
