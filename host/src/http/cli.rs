//! The front door's command-line flags, shared by `run` and `demo`, and starting it with the
//! playback routes over a store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{ApiToken, FrontDoor, HttpError, Limits};
use crate::playback::server::Playback;
use crate::topology::AssetName;
use crate::upload::AssetStore;

/// The HTTP front door of `run` (and `demo`): playback of the run's assets in the configured
/// asset store.
#[derive(clap::Args, Debug, Default)]
pub struct HttpArgs {
    /// Serve the playback page and API for this run's assets on ADDR:PORT (or a bare port on
    /// 127.0.0.1; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", value_parser = super::parse_listen_addr)]
    pub http: Option<SocketAddr>,
    /// File holding the API token every HTTP request must then carry
    /// (`Authorization: Bearer TOKEN`, or `?token=` on playback URLs); needed to listen on a
    /// non-loopback address.
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
}

impl HttpArgs {
    /// Binds the front door with the playback routes over `store` (checking the address and
    /// token first) and serves it until `stop` completes. Returns the bound address.
    pub async fn start(
        &self,
        addr: SocketAddr,
        store: Arc<dyn AssetStore>,
        assets: Vec<AssetName>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
        let token = self
            .api_token_file
            .as_deref()
            .map(ApiToken::from_file)
            .transpose()?;
        let door = FrontDoor::new(Limits::default(), token).playback(Playback::new(store, assets));
        let listener = door.bind(addr).await?;
        let bound = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        let task = tokio::spawn(async move {
            if let Err(e) = door.serve(listener, stop).await {
                tracing::error!("http: {e}");
            }
        });
        Ok((bound, task))
    }
}
