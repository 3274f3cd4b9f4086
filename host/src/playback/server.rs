//! The playback routes, as an [`axum::Router`] that the HTTP front door (`crate::http`) serves
//! next to the other rooms' routes. GET (and HEAD, answered by the same handlers) only:
//!
//! | path | answer |
//! |---|---|
//! | `/`, `/index.html` | the playback page (self-contained HTML, works offline) |
//! | `/vendor/hls.min.js` | the page's live player, hls.js, served from the binary |
//! | `/assets` | `{"assets":[...]}`: the assets the [`AssetSource`] offers now (with `"instances"` on `serve`) |
//! | `/assets/{asset}/availableMedia?precision=...` | LVA availableMedia JSON |
//! | `/assets/{asset}/segments?startTime=&endTime=` | the blobs in a range, for the page's player |
//! | `/assets/{asset}/gaps?startTime=&endTime=` | `{"gaps":[{"start","end","cause"}]}`, the stored gap records ([`gaps`](super::gaps)) |
//! | `/assets/{asset}/manifest(format=m3u8-aapl,startTime=,endTime=).m3u8` | HLS VOD playlist |
//! | `/assets/{asset}/blobs/{file}` (`/init.mp4`, `/media.mp4`) | a blob, or its init / media part; `Range` → 206 |
//! | `/assets/{asset}/export.mp4?startTime=&endTime=` | one MP4 clip of the range, streamed ([`export`](super::export)) |
//! | `/assets/{asset}/live.m3u8[?_HLS_msn=&_HLS_part=]` | LL-HLS live playlist, newest media from the recording cache ([`live`](super::live)) |
//! | `/assets/{asset}/live/r{run}-s{sequence}/{init.mp4,media.mp4,part-N.mp4}` | a live segment's init or media (store once uploaded, else cache) or part (cache); `Range` → 206 |
//!
//! Request text never becomes a path: the asset must match LVA's asset-name pattern and the
//! blob file the uploader's name grammar (see [`BlobFile`]); bad names are 400, unknown ones 404.
//! Blob bytes are streamed from the store in chunks ([`AssetStore::read_blob_range`]), never
//! held whole; only the position of each blob's first `moof` is remembered.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;

use super::available::{AvailabilityQuery, merged, param, parse_instant, recorded_spans};
use super::export::{Clip, ClipRange, DEFAULT_MAX_SPAN_SECS, GAPS_HEADER, GAPS_POLICY};
use super::gaps::{self, GapQuery};
use super::hls::{PlaylistRange, manifest_params, playlist, segments};
use super::live::{self, LiveLeaf, SequenceBook};
use super::{BlobFile, PlaybackError, asset_name, decode_component, encode_segment, mp4};
use crate::cache::LiveCaches;
use crate::sync::LockExt;
use crate::time::Ticks90k;
use crate::topology::AssetName;
use crate::upload::{AssetStore, UploadError};

const PAGE: &str = include_str!("page.html");
/// hls.js, vendored unmodified (host/assets/vendor/hls.js/README.md): the page's live player.
const HLS_JS: &[u8] = include_bytes!("../../assets/vendor/hls.js/hls.min.js");
/// Blobs whose first-fragment offset is remembered; past this the memory starts over (a
/// player works through a handful of blobs at a time).
const REMEMBERED_SHAPES: usize = 1024;
/// Box headers read in one request when looking for the first `moof`: `ftyp` and the `moov`
/// of a fragmented file are small, so this usually finds it in one read.
const HEADER_PREFIX: u64 = 64 << 10;
/// Top-level boxes looked at before giving up on finding a `moof`.
const MAX_BOXES: usize = 64;

/// A query (`name=value`, already encoded) that grants playback access, set by the front door
/// when a token protects the server: the playlist's segment URLs carry it, so players that
/// cannot send headers or cookies can fetch the segments of a playlist they were allowed to
/// read.
#[derive(Clone, Debug)]
pub struct SegmentQuery(pub String);

/// The assets the page offers (and that answer availableMedia with empty ranges before their
/// first upload, as LVA creates a sink's asset when its graph activates), asked again at every
/// request: `run` serves a fixed list, `serve` the assets of its instances as they are now.
pub trait AssetSource: Send + Sync {
    fn assets(&self) -> Vec<AssetName>;

    /// The graph instances recording into the assets, for the page (none for a fixed list).
    fn instances(&self) -> Vec<InstanceSummary> {
        Vec::new()
    }
}

/// A fixed list: the assets of `run`'s graphs.
impl AssetSource for Vec<AssetName> {
    fn assets(&self) -> Vec<AssetName> {
        self.clone()
    }
}

