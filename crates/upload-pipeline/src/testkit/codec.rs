//! Conformance suite for [`ImageCodec`] implementations.
//!
//! Every input is made in memory (with the `image` crate's encoders, the
//! `webp` crate's animation encoder, or by hand), so the suite needs no
//! files. Each check panics with a message naming what broke; run them all
//! with [`run_all`]:
//!
//! ```
//! upload_pipeline::testkit::codec::run_all(&upload_pipeline::StandardCodec::default());
//! ```
//!
//! The suite holds a codec to the contract documented on [`ImageCodec`]:
//! limits checked from the header, typed errors for every bad input, EXIF
//! orientation applied (JPEG, PNG, WebP), first frame of animations, fit
//! within the spec without enlarging, alpha kept and resized
//! premultiplied, JPEG composited over white, and no metadata in any
//! output.

use std::time::{Duration, Instant};

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{
    DynamicImage, ExtendedColorType, Frame, ImageEncoder, ImageFormat, Rgb, RgbImage, Rgba,
    RgbaImage,
};

use crate::codec::{DecodeLimits, DecodedImage, ImageCodec, OutputFormat, VariantSpec};
use crate::error::Error;

/// Runs every check of this module against `codec`.
///
/// # Panics
///
/// On the first check that fails, with a message naming it.
pub fn run_all(codec: &dyn ImageCodec) {
    decodes_png_losslessly(codec);
    decodes_every_format(codec);
    applies_exif_orientation(codec);
    decodes_first_frame_of_animations(codec);
    refuses_oversized_images_from_the_header(codec);
    enforces_each_limit(codec);
    refuses_truncated_and_corrupt_images(codec);
    refuses_non_images(codec);
    survives_mutated_inputs(codec);
    fits_within_the_spec_and_never_enlarges(codec);
    keeps_alpha_and_resizes_it_premultiplied(codec);
    composites_jpeg_over_white(codec);
    encodes_at_the_given_quality(codec);
    renders_images_of_any_colour_type(codec);
    writes_no_metadata(codec);
    rejects_invalid_specs_and_empty_images(codec);
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

const RED: [u8; 3] = [230, 30, 30];
const GREEN: [u8; 3] = [30, 200, 40];
const BLUE: [u8; 3] = [30, 40, 220];
const WHITE: [u8; 3] = [245, 245, 245];

/// A `width` × `height` image in four flat quadrants: red, green (top);
/// blue, white (bottom).
fn quadrants(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb(match (y < height / 2, x < width / 2) {
            (true, true) => RED,
            (true, false) => GREEN,
            (false, true) => BLUE,
            (false, false) => WHITE,
        })
    })
}

/// A smooth RGB gradient.
fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width.max(2).saturating_sub(1).max(1)) as u8,
            (y * 255 / height.max(2).saturating_sub(1).max(1)) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

fn encode_with(
    encoder: impl ImageEncoder,
    image: &DynamicImage,
    exif: Option<Vec<u8>>,
    icc: Option<Vec<u8>>,
) {
    let mut encoder = encoder;
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif).expect("exif supported");
    }
    if let Some(icc) = icc {
        encoder.set_icc_profile(icc).expect("icc supported");
    }
    let color = ExtendedColorType::from(image.color());
    encoder
        .write_image(image.as_bytes(), image.width(), image.height(), color)
        .expect("encoding a test input");
}

fn png(image: &DynamicImage) -> Vec<u8> {
    png_with(image, None, None)
}

fn png_with(image: &DynamicImage, exif: Option<Vec<u8>>, icc: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_with(PngEncoder::new(&mut out), image, exif, icc);
    out
}

fn jpeg(image: &RgbImage, exif: Option<Vec<u8>>, icc: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let image = DynamicImage::ImageRgb8(image.clone());
    encode_with(
        JpegEncoder::new_with_quality(&mut out, 95),
        &image,
        exif,
        icc,
    );
    out
}

/// Lossless WebP from the `image` crate.
fn webp(image: &DynamicImage, exif: Option<Vec<u8>>, icc: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_with(WebPEncoder::new_lossless(&mut out), image, exif, icc);
    out
}

fn gif(frames: &[RgbaImage]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder
            .encode_frames(frames.iter().cloned().map(Frame::new))
            .expect("encoding a test GIF");
    }
    out
}

/// An animated lossy WebP of the given RGBA frames (libwebp).
fn animated_webp(frames: &[RgbaImage]) -> Vec<u8> {
    let (width, height) = frames[0].dimensions();
    let config = webp::WebPConfig::new().expect("libwebp config");
    let mut encoder = webp::AnimEncoder::new(width, height, &config);
    for (i, frame) in frames.iter().enumerate() {
        encoder.add_frame(webp::AnimFrame::from_rgba(
            frame.as_raw(),
            width,
            height,
            i as i32 * 100,
        ));
    }
    encoder.try_encode().expect("encoding a test WebP").to_vec()
}

/// A big-endian TIFF block (the body of an EXIF segment) holding IFD0 with
/// an Orientation tag and a GPS IFD with a latitude.
fn exif_tiff(orientation: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"MM\0*");
    t.extend_from_slice(&8u32.to_be_bytes());
    // IFD0 at 8: two entries.
    t.extend_from_slice(&2u16.to_be_bytes());
    // Orientation, SHORT, 1, value.
    t.extend_from_slice(&0x0112u16.to_be_bytes());
    t.extend_from_slice(&3u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    // GPSInfo IFD pointer, LONG, 1, offset 38.
    t.extend_from_slice(&0x8825u16.to_be_bytes());
    t.extend_from_slice(&4u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&38u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    // GPS IFD at 38: GPSLatitudeRef = "N".
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&0x0001u16.to_be_bytes());
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&2u32.to_be_bytes());
    t.extend_from_slice(b"N\0\0\0");
    t.extend_from_slice(&0u32.to_be_bytes());
    t
}

