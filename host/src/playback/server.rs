//! The playback HTTP server: a minimal HTTP/1.1 GET/HEAD server on tokio (keep-alive, no
//! chunking, no request bodies), loopback by default, serving:
//!
//! | path | answer |
//! |---|---|
//! | `/` | the playback page (self-contained HTML, works offline) |
//! | `/assets` | `{"assets":[...]}`, the assets this server was started for |
//! | `/assets/{asset}/availableMedia?precision=...` | LVA availableMedia JSON |
//! | `/assets/{asset}/segments?startTime=&endTime=` | the blobs in a range, for the page's player |
//! | `/assets/{asset}/manifest(format=m3u8-aapl,startTime=,endTime=).m3u8` | HLS VOD playlist |
//! | `/assets/{asset}/blobs/{file}` (`/init.mp4`, `/media.mp4`) | a blob, or its init / media part; `Range` → 206 |
//!
//! Request text never becomes a path: the asset must match LVA's asset-name pattern and the
//! blob file the uploader's name grammar (see [`BlobFile`]); bad names are 400, unknown ones 404.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::available::{AvailabilityQuery, param, parse_instant, recorded_spans};
use super::hls::{PlaylistRange, manifest_params, playlist, segments};
use super::{BlobFile, PlaybackError, asset_name, decode_component, encode_segment, mp4};
use crate::time::Ticks90k;
use crate::topology::AssetName;
use crate::upload::{AssetStore, UploadError};

const PAGE: &str = include_str!("page.html");
/// A request head larger than this is refused: only short GETs are expected.
const MAX_HEAD: usize = 16 << 10;
/// Idle keep-alive connections are closed after this.
const IDLE: Duration = Duration::from_secs(30);
/// Recently read blobs kept in memory: a player fetches one blob in many ranges.
const CACHED_BLOBS: usize = 4;

/// What the server reads from, shared by all connections.
pub struct Playback {
    store: Arc<dyn AssetStore>,
    assets: Vec<AssetName>,
    recent: Mutex<VecDeque<(String, Arc<Vec<u8>>)>>,
}

impl Playback {
    /// `assets` are the ones the page offers; any valid asset name can still be queried.
    pub fn new(store: Arc<dyn AssetStore>, assets: Vec<AssetName>) -> Arc<Self> {
        Arc::new(Self {
            store,
            assets,
            recent: Mutex::new(VecDeque::new()),
        })
    }

