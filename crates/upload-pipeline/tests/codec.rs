//! `StandardCodec` on real files from `samples/` (licences in
//! `samples/MANIFEST.tsv`), plus the conformance suite (feature `testkit`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use image::{AnimationDecoder, DynamicImage, ImageFormat, RgbImage};
use upload_pipeline::testkit::codec::{self as testkit, mean_abs_diff, png_bomb_header, png_chunk};
use upload_pipeline::{
    DecodeLimits, DecodedImage, EncodedVariant, Error, ImageCodec, OutputFormat, StandardCodec,
    VariantSpec,
};

macro_rules! sample {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../samples/",
            $path
        ))
        .as_slice()
    };
}

/// The path of a sample, for the ones too large to embed in the binary.
macro_rules! sample_path {
    ($path:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/", $path)
    };
}

const HOPPER_ORIENTED: [(u8, &[u8]); 7] = [
    (2, sample!("testdata/hopper_orientation_2.jpg")),
    (3, sample!("testdata/hopper_orientation_3.jpg")),
    (4, sample!("testdata/hopper_orientation_4.jpg")),
    (5, sample!("testdata/hopper_orientation_5.jpg")),
    (6, sample!("testdata/hopper_orientation_6.jpg")),
    (7, sample!("testdata/hopper_orientation_7.jpg")),
    (8, sample!("testdata/hopper_orientation_8.jpg")),
];

/// Mean absolute difference per channel between a re-oriented
/// `hopper_orientation_N` and `hopper.jpg`. Measured: 4.66–4.86 for the
/// JPEGs, 4.53 for the WebP (each file was re-encoded, hence not 0).
const ORIENTED_MAX_MAD: f64 = 7.0;
/// The same, for the stored (un-oriented) pixels: measured 59.0–81.8 for
/// the JPEGs, 74.5 for the WebP.
const UNORIENTED_MIN_MAD: f64 = 40.0;

fn codec() -> StandardCodec {
    StandardCodec::default()
}

fn decode(bytes: &[u8]) -> DecodedImage {
    codec()
        .decode(bytes, &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("decode failed: {e}"))
}

fn render(decoded: &DecodedImage, spec: &VariantSpec) -> EncodedVariant {
    codec()
        .render(decoded, spec)
        .unwrap_or_else(|e| panic!("render {} failed: {e}", spec.name))
}

fn raw_rgb(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

fn reopen(variant: &EncodedVariant) -> DynamicImage {
    let format = match variant.content_type {
        "image/webp" => ImageFormat::WebP,
        "image/jpeg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        other => panic!("unexpected content type {other}"),
    };
    let image = image::load_from_memory_with_format(&variant.bytes, format)
        .unwrap_or_else(|e| panic!("variant {} does not decode: {e}", variant.name));
    assert_eq!(
        (image.width(), image.height()),
        (variant.width, variant.height),
        "variant {} reports the wrong size",
        variant.name
    );
    image
}

/// Only image chunks, and no ICC, EXIF or XMP flag in VP8X (the
/// conformance suite's check). Returns whether the file has alpha (ALPH
/// chunk or lossless).
fn assert_clean_webp(bytes: &[u8]) -> bool {
    testkit::assert_clean_webp(bytes, "variant");
    assert!(
        !bytes.windows(4).any(|w| w == b"Exif"),
        "WebP contains Exif"
    );
    testkit::webp_chunks(bytes)
        .unwrap()
        .iter()
        .any(|(kind, _)| kind == b"ALPH" || kind == b"VP8L")
}

/// The JPEG markers before the first SOS.
fn jpeg_markers(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "not a JPEG");
    let mut markers = Vec::new();
    let mut pos = 2;
    while pos + 4 <= bytes.len() && bytes[pos] == 0xFF {
        markers.push(bytes[pos + 1]);
        if bytes[pos + 1] == 0xDA {
            break;
        }
        pos += 2 + usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
    }
    markers
}

fn assert_clean_jpeg(bytes: &[u8]) {
    let markers = jpeg_markers(bytes);
    assert!(markers.contains(&0xDA), "no SOS: {markers:02X?}");
    assert!(
        !markers.contains(&0xE1),
        "JPEG variant has an APP1 (EXIF/XMP) segment: {markers:02X?}"
    );
    assert!(
        !markers
            .iter()
            .any(|m| (0xE2..=0xEF).contains(m) || *m == 0xFE),
        "JPEG variant has an APPn/COM segment: {markers:02X?}"
    );
}

