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

/// Runs `build` (which may allocate a lot, e.g. an inflated payload to
/// compress) while no measurement is running.
fn prepared<T>(build: impl FnOnce() -> T) -> T {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    build()
}

/// A complete PNG: IHDR (`width` × `height`, `bit_depth`, grey), the extra
/// `chunks`, then IDAT holding the zlib stream of all-zero rows.
fn png_of_zero_rows(
    width: u32,
    height: u32,
    bit_depth: u8,
    chunks: &[([u8; 4], Vec<u8>)],
) -> Vec<u8> {
    use upload_pipeline::testkit::codec::png_chunk;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, 0, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    for (kind, data) in chunks {
        png_chunk(&mut out, kind, data);
    }
    // Each row: filter byte 0 and ceil(width * depth / 8) zero bytes.
    let row = 1 + (width as usize * usize::from(bit_depth)).div_ceil(8);
    let raw = vec![0u8; row * height as usize];
    png_chunk(
        &mut out,
        b"IDAT",
        &miniz_oxide::deflate::compress_to_vec_zlib(&raw, 9),
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid 20000×20000 1-bit PNG (400 MP in about 50 KB) is refused from
/// its header, before any pixel or row buffer: by `max_pixels` under the
/// defaults, by `max_width` when a limit on one side is set.
#[test]
fn valid_twenty_thousand_square_one_bit_png_is_refused_from_its_header() {
    let bomb = prepared(|| png_of_zero_rows(20_000, 20_000, 1, &[]));
    assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
    let narrow_sides = DecodeLimits::default()
        .with_max_width(16_384)
        .with_max_height(16_384);
    for (limits, which) in [
        (DecodeLimits::default(), "max_pixels"),
        (narrow_sides, "max_width"),
    ] {
        let (got, peak) = measured(&bomb, &limits);
        match got {
            Err(Error::ImageTooLarge {
                width,
                height,
                limit,
            }) => {
                assert_eq!((width, height), (20_000, 20_000));
                assert!(limit.contains(which), "{limit}");
            }
            other => panic!("expected ImageTooLarge, got {other:?}"),
        }
        assert!(peak < 1 << 20, "refused before decoding: {peak} bytes");
    }
    // The same file is a real image: under limits that allow it, the
    // decoder reads it (its 1-bit rows are small), so the refusal above
    // is the limit's doing.
    let small = prepared(|| png_of_zero_rows(2_000, 2_000, 1, &[]));
    let (got, _) = measured(&small, &DecodeLimits::default());
    assert_eq!(got.unwrap(), (2_000, 2_000));
}

/// A PNG whose compressed text chunks inflate to 64 MiB each decodes its
/// 16×16 pixels without inflating them: the peak heap stays small.
#[test]
fn png_text_chunks_that_inflate_without_bound_are_not_inflated() {
    let compressed =
        prepared(|| miniz_oxide::deflate::compress_to_vec_zlib(&vec![b'A'; 64 << 20], 9));
    let mut ztxt = b"Comment\0\0".to_vec();
    ztxt.extend_from_slice(&compressed);
    let mut itxt = b"XML:com.adobe.xmp\0\x01\0\0\0".to_vec();
    itxt.extend_from_slice(&compressed);
    let chunks = [(*b"zTXt", ztxt.clone()), (*b"zTXt", ztxt), (*b"iTXt", itxt)];
    let bomb = png_of_zero_rows(16, 16, 8, &chunks);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let (got, peak) = measured(&bomb, &DecodeLimits::default());
    assert_eq!(got.unwrap(), (16, 16));
    assert!(peak < 4 << 20, "the text was inflated: peak {peak} bytes");
}

/// Shrink-on-load bounds memory too: a 4K JPEG decoded for a thumbnail
/// peaks far below its full-scale pixel buffer (3840 × 2160 × 3 bytes).
#[test]
fn shrink_on_load_peaks_below_the_full_scale_pixel_buffer() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../samples/photos/derived_kleiber_3840x2160_q90_420.jpg"
    ))
    .unwrap();
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    // The pure-Rust path: libjpeg-turbo's C allocations (feature
    // `turbojpeg`) are not seen by this allocator.
    let codec = StandardCodec::default();
    #[cfg(feature = "turbojpeg")]
    let codec = codec.with_libjpeg_turbo(false);
    let decoded = codec
        .decode_for(
            &bytes,
            &DecodeLimits::default(),
            &[upload_pipeline::VariantSpec::thumb()],
        )
        .unwrap();
    let peak = PEAK.load(Relaxed).saturating_sub(before);
    assert_eq!((decoded.width(), decoded.height()), (960, 540));
    let full = 3840 * 2160 * 3;
    assert!(
        peak < full / 3,
        "peak {peak} bytes, full-scale buffer {full}"
    );
}
