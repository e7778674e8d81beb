//! `bench-multipart`: a large file uploaded to a local S3 server by our
//! engine ([`MultipartUploader`] on [`S3Storage`]), by the AWS Labs
//! transfer manager (`aws-sdk-s3-transfer-manager`, same part size and
//! parts in flight, same S3 client configuration), and by one
//! `put_object` of the whole file, in the same run. Ours sends a CRC-32C
//! with every part and (like the transfer manager) no payload hash; it is
//! also measured with the payload hash signed (`ours, signed body`, the
//! default of `S3Storage` on plain-HTTP endpoints).
//!
//! Each upload runs in a child process of this binary, so each one's CPU
//! time (user + system, from `getrusage`) and peak RSS (`VmHWM`) are its
//! own; the server runs in its own process too and is not counted. On a
//! 2-core machine the server competes with the client, so the CPU seconds
//! per GiB of the client are the fairer figure; throughput is reported as
//! well (medians over the repetitions).
//!
//! Servers: s3s-fs (filesystem-backed, verifies signatures) at
//! `UPLOAD_SDK_S3S_ENDPOINT` with `UPLOAD_SDK_S3S_ACCESS_KEY` /
//! `UPLOAD_SDK_S3S_SECRET_KEY`, and moto at `UPLOAD_SDK_MOTO_ENDPOINT`;
//! when a variable is missing the server is started the way
//! `scripts/test.sh` does (`scripts/s3s-fs.sh`, `scripts/moto.sh`, which
//! install them on first use) and stopped at the end.
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-multipart -- \
//!     [--size-mib 1024] [--rss-size-mib 2048] [--moto-size-mib 256] [--reps 3]
//! ```
//!
//! Last line: `RESULT speedup_vs_transfer_manager=X speedup_vs_single_put=Y
//! cpu_ratio_vs_transfer_manager=Z peak_rss_mb=W ...` where `peak_rss_mb` is
//! our engine's peak RSS on the `--rss-size-mib` file (goal: at most parts
//! in flight × part size + 32 MiB = 64 MiB, whatever the file size).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use upload_benches::{median, peak_rss_mb};
use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::aws_sdk_s3::primitives::ByteStream;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{ObjectKey, Storage};
use upload_multipart::{MultipartUploader, UploadOptions};

const MIB: u64 = 1024 * 1024;
const PART_SIZE: u64 = 8 * MIB;
const CONCURRENCY: usize = 4;

/// What one child reports.
#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    cpu_secs: f64,
    rss_mb: f64,
}

/// A server to upload to.
struct Server {
    name: &'static str,
    endpoint: String,
    access_key: String,
    secret_key: String,
    /// `(script, dir)` to stop it with, when this run started it.
    started: Option<(PathBuf, PathBuf)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((script, dir)) = &self.started {
            let _ = Command::new(script).arg("stop").arg(dir).status();
        }
    }
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn run_script(script: &Path, args: &[&str]) -> Result<(), String> {
    let status = Command::new(script)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} {args:?} failed: {status}", script.display()))
    }
}

fn s3s_fs(tmp: &Path) -> Result<Server, String> {
    if let Ok(endpoint) = std::env::var("UPLOAD_SDK_S3S_ENDPOINT") {
        return Ok(Server {
            name: "s3s-fs",
            endpoint,
            access_key: std::env::var("UPLOAD_SDK_S3S_ACCESS_KEY")
                .map_err(|_| "UPLOAD_SDK_S3S_ACCESS_KEY is required with the endpoint")?,
            secret_key: std::env::var("UPLOAD_SDK_S3S_SECRET_KEY")
                .map_err(|_| "UPLOAD_SDK_S3S_SECRET_KEY is required with the endpoint")?,
            started: None,
        });
    }
    let dir = tmp.join("s3s-fs");
    let port = free_port();
    let (access, secret) = ("BENCHACCESSKEY", "bench-secret-key-0123456789");
    let script = scripts().join("s3s-fs.sh");
    eprintln!("starting s3s-fs on 127.0.0.1:{port} (scripts/s3s-fs.sh)");
    run_script(
        &script,
        &[
            "start",
            dir.to_str().ok_or("temp dir is not UTF-8")?,
            &port.to_string(),
            access,
            secret,
        ],
    )?;
    Ok(Server {
        name: "s3s-fs",
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: access.into(),
        secret_key: secret.into(),
        started: Some((script, dir)),
    })
}

