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

/// A checksum algorithm S3 verifies on UploadPart (the `x-amz-checksum-*`
/// request headers, per the AWS "Checking object integrity" docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// CRC-32C (Castagnoli), 4 bytes; hardware-accelerated on x86-64 and
    /// aarch64, so it costs little CPU per GiB.
    Crc32c,
    /// SHA-256, 32 bytes; for stores or policies that want a cryptographic
    /// digest (several times the CPU of CRC-32C).
    Sha256,
}

impl ChecksumAlgorithm {
    /// The request header that carries it, e.g. `x-amz-checksum-crc32c`.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The S3 name, `CRC32C` or `SHA256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32c => "CRC32C",
            Self::Sha256 => "SHA256",
        }
    }

    /// The checksum of `body`: base64 of the big-endian digest, as the
    /// header carries it.
    pub fn checksum(self, body: &[u8]) -> PartChecksum {
        let mut h = self.hasher();
        h.update(body);
        h.finish()
    }

    /// An incremental checksum of this algorithm: the same value as
    /// [`ChecksumAlgorithm::checksum`] of the concatenation of what it is
    /// fed, so a part can be checksummed piece by piece as it is read,
    /// while each piece is still in the CPU cache.
    pub fn hasher(self) -> PartHasher {
        PartHasher(match self {
            Self::Crc32c => {
                Hasher::Crc32c(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi))
            }
            Self::Sha256 => {
                use sha2::Digest;
                Hasher::Sha256(sha2::Sha256::new())
            }
        })
    }
}

/// A [`PartChecksum`] computed piece by piece
/// ([`ChecksumAlgorithm::hasher`]).
#[derive(Debug, Clone)]
pub struct PartHasher(Hasher);

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a CRC digest's tables; one per part
enum Hasher {
    Crc32c(crc_fast::Digest),
    Sha256(sha2::Sha256),
}

impl PartHasher {
    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            Hasher::Crc32c(d) => d.update(bytes),
            Hasher::Sha256(d) => {
                use sha2::Digest;
                d.update(bytes);
            }
        }
    }

    /// The checksum of everything fed: base64 of the big-endian digest.
    pub fn finish(self) -> PartChecksum {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        match self.0 {
            Hasher::Crc32c(d) => PartChecksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                value: b64.encode((d.finalize() as u32).to_be_bytes()),
            },
            Hasher::Sha256(d) => {
                use sha2::Digest;
                PartChecksum {
                    algorithm: ChecksumAlgorithm::Sha256,
                    value: b64.encode(d.finalize()),
                }
            }
        }
    }
}

/// A part checksum as sent with UploadPart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartChecksum {
    /// The algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// Base64 of the big-endian digest (8 characters for CRC-32C, 44 for
    /// SHA-256).
    pub value: String,
}

impl PartChecksum {
    /// Whether `body` has this checksum.
    pub fn matches(&self, body: &[u8]) -> bool {
        self.algorithm.checksum(body).value == self.value
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
    /// The part's checksum, when its upload declared an algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<PartChecksum>,
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
    /// The part's checksum; required when the upload declared an
    /// algorithm ([`crate::PutOptions::checksum`]), as S3 requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<PartChecksum>,
}

impl CompletedPart {
    /// A part named by number and ETag, without a checksum.
    pub fn new(part_number: u32, etag: impl Into<String>) -> Self {
        Self {
            part_number,
            etag: etag.into(),
            checksum: None,
        }
    }
}

impl From<&UploadedPart> for CompletedPart {
    /// The completion entry of a stored part (number, ETag, checksum).
    fn from(p: &UploadedPart) -> Self {
        Self {
            part_number: p.part_number,
            etag: p.etag.clone(),
            checksum: p.checksum.clone(),
        }
    }
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

    /// [`MultipartStore::upload_part`] with a checksum the store verifies
    /// before it keeps the part (S3 UploadPart with `x-amz-checksum-*`):
    /// a body that does not match is refused and nothing is stored.
    ///
    /// # Errors
    /// [`crate::Error::BadDigest`] when the body does not match; the errors
    /// of [`MultipartStore::upload_part`].
    async fn upload_part_checked(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: &PartChecksum,
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

    /// As [`MultipartStore::complete_multipart_upload`], but the object is
    /// made only if none exists under `key` (CompleteMultipartUpload with
    /// `If-None-Match: *`), whatever the upload was created with: a
    /// replayed or late completion never replaces an original. Repeating
    /// a completion that succeeded still answers with the object it made.
    ///
    /// # Errors
    /// As [`MultipartStore::complete_multipart_upload`];
    /// [`crate::Error::AlreadyExists`] when another object is at `key` (S3
    /// answers 412 `PreconditionFailed`; the upload stays open).
    async fn complete_multipart_upload_create_only(
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

#[cfg(test)]
mod checksum_tests {
    use super::*;

    #[test]
    fn checksums_match_the_published_check_values() {
        // CRC-32C check value of "123456789" (RFC 3720, appendix B.4):
        // 0xE3069283, base64 of its big-endian bytes.
        let c = ChecksumAlgorithm::Crc32c.checksum(b"123456789");
        assert_eq!(c.value, "4waSgw==");
        assert!(c.matches(b"123456789"));
        assert!(!c.matches(b"123456780"));
        // SHA-256 of nothing.
        assert_eq!(
            ChecksumAlgorithm::Sha256.checksum(b"").value,
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            ChecksumAlgorithm::Crc32c.header_name(),
            "x-amz-checksum-crc32c"
        );
    }

    #[test]
    fn piecewise_checksums_equal_whole_ones() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for algorithm in [ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Sha256] {
            let mut h = algorithm.hasher();
            for piece in body.chunks(4093) {
                h.update(piece);
            }
            let piecewise = h.finish();
            assert_eq!(piecewise, algorithm.checksum(&body));
            assert_eq!(piecewise.algorithm, algorithm);
        }
        let mut h = ChecksumAlgorithm::Crc32c.hasher();
        h.update(b"12345");
        h.update(b"6789");
        assert_eq!(h.finish().value, "4waSgw==");
    }
}
