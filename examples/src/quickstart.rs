//! The quickstart flow: real files through presign → direct upload over
//! HTTP → ObjectCreated event → magic-byte check → scan → variants → URL.
//!
//! Everything runs in this process on the in-memory implementations, with a
//! local upload endpoint on 127.0.0.1 standing in for S3: the client side
//! only ever talks HTTP to presigned URLs, as it would to S3.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use upload_core::{
    CompletedPart, MemoryStorage, MultipartStore, ObjectKey, PutOptions, Storage, UploadPolicy,
    extension_for, upload_key,
};
use upload_multipart::{MemoryMultipartStore, PartPlan, presign_parts};
use upload_pipeline::{
    ImageCodec, Manifest, MemoryQueue, Outcome, StandardCodec, Worker, WorkerConfig,
    manifest::manifest_key,
};
use upload_presign::{
    Credentials, LocalEndpoint, Presigner, RunningEndpoint, Verifier, presign_upload,
};
use upload_scan::{MemoryScanner, Quarantine};

/// Bucket the clients upload into.
pub const UPLOADS_BUCKET: &str = "uploads";
/// Bucket the worker writes variants and manifests into.
pub const PROCESSED_BUCKET: &str = "processed";
/// Bucket infected uploads are moved into.
pub const QUARANTINE_BUCKET: &str = "quarantine";
/// Region the in-process endpoint signs for.
pub const REGION: &str = "us-east-1";