#[test]
fn hopper_jpeg_orientations_2_to_8_match_the_upright_original() {
    let upright = decode(sample!("testdata/hopper.jpg"));
    assert_eq!(upright.orientation, 1);
    let upright = upright.image.to_rgb8();
    for (orientation, bytes) in HOPPER_ORIENTED {
        let decoded = decode(bytes);
        assert_eq!(decoded.orientation, orientation);
        assert_eq!((decoded.width(), decoded.height()), (128, 128));
        let oriented = mean_abs_diff(&decoded.image.to_rgb8(), &upright);
        let stored = mean_abs_diff(&raw_rgb(bytes), &upright);
        assert!(
            oriented < ORIENTED_MAX_MAD,
            "orientation {orientation}: {oriented:.2} from hopper.jpg after orientation"
        );
        assert!(
            stored > UNORIENTED_MIN_MAD,
            "orientation {orientation}: the stored pixels are only {stored:.2} from hopper.jpg"
        );
    }
}

#[test]
fn hopper_webp_orientation_6_is_applied() {
    // Pillow wrote this EXIF chunk with a leading "Exif\0\0".
    let bytes = sample!("testdata/hopper_orientation_6.webp");
    let decoded = decode(bytes);
    assert_eq!(decoded.source_type, "image/webp");
    assert_eq!(decoded.orientation, 6);
    let upright = decode(sample!("testdata/hopper.jpg")).image.to_rgb8();
    let oriented = mean_abs_diff(&decoded.image.to_rgb8(), &upright);
    let stored = mean_abs_diff(&raw_rgb(bytes), &upright);
    assert!(oriented < ORIENTED_MAX_MAD, "{oriented:.2}");
    assert!(stored > UNORIENTED_MIN_MAD, "{stored:.2}");
}

#[test]
fn bythewater_orientation_6_is_portrait_and_its_thumb_160x256() {
    let bytes = std::fs::read(sample_path!("photos/derived_bythewater_orient6.jpg")).unwrap();
    let decoded = decode(&bytes);
    assert_eq!(decoded.orientation, 6);
    assert_eq!((decoded.width(), decoded.height()), (1600, 2560));
    // Orientation 6 is a quarter turn clockwise of the stored pixels.
    let stored = image::load_from_memory(&bytes).unwrap();
    assert_eq!((stored.width(), stored.height()), (2560, 1600));
    // Within JPEG decoders' rounding (libjpeg-turbo with the `turbojpeg`
    // feature, zune-jpeg without).
    let turned = mean_abs_diff(&stored.rotate90().to_rgb8(), &decoded.image.to_rgb8());
    assert!(
        turned < 1.0,
        "not the stored pixels turned 90 degrees clockwise: {turned:.2}"
    );
    let other_way = mean_abs_diff(&stored.rotate270().to_rgb8(), &decoded.image.to_rgb8());
    assert!(other_way > 10.0, "{other_way:.2}");

    let thumb = render(&decoded, &VariantSpec::thumb());
    assert_eq!((thumb.width, thumb.height), (160, 256));
    assert_eq!(
        (thumb.content_type, thumb.extension),
        ("image/webp", "webp")
    );
    assert!(
        !assert_clean_webp(&thumb.bytes),
        "an opaque photo got alpha"
    );
    reopen(&thumb);
}

#[test]
fn colorfulcups_variants_carry_no_exif_gps_or_icc() {
    let bytes = std::fs::read(sample_path!("photos/photo_colorfulcups_2560x1600_gps.jpg")).unwrap();
    // The input does carry EXIF (with GPS) and an ICC profile.
    let markers = jpeg_markers(&bytes);
    assert!(
        markers.contains(&0xE1) && markers.contains(&0xE2),
        "{markers:02X?}"
    );
    assert!(bytes.windows(6).any(|w| w == b"Exif\0\0"));

    let decoded = decode(&bytes);
    assert_eq!((decoded.width(), decoded.height()), (2560, 1600));
    let thumb = render(&decoded, &VariantSpec::thumb());
    let medium = render(&decoded, &VariantSpec::medium());
    assert_eq!((thumb.width, thumb.height), (256, 160));
    assert_eq!((medium.width, medium.height), (1024, 640));
    for variant in [&thumb, &medium] {
        assert_clean_webp(&variant.bytes);
        reopen(variant);
    }
    let jpeg = render(
        &decoded,
        &VariantSpec::new("small-jpeg", 320, 320, OutputFormat::Jpeg { quality: 85 }).unwrap(),
    );
    assert_eq!((jpeg.content_type, jpeg.extension), ("image/jpeg", "jpg"));
    assert_clean_jpeg(&jpeg.bytes);
    assert!(!jpeg.bytes.windows(4).any(|w| w == b"Exif"));
    reopen(&jpeg);
}

