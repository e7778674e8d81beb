//! The object store seen by every part of the SDK.
//!
//! [`Storage`] is one bucket of an S3-like store. [`MemoryStorage`] is the
//! in-memory implementation; it keeps real bytes, enforces the same limits
//! and fails with the same errors as S3, and can publish S3 event
//! notifications. The conformance suite in `testkit` (feature `testkit`)
//! is the definition of the trait's behaviour.

mod memory;

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{Error, Result};
use crate::key::ObjectKey;

pub use memory::{MemoryStorage, check_bucket_name};

/// A stream of object bytes, chunk by chunk. Errors mid-stream are
/// [`Error::Unavailable`].
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// Most tags S3 keeps on one object.
pub const MAX_TAGS: usize = 10;
/// Longest tag key, in Unicode characters.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in Unicode characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// An object's tag set, validated against the S3 limits: at most 10 tags,
/// keys 1..=128 characters, values 0..=256 characters (per the S3
/// "Categorizing your storage using tags" docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    /// An empty tag set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one tag.
    ///
    /// # Errors
    /// [`Error::InvalidTag`] if the key or value breaks the limits, or the
    /// set would hold more than 10 tags.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Result<()> {
        let (key, value) = (key.into(), value.into());
        let bad = |reason| Error::InvalidTag {
            key: key.chars().take(200).collect(),
            reason,
        };
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS {
            return Err(bad("key must be 1..=128 characters"));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(bad("value must be at most 256 characters"));
        }
        if !self.0.contains_key(&key) && self.0.len() >= MAX_TAGS {
            return Err(bad("an object has at most 10 tags"));
        }
        self.0.insert(key, value);
        Ok(())
    }

    /// Removes one tag; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Builds a tag set from pairs.
    ///
    /// # Errors
    /// As [`Tags::insert`].
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut t = Self::new();
        for (k, v) in pairs {
            t.insert(k, v)?;
        }
        Ok(t)
    }

    /// The value of tag `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no tag.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags in key order.
    /// The tags as S3's `x-amz-tagging` value: `k1=v1&k2=v2`, names and
    /// values URL-encoded (RFC 3986 unreserved characters kept), in key
    /// order.
    pub fn to_query_string(&self) -> String {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        let mut out = String::new();
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.extend(utf8_percent_encode(k, UNRESERVED));
            out.push('=');
            out.extend(utf8_percent_encode(v, UNRESERVED));
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Options of [`Storage::put`]. Build with `PutOptions::default()` and the
/// `with_*` methods; new fields may be added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// `Content-Type` stored with the object and returned on GET.
    pub content_type: Option<String>,
    /// `Cache-Control` stored with the object and returned on GET.
    pub cache_control: Option<String>,
    /// Create only: fail with [`Error::AlreadyExists`] if the key exists
    /// (S3 `If-None-Match: *`). Originals are written this way so they are
    /// never overwritten.
    pub create_only: bool,
    /// Replace only this version: fail with [`Error::PreconditionFailed`]
    /// if the object's ETag is another, or [`Error::NotFound`] if there is
    /// no object (S3 `If-Match`, supported since November 2024). An ETag
    /// with or without quotes.
    pub if_match: Option<String>,
    /// Tags set atomically with the object.
    pub tags: Tags,
    /// Multipart uploads only: the checksum algorithm every part must
    /// carry (S3 CreateMultipartUpload `x-amz-checksum-algorithm`, composite
    /// checksum type). S3 then refuses parts without it or with another
    /// one, and the completion must name each part's checksum.
    pub checksum: Option<crate::multipart::ChecksumAlgorithm>,
    /// User metadata stored with the object (S3 `x-amz-meta-{name}`):
    /// names lowercase, without the prefix; returned by HEAD and GET in
    /// [`ObjectMeta::metadata`]. S3 limits all user metadata of an object
    /// to 2 KB (names and values, UTF-8 bytes).
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl PutOptions {
    /// Adds one user metadata entry (`x-amz-meta-{name}`; the name is
    /// stored lowercase).
    pub fn with_metadata(mut self, name: &str, value: impl Into<String>) -> Self {
        self.metadata
            .insert(name.to_ascii_lowercase(), value.into());
        self
    }
    /// Sets the checksum algorithm of a multipart upload's parts.
    pub fn with_checksum(mut self, algorithm: crate::multipart::ChecksumAlgorithm) -> Self {
        self.checksum = Some(algorithm);
        self
    }
    /// Sets the `Content-Type`.
    pub fn with_content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }
    /// Sets the `Cache-Control`.
    pub fn with_cache_control(mut self, cc: impl Into<String>) -> Self {
        self.cache_control = Some(cc.into());
        self
    }
    /// Makes the write create-only.
    pub fn with_create_only(mut self, create_only: bool) -> Self {
        self.create_only = create_only;
        self
    }
    /// Makes the write conditional on the stored object's ETag.
    pub fn with_if_match(mut self, etag: impl Into<String>) -> Self {
        self.if_match = Some(etag.into());
        self
    }
    /// Sets the tags.
    pub fn with_tags(mut self, tags: Tags) -> Self {
        self.tags = tags;
        self
    }
}

