//! The upload worker: consumes ObjectCreated and ObjectRemoved events from
//! SQS, checks the real type by magic bytes, scans with clamd
//! (quarantining infected files), writes variants and a manifest to the
//! processed bucket, and deletes them when the original is deleted. Safe
//! to run in any number on one queue. On Ctrl-C or SIGTERM it stops
//! receiving, gives the messages in progress `--shutdown-grace-seconds` to
//! finish, makes the rest visible again, and prints its counts as JSON.
//!
//! ```text
//! worker --endpoint-url http://127.0.0.1:5000 --queue-url URL --uploads-bucket uploads \
//!     --processed-bucket processed --clamd 127.0.0.1:3310 --health-addr 127.0.0.1:9090
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use upload_core::UploadPolicy;
use upload_examples::aws_args::{AwsArgs, init_tracing_with, shutdown_signal};
use upload_examples::worker_cli::{self, WorkerPlan};
use upload_pipeline::{RouteProcessing, VariantSpec};

/// Processes uploads from an SQS queue of S3 events.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    aws: AwsArgs,
    /// URL of the SQS queue receiving the uploads bucket's events.
    #[arg(long, env = "UPLOAD_QUEUE_URL")]
    queue_url: String,
    /// Bucket of the originals.
    #[arg(long, env = "UPLOAD_UPLOADS_BUCKET")]
    uploads_bucket: String,
    /// Bucket for variants and manifests.
    #[arg(long, env = "UPLOAD_PROCESSED_BUCKET")]
    processed_bucket: String,
    /// Bucket for quarantined originals; the uploads bucket when unset.
    #[arg(long, env = "UPLOAD_QUARANTINE_BUCKET")]
    quarantine_bucket: Option<String>,
    /// Key prefix of quarantined originals.
    #[arg(long, default_value = "quarantine/")]
    quarantine_prefix: String,
    /// clamd address: host:port, or a Unix socket path.
    #[arg(long, env = "UPLOAD_CLAMD", default_value = "127.0.0.1:3310")]
    clamd: String,
    /// Largest upload accepted, in bytes.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_bytes: u64,
    /// Messages processed at once.
    #[arg(long, default_value_t = 4)]
    max_in_flight: usize,
    /// Long-poll wait per receive, in seconds (at most 20).
    #[arg(long, default_value_t = 20)]
    wait_seconds: u64,
    /// Visibility timeout of received messages, in seconds (at most
    /// 43200); the heartbeat extends it every third of it while a message
    /// is processed. The queue's own when unset.
    #[arg(long, env = "UPLOAD_VISIBILITY_TIMEOUT")]
    visibility_timeout_seconds: Option<u64>,
    /// A variant to make of each clean image:
    /// `NAME=WIDTHxHEIGHT[:webp|jpeg|png[:QUALITY]]`, repeatable. Default:
    /// thumb=256x256 and medium=1024x1024, WebP quality 80.
    #[arg(long = "variant", value_parser = parse_variant)]
    variants: Vec<VariantSpec>,
    /// A variant of the uploads of one route (its signed
    /// x-amz-meta-upload-route): `ROUTE/NAME=WIDTHxHEIGHT[:fit][:format]`,
    /// repeatable, e.g. `avatar/square=128x128:cover:webp`.
    #[arg(long = "route-variant", value_parser = parse_route_variant)]
    route_variants: Vec<(String, VariantSpec)>,
    /// A route whose uploads are scanned, tagged and kept without variants
    /// (e.g. `document`), repeatable.
    #[arg(long = "scan-only-route")]
    scan_only_routes: Vec<String>,
    /// URL of a dead-letter queue that malformed messages are moved to at
    /// once (others reach it by the queue's redrive policy).
    #[arg(long, env = "UPLOAD_DEAD_LETTER_QUEUE_URL")]
    dead_letter_queue_url: Option<String>,
    /// Seconds that messages in progress may run after SIGTERM before they
    /// are made visible again for another worker.
    #[arg(long, default_value_t = 20)]
    shutdown_grace_seconds: u64,
    /// Serve GET /healthz and /readyz (JSON health) and GET /metrics
    /// (Prometheus text format: messages, outcomes, stage durations, bytes,
    /// in flight, queue lag, notifications) on this address, e.g.
    /// 127.0.0.1:9090.
    #[arg(long, env = "UPLOAD_HEALTH_ADDR")]
    health_addr: Option<std::net::SocketAddr>,
    /// Log each stage's timing (download, scan, decode, encode, upload) as
    /// its span closes.
    #[arg(long)]
    log_spans: bool,
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

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing_with(args.log_spans);
    if let Some(t) = args.visibility_timeout_seconds
        && t > 43_200
    {
        eprintln!(
            "error: --visibility-timeout-seconds {t} is over the SQS maximum of 43200 (12 h)"
        );
        return ExitCode::FAILURE;
    }
    let policy = match UploadPolicy::images_and_pdf(args.max_bytes) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (settings, sdk) = args.aws.load().await;
    let plan = WorkerPlan {
        queue_url: args.queue_url,
        quarantine_bucket: args
            .quarantine_bucket
            .unwrap_or_else(|| args.uploads_bucket.clone()),
        uploads_bucket: args.uploads_bucket,
        processed_bucket: args.processed_bucket,
        quarantine_prefix: args.quarantine_prefix,
        clamd: args.clamd,
        policy,
        max_in_flight: args.max_in_flight,
        wait: Duration::from_secs(args.wait_seconds.min(20)),
        visibility_timeout: args.visibility_timeout_seconds.map(Duration::from_secs),
        variants: if args.variants.is_empty() {
            VariantSpec::defaults()
        } else {
            args.variants
        },
        dead_letter_queue_url: args.dead_letter_queue_url,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        routes: routes(&args.route_variants, &args.scan_only_routes),
    };
    let worker = match worker_cli::build(&settings, &sdk, &plan) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(queue = %plan.queue_url, uploads = %plan.uploads_bucket, processed = %plan.processed_bucket, "worker started");
    let extra = match args.health_addr {
        Some(_) => match upload_pipeline::service::install_prometheus() {
            Ok(h) => upload_pipeline::service::metrics_router(h),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => axum::Router::new(),
    };
    match upload_pipeline::service::serve_worker_with(
        &worker,
        args.health_addr,
        extra,
        shutdown_signal(),
    )
    .await
    {
        Ok(stats) => {
            println!(
                "{}",
                serde_json::to_string(&stats).unwrap_or_else(|_| format!("{stats:?}"))
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