#[test]
fn exiftool_gps_jpegs_render_clean_jpegs() {
    for bytes in [
        sample!("testdata/exiftool_GPS.jpg"),
        sample!("testdata/exiftool_Apple.jpg"),
    ] {
        assert!(jpeg_markers(bytes).contains(&0xE1), "input without APP1");
        let decoded = decode(bytes);
        let variant = render(
            &decoded,
            &VariantSpec::new("j", 64, 64, OutputFormat::Jpeg { quality: 90 }).unwrap(),
        );
        assert_clean_jpeg(&variant.bytes);
        assert_clean_webp(&render(&decoded, &VariantSpec::thumb()).bytes);
    }
}

#[test]
fn cmyk_jpeg_decodes_to_rgb_with_its_real_colours() {
    let decoded = decode(sample!("testdata/pil_sample_cmyk.jpg"));
    assert_eq!((decoded.width(), decoded.height()), (100, 100));
    assert!(matches!(decoded.image, DynamicImage::ImageRgb8(_)));
    let rgb = decoded.image.to_rgb8();
    // Pillow's own test: red in the top-left corner, black in the
    // opposite one (measured [255, 13, 25] and [1, 4, 5]).
    let [r, g, b] = rgb.get_pixel(0, 0).0;
    assert!(r > 220 && g < 60 && b < 60, "top-left is {:?}", [r, g, b]);
    let [r, g, b] = rgb.get_pixel(99, 99).0;
    assert!(
        r < 40 && g < 40 && b < 40,
        "bottom-right is {:?}",
        [r, g, b]
    );
    // Red text on black: a dark image with red dominant (measured mean
    // [30, 5, 7]); inverted CMYK would be light and cyan.
    let mut sum = [0u64; 3];
    for pixel in rgb.pixels() {
        for (total, value) in sum.iter_mut().zip(pixel.0) {
            *total += u64::from(value);
        }
    }
    let mean = sum.map(|total| total / 10_000);
    assert!(mean[0] > 15 && mean[0] < 60, "mean {mean:?}");
    assert!(mean[1] < 20 && mean[2] < 20, "mean {mean:?}");
}

#[test]
fn sixteen_bit_rgba_png_is_scaled_to_eight_bits_with_alpha() {
    let bytes = sample!("testdata/pngsuite_basn6a16.png");
    let decoded = decode(bytes);
    assert!(matches!(decoded.image, DynamicImage::ImageRgba8(_)));
    assert!(decoded.has_alpha());
    let ours = decoded.image.to_rgba8();
    let DynamicImage::ImageRgba16(wide) = image::load_from_memory(bytes).unwrap() else {
        panic!("basn6a16 is not RGBA16");
    };
    for (a, b) in ours.as_raw().iter().zip(wide.as_raw()) {
        let exact = f64::from(*b) / 257.0;
        assert!((f64::from(*a) - exact).abs() <= 1.0, "{a} from {b}");
    }
    assert_eq!(ours.get_pixel(0, 0).0, [255, 255, 0, 0]);
    assert_eq!(ours.get_pixel(16, 16).0, [0, 0, 255, 247]);

    let thumb = render(&decoded, &VariantSpec::thumb());
    assert_eq!((thumb.width, thumb.height), (32, 32), "enlarged");
    assert!(assert_clean_webp(&thumb.bytes), "the WebP thumb lost alpha");
    let reopened = reopen(&thumb).to_rgba8();
    assert_eq!(reopened.get_pixel(0, 0).0[3], 0);
    assert!(reopened.get_pixel(16, 16).0[3].abs_diff(247) <= 2);
}

