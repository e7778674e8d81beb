//! A deployment on AWS (or an S3 + SQS compatible service), made and
//! checked (feature `sqs`).
//!
//! - [`setup`]: everything a deployment needs in the store and the queue,
//!   made in one idempotent call from a [`SetupPlan`]: the uploads and
//!   processed buckets, the event queue with its dead-letter queue, the
//!   uploads bucket's notifications to the queue, its CORS rule for browser
//!   uploads, its lifecycle rule for abandoned multipart uploads,
//!   versioning, and its bucket policy (reads of objects not scanned clean
//!   denied to all but the worker; optionally, create-only uploads).
//! - [`doctor`]: [`Doctor`] checks a live deployment and reports one
//!   [`Check`] per item, each failure with its fix.
//! - [`iam`]: the least-privilege IAM policies of the API's role and the
//!   worker's role.

pub mod doctor;
pub mod iam;

use std::time::Duration;

use serde::Serialize;
use upload_core::s3::{AwsSettings, CorsConfig, S3Storage, SdkConfig};

pub use doctor::{Check, CheckStatus, Doctor, DoctorConfig, Report};

use crate::error::{Error, Result};
use crate::sqs::{
    NotificationFilter, QueueSettings, connect_bucket_to_queue,
    create_queue_with_dead_letter_queue, sqs_client,
};

/// What [`setup`] creates. All fields are public: build it as a struct
/// literal.
#[derive(Debug, Clone)]
pub struct SetupPlan {
    /// Bucket clients upload into.
    pub uploads_bucket: String,
    /// Bucket the worker writes variants and manifests into.
    pub processed_bucket: String,
    /// Name of the event queue; its dead-letter queue is `{name}-dlq`.
    pub queue_name: String,
    /// Receives before a message is dead-lettered (1..=1000).
    pub max_receive_count: u32,
    /// Visibility timeout of the queue: longer than the slowest upload's
    /// processing.
    pub visibility_timeout: Duration,
    /// Only keys under this prefix notify the queue (`uploads/`), so the
    /// worker's own writes (quarantine copies) never trigger it.
    pub prefix: String,
    /// Browser origins allowed to upload (CORS); none means no CORS rule.
    pub cors_origins: Vec<String>,
    /// Abort incomplete multipart uploads after this many days (at least 1).
    pub abort_incomplete_days: u16,
    /// Turn versioning on for the uploads bucket
    /// ([`S3Storage::enable_versioning`]): event records then name the
    /// exact version the worker reads, tags and quarantines.
    pub enable_versioning: bool,
    /// Deny `s3:GetObject` on uploads whose `scan-status` tag is not
    /// `CLEAN` (`upload_scan::deny_unscanned_reads_statement`), so nothing
    /// is served before the scanner passed it. On by default in the
    /// `upload-setup` binary.
    pub deny_unscanned_reads: bool,
    /// Principals exempt from that denial: the worker's role, which reads
    /// unscanned uploads. Required when `deny_unscanned_reads` is on.
    pub worker_principal_arns: Vec<String>,
    /// Deny writes under `prefix` without `If-None-Match`
    /// (`upload_scan::require_create_only_statement`): no upload replaces
    /// an original, whoever signed it. Presigned POST forms cannot carry
    /// the header and are then refused.
    pub require_create_only_uploads: bool,
}

impl SetupPlan {
    /// The uploads bucket's policy document, or `None` when it has no
    /// statement.
    ///
    /// # Errors
    /// [`Error::InvalidDeployPlan`] when `deny_unscanned_reads` is on and
    /// no worker principal is named: the worker could then not read what
    /// it must scan.
    pub fn bucket_policy(&self) -> Result<Option<String>> {
        let mut statements = Vec::new();
        if self.deny_unscanned_reads {
            if self.worker_principal_arns.is_empty() {
                return Err(Error::InvalidDeployPlan {
                    reason: "denying reads of unscanned uploads needs the worker's principal ARN \
                             (--worker-principal-arn), which must still read them; or opt out with \
                             --allow-unscanned-reads"
                        .into(),
                });
            }
            let exempt: Vec<&str> = self
                .worker_principal_arns
                .iter()
                .map(String::as_str)
                .collect();
            statements.push(upload_scan::deny_unscanned_reads_statement(
                &self.uploads_bucket,
                &exempt,
            ));
        }
        if self.require_create_only_uploads {
            statements.push(upload_scan::require_create_only_statement(
                &self.uploads_bucket,
                &self.prefix,
            ));
        }
        Ok((!statements.is_empty()).then(|| upload_scan::policy_document(&statements)))
    }
}

