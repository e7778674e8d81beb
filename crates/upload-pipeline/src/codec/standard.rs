//! [`StandardCodec`]: `image` for decoding, `fast_image_resize` for
//! resizing, libwebp (crate `webp`) for lossy WebP.

use std::borrow::Cow;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
use image::{
    DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageError, ImageFormat,
    ImageReader, RgbImage, RgbaImage,
};

use super::color;
use super::{
    DecodeLimits, DecodedImage, EncodedVariant, Fit, Gravity, ImageCodec, OutputFormat,
    VariantSpec, fit_within, jpeg,
};
use crate::error::{Error, Result};

/// Largest width or height libwebp can encode, in pixels: a limit on the
/// output only (the box a WebP variant is fitted in), never on the input.
/// The other encoders take every side a [`VariantSpec`] allows (AVIF and
/// JPEG up to 65,535 pixels, PNG more).
const WEBP_MAX_SIDE: u32 = 16_383;

/// The standard [`ImageCodec`].
///
/// - **Decodes** JPEG (baseline, progressive, grayscale, CMYK), PNG (any
///   bit depth, palette, Adam7 interlacing), GIF and WebP (lossy,
///   lossless, with alpha) with the `image` crate, checking
///   [`DecodeLimits`] against the header before pixels are allocated. A
///   JPEG whose marker structure ends before its EOI marker is refused as
///   truncated; a valid JPEG in a coding no decoder here reads
///   (arithmetic coding, hierarchical coding, 12-bit samples) is refused
///   as [`Error::UnsupportedImage`] naming it (`image/jpeg (arithmetic
///   coding, SOF9)`), whichever JPEG decoder is built in. Animated GIF and WebP yield their **first frame** as a
///   still. HEIC/HEIF and AVIF decode through libheif with the `heif`
///   feature (its `irot`/`imir` transforms applied, alpha kept; see the
///   `heif` module) and are refused as [`Error::UnsupportedImage`] naming
///   the feature without it; JPEG XL likewise with the `jxl` feature
///   (jxl-oxide, pure Rust). The EXIF orientation of JPEG, WebP and PNG (an `eXIf` chunk
///   before the image data) is applied. The decoded image is normalised to
///   8-bit RGB, or 8-bit RGBA when the source has an alpha channel. An
///   embedded RGB ICC profile (JPEG, PNG, WebP) is converted to sRGB with
///   `moxcms`, skipped when it moves no probe colour by more than one
///   level (an sRGB profile); CMYK, grey and unreadable profiles are
///   ignored and the pixels taken as sRGB. JPEGs decode at 1/2, 1/4 or 1/8
///   scale when the variants allow ([`ImageCodec::decode_for`]); at 1/4 or
///   1/8, progressive JPEGs skip their finest refinement scans
///   ([`StandardCodec::with_fast_progressive`]).
/// - **Resizes** into the variant's box by its [`Fit`] (`contain`, `cover`
///   with a centred crop, `fill`) with Lanczos3 (`fast_image_resize`), alpha premultiplied
///   during the resize so that transparent pixels do not bleed their
///   colour into the edges.
/// - **Encodes** lossy WebP with libwebp (alpha kept), AVIF with rav1e
///   (feature `avif`, alpha kept), baseline JPEG (alpha
///   composited over white) or PNG, from raw pixels, so no metadata is
///   carried over.
///
/// Any panic inside a decoder or encoder is caught and reported as
/// [`Error::CorruptImage`] or [`Error::EncodeFailed`].
///
/// It holds no state: one value can serve every thread.
#[derive(Debug)]
pub struct StandardCodec {
    /// JPEGs through libjpeg-turbo (feature `turbojpeg`).
    libjpeg_turbo: bool,
    /// Progressive JPEGs shrunk to 1/4 or 1/8 skip their fine refinement
    /// scans.
    fast_progressive: bool,
}

impl Default for StandardCodec {
    /// Decodes JPEG with libjpeg-turbo when the `turbojpeg` feature is on,
    /// else with the pure-Rust decoders; fast progressive decoding on
    /// ([`StandardCodec::with_fast_progressive`]).
    fn default() -> Self {
        Self {
            libjpeg_turbo: cfg!(feature = "turbojpeg"),
            fast_progressive: true,
        }
    }
}

