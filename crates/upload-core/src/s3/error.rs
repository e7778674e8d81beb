//! Mapping of aws-sdk-s3 errors onto [`Error`].

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::Error;

/// What an S3 request was about, to turn its failure into an [`Error`]
/// that names the bucket, key and upload ID.
#[derive(Debug, Clone, Copy)]
pub struct S3ErrorContext<'a> {
    /// S3 operation name, e.g. `"PutObject"`.
    pub operation: &'static str,
    /// Bucket of the request.
    pub bucket: &'a str,
    /// Object key (or prefix) of the request.
    pub key: &'a str,
    /// Upload ID of a multipart request.
    pub upload_id: Option<&'a str>,
}

/// S3 error codes after which the same request may succeed (AWS "Error
/// responses": 5xx, throttling and timeouts).
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "OperationAborted",
    "ConditionalRequestConflict",
];

impl S3ErrorContext<'_> {
    /// Maps an SDK error: `NoSuchKey`, `NoSuchVersion`/404 to [`Error::NotFound`],
    /// `PreconditionFailed`/412 to [`Error::AlreadyExists`] (a create-only
    /// write lost), `InvalidRange`/416 to [`Error::InvalidRange`],
    /// `NoSuchUpload` to [`Error::NoSuchUpload`], the multipart validation
    /// codes to their variants, `NoSuchBucket` to [`Error::NoSuchBucket`],
    /// 403s to [`Error::AccessDenied`], and 5xx, throttling, timeouts and
    /// connection failures to [`Error::Unavailable`] (transient). Anything
    /// else is [`Error::S3`] with the code and message.
    pub fn map<E>(&self, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let service = match &err {
            SdkError::ServiceError(se) => Some(se.err()),
            _ => None,
        };
        let Some(service) = service else {
            return Error::Unavailable {
                reason: format!(
                    "{} s3://{}/{}: {}",
                    self.operation,
                    self.bucket,
                    self.key,
                    DisplayErrorContext(&err)
                ),
            };
        };
        let code = service.code().unwrap_or("");
        let message = service.message().unwrap_or("").to_owned();
        let status = status.unwrap_or(0);
        let key = self.key.to_owned();
        let bucket = self.bucket.to_owned();
        match code {
            "NoSuchUpload" => Error::NoSuchUpload {
                key,
                upload_id: self.upload_id.unwrap_or("").to_owned(),
            },
            "NoSuchKey" | "NoSuchVersion" | "NotFound" => Error::NotFound { bucket, key },
            "NoSuchBucket" => Error::NoSuchBucket { bucket },
            "PreconditionFailed" => Error::AlreadyExists { bucket, key },
            "ConditionalRequestConflict" => Error::PreconditionFailed { bucket, key },
            "InvalidRange" => Error::InvalidRange {
                key,
                range: 0..0,
                size: 0,
            },
            "InvalidPartOrder" => Error::InvalidPartOrder,
            "InvalidPart" => Error::InvalidPart {
                part_number: 0,
                etag: message,
            },
            "BadDigest" | "XAmzContentSHA256Mismatch" => Error::BadDigest {
                part_number: 0,
                algorithm: "checksum",
                expected: message,
            },
            "EntityTooSmall" => Error::EntityTooSmall {
                part_number: 0,
                size: 0,
                min: super::MIN_PART_SIZE,
            },
            c if TRANSIENT_CODES.contains(&c) || status >= 500 => Error::Unavailable {
                reason: format!(
                    "{} s3://{bucket}/{key}: {c} ({status}) {message}",
                    self.operation
                ),
            },
            _ if status == 404 && code.is_empty() && self.upload_id.is_none() => {
                Error::NotFound { bucket, key }
            }
            _ if status == 412 => Error::AlreadyExists { bucket, key },
            _ if status == 403 => Error::AccessDenied {
                bucket,
                key,
                reason: format!("{} {code}: {message}", self.operation),
            },
            _ => Error::S3 {
                operation: self.operation,
                code: code.to_owned(),
                status,
                message: format!("s3://{bucket}/{key}: {message}"),
            },
        }
    }
}