    async fn blob(&self, name: &str) -> Result<Arc<Vec<u8>>, PlaybackError> {
        if let Some((_, bytes)) = self.recent.lock().unwrap().iter().find(|(n, _)| n == name) {
            return Ok(bytes.clone());
        }
        let bytes = match self.store.read_blob(name).await {
            Ok(b) => Arc::new(b),
            Err(UploadError::Local { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(PlaybackError::BlobNotFound(name.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let mut recent = self.recent.lock().unwrap();
        if recent.len() >= CACHED_BLOBS {
            recent.pop_front();
        }
        recent.push_back((name.to_owned(), bytes.clone()));
        Ok(bytes)
    }

    async fn listing(
        &self,
        asset: &AssetName,
    ) -> Result<Vec<crate::upload::StoredBlob>, PlaybackError> {
        Ok(self.store.list_asset(asset.as_str()).await?)
    }
}

/// Binds the listener (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves connections until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, playback: Arc<Playback>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let playback = playback.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, playback).await {
                        tracing::debug!("playback connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("playback server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// An HTTP answer before it is written.
struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

enum Body {
    Owned(Vec<u8>),
    Static(&'static [u8]),
    Slice(Arc<Vec<u8>>, std::ops::Range<usize>),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Owned(b) => b,
            Body::Static(b) => b,
            Body::Slice(b, r) => &b[r.clone()],
        }
    }
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: Body) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    fn json(value: &impl serde::Serialize) -> Self {
        let mut r = Self::new(
            200,
            "application/json",
            Body::Owned(serde_json::to_vec(value).unwrap_or_default()),
        );
        r.headers.push(("Cache-Control", "no-store".into()));
        r
    }

    fn error(e: &PlaybackError) -> Self {
        Self::new(
            e.status(),
            "application/json",
            Body::Owned(e.body().to_string().into_bytes()),
        )
    }

    fn plain(status: u16, text: &'static str) -> Self {
        Self::new(
            status,
            "text/plain; charset=utf-8",
            Body::Static(text.as_bytes()),
        )
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Internal Server Error",
    }
}

/// One parsed request head.
struct Request {
    method: String,
    target: String,
    range: Option<String>,
    keep_alive: bool,
}

async fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = String::new();
        // Bounded read: a line that never ends must not grow without limit.
        let mut limited = (&mut *reader).take((MAX_HEAD - total + 1) as u64);
        let n = match tokio::time::timeout(IDLE, limited.read_line(&mut line)).await {
            Ok(r) => r?,
            Err(_) => return Ok(None),
        };
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if total > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerated blank line between requests
            }
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

fn parse_request(lines: &[String]) -> Option<Request> {
    let mut parts = lines.first()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut range = None;
    let mut keep_alive = version == "HTTP/1.1";
    for line in &lines[1..] {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("range") {
            range = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        }
    }
    Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        range,
        keep_alive,
    })
}

async fn connection(stream: TcpStream, playback: Arc<Playback>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let head = match read_head(&mut reader).await {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(e) => {
                let r = Response::plain(431, "request head too large\n");
                write_response(reader.get_mut(), &r, false, false).await?;
                return Err(e);
            }
        };
        let Some(request) = parse_request(&head) else {
            let r = Response::plain(400, "malformed HTTP/1.x request\n");
            write_response(reader.get_mut(), &r, false, false).await?;
            return Ok(());
        };
        let head_only = request.method == "HEAD";
        let response = if request.method == "GET" || head_only {
            route(&playback, &request).await
        } else {
            let mut r = Response::plain(405, "only GET and HEAD are served\n");
            r.headers.push(("Allow", "GET, HEAD".into()));
            r
        };
        write_response(reader.get_mut(), &response, head_only, request.keep_alive).await?;
        if !request.keep_alive {
            return Ok(());
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    r: &Response,
    head_only: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    let body = r.body.bytes();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    stream.flush().await
}

/// Decoded query pairs, in order.
type Params = Vec<(String, String)>;

/// Splits `path?query` into decoded path segments and decoded query pairs.
fn split_target(target: &str) -> Option<(Vec<String>, Params)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with('/') {
        return None;
    }
    let segments = path[1..]
        .split('/')
        .map(decode_component)
        .collect::<Option<Vec<_>>>()?;
    let params = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((decode_component(k)?, decode_component(v)?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((segments, params))
}

async fn route(playback: &Playback, request: &Request) -> Response {
    let Some((segments, params)) = split_target(&request.target) else {
        return Response::plain(400, "malformed request target\n");
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let result = match segs.as_slice() {
        [""] | ["index.html"] => {
            return Response::new(
                200,
                "text/html; charset=utf-8",
                Body::Static(PAGE.as_bytes()),
            );
        }
        ["assets"] => {
            let names: Vec<&str> = playback.assets.iter().map(AssetName::as_str).collect();
            return Response::json(&serde_json::json!({ "assets": names }));
        }
        ["assets", asset, "availableMedia"] => available(playback, asset, &params).await,
        ["assets", asset, "segments"] => segment_list(playback, asset, &params).await,
        ["assets", asset, "blobs", file] => blob(playback, asset, file, Part::Whole, request).await,
        ["assets", asset, "blobs", file, "init.mp4"] => {
            blob(playback, asset, file, Part::Init, request).await
        }
        ["assets", asset, "blobs", file, "media.mp4"] => {
            blob(playback, asset, file, Part::Media, request).await
        }
        ["assets", asset, manifest] if manifest_params(manifest).is_some() => {
            let mut all = manifest_params(manifest).unwrap_or_default();
            all.extend(params.iter().cloned());
            hls(playback, asset, &all).await
        }
        _ => return Response::plain(404, "not found\n"),
    };
    result.unwrap_or_else(|e| Response::error(&e))
}

async fn available(
    playback: &Playback,
    asset: &str,
    params: &[(String, String)],
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let query = AvailabilityQuery::parse(params)?;
    let blobs = playback.listing(&asset).await?;
    // The served assets are the running graph's own: LVA creates a sink's asset when the graph
    // activates, so until the first upload it has no media rather than not existing (a 404
    // there is an error in the page's console every refresh).
    if blobs.is_empty() && playback.assets.contains(&asset) {
        return Ok(Response::json(&query.answer(&[])));
    }
    let spans = recorded_spans(asset.as_str(), &blobs)?;
    Ok(Response::json(&query.answer(&spans)))
}

async fn segment_list(
    playback: &Playback,
    asset: &str,
    params: &[(String, String)],
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let range = match (param(params, "startTime"), param(params, "endTime")) {
        (Some(s), Some(e)) => {
            PlaylistRange::Between(parse_instant("startTime", s)?, parse_instant("endTime", e)?)
        }
        (Some(s), None) => PlaylistRange::Since(parse_instant("startTime", s)?),
        _ => PlaylistRange::Recent,
    };
    let base = format!("/assets/{}/blobs", encode_segment(asset.as_str()));
    let list: Vec<serde_json::Value> = segments(&playback.listing(&asset).await?, range)
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "url": format!("{base}/{}", encode_segment(&s.file)),
                "start": s.start.to_rfc3339_millis(),
                "end": s.end.to_rfc3339_millis(),
            })
        })
        .collect();
    Ok(Response::json(&serde_json::json!({ "segments": list })))
}

