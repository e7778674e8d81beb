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
use image::{DynamicImage, RgbImage};
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
        pos = memchr::memchr(0xFF, &bytes[pos.min(len)..]).map_or(len, |i| pos + i);
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
                pos = memchr::memchr(0xFF, &bytes[pos.min(len)..]).map_or(len, |i| pos + i);
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
/// `None`, for the usual decoder to judge. With `fast_progressive`, a
/// progressive JPEG that libjpeg-turbo decodes at 1/4 or 1/8 scale is
/// given [`without_fine_refinements`] of its bytes. EXIF orientation and an embedded RGB ICC profile
/// are applied as on the full-scale path; CMYK (always `jpeg-decoder`) is
/// converted the way the full-scale decoder does (Adobe inverted CMYK read
/// back to ink amounts, then `(255 - C)(255 - K) / 255`).
pub(super) fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    variants: &[VariantSpec],
    libjpeg_turbo: bool,
    fast_progressive: bool,
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
    // Shrunk to 1/4 or 1/8, a progressive JPEG goes to libjpeg-turbo
    // without the scans that refine its AC coefficients' last bits.
    let coarse = (turbo && fast_progressive && denominator >= 4)
        .then(|| without_fine_refinements(bytes))
        .flatten();
    let needed = memory_needed(&info, (w, h)) + coarse.as_ref().map_or(0, |c| c.len() as u64);
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
        turbo::decode(
            coarse.as_deref().unwrap_or(bytes),
            denominator,
            info.pixel_format == PixelFormat::L8,
        )
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
        source_type: "image/jpeg",
        orientation: orientation.to_exif(),
        source_size: upright,
    }))
}

/// Most low bits of precision an AC coefficient loses in
/// [`without_fine_refinements`].
pub const DROPPED_REFINEMENT_BITS: u8 = 2;

