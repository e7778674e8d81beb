//! A structural check of JPEG files, run before decoding.
//!
//! The `image` crate decodes JPEG with `zune-jpeg` in non-strict mode,
//! which fills the missing part of a truncated file with grey instead of
//! failing. This walk refuses a file whose marker structure ends before its
//! EOI marker, so a truncated upload becomes an error rather than a
//! half-grey variant. It also refuses files of more than [`MAX_SCANS`]
//! scans, whichever decoder would read them.
//!
//! It also holds the JPEG decoder behind shrink-on-load, [`decode`].

use image::metadata::Orientation;
use image::{DynamicImage, ImageFormat, RgbImage};
use jpeg_decoder::{CodingProcess, PixelFormat};

use super::standard::{apply_icc, check_dimensions, corrupt, too_large};
use super::{DecodeLimits, DecodedImage, VariantSpec};
use crate::error::{Error, Result};

/// Walks the marker segments and entropy-coded data of a JPEG and returns
/// the reason when the file ends before its EOI marker (`FF D9`), holds
/// more than [`MAX_SCANS`] scans, or is not a JPEG at all. Bytes after EOI
/// (e.g. an appended video) are ignored.
pub(super) fn check_complete(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("missing JPEG SOI marker".to_owned());
    }
    let len = bytes.len();
    let mut pos = 2;
    let mut scans = 0u32;
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
            // Each scan walks every block of the image again: thousands of
            // tiny scans cost hours of CPU in a few megabytes.
            scans += 1;
            if scans > MAX_SCANS {
                return Err(format!(
                    "more than {MAX_SCANS} scans (real encoders write about 10)"
                ));
            }
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

/// The JPEG coding feature of `bytes` that no decode path supports, read
/// from its frame header (the first SOF marker before the first scan):
/// arithmetic coding (SOF9 to SOF11, SOF13 to SOF15, or a DAC segment),
/// hierarchical coding (SOF5 to SOF7), or samples of other than 8 bits in
/// a DCT frame (12-bit SOF1/SOF2). `None` for what the decoders read
/// (baseline, extended and progressive Huffman at 8 bits, lossless) and
/// for bytes too short or malformed to say (the decoders then judge).
///
/// These are valid files, so they are reported as unsupported, naming the
/// feature, never as corrupt; whichever decoder is built in, the answer is
/// the same.
pub(super) fn unsupported_coding(bytes: &[u8]) -> Option<String> {
    let mut pos = 2;
    loop {
        // Fill bytes before a marker, as in `check_complete`.
        while *bytes.get(pos)? != 0xFF {
            pos += 1;
        }
        while *bytes.get(pos)? == 0xFF {
            pos += 1;
        }
        let marker = *bytes.get(pos)?;
        pos += 1;
        match marker {
            0xD0..=0xD8 | 0x01 | 0x00 => continue,
            // The first scan or the end: no unsupported frame before it.
            0xDA | 0xD9 => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]));
        let sof = |kind: &str| format!("{kind}, SOF{}", marker - 0xC0);
        match marker {
            0xC9..=0xCB | 0xCD..=0xCF => return Some(sof("arithmetic coding")),
            0xCC => return Some("arithmetic coding, DAC segment".to_owned()),
            0xC5..=0xC7 => return Some(sof("hierarchical coding")),
            0xC0..=0xC2 => {
                let precision = *bytes.get(pos + 2)?;
                return (precision != 8).then(|| sof(&format!("{precision}-bit samples")));
            }
            _ => {}
        }
        pos += len.max(2);
    }
}