#[test]
fn interlaced_png_puts_every_pixel_in_place() {
    let decoded = decode(sample!("testdata/pngsuite_ibasn6a08.png"));
    assert_eq!((decoded.width(), decoded.height()), (32, 32));
    let rgba = decoded.image.to_rgba8();
    // The PngSuite pattern: colour depends on the row only, alpha on the
    // column only, from 0 to 255. Adam7 put back wrongly breaks both.
    for (x, y, pixel) in rgba.enumerate_pixels() {
        let [r, g, b, a] = pixel.0;
        assert_eq!(
            [r, g, b],
            rgba.get_pixel(0, y).0[..3],
            "colour at ({x},{y})"
        );
        assert_eq!(a, rgba.get_pixel(x, 0).0[3], "alpha at ({x},{y})");
        assert_eq!(u32::from(a), x * 255 / 31, "alpha at ({x},{y})");
    }
}

#[test]
fn transparent_png_keeps_alpha_in_webp_and_flattens_in_jpeg() {
    let source = decode(sample!("photos/transparent.png"));
    assert_eq!((source.width(), source.height()), (200, 150));
    assert!(source.has_alpha());
    let source_rgba = source.image.to_rgba8();
    assert_eq!(source_rgba.get_pixel(0, 0).0[3], 0);

    // Fits within 256: not resized, and libwebp keeps alpha losslessly.
    let thumb = render(&source, &VariantSpec::thumb());
    assert_eq!((thumb.width, thumb.height), (200, 150));
    assert!(
        assert_clean_webp(&thumb.bytes),
        "no alpha in the WebP thumb"
    );
    let thumb_rgba = reopen(&thumb).to_rgba8();
    let alpha = |image: &image::RgbaImage| image.pixels().map(|p| p.0[3]).collect::<Vec<_>>();
    assert_eq!(alpha(&thumb_rgba), alpha(&source_rgba), "alpha changed");

    // Resized to half: corners stay transparent, the red die opaque.
    let half = render(
        &source,
        &VariantSpec::new("half", 100, 100, OutputFormat::WebP { quality: 80.0 }).unwrap(),
    );
    assert_eq!((half.width, half.height), (100, 75));
    let half_rgba = reopen(&half).to_rgba8();
    for (x, y) in [(0, 0), (99, 0), (0, 74), (99, 74)] {
        assert_eq!(half_rgba.get_pixel(x, y).0[3], 0, "corner ({x},{y})");
    }
    assert!(half_rgba.get_pixel(50, 37).0[3] > 200);

    let jpeg = render(
        &source,
        &VariantSpec::new("flat", 200, 200, OutputFormat::Jpeg { quality: 90 }).unwrap(),
    );
    let flat = reopen(&jpeg).to_rgb8();
    let corner = flat.get_pixel(0, 0).0;
    assert!(
        corner.iter().all(|c| *c >= 245),
        "corner is {corner:?}, not white"
    );
}

#[test]
fn transparent_webp_and_lossy_webp_decode() {
    let decoded = decode(sample!("testdata/transparent.webp"));
    assert_eq!(decoded.source_type, "image/webp");
    assert_eq!((decoded.width(), decoded.height()), (200, 150));
    assert!(decoded.has_alpha());
    assert_eq!(decoded.image.to_rgba8().get_pixel(0, 0).0[3], 0);

    let decoded = decode(sample!("testdata/libwebp_test.webp"));
    assert_eq!((decoded.width(), decoded.height()), (128, 128));
    assert!(!decoded.has_alpha());
}

#[test]
fn animated_gif_yields_its_first_frame() {
    let bytes = sample!("testdata/fire.gif");
    let decoded = decode(bytes);
    assert_eq!(decoded.source_type, "image/gif");
    assert_eq!((decoded.width(), decoded.height()), (30, 60));
    let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 33);
    let ours = decoded.image.to_rgba8();
    assert!(&ours == frames[0].buffer(), "not the first frame");
    assert!(&ours != frames[1].buffer(), "frames 0 and 1 are the same");
    let thumb = render(&decoded, &VariantSpec::thumb());
    assert_eq!((thumb.width, thumb.height), (30, 60));
}

#[test]
fn truncated_jpeg_is_corrupt() {
    let result = codec().decode(
        sample!("testdata/truncated_jpeg.jpg"),
        &DecodeLimits::default(),
    );
    match result {
        Err(Error::CorruptImage { reason }) => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("expected CorruptImage, got {:?}", other.map(|d| d.width())),
    }
}