/// A fake ICC profile: only its presence in the output matters.
fn fake_icc() -> Vec<u8> {
    let mut icc = vec![0u8; 128];
    icc[..4].copy_from_slice(&128u32.to_be_bytes());
    icc[36..40].copy_from_slice(b"acsp");
    icc
}

/// CRC-32 (ISO-HDLC, as PNG uses it), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Appends a PNG chunk (length, type, data, CRC-32) to `out`.
pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// The PNG signature and an IHDR chunk (8-bit RGBA) declaring `width` ×
/// `height`, with a correct CRC and nothing after it.
pub fn png_bomb_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    out
}

/// A small deterministic pseudo-random generator (xorshift64*): seeded
/// shuffles and choices, so a failing test fails the same way again. The
/// seed must not be 0.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Shuffles `v` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// A `width` × `height` RGB PNG whose pixels depend on `seed`: distinct
/// seeds give distinct bytes (and ETags), for tests and benchmarks that
/// upload many images.
pub fn png_pattern(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x / 7 + seed) as u8,
            (y / 5 + (seed >> 8)) as u8,
            ((x ^ y) as u8).wrapping_add(seed as u8),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encoding of an RGB image");
    out.into_inner()
}

// ---------------------------------------------------------------------------
// Output inspection
// ---------------------------------------------------------------------------

/// A RIFF chunk: its FourCC and payload.
pub type RiffChunk = ([u8; 4], Vec<u8>);

/// The chunks of a RIFF/WebP file, checking the framing.
pub fn webp_chunks(bytes: &[u8]) -> Result<Vec<RiffChunk>, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err("not a RIFF WEBP file".to_owned());
    }
    let riff_len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    if riff_len + 8 != bytes.len() {
        return Err(format!(
            "RIFF size {riff_len} does not match a file of {} bytes",
            bytes.len()
        ));
    }
    let mut chunks = Vec::new();
    let mut pos = 12;
    while pos < bytes.len() {
        let header = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("truncated chunk header at {pos}"))?;
        let kind: [u8; 4] = header[..4].try_into().unwrap();
        let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
        let data = bytes.get(pos + 8..pos + 8 + len).ok_or_else(|| {
            format!(
                "chunk {:?} overruns the file",
                String::from_utf8_lossy(&kind)
            )
        })?;
        chunks.push((kind, data.to_vec()));
        pos += 8 + len + (len & 1);
    }
    Ok(chunks)
}

/// Panics unless `bytes` is a WebP with only image chunks (`VP8 `,
/// `VP8L`, `VP8X`, `ALPH`) and a VP8X, if any, without the ICC, EXIF or
/// XMP flags.
pub fn assert_clean_webp(bytes: &[u8], what: &str) {
    let chunks = webp_chunks(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    for (kind, data) in &chunks {
        assert!(
            matches!(kind, b"VP8 " | b"VP8L" | b"VP8X" | b"ALPH"),
            "{what}: WebP carries a {:?} chunk",
            String::from_utf8_lossy(kind)
        );
        if kind == b"VP8X" {
            // Bit 5: ICC, bit 3: EXIF, bit 2: XMP; bit 1: animation.
            assert_eq!(
                data[0] & 0b0010_1110,
                0,
                "{what}: VP8X flags {:#010b} announce metadata or animation",
                data[0]
            );
        }
    }
}

/// The markers of a JPEG up to its first SOS.
fn jpeg_markers(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let mut markers = Vec::new();
    let mut pos = 2;
    while pos + 4 <= bytes.len() && bytes[pos] == 0xFF {
        let marker = bytes[pos + 1];
        markers.push(marker);
        if marker == 0xDA {
            break;
        }
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        pos += 2 + len;
    }
    markers
}

/// Panics unless `bytes` is a JPEG without APPn segments other than APP0
/// (JFIF), and without COM segments.
fn assert_clean_jpeg(bytes: &[u8], what: &str) {
    let markers = jpeg_markers(bytes);
    assert!(markers.contains(&0xDA), "{what}: no SOS in {markers:02X?}");
    for marker in markers {
        assert!(
            !(0xE1..=0xEF).contains(&marker) && marker != 0xFE,
            "{what}: JPEG carries a metadata segment 0xFF{marker:02X}"
        );
    }
}

/// The chunk types of a PNG.
fn png_chunks(bytes: &[u8]) -> Vec<[u8; 4]> {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut chunks = Vec::new();
    let mut pos = 8;
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        chunks.push(bytes[pos + 4..pos + 8].try_into().unwrap());
        pos += 12 + len;
    }
    chunks
}

/// Panics unless `bytes` is a PNG with only IHDR, PLTE, tRNS, IDAT and
/// IEND chunks.
fn assert_clean_png(bytes: &[u8], what: &str) {
    let chunks = png_chunks(bytes);
    assert_eq!(chunks.first(), Some(b"IHDR"), "{what}: PNG without IHDR");
    assert_eq!(chunks.last(), Some(b"IEND"), "{what}: PNG without IEND");
    for kind in chunks {
        assert!(
            matches!(&kind, b"IHDR" | b"PLTE" | b"tRNS" | b"IDAT" | b"IEND"),
            "{what}: PNG carries a {:?} chunk",
            String::from_utf8_lossy(&kind)
        );
    }
}

