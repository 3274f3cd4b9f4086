//! The Azure Blob asset store, on the maintained `azure_storage_blob` 1.x client.
//!
//! A segment becomes a block blob: blocks of `TransferPolicy::block_size` are read from the
//! cache file one at a time, each staged with its transactional MD5 (the service rejects a
//! corrupted block), then the block list is committed together with the metadata. Until the
//! commit the blob does not exist for readers, so an interrupted upload is never visible as a
//! complete blob; re-staging under the same block ids and committing again replaces the
//! leftovers. A blob already under the name is replaced only when its metadata says it is this
//! very segment (asset, run, sequence, span and SHA-256: an earlier attempt that committed but
//! was not marked uploaded); anything else is a `Conflict` (`ConditionNotMet`) and the segment
//! stays cached. The commit is conditional on what was checked (`If-None-Match: *` for a new
//! blob, `If-Match: <etag>` for the earlier attempt), so two writers on one asset fail loudly
//! instead of silently replacing each other. Properties are read back to verify length, MD5
//! and SHA-256.

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZero;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::{
    ClientOptions, Etag, ExponentialRetryOptions, NoFormat, RequestContent, RetryOptions,
    StatusCode, Transport, Url,
};
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders, BlobClientUploadOptions,
    BlobContainerClientListBlobsOptions, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientStageBlockOptions, BlockLookupList, HttpRange, ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use bytes::Bytes;
use futures::TryStreamExt;
use md5::Md5;
use sha2::{Digest, Sha256};

use super::config::{AzureCredential, AzureSpec, TransferPolicy};
use super::gaps::{self, GAPS_DIR};
use super::{
    AssetStore, AzureFailure, ByteStream, InRange, SegmentUpload, StoredBlob, UploadError, hex, sas,
};
use crate::cache::Gap;
use crate::sync::LockExt;
use crate::time::{Duration90k, Ticks90k};

pub struct AzureBlobStore {
    spec: AzureSpec,
    policy: TransferPolicy,
    http: Arc<reqwest::Client>,
    /// The container client and when its SAS was signed (account-key credentials re-sign).
    client: Mutex<(Instant, Arc<BlobContainerClient>)>,
}

impl AzureBlobStore {
    pub fn new(spec: AzureSpec, policy: TransferPolicy) -> Result<Self, UploadError> {
        // reqwest is built without a TLS crypto provider of its own (host/Cargo.toml says why);
        // the first store installs ring's as the process default, later calls find it there.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.request_timeout)
            // Below the keep-alive timeout of common servers (Node's default is 5 s), so an idle
            // pooled connection is dropped by us before the server closes it under a request.
            .pool_idle_timeout(Duration::from_secs(4))
            .no_gzip()
            .no_deflate()
            .build()
            .map_err(|e| UploadError::Config(format!("cannot build the HTTP client: {e}")))?;
        let http = Arc::new(http);
        let client = build_client(&spec, &policy, &http)?;
        Ok(Self {
            spec,
            policy,
            http,
            client: Mutex::new((Instant::now(), Arc::new(client))),
        })
    }

    fn container(&self) -> Result<Arc<BlobContainerClient>, UploadError> {
        let mut guard = self.client.lock_unpoisoned();
        let resign = matches!(self.spec.credential, AzureCredential::AccountKey(_))
            && guard.0.elapsed() > self.policy.sas_lifetime / 2;
        if resign {
            *guard = (
                Instant::now(),
                Arc::new(build_client(&self.spec, &self.policy, &self.http)?),
            );
        }
        Ok(guard.1.clone())
    }

    fn fail(&self, kind: AzureFailure, message: impl Into<String>) -> UploadError {
        UploadError::Azure {
            account: self.spec.account.clone(),
            container: self.spec.container.clone(),
            kind,
            message: redact_sas(&message.into()),
        }
    }

