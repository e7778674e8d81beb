//! `bench-media`: the previews of features `video` and `pdf` against the
//! command a user would otherwise run by hand, in the same run.
//!
//! - **Video poster**: a 1080p H.264 + AAC clip of 10 s (made here by
//!   ffmpeg from its `testsrc2` and `sine` sources, so no file is needed)
//!   through [`VideoProcessor`] with the default variants (`thumb` 256 and
//!   `medium` 1024 WebP): ffprobe, then one frame at 1 s decoded by ffmpeg
//!   to PNG, then our resize and WebP encoder. The baseline is one ffmpeg
//!   call writing the same two WebP sizes from the frame at 1 s
//!   (`-ss 1 -i clip -filter_complex split,scale ... -frames:v 1`), which
//!   neither probes nor checks limits.
//! - **PDF first page**: a 3-page letter-size PDF (`samples/media`)
//!   through [`PdfProcessor`] (pdfinfo, then `pdftoppm -scale-to`, our
//!   encoders) against `pdftoppm -singlefile -png -scale-to 1024` alone.
//!
//! Wall time per file (median over rounds, alternating ours and the
//! baseline), and the poster's peak RSS, measured in a fresh child of this
//! binary: its largest tool child's (`ru_maxrss` of `RUSAGE_CHILDREN`:
//! ffprobe or ffmpeg) and the processing process's own (`VmHWM`).
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-media [-- --rounds 5]
//! ```
//!
//! Needs ffmpeg and poppler-utils (installed with `apt-get` when missing,
//! as root). Last line: `RESULT video_poster_wall_ms=W
//! video_poster_peak_rss_mb=R video_poster_ratio_vs_ffmpeg_cli=X
//! ffmpeg_cli_wall_ms=F pdf_first_page_wall_ms=P
//! pdf_first_page_ratio_vs_pdftoppm_cli=Y pdftoppm_cli_wall_ms=Q
//! video_poster_process_peak_rss_mb=O`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use upload_benches::peak_rss_mb;
use upload_pipeline::media::{PdfProcessor, VideoProcessor};
use upload_pipeline::{ImageCodec, MediaInput, MediaProcessor, StandardCodec, VariantSpec};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = match args.first().map(String::as_str) {
        Some("--poster-rss") if args.len() == 2 => poster_rss(Path::new(&args[1])),
        _ => bench(&args),
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-media: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Installs Debian packages when a tool is missing.
fn ensure_tools() -> Result<(), String> {
    let have = |t: &str| {
        Command::new(t)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let mut missing = Vec::new();
    if !have("ffmpeg") || !have("ffprobe") {
        missing.push("ffmpeg");
    }
    if !have("pdftoppm") || !have("pdfinfo") {
        missing.push("poppler-utils");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing {} with apt-get", missing.join(" "));
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} missing and could not be installed",
            missing.join(" ")
        ))
    }
}

/// Runs `command`, failing with its stderr.
fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The largest resident set of any waited-for child so far, MiB.
fn children_peak_rss_mb() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a zeroed rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return f64::NAN;
    }
    usage.ru_maxrss as f64 / 1024.0
}

/// The child that measures one poster's memory alone: runs the
/// [`VideoProcessor`] once on `clip` and prints `rss TOOLS_MB OWN_MB` (the
/// largest tool child's `ru_maxrss`, this process's `VmHWM`).
fn poster_rss(clip: &Path) -> Result<(), String> {
    let bytes = Bytes::from(std::fs::read(clip).map_err(|e| e.to_string())?);
    let codec: Arc<dyn ImageCodec> = Arc::new(StandardCodec::default());
    VideoProcessor::new(codec)
        .process(MediaInput::new(
            bytes,
            "video/mp4",
            vec![VariantSpec::thumb(), VariantSpec::medium()],
        ))
        .map_err(|e| format!("VideoProcessor: {e}"))?;
    println!(
        "rss {:.1} {:.1}",
        children_peak_rss_mb(),
        peak_rss_mb().unwrap_or(f64::NAN)
    );
    Ok(())
}

fn med(v: &mut [f64]) -> f64 {
    upload_benches::median(v).unwrap_or(f64::NAN)
}

/// Wall milliseconds of `f`.
fn timed<T>(f: impl FnOnce() -> Result<T, String>) -> Result<(f64, T), String> {
    let start = Instant::now();
    let out = f()?;
    Ok((start.elapsed().as_secs_f64() * 1e3, out))
}

