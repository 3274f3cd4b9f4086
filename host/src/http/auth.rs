//! Who may use the front door.
//!
//! With an API token every route needs `Authorization: Bearer <token>`. Playback routes (the
//! page, `/assets...`) also take the token as `?token=` (players cannot always send headers),
//! or the *playback key*: an HMAC of the token that the server hands out instead of the token
//! itself, as an HttpOnly cookie with the page (so the page's own requests and its `<video>`
//! carry it) and in the segment URLs of HLS playlists (so players fetch segments). The key
//! opens playback routes only, and the token never appears in an answer. Comparisons are
//! constant-time over SHA-256 digests, so neither content nor length leaks through timing.
//!
//! Without a token the server only listens on loopback (checked at start), and answers only
//! requests whose `Host` is an IP literal or `localhost`: a web page the operator visits
//! cannot read footage through a DNS name rebound to 127.0.0.1.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::HttpError;
use crate::playback::server::SegmentQuery;

/// The cookie that carries the playback key.
const COOKIE: &str = "mediagraph_playback";
/// The query parameter players may use.
const QUERY: &str = "token";

/// The API token, kept only as what is needed to check it: its digest and the playback key.
pub struct ApiToken {
    digest: [u8; 32],
    /// Hex HMAC-SHA256 of a fixed label under the token: derived, not the token.
    playback_key: String,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// Reads the token from `path`: the file's content without surrounding whitespace,
    /// visible ASCII only (it travels in a header), at least 16 characters.
    pub fn from_file(path: &Path) -> Result<Self, HttpError> {
        Ok(Self::new(read_token_file(path)?.as_bytes()))
    }

    fn new(token: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(token).expect("HMAC takes any key length");
        mac.update(b"mediagraph playback key v1");
        let playback_key = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            digest: Sha256::digest(token).into(),
            playback_key,
        }
    }

    fn is_token(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }

    fn is_playback_key(&self, presented: &str) -> bool {
        let a: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let b: [u8; 32] = Sha256::digest(self.playback_key.as_bytes()).into();
        a.ct_eq(&b).into()
    }
}

/// The token in `path`, for a client to send (`mediagraph ops`): the file's content without
/// surrounding whitespace, visible ASCII only (it travels in a header), at least 16
/// characters. Errors never show the file's content.
pub fn read_token_file(path: &Path) -> Result<String, HttpError> {
    let bad = |why: &str| HttpError::TokenFile {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let text = std::fs::read(path).map_err(|e| bad(&format!("cannot read it: {e}")))?;
    let token = text.trim_ascii();
    if token.len() < 16 {
        return Err(bad(
            "the token must be at least 16 characters (e.g. `openssl rand -hex 32`)",
        ));
    }
    if !token.iter().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "the token must be printable ASCII without spaces (it is sent in a header)",
        ));
    }
    Ok(String::from_utf8_lossy(token).into_owned())
}

/// The page and what it reads: the routes a player may open with `?token=` or the key.
fn is_playback(path: &str) -> bool {
    path == "/"
        || path == "/index.html"
        || path == "/assets"
        || path.starts_with("/assets/")
        || path.starts_with("/vendor/")
}

/// The token check (or, without a token, the Host check) in front of every route.
pub(super) async fn check(
    State(token): State<Option<Arc<ApiToken>>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return match request.headers().get(header::HOST).map(HeaderValue::to_str) {
            Some(Ok(host)) if !is_local_host(host) => refuse(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "without an API token only requests to a loopback address or localhost are served",
            ),
            _ => next.run(request).await,
        };
    };
    let path = request.uri().path();
    let playback = is_playback(path);
    let page = path == "/" || path == "/index.html";
    let bearer = request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "))
        .any(|t| token.is_token(t.trim()));
    let allowed = bearer
        || (playback
            && (query_values(request.uri().query())
                .any(|t| token.is_token(&t) || token.is_playback_key(&t))
                || cookie_values(&request).any(|k| token.is_playback_key(k))));
    if !allowed {
        let mut r = refuse(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "this server requires an API token: send `Authorization: Bearer <token>` (playback \
             routes also take `?token=`)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"mediagraph\""),
        );
        return r;
    }
    if playback {
        request
            .extensions_mut()
            .insert(SegmentQuery(format!("{QUERY}={}", token.playback_key)));
    }
    let mut response = next.run(request).await;
    if page && response.status().is_success() {
        let cookie = format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            token.playback_key
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The decoded values of `token=` in a raw query.
fn query_values(query: Option<&str>) -> impl Iterator<Item = String> + '_ {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == QUERY)
        .filter_map(|(_, v)| crate::playback::decode_component(v))
}

fn cookie_values(request: &Request) -> impl Iterator<Item = &str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// An IP literal (`127.0.0.1:8080`, `[::1]:8080`) or `localhost`: names no DNS answer can
/// point elsewhere.
fn is_local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
