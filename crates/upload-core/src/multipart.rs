//! The multipart upload side of a store (S3 CreateMultipartUpload,
//! UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload).
//!
//! The trait lives here, beside [`crate::Storage`], so that the local upload
//! endpoint of `upload-presign` can route presigned part uploads into any
//! implementation; the in-memory implementation and the part planner live in
//! `upload-multipart`.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::key::ObjectKey;
use crate::storage::{ObjectMeta, PutOptions};

/// Smallest part number (S3).
pub const MIN_PART_NUMBER: u32 = 1;
/// Largest part number, and so the most parts of one upload (S3).
pub const MAX_PART_NUMBER: u32 = 10_000;

/// Checks a part number against S3's range, 1..=10000 (AWS "Amazon S3
/// multipart upload limits").
///
/// # Errors
/// [`crate::Error::InvalidPartNumber`] outside the range.
pub fn check_part_number(part_number: u32) -> Result<()> {
    if (MIN_PART_NUMBER..=MAX_PART_NUMBER).contains(&part_number) {
        Ok(())
    } else {
        Err(crate::Error::InvalidPartNumber { part_number })
    }
}

/// A part the store holds (an entry of S3 ListParts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedPart {
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// ETag without quotes (hex MD5 of the part's bytes).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
}

/// An upload in progress: created, neither completed nor aborted (an
/// entry of S3 ListMultipartUploads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUploadInfo {
    /// The key the upload completes into.
    pub key: ObjectKey,
    /// The upload ID.
    pub upload_id: String,
    /// When CreateMultipartUpload was called; `None` when the store did
    /// not say (a sweeper then leaves the upload alone).
    pub initiated: Option<std::time::SystemTime>,
}

/// A part named in CompleteMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// The ETag the store returned for the part (quotes are ignored).
    pub etag: String,
}

/// The multipart side of one bucket.
///
/// Every implementation passes `testkit::multipart::run_all`.
#[async_trait]
pub trait MultipartStore: Send + Sync + std::fmt::Debug {
    /// The bucket name.
    fn bucket(&self) -> &str;

    /// Starts an upload for `key` and returns its upload ID. `opts` are
    /// applied to the completed object.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`].
    async fn create_multipart_upload(&self, key: &ObjectKey, opts: PutOptions) -> Result<String>;

    /// Stores one part, replacing an earlier part with the same number, and
    /// returns it with its ETag.
    ///
    /// # Errors
    /// [`crate::Error::NoSuchUpload`] for an unknown, completed or aborted
    /// upload or a key that does not match it;
    /// [`crate::Error::InvalidPartNumber`] outside 1..=10000;
    /// [`crate::Error::Unavailable`].
    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<UploadedPart>;

    /// The parts stored so far, by ascending part number. A resumed upload
    /// starts here.
    ///
    /// # Errors
    /// [`crate::Error::NoSuchUpload`]; [`crate::Error::Unavailable`].
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<UploadedPart>>;

    /// Assembles the listed parts into the object and ends the upload.
    ///
    /// # Errors
    /// [`crate::Error::InvalidPartOrder`] if `parts` is empty or not strictly
    /// ascending; [`crate::Error::InvalidPart`] if a part is missing or its
    /// ETag differs; [`crate::Error::EntityTooSmall`] if a part other than
    /// the last is under 5 MiB; [`crate::Error::NoSuchUpload`];
    /// [`crate::Error::AlreadyExists`] for a create-only upload whose key
    /// was taken meanwhile; [`crate::Error::Unavailable`].
    async fn complete_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta>;

    /// Ends an upload and frees its parts.
    ///
    /// # Errors
    /// [`crate::Error::NoSuchUpload`]; [`crate::Error::Unavailable`].
    async fn abort_multipart_upload(&self, key: &ObjectKey, upload_id: &str) -> Result<()>;

    /// The uploads in progress whose key starts with `prefix` (all pages of
    /// S3 ListMultipartUploads), by key, then by initiation time. Their
    /// parts are stored, and billed, until they are completed or aborted.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`].
    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<MultipartUploadInfo>>;
}
