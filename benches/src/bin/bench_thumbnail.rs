//! `bench-thumbnail`: a batch of JPEG photos thumbnailed to 256-pixel WebP
//! at quality 80 on one thread, by our pipeline ([`StandardCodec`]:
//! shrink-on-load, Lanczos3, libwebp; JPEG through libjpeg-turbo, feature
//! `turbojpeg`, and also measured with the pure-Rust decoders that are the
//! default without it) and by libvips's `vipsthumbnail`
//! (shrink-on-load through libjpeg-turbo, `VIPS_CONCURRENCY=1`, one
//! process over the whole batch), in the same run.
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-thumbnail -- [FOLDER] [--rounds 5]
//! ```
//!
//! `FOLDER` (default `samples/photos`) is searched for `*.jpg`/`*.jpeg`;
//! photos up to 16 MP form the batch, larger ones (the 20 MP photo) are
//! measured on their own. Every pipeline runs in a child process (ours: this
//! binary), whose CPU time (user + system) and peak RSS come from `wait4`,
//! so process start-up counts for both sides. Rounds alternate the
//! pipelines; figures are medians. Also measured: the `image` crate alone
//! (full decode, `DynamicImage::resize` Lanczos3, lossless WebP: the only
//! WebP `image` writes), and our AVIF path (speed 8, quality 60).
//!
//! `vipsthumbnail` comes from Debian's `libvips-tools`; when it is missing,
//! this binary installs it with `apt-get` (as root) or fails.
//!
//! Last line: `RESULT cpu_ratio_vs_libvips=X peak_rss_mb=Y ...`, where the
//! ratio is our CPU time over libvips's on the batch (goal ≤ 0.8) and
//! `peak_rss_mb` our peak RSS for one 4K baseline JPEG to 256 px (goal
//! ≤ 16 MB).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use upload_benches::{baseline_thumbnail, median};
use upload_pipeline::{DecodeLimits, ImageCodec, OutputFormat, StandardCodec, VariantSpec};

/// Photos above this many pixels are measured apart from the batch.
const BATCH_MAX_PIXELS: u64 = 16_000_000;

/// CPU seconds and peak RSS of one child process.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: f64,
    rss_mb: f64,
}

/// Runs `command` to completion and reads its own resource usage.
fn run(mut command: Command) -> Result<Usage, String> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 only writes the status and the struct it is given; the
    // child is ours and reaped here (std's `Child` does not wait on drop).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if got != pid {
        return Err(format!("wait4 failed for {command:?}"));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{command:?} failed (status {status})"));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        // Linux reports ru_maxrss in KiB.
        rss_mb: ru.ru_maxrss as f64 / 1024.0,
    })
}

