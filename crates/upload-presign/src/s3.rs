//! Presigning through `aws-sdk-s3` (feature `s3`): [`SdkPresigner`], and
//! [`credentials_from_sdk`] to feed our own [`crate::Presigner`] with the
//! credentials the AWS chain resolves (environment, profile, instance or
//! container role, with session tokens), and [`SdkCredentialsProvider`] to
//! keep refreshing them (see [`crate::RefreshingPresigner`]).
//!
//! [`SdkPresigner`] is the library baseline that our sans-IO
//! [`crate::Presigner`] is measured and cross-checked against: both produce
//! a [`PresignedRequest`], and S3-compatible servers that verify signatures
//! accept both. The SDK client must be built with
//! [`upload_core::s3::AwsSettings::s3_client`], which turns off the default
//! CRC32 checksum that would otherwise be baked into presigned PUTs
//! (aws-sdk-rust issue 1240).

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::presigning::PresigningConfig;
use upload_core::ObjectKey;
use upload_core::s3::SdkConfig;

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::provider::CredentialsProvider;
use crate::sigv4::{Method, PresignedRequest};

/// Resolves the credentials of `sdk`'s provider chain once, as
/// [`Credentials`] (with the session token of temporary credentials) and
/// their expiry, if they have one.
///
/// Credentials resolved once expire with the role session that issued them;
/// for a long-running server, sign through a
/// [`RefreshingPresigner`](crate::RefreshingPresigner) over a
/// [`SdkCredentialsProvider`] instead.
///
/// # Errors
/// [`Error::CredentialsUnavailable`] when the configuration has no
/// provider or the provider fails (no credentials in the environment,
/// profile or instance metadata).
pub async fn credentials_from_sdk(sdk: &SdkConfig) -> Result<(Credentials, Option<SystemTime>)> {
    let c = SdkCredentialsProvider::from_sdk_config(sdk)?
        .credentials()
        .await?;
    let expiry = c.expires_at;
    Ok((c, expiry))
}

/// A [`CredentialsProvider`] over the AWS SDK's credentials provider (the
/// default chain of an [`SdkConfig`]: environment, profile, web identity,
/// container and instance roles; or any [`ProvideCredentials`]).
///
/// Each call asks the SDK provider, which caches and refreshes credentials
/// itself; the access key, secret, session token and expiry map onto
/// [`Credentials`].
///
/// ```no_run
/// # async fn demo() -> upload_presign::Result<()> {
/// use upload_presign::{RefreshingPresigner, Url, s3::SdkCredentialsProvider};
/// let sdk = upload_core::s3::aws_config::load_defaults(
///     upload_core::s3::aws_config::BehaviorVersion::latest(),
/// )
/// .await;
/// let presigner = RefreshingPresigner::new(
///     Url::parse("https://s3.eu-west-1.amazonaws.com").unwrap(),
///     "eu-west-1",
///     SdkCredentialsProvider::from_sdk_config(&sdk)?,
/// )?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SdkCredentialsProvider {
    inner: SharedCredentialsProvider,
}

impl SdkCredentialsProvider {
    /// Wraps an SDK credentials provider (e.g. an
    /// `aws_config::default_provider::credentials::DefaultCredentialsChain`,
    /// or [`aws_sdk_s3::config::Credentials`] for fixed ones).
    pub fn new(provider: impl ProvideCredentials + 'static) -> Self {
        Self {
            inner: SharedCredentialsProvider::new(provider),
        }
    }

    /// Wraps an already shared SDK provider.
    pub fn from_shared(provider: SharedCredentialsProvider) -> Self {
        Self { inner: provider }
    }

    /// The credentials provider of `sdk` (as loaded by
    /// `aws_config::load_defaults`).
    ///
    /// # Errors
    /// [`Error::CredentialsUnavailable`] when the configuration has no
    /// credentials provider.
    pub fn from_sdk_config(sdk: &SdkConfig) -> Result<Self> {
        sdk.credentials_provider()
            .map(Self::from_shared)
            .ok_or_else(|| Error::CredentialsUnavailable {
                reason: "the AWS configuration has no credentials provider".into(),
            })
    }
}

#[async_trait::async_trait]
impl CredentialsProvider for SdkCredentialsProvider {
    /// # Errors
    /// [`Error::CredentialsUnavailable`] with the SDK provider's error and
    /// its causes.
    async fn credentials(&self) -> Result<Credentials> {
        let c =
            self.inner
                .provide_credentials()
                .await
                .map_err(|e| Error::CredentialsUnavailable {
                    reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                })?;
        let mut out = Credentials::new(c.access_key_id(), c.secret_access_key());
        if let Some(t) = c.session_token() {
            out = out.with_session_token(t);
        }
        if let Some(e) = c.expiry() {
            out = out.with_expiry(e);
        }
        Ok(out)
    }
}

/// Presigned requests made by `aws-sdk-s3`'s own presigning.
#[derive(Debug, Clone)]
pub struct SdkPresigner {
    client: Client,
}

impl SdkPresigner {
    /// Presigns with `client` (its endpoint, region, addressing style and
    /// credentials).
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn config(expires_in: Duration, now: SystemTime) -> Result<PresigningConfig> {
        PresigningConfig::builder()
            .start_time(now)
            .expires_in(expires_in)
            .build()
            .map_err(|_| upload_core::Error::ExpiryOutOfRange { expiry: expires_in }.into())
    }

    /// A presigned PutObject with `Content-Type` (and, when given, the
    /// exact `Content-Length`) signed.
    ///
    /// # Errors
    /// [`Error::Policy`] with `ExpiryOutOfRange` outside 1 s..=7 days;
    /// [`Error::Sdk`] when the SDK cannot presign.
    pub async fn presign_put(
        &self,
        bucket: &str,
        key: &ObjectKey,
        content_type: &str,
        content_length: Option<u64>,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key.as_str())
            .content_type(content_type);
        if let Some(len) = content_length {
            req = req.content_length(len as i64);
        }
        let p = req
            .presigned(Self::config(expires_in, now)?)
            .await
            .map_err(sdk_error)?;
        convert(&p, Method::Put, now + expires_in)
    }

    /// A presigned UploadPart for `part_number` (1..=10000) of `upload_id`.
    ///
    /// # Errors
    /// As [`SdkPresigner::presign_put`], and `InvalidPartNumber`.
    pub async fn presign_upload_part(
        &self,
        bucket: &str,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        upload_core::multipart::check_part_number(part_number)?;
        let p = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .presigned(Self::config(expires_in, now)?)
            .await
            .map_err(sdk_error)?;
        convert(&p, Method::Put, now + expires_in)
    }

    /// A presigned GetObject.
    ///
    /// # Errors
    /// As [`SdkPresigner::presign_put`].
    pub async fn presign_get(
        &self,
        bucket: &str,
        key: &ObjectKey,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        let p = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key.as_str())
            .presigned(Self::config(expires_in, now)?)
            .await
            .map_err(sdk_error)?;
        convert(&p, Method::Get, now + expires_in)
    }
}

fn sdk_error<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: aws_sdk_s3::error::SdkError<E, R>,
) -> Error {
    Error::Sdk {
        reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
    }
}

fn convert(
    p: &aws_sdk_s3::presigning::PresignedRequest,
    method: Method,
    expires_at: SystemTime,
) -> Result<PresignedRequest> {
    let url = url::Url::parse(p.uri()).map_err(|e| Error::Sdk {
        reason: format!("the SDK presigned an unparsable URL: {e}"),
    })?;
    let headers = p
        .headers()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Ok(PresignedRequest {
        method,
        url,
        headers,
        expires_at,
    })
}
