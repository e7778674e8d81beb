//! `bench-thumbnail`: a batch of JPEG photos thumbnailed to 256-pixel WebP
//! at quality 80 on one thread, by our pipeline ([`StandardCodec`]:
//! shrink-on-load, Lanczos3, libwebp; JPEG through libjpeg-turbo, feature
//! `turbojpeg`, and also measured with the pure-Rust decoders that are the
//! default without it) and by libvips, in the same run, two ways:
//!
//! - **in-process** (the headline): libvips through a small C harness
//!   (`benches/c/vips_inprocess.c`, compiled here with `gcc` against
//!   Debian's `libvips-dev`) calling `vips_thumbnail_buffer` (fit within
//!   256 × 256 as our `thumb`: shrink-on-load through libjpeg-turbo with
//!   the same "keep twice the target" rule, auto-rotation, ICC to sRGB) and
//!   `vips_webpsave_buffer` (Q 80, effort 4: libwebp's settings as ours;
//!   metadata dropped, see the harness for libvips 8.14.1's `strip`), with
//!   `VIPS_CONCURRENCY=1` and its operation cache off; ours in a child of
//!   this binary calling [`ImageCodec::decode_for`] and
//!   [`ImageCodec::render`] on the same bytes, with the default codec
//!   (`ours`) and with every scan of progressive JPEGs decoded (`exact`,
//!   [`StandardCodec::with_fast_progressive`] off). Each reads the photos
//!   into memory, makes one untimed warm-up pass, then times only those
//!   calls with `CLOCK_PROCESS_CPUTIME_ID` (every thread of the process
//!   counts). Each photo's CPU time is the median over rounds; the batch
//!   figure is their mean. The 4K baseline JPEG and the 20 MP photo are
//!   reported on their own too.
//! - **quality**: the thumbnails must have the same size on every side;
//!   each is compared (PSNR) with a reference made from the full-scale
//!   decode (every scan, Lanczos3, lossless), and ours with libvips's
//!   (failing below 25 dB: a wrong orientation or colours).
//! - **as processes**: libvips's `vipsthumbnail` CLI (one process over the
//!   whole batch) against a child of this binary, CPU time (user + system)
//!   from `wait4`, so process start-up counts for both. Peak RSS: our
//!   children report their own `VmHWM`; `vipsthumbnail`'s is `ru_maxrss`.
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-thumbnail -- [FOLDER] [--rounds 5] [--heif-only]
//! ```
//!
//! `FOLDER` (default `samples/photos`) is searched for `*.jpg`/`*.jpeg`;
//! photos up to 16 MP form the batch, larger ones (the 20 MP photo) are
//! measured on their own. Rounds alternate the pipelines; figures are
//! medians. Also measured (as processes): the `image` crate alone (full
//! decode, `DynamicImage::resize` Lanczos3, lossless WebP: the only WebP
//! `image` writes), and our AVIF path (speed 8, quality 60).
//!
//! `vipsthumbnail` comes from Debian's `libvips-tools`, the harness needs
//! `libvips-dev`, `gcc` and `pkg-config`; when one is missing, this binary
//! installs it with `apt-get` (as root) or fails.
//!
//! Then HEIC and AVIF (`samples/testdata`) to 256 px WebP in-process, ours
//! (feature `heif`: libheif) against the same libvips harness (libvips
//! reads them through libheif too): `heic_cpu_ratio_vs_libvips`,
//! `heic_peak_rss_mb`, `heic_libvips_peak_rss_mb`,
//! `avif_decode_cpu_ratio_vs_libvips` (AVIF in; `avif_cpu_ratio_vs_libvips`
//! below is our AVIF encoder out).
//!
//! Then smart crop's cost: a 256 × 256 cover variant of each batch photo
//! rendered with the centre crop and with `Gravity::Attention`.
//!
//! Last line: `RESULT cpu_ratio_vs_libvips_inprocess=X peak_rss_mb=Y ...`,
//! where the ratio is our CPU time per photo over libvips's, in-process, on
//! the batch (goal ≤ 0.8), and `peak_rss_mb` our peak RSS for one 4K
//! baseline JPEG to 256 px in its own process (goal ≤ 16 MB). Also:
//! `cpu_ratio_4k_vs_libvips_inprocess`, `cpu_ratio_20mp_vs_libvips_inprocess`
//! with the per-photo milliseconds behind them,
//! `exact_cpu_ratio_vs_libvips_inprocess` (every progressive scan decoded),
//! `psnr_vs_reference_delta_db` (the least, over the photos, of our PSNR
//! against the reference minus libvips's: negative when ours is further
//! from it), `min_psnr_db_vs_libvips`, and the process-level
//! `cpu_ratio_vs_libvips` (vs the CLI) and friends.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use upload_benches::{baseline_thumbnail, median, peak_rss_mb, thread_cpu_secs};
use upload_pipeline::{
    DecodeLimits, Fit, Gravity, ImageCodec, OutputFormat, StandardCodec, VariantSpec,
};

