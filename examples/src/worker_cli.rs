//! The worker on real services: SQS events, S3 buckets, clamd; its
//! flags, shared by the `worker` and `lambda-worker` binaries
//! ([`ProcessingArgs`]).

use std::sync::Arc;
use std::time::Duration;

use upload_core::s3::{AwsSettings, S3Storage, SdkConfig};
use upload_core::{Storage, UploadPolicy};
use upload_pipeline::sqs::{SqsQueue, sqs_client};
use upload_pipeline::{
    MemoryQueue, Queue, ReceiveOptions, RouteProcessing, StandardCodec, VariantSpec, Worker,
    WorkerConfig,
};
use upload_scan::{ClamdAddress, ClamdConfig, ClamdScanner, Quarantine};

/// Where the worker reads and writes.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    /// URL of the event queue; `None` on AWS Lambda, where the event
    /// source mapping receives and deletes the messages (the worker's
    /// queue is then an unused in-memory one).
    pub queue_url: Option<String>,
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
    let queue: Arc<dyn Queue> = match &plan.queue_url {
        Some(url) => Arc::new(SqsQueue::new(sqs.clone(), url)),
        None => Arc::new(MemoryQueue::new("unused-on-lambda")),
    };
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

/// The flags of what the worker does with each upload, shared by the
/// `worker` and `lambda-worker` binaries; each can also be set by its
/// environment variable (the only way on AWS Lambda).
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessingArgs {
    /// Bucket of the originals.
    #[arg(long, env = "UPLOAD_UPLOADS_BUCKET")]
    pub uploads_bucket: String,
    /// Bucket for variants and manifests.
    #[arg(long, env = "UPLOAD_PROCESSED_BUCKET")]
    pub processed_bucket: String,
    /// Bucket for quarantined originals; the uploads bucket when unset.
    #[arg(long, env = "UPLOAD_QUARANTINE_BUCKET")]
    pub quarantine_bucket: Option<String>,
    /// Key prefix of quarantined originals.
    #[arg(long, env = "UPLOAD_QUARANTINE_PREFIX", default_value = "quarantine/")]
    pub quarantine_prefix: String,
    /// clamd address: host:port, or a Unix socket path.
    #[arg(long, env = "UPLOAD_CLAMD", default_value = "127.0.0.1:3310")]
    pub clamd: String,
    /// Largest upload accepted, in bytes.
    #[arg(long, env = "UPLOAD_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_bytes: u64,
    /// Messages processed at once.
    #[arg(long, env = "UPLOAD_MAX_IN_FLIGHT", default_value_t = 4)]
    pub max_in_flight: usize,
    /// A variant to make of each clean image:
    /// `NAME=WIDTHxHEIGHT[:webp|jpeg|png[:QUALITY]]`, repeatable (comma
    /// separated in the variable). Default: thumb=256x256 and
    /// medium=1024x1024, WebP quality 80.
    #[arg(long = "variant", env = "UPLOAD_VARIANTS", value_delimiter = ',', value_parser = parse_variant)]
    pub variants: Vec<VariantSpec>,
    /// A variant of the uploads of one route (its signed
    /// x-amz-meta-upload-route): `ROUTE/NAME=WIDTHxHEIGHT[:fit][:format]`,
    /// repeatable (comma separated in the variable), e.g.
    /// `avatar/square=128x128:cover:webp`.
    #[arg(long = "route-variant", env = "UPLOAD_ROUTE_VARIANTS", value_delimiter = ',', value_parser = parse_route_variant)]
    pub route_variants: Vec<(String, VariantSpec)>,
    /// A route whose uploads are scanned, tagged and kept without variants
    /// (e.g. `document`), repeatable (comma separated in the variable).
    #[arg(
        long = "scan-only-route",
        env = "UPLOAD_SCAN_ONLY_ROUTES",
        value_delimiter = ','
    )]
    pub scan_only_routes: Vec<String>,
    /// URL of a dead-letter queue that malformed messages are moved to at
    /// once (others reach it by the queue's redrive policy).
    #[arg(long, env = "UPLOAD_DEAD_LETTER_QUEUE_URL")]
    pub dead_letter_queue_url: Option<String>,
    /// Log each stage's timing (download, scan, decode, encode, upload) as
    /// its span closes.
    #[arg(long, env = "UPLOAD_LOG_SPANS")]
    pub log_spans: bool,
}