async fn hls(
    playback: &Playback,
    asset: &str,
    params: &[(String, String)],
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let range = PlaylistRange::parse(params, Ticks90k::now())?;
    let blobs = playback.listing(&asset).await?;
    recorded_spans(asset.as_str(), &blobs)?;
    let text = playlist(&asset, &segments(&blobs, range));
    let mut r = Response::new(
        200,
        "application/vnd.apple.mpegurl",
        Body::Owned(text.into_bytes()),
    );
    r.headers.push(("Cache-Control", "no-store".into()));
    Ok(r)
}

#[derive(Clone, Copy)]
enum Part {
    Whole,
    Init,
    Media,
}

async fn blob(
    playback: &Playback,
    asset: &str,
    file: &str,
    part: Part,
    request: &Request,
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let file = BlobFile::parse(file)?;
    let name = file.blob_name(&asset);
    let bytes = playback.blob(&name).await?;
    let whole = 0..bytes.len();
    let part = match part {
        Part::Whole => whole,
        Part::Init | Part::Media => {
            let init = mp4::init_len(&bytes).ok_or(PlaybackError::Unplayable(name))?;
            if matches!(part, Part::Init) {
                0..init
            } else {
                init..bytes.len()
            }
        }
    };
    let len = part.len();
    let mut response = match request.range.as_deref().map(|r| byte_range(r, len)) {
        None | Some(RangeAnswer::Ignore) => {
            Response::new(200, "video/mp4", Body::Slice(bytes, part))
        }
        Some(RangeAnswer::Unsatisfiable) => {
            let mut r = Response::plain(416, "range not satisfiable\n");
            r.headers.push(("Content-Range", format!("bytes */{len}")));
            return Ok(r);
        }
        Some(RangeAnswer::Part(a, b)) => {
            let mut r = Response::new(
                206,
                "video/mp4",
                Body::Slice(bytes, part.start + a..part.start + b + 1),
            );
            r.headers
                .push(("Content-Range", format!("bytes {a}-{b}/{len}")));
            r
        }
    };
    response.headers.push(("Accept-Ranges", "bytes".into()));
    // Blob names are deterministic and their content never changes once uploaded.
    response
        .headers
        .push(("Cache-Control", "public, max-age=86400, immutable".into()));
    Ok(response)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// Serve the whole body (unparseable or multi-range: RFC 9110 lets a server ignore Range).
    Ignore,
    Unsatisfiable,
    /// Inclusive first and last byte.
    Part(usize, usize),
}

