//! Media processing on real files from `samples/` (licences in
//! `samples/MANIFEST.tsv`): shrink-on-load, CMYK, ICC profiles, fits,
//! alpha edges, placeholders, AVIF, and the whole corpus.

use std::path::{Path, PathBuf};

use image::codecs::png::PngEncoder;
use image::{DynamicImage, ExtendedColorType, ImageEncoder, ImageFormat, RgbImage, RgbaImage};
use upload_pipeline::testkit::codec::mean_abs_diff;
use upload_pipeline::{
    DecodeLimits, DecodedImage, EncodedVariant, Error, Fit, Gravity, ImageCodec, OutputFormat,
    Placeholder, StandardCodec, VariantSpec,
};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples")
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(samples().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decode_for(bytes: &[u8], specs: &[VariantSpec]) -> DecodedImage {
    StandardCodec::default()
        .decode_for(bytes, &DecodeLimits::default(), specs)
        .unwrap_or_else(|e| panic!("decode failed: {e}"))
}

fn decode_full(bytes: &[u8]) -> DecodedImage {
    decode_for(bytes, &[])
}

fn render(decoded: &DecodedImage, spec: &VariantSpec) -> EncodedVariant {
    StandardCodec::default()
        .render(decoded, spec)
        .unwrap_or_else(|e| panic!("render {} failed: {e}", spec.name))
}

fn spec(name: &str, w: u32, h: u32, format: OutputFormat) -> VariantSpec {
    VariantSpec::new(name, w, h, format).unwrap()
}

const PNG: OutputFormat = OutputFormat::Png;

fn rgb(variant: &EncodedVariant) -> RgbImage {
    let format = ImageFormat::from_mime_type(variant.content_type).unwrap();
    let image = image::load_from_memory_with_format(&variant.bytes, format).unwrap();
    assert_eq!(
        (image.width(), image.height()),
        (variant.width, variant.height)
    );
    image.to_rgb8()
}

/// Mean of each channel.
fn mean_rgb(image: &RgbImage) -> [f64; 3] {
    let n = f64::from(image.width() * image.height());
    let mut sum = [0f64; 3];
    for p in image.pixels() {
        for (s, c) in sum.iter_mut().zip(p.0) {
            *s += f64::from(c);
        }
    }
    sum.map(|s| s / n)
}

#[test]
fn four_k_jpeg_for_a_thumbnail_decodes_at_quarter_scale_with_the_same_result() {
    let bytes = read("photos/derived_kleiber_3840x2160_q90_420.jpg");
    let thumb = VariantSpec::thumb();
    let small = decode_for(&bytes, std::slice::from_ref(&thumb));
    // 256/3840 of the detail is needed; 1/8 would keep less than twice
    // that (480 < 512), 1/4 keeps 960.
    assert_eq!((small.width(), small.height()), (960, 540));
    assert_eq!(small.source_size, (3840, 2160));
    let full = decode_full(&bytes);
    assert_eq!((full.width(), full.height()), (3840, 2160));
    assert_eq!(full.source_size, (3840, 2160));

    let (a, b) = (render(&small, &thumb), render(&full, &thumb));
    assert_eq!((a.width, a.height), (256, 144));
    assert_eq!((b.width, b.height), (256, 144));
    let mad = mean_abs_diff(&rgb(&a), &rgb(&b));
    assert!(mad < 2.0, "shrink-on-load thumb differs by {mad:.2}");

    // The default variants need 1024 px: 1/2 (1920) keeps less than twice
    // that, so the decode is at full scale.
    let both = decode_for(&bytes, &VariantSpec::defaults());
    assert_eq!((both.width(), both.height()), (3840, 2160));
    // A 64-pixel icon: 1/8.
    let icon = decode_for(&bytes, &[spec("icon", 64, 64, PNG)]);
    assert_eq!((icon.width(), icon.height()), (480, 270));
}

#[test]
fn shrink_on_load_applies_every_exif_orientation() {
    let upright = decode_for(&read("testdata/hopper.jpg"), &[spec("s", 32, 32, PNG)]);
    // 32 of 128 pixels: 1/2 scale.
    assert_eq!((upright.width(), upright.height()), (64, 64));
    let reference = upright.image.to_rgb8();
    for n in 2..=8 {
        let bytes = read(&format!("testdata/hopper_orientation_{n}.jpg"));
        let decoded = decode_for(&bytes, &[spec("s", 32, 32, PNG)]);
        assert_eq!(decoded.orientation, n);
        assert_eq!((decoded.width(), decoded.height()), (64, 64));
        let mad = mean_abs_diff(&decoded.image.to_rgb8(), &reference);
        // Same bounds as the full-scale test in tests/codec.rs.
        assert!(mad < 7.0, "orientation {n}: {mad:.2} from upright");
    }
    // Orientation 6 turns a 2560x1600 photo into a portrait.
    let bytes = read("photos/derived_bythewater_orient6.jpg");
    let decoded = decode_for(&bytes, &[VariantSpec::thumb()]);
    assert_eq!(decoded.source_size, (1600, 2560));
    assert_eq!((decoded.width(), decoded.height()), (400, 640));
    let thumb = render(&decoded, &VariantSpec::thumb());
    assert_eq!((thumb.width, thumb.height), (160, 256));
}

#[test]
fn cmyk_jpeg_matches_its_rgb_original_on_both_decode_paths() {
    // ImageMagick's Adobe (inverted) CMYK conversion of the RGB photo.
    let cmyk = read("testdata/derived_fallenleaf_2560x1600_cmyk.jpg");
    let original = read("testdata/photo_fallenleaf_2560x1600.jpg");
    let card = spec("card", 320, 320, PNG);
    let want = rgb(&render(&decode_full(&original), &card));
    for (path, decoded) in [
        ("full scale", decode_full(&cmyk)),
        ("1/4 scale", decode_for(&cmyk, std::slice::from_ref(&card))),
    ] {
        let got = rgb(&render(&decoded, &card));
        let mad = mean_abs_diff(&got, &want);
        assert!(
            mad < 4.0,
            "{path}: CMYK differs from the RGB original by {mad:.2}"
        );
        let (g, w) = (mean_rgb(&got), mean_rgb(&want));
        for c in 0..3 {
            assert!(
                (g[c] - w[c]).abs() < 3.0,
                "{path}: channel {c}: {g:?} vs {w:?}"
            );
        }
    }
    // Pillow's CMYK sample: both paths agree with each other.
    let sample = read("testdata/pil_sample_cmyk.jpg");
    let tiny = spec("tiny", 25, 25, PNG);
    let a = rgb(&render(&decode_full(&sample), &tiny));
    let b = rgb(&render(
        &decode_for(&sample, std::slice::from_ref(&tiny)),
        &tiny,
    ));
    let mad = mean_abs_diff(&a, &b);
    assert!(mad < 6.0, "pil_sample_cmyk: paths differ by {mad:.2}");
}

/// Adobe RGB (1998) to sRGB by the published matrices (both D65), with
/// Adobe's gamma 563/256 and the sRGB transfer function: an oracle
/// independent of the colour engine.
fn adobe_to_srgb(rgb: [u8; 3]) -> [f64; 3] {
    let lin = rgb.map(|c| (f64::from(c) / 255.0).powf(563.0 / 256.0));
    let to_xyz = [
        [0.576_730_9, 0.185_554_0, 0.188_185_2],
        [0.297_376_9, 0.627_349_1, 0.075_274_1],
        [0.027_034_3, 0.070_687_2, 0.991_108_5],
    ];
    let to_srgb = [
        [3.240_454_2, -1.537_138_5, -0.498_531_4],
        [-0.969_266_0, 1.876_010_8, 0.041_556_0],
        [0.055_643_4, -0.204_025_9, 1.057_225_2],
    ];
    let mul = |m: [[f64; 3]; 3], v: [f64; 3]| {
        [0, 1, 2].map(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2])
    };
    mul(to_srgb, mul(to_xyz, lin)).map(|l| {
        let l = l.clamp(0.0, 1.0);
        let e = if l <= 0.003_130_8 {
            12.92 * l
        } else {
            1.055 * l.powf(1.0 / 2.4) - 0.055
        };
        e * 255.0
    })
}

