//! The S3 side of [`Storage`] and [`MultipartStore`], on `aws-sdk-s3`
//! (feature `s3`).
//!
//! [`S3Storage`] is one bucket of Amazon S3 or of any S3-compatible server
//! (MinIO, RustFS, Garage, Ceph RGW, moto, s3s-fs). It passes the same
//! conformance suites as [`crate::MemoryStorage`] and the in-memory
//! multipart store, and fails with the same [`Error`] variants, so code
//! written against the traits runs unchanged on either.
//!
//! Configuration follows the AWS way ([`AwsSettings::load`]: environment,
//! shared profile, region chain) plus the two knobs S3-compatible servers
//! need: an explicit endpoint URL and path-style addressing.
//!
//! Request checksums are computed only when an operation requires them
//! (`RequestChecksumCalculation::WhenRequired`): since aws-sdk-s3 1.69 the
//! SDK adds CRC32 checksums to every upload by default, which many
//! S3-compatible servers reject and which, baked into presigned URLs, breaks
//! uploads of any other bytes (aws-sdk-rust issue 1240).

mod bucket;
mod error;

use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart as SdkCompletedPart, MetadataDirective, Tag, Tagging,
    TaggingDirective,
};
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The CORS rule, here too for the S3 side ([`CorsConfig::to_sdk`],
/// [`S3Storage::configure_cors`]).
pub use crate::cors::{CorsConfig, DEFAULT_CORS_MAX_AGE_SECS};
pub use aws_config::SdkConfig;
pub use bucket::{ABORT_INCOMPLETE_RULE_ID, abort_incomplete_rule};
pub use error::S3ErrorContext;
/// The `aws-config` and `aws-sdk-s3` versions this crate is built with, so
/// callers need not match them.
pub use {aws_config, aws_sdk_s3};

use crate::error::{Error, Result};
use crate::key::ObjectKey;
use crate::multipart::{
    ChecksumAlgorithm, CompletedPart, MAX_PART_NUMBER, MultipartStore, MultipartUploadInfo,
    PartChecksum, UploadedPart, check_part_number,
};
use crate::storage::{
    ByteStream, GetResult, ObjectMeta, PutOptions, Storage, Tags, check_bucket_name, multipart_etag,
};

/// S3's minimum size of every part but the last, 5 MiB (AWS "Amazon S3
/// multipart upload limits").
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The largest object a single CopyObject request copies, 5 GiB (AWS
/// CopyObject docs); larger objects are copied part by part.
pub const MAX_SINGLE_COPY_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Where and how to reach S3 or an S3-compatible server.
///
/// Everything left `None` comes from the standard AWS chain when
/// [`AwsSettings::load`] runs: `AWS_REGION` / profile region, credentials
/// from the environment, the shared profile or an instance/container role,
/// and `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_SQS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsSettings {
    /// Endpoint URL of an S3-compatible server, e.g. `http://127.0.0.1:9000`
    /// for a local MinIO; `None` for AWS (or the `AWS_ENDPOINT_URL*`
    /// variables).
    pub endpoint_url: Option<String>,
    /// Path-style URLs (`http://host/bucket/key`) instead of virtual-hosted
    /// style (`http://bucket.host/key`). Most local and S3-compatible
    /// servers need `true`; AWS works with either for DNS-compatible
    /// bucket names.
    pub force_path_style: bool,
    /// Region such as `us-east-1`; `None` takes the AWS chain's region.
    pub region: Option<String>,
}

impl AwsSettings {
    /// Settings for a local or S3-compatible server at `endpoint_url`,
    /// path-style, in `us-east-1` unless the region is set later.
    pub fn local(endpoint_url: impl Into<String>) -> Self {
        Self {
            endpoint_url: Some(endpoint_url.into()),
            force_path_style: true,
            region: Some("us-east-1".to_owned()),
        }
    }

    /// Whether parts sent with a checksum may skip the payload hash
    /// ([`S3Storage::with_unsigned_checksummed_parts`]): true for AWS
    /// itself (no endpoint) and for `https://` endpoints, where TLS
    /// protects the bytes on the way and the checksum is checked on
    /// arrival.
    pub fn verifies_part_checksums(&self) -> bool {
        self.endpoint_url
            .as_deref()
            .is_none_or(|u| u.starts_with("https://"))
    }

    /// Sets the endpoint URL.
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Sets path-style addressing on or off.
    pub fn with_force_path_style(mut self, on: bool) -> Self {
        self.force_path_style = on;
        self
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Loads the shared AWS configuration (credentials, region, endpoint,
    /// retry and timeout settings) through `aws-config`, with these
    /// settings on top.
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &self.endpoint_url {
            loader = loader.endpoint_url(e.clone());
        }
        loader.load().await
    }

    /// An S3 client for `sdk` with these settings: path-style when asked,
    /// and checksums only where an operation requires them (see the module
    /// docs).
    pub fn s3_client(&self, sdk: &SdkConfig) -> Client {
        let mut b = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(self.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(e) = &self.endpoint_url {
            b = b.endpoint_url(e.clone());
        }
        Client::from_conf(b.build())
    }
}

/// One bucket of S3 or an S3-compatible server, as [`Storage`] and
/// [`MultipartStore`].
///
/// Cloning is cheap (the client is shared). Server differences it copes
/// with: ListParts answers that are unsorted or lack ETags, and a repeated
/// CompleteMultipartUpload whose first attempt succeeded.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    copy_part_size: u64,
    multipart_copy_threshold: u64,
    unsigned_checksummed_parts: bool,
}

/// Part size of multipart copies, 512 MiB: objects above 10,000 × 512 MiB
/// (about 5 TB) get proportionally larger parts, up to S3's 5 GiB.
const DEFAULT_COPY_PART_SIZE: u64 = 512 * 1024 * 1024;

impl S3Storage {
    /// The bucket `bucket` through `client` (see [`AwsSettings::s3_client`]).
    ///
    /// # Errors
    /// [`Error::InvalidBucketName`] when `bucket` breaks the S3 naming rules
    /// (3..=63 characters of lowercase letters, digits, `-` and `.`).
    pub fn new(client: Client, bucket: impl Into<String>) -> Result<Self> {
        let bucket = bucket.into();
        check_bucket_name(&bucket)?;
        Ok(Self {
            client,
            bucket,
            copy_part_size: DEFAULT_COPY_PART_SIZE,
            multipart_copy_threshold: MAX_SINGLE_COPY_BYTES,
            unsigned_checksummed_parts: false,
        })
    }

    /// Whether a part sent with a checksum goes `UNSIGNED-PAYLOAD` (its
    /// body not hashed into the SigV4 signature; the signed checksum header
    /// binds it, and the server verifies the checksum), as the AWS transfer
    /// manager sends parts. That saves a SHA-256 pass over every byte.
    ///
    /// Default off: some S3-compatible servers (moto 5.1, s3s-fs 0.14)
    /// store parts without checking their checksum but do check a signed
    /// payload hash. Turn it on for AWS and other servers that check part
    /// checksums over TLS; [`AwsSettings::verifies_part_checksums`] says
    /// whether a configuration is one.
    pub fn with_unsigned_checksummed_parts(mut self, on: bool) -> Self {
        self.unsigned_checksummed_parts = on;
        self
    }

    /// Copies objects larger than `threshold` bytes with a multipart copy
    /// (UploadPartCopy) in parts of `part_size` bytes, instead of one
    /// CopyObject. Defaults: 5 GiB (the CopyObject limit) and 512 MiB.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] when `threshold` is over 5 GiB or
    /// `part_size` is outside 5 MiB..=5 GiB.
    pub fn with_multipart_copy(mut self, threshold: u64, part_size: u64) -> Result<Self> {
        if threshold > MAX_SINGLE_COPY_BYTES
            || !(MIN_PART_SIZE..=MAX_SINGLE_COPY_BYTES).contains(&part_size)
        {
            return Err(Error::InvalidPolicy {
                reason: format!(
                    "multipart copy threshold {threshold} must be <= 5 GiB and part size {part_size} within 5 MiB..=5 GiB"
                ),
            });
        }
        self.multipart_copy_threshold = threshold;
        self.copy_part_size = part_size;
        Ok(self)
    }

    /// The underlying client, for operations this type does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn ctx<'a>(&'a self, op: &'static str, key: &'a str) -> S3ErrorContext<'a> {
        S3ErrorContext {
            operation: op,
            bucket: &self.bucket,
            key,
            upload_id: None,
        }
    }

    fn ctx_upload<'a>(&'a self, op: &'static str, key: &'a str, id: &'a str) -> S3ErrorContext<'a> {
        S3ErrorContext {
            operation: op,
            bucket: &self.bucket,
            key,
            upload_id: Some(id),
        }
    }

    async fn multipart_copy(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        src: &ObjectMeta,
    ) -> Result<()> {
        let tags = self.get_tags(from).await?;
        let mut opts = PutOptions::default().with_tags(tags);
        opts.content_type = src.content_type.clone();
        opts.cache_control = src.cache_control.clone();
        opts.metadata = src.metadata.clone();
        let id = self.create_multipart_upload(to, opts).await?;
        let result = async {
            let mut part_size = self.copy_part_size;
            while src.size.div_ceil(part_size) > u64::from(MAX_PART_NUMBER) {
                part_size *= 2;
            }
            let source = copy_source(&self.bucket, from);
            let mut parts = Vec::new();
            let mut start = 0u64;
            let mut n = 1u32;
            while start < src.size {
                let end = (start + part_size).min(src.size);
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(to.as_str())
                    .upload_id(&id)
                    .part_number(n as i32)
                    .copy_source(&source)
                    .copy_source_if_match(quoted(&src.etag))
                    .copy_source_range(format!("bytes={start}-{}", end - 1))
                    .send()
                    .await
                    .map_err(|e| self.ctx_upload("UploadPartCopy", to.as_str(), &id).map(e))?;
                let etag = out
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .map(unquote)
                    .unwrap_or_default();
                parts.push(CompletedPart {
                    part_number: n,
                    etag,
                    checksum: None,
                });
                start = end;
                n += 1;
            }
            self.complete_multipart_upload(to, &id, &parts).await
        }
        .await;
        if result.is_err() {
            // Leave nothing half-made behind; the source is untouched.
            let _ = self.abort_multipart_upload(to, &id).await;
        }
        result.map(|_| ())
    }
}

/// S3's ETag without the surrounding quotes.
fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

fn quoted(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

/// Characters kept as-is in a copy source: RFC 3986 unreserved, and `/`
/// between key segments.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `bucket/key` for CopyObject's `x-amz-copy-source`, URL-encoded.
fn copy_source(bucket: &str, key: &ObjectKey) -> String {
    format!(
        "{bucket}/{}",
        utf8_percent_encode(key.as_str(), COPY_SOURCE)
    )
}

fn system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// `x-amz-tagging-count` of a GetObject answer: absent means no tags.
fn tag_count(header: Option<i32>) -> u32 {
    header.map(tag_count_of).unwrap_or(0)
}

fn tag_count_of(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn size_of(len: Option<i64>) -> u64 {
    len.and_then(|l| u64::try_from(l).ok()).unwrap_or(0)
}

macro_rules! meta_from {
    ($key:expr, $out:expr, $tag_count:expr) => {
        ObjectMeta {
            key: $key.clone(),
            size: size_of($out.content_length()),
            etag: $out.e_tag().map(unquote).unwrap_or_default(),
            content_type: $out.content_type().map(str::to_owned),
            cache_control: $out.cache_control().map(str::to_owned),
            last_modified: system_time($out.last_modified()),
            version_id: $out.version_id().map(str::to_owned),
            metadata: $out
                .metadata()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            tag_count: $tag_count,
        }
    };
}

#[async_trait]
impl Storage for S3Storage {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    /// PutObject. `create_only` sends `If-None-Match: *` (honoured by AWS
    /// since August 2024, MinIO, moto and s3s-fs; a server that ignores
    /// the header overwrites).
    async fn put(&self, key: &ObjectKey, body: Bytes, opts: PutOptions) -> Result<ObjectMeta> {
        let size = body.len() as u64;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_length(size as i64)
            .set_content_type(opts.content_type.clone())
            .set_cache_control(opts.cache_control.clone())
            .set_metadata(user_metadata(&opts.metadata))
            .body(SdkByteStream::from(body));
        if !opts.tags.is_empty() {
            req = req.tagging(opts.tags.to_query_string());
        }
        if opts.create_only {
            req = req.if_none_match("*");
        }
        let conditional = opts.if_match.is_some();
        if let Some(etag) = &opts.if_match {
            req = req.if_match(format!("\"{}\"", etag.trim_matches('"')));
        }
        let out = req.send().await.map_err(|e| {
            match self.ctx("PutObject", key.as_str()).map(e) {
                // 412 means "another version" under If-Match, not "exists".
                Error::AlreadyExists { bucket, key } if conditional => {
                    Error::PreconditionFailed { bucket, key }
                }
                other => other,
            }
        })?;
        Ok(ObjectMeta {
            key: key.clone(),
            size,
            etag: out.e_tag().map(unquote).unwrap_or_default(),
            content_type: opts.content_type,
            cache_control: opts.cache_control,
            last_modified: SystemTime::now(),
            version_id: out.version_id().map(str::to_owned),
            metadata: opts.metadata,
            tag_count: None,
        })
    }

    async fn get_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<GetResult> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.ctx("GetObject", key.as_str()).map(e))?;
        let meta = meta_from!(key, out, Some(tag_count(out.tag_count())));
        let body = out.body.collect().await.map_err(|e| Error::Unavailable {
            reason: format!("reading s3://{}/{key}: {e}", self.bucket),
        })?;
        Ok(GetResult {
            meta,
            body: body.into_bytes(),
        })
    }

    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes> {
        if range.start >= range.end {
            let size = self.head(key).await?.size;
            return Err(Error::InvalidRange {
                key: key.to_string(),
                range,
                size,
            });
        }
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) => {
                let err = self.ctx("GetObject", key.as_str()).map(e);
                if let Error::InvalidRange { .. } = err {
                    let size = self.head(key).await?.size;
                    return Err(Error::InvalidRange {
                        key: key.to_string(),
                        range,
                        size,
                    });
                }
                return Err(err);
            }
        };
        let body = out.body.collect().await.map_err(|e| Error::Unavailable {
            reason: format!("reading s3://{}/{key}: {e}", self.bucket),
        })?;
        Ok(body.into_bytes())
    }

    /// GetObject (with `versionId` when given), streamed as the body
    /// arrives (chunks as the HTTP client delivers them, typically 8–16
    /// KiB), never buffering the object.
    async fn get_stream_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(ObjectMeta, ByteStream)> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.ctx("GetObject", key.as_str()).map(e))?;
        let meta = meta_from!(key, out, Some(tag_count(out.tag_count())));
        let where_ = format!("s3://{}/{key}", self.bucket);
        let stream = futures::stream::unfold(Some(out.body), move |body| {
            let where_ = where_.clone();
            async move {
                let mut body = body?;
                match body.try_next().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), Some(body))),
                    Ok(None) => None,
                    Err(e) => Some((
                        Err(Error::Unavailable {
                            reason: format!("reading {where_}: {e}"),
                        }),
                        None,
                    )),
                }
            }
        });
        Ok((meta, Box::pin(stream)))
    }

    async fn head_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<ObjectMeta> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.ctx("HeadObject", key.as_str()).map(e))?;
        // Whether AWS sends the count with HEAD is not documented: only a
        // count it sends is trusted.
        Ok(meta_from!(key, out, out.tag_count().map(tag_count_of)))
    }

    /// CopyObject within the bucket, keeping content type, cache control,
    /// user metadata and tags; objects over the multipart copy threshold
    /// (5 GiB) are copied with UploadPartCopy, pinned to the source's ETag.
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta> {
        let src = self.head(from).await?;
        if src.size > self.multipart_copy_threshold {
            self.multipart_copy(from, to, &src).await?;
        } else {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(to.as_str())
                .copy_source(copy_source(&self.bucket, from))
                .copy_source_if_match(quoted(&src.etag))
                .metadata_directive(MetadataDirective::Copy)
                .tagging_directive(TaggingDirective::Copy)
                .send()
                .await
                .map_err(|e| self.ctx("CopyObject", from.as_str()).map(e))?;
        }
        self.head(to).await
    }

    async fn delete_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.ctx("DeleteObject", key.as_str()).map(e))?;
        Ok(())
    }

    /// ListObjectsV2, every page. Keys that are not valid [`ObjectKey`]s
    /// (written by other tools) are skipped with a warning. Listings carry
    /// no content type or cache control: those fields are `None`.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.ctx("ListObjectsV2", prefix).map(e))?;
            for o in page.contents() {
                let Some(raw) = o.key() else { continue };
                match ObjectKey::new(raw) {
                    Ok(key) => out.push(ObjectMeta {
                        key,
                        size: size_of(o.size()),
                        etag: o.e_tag().map(unquote).unwrap_or_default(),
                        content_type: None,
                        cache_control: None,
                        last_modified: system_time(o.last_modified()),
                        version_id: None,
                        metadata: Default::default(),
                        tag_count: None,
                    }),
                    Err(e) => {
                        tracing::warn!(bucket = %self.bucket, key = raw, error = %e, "skipping a listed key")
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        Ok(out)
    }

    async fn put_tags_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> Result<()> {
        let set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::InvalidTag {
                key: e.to_string(),
                reason: "rejected by the SDK",
            })?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(|e| Error::InvalidTag {
                key: e.to_string(),
                reason: "rejected by the SDK",
            })?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.ctx("PutObjectTagging", key.as_str()).map(e))?;
        Ok(())
    }

    async fn get_tags_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<Tags> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.ctx("GetObjectTagging", key.as_str()).map(e))?;
        Tags::from_pairs(out.tag_set().iter().map(|t| (t.key(), t.value())))
    }
}