/// One graph instance as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InstanceSummary {
    pub name: String,
    /// `Inactive`, `Activating`, `Active` or `Deactivating`.
    pub state: String,
    pub assets: Vec<String>,
}

/// What the routes read from, shared by all requests.
pub struct Playback {
    store: Arc<dyn AssetStore>,
    assets: Box<dyn AssetSource>,
    /// The caches recording now, for the live view.
    live: Arc<LiveCaches>,
    /// Live media sequence numbers per asset (memory only).
    books: Mutex<HashMap<String, SequenceBook>>,
    /// Blob name → (length, offset of the first `moof` if known). Blobs never change once
    /// uploaded (deterministic names, same bytes on re-upload).
    shapes: Mutex<HashMap<String, Shape>>,
}

#[derive(Clone, Copy)]
struct Shape {
    len: u64,
    init: Option<u64>,
}

impl Playback {
    /// `assets` are the ones the page offers; any valid asset name can still be queried.
    /// Live views come from the caches this process records ([`LiveCaches::global`]).
    pub fn new(store: Arc<dyn AssetStore>, assets: impl AssetSource + 'static) -> Arc<Self> {
        Self::with_live(store, assets, LiveCaches::global())
    }

    /// Like [`Playback::new`], with live views from `live`.
    pub fn with_live(
        store: Arc<dyn AssetStore>,
        assets: impl AssetSource + 'static,
        live: Arc<LiveCaches>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            assets: Box::new(assets),
            live,
            books: Mutex::new(HashMap::new()),
            shapes: Mutex::new(HashMap::new()),
        })
    }

    /// The live window of `asset` with its media sequence numbers, and its target duration.
    fn number(&self, asset: &AssetName, entries: &[live::LiveEntry]) -> (Vec<live::Numbered>, u64) {
        let mut books = self.books.lock_unpoisoned();
        let book = books.entry(asset.as_str().to_owned()).or_default();
        let window = book.number(entries);
        let target = book.target_duration(live::part_target(&window));
        (window, target)
    }

    /// Why an asset the store has no indexed blob of cannot be answered: unknown (404), or its
    /// blobs carry no span metadata (400). Lists the asset, which then holds nothing playable.
    async fn without_blobs(&self, asset: &AssetName) -> Result<(), PlaybackError> {
        let blobs = self.store.list_asset(asset.as_str()).await?;
        recorded_spans(asset.as_str(), &blobs).map(drop)
    }

    fn remember(&self, name: &str, shape: Shape) {
        let mut shapes = self.shapes.lock_unpoisoned();
        if shapes.len() >= REMEMBERED_SHAPES {
            shapes.clear();
        }
        shapes.insert(name.to_owned(), shape);
    }

    /// The blob's length, and with `need_init` where its init part ends.
    async fn shape(
        &self,
        name: &str,
        need_init: bool,
    ) -> Result<(u64, Option<u64>), PlaybackError> {
        let known = self.shapes.lock_unpoisoned().get(name).copied();
        let len = match known {
            Some(Shape { len, init }) if init.is_some() || !need_init => return Ok((len, init)),
            Some(shape) => shape.len,
            None => self.store.blob_len(name).await.map_err(not_found(name))?,
        };
        let init = if need_init {
            Some(self.init_len(name, len).await?)
        } else {
            None
        };
        self.remember(name, Shape { len, init });
        Ok((len, init))
    }

    /// Walks the top-level box headers from the store to the first `moof`.
    async fn init_len(&self, name: &str, total: u64) -> Result<u64, PlaybackError> {
        let unplayable = || PlaybackError::Unplayable(name.to_owned());
        let prefix = self.read(name, 0..total.min(HEADER_PREFIX)).await?;
        let (mut at, mut saw_moov) = (0u64, false);
        for _ in 0..MAX_BOXES {
            if at.saturating_add(8) > total {
                break;
            }
            let end = at.saturating_add(mp4::HEADER_LEN).min(total);
            let fetched;
            let header = match prefix.get(at as usize..end as usize) {
                Some(h) => h,
                None => {
                    fetched = self.read(name, at..end).await?;
                    &fetched[..]
                }
            };
            match mp4::step(header, at, total, &mut saw_moov) {
                mp4::Step::Init(n) => return Ok(n),
                mp4::Step::Next(n) => at = n,
                mp4::Step::NotFragmented => break,
            }
        }
        Err(unplayable())
    }

    /// A small range of a blob, collected (box headers only).
    async fn read(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, PlaybackError> {
        let stream = self
            .store
            .read_blob_range(name, range)
            .await
            .map_err(not_found(name))?;
        let chunks: Vec<_> = stream.try_collect().await?;
        Ok(chunks.concat())
    }
}

