//! Bucket wiring on S3: creating the bucket, the CORS configuration browser
//! uploads need, and the lifecycle rule that aborts incomplete multipart
//! uploads.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CorsConfiguration, CorsRule, CreateBucketConfiguration,
    ExpirationStatus, LifecycleRule, LifecycleRuleFilter, VersioningConfiguration,
};

use super::S3Storage;
use crate::cors::{CORS_ALLOWED_METHODS, CORS_EXPOSE_HEADERS, CorsConfig};
use crate::error::{Error, Result};

/// Identifier of the lifecycle rule written by
/// [`S3Storage::configure_abort_incomplete_multipart`].
pub const ABORT_INCOMPLETE_RULE_ID: &str = "upload-sdk-abort-incomplete-multipart";

impl CorsConfig {
    /// The SDK's CORS configuration for this rule (`s3` feature).
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] when the SDK's builder refuses a field.
    pub fn to_sdk(&self) -> Result<CorsConfiguration> {
        let rule = CorsRule::builder()
            .id("upload-sdk-direct-upload")
            .set_allowed_origins(Some(self.allowed_origins.clone()))
            .set_allowed_methods(Some(CORS_ALLOWED_METHODS.map(String::from).to_vec()))
            .allowed_headers("*")
            .set_expose_headers(Some(CORS_EXPOSE_HEADERS.map(String::from).to_vec()))
            .max_age_seconds(self.max_age_secs)
            .build()
            .map_err(sdk_build_error)?;
        CorsConfiguration::builder()
            .cors_rules(rule)
            .build()
            .map_err(sdk_build_error)
    }
}

fn sdk_build_error(e: aws_sdk_s3::error::BuildError) -> Error {
    Error::InvalidPolicy {
        reason: e.to_string(),
    }
}

