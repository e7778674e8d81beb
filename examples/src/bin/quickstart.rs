//! Carries files through the whole direct-upload flow in one process and
//! prints one JSON line per file.
//!
//! ```text
//! scripts/quickstart.sh --out DIR [FILE...]   # installs the media packages, then:
//! cargo run --release -p upload-examples --features media --bin quickstart -- --out DIR [FILE...]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use upload_examples::quickstart::{self, Options, World};

/// Presign → direct upload over HTTP → ObjectCreated event → magic-byte
/// check → virus scan → image variants → served URL, in-process.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory to write the variants into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Files to upload; the bundled samples (photos, HEIC, AVIF, JPEG XL, videos, PDFs) when none is given.
    files: Vec<PathBuf>,
    /// Files above this many bytes go multipart.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    multipart_threshold: u64,
    /// Parts uploaded in parallel.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Keep the local endpoint running after the run, so the printed URLs
    /// work, until Ctrl-C.
    #[arg(long)]
    serve: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let files = if args.files.is_empty() {
        match quickstart::bundled_samples() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot read the bundled samples: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        args.files
    };
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        eprintln!("error: {} is not a readable file", missing.display());
        return ExitCode::from(2);
    }
    let mut opts = Options::new(files, args.out);
    opts.multipart_threshold = args.multipart_threshold;
    opts.concurrency = args.concurrency;
    let world = match World::start(opts.max_bytes).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match quickstart::run(&world, &opts).await {
        Ok(reports) => {
            for r in &reports {
                println!("{}", serde_json::to_string(r).expect("reports serialize"));
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if args.serve {
        eprintln!("serving on {} until Ctrl-C", world.endpoint.url());
        let _ = tokio::signal::ctrl_c().await;
    }
    ExitCode::SUCCESS
}
