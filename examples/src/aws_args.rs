//! Flags shared by the S3/SQS examples.

use upload_core::s3::{AwsSettings, SdkConfig};

/// Where S3 and SQS are: AWS by default (region and credentials from the
/// standard AWS chain: `AWS_REGION`, `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, `~/.aws/config`, instance
/// or container roles), or a local / S3-compatible server by endpoint URL.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// Endpoint URL of an S3/SQS-compatible server, e.g.
    /// http://127.0.0.1:5000 (moto) or http://127.0.0.1:9000 (MinIO). Unset
    /// for AWS.
    #[arg(long, env = "UPLOAD_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Path-style bucket URLs (http://host/bucket/key), which most local
    /// and S3-compatible servers need. On by default with --endpoint-url.
    #[arg(long, env = "UPLOAD_PATH_STYLE")]
    pub path_style: Option<bool>,
    /// Region, e.g. us-east-1; from the AWS chain when unset.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
}

impl AwsArgs {
    /// The settings these flags describe.
    pub fn settings(&self) -> AwsSettings {
        let mut s = AwsSettings::default()
            .with_force_path_style(self.path_style.unwrap_or(self.endpoint_url.is_some()));
        if let Some(e) = &self.endpoint_url {
            s = s.with_endpoint_url(e.clone());
        }
        if let Some(r) = &self.region {
            s = s.with_region(r.clone());
        }
        s
    }

    /// Loads the AWS configuration with these settings.
    pub async fn load(&self) -> (AwsSettings, SdkConfig) {
        let settings = self.settings();
        let sdk = settings.load().await;
        (settings, sdk)
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info` for our crates).
pub fn init_tracing() {
    init_tracing_with(false);
}

/// As [`init_tracing`]; with `span_timings`, each span also logs a line
/// when it closes, with its `time.busy` and `time.idle` (the worker's
/// per-stage timings: download, scan, decode, encode, upload).
pub fn init_tracing_with(span_timings: bool) {
    let spans = if span_timings {
        tracing_subscriber::fmt::format::FmtSpan::CLOSE
    } else {
        tracing_subscriber::fmt::format::FmtSpan::NONE
    };
    tracing_subscriber::fmt()
        .with_span_events(spans)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,upload_core=info,upload_pipeline=info,upload_scan=info,upload_presign=info,upload_server=info,upload_examples=info,presign_server=info,worker=info",
                )
            }),
        )
        .init();
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first (the library's).
pub use upload_pipeline::service::shutdown_signal;