/// The HEIF photos measured against libvips (which reads them through the
/// same libheif): a HEIC (HEVC) and an AVIF (AV1) photo, from
/// `samples/testdata` (licences in `samples/MANIFEST.tsv`).
const HEIF_PHOTOS: [&str; 2] = ["photo_example_1280x854.heic", "photo_example_800x533.avif"];

/// Photos above this many pixels are measured apart from the batch.
const BATCH_MAX_PIXELS: u64 = 16_000_000;

/// The C harness that times libvips in-process (see its header).
const VIPS_HARNESS: &str = include_str!("../../c/vips_inprocess.c");

/// Lowest PSNR accepted between our thumbnail and libvips's: two lossy
/// WebPs of the same picture through different resamplers agree at about
/// 35 to 40 dB; far below, one of them is wrong (orientation, colours).
const MIN_PSNR_DB: f64 = 25.0;

/// Timed passes per in-process run (after one warm-up pass).
const PASSES: usize = 2;

/// CPU seconds and peak RSS of one child process.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: f64,
    rss_mb: f64,
}

/// Runs `command` to completion and reads its own resource usage. The peak
/// RSS is the `vmhwm_kb` line the child prints, when it does (our
/// children: the high-water mark of their own memory map), else
/// `ru_maxrss`, which on Linux also counts the memory map the child was
/// spawned from (this process's, when that is larger).
fn run(mut command: Command) -> Result<Usage, String> {
    use std::io::Read;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout)
            .map_err(|e| format!("{command:?}: {e}"))?;
    }
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
    let own_kb = stdout
        .lines()
        .find_map(|line| line.strip_prefix("vmhwm_kb "))
        .and_then(|kb| kb.trim().parse::<f64>().ok());
    Ok(Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        // Linux reports ru_maxrss in KiB.
        rss_mb: own_kb.unwrap_or(ru.ru_maxrss as f64) / 1024.0,
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
    if let Some(mb) = peak_rss_mb() {
        println!("vmhwm_kb {:.0}", mb * 1024.0);
    }
    Ok(())
}