/// The progressive JPEG `bytes` without the scans that refine the last
/// [`DROPPED_REFINEMENT_BITS`] bits of its AC coefficients (successive
/// approximation scans with `Ss > 0` and `0 < Ah <= 2`), or `None` when it
/// has none (a baseline JPEG, for one). Every other segment, the DC scans
/// included, is kept in order, up to EOI.
///
/// Refinement scans of one coefficient come in decreasing bit order, so
/// the scans dropped are the last of each coefficient: what is left is a
/// valid progressive JPEG whose AC coefficients are known to within
/// `2^Al` quantisation steps instead of one, the picture a progressive
/// viewer shows before its last scans arrive. libjpeg-turbo then estimates
/// the low-frequency coefficients left uncertain from the neighbouring
/// blocks (block smoothing). These scans are about 40 % of a typical
/// progressive file (libjpeg's and mozjpeg's scripts) and most of its
/// decoding time (the refinement decoder is libjpeg-turbo's slowest).
///
/// Decoded at 1/4 or 1/8 scale and resized further, as for a thumbnail,
/// the result differs from the full decode by at most a few levels: a
/// 256-pixel thumbnail of the 4K elephants photo of `samples/` is 54.8 dB
/// PSNR and at most 2 levels from the one decoded from every scan, that of
/// the 2560-pixel cups photo 51.9 dB and 3 levels (before the variant's
/// own lossy encoding, which costs about 40 dB).
///
/// Expects a JPEG that [`check_complete`] accepted; any other returns
/// `None`.
pub(super) fn without_fine_refinements(bytes: &[u8]) -> Option<Vec<u8>> {
    // Byte ranges of `bytes` to keep, in order.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut from = 0;
    let mut pos = 2;
    let end = loop {
        // The next marker: stray bytes and 0xFF fill bytes are skipped as
        // in `check_complete`.
        let start = pos + memchr::memchr(0xFF, bytes.get(pos..)?)?;
        let mut at = start;
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        let marker = bytes[at];
        pos = at + 1;
        match marker {
            0xD9 => break pos,
            0xD0..=0xD8 | 0x01 | 0x00 => continue,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]));
        let header = bytes.get(pos + 2..pos + len)?;
        pos += len;
        if marker != 0xDA {
            continue;
        }
        // Start of scan: Ns, Ns component selectors and table choices,
        // Ss, Se, then Ah and Al in one byte.
        let components = usize::from(*header.first()?);
        let ss = *header.get(1 + 2 * components)?;
        let ah = *header.get(3 + 2 * components)? >> 4;
        // The entropy-coded data runs to the next marker other than a
        // stuffed zero, a restart marker or a fill byte.
        loop {
            pos += memchr::memchr(0xFF, bytes.get(pos..)?)?;
            match *bytes.get(pos + 1)? {
                0x00 | 0xD0..=0xD7 | 0xFF => pos += 1,
                _ => break,
            }
        }
        if ss > 0 && ah > 0 && ah <= DROPPED_REFINEMENT_BITS {
            kept.push((from, start));
            from = pos;
        }
    };
    if kept.is_empty() {
        return None;
    }
    kept.push((from, end));
    let mut out = Vec::with_capacity(kept.iter().map(|(a, b)| b - a).sum());
    for (a, b) in kept {
        out.extend_from_slice(&bytes[a..b]);
    }
    Some(out)
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
    use super::{check_complete, without_fine_refinements};

    /// A start-of-scan segment for one component with spectral selection
    /// `ss..=se` and successive approximation `ah`, `al`, then `data`.
    fn scan(ss: u8, se: u8, ah: u8, al: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![
            0xFF,
            0xDA,
            0x00,
            0x08,
            0x01,
            0x01,
            0x00,
            ss,
            se,
            (ah << 4) | al,
        ];
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn fine_ac_refinement_scans_are_dropped_and_nothing_else() {
        let head = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB];
        // DC first, AC first, AC refinement of bit 1 (with a stuffed 0xFF,
        // a restart marker and fill bytes), a table between scans, DC
        // refinement, AC refinement of bit 0, EOI, then trailing bytes.
        let dc = scan(0, 0, 0, 1, &[0x11, 0x22]);
        let ac = scan(1, 63, 0, 2, &[0x33, 0xFF, 0x00, 0x44]);
        let refine_1 = scan(
            1,
            63,
            2,
            1,
            &[0x55, 0xFF, 0x00, 0xFF, 0xD0, 0x66, 0xFF, 0xFF],
        );
        let table = [0xFF, 0xC4, 0x00, 0x03, 0x77];
        let dc_refine = scan(0, 0, 1, 0, &[0x88]);
        let refine_0 = scan(1, 63, 1, 0, &[0x99]);
        let eoi = [0xFF, 0xD9];
        let file = [
            &head[..],
            &dc,
            &ac,
            &refine_1,
            &table,
            &dc_refine,
            &refine_0,
            &eoi,
            b"trailer",
        ]
        .concat();
        assert_eq!(check_complete(&file), Ok(()));
        let coarse = without_fine_refinements(&file).unwrap();
        let expected = [&head[..], &dc, &ac, &table, &dc_refine, &eoi].concat();
        assert_eq!(coarse, expected);
        assert_eq!(check_complete(&coarse), Ok(()));
    }

    #[test]
    fn coarse_refinements_stay_and_files_without_fine_ones_are_left_alone() {
        let head = [0xFF, 0xD8];
        let eoi = [0xFF, 0xD9];
        // Refinements of bits 3 and 2 (Ah = 4, 3): dropping them would
        // lose more than two bits.
        let kept = [
            &head[..],
            &scan(0, 0, 0, 0, &[0x01]),
            &scan(1, 63, 0, 4, &[0x02]),
            &scan(1, 63, 4, 3, &[0x03]),
            &scan(1, 63, 3, 2, &[0x04]),
            &eoi,
        ]
        .concat();
        assert_eq!(without_fine_refinements(&kept), None);
        let fine = [
            &kept[..kept.len() - 2],
            &scan(1, 63, 2, 1, &[0x05]),
            &scan(1, 63, 1, 0, &[0x06]),
            &eoi,
        ]
        .concat();
        assert_eq!(without_fine_refinements(&fine), Some(kept.clone()));
        // A baseline-like file (one full scan) and truncated input.
        assert_eq!(without_fine_refinements(MINIMAL), None);
        assert_eq!(without_fine_refinements(&fine[..fine.len() - 3]), None);
    }

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
