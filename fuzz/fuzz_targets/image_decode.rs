//! Fuzz target `image_decode`: `StandardCodec::decode_for` under limits,
//! on arbitrary bytes (seeded with JPEG, PNG, WebP, GIF and AVIF files),
//! at full scale and with shrink-on-load for a 32-pixel variant, which is
//! then rendered, with the image's placeholder.
//!
//! Asserts that a decode never panics (the codec turns a decoder panic
//! into `CorruptImage { reason: "the decoder panicked" }`: that counts as a
//! crash here), that a decoded image is within the limits, and that the
//! peak heap allocated while decoding stays under a cap derived from the
//! limits: the pixel budget (4 bytes per pixel of `max_pixels`, twice for
//! the orientation copy) plus the scratch the limits docs allow, plus
//! the input.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use libfuzzer_sys::fuzz_target;
use upload_pipeline::codec::{DecodeLimits, ImageCodec, OutputFormat, Placeholder, StandardCodec, VariantSpec};

/// Counts live heap bytes and their peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
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
                let now = LIVE.fetch_add(new - l.size(), Relaxed) + new - l.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MAX_PIXELS: u64 = 4_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default()
        .with_max_width(4096)
        .with_max_height(4096)
        .with_max_pixels(MAX_PIXELS)
        .with_max_alloc(MAX_PIXELS * 4)
        .with_max_input_bytes(1 << 20);
    // Both decode entry points: full scale, and shrink-on-load for a
    // 32-pixel variant (JPEG DCT scaling).
    let icon = VariantSpec::new("icon", 32, 32, OutputFormat::Png).expect("valid spec");
    for variants in [&[][..], std::slice::from_ref(&icon)] {
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let result = StandardCodec::default().decode_for(data, &limits, variants);
        let peak = PEAK.load(Relaxed) - before;
        // Pixels (RGBA8) twice (decode + orientation), the documented
        // decoder scratch (a few times max_pixels * 4 for progressive JPEG
        // planes), the input, and 8 MiB of fixed overhead.
        let cap = (MAX_PIXELS * 4 * 5) as usize + 2 * data.len() + (8 << 20);
        assert!(peak <= cap, "decode peaked at {peak} bytes, cap {cap}");
        match result {
            Ok(img) => {
                let (w, h) = (img.width() as u64, img.height() as u64);
                assert!(w >= 1 && h >= 1);
                assert!(w * h <= MAX_PIXELS, "{w}x{h}");
                assert!(w.max(h) <= 4096, "{w}x{h}");
                let (sw, sh) = img.source_size;
                assert!(u64::from(sw) >= w && u64::from(sh) >= h, "{sw}x{sh} < {w}x{h}");
                if !variants.is_empty() {
                    let v = StandardCodec::default()
                        .render(&img, &icon)
                        .expect("a decoded image renders");
                    assert!(v.width.max(v.height) <= 32 && v.width >= 1 && v.height >= 1);
                    Placeholder::from_image(&img).expect("a decoded image has a placeholder");
                }
            }
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains("panicked"), "a decoder panicked: {text}");
            }
        }
    }
});