/// Decodes an output with the `image` crate, checking its format.
fn reopen(bytes: &[u8], format: ImageFormat, what: &str) -> DynamicImage {
    image::load_from_memory_with_format(bytes, format)
        .unwrap_or_else(|e| panic!("{what}: the output does not decode as {format:?}: {e}"))
}

fn rgb_at(image: &DynamicImage, x: u32, y: u32) -> [u8; 3] {
    let Rgba([r, g, b, _]) = image::GenericImageView::get_pixel(image, x, y);
    [r, g, b]
}

fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

/// Mean absolute difference per channel value of two same-sized RGB
/// images (0 = identical, 255 = opposite).
pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

fn decode_ok(codec: &dyn ImageCodec, bytes: &[u8], what: &str) -> DecodedImage {
    codec
        .decode(bytes, &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("{what}: decode failed: {e}"))
}

fn spec(name: &str, max_width: u32, max_height: u32, format: OutputFormat) -> VariantSpec {
    VariantSpec::new(name, max_width, max_height, format).expect("valid spec")
}

const WEBP_Q: OutputFormat = OutputFormat::WebP { quality: 90.0 };
const JPEG_Q: OutputFormat = OutputFormat::Jpeg { quality: 90 };

fn image_format(format: OutputFormat) -> ImageFormat {
    match format {
        OutputFormat::WebP { .. } => ImageFormat::WebP,
        OutputFormat::Jpeg { .. } => ImageFormat::Jpeg,
        OutputFormat::Png => ImageFormat::Png,
        OutputFormat::Avif { .. } => ImageFormat::Avif,
    }
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// A PNG decodes to exactly its pixels, with format, orientation and alpha
/// reported.
pub fn decodes_png_losslessly(codec: &dyn ImageCodec) {
    let source = gradient(64, 48);
    let decoded = decode_ok(codec, &png(&source.clone().into()), "gradient PNG");
    assert_eq!(decoded.source_type, "image/png");
    assert_eq!((decoded.width(), decoded.height()), (64, 48));
    assert_eq!(decoded.orientation, 1);
    assert!(!decoded.has_alpha(), "an RGB PNG reported alpha");
    assert_eq!(
        decoded.image.to_rgb8(),
        source,
        "PNG pixels changed in decoding"
    );
}

/// JPEG, lossless WebP, GIF, grayscale PNG and 16-bit RGBA PNG decode to
/// the right size and colours.
pub fn decodes_every_format(codec: &dyn ImageCodec) {
    let source = quadrants(40, 30);

    let decoded = decode_ok(codec, &jpeg(&source, None, None), "JPEG");
    assert_eq!(decoded.source_type, "image/jpeg");
    let mad = mean_abs_diff(&decoded.image.to_rgb8(), &source);
    assert!(mad < 6.0, "JPEG decoded {mad:.2} away from its source");

    let decoded = decode_ok(codec, &webp(&source.clone().into(), None, None), "WebP");
    assert_eq!(decoded.source_type, "image/webp");
    assert_eq!(decoded.image.to_rgb8(), source, "lossless WebP changed");

    let rgba = DynamicImage::ImageRgb8(source.clone()).to_rgba8();
    let decoded = decode_ok(codec, &gif(&[rgba]), "GIF");
    assert_eq!(decoded.source_type, "image/gif");
    assert_eq!((decoded.width(), decoded.height()), (40, 30));
    for (x, y, expected) in [(5, 5, RED), (35, 5, GREEN), (5, 25, BLUE), (35, 25, WHITE)] {
        let got = rgb_at(&decoded.image, x, y);
        assert!(
            close(got, expected, 8),
            "GIF ({x},{y}): {got:?}, expected {expected:?}"
        );
    }

    let gray = DynamicImage::ImageLuma8(image::GrayImage::from_fn(16, 8, |x, _| {
        image::Luma([(x * 16) as u8])
    }));
    let decoded = decode_ok(codec, &png(&gray), "grayscale PNG");
    assert!(!decoded.has_alpha());
    assert_eq!(rgb_at(&decoded.image, 3, 2), [48, 48, 48], "grayscale PNG");

    let rgba16 = DynamicImage::ImageRgba16(image::ImageBuffer::from_fn(8, 8, |x, _| {
        let v = (x as u16) * 0x2020;
        Rgba([v, 0xFFFF - v, 0x8080, if x == 0 { 0 } else { 0xFFFF }])
    }));
    let decoded = decode_ok(codec, &png(&rgba16), "16-bit RGBA PNG");
    assert!(decoded.has_alpha(), "16-bit RGBA PNG lost its alpha");
    let pixel = decoded.image.to_rgba8().get_pixel(2, 3).0;
    assert_eq!(pixel, [0x40, 0xBF, 0x80, 0xFF], "16-bit RGBA PNG");
    assert_eq!(decoded.image.to_rgba8().get_pixel(0, 0).0[3], 0);
}

/// The expected quadrant colours after applying EXIF `orientation` to
/// [`quadrants`]: `[top-left, top-right, bottom-left, bottom-right]`.
fn oriented_quadrants(orientation: u8) -> [[u8; 3]; 4] {
    let q = [[RED, GREEN], [BLUE, WHITE]];
    let at = |r: usize, c: usize| match orientation {
        1 => q[r][c],
        2 => q[r][1 - c],
        3 => q[1 - r][1 - c],
        4 => q[1 - r][c],
        5 => q[c][r],
        6 => q[1 - c][r],
        7 => q[1 - c][1 - r],
        8 => q[c][1 - r],
        _ => unreachable!(),
    };
    [at(0, 0), at(0, 1), at(1, 0), at(1, 1)]
}

fn assert_oriented(decoded: &DecodedImage, orientation: u8, what: &str) {
    let (w, h) = if orientation >= 5 { (32, 48) } else { (48, 32) };
    assert_eq!(
        (decoded.width(), decoded.height()),
        (w, h),
        "{what}: size after orientation {orientation}"
    );
    assert_eq!(decoded.orientation, orientation, "{what}: orientation");
    let expected = oriented_quadrants(orientation);
    let probes = [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ];
    for ((x, y), want) in probes.into_iter().zip(expected) {
        let got = rgb_at(&decoded.image, x, y);
        assert!(
            close(got, want, 24),
            "{what}: orientation {orientation}: pixel ({x},{y}) is {got:?}, expected {want:?}"
        );
    }
}

/// EXIF orientations 1–8 are applied for JPEG; 6 and 3 for PNG (`eXIf`);
/// 6 for WebP, and 8 for a WebP whose EXIF chunk starts with `Exif\0\0`.
pub fn applies_exif_orientation(codec: &dyn ImageCodec) {
    let source = quadrants(48, 32);
    for orientation in 1..=8u8 {
        let bytes = jpeg(&source, Some(exif_tiff(orientation.into())), None);
        let decoded = decode_ok(codec, &bytes, "JPEG with EXIF");
        assert_oriented(&decoded, orientation, "JPEG");
    }
    let dynamic = DynamicImage::ImageRgb8(source.clone());
    for orientation in [6u8, 3] {
        let bytes = png_with(&dynamic, Some(exif_tiff(orientation.into())), None);
        assert!(
            png_chunks(&bytes).contains(b"eXIf"),
            "test input lacks eXIf"
        );
        assert_oriented(&decode_ok(codec, &bytes, "PNG"), orientation, "PNG");
    }
    let bytes = webp(&dynamic, Some(exif_tiff(6)), None);
    assert_oriented(&decode_ok(codec, &bytes, "WebP"), 6, "WebP");
    let mut prefixed = b"Exif\0\0".to_vec();
    prefixed.extend_from_slice(&exif_tiff(8));
    let bytes = webp(&dynamic, Some(prefixed), None);
    assert_oriented(
        &decode_ok(codec, &bytes, "WebP with Exif prefix"),
        8,
        "WebP (EXIF chunk with Exif\\0\\0 prefix)",
    );
}

/// Animated GIF and WebP decode to their first frame.
pub fn decodes_first_frame_of_animations(codec: &dyn ImageCodec) {
    let red = RgbaImage::from_pixel(16, 8, Rgba([255, 0, 0, 255]));
    let blue = RgbaImage::from_pixel(16, 8, Rgba([0, 0, 255, 255]));
    let frames = [red, blue];
    for (bytes, what) in [
        (gif(&frames), "animated GIF"),
        (animated_webp(&frames), "animated WebP"),
    ] {
        let decoded = decode_ok(codec, &bytes, what);
        assert_eq!((decoded.width(), decoded.height()), (16, 8), "{what}");
        let got = rgb_at(&decoded.image, 8, 4);
        assert!(
            close(got, [255, 0, 0], 16),
            "{what}: first frame is {got:?}, not red"
        );
        let variant = codec
            .render(&decoded, &VariantSpec::thumb())
            .unwrap_or_else(|e| panic!("{what}: render: {e}"));
        assert_clean_webp(&variant.bytes, what);
    }
}

fn assert_too_large(
    result: crate::Result<DecodedImage>,
    dims: (u32, u32),
    limit: &str,
    what: &str,
) {
    match result {
        Err(Error::ImageTooLarge {
            width,
            height,
            limit: message,
        }) => {
            if dims != (0, 0) {
                assert_eq!((width, height), dims, "{what}: declared size");
            }
            assert!(
                message.contains(limit),
                "{what}: the error names {message:?}, not {limit}"
            );
        }
        other => panic!(
            "{what}: expected ImageTooLarge ({limit}), got {:?}",
            other.map(|d| (d.width(), d.height()))
        ),
    }
}

/// Bomb headers (PNG 50000×50000 with nothing after IHDR; a JPEG whose SOF
/// declares 65500×65500; a WebP canvas of 16383×16383) are refused in well
/// under a second.
pub fn refuses_oversized_images_from_the_header(codec: &dyn ImageCodec) {
    let limits = DecodeLimits::default();

    let started = Instant::now();
    let result = codec.decode(&png_bomb_header(50_000, 50_000), &limits);
    let elapsed = started.elapsed();
    assert_too_large(result, (50_000, 50_000), "max_pixels", "PNG bomb");
    assert!(
        elapsed < Duration::from_secs(1),
        "PNG bomb took {elapsed:?}"
    );

    // Square, and over the pixel limit.
    let result = codec.decode(&png_bomb_header(16_000, 16_000), &limits);
    assert_too_large(result, (16_000, 16_000), "max_pixels", "PNG 16000x16000");

    // A complete small JPEG with its SOF0 dimensions patched.
    let mut bomb = jpeg(&quadrants(16, 16), None, None);
    let sof = bomb
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG has SOF0");
    bomb[sof + 5..sof + 7].copy_from_slice(&65_500u16.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&65_500u16.to_be_bytes());
    let started = Instant::now();
    let result = codec.decode(&bomb, &limits);
    assert_too_large(result, (65_500, 65_500), "max_pixels", "JPEG bomb");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "JPEG bomb was slow"
    );

    // A lossless WebP wrapped in a VP8X chunk declaring a 16383x16383 canvas.
    let inner = webp(&quadrants(16, 16).into(), None, None);
    let mut bomb = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
    bomb.extend_from_slice(&10u32.to_le_bytes());
    bomb.extend_from_slice(&[0, 0, 0, 0]);
    bomb.extend_from_slice(&16_382u32.to_le_bytes()[..3]);
    bomb.extend_from_slice(&16_382u32.to_le_bytes()[..3]);
    bomb.extend_from_slice(&inner[12..]);
    let riff_len = (bomb.len() - 8) as u32;
    bomb[4..8].copy_from_slice(&riff_len.to_le_bytes());
    let result = codec.decode(&bomb, &limits);
    assert_too_large(result, (16_383, 16_383), "max_pixels", "WebP canvas bomb");
}