/// PDF is never an image; AVIF and HEIC are refused naming their type and
/// what to install without the `heif` feature, and decode (or, for a HEIF
/// without coded data, are corrupt) with it.
#[test]
fn avif_heic_and_pdf_are_refused_and_named() {
    let pdf = std::fs::read(sample_path!("photos/exiftool_PDF.pdf")).unwrap();
    match codec().decode(&pdf, &DecodeLimits::default()) {
        Err(Error::UnsupportedImage { format }) => assert_eq!(format, "application/pdf"),
        other => panic!("PDF: got {:?}", other.map(|d| d.width())),
    }
    for (bytes, expected) in [
        (sample!("testdata/photo_example_800x533.avif"), "image/avif"),
        (sample!("testdata/exiftool_QuickTime.heic"), "image/heic"),
    ] {
        let result = codec().decode(bytes, &DecodeLimits::default());
        if cfg!(feature = "heif") {
            match (expected, result) {
                ("image/avif", Ok(d)) => assert_eq!(d.source_type, "image/avif"),
                ("image/heic", Err(Error::CorruptImage { reason })) => {
                    assert!(reason.starts_with("image/heic: "), "{reason}")
                }
                (_, other) => panic!("{expected}: got {:?}", other.map(|d| d.width())),
            }
        } else {
            match result {
                Err(Error::UnsupportedImage { format }) => {
                    assert!(format.starts_with(&format!("{expected} (")), "{format}");
                    assert!(format.contains("`heif` feature"), "{format}");
                }
                other => panic!("{expected}: got {:?}", other.map(|d| d.width())),
            }
        }
    }
}

/// Valid JPEGs in codings no decoder here reads (see
/// `tests/data/MANIFEST.md` for how each was made) are unsupported, named
/// by their coding, never corrupt: at full scale and shrunk on load, with
/// libjpeg-turbo and with the pure-Rust decoders.
#[test]
fn unsupported_jpeg_codings_are_named_on_every_decode_path() {
    macro_rules! data {
        ($path:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/", $path)).as_slice()
        };
    }
    let sof9 = data!("jpeg/arithmetic_sof9.jpg");
    // The same file with its frame marker turned into SOF5 (hierarchical).
    let mut sof5 = sof9.to_vec();
    let at = sof5.windows(2).position(|w| w == [0xFF, 0xC9]).unwrap();
    sof5[at + 1] = 0xC5;
    let cases: [(&[u8], &str); 4] = [
        (sof9, "image/jpeg (arithmetic coding, SOF9)"),
        (
            data!("jpeg/arithmetic_sof10.jpg"),
            "image/jpeg (arithmetic coding, SOF10)",
        ),
        (
            data!("jpeg/twelve_bit_sof1.jpg"),
            "image/jpeg (12-bit samples, SOF1)",
        ),
        (&sof5, "image/jpeg (hierarchical coding, SOF5)"),
    ];
    #[cfg_attr(not(feature = "turbojpeg"), allow(unused_mut))]
    let mut codecs = vec![StandardCodec::default()];
    #[cfg(feature = "turbojpeg")]
    codecs.push(StandardCodec::default().with_libjpeg_turbo(false));
    for codec in &codecs {
        for (bytes, expected) in cases {
            for variants in [&[][..], &[VariantSpec::thumb()][..]] {
                match codec.decode_for(bytes, &DecodeLimits::default(), variants) {
                    Err(e @ Error::UnsupportedImage { .. }) => assert_eq!(
                        e.to_string(),
                        format!("unsupported image format: {expected}"),
                        "{codec:?}"
                    ),
                    other => panic!(
                        "{expected} ({codec:?}, {} variants): got {:?}",
                        variants.len(),
                        other.map(|d| d.width())
                    ),
                }
            }
        }
    }
    // The 8-bit Huffman file they were made from still decodes.
    let mut baseline = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut baseline, 90)
        .encode_image(&DynamicImage::new_rgb8(32, 24))
        .unwrap();
    assert_eq!(decode(&baseline).width(), 32);
}