fn moto(tmp: &Path) -> Result<Server, String> {
    if let Ok(endpoint) = std::env::var("UPLOAD_SDK_MOTO_ENDPOINT") {
        return Ok(Server {
            name: "moto",
            endpoint,
            access_key: "testing".into(),
            secret_key: "testing".into(),
            started: None,
        });
    }
    let dir = tmp.join("moto");
    let port = free_port();
    let script = scripts().join("moto.sh");
    eprintln!("starting moto on 127.0.0.1:{port} (scripts/moto.sh)");
    run_script(
        &script,
        &[
            "start",
            dir.to_str().ok_or("temp dir is not UTF-8")?,
            &port.to_string(),
        ],
    )?;
    Ok(Server {
        name: "moto",
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: "testing".into(),
        secret_key: "testing".into(),
        started: Some((script, dir)),
    })
}

async fn client(endpoint: &str, access: &str, secret: &str) -> upload_core::s3::aws_sdk_s3::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access, secret, None, None, "bench"))
        .load()
        .await;
    AwsSettings::local(endpoint).s3_client(&sdk)
}

/// A file of `mib` MiB of incompressible bytes.
fn make_file(path: &Path, mib: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..mib {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block)?;
    }
    f.flush()
}

/// CPU seconds (user + system) of this process so far.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The child: one upload by `who`; prints `CHILD secs= cpu= rss_mb=`.
fn child(args: &[String]) -> Result<(), String> {
    let [who, endpoint, access, secret, bucket, key, file] = args else {
        return Err(format!("child arguments: {args:?}"));
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = client(endpoint, access, secret).await;
        let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
        let (t0, c0) = (Instant::now(), cpu_secs());
        match who.as_str() {
            "ours" | "ours-signed" => {
                // "ours": the transfer manager's trust model (parts go
                // UNSIGNED-PAYLOAD, bound by their signed CRC-32C header);
                // "ours-signed": the default on plain-HTTP endpoints, the
                // payload hashed into the signature as well.
                let store = S3Storage::new(client, bucket.as_str())
                    .map_err(|e| e.to_string())?
                    .with_unsigned_checksummed_parts(who == "ours");
                let uploader = MultipartUploader::new(
                    Arc::new(store),
                    UploadOptions::default()
                        .with_part_size(PART_SIZE)
                        .with_concurrency(CONCURRENCY),
                );
                let key = ObjectKey::new(key.as_str()).map_err(|e| e.to_string())?;
                uploader
                    .upload_file(&key, Path::new(file), None, |_| {}, std::future::pending())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            "tm" => {
                use aws_sdk_s3_transfer_manager::io::InputStream;
                use aws_sdk_s3_transfer_manager::types::{ConcurrencyMode, PartSize};
                let config = aws_sdk_s3_transfer_manager::Config::builder()
                    .client(client)
                    .part_size(PartSize::Target(PART_SIZE))
                    .multipart_threshold(PartSize::Target(PART_SIZE))
                    .concurrency(ConcurrencyMode::Explicit(CONCURRENCY))
                    .build();
                let tm = aws_sdk_s3_transfer_manager::Client::new(config);
                let body = InputStream::from_path(file).map_err(|e| e.to_string())?;
                tm.upload()
                    .bucket(bucket)
                    .key(key)
                    .body(body)
                    .initiate()
                    .map_err(|e| e.to_string())?
                    .join()
                    .await
                    .map_err(|e| e.to_string())?;
            }
            "put" => {
                let body = ByteStream::from_path(file)
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .content_length(size as i64)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
            }
            other => return Err(format!("unknown contender {other}")),
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_secs() - c0;
        println!(
            "CHILD secs={secs:.4} cpu={cpu:.4} rss_mb={:.1}",
            peak_rss_mb().unwrap_or(f64::NAN)
        );
        Ok(())
    })
}

/// Runs one upload in a child process.
fn spawn(who: &str, server: &Server, bucket: &str, key: &str, file: &Path) -> Result<Run, String> {
    let out = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args([
            "child",
            who,
            &server.endpoint,
            &server.access_key,
            &server.secret_key,
            bucket,
            key,
            file.to_str().ok_or("file path is not UTF-8")?,
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("CHILD "))
        .ok_or_else(|| format!("{who} failed ({}): {text}", out.status))?;
    let field = |name: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {name} in {line}"))
    };
    Ok(Run {
        secs: field("secs")?,
        cpu_secs: field("cpu")?,
        rss_mb: field("rss_mb")?,
    })
}

struct Medians {
    secs: f64,
    cpu_per_gib: f64,
    rss_mb: f64,
}

/// `reps` uploads of `file` by each contender, interleaved; each object is
/// checked (size) and deleted after its run.
async fn compare(
    server: &Server,
    file: &Path,
    reps: usize,
    who: &[&str],
) -> Result<Vec<Medians>, String> {
    let c = client(&server.endpoint, &server.access_key, &server.secret_key).await;
    static BUCKETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = BUCKETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bucket = format!("bench-mp-{}-{n}", std::process::id());
    let store = S3Storage::new(c, bucket.as_str()).map_err(|e| e.to_string())?;
    store.create_bucket().await.map_err(|e| e.to_string())?;
    let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let gib = size as f64 / (1024.0 * MIB as f64);
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); who.len()];
    let mut etags: Vec<Option<String>> = vec![None; who.len()];
    for rep in 0..reps {
        for (i, w) in who.iter().enumerate() {
            let key = format!("bench/{w}-{rep}.bin");
            let r = spawn(w, server, &bucket, &key, file)?;
            let k = ObjectKey::new(key.as_str()).map_err(|e| e.to_string())?;
            let meta = store.head(&k).await.map_err(|e| e.to_string())?;
            if meta.size != size {
                return Err(format!("{w}: stored {} bytes of {size}", meta.size));
            }
            etags[i] = Some(meta.etag);
            store.delete(&k).await.map_err(|e| e.to_string())?;
            eprintln!(
                "{:>7} {w:>5} rep {rep}: {:.2} s ({:.0} MiB/s), client CPU {:.2} s, peak RSS {:.0} MB",
                server.name,
                r.secs,
                size as f64 / MIB as f64 / r.secs,
                r.cpu_secs,
                r.rss_mb
            );
            runs[i].push(r);
        }
    }
    if let (Some(ours), Some(tm)) = (
        who.iter().position(|w| *w == "ours"),
        who.iter().position(|w| *w == "tm"),
    ) {
        // Same part size, same bytes: the same multipart ETag.
        if etags[ours] != etags[tm] {
            eprintln!(
                "note: ETags differ (ours {:?}, transfer manager {:?})",
                etags[ours], etags[tm]
            );
        }
    }
    Ok(runs
        .into_iter()
        .map(|rs| {
            let m = |f: fn(&Run) -> f64| {
                let mut v: Vec<f64> = rs.iter().map(f).collect();
                median(&mut v).unwrap_or(f64::NAN)
            };
            Medians {
                secs: m(|r| r.secs),
                cpu_per_gib: m(|r| r.cpu_secs) / gib,
                rss_mb: m(|r| r.rss_mb),
            }
        })
        .collect())
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} takes a number")),
        None => Ok(default),
    }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1..]);
    }
    let size_mib = arg(&args, "--size-mib", 1024)?;
    let rss_mib = arg(&args, "--rss-size-mib", 2048)?;
    let moto_mib = arg(&args, "--moto-size-mib", 256)?;
    let reps = arg(&args, "--reps", 3)?.max(1) as usize;
    let tmp = std::env::temp_dir().join(format!("bench-multipart-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let result = run(&tmp, size_mib, rss_mib, moto_mib, reps);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run(tmp: &Path, size_mib: u64, rss_mib: u64, moto_mib: u64, reps: usize) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let file = tmp.join("object.bin");
    make_file(&file, size_mib).map_err(|e| e.to_string())?;
    let s3s = s3s_fs(tmp)?;
    let who = ["ours", "tm", "put", "ours-signed"];
    let m = rt.block_on(compare(&s3s, &file, reps, &who))?;
    let (ours, tm, put, signed) = (&m[0], &m[1], &m[2], &m[3]);
    eprintln!(
        "s3s-fs, {size_mib} MiB, {PART_SIZE_MIB} MiB parts, {CONCURRENCY} in flight (medians of {reps}):",
        PART_SIZE_MIB = PART_SIZE / MIB
    );
    for (name, x) in [
        ("ours", ours),
        ("transfer manager", tm),
        ("single put_object", put),
        ("ours, signed body", signed),
    ] {
        eprintln!(
            "  {name:>17}: {:.2} s, {:.0} MiB/s, client {:.2} CPU s/GiB, peak RSS {:.0} MB",
            x.secs,
            size_mib as f64 / x.secs,
            x.cpu_per_gib,
            x.rss_mb
        );
    }
    std::fs::remove_file(&file).map_err(|e| e.to_string())?;

    // Memory bound: our engine on a larger file.
    let big = tmp.join("big.bin");
    make_file(&big, rss_mib).map_err(|e| e.to_string())?;
    let big_runs = rt.block_on(compare(&s3s, &big, 1, &["ours"]))?;
    std::fs::remove_file(&big).map_err(|e| e.to_string())?;
    let bound = (CONCURRENCY as u64 * PART_SIZE + 32 * MIB) as f64 / MIB as f64;
    eprintln!(
        "ours, {rss_mib} MiB: peak RSS {:.0} MB (bound {bound:.0} MiB); {size_mib} MiB: {:.0} MB",
        big_runs[0].rss_mb, ours.rss_mb
    );
    drop(s3s);

    // moto (Python, in memory): a smaller file.
    let small = tmp.join("moto.bin");
    make_file(&small, moto_mib).map_err(|e| e.to_string())?;
    let moto = moto(tmp)?;
    let mm = rt.block_on(compare(&moto, &small, reps, &who[..3]))?;
    drop(moto);
    eprintln!("moto, {moto_mib} MiB (medians of {reps}):");
    for (name, x) in [
        ("ours", &mm[0]),
        ("transfer manager", &mm[1]),
        ("single put_object", &mm[2]),
    ] {
        eprintln!(
            "  {name:>17}: {:.2} s, client {:.2} CPU s/GiB, peak RSS {:.0} MB",
            x.secs, x.cpu_per_gib, x.rss_mb
        );
    }
    println!(
        "RESULT speedup_vs_transfer_manager={:.2} speedup_vs_single_put={:.2} cpu_ratio_vs_transfer_manager={:.2} peak_rss_mb={:.0} peak_rss_mb_{size_mib}mib={:.0} tm_peak_rss_mb={:.0} ours_mib_per_sec={:.0} ours_cpu_s_per_gib={:.2} tm_cpu_s_per_gib={:.2} signed_cpu_ratio_vs_transfer_manager={:.2} moto_speedup_vs_transfer_manager={:.2} moto_speedup_vs_single_put={:.2}",
        tm.secs / ours.secs,
        put.secs / ours.secs,
        ours.cpu_per_gib / tm.cpu_per_gib,
        big_runs[0].rss_mb,
        ours.rss_mb,
        tm.rss_mb,
        size_mib as f64 / ours.secs,
        ours.cpu_per_gib,
        tm.cpu_per_gib,
        signed.cpu_per_gib / tm.cpu_per_gib,
        mm[1].secs / mm[0].secs,
        mm[2].secs / mm[0].secs,
    );
    Ok(())
}
