//! A structural check of JPEG files, run before decoding.
//!
//! The `image` crate decodes JPEG with `zune-jpeg` in non-strict mode,
//! which fills the missing part of a truncated file with grey instead of
//! failing. This walk refuses a file whose marker structure ends before its
//! EOI marker, so a truncated upload becomes an error rather than a
//! half-grey variant.
//!
//! It also holds the shrink-on-load path, [`decode_scaled`].

use image::metadata::Orientation;
use image::{DynamicImage, ImageFormat, RgbImage};
use jpeg_decoder::PixelFormat;

use super::standard::{apply_icc, check_dimensions, corrupt};
use super::{DecodeLimits, DecodedImage, VariantSpec};
use crate::error::{Error, Result};

/// Walks the marker segments and entropy-coded data of a JPEG and returns
/// the reason when the file ends before its EOI marker (`FF D9`) or is not
/// a JPEG at all. Bytes after EOI (e.g. an appended video) are ignored.
pub(super) fn check_complete(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("missing JPEG SOI marker".to_owned());
    }
    let len = bytes.len();
    let mut pos = 2;
    loop {
        // Find the next marker; tolerate stray bytes between segments the
        // way libjpeg does, and any number of 0xFF fill bytes.
        while pos < len && bytes[pos] != 0xFF {
            pos += 1;
        }
        while pos < len && bytes[pos] == 0xFF {
            pos += 1;
        }
        if pos >= len {
            return Err(format!(
                "truncated: the file ends after {len} bytes, before the EOI marker"
            ));
        }
        let marker = bytes[pos];
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers: RSTn, TEM, a stray SOI.
            0xD0..=0xD8 | 0x01 => continue,
            0x00 => continue,
            _ => {}
        }
        if pos + 2 > len {
            return Err(format!(
                "truncated inside the length of marker 0xFF{marker:02X}"
            ));
        }
        let seg_len = usize::from(u16::from_be_bytes([bytes[pos], bytes[pos + 1]]));
        if seg_len < 2 {
            return Err(format!(
                "marker 0xFF{marker:02X} has an invalid length {seg_len}"
            ));
        }
        if pos + seg_len > len {
            return Err(format!(
                "truncated inside marker 0xFF{marker:02X} (segment of {seg_len} bytes at offset {})",
                pos - 2
            ));
        }
        pos += seg_len;
        if marker == 0xDA {
            // Start of scan: skip entropy-coded data up to the next marker
            // other than a stuffed zero or a restart marker.
            loop {
                while pos < len && bytes[pos] != 0xFF {
                    pos += 1;
                }
                if pos + 1 >= len {
                    return Err(format!(
                        "truncated: the scan data runs to the end of the file ({len} bytes) without an EOI marker"
                    ));
                }
                match bytes[pos + 1] {
                    0x00 | 0xD0..=0xD7 | 0xFF => pos += 1,
                    _ => break,
                }
            }
        }
    }
}