impl S3Storage {
    /// Creates the bucket (in the client's region; `us-east-1` takes no
    /// location constraint). Succeeds when the bucket already exists and is
    /// ours (`BucketAlreadyOwnedByYou`).
    ///
    /// # Errors
    /// [`Error::S3`] with `BucketAlreadyExists` when another account owns
    /// the name; [`Error::Unavailable`] when the server cannot be reached.
    pub async fn create_bucket(&self) -> Result<()> {
        let region = self.client.config().region().map(|r| r.to_string());
        let mut req = self.client.create_bucket().bucket(&self.bucket);
        if let Some(r) = region.filter(|r| r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(r.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => match self.ctx("CreateBucket", "").map(e) {
                Error::S3 { code, .. } if code == "BucketAlreadyOwnedByYou" => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Turns versioning on (PutBucketVersioning `Enabled`): every write
    /// gets a version ID and event records carry it, so a worker reads,
    /// tags and quarantines exactly the version an event names.
    ///
    /// # Errors
    /// [`Error::AccessDenied`] without `s3:PutBucketVersioning`;
    /// [`Error::NoSuchBucket`].
    pub async fn enable_versioning(&self) -> Result<()> {
        self.client
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.ctx("PutBucketVersioning", "").map(e))?;
        Ok(())
    }

    /// The bucket's versioning status as S3 reports it: `Some("Enabled")`,
    /// `Some("Suspended")`, or `None` when versioning was never turned on.
    ///
    /// # Errors
    /// [`Error::AccessDenied`] without `s3:GetBucketVersioning`;
    /// [`Error::NoSuchBucket`].
    pub async fn versioning_status(&self) -> Result<Option<String>> {
        let out = self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.ctx("GetBucketVersioning", "").map(e))?;
        Ok(out.status().map(|s| s.as_str().to_owned()))
    }

    /// Replaces the bucket policy with `policy` (a JSON policy document,
    /// e.g. from `upload_scan::deny_unscanned_reads_policy`).
    ///
    /// # Errors
    /// [`Error::AccessDenied`] without `s3:PutBucketPolicy`;
    /// [`Error::S3`] with `MalformedPolicy` for a document S3 refuses;
    /// [`Error::NoSuchBucket`].
    pub async fn put_bucket_policy(&self, policy: &str) -> Result<()> {
        self.client
            .put_bucket_policy()
            .bucket(&self.bucket)
            .policy(policy)
            .send()
            .await
            .map_err(|e| self.ctx("PutBucketPolicy", "").map(e))?;
        Ok(())
    }

    /// The bucket policy document, or `None` when the bucket has none
    /// (`NoSuchBucketPolicy`).
    ///
    /// # Errors
    /// [`Error::AccessDenied`] without `s3:GetBucketPolicy`;
    /// [`Error::NoSuchBucket`].
    pub async fn bucket_policy(&self) -> Result<Option<String>> {
        match self
            .client
            .get_bucket_policy()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.policy().map(str::to_owned)),
            Err(e) => match self.ctx("GetBucketPolicy", "").map(e) {
                Error::S3 { code, .. } if code == "NoSuchBucketPolicy" => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Replaces the bucket's CORS configuration with `cors`.
    ///
    /// # Errors
    /// [`Error::AccessDenied`] without `s3:PutBucketCORS`;
    /// [`Error::NoSuchBucket`].
    pub async fn configure_cors(&self, cors: &CorsConfig) -> Result<()> {
        self.client
            .put_bucket_cors()
            .bucket(&self.bucket)
            .cors_configuration(cors.to_sdk()?)
            .send()
            .await
            .map_err(|e| self.ctx("PutBucketCors", "").map(e))?;
        Ok(())
    }

    /// The bucket's CORS rules as the SDK returns them (empty when none).
    ///
    /// # Errors
    /// As [`S3Storage::configure_cors`]; a bucket without CORS
    /// (`NoSuchCORSConfiguration`) is an empty list, not an error.
    pub async fn cors_rules(&self) -> Result<Vec<CorsRule>> {
        match self
            .client
            .get_bucket_cors()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.cors_rules().to_vec()),
            Err(e) => match self.ctx("GetBucketCors", "").map(e) {
                Error::S3 { code, .. } if code == "NoSuchCORSConfiguration" => Ok(Vec::new()),
                other => Err(other),
            },
        }
    }

    /// Puts the lifecycle rule `AbortIncompleteMultipartUpload` with
    /// `DaysAfterInitiation = days` for the whole bucket, so abandoned
    /// multipart uploads stop costing storage. Replaces the bucket's
    /// lifecycle configuration (S3 has no per-rule update): callers with
    /// rules of their own should add [`abort_incomplete_rule`] to theirs.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] when `days` is 0 (S3 needs at least 1).
    pub async fn configure_abort_incomplete_multipart(&self, days: u16) -> Result<()> {
        let rule = abort_incomplete_rule(days)?;
        let cfg = BucketLifecycleConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(sdk_build_error)?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(cfg)
            .send()
            .await
            .map_err(|e| self.ctx("PutBucketLifecycleConfiguration", "").map(e))?;
        Ok(())
    }

    /// Every rule of the bucket's lifecycle configuration, as the SDK
    /// returns them (empty when the bucket has none).
    ///
    /// # Errors
    /// [`Error::AccessDenied`] without `s3:GetLifecycleConfiguration`;
    /// [`Error::NoSuchBucket`]. A bucket without a lifecycle configuration
    /// (`NoSuchLifecycleConfiguration`) is an empty list, not an error.
    pub async fn lifecycle_rules(&self) -> Result<Vec<LifecycleRule>> {
        match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.rules().to_vec()),
            Err(e) => match self.ctx("GetBucketLifecycleConfiguration", "").map(e) {
                Error::S3 { code, .. } if code == "NoSuchLifecycleConfiguration" => Ok(Vec::new()),
                other => Err(other),
            },
        }
    }

    /// Days after which incomplete multipart uploads are aborted by the
    /// bucket's lifecycle rule [`ABORT_INCOMPLETE_RULE_ID`], if any.
    pub async fn abort_incomplete_multipart_days(&self) -> Result<Option<u16>> {
        let out = match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match self.ctx("GetBucketLifecycleConfiguration", "").map(e) {
                    Error::S3 { code, .. } if code == "NoSuchLifecycleConfiguration" => Ok(None),
                    other => Err(other),
                };
            }
        };
        Ok(out
            .rules()
            .iter()
            .filter(|r| r.id() == Some(ABORT_INCOMPLETE_RULE_ID))
            .find_map(|r| r.abort_incomplete_multipart_upload())
            .and_then(|a| a.days_after_initiation())
            .and_then(|d| u16::try_from(d).ok()))
    }
}

/// The lifecycle rule `AbortIncompleteMultipartUpload` after `days` days,
/// for the whole bucket, enabled.
///
/// # Errors
/// [`Error::InvalidPolicy`] when `days` is 0.
pub fn abort_incomplete_rule(days: u16) -> Result<LifecycleRule> {
    if days == 0 {
        return Err(Error::InvalidPolicy {
            reason: "abort incomplete multipart uploads after at least 1 day".into(),
        });
    }
    LifecycleRule::builder()
        .id(ABORT_INCOMPLETE_RULE_ID)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(i32::from(days))
                .build(),
        )
        .build()
        .map_err(sdk_build_error)
}
