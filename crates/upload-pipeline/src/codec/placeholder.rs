//! [`Placeholder`]: a ThumbHash and a dominant colour, small enough to
//! inline in the manifest and in an HTML page.

use base64::Engine;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbaImage};
use serde::{Deserialize, Serialize};

use super::{DecodedImage, fit_within};
use crate::error::{Error, Result};

/// Largest side ThumbHash accepts, in pixels.
const THUMBHASH_MAX_SIDE: u32 = 100;

/// What a page shows while a variant loads: a
/// [ThumbHash](https://evanw.github.io/thumbhash/) (about 25 bytes that
/// decode to a blurred ~32-pixel picture with the image's aspect ratio and
/// alpha) and the dominant colour.
///
/// ```
/// use upload_pipeline::{DecodeLimits, ImageCodec, Placeholder, StandardCodec};
/// # fn main() -> upload_pipeline::Result<()> {
/// let mut png = Vec::new();
/// image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(40, 20, image::Rgb([200, 30, 30])))
///     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
///     .unwrap();
/// let decoded = StandardCodec::default().decode(&png, &DecodeLimits::default())?;
/// let placeholder = Placeholder::from_image(&decoded)?;
/// assert_eq!(placeholder.dominant_color, "#c81e1e");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholder {
    /// The ThumbHash bytes in standard base64 (with padding), as the
    /// reference `thumbHashToDataURL` takes them once decoded.
    pub thumbhash: String,
    /// The dominant colour, `#rrggbb` (sRGB): the mean of the most common
    /// 16-level colour bin among the pixels at least half opaque.
    pub dominant_color: String,
}

impl Placeholder {
    /// Computes the placeholder of `image` from a copy of it scaled to fit
    /// within 100 × 100 pixels (bilinear).
    ///
    /// # Errors
    ///
    /// [`Error::EncodeFailed`] (variant `placeholder`) when the image is
    /// empty or cannot be resized.
    pub fn from_image(image: &DecodedImage) -> Result<Self> {
        let failed = |reason: String| Error::EncodeFailed {
            variant: "placeholder".to_owned(),
            reason,
        };
        let (width, height) = (image.width(), image.height());
        if width == 0 || height == 0 {
            return Err(failed(format!("the image is empty ({width}x{height})")));
        }
        let (w, h) = fit_within(width, height, THUMBHASH_MAX_SIDE, THUMBHASH_MAX_SIDE);
        let converted;
        let source = match &image.image {
            DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => &image.image,
            other => {
                converted = DynamicImage::ImageRgba8(other.to_rgba8());
                &converted
            }
        };
        let rgba = if (w, h) == (width, height) {
            source.to_rgba8()
        } else {
            let mut small = DynamicImage::new(w, h, source.color());
            // Nearest-neighbour down to 4 × the placeholder's size, then
            // bilinear: a full bilinear convolution of a 4K photo costs
            // about 5 ms, this about a tenth of it, and a 100-px thumbhash
            // cannot tell them apart.
            let options =
                ResizeOptions::new().resize_alg(ResizeAlg::SuperSampling(FilterType::Bilinear, 4));
            Resizer::new()
                .resize(source, &mut small, &options)
                .map_err(|e| failed(format!("resize failed: {e}")))?;
            small.to_rgba8()
        };
        let hash = thumbhash::rgba_to_thumb_hash(w as usize, h as usize, rgba.as_raw());
        Ok(Self {
            thumbhash: base64::engine::general_purpose::STANDARD.encode(hash),
            dominant_color: dominant_color(&rgba),
        })
    }
}

/// The mean colour of the most populated bin of a 16 × 16 × 16 histogram
/// over the pixels with alpha ≥ 128 (all pixels when none is), as
/// `#rrggbb`.
fn dominant_color(rgba: &RgbaImage) -> String {
    let opaque = rgba.pixels().any(|p| p.0[3] >= 128);
    let counted = || rgba.pixels().filter(move |p| !opaque || p.0[3] >= 128);
    let bin = |p: &image::Rgba<u8>| {
        (usize::from(p.0[0] >> 4) << 8) | (usize::from(p.0[1] >> 4) << 4) | usize::from(p.0[2] >> 4)
    };
    let mut counts = vec![0u32; 4096];
    for p in counted() {
        counts[bin(p)] += 1;
    }
    // The first of the most populated bins, so that ties are deterministic.
    let best = counts
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        .map_or(0, |(i, _)| i);
    let (mut sum, mut n) = ([0u64; 3], 0u64);
    for p in counted().filter(|p| bin(p) == best) {
        for (s, c) in sum.iter_mut().zip(p.0) {
            *s += u64::from(c);
        }
        n += 1;
    }
    let mean = |s: u64| (s + n / 2).checked_div(n).unwrap_or(0);
    format!(
        "#{:02x}{:02x}{:02x}",
        mean(sum[0]),
        mean(sum[1]),
        mean(sum[2])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominant_colour_is_the_largest_bin_and_skips_transparent_pixels() {
        // 60 % blue-ish, 40 % red; the red half also has transparent
        // green pixels, which do not count.
        let mut rgba = RgbaImage::from_pixel(10, 10, image::Rgba([20, 40, 200, 255]));
        for x in 0..4 {
            for y in 0..10 {
                rgba.put_pixel(x, y, image::Rgba([250, 10, 10, 255]));
            }
        }
        assert_eq!(dominant_color(&rgba), "#1428c8");
        for x in 4..10 {
            for y in 0..10 {
                rgba.put_pixel(x, y, image::Rgba([0, 255, 0, 0]));
            }
        }
        assert_eq!(dominant_color(&rgba), "#fa0a0a");
        let clear = RgbaImage::from_pixel(3, 3, image::Rgba([9, 8, 7, 0]));
        assert_eq!(dominant_color(&clear), "#090807");
    }
}
