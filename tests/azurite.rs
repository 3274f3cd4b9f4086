//! Azurite (the Azure Storage emulator, blob service only) as a test peer on loopback.
//!
//! Installed from npm into `tests/node_modules` by `tests/run.sh` (`npm ci`, version pinned in
//! `tests/package-lock.json`). A test that needs it calls [`Azurite::start`], which fails with a
//! clear message when it is missing: tests never skip silently.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Azurite's well-known development account and key (public, documented).
pub const ACCOUNT: &str = mediagraph::upload::config::DEV_ACCOUNT;
pub const ACCOUNT_KEY: &str = mediagraph::upload::config::DEV_ACCOUNT_KEY;

/// A running Azurite blob service with its own data directory and port.
pub struct Azurite {
    child: Option<Child>,
    port: u16,
    data: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite on a free loopback port with a fresh data directory.
    pub fn start() -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let port = free_port()?;
        let mut azurite = Self {
            child: None,
            port,
            data,
        };
        azurite.restart()?;
        Ok(azurite)
    }

    /// (Re)starts the service on the same port and data directory (blobs persist).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let bin = binary();
        if !bin.exists() {
            bail!(
                "Azurite is not installed at {}: run `npm ci --prefix tests` (tests/run.sh does this)",
                bin.display()
            );
        }
        let log = std::fs::File::create(self.data.path().join("azurite.log"))?;
        let child = Command::new(&bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
                "--location",
            ])
            .arg(self.data.path().join("data"))
            .args(["--skipApiVersionCheck", "--silent", "--loose"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "Azurite exited with {status} before listening; log: {}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "Azurite did not listen on 127.0.0.1:{} within 60 s; log: {}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Stops the service (an outage as the uploader sees it). SIGTERM first so Azurite saves
    /// its metadata (the cloud does not forget blobs in an outage), SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Azurite's data directory (`--location` is `data/` inside it).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`
    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    pub fn connection_string(&self) -> String {
        connection_string(&self.blob_endpoint(), ACCOUNT_KEY)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("azurite.log")).unwrap_or_default()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection string for an account at `endpoint` with `key`.
pub fn connection_string(endpoint: &str, key: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};BlobEndpoint={endpoint};"
    )
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Also compiled into `host/tests` (`#[path]`), whose manifest directory is `host/`: the path
/// goes through the `tests/` directory so it holds for both.
fn binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/node_modules/.bin/azurite-blob")
}