/// Decodes the JPEG `bytes` itself rather than through the `image` crate,
/// when that pays: shrink-on-load at 1/2, 1/4 or 1/8 scale (DCT scaling)
/// when that keeps at least twice the detail the most demanding of
/// `variants` samples, or any scale when `libjpeg_turbo` is set and the
/// JPEG is YCbCr, RGB or grey. `None` means: decode it at full scale the
/// usual way (no variants, or no reduced scale fits, and no libjpeg-turbo).
///
/// The header's dimensions pass [`DecodeLimits`] first, and what the decode
/// may allocate (the reduced pixels, their RGB copy and, for a progressive
/// JPEG, the full-scale coefficients: [`memory_needed`]) must fit
/// `max_alloc`. A header `jpeg-decoder` refuses and lossless JPEGs return
/// `None`, for the usual decoder to judge. EXIF orientation and an embedded RGB ICC profile
/// are applied as on the full-scale path; CMYK (always `jpeg-decoder`) is
/// converted the way the full-scale decoder does (Adobe inverted CMYK read
/// back to ink amounts, then `(255 - C)(255 - K) / 255`).
pub(super) fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    variants: &[VariantSpec],
    libjpeg_turbo: bool,
) -> Result<Option<DecodedImage>> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    // A header jpeg-decoder refuses, or a lossless JPEG (whose decoder
    // ignores the scale), goes the usual way; that decoder has the say.
    if decoder.read_info().is_err() {
        return Ok(None);
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    if info.coding_process == CodingProcess::Lossless {
        return Ok(None);
    }
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
    let denominator = if variants.is_empty() {
        1
    } else {
        [8u16, 4, 2]
            .into_iter()
            .find(|&d| 1.0 / f64::from(d) >= 2.0 * needed)
            .unwrap_or(1)
    };
    let turbo = libjpeg_turbo && matches!(info.pixel_format, PixelFormat::RGB24 | PixelFormat::L8);
    if denominator == 1 && !turbo {
        return Ok(None);
    }
    let (w, h) = (
        u32::from(info.width.div_ceil(denominator)),
        u32::from(info.height.div_ceil(denominator)),
    );
    let needed = memory_needed(&info, (w, h));
    if needed > limits.max_alloc {
        return Err(too_large(
            width,
            height,
            format!(
                "max_alloc = {} bytes (decoding to {w}x{h} needs up to {needed})",
                limits.max_alloc
            ),
        ));
    }
    let icc = decoder.icc_profile();
    let decoded = if turbo {
        // libjpeg-turbo fails on what libjpeg only warns about (stray
        // bytes before a marker, for one): the pure-Rust decoder then
        // reads the file, as it would without the feature.
        turbo::decode(bytes, denominator, info.pixel_format == PixelFormat::L8)
            .inspect_err(
                |e| tracing::debug!(error = %e, "libjpeg-turbo refused; jpeg-decoder reads it"),
            )
            .ok()
    } else {
        None
    };
    let mut image = match decoded {
        Some(image) => image,
        None => decode_with(decoder, limits, denominator)?,
    };
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

/// Peak bytes a decode of `info` to `scaled` (width, height) may take: the
/// decoder's output (1 to 4 bytes per pixel) plus the RGB copy made from
/// it, plus, for a progressive JPEG, the coefficients of every block at
/// full scale (2 bytes per sample, each component counted at full
/// resolution: the 4:4:4 worst case). libjpeg-turbo and `jpeg-decoder`
/// both keep those for the whole image.
fn memory_needed(info: &jpeg_decoder::ImageInfo, (w, h): (u32, u32)) -> u64 {
    let pixel_bytes = info.pixel_format.pixel_bytes() as u64;
    let pixels = u64::from(w) * u64::from(h) * (pixel_bytes + 3);
    let coefficients = if info.coding_process == CodingProcess::DctProgressive {
        let blocks = |side: u16| u64::from(side.div_ceil(8)) * 8;
        // Samples per pixel: L16 is one 2-byte sample.
        let samples = if info.pixel_format == PixelFormat::L16 {
            1
        } else {
            pixel_bytes
        };
        blocks(info.width) * blocks(info.height) * samples * 2
    } else {
        0
    };
    pixels + coefficients
}

/// Decodes with `jpeg-decoder` (whose header is read) at 1/`denominator`
/// scale, as 8-bit RGB.
fn decode_with(
    mut decoder: jpeg_decoder::Decoder<&[u8]>,
    limits: &DecodeLimits,
    denominator: u16,
) -> Result<DynamicImage> {
    let Some(info) = decoder.info() else {
        return Err(corrupt("no JPEG header"));
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
    let bytes_per_pixel = format.pixel_bytes() as u64;
    if pixels.len() as u64 != u64::from(w) * u64::from(h) * bytes_per_pixel {
        return Err(corrupt(format!(
            "the decoder returned {} bytes for {w}x{h} pixels of {format:?}",
            pixels.len()
        )));
    }
    let short = || corrupt("the decoder returned fewer pixels than it declared");
    Ok(match format {
        PixelFormat::RGB24 => rgb8(w, h, pixels, false).ok_or_else(short)?,
        PixelFormat::L8 => rgb8(w, h, pixels, true).ok_or_else(short)?,
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
    })
}

/// 8-bit RGB from a decoder's 8-bit RGB, or (`gray`) grey, `w` × `h`
/// pixels; `None` when `pixels` is too short for them.
fn rgb8(w: u32, h: u32, pixels: Vec<u8>, gray: bool) -> Option<DynamicImage> {
    Some(DynamicImage::ImageRgb8(if gray {
        DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels)?).to_rgb8()
    } else {
        RgbImage::from_raw(w, h, pixels)?
    }))
}