/// Each limit refuses an image just over it, names itself, and accepts an
/// image exactly at it.
pub fn enforces_each_limit(codec: &dyn ImageCodec) {
    let bytes = png(&gradient(64, 48).into());
    let at = DecodeLimits::default()
        .with_max_width(64)
        .with_max_height(48)
        .with_max_pixels(64 * 48)
        .with_max_alloc(64 * 48 * 3)
        .with_max_input_bytes(bytes.len() as u64);
    let decoded = codec
        .decode(&bytes, &at)
        .unwrap_or_else(|e| panic!("an image exactly at every limit was refused: {e}"));
    assert_eq!((decoded.width(), decoded.height()), (64, 48));

    let cases = [
        (at.clone().with_max_width(63), "max_width"),
        (at.clone().with_max_height(47), "max_height"),
        (at.clone().with_max_pixels(64 * 48 - 1), "max_pixels"),
        (at.clone().with_max_alloc(64 * 48 * 3 - 1), "max_alloc"),
        (
            at.clone().with_max_input_bytes(bytes.len() as u64 - 1),
            "max_input_bytes",
        ),
    ];
    for (limits, name) in cases {
        let dims = if name == "max_input_bytes" {
            (0, 0)
        } else {
            (64, 48)
        };
        assert_too_large(codec.decode(&bytes, &limits), dims, name, name);
    }
}