#[test]
fn adobe_rgb_profile_is_converted_to_srgb() {
    // The Adobe RGB (1998) profile of a real camera JPEG.
    let camera = read("testdata/exiftool_ExifTool.jpg");
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&camera)).unwrap();
    let icc = image::ImageDecoder::icc_profile(&mut decoder)
        .unwrap()
        .expect("the sample carries an ICC profile");
    assert!(icc.windows(9).any(|w| w == b"Adobe RGB"), "not Adobe RGB");

    let colours: [[u8; 3]; 6] = [
        [200, 100, 50],
        [50, 160, 90],
        [40, 60, 200],
        [128, 128, 128],
        [0, 200, 0],
        [230, 220, 120],
    ];
    let image = RgbImage::from_fn(6, 1, |x, _| image::Rgb(colours[x as usize]));
    let mut png = Vec::new();
    let mut encoder = PngEncoder::new(&mut png);
    encoder.set_icc_profile(icc).unwrap();
    encoder
        .write_image(image.as_raw(), 6, 1, ExtendedColorType::Rgb8)
        .unwrap();

    let decoded = decode_full(&png).image.to_rgb8();
    for (x, colour) in colours.iter().enumerate() {
        let got = decoded.get_pixel(x as u32, 0).0;
        let want = adobe_to_srgb(*colour);
        for c in 0..3 {
            assert!(
                (f64::from(got[c]) - want[c]).abs() <= 3.0,
                "Adobe RGB {colour:?}: got {got:?}, want {want:?}"
            );
        }
    }
    // The saturated green really moved (Adobe RGB's green is outside sRGB).
    let green = decoded.get_pixel(4, 0).0;
    assert!(green[0] < 50 && green[1] > 200, "{green:?}");
    assert_ne!(decoded.get_pixel(0, 0).0, colours[0], "not converted");
}

#[test]
fn srgb_profiles_leave_pixels_alone() {
    // A camera JPEG tagged with an sRGB profile: the same pixels as
    // without it (the `image` crate ignores profiles).
    let bytes = read("photos/photo_colorfulcups_2560x1600_gps.jpg");
    assert!(bytes.windows(4).any(|w| w == b"acsp"), "no ICC profile");
    let pure = StandardCodec::default();
    #[cfg(feature = "turbojpeg")]
    let pure = pure.with_libjpeg_turbo(false);
    let ours = pure
        .decode(&bytes, &DecodeLimits::default())
        .unwrap()
        .image
        .to_rgb8();
    let plain = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(mean_abs_diff(&ours, &plain), 0.0);
}

#[test]
fn cover_crops_around_the_centre_and_fill_stretches() {
    let bytes = read("photos/derived_kleiber_3840x2160_q90_420.jpg");
    let cover = spec("square", 256, 256, PNG).with_fit(Fit::Cover);
    let decoded = decode_for(&bytes, std::slice::from_ref(&cover));
    // Cover samples 256/2160 of the height: 1/4 keeps 540, over twice 256.
    assert_eq!((decoded.width(), decoded.height()), (960, 540));
    let got = render(&decoded, &cover);
    assert_eq!((got.width, got.height), (256, 256));
    // The reference: the centred 2160x2160 square, then contained.
    let full = decode_full(&bytes);
    let square = full.image.crop_imm(840, 0, 2160, 2160);
    let reference = DecodedImage {
        image: square,
        source_size: (2160, 2160),
        ..full.clone()
    };
    let want = render(&reference, &spec("square", 256, 256, PNG));
    let mad = mean_abs_diff(&rgb(&got), &rgb(&want));
    assert!(mad < 2.5, "cover differs from the centred crop by {mad:.2}");

    let fill = render(&full, &spec("strip", 300, 100, PNG).with_fit(Fit::Fill));
    assert_eq!((fill.width, fill.height), (300, 100));

    // Never enlarged: a 128x128 source covering a 400x200 box gives the
    // centred 128x64 crop at full scale.
    let hopper = decode_full(&read("testdata/hopper.jpg"));
    let wide = render(&hopper, &spec("wide", 400, 200, PNG).with_fit(Fit::Cover));
    assert_eq!((wide.width, wide.height), (128, 64));
    let crop = hopper.image.crop_imm(0, 32, 128, 64).to_rgb8();
    assert!(mean_abs_diff(&rgb(&wide), &crop) < 1.0);
}

