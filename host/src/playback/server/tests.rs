use std::net::SocketAddr;

use axum::http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::*;
use crate::http::{FrontDoor, Limits};
use crate::upload::local::LocalStore;
use crate::upload::{SegmentFacts, SegmentUpload};

fn boxed(kind: &[u8; 4], body: usize, fill: u8) -> Vec<u8> {
    let mut b = ((body + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.resize(body + 8, fill);
    b
}

/// A local store holding one fMP4-shaped blob of asset `cam` (whose `moov` is larger than
/// the first header read, so finding the first `moof` takes a second ranged read); returns
/// the playback state, the blob's URL path and its bytes.
async fn store() -> (Arc<Playback>, String, Vec<u8>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut body = boxed(b"ftyp", 16, 1);
    body.extend(boxed(b"moov", 70_000, 2));
    body.extend(boxed(b"moof", 50, 3));
    body.extend(boxed(b"mdat", 200_000, 4));
    let seg = dir.path().join("seg.mp4");
    std::fs::write(&seg, &body).unwrap();
    let facts = SegmentFacts {
        asset: "cam".into(),
        run: 1,
        sequence: 0,
        start: Ticks90k::from_secs(1_700_000_000),
        end: Ticks90k::from_secs(1_700_000_030),
        codecs: "avc1.64001f".into(),
        extension: "mp4".into(),
    };
    let store = Arc::new(LocalStore::new(dir.path().join("assets")));
    store.prepare().await.unwrap();
    let blob = store
        .put_segment(SegmentUpload {
            facts,
            file: std::fs::File::open(&seg).unwrap(),
            bytes: body.len() as u64,
        })
        .await
        .unwrap();
    let assets = vec![
        AssetName::new("cam").unwrap(),
        AssetName::new("idle").unwrap(),
    ];
    let path = format!("/assets/cam/blobs/{}", BlobFile::of(&blob));
    (Playback::new(store, assets), path, body, dir)
}

const INIT: usize = 24 + 70_008;

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn call(playback: &Arc<Playback>, method: &str, uri: &str, range: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(r) = range {
        request = request.header("range", r);
    }
    let response = router(playback.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn blobs_and_their_parts_are_served_with_ranges() {
    let (pb, path, body, _dir) = store().await;

    let a = call(&pb, "GET", &path, None).await;
    assert_eq!((a.status, a.header("content-type")), (200, "video/mp4"));
    assert_eq!(a.header("content-length"), body.len().to_string());
    assert_eq!(a.header("accept-ranges"), "bytes");
    assert_eq!(a.body, body);

    let a = call(&pb, "GET", &format!("{path}/init.mp4"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, &body[..INIT]);

    let media_len = body.len() - INIT;
    let a = call(&pb, "GET", &format!("{path}/media.mp4"), Some("bytes=0-7")).await;
    assert_eq!(a.status, 206);
    assert_eq!(a.header("content-range"), format!("bytes 0-7/{media_len}"));
    assert_eq!(a.body, &body[INIT..INIT + 8]);

    let a = call(&pb, "GET", &format!("{path}/media.mp4"), Some("bytes=-5")).await;
    assert_eq!(a.status, 206);
    assert_eq!(a.body, &body[body.len() - 5..]);

    // A range across the streaming chunk size comes back whole and exact.
    let a = call(&pb, "GET", &path, Some("bytes=1000-150999")).await;
    assert_eq!(a.status, 206);
    assert_eq!(a.body, &body[1000..151_000]);

    let a = call(&pb, "GET", &path, Some(&format!("bytes={}-", body.len()))).await;
    assert_eq!(a.status, 416);
    assert_eq!(a.header("content-range"), format!("bytes */{}", body.len()));

    // Unparseable or multi-range: the whole blob (RFC 9110 allows ignoring Range).
    let a = call(&pb, "GET", &path, Some("bytes=0-1,5-6")).await;
    assert_eq!((a.status, a.body.len()), (200, body.len()));

    // HEAD: the GET's headers, no body.
    let a = call(&pb, "HEAD", &format!("{path}/media.mp4"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-length"), media_len.to_string());
    assert!(a.body.is_empty());

    let a = call(
        &pb,
        "GET",
        "/assets/cam/blobs/20231114T221320Z-r0000000009-s0000000000.mp4",
        None,
    )
    .await;
    assert_eq!(a.status, 404);
    assert!(String::from_utf8_lossy(&a.body).contains("BlobNotFound"));

    let a = call(&pb, "GET", &format!("{path}/other.mp4"), None).await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn a_blob_that_is_not_fragmented_has_no_parts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path().to_owned()));
    let file = "20231114T221320Z-r0000000001-s0000000000.mp4";
    std::fs::create_dir_all(dir.path().join("cam")).unwrap();
    let mut progressive = boxed(b"ftyp", 16, 1);
    progressive.extend(boxed(b"moov", 100, 2));
    progressive.extend(boxed(b"mdat", 100, 3));
    std::fs::write(dir.path().join("cam").join(file), &progressive).unwrap();
    let pb = Playback::new(store, Vec::new());
    let a = call(
        &pb,
        "GET",
        &format!("/assets/cam/blobs/{file}/init.mp4"),
        None,
    )
    .await;
    assert_eq!(a.status, 500);
    assert!(String::from_utf8_lossy(&a.body).contains("BlobNotPlayable"));
    let a = call(&pb, "GET", &format!("/assets/cam/blobs/{file}"), None).await;
    assert_eq!((a.status, a.body), (200, progressive));
}

#[tokio::test]
async fn listings_availability_and_playlists_are_answered() {
    let (pb, path, _, _dir) = store().await;
    let a = call(&pb, "GET", "/assets", None).await;
    assert_eq!(
        (a.status, a.body.as_slice()),
        (200, &br#"{"assets":["cam","idle"]}"#[..])
    );

    let a = call(
        &pb,
        "GET",
        "/assets/nobody/availableMedia?precision=year",
        None,
    )
    .await;
    assert_eq!(a.status, 404);

    // A served asset with nothing uploaded yet has no media, not no asset.
    let a = call(
        &pb,
        "GET",
        "/assets/idle/availableMedia?precision=full&startTime=2023-01-01T00:00:00Z&endTime=2023-01-02T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_slice()),
        (200, &br#"{"timeRanges":[]}"#[..])
    );

    let a = call(
        &pb,
        "GET",
        "/assets/cam/availableMedia?precision=year",
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, br#"{"timeRanges":[{"start":"2023","end":"2023"}]}"#);

    // `+` in a query value stays a `+` (RFC 3339 offsets), it is not a form-encoded space.
    let a = call(
        &pb,
        "GET",
        "/assets/cam/availableMedia?precision=full&startTime=2023-11-14T23:00:00+01:00&endTime=2023-11-15T00:00:00%2B01:00",
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(String::from_utf8_lossy(&a.body).contains("2023-11-14T22:13:20"));

    let a = call(&pb, "GET", "/assets/cam/availableMedia?precision=%zz", None).await;
    assert_eq!(a.status, 400);

    let a = call(
        &pb,
        "GET",
        "/assets/cam/segments?startTime=2023-11-14T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["segments"][0]["url"], path.as_str());

    let a = call(
        &pb,
        "GET",
        "/assets/cam/manifest(format=m3u8-aapl,startTime=2023-11-14T00:00:00Z,endTime=2023-11-15T00:00:00Z).m3u8",
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), "application/vnd.apple.mpegurl");
    let text = String::from_utf8(a.body).unwrap();
    assert!(text.contains(&format!("{path}/media.mp4\n")), "{text}");

    let a = call(&pb, "GET", "/assets/cam/manifest(format=mpd).m3u8", None).await;
    assert_eq!(a.status, 400);
    let a = call(&pb, "GET", "/assets/cam/unknown", None).await;
    assert_eq!(a.status, 404);
    let a = call(&pb, "GET", "/", None).await;
    assert!(a.header("content-type").starts_with("text/html"));
}

#[tokio::test]
async fn gaps_are_answered_from_the_stored_records_with_their_causes() {
    use crate::cache::{Gap, GapCause};
    let (pb, _, _, _dir) = store().await;
    let t = |s: i64| Ticks90k::from_secs(1_700_000_000 + s);
    let gaps = [
        Gap {
            start: t(30),
            end: t(95),
            cause: GapCause::CameraOffline,
        },
        Gap {
            start: t(400),
            end: t(402),
            cause: GapCause::Crash,
        },
    ];
    pb.store.put_gaps("cam", &gaps).await.unwrap();
    let range = |a: i64, b: i64| {
        format!(
            "/assets/cam/gaps?startTime={}&endTime={}",
            t(a).to_rfc3339_millis(),
            t(b).to_rfc3339_millis()
        )
    };
    let a = call(&pb, "GET", &range(0, 3600), None).await;
    assert_eq!(
        (a.status, a.header("content-type")),
        (200, "application/json")
    );
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"gaps": [
            {"start": t(30).to_rfc3339_millis(), "end": t(95).to_rfc3339_millis(), "cause": "CameraOffline"},
            {"start": t(400).to_rfc3339_millis(), "end": t(402).to_rfc3339_millis(), "cause": "Crash"},
        ]})
    );
    // Unclipped: a range inside the hole reports the whole gap.
    let a = call(&pb, "GET", &range(60, 61), None).await;
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["gaps"][0]["start"], t(30).to_rfc3339_millis());
    assert_eq!(v["gaps"].as_array().unwrap().len(), 1);
    let a = call(&pb, "GET", &range(100, 399), None).await;
    assert_eq!(a.body, br#"{"gaps":[]}"#);
    let a = call(
        &pb,
        "GET",
        "/assets/idle/gaps?startTime=2023-01-01&endTime=2023-01-02",
        None,
    )
    .await;
    assert_eq!((a.status, a.body.as_slice()), (200, &br#"{"gaps":[]}"#[..]));
    let a = call(&pb, "GET", "/assets/cam/gaps?startTime=2023-01-01", None).await;
    assert_eq!(a.status, 400);
    assert!(String::from_utf8_lossy(&a.body).contains("MissingParameter"));
    let a = call(
        &pb,
        "GET",
        "/assets/a.b/gaps?startTime=2023-01-01&endTime=2023-01-02",
        None,
    )
    .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn names_from_urls_never_reach_the_store_unchecked() {
    let (pb, _, _, _dir) = store().await;
    for target in [
        "/assets/..%2F..%2F/availableMedia?precision=year",
        "/assets/cam/blobs/..%2F..%2Fseg.mp4",
        "/assets/cam/blobs/%2e%2e/init.mp4",
        "/assets/cam/blobs/1234567%C3%A91234567-r0000000001-s0000000001.mp4",
        "/assets/cam/blobs/20231114T221320Z-r0000000001-s000000000%C3%A9.mp4",
        "/assets/cam/blobs/%FF",
        "/assets/a%00b/availableMedia?precision=year",
    ] {
        let a = call(&pb, "GET", target, None).await;
        assert_eq!(
            a.status,
            400,
            "{target}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    // A multi-byte asset name is a name like any other: not there, not refused.
    let target = "/assets/%C3%A9/blobs/20231114T221320Z-r0000000001-s0000000000.mp4";
    assert_eq!(call(&pb, "GET", target, None).await.status, 404);
}

#[test]
fn byte_ranges_follow_rfc_9110() {
    assert_eq!(byte_range("bytes=0-99", 1000), RangeAnswer::Part(0, 99));
    assert_eq!(byte_range("bytes=900-", 1000), RangeAnswer::Part(900, 999));
    assert_eq!(
        byte_range("bytes=900-5000", 1000),
        RangeAnswer::Part(900, 999)
    );
    assert_eq!(byte_range("bytes=-100", 1000), RangeAnswer::Part(900, 999));
    assert_eq!(byte_range("bytes=-5000", 1000), RangeAnswer::Part(0, 999));
    assert_eq!(byte_range("bytes=1000-", 1000), RangeAnswer::Unsatisfiable);
    assert_eq!(byte_range("bytes=-0", 1000), RangeAnswer::Unsatisfiable);
    assert_eq!(byte_range("bytes=5-2", 1000), RangeAnswer::Ignore);
    assert_eq!(byte_range("bytes=0-1,5-6", 1000), RangeAnswer::Ignore);
    assert_eq!(byte_range("items=0-1", 1000), RangeAnswer::Ignore);
    assert_eq!(byte_range("bytes=x-1", 1000), RangeAnswer::Ignore);
    assert_eq!(byte_range("bytes=0-", 0), RangeAnswer::Unsatisfiable);
}

#[test]
fn queries_are_split_and_decoded_without_form_rules() {
    let params =
        parse_query("precision=full&startTime=2020-01-01T00%3A00%3A00%2B01:00&flag&&x=a+b")
            .unwrap();
    assert_eq!(params[0], ("precision".into(), "full".into()));
    assert_eq!(
        params[1],
        ("startTime".into(), "2020-01-01T00:00:00+01:00".into())
    );
    assert_eq!(params[2], ("flag".into(), String::new()));
    assert_eq!(params[3], ("x".into(), "a+b".into()));
    assert!(parse_query("a=%zz").is_none());
    assert!(parse_query("a=%ff").is_none());
}

/// Reads one response (head + Content-Length body) from a kept-alive connection.
async fn read_response(stream: &mut TcpStream, head_only: bool) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    stream.read_exact(&mut body).await.unwrap();
    (head, body)
}

async fn send(stream: &mut TcpStream, method: &str, path: &str, extra: &str) {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
}

/// The routes behind the real front door: one kept-alive connection carries ranges, errors,
/// a refused method and a HEAD, then closes on request.
#[tokio::test]
async fn one_kept_alive_connection_serves_parts_ranges_and_errors() {
    let (pb, path, body, _dir) = store().await;
    let door = FrontDoor::new(Limits::default(), None).merge(router(pb));
    let listener = door
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(door.serve(listener, std::future::pending()));
    let mut c = TcpStream::connect(addr).await.unwrap();

    send(&mut c, "GET", &format!("{path}/init.mp4"), "").await;
    let (head, got) = read_response(&mut c, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(got, &body[..INIT]);

    send(
        &mut c,
        "GET",
        &format!("{path}/media.mp4"),
        "Range: bytes=0-7\r\n",
    )
    .await;
    let (head, got) = read_response(&mut c, false).await;
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(got, &body[INIT..INIT + 8]);

    send(
        &mut c,
        "GET",
        "/assets/nobody/availableMedia?precision=year",
        "",
    )
    .await;
    let (head, _) = read_response(&mut c, false).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    send(&mut c, "POST", "/", "Content-Length: 0\r\n").await;
    let (head, _) = read_response(&mut c, false).await;
    let lower = head.to_ascii_lowercase();
    assert!(
        head.starts_with("HTTP/1.1 405") && lower.contains("allow: ") && lower.contains("head"),
        "{head}"
    );

    // HEAD: the GET's headers, no body; then the connection closes on request.
    send(&mut c, "HEAD", &path, "Connection: close\r\n").await;
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(
        rest.to_ascii_lowercase()
            .contains(&format!("content-length: {}\r\n", body.len())),
        "{rest}"
    );
    assert!(rest.ends_with("\r\n\r\n"), "HEAD must send no body: {rest}");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn ranges_stay_inside_the_body(header in "bytes=[0-9]{0,4}-[0-9]{0,4}", len in 0u64..5000) {
            if let RangeAnswer::Part(a, b) = byte_range(&header, len) {
                prop_assert!(a <= b && b < len, "{header} of {len}: {a}-{b}");
            }
        }

        #[test]
        fn no_request_path_panics_or_fails_the_server(
            segments in proptest::collection::vec("([a-zA-Z0-9.%()=,é😀_-]|%[0-9A-Fa-f]{2}){0,30}", 1..5),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let pb = Playback::new(Arc::new(LocalStore::new(dir.path().to_owned())), Vec::new());
                for prefix in ["/assets/", "/assets/cam/blobs/", "/assets/cam/"] {
                    let uri = format!("{prefix}{}", segments.join("/"));
                    let Ok(request) = Request::get(uri.as_str()).body(Body::empty()) else {
                        continue; // not a URI at all: never reaches a server
                    };
                    let response = router(pb.clone()).oneshot(request).await.unwrap();
                    prop_assert!(
                        !response.status().is_server_error(),
                        "{uri}: {}",
                        response.status()
                    );
                }
                Ok::<(), TestCaseError>(())
            })?;
        }
    }
}

/// One segment-shaped fragment: `moof` + `mdat` of `fill`.
fn fragment(fill: u8) -> Vec<u8> {
    let mut f = boxed(b"moof", 40, fill);
    f.extend(boxed(b"mdat", 3_000, fill));
    f
}

#[tokio::test]
async fn the_live_view_serves_durable_parts_and_keeps_its_urls_after_upload() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path().join("assets")));
    store.prepare().await.unwrap();
    let (cache, _) = crate::cache::Cache::open(&dir.path().join("cache"), 1 << 20).unwrap();
    let cache = Arc::new(cache);
    let live = Arc::new(LiveCaches::default());
    live.register("cam", &cache);
    let pb = Playback::with_live(store.clone(), vec![AssetName::new("cam").unwrap()], live);

    let mut init = boxed(b"ftyp", 16, 1);
    init.extend(boxed(b"moov", 500, 2));
    // Fragments start 2 s apart from the segment's start (the wall clock of its first frame).
    let start = Ticks90k::now() - crate::time::Duration90k::from_secs(10);
    let at = |s: i64| start + crate::time::Duration90k::from_secs(s);
    cache
        .begin_segment(1, 0, start, "avc1.64001f", "mp4")
        .unwrap();
    cache
        .append_fragment_flagged(&[&init, &fragment(3)], at(2), true)
        .unwrap();
    cache
        .append_fragment_flagged(&[&fragment(4)], at(4), false)
        .unwrap();

    let text =
        String::from_utf8(call(&pb, "GET", "/assets/cam/live.m3u8", None).await.body).unwrap();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
    assert!(
        text.contains(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:{}\n",
            start.to_rfc3339_millis()
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "#EXT-X-PART:DURATION=2.000,URI=\"/assets/cam/live/r1-s0/part-0.mp4\",INDEPENDENT=YES\n"
        ) && text
            .contains("#EXT-X-PART:DURATION=2.000,URI=\"/assets/cam/live/r1-s0/part-1.mp4\"\n"),
        "{text}"
    );
    assert!(
        !text.contains("#EXTINF"),
        "the open segment has no whole entry yet\n{text}"
    );

    let get = |uri: &'static str| call(&pb, "GET", uri, None);
    let a = get("/assets/cam/live/r1-s0/init.mp4").await;
    assert_eq!((a.status, a.body.clone()), (200, init.clone()));
    assert_eq!(
        get("/assets/cam/live/r1-s0/part-0.mp4").await.body,
        fragment(3)
    );
    assert_eq!(
        get("/assets/cam/live/r1-s0/part-1.mp4").await.body,
        fragment(4)
    );
    let a = call(
        &pb,
        "GET",
        "/assets/cam/live/r1-s0/part-1.mp4",
        Some("bytes=52-55"),
    )
    .await;
    assert_eq!((a.status, &a.body[..]), (206, &b"mdat"[..]));
    assert_eq!(
        get("/assets/cam/live/r1-s0/part-2.mp4").await.status,
        404,
        "not durable yet"
    );
    assert_eq!(
        get("/assets/cam/live/r1-s0/media.mp4").await.status,
        404,
        "still open"
    );
    assert_eq!(get("/assets/cam/live/r1-s9/init.mp4").await.status, 404);
    assert_eq!(get("/assets/cam/live/12/init.mp4").await.status, 400);

    // A blocking reload for part 2 answers once that fragment is durable.
    let waiting = {
        let pb = pb.clone();
        tokio::spawn(async move {
            call(
                &pb,
                "GET",
                "/assets/cam/live.m3u8?_HLS_msn=0&_HLS_part=2",
                None,
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the reload waits for its part");
    cache
        .append_fragment_flagged(&[&fragment(5)], at(6), true)
        .unwrap();
    let text = String::from_utf8(waiting.await.unwrap().body).unwrap();
    assert!(text.contains("/assets/cam/live/r1-s0/part-2.mp4"), "{text}");

    // Sealed, the next segment begun, the first one uploaded and evicted from the cache:
    // the same URLs and numbers, now answered from the store.
    let sealed = cache.seal().unwrap().unwrap();
    cache
        .begin_segment(1, 1, at(6), "avc1.64001f", "mp4")
        .unwrap();
    cache
        .append_fragment_flagged(&[&init, &fragment(6)], at(8), true)
        .unwrap();
    let whole = [init.clone(), fragment(3), fragment(4), fragment(5)].concat();
    store
        .put_segment(SegmentUpload {
            facts: SegmentFacts {
                asset: "cam".into(),
                run: 1,
                sequence: 0,
                start: sealed.start,
                end: sealed.end,
                codecs: sealed.codecs.clone(),
                extension: "mp4".into(),
            },
            file: std::fs::File::open(dir.path().join("cache").join(&sealed.file_name)).unwrap(),
            bytes: sealed.bytes,
        })
        .await
        .unwrap();
    cache.mark_uploaded(sealed.id).unwrap();
    let text = String::from_utf8(get("/assets/cam/live.m3u8").await.body).unwrap();
    let _ = cache.reserve(cache.limit_bytes(), &mut |e, _| vec![e[0].id]);
    assert!(cache.sealed().is_empty(), "evicted from the cache");
    let after = String::from_utf8(get("/assets/cam/live.m3u8").await.body).unwrap();
    for t in [&text, &after] {
        assert!(t.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{t}");
        assert!(
            t.contains("#EXTINF:6.000,\n/assets/cam/live/r1-s0/media.mp4\n")
                && t.contains("#EXT-X-MAP:URI=\"/assets/cam/live/r1-s1/init.mp4\"\n")
                && t.contains("/assets/cam/live/r1-s1/part-0.mp4"),
            "{t}"
        );
    }
    let a = get("/assets/cam/live/r1-s0/init.mp4").await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, init.clone()),
        "from the store"
    );
    assert_eq!(
        get("/assets/cam/live/r1-s0/media.mp4").await.body,
        whole[init.len()..]
    );
    assert_eq!(
        get("/assets/cam/live/r1-s0/part-0.mp4").await.status,
        404,
        "parts are the cache's"
    );
}
