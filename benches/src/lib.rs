//! Shared helpers of the upload SDK's benchmarks.
//!
//! - [`PHOTO`]: the real photo the thumbnail benchmarks use, and
//!   [`read_sample`] to load any file of `samples/`.
//! - [`ours_thumbnail`] and [`baseline_thumbnail`]: the two pipelines that
//!   the `thumbnail` bench and binary compare.
//! - [`median`] and [`peak_rss_mb`]: the statistics the `thumbnail` binary
//!   prints; [`cpu_seconds`]: this process's CPU time;
//!   [`thread_cpu_secs`]: this thread's, the clock of the per-core rates.
//! - [`servers`]: moto, s3s-fs and clamd, from the environment or started.
//! - [`shaper`]: a TCP proxy that gives each connection a bandwidth cap
//!   and a delay, like a long-distance link, and [`sink_s3`]: the S3
//!   server behind it (`bench-multipart`).
//!
//! The two thumbnail pipelines do **not** produce the same bytes, and the
//! comparison should be read with that in mind:
//!
//! | step    | [`ours_thumbnail`] (`StandardCodec`)             | [`baseline_thumbnail`] (`image` alone)   |
//! |---------|--------------------------------------------------|------------------------------------------|
//! | decode  | shrink-on-load under [`DecodeLimits`], EXIF, ICC | `image::load_from_memory`, no limits     |
//! | resize  | `fast_image_resize`, Lanczos3                     | `DynamicImage::resize`, Lanczos3         |
//! | encode  | libwebp, **lossy** quality 80                     | `image`'s `WebPEncoder::new_lossless`    |
//!
//! `image` 0.25 can only write **lossless** WebP (its encoder is the pure
//! Rust `image-webp`, which has no lossy mode), so the baseline's output is
//! several times larger than ours for the same 256-px thumbnail.

#![warn(missing_docs)]

pub mod servers;
pub mod shaper;
pub mod sink_s3;

use std::io::Cursor;

use image::DynamicImage;
use image::codecs::webp::WebPEncoder;
use image::imageops::FilterType;
use upload_pipeline::{DecodeLimits, ImageCodec, StandardCodec, VariantSpec};

/// Path of the photo the thumbnail benchmarks render: a real 2560 × 1600
/// progressive JPEG (698 KB) from the KDE wallpapers, with EXIF and GPS.
pub const PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../samples/photos/photo_colorfulcups_2560x1600_gps.jpg"
);

/// Reads a file of the workspace's `samples/` folder, e.g.
/// `read_sample("photos/transparent.png")`.
///
/// # Panics
/// If the file cannot be read: a benchmark without its input is a bug.
pub fn read_sample(relative: &str) -> Vec<u8> {
    let path = format!("{}/../samples/{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Our thumbnail: [`ImageCodec::decode_for`] the thumb under
/// [`DecodeLimits::default`] (shrink-on-load for JPEG), then
/// [`ImageCodec::render`] with [`VariantSpec::thumb`] (fits 256 × 256,
/// lossy WebP at quality 80). Returns the WebP bytes.
///
/// # Panics
/// If the codec fails on `bytes`.
pub fn ours_thumbnail(codec: &StandardCodec, bytes: &[u8]) -> Vec<u8> {
    let thumb = VariantSpec::thumb();
    let decoded = codec
        .decode_for(
            bytes,
            &DecodeLimits::default(),
            std::slice::from_ref(&thumb),
        )
        .expect("StandardCodec decodes the photo");
    let thumb = codec
        .render(&decoded, &thumb)
        .expect("StandardCodec renders the thumb");
    thumb.bytes.to_vec()
}

/// The baseline: the `image` crate alone. `image::load_from_memory`, then
/// [`DynamicImage::resize`] to fit 256 × 256 with
/// [`FilterType::Lanczos3`], then `image::codecs::webp::WebPEncoder::new_lossless`
/// (the only WebP encoder `image` 0.25 has). Returns the WebP bytes.
///
/// # Panics
/// If `image` fails to decode or encode.
pub fn baseline_thumbnail(bytes: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory(bytes).expect("image decodes the photo");
    let thumb = img.resize(256, 256, FilterType::Lanczos3);
    // WebP holds 8-bit RGB or RGBA only.
    let thumb = if thumb.color().has_alpha() {
        DynamicImage::ImageRgba8(thumb.into_rgba8())
    } else {
        DynamicImage::ImageRgb8(thumb.into_rgb8())
    };
    let mut out = Vec::new();
    thumb
        .write_with_encoder(WebPEncoder::new_lossless(Cursor::new(&mut out)))
        .expect("image encodes lossless WebP");
    out
}

/// The median of `samples` (the mean of the two middle values when their
/// count is even); `None` when `samples` is empty. Sorts `samples` in place.
pub fn median(samples: &mut [f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    Some(if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2.0
    } else {
        samples[mid]
    })
}

/// CPU time the calling thread has used, in seconds
/// (`CLOCK_THREAD_CPUTIME_ID`): unlike wall time, it does not count the
/// time the thread waited for a core, so rates timed with it are per core
/// even on a busy machine. `NaN` if the clock cannot be read.
pub fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// This process's peak resident set size in MiB, from the `VmHWM` line of
/// `/proc/self/status` (Linux only); `None` where that file or line is
/// missing.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm_kb(&status).map(|kb| kb as f64 / 1024.0)
}

/// CPU time (user + system) this process has used so far, all its
/// threads, in seconds (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The `VmHWM:  123456 kB` value of a `/proc/<pid>/status` text, in kB.
fn parse_vm_hwm_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  200 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm_kb(status), Some(2048));
        assert_eq!(parse_vm_hwm_kb("Name:\tx\n"), None);
        assert!(peak_rss_mb().is_some_and(|mb| mb > 0.0));
    }

    #[test]
    fn both_pipelines_make_a_256px_webp() {
        let photo = std::fs::read(PHOTO).unwrap();
        let codec = StandardCodec::default();
        for webp in [ours_thumbnail(&codec, &photo), baseline_thumbnail(&photo)] {
            let img = image::load_from_memory_with_format(&webp, image::ImageFormat::WebP).unwrap();
            assert_eq!((img.width(), img.height()), (256, 160));
        }
    }
}