impl StandardCodec {
    /// This codec with fast progressive decoding `on` (the default) or
    /// off. On, a progressive JPEG that libjpeg-turbo decodes at 1/4 or
    /// 1/8 scale for its variants (shrink-on-load, see
    /// [`ImageCodec::decode_for`]) is decoded without the scans that refine
    /// the last two bits of its AC coefficients: about twice as fast (the
    /// 4K progressive photo of `samples/` to a 256-pixel thumbnail: 100 ms
    /// instead of 235 ms of CPU), and within a few levels of the full
    /// decode (over 50 dB PSNR before the variant is encoded). Off, every
    /// scan is decoded. Baseline JPEGs, other formats, full-scale and 1/2
    /// decodes and the pure-Rust decoders are not affected.
    pub fn with_fast_progressive(mut self, on: bool) -> Self {
        self.fast_progressive = on;
        self
    }

    /// This codec decoding YCbCr, RGB and grey JPEGs with libjpeg-turbo
    /// (`on`, the default with the feature) or with the pure-Rust
    /// `zune-jpeg` and `jpeg-decoder` (`!on`, as without the feature; CMYK
    /// JPEGs always take that path). Results agree within JPEG's own
    /// rounding (a mean difference under one level per channel).
    #[cfg(feature = "turbojpeg")]
    pub fn with_libjpeg_turbo(mut self, on: bool) -> Self {
        self.libjpeg_turbo = on;
        self
    }
}