fn byte_range(header: &str, len: usize) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Ignore;
    };
    if spec.contains(',') {
        return RangeAnswer::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Ignore;
    };
    let num = |s: &str| s.parse::<usize>().ok();
    match (a.is_empty(), b.is_empty()) {
        (true, false) => match num(b) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(n) if len > 0 => RangeAnswer::Part(len.saturating_sub(n), len - 1),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Ignore,
        },
        (false, _) => {
            let Some(first) = num(a) else {
                return RangeAnswer::Ignore;
            };
            let last = if b.is_empty() {
                Some(usize::MAX)
            } else {
                num(b)
            };
            match last {
                None => RangeAnswer::Ignore,
                Some(last) if last < first => RangeAnswer::Ignore,
                Some(_) if first >= len => RangeAnswer::Unsatisfiable,
                Some(last) => RangeAnswer::Part(first, last.min(len - 1)),
            }
        }
        (true, true) => RangeAnswer::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::local::LocalStore;
    use crate::upload::{SegmentFacts, SegmentUpload};

    fn boxed(kind: &[u8; 4], body: usize, fill: u8) -> Vec<u8> {
        let mut b = ((body + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(body + 8, fill);
        b
    }

    /// A store holding one fMP4-shaped blob; returns the server address, the blob's URL path
    /// and its bytes.
    async fn server() -> (SocketAddr, String, Vec<u8>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut body = boxed(b"ftyp", 16, 1);
        body.extend(boxed(b"moov", 200, 2));
        body.extend(boxed(b"moof", 50, 3));
        body.extend(boxed(b"mdat", 5000, 4));
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
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let assets = vec![
            AssetName::new("cam").unwrap(),
            AssetName::new("idle").unwrap(),
        ];
        tokio::spawn(serve(listener, Playback::new(store, assets)));
        let path = format!("/assets/cam/blobs/{}", BlobFile::of(&blob));
        (addr, path, body, dir)
    }

    /// Reads one response (head + Content-Length body) from a kept-alive connection.
    async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            raw.push(byte[0]);
        }
        let head = String::from_utf8(raw).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        if !head.starts_with("HEAD") {
            stream.read_exact(&mut body).await.unwrap();
        }
        (head, body)
    }

    async fn send(stream: &mut TcpStream, method: &str, path: &str, extra: &str) {
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
    }

    #[tokio::test]
    async fn one_kept_alive_connection_serves_parts_ranges_and_errors() {
        let (addr, path, body, _dir) = server().await;
        let init = 24 + 208;
        let mut c = TcpStream::connect(addr).await.unwrap();

        send(&mut c, "GET", &format!("{path}/init.mp4"), "").await;
        let (head, got) = read_response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(got, &body[..init]);

        send(
            &mut c,
            "GET",
            &format!("{path}/media.mp4"),
            "Range: bytes=0-7\r\n",
        )
        .await;
        let (head, got) = read_response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        let media_len = body.len() - init;
        assert!(
            head.contains(&format!("Content-Range: bytes 0-7/{media_len}\r\n")),
            "{head}"
        );
        assert_eq!(got, &body[init..init + 8]);

        send(
            &mut c,
            "GET",
            &path,
            &format!("Range: bytes={}-\r\n", body.len()),
        )
        .await;
        let (head, _) = read_response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 416"), "{head}");
        assert!(
            head.contains(&format!("Content-Range: bytes */{}", body.len())),
            "{head}"
        );

        send(
            &mut c,
            "GET",
            "/assets/cam/blobs/20231114T221320Z-r0000000009-s0000000000.mp4",
            "",
        )
        .await;
        let (head, got) = read_response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert!(String::from_utf8_lossy(&got).contains("BlobNotFound"));

        send(
            &mut c,
            "GET",
            "/assets/nobody/availableMedia?precision=year",
            "",
        )
        .await;
        let (head, _) = read_response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");

        // A served asset with nothing uploaded yet has no media, not no asset.
        send(
            &mut c,
            "GET",
            "/assets/idle/availableMedia?precision=full&startTime=2023-01-01T00:00:00Z&endTime=2023-01-02T00:00:00Z",
            "",
        )
        .await;
        let (head, got) = read_response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(got, br#"{"timeRanges":[]}"#);

        send(
            &mut c,
            "GET",
            "/assets/cam/availableMedia?precision=year",
            "",
        )
        .await;
        let (head, got) = read_response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(got, br#"{"timeRanges":[{"start":"2023","end":"2023"}]}"#);

        send(&mut c, "POST", "/", "").await;
        let (head, _) = read_response(&mut c).await;
        assert!(
            head.starts_with("HTTP/1.1 405") && head.contains("Allow: GET, HEAD"),
            "{head}"
        );

        // HEAD: the GET's headers, no body; then the connection closes on request.
        send(&mut c, "HEAD", &path, "Connection: close\r\n").await;
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        let rest = String::from_utf8(rest).unwrap();
        assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
        assert!(
            rest.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{rest}"
        );
        assert!(rest.ends_with("\r\n\r\n"), "HEAD must send no body: {rest}");
    }

    #[tokio::test]
    async fn garbage_and_oversized_heads_are_refused_without_harm() {
        let (addr, _, _, _dir) = server().await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"NONSENSE\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        assert!(out.starts_with(b"HTTP/1.1 400"));

        let mut c = TcpStream::connect(addr).await.unwrap();
        // Exactly one byte over the limit, so the server has read everything it was sent
        // when it answers (no reset from unread bytes).
        let huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD - 16 - 3 + 1));
        let _ = c.write_all(huge.as_bytes()).await;
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out).await;
        assert!(
            out.starts_with(b"HTTP/1.1 431"),
            "{}",
            String::from_utf8_lossy(&out)
        );

        // The server still answers.
        let mut c = TcpStream::connect(addr).await.unwrap();
        send(&mut c, "GET", "/assets", "").await;
        let (head, got) = read_response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(got, br#"{"assets":["cam","idle"]}"#);
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
    }

    #[test]
    fn targets_are_split_and_decoded_and_must_be_origin_form() {
        let (segs, params) = split_target(
            "/assets/cam%201/availableMedia?precision=full&startTime=2020-01-01T00%3A00%3A00Z",
        )
        .unwrap();
        assert_eq!(segs, ["assets", "cam 1", "availableMedia"]);
        assert_eq!(
            params[1],
            ("startTime".into(), "2020-01-01T00:00:00Z".into())
        );
        assert!(split_target("http://evil/x").is_none());
        assert!(split_target("/a%zz").is_none());
    }
}
