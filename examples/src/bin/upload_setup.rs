//! Creates (or brings up to date) the buckets, the event queue with its
//! dead-letter queue, the uploads bucket's notifications, CORS rule and
//! lifecycle rule, optionally versioning, and the uploads bucket's policy
//! (reads of objects not scanned clean denied to all but the worker;
//! optionally, create-only uploads required). Idempotent. Prints
//! `{"queue_url", "dead_letter_queue_url"}`; `upload-doctor` checks the
//! result.
//!
//! ```text
//! upload-setup --endpoint-url http://127.0.0.1:5000 --uploads-bucket uploads \
//!     --processed-bucket processed --queue-name upload-events --cors-origin http://127.0.0.1:8080 \
//!     --worker-principal-arn arn:aws:iam::123456789012:role/upload-worker
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use upload_examples::aws_args::{AwsArgs, init_tracing};
use upload_examples::setup::{self, SetupPlan};

/// Creates the buckets, queues and bucket configuration direct uploads need.
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
    /// Event queue name; the dead-letter queue is NAME-dlq.
    #[arg(long, default_value = "upload-events")]
    queue_name: String,
    /// Receives before a message goes to the dead-letter queue.
    #[arg(long, default_value_t = 5)]
    max_receive_count: u32,
    /// Queue visibility timeout in seconds.
    #[arg(long, default_value_t = 120)]
    visibility_timeout: u64,
    /// Only keys under this prefix notify the queue.
    #[arg(long, default_value = "uploads/")]
    prefix: String,
    /// Browser origin allowed to upload (repeatable), e.g. http://127.0.0.1:8080.
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Abort incomplete multipart uploads after this many days.
    #[arg(long, default_value_t = 7)]
    abort_incomplete_days: u16,
    /// Turn versioning on for the uploads bucket: events then name the
    /// exact version the worker reads, tags and quarantines.
    #[arg(long)]
    versioning: bool,
    /// Principal ARN exempt from the deny-unscanned-reads bucket policy
    /// (repeatable): the worker's role, which reads uploads before they are
    /// scanned. Required unless --allow-unscanned-reads.
    #[arg(long = "worker-principal-arn", env = "UPLOAD_WORKER_PRINCIPAL_ARN")]
    worker_principal_arns: Vec<String>,
    /// Do not apply the bucket policy that denies reads of uploads not
    /// scanned clean (applied by default).
    #[arg(long)]
    allow_unscanned_reads: bool,
    /// Also deny uploads under the prefix that are not create-only
    /// (If-None-Match: *), so no upload replaces an original. Presigned
    /// POST forms cannot be create-only: S3 then refuses them.
    #[arg(long)]
    require_create_only_uploads: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args = Args::parse();
    let (settings, sdk) = args.aws.load().await;
    let plan = SetupPlan {
        uploads_bucket: args.uploads_bucket,
        processed_bucket: args.processed_bucket,
        queue_name: args.queue_name,
        max_receive_count: args.max_receive_count,
        visibility_timeout: Duration::from_secs(args.visibility_timeout),
        prefix: args.prefix,
        cors_origins: args.cors_origins,
        abort_incomplete_days: args.abort_incomplete_days,
        enable_versioning: args.versioning,
        deny_unscanned_reads: !args.allow_unscanned_reads,
        worker_principal_arns: args.worker_principal_arns,
        require_create_only_uploads: args.require_create_only_uploads,
    };
    match setup::run(&settings, &sdk, &plan).await {
        Ok(r) => {
            println!(
                "{}",
                serde_json::to_string(&r).expect("plain struct serialises")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