impl ImageCodec for StandardCodec {
    fn decode(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage> {
        self.decode_for(bytes, limits, &[])
    }

    /// Shrink-on-load for JPEG: when every variant samples the image at
    /// 1/4 of full scale or less, the JPEG is decoded at 1/2, 1/4 or 1/8
    /// scale (DCT scaling, `jpeg-decoder`): the smallest that keeps at
    /// least twice the pixels the variants sample. A 4K photo for a
    /// 256-pixel thumbnail decodes at 1/4 (960 × 540). Other formats, and
    /// JPEGs that need more, decode at full scale.
    fn decode_for(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
        variants: &[VariantSpec],
    ) -> Result<DecodedImage> {
        let (turbo, fast) = (self.libjpeg_turbo, self.fast_progressive);
        catch_unwind(AssertUnwindSafe(|| {
            decode(bytes, limits, variants, turbo, fast)
        }))
        .unwrap_or_else(|_| {
            Err(Error::CorruptImage {
                reason: "the decoder panicked".to_owned(),
            })
        })
    }

    fn render(&self, image: &DecodedImage, spec: &VariantSpec) -> Result<EncodedVariant> {
        spec.validate()?;
        catch_unwind(AssertUnwindSafe(|| render(image, spec)))
            .unwrap_or_else(|_| Err(encode_failed(spec, "the resizer or encoder panicked")))
    }
}

/// The format name for [`Error::UnsupportedImage`]: the MIME type
/// recognised from magic bytes, else `fallback`, else `unknown`.
fn format_name(bytes: &[u8], fallback: Option<ImageFormat>) -> String {
    upload_core::sniff(bytes)
        .map(|sniffed| sniffed.mime)
        .ok()
        .or_else(|| fallback.map(|format| format.to_mime_type()))
        .unwrap_or("unknown")
        .to_owned()
}

pub(super) fn too_large(width: u32, height: u32, limit: String) -> Error {
    Error::ImageTooLarge {
        width,
        height,
        limit,
    }
}

pub(super) fn corrupt(reason: impl Into<String>) -> Error {
    Error::CorruptImage {
        reason: reason.into(),
    }
}

/// Maps an `image` error met while reading `format` data of the declared
/// `width` × `height` (0 × 0 when unknown yet).
fn map_image_error(
    err: ImageError,
    bytes: &[u8],
    format: ImageFormat,
    (width, height): (u32, u32),
    limits: &DecodeLimits,
) -> Error {
    match err {
        ImageError::Limits(e) => too_large(
            width,
            height,
            format!(
                "decoder limit ({e}); max_alloc = {} bytes, max {}x{} pixels",
                limits.max_alloc, limits.max_width, limits.max_height
            ),
        ),
        ImageError::Unsupported(e) => Error::UnsupportedImage {
            format: format!("{} ({e})", format_name(bytes, Some(format))),
        },
        other => corrupt(other.to_string()),
    }
}

/// Worst case of the prefix-code tables of a lossless WebP decode, in
/// bytes: 65,536 groups of five tables (image-webp 0.2), rounded up from
/// the 274 MB measured on the fuzzer's input.
pub const WEBP_LOSSLESS_TABLES: u64 = 320 * 1024 * 1024;

/// What the chunks of a WebP file declare, read before any decoder runs.
#[derive(Debug, Default)]
struct WebpChunks {
    /// A `VP8L` bitstream, or an `ALPH` chunk with compression method 1
    /// (lossless), at the top level or in an animation frame (`ANMF`).
    lossless: bool,
    /// The frame size each `VP8 `/`VP8L` bitstream declares itself (the
    /// decoder allocates for it, whatever the canvas in `VP8X` says).
    frames: Vec<(u32, u32)>,
    /// `ANMF` chunks: the frames of an animation.
    animation_frames: u64,
}

/// Reads the chunk list of a WebP file. Malformed containers count as
/// lossless (the safe side); the decoder then reports what is wrong.
fn webp_chunks(bytes: &[u8]) -> WebpChunks {
    fn scan(mut chunks: &[u8], depth: u8, out: &mut WebpChunks) {
        while chunks.len() >= 8 {
            let id = &chunks[..4];
            let len = u32::from_le_bytes([chunks[4], chunks[5], chunks[6], chunks[7]]) as usize;
            let Some(payload) = chunks.get(8..8usize.saturating_add(len)) else {
                out.lossless = true;
                return;
            };
            match id {
                b"VP8 " => {
                    // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit
                    // width and height, little endian.
                    if let Some(h) = payload.get(3..10)
                        && h[..3] == [0x9d, 0x01, 0x2a]
                    {
                        let w = u32::from(u16::from_le_bytes([h[3], h[4]]) & 0x3fff);
                        let ht = u32::from(u16::from_le_bytes([h[5], h[6]]) & 0x3fff);
                        out.frames.push((w, ht));
                    }
                }
                b"VP8L" => {
                    out.lossless = true;
                    // Signature 0x2f, then 14 bits width - 1, 14 bits
                    // height - 1.
                    if let Some(h) = payload.get(..5)
                        && h[0] == 0x2f
                    {
                        let bits = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
                        out.frames
                            .push(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1));
                    }
                }
                b"ALPH" if payload.first().is_none_or(|b| b & 0b11 == 1) => out.lossless = true,
                b"ANMF" if depth == 0 => {
                    out.animation_frames += 1;
                    match payload.get(16..) {
                        Some(frame) => scan(frame, 1, out),
                        None => out.lossless = true,
                    }
                }
                _ => {}
            }
            // Chunks are padded to an even length.
            let next = 8usize.saturating_add(len).saturating_add(len & 1);
            chunks = chunks.get(next..).unwrap_or(&[]);
        }
    }
    let mut out = WebpChunks::default();
    match bytes.get(12..) {
        Some(chunks) if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") => {
            scan(chunks, 0, &mut out)
        }
        _ => out.lossless = true,
    }
    out
}

fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    variants: &[VariantSpec],
    libjpeg_turbo: bool,
    fast_progressive: bool,
) -> Result<DecodedImage> {
    let input_len = bytes.len() as u64;
    if input_len > limits.max_input_bytes {
        return Err(too_large(
            0,
            0,
            format!(
                "max_input_bytes = {} (the input has {input_len} bytes)",
                limits.max_input_bytes
            ),
        ));
    }

    match upload_core::sniff(bytes).map(|s| s.mime) {
        Ok(mime @ ("image/heic" | "image/heif" | "image/avif")) => {
            return decode_heif(bytes, limits, mime);
        }
        Ok("image/jxl") => return decode_jxl(bytes, limits),
        _ => {}
    }

    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| corrupt(e.to_string()))?;
    let format = match reader.format() {
        Some(
            format @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP),
        ) => format,
        other => {
            return Err(Error::UnsupportedImage {
                format: format_name(bytes, other),
            });
        }
    };
    match format {
        ImageFormat::Jpeg => {
            jpeg::check_complete(bytes).map_err(corrupt)?;
            if let Some(feature) = jpeg::unsupported_coding(bytes) {
                return Err(Error::UnsupportedImage {
                    format: format!("image/jpeg ({feature})"),
                });
            }
            if let Some(decoded) =
                jpeg::decode(bytes, limits, variants, libjpeg_turbo, fast_progressive)?
            {
                return Ok(decoded);
            }
        }
        ImageFormat::Png => {
            if let Some((width, height)) = png_header_dimensions(bytes) {
                check_dimensions(width, height, limits)?;
            }
        }
        _ => {}
    }

    // While the header is read, only the allocation budget applies (the
    // PNG decoder takes it for its metadata chunks); the dimensions are
    // checked below so that the error can name them.
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(header_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, bytes, format, (0, 0), limits))?;

    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    // The bitstreams of a WebP declare their own frame size, and the
    // decoder allocates for that before it compares it with the canvas:
    // each must pass the limits too (a 128x128 canvas over a 16383x16383
    // VP8 frame was found by the image_decode fuzz target).
    let webp = (format == ImageFormat::WebP).then(|| webp_chunks(bytes));
    let frames = match format {
        ImageFormat::Gif => gif_frames(bytes),
        ImageFormat::Png => apng_frames(bytes),
        _ => webp.as_ref().map_or(0, |w| w.animation_frames),
    };
    if frames > limits.max_frames {
        return Err(too_large(
            width,
            height,
            format!(
                "max_frames = {} (the animation has {frames} frames)",
                limits.max_frames
            ),
        ));
    }
    for &(w, h) in webp.iter().flat_map(|c| &c.frames) {
        check_dimensions(w, h, limits)?;
        if u64::from(w) * u64::from(h) * 4 > limits.max_alloc {
            return Err(too_large(
                w,
                h,
                format!(
                    "max_alloc = {} bytes (a {w}x{h} WebP frame)",
                    limits.max_alloc
                ),
            ));
        }
    }
    if width == 0 || height == 0 {
        return Err(corrupt(format!(
            "the image declares {width}x{height} pixels"
        )));
    }

    // The pixel buffer comes out of the allocation budget; the decoder
    // gets what is left for its own buffers.
    let buffer_bytes = decoder.total_bytes();
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_width);
    decoder_limits.max_image_height = Some(limits.max_height);
    decoder_limits.max_alloc = Some(limits.max_alloc);
    if decoder_limits.reserve(buffer_bytes).is_err() {
        return Err(too_large(
            width,
            height,
            format!(
                "max_alloc = {} bytes (the pixel buffer needs {buffer_bytes})",
                limits.max_alloc
            ),
        ));
    }
    // A lossless WebP (VP8L, or an alpha plane compressed that way) may
    // declare up to 65,536 prefix-code groups whatever its size, and the
    // decoder builds their tables outside any limit: about 270 MB for an
    // 11 KB file (found by the image_decode fuzz target). Reserve that
    // worst case from the budget too, or refuse the image.
    if webp.as_ref().is_some_and(|w| w.lossless)
        && decoder_limits.reserve(WEBP_LOSSLESS_TABLES).is_err()
    {
        return Err(too_large(
            width,
            height,
            format!(
                "max_alloc = {} bytes (a lossless WebP needs up to {WEBP_LOSSLESS_TABLES} bytes of decoder tables beyond its {buffer_bytes}-byte pixel buffer)",
                limits.max_alloc
            ),
        ));
    }
    decoder
        .set_limits(decoder_limits)
        .map_err(|e| map_image_error(e, bytes, format, (width, height), limits))?;

    let orientation = exif_orientation(&mut decoder);
    let icc = decoder.icc_profile().ok().flatten();

    let mut image = DynamicImage::from_decoder(decoder)
        .map_err(|e| map_image_error(e, bytes, format, (width, height), limits))?;
    image.apply_orientation(orientation);
    let mut image = into_rgb8_or_rgba8(image);
    if let Some(icc) = icc {
        apply_icc(&mut image, &icc);
    }

    Ok(DecodedImage {
        source_size: (image.width(), image.height()),
        image,
        source_type: format.to_mime_type(),
        orientation: orientation.to_exif(),
    })
}