/// An image of `width` × `height` whose red channel runs from 0 to 255
/// along its long side, encoded as `format`.
fn strip(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let long = width.max(height) - 1;
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([((x + y) * 255 / long) as u8, 64, 200])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

/// A 20000×1 and a 1×20000 PNG (20,000 pixels) are small images: they
/// decode under the default limits (pixels and memory, not one side) and
/// get variants of 256×1 and 1×256, a side never rounded to 0, with the
/// gradient in place. WebP's side limit bounds the variant, not the input;
/// a side limit, when set, and the pixel limit still refuse.
#[test]
fn extreme_aspect_ratios_decode_and_get_one_pixel_thin_variants() {
    let jpeg = OutputFormat::Jpeg { quality: 90 };
    for ((w, h), thumb, medium) in [
        ((20_000, 1), (256, 1), (1024, 1)),
        ((1, 20_000), (1, 256), (1, 1024)),
    ] {
        let png = strip(w, h, ImageFormat::Png);
        let decoded = decode(&png);
        assert_eq!((decoded.width(), decoded.height()), (w, h));
        for (spec, size) in [
            (VariantSpec::thumb(), thumb),
            (VariantSpec::medium(), medium),
            (VariantSpec::new("j", 256, 256, jpeg).unwrap(), thumb),
            (
                VariantSpec::new("p", 256, 256, OutputFormat::Png).unwrap(),
                thumb,
            ),
        ] {
            let v = render(&decoded, &spec);
            assert_eq!((v.width, v.height), size, "{}", spec.name);
            let pixels = reopen(&v).to_rgb8();
            let (first, last) = (
                pixels.get_pixel(0, 0),
                pixels.get_pixel(size.0 - 1, size.1 - 1),
            );
            assert!(
                first[0] < 40 && last[0] > 215,
                "{}: {first:?} .. {last:?}",
                spec.name
            );
            assert!(first[2].abs_diff(200) < 25, "{}: {first:?}", spec.name);
        }
        // WebP holds at most 16,383 pixels a side: a variant filling a
        // 16,384-pixel box is fitted within that, from the same input.
        let fill = VariantSpec::new(
            "wide",
            w.min(16_384),
            h.min(16_384),
            OutputFormat::WebP { quality: 80.0 },
        )
        .unwrap()
        .with_fit(upload_pipeline::Fit::Fill);
        let v = render(&decoded, &fill);
        assert_eq!((v.width, v.height), (w.min(16_383), h.min(16_383)));
        // A JPEG strip, shrunk on load for the thumbnail on every path.
        let jpg = strip(w, h, ImageFormat::Jpeg);
        #[cfg_attr(not(feature = "turbojpeg"), allow(unused_mut))]
        let mut codecs = vec![StandardCodec::default()];
        #[cfg(feature = "turbojpeg")]
        codecs.push(StandardCodec::default().with_libjpeg_turbo(false));
        for codec in &codecs {
            let decoded = codec
                .decode_for(&jpg, &DecodeLimits::default(), &[VariantSpec::thumb()])
                .unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            assert_eq!(decoded.source_size, (w, h));
            let v = codec.render(&decoded, &VariantSpec::thumb()).unwrap();
            assert_eq!((v.width, v.height), thumb, "{codec:?}");
        }
        // A limit on one side, when set, still refuses.
        match codec().decode(
            &png,
            &DecodeLimits::default()
                .with_max_width(16_384)
                .with_max_height(16_384),
        ) {
            Err(Error::ImageTooLarge {
                width,
                height,
                limit,
            }) => {
                assert_eq!((width, height), (w, h));
                assert!(
                    limit.starts_with(if w > h { "max_width" } else { "max_height" }),
                    "{limit}"
                );
            }
            other => panic!("expected ImageTooLarge, got {:?}", other.map(|d| d.width())),
        }
    }
    // The pixel limit decides: one pixel over 40 MP in a strip is refused.
    match codec().decode(&png_bomb_header(40_000_001, 1), &DecodeLimits::default()) {
        Err(Error::ImageTooLarge {
            width,
            height,
            limit,
        }) => {
            assert_eq!((width, height), (40_000_001, 1));
            assert!(limit.contains("max_pixels"), "{limit}");
        }
        other => panic!("expected ImageTooLarge, got {:?}", other.map(|d| d.width())),
    }
}

#[test]
fn png_declaring_50000x50000_is_refused_from_its_header() {
    let bytes = png_bomb_header(50_000, 50_000);
    assert_eq!(bytes.len(), 33);
    let started = Instant::now();
    let result = codec().decode(&bytes, &DecodeLimits::default());
    let elapsed = started.elapsed();
    match result {
        Err(Error::ImageTooLarge {
            width,
            height,
            limit,
        }) => {
            assert_eq!((width, height), (50_000, 50_000));
            assert!(limit.contains("max_pixels"), "{limit}");
        }
        other => panic!("expected ImageTooLarge, got {:?}", other.map(|d| d.width())),
    }
    assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");

    // With the dimension limits lifted, max_alloc still refuses the 10 GB
    // buffer before it is allocated.
    let lifted = DecodeLimits::default()
        .with_max_width(u32::MAX)
        .with_max_height(u32::MAX)
        .with_max_pixels(u64::MAX);
    // (The PNG decoder reads up to the first IDAT before it reports.)
    let mut with_data = bytes.clone();
    png_chunk(&mut with_data, b"IDAT", &[0x78, 0x9C, 0x03, 0x00]);
    png_chunk(&mut with_data, b"IEND", &[]);
    let started = Instant::now();
    match codec().decode(&with_data, &lifted) {
        Err(Error::ImageTooLarge { limit, .. }) => assert!(limit.contains("max_alloc"), "{limit}"),
        other => panic!("expected ImageTooLarge, got {:?}", other.map(|d| d.width())),
    }
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[test]
fn empty_and_random_bytes_are_unsupported() {
    let mut state = 0x1234_5678_9ABC_DEF0u64;
    let random: Vec<u8> = (0..10_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for bytes in [&[][..], &random, b"just some text\n"] {
        match codec().decode(bytes, &DecodeLimits::default()) {
            Err(Error::UnsupportedImage { format }) => assert_eq!(format, "unknown"),
            other => panic!(
                "expected UnsupportedImage, got {:?}",
                other.map(|d| d.width())
            ),
        }
    }
}

#[test]
fn max_input_bytes_is_checked_first() {
    let bytes = sample!("testdata/hopper.jpg");
    let limits = DecodeLimits::default().with_max_input_bytes(bytes.len() as u64 - 1);
    match codec().decode(bytes, &limits) {
        Err(Error::ImageTooLarge { limit, .. }) => assert!(limit.contains("max_input_bytes")),
        other => panic!("expected ImageTooLarge, got {:?}", other.map(|d| d.width())),
    }
    let limits = DecodeLimits::default().with_max_input_bytes(bytes.len() as u64);
    assert!(codec().decode(bytes, &limits).is_ok());
}

#[test]
fn four_k_photo_thumb_is_256x144() {
    let bytes = std::fs::read(sample_path!(
        "photos/photo_elephants_3840x2160_progressive.jpg"
    ))
    .unwrap();
    let started = Instant::now();
    let decoded = decode(&bytes);
    let decoded_in = started.elapsed();
    assert_eq!((decoded.width(), decoded.height()), (3840, 2160));
    let started = Instant::now();
    let thumb = render(&decoded, &VariantSpec::thumb());
    let thumb_in = started.elapsed();
    assert_eq!((thumb.width, thumb.height), (256, 144));
    assert_clean_webp(&thumb.bytes);
    let medium = render(&decoded, &VariantSpec::medium());
    assert_eq!((medium.width, medium.height), (1024, 576));
    eprintln!(
        "4K progressive JPEG: decode {decoded_in:?}, thumb {thumb_in:?} ({} bytes), medium {} bytes",
        thumb.bytes.len(),
        medium.bytes.len()
    );
}

#[test]
fn small_images_are_never_enlarged() {
    let decoded = decode(sample!("testdata/hopper.jpg"));
    for spec in VariantSpec::defaults() {
        let variant = render(&decoded, &spec);
        assert_eq!((variant.width, variant.height), (128, 128), "{}", spec.name);
        assert_eq!(variant.name, spec.name);
        reopen(&variant);
    }
}

#[test]
fn one_codec_serves_many_threads() {
    let codec: Arc<dyn ImageCodec> = Arc::new(StandardCodec::default());
    let bytes = sample!("testdata/flower.jpg");
    let expected = {
        let decoded = codec.decode(bytes, &DecodeLimits::default()).unwrap();
        codec.render(&decoded, &VariantSpec::thumb()).unwrap()
    };
    assert_eq!((expected.width, expected.height), (256, 192));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let codec = Arc::clone(&codec);
            std::thread::spawn(move || {
                let decoded = codec.decode(bytes, &DecodeLimits::default()).unwrap();
                codec.render(&decoded, &VariantSpec::thumb()).unwrap()
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(
            handle.join().unwrap(),
            expected,
            "encoding is not deterministic"
        );
    }
}

#[test]
fn standard_codec_passes_the_conformance_suite() {
    upload_pipeline::testkit::codec::run_all(&StandardCodec::default());
}