    /// Maps a client error to what an operator acts on.
    fn classify(&self, what: &str, e: azure_core::Error) -> UploadError {
        let kind = match e.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => match (*status, error_code.as_deref()) {
                (StatusCode::Forbidden, _) => AzureFailure::Authentication,
                (_, Some("ContainerNotFound")) => AzureFailure::ContainerMissing,
                (StatusCode::PreconditionFailed, _)
                | (StatusCode::Conflict, Some("BlobAlreadyExists")) => {
                    AzureFailure::ConditionFailed
                }
                _ => AzureFailure::Service,
            },
            ErrorKind::Connection | ErrorKind::Io => AzureFailure::Unreachable,
            _ => AzureFailure::Service,
        };
        let detail = match e.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => {
                format!(
                    "HTTP {} {}",
                    u16::from(*status),
                    error_code.as_deref().unwrap_or("")
                )
            }
            _ => error_chain(&e),
        };
        self.fail(kind, format!("{what}: {}", detail.trim()))
    }

    async fn properties(
        &self,
        container: &BlobContainerClient,
        name: &str,
    ) -> Result<Option<StoredBlob>, UploadError> {
        match container.blob_client(name).get_properties(None).await {
            Ok(rsp) => {
                let bytes = rsp
                    .content_length()
                    .map_err(|e| self.classify("read properties", e))?
                    .unwrap_or(0);
                let mut metadata: std::collections::BTreeMap<String, String> = rsp
                    .metadata()
                    .map_err(|e| self.classify("read metadata", e))?
                    .into_iter()
                    .collect();
                if let Some(md5) = rsp
                    .content_md5()
                    .map_err(|e| self.classify("read properties", e))?
                {
                    metadata.insert("contentmd5".into(), hex(&md5));
                }
                if let Some(etag) = rsp
                    .etag()
                    .map_err(|e| self.classify("read properties", e))?
                {
                    metadata.insert("etag".into(), etag.to_string());
                }
                Ok(Some(StoredBlob {
                    name: name.to_owned(),
                    bytes,
                    metadata,
                }))
            }
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => {
                let container_missing = matches!(e.kind(), ErrorKind::HttpResponse { error_code: Some(c), .. } if c == "ContainerNotFound");
                if container_missing {
                    Err(self.classify(&format!("read {name}"), e))
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(self.classify(&format!("read {name}"), e)),
        }
    }
}

fn build_client(
    spec: &AzureSpec,
    policy: &TransferPolicy,
    http: &Arc<reqwest::Client>,
) -> Result<BlobContainerClient, UploadError> {
    let sas = match &spec.credential {
        AzureCredential::Sas(sas) => sas.clone(),
        AzureCredential::AccountKey(key) => {
            let now = time::OffsetDateTime::now_utc();
            // Start slightly in the past so a device clock a little ahead of the service works.
            let start = now - time::Duration::minutes(5);
            let expiry =
                now + time::Duration::try_from(policy.sas_lifetime).unwrap_or(time::Duration::HOUR);
            sas::account_sas(
                &spec.account,
                key,
                start,
                expiry,
                spec.blob_endpoint.scheme() == "https",
            )
        }
    };
    let mut url: Url = spec.blob_endpoint.clone();
    url.path_segments_mut()
        .map_err(|_| {
            UploadError::Config(format!(
                "blob endpoint {} cannot take a path",
                spec.blob_endpoint
            ))
        })?
        .pop_if_empty()
        .push(&spec.container);
    url.set_query(Some(&sas));
    let retry = RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: policy.request_retries,
        max_total_elapsed: azure_core::time::Duration::try_from(
            policy.request_timeout * (policy.request_retries + 1),
        )
        .unwrap_or(azure_core::time::Duration::MINUTE),
        max_delay: azure_core::time::Duration::seconds(5),
    });
    let http: Arc<dyn azure_core::http::HttpClient> = http.clone();
    let options = BlobContainerClientOptions {
        client_options: ClientOptions {
            retry,
            transport: Some(Transport::new(http)),
            ..Default::default()
        },
        ..Default::default()
    };
    BlobContainerClient::new(url, None, Some(options))
        .map_err(|e| UploadError::Config(format!("Azure container client: {}", error_chain(&e))))
}