/// CPU time of this process (all threads) in seconds.
fn process_cpu_seconds() -> f64 {
    // SAFETY: clock_gettime only writes the struct it is given.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// The child timing our codec in-process, with the C harness's protocol:
/// reads `files` into memory, one warm-up pass (thumbnails written to
/// `out/<index>.<pipeline>.webp`, `size INDEX W H BYTES` printed), then
/// `passes` timed passes (`cpu INDEX SECONDS`), then `vmhwm_kb KIB`.
/// `pipeline`: `ours` ([`StandardCodec::default`]) or `exact` (every scan
/// of a progressive JPEG decoded: fast progressive off).
fn child_inprocess(
    pipeline: &str,
    out: &Path,
    passes: usize,
    files: &[String],
) -> Result<(), String> {
    let codec = match pipeline {
        "ours" => StandardCodec::default(),
        "exact" => StandardCodec::default().with_fast_progressive(false),
        other => return Err(format!("unknown pipeline {other}")),
    };
    let thumb = VariantSpec::thumb();
    let limits = DecodeLimits::default();
    let inputs = files
        .iter()
        .map(|f| std::fs::read(f).map_err(|e| format!("{f}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = String::new();
    for pass in 0..=passes {
        for (i, bytes) in inputs.iter().enumerate() {
            let start = process_cpu_seconds();
            let variant = {
                let decoded = codec
                    .decode_for(bytes, &limits, std::slice::from_ref(&thumb))
                    .map_err(|e| format!("{}: {e}", files[i]))?;
                codec
                    .render(&decoded, &thumb)
                    .map_err(|e| format!("{}: {e}", files[i]))?
            };
            let cpu = process_cpu_seconds() - start;
            if pass == 0 {
                std::fs::write(out.join(format!("{i}.{pipeline}.webp")), &variant.bytes)
                    .map_err(|e| e.to_string())?;
                report += &format!(
                    "size {i} {} {} {}\n",
                    variant.width,
                    variant.height,
                    variant.bytes.len()
                );
            } else {
                report += &format!("cpu {i} {cpu:.9}\n");
            }
        }
    }
    let kb = peak_rss_mb().map_or(-1.0, |mb| mb * 1024.0);
    println!("{report}vmhwm_kb {kb:.0}");
    Ok(())
}

/// What one in-process run (ours or the harness) printed.
struct InProcess {
    /// CPU seconds of each timed call, per file.
    cpu: Vec<Vec<f64>>,
    /// Width, height and bytes of each file's thumbnail.
    sizes: Vec<(u32, u32, usize)>,
    /// Peak RSS of the process, MiB.
    rss_mb: f64,
}

/// Runs an in-process timer over `files` files, `passes` timed passes, and
/// parses its report.
fn run_inprocess(mut command: Command, files: usize, passes: usize) -> Result<InProcess, String> {
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{command:?} failed ({})", output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut run = InProcess {
        cpu: vec![Vec::new(); files],
        sizes: vec![(0, 0, 0); files],
        rss_mb: f64::NAN,
    };
    let bad = |line: &str| format!("{command:?}: unexpected line {line:?}");
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let index = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<usize>().ok())
                .filter(|&n| n < files)
                .ok_or_else(|| bad(line))
        };
        let number = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .ok_or_else(|| bad(line))
        };
        match fields.first().copied() {
            Some("cpu") => run.cpu[index(1)?].push(number(2)?),
            Some("size") => {
                run.sizes[index(1)?] = (number(2)? as u32, number(3)? as u32, number(4)? as usize)
            }
            Some("vmhwm_kb") => run.rss_mb = number(1)? / 1024.0,
            _ => return Err(bad(line)),
        }
    }
    if run.cpu.iter().any(|c| c.len() != passes)
        || run.sizes.iter().any(|s| s.0 == 0)
        || run.rss_mb.is_nan()
    {
        return Err(format!("{command:?}: incomplete report"));
    }
    Ok(run)
}

fn ours_inprocess(
    pipeline: &str,
    out: &Path,
    passes: usize,
    files: &[PathBuf],
) -> Result<InProcess, String> {
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command
        .arg("--inprocess")
        .arg(pipeline)
        .arg(out)
        .arg(passes.to_string())
        .args(files);
    run_inprocess(command, files.len(), passes)
}

fn vips_inprocess(
    harness: &Path,
    out: &Path,
    passes: usize,
    files: &[PathBuf],
) -> Result<InProcess, String> {
    let mut command = Command::new(harness);
    command
        .env("VIPS_CONCURRENCY", "1")
        .arg(out)
        .arg(passes.to_string())
        .args(files);
    run_inprocess(command, files.len(), passes)
}

