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

/// Makes sure the wasm32-wasip2 standard library is installed, so that the README's first
/// command works on a machine that has only rustup and cargo: when it is missing, adds it with
/// `rustup target add` for the toolchain running this build (rustup names a toolchain after
/// its sysroot directory) and says so; without rustup, fails with the command to run.
///
/// A `rust-toolchain.toml` listing the target is not used instead: rustup installs listed
/// targets only where it may auto-install (not under RUSTUP_AUTO_INSTALL=0, as on our CI
/// machines), and a pinned channel that is not installed breaks the build there.
fn require_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else { return };
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return;
    }
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    if let Some(toolchain) = sysroot.file_name() {
        add.arg("--toolchain").arg(toolchain);
    }
    let added = add
        .stdout(std::io::stderr())
        .status()
        .is_ok_and(|s| s.success());
    if added && sysroot.join("lib/rustlib").join(TARGET).exists() {
        println!(
            "cargo:warning=installed the Rust target {TARGET} (rustup target add {TARGET}): \
             the default plugins are built for it"
        );
        return;
    }
    panic!(
        "the Rust target {TARGET} is not installed, but the default plugins are built for it, \
         and `rustup target add {TARGET}` did not install it.\n\
         Fix: rustup target add {TARGET}"
    );
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
