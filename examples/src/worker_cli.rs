//! The worker on real services: SQS events, S3 buckets, clamd.

use std::sync::Arc;
use std::time::Duration;

use upload_core::s3::{AwsSettings, S3Storage, SdkConfig};
use upload_core::{Storage, UploadPolicy};
use upload_pipeline::sqs::{SqsQueue, sqs_client};
use upload_pipeline::{ReceiveOptions, RunStats, StandardCodec, Worker, WorkerConfig};
use upload_scan::{ClamdAddress, ClamdConfig, ClamdScanner, Quarantine};

/// Where the worker reads and writes.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    /// URL of the event queue.
    pub queue_url: String,
    /// Bucket of the originals.
    pub uploads_bucket: String,
    /// Bucket for variants and manifests.
    pub processed_bucket: String,
    /// Bucket for quarantined originals (may be the uploads bucket).
    pub quarantine_bucket: String,
    /// Key prefix of quarantined originals, e.g. `quarantine/`.
    pub quarantine_prefix: String,
    /// clamd: `host:port` or a Unix socket path.
    pub clamd: String,
    /// Uploads accepted (types by magic bytes, size).
    pub policy: UploadPolicy,
    /// Messages processed at once.
    pub max_in_flight: usize,
    /// Long-poll wait per receive, at most 20 s.
    pub wait: Duration,
}

/// `host:port` is TCP; anything with a `/` is a Unix socket path.
pub fn clamd_address(s: &str) -> ClamdAddress {
    if s.contains('/') {
        ClamdAddress::Unix(s.into())
    } else {
        ClamdAddress::Tcp(s.to_owned())
    }
}

/// Builds the worker of `plan`.
///
/// # Errors
/// An invalid bucket name.
pub fn build(settings: &AwsSettings, sdk: &SdkConfig, plan: &WorkerPlan) -> Result<Worker, String> {
    let s3 = settings.s3_client(sdk);
    let bucket = |name: &str| -> Result<Arc<dyn Storage>, String> {
        Ok(Arc::new(
            S3Storage::new(s3.clone(), name).map_err(|e| e.to_string())?,
        ))
    };
    let queue = Arc::new(SqsQueue::new(sqs_client(settings, sdk), &plan.queue_url));
    let scanner = Arc::new(ClamdScanner::new(ClamdConfig::new(clamd_address(
        &plan.clamd,
    ))));
    let config = WorkerConfig::new(plan.policy.clone())
        .with_max_in_flight(plan.max_in_flight)
        .with_receive(ReceiveOptions::default().with_wait(plan.wait));
    Ok(Worker::new(
        queue,
        bucket(&plan.uploads_bucket)?,
        bucket(&plan.processed_bucket)?,
        scanner,
        Arc::new(StandardCodec::default()),
        Quarantine::new(
            bucket(&plan.quarantine_bucket)?,
            plan.quarantine_prefix.clone(),
        ),
        config,
    ))
}

/// Runs `worker` until `shutdown`, logging a summary line.
///
/// # Errors
/// A queue error on receive (the queue URL is wrong or unreachable).
pub async fn run(worker: &Worker, shutdown: impl Future<Output = ()>) -> Result<RunStats, String> {
    worker.run(shutdown).await.map_err(|e| e.to_string())
}