/// HEIC, HEIF and AVIF through libheif (feature `heif`).
#[cfg(feature = "heif")]
fn decode_heif(bytes: &[u8], limits: &DecodeLimits, mime: &'static str) -> Result<DecodedImage> {
    super::heif::decode(bytes, limits, mime)
}

/// Without the `heif` feature, HEIC, HEIF and AVIF are refused naming
/// what to build and install.
#[cfg(not(feature = "heif"))]
fn decode_heif(_: &[u8], _: &DecodeLimits, mime: &'static str) -> Result<DecodedImage> {
    Err(Error::UnsupportedImage {
        format: format!("{mime} ({HEIF_HINT})"),
    })
}

/// JPEG XL through jxl-oxide (feature `jxl`).
#[cfg(feature = "jxl")]
fn decode_jxl(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage> {
    super::jxl::decode(bytes, limits)
}

/// Without the `jxl` feature, JPEG XL is refused naming the feature.
#[cfg(not(feature = "jxl"))]
fn decode_jxl(_: &[u8], _: &DecodeLimits) -> Result<DecodedImage> {
    Err(Error::UnsupportedImage {
        format:
            "image/jxl (decoding it needs upload-pipeline's `jxl` feature: jxl-oxide, pure Rust)"
                .into(),
    })
}

/// How to get HEIC, HEIF and AVIF decoding, for the refusal without it.
#[cfg(not(feature = "heif"))]
const HEIF_HINT: &str = "decoding it needs upload-pipeline's `heif` feature and libheif 1.14 or later: apt install libheif-dev";

/// Converts `image` (8-bit RGB or RGBA) to sRGB from the colour space of
/// the embedded ICC profile `icc`; see [`StandardCodec`] for which
/// profiles are used.
pub(super) fn apply_icc(image: &mut DynamicImage, icc: &[u8]) {
    let outcome = color::to_srgb(image, icc);
    tracing::trace!(?outcome, profile_bytes = icc.len(), "embedded ICC profile");
}

/// The EXIF orientation the decoder reports; unreadable EXIF is not worth
/// refusing the image for, so that counts as no orientation.
///
/// WebP files written by older tools (Pillow before 10, for one) start
/// their `EXIF` chunk with the JPEG-style `Exif\0\0` prefix, which
/// `image` does not skip: the orientation is looked up past it too.
fn exif_orientation(decoder: &mut impl ImageDecoder) -> Orientation {
    match decoder.orientation() {
        Ok(Orientation::NoTransforms) | Err(_) => {}
        Ok(found) => return found,
    }
    match decoder.exif_metadata() {
        Ok(Some(exif)) => exif
            .strip_prefix(b"Exif\0\0")
            .and_then(Orientation::from_exif_chunk)
            .unwrap_or(Orientation::NoTransforms),
        _ => Orientation::NoTransforms,
    }
}

/// The image descriptors of a GIF: its frames, counted by walking its
/// blocks (extensions and image data are sub-block chains). A malformed
/// file counts the frames before the damage.
fn gif_frames(bytes: &[u8]) -> u64 {
    /// The offset after the sub-block chain starting at `pos`.
    fn skip_sub_blocks(bytes: &[u8], mut pos: usize) -> Option<usize> {
        loop {
            let len = usize::from(*bytes.get(pos)?);
            pos += 1;
            if len == 0 {
                return Some(pos);
            }
            pos += len;
        }
    }
    /// Bytes of a colour table announced by a packed-fields byte.
    fn color_table(flags: u8) -> usize {
        if flags & 0x80 == 0 {
            0
        } else {
            3 << ((flags & 0x07) + 1)
        }
    }
    let Some(&flags) = bytes.get(10) else {
        return 0;
    };
    let mut pos = 13 + color_table(flags);
    let mut frames = 0;
    while let Some(&block) = bytes.get(pos) {
        pos = match block {
            0x21 => match skip_sub_blocks(bytes, pos + 2) {
                Some(next) => next,
                None => break,
            },
            0x2C => {
                frames += 1;
                let Some(&local) = bytes.get(pos + 9) else {
                    break;
                };
                // Descriptor (10 bytes), local colour table, LZW minimum
                // code size (1 byte), then the data sub-blocks.
                match skip_sub_blocks(bytes, pos + 10 + color_table(local) + 1) {
                    Some(next) => next,
                    None => break,
                }
            }
            _ => break,
        };
    }
    frames
}

/// The frame count an APNG declares in its `acTL` chunk (read up to the
/// first `IDAT`); 0 for a still PNG.
fn apng_frames(bytes: &[u8]) -> u64 {
    let mut pos = 8;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        match &header[4..8] {
            b"acTL" => {
                return bytes.get(pos + 8..pos + 12).map_or(0, |n| {
                    u64::from(u32::from_be_bytes([n[0], n[1], n[2], n[3]]))
                });
            }
            b"IDAT" => return 0,
            _ => {}
        }
        // Length, type, data, CRC.
        pos = pos.saturating_add(12).saturating_add(len);
    }
    0
}