impl S3Storage {
    /// CompleteMultipartUpload after checking the parts as S3 will;
    /// `create_only` sends `If-None-Match: *`.
    async fn complete(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
        create_only: bool,
    ) -> Result<ObjectMeta> {
        let listed = match self.list_parts(key, upload_id).await {
            Ok(l) => l,
            Err(e @ Error::NoSuchUpload { .. }) => {
                return self.already_completed(key, parts).await.ok_or(e);
            }
            Err(e) => return Err(e),
        };
        if parts.is_empty()
            || parts
                .windows(2)
                .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(Error::InvalidPartOrder);
        }
        let last = parts.len() - 1;
        for (i, p) in parts.iter().enumerate() {
            let want = p.etag.trim_matches('"');
            let stored = listed
                .iter()
                .find(|u| u.part_number == p.part_number)
                .filter(|u| u.etag.is_empty() || u.etag == want)
                .ok_or_else(|| Error::InvalidPart {
                    part_number: p.part_number,
                    etag: p.etag.clone(),
                })?;
            if i < last && stored.size < MIN_PART_SIZE {
                return Err(Error::EntityTooSmall {
                    part_number: p.part_number,
                    size: stored.size,
                    min: MIN_PART_SIZE,
                });
            }
        }
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        let b = SdkCompletedPart::builder()
                            .part_number(p.part_number as i32)
                            .e_tag(quoted(&p.etag));
                        match &p.checksum {
                            Some(PartChecksum {
                                algorithm: ChecksumAlgorithm::Crc32c,
                                value,
                            }) => b.checksum_crc32_c(value),
                            Some(PartChecksum {
                                algorithm: ChecksumAlgorithm::Sha256,
                                value,
                            }) => b.checksum_sha256(value),
                            None => b,
                        }
                        .build()
                    })
                    .collect(),
            ))
            .build();
        let res = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(completed)
            .set_if_none_match(create_only.then(|| "*".to_owned()))
            .send()
            .await;
        match res {
            Ok(_) => self.head(key).await,
            Err(e) => {
                let err = self
                    .ctx_upload("CompleteMultipartUpload", key.as_str(), upload_id)
                    .map(e);
                // Gone, or (create-only) refused because an object is
                // there: if it is the object these parts make, this is a
                // repeat of a completion that succeeded.
                if let Error::NoSuchUpload { .. } | Error::AlreadyExists { .. } = err {
                    return self.already_completed(key, parts).await.ok_or(err);
                }
                Err(err)
            }
        }
    }

    /// UploadPart; with `checksum`, its header is sent as given (the SDK
    /// then computes none of its own) and S3 verifies it.
    async fn send_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: Option<&PartChecksum>,
    ) -> Result<UploadedPart> {
        check_part_number(part_number)?;
        let size = body.len() as u64;
        let mut req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .content_length(size as i64)
            .body(SdkByteStream::from(body));
        req = match checksum {
            Some(PartChecksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                value,
            }) => req.checksum_crc32_c(value),
            Some(PartChecksum {
                algorithm: ChecksumAlgorithm::Sha256,
                value,
            }) => req.checksum_sha256(value),
            None => req,
        };
        // With a checksum the server verifies the body against it, and the
        // checksum header is signed: where that is enough (see
        // `with_unsigned_checksummed_parts`) the body goes unsigned.
        let sent = match checksum {
            Some(_) if self.unsigned_checksummed_parts => {
                req.customize().disable_payload_signing().send().await
            }
            _ => req.send().await,
        };
        let out = sent.map_err(|e| {
            let err = self
                .ctx_upload("UploadPart", key.as_str(), upload_id)
                .map(e);
            match (err, checksum) {
                (Error::BadDigest { .. }, Some(c)) => Error::BadDigest {
                    part_number,
                    algorithm: c.algorithm.as_str(),
                    expected: c.value.clone(),
                },
                (err, _) => err,
            }
        })?;
        Ok(UploadedPart {
            part_number,
            etag: out.e_tag().map(unquote).unwrap_or_default(),
            size,
            checksum: checksum.cloned(),
        })
    }
}

