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

/// Logs to stderr, filtered by `RUST_LOG` (default `info` for our crates
/// and binaries, `warn` for the rest).
pub fn init_tracing() {
    init_tracing_with(false);
}

/// As [`init_tracing`]; with `span_timings`, each span also logs a line
/// when it closes, with its `time.busy` and `time.idle` (the worker's
/// per-stage timings: download, scan, decode, encode, upload).
pub fn init_tracing_with(span_timings: bool) {
    // No exporter: cannot fail.
    let _ = init_tracing_otlp(span_timings, None, "");
}

/// As [`init_tracing_with`], and with `otlp_endpoint` (a collector's
/// OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`) the spans are also
/// exported as OpenTelemetry spans of service `service_name`: one trace
/// per upload from the API's `presign` span to the worker's `notify`.
/// Call [`upload_pipeline::service::OtlpTracing::shutdown`] on the result
/// before exiting.
///
/// # Errors
/// The exporter's, as text (a malformed URL).
pub fn init_tracing_otlp(
    span_timings: bool,
    otlp_endpoint: Option<&str>,
    service_name: &str,
) -> Result<Option<upload_pipeline::service::OtlpTracing>, String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let spans = if span_timings {
        tracing_subscriber::fmt::format::FmtSpan::CLOSE
    } else {
        tracing_subscriber::fmt::format::FmtSpan::NONE
    };
    let otlp = match otlp_endpoint {
        Some(url) => Some(
            upload_pipeline::service::install_otlp(url, service_name).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_span_events(spans)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,upload_core=info,upload_pipeline=info,upload_scan=info,upload_presign=info,upload_server=info,upload_local=info,upload_object_store=info,upload_examples=info,presign_server=info,worker=info,upload_dev=info",
        )
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otlp.as_ref().map(upload_pipeline::service::otel_layer))
        .try_init();
    Ok(otlp)
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first (the library's).
pub use upload_pipeline::service::shutdown_signal;

/// A presigner over the AWS chain's credentials (environment, profile,
/// instance or container role), asked again before they expire, for the
/// endpoint clients reach: `public_endpoint_url` when clients see the
/// store under another address than this process does, else the endpoint
/// URL (path style as configured), else `https://s3.{region}.amazonaws.com`
/// (virtual-hosted style).
///
/// # Errors
/// No credentials provider in the chain, or an invalid endpoint URL.
pub fn refreshing_presigner(
    settings: &AwsSettings,
    sdk: &SdkConfig,
    public_endpoint_url: Option<&str>,
) -> Result<upload_presign::RefreshingPresigner, String> {
    use upload_presign::sigv4::AddressingStyle;
    let credentials = upload_presign::s3::SdkCredentialsProvider::from_sdk_config(sdk)
        .map_err(|e| e.to_string())?;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let (endpoint, style) = match public_endpoint_url.or(settings.endpoint_url.as_deref()) {
        Some(e) if settings.force_path_style => (e.to_owned(), AddressingStyle::Path),
        Some(e) => (e.to_owned(), AddressingStyle::VirtualHosted),
        None => (
            format!("https://s3.{region}.amazonaws.com"),
            AddressingStyle::VirtualHosted,
        ),
    };
    let url = upload_presign::Url::parse(&endpoint)
        .map_err(|e| format!("endpoint URL {endpoint}: {e}"))?;
    Ok(
        upload_presign::RefreshingPresigner::new(url, &region, credentials)
            .map_err(|e| e.to_string())?
            .with_style(style)
            .with_provider_timeout(upload_presign::refresh::DEFAULT_PROVIDER_TIMEOUT),
    )
}