fn assert_corrupt(result: crate::Result<DecodedImage>, what: &str) {
    assert!(
        matches!(result, Err(Error::CorruptImage { .. })),
        "{what}: expected CorruptImage, got {:?}",
        result.map(|d| (d.width(), d.height()))
    );
}

/// Truncated PNG, JPEG (baseline, and with only its EOI missing), GIF and
/// WebP files, and a PNG with a damaged IDAT, are `CorruptImage`: never a
/// partly filled image.
pub fn refuses_truncated_and_corrupt_images(codec: &dyn ImageCodec) {
    let limits = DecodeLimits::default();
    let source = gradient(96, 64);
    let dynamic = DynamicImage::ImageRgb8(source.clone());
    let rgba = dynamic.to_rgba8();
    let inputs = [
        ("PNG", png(&dynamic)),
        ("JPEG", jpeg(&source, None, None)),
        ("GIF", gif(&[rgba])),
        ("WebP", webp(&dynamic, None, None)),
    ];
    for (what, bytes) in &inputs {
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() * 4 / 5] {
            assert_corrupt(
                codec.decode(&bytes[..cut], &limits),
                &format!("{what} cut to {cut} of {} bytes", bytes.len()),
            );
        }
    }
    let jpeg_bytes = &inputs[1].1;
    assert_corrupt(
        codec.decode(&jpeg_bytes[..jpeg_bytes.len() - 2], &limits),
        "JPEG without its EOI marker",
    );

    let mut damaged = inputs[0].1.clone();
    let idat = damaged
        .windows(4)
        .position(|w| w == b"IDAT")
        .expect("PNG has IDAT");
    damaged[idat + 10] ^= 0x55;
    assert_corrupt(codec.decode(&damaged, &limits), "PNG with a damaged IDAT");

    for (what, head) in [
        ("PNG signature + noise", &b"\x89PNG\r\n\x1a\n"[..]),
        ("JPEG SOI + noise", &[0xFF, 0xD8, 0xFF][..]),
        // A 16x16 logical screen without a colour table, then noise.
        ("GIF89a + noise", &b"GIF89a\x10\0\x10\0\0\0\0"[..]),
    ] {
        let mut bytes = head.to_vec();
        bytes.extend(Rng(7).bytes(200));
        assert_corrupt(codec.decode(&bytes, &limits), what);
    }
}

fn assert_unsupported(result: crate::Result<DecodedImage>, what: &str) -> String {
    match result {
        Err(Error::UnsupportedImage { format }) => {
            assert!(!format.is_empty(), "{what}: empty format name");
            format
        }
        other => panic!(
            "{what}: expected UnsupportedImage, got {:?}",
            other.map(|d| (d.width(), d.height()))
        ),
    }
}

/// Empty input, random bytes, text, PDF, BMP and TIFF are
/// `UnsupportedImage`; HEIC and AVIF headers followed by noise are
/// `UnsupportedImage` from a codec without a HEIF decoder and
/// `CorruptImage` from one with it (the `heif` feature).
pub fn refuses_non_images(codec: &dyn ImageCodec) {
    let limits = DecodeLimits::default();
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.extend(Rng(1).bytes(64));
    let mut avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec();
    avif.extend(Rng(2).bytes(64));
    let mut bmp = b"BM".to_vec();
    bmp.extend(Rng(3).bytes(64));
    let inputs: [(&str, Vec<u8>); 8] = [
        ("empty input", Vec::new()),
        ("random bytes", Rng(42).bytes(4096)),
        ("text", b"hello, this is not an image\n".repeat(20)),
        (
            "PDF",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n".to_vec(),
        ),
        ("HEIC", heic),
        ("AVIF", avif),
        ("BMP", bmp),
        ("TIFF", b"II*\0\x08\0\0\0\0\0\0\0".to_vec()),
    ];
    for (what, bytes) in inputs {
        match (what, codec.decode(&bytes, &limits)) {
            ("HEIC" | "AVIF", Err(Error::CorruptImage { .. })) => {}
            (_, result) => {
                assert_unsupported(result, what);
            }
        }
    }
}