#[test]
fn white_on_transparent_edges_have_no_dark_halo() {
    // A white disc on fully transparent black: resized straight, the
    // black of the transparent pixels bleeds into the edge.
    let image = RgbaImage::from_fn(400, 400, |x, y| {
        let (dx, dy) = (f64::from(x) - 200.0, f64::from(y) - 200.0);
        if dx * dx + dy * dy < 150.0 * 150.0 {
            image::Rgba([255, 255, 255, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    });
    let mut png = Vec::new();
    DynamicImage::ImageRgba8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    let decoded = decode_full(&png);
    let small = render(&decoded, &spec("s", 37, 37, PNG));
    let out = image::load_from_memory(&small.bytes).unwrap().to_rgba8();
    let mut edge = 0;
    for p in out.pixels() {
        let [r, g, b, a] = p.0;
        if (16..250).contains(&a) {
            edge += 1;
        }
        if a >= 16 {
            assert!(r.min(g).min(b) >= 245, "dark halo pixel {:?}", p.0);
        }
    }
    assert!(edge > 20, "the edge is antialiased ({edge} partial pixels)");
}

#[test]
fn placeholder_decodes_to_the_image_shape_and_colour() {
    let bytes = read("photos/derived_kleiber_3840x2160_q90_420.jpg");
    let decoded = decode_for(&bytes, &[VariantSpec::thumb()]);
    let placeholder = Placeholder::from_image(&decoded).unwrap();
    let hash = base64_decode(&placeholder.thumbhash);
    assert!(hash.len() <= 25, "{} bytes", hash.len());
    let (w, h, rgba) = thumbhash::thumb_hash_to_rgba(&hash).unwrap();
    let ratio = w as f64 / h as f64;
    assert!((ratio - 16.0 / 9.0).abs() < 0.1, "{w}x{h}");
    let (r, g, b, _) = thumbhash::thumb_hash_to_average_rgba(&hash).unwrap();
    let mean = mean_rgb(&decoded.image.to_rgb8());
    for (got, want) in [r, g, b].iter().zip(mean) {
        assert!(
            (f64::from(*got) * 255.0 - want).abs() < 12.0,
            "{r} {g} {b} vs {mean:?}"
        );
    }
    assert_eq!(rgba.len(), w * h * 4);
    // Dominant colour: a real colour of the photo, formatted #rrggbb.
    let hex = &placeholder.dominant_color;
    assert!(hex.len() == 7 && hex.starts_with('#'), "{hex}");
    let c: Vec<u8> = (0..3)
        .map(|i| u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap())
        .collect();
    let small = decoded.image.thumbnail(100, 100).to_rgb8();
    let close = small
        .pixels()
        .filter(|p| (0..3).all(|i| p.0[i].abs_diff(c[i]) <= 16))
        .count();
    assert!(
        close * 20 > small.pixels().len(),
        "{hex} covers {close} pixels"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|q| {
            let n = q.iter().fold(0u32, |n, &d| n << 6 | u32::from(d)) << (6 * (4 - q.len()));
            n.to_be_bytes()[1..q.len()].to_vec()
        })
        .collect()
}

/// Width and height of an AVIF from its `ispe` property.
fn avif_size(bytes: &[u8]) -> (u32, u32) {
    let at = bytes
        .windows(4)
        .position(|w| w == b"ispe")
        .expect("an ispe box");
    let field = |o: usize| u32::from_be_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
    (field(8), field(12))
}

#[cfg(feature = "avif")]
#[test]
fn avif_variants_are_avif_of_the_right_size_with_alpha_kept() {
    let photo = decode_full(&read("testdata/flower.jpg"));
    let avif = OutputFormat::Avif {
        quality: 60,
        speed: OutputFormat::AVIF_DEFAULT_SPEED,
    };
    let v = render(&photo, &spec("a", 160, 160, avif));
    assert_eq!((v.content_type, v.extension), ("image/avif", "avif"));
    assert_eq!(&v.bytes[4..12], b"ftypavif");
    assert_eq!((v.width, v.height), (160, 120));
    assert_eq!(avif_size(&v.bytes), (160, 120));
    assert!(!v.bytes.windows(4).any(|w| w == b"Exif"));
    // Smaller than the PNG of the same variant.
    let png = render(&photo, &spec("a", 160, 160, PNG));
    assert!(
        v.bytes.len() * 4 < png.bytes.len(),
        "{} vs {}",
        v.bytes.len(),
        png.bytes.len()
    );

    let transparent = decode_full(&read("photos/transparent.png"));
    let v = render(&transparent, &spec("t", 64, 64, avif));
    // An alpha plane is an auxiliary image item.
    assert!(v.bytes.windows(4).any(|w| w == b"auxC"), "no alpha item");
}

#[cfg(not(feature = "avif"))]
#[test]
fn avif_without_the_feature_is_a_clear_error() {
    let photo = decode_full(&read("testdata/hopper.jpg"));
    let avif = OutputFormat::Avif {
        quality: 60,
        speed: 8,
    };
    match StandardCodec::default().render(&photo, &spec("a", 64, 64, avif)) {
        Err(Error::EncodeFailed { reason, .. }) => assert!(reason.contains("avif"), "{reason}"),
        other => panic!("expected EncodeFailed, got {other:?}"),
    }
    let _ = avif_size;
}

/// Files that are not images the codec decodes, and why. With the `heif`
/// feature HEIC and AVIF decode, and the metadata-only HEIF (a header
/// without coded image data) is corrupt.
const NOT_DECODED: [(&str, &str); 14] = [
    ("photos/exiftool_PDF.pdf", "unsupported"),
    ("testdata/exiftool_QuickTime.heic", HEIF_OR("corrupt")),
    ("testdata/photo_example_1280x854.heic", HEIF_OR("decoded")),
    ("testdata/photo_example_800x533.avif", HEIF_OR("decoded")),
    (
        "testdata/derived_colorfulcups_400x640_irot90.heic",
        HEIF_OR("decoded"),
    ),
    (
        "testdata/derived_colorfulcups_640x400_10bit.heic",
        HEIF_OR("decoded"),
    ),
    // 22 bytes: a codestream signature and "<dummy jxl>".
    ("testdata/exiftool_JXL.jxl", JXL_OR("corrupt")),
    ("testdata/exiftool_Photoshop.psd", "unsupported"),
    ("testdata/exiftool_BMP.bmp", "unsupported"),
    ("testdata/exiftool_ExifTool.tif", "unsupported"),
    ("testdata/exiftool_XMP.svg", "unsupported"),
    ("testdata/exiftool_ZIP.zip", "unsupported"),
    ("testdata/exiftool_OOXML.docx", "unsupported"),
    ("testdata/truncated_jpeg.jpg", "corrupt"),
];

/// `with_jxl` when the `jxl` feature is on, else `unsupported`.
#[allow(non_snake_case)]
const fn JXL_OR(with_jxl: &'static str) -> &'static str {
    if cfg!(feature = "jxl") {
        with_jxl
    } else {
        "unsupported"
    }
}

/// `with_heif` when the `heif` feature is on, else `unsupported`.
#[allow(non_snake_case)]
const fn HEIF_OR(with_heif: &'static str) -> &'static str {
    if cfg!(feature = "heif") {
        with_heif
    } else {
        "unsupported"
    }
}

/// Every sample gives valid variants without metadata, or the typed error
/// listed in `NOT_DECODED`, on both decode paths.
#[test]
fn every_sample_gives_clean_variants_or_a_typed_error() {
    let codec = StandardCodec::default();
    let specs = [
        VariantSpec::thumb(),
        spec("card", 300, 200, OutputFormat::Jpeg { quality: 85 }).with_fit(Fit::Cover),
        spec("icon", 48, 48, PNG).with_fit(Fit::Fill),
    ];
    let mut seen = 0;
    for dir in ["photos", "testdata"] {
        let mut names: Vec<_> = std::fs::read_dir(samples().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for name in names {
            let path = format!("{dir}/{name}");
            let bytes = read(&path);
            seen += 1;
            let expected = NOT_DECODED
                .iter()
                .find(|(p, _)| *p == path)
                .map(|e| e.1)
                .filter(|&e| e != "decoded");
            for variants in [&[][..], &specs[..]] {
                let result = codec.decode_for(&bytes, &DecodeLimits::default(), variants);
                match (result, expected) {
                    (Ok(decoded), None) => {
                        for spec in &specs {
                            let v = codec
                                .render(&decoded, spec)
                                .unwrap_or_else(|e| panic!("{path} as {}: {e}", spec.name));
                            let image = rgb(&v);
                            assert!(image.width() >= 1 && image.height() >= 1);
                            for needle in
                                [&b"Exif"[..], b"acsp", b"http://ns.adobe.com/xap", b"GPS"]
                            {
                                assert!(
                                    !v.bytes.windows(needle.len()).any(|w| w == needle),
                                    "{path} as {}: carries {:?}",
                                    spec.name,
                                    String::from_utf8_lossy(needle)
                                );
                            }
                        }
                    }
                    (Err(Error::UnsupportedImage { .. }), Some("unsupported"))
                    | (Err(Error::CorruptImage { .. }), Some("corrupt")) => {}
                    (other, expected) => panic!(
                        "{path}: expected {:?}, got {:?}",
                        expected.unwrap_or("variants"),
                        other.map(|d| (d.width(), d.height()))
                    ),
                }
            }
        }
    }
    assert!(seen >= 45, "only {seen} samples");
}

#[test]
fn variant_specs_parse_fits_and_avif() {
    let v = VariantSpec::parse("hero=1600x900:cover:avif:55:6").unwrap();
    assert_eq!((v.width, v.height, v.fit), (1600, 900, Fit::Cover));
    assert_eq!(
        v.format,
        OutputFormat::Avif {
            quality: 55,
            speed: 6
        }
    );
    let v = VariantSpec::parse("hero=1600x900:avif").unwrap();
    assert_eq!(
        v.format,
        OutputFormat::Avif {
            quality: 60,
            speed: 8
        }
    );
    let centre = VariantSpec::parse("card=90x160:cover:png").unwrap();
    let smart = VariantSpec::parse("card=90x160:cover-attention:png").unwrap();
    assert_eq!((smart.fit, smart.gravity), (Fit::Cover, Gravity::Attention));
    assert_eq!((centre.fit, centre.gravity), (Fit::Cover, Gravity::Centre));
    assert_ne!(smart.fingerprint(), centre.fingerprint());
    // Gravity means nothing to `contain`: the key does not change.
    let contain = VariantSpec::parse("t=90x160:png").unwrap();
    assert_eq!(
        contain.fingerprint(),
        contain
            .clone()
            .with_gravity(Gravity::Attention)
            .fingerprint()
    );
    let v = VariantSpec::parse("s=10x20:fill").unwrap();
    assert_eq!(
        (v.fit, v.format),
        (Fit::Fill, OutputFormat::WebP { quality: 80.0 })
    );
    for bad in [
        "a=1x1:avif:0",
        "a=1x1:avif:60:11",
        "a=1x1:webp:80:3",
        "a=1x1:cover:cover",
    ] {
        assert!(
            matches!(
                VariantSpec::parse(bad),
                Err(Error::InvalidVariantSpec { .. })
            ),
            "{bad}"
        );
    }
    // The fingerprint follows what is rendered, not the name.
    let a = VariantSpec::parse("a=256x256").unwrap();
    let b = VariantSpec::parse("b=256x256").unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    for other in [
        "a=256x255",
        "a=256x256:cover",
        "a=256x256:webp:81",
        "a=256x256:png",
    ] {
        assert_ne!(
            a.fingerprint(),
            VariantSpec::parse(other).unwrap().fingerprint(),
            "{other}"
        );
    }
}

/// libjpeg-turbo and the pure-Rust decoders give the same pixels (within
/// JPEG's rounding) at full scale and shrunk on load, with orientation,
/// greyscale and progressive files.
#[cfg(feature = "turbojpeg")]
#[test]
fn libjpeg_turbo_and_the_pure_rust_decoders_agree() {
    let turbo = StandardCodec::default();
    let pure = StandardCodec::default().with_libjpeg_turbo(false);
    let limits = DecodeLimits::default();
    for path in [
        "photos/derived_kleiber_3840x2160_q90_420.jpg",
        "photos/photo_elephants_3840x2160_progressive.jpg",
        "photos/derived_bythewater_orient6.jpg",
        "testdata/photo_grey_2560x1600_grayscale.jpg",
        "testdata/hopper_orientation_5.jpg",
    ] {
        let bytes = read(path);
        for variants in [vec![], vec![VariantSpec::thumb()]] {
            let a = turbo.decode_for(&bytes, &limits, &variants).unwrap();
            let b = pure.decode_for(&bytes, &limits, &variants).unwrap();
            assert_eq!((a.width(), a.height()), (b.width(), b.height()), "{path}");
            assert_eq!(
                (a.source_size, a.orientation),
                (b.source_size, b.orientation)
            );
            // Full scale: the pixels agree. Shrunk on load, the reduced
            // IDCTs differ more on fine texture (2.3 levels on the
            // elephants' skin at 1/4), so compare what is served.
            let (a, b) = if variants.is_empty() {
                (a.image.to_rgb8(), b.image.to_rgb8())
            } else {
                let png = spec("t", 256, 256, PNG);
                (rgb(&render(&a, &png)), rgb(&render(&b, &png)))
            };
            let mad = mean_abs_diff(&a, &b);
            assert!(mad < 1.5, "{path} ({} variants): {mad:.2}", variants.len());
        }
    }
}

fn frames_refused(result: upload_pipeline::Result<DecodedImage>, frames: u64) {
    match result {
        Err(Error::ImageTooLarge { limit, .. }) => assert!(
            limit.contains("max_frames") && limit.contains(&format!("has {frames} frames")),
            "{limit}"
        ),
        other => panic!(
            "expected max_frames, got {:?}",
            other.map(|d| d.orientation)
        ),
    }
}

#[test]
fn animations_over_max_frames_are_refused_before_decoding() {
    let codec = StandardCodec::default();
    for (path, frames) in [
        ("testdata/fire.gif", 33),
        ("testdata/iss634.webp", 42),
        ("testdata/welcome2.gif", 0),
    ] {
        let bytes = read(path);
        let limits = DecodeLimits::default();
        if frames == 0 {
            // Counted, whatever it is, within the default.
            codec.decode(&bytes, &limits).unwrap();
            continue;
        }
        let at = limits.clone().with_max_frames(frames);
        let decoded = codec.decode(&bytes, &at).unwrap();
        assert!(decoded.width() > 0, "{path}: first frame");
        frames_refused(
            codec.decode(&bytes, &at.with_max_frames(frames - 1)),
            frames,
        );
    }
    // An APNG declares its frame count in acTL, before IDAT.
    let mut png = Vec::new();
    DynamicImage::new_rgb8(4, 4)
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap() - 4;
    let mut actl = Vec::new();
    let mut data = 7u32.to_be_bytes().to_vec();
    data.extend_from_slice(&0u32.to_be_bytes());
    upload_pipeline::testkit::codec::png_chunk(&mut actl, b"acTL", &data);
    png.splice(idat..idat, actl);
    let limits = DecodeLimits::default().with_max_frames(6);
    frames_refused(codec.decode(&png, &limits), 7);
}

/// The offset of the first marker `FF code` at a segment boundary.
fn marker_at(bytes: &[u8], code: u8) -> usize {
    let mut pos = 2;
    loop {
        assert_eq!(bytes[pos], 0xFF, "segment boundary at {pos}");
        if bytes[pos + 1] == code {
            return pos;
        }
        pos += 2 + usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
    }
}

#[test]
fn jpegs_of_more_than_a_hundred_scans_are_refused_on_every_path() {
    // A real progressive JPEG with its last scan sent 120 more times.
    let bytes = read("photos/photo_colorfulcups_2560x1600_gps.jpg");
    let eoi = bytes.len() - 2;
    assert_eq!(&bytes[eoi..], &[0xFF, 0xD9]);
    let last_sos = bytes[..eoi]
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap();
    let mut bomb = bytes[..eoi].to_vec();
    for _ in 0..120 {
        bomb.extend_from_slice(&bytes[last_sos..eoi]);
    }
    bomb.extend_from_slice(&[0xFF, 0xD9]);
    let codec = StandardCodec::default();
    for variants in [&[][..], &[VariantSpec::thumb()][..]] {
        match codec.decode_for(&bomb, &DecodeLimits::default(), variants) {
            Err(Error::CorruptImage { reason }) => assert!(reason.contains("scans"), "{reason}"),
            other => panic!("expected CorruptImage, got {:?}", other.map(|d| d.width())),
        }
    }
    // The file itself decodes: it is the scan count that is refused.
    codec.decode(&bytes, &DecodeLimits::default()).unwrap();
}

#[test]
fn progressive_coefficients_count_against_max_alloc_when_shrinking_on_load() {
    // 3840x2160 progressive: the 960x540 output is small, the full-scale
    // coefficients (up to 3840 x 2160 x 3 x 2 bytes) are not.
    let bytes = read("photos/photo_elephants_3840x2160_progressive.jpg");
    let small = DecodeLimits::default().with_max_alloc(16 << 20);
    let thumb = [VariantSpec::thumb()];
    match StandardCodec::default().decode_for(&bytes, &small, &thumb) {
        Err(Error::ImageTooLarge { limit, .. }) => {
            assert!(
                limit.contains("max_alloc") && limit.contains("needs up to"),
                "{limit}"
            )
        }
        other => panic!("expected ImageTooLarge, got {:?}", other.map(|d| d.width())),
    }
    let roomy = DecodeLimits::default().with_max_alloc(64 << 20);
    let decoded = StandardCodec::default()
        .decode_for(&bytes, &roomy, &thumb)
        .unwrap();
    assert_eq!((decoded.width(), decoded.height()), (960, 540));
}

#[test]
fn stray_bytes_before_a_marker_decode_on_every_path() {
    // libjpeg warns about "extraneous bytes before marker"; libjpeg-turbo's
    // API fails on warnings, the codec then reads the file itself.
    let bytes = read("testdata/flower.jpg");
    let sos = marker_at(&bytes, 0xDA);
    let mut damaged = bytes[..sos].to_vec();
    damaged.extend_from_slice(b"\x01\x02\x03");
    damaged.extend_from_slice(&bytes[sos..]);
    let codec = StandardCodec::default();
    let clean = codec.decode(&bytes, &DecodeLimits::default()).unwrap();
    for variants in [&[][..], &[spec("s", 100, 100, PNG)][..]] {
        let got = codec
            .decode_for(&damaged, &DecodeLimits::default(), variants)
            .unwrap_or_else(|e| panic!("{} variants: {e}", variants.len()));
        if variants.is_empty() {
            let mad = mean_abs_diff(&got.image.to_rgb8(), &clean.image.to_rgb8());
            assert!(mad < 1.0, "{mad:.2}");
        } else {
            assert_eq!((got.width(), got.height()), (240, 180));
        }
    }
}

#[test]
fn a_variant_has_the_same_size_whether_or_not_it_was_shrunk_on_load() {
    // 2001 x 1871: halving rounds 935.5 up, which must not change the
    // thumbnail's 256 x 239 (1871 * 256 / 2001 = 239.4).
    let image = RgbImage::from_fn(2001, 1871, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, 90])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&image)
        .unwrap();
    for spec in [
        VariantSpec::thumb(),
        spec("c", 300, 120, PNG).with_fit(Fit::Cover),
        spec("f", 97, 33, PNG).with_fit(Fit::Fill),
    ] {
        let full = render(&decode_full(&jpeg), &spec);
        let shrunk = decode_for(&jpeg, std::slice::from_ref(&spec));
        assert!(shrunk.width() < 2001, "{}: not shrunk", spec.name);
        let small = render(&shrunk, &spec);
        assert_eq!(
            (small.width, small.height),
            (full.width, full.height),
            "{}",
            spec.name
        );
    }
}

/// PSNR in dB and the largest difference in levels between two images of
/// the same size.
fn psnr_and_max_diff(a: &RgbImage, b: &RgbImage) -> (f64, u8) {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut squares, mut max) = (0f64, 0u8);
    for (&x, &y) in a.as_raw().iter().zip(b.as_raw()) {
        squares += (f64::from(x) - f64::from(y)).powi(2);
        max = max.max(x.abs_diff(y));
    }
    let mse = squares / a.as_raw().len() as f64;
    (10.0 * (255.0 * 255.0 / mse.max(1e-12)).log10(), max)
}

/// Fast progressive decoding (the default) skips the last refinement scans
/// of a progressive JPEG shrunk on load to 1/4 or 1/8: its thumbnail stays
/// within a few levels of the one decoded from every scan. Baseline JPEGs
/// and full-scale decodes are not affected.
#[cfg(feature = "turbojpeg")]
#[test]
fn fast_progressive_thumbnails_match_the_full_decode() {
    let fast = StandardCodec::default();
    let exact = StandardCodec::default().with_fast_progressive(false);
    let limits = DecodeLimits::default();
    let thumb = [VariantSpec::thumb()];
    let png = spec("t", 256, 256, PNG);
    for (path, min_psnr, max_levels) in [
        ("photos/photo_elephants_3840x2160_progressive.jpg", 50.0, 3),
        ("photos/photo_colorfulcups_2560x1600_gps.jpg", 50.0, 4),
    ] {
        let bytes = read(path);
        let a = fast.decode_for(&bytes, &limits, &thumb).unwrap();
        let b = exact.decode_for(&bytes, &limits, &thumb).unwrap();
        assert_eq!((a.width(), a.height()), (b.width(), b.height()));
        assert!(a.width() * 4 <= a.source_size.0, "{path}: shrunk on load");
        assert_ne!(a.image, b.image, "{path}: the fine scans were skipped");
        let (ta, tb) = (rgb(&render(&a, &png)), rgb(&render(&b, &png)));
        let (db, max) = psnr_and_max_diff(&ta, &tb);
        println!("{path}: {db:.1} dB, at most {max} levels apart");
        assert!(
            db >= min_psnr && max <= max_levels,
            "{path}: {db:.1} dB, {max} levels"
        );

        // The default variants need the full scale: every scan is read.
        let defaults = VariantSpec::defaults();
        let a = fast.decode_for(&bytes, &limits, &defaults).unwrap();
        let b = exact.decode_for(&bytes, &limits, &defaults).unwrap();
        assert_eq!(a.image, b.image, "{path} at full scale");
    }
    let baseline = read("photos/derived_kleiber_3840x2160_q90_420.jpg");
    let a = fast.decode_for(&baseline, &limits, &thumb).unwrap();
    let b = exact.decode_for(&baseline, &limits, &thumb).unwrap();
    assert_eq!(a.image, b.image, "a baseline JPEG has no scans to skip");
}

/// `image` box-averaged over 8×8 blocks of its top-left `w/8*8 × h/8*8`
/// pixels: the shape of the `derived_example_*_reference_*.png` files.
#[cfg(feature = "heif")]
fn reduce8(image: &RgbImage) -> RgbImage {
    let (w, h) = (image.width() / 8, image.height() / 8);
    RgbImage::from_fn(w, h, |x, y| {
        let mut sum = [0u32; 3];
        for dy in 0..8 {
            for dx in 0..8 {
                let p = image.get_pixel(x * 8 + dx, y * 8 + dy).0;
                for c in 0..3 {
                    sum[c] += u32::from(p[c]);
                }
            }
        }
        image::Rgb(sum.map(|s| ((s + 32) / 64) as u8))
    })
}

/// A portrait HEIC as phones write it: the coded image is 640 x 400 and an
/// essential `irot` property turns it 90 degrees anticlockwise. It decodes
/// upright (400 x 640) with the pixels `heif-convert` gives, its thumbnail
/// is portrait, and read without the rotation it would not match.
#[cfg(feature = "heif")]
#[test]
fn a_heic_with_an_irot_transform_decodes_upright() {
    let decoded = decode_full(&read("testdata/derived_colorfulcups_400x640_irot90.heic"));
    assert_eq!((decoded.width(), decoded.height()), (400, 640));
    assert_eq!(decoded.source_size, (400, 640));
    assert_eq!(decoded.source_type, "image/heic");
    assert_eq!(decoded.orientation, 1, "libheif applied the transform");
    let ours = reduce8(&decoded.image.to_rgb8());
    let want = image::load_from_memory(&read(
        "testdata/derived_colorfulcups_irot90_heif_convert_reference_50x80.png",
    ))
    .unwrap()
    .to_rgb8();
    assert_eq!(ours.dimensions(), (50, 80));
    let diff = mean_abs_diff(&ours, &want);
    assert!(diff < 1.0, "mean difference {diff} from heif-convert");
    // Turned back clockwise and forth again, the pixels are not the
    // reference's: the rotation is what makes them match.
    let flipped = image::imageops::rotate180(&ours);
    assert!(mean_abs_diff(&flipped, &want) > 10.0);
    let v = render(&decoded, &VariantSpec::thumb());
    let thumb = rgb(&v);
    assert_eq!(thumb.dimensions(), (160, 256));
}

/// A 10-bit HEIC (HEVC Main 10, as an iPhone's HDR photos) decodes to the
/// 8-bit pixels of the 16-bit PNG it was encoded from, within the loss of
/// the encoding: the samples are scaled from 10 bits, not truncated or
/// read as 8-bit bytes.
#[cfg(feature = "heif")]
#[test]
fn a_10_bit_heic_decodes_to_the_source_pixels() {
    let decoded = decode_full(&read("testdata/derived_colorfulcups_640x400_10bit.heic"));
    assert_eq!((decoded.width(), decoded.height()), (640, 400));
    let ours = reduce8(&decoded.image.to_rgb8());
    let source = image::load_from_memory(&read("testdata/derived_colorfulcups_640x400_16bit.png"))
        .unwrap()
        .to_rgb8();
    let want = reduce8(&source);
    let diff = mean_abs_diff(&ours, &want);
    assert!(diff < 3.0, "mean difference {diff} from the 16-bit source");
    // The brightest block is as bright as the source's: 10-bit samples
    // read as 8-bit would be 4 times too dark or wrap.
    let max = |img: &image::RgbImage| {
        img.pixels()
            .map(|p| p.0.iter().map(|&c| u32::from(c)).sum::<u32>())
            .max()
    };
    let (a, b) = (max(&ours).unwrap(), max(&want).unwrap());
    assert!(a.abs_diff(b) < 24, "brightest block {a} vs {b}");
}

/// HEIC (the libheif example photo, a 2-image file with an HEVC grid) and
/// AVIF decode to their full size with the pixels Debian's `heif-convert`
/// gives (see samples/MANIFEST.tsv), within rounding of the colour
/// conversion.
#[cfg(feature = "heif")]
#[test]
fn heic_and_avif_decode_to_the_reference_pixels() {
    for (file, reference, size, mime) in [
        (
            "testdata/photo_example_1280x854.heic",
            "testdata/derived_example_heic_reference_160x106.png",
            (1280, 854),
            "image/heic",
        ),
        (
            "testdata/photo_example_800x533.avif",
            "testdata/derived_example_avif_reference_100x66.png",
            (800, 533),
            "image/avif",
        ),
    ] {
        let decoded = decode_full(&read(file));
        assert_eq!((decoded.width(), decoded.height()), size, "{file}");
        assert_eq!(decoded.source_size, size);
        assert_eq!(decoded.source_type, mime);
        assert!(!decoded.has_alpha(), "{file}");
        let ours = reduce8(&decoded.image.to_rgb8());
        let want = image::load_from_memory(&read(reference)).unwrap().to_rgb8();
        assert_eq!(ours.dimensions(), want.dimensions());
        let diff = mean_abs_diff(&ours, &want);
        assert!(
            diff < 1.0,
            "{file}: mean difference {diff} from heif-convert"
        );
        // And through the variants, with no metadata carried over.
        let v = render(&decoded, &VariantSpec::thumb());
        let thumb = rgb(&v);
        assert_eq!(thumb.width().max(thumb.height()), 256, "{file}");
        assert!(!v.bytes.windows(4).any(|w| w == b"Exif"), "{file}");
    }
}

/// A HEIC whose header declares a huge image is refused from the header,
/// before libheif decodes a pixel; a truncated one is corrupt.
#[cfg(feature = "heif")]
#[test]
fn heic_bombs_and_truncations_are_typed_refusals() {
    // Every `ispe` (image spatial extents) property set to side x side:
    // 30000 is refused by our limits with the declared size, 60000 already
    // by libheif's own (32768 a side) while it parses the container.
    for (side, reported) in [(30_000u32, (30_000, 30_000)), (60_000, (0, 0))] {
        let mut bomb = read("testdata/photo_example_1280x854.heic");
        let at: Vec<usize> = bomb
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"ispe")
            .map(|(i, _)| i)
            .collect();
        assert!(!at.is_empty());
        for i in at {
            // type, then version/flags (4), then width and height (u32 BE).
            bomb[i + 8..i + 12].copy_from_slice(&side.to_be_bytes());
            bomb[i + 12..i + 16].copy_from_slice(&side.to_be_bytes());
        }
        match StandardCodec::default().decode_for(&bomb, &DecodeLimits::default(), &[]) {
            Err(Error::ImageTooLarge { width, height, .. }) => {
                assert_eq!((width, height), reported, "{side}");
            }
            other => panic!(
                "{side}: expected ImageTooLarge, got {:?}",
                other.map(|d| d.source_size)
            ),
        }
    }

    let whole = read("testdata/photo_example_1280x854.heic");
    for cut in [100, 1000, whole.len() / 4, whole.len() / 2] {
        match StandardCodec::default().decode_for(&whole[..cut], &DecodeLimits::default(), &[]) {
            Err(Error::CorruptImage { .. } | Error::UnsupportedImage { .. }) => {}
            other => panic!(
                "cut at {cut}: expected a typed refusal, got {:?}",
                other.map(|d| d.source_size)
            ),
        }
    }
}

/// Without the `heif` feature, HEIC and AVIF are refused naming the
/// feature and the library to install.
#[cfg(not(feature = "heif"))]
#[test]
fn heic_without_the_feature_names_what_to_install() {
    for file in [
        "testdata/photo_example_1280x854.heic",
        "testdata/photo_example_800x533.avif",
    ] {
        match StandardCodec::default().decode_for(&read(file), &DecodeLimits::default(), &[]) {
            Err(Error::UnsupportedImage { format }) => {
                assert!(format.contains("`heif` feature"), "{format}");
                assert!(format.contains("libheif-dev"), "{format}");
            }
            other => panic!(
                "{file}: expected UnsupportedImage, got {:?}",
                other.map(|d| d.source_size)
            ),
        }
    }
}

/// JPEG XL with the `jxl` feature: a lossy (XYB) file decodes to the
/// pixels of libjxl's `djxl`, a recompressed JPEG with orientation 6 to
/// the upright photo the JPEG gives, a lossless 16-bit RGBA file to its
/// PNG source with alpha kept.
#[cfg(feature = "jxl")]
#[test]
fn jxl_decodes_to_the_reference_pixels() {
    let lossy = decode_full(&read("testdata/derived_hopper_lossy_d1.jxl"));
    assert_eq!(lossy.source_type, "image/jxl");
    assert_eq!((lossy.width(), lossy.height()), (128, 128));
    let want =
        image::load_from_memory(&read("testdata/derived_hopper_lossy_d1_djxl_reference.png"))
            .unwrap()
            .to_rgb8();
    let diff = mean_abs_diff(&lossy.image.to_rgb8(), &want);
    assert!(diff < 1.0, "lossy: mean difference {diff} from djxl");

    let rotated = decode_full(&read(
        "testdata/derived_hopper_orientation_6_recompressed.jxl",
    ));
    assert_eq!(rotated.orientation, 6);
    let jpeg = decode_full(&read("testdata/hopper_orientation_6.jpg"));
    let diff = mean_abs_diff(&rotated.image.to_rgb8(), &jpeg.image.to_rgb8());
    assert!(
        diff < 2.0,
        "orientation 6: mean difference {diff} from the JPEG"
    );
    // And not the unrotated picture.
    let raw = image::imageops::rotate270(&jpeg.image.to_rgb8());
    assert!(mean_abs_diff(&rotated.image.to_rgb8(), &raw) > 20.0);

    // The PNG says gAMA 1.0 (linear light), so cjxl wrote a linear colour
    // encoding, which the decode converts to sRGB: alpha is exact, colour
    // is the 16-bit source sRGB-encoded.
    let alpha = decode_full(&read("testdata/derived_pngsuite_basn6a16_lossless.jxl"));
    assert!(alpha.has_alpha());
    let got = alpha.image.to_rgba8();
    assert_eq!(got.dimensions(), (32, 32));
    let source = image::load_from_memory(&read("testdata/pngsuite_basn6a16.png"))
        .unwrap()
        .to_rgba16();
    let srgb = |v: u16| {
        let x = f64::from(v) / 65535.0;
        let e = if x <= 0.003_130_8 {
            12.92 * x
        } else {
            1.055 * x.powf(1.0 / 2.4) - 0.055
        };
        (e * 255.0).round() as u8
    };
    let mut max = [0u8; 2];
    for (g, s) in got.pixels().zip(source.pixels()) {
        for c in 0..3 {
            max[0] = max[0].max(g[c].abs_diff(srgb(s[c])));
        }
        max[1] = max[1].max(g[3].abs_diff((f64::from(s[3]) / 257.0).round() as u8));
    }
    assert!(
        max[0] <= 2 && max[1] <= 1,
        "lossless: max differences {max:?}"
    );
    let v = render(&alpha, &spec("a", 16, 16, PNG));
    assert_eq!(v.content_type, "image/png");
}

/// JPEG XL over the limits is refused from its header (the size) or by
/// the decoder's allocation tracker (the budget); damage is corrupt.
#[cfg(feature = "jxl")]
#[test]
fn jxl_limits_and_damage_are_typed_refusals() {
    let bytes = read("testdata/derived_hopper_lossy_d1.jxl");
    let codec = StandardCodec::default();
    let small = DecodeLimits::default().with_max_pixels(64 * 64);
    match codec.decode_for(&bytes, &small, &[]) {
        Err(Error::ImageTooLarge { width, height, .. }) => assert_eq!((width, height), (128, 128)),
        other => panic!(
            "expected ImageTooLarge, got {:?}",
            other.map(|d| d.source_size)
        ),
    }
    let mut tight = DecodeLimits::default();
    tight.max_alloc = 16 * 1024;
    match codec.decode_for(&bytes, &tight, &[]) {
        Err(Error::ImageTooLarge { .. }) => {}
        other => panic!(
            "expected ImageTooLarge, got {:?}",
            other.map(|d| d.source_size)
        ),
    }
    for cut in [12, bytes.len() / 4, bytes.len() / 2] {
        match codec.decode_for(&bytes[..cut], &DecodeLimits::default(), &[]) {
            Err(Error::CorruptImage { reason }) => {
                assert!(reason.starts_with("image/jxl"), "{reason}")
            }
            other => panic!("cut at {cut}: got {:?}", other.map(|d| d.source_size)),
        }
    }
}

/// Without the `jxl` feature, JPEG XL is refused naming the feature.
#[cfg(not(feature = "jxl"))]
#[test]
fn jxl_without_the_feature_names_it() {
    match StandardCodec::default().decode_for(
        &read("testdata/derived_hopper_lossy_d1.jxl"),
        &DecodeLimits::default(),
        &[],
    ) {
        Err(Error::UnsupportedImage { format }) => {
            assert!(format.contains("`jxl` feature"), "{format}")
        }
        other => panic!(
            "expected UnsupportedImage, got {:?}",
            other.map(|d| d.source_size)
        ),
    }
}

/// The share of `subject` (left, top, right, bottom, as fractions of the
/// image) inside the `cw` × `ch` window at `origin`, in pixels of a
/// `w` × `h` image.
fn kept(subject: [f64; 4], (w, h): (u32, u32), origin: (f64, f64), (cw, ch): (f64, f64)) -> f64 {
    let [l, t, r, b] = [
        subject[0] * f64::from(w),
        subject[1] * f64::from(h),
        subject[2] * f64::from(w),
        subject[3] * f64::from(h),
    ];
    let ix = (r.min(origin.0 + cw) - l.max(origin.0)).max(0.0);
    let iy = (b.min(origin.1 + ch) - t.max(origin.1)).max(0.0);
    ix * iy / ((r - l) * (b - t))
}

/// Attention crops keep off-centre subjects of real photos that centre
/// crops cut. Subjects marked by hand (see the boxes): the in-focus maple
/// leaf right of centre in the fallen-leaf photo, the same photo mirrored
/// (leaf on the left), and the nuthatch of the Kleiber photo once the
/// photo is cropped to its right 70% (bird in the left third).
#[test]
fn attention_crops_keep_off_centre_subjects() {
    let leaf = decode_for(
        &read("testdata/photo_fallenleaf_2560x1600.jpg"),
        &[spec("s", 640, 640, PNG)],
    );
    let mirrored = DecodedImage {
        image: leaf.image.fliph(),
        ..leaf.clone()
    };
    let bird = decode_for(
        &read("photos/photo_kleiber_6028x3391.jpg"),
        &[spec("s", 1024, 1024, PNG)],
    );
    let (bw, bh) = (bird.width(), bird.height());
    let x0 = (f64::from(bw) * 0.30) as u32;
    let bird_right = DecodedImage {
        image: bird.image.crop_imm(x0, 0, bw - x0, bh),
        source_size: (bw - x0, bh),
        ..bird.clone()
    };
    // The bird at x 0.40..0.54 of the whole photo, in the cropped one.
    let bird_box = |x: f64| (x - 0.30) / 0.70;
    let cases = [
        ("leaf", &leaf, [0.54, 0.30, 0.91, 0.80]),
        ("mirrored leaf", &mirrored, [0.09, 0.30, 0.46, 0.80]),
        (
            "nuthatch",
            &bird_right,
            [bird_box(0.40), 0.35, bird_box(0.54), 0.65],
        ),
    ];
    for (what, decoded, subject) in cases {
        let (w, h) = (decoded.width(), decoded.height());
        // A 9:16 story crop and a square one, both spanning the height.
        for aspect in [9.0 / 16.0, 1.0] {
            let window = (f64::from(h) * aspect, f64::from(h));
            let centre = Gravity::Centre.crop_origin(&decoded.image, window.0, window.1);
            let attention = Gravity::Attention.crop_origin(&decoded.image, window.0, window.1);
            let kept_centre = kept(subject, (w, h), centre, window);
            let kept_attention = kept(subject, (w, h), attention, window);
            eprintln!(
                "{what} {aspect:.2}: centre keeps {kept_centre:.2}, attention {kept_attention:.2}"
            );
            assert!(
                kept_attention >= 0.9,
                "{what} {aspect}: attention keeps {kept_attention:.2}"
            );
            assert!(kept_attention >= kept_centre, "{what} {aspect}");
        }
    }
    // Rendered through a spec too: a cover-attention variant differs from
    // the centred one on the leaf and is the box's size.
    let centred = render(&leaf, &spec("c", 90, 160, PNG).with_fit(Fit::Cover));
    let smart = render(
        &leaf,
        &spec("c", 90, 160, PNG)
            .with_fit(Fit::Cover)
            .with_gravity(Gravity::Attention),
    );
    assert_eq!((smart.width, smart.height), (90, 160));
    assert!(mean_abs_diff(&rgb(&centred), &rgb(&smart)) > 10.0);
}