/// Most scans a JPEG may hold, whichever decoder reads it (zune-jpeg's own
/// limit; real encoders write about 10): a crafted progressive file of
/// thousands of tiny scans makes every decoder walk every block again for
/// each.
pub const MAX_SCANS: u32 = 100;

#[cfg(feature = "turbojpeg")]
mod turbo {
    use image::DynamicImage;
    use turbojpeg::{Decompressor, Image, PixelFormat, ScalingFactor};

    use super::{MAX_SCANS, corrupt, rgb8};
    use crate::error::{Error, Result};

    /// Decodes a YCbCr, RGB or (`gray`) grey JPEG with libjpeg-turbo at
    /// 1/`denominator` scale, as 8-bit RGB.
    pub(super) fn decode(bytes: &[u8], denominator: u16, gray: bool) -> Result<DynamicImage> {
        let failed = |e: turbojpeg::Error| match e {
            turbojpeg::Error::TurboJpegError(text) if text.contains("Unsupported") => {
                Error::UnsupportedImage {
                    format: format!("image/jpeg ({text})"),
                }
            }
            other => corrupt(format!("libjpeg-turbo: {other}")),
        };
        let mut decompressor = Decompressor::new().map_err(failed)?;
        let scale = ScalingFactor::new(1, usize::from(denominator));
        decompressor.set_scaling_factor(scale).map_err(failed)?;
        decompressor.set_scan_limit(MAX_SCANS).map_err(failed)?;
        let header = decompressor
            .read_header(bytes)
            .map_err(failed)?
            .scaled(scale);
        let (format, channels) = if gray {
            (PixelFormat::GRAY, 1)
        } else {
            (PixelFormat::RGB, 3)
        };
        let mut image = Image {
            pixels: vec![0; channels * header.width * header.height],
            width: header.width,
            pitch: channels * header.width,
            height: header.height,
            format,
        };
        decompressor
            .decompress(bytes, image.as_deref_mut())
            .map_err(failed)?;
        let (w, h) = (header.width as u32, header.height as u32);
        let short = || corrupt("libjpeg-turbo returned fewer pixels than it declared");
        rgb8(w, h, image.pixels, gray).ok_or_else(short)
    }
}

#[cfg(not(feature = "turbojpeg"))]
mod turbo {
    use image::DynamicImage;

    use crate::error::Result;

    /// Never called: `libjpeg_turbo` is only set with the feature.
    pub(super) fn decode(_: &[u8], _: u16, _: bool) -> Result<DynamicImage> {
        Err(super::corrupt("built without the turbojpeg feature"))
    }
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
