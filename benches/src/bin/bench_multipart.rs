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
//! **Shaped link.** The same contenders, and ours at 1, 2, 4, 8 and 16
//! parts in flight (the curve the uploader's defaults come from), upload
//! the same file through `upload_benches::shaper`, a TCP proxy that gives
//! every connection its own bandwidth cap in each direction (default
//! 25 MiB/s, a `governor` token bucket per connection; `--link-mib-s`
//! adds one shared by all) and delays every byte (default 20 ms each way,
//! a 40 ms round trip; chunks are stamped when they pass the bucket and
//! released that much later, so delay does not cap throughput), and
//! holds a new connection for one round trip, as a TCP handshake does.
//! So one TCP stream cannot fill the link, as on long-distance links;
//! see the shaper's module docs for what the model leaves out (slow
//! start, loss). Behind it by default is `upload_benches::sink_s3`, an
//! S3 server on `s3s` (SigV4 verified, every body read, MD5'd and its
//! CRC-32C checked, then dropped) whose completion is bookkeeping as on
//! S3: s3s-fs (`--shaped-server s3s-fs`) reads every part back, hashes
//! it and copies it at completion, seconds per GiB that would measure
//! the server instead of the link. Parts there are 16 MiB
//! (`--shaped-part-mib`), 4 in flight for ours and the transfer manager.
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-multipart -- \
//!     [--size-mib 1024] [--rss-size-mib 2048] [--moto-size-mib 256] [--reps 3] \
//!     [--shaped-reps 2] [--curve-reps 1 (0: no curve)] [--rate-mib-s 25] \
//!     [--delay-ms 20] [--link-mib-s 0] [--shaped-part-mib 16] \
//!     [--shaped-server sink|s3s-fs|moto] [--loopback-only | --shaped-only]
//! ```
//!
//! About 6 minutes on 2 cores, most of it the two single `put_object`s
//! and the one-part-in-flight point of the shaped link (41 s each at
//! 25 MiB/s).
//!
//! Last line: `RESULT speedup_vs_transfer_manager=X speedup_vs_single_put=Y
//! cpu_ratio_vs_transfer_manager=Z peak_rss_mb=W ... shaped_speedup_vs_single_put=A
//! shaped_speedup_vs_transfer_manager=B shaped_mib_per_sec_c1=.. _c2 _c4 _c8 _c16 ...`
//! where the first ones are on loopback (8 MiB parts, 4 in flight),
//! `peak_rss_mb` is our engine's peak RSS on the `--rss-size-mib` file
//! (goal: at most parts in flight × part size + 32 MiB = 64 MiB, whatever
//! the file size), and the `shaped_` ones through the shaped link.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use upload_benches::servers::{self, Server};
use upload_benches::shaper::{LinkShape, Shaper};
use upload_benches::sink_s3::SinkServer;
use upload_benches::{cpu_seconds, median, peak_rss_mb};
use upload_core::s3::S3Storage;
use upload_core::s3::aws_sdk_s3::primitives::ByteStream;
use upload_core::{ObjectKey, Storage};
use upload_multipart::{MultipartUploader, UploadOptions};

const MIB: u64 = 1024 * 1024;
const PART_SIZE: u64 = 8 * MIB;
const CONCURRENCY: usize = 4;
/// Part size of the shaped runs (`--shaped-part-mib`).
const SHAPED_PART_SIZE: u64 = 16 * MIB;

/// What one child reports.
#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    cpu_secs: f64,
    rss_mb: f64,
    /// Ours only (else NaN): seconds to the first progress call (the
    /// create), from there to the last part, and the completion.
    phases: [f64; 3],
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