impl ProcessingArgs {
    /// The plan of these flags; the loop settings (`queue_url`, `wait`,
    /// `visibility_timeout`, `shutdown_grace`) at their defaults: no queue,
    /// 20 s, the queue's own, 20 s.
    ///
    /// # Errors
    /// A policy that cannot be built from `--max-bytes` (0).
    pub fn plan(self) -> Result<WorkerPlan, String> {
        let policy = UploadPolicy::images_and_pdf(self.max_bytes).map_err(|e| e.to_string())?;
        Ok(WorkerPlan {
            queue_url: None,
            quarantine_bucket: self
                .quarantine_bucket
                .unwrap_or_else(|| self.uploads_bucket.clone()),
            uploads_bucket: self.uploads_bucket,
            processed_bucket: self.processed_bucket,
            quarantine_prefix: self.quarantine_prefix,
            clamd: self.clamd,
            policy,
            max_in_flight: self.max_in_flight,
            wait: Duration::from_secs(20),
            visibility_timeout: None,
            variants: if self.variants.is_empty() {
                VariantSpec::defaults()
            } else {
                self.variants
            },
            dead_letter_queue_url: self.dead_letter_queue_url,
            shutdown_grace: Duration::from_secs(20),
            routes: routes(&self.route_variants, &self.scan_only_routes),
        })
    }
}

fn parse_route_variant(s: &str) -> Result<(String, VariantSpec), String> {
    let (route, spec) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected ROUTE/NAME=WIDTHxHEIGHT[...]"))?;
    Ok((route.to_owned(), parse_variant(spec)?))
}

/// Every route named by `--route-variant` or `--scan-only-route`, with its
/// processing.
fn routes(
    variants: &[(String, VariantSpec)],
    scan_only: &[String],
) -> Vec<(String, RouteProcessing)> {
    let mut routes: std::collections::BTreeMap<String, RouteProcessing> = scan_only
        .iter()
        .map(|r| (r.clone(), RouteProcessing::scan_only()))
        .collect();
    for (route, spec) in variants {
        routes
            .entry(route.clone())
            .or_insert_with(RouteProcessing::scan_only)
            .variants
            .push(spec.clone());
    }
    routes.into_iter().collect()
}

fn parse_variant(s: &str) -> Result<VariantSpec, String> {
    VariantSpec::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        processing: ProcessingArgs,
    }

    #[test]
    fn comma_separated_variants_and_routes_make_the_plan() {
        let cli = Cli::try_parse_from([
            "lambda-worker",
            "--uploads-bucket",
            "uploads",
            "--processed-bucket",
            "processed",
            "--variant",
            "thumb=64x64,card=1200x630:cover:jpeg:85",
            "--route-variant",
            "avatar/square=128x128:cover,avatar/tiny=32x32",
            "--scan-only-route",
            "document,invoice",
        ])
        .unwrap();
        let plan = cli.processing.plan().unwrap();
        let names: Vec<&str> = plan.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["thumb", "card"]);
        assert_eq!(
            plan.quarantine_bucket, "uploads",
            "the uploads bucket by default"
        );
        assert_eq!(plan.queue_url, None);
        let routes: Vec<(&str, usize)> = plan
            .routes
            .iter()
            .map(|(name, r)| (name.as_str(), r.variants.len()))
            .collect();
        assert_eq!(routes, [("avatar", 2), ("document", 0), ("invoice", 0)]);
        let bad = Cli::try_parse_from([
            "lambda-worker",
            "--uploads-bucket",
            "u1",
            "--processed-bucket",
            "p1",
            "--variant",
            "thumb=0x64",
        ]);
        assert!(bad.is_err());
    }
}
