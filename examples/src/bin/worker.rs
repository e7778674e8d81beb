//! The upload worker: consumes ObjectCreated events from SQS, checks the
//! real type by magic bytes, scans with clamd (quarantining infected files),
//! writes variants and a manifest to the processed bucket. Stops on Ctrl-C
//! or SIGTERM after finishing the batch in progress, and prints a JSON
//! summary line.
//!
//! ```text
//! worker --endpoint-url http://127.0.0.1:5000 --queue-url URL --uploads-bucket uploads \
//!     --processed-bucket processed --clamd 127.0.0.1:3310
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use upload_core::UploadPolicy;
use upload_examples::aws_args::{AwsArgs, init_tracing, shutdown_signal};
use upload_examples::worker_cli::{self, WorkerPlan};

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
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args = Args::parse();
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
    };
    let worker = match worker_cli::build(&settings, &sdk, &plan) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(queue = %plan.queue_url, uploads = %plan.uploads_bucket, processed = %plan.processed_bucket, "worker started");
    match worker_cli::run(&worker, shutdown_signal()).await {
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