/// What a store knows about an object (the answer to HEAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key.
    pub key: ObjectKey,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes: the hex MD5 of the bytes for a single PUT,
    /// `{md5 of the part MD5s}-{part count}` after a multipart upload.
    pub etag: String,
    /// Stored `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Stored `Cache-Control`, if any.
    pub cache_control: Option<String>,
    /// When the object was written.
    pub last_modified: SystemTime,
    /// The version ID (`x-amz-version-id`) in a bucket with versioning
    /// enabled or suspended; `None` in a bucket that never had versioning.
    pub version_id: Option<String>,
    /// User metadata (`x-amz-meta-{name}`, names lowercase without the
    /// prefix) as written with the object; empty in listings, which S3
    /// does not return it in.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// How many tags the object (this version) carries, when the store
    /// says: S3 sends `x-amz-tagging-count` with GetObject only when the
    /// object has tags, so `S3Storage` (feature `s3`) reads a GET
    /// without it as `Some(0)`; a HEAD without it, a listing and a PUT
    /// answer give `None` (unknown). Lets a reader skip GetObjectTagging
    /// when there is nothing to merge with.
    pub tag_count: Option<u32>,
}

/// A whole object: its metadata and bytes.
#[derive(Debug, Clone)]
pub struct GetResult {
    /// Metadata, as [`Storage::head`] returns it.
    pub meta: ObjectMeta,
    /// The bytes.
    pub body: Bytes,
}