/// What [`setup`] created, printed as JSON by the `upload-setup` binary.
#[derive(Debug, Clone, Serialize)]
pub struct SetupResult {
    /// URL of the event queue.
    pub queue_url: String,
    /// URL of its dead-letter queue.
    pub dead_letter_queue_url: String,
}

fn step<T>(name: &'static str, r: std::result::Result<T, impl Into<Error>>) -> Result<T> {
    r.map_err(|e| Error::DeployStep {
        step: name,
        source: Box::new(e.into()),
    })
}

/// Applies `plan` to the store and queue service of `settings`/`sdk`.
/// Idempotent: running it again brings an existing deployment up to date.
///
/// # Errors
/// [`Error::InvalidDeployPlan`] for a plan that cannot be applied (see
/// [`SetupPlan::bucket_policy`]); [`Error::DeployStep`] naming the first
/// step that failed, with the store's or queue's error (e.g.
/// `BucketAlreadyExists` when another account owns a bucket name).
pub async fn setup(
    settings: &AwsSettings,
    sdk: &SdkConfig,
    plan: &SetupPlan,
) -> Result<SetupResult> {
    let policy = plan.bucket_policy()?;
    let s3 = settings.s3_client(sdk);
    let uploads = S3Storage::new(s3.clone(), &plan.uploads_bucket)?;
    let processed = S3Storage::new(s3, &plan.processed_bucket)?;
    for b in [&uploads, &processed] {
        step("creating a bucket", b.create_bucket().await)?;
    }
    let (queue, dlq) = step(
        "creating the queues",
        create_queue_with_dead_letter_queue(
            sqs_client(settings, sdk),
            &plan.queue_name,
            QueueSettings::default().with_visibility_timeout(plan.visibility_timeout),
            plan.max_receive_count,
        )
        .await,
    )?;
    step(
        "connecting the bucket to the queue",
        connect_bucket_to_queue(
            &uploads,
            &queue,
            &NotificationFilter::default().with_prefix(&plan.prefix),
        )
        .await,
    )?;
    if !plan.cors_origins.is_empty() {
        let cors = CorsConfig::new(plan.cors_origins.clone())?;
        step("configuring CORS", uploads.configure_cors(&cors).await)?;
    }
    step(
        "configuring the lifecycle rule",
        uploads
            .configure_abort_incomplete_multipart(plan.abort_incomplete_days)
            .await,
    )?;
    if plan.enable_versioning {
        step("enabling versioning", uploads.enable_versioning().await)?;
    }
    if let Some(policy) = policy {
        step(
            "applying the bucket policy",
            uploads.put_bucket_policy(&policy).await,
        )?;
    }
    Ok(SetupResult {
        queue_url: queue.url().to_owned(),
        dead_letter_queue_url: dlq.url().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SetupPlan {
        SetupPlan {
            uploads_bucket: "uploads".into(),
            processed_bucket: "processed".into(),
            queue_name: "events".into(),
            max_receive_count: 5,
            visibility_timeout: Duration::from_secs(120),
            prefix: "uploads/".into(),
            cors_origins: Vec::new(),
            abort_incomplete_days: 7,
            enable_versioning: true,
            deny_unscanned_reads: true,
            worker_principal_arns: Vec::new(),
            require_create_only_uploads: false,
        }
    }

    #[test]
    fn deny_unscanned_reads_is_the_default_and_needs_the_worker() {
        let err = plan().bucket_policy().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidDeployPlan { reason } if reason.contains("--worker-principal-arn")),
            "{err}"
        );
        let arn = "arn:aws:iam::123456789012:role/upload-worker";
        let doc = SetupPlan {
            worker_principal_arns: vec![arn.into()],
            ..plan()
        }
        .bucket_policy()
        .unwrap()
        .expect("a policy");
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let st = doc["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 1);
        assert_eq!(
            st[0]["Action"],
            serde_json::json!(["s3:GetObject", "s3:GetObjectVersion"])
        );
        assert_eq!(st[0]["Resource"], "arn:aws:s3:::uploads/*");
        assert_eq!(
            st[0]["Condition"]["StringNotEquals"]["s3:ExistingObjectTag/scan-status"],
            "CLEAN"
        );
        assert_eq!(
            st[0]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"][0],
            arn
        );
    }

    #[test]
    fn opting_out_and_create_only_uploads() {
        let none = SetupPlan {
            deny_unscanned_reads: false,
            ..plan()
        };
        assert_eq!(none.bucket_policy().unwrap(), None);
        let doc = SetupPlan {
            require_create_only_uploads: true,
            ..none
        }
        .bucket_policy()
        .unwrap()
        .expect("a policy");
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let st = &doc["Statement"][0];
        assert_eq!(st["Resource"], "arn:aws:s3:::uploads/uploads/*");
        assert_eq!(st["Condition"]["Null"]["s3:if-none-match"], "true");
    }
}