#[async_trait]
impl AssetStore for AzureBlobStore {
    fn location(&self) -> String {
        format!(
            "{}{} (account {})",
            self.spec.blob_endpoint, self.spec.container, self.spec.account
        )
    }

    async fn prepare(&self) -> Result<(), UploadError> {
        let container = self.container()?;
        let exists = container
            .exists()
            .await
            .map_err(|e| self.classify("check container", e))?;
        if exists {
            return Ok(());
        }
        if !self.spec.create_container {
            return Err(self.fail(
                AzureFailure::ContainerMissing,
                "the container does not exist; create it or allow creation (--azure-create-container)",
            ));
        }
        match container.create(None).await {
            Ok(_) => Ok(()),
            // Someone else created it between our check and our create: fine.
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(self.classify("create container", e)),
        }
    }

    async fn put_segment(&self, segment: SegmentUpload) -> Result<StoredBlob, UploadError> {
        let name = segment.facts.blob_name();
        let container = self.container()?;
        let previous = self.properties(&container, &name).await?;
        // Someone else's blob under this name: refused before sending a byte.
        if let Some(why) = previous
            .as_ref()
            .and_then(|p| segment.facts.differs_from(&p.metadata, None))
        {
            return Err(UploadError::Conflict { blob: name, why });
        }
        let blob = container.blob_client(&name).block_blob_client();
        // Block ids unique to this attempt: blocks another writer stages under the same blob
        // name (uncommitted, invisible) can never end up in this attempt's block list. Eight
        // hex digits of nonce plus eight of index keep the 16 characters every attempt uses.
        let nonce: u32 = rand::random();

        let read_err = |source| UploadError::ReadSegment {
            segment: name.clone(),
            source,
        };
        let mut reader = BlockReader::new(segment.file, self.policy.block_size);
        let mut block_ids = Vec::new();
        let mut sent = 0u64;
        loop {
            let (back, next) = tokio::task::spawn_blocking(move || {
                let next = reader.next_block();
                (reader, next)
            })
            .await
            .map_err(|e| read_err(std::io::Error::other(e)))?;
            reader = back;
            let Some((block, block_md5)) = next.map_err(read_err)? else {
                break;
            };
            // Fixed-width ids: the service requires equal lengths within one blob.
            let id = format!("{nonce:08x}{:08}", block_ids.len()).into_bytes();
            let len = block.len() as u64;
            let options = BlockBlobClientStageBlockOptions {
                transactional_content_md5: Some(block_md5),
                ..Default::default()
            };
            let body: RequestContent<azure_core::Bytes, NoFormat> = block.into();
            blob.stage_block(&id, len, body, Some(options))
                .await
                .map_err(|e| {
                    self.classify(&format!("stage block {} of {name}", block_ids.len()), e)
                })?;
            block_ids.push(id);
            sent += len;
        }
        if sent != segment.bytes {
            return Err(UploadError::SegmentSize {
                segment: name,
                expected: segment.bytes,
                actual: sent,
            });
        }

        let (sha, md5) = reader.finish();
        let sha = hex(&sha);
        let metadata: HashMap<String, String> =
            segment.facts.metadata(Some(&sha)).into_iter().collect();
        if let Some(why) = previous
            .as_ref()
            .and_then(|p| segment.facts.differs_from(&p.metadata, Some(&sha)))
        {
            return Err(UploadError::Conflict { blob: name, why });
        }
        // The commit is conditional on what was checked: a new blob only if the name is still
        // free, the earlier attempt only if it is unchanged since it was read.
        let (if_match, if_none_match) = match previous.as_ref().and_then(|p| p.metadata.get("etag"))
        {
            Some(etag) => (Some(Etag::from(etag.as_str())), None),
            None => (None, Some(Etag::from("*"))),
        };
        let list = BlockLookupList {
            latest: Some(block_ids),
            ..Default::default()
        };
        let content =
            RequestContent::try_from(list).map_err(|e| self.classify("encode block list", e))?;
        let options = BlockBlobClientCommitBlockListOptions {
            metadata: Some(metadata),
            blob_content_md5: Some(md5.clone()),
            blob_content_type: Some(content_type(&segment.facts.extension).to_owned()),
            if_match,
            if_none_match,
            ..Default::default()
        };
        blob.commit_block_list(content, Some(options))
            .await
            .map_err(|e| self.classify(&format!("commit {name}"), e))?;

        let stored =
            self.properties(&container, &name)
                .await?
                .ok_or_else(|| UploadError::Verify {
                    blob: name.clone(),
                    what: "not found after commit".into(),
                })?;
        super::local::verify(&stored, Some(&sha), segment.bytes)?;
        if stored.metadata.get("contentmd5") != Some(&hex(&md5)) {
            return Err(UploadError::Verify {
                blob: name,
                what: "Content-MD5 does not match".into(),
            });
        }
        Ok(stored)
    }