/// What went wrong in the quickstart.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An upload request failed after its retries.
    #[error("upload of {file} failed: {reason}")]
    Upload {
        /// The input file.
        file: String,
        /// The last error.
        reason: String,
    },
    /// Presigning failed.
    #[error(transparent)]
    Presign(#[from] upload_presign::Error),
    /// Multipart planning or store error.
    #[error(transparent)]
    Multipart(#[from] upload_multipart::Error),
    /// Storage error.
    #[error(transparent)]
    Core(#[from] upload_core::Error),
    /// Worker or queue error.
    #[error(transparent)]
    Pipeline(#[from] upload_pipeline::Error),
}

/// Quickstart settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files to upload, in order.
    pub files: Vec<PathBuf>,
    /// Directory the variants are written into, under their processed keys.
    pub out: PathBuf,
    /// Owner segment of the upload keys (`uploads/{owner}/{uuid}.{ext}`).
    pub owner: String,
    /// Files larger than this many bytes go multipart (default 8 MiB).
    pub multipart_threshold: u64,
    /// Preferred part size in bytes (default 8 MiB).
    pub part_size: u64,
    /// Parts in flight at once (default 4).
    pub concurrency: usize,
    /// Largest upload the policy allows, in bytes (default 64 MiB).
    pub max_bytes: u64,
}

impl Options {
    /// Defaults for `files` and `out`.
    pub fn new(files: Vec<PathBuf>, out: PathBuf) -> Self {
        Self {
            files,
            out,
            owner: "quickstart".into(),
            multipart_threshold: 8 * 1024 * 1024,
            part_size: upload_multipart::DEFAULT_PART_SIZE,
            concurrency: 4,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One line of quickstart output.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileReport {
    /// The input path as given.
    pub file: String,
    /// The object key picked server-side (absent when refused before upload).
    pub key: Option<String>,
    /// How it was uploaded: `put` or `multipart` (absent when refused).
    pub upload: Option<&'static str>,
    /// Parts sent (1 for a single PUT).
    pub parts: u32,
    /// Content type sniffed from magic bytes by the worker.
    pub sniffed: Option<String>,
    /// `clean`, `infected`, `unscannable` or `rejected`.
    pub verdict: &'static str,
    /// The signature, when infected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Why, when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Variants written.
    pub variants: Vec<VariantReport>,
    /// The original's upright size and placeholder (ThumbHash, dominant
    /// colour), as the manifest records them; for images with variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<upload_pipeline::manifest::ImageInfo>,
    /// A video's duration, size and codecs or a document's page count
    /// (with the poster's placeholder), as the manifest records them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<upload_pipeline::manifest::MediaInfo>,
    /// Where the manifest was written: `DIR/{manifest key}` (absent when
    /// refused before upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// A presigned GET of the largest variant (or of the original for a clean
    /// non-image), served by the in-process endpoint.
    pub url: Option<String>,
}

/// One variant in a [`FileReport`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VariantReport {
    /// Variant name.
    pub name: String,
    /// Key in the processed bucket.
    pub key: String,
    /// Content type.
    pub content_type: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size in bytes.
    pub bytes: u64,
    /// Where it was written under the output directory.
    pub path: String,
}

/// The in-process world: stores, queue, worker and endpoint.
#[derive(Debug)]
pub struct World {
    /// The uploads bucket (publishes ObjectCreated events into the queue).
    pub uploads: Arc<MemoryStorage>,
    /// The processed bucket.
    pub processed: Arc<MemoryStorage>,
    /// The quarantine bucket.
    pub quarantine: Arc<MemoryStorage>,
    /// Multipart uploads into `uploads`.
    pub multipart: Arc<MemoryMultipartStore>,
    /// The event queue.
    pub queue: Arc<MemoryQueue>,
    /// The worker.
    pub worker: Worker,
    /// Signs URLs for the endpoint.
    pub presigner: Presigner,
    /// The upload policy.
    pub policy: UploadPolicy,
    /// The running endpoint.
    pub endpoint: RunningEndpoint,
}

impl World {
    /// Builds the stores, queue, scanner, worker, and starts the endpoint on
    /// 127.0.0.1 (any free port).
    ///
    /// # Errors
    /// Binding the endpoint, or an invalid policy size.
    pub async fn start(max_bytes: u64) -> Result<Self, QuickstartError> {
        let dlq = Arc::new(MemoryQueue::new("upload-events-dlq"));
        let queue = Arc::new(
            MemoryQueue::new("upload-events")
                .with_visibility_timeout(Duration::from_secs(300))?
                .with_dead_letter_queue(3, dlq)?,
        );
        let uploads = Arc::new(MemoryStorage::new(UPLOADS_BUCKET)?.with_events(queue.clone()));
        let processed = Arc::new(MemoryStorage::new(PROCESSED_BUCKET)?);
        let quarantine = Arc::new(MemoryStorage::new(QUARANTINE_BUCKET)?);
        let multipart = Arc::new(MemoryMultipartStore::new(uploads.clone()));
        let policy = UploadPolicy::media(max_bytes)?;
        let codec: Arc<dyn ImageCodec> = Arc::new(StandardCodec::default());
        let worker = Worker::new(
            queue.clone(),
            uploads.clone(),
            processed.clone(),
            Arc::new(MemoryScanner::new()),
            codec.clone(),
            Quarantine::new(quarantine.clone(), ""),
            media_processors(
                WorkerConfig::new(policy.clone()).with_max_in_flight(2),
                &codec,
            ),
        );
        let creds = Credentials::random();
        let endpoint = LocalEndpoint::new(Verifier::new(REGION, [creds.clone()]))
            .with_bucket(uploads.clone(), Some(multipart.clone()))
            .with_bucket(processed.clone(), None)
            // No request body larger than the policy allows is ever held.
            .with_max_object_bytes(max_bytes)
            .bind(([127, 0, 0, 1], 0).into())
            .await
            .map_err(|source| QuickstartError::Io {
                path: "127.0.0.1:0".into(),
                source,
            })?;
        let presigner = Presigner::new(endpoint.url(), REGION, creds)?;
        Ok(Self {
            uploads,
            processed,
            quarantine,
            multipart,
            queue,
            worker,
            presigner,
            policy,
            endpoint,
        })
    }
}

/// The PDF and video processors of the features `pdf` and `video` (each
/// needs its Debian package at run time: `poppler-utils`, `ffmpeg`); without
/// them PDFs and videos are scanned and kept without variants, and HEIC,
/// AVIF and JPEG XL photos without `heif` / `jxl` are rejected as
/// unsupported, naming the feature.
fn media_processors(config: WorkerConfig, codec: &Arc<dyn ImageCodec>) -> WorkerConfig {
    #[cfg(feature = "pdf")]
    let config = config.with_processor(Arc::new(upload_pipeline::media::PdfProcessor::new(
        codec.clone(),
    )));
    #[cfg(feature = "video")]
    let config = config.with_processor(Arc::new(upload_pipeline::media::VideoProcessor::new(
        codec.clone(),
    )));
    let _ = codec;
    config
}

struct Uploaded {
    key: ObjectKey,
    method: &'static str,
    parts: u32,
}

/// Runs the quickstart on `opts.files`, returning one report per file in
/// input order. `world` is left running (so its URLs work) until dropped.
///
/// # Errors
/// I/O errors on inputs or outputs, upload failures after retries.
pub async fn run(world: &World, opts: &Options) -> Result<Vec<FileReport>, QuickstartError> {
    let http = reqwest::Client::new();
    let mut uploaded: Vec<Result<Uploaded, String>> = Vec::new();
    for file in &opts.files {
        uploaded.push(upload_one(world, &http, opts, file).await?);
    }
    let stats = world.worker.run_until_idle().await?;
    tracing::info!(?stats, "worker idle");

    let mut reports = Vec::new();
    for (file, up) in opts.files.iter().zip(uploaded) {
        let file_s = file.display().to_string();
        let up = match up {
            Ok(u) => u,
            Err(reason) => {
                reports.push(FileReport {
                    file: file_s,
                    key: None,
                    upload: None,
                    parts: 0,
                    sniffed: None,
                    verdict: "rejected",
                    signature: None,
                    reason: Some(reason),
                    variants: Vec::new(),
                    image: None,
                    media: None,
                    manifest: None,
                    url: None,
                });
                continue;
            }
        };
        let mkey = manifest_key(&up.key)?;
        let manifest: Manifest = {
            let got = world.processed.get(&mkey).await?;
            // The manifest beside its variants, byte for byte as stored.
            write_file(&opts.out.join(mkey.as_str()), &got.body).await?;
            serde_json::from_slice(&got.body).map_err(|e| QuickstartError::Upload {
                file: file_s.clone(),
                reason: format!("manifest unreadable: {e}"),
            })?
        };
        let mut variants = Vec::new();
        for v in &manifest.variants {
            let url = world.presigner.presign_get(
                PROCESSED_BUCKET,
                &v.key,
                Duration::from_secs(3600),
                SystemTime::now(),
            )?;
            let body = fetch(&http, url.url.as_str(), &file_s).await?;
            let path = opts.out.join(v.key.as_str());
            write_file(&path, &body).await?;
            variants.push(VariantReport {
                name: v.name.clone(),
                key: v.key.to_string(),
                content_type: v.content_type.clone(),
                width: v.width,
                height: v.height,
                bytes: v.bytes,
                path: path.display().to_string(),
            });
        }
        let url = match (manifest.verdict, manifest.variants.last()) {
            (Outcome::Clean, Some(v)) => Some(
                world
                    .presigner
                    .presign_get(
                        PROCESSED_BUCKET,
                        &v.key,
                        Duration::from_secs(3600),
                        SystemTime::now(),
                    )?
                    .url
                    .to_string(),
            ),
            (Outcome::Clean, None) => Some(
                world
                    .presigner
                    .presign_get(
                        UPLOADS_BUCKET,
                        &up.key,
                        Duration::from_secs(3600),
                        SystemTime::now(),
                    )?
                    .url
                    .to_string(),
            ),
            _ => None,
        };
        reports.push(FileReport {
            file: file_s,
            key: Some(up.key.to_string()),
            upload: Some(up.method),
            parts: up.parts,
            sniffed: manifest.source.sniffed.clone(),
            verdict: manifest.verdict.as_str(),
            signature: manifest.signature.clone(),
            reason: manifest.reason.clone(),
            variants,
            image: manifest.image.clone(),
            media: manifest.media.clone(),
            manifest: Some(opts.out.join(mkey.as_str()).display().to_string()),
            url,
        });
    }
    Ok(reports)
}

/// Asks for an upload slot like a client would (declared type from the
/// extension, size from the file), then uploads. `Ok(Err(reason))` when
/// the backend refuses to presign.
async fn upload_one(
    world: &World,
    http: &reqwest::Client,
    opts: &Options,
    file: &Path,
) -> Result<Result<Uploaded, String>, QuickstartError> {
    let io = |source| QuickstartError::Io {
        path: file.to_owned(),
        source,
    };
    let size = tokio::fs::metadata(file).await.map_err(io)?.len();
    let declared = mime_guess::from_path(file)
        .first_raw()
        .unwrap_or("application/octet-stream");
    if let Err(e) = world.policy.check(declared, size) {
        return Ok(Err(e.to_string()));
    }
    let ext = extension_for(declared).unwrap_or("bin");
    let key = upload_key(&opts.owner, ext)?;
    let file_s = file.display().to_string();
    if size <= opts.multipart_threshold {
        let req = presign_upload(
            &world.presigner,
            &world.policy,
            UPLOADS_BUCKET,
            &key,
            declared,
            size,
            SystemTime::now(),
        )?;
        let body = tokio::fs::read(file).await.map_err(io)?;
        let mut r = http.put(req.url.as_str());
        // Every signed header goes out as signed, Content-Length included:
        // reqwest would leave it out for an empty body.
        for (n, v) in &req.headers {
            r = r.header(n.as_str(), v.as_str());
        }
        send_with_retry(r, bytes::Bytes::from(body), &file_s).await?;
        return Ok(Ok(Uploaded {
            key,
            method: "put",
            parts: 1,
        }));
    }

    let plan = PartPlan::new(size, opts.part_size)?;
    let upload_id = world
        .multipart
        .create_multipart_upload(&key, PutOptions::default().with_content_type(declared))
        .await?;
    let urls = presign_parts(
        &world.presigner,
        UPLOADS_BUCKET,
        &key,
        &upload_id,
        1..=plan.part_count(),
        world.policy.expiry(),
        SystemTime::now(),
    )?;
    // Parts in parallel, each read from the file only when its turn comes,
    // so at most `concurrency` parts are in memory.
    let results: Vec<Result<CompletedPart, QuickstartError>> =
        futures::stream::iter(plan.parts().zip(urls))
            .map(|(part, url)| {
                let file_s = file_s.clone();
                async move {
                    let mut f = tokio::fs::File::open(file).await.map_err(io)?;
                    f.seek(std::io::SeekFrom::Start(part.offset))
                        .await
                        .map_err(io)?;
                    let mut buf = vec![0u8; usize::try_from(part.len).unwrap_or(usize::MAX)];
                    f.read_exact(&mut buf).await.map_err(io)?;
                    let etag =
                        send_with_retry(http.put(url.request.url.as_str()), buf.into(), &file_s)
                            .await?;
                    Ok(CompletedPart {
                        part_number: part.number,
                        etag,
                        checksum: None,
                    })
                }
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    let mut done = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(p) => done.push(p),
            Err(e) => {
                world
                    .multipart
                    .abort_multipart_upload(&key, &upload_id)
                    .await?;
                return Err(e);
            }
        }
    }
    done.sort_by_key(|p| p.part_number);
    world
        .multipart
        .complete_multipart_upload_create_only(&key, &upload_id, &done)
        .await?;
    Ok(Ok(Uploaded {
        key,
        method: "multipart",
        parts: plan.part_count(),
    }))
}

/// Sends a PUT, retrying up to 3 times with backoff on connection errors and
/// 5xx; returns the ETag.
async fn send_with_retry(
    req: reqwest::RequestBuilder,
    body: bytes::Bytes,
    file: &str,
) -> Result<String, QuickstartError> {
    let mut last = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
        }
        let Some(r) = req.try_clone() else { break };
        match r.body(body.clone()).send().await {
            Ok(resp) if resp.status().is_success() => {
                return Ok(resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned());
            }
            Ok(resp) if resp.status().is_server_error() => {
                last = format!("HTTP {}", resp.status());
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                return Err(QuickstartError::Upload {
                    file: file.to_owned(),
                    reason: format!("HTTP {status}: {text}"),
                });
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(QuickstartError::Upload {
        file: file.to_owned(),
        reason: last,
    })
}

async fn fetch(
    http: &reqwest::Client,
    url: &str,
    file: &str,
) -> Result<bytes::Bytes, QuickstartError> {
    let err = |reason: String| QuickstartError::Upload {
        file: file.to_owned(),
        reason,
    };
    let resp = http.get(url).send().await.map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("GET variant: HTTP {}", resp.status())));
    }
    resp.bytes().await.map_err(|e| err(e.to_string()))
}

async fn write_file(path: &Path, body: &[u8]) -> Result<(), QuickstartError> {
    let io = |source| QuickstartError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    tokio::fs::write(path, body).await.map_err(io)
}

/// The photos of `samples/testdata` the quickstart carries beside
/// `samples/photos` and `samples/media`: an iPhone-style HEIC, an AVIF
/// and a JPEG XL.
pub const BUNDLED_TESTDATA: [&str; 3] = [
    "photo_example_1280x854.heic",
    "photo_example_800x533.avif",
    "derived_hopper_lossy_d1.jxl",
];

/// The bundled samples (licences in `samples/MANIFEST.tsv`): every file of
/// `samples/photos` (JPEG, PNG, a PDF) and of `samples/media` (MP4, WebM,
/// PDFs, one of them encrypted), each folder sorted by name, then
/// [`BUNDLED_TESTDATA`].
///
/// # Errors
/// If a directory or file cannot be read.
pub fn bundled_samples() -> std::io::Result<Vec<PathBuf>> {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .canonicalize()?;
    let mut all = Vec::new();
    for folder in ["photos", "media"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(samples.join(folder))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        all.extend(files);
    }
    for name in BUNDLED_TESTDATA {
        all.push(samples.join("testdata").join(name).canonicalize()?);
    }
    Ok(all)
}
