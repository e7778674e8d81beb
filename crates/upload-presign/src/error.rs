//! The error type of `upload-presign`.

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when presigning or verifying.
///
/// Verification errors map to the S3 error code a real server would answer
/// with ([`Error::s3_code`]) and its HTTP status ([`Error::http_status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request breaks the upload policy, or the key or expiry is invalid.
    /// The POST policy request is not valid (empty size range, a success
    /// status other than 200/201/204, a bad metadata name).
    #[error("invalid POST policy: {reason}")]
    InvalidPostPolicy {
        /// What is wrong.
        reason: String,
    },
    /// The URL would outlive the temporary credentials it is signed with;
    /// refresh the credentials or shorten the expiry.
    #[error(
        "the credentials expire at {credentials_expire_at}, before the URL would at {url_expires_at}"
    )]
    CredentialsExpireFirst {
        /// RFC 3339 expiry of the credentials.
        credentials_expire_at: String,
        /// RFC 3339 expiry the URL asked for.
        url_expires_at: String,
    },
    /// The AWS credential chain gave no credentials (feature `s3`).
    #[error("AWS credentials unavailable: {reason}")]
    CredentialsUnavailable {
        /// What the provider chain reported.
        reason: String,
    },
    /// `aws-sdk-s3` failed to presign (feature `s3`).
    #[error("aws-sdk-s3 presigning failed: {reason}")]
    Sdk {
        /// The SDK's error, with its causes.
        reason: String,
    },
    #[error(transparent)]
    Policy(#[from] upload_core::Error),
    /// The endpoint URL cannot be used (no host, not http(s), has a query).
    #[error("invalid endpoint {url}: {reason}")]
    InvalidEndpoint {
        /// The endpoint.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header to sign has an invalid name or value.
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A query parameter the signer sets itself (`X-Amz-Algorithm`,
    /// `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
    /// `X-Amz-SignedHeaders`, `X-Amz-Signature`, `X-Amz-Security-Token`), or
    /// a name given twice.
    #[error("invalid query parameter {name:?}: {reason}")]
    InvalidQueryParameter {
        /// The parameter name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A signing time that SigV4 cannot express (before year 0 or after
    /// 9999), or an expiry instant past what the system clock can hold.
    #[error("signing time out of range")]
    TimeOutOfRange,
    /// The presigned URL has expired (S3 `AccessDenied`, "Request has
    /// expired").
    #[error("request has expired ({expired_seconds_ago} s ago)")]
    Expired {
        /// How long ago it expired, in seconds.
        expired_seconds_ago: u64,
    },
    /// The temporary credentials the request was signed with have expired,
    /// even if the URL itself has not (S3 `ExpiredToken`, 400).
    #[error("the credentials that signed the request expired {expired_seconds_ago} s ago")]
    ExpiredToken {
        /// How long ago the credentials expired, in seconds.
        expired_seconds_ago: u64,
    },
    /// The URL was signed more than 15 minutes in the future (S3
    /// `AccessDenied`, "Request is not valid yet").
    #[error("request is not valid yet")]
    NotYetValid,
    /// The signature does not match the request: tampered URL, other
    /// method, or a signed header (e.g. `Content-Type`) with another value
    /// (S3 `SignatureDoesNotMatch`).
    #[error("the request signature does not match: {reason}")]
    SignatureDoesNotMatch {
        /// Which part differed, for logs (never the expected signature).
        reason: String,
    },
    /// The access key ID is unknown (S3 `InvalidAccessKeyId`).
    #[error("unknown access key ID {access_key_id:?}")]
    InvalidAccessKeyId {
        /// The unknown ID.
        access_key_id: String,
    },
    /// The presigned query parameters are missing or malformed (S3
    /// `AuthorizationQueryParametersError`).
    #[error("malformed presigned query: {reason}")]
    MalformedQuery {
        /// What is missing or malformed.
        reason: String,
    },
}

impl Error {
    /// The S3 error code a server answers with.
    pub fn s3_code(&self) -> &'static str {
        match self {
            Error::Expired { .. } | Error::NotYetValid => "AccessDenied",
            Error::SignatureDoesNotMatch { .. } => "SignatureDoesNotMatch",
            Error::InvalidAccessKeyId { .. } => "InvalidAccessKeyId",
            Error::MalformedQuery { .. } => "AuthorizationQueryParametersError",
            Error::Policy(_)
            | Error::InvalidEndpoint { .. }
            | Error::InvalidHeader { .. }
            | Error::InvalidQueryParameter { .. }
            | Error::TimeOutOfRange => "InvalidArgument",
            Error::CredentialsUnavailable { .. } | Error::Sdk { .. } => "InternalError",
            Error::InvalidPostPolicy { .. } => "InvalidPolicyDocument",
            Error::CredentialsExpireFirst { .. } | Error::ExpiredToken { .. } => "ExpiredToken",
        }
    }

    /// The HTTP status a server answers with: 403 for authentication
    /// failures, 400 for malformed requests.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Expired { .. }
            | Error::NotYetValid
            | Error::SignatureDoesNotMatch { .. }
            | Error::InvalidAccessKeyId { .. } => 403,
            Error::CredentialsUnavailable { .. }
            | Error::Sdk { .. }
            | Error::CredentialsExpireFirst { .. } => 500,
            _ => 400,
        }
    }
}