/// The child: one upload by `who`; prints `CHILD secs= cpu= rss_mb=`.
fn child(args: &[String]) -> Result<(), String> {
    let [
        who,
        endpoint,
        access,
        secret,
        bucket,
        key,
        file,
        part_size,
        concurrency,
    ] = args
    else {
        return Err(format!("child arguments: {args:?}"));
    };
    let part_size: u64 = part_size.parse().map_err(|_| "part size")?;
    let concurrency: usize = concurrency.parse().map_err(|_| "concurrency")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = servers::s3_client(endpoint, access, secret).await;
        let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let mut phases = String::new();
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
                        .with_part_size(part_size)
                        .with_concurrency(concurrency),
                );
                let key = ObjectKey::new(key.as_str()).map_err(|e| e.to_string())?;
                // Phases: the first progress call follows the create, the
                // last one the last part; the completion takes the rest.
                let (mut first, mut last) = (None, None);
                uploader
                    .upload_file(
                        &key,
                        Path::new(file),
                        None,
                        |p| {
                            let now = t0.elapsed().as_secs_f64();
                            first.get_or_insert(now);
                            if p.parts_done == p.parts_total {
                                last = Some(now);
                            }
                        },
                        std::future::pending(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if let (Some(f), Some(l)) = (first, last) {
                    phases = format!(
                        " create_s={f:.3} parts_s={:.3} complete_s={:.3}",
                        l - f,
                        t0.elapsed().as_secs_f64() - l
                    );
                }
            }
            "tm" => {
                use aws_sdk_s3_transfer_manager::io::InputStream;
                use aws_sdk_s3_transfer_manager::types::{ConcurrencyMode, PartSize};
                let config = aws_sdk_s3_transfer_manager::Config::builder()
                    .client(client)
                    .part_size(PartSize::Target(part_size))
                    .multipart_threshold(PartSize::Target(part_size))
                    .concurrency(ConcurrencyMode::Explicit(concurrency))
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
        let cpu = cpu_seconds() - c0;
        println!(
            "CHILD secs={secs:.4} cpu={cpu:.4} rss_mb={:.1}{phases}",
            peak_rss_mb().unwrap_or(f64::NAN)
        );
        Ok(())
    })
}

/// One contender: who uploads, with which part size and parts in flight.
#[derive(Debug, Clone, Copy)]
struct Job {
    who: &'static str,
    part_size: u64,
    concurrency: usize,
}

impl Job {
    const fn new(who: &'static str, concurrency: usize) -> Self {
        Self {
            who,
            part_size: PART_SIZE,
            concurrency,
        }
    }
}

