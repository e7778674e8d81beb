//! The upload worker as an AWS Lambda function on the `provided.al2023`
//! runtime (the binary is the package's `bootstrap`): each SQS-triggered
//! invocation is a batch of S3 event messages, handled as the `worker`
//! binary handles the messages it receives, answered with the IDs of the
//! failed ones (`batchItemFailures`). The event source mapping needs
//! `FunctionResponseTypes: ["ReportBatchItemFailures"]`; see
//! `upload_pipeline::lambda` for the queue settings.
//!
//! Configured by environment variables only (Lambda passes no arguments),
//! the `worker`'s: `UPLOAD_UPLOADS_BUCKET`, `UPLOAD_PROCESSED_BUCKET`,
//! `UPLOAD_CLAMD` (a clamd reachable from the function, e.g. in its VPC),
//! and optionally `UPLOAD_QUARANTINE_BUCKET`, `UPLOAD_QUARANTINE_PREFIX`,
//! `UPLOAD_MAX_BYTES`, `UPLOAD_MAX_IN_FLIGHT`, `UPLOAD_VARIANTS`,
//! `UPLOAD_ROUTE_VARIANTS`, `UPLOAD_SCAN_ONLY_ROUTES`,
//! `UPLOAD_DEAD_LETTER_QUEUE_URL`, `UPLOAD_LOG_SPANS`, and
//! `UPLOAD_ENDPOINT_URL` for a local S3/SQS server. Credentials and
//! region come from the function's role, as the runtime sets them.
//!
//! `scripts/package-lambda.sh` builds `target/lambda/lambda-worker/bootstrap.zip`.

use std::process::ExitCode;

use clap::Parser;
use upload_examples::aws_args::{AwsArgs, init_tracing_with};
use upload_examples::worker_cli::{self, ProcessingArgs};

/// Processes the S3 events of SQS-triggered Lambda invocations.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    processing: ProcessingArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing_with(args.processing.log_spans);
    let plan = match args.processing.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (settings, sdk) = args.aws.load().await;
    let worker = match worker_cli::build(&settings, &sdk, &plan) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(uploads = %plan.uploads_bucket, processed = %plan.processed_bucket, "Lambda worker started");
    match upload_pipeline::lambda::run(worker).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
