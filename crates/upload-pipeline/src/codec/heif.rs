//! HEIC/HEIF (iPhone photos) and AVIF through libheif (feature `heif`).
//!
//! libheif reads the ISO-BMFF container, hands the coded image to its
//! HEVC (libde265) or AV1 (libdav1d/libaom) decoder and converts the result
//! to interleaved 8-bit RGB(A). The container is parsed first and the
//! primary image's declared size is checked against [`DecodeLimits`]
//! before any pixel is decoded, so a bomb (a 65,535 × 65,535 grid in a
//! few hundred bytes) costs nothing.
//!
//! What is applied, as the HEIF specification asks: the `irot`/`imir`/
//! `clap` transforms (rotation, mirror, clean aperture) by libheif. An
//! iPhone's EXIF orientation tag only repeats them and is ignored, as
//! every HEIF reader does. An embedded ICC profile (an iPhone's Display
//! P3) is converted to sRGB like a JPEG's. An alpha plane is kept
//! (un-premultiplied when the file says it is premultiplied). A 10- or
//! 12-bit image is decoded to 16-bit samples and reduced to 8 bits here,
//! rounded to nearest.

use image::{DynamicImage, ImageBuffer};
use libheif_rs::{
    ColorProfile, ColorSpace, HeifContext, HeifError, HeifErrorCode, HeifErrorSubCode, LibHeif,
    RgbChroma, color_profile_types,
};

use super::standard::{apply_icc, corrupt, too_large};
use super::{DecodeLimits, DecodedImage};
use crate::error::{Error, Result};

/// Bytes of libheif's own buffers per pixel, at worst, on top of the
/// output: the decoded planes (Y, Cb, Cr and alpha, 16 bits each for a
/// 10-bit or 12-bit image) before they are converted.
const LIBHEIF_BYTES_PER_PIXEL: u64 = 8;

/// Decodes the primary image of a HEIF file (`mime` is the sniffed type:
/// `image/heic`, `image/heif` or `image/avif`, used in errors).
///
/// # Errors
/// [`Error::ImageTooLarge`] when the declared size breaks `limits` (checked
/// before decoding) or libheif's own security limits (a side over 32,768
/// pixels, too many grid tiles: reported with a 0 × 0 size), [`Error::CorruptImage`] for a damaged file,
/// [`Error::UnsupportedImage`] for a coding libheif has no decoder for.
pub(super) fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    mime: &'static str,
) -> Result<DecodedImage> {
    let context = HeifContext::read_from_bytes(bytes).map_err(|e| map_error(e, mime))?;
    let handle = context
        .primary_image_handle()
        .map_err(|e| map_error(e, mime))?;
    // The size after the transforms; the coded size (`ispe`) is checked
    // too, as the decoder allocates for that before rotating.
    let (width, height) = (handle.width(), handle.height());
    let coded = (
        u32::try_from(handle.ispe_width()).unwrap_or(u32::MAX),
        u32::try_from(handle.ispe_height()).unwrap_or(u32::MAX),
    );
    if width == 0 || height == 0 {
        return Err(corrupt(format!("{mime} declares {width}x{height} pixels")));
    }
    super::standard::check_dimensions(width, height, limits)?;
    if coded != (0, 0) && coded != (width, height) && coded != (height, width) {
        super::standard::check_dimensions(coded.0, coded.1, limits)?;
    }
    let alpha = handle.has_alpha_channel();
    let channels: u64 = if alpha { 4 } else { 3 };
    let hdr = handle.luma_bits_per_pixel() > 8;
    let sample_bytes: usize = if hdr { 2 } else { 1 };
    let pixels = u64::from(width.max(coded.0)) * u64::from(height.max(coded.1));
    // libheif's planes, its interleaved output (16-bit samples for a
    // high bit depth) and our 8-bit copy.
    let need = pixels * (channels * (1 + sample_bytes as u64) + LIBHEIF_BYTES_PER_PIXEL);
    if need > limits.max_alloc {
        return Err(too_large(
            width,
            height,
            format!(
                "max_alloc = {} bytes (a {width}x{height} {mime} needs about {need} bytes to decode)",
                limits.max_alloc
            ),
        ));
    }
    let icc = handle
        .color_profile_raw()
        .filter(|p| {
            p.profile_type() == color_profile_types::PROF
                || p.profile_type() == color_profile_types::R_ICC
        })
        .map(|p| p.data);

    // No decoding options are passed: libheif-rs 0.19's `LibHeif::decode`
    // frees the options it is given before libheif reads them (a
    // use-after-free that left `ignore_transformations` set from freed
    // memory, so rotated iPhone photos came out sideways). libheif's
    // defaults apply the transforms; a 10- or 12-bit image is asked for as
    // 16-bit samples and reduced to 8 bits here.
    let chroma = match (alpha, hdr) {
        (false, false) => RgbChroma::Rgb,
        (true, false) => RgbChroma::Rgba,
        (false, true) => RgbChroma::HdrRgbLe,
        (true, true) => RgbChroma::HdrRgbaLe,
    };
    let decoded = LibHeif::new()
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(|e| map_error(e, mime))?;
    let plane = decoded
        .planes()
        .interleaved
        .ok_or_else(|| corrupt(format!("libheif gave no interleaved plane for {mime}")))?;
    let (w, h) = (plane.width, plane.height);
    if usize::from(plane.storage_bits_per_pixel) != 8 * sample_bytes * channels as usize
        || (hdr && !(9..=16).contains(&plane.bits_per_pixel))
    {
        return Err(corrupt(format!(
            "libheif gave {} bits per pixel ({} significant) for {mime}, expected {}",
            plane.storage_bits_per_pixel,
            plane.bits_per_pixel,
            8 * sample_bytes * channels as usize
        )));
    }
    let row = w as usize * channels as usize * sample_bytes;
    if plane.stride < row || plane.data.len() < plane.stride * (h as usize).saturating_sub(1) + row
    {
        return Err(corrupt(format!("libheif gave a short plane for {mime}")));
    }
    let mut pixels = Vec::with_capacity(w as usize * channels as usize * h as usize);
    for y in 0..h as usize {
        let line = &plane.data[y * plane.stride..y * plane.stride + row];
        if hdr {
            pixels.extend(
                line.chunks_exact(2)
                    .map(|s| to_8bit(u16::from_le_bytes([s[0], s[1]]), plane.bits_per_pixel)),
            );
        } else {
            pixels.extend_from_slice(line);
        }
    }
    let mut image = if alpha {
        if handle.is_premultiplied_alpha() {
            unpremultiply(&mut pixels);
        }
        ImageBuffer::from_raw(w, h, pixels).map(DynamicImage::ImageRgba8)
    } else {
        ImageBuffer::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    }
    .ok_or_else(|| corrupt(format!("libheif gave {w}x{h} pixels that do not fit")))?;
    if let Some(icc) = icc {
        apply_icc(&mut image, &icc);
    }
    Ok(DecodedImage {
        source_size: (image.width(), image.height()),
        image,
        source_type: mime,
        orientation: 1,
    })
}