/// The width and height declared by a PNG's IHDR chunk, read straight from
/// the bytes: the PNG decoder reads on to the first IDAT chunk before it
/// reports dimensions, so a bare bomb header would otherwise only be
/// reported as truncated.
fn png_header_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(8..24)?;
    if &ihdr[4..8] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(ihdr[8..12].try_into().ok()?);
    let height = u32::from_be_bytes(ihdr[12..16].try_into().ok()?);
    Some((width, height))
}

/// Refuses `width` × `height` when it breaks a dimension limit.
pub(super) fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_width {
        return Err(too_large(
            width,
            height,
            format!("max_width = {}", limits.max_width),
        ));
    }
    if height > limits.max_height {
        return Err(too_large(
            width,
            height,
            format!("max_height = {}", limits.max_height),
        ));
    }
    if pixels > limits.max_pixels {
        return Err(too_large(
            width,
            height,
            format!(
                "max_pixels = {} (the image has {pixels})",
                limits.max_pixels
            ),
        ));
    }
    Ok(())
}

/// 8-bit RGB, or RGBA when `image` has an alpha channel; moved, not copied,
/// when it already is.
fn into_rgb8_or_rgba8(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => image,
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

/// Like [`into_rgb8_or_rgba8`], borrowing when no conversion is needed.
fn as_rgb8_or_rgba8(image: &DynamicImage) -> Cow<'_, DynamicImage> {
    match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => Cow::Borrowed(image),
        other if other.color().has_alpha() => {
            Cow::Owned(DynamicImage::ImageRgba8(other.to_rgba8()))
        }
        other => Cow::Owned(DynamicImage::ImageRgb8(other.to_rgb8())),
    }
}

fn encode_failed(spec: &VariantSpec, reason: impl Into<String>) -> Error {
    Error::EncodeFailed {
        variant: spec.name.clone(),
        reason: reason.into(),
    }
}