/// Shrink-on-load: decodes the JPEG `bytes` at 1/2, 1/4 or 1/8 scale
/// (DCT scaling, `jpeg-decoder`) when that keeps at least twice the detail
/// the most demanding of `variants` samples; `None` when no reduced scale
/// does (or there are no variants), for the caller to decode at full
/// scale.
///
/// The header's dimensions pass [`DecodeLimits`] first; the reduced pixel
/// buffer and the decoder's own buffers (the full-size coefficients of a
/// progressive JPEG) are bounded by `max_alloc`. EXIF orientation and an
/// embedded RGB ICC profile are applied as on the full-scale path; CMYK is
/// converted the way the full-scale decoder does (Adobe inverted CMYK
/// read back to ink amounts, then `(255 - C)(255 - K) / 255`).
pub(super) fn decode_scaled(
    bytes: &[u8],
    limits: &DecodeLimits,
    variants: &[VariantSpec],
) -> Result<Option<DecodedImage>> {
    if variants.is_empty() {
        return Ok(None);
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(decode_error)?;
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_dimensions(width, height, limits)?;
    if width == 0 || height == 0 {
        return Err(corrupt(format!(
            "the image declares {width}x{height} pixels"
        )));
    }
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let upright = if swaps_axes(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    let needed = variants
        .iter()
        .map(|v| v.sample_scale(upright.0, upright.1))
        .fold(0.0_f64, f64::max);
    let Some(denominator) = [8u16, 4, 2]
        .into_iter()
        .find(|&d| 1.0 / f64::from(d) >= 2.0 * needed)
    else {
        return Ok(None);
    };
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    let (w, h) = decoder
        .scale(
            info.width.div_ceil(denominator),
            info.height.div_ceil(denominator),
        )
        .map_err(decode_error)?;
    let pixels = decoder.decode().map_err(decode_error)?;
    let (w, h) = (u32::from(w), u32::from(h));
    let format = decoder.info().map_or(info.pixel_format, |i| i.pixel_format);
    let short = || corrupt("the decoder returned fewer pixels than it declared");
    let image = match format {
        PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        PixelFormat::L8 => DynamicImage::ImageRgb8(
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels).ok_or_else(short)?)
                .to_rgb8(),
        ),
        PixelFormat::L16 => {
            let samples = pixels
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            let gray = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, h, samples)
                .ok_or_else(short)?;
            DynamicImage::ImageRgb8(DynamicImage::ImageLuma16(gray).to_rgb8())
        }
        PixelFormat::CMYK32 => {
            let rgb: Vec<u8> = pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - u32::from(p[3]);
                    let ink = |c: u8| ((255 - u32::from(c)) * k + 127) / 255;
                    [ink(p[0]) as u8, ink(p[1]) as u8, ink(p[2]) as u8]
                })
                .collect();
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, rgb).ok_or_else(short)?)
        }
    };
    let icc = decoder.icc_profile();
    let mut image = image;
    image.apply_orientation(orientation);
    if let Some(icc) = icc {
        apply_icc(&mut image, &icc);
    }
    Ok(Some(DecodedImage {
        image,
        source_format: ImageFormat::Jpeg,
        orientation: orientation.to_exif(),
        source_size: upright,
    }))
}

/// A `jpeg-decoder` error as this crate's: a feature it lacks (arithmetic
/// coding, for one) is an unsupported image, as on the full-scale path;
/// anything else is corrupt data.
fn decode_error(e: jpeg_decoder::Error) -> Error {
    match e {
        jpeg_decoder::Error::Unsupported(what) => Error::UnsupportedImage {
            format: format!("image/jpeg ({what:?})"),
        },
        other => corrupt(other.to_string()),
    }
}

/// Whether `orientation` turns the image a quarter (EXIF 5 to 8), so that
/// width and height swap.
fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

#[cfg(test)]
mod tests {
    use super::check_complete;

    /// SOI, an APP0 segment of 4 bytes, SOS with a 1-byte header payload,
    /// entropy data with a stuffed 0xFF00 and a restart marker, then EOI.
    const MINIMAL: &[u8] = &[
        0xFF, 0xD8, // SOI
        0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, // APP0
        0xFF, 0xDA, 0x00, 0x03, 0x01, // SOS
        0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, // scan data
        0xFF, 0xD9, // EOI
    ];

    #[test]
    fn complete_file_passes_and_every_truncation_fails() {
        assert_eq!(check_complete(MINIMAL), Ok(()));
        for cut in 0..MINIMAL.len() {
            assert!(check_complete(&MINIMAL[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn trailing_bytes_after_eoi_are_ignored() {
        let mut with_trailer = MINIMAL.to_vec();
        with_trailer.extend_from_slice(b"....ftypmp42 appended video");
        assert_eq!(check_complete(&with_trailer), Ok(()));
    }

    #[test]
    fn a_segment_length_past_the_end_fails() {
        let bytes = [0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 0x00];
        assert!(check_complete(&bytes).unwrap_err().contains("0xFFE1"));
        assert!(check_complete(b"not a jpeg").is_err());
    }
}
