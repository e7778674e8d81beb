//! [`S3UploadSigner`]: S3 presigned PUTs as an
//! [`UploadSigner`](upload_core::UploadSigner).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use upload_core::sign::{PutToSign, SignError, SignedUpload, SignerCapabilities, UploadSigner};

use crate::headers::{Disposition, PutHeaders, content_disposition};
use crate::refresh::PresignerSource;

/// Presigned PUTs of one S3 bucket, with credentials from a
/// [`PresignerSource`] (a fixed `Arc<Presigner>` or a
/// [`RefreshingPresigner`](crate::RefreshingPresigner)).
///
/// Each URL signs `Content-Type`, the exact `Content-Length`, create-only
/// `If-None-Match: *`, the file name's RFC 6266 `Content-Disposition`
/// (attachment) when given, and every metadata entry as `x-amz-meta-*`
/// ([`SignerCapabilities::S3`]); it is exactly the URL of
/// [`Presigner::presign_put_url_with`](crate::Presigner::presign_put_url_with)
/// with those [`PutHeaders`].
#[derive(Debug, Clone)]
pub struct S3UploadSigner {
    source: Arc<dyn PresignerSource>,
    bucket: String,
}

impl S3UploadSigner {
    /// Signs PUTs into `bucket` with presigners from `source`. The bucket
    /// name is checked when signing.
    pub fn new(source: Arc<dyn PresignerSource>, bucket: impl Into<String>) -> Self {
        Self {
            source,
            bucket: bucket.into(),
        }
    }

    /// The bucket URLs are signed for.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// The signer's view of a presigning error.
fn sign_error(e: crate::Error) -> SignError {
    match e {
        crate::Error::Policy(core) => SignError::Core(core),
        crate::Error::CredentialsUnavailable { .. }
        | crate::Error::CredentialsExpireFirst { .. } => SignError::CredentialsUnavailable {
            message: e.to_string(),
        },
        other => SignError::Failed {
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl UploadSigner for S3UploadSigner {
    fn capabilities(&self) -> SignerCapabilities {
        SignerCapabilities::S3
    }

    /// Asks the source for a presigner whose credentials outlive the URL.
    async fn check_ready(&self, expires_in: Duration) -> Result<(), SignError> {
        self.source
            .presigner(expires_in)
            .await
            .map(drop)
            .map_err(sign_error)
    }

    async fn sign_put(&self, req: &PutToSign<'_>) -> Result<SignedUpload, SignError> {
        let presigner = self
            .source
            .presigner(req.expires_in)
            .await
            .map_err(sign_error)?;
        let mut headers = PutHeaders::default().with_content_length(req.size);
        if let Some(name) = req.filename {
            headers = headers
                .with_content_disposition(content_disposition(Disposition::Attachment, name));
        }
        for (name, value) in req.metadata {
            headers = headers.with_metadata(name, value.clone());
        }
        let p = presigner
            .presign_put_url_with(
                &self.bucket,
                req.key,
                req.content_type,
                &headers,
                req.expires_in,
                req.now,
            )
            .map_err(sign_error)?;
        Ok(SignedUpload {
            method: p.method.as_str(),
            url: p.url,
            headers: p.headers,
            expires_at: p.expires_at,
        })
    }
}