fn not_found(name: &str) -> impl FnOnce(UploadError) -> PlaybackError {
    let name = name.to_owned();
    move |e| match e {
        UploadError::BlobNotFound { .. } => PlaybackError::BlobNotFound(name),
        e => PlaybackError::Store(e),
    }
}

impl IntoResponse for PlaybackError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(code = self.code(), "playback: {self}");
        }
        let mut response = (status, self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// The playback routes over `playback`.
pub fn router(playback: Arc<Playback>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/vendor/hls.min.js", get(hls_js))
        .route("/assets", get(assets))
        .route("/assets/{asset}/{leaf}", get(asset_leaf))
        .route("/assets/{asset}/blobs/{file}", get(whole_blob))
        .route("/assets/{asset}/blobs/{file}/{part}", get(blob_part))
        .route("/assets/{asset}/live/{segment}/{leaf}", get(live_leaf))
        .with_state(playback)
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn hls_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        HLS_JS,
    )
        .into_response()
}

fn json(value: &impl serde::Serialize) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        serde_json::to_string(value).unwrap_or_default(),
    )
        .into_response()
}

async fn assets(State(playback): State<Arc<Playback>>) -> Response {
    let names: Vec<String> = playback
        .assets
        .assets()
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    // Only a server that knows its instances (`serve`) names them.
    let instances = playback.assets.instances();
    if instances.is_empty() {
        json(&serde_json::json!({ "assets": names }))
    } else {
        json(&serde_json::json!({ "assets": names, "instances": instances }))
    }
}

/// Decoded query pairs, in order.
type Params = Vec<(String, String)>;

/// Splits a raw query into decoded pairs (`+` stays `+`: RFC 3339 offsets use it, so this is
/// not form decoding); `None` for a broken escape or bytes that are not UTF-8.
fn parse_query(query: &str) -> Option<Params> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((decode_component(k)?, decode_component(v)?))
        })
        .collect()
}

fn malformed_query() -> Response {
    (StatusCode::BAD_REQUEST, "malformed query string\n").into_response()
}

async fn asset_leaf(
    State(playback): State<Arc<Playback>>,
    Path((asset, leaf)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    key: Option<Extension<SegmentQuery>>,
) -> Response {
    let Some(params) = parse_query(query.as_deref().unwrap_or("")) else {
        return malformed_query();
    };
    let result = match leaf.as_str() {
        "availableMedia" => available(&playback, &asset, &params).await,
        "segments" => segment_list(&playback, &asset, &params).await,
        "gaps" => gap_list(&playback, &asset, &params).await,
        "export.mp4" => export(&playback, &asset, &params).await,
        live::LIVE_PLAYLIST => {
            live_hls(&playback, &asset, &params, key.map(|Extension(k)| k)).await
        }
        manifest => match manifest_params(manifest) {
            Some(mut all) => {
                all.extend(params);
                hls(&playback, &asset, &all, key.map(|Extension(k)| k)).await
            }
            None => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
        },
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn available(
    playback: &Playback,
    asset: &str,
    params: &[(String, String)],
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let query = AvailabilityQuery::parse(params)?;
    let (from, to) = query.bounds();
    let found = playback.store.spans(asset.as_str(), from, to).await?;
    // The served assets are the running graph's own: LVA creates a sink's asset when the graph
    // activates, so until the first upload it has no media rather than not existing (a 404
    // there is an error in the page's console every refresh).
    if !found.asset_has_blobs && !playback.assets.assets().contains(&asset) {
        playback.without_blobs(&asset).await?;
    }
    Ok(json(&query.answer(&merged(found.items))))
}

/// The clip is streamed fragment by fragment; errors found before the first byte (bad range,
/// no media) are answered with a status, later ones end the body early.
async fn export(
    playback: &Playback,
    asset: &str,
    params: &[(String, String)],
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let required =
        |name| param(params, name).ok_or(PlaybackError::MissingParameter { name, why: "" });
    let range = ClipRange::parse(
        required("startTime")?,
        required("endTime")?,
        DEFAULT_MAX_SPAN_SECS,
    )?;
    let clip = Clip::open(playback.store.clone(), &asset, range).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, "no-store"),
            (HeaderName::from_static(GAPS_HEADER), GAPS_POLICY),
        ],
        Body::from_stream(clip.into_stream()),
    )
        .into_response())
}

