//! [`UploadSigner`]: signs one single-request upload (a PUT of one key,
//! with a content type and size, for a while), whatever the store.
//!
//! Two implementations ship with the SDK: S3 presigned PUTs
//! (`upload_presign::S3UploadSigner`, SigV4 with `Content-Type`, the exact
//! `Content-Length`, create-only `If-None-Match: *` and the upload's
//! `x-amz-meta-*` signed) and Azure Blob SAS URLs
//! (`upload_object_store::ObjectStoreStorage`, feature `azure`), which pin
//! much less: what a signer pins is typed in [`SignerCapabilities`], so a
//! caller (the upload API) sees what it gets instead of a silently weaker
//! URL, and refuses what a signer cannot do at all (presigned POST forms,
//! multipart part URLs) rather than handing out URLs that would fail.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::ObjectKey;

/// What a signer is asked to sign: a PUT of `key`, once, by a client that
/// holds no credentials.
#[derive(Debug, Clone, Copy)]
pub struct PutToSign<'a> {
    /// The key the upload is stored at (picked server-side).
    pub key: &'a ObjectKey,
    /// The MIME type essence the client declared and the policy allowed
    /// (`image/png`), to be stored as the object's content type.
    pub content_type: &'a str,
    /// The exact size the client declared, in bytes (pinned only where
    /// [`SignerCapabilities::pins_content_length`]).
    pub size: u64,
    /// The client's file name, for the stored `Content-Disposition`
    /// (signed only where [`SignerCapabilities::signs_metadata`]).
    pub filename: Option<&'a str>,
    /// User metadata to store with the object (names lowercase, without
    /// `x-amz-meta-`; signed only where
    /// [`SignerCapabilities::signs_metadata`]).
    pub metadata: &'a BTreeMap<String, String>,
    /// How long the URL works: whole seconds, 1 s..=7 days.
    pub expires_in: Duration,
    /// The signing time (S3 signs with it; a signer that takes the clock
    /// itself, as `object_store`'s Azure SAS does, ignores it).
    pub now: SystemTime,
}

/// A signed upload a client sends itself: one request, with exactly these
/// headers, before [`SignedUpload::expires_at`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUpload {
    /// HTTP method: `PUT`.
    pub method: &'static str,
    /// The full URL, carrying the signature (S3: `X-Amz-*` query
    /// parameters; Azure: the SAS query parameters `sv`, `se`, `sr=b`,
    /// `sp=w`, `sig`, ...).
    pub url: String,
    /// Headers to send with exactly these values, lowercase names, sorted
    /// (S3: every signed header, `content-length` included; Azure:
    /// `content-type` and `x-ms-blob-type: BlockBlob`).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
    pub expires_at: SystemTime,
}

/// What a signer's URLs hold a client to, and which other upload forms it
/// can sign. Where a field is `false`, the store does not enforce it: the
/// worker's checks (sniffed type, real size, scan) still decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignerCapabilities {
    /// The store refuses a body whose type differs from the signed
    /// `Content-Type`.
    pub pins_content_type: bool,
    /// The store refuses a body of another length than the declared size.
    pub pins_content_length: bool,
    /// The URL is create-only (`If-None-Match: *` signed): a replay cannot
    /// replace the object.
    pub create_only: bool,
    /// The file name and user metadata (the upload route, owner and hook
    /// metadata) are signed into the object.
    pub signs_metadata: bool,
    /// Presigned POST forms (browser form uploads) can be signed.
    pub post_forms: bool,
    /// Multipart part URLs can be signed.
    pub multipart: bool,
}

impl SignerCapabilities {
    /// S3 presigned requests (SigV4): everything.
    pub const S3: Self = Self {
        pins_content_type: true,
        pins_content_length: true,
        create_only: true,
        signs_metadata: true,
        post_forms: true,
        multipart: true,
    };

    /// An Azure Blob service SAS (write permission on one blob, for a
    /// while): it signs the blob and the time only, no header; no POST
    /// forms, no presigned multipart.
    pub const AZURE_SAS: Self = Self {
        pins_content_type: false,
        pins_content_length: false,
        create_only: false,
        signs_metadata: false,
        post_forms: false,
        multipart: false,
    };
}

/// Why nothing was signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The request is invalid (expiry out of range, a bad key or header),
    /// or the store refused or could not be reached; the upload API
    /// answers as for any [`crate::Error`].
    #[error(transparent)]
    Core(#[from] crate::Error),
    /// No credentials at hand last as long as the URL would (temporary
    /// credentials about to expire, a provider that failed): retry later
    /// (the upload API answers 503 `credentials_unavailable`).
    #[error("{message}")]
    CredentialsUnavailable {
        /// What the credentials provider reported.
        message: String,
    },
    /// The signer cannot sign this at all (a backend without signing, such
    /// as local disk or memory; the upload API answers 501
    /// `not_supported_by_storage`).
    #[error("{operation} cannot be signed: {reason}")]
    Unsupported {
        /// What was asked, e.g. `PutObject`.
        operation: &'static str,
        /// Why, naming the backend.
        reason: String,
    },
    /// Signing failed for another reason (the upload API answers 500
    /// `presign_failed`).
    #[error("{message}")]
    Failed {
        /// The signer's message.
        message: String,
    },
}

/// Signs single-request uploads for one bucket (an S3 bucket, an Azure
/// container, ...). See the module docs.
#[async_trait]
pub trait UploadSigner: Send + Sync + fmt::Debug {
    /// What this signer's URLs pin and which other forms it can sign.
    fn capabilities(&self) -> SignerCapabilities;

    /// Checks, before anything else runs for an upload (the upload API
    /// calls it before the route's hook), that a URL living `expires_in`
    /// can be signed now: S3 asks its credentials source for credentials
    /// that outlive the URL. The default does nothing.
    ///
    /// # Errors
    /// As [`UploadSigner::sign_put`].
    async fn check_ready(&self, expires_in: Duration) -> Result<(), SignError> {
        let _ = expires_in;
        Ok(())
    }

    /// Signs a PUT of `req.key` with as much of `req` as
    /// [`UploadSigner::capabilities`] says it pins.
    ///
    /// # Errors
    /// [`SignError::Core`] for an expiry outside 1 s..=7 days or not whole
    /// seconds, an invalid key or header, an unreachable store;
    /// [`SignError::CredentialsUnavailable`]; [`SignError::Unsupported`]
    /// when the backend cannot sign; [`SignError::Failed`] otherwise.
    async fn sign_put(&self, req: &PutToSign<'_>) -> Result<SignedUpload, SignError>;
}
