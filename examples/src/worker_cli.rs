//! The worker on real services: SQS events, S3 buckets, clamd.

use std::sync::Arc;
use std::time::Duration;

use upload_core::s3::{AwsSettings, S3Storage, SdkConfig};
use upload_core::{Storage, UploadPolicy};
use upload_pipeline::sqs::{SqsQueue, sqs_client};
use upload_pipeline::{
    ReceiveOptions, RouteProcessing, StandardCodec, VariantSpec, Worker, WorkerConfig,
};
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
    /// Visibility timeout of received messages (the heartbeat extends it
    /// every third of it); the queue's own when `None`.
    pub visibility_timeout: Option<Duration>,
    /// Variants made of each clean image.
    pub variants: Vec<VariantSpec>,
    /// Queue that malformed messages are moved to at once; when `None`
    /// they fail until the queue's redrive policy moves them.
    pub dead_letter_queue_url: Option<String>,
    /// How long messages in progress may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Processing per upload route (variants, or none), by route name.
    pub routes: Vec<(String, RouteProcessing)>,
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
    let scanner = Arc::new(ClamdScanner::new(ClamdConfig::new(clamd_address(
        &plan.clamd,
    ))));
    let mut receive = ReceiveOptions::default().with_wait(plan.wait);
    if let Some(t) = plan.visibility_timeout {
        receive = receive.with_visibility_timeout(t);
    }
    let config = WorkerConfig::new(plan.policy.clone())
        .with_max_in_flight(plan.max_in_flight)
        .with_receive(receive)
        .with_variants(plan.variants.clone())
        .with_shutdown_grace(plan.shutdown_grace);
    let config = plan
        .routes
        .iter()
        .fold(config, |c, (name, r)| c.with_route(name.clone(), r.clone()));
    let sqs = sqs_client(settings, sdk);
    let queue = Arc::new(SqsQueue::new(sqs.clone(), &plan.queue_url));
    let worker = Worker::new(
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
    );
    Ok(match &plan.dead_letter_queue_url {
        Some(url) => worker.with_dead_letter_queue(Arc::new(SqsQueue::new(sqs, url))),
        None => worker,
    })
}
