use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::Request;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::*;
use crate::playback::server::SegmentQuery;

const TOKEN: &str = "0123456789abcdef-secret";

fn token() -> ApiToken {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    ApiToken::from_file(&file).unwrap()
}

/// Stand-ins for the rooms behind the door: a playback-shaped route that reports the
/// segment query it was given, and a control route that echoes its body.
fn rooms() -> Router {
    Router::new()
        .route(
            "/assets/{asset}/x",
            get(
                |q: Option<axum::extract::Extension<SegmentQuery>>| async move {
                    q.map(|axum::extract::Extension(q)| q.0).unwrap_or_default()
                },
            ),
        )
        .route("/", get(|| async { "page" }))
        .route("/methods", post(|body: Bytes| async move { body }))
}

fn door(token: Option<ApiToken>, limits: Limits) -> Router {
    FrontDoor::new(limits, token).merge(rooms()).into_router()
}

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn call(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<body error: {e}>"));
    Answer {
        status,
        headers,
        body,
    }
}

fn get_req(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut r = Request::builder().uri(uri).header("host", "127.0.0.1:9600");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn health_answers_and_unknown_routes_are_404() {
    let router = door(None, Limits::default());
    let a = call(&router, get_req("/healthz", &[])).await;
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    let a = call(&router, get_req("/nothing/here", &[])).await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn a_token_is_required_on_every_route_when_configured() {
    let router = door(Some(token()), Limits::default());
    for uri in ["/healthz", "/", "/assets/cam/x", "/nothing"] {
        let a = call(&router, get_req(uri, &[])).await;
        assert_eq!(a.status, 401, "{uri}");
        assert_eq!(a.headers["www-authenticate"], "Bearer realm=\"mediagraph\"");
        assert!(!a.body.contains(TOKEN), "{}", a.body);
        let wrong = call(
            &router,
            get_req(uri, &[("authorization", "Bearer 0123456789abcdef")]),
        )
        .await;
        assert_eq!(wrong.status, 401, "{uri}");
    }
    let bearer = format!("Bearer {TOKEN}");
    let a = call(&router, get_req("/healthz", &[("authorization", &bearer)])).await;
    assert_eq!(a.status, 200);
    let a = call(
        &router,
        Request::post("/methods")
            .header("authorization", &bearer)
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, "{}"));

    // `?token=` opens playback routes only.
    let a = call(&router, get_req(&format!("/healthz?token={TOKEN}"), &[])).await;
    assert_eq!(a.status, 401);
    let a = call(
        &router,
        get_req(&format!("/assets/cam/x?token={TOKEN}"), &[]),
    )
    .await;
    assert_eq!(a.status, 200);
    let a = call(&router, get_req("/assets/cam/x?token=wrong", &[])).await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn the_page_hands_out_a_playback_key_that_is_not_the_token() {
    let router = door(Some(token()), Limits::default());
    let a = call(&router, get_req(&format!("/?token={TOKEN}"), &[])).await;
    assert_eq!((a.status, a.body.as_str()), (200, "page"));
    let cookie = a.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let key = pair.split_once('=').unwrap().1.to_owned();

    // The page's own requests carry the cookie; it opens playback routes and nothing else.
    let a = call(&router, get_req("/assets/cam/x", &[("cookie", &pair)])).await;
    assert_eq!(a.status, 200);
    // Segment URLs of playlists carry the key, never the token.
    assert_eq!(a.body, format!("token={key}"));
    assert!(!a.body.contains(TOKEN));
    let a = call(&router, get_req(&format!("/assets/cam/x?token={key}"), &[])).await;
    assert_eq!(a.status, 200);
    let a = call(&router, get_req("/healthz", &[("cookie", &pair)])).await;
    assert_eq!(a.status, 401);
    let a = call(
        &router,
        get_req("/healthz", &[("authorization", &format!("Bearer {key}"))]),
    )
    .await;
    assert_eq!(a.status, 401, "the key is not the token");
    // Without a token nothing is added to segment URLs.
    let open = door(None, Limits::default());
    let a = call(&open, get_req("/assets/cam/x", &[])).await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
}

#[tokio::test]
async fn without_a_token_only_local_host_names_are_served() {
    let router = door(None, Limits::default());
    for host in [
        "127.0.0.1:8080",
        "localhost",
        "LOCALHOST:1",
        "[::1]:8080",
        "10.1.2.3",
    ] {
        let r = Request::get("/healthz")
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&router, r).await.status, 200, "{host}");
    }
    for host in [
        "rebound.example:8080",
        "localhost.evil.example",
        "[nonsense]:1",
    ] {
        let r = Request::get("/healthz")
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&router, r).await.status, 403, "{host}");
    }
    // With a token the Host does not matter (the token is the check).
    let router = door(Some(token()), Limits::default());
    let r = Request::get("/healthz")
        .header("host", "camera-box.example")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&router, r).await.status, 200);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..Limits::default()
    };
    let router = door(None, limits);
    let post = |n: usize| {
        Request::post("/methods")
            .header("host", "127.0.0.1")
            .body(Body::from(vec![b'x'; n]))
            .unwrap()
    };
    assert_eq!(call(&router, post(1000)).await.status, 200);
    assert_eq!(call(&router, post(1001)).await.status, 413);
}

