//! One-shot thumbnail benchmark: our [`upload_pipeline::StandardCodec`]
//! against the `image` crate alone, on the same real photo in the same run.
//!
//! ```text
//! cargo run --release -p upload-benches --bin thumbnail [ITERATIONS]
//! ```
//!
//! Each pipeline is warmed up, then run `ITERATIONS` times (default 15),
//! the two alternating so that neither gets a quieter machine. It prints
//! each pipeline's median, the speedup (baseline median / our median) and
//! the process's peak RSS (`VmHWM`), and ends with exactly one line:
//!
//! ```text
//! RESULT ours_median_ms=... baseline_median_ms=... speedup=... peak_rss_mb=...
//! ```
//!
//! The baseline writes lossless WebP (the only WebP `image` 0.25 encodes),
//! ours lossy WebP at quality 80; see the `upload_benches` crate docs.

use std::process::ExitCode;
use std::time::Instant;

use upload_benches::{PHOTO, baseline_thumbnail, median, ours_thumbnail, peak_rss_mb};
use upload_pipeline::StandardCodec;

const WARM_UP: usize = 2;
const DEFAULT_ITERATIONS: usize = 15;

fn main() -> ExitCode {
    let iterations = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => DEFAULT_ITERATIONS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: thumbnail [ITERATIONS > 0]");
            return ExitCode::from(2);
        }
    };
    let photo = match std::fs::read(PHOTO) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("reading {PHOTO}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let codec = StandardCodec::default();
    println!(
        "photo: {PHOTO} ({} bytes); {WARM_UP} warm-up + {iterations} timed runs each",
        photo.len()
    );

    let mut ours_len = 0;
    let mut baseline_len = 0;
    for _ in 0..WARM_UP {
        ours_len = ours_thumbnail(&codec, &photo).len();
        baseline_len = baseline_thumbnail(&photo).len();
    }

    let mut ours_ms = Vec::with_capacity(iterations);
    let mut baseline_ms = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        std::hint::black_box(ours_thumbnail(&codec, std::hint::black_box(&photo)));
        ours_ms.push(start.elapsed().as_secs_f64() * 1e3);

        let start = Instant::now();
        std::hint::black_box(baseline_thumbnail(std::hint::black_box(&photo)));
        baseline_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }

    let range = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    };
    let (ours_min, ours_max) = range(&ours_ms);
    let (base_min, base_max) = range(&baseline_ms);
    let ours = median(&mut ours_ms).expect("iterations > 0");
    let baseline = median(&mut baseline_ms).expect("iterations > 0");
    let speedup = baseline / ours;
    let rss = peak_rss_mb().unwrap_or(f64::NAN);

    println!(
        "upload_pipeline (StandardCodec, lossy WebP q80): median {ours:.2} ms \
         (min {ours_min:.2}, max {ours_max:.2}), thumbnail {ours_len} bytes"
    );
    println!(
        "image_crate (resize Lanczos3, lossless WebP):   median {baseline:.2} ms \
         (min {base_min:.2}, max {base_max:.2}), thumbnail {baseline_len} bytes"
    );
    println!("speedup (baseline / ours): {speedup:.2}x; peak RSS {rss:.1} MiB");
    println!(
        "RESULT ours_median_ms={ours:.2} baseline_median_ms={baseline:.2} \
         speedup={speedup:.2} peak_rss_mb={rss:.1}"
    );
    ExitCode::SUCCESS
}