/// A `bits`-bit sample (9..=16) scaled to 8 bits, rounded to nearest.
fn to_8bit(sample: u16, bits: u8) -> u8 {
    let max = (1u32 << bits) - 1;
    let v = u32::from(sample).min(max);
    ((v * 255 + max / 2) / max) as u8
}

/// RGBA with colour premultiplied by alpha back to straight alpha.
fn unpremultiply(rgba: &mut [u8]) {
    for px in rgba.chunks_exact_mut(4) {
        let a = u16::from(px[3]);
        if a != 0 && a != 255 {
            for c in &mut px[..3] {
                *c = ((u16::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
}

/// libheif's errors as the codec's: unsupported codings and features
/// name the type; everything else is a damaged file.
fn map_error(err: HeifError, mime: &str) -> Error {
    match err.code {
        HeifErrorCode::UnsupportedFeature | HeifErrorCode::UnsupportedFileType => {
            Error::UnsupportedImage {
                format: format!("{mime} ({})", err.message),
            }
        }
        _ if matches!(err.sub_code, HeifErrorSubCode::SecurityLimitExceeded) => too_large(
            0,
            0,
            format!("libheif's security limits: {}", err.message.trim_end()),
        ),
        HeifErrorCode::MemoryAllocationError => corrupt(format!(
            "{mime}: libheif could not allocate ({})",
            err.message
        )),
        _ => corrupt(format!("{mime}: {}", err.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_high_bit_depth_samples_to_8_bits() {
        assert_eq!(super::to_8bit(0, 10), 0);
        assert_eq!(super::to_8bit(1023, 10), 255);
        assert_eq!(super::to_8bit(512, 10), 128);
        assert_eq!(super::to_8bit(4095, 12), 255);
        assert_eq!(super::to_8bit(2048, 12), 128);
        // Out-of-range samples saturate rather than wrap.
        assert_eq!(super::to_8bit(u16::MAX, 10), 255);
    }

    #[test]
    fn unpremultiplies() {
        let mut px = [64, 32, 0, 128, 10, 20, 30, 255, 5, 5, 5, 0];
        unpremultiply(&mut px);
        assert_eq!(px, [128, 64, 0, 128, 10, 20, 30, 255, 5, 5, 5, 0]);
    }
}
