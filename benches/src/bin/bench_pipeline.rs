//! `bench-pipeline`: real photos through the whole flow, ObjectCreated →
//! worker → variants and manifest, and what the worker costs on top of the
//! image codec's own work.
//!
//! 1. **In-memory backends** (the goal): every JPEG of `samples/photos`
//!    (five real photos, 2560 × 1600 to 6028 × 3391, one EXIF-rotated),
//!    cycled to `--photos N` uploads per round, are written to a
//!    `MemoryStorage` uploads bucket whose writes send their ObjectCreated
//!    events to a `MemoryQueue`; a [`Worker`] (`MemoryScanner`, the
//!    `StandardCodec` with libjpeg-turbo, the two default variants, one
//!    upload in flight) drains the queue. Timed: its CPU time (the whole
//!    process, every thread: `CLOCK_PROCESS_CPUTIME_ID`) for the drain.
//!    Baseline in the same run: the codec alone on the same photos, the
//!    work the worker cannot avoid: [`ImageCodec::decode_for`] under the
//!    worker's [`DecodeLimits`], [`ImageCodec::render`] of each variant and
//!    the [`Placeholder`]. Rounds alternate between the two.
//!    `photos_per_sec_per_core` = uploads / worker CPU seconds;
//!    `overhead_vs_codec` = worker CPU / codec CPU − 1 (median of the
//!    rounds' ratios; goal ≤ 0.10). Everything the worker adds counts:
//!    receive, parse, sniff, the scan's pass over the bytes, the polyglot
//!    check, MD5 ETags of the in-memory writes, tags, manifest JSON, delete.
//! 2. **moto + clamd** (reported, no goal): the same photos through the
//!    deployment `upload_pipeline::deploy::setup` makes on moto (uploads
//!    bucket → SQS notification → queue with its dead-letter queue), the
//!    worker reading SQS and scanning with clamd. moto and clamd come from
//!    `UPLOAD_SDK_MOTO_ENDPOINT` / `UPLOAD_SDK_CLAMD_TCP` or are started by
//!    `scripts/moto.sh` / `scripts/clamd.sh` (which install them). Wall
//!    time from the first upload to the last manifest; `--no-moto` skips
//!    it.
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-pipeline [--photos 20] [--rounds 5] [--no-moto]
//! ```
//!
//! Last line:
//! `RESULT photos_per_sec_per_core=X overhead_vs_codec=Y codec_photos_per_sec=Z moto_clamd_photos_per_sec=W ...`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use upload_benches::{cpu_seconds, median, servers};
use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{Bytes, MemoryStorage, ObjectKey, PutOptions, Storage, UploadPolicy};
use upload_pipeline::deploy::{SetupPlan, setup};
use upload_pipeline::manifest::manifest_key;
use upload_pipeline::sqs::{SqsQueue, sqs_client};
use upload_pipeline::{
    DecodeLimits, ImageCodec, Manifest, MemoryQueue, Outcome, Placeholder, ReceiveOptions,
    StandardCodec, VariantSpec, Worker, WorkerConfig,
};
use upload_scan::{ClamdAddress, ClamdConfig, ClamdScanner, MemoryScanner, Quarantine};

/// The largest bundled photo is 8.5 MB.
const MAX_UPLOAD: u64 = 32 << 20;

struct Args {
    photos: usize,
    rounds: usize,
    moto: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut out = Args {
        photos: 20,
        rounds: 5,
        moto: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| format!("{name} takes a positive number"))
        };
        match a.as_str() {
            "--photos" => out.photos = number("--photos")?,
            "--rounds" => out.rounds = number("--rounds")?,
            "--no-moto" => out.moto = false,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: bench-pipeline [--photos N] [--rounds R] [--no-moto]"
                ));
            }
        }
    }
    Ok(out)
}

/// The bundled JPEGs, by name.
fn photos() -> Result<Vec<(String, Bytes)>, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/photos");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg"))
        })
        .collect();
    paths.sort();
    for p in paths {
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("photo.jpg")
            .to_owned();
        out.push((name, Bytes::from(bytes)));
    }
    if out.is_empty() {
        return Err(format!("no JPEG in {}", dir.display()));
    }
    Ok(out)
}

/// `n` uploads: the photos cycled, each under its own key.
fn uploads(photos: &[(String, Bytes)], n: usize) -> Vec<(ObjectKey, Bytes)> {
    (0..n)
        .map(|i| {
            let (name, bytes) = &photos[i % photos.len()];
            let key = ObjectKey::new(format!("uploads/p/{i}-{name}")).expect("valid key");
            (key, bytes.clone())
        })
        .collect()
}

fn policy() -> UploadPolicy {
    UploadPolicy::images_and_pdf(MAX_UPLOAD).expect("valid policy")
}

