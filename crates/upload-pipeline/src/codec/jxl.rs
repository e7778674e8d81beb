//! JPEG XL through jxl-oxide (feature `jxl`, pure Rust).
//!
//! The bare codestream (`FF 0A`) and the ISO-BMFF container (`JXL `
//! box) are both read. The image header is parsed and its size checked
//! against [`DecodeLimits`] before the first frame is rendered, and every
//! buffer jxl-oxide allocates is counted against `max_alloc` by its
//! allocation tracker, so a file declaring a huge image or huge groups is
//! refused, not decoded. jxl-oxide runs without a thread pool: the worker
//! runs one decode per upload in flight.
//!
//! What is applied: the orientation in the image header; the colour
//! encoding (an embedded ICC profile or an enumerated space such as
//! Display P3) converted to sRGB like a JPEG's profile. Grey images become
//! RGB; an alpha channel is kept. An animation yields its first frame.
//! CMYK JPEG XL is refused as unsupported.

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer};
use jxl_oxide::{AllocTracker, JxlImage, JxlThreadPool, PixelFormat};

use super::standard::{apply_icc, check_dimensions, corrupt, too_large};
use super::{DecodeLimits, DecodedImage};
use crate::error::{Error, Result};

/// Decodes the first frame of a JPEG XL file.
///
/// # Errors
/// [`Error::ImageTooLarge`] when the declared size breaks `limits` or the
/// decoder's buffers would exceed `max_alloc`; [`Error::CorruptImage`]
/// for a damaged or truncated file; [`Error::UnsupportedImage`] for CMYK.
pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage> {
    let budget = usize::try_from(limits.max_alloc).unwrap_or(usize::MAX);
    let image = JxlImage::builder()
        .pool(JxlThreadPool::none())
        .alloc_tracker(AllocTracker::with_limit(budget))
        .read(Cursor::new(bytes))
        .map_err(|e| map_error(&*e, limits))?;
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(corrupt(format!(
            "image/jxl declares {width}x{height} pixels"
        )));
    }
    check_dimensions(width, height, limits)?;
    let (channels, alpha) = match image.pixel_format() {
        PixelFormat::Rgb => (3, false),
        PixelFormat::Rgba => (4, true),
        PixelFormat::Gray => (1, false),
        PixelFormat::Graya => (2, true),
        PixelFormat::Cmyk | PixelFormat::Cmyka => {
            return Err(Error::UnsupportedImage {
                format: "image/jxl (CMYK)".into(),
            });
        }
    };
    let output = u64::from(width) * u64::from(height) * 4;
    if output > limits.max_alloc {
        return Err(too_large(
            width,
            height,
            format!(
                "max_alloc = {} bytes (the pixel buffer needs {output})",
                limits.max_alloc
            ),
        ));
    }
    let render = image.render_frame(0).map_err(|e| map_error(&*e, limits))?;
    let mut stream = render.stream();
    if stream.channels() as usize != channels
        || (stream.width(), stream.height()) != (width, height)
    {
        return Err(corrupt(format!(
            "image/jxl rendered {}x{}x{}, expected {width}x{height}x{channels}",
            stream.width(),
            stream.height(),
            stream.channels()
        )));
    }
    let mut samples = vec![0u8; width as usize * height as usize * channels];
    let written = stream.write_to_buffer(&mut samples);
    if written != samples.len() {
        return Err(corrupt(format!(
            "image/jxl rendered {written} of {} samples",
            samples.len()
        )));
    }
    let pixels = match channels {
        1 => samples.iter().flat_map(|&v| [v, v, v]).collect(),
        2 => samples
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        _ => samples,
    };
    let mut image_out = if alpha {
        ImageBuffer::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8)
    } else {
        ImageBuffer::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
    }
    .ok_or_else(|| corrupt("image/jxl: pixels do not fit the declared size"))?;
    // The profile of the rendered pixels: the embedded one, or one built
    // from the enumerated colour space (an sRGB one changes nothing).
    apply_icc(&mut image_out, &image.rendered_icc());
    Ok(DecodedImage {
        source_size: (width, height),
        image: image_out,
        source_type: "image/jxl",
        orientation: u8::try_from(image.image_header().metadata.orientation).unwrap_or(1),
    })
}

/// jxl-oxide's errors as the codec's: running out of the allocation
/// budget is a too-large image, anything else a damaged file.
fn map_error(err: &(dyn std::error::Error + 'static), limits: &DecodeLimits) -> Error {
    let text = err.to_string();
    if text.contains("out of memory") || text.contains("OutOfMemory") {
        return too_large(
            0,
            0,
            format!(
                "max_alloc = {} bytes (the JPEG XL decoder's buffers: {text})",
                limits.max_alloc
            ),
        );
    }
    corrupt(format!("image/jxl: {text}"))
}