/// Hundreds of mutated and truncated inputs: every decode returns (an
/// image or a typed error) without panicking, and every image decoded
/// renders.
pub fn survives_mutated_inputs(codec: &dyn ImageCodec) {
    let limits = DecodeLimits::default().with_max_pixels(1 << 20);
    let source = gradient(24, 16);
    let dynamic = DynamicImage::ImageRgb8(source.clone());
    let seeds = [
        png(&dynamic),
        jpeg(&source, Some(exif_tiff(6)), None),
        gif(&[dynamic.to_rgba8()]),
        webp(&dynamic, Some(exif_tiff(3)), None),
        animated_webp(&[dynamic.to_rgba8(), dynamic.to_rgba8()]),
    ];
    let mut rng = Rng(0x5EED);
    let tiny = spec("tiny", 8, 8, OutputFormat::Png);
    for seed in &seeds {
        for round in 0..60 {
            let mut bytes = seed.clone();
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next_u64() as u8;
            }
            if round % 4 == 0 {
                bytes.truncate(rng.below(bytes.len()));
            }
            if let Ok(decoded) = codec.decode(&bytes, &limits) {
                assert!(decoded.width() > 0 && decoded.height() > 0);
                codec
                    .render(&decoded, &tiny)
                    .unwrap_or_else(|e| panic!("a decoded mutant did not render: {e}"));
            }
        }
    }
}

/// Variants fit within their box with the aspect ratio kept (rounded to
/// the nearest pixel, at least 1), are never enlarged, report their real
/// size, and carry the format's content type and extension.
pub fn fits_within_the_spec_and_never_enlarges(codec: &dyn ImageCodec) {
    type Size = (u32, u32);
    // (source, bounding box, expected variant)
    let cases: [(Size, Size, Size); 6] = [
        ((300, 200), (256, 256), (256, 171)),
        ((200, 300), (256, 256), (171, 256)),
        ((300, 200), (1024, 1024), (300, 200)),
        ((1000, 10), (256, 256), (256, 3)),
        ((2000, 3), (256, 256), (256, 1)),
        ((120, 90), (60, 60), (60, 45)),
    ];
    for format in [WEBP_Q, JPEG_Q, OutputFormat::Png] {
        for ((w, h), (max_w, max_h), expected) in cases {
            let decoded = decode_ok(codec, &png(&gradient(w, h).into()), "gradient");
            let variant = codec
                .render(&decoded, &spec("fit", max_w, max_h, format))
                .unwrap_or_else(|e| panic!("render {w}x{h} into {max_w}x{max_h}: {e}"));
            let what = format!("{w}x{h} into {max_w}x{max_h} as {format:?}");
            assert_eq!((variant.width, variant.height), expected, "{what}");
            assert_eq!(variant.name, "fit");
            assert_eq!(variant.content_type, format.content_type(), "{what}");
            assert_eq!(variant.extension, format.extension(), "{what}");
            let reopened = reopen(&variant.bytes, image_format(format), &what);
            assert_eq!((reopened.width(), reopened.height()), expected, "{what}");
        }
    }
    // A downscale keeps the picture: quadrant colours in the right places.
    let decoded = decode_ok(codec, &png(&quadrants(400, 300).into()), "quadrants");
    let variant = codec
        .render(&decoded, &spec("q", 100, 100, OutputFormat::Png))
        .expect("render quadrants");
    let reopened = reopen(&variant.bytes, ImageFormat::Png, "quadrants");
    for (x, y, want) in [
        (25, 19, RED),
        (75, 19, GREEN),
        (25, 56, BLUE),
        (75, 56, WHITE),
    ] {
        let got = rgb_at(&reopened, x, y);
        assert!(
            close(got, want, 4),
            "downscaled quadrants ({x},{y}): {got:?} vs {want:?}"
        );
    }
}