    async fn list_asset(&self, asset: &str) -> Result<Vec<StoredBlob>, UploadError> {
        let container = self.container()?;
        let mut blobs = self.list_blobs(&container, &format!("{asset}/")).await?;
        blobs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(blobs)
    }

    async fn list_range(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<InRange<StoredBlob>, UploadError> {
        let container = self.container()?;
        let earliest = Ticks90k(from.0.saturating_sub(LONGEST_BLOB.0));
        let listed = match time_prefixes(earliest, to) {
            Some(prefixes) => {
                let prefixes: Vec<String> =
                    prefixes.iter().map(|p| format!("{asset}/{p}")).collect();
                futures::future::try_join_all(
                    prefixes.iter().map(|p| self.list_blobs(&container, p)),
                )
                .await?
                .concat()
            }
            None => self.list_blobs(&container, &format!("{asset}/")).await?,
        };
        let mut items: Vec<StoredBlob> = listed
            .into_iter()
            .filter(|b| b.span().is_some_and(|(s, e)| s < to && e > from))
            .collect();
        items.sort_by(|a, b| a.name.cmp(&b.name));
        let asset_has_blobs = !items.is_empty() || self.has_blobs(&container, asset).await?;
        Ok(InRange {
            items,
            asset_has_blobs,
        })
    }

    async fn spans(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<InRange<(Ticks90k, Ticks90k)>, UploadError> {
        let listed = self.list_range(asset, from, to).await?;
        let mut items: Vec<_> = listed.items.iter().filter_map(StoredBlob::span).collect();
        items.sort();
        Ok(InRange {
            items,
            asset_has_blobs: listed.asset_has_blobs,
        })
    }

    async fn put_gaps(&self, asset: &str, gaps: &[Gap]) -> Result<(), UploadError> {
        if gaps.is_empty() {
            return Ok(());
        }
        let container = self.container()?;
        // One listing of the records in the batch's time span saves a request per gap already
        // stored (after a restart the uploader sends every gap its cache still holds).
        let stamps: Vec<String> = gaps.iter().map(|g| super::utc_stamp(g.start)).collect();
        let common = common_prefix(&stamps);
        let stored: std::collections::HashSet<String> = self
            .list_names(&container, &format!("{asset}/{GAPS_DIR}/{common}"))
            .await?
            .into_iter()
            .collect();
        for gap in gaps {
            let name = gaps::record_name(asset, gap);
            if stored.contains(&name) {
                continue;
            }
            let body = Bytes::from(gaps::record_json(gap));
            let options = BlobClientUploadOptions {
                blob_content_type: Some("application/json".to_owned()),
                ..Default::default()
            }
            .if_not_exists();
            match container
                .blob_client(&name)
                .upload(body.into(), Some(options))
                .await
            {
                Ok(_) => {}
                // Created meanwhile (a retry whose answer was lost): the name is the gap.
                Err(e)
                    if matches!(
                        e.http_status(),
                        Some(StatusCode::Conflict | StatusCode::PreconditionFailed)
                    ) => {}
                Err(e) => return Err(self.classify(&format!("put {name}"), e)),
            }
        }
        Ok(())
    }

    async fn list_gaps(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<Vec<Gap>, UploadError> {
        let container = self.container()?;
        let prefix = format!("{asset}/{GAPS_DIR}/");
        let mut found: Vec<Gap> = self
            .list_names(&container, &prefix)
            .await?
            .iter()
            .filter_map(|n| gaps::parse_record_file(n.strip_prefix(&prefix)?))
            .filter(|g| gaps::overlaps(g, from, to))
            .collect();
        gaps::normalize(&mut found);
        Ok(found)
    }

    async fn read_blob(&self, name: &str) -> Result<Vec<u8>, UploadError> {
        let container = self.container()?;
        let what = format!("download {name}");
        let rsp = container
            .blob_client(name)
            .download(None)
            .await
            .map_err(|e| self.classify(&what, e))?;
        let body = rsp
            .body
            .collect()
            .await
            .map_err(|e| self.classify(&what, e))?;
        Ok(body.to_vec())
    }

    async fn blob_len(&self, name: &str) -> Result<u64, UploadError> {
        let container = self.container()?;
        match self.properties(&container, name).await? {
            Some(blob) => Ok(blob.bytes),
            None => Err(UploadError::BlobNotFound {
                blob: name.to_owned(),
            }),
        }
    }

    async fn read_blob_range(
        &self,
        name: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, UploadError> {
        let len = range.end.saturating_sub(range.start);
        // The service refuses an empty range; there is nothing to fetch anyway.
        let Some(partition) = NonZero::new(usize::try_from(len).unwrap_or(usize::MAX)) else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        let container = self.container()?;
        let what = format!("download {name}");
        // One request for the whole range, streamed as it arrives: a partition as large as the
        // range and no parallelism, so the client never buffers partitions of its own.
        let options = BlobClientDownloadOptions {
            range: Some(HttpRange::new(range.start, len)),
            parallel: Some(NonZero::<usize>::MIN),
            partition_size: Some(partition),
            ..Default::default()
        };
        let rsp = match container.blob_client(name).download(Some(options)).await {
            Ok(rsp) => rsp,
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => {
                let container_missing = matches!(e.kind(), ErrorKind::HttpResponse { error_code: Some(c), .. } if c == "ContainerNotFound");
                if !container_missing {
                    return Err(UploadError::BlobNotFound {
                        blob: name.to_owned(),
                    });
                }
                return Err(self.classify(&what, e));
            }
            Err(e) => return Err(self.classify(&what, e)),
        };
        let (account, container) = (self.spec.account.clone(), self.spec.container.clone());
        Ok(Box::pin(rsp.body.map_err(move |e| UploadError::Azure {
            account: account.clone(),
            container: container.clone(),
            kind: AzureFailure::Unreachable,
            message: redact_sas(&format!("{what}: {}", error_chain(&e))),
        })))
    }
}

impl AzureBlobStore {
    /// The blobs under `prefix` (`<asset>/...`) with their metadata, in name order; gap
    /// records (`<asset>/gaps/...`, below the asset's prefix) are no blobs.
    async fn list_blobs(
        &self,
        container: &BlobContainerClient,
        prefix: &str,
    ) -> Result<Vec<StoredBlob>, UploadError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_owned()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let mut pager = container
            .list_blobs(Some(options))
            .map_err(|e| self.classify("list blobs", e))?;
        let mut blobs = Vec::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| self.classify("list blobs", e))?
        {
            let name = item.name.unwrap_or_default();
            if !is_blob_name(&name) {
                continue;
            }
            let bytes = item.properties.and_then(|p| p.content_length).unwrap_or(0);
            let metadata = item
                .metadata
                .and_then(|m| m.values)
                .unwrap_or_default()
                .into_iter()
                .collect();
            blobs.push(StoredBlob {
                name,
                bytes,
                metadata,
            });
        }
        Ok(blobs)
    }

    /// Whether `asset` has any blob: its first name (blobs, which start with a digit, sort
    /// before the `gaps/` folder).
    async fn has_blobs(
        &self,
        container: &BlobContainerClient,
        asset: &str,
    ) -> Result<bool, UploadError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(format!("{asset}/")),
            maxresults: Some(1),
            ..Default::default()
        };
        let mut pager = container
            .list_blobs(Some(options))
            .map_err(|e| self.classify("list blobs", e))?;
        let first = pager
            .try_next()
            .await
            .map_err(|e| self.classify("list blobs", e))?;
        Ok(first.and_then(|b| b.name).is_some_and(|n| is_blob_name(&n)))
    }

