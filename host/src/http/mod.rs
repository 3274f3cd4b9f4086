//! HTTP room: the one front door every HTTP route of the process is served through.
//!
//! Owns the listener, the connection loop (hyper's HTTP/1.1 server under axum's router), the
//! limits (request body size, concurrent connections, header-read and idle timeouts), the API
//! token check and `GET /healthz`. Other rooms hand it an [`axum::Router`] each (playback's
//! from [`crate::playback::server::router`], the service's control plane) and it merges them
//! under one set of limits and one authentication rule. It must not know what the routes do:
//! it serves them, refuses what breaks a limit or lacks the token, and never logs a request
//! target, header or token.
//!
//! ```ignore
//! let door = FrontDoor::new(limits, token).playback(playback).merge(service_routes);
//! let listener = door.bind(addr).await?;   // refuses a non-loopback address without a token
//! door.serve(listener, shutdown).await?;
//! ```

mod auth;
pub mod cli;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use auth::{ApiToken, read_token_file};

/// Largest request head (request line and headers) read; a larger one is answered 431.
const MAX_HEAD_BYTES: usize = 16 << 10;
/// How long a stop waits for requests in flight before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the front door cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to listen on {addr} without an API token: a non-loopback address exposes every \
         route to the network; give --api-token-file FILE, or listen on a loopback address such \
         as 127.0.0.1"
    )]
    ExposedWithoutToken { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("API token file {}: {why}", path.display())]
    TokenFile { path: PathBuf, why: String },
}

/// What one client may cost the process. The defaults suit an edge box whose recorder shares
/// the file-descriptor limit with the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Connections served at once; further clients wait in the listen backlog, so a flood of
    /// idle connections cannot use up the descriptors the recorder needs.
    pub max_connections: usize,
    /// Time a client has to send a complete request head, including the wait for the next
    /// request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// A response write or request body read that makes no progress for this long closes the
    /// connection (a client that stops reading cannot hold a connection forever). Waiting for
    /// a slow handler is not idle: nothing is owed to the client yet.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The routes of every room under one set of limits and one authentication rule.
pub struct FrontDoor {
    router: Router,
    limits: Limits,
    token: Option<Arc<ApiToken>>,
}

impl FrontDoor {
    /// A front door serving only `GET /healthz` until routers are merged in.
    pub fn new(limits: Limits, token: Option<ApiToken>) -> Self {
        Self {
            router: Router::new().route("/healthz", get(healthz)),
            limits,
            token: token.map(Arc::new),
        }
    }

    /// Adds a room's routes (paths must not overlap those already merged: axum panics on a
    /// duplicate route, which is a programming error caught by any test that builds it).
    pub fn merge(mut self, routes: Router) -> Self {
        self.router = self.router.merge(routes);
        self
    }

    /// Adds the playback routes (the page, availableMedia, HLS, blobs) over `playback`.
    pub fn playback(self, playback: Arc<crate::playback::server::Playback>) -> Self {
        self.merge(crate::playback::server::router(playback))
    }

    /// Binds `addr` (port 0 picks a free one), refusing a non-loopback address when no token
    /// protects the routes.
    pub async fn bind(&self, addr: SocketAddr) -> Result<TcpListener, HttpError> {
        check_exposure(addr, self.token.is_some())?;
        TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })
    }

    /// The complete router with the token check, the Host check and the body limits, for
    /// serving or for in-process tests (`tower::ServiceExt::oneshot`).
    pub fn into_router(self) -> Router {
        let limits = &self.limits;
        self.router
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
            .layer(axum::middleware::from_fn_with_state(
                self.token.clone(),
                auth::check,
            ))
            .layer(DefaultBodyLimit::max(limits.max_body_bytes))
            .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
            .layer(RequestBodyTimeoutLayer::new(limits.idle_timeout))
    }

    /// Serves connections on `listener` until `shutdown` completes, then stops accepting and
    /// gives requests in flight a few seconds to finish. Refuses a non-loopback listener when
    /// no token protects the routes, as [`FrontDoor::bind`] does.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), HttpError> {
        let addr = listener.local_addr().map_err(|source| HttpError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        check_exposure(addr, self.token.is_some())?;
        let limits = self.limits.clone();
        let service = TowerToHyperService::new(self.into_router());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break, // never closed
                },
                () = &mut shutdown => break,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("http: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let mut io = tokio_io_timeout::TimeoutStream::new(stream);
            io.set_write_timeout(Some(limits.idle_timeout));
            let conn = http.serve_connection(TokioIo::new(Box::pin(io)), service.clone());
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("http: connection closed: {e}");
                }
                drop(permit);
            });
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("http: requests still in flight after {SHUTDOWN_GRACE:?}; closing");
        }
        Ok(())
    }
}

/// A non-loopback address without a token would serve every asset and method to the network.
fn check_exposure(addr: SocketAddr, has_token: bool) -> Result<(), HttpError> {
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(HttpError::ExposedWithoutToken { addr })
    }
}

/// Process alive: answered by the front door itself, whatever the rooms behind it do.
async fn healthz() -> impl IntoResponse {
    "ok\n"
}

/// Parses `--http` style addresses: `ADDR:PORT`, or a bare port on 127.0.0.1.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<u16>()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        })
        .map_err(|_| format!("expected ADDR:PORT or PORT, got '{text}'"))
}

#[cfg(test)]
mod tests;
