//! Scans clean uploads again after a clamd signature update: every
//! original the worker judged clean with an older database (within
//! `--window-days`) is scanned again; what is infected now is quarantined,
//! its variants deleted and its manifest rewritten; the rest is tagged with
//! the new database (`scan-db`), so a second run does nothing. Prints the
//! report as JSON; on Ctrl-C or SIGTERM it finishes the objects in
//! progress and prints where to continue (`resume_after`, for
//! `--start-after`).
//!
//! ```text
//! upload-rescan --endpoint-url http://127.0.0.1:5000 --uploads-bucket uploads \
//!     --processed-bucket processed --clamd 127.0.0.1:3310 --window-days 30
//! ```
//!
//! Exit status: 0 when every manifest was handled without error, 1 on a
//! setup error, 2 when the run stopped early or some uploads failed (the
//! report says which).

use std::process::ExitCode;

use clap::Parser;
use upload_examples::aws_args::{AwsArgs, init_tracing, shutdown_signal};
use upload_examples::rescan_cli::{self, RescanPlan};
use upload_pipeline::RescanOptions;

/// Scans clean uploads again with clamd's current signature database.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    aws: AwsArgs,
    /// Bucket of the originals.
    #[arg(long, env = "UPLOAD_UPLOADS_BUCKET")]
    uploads_bucket: String,
    /// Bucket of variants and manifests.
    #[arg(long, env = "UPLOAD_PROCESSED_BUCKET")]
    processed_bucket: String,
    /// Bucket for quarantined originals; the uploads bucket when unset.
    #[arg(long, env = "UPLOAD_QUARANTINE_BUCKET")]
    quarantine_bucket: Option<String>,
    /// Key prefix of quarantined originals.
    #[arg(long, env = "UPLOAD_QUARANTINE_PREFIX", default_value = "quarantine/")]
    quarantine_prefix: String,
    /// clamd address: host:port, or a Unix socket path.
    #[arg(long, env = "UPLOAD_CLAMD", default_value = "127.0.0.1:3310")]
    clamd: String,
    /// Only uploads processed within the last DAYS days; all when unset.
    #[arg(long)]
    window_days: Option<u64>,
    /// Uploads scanned at once.
    #[arg(long, default_value_t = upload_pipeline::rescan::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Continue after this manifest key (a previous run's `resume_after`).
    #[arg(long)]
    start_after: Option<String>,
    /// Rescan what was scanned with a database older than this number;
    /// clamd's current one when unset (needed when clamd loads only local
    /// databases, which have no number).
    #[arg(long)]
    older_than_database: Option<u64>,
    /// Only manifests under this key prefix of the processed bucket.
    #[arg(long, default_value = "")]
    prefix: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    let mut options = RescanOptions::default()
        .with_concurrency(args.concurrency)
        .with_prefix(args.prefix);
    if let Some(days) = args.window_days {
        options = options.with_window_days(days);
    }
    if let Some(key) = args.start_after {
        options = options.with_start_after(key);
    }
    if let Some(db) = args.older_than_database {
        options = options.with_older_than(db);
    }
    let (settings, sdk) = args.aws.load().await;
    let plan = RescanPlan {
        quarantine_bucket: args
            .quarantine_bucket
            .unwrap_or_else(|| args.uploads_bucket.clone()),
        uploads_bucket: args.uploads_bucket,
        processed_bucket: args.processed_bucket,
        quarantine_prefix: args.quarantine_prefix,
        clamd: args.clamd,
        options,
    };
    let rescan = match rescan_cli::build(&settings, &sdk, &plan) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rescan.run_until(shutdown_signal()).await {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string(&report).unwrap_or_else(|_| format!("{report:?}"))
            );
            if report.complete && report.errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