#[test]
fn token_files_must_hold_a_usable_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    for (content, why) in [
        ("short\n", "at least 16"),
        ("with a space inside it\n", "printable ASCII"),
        ("", "at least 16"),
    ] {
        std::fs::write(&file, content).unwrap();
        let e = ApiToken::from_file(&file).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains("/t"), "{e}");
    }
    let e = ApiToken::from_file(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
    assert_eq!(format!("{:?}", token()), "ApiToken(<redacted>)");
}

#[tokio::test]
async fn a_non_loopback_address_is_refused_without_a_token() {
    let open = FrontDoor::new(Limits::default(), None);
    for addr in ["0.0.0.0:0", "[::]:8080", "192.0.2.1:80"] {
        let e = open.bind(addr.parse().unwrap()).await.unwrap_err();
        assert!(matches!(e, HttpError::ExposedWithoutToken { .. }), "{e}");
        assert!(e.to_string().contains("--api-token-file"), "{e}");
    }
    // serve checks its listener's address the same way (nothing here binds off loopback).
    assert!(check_exposure("0.0.0.0:80".parse().unwrap(), false).is_err());
    assert!(check_exposure("0.0.0.0:80".parse().unwrap(), true).is_ok());
    assert!(check_exposure("127.0.0.1:80".parse().unwrap(), false).is_ok());
    assert!(check_exposure("[::1]:80".parse().unwrap(), false).is_ok());
}

/// Serves `rooms()` plus a route streaming `big` bytes on a real loopback listener.
async fn live(limits: Limits, big: usize) -> SocketAddr {
    let stream = Router::new().route(
        "/big",
        get(move || async move {
            let chunks = futures::stream::iter(
                (0..big / 65536).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 65536]))),
            );
            Body::from_stream(chunks)
        }),
    );
    let door = FrontDoor::new(limits, None).merge(rooms()).merge(stream);
    let listener = door
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(door.serve(listener, std::future::pending()));
    addr
}

async fn get_health(addr: SocketAddr) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let addr = live(
        Limits {
            max_connections: 1,
            ..Limits::default()
        },
        0,
    )
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // The first connection is kept alive and holds the only slot.
    let second = tokio::spawn(get_health(addr));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "a second connection was served");
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("served once the first closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn slow_heads_and_stalled_readers_lose_their_connection() {
    let addr = live(
        Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        256 << 20,
    )
    .await;
    // A head that never completes is closed.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut out))
        .await
        .expect("the server closed the slow connection")
        .ok();
    // A client that asks for a large body and never reads frees its slot: the next client
    // (the only slot) is served.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), get_health(addr))
        .await
        .expect("the stalled connection was closed and its slot reused");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(stalled);
}

#[tokio::test]
async fn oversized_or_garbage_heads_are_refused_and_the_server_goes_on() {
    let addr = live(Limits::default(), 0).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"NONSENSE\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    let mut c = TcpStream::connect(addr).await.unwrap();
    // Exactly the limit and no end of head: the server has read all it was sent when it
    // answers, so no reset from unread bytes hides the answer.
    let start = "GET / HTTP/1.1\r\nX: ";
    let huge = format!("{start}{}", "a".repeat(MAX_HEAD_BYTES - start.len()));
    let _ = c.write_all(huge.as_bytes()).await;
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    assert!(get_health(addr).await.starts_with("HTTP/1.1 200"));
}

#[test]
fn listen_addresses_parse_as_addr_port_or_bare_port() {
    assert_eq!(
        parse_listen_addr("8080").unwrap(),
        SocketAddr::from(([127, 0, 0, 1], 8080))
    );
    assert_eq!(
        parse_listen_addr("[::1]:9").unwrap(),
        "[::1]:9".parse::<SocketAddr>().unwrap()
    );
    assert!(parse_listen_addr("host:80").is_err());
}
