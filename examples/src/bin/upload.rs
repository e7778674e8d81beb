//! Uploads a file to S3 or an S3-compatible server: a presigned single PUT
//! below the multipart threshold, a multipart upload above it (parts in
//! parallel, each retried, resumable after Ctrl-C or a crash with
//! `--resume`). Prints one JSON line with the result.
//!
//! ```text
//! upload --endpoint-url http://127.0.0.1:5000 --bucket uploads photo.jpg
//! upload --bucket uploads --key backups/db.tar --resume db.tar
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use upload_core::s3::S3Storage;
use upload_core::{ChecksumAlgorithm, ObjectKey, PutOptions};
use upload_examples::aws_args::{AwsArgs, init_tracing, shutdown_signal};
use upload_multipart::{Error, MultipartUploader, UploadOptions, state_file_for};
use upload_presign::s3::SdkPresigner;

const MIB: u64 = 1024 * 1024;

/// The per-part checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Checksum {
    /// CRC-32C (`x-amz-checksum-crc32c`), cheap.
    Crc32c,
    /// SHA-256 (`x-amz-checksum-sha256`).
    Sha256,
    /// None of ours.
    None,
}

/// Uploads a file to an S3 bucket, in parts when it is large.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    aws: AwsArgs,
    /// The file to upload.
    file: PathBuf,
    /// Bucket to upload into.
    #[arg(long, env = "UPLOAD_BUCKET")]
    bucket: String,
    /// Object key; the file name when unset.
    #[arg(long)]
    key: Option<String>,
    /// Content type; guessed from the file extension when unset.
    #[arg(long)]
    content_type: Option<String>,
    /// Files of at least this many bytes go multipart; taken within 5 MiB
    /// (S3's smallest part) ..= 5 GiB (S3's largest single PUT).
    #[arg(long, default_value_t = 100 * MIB)]
    multipart_threshold: u64,
    /// Preferred part size in bytes (5 MiB..=5 GiB, a whole MiB).
    #[arg(long, default_value_t = upload_multipart::DEFAULT_UPLOAD_PART_SIZE)]
    part_size: u64,
    /// Parts in flight at once; memory held is at most this many parts.
    #[arg(long, default_value_t = upload_multipart::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Checksum sent with every part, verified by the server before it
    /// stores the part (`x-amz-checksum-*`).
    #[arg(long, value_enum, default_value_t = Checksum::Crc32c)]
    checksum: Checksum,
    /// Go on with an interrupted multipart upload of this file (its state
    /// is kept in FILE.upload-state.json): parts already stored are not
    /// sent again.
    #[arg(long)]
    resume: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args = Args::parse();
    match run(args).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(args: Args) -> Result<serde_json::Value, (u8, String)> {
    let fail = |e: &dyn std::fmt::Display| (1, e.to_string());
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|e| fail(&format!("{}: {e}", args.file.display())))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| fail(&format!("{}: {e}", args.file.display())))?
        .len();
    let key_text = match &args.key {
        Some(k) => k.clone(),
        None => args
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| fail(&"the file name is not UTF-8 text: give --key"))?,
    };
    let key = ObjectKey::new(key_text).map_err(|e| fail(&e))?;
    let content_type = args.content_type.clone().unwrap_or_else(|| {
        mime_guess::from_path(&args.file)
            .first_or_octet_stream()
            .essence_str()
            .to_owned()
    });
    let (settings, sdk) = args.aws.load().await;
    let client = settings.s3_client(&sdk);
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(size)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        )
        .expect("a valid template"),
    );

    // S3 takes up to 5 GiB in one PUT, and a multipart part is at least
    // 5 MiB: below that, one PUT whatever the threshold.
    let threshold = args.multipart_threshold.clamp(5 * MIB, 5 * 1024 * MIB);
    if size < threshold {
        // One presigned PUT: Content-Type and Content-Length are signed.
        let put = SdkPresigner::new(client)
            .presign_put(
                &args.bucket,
                &key,
                &content_type,
                Some(size),
                Duration::from_secs(900),
                SystemTime::now(),
            )
            .await
            .map_err(|e| fail(&e))?;
        let mut body = Vec::with_capacity(size as usize);
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::BufReader::new(file), &mut body)
            .await
            .map_err(|e| fail(&format!("{}: {e}", args.file.display())))?;
        if body.len() as u64 != size {
            return Err(fail(&format!(
                "{} changed size while it was read",
                args.file.display()
            )));
        }
        let mut req = reqwest::Client::new().put(put.url.as_str());
        for (name, value) in &put.headers {
            req = req.header(name, value);
        }
        let resp = req.body(body).send().await.map_err(|e| fail(&e))?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim_matches('"')
            .to_owned();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(fail(&format!("PUT answered {status}: {text}")));
        }
        bar.finish_and_clear();
        return Ok(serde_json::json!({
            "bucket": args.bucket, "key": key.as_str(), "size": size, "etag": etag,
            "upload": "put", "parts": 1,
        }));
    }

    let state = state_file_for(&args.file);
    if state.exists() && !args.resume {
        return Err(fail(&format!(
            "an interrupted upload of this file exists ({}): add --resume to go on, or delete that file to start over",
            state.display()
        )));
    }
    // Over TLS to a server that checks part checksums, parts go without a
    // payload hash (see S3Storage::with_unsigned_checksummed_parts).
    let store = Arc::new(
        S3Storage::new(client, args.bucket.clone())
            .map_err(|e| fail(&e))?
            .with_unsigned_checksummed_parts(settings.verifies_part_checksums()),
    );
    let options = UploadOptions::default()
        .with_part_size(args.part_size)
        .with_concurrency(args.concurrency)
        .with_checksum(match args.checksum {
            Checksum::Crc32c => Some(ChecksumAlgorithm::Crc32c),
            Checksum::Sha256 => Some(ChecksumAlgorithm::Sha256),
            Checksum::None => None,
        })
        .with_put_options(PutOptions::default().with_content_type(content_type));
    let mut parts = 0;
    let result = MultipartUploader::new(store, options)
        .upload_file(
            &key,
            &args.file,
            Some(&state),
            |p| {
                parts = p.parts_total;
                bar.set_position(p.bytes_done);
                bar.set_message(format!("part {}/{}", p.parts_done, p.parts_total));
            },
            shutdown_signal(),
        )
        .await;
    bar.finish_and_clear();
    match result {
        Ok(meta) => Ok(serde_json::json!({
            "bucket": args.bucket, "key": key.as_str(), "size": meta.size, "etag": meta.etag,
            "upload": "multipart", "parts": parts,
        })),
        Err(Error::Cancelled { upload_id }) => Err((
            130,
            format!(
                "interrupted; upload {upload_id} is kept: run again with --resume to send only the missing parts"
            ),
        )),
        Err(e) => Err(fail(&e)),
    }
}