fn render(decoded: &DecodedImage, spec: &VariantSpec) -> Result<EncodedVariant> {
    let (width, height) = (decoded.width(), decoded.height());
    if width == 0 || height == 0 {
        return Err(encode_failed(
            spec,
            format!("the image is empty ({width}x{height})"),
        ));
    }
    let (mut box_width, mut box_height) = (spec.width, spec.height);
    if let OutputFormat::WebP { .. } = spec.format {
        box_width = box_width.min(WEBP_MAX_SIDE);
        box_height = box_height.min(WEBP_MAX_SIDE);
    }
    // The geometry follows the full-scale source, so that a variant has
    // the same size whether or not its source was shrunk on load (whose
    // sides are rounded up), then maps onto the decoded pixels.
    // A source size of another shape than the pixels (a codec that does
    // not fill it in, an edited image) is not used.
    let (source_width, source_height) = match decoded.source_size {
        (sw, sh)
            if sw >= width
                && sh >= height
                && (f64::from(sh) * f64::from(width) / f64::from(sw) - f64::from(height)).abs()
                    <= 1.0 =>
        {
            (sw, sh)
        }
        _ => (width, height),
    };
    let (crop, (target_width, target_height)) =
        geometry(source_width, source_height, box_width, box_height, spec.fit);
    let (fx, fy) = (
        f64::from(width) / f64::from(source_width),
        f64::from(height) / f64::from(source_height),
    );
    let crop = crop.map(|c| {
        let (width, height) = (c.width * fx, c.height * fy);
        let (left, top) = if spec.gravity == Gravity::Attention {
            super::attention::window(&decoded.image, width, height)
        } else {
            (c.left * fx, c.top * fy)
        };
        Crop {
            left,
            top,
            width,
            height,
        }
    });

    let source = as_rgb8_or_rgba8(&decoded.image);
    let resized = if (target_width, target_height) == (width, height) && crop.is_none() {
        source
    } else {
        let mut target = DynamicImage::new(target_width, target_height, source.color());
        let mut options =
            ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        if let Some(Crop {
            left,
            top,
            width,
            height,
        }) = crop
        {
            options = options.crop(left, top, width, height);
        }
        // `mul_div_alpha` is on by default: RGBA8 is premultiplied while
        // it is resized and divided back afterwards.
        Resizer::new()
            .resize(source.as_ref(), &mut target, &options)
            .map_err(|e| encode_failed(spec, format!("resize failed: {e}")))?;
        Cow::Owned(target)
    };

    let bytes = match spec.format {
        OutputFormat::WebP { quality } => encode_webp(&resized, quality, spec)?,
        OutputFormat::Jpeg { quality } => encode_jpeg(&resized, quality, spec)?,
        OutputFormat::Png => encode_png(&resized, spec)?,
        OutputFormat::Avif { quality, speed } => encode_avif(&resized, quality, speed, spec)?,
    };
    Ok(EncodedVariant {
        name: spec.name.clone(),
        bytes,
        content_type: spec.format.content_type(),
        extension: spec.format.extension(),
        width: target_width,
        height: target_height,
    })
}

/// The part of the source a variant samples, in source pixels (fractional:
/// the resizer samples sub-pixel crops exactly).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Crop {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

/// Where a `width` × `height` image goes in a `box_width` × `box_height`
/// box under `fit`: the source crop (`None` for the whole image) and the
/// output size.
fn geometry(
    width: u32,
    height: u32,
    box_width: u32,
    box_height: u32,
    fit: Fit,
) -> (Option<Crop>, (u32, u32)) {
    match fit {
        Fit::Contain => (None, fit_within(width, height, box_width, box_height)),
        Fit::Fill => (None, (box_width, box_height)),
        Fit::Cover => {
            let (w, h) = (f64::from(width), f64::from(height));
            let (bw, bh) = (f64::from(box_width), f64::from(box_height));
            // The largest centred rectangle of the box's aspect ratio.
            let (cw, ch) = if w * bh >= h * bw {
                (h * bw / bh, h)
            } else {
                (w, w * bh / bw)
            };
            let crop = Crop {
                left: (w - cw) / 2.0,
                top: (h - ch) / 2.0,
                width: cw,
                height: ch,
            };
            let size = if cw >= bw {
                (box_width, box_height)
            } else {
                // Smaller than the box: keep the source's scale. The
                // rounded sides are at most the source's, as cw <= w.
                (
                    (cw.round() as u32).clamp(1, width),
                    (ch.round() as u32).clamp(1, height),
                )
            };
            let whole = crop.width == w && crop.height == h;
            ((!whole).then_some(crop), size)
        }
    }
}

/// The RGB8 or RGBA8 buffer of `image`, as produced by [`as_rgb8_or_rgba8`].
enum Pixels<'a> {
    Rgb(&'a RgbImage),
    Rgba(&'a RgbaImage),
}

fn pixels<'a>(image: &'a DynamicImage, spec: &VariantSpec) -> Result<Pixels<'a>> {
    match image {
        DynamicImage::ImageRgb8(buffer) => Ok(Pixels::Rgb(buffer)),
        DynamicImage::ImageRgba8(buffer) => Ok(Pixels::Rgba(buffer)),
        other => Err(encode_failed(
            spec,
            format!("internal: unexpected colour type {:?}", other.color()),
        )),
    }
}

