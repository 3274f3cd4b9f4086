//! Starting a sink off the runtime thread: the one thread every camera shares (ADR 0002) must
//! keep running while a sink opens its cache and compiles its plugins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::plugin::PluginInfo;
use crate::plugin::registry;
use crate::upload::config::StoreArgs;

const TOPOLOGY: &str = include_str!("../../../topologies/cvr-asset/topology.json");
const INSTANCE: &str = include_str!("../../../topologies/cvr-asset/instance.json");

/// The embedded default segmenter under its own name, with a custom section that makes its
/// bytes (and so the runtime's compile cache key) new to this process: loading it compiles it,
/// whatever other tests compiled before. A component may carry custom sections anywhere.
fn segmenter_never_compiled_before() -> PluginInfo {
    let mut info = registry::embedded()
        .into_iter()
        .find(|p| p.name == registry::DEFAULT_SEGMENTER)
        .expect("the default segmenter is embedded");
    let nonce = format!("{:?}{:?}", SystemTime::now(), std::thread::current().id());
    let name = b"mediagraph-test-nonce";
    let payload_len = 1 + name.len() + nonce.len();
    let mut wasm = info.wasm.to_vec();
    wasm.push(0); // custom section id
    leb128(&mut wasm, payload_len);
    leb128(&mut wasm, name.len());
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(nonce.as_bytes());
    info.wasm = wasm.into();
    info
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_sink_compiling_its_plugins_does_not_stall_the_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    let events = EventBus::new();
    let plugins =
        Arc::new(PluginHost::with_plugin(segmenter_never_compiled_before(), events).unwrap());
    let graph = crate::topology::resolve(
        TOPOLOGY,
        Some(INSTANCE),
        &[],
        plugins.as_ref(),
        SystemTime::now(),
    )
    .unwrap();
    let options = RunOptions {
        data_dir: Some(dir.path().to_owned()),
        progress_every: Duration::from_secs(60),
        upload: StoreArgs::default()
            .setup(&dir.path().join("assets"))
            .unwrap(),
    };
    let sink = sinks(&graph)[0];

    // A heartbeat on the same (only) runtime thread: the longest it went without running is
    // how long the thread was held.
    let longest_stall_us = Arc::new(AtomicU64::new(0));
    let heartbeat = tokio::spawn({
        let longest = longest_stall_us.clone();
        async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let now = Instant::now();
                let stall = u64::try_from((now - last).as_micros()).unwrap_or(u64::MAX);
                longest.fetch_max(stall, Ordering::Relaxed);
                last = now;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;

    let began = Instant::now();
    let started = start_sink(&graph, sink, &plugins, &options, "/test/sink")
        .await
        .unwrap();
    let took = began.elapsed();
    tokio::time::sleep(Duration::from_millis(20)).await;
    heartbeat.abort();
    let cache = started.cache.clone();
    drop(started);
    tokio::task::spawn_blocking(move || cache.close())
        .await
        .unwrap()
        .unwrap();

    let longest = Duration::from_micros(longest_stall_us.load(Ordering::Relaxed));
    // Compiling the segmenter is real work (cranelift); without it this test shows nothing.
    assert!(
        took >= Duration::from_millis(100),
        "starting the sink took only {took:?}: nothing was compiled"
    );
    // Held for the compile, the heartbeat would have stalled for about all of `took`.
    assert!(
        longest < took / 2,
        "the runtime thread was held for {longest:?} of the sink's {took:?} start"
    );
}
