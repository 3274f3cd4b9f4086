//! The Azure Blob asset store against Azurite on loopback: block upload, metadata, listing,
//! verification, idempotent re-upload, clear errors for bad credentials, a missing container and
//! an unreachable endpoint, and a process killed mid-upload.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagraph::cache::{Cache, Gap, GapCause};
use mediagraph::time::Ticks90k;
use mediagraph::upload::config::{AzureSpec, TransferPolicy, open_store, parse_connection_string};
use mediagraph::upload::{AssetStore, SegmentFacts, SegmentUpload, UploadError};
use mediagraph_tests::azurite::{self, Azurite};
use sha2::{Digest, Sha256};

fn small_blocks() -> TransferPolicy {
    TransferPolicy {
        block_size: 64 * 1024,
        request_retries: 1,
        ..TransferPolicy::default()
    }
}

fn store(spec: AzureSpec, policy: TransferPolicy) -> Arc<dyn AssetStore> {
    open_store(mediagraph::upload::config::StoreSpec::Azure(spec), policy).expect("store")
}

fn upload(dir: &Path, seq: u64, content: &[u8]) -> SegmentUpload {
    let path = dir.join(format!("{seq}.mp4"));
    std::fs::write(&path, content).unwrap();
    SegmentUpload {
        facts: SegmentFacts {
            asset: "cam-1".into(),
            run: 7,
            sequence: seq,
            start: Ticks90k::from_secs(1_800_000_000 + 30 * seq as i64),
            end: Ticks90k::from_secs(1_800_000_030 + 30 * seq as i64),
            codecs: "avc1.64001f".into(),
            extension: "mp4".into(),
        },
        file: std::fs::File::open(&path).unwrap(),
        bytes: content.len() as u64,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn blocks_metadata_listing_verification_and_idempotent_reupload() {
    let azurite = Azurite::start().expect("Azurite");
    let spec = parse_connection_string(&azurite.connection_string(), "assets", true).unwrap();
    let store = store(spec, small_blocks());
    store.prepare().await.expect("create container");
    let cache = tempfile::tempdir().unwrap();

    // 300 KiB with 64 KiB blocks: five staged blocks, one commit.
    let big = pattern(300 * 1024 + 17, 1);
    let stored = store
        .put_segment(upload(cache.path(), 2, &big))
        .await
        .expect("upload");
    assert_eq!(
        stored.name,
        "cam-1/20270115T080100Z-r0000000007-s0000000002.mp4"
    );
    assert_eq!(stored.bytes, big.len() as u64);
    assert_eq!(stored.metadata["sha256"], sha_hex(&big));
    store
        .put_segment(upload(cache.path(), 1, b"first"))
        .await
        .expect("upload");
    store
        .put_segment(upload(cache.path(), 3, b"third"))
        .await
        .expect("upload");

    // Re-upload of the same segment (crash before mark_uploaded): same name, no duplicate.
    let again = store
        .put_segment(upload(cache.path(), 2, &big))
        .await
        .expect("re-upload");
    assert_eq!(again.name, stored.name);
    // Different content under the same name is another writer's blob: refused, kept
    // (upload_two_writers.rs covers it in full).
    let changed = pattern(200 * 1024, 9);
    let err = store
        .put_segment(upload(cache.path(), 3, &changed))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ConditionNotMet", "{err}");

    let listed = store.list_asset("cam-1").await.expect("list");
    let names: Vec<_> = listed.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cam-1/20270115T080030Z-r0000000007-s0000000001.mp4",
            "cam-1/20270115T080100Z-r0000000007-s0000000002.mp4",
            "cam-1/20270115T080130Z-r0000000007-s0000000003.mp4",
        ],
        "prefix listing is time order, one blob per segment"
    );
    assert_eq!(listed[1].bytes, big.len() as u64);
    assert_eq!(listed[1].metadata["sequence"], "2");
    assert_eq!(listed[1].metadata["run"], "7");
    assert_eq!(listed[1].metadata["codec"], "avc1.64001f");
    assert_eq!(
        listed[1].span(),
        Some((
            Ticks90k::from_secs(1_800_000_060),
            Ticks90k::from_secs(1_800_000_090)
        ))
    );
    assert_eq!(listed[2].metadata["sha256"], sha_hex(b"third"));
    assert_eq!(store.read_blob(&listed[1].name).await.unwrap(), big);
    assert_eq!(store.read_blob(&listed[2].name).await.unwrap(), b"third");
    assert!(store.list_asset("cam-2").await.unwrap().is_empty());

    // Listing by time range (through the names' time prefixes), and by spans.
    let t = |s: i64| Ticks90k::from_secs(1_800_000_000 + s);
    let in_range = store.list_range("cam-1", t(65), t(70)).await.unwrap();
    assert!(in_range.asset_has_blobs);
    assert_eq!(in_range.items, vec![listed[1].clone()]);
    let spans = store.spans("cam-1", t(0), t(3600)).await.unwrap();
    assert_eq!(
        spans.items,
        listed.iter().map(|b| b.span().unwrap()).collect::<Vec<_>>()
    );
    let hole = store.list_range("cam-1", t(-3600), t(0)).await.unwrap();
    assert!(hole.items.is_empty() && hole.asset_has_blobs);
    let unknown = store.list_range("cam-2", t(0), t(100)).await.unwrap();
    assert!(unknown.items.is_empty() && !unknown.asset_has_blobs);

    // Gap records: beside the blobs, idempotent, listed by range, never listed as blobs.
    let offline = Gap {
        start: t(90),
        end: t(130),
        cause: GapCause::CameraOffline,
    };
    let evicted = Gap {
        start: t(400),
        end: t(430),
        cause: GapCause::EvictedBeforeUpload,
    };
    store.put_gaps("cam-1", &[offline]).await.expect("put gaps");
    // After a restart the uploader sends what its cache holds again, plus a new one.
    store
        .put_gaps("cam-1", &[offline, evicted])
        .await
        .expect("put gaps again");
    assert_eq!(
        store.list_gaps("cam-1", t(0), t(1000)).await.unwrap(),
        vec![offline, evicted]
    );
    assert_eq!(
        store.list_gaps("cam-1", t(130), t(401)).await.unwrap(),
        vec![evicted]
    );
    assert!(
        store
            .list_gaps("cam-2", t(0), t(1000))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.list_asset("cam-1").await.unwrap().len(),
        3,
        "gaps are not blobs"
    );
    let record = store
        .read_blob(&mediagraph::upload::gaps::record_name("cam-1", &offline))
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(record["cause"], "CameraOffline");
}

