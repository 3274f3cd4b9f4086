//! Builds the hostile plugins of `host/tests/hostile/` (a small wasm workspace) for the tests
//! that feed them to the host: the plugin contract tests and the recorder's end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds the hostile workspace once and returns a plugin directory holding its components.
pub fn hostile_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
        let target = ws.join("target");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&ws)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("running cargo to build host/tests/hostile");
        assert!(
            status.success(),
            "building host/tests/hostile for wasm32-wasip2 failed (rustup target add wasm32-wasip2?)"
        );
        let dir = target.join("plugin-dir");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["seg_hostile", "evict_hostile", "fmt_hostile", "not_a_plugin", "wrong_version"] {
            let file = format!("{name}.wasm");
            std::fs::copy(target.join("wasm32-wasip2/release").join(&file), dir.join(&file)).unwrap();
        }
        dir
    })
}
