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
//! 12-bit image is reduced to 8 bits by libheif.

use image::{DynamicImage, ImageBuffer};
use libheif_rs::{
    ColorProfile, ColorSpace, DecodingOptions, HeifContext, HeifError, HeifErrorCode,
    HeifErrorSubCode, LibHeif, RgbChroma, color_profile_types,
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
    let pixels = u64::from(width.max(coded.0)) * u64::from(height.max(coded.1));
    let need = pixels * (channels + LIBHEIF_BYTES_PER_PIXEL);
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

    let mut options = DecodingOptions::new().ok_or_else(|| corrupt("libheif is out of memory"))?;
    options.set_convert_hdr_to_8bit(true);
    let chroma = if alpha {
        RgbChroma::Rgba
    } else {
        RgbChroma::Rgb
    };
    let decoded = LibHeif::new()
        .decode(&handle, ColorSpace::Rgb(chroma), Some(options))
        .map_err(|e| map_error(e, mime))?;
    let plane = decoded
        .planes()
        .interleaved
        .ok_or_else(|| corrupt(format!("libheif gave no interleaved plane for {mime}")))?;
    let (w, h) = (plane.width, plane.height);
    if plane.storage_bits_per_pixel != 8 * channels as u8 {
        return Err(corrupt(format!(
            "libheif gave {} bits per pixel for {mime}, expected {}",
            plane.storage_bits_per_pixel,
            8 * channels
        )));
    }
    let row = w as usize * channels as usize;
    if plane.stride < row || plane.data.len() < plane.stride * (h as usize).saturating_sub(1) + row
    {
        return Err(corrupt(format!("libheif gave a short plane for {mime}")));
    }
    let mut pixels = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        pixels.extend_from_slice(&plane.data[y * plane.stride..y * plane.stride + row]);
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
    fn unpremultiplies() {
        let mut px = [64, 32, 0, 128, 10, 20, 30, 255, 5, 5, 5, 0];
        unpremultiply(&mut px);
        assert_eq!(px, [128, 64, 0, 128, 10, 20, 30, 255, 5, 5, 5, 0]);
    }
}