/// An RGBA image with a transparent (black) corner keeps its alpha in WebP
/// and PNG variants, the corner stays transparent, and the edge pixels are
/// not darkened (the resize is premultiplied); an opaque RGB image gets no
/// ALPH chunk.
pub fn keeps_alpha_and_resizes_it_premultiplied(codec: &dyn ImageCodec) {
    // 128x128 scaled to 10x10 (1/12.8): the 45-pixel corner ends half-way
    // through output pixel 3, so the edge pixels are partly transparent,
    // while output pixel 0 is out of the Lanczos3 reach (3 x 12.8) of any
    // opaque source pixel.
    let source = RgbaImage::from_fn(128, 128, |x, y| {
        if x < 45 && y < 45 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([255, 0, 0, 255])
        }
    });
    let decoded = decode_ok(codec, &png(&source.into()), "RGBA PNG");
    assert!(decoded.has_alpha(), "an RGBA PNG lost its alpha");

    let variant = codec
        .render(&decoded, &spec("alpha", 10, 10, OutputFormat::Png))
        .expect("render RGBA as PNG");
    let reopened = reopen(&variant.bytes, ImageFormat::Png, "RGBA PNG variant").to_rgba8();
    assert_eq!(reopened.get_pixel(0, 0).0[3], 0, "the transparent corner");
    assert_eq!(reopened.get_pixel(9, 9).0, [255, 0, 0, 255]);
    let mut partial = 0;
    for (x, y, pixel) in reopened.enumerate_pixels() {
        let [r, g, b, a] = pixel.0;
        if (32..=223).contains(&a) {
            partial += 1;
        }
        if a >= 32 {
            assert!(
                r >= 230 && g <= 20 && b <= 20,
                "pixel ({x},{y}) = {:?}: transparent black bled into the edge \
                 (alpha not premultiplied while resizing)",
                pixel.0
            );
        }
    }
    assert!(
        partial >= 4,
        "only {partial} partly transparent edge pixels"
    );

    let variant = codec
        .render(&decoded, &spec("alpha", 10, 10, WEBP_Q))
        .expect("render RGBA as WebP");
    let chunks = webp_chunks(&variant.bytes).expect("WebP framing");
    assert!(
        chunks
            .iter()
            .any(|(kind, _)| kind == b"ALPH" || kind == b"VP8L"),
        "an RGBA WebP variant without alpha"
    );
    let reopened = reopen(&variant.bytes, ImageFormat::WebP, "RGBA WebP variant");
    assert!(
        reopened.color().has_alpha(),
        "the WebP variant lost its alpha"
    );
    let reopened = reopened.to_rgba8();
    assert_eq!(reopened.get_pixel(0, 0).0[3], 0, "WebP transparent corner");
    assert_eq!(reopened.get_pixel(9, 9).0[3], 255, "WebP opaque corner");
    assert!(close(
        rgb_at(&DynamicImage::ImageRgba8(reopened), 9, 9),
        [255, 0, 0],
        24
    ));

    let opaque = decode_ok(codec, &png(&gradient(32, 32).into()), "RGB PNG");
    let variant = codec.render(&opaque, &VariantSpec::thumb()).expect("thumb");
    let chunks = webp_chunks(&variant.bytes).expect("WebP framing");
    assert!(
        !chunks.iter().any(|(kind, _)| kind == b"ALPH"),
        "an opaque image got an ALPH chunk"
    );
}

/// A JPEG variant of an RGBA image shows its transparent parts as white.
pub fn composites_jpeg_over_white(codec: &dyn ImageCodec) {
    let source = RgbaImage::from_fn(32, 32, |x, _| {
        if x < 16 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([0, 0, 255, 255])
        }
    });
    let decoded = decode_ok(codec, &png(&source.into()), "RGBA PNG");
    let variant = codec
        .render(&decoded, &spec("flat", 32, 32, JPEG_Q))
        .expect("render RGBA as JPEG");
    let reopened = reopen(&variant.bytes, ImageFormat::Jpeg, "JPEG over white");
    let left = rgb_at(&reopened, 4, 16);
    let right = rgb_at(&reopened, 28, 16);
    assert!(
        close(left, [255, 255, 255], 12),
        "transparent became {left:?}, not white"
    );
    assert!(
        close(right, [0, 0, 255], 24),
        "opaque blue became {right:?}"
    );
}

/// WebP variants are lossy (a `VP8 ` chunk) and, like JPEG variants, get
/// smaller as the quality goes down.
pub fn encodes_at_the_given_quality(codec: &dyn ImageCodec) {
    let mut rng = Rng(99);
    let noisy = RgbImage::from_fn(96, 96, |x, y| {
        let noise = (rng.next_u64() % 48) as u32;
        Rgb([
            ((x * 2 + noise) % 256) as u8,
            ((y * 2 + noise) % 256) as u8,
            ((x + y + noise) % 256) as u8,
        ])
    });
    let decoded = decode_ok(codec, &png(&noisy.into()), "noisy PNG");
    let size = |format: OutputFormat| {
        let variant = codec
            .render(&decoded, &spec("q", 96, 96, format))
            .unwrap_or_else(|e| panic!("render {format:?}: {e}"));
        variant.bytes
    };
    let webp_high = size(OutputFormat::WebP { quality: 95.0 });
    let webp_low = size(OutputFormat::WebP { quality: 10.0 });
    let chunks = webp_chunks(&webp_high).expect("WebP framing");
    assert!(
        chunks.iter().any(|(kind, _)| kind == b"VP8 "),
        "the WebP variant is not lossy VP8: {:?}",
        chunks
            .iter()
            .map(|(kind, _)| String::from_utf8_lossy(kind).into_owned())
            .collect::<Vec<_>>()
    );
    assert!(
        webp_low.len() < webp_high.len(),
        "WebP quality 10 ({} bytes) is not smaller than quality 95 ({} bytes)",
        webp_low.len(),
        webp_high.len()
    );
    let jpeg_high = size(OutputFormat::Jpeg { quality: 95 });
    let jpeg_low = size(OutputFormat::Jpeg { quality: 10 });
    assert!(
        jpeg_low.len() < jpeg_high.len(),
        "JPEG quality 10 ({} bytes) is not smaller than quality 95 ({} bytes)",
        jpeg_low.len(),
        jpeg_high.len()
    );
}

/// `render` accepts a [`DecodedImage`] of any colour type (16-bit, gray,
/// gray+alpha, float) and keeps alpha only when there is some.
pub fn renders_images_of_any_colour_type(codec: &dyn ImageCodec) {
    let images = [
        (DynamicImage::new_luma16(40, 20), false),
        (DynamicImage::new_luma_a8(40, 20), true),
        (DynamicImage::new_rgb16(40, 20), false),
        (DynamicImage::new_rgba16(40, 20), true),
        (DynamicImage::new_rgb32f(40, 20), false),
        (DynamicImage::new_rgba32f(40, 20), true),
    ];
    for (image, alpha) in images {
        let color = image.color();
        let decoded = DecodedImage {
            image,
            source_type: "image/png",
            orientation: 1,
            source_size: (40, 20),
        };
        for format in [OutputFormat::Png, WEBP_Q] {
            let variant = codec
                .render(&decoded, &spec("any", 20, 20, format))
                .unwrap_or_else(|e| panic!("render {color:?} as {format:?}: {e}"));
            assert_eq!((variant.width, variant.height), (20, 10), "{color:?}");
            if format == OutputFormat::Png {
                let reopened = reopen(&variant.bytes, ImageFormat::Png, "any colour type");
                assert_eq!(
                    reopened.color().has_alpha(),
                    alpha,
                    "{color:?}: alpha in the PNG variant"
                );
            }
        }
    }
}

