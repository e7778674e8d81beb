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
use upload_examples::aws_args::{AwsArgs, init_tracing_otlp, shutdown_signal};
use upload_examples::worker_cli::{self, ProcessingArgs};

/// Processes uploads from an SQS queue of S3 events.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    aws: AwsArgs,
    /// URL of the SQS queue receiving the uploads bucket's events.
    #[arg(long, env = "UPLOAD_QUEUE_URL")]
    queue_url: String,
    #[command(flatten)]
    processing: ProcessingArgs,
    /// Long-poll wait per receive, in seconds (at most 20).
    #[arg(long, default_value_t = 20)]
    wait_seconds: u64,
    /// Visibility timeout of received messages, in seconds (at most
    /// 43200); the heartbeat extends it every third of it while a message
    /// is processed. The queue's own when unset.
    #[arg(long, env = "UPLOAD_VISIBILITY_TIMEOUT")]
    visibility_timeout_seconds: Option<u64>,
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
    /// Also export the spans over OTLP/HTTP to this collector (e.g.
    /// http://127.0.0.1:4318; plain http): each upload's spans join the
    /// trace of the API request that presigned it.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let otlp = match init_tracing_otlp(
        args.processing.log_spans,
        args.otlp_endpoint.as_deref(),
        "upload-worker",
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(t) = args.visibility_timeout_seconds
        && t > 43_200
    {
        eprintln!(
            "error: --visibility-timeout-seconds {t} is over the SQS maximum of 43200 (12 h)"
        );
        return ExitCode::FAILURE;
    }
    let mut plan = match args.processing.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    plan.queue_url = Some(args.queue_url.clone());
    plan.wait = Duration::from_secs(args.wait_seconds.min(20));
    plan.visibility_timeout = args.visibility_timeout_seconds.map(Duration::from_secs);
    plan.shutdown_grace = Duration::from_secs(args.shutdown_grace_seconds);
    let (settings, sdk) = args.aws.load().await;
    let worker = match worker_cli::build(&settings, &sdk, &plan) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(queue = %args.queue_url, uploads = %plan.uploads_bucket, processed = %plan.processed_bucket, "worker started");
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
    let served = upload_pipeline::service::serve_worker_with(
        &worker,
        args.health_addr,
        extra,
        shutdown_signal(),
    )
    .await;
    if let Some(o) = otlp
        && let Err(e) = o.shutdown()
    {
        eprintln!("warning: {e}");
    }
    match served {
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