/// CPU seconds of the codec's own work on `uploads`: decode for the
/// default variants, render each, the placeholder.
/// Also returns the placeholder's share of it.
fn codec_round(
    codec: &StandardCodec,
    uploads: &[(ObjectKey, Bytes)],
) -> Result<(f64, f64), String> {
    let specs = VariantSpec::defaults();
    let limits = DecodeLimits::default();
    let started = cpu_seconds();
    let mut placeholder = 0.0;
    for (key, bytes) in uploads {
        let img = codec
            .decode_for(bytes, &limits, &specs)
            .map_err(|e| format!("{key}: {e}"))?;
        for s in &specs {
            let v = codec.render(&img, s).map_err(|e| format!("{key}: {e}"))?;
            std::hint::black_box(v);
        }
        let p = cpu_seconds();
        std::hint::black_box(Placeholder::from_image(&img).ok());
        placeholder += cpu_seconds() - p;
    }
    Ok((cpu_seconds() - started, placeholder))
}

/// CPU seconds of a worker draining the ObjectCreated events of `uploads`
/// on in-memory backends (writes done before the clock starts).
fn worker_round(
    rt: &tokio::runtime::Runtime,
    uploads: &[(ObjectKey, Bytes)],
) -> Result<f64, String> {
    rt.block_on(async {
        let queue = Arc::new(MemoryQueue::new("events"));
        let store = Arc::new(
            MemoryStorage::new("uploads")
                .map_err(|e| e.to_string())?
                .with_versioning()
                .with_events(queue.clone()),
        );
        let processed = Arc::new(MemoryStorage::new("processed").map_err(|e| e.to_string())?);
        put_photos(store.as_ref(), uploads).await?;
        let worker = Worker::new(
            queue.clone(),
            store.clone(),
            processed.clone(),
            Arc::new(MemoryScanner::new()),
            Arc::new(StandardCodec::default()),
            Quarantine::new(
                Arc::new(MemoryStorage::new("quarantine").map_err(|e| e.to_string())?),
                "quarantine/",
            ),
            WorkerConfig::new(policy()).with_max_in_flight(1),
        );
        let started = cpu_seconds();
        let stats = worker.run_until_idle().await.map_err(|e| e.to_string())?;
        let cpu = cpu_seconds() - started;
        if stats.clean != uploads.len() as u64 {
            return Err(format!("not every photo was processed clean: {stats:?}"));
        }
        check_manifests(processed.as_ref(), uploads).await?;
        Ok(cpu)
    })
}

/// Writes `uploads` as JPEGs into `store` (each write sends its
/// ObjectCreated event, from `MemoryStorage` itself or from the bucket's
/// notification).
async fn put_photos(store: &dyn Storage, uploads: &[(ObjectKey, Bytes)]) -> Result<(), String> {
    for (key, bytes) in uploads {
        store
            .put(
                key,
                bytes.clone(),
                PutOptions::default().with_content_type("image/jpeg"),
            )
            .await
            .map_err(|e| format!("{key}: {e}"))?;
    }
    Ok(())
}

/// Every upload has a clean manifest with both variants.
async fn check_manifests(
    processed: &dyn Storage,
    uploads: &[(ObjectKey, Bytes)],
) -> Result<(), String> {
    for (key, _) in uploads {
        let mkey = manifest_key(key).map_err(|e| e.to_string())?;
        let got = processed
            .get(&mkey)
            .await
            .map_err(|e| format!("{mkey}: {e}"))?;
        let m: Manifest = serde_json::from_slice(&got.body).map_err(|e| e.to_string())?;
        if m.verdict != Outcome::Clean || m.variants.len() != 2 {
            return Err(format!(
                "{key}: verdict {:?}, {} variants",
                m.verdict,
                m.variants.len()
            ));
        }
    }
    Ok(())
}