fn encode_webp(image: &DynamicImage, quality: f32, spec: &VariantSpec) -> Result<Bytes> {
    let encoder = match pixels(image, spec)? {
        Pixels::Rgb(buffer) => webp::Encoder::from_rgb(buffer, buffer.width(), buffer.height()),
        Pixels::Rgba(buffer) => webp::Encoder::from_rgba(buffer, buffer.width(), buffer.height()),
    };
    let mut config = webp::WebPConfig::new()
        .map_err(|()| encode_failed(spec, "libwebp could not initialise its configuration"))?;
    config.lossless = 0;
    config.quality = quality;
    config.alpha_compression = 1;
    let memory = encoder
        .encode_advanced(&config)
        .map_err(|e| encode_failed(spec, format!("libwebp: {e:?}")))?;
    Ok(Bytes::copy_from_slice(&memory))
}

fn encode_jpeg(image: &DynamicImage, quality: u8, spec: &VariantSpec) -> Result<Bytes> {
    let flattened;
    let rgb = match pixels(image, spec)? {
        Pixels::Rgb(buffer) => buffer,
        Pixels::Rgba(buffer) => {
            flattened = over_white(buffer);
            &flattened
        }
    };
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(rgb, rgb.width(), rgb.height(), ExtendedColorType::Rgb8)
        .map_err(|e| encode_failed(spec, e.to_string()))?;
    Ok(Bytes::from(out))
}

fn encode_png(image: &DynamicImage, spec: &VariantSpec) -> Result<Bytes> {
    let mut out = Vec::new();
    write_pixels(PngEncoder::new(&mut out), image, spec)?;
    Ok(Bytes::from(out))
}

#[cfg(feature = "avif")]
fn encode_avif(image: &DynamicImage, quality: u8, speed: u8, spec: &VariantSpec) -> Result<Bytes> {
    let mut out = Vec::new();
    let encoder =
        image::codecs::avif::AvifEncoder::new_with_speed_quality(&mut out, speed, quality);
    write_pixels(encoder, image, spec)?;
    Ok(Bytes::from(out))
}

/// Writes the RGB8 or RGBA8 pixels of `image` with `encoder`.
fn write_pixels(
    encoder: impl ImageEncoder,
    image: &DynamicImage,
    spec: &VariantSpec,
) -> Result<()> {
    let result = match pixels(image, spec)? {
        Pixels::Rgb(buffer) => encoder.write_image(
            buffer,
            buffer.width(),
            buffer.height(),
            ExtendedColorType::Rgb8,
        ),
        Pixels::Rgba(buffer) => encoder.write_image(
            buffer,
            buffer.width(),
            buffer.height(),
            ExtendedColorType::Rgba8,
        ),
    };
    result.map_err(|e| encode_failed(spec, e.to_string()))
}

#[cfg(not(feature = "avif"))]
fn encode_avif(_: &DynamicImage, _: u8, _: u8, spec: &VariantSpec) -> Result<Bytes> {
    Err(encode_failed(
        spec,
        "AVIF output needs the `avif` feature of upload-pipeline",
    ))
}

/// Composites straight-alpha RGBA over an opaque white background.
fn over_white(rgba: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let a = u32::from(a);
        let blend = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_white_blends() {
        let rgba =
            RgbaImage::from_raw(3, 1, vec![255, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 128]).unwrap();
        let rgb = over_white(&rgba);
        assert_eq!(rgb.as_raw(), &[255, 0, 0, 255, 255, 255, 127, 127, 127]);
    }

    #[test]
    fn normalises_to_eight_bits() {
        let gray16 = DynamicImage::new_luma16(2, 2);
        assert!(matches!(
            into_rgb8_or_rgba8(gray16),
            DynamicImage::ImageRgb8(_)
        ));
        let la8 = DynamicImage::new_luma_a8(2, 2);
        assert!(matches!(
            as_rgb8_or_rgba8(&la8).as_ref(),
            DynamicImage::ImageRgba8(_)
        ));
        let rgb8 = DynamicImage::new_rgb8(2, 2);
        assert!(matches!(as_rgb8_or_rgba8(&rgb8), Cow::Borrowed(_)));
    }
}