fn bench(args: &[String]) -> Result<(), String> {
    let mut rounds = 5usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("usage: bench-media [--rounds N]")?
            }
            _ => return Err("usage: bench-media [--rounds N]".into()),
        }
    }
    ensure_tools()?;
    let dir = std::env::temp_dir().join(format!("bench-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = measure(&dir, rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(dir: &Path, rounds: usize) -> Result<(), String> {
    let clip = dir.join("clip_1080p_10s.mp4");
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30:duration=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=10",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&clip))?;
    let clip_bytes = Bytes::from(std::fs::read(&clip).map_err(|e| e.to_string())?);
    let pdf: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/media/generated_letter_3pages.pdf");
    let pdf_bytes =
        Bytes::from(std::fs::read(&pdf).map_err(|e| format!("{}: {e}", pdf.display()))?);
    println!(
        "video: 1920x1080 H.264/AAC, 10 s, {} bytes; pdf: {} ({} bytes)",
        clip_bytes.len(),
        pdf.display(),
        pdf_bytes.len()
    );

    let codec: Arc<dyn ImageCodec> = Arc::new(StandardCodec::default());
    let video = VideoProcessor::new(codec.clone());
    let pdfp = PdfProcessor::new(codec);
    let variants: Arc<[VariantSpec]> = vec![VariantSpec::thumb(), VariantSpec::medium()].into();

    let ours_video = || {
        timed(|| {
            let p = video
                .process(MediaInput::new(
                    clip_bytes.clone(),
                    "video/mp4",
                    variants.clone(),
                ))
                .map_err(|e| format!("VideoProcessor: {e}"))?;
            let dims: Vec<(u32, u32)> = p
                .variants
                .iter()
                .map(|(_, v)| (v.width, v.height))
                .collect();
            if dims != [(256, 144), (1024, 576)] {
                return Err(format!("poster variants are {dims:?}"));
            }
            Ok(())
        })
    };
    let cli_video = || {
        timed(|| {
            run(Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-y", "-ss", "1", "-i"])
                .arg(&clip)
                .args([
                    "-filter_complex",
                    "[0:v]split=2[a][b];[a]scale=256:-2[t];[b]scale=1024:-2[m]",
                    "-map",
                    "[t]",
                    "-frames:v",
                    "1",
                    "-c:v",
                    "libwebp",
                    "-quality",
                    "80",
                ])
                .arg(dir.join("t.webp"))
                .args([
                    "-map",
                    "[m]",
                    "-frames:v",
                    "1",
                    "-c:v",
                    "libwebp",
                    "-quality",
                    "80",
                ])
                .arg(dir.join("m.webp")))
        })
    };
    let ours_pdf = || {
        timed(|| {
            let p = pdfp
                .process(MediaInput::new(
                    pdf_bytes.clone(),
                    "application/pdf",
                    variants.clone(),
                ))
                .map_err(|e| format!("PdfProcessor: {e}"))?;
            if p.variants.len() != 2 {
                return Err(format!("{} PDF variants", p.variants.len()));
            }
            Ok(())
        })
    };
    let cli_pdf = || {
        timed(|| {
            run(Command::new("pdftoppm")
                .args([
                    "-f",
                    "1",
                    "-l",
                    "1",
                    "-singlefile",
                    "-png",
                    "-scale-to",
                    "1024",
                ])
                .arg(&pdf)
                .arg(dir.join("page")))
        })
    };

    // One warm-up of each (page cache, lazy binding), not counted.
    ours_video()?;
    cli_video()?;
    ours_pdf()?;
    cli_pdf()?;
    let (mut ov, mut cv, mut op, mut cp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            ov.push(ours_video()?.0);
            cv.push(cli_video()?.0);
            op.push(ours_pdf()?.0);
            cp.push(cli_pdf()?.0);
        } else {
            cv.push(cli_video()?.0);
            ov.push(ours_video()?.0);
            cp.push(cli_pdf()?.0);
            op.push(ours_pdf()?.0);
        }
    }
    // The poster's memory, measured alone in a fresh process of this
    // binary (this one's children include the clip's encoder).
    let (mut tools, mut own) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let out = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .arg("--poster-rss")
            .arg(&clip)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<f64> = text
            .strip_prefix("rss ")
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|f| f.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if !out.status.success() || fields.len() != 2 {
            return Err(format!("--poster-rss failed ({}): {text}", out.status));
        }
        tools.push(fields[0]);
        own.push(fields[1]);
    }
    let (tools_rss, own) = (med(&mut tools), med(&mut own));
    let (ov, cv, op, cp) = (med(&mut ov), med(&mut cv), med(&mut op), med(&mut cp));
    println!(
        "video poster (probe + frame + 2 WebP): ours {ov:.0} ms, ffmpeg CLI (frame + 2 WebP) {cv:.0} ms: {:.2}x",
        ov / cv
    );
    println!(
        "PDF first page (info + render + 2 WebP): ours {op:.0} ms, pdftoppm CLI (render only) {cp:.0} ms: {:.2}x",
        op / cp
    );
    println!(
        "video poster peak RSS: ffprobe/ffmpeg child {tools_rss:.1} MB, the processing process {own:.1} MB"
    );
    println!(
        "RESULT video_poster_wall_ms={ov:.0} video_poster_peak_rss_mb={tools_rss:.1} video_poster_ratio_vs_ffmpeg_cli={:.2} ffmpeg_cli_wall_ms={cv:.0} pdf_first_page_wall_ms={op:.0} pdf_first_page_ratio_vs_pdftoppm_cli={:.2} pdftoppm_cli_wall_ms={cp:.0} video_poster_process_peak_rss_mb={own:.1}",
        ov / cv,
        op / cp
    );
    Ok(())
}