/// Installs Debian `packages` with apt-get; whether that worked.
fn apt_install(packages: &[&str]) -> bool {
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    quiet(&["update", "-qq"])
        && quiet(
            &[
                &["install", "-y", "-qq", "--no-install-recommends"],
                packages,
            ]
            .concat(),
        )
}

/// Compiles the libvips harness into `dir` (installing `libvips-dev`,
/// `gcc` and `pkg-config` when missing) and returns its path.
fn build_vips_harness(dir: &Path) -> Result<PathBuf, String> {
    let ok = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let found = || ok("pkg-config", &["--exists", "vips"]) && ok("gcc", &["--version"]);
    if !found() {
        eprintln!("libvips-dev, gcc or pkg-config missing: installing them");
        if !(apt_install(&["libvips-dev", "gcc", "pkg-config", "libc6-dev"]) && found()) {
            return Err(
                "the libvips harness needs libvips-dev, gcc and pkg-config, and apt-get could not install them"
                    .to_owned(),
            );
        }
    }
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "vips"])
        .output()
        .map_err(|e| format!("pkg-config: {e}"))?;
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    let source = dir.join("vips_inprocess.c");
    let binary = dir.join("vips-inprocess");
    std::fs::write(&source, VIPS_HARNESS).map_err(|e| e.to_string())?;
    let status = Command::new("gcc")
        .arg("-O2")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .args(flags.split_whitespace())
        .status()
        .map_err(|e| format!("gcc: {e}"))?;
    if !status.success() {
        return Err(format!("gcc could not compile {}", source.display()));
    }
    Ok(binary)
}

/// The pixels of a WebP or PNG thumbnail, as 8-bit RGB.
fn thumbnail_rgb(bytes: &[u8]) -> Result<image::RgbImage, String> {
    image::load_from_memory(bytes)
        .map(|i| i.to_rgb8())
        .map_err(|e| format!("decoding a thumbnail: {e}"))
}

/// PSNR in dB between two 8-bit RGB images of the same size.
fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> Result<f64, String> {
    if a.dimensions() != b.dimensions() {
        return Err(format!(
            "thumbnail sizes differ: {:?} vs {:?}",
            a.dimensions(),
            b.dimensions()
        ));
    }
    let squares: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = squares / a.as_raw().len() as f64;
    Ok(10.0 * (255.0 * 255.0 / mse.max(1e-12)).log10())
}