/// The child: thumbnails `files` with `pipeline` (`ours`, `pure`, `image`,
/// `avif`) into `out`.
fn child(pipeline: &str, out: &Path, files: &[String]) -> Result<(), String> {
    let codec = StandardCodec::default().with_libjpeg_turbo(pipeline != "pure");
    let thumb = VariantSpec::thumb();
    let avif = VariantSpec::new(
        "thumb",
        256,
        256,
        OutputFormat::Avif {
            quality: 60,
            speed: OutputFormat::AVIF_DEFAULT_SPEED,
        },
    )
    .map_err(|e| e.to_string())?;
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        let encoded = match pipeline {
            "image" => baseline_thumbnail(&bytes),
            "ours" | "pure" | "avif" => {
                let spec = if pipeline == "avif" { &avif } else { &thumb };
                let decoded = codec
                    .decode_for(&bytes, &DecodeLimits::default(), std::slice::from_ref(spec))
                    .map_err(|e| format!("{file}: {e}"))?;
                let variant = codec
                    .render(&decoded, spec)
                    .map_err(|e| format!("{file}: {e}"))?;
                if variant.width.max(variant.height) != 256 {
                    return Err(format!("{file}: {}x{}", variant.width, variant.height));
                }
                variant.bytes.to_vec()
            }
            other => return Err(format!("unknown pipeline {other}")),
        };
        let name = Path::new(file).file_name().unwrap_or_default();
        std::fs::write(out.join(name).with_extension(pipeline), encoded)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn ours(pipeline: &str, out: &Path, files: &[PathBuf]) -> Result<Usage, String> {
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command.arg("--child").arg(pipeline).arg(out).args(files);
    run(command)
}

fn vips(out: &Path, files: &[PathBuf]) -> Result<Usage, String> {
    let mut command = Command::new("vipsthumbnail");
    command
        .env("VIPS_CONCURRENCY", "1")
        .arg("--size")
        .arg("256")
        .arg("-o")
        .arg(format!("{}/%s.vips.webp[Q=80,strip]", out.display()))
        .args(files);
    run(command)
}

fn ensure_vipsthumbnail() -> Result<(), String> {
    let found = || {
        Command::new("vipsthumbnail")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if found() {
        return Ok(());
    }
    eprintln!("vipsthumbnail missing: installing Debian's libvips-tools");
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if quiet(&["update", "-qq"])
        && quiet(&[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "libvips-tools",
        ])
        && found()
    {
        Ok(())
    } else {
        Err("vipsthumbnail is missing and apt-get could not install libvips-tools".to_owned())
    }
}

/// Width, height and whether the JPEG is progressive, from its SOF marker.
fn jpeg_info(bytes: &[u8]) -> Option<(u32, u32, bool)> {
    let mut pos = 2;
    while pos + 9 < bytes.len() && bytes[pos] == 0xFF {
        let marker = bytes[pos + 1];
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        if matches!(marker, 0xC0..=0xC3) {
            let h = u16::from_be_bytes([bytes[pos + 5], bytes[pos + 6]]);
            let w = u16::from_be_bytes([bytes[pos + 7], bytes[pos + 8]]);
            return Some((u32::from(w), u32::from(h), marker == 0xC2));
        }
        pos += 2 + len;
    }
    None
}

struct Photo {
    path: PathBuf,
    pixels: u64,
    width: u32,
    progressive: bool,
}

fn photos(folder: &Path) -> Result<Vec<Photo>, String> {
    let mut photos = Vec::new();
    let entries = std::fs::read_dir(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext.to_ascii_lowercase().as_str(), "jpg" | "jpeg") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        if let Some((width, height, progressive)) = jpeg_info(&bytes) {
            photos.push(Photo {
                path,
                pixels: u64::from(width) * u64::from(height),
                width,
                progressive,
            });
        }
    }
    photos.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(photos)
}

fn med(values: &[f64]) -> f64 {
    median(&mut values.to_vec()).unwrap_or(f64::NAN)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return match args.get(1..3) {
            Some([pipeline, out]) => match child(pipeline, Path::new(out), &args[3..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("child: {e}");
                    ExitCode::FAILURE
                }
            },
            _ => ExitCode::from(2),
        };
    }
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-thumbnail: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &[String]) -> Result<(), String> {
    let usage = "usage: bench-thumbnail [FOLDER] [--rounds N]";
    let mut folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/photos");
    let mut rounds = 5usize;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or(usage)?
            }
            "-h" | "--help" => return Err(usage.to_owned()),
            other => folder = PathBuf::from(other),
        }
    }
    ensure_vipsthumbnail()?;
    let all = photos(&folder)?;
    let batch: Vec<PathBuf> = all
        .iter()
        .filter(|p| p.pixels <= BATCH_MAX_PIXELS)
        .map(|p| p.path.clone())
        .collect();
    let large: Vec<&Photo> = all.iter().filter(|p| p.pixels > BATCH_MAX_PIXELS).collect();
    let baseline_4k = all
        .iter()
        .find(|p| p.width >= 3840 && !p.progressive && p.pixels <= BATCH_MAX_PIXELS)
        .ok_or("the folder holds no 4K baseline JPEG (for peak_rss_mb)")?;
    if batch.is_empty() {
        return Err(format!("no JPEG of at most 16 MP in {}", folder.display()));
    }
    println!("batch of {} JPEGs from {}:", batch.len(), folder.display());
    for p in all.iter().filter(|p| p.pixels <= BATCH_MAX_PIXELS) {
        println!(
            "  {} ({:.1} MP, {})",
            p.path.file_name().unwrap_or_default().to_string_lossy(),
            p.pixels as f64 / 1e6,
            if p.progressive {
                "progressive"
            } else {
                "baseline"
            }
        );
    }
    let out = std::env::temp_dir().join(format!("bench-thumbnail-{}", std::process::id()));
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;

    let (mut o, mut v, mut img, mut avif) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut pure = Vec::new();
    let (mut o_rss, mut v_rss) = (Vec::new(), Vec::new());
    // A warm-up of each, not counted (page cache, lazy binding).
    ours("ours", &out, &batch)?;
    vips(&out, &batch)?;
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            (ours("ours", &out, &batch)?, vips(&out, &batch)?)
        } else {
            let b = vips(&out, &batch)?;
            (ours("ours", &out, &batch)?, b)
        };
        o.push(a.cpu);
        v.push(b.cpu);
        o_rss.push(a.rss_mb);
        v_rss.push(b.rss_mb);
        pure.push(ours("pure", &out, &batch)?.cpu);
        img.push(ours("image", &out, &batch)?.cpu);
        avif.push(ours("avif", &out, &batch)?.cpu);
    }
    let n = batch.len() as f64;
    let ratio = med(&o) / med(&v);
    println!(
        "batch CPU per photo (median of {rounds}): ours {:.1} ms, libvips {:.1} ms, ours with the pure-Rust JPEG decoders {:.1} ms, image crate alone {:.1} ms, ours to AVIF {:.1} ms",
        med(&o) / n * 1e3,
        med(&v) / n * 1e3,
        med(&pure) / n * 1e3,
        med(&img) / n * 1e3,
        med(&avif) / n * 1e3
    );
    println!(
        "batch peak RSS: ours {:.1} MB, libvips {:.1} MB",
        med(&o_rss),
        med(&v_rss)
    );

    let one = std::slice::from_ref(&baseline_4k.path);
    let (mut rss, mut rss_vips, mut rss_pure) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        rss.push(ours("ours", &out, one)?.rss_mb);
        rss_pure.push(ours("pure", &out, one)?.rss_mb);
        rss_vips.push(vips(&out, one)?.rss_mb);
    }
    println!(
        "one 4K baseline JPEG ({}) to 256 px: peak RSS ours {:.1} MB (pure Rust {:.1} MB), libvips {:.1} MB",
        baseline_4k
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        med(&rss),
        med(&rss_pure),
        med(&rss_vips)
    );

    let mut large_fields = String::new();
    for p in large {
        let one = std::slice::from_ref(&p.path);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(ours("ours", &out, one)?.cpu);
            b.push(vips(&out, one)?.cpu);
        }
        let mp = p.pixels as f64 / 1e6;
        println!(
            "{} ({mp:.1} MP): CPU ours {:.1} ms, libvips {:.1} ms",
            p.path.file_name().unwrap_or_default().to_string_lossy(),
            med(&a) * 1e3,
            med(&b) * 1e3
        );
        if large_fields.is_empty() {
            large_fields = format!(
                " large_mp={mp:.1} large_cpu_ratio_vs_libvips={:.2}",
                med(&a) / med(&b)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    println!(
        "RESULT cpu_ratio_vs_libvips={ratio:.2} peak_rss_mb={:.1} pure_rust_cpu_ratio_vs_libvips={:.2} pure_rust_peak_rss_mb={:.1} libvips_peak_rss_mb={:.1} ours_ms_per_photo={:.1} libvips_ms_per_photo={:.1} image_only_cpu_ratio_vs_libvips={:.2} avif_cpu_ratio_vs_libvips={:.2}{large_fields}",
        med(&rss),
        med(&pure) / med(&v),
        med(&rss_pure),
        med(&rss_vips),
        med(&o) / n * 1e3,
        med(&v) / n * 1e3,
        med(&img) / med(&v),
        med(&avif) / med(&v),
    );
    Ok(())
}