    /// The names of the blobs under `prefix`, in name order, without their metadata.
    async fn list_names(
        &self,
        container: &BlobContainerClient,
        prefix: &str,
    ) -> Result<Vec<String>, UploadError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_owned()),
            ..Default::default()
        };
        let mut pager = container
            .list_blobs(Some(options))
            .map_err(|e| self.classify("list blobs", e))?;
        let mut names = Vec::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| self.classify("list blobs", e))?
        {
            names.extend(item.name);
        }
        Ok(names)
    }
}

/// A blob is `<asset>/<file>`; anything deeper below the asset (its gap records) is not.
fn is_blob_name(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(_, file)| !file.is_empty() && !file.contains('/'))
}

/// Segments last at most twice the longest segmentLength (PT5M), so a blob that overlaps an
/// instant starts at most this long before it.
const LONGEST_BLOB: Duration90k = Duration90k::from_secs(2 * 300);
/// A range listed by more name prefixes than this is listed whole.
const MAX_PREFIXES: usize = 8;

/// Blob names start with their UTC start second (`yyyyMMddTHHmmssZ`), so the blobs starting in
/// `[from, to)` are among those named with the hour, day, month or year prefixes the range
/// touches. The finest unit that needs at most [`MAX_PREFIXES`] listings; `None` when even
/// years need more (list the whole asset).
fn time_prefixes(from: Ticks90k, to: Ticks90k) -> Option<Vec<String>> {
    const DAY: i64 = 86_400;
    // (prefix length, a step no longer than the unit's shortest length)
    let units = [(11, 3600), (8, DAY), (6, 28 * DAY), (4, 365 * DAY)];
    let (first, last) = (from.as_unix_secs(), (to - Duration90k(1)).as_unix_secs());
    // Before 1970 or after 9999 names are not dated this way; a range that long is listed whole.
    if first < 0 || last >= 253_402_300_800 || last < first || last - first > 8 * 366 * DAY {
        return None;
    }
    units.into_iter().find_map(|(len, step)| {
        let mut prefixes: Vec<String> = Vec::new();
        let mut t = first;
        loop {
            let at = t.min(last);
            let stamp = super::utc_stamp(Ticks90k::from_secs(at));
            let prefix = &stamp[..len];
            if prefixes.last().map(String::as_str) != Some(prefix) {
                prefixes.push(prefix.to_owned());
                if prefixes.len() > MAX_PREFIXES {
                    return None;
                }
            }
            if at == last {
                return Some(prefixes);
            }
            t += step;
        }
    })
}

