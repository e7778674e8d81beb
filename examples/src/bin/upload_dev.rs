//! The whole upload architecture on one machine, keeping its data in one
//! directory: local disk buckets behind the local upload endpoint, a
//! durable queue on disk, the worker in-process, the upload API and the
//! browser demo page (`upload_local::LocalMode`).
//!
//! ```text
//! upload-dev --data ./data [--listen 127.0.0.1:8080] [--endpoint-listen 127.0.0.1:8081] [--clamd 127.0.0.1:3310]
//! ```
//!
//! The first stdout line is JSON naming the URLs (`api`, `endpoint`,
//! `demo`, `data`), for scripts; the same goes to stderr for people.
//! Ctrl-C or SIGTERM stops it cleanly; a kill loses nothing (see the
//! README's "Local mode").
//!
//! The API's owner is the `x-owner` header (`DevHeaderAuthorizer`): for
//! local development only; the servers listen on loopback addresses only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use upload_local::{LocalConfig, LocalMode, ScannerChoice};

/// Runs the upload API, the local upload endpoint, the worker and the demo
/// page on 127.0.0.1, with every byte and event kept under --data.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Data directory (created if missing): buckets, queue, keys.
    #[arg(long, env = "UPLOAD_DEV_DATA")]
    data: PathBuf,
    /// Address of the upload API and the demo page.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the local upload endpoint (where presigned URLs point;
    /// keep it fixed so URLs outlive a restart).
    #[arg(long, default_value = "127.0.0.1:8081")]
    endpoint_listen: SocketAddr,
    /// clamd's `host:port` or Unix socket path; when absent or not
    /// answering, the in-memory scanner runs (nothing is really scanned).
    #[arg(long, env = "UPLOAD_DEV_CLAMD")]
    clamd: Option<String>,
    /// Do not run the worker: events wait in the queue file for the next
    /// start without this flag.
    #[arg(long)]
    no_worker: bool,
    /// Largest upload accepted, in bytes.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_bytes: u64,
    /// Uploads above this many bytes go multipart.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    multipart_threshold: u64,
    /// Preferred multipart part size in bytes (whole MiB, 5 MiB..=5 GiB).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    part_size: u64,
    /// Directory of the demo's npm packages (Uppy's bundles, for
    /// `/uppy.html`); our own page `/` needs none.
    #[arg(long, env = "UPLOAD_DEMO_WEB_DIR", default_value = upload_examples::demo::WEB_DIR)]
    web_dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    upload_examples::aws_args::init_tracing();
    let args = Args::parse();
    let config = LocalConfig::default()
        .with_listen(args.listen)
        .with_endpoint_listen(args.endpoint_listen)
        .with_clamd(args.clamd)
        .with_worker(!args.no_worker)
        .with_max_bytes(args.max_bytes)
        .with_multipart_threshold(args.multipart_threshold)
        .with_part_size(args.part_size)
        .with_extra_routes(upload_examples::demo::routes(&args.web_dir));
    let mode = match LocalMode::open(&args.data, config).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let api = mode.api_url();
    println!(
        "{}",
        serde_json::json!({
            "api": api.as_str(),
            "endpoint": mode.endpoint_url().as_str(),
            "demo": api.as_str(),
            "data": args.data.display().to_string(),
        })
    );
    eprintln!("upload-dev: data in {}", args.data.display());
    eprintln!("  demo page     {api}");
    eprintln!("  upload API    {api} (owner: the x-owner header; dev only)");
    eprintln!("  endpoint (S3) {}", mode.endpoint_url());
    match mode.scanner() {
        ScannerChoice::Clamd { address, version } => {
            eprintln!("  scanner       clamd at {address} ({version})")
        }
        ScannerChoice::Memory { reason } => {
            eprintln!("  scanner       IN-MEMORY, NOTHING IS REALLY SCANNED ({reason})")
        }
    }
    let r = mode.reconciled();
    if r.sent > 0 {
        eprintln!(
            "  reconciliation: {} unprocessed upload(s) queued again",
            r.sent
        );
    }
    eprintln!("Ctrl-C stops it.");
    upload_pipeline::service::shutdown_signal().await;
    eprintln!("stopping...");
    match mode.shutdown().await {
        Ok(stats) => {
            tracing::info!(?stats, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