/// One bucket of an S3-like object store.
///
/// All keys are [`ObjectKey`]s, so invalid keys never reach a store. Every
/// implementation passes `testkit::storage::run_all`, and one that keeps
/// versions `testkit::storage::versions` too.
///
/// Versions: the `*_version` methods take the version ID an event names
/// (`versionId` of an S3 event record) so that a reader works on exactly
/// that version, never on whatever is current; the plain methods are those
/// with `None`. An implementation implements the `*_version` methods.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// The bucket name, as it appears in event notifications.
    fn bucket(&self) -> &str;

    /// Writes an object (S3 PutObject), replacing any object under `key`
    /// unless `opts.create_only` is set.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] for a create-only write over an existing key;
    /// [`Error::PreconditionFailed`] or [`Error::NotFound`] when
    /// `opts.if_match` does not name the stored version;
    /// [`Error::Unavailable`] when the store cannot be reached.
    async fn put(&self, key: &ObjectKey, body: Bytes, opts: PutOptions) -> Result<ObjectMeta>;

    /// Reads a whole object into memory (S3 GetObject): the current
    /// version.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Unavailable`].
    async fn get(&self, key: &ObjectKey) -> Result<GetResult> {
        self.get_version(key, None).await
    }

    /// Reads one version of an object into memory (S3 GetObject with
    /// `versionId`); `None` reads the current version, as [`Storage::get`].
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key or that version does not exist (S3
    /// `NoSuchKey`/`NoSuchVersion`); [`Error::Unavailable`].
    async fn get_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<GetResult>;

    /// Reads bytes `range.start..range.end` (end exclusive) of an object (S3
    /// GetObject with `Range: bytes=start-(end-1)`). As in S3, an end past
    /// the object's end is clamped to it.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] if the range is empty or starts at or past the
    /// end; [`Error::NotFound`]; [`Error::Unavailable`].
    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes>;

    /// Reads an object as a stream of chunks, without holding it whole: the
    /// current version.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Unavailable`], also as a stream item.
    async fn get_stream(&self, key: &ObjectKey) -> Result<(ObjectMeta, ByteStream)> {
        self.get_stream_version(key, None).await
    }

    /// Reads one version of an object as a stream of chunks (S3 GetObject
    /// with `versionId`); `None` reads the current version. The returned
    /// [`ObjectMeta::version_id`] names the version read.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key or that version does not exist;
    /// [`Error::Unavailable`], also as a stream item.
    async fn get_stream_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(ObjectMeta, ByteStream)>;

    /// Reads an object's metadata (S3 HeadObject): the current version.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Unavailable`].
    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        self.head_version(key, None).await
    }

    /// Reads the metadata of one version (S3 HeadObject with `versionId`);
    /// `None` reads the current version.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key or that version does not exist;
    /// [`Error::Unavailable`].
    async fn head_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<ObjectMeta>;

    /// Copies an object inside this bucket (S3 CopyObject), keeping its
    /// content type, cache control and tags.
    ///
    /// # Errors
    /// [`Error::NotFound`] if `from` does not exist; [`Error::Unavailable`].
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta>;

    /// Deletes an object (S3 DeleteObject). As in S3, deleting a missing key
    /// succeeds. In a versioned bucket this adds a delete marker: the
    /// object disappears, its versions stay readable by version ID (use
    /// [`Storage::delete_version`] to remove one for good).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        self.delete_version(key, None).await
    }

    /// Deletes one version of an object for good (S3 DeleteObject with
    /// `versionId`); `None` is [`Storage::delete`]. Deleting the current
    /// version makes the previous one current, as in S3. Deleting a missing
    /// version succeeds.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn delete_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<()>;

    /// Lists keys under `prefix` in key order (S3 ListObjectsV2, all pages).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Replaces an object's tag set (S3 PutObjectTagging): the current
    /// version's.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Unavailable`].
    async fn put_tags(&self, key: &ObjectKey, tags: &Tags) -> Result<()> {
        self.put_tags_version(key, None, tags).await
    }

    /// Replaces the tag set of one version (S3 PutObjectTagging with
    /// `versionId`; tags belong to a version); `None` tags the current one.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key or that version does not exist;
    /// [`Error::Unavailable`].
    async fn put_tags_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> Result<()>;

    /// Reads an object's tag set (S3 GetObjectTagging): the current
    /// version's.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Unavailable`].
    async fn get_tags(&self, key: &ObjectKey) -> Result<Tags> {
        self.get_tags_version(key, None).await
    }

    /// Reads the tag set of one version (S3 GetObjectTagging with
    /// `versionId`); `None` reads the current one's.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key or that version does not exist;
    /// [`Error::Unavailable`].
    async fn get_tags_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<Tags>;
}

/// The S3 ETag of a single-PUT object: hex MD5 of its bytes.
pub fn etag_of(body: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(body))
}

/// The S3 ETag of a multipart object: hex MD5 of the concatenated binary
/// MD5s of its parts, then `-` and the part count.
///
/// # Errors
/// [`Error::InvalidPart`] if a part ETag is not 32 hex digits.
pub fn multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> Result<String> {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    let mut n = 0usize;
    for (i, e) in part_etags.into_iter().enumerate() {
        let raw = hex::decode(e.trim_matches('"')).map_err(|_| Error::InvalidPart {
            part_number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            etag: e.to_owned(),
        })?;
        h.update(raw);
        n += 1;
    }
    Ok(format!("{}-{n}", hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_limits() {
        let mut t = Tags::new();
        for i in 0..10 {
            t.insert(format!("k{i}"), "v").unwrap();
        }
        assert!(matches!(
            t.insert("k10", "v"),
            Err(Error::InvalidTag { .. })
        ));
        t.insert("k0", "replaced").unwrap();
        assert_eq!(t.get("k0"), Some("replaced"));
        assert_eq!(t.len(), 10);
        let mut t = Tags::new();
        assert!(t.insert("", "v").is_err());
        assert!(t.insert("k".repeat(129), "v").is_err());
        assert!(t.insert("k".repeat(128), "v".repeat(256)).is_ok());
        assert!(t.insert("k", "v".repeat(257)).is_err());
    }

    #[test]
    fn etags_match_s3() {
        assert_eq!(etag_of(b""), "d41d8cd98f00b204e9800998ecf8427e");
        // Two parts "a" and "b": md5(md5("a") || md5("b")) with suffix -2.
        let e = multipart_etag([etag_of(b"a").as_str(), etag_of(b"b").as_str()]).unwrap();
        assert!(e.ends_with("-2"));
        assert_eq!(e.len(), 34);
        assert!(multipart_etag(["zz"]).is_err());
    }
}