/// The longest common prefix of `texts` (ASCII names).
fn common_prefix(texts: &[String]) -> &str {
    let Some(first) = texts.first() else {
        return "";
    };
    let len = texts.iter().fold(first.len(), |len, t| {
        first
            .bytes()
            .zip(t.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count()
    });
    &first[..len]
}

fn content_type(extension: &str) -> &'static str {
    match extension {
        "mp4" | "m4s" | "cmfv" => "video/mp4",
        "ts" => "video/mp2t",
        _ => "application/octet-stream",
    }
}

/// Replaces SAS signatures in text (client errors quote request URLs) with `***`.
fn redact_sas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("***");
        rest = &rest[at + 4..];
        let end = rest
            .find(['&', ' ', ')', '"', '\'', '>'])
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The error and its sources on one line (connection errors hide the cause in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Reads a segment block by block on the blocking pool, folding every block into the blob's
/// SHA-256 and MD5: hashing a 4 MiB block takes milliseconds, and the runtime thread that would
/// otherwise do it serves every camera.
struct BlockReader {
    file: std::fs::File,
    block_size: usize,
    sha: Sha256,
    md5: Md5,
}

impl BlockReader {
    fn new(file: std::fs::File, block_size: usize) -> Self {
        Self {
            file,
            block_size,
            sha: Sha256::new(),
            md5: Md5::new(),
        }
    }

    /// The next block and its own MD5, or `None` at the end of the segment.
    fn next_block(&mut self) -> std::io::Result<Option<(Bytes, Vec<u8>)>> {
        let mut block = Vec::with_capacity(self.block_size);
        (&mut self.file)
            .take(self.block_size as u64)
            .read_to_end(&mut block)?;
        if block.is_empty() {
            return Ok(None);
        }
        self.sha.update(&block);
        self.md5.update(&block);
        let block_md5 = Md5::digest(&block).to_vec();
        Ok(Some((Bytes::from(block), block_md5)))
    }

    /// The whole segment's SHA-256 and MD5.
    fn finish(self) -> ([u8; 32], Vec<u8>) {
        (self.sha.finalize().into(), self.md5.finalize().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::{Ticks90k, time_prefixes};

    fn at(text: &str) -> Ticks90k {
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap();
        Ticks90k::from_secs(t.unix_timestamp())
    }

    #[test]
    fn a_range_is_listed_by_the_finest_time_prefixes_that_stay_few() {
        let p = |a, b| time_prefixes(at(a), at(b));
        // A 4 h playlist (with the 10 min of a blob that started before it): hours.
        assert_eq!(
            p("2026-12-04T09:50:00Z", "2026-12-04T14:00:00Z").unwrap(),
            [
                "20261204T09",
                "20261204T10",
                "20261204T11",
                "20261204T12",
                "20261204T13"
            ]
        );
        // 25 h across midnight: days.
        assert_eq!(
            p("2026-12-04T23:00:00Z", "2026-12-06T00:00:00Z").unwrap(),
            ["20261204", "20261205"]
        );
        // 31 days: months; across a year end too.
        assert_eq!(
            p("2026-12-20T00:00:00Z", "2027-01-20T00:00:00Z").unwrap(),
            ["202612", "202701"]
        );
        assert_eq!(
            p("2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z").unwrap(),
            ["2020", "2021", "2022", "2023", "2024", "2025"]
        );
        // Unbounded (year precision without bounds): the whole asset.
        assert_eq!(time_prefixes(Ticks90k(i64::MIN), Ticks90k(i64::MAX)), None);
        assert_eq!(p("2000-01-01T00:00:00Z", "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn sas_signatures_are_redacted_from_messages() {
        let text =
            "error sending request for url (http://h/c?se=x&sig=HwuB%2FJau324%3D&sp=r): closed";
        assert_eq!(
            super::redact_sas(text),
            "error sending request for url (http://h/c?se=x&sig=***&sp=r): closed"
        );
        assert_eq!(super::redact_sas("sig=abc"), "sig=***");
    }
}