/// The child writing the reference thumbnail of each of `files` to
/// `out/<index>.reference.png`: decoded at full scale (every scan, no
/// shrink-on-load), Lanczos3 into 256 × 256, lossless. A child, so that
/// the full-scale pixels never count in this process's memory (which
/// `ru_maxrss` of `vipsthumbnail` would include).
fn child_reference(out: &Path, files: &[String]) -> Result<(), String> {
    let codec = StandardCodec::default().with_fast_progressive(false);
    let spec =
        VariantSpec::new("reference", 256, 256, OutputFormat::Png).map_err(|e| e.to_string())?;
    for (i, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        let decoded = codec
            .decode(&bytes, &DecodeLimits::default())
            .map_err(|e| format!("{file}: {e}"))?;
        let png = codec
            .render(&decoded, &spec)
            .map_err(|e| format!("{file}: {e}"))?;
        std::fs::write(out.join(format!("{i}.reference.png")), &png.bytes)
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
    if apt_install(&["libvips-tools"]) && found() {
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

/// Smart crop's added cost: each photo decoded once for a 256 × 256
/// cover variant, then rendered `rounds` times with the centre crop and
/// with [`Gravity::Attention`], alternating; the medians' difference per
/// photo, averaged over the batch (in-process, one thread, the thread's
/// CPU time, so that a busy machine does not count other work).
fn smart_crop(batch: &[PathBuf], rounds: usize) -> Result<String, String> {
    let codec = StandardCodec::default();
    let centre = VariantSpec::new("c", 256, 256, OutputFormat::WebP { quality: 80.0 })
        .map_err(|e| e.to_string())?
        .with_fit(Fit::Cover);
    let smart = centre.clone().with_gravity(Gravity::Attention);
    let (mut added, mut base) = (Vec::new(), Vec::new());
    for path in batch {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let decoded = codec
            .decode_for(
                &bytes,
                &DecodeLimits::default(),
                std::slice::from_ref(&centre),
            )
            .map_err(|e| e.to_string())?;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds.max(3) * 3 {
            for (spec, times) in [(&centre, &mut a), (&smart, &mut b)] {
                let started = thread_cpu_secs();
                codec.render(&decoded, spec).map_err(|e| e.to_string())?;
                times.push((thread_cpu_secs() - started) * 1e3);
            }
        }
        let (a, b) = (med(&a), med(&b));
        println!(
            "smart crop, {} ({}x{} decoded): cover {a:.2} ms CPU, cover-attention {b:.2} ms CPU",
            path.file_name().unwrap_or_default().to_string_lossy(),
            decoded.width(),
            decoded.height()
        );
        added.push(b - a);
        base.push(a);
    }
    let n = added.len().max(1) as f64;
    Ok(format!(
        " smart_crop_added_ms_per_photo={:.2} smart_crop_render_ratio={:.2}",
        added.iter().sum::<f64>() / n,
        (added.iter().sum::<f64>() + base.iter().sum::<f64>()) / base.iter().sum::<f64>()
    ))
}

/// HEIC and AVIF to a 256-pixel WebP, in-process, ours (feature `heif`:
/// libheif decoding, then our resize and encoder) against the libvips
/// harness, rounds alternating; both must give the same size and agree
/// to [`MIN_PSNR_DB`]. Returns the RESULT fields: `heic_cpu_ratio_vs_libvips`
/// (ours over libvips, CPU per HEIC photo), `heic_peak_rss_mb` and
/// `heic_libvips_peak_rss_mb` (each process's own high-water mark over
/// the HEIC photo alone), and the same ratio for the AVIF photo.
fn heif_inprocess(harness: &Path, out: &Path, rounds: usize) -> Result<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/testdata");
    let files: Vec<PathBuf> = HEIF_PHOTOS.iter().map(|f| dir.join(f)).collect();
    let (mut ours_cpu, mut vips_cpu) =
        (vec![Vec::new(); files.len()], vec![Vec::new(); files.len()]);
    let (mut ours_sizes, mut vips_sizes) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = ours_inprocess("ours", out, PASSES, &files)?;
            (a, vips_inprocess(harness, out, PASSES, &files)?)
        } else {
            let b = vips_inprocess(harness, out, PASSES, &files)?;
            (ours_inprocess("ours", out, PASSES, &files)?, b)
        };
        for i in 0..files.len() {
            ours_cpu[i].extend(&a.cpu[i]);
            vips_cpu[i].extend(&b.cpu[i]);
        }
        (ours_sizes, vips_sizes) = (a.sizes, b.sizes);
    }
    let mut fields = String::new();
    for (i, name) in HEIF_PHOTOS.iter().enumerate() {
        let ((ow, oh, ob), (vw, vh, vb)) = (ours_sizes[i], vips_sizes[i]);
        // libvips may start from the HEIF's own embedded thumbnail and
        // round a side the other way: one pixel apart is the same picture,
        // compared after resampling ours to libvips's size.
        if ow.abs_diff(vw) > 1 || oh.abs_diff(vh) > 1 {
            return Err(format!(
                "{name}: our thumbnail is {ow}x{oh}, libvips's {vw}x{vh}"
            ));
        }
        let read = |file: String| {
            std::fs::read(out.join(file))
                .map_err(|e| e.to_string())
                .and_then(|bytes| thumbnail_rgb(&bytes))
                .map(|img| {
                    if img.dimensions() == (vw, vh) {
                        img
                    } else {
                        image::imageops::resize(&img, vw, vh, image::imageops::Lanczos3)
                    }
                })
        };
        let db = psnr(
            &read(format!("{i}.ours.webp"))?,
            &read(format!("{i}.vips.webp"))?,
        )?;
        if db < MIN_PSNR_DB {
            return Err(format!(
                "{name}: our thumbnail differs from libvips's (PSNR {db:.1} dB)"
            ));
        }
        let (o, v) = (med(&ours_cpu[i]) * 1e3, med(&vips_cpu[i]) * 1e3);
        println!(
            "in-process {name}: ours {o:.1} ms, libvips {v:.1} ms ({:.2}x); {ow}x{oh}; {ob} vs {vb} bytes; ours vs libvips {db:.1} dB",
            o / v
        );
        let kind = if name.ends_with(".heic") {
            "heic"
        } else {
            "avif_decode"
        };
        fields += &format!(
            " {kind}_cpu_ratio_vs_libvips={:.2} {kind}_ours_ms={o:.1} {kind}_libvips_ms={v:.1}",
            o / v
        );
    }
    let heic = std::slice::from_ref(&files[0]);
    let (mut o_rss, mut v_rss) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        o_rss.push(ours_inprocess("ours", out, 0, heic)?.rss_mb);
        v_rss.push(vips_inprocess(harness, out, 0, heic)?.rss_mb);
    }
    println!(
        "one HEIC ({}) to 256 px, in-process: peak RSS ours {:.1} MB, libvips {:.1} MB",
        HEIF_PHOTOS[0],
        med(&o_rss),
        med(&v_rss)
    );
    fields += &format!(
        " heic_peak_rss_mb={:.1} heic_libvips_peak_rss_mb={:.1}",
        med(&o_rss),
        med(&v_rss)
    );
    Ok(fields)
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
    if args.first().map(String::as_str) == Some("--reference") {
        return match args.get(1) {
            Some(out) => match child_reference(Path::new(out), &args[2..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("child: {e}");
                    ExitCode::FAILURE
                }
            },
            None => ExitCode::from(2),
        };
    }
    if args.first().map(String::as_str) == Some("--inprocess") {
        let passes = args.get(3).and_then(|p| p.parse().ok());
        return match (args.get(1), args.get(2), passes) {
            (Some(pipeline), Some(out), Some(passes)) => {
                match child_inprocess(pipeline, Path::new(out), passes, &args[4..]) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("child: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            _ => ExitCode::from(2),
        };
    }
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
    let usage = "usage: bench-thumbnail [FOLDER] [--rounds N] [--heif-only]";
    let mut heif_only = false;
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
            "--heif-only" => heif_only = true,
            "-h" | "--help" => return Err(usage.to_owned()),
            other => folder = PathBuf::from(other),
        }
    }
    ensure_vipsthumbnail()?;
    if heif_only {
        let out = std::env::temp_dir().join(format!("bench-thumbnail-{}", std::process::id()));
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let harness = build_vips_harness(&out)?;
        let fields = heif_inprocess(&harness, &out, rounds)?;
        let _ = std::fs::remove_dir_all(&out);
        println!("RESULT{fields}");
        return Ok(());
    }
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
    let harness = build_vips_harness(&out)?;

    // In-process: only the thumbnail calls are timed, on every side.
    let files: Vec<PathBuf> = all.iter().map(|p| p.path.clone()).collect();
    let name = |i: usize| {
        files[i]
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let samples = || vec![Vec::new(); files.len()];
    let (mut ours_cpu, mut exact_cpu, mut vips_cpu) = (samples(), samples(), samples());
    let (mut ours_sizes, mut exact_sizes, mut vips_sizes) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, e, b) = if round % 2 == 0 {
            let a = ours_inprocess("ours", &out, PASSES, &files)?;
            let e = ours_inprocess("exact", &out, PASSES, &files)?;
            (a, e, vips_inprocess(&harness, &out, PASSES, &files)?)
        } else {
            let b = vips_inprocess(&harness, &out, PASSES, &files)?;
            let e = ours_inprocess("exact", &out, PASSES, &files)?;
            (ours_inprocess("ours", &out, PASSES, &files)?, e, b)
        };
        for i in 0..files.len() {
            ours_cpu[i].extend(&a.cpu[i]);
            exact_cpu[i].extend(&e.cpu[i]);
            vips_cpu[i].extend(&b.cpu[i]);
        }
        (ours_sizes, exact_sizes, vips_sizes) = (a.sizes, e.sizes, b.sizes);
    }
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command.arg("--reference").arg(&out).args(&files);
    run(command)?;
    let ms = |cpu: &[Vec<f64>]| cpu.iter().map(|c| med(c) * 1e3).collect::<Vec<f64>>();
    let (ours_ms, exact_ms, vips_ms) = (ms(&ours_cpu), ms(&exact_cpu), ms(&vips_cpu));
    println!(
        "in-process CPU per photo (median of {} calls each; \"exact\": ours decoding every progressive scan), thumbnail size, bytes, PSNR against the reference (full-scale decode, Lanczos3, lossless) and ours against libvips:",
        rounds * PASSES
    );
    let (mut min_psnr, mut min_delta) = (f64::INFINITY, f64::INFINITY);
    for i in 0..files.len() {
        let ((ow, oh, ob), (vw, vh, vb)) = (ours_sizes[i], vips_sizes[i]);
        if (ow, oh) != (vw, vh) || (ow, oh) != (exact_sizes[i].0, exact_sizes[i].1) {
            return Err(format!(
                "{}: our thumbnail is {ow}x{oh}, libvips's {vw}x{vh}",
                name(i)
            ));
        }
        let read = |file: String| {
            std::fs::read(out.join(file))
                .map_err(|e| e.to_string())
                .and_then(|bytes| thumbnail_rgb(&bytes))
        };
        let (o, e, v) = (
            read(format!("{i}.ours.webp"))?,
            read(format!("{i}.exact.webp"))?,
            read(format!("{i}.vips.webp"))?,
        );
        let reference = read(format!("{i}.reference.png"))?;
        let db = psnr(&o, &v)?;
        if db < MIN_PSNR_DB {
            return Err(format!(
                "{}: our thumbnail differs from libvips's (PSNR {db:.1} dB)",
                name(i)
            ));
        }
        let (o_ref, e_ref, v_ref) = (
            psnr(&o, &reference)?,
            psnr(&e, &reference)?,
            psnr(&v, &reference)?,
        );
        min_psnr = min_psnr.min(db);
        min_delta = min_delta.min(o_ref - v_ref);
        println!(
            "  {}: ours {:.1} ms, exact {:.1} ms, libvips {:.1} ms ({:.2}x, exact {:.2}x); {ow}x{oh}; {ob} vs {vb} bytes; vs reference: ours {o_ref:.2} dB, exact {e_ref:.2} dB, libvips {v_ref:.2} dB; ours vs libvips {db:.1} dB",
            name(i),
            ours_ms[i],
            exact_ms[i],
            vips_ms[i],
            ours_ms[i] / vips_ms[i],
            exact_ms[i] / vips_ms[i],
        );
    }
    let in_batch: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].pixels <= BATCH_MAX_PIXELS)
        .collect();
    let mean = |ms: &[f64]| in_batch.iter().map(|&i| ms[i]).sum::<f64>() / in_batch.len() as f64;
    let (ours_batch_ms, exact_batch_ms, vips_batch_ms) =
        (mean(&ours_ms), mean(&exact_ms), mean(&vips_ms));
    let inprocess_ratio = ours_batch_ms / vips_batch_ms;
    let exact_ratio = exact_batch_ms / vips_batch_ms;
    println!(
        "in-process batch CPU per photo: ours {ours_batch_ms:.1} ms, exact {exact_batch_ms:.1} ms, libvips {vips_batch_ms:.1} ms: {inprocess_ratio:.2}x (exact {exact_ratio:.2}x)"
    );
    let i4k = all
        .iter()
        .position(|p| p.path == baseline_4k.path)
        .unwrap_or_default();
    let mut size_fields = format!(
        " cpu_ratio_4k_vs_libvips_inprocess={:.2} ours_4k_ms={:.1} libvips_4k_ms={:.1}",
        ours_ms[i4k] / vips_ms[i4k],
        ours_ms[i4k],
        vips_ms[i4k]
    );
    if let Some(i) = all.iter().position(|p| p.pixels > BATCH_MAX_PIXELS) {
        size_fields += &format!(
            " cpu_ratio_20mp_vs_libvips_inprocess={:.2} ours_20mp_ms={:.1} libvips_20mp_ms={:.1}",
            ours_ms[i] / vips_ms[i],
            ours_ms[i],
            vips_ms[i]
        );
    }
    let one_4k = std::slice::from_ref(&baseline_4k.path);
    let vips_inprocess_rss = med(&(0..rounds)
        .map(|_| vips_inprocess(&harness, &out, 0, one_4k).map(|r| r.rss_mb))
        .collect::<Result<Vec<_>, _>>()?);

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
        "as processes (start-up counted), batch CPU per photo (median of {rounds}): ours {:.1} ms, vipsthumbnail {:.1} ms, ours with the pure-Rust JPEG decoders {:.1} ms, image crate alone {:.1} ms, ours to AVIF {:.1} ms",
        med(&o) / n * 1e3,
        med(&v) / n * 1e3,
        med(&pure) / n * 1e3,
        med(&img) / n * 1e3,
        med(&avif) / n * 1e3
    );
    println!(
        "as processes, batch peak RSS: ours {:.1} MB, vipsthumbnail {:.1} MB",
        med(&o_rss),
        med(&v_rss)
    );

    let one = one_4k;
    let (mut rss, mut rss_vips, mut rss_pure) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        rss.push(ours("ours", &out, one)?.rss_mb);
        rss_pure.push(ours("pure", &out, one)?.rss_mb);
        rss_vips.push(vips(&out, one)?.rss_mb);
    }
    println!(
        "one 4K baseline JPEG ({}) to 256 px: peak RSS ours {:.1} MB (pure Rust {:.1} MB), vipsthumbnail {:.1} MB, libvips in-process harness {vips_inprocess_rss:.1} MB",
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
            "as processes, {} ({mp:.1} MP): CPU ours {:.1} ms, vipsthumbnail {:.1} ms",
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
    let heif_fields = heif_inprocess(&harness, &out, rounds)?;
    let _ = std::fs::remove_dir_all(&out);
    let smart_fields = smart_crop(&batch, rounds)?;
    println!(
        "RESULT cpu_ratio_vs_libvips_inprocess={inprocess_ratio:.2} peak_rss_mb={:.1} ours_inprocess_ms_per_photo={ours_batch_ms:.1} libvips_inprocess_ms_per_photo={vips_batch_ms:.1}{size_fields} exact_cpu_ratio_vs_libvips_inprocess={exact_ratio:.2} exact_inprocess_ms_per_photo={exact_batch_ms:.1} min_psnr_db_vs_libvips={min_psnr:.1} psnr_vs_reference_delta_db={min_delta:.2} libvips_inprocess_peak_rss_mb={vips_inprocess_rss:.1} cpu_ratio_vs_libvips={ratio:.2} pure_rust_cpu_ratio_vs_libvips={:.2} pure_rust_peak_rss_mb={:.1} libvips_peak_rss_mb={:.1} ours_ms_per_photo={:.1} libvips_ms_per_photo={:.1} image_only_cpu_ratio_vs_libvips={:.2} avif_cpu_ratio_vs_libvips={:.2}{large_fields}{heif_fields}{smart_fields}",
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
