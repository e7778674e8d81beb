//! Checks a live deployment and prints a checklist with the fix under each
//! failure (or JSON with `--json`); exits 1 when a check fails. With
//! `--print-iam`, prints the least-privilege IAM policies of the API role
//! and the worker role instead.
//!
//! ```text
//! upload-doctor --endpoint-url http://127.0.0.1:5000 --uploads-bucket uploads \
//!     --processed-bucket processed --queue upload-events \
//!     --app-origin http://127.0.0.1:8080 --clamd 127.0.0.1:3310
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use upload_examples::aws_args::{AwsArgs, init_tracing};
use upload_examples::worker_cli::clamd_address;
use upload_pipeline::deploy::iam::{api_role_policy, worker_role_policy};
use upload_pipeline::deploy::{Doctor, DoctorConfig};

/// Checks the buckets, queue, notifications and clamd of a deployment.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    aws: AwsArgs,
    /// Bucket clients upload into.
    #[arg(long, env = "UPLOAD_UPLOADS_BUCKET")]
    uploads_bucket: String,
    /// Bucket for variants and manifests.
    #[arg(long, env = "UPLOAD_PROCESSED_BUCKET")]
    processed_bucket: String,
    /// Event queue: its URL or its name.
    #[arg(long, env = "UPLOAD_QUEUE_URL", default_value = "upload-events")]
    queue: String,
    /// Key prefix of uploads (the notification filter).
    #[arg(long, default_value = "uploads/")]
    prefix: String,
    /// Browser origin that uploads (repeatable); none skips the CORS check.
    #[arg(long = "app-origin")]
    app_origins: Vec<String>,
    /// clamd: host:port or a Unix socket path; unset skips the clamd check.
    #[arg(long, env = "UPLOAD_CLAMD")]
    clamd: Option<String>,
    /// Warn when the clamd database is older than this many hours.
    #[arg(long, default_value_t = 48)]
    clamd_max_age_hours: u64,
    /// Skip the notification round trip (a probe object and a receive on
    /// the live queue).
    #[arg(long)]
    no_round_trip: bool,
    /// Seconds the round trip waits for the probe's event.
    #[arg(long, default_value_t = 20)]
    probe_timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Print the IAM policies of the API and worker roles, as JSON, and
    /// check nothing.
    #[arg(long)]
    print_iam: bool,
    /// For --print-iam: bucket of quarantined originals (default: the
    /// uploads bucket).
    #[arg(long)]
    quarantine_bucket: Option<String>,
    /// For --print-iam: key prefix of quarantined originals.
    #[arg(long, default_value = "quarantine/")]
    quarantine_prefix: String,
    /// For --print-iam: ARN of the dead-letter queue the worker moves
    /// malformed messages to (the worker's --dead-letter-queue-url).
    #[arg(long)]
    worker_dead_letter_queue_arn: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args = Args::parse();
    let (settings, sdk) = args.aws.load().await;
    let mut config = DoctorConfig::new(&args.uploads_bucket, &args.processed_bucket, &args.queue)
        .with_prefix(&args.prefix)
        .with_app_origins(&args.app_origins)
        .with_clamd_max_database_age(Duration::from_secs(args.clamd_max_age_hours * 3600))
        .with_round_trip(!args.no_round_trip)
        .with_probe_timeout(Duration::from_secs(args.probe_timeout));
    if let Some(c) = &args.clamd {
        config = config.with_clamd(clamd_address(c));
    }
    let doctor = Doctor::new(&settings, &sdk, config);
    if args.print_iam {
        let mut scope = match doctor.iam_scope().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let quarantine_bucket = args
            .quarantine_bucket
            .unwrap_or_else(|| args.uploads_bucket.clone());
        scope = scope.with_quarantine(quarantine_bucket, args.quarantine_prefix);
        if let Some(arn) = args.worker_dead_letter_queue_arn {
            scope = scope.with_dead_letter_queue(arn);
        }
        let policies = serde_json::json!({
            "api_role": api_role_policy(&scope),
            "worker_role": worker_role_policy(&scope),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&policies).expect("JSON values serialise")
        );
        return ExitCode::SUCCESS;
    }
    let report = doctor.check().await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serialises")
        );
    } else {
        print!("{}", report.render_text());
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