#[async_trait]
impl MultipartStore for S3Storage {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn create_multipart_upload(&self, key: &ObjectKey, opts: PutOptions) -> Result<String> {
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_content_type(opts.content_type)
            .set_cache_control(opts.cache_control)
            .set_metadata(user_metadata(&opts.metadata));
        if !opts.tags.is_empty() {
            req = req.tagging(opts.tags.to_query_string());
        }
        req = match opts.checksum {
            Some(ChecksumAlgorithm::Crc32c) => {
                req.checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
            }
            Some(ChecksumAlgorithm::Sha256) => {
                req.checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            }
            None => req,
        };
        let out = req
            .send()
            .await
            .map_err(|e| self.ctx("CreateMultipartUpload", key.as_str()).map(e))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| Error::Unavailable {
                reason: format!("CreateMultipartUpload for {key} returned no upload ID"),
            })
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<UploadedPart> {
        self.send_part(key, upload_id, part_number, body, None)
            .await
    }

    async fn upload_part_checked(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: &PartChecksum,
    ) -> Result<UploadedPart> {
        self.send_part(key, upload_id, part_number, body, Some(checksum))
            .await
    }

    /// ListParts, every page, sorted by part number (some servers answer
    /// unsorted). A server that omits ETags yields empty `etag`s.
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<UploadedPart>> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| self.ctx_upload("ListParts", key.as_str(), upload_id).map(e))?;
            for p in out.parts() {
                let Some(n) = p.part_number().and_then(|n| u32::try_from(n).ok()) else {
                    continue;
                };
                let checksum = match (p.checksum_crc32_c(), p.checksum_sha256()) {
                    (Some(v), _) => Some(PartChecksum {
                        algorithm: ChecksumAlgorithm::Crc32c,
                        value: v.to_owned(),
                    }),
                    (None, Some(v)) => Some(PartChecksum {
                        algorithm: ChecksumAlgorithm::Sha256,
                        value: v.to_owned(),
                    }),
                    _ => None,
                };
                parts.push(UploadedPart {
                    part_number: n,
                    etag: p.e_tag().map(unquote).unwrap_or_default(),
                    size: size_of(p.size()),
                    checksum,
                });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(m)) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        parts.dedup_by_key(|p| p.part_number);
        Ok(parts)
    }

    /// Validates `parts` against ListParts (order, ETags, the 5 MiB minimum
    /// of every part but the last) before CompleteMultipartUpload, so the
    /// errors are the same typed ones as in memory on every server. Safe to
    /// repeat: when the upload is already gone and the object at `key`
    /// carries the multipart ETag of exactly these parts, the earlier
    /// completion is reported as this one's result. A 200 response that
    /// carries an error body is an error (the SDK parses it as one).
    async fn complete_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta> {
        self.complete(key, upload_id, parts, false).await
    }

    /// CompleteMultipartUpload with `If-None-Match: *` (AWS since November
    /// 2024, MinIO, s3s-fs; a server that ignores it replaces the object).
    async fn complete_multipart_upload_create_only(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta> {
        self.complete(key, upload_id, parts, true).await
    }

    async fn abort_multipart_upload(&self, key: &ObjectKey, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| {
                self.ctx_upload("AbortMultipartUpload", key.as_str(), upload_id)
                    .map(e)
            })?;
        Ok(())
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<MultipartUploadInfo>> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut upload_id_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await
                .map_err(|e| self.ctx("ListMultipartUploads", prefix).map(e))?;
            for u in page.uploads() {
                let (Some(raw), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                match ObjectKey::new(raw) {
                    Ok(key) => out.push(MultipartUploadInfo {
                        key,
                        upload_id: id.to_owned(),
                        initiated: u.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                    }),
                    Err(e) => {
                        tracing::warn!(bucket = %self.bucket, key = raw, error = %e, "skipping a listed upload")
                    }
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            upload_id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && upload_id_marker.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| (a.key.as_str(), a.initiated).cmp(&(b.key.as_str(), b.initiated)));
        Ok(out)
    }
}

impl S3Storage {
    /// The object at `key` when it is the completion of exactly `parts`
    /// (its ETag is their multipart ETag), for a repeated completion.
    async fn already_completed(
        &self,
        key: &ObjectKey,
        parts: &[CompletedPart],
    ) -> Option<ObjectMeta> {
        let want = multipart_etag(parts.iter().map(|p| p.etag.as_str())).ok()?;
        let meta = self.head(key).await.ok()?;
        (meta.etag == want).then_some(meta)
    }
}

/// User metadata as the SDK sends it (`x-amz-meta-{name}`), `None` when
/// there is none.
fn user_metadata(
    metadata: &std::collections::BTreeMap<String, String>,
) -> Option<std::collections::HashMap<String, String>> {
    (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}