#[tokio::test]
async fn wrong_account_key_is_an_authentication_error() {
    let azurite = Azurite::start().expect("Azurite");
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWs=";
    let cs = azurite::connection_string(&azurite.blob_endpoint(), wrong_key);
    let store = store(
        parse_connection_string(&cs, "assets", true).unwrap(),
        small_blocks(),
    );
    let err = store.prepare().await.unwrap_err();
    assert_eq!(err.code(), "AuthenticationFailed", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("authentication failed (check the account key or SAS)"),
        "{text}"
    );
    assert!(
        text.contains("devstoreaccount1") && text.contains("assets"),
        "{text}"
    );
    assert!(
        !text.contains(wrong_key),
        "the key must not leak into errors: {text}"
    );
}

#[tokio::test]
async fn missing_container_is_created_only_when_allowed() {
    let azurite = Azurite::start().expect("Azurite");
    let cs = azurite.connection_string();
    let refused = store(
        parse_connection_string(&cs, "not-there", false).unwrap(),
        small_blocks(),
    );
    let err = refused.prepare().await.unwrap_err();
    assert_eq!(err.code(), "ContainerNotFound", "{err}");
    assert!(
        err.to_string().contains("--azure-create-container"),
        "{err}"
    );
    // Uploading without the container fails with the same clear cause.
    let cache = tempfile::tempdir().unwrap();
    let err = refused
        .put_segment(upload(cache.path(), 1, b"x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ContainerNotFound", "{err}");

    let allowed = store(
        parse_connection_string(&cs, "not-there", true).unwrap(),
        small_blocks(),
    );
    allowed.prepare().await.expect("created");
    allowed.prepare().await.expect("already there is fine");
    allowed
        .put_segment(upload(cache.path(), 1, b"x"))
        .await
        .expect("upload after create");
    assert_eq!(refused.list_asset("cam-1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn unreachable_endpoint_is_reported_as_such() {
    let port = azurite::free_port().unwrap();
    let cs = azurite::connection_string(
        &format!("http://127.0.0.1:{port}/devstoreaccount1"),
        azurite::ACCOUNT_KEY,
    );
    let policy = TransferPolicy {
        connect_timeout: Duration::from_secs(2),
        request_retries: 0,
        ..small_blocks()
    };
    let store = store(
        parse_connection_string(&cs, "assets", true).unwrap(),
        policy,
    );
    let started = Instant::now();
    let err = store.prepare().await.unwrap_err();
    assert_eq!(err.code(), "EndpointUnreachable", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("endpoint unreachable") && text.contains(&port.to_string()),
        "{text}"
    );
    assert!(
        !text.contains("sig=") || text.contains("sig=***"),
        "SAS must be redacted: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded by the configured timeouts"
    );
    let cache = tempfile::tempdir().unwrap();
    let err = store
        .put_segment(upload(cache.path(), 1, b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, UploadError::Azure { .. }), "{err}");
}

/// kill -9 a process while it stages blocks: the blob must not be visible, the segment stays
/// pending, and the next run uploads everything exactly once.
#[tokio::test]
async fn killed_mid_block_upload_leaves_no_visible_blob_and_the_rerun_completes() {
    let azurite = Azurite::start().expect("Azurite");
    let segments = tempfile::tempdir().unwrap();
    let cache_dir = segments.path().join("cache");
    let big = pattern(96 << 20, 3);
    {
        let (cache, _) = Cache::open(&cache_dir, u64::MAX).unwrap();
        cache
            .begin_segment(
                1,
                0,
                Ticks90k::from_secs(1_800_000_000),
                "avc1.64001f",
                "mp4",
            )
            .unwrap();
        for (i, chunk) in big.chunks(1 << 20).enumerate() {
            cache
                .append_fragment(&[chunk], Ticks90k::from_secs(1_800_000_000 + i as i64 / 4))
                .unwrap();
        }
        cache
            .append_fragment(&[], Ticks90k::from_secs(1_800_000_030))
            .unwrap();
        cache.seal().unwrap();
        cache
            .begin_segment(
                1,
                1,
                Ticks90k::from_secs(1_800_000_030),
                "avc1.64001f",
                "mp4",
            )
            .unwrap();
        cache
            .append_fragment(
                &[b"small second segment"],
                Ticks90k::from_secs(1_800_000_060),
            )
            .unwrap();
        cache.close().unwrap();
    }
    let pending = || {
        Cache::open(&cache_dir, u64::MAX)
            .unwrap()
            .0
            .sealed_pending()
            .len()
    };
    let helper = env!("CARGO_BIN_EXE_upload_segments");
    let args = |cs: &str| {
        [
            cs.to_owned(),
            "crash".into(),
            cache_dir.display().to_string(),
            "cam-1".into(),
            "1".into(),
        ]
    };

    let mut child = Command::new(helper)
        .args(args(&azurite.connection_string()))
        .spawn()
        .expect("helper");
    let extents = azurite_extent_bytes_path(&azurite);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let staged = dir_bytes(&extents);
        if staged >= 8 << 20 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "helper exited before it could be killed"
        );
        assert!(Instant::now() < deadline, "no blocks staged within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL: no destructor, no flush, exactly like a power cut of the process.
    child.kill().unwrap();
    child.wait().unwrap();

    let spec = parse_connection_string(&azurite.connection_string(), "crash", false).unwrap();
    let store = store(spec, small_blocks());
    let visible = store.list_asset("cam-1").await.unwrap();
    assert!(
        visible.is_empty(),
        "a half-uploaded blob must not be visible: {visible:?}"
    );
    assert_eq!(pending(), 2, "nothing marked uploaded");

    let status = Command::new(helper)
        .args(args(&azurite.connection_string()))
        .status()
        .expect("rerun");
    assert!(status.success());
    let listed = store.list_asset("cam-1").await.unwrap();
    assert_eq!(listed.len(), 2, "no duplicate, nothing skipped: {listed:?}");
    assert_eq!(listed[0].bytes, big.len() as u64);
    assert_eq!(listed[0].metadata["sha256"], sha_hex(&big));
    assert_eq!(pending(), 0, "both marked uploaded");
    assert_eq!(store.read_blob(&listed[0].name).await.unwrap(), big);
}

/// Azurite keeps staged block data in extent files under its data directory.
fn azurite_extent_bytes_path(azurite: &Azurite) -> std::path::PathBuf {
    azurite.data_dir().join("data/__blobstorage__")
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// One raw HTTP/1.1 GET with `Connection: close`: status, lower-cased head and body.
async fn http_get(addr: std::net::SocketAddr, target: &str, extra: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

/// Playback over an Azure store: blob bytes and the init/media parts come from ranged,
/// streamed downloads, exact to the byte; a missing blob is a 404.
#[tokio::test]
async fn playback_serves_ranges_of_azure_blobs_through_the_front_door() {
    use mediagraph::http::{FrontDoor, Limits};
    use mediagraph::playback::server::Playback;
    use mediagraph::topology::AssetName;

    let azurite = Azurite::start().expect("Azurite");
    let spec = parse_connection_string(&azurite.connection_string(), "assets", true).unwrap();
    let store = store(spec, small_blocks());
    store.prepare().await.expect("create container");
    let cache = tempfile::tempdir().unwrap();
    let boxed = |kind: &[u8; 4], len: usize, seed: u8| {
        let mut b = (len as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend(pattern(len - 8, seed));
        b
    };
    let mut blob = boxed(b"ftyp", 24, 1);
    blob.extend(boxed(b"moov", 90_000, 2)); // past the first header read: a second ranged read
    let init = blob.len();
    blob.extend(boxed(b"moof", 100, 3));
    blob.extend(boxed(b"mdat", 400_000, 4));
    let stored = store
        .put_segment(upload(cache.path(), 1, &blob))
        .await
        .expect("upload");
    assert_eq!(
        store.blob_len(&stored.name).await.unwrap(),
        blob.len() as u64
    );
    let missing = store.blob_len("cam-1/nothing.mp4").await.unwrap_err();
    assert!(
        matches!(missing, UploadError::BlobNotFound { .. }),
        "{missing}"
    );

    let door = FrontDoor::new(Limits::default(), None)
        .playback(Playback::new(store, vec![AssetName::new("cam-1").unwrap()]));
    let listener = door.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(door.serve(listener, std::future::pending()));
    let url = format!(
        "/assets/cam-1/blobs/{}",
        stored.name.rsplit('/').next().unwrap()
    );

    let (status, head, body) = http_get(addr, &url, "").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        body == blob,
        "whole blob differs ({} of {} bytes)",
        body.len(),
        blob.len()
    );
    let (status, _, body) = http_get(addr, &format!("{url}/init.mp4"), "").await;
    assert_eq!(status, 200);
    assert!(body == blob[..init]);
    let (status, head, body) = http_get(
        addr,
        &format!("{url}/media.mp4"),
        "Range: bytes=1000-299999\r\n",
    )
    .await;
    assert_eq!(status, 206, "{head}");
    assert!(
        head.contains(&format!(
            "content-range: bytes 1000-299999/{}",
            blob.len() - init
        )),
        "{head}"
    );
    assert!(body == blob[init + 1000..init + 300_000]);
    let (status, _, body) = http_get(
        addr,
        "/assets/cam-1/blobs/20270115T080100Z-r0000000007-s0000000099.mp4",
        "",
    )
    .await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
}
