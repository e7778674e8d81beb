//! Everything a deployment needs in the store and the queue, made in one
//! idempotent call: the uploads and processed buckets, the event queue with
//! its dead-letter queue, the uploads bucket's notifications to the queue,
//! its CORS rule for browser uploads and its lifecycle rule for abandoned
//! multipart uploads.

use std::time::Duration;

use serde::Serialize;
use upload_core::s3::{AwsSettings, CorsConfig, S3Storage, SdkConfig};
use upload_pipeline::sqs::{
    NotificationFilter, QueueSettings, connect_bucket_to_queue,
    create_queue_with_dead_letter_queue, sqs_client,
};

/// What to create.
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
    /// Abort incomplete multipart uploads after this many days.
    pub abort_incomplete_days: u16,
}

/// What was created, printed as JSON by the `upload-setup` binary.
#[derive(Debug, Clone, Serialize)]
pub struct SetupResult {
    /// URL of the event queue.
    pub queue_url: String,
    /// URL of its dead-letter queue.
    pub dead_letter_queue_url: String,
}

/// Runs `plan` against the store and queue service of `settings`/`sdk`.
///
/// # Errors
/// The first failing step's error, as text with the step named.
pub async fn run(
    settings: &AwsSettings,
    sdk: &SdkConfig,
    plan: &SetupPlan,
) -> Result<SetupResult, String> {
    let s3 = settings.s3_client(sdk);
    let uploads = S3Storage::new(s3.clone(), &plan.uploads_bucket).map_err(|e| e.to_string())?;
    let processed = S3Storage::new(s3, &plan.processed_bucket).map_err(|e| e.to_string())?;
    for b in [&uploads, &processed] {
        b.create_bucket()
            .await
            .map_err(|e| format!("creating a bucket: {e}"))?;
    }
    let (queue, dlq) = create_queue_with_dead_letter_queue(
        sqs_client(settings, sdk),
        &plan.queue_name,
        QueueSettings::default().with_visibility_timeout(plan.visibility_timeout),
        plan.max_receive_count,
    )
    .await
    .map_err(|e| format!("creating the queues: {e}"))?;
    connect_bucket_to_queue(
        &uploads,
        &queue,
        &NotificationFilter::default().with_prefix(&plan.prefix),
    )
    .await
    .map_err(|e| format!("connecting the bucket to the queue: {e}"))?;
    if !plan.cors_origins.is_empty() {
        let cors = CorsConfig::new(plan.cors_origins.clone()).map_err(|e| e.to_string())?;
        uploads
            .configure_cors(&cors)
            .await
            .map_err(|e| format!("configuring CORS: {e}"))?;
    }
    uploads
        .configure_abort_incomplete_multipart(plan.abort_incomplete_days)
        .await
        .map_err(|e| format!("configuring the lifecycle rule: {e}"))?;
    Ok(SetupResult {
        queue_url: queue.url().to_owned(),
        dead_letter_queue_url: dlq.url().to_owned(),
    })
}