/// Runs one upload in a child process.
fn spawn(job: Job, server: &Server, bucket: &str, key: &str, file: &Path) -> Result<Run, String> {
    let who = job.who;
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
            &job.part_size.to_string(),
            &job.concurrency.to_string(),
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
        phases: [
            field("create_s").unwrap_or(f64::NAN),
            field("parts_s").unwrap_or(f64::NAN),
            field("complete_s").unwrap_or(f64::NAN),
        ],
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
    jobs: &[Job],
) -> Result<Vec<Medians>, String> {
    let c = server.s3_client().await;
    static BUCKETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = BUCKETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bucket = format!("bench-mp-{}-{n}", std::process::id());
    let store = S3Storage::new(c, bucket.as_str()).map_err(|e| e.to_string())?;
    store.create_bucket().await.map_err(|e| e.to_string())?;
    let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let gib = size as f64 / (1024.0 * MIB as f64);
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); jobs.len()];
    let mut etags: Vec<Option<String>> = vec![None; jobs.len()];
    for rep in 0..reps {
        for (i, job) in jobs.iter().enumerate() {
            let w = job.who;
            let key = format!("bench/{w}-c{}-{rep}.bin", job.concurrency);
            let r = spawn(*job, server, &bucket, &key, file)?;
            let k = ObjectKey::new(key.as_str()).map_err(|e| e.to_string())?;
            let meta = store.head(&k).await.map_err(|e| e.to_string())?;
            if meta.size != size {
                return Err(format!("{w}: stored {} bytes of {size}", meta.size));
            }
            etags[i] = Some(meta.etag);
            store.delete(&k).await.map_err(|e| e.to_string())?;
            let phases = if r.phases[0].is_nan() {
                String::new()
            } else {
                format!(
                    " (create {:.2} s, parts {:.2} s, complete {:.2} s)",
                    r.phases[0], r.phases[1], r.phases[2]
                )
            };
            eprintln!(
                "{:>7} {w:>11} c{:<2} rep {rep}: {:.2} s ({:.0} MiB/s), client CPU {:.2} s, peak RSS {:.0} MB{phases}",
                server.name,
                job.concurrency,
                r.secs,
                size as f64 / MIB as f64 / r.secs,
                r.cpu_secs,
                r.rss_mb
            );
            runs[i].push(r);
        }
    }
    if let (Some(ours), Some(tm)) = (
        jobs.iter().position(|j| j.who == "ours"),
        jobs.iter().position(|j| j.who == "tm"),
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

/// What a run measures (the command-line options).
struct Settings {
    size_mib: u64,
    rss_mib: u64,
    moto_mib: u64,
    reps: usize,
    shaped_reps: usize,
    curve_reps: usize,
    shape: LinkShape,
    loopback: bool,
    shaped: bool,
    /// Part size of the shaped runs, bytes.
    shaped_part_size: u64,
    /// The server behind the shaping proxy: `sink` (default), `s3s-fs`
    /// or `moto`.
    shaped_server: String,
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1..]);
    }
    let rate = arg(&args, "--rate-mib-s", 25)?;
    let link = arg(&args, "--link-mib-s", 0)?;
    let to_bytes = |mib: u64| {
        u32::try_from(mib * MIB).map_err(|_| "rates above 4095 MiB/s are not supported".to_owned())
    };
    let settings = Settings {
        size_mib: arg(&args, "--size-mib", 1024)?,
        rss_mib: arg(&args, "--rss-size-mib", 2048)?,
        moto_mib: arg(&args, "--moto-size-mib", 256)?,
        reps: arg(&args, "--reps", 3)?.max(1) as usize,
        shaped_reps: arg(&args, "--shaped-reps", 2)?.max(1) as usize,
        curve_reps: arg(&args, "--curve-reps", 1)? as usize,
        shaped_part_size: arg(&args, "--shaped-part-mib", SHAPED_PART_SIZE / MIB)? * MIB,
        shape: LinkShape {
            rate_bytes_per_sec: to_bytes(rate.max(1))?,
            link_bytes_per_sec: if link == 0 {
                None
            } else {
                Some(to_bytes(link)?)
            },
            one_way_delay: std::time::Duration::from_millis(arg(&args, "--delay-ms", 20)?),
        },
        loopback: !args.iter().any(|a| a == "--shaped-only"),
        shaped: !args.iter().any(|a| a == "--loopback-only"),
        shaped_server: args
            .iter()
            .position(|a| a == "--shaped-server")
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| "sink".into()),
    };
    let tmp = std::env::temp_dir().join(format!("bench-multipart-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let result = run(&tmp, &settings);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Parts in flight of the shaped scaling curve.
const CURVE: [usize; 5] = [1, 2, 4, 8, 16];

fn run(tmp: &Path, st: &Settings) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let size_mib = st.size_mib;
    let reps = st.reps;
    let mut result: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| result.push((k.to_owned(), v));
    let file = tmp.join("object.bin");
    make_file(&file, size_mib).map_err(|e| e.to_string())?;
    let s3s = servers::s3s_fs(tmp)?;
    let jobs = [
        Job::new("ours", CONCURRENCY),
        Job::new("tm", CONCURRENCY),
        Job::new("put", 1),
        Job::new("ours-signed", CONCURRENCY),
    ];
    let bound = (CONCURRENCY as u64 * PART_SIZE + 32 * MIB) as f64 / MIB as f64;

    if st.loopback {
        let m = rt.block_on(compare(&s3s, &file, reps, &jobs))?;
        let (ours, tm, single, signed) = (&m[0], &m[1], &m[2], &m[3]);
        eprintln!(
            "s3s-fs (loopback), {size_mib} MiB, {PART_SIZE_MIB} MiB parts, {CONCURRENCY} in flight (medians of {reps}):",
            PART_SIZE_MIB = PART_SIZE / MIB
        );
        for (name, x) in [
            ("ours", ours),
            ("transfer manager", tm),
            ("single put_object", single),
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

        // Memory bound: our engine on a larger file.
        let big = tmp.join("big.bin");
        make_file(&big, st.rss_mib).map_err(|e| e.to_string())?;
        let big_runs = rt.block_on(compare(&s3s, &big, 1, &jobs[..1]))?;
        std::fs::remove_file(&big).map_err(|e| e.to_string())?;
        eprintln!(
            "ours, {} MiB: peak RSS {:.0} MB (bound {bound:.0} MiB); {size_mib} MiB: {:.0} MB",
            st.rss_mib, big_runs[0].rss_mb, ours.rss_mb
        );
        put(
            "speedup_vs_transfer_manager",
            format!("{:.2}", tm.secs / ours.secs),
        );
        put(
            "speedup_vs_single_put",
            format!("{:.2}", single.secs / ours.secs),
        );
        put(
            "cpu_ratio_vs_transfer_manager",
            format!("{:.2}", ours.cpu_per_gib / tm.cpu_per_gib),
        );
        put("peak_rss_mb", format!("{:.0}", big_runs[0].rss_mb));
        put(
            &format!("peak_rss_mb_{size_mib}mib"),
            format!("{:.0}", ours.rss_mb),
        );
        put("tm_peak_rss_mb", format!("{:.0}", tm.rss_mb));
        put(
            "ours_mib_per_sec",
            format!("{:.0}", size_mib as f64 / ours.secs),
        );
        put("ours_cpu_s_per_gib", format!("{:.2}", ours.cpu_per_gib));
        put("tm_cpu_s_per_gib", format!("{:.2}", tm.cpu_per_gib));
        put(
            "signed_cpu_ratio_vs_transfer_manager",
            format!("{:.2}", signed.cpu_per_gib / tm.cpu_per_gib),
        );
    }

    if st.shaped {
        // The same server behind the shaping proxy.
        let (moto_server, sink_server, sink);
        let behind = match st.shaped_server.as_str() {
            "sink" => {
                let (access, secret) = ("BENCHACCESSKEY", "bench-secret-key-0123456789");
                sink_server = SinkServer::start(access, secret).map_err(|e| e.to_string())?;
                sink = Server::external(
                    "sink-s3",
                    format!("http://{}", sink_server.addr()),
                    access,
                    secret,
                );
                &sink
            }
            "s3s-fs" => &s3s,
            "moto" => {
                moto_server = servers::moto(tmp)?;
                &moto_server
            }
            other => return Err(format!("--shaped-server {other}: sink, s3s-fs or moto")),
        };
        let upstream: std::net::SocketAddr = behind
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("{} endpoint {}: {e}", behind.name, behind.endpoint))?;
        let shaper = Shaper::start(upstream, st.shape).map_err(|e| e.to_string())?;
        let shaped = Server::external(
            "shaped",
            format!("http://{}", shaper.addr()),
            behind.access_key.clone(),
            behind.secret_key.clone(),
        );
        let mib_s = |b: u32| f64::from(b) / MIB as f64;
        let shape = format!(
            "{:.0} MiB/s per connection and direction{}, +{} ms each way",
            mib_s(st.shape.rate_bytes_per_sec),
            st.shape
                .link_bytes_per_sec
                .map(|l| format!(", {:.0} MiB/s shared", mib_s(l)))
                .unwrap_or_default(),
            st.shape.one_way_delay.as_millis()
        );
        eprintln!("shaped link: {shape}");
        let sized = |who, concurrency| Job {
            who,
            part_size: st.shaped_part_size,
            concurrency,
        };
        let shaped_jobs = [
            sized("ours", CONCURRENCY),
            sized("tm", CONCURRENCY),
            sized("put", 1),
        ];
        let m = rt.block_on(compare(&shaped, &file, st.shaped_reps, &shaped_jobs))?;
        let (ours, tm, single) = (&m[0], &m[1], &m[2]);
        // The scaling curve: ours at 1, 2, 8, 16 parts in flight (4 is
        // `ours` above).
        let curve: Vec<usize> = if st.curve_reps == 0 {
            vec![CONCURRENCY]
        } else {
            CURVE.to_vec()
        };
        let curve_jobs: Vec<Job> = curve
            .iter()
            .filter(|&&c| c != CONCURRENCY)
            .map(|&c| sized("ours", c))
            .collect();
        let cm = if curve_jobs.is_empty() {
            Vec::new()
        } else {
            rt.block_on(compare(&shaped, &file, st.curve_reps, &curve_jobs))?
        };
        eprintln!(
            "{} through the shaped link ({shape}), {size_mib} MiB, {PART_SIZE_MIB} MiB parts, {CONCURRENCY} in flight (medians of {}):",
            behind.name,
            st.shaped_reps,
            PART_SIZE_MIB = st.shaped_part_size / MIB
        );
        for (name, x) in [
            ("ours", ours),
            ("transfer manager", tm),
            ("single put_object", single),
        ] {
            eprintln!(
                "  {name:>17}: {:.2} s, {:.1} MiB/s, client {:.2} CPU s/GiB, peak RSS {:.0} MB",
                x.secs,
                size_mib as f64 / x.secs,
                x.cpu_per_gib,
                x.rss_mb
            );
        }
        eprintln!(
            "ours by parts in flight ({PART_SIZE_MIB} MiB parts, medians of {}):",
            st.curve_reps,
            PART_SIZE_MIB = st.shaped_part_size / MIB
        );
        put(
            "shaped_speedup_vs_single_put",
            format!("{:.2}", single.secs / ours.secs),
        );
        put(
            "shaped_speedup_vs_transfer_manager",
            format!("{:.2}", tm.secs / ours.secs),
        );
        let mut rest = cm.iter();
        for c in curve {
            let x = if c == CONCURRENCY {
                ours
            } else {
                rest.next().ok_or("curve point missing")?
            };
            let rate = size_mib as f64 / x.secs;
            eprintln!(
                "  c{c:<2}: {rate:.1} MiB/s ({:.2}x one put_object), peak RSS {:.0} MB",
                single.secs / x.secs,
                x.rss_mb
            );
            put(&format!("shaped_mib_per_sec_c{c}"), format!("{rate:.1}"));
        }
        put(
            "shaped_single_put_mib_per_sec",
            format!("{:.1}", size_mib as f64 / single.secs),
        );
        put(
            "shaped_tm_mib_per_sec",
            format!("{:.1}", size_mib as f64 / tm.secs),
        );
        eprintln!(
            "shaper: {} connections, {:.0} MiB up",
            shaper
                .stats()
                .connections
                .load(std::sync::atomic::Ordering::Relaxed),
            shaper
                .stats()
                .up_bytes
                .load(std::sync::atomic::Ordering::Relaxed) as f64
                / MIB as f64
        );
    }
    std::fs::remove_file(&file).map_err(|e| e.to_string())?;
    drop(s3s);

    if st.loopback {
        // moto (Python, in memory): a smaller file.
        let small = tmp.join("moto.bin");
        make_file(&small, st.moto_mib).map_err(|e| e.to_string())?;
        let moto = servers::moto(tmp)?;
        let mm = rt.block_on(compare(&moto, &small, reps, &jobs[..3]))?;
        drop(moto);
        eprintln!("moto, {} MiB (medians of {reps}):", st.moto_mib);
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
        put(
            "moto_speedup_vs_transfer_manager",
            format!("{:.2}", mm[1].secs / mm[0].secs),
        );
        put(
            "moto_speedup_vs_single_put",
            format!("{:.2}", mm[2].secs / mm[0].secs),
        );
    }
    let line: Vec<String> = result.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", line.join(" "));
    Ok(())
}