/// Inputs carrying EXIF (orientation, GPS) and an ICC profile yield WebP,
/// JPEG and PNG variants with none of it.
pub fn writes_no_metadata(codec: &dyn ImageCodec) {
    let source = gradient(48, 32);
    let dynamic = DynamicImage::ImageRgb8(source.clone());
    let inputs = [
        ("JPEG", jpeg(&source, Some(exif_tiff(1)), Some(fake_icc()))),
        (
            "PNG",
            png_with(&dynamic, Some(exif_tiff(1)), Some(fake_icc())),
        ),
        ("WebP", webp(&dynamic, Some(exif_tiff(1)), Some(fake_icc()))),
    ];
    assert!(
        jpeg_markers(&inputs[0].1).contains(&0xE1),
        "test input lacks APP1"
    );
    for (what, bytes) in inputs {
        let decoded = decode_ok(codec, &bytes, what);
        for format in [WEBP_Q, JPEG_Q, OutputFormat::Png] {
            let label = format!("{what} -> {format:?}");
            let variant = codec
                .render(&decoded, &spec("clean", 24, 24, format))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            match format {
                OutputFormat::WebP { .. } => assert_clean_webp(&variant.bytes, &label),
                OutputFormat::Jpeg { .. } => assert_clean_jpeg(&variant.bytes, &label),
                OutputFormat::Png => assert_clean_png(&variant.bytes, &label),
                OutputFormat::Avif { .. } => unreachable!("not rendered here"),
            }
            for needle in [&b"Exif"[..], b"MM\0*", b"acsp"] {
                assert!(
                    !variant.bytes.windows(needle.len()).any(|w| w == needle),
                    "{label}: the output contains {:?}",
                    String::from_utf8_lossy(needle)
                );
            }
        }
    }
}

/// A spec broken after construction is `InvalidVariantSpec`; an empty image
/// is an error, not a panic.
pub fn rejects_invalid_specs_and_empty_images(codec: &dyn ImageCodec) {
    let decoded = decode_ok(codec, &png(&gradient(8, 8).into()), "gradient");
    let mut broken = VariantSpec::thumb();
    broken.width = 0;
    assert!(matches!(
        codec.render(&decoded, &broken),
        Err(Error::InvalidVariantSpec { .. })
    ));
    let mut broken = VariantSpec::thumb();
    broken.name = "../etc".to_owned();
    assert!(matches!(
        codec.render(&decoded, &broken),
        Err(Error::InvalidVariantSpec { .. })
    ));
    let mut broken = VariantSpec::thumb();
    broken.format = OutputFormat::WebP { quality: f32::NAN };
    assert!(matches!(
        codec.render(&decoded, &broken),
        Err(Error::InvalidVariantSpec { .. })
    ));

    let empty = DecodedImage {
        image: DynamicImage::new_rgb8(0, 0),
        source_type: "image/png",
        orientation: 1,
        source_size: (0, 0),
    };
    assert!(codec.render(&empty, &VariantSpec::thumb()).is_err());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    // The metadata checks must be able to fail: inputs made with EXIF and
    // ICC are refused by each of them.

    #[test]
    #[should_panic(expected = "metadata segment 0xFFE1")]
    fn clean_jpeg_check_catches_exif() {
        assert_clean_jpeg(&jpeg(&gradient(8, 8), Some(exif_tiff(1)), None), "input");
    }

    #[test]
    #[should_panic(expected = "metadata segment 0xFFE2")]
    fn clean_jpeg_check_catches_icc() {
        assert_clean_jpeg(&jpeg(&gradient(8, 8), None, Some(fake_icc())), "input");
    }

    #[test]
    #[should_panic(expected = "announce metadata")]
    fn clean_webp_check_catches_exif() {
        let image = DynamicImage::ImageRgb8(gradient(8, 8));
        assert_clean_webp(&webp(&image, Some(exif_tiff(1)), None), "input");
    }

    #[test]
    #[should_panic(expected = "PNG carries a \"eXIf\" chunk")]
    fn clean_png_check_catches_exif() {
        let image = DynamicImage::ImageRgb8(gradient(8, 8));
        assert_clean_png(&png_with(&image, Some(exif_tiff(1)), None), "input");
    }

    #[test]
    #[should_panic(expected = "PNG carries a \"iCCP\" chunk")]
    fn clean_png_check_catches_icc() {
        let image = DynamicImage::ImageRgb8(gradient(8, 8));
        assert_clean_png(&png_with(&image, None, Some(fake_icc())), "input");
    }

    #[test]
    fn oriented_quadrants_match_image_apply_orientation() {
        let source = DynamicImage::ImageRgb8(quadrants(4, 2));
        for n in 1..=8u8 {
            let mut image = source.clone();
            image.apply_orientation(image::metadata::Orientation::from_exif(n).unwrap());
            let (w, h) = (image.width(), image.height());
            let got = [
                rgb_at(&image, 0, 0),
                rgb_at(&image, w - 1, 0),
                rgb_at(&image, 0, h - 1),
                rgb_at(&image, w - 1, h - 1),
            ];
            assert_eq!(got, oriented_quadrants(n), "orientation {n}");
        }
    }
}