/// Photos per second (wall) through moto + SQS + clamd, and the worker
/// process's CPU seconds per photo.
fn moto_clamd(uploads: &[(ObjectKey, Bytes)]) -> Result<(f64, f64), String> {
    let tmp = std::env::temp_dir().join(format!("bench-pipeline-{}", std::process::id()));
    let moto = servers::moto(&tmp)?;
    let clamd = servers::clamd(&tmp)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "bench"))
            .load()
            .await;
        let settings = AwsSettings::local(&moto.endpoint);
        let run = std::process::id();
        let plan = SetupPlan {
            uploads_bucket: format!("bp-{run}-uploads"),
            processed_bucket: format!("bp-{run}-processed"),
            queue_name: format!("bp-{run}-events"),
            max_receive_count: 5,
            visibility_timeout: Duration::from_secs(120),
            prefix: "uploads/".into(),
            cors_origins: Vec::new(),
            abort_incomplete_days: 7,
            enable_versioning: true,
            // moto enforces bucket policies without their conditions: a
            // deny-unscanned-reads statement would deny the worker too.
            deny_unscanned_reads: false,
            worker_principal_arns: Vec::new(),
            require_create_only_uploads: false,
        };
        let made = setup(&settings, &sdk, &plan)
            .await
            .map_err(|e| format!("setup on moto: {e}"))?;
        let s3 = settings.s3_client(&sdk);
        let store =
            Arc::new(S3Storage::new(s3.clone(), &plan.uploads_bucket).map_err(|e| e.to_string())?);
        let processed =
            Arc::new(S3Storage::new(s3, &plan.processed_bucket).map_err(|e| e.to_string())?);
        let queue = Arc::new(SqsQueue::new(sqs_client(&settings, &sdk), &made.queue_url));
        let scanner = ClamdScanner::new(
            ClamdConfig::new(ClamdAddress::Tcp(clamd.endpoint.clone()))
                .with_stream_max_length(MAX_UPLOAD),
        );
        let worker = Worker::new(
            queue,
            store.clone(),
            processed.clone(),
            Arc::new(scanner),
            Arc::new(StandardCodec::default()),
            Quarantine::new(store.clone(), "quarantine/"),
            WorkerConfig::new(policy())
                .with_receive(ReceiveOptions::default().with_wait(Duration::from_secs(1))),
        );
        let started = Instant::now();
        let cpu_started = cpu_seconds();
        put_photos(store.as_ref(), uploads).await?;
        let mut clean = 0;
        // moto's notification may count its s3:TestEvent; drain until
        // every photo is processed or a minute passes without progress.
        let mut idle_since = Instant::now();
        while clean < uploads.len() as u64 {
            let stats = worker.run_until_idle().await.map_err(|e| e.to_string())?;
            if stats.clean > 0 {
                idle_since = Instant::now();
            } else if idle_since.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "only {clean} of {} photos processed",
                    uploads.len()
                ));
            }
            clean += stats.clean;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_started;
        check_manifests(processed.as_ref(), uploads).await?;
        Ok((uploads.len() as f64 / wall, cpu / uploads.len() as f64))
    });
    drop((moto, clamd));
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run(args: &Args) -> Result<(), String> {
    let photos = photos()?;
    let uploads = uploads(&photos, args.photos);
    let bytes: usize = uploads.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "bench-pipeline: {} uploads per round ({} photos cycled, {:.1} MB), {} rounds",
        uploads.len(),
        photos.len(),
        bytes as f64 / 1e6,
        args.rounds
    );
    let codec = StandardCodec::default();
    // One core for the runtime; the decode runs on its blocking pool, one
    // upload in flight.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // Warm-up: page in the code and the allocator's arenas.
    codec_round(&codec, &uploads[..1])?;
    let mut placeholder_cpu = Vec::new();
    worker_round(&rt, &uploads[..1])?;
    let (mut ratios, mut worker_cpu, mut codec_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let (c, p) = codec_round(&codec, &uploads)?;
        placeholder_cpu.push(p);
        let w = worker_round(&rt, &uploads)?;
        eprintln!(
            "round {round}: worker {:.1} ms CPU per photo, codec alone {:.1} ms, overhead {:+.1}%",
            w * 1e3 / uploads.len() as f64,
            c * 1e3 / uploads.len() as f64,
            (w / c - 1.0) * 100.0
        );
        ratios.push(w / c);
        worker_cpu.push(w);
        codec_cpu.push(c);
    }
    let ratio = median(&mut ratios).ok_or("no rounds")?;
    let w = median(&mut worker_cpu).ok_or("no rounds")?;
    let c = median(&mut codec_cpu).ok_or("no rounds")?;
    let placeholder = median(&mut placeholder_cpu).ok_or("no rounds")?;
    let n = uploads.len() as f64;
    println!(
        "in-memory backends: {:.2} photos/s per core through the worker ({:.1} ms CPU each), codec alone {:.2} photos/s ({:.1} ms); worker overhead {:+.1}% (goal <= 10%)",
        n / w,
        w * 1e3 / n,
        n / c,
        c * 1e3 / n,
        (ratio - 1.0) * 100.0
    );
    let (moto_rate, moto_cpu) = if args.moto {
        let (rate, cpu) = moto_clamd(&uploads)?;
        println!(
            "moto + SQS + clamd: {rate:.2} photos/s (wall, worker on 2 threads), {:.1} ms CPU per photo in this process",
            cpu * 1e3
        );
        (rate, cpu)
    } else {
        (0.0, 0.0)
    };
    println!(
        "RESULT photos_per_sec_per_core={:.2} overhead_vs_codec={:.3} worker_cpu_ms_per_photo={:.1} codec_cpu_ms_per_photo={:.1} codec_photos_per_sec={:.2} placeholder_cpu_ms_per_photo={:.2} moto_clamd_photos_per_sec={moto_rate:.2} moto_clamd_cpu_ms_per_photo={:.1}",
        n / w,
        ratio - 1.0,
        w * 1e3 / n,
        c * 1e3 / n,
        n / c,
        placeholder * 1e3 / n,
        moto_cpu * 1e3
    );
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|a| run(&a));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-pipeline: {e}");
            ExitCode::FAILURE
        }
    }
}
