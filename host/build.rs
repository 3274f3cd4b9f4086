//! Builds the default plugins (the `plugins/` workspace) for wasm32-wasip2 so the host can embed
//! them with `include_bytes!`: `cargo build`, `cargo run` and `cargo test` need no extra step.
//!
//! The nested cargo uses its own target dir (`plugins/target`), so it never waits on the lock of
//! the outer build's target dir.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// The default plugins, as `plugins/` members; each becomes `<crate_name>.wasm`.
const PLUGINS: &[&str] = &[
    "segmenter-gop",
    "evict-oldest",
    "evict-uploaded-first",
    "format-cmaf",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    watch(&root.join("wit"));
    watch(&plugins);

    require_target();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(plugins.join("target"));
    for p in PLUGINS {
        cmd.args(["-p", p]);
    }
    // The outer build's settings are for the host target; none of them may leak into the
    // plugin build (clippy's wrapper, host rustflags, an overridden target dir).
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_PATH",
    ] {
        cmd.env_remove(var);
    }
    // This script's stdout is read as cargo directives; the nested build's output is not one.
    cmd.stdout(std::io::stderr());
    let status = cmd.status().expect("failed to run cargo for plugins/");
    if !status.success() {
        panic!(
            "building the default plugins failed (cargo build --release --target {TARGET} in plugins/)"
        );
    }

    let built = plugins.join("target").join(TARGET).join("release");
    for p in PLUGINS {
        let file = format!("{}.wasm", p.replace('-', "_"));
        fs::copy(built.join(&file), out_dir.join(&file))
            .unwrap_or_else(|e| panic!("copying {file} from {}: {e}", built.display()));
    }
}

/// Fails with the fix when the wasm32-wasip2 standard library is not installed.
fn require_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot
        && !sysroot.join("lib/rustlib").join(TARGET).exists()
    {
        panic!(
            "the Rust target {TARGET} is not installed, but the default plugins are built for it.\n\
             Fix: rustup target add {TARGET}"
        );
    }
}

/// Asks cargo to rerun this script when anything under `dir` changes, skipping build output
/// (watching `plugins/target` would rerun the script after every build).
fn watch(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            // A directory entry also catches files added to it; its subtree holds no output.
            println!("cargo:rerun-if-changed={}", path.display());
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
