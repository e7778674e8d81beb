//! The backend's upload API (the `upload_server` crate's router): hands
//! out presigned PUTs and multipart sessions for the uploads bucket under
//! an upload policy, and reports what the worker made of each upload.
//!
//! ```text
//! presign-server --endpoint-url http://127.0.0.1:5000 --uploads-bucket uploads \
//!     --processed-bucket processed --listen 127.0.0.1:8080 [--demo]
//! ```
//!
//! With `--demo` it also serves the browser demo pages
//! (`upload_examples::demo`); `scripts/demo.sh` starts everything they
//! need.
//!
//! The owner of each request is the `x-owner` header
//! ([`DevHeaderAuthorizer`]: for local development only; an app mounts
//! `upload_server` with its own authorizer).
//!
//! URLs are signed with the credentials of the AWS chain
//! (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, profile,
//! role), by our own SigV4 presigner, for the endpoint clients reach:
//! `--public-endpoint-url` when clients see the store under another address
//! than the server does, else the endpoint URL, else
//! `https://s3.{region}.amazonaws.com` (virtual-hosted style).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use upload_core::UploadPolicy;
use upload_core::s3::S3Storage;
use upload_examples::aws_args::{
    AwsArgs, init_tracing_otlp, refreshing_presigner, shutdown_signal,
};
use upload_examples::dev_auth::DevHeaderAuthorizer;
use upload_presign::PresignerSource;
use upload_server::{AppState, ServerConfig};

/// Presigned-upload API for browsers and other clients.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    aws: AwsArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bucket clients upload into.
    #[arg(long, env = "UPLOAD_UPLOADS_BUCKET")]
    uploads_bucket: String,
    /// Bucket of variants and manifests.
    #[arg(long, env = "UPLOAD_PROCESSED_BUCKET")]
    processed_bucket: String,
    /// Endpoint URL as clients reach it, when it differs from --endpoint-url.
    #[arg(long, env = "UPLOAD_PUBLIC_ENDPOINT_URL")]
    public_endpoint_url: Option<String>,
    /// Largest upload accepted, in bytes.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_bytes: u64,
    /// Uploads above this many bytes go multipart.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    multipart_threshold: u64,
    /// 64 hex digits keying the multipart session tokens; random per
    /// process when unset (a restart then ends open multipart sessions).
    #[arg(long, env = "UPLOAD_SESSION_SECRET")]
    session_secret: Option<String>,
    /// How long a multipart session token is accepted, in seconds.
    #[arg(long, default_value_t = 24 * 60 * 60)]
    session_lifetime_seconds: u64,
    /// Preferred multipart part size in bytes (5 MiB..=5 GiB, whole MiB).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    part_size: u64,
    /// Lifetime of presigned upload URLs, in seconds (1..=604800).
    #[arg(long, default_value_t = 300)]
    expiry_seconds: u64,
    /// Also serve the browser demo pages: `/` (our page) and `/uppy.html`
    /// (Uppy). The bucket's CORS rule must allow this server's origin
    /// (`upload-setup --cors-origin http://LISTEN`).
    #[arg(long)]
    demo: bool,
    /// Also serve GET /metrics (Prometheus text format: presigned URLs
    /// issued by route and kind, multipart uploads created) on this
    /// server's address.
    #[arg(long)]
    metrics: bool,
    /// Export spans over OTLP/HTTP to this collector (e.g.
    /// http://127.0.0.1:4318): each upload's `presign` span starts the
    /// trace the worker continues.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Directory of the demo's npm packages (`npm ci` there installs Uppy,
    /// served under `/vendor/uppy/`); by default the `examples/web` of the
    /// source tree the binary was built from, so a copied or `cargo
    /// install`ed binary needs this flag (or `UPLOAD_DEMO_WEB_DIR`).
    #[arg(long, env = "UPLOAD_DEMO_WEB_DIR", default_value = upload_examples::demo::WEB_DIR)]
    web_dir: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let otlp = match init_tracing_otlp(false, args.otlp_endpoint.as_deref(), "upload-api") {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = serve(args).await;
    if let Some(o) = otlp
        && let Err(e) = o.shutdown()
    {
        eprintln!("warning: {e}");
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let policy = UploadPolicy::images_and_pdf(args.max_bytes)
        .and_then(|p| p.with_expiry(Duration::from_secs(args.expiry_seconds)))
        .map_err(|e| e.to_string())?;
    let (settings, sdk) = args.aws.load().await;
    let presigner: Arc<dyn PresignerSource> = Arc::new(refreshing_presigner(
        &settings,
        &sdk,
        args.public_endpoint_url.as_deref(),
    )?);
    // Fail at start-up, not on the first request, when there are none.
    presigner
        .presigner(policy.expiry())
        .await
        .map_err(|e| format!("signing credentials: {e}"))?;
    let s3 = settings.s3_client(&sdk);
    let uploads = S3Storage::new(s3.clone(), &args.uploads_bucket).map_err(|e| e.to_string())?;
    let processed = S3Storage::new(s3, &args.processed_bucket).map_err(|e| e.to_string())?;
    let mut config = ServerConfig::new(policy);
    config.multipart_threshold = args.multipart_threshold;
    config.part_size = args.part_size;
    config.session_lifetime = Duration::from_secs(args.session_lifetime_seconds);
    let session_secret: [u8; 32] = match &args.session_secret {
        Some(h) => hex::decode(h)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("--session-secret must be 64 hex digits")?,
        None => {
            let mut k = [0u8; 32];
            k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            k
        }
    };
    let state = AppState {
        session_secret: Arc::new(session_secret),
        presigner: presigner.clone(),
        uploads: Arc::new(uploads),
        processed: Arc::new(processed),
        processed_presigner: presigner,
        config: Arc::new(config),
        // Local development only: the owner is whatever `x-owner` says.
        authorizer: Arc::new(DevHeaderAuthorizer),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // The first stdout line tells scripts where the server is.
    println!(
        "{}",
        serde_json::json!({"listening": format!("http://{addr}")})
    );
    tracing::info!(%addr, uploads = %args.uploads_bucket, "presign server listening");
    let mut app = state.router();
    if args.metrics {
        let handle = upload_pipeline::service::install_prometheus().map_err(|e| e.to_string())?;
        upload_server::metrics::describe();
        app = app.merge(upload_pipeline::service::metrics_router(handle));
    }
    if args.demo {
        if !upload_examples::demo::uppy_dist(&args.web_dir).is_dir() {
            tracing::warn!(web_dir = %args.web_dir.display(), "Uppy's bundle is missing (run `npm ci` there, or give the folder that has it with --web-dir or UPLOAD_DEMO_WEB_DIR); /uppy.html will not load");
        }
        if !upload_examples::demo::uppy6_dist(&args.web_dir).is_dir() {
            tracing::warn!(web_dir = %args.web_dir.display(), "Uppy 6's bundle is missing (run `npm ci && npm run build` in its uppy6 folder); /uppy6.html will not load");
        }
        app = upload_examples::demo::routes(&args.web_dir).merge(app);
        tracing::info!(
            "demo pages on http://{addr}/, http://{addr}/uppy.html and http://{addr}/uppy6.html"
        );
    }
    // Header-read and body-idle timeouts: a client that never finishes
    // its headers or stops sending its body does not hold a connection.
    upload_presign::serve(
        listener,
        app,
        upload_presign::ServerTimeouts::default(),
        shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())
}
