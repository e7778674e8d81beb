//! Peak heap of decodes, measured by a counting global allocator (this
//! test binary's own), on the inputs the `image_decode` fuzz target found.
//!
//! `tests/data/fuzz/image_decode-webp-huffman-groups.webp`: 11 KB, a
//! 200×150 WebP whose lossless alpha plane declares 65,536 prefix-code
//! groups; image-webp builds ~270 MB of tables for it, outside the
//! `image` crate's allocation limits. The codec now reserves
//! `WEBP_LOSSLESS_TABLES` from `max_alloc` for every lossless WebP.
//!
//! `tests/data/fuzz/image_decode-webp-frame-larger-than-canvas.webp`:
//! 3.6 KB, a 128×128 `VP8X` canvas over a `VP8 ` bitstream that declares
//! a much larger frame; the decoder allocated ~110 MB for the frame before
//! comparing it with the canvas. Each bitstream's own size is now checked
//! against the limits first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use upload_pipeline::Error;
use upload_pipeline::codec::{DecodeLimits, ImageCodec, StandardCodec, WEBP_LOSSLESS_TABLES};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// One measurement at a time (tests run on threads of one process).
static SERIAL: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            PEAK.fetch_max(LIVE.fetch_add(l.size(), Relaxed) + l.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let grown = new - l.size();
                PEAK.fetch_max(LIVE.fetch_add(grown, Relaxed) + grown, Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Decodes and returns the result and the peak heap above the start.
fn measured(bytes: &[u8], limits: &DecodeLimits) -> (upload_pipeline::Result<(u32, u32)>, usize) {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let got = StandardCodec::default()
        .decode(bytes, limits)
        .map(|i| (i.width(), i.height()));
    (got, PEAK.load(Relaxed).saturating_sub(before))
}

const BOMB: &[u8] = include_bytes!("data/fuzz/image_decode-webp-huffman-groups.webp");

#[test]
fn lossless_webp_tables_are_refused_under_a_small_budget() {
    let limits = DecodeLimits::default()
        .with_max_pixels(4_000_000)
        .with_max_alloc(16 << 20);
    let (got, peak) = measured(BOMB, &limits);
    assert!(matches!(got, Err(Error::ImageTooLarge { .. })), "{got:?}");
    assert!(peak < 4 << 20, "refused before decoding: {peak} bytes");
}

#[test]
fn lossless_webp_tables_stay_within_the_reserve_under_the_default_budget() {
    let (got, peak) = measured(BOMB, &DecodeLimits::default());
    // Decoded, or refused before decoding (its bitstream declares more
    // than its canvas): either way within the reserve, the 200x150 pixel
    // buffer and slack.
    if let Ok(dims) = got {
        assert_eq!(dims, (200, 150));
    }
    let cap = WEBP_LOSSLESS_TABLES as usize + 200 * 150 * 4 * 2 + (16 << 20);
    assert!(peak <= cap, "peak {peak} bytes, cap {cap}");
    // The allocator does see decodes: a real 128x128 JPEG costs at least
    // its RGB pixel buffer.
    let (got, jpeg_peak) = measured(
        include_bytes!("../../../samples/testdata/hopper.jpg"),
        &DecodeLimits::default(),
    );
    let (w, h) = got.unwrap();
    assert!(
        jpeg_peak >= (w * h * 3) as usize,
        "{jpeg_peak} bytes for {w}x{h}"
    );
}

#[test]
fn lossy_webp_and_other_formats_are_not_charged_the_reserve() {
    let limits = DecodeLimits::default()
        .with_max_pixels(4_000_000)
        .with_max_alloc(16 << 20);
    for (name, bytes) in [
        (
            "hopper_orientation_6.webp",
            &include_bytes!("../../../samples/testdata/hopper_orientation_6.webp")[..],
        ),
        (
            "hopper.jpg",
            &include_bytes!("../../../samples/testdata/hopper.jpg")[..],
        ),
    ] {
        let (got, _) = measured(bytes, &limits);
        assert!(got.is_ok(), "{name}: {got:?}");
    }
}

const FRAME_BOMB: &[u8] =
    include_bytes!("data/fuzz/image_decode-webp-frame-larger-than-canvas.webp");

#[test]
fn webp_frames_larger_than_their_canvas_are_checked_against_the_limits() {
    let limits = DecodeLimits::default()
        .with_max_width(4096)
        .with_max_height(4096)
        .with_max_pixels(4_000_000)
        .with_max_alloc(16 << 20);
    let (got, peak) = measured(FRAME_BOMB, &limits);
    match got {
        Err(Error::ImageTooLarge { width, height, .. }) => {
            assert!(
                u64::from(width) * u64::from(height) > 4_000_000
                    || width.max(height) > 4096
                    || u64::from(width) * u64::from(height) * 4 > 16 << 20,
                "refused for its frame size: {width}x{height}"
            );
        }
        other => panic!("expected ImageTooLarge, got {other:?}"),
    }
    assert!(peak < 4 << 20, "refused before decoding: {peak} bytes");
}

/// A real WebP with a losslessly compressed alpha plane (`ALPH`, method 1)
/// is charged the table reserve: refused under a 16 MiB budget with a
/// reason that says so, decoded under the default one.
#[test]
fn real_lossless_alpha_webp_is_charged_the_table_reserve() {
    let bytes = include_bytes!("../../../samples/testdata/transparent.webp");
    let small = DecodeLimits::default().with_max_alloc(16 << 20);
    let (got, _) = measured(bytes, &small);
    match got {
        Err(e @ Error::ImageTooLarge { .. }) => {
            assert!(e.to_string().contains("lossless WebP"), "{e}")
        }
        other => panic!("expected ImageTooLarge, got {other:?}"),
    }
    let (got, _) = measured(bytes, &DecodeLimits::default());
    assert!(got.is_ok(), "{got:?}");
}