async fn gap_list(
    playback: &Playback,
    asset: &str,
    params: &[(String, String)],
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let query = GapQuery::parse(params)?;
    let gaps = playback
        .store
        .list_gaps(asset.as_str(), query.start, query.end)
        .await?;
    Ok(json(&gaps::answer(&gaps)))
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
    let listing = range
        .listing(playback.store.as_ref(), &asset, Ticks90k::now())
        .await?;
    let list: Vec<serde_json::Value> = segments(&listing.items, range)
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "url": format!("{base}/{}", encode_segment(&s.file)),
                "start": s.start.to_rfc3339_millis(),
                "end": s.end.to_rfc3339_millis(),
            })
        })
        .collect();
    Ok(json(&serde_json::json!({ "segments": list })))
}

async fn hls(
    playback: &Playback,
    asset: &str,
    params: &[(String, String)],
    key: Option<SegmentQuery>,
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let now = Ticks90k::now();
    let range = PlaylistRange::parse(params, now)?;
    let listing = range.listing(playback.store.as_ref(), &asset, now).await?;
    if !listing.asset_has_blobs {
        playback.without_blobs(&asset).await?;
    }
    let text = playlist(
        &asset,
        &segments(&listing.items, range),
        key.as_ref().map(|k| k.0.as_str()),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

/// The live playlist; with `_HLS_msn` (and `_HLS_part`) it waits, bounded, until that
/// segment (part) is listed, woken by the cache's live view.
async fn live_hls(
    playback: &Playback,
    asset: &str,
    params: &[(String, String)],
    key: Option<SegmentQuery>,
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let blocking = live::blocking_request(params)?;
    let cache = playback.live.get(asset.as_str());
    let mut views = cache.as_ref().map(|c| c.live());
    let listing = playback
        .store
        .list_range(
            asset.as_str(),
            Ticks90k::now() - live::STORE_WINDOW,
            Ticks90k(i64::MAX),
        )
        .await?;
    let mut deadline = None;
    let (window, target) = loop {
        let view = views.as_mut().map(|v| v.borrow_and_update().clone());
        let (window, target) =
            playback.number(&asset, &live::merge(&listing.items, view.as_deref()));
        let Some((msn, part)) = blocking else {
            break (window, target);
        };
        if live::has_part(&window, msn, part) {
            break (window, target);
        }
        let limit = *deadline
            .get_or_insert_with(|| tokio::time::Instant::now() + live::blocking_limit(&window));
        let Some(views) = views.as_mut() else {
            break (window, target);
        };
        match tokio::time::timeout_at(limit, views.changed()).await {
            Ok(Ok(())) => continue,
            // Waited long enough, or the cache closed: answer with what there is.
            _ => break (window, target),
        }
    };
    if window.is_empty()
        && cache.is_none()
        && !listing.asset_has_blobs
        && !playback.assets.assets().contains(&asset)
    {
        playback.without_blobs(&asset).await?;
    }
    let text = live::playlist(&asset, &window, target, key.as_ref().map(|k| k.0.as_str()));
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

async fn live_leaf(
    State(playback): State<Arc<Playback>>,
    Path((asset, segment, leaf)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    live_bytes(&playback, &asset, &segment, &leaf, &method, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// A live segment's init, media or part. Segments are named by run and sequence, so the
/// URL stays while the source moves: an uploaded segment is served from the store (once a
/// listing showed it there), one not uploaded from the cache recording the asset, and parts
/// from the cache only, as its live view lists them (so only durable bytes).
async fn live_bytes(
    playback: &Playback,
    asset: &str,
    segment: &str,
    leaf: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let (key, leaf) = LiveLeaf::parse(segment, leaf)?;
    let not_found = || PlaybackError::LiveNotFound(live::segment_path(key.0, key.1));
    let cache = playback.live.get(asset.as_str());
    let cached = cache
        .as_ref()
        .and_then(|c| live::find(&c.live().borrow(), key).cloned());
    let stored = playback
        .books
        .lock_unpoisoned()
        .get(asset.as_str())
        .and_then(|b| b.blob(key).map(str::to_owned));
    let whole_part = match leaf {
        LiveLeaf::Init => Some(Part::Init),
        LiveLeaf::Media => Some(Part::Media),
        LiveLeaf::Part(_) => None,
    };
    if let (Some(part), Some(file)) = (whole_part, &stored)
        && cached.as_ref().is_none_or(|s| s.uploaded)
    {
        return blob(playback, asset.as_str(), file, part, method, headers).await;
    }
    let (Some(cache), Some(segment)) = (cache, cached) else {
        return Err(not_found());
    };
    let id = segment.id;
    let init_len = match leaf {
        LiveLeaf::Part(n) if n > 0 => 0,
        _ => {
            // The init is in the first fragment, durable once the segment is listed.
            let durable = segment.fragments.first().map_or(segment.bytes, |f| f.len);
            let reader = cache.clone();
            tokio::task::spawn_blocking(move || live::read_init_len(&reader, id, durable))
                .await
                .map_err(|e| PlaybackError::LiveRead(e.to_string()))??
        }
    };
    let whole = live::leaf_range(&segment, leaf, init_len).ok_or_else(not_found)?;
    // The bytes of a segment never change; a player fetches each part once.
    let (response, bytes) = match ranged(whole, headers, "no-cache") {
        Ok(answer) => answer,
        Err(refused) => return Ok(refused.into_response()),
    };
    let length = bytes.end - bytes.start;
    let body = if *method == Method::HEAD || length == 0 {
        Body::empty()
    } else {
        Body::from_stream(live::stream(cache, id, bytes).await?.inspect_err(move |e| {
            tracing::debug!("playback: reading live segment {} stopped: {e}", id.0);
        }))
    };
    Ok(response
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .unwrap_or_default())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Whole,
    Init,
    Media,
}

async fn whole_blob(
    State(playback): State<Arc<Playback>>,
    Path((asset, file)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    blob(&playback, &asset, &file, Part::Whole, &method, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn blob_part(
    State(playback): State<Arc<Playback>>,
    Path((asset, file, part)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let part = match part.as_str() {
        "init.mp4" => Part::Init,
        "media.mp4" => Part::Media,
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    blob(&playback, &asset, &file, part, &method, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn blob(
    playback: &Playback,
    asset: &str,
    file: &str,
    part: Part,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, PlaybackError> {
    let asset = asset_name(asset)?;
    let file = BlobFile::parse(file)?;
    let name = file.blob_name(&asset);
    let (len, init) = playback.shape(&name, part != Part::Whole).await?;
    let init = init.unwrap_or(0);
    let whole = match part {
        Part::Whole => 0..len,
        Part::Init => 0..init,
        Part::Media => init..len,
    };
    // Blob names are deterministic and their content never changes once uploaded.
    let (response, bytes) = match ranged(whole, headers, "public, max-age=86400, immutable") {
        Ok(answer) => answer,
        Err(refused) => return Ok(refused.into_response()),
    };
    let length = bytes.end - bytes.start;
    // HEAD answers the GET's headers without asking the store for the bytes.
    let body = if *method == Method::HEAD || length == 0 {
        Body::empty()
    } else {
        let stream = playback
            .store
            .read_blob_range(&name, bytes)
            .await
            .map_err(not_found(&name))?;
        Body::from_stream(stream.inspect_err(move |e| {
            tracing::debug!("playback: reading {name} stopped: {e}");
        }))
    };
    Ok(response
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .unwrap_or_default())
}

/// The status and headers answering `headers`' `Range` over the bytes `whole` of a file, and
/// the bytes to send; `Err` is the answer to an unsatisfiable range ([`unsatisfiable`]).
fn ranged(
    whole: Range<u64>,
    headers: &HeaderMap,
    cache_control: &'static str,
) -> Result<(axum::http::response::Builder, Range<u64>), Unsatisfiable> {
    let span = whole.end - whole.start;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| byte_range(r, span));
    let response = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, cache_control);
    match range {
        None | Some(RangeAnswer::Ignore) => Ok((response, whole)),
        Some(RangeAnswer::Unsatisfiable) => Err(Unsatisfiable { span }),
        Some(RangeAnswer::Part(a, b)) => Ok((
            response
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{span}")),
            whole.start + a..whole.start + b + 1,
        )),
    }
}

/// A `Range` outside a body of `span` bytes.
struct Unsatisfiable {
    span: u64,
}

impl IntoResponse for Unsatisfiable {
    fn into_response(self) -> Response {
        Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CONTENT_RANGE, format!("bytes */{}", self.span))
            .body(Body::from("range not satisfiable\n"))
            .unwrap_or_default()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// Serve the whole body (unparseable or multi-range: RFC 9110 lets a server ignore Range).
    Ignore,
    Unsatisfiable,
    /// Inclusive first and last byte.
    Part(u64, u64),
}

fn byte_range(header: &str, len: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Ignore;
    };
    if spec.contains(',') {
        return RangeAnswer::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Ignore;
    };
    let num = |s: &str| s.parse::<u64>().ok();
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
            let last = if b.is_empty() { Some(u64::MAX) } else { num(b) };
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
mod tests;
