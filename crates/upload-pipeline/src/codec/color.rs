//! ICC colour management: embedded RGB profiles converted to sRGB with
//! `moxcms`, so that variants (which carry no profile) show the colours
//! the source meant.

use image::DynamicImage;
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

/// What [`to_srgb`] did with an embedded profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IccOutcome {
    /// The pixels were converted from the profile's space to sRGB.
    Converted,
    /// The profile describes sRGB already (its transform moves no probe
    /// colour by more than one level): nothing to do.
    AlreadySrgb,
    /// The profile was not used: unreadable, not an RGB profile (CMYK,
    /// grey, Lab), or not an RGB image. The pixels are taken as sRGB.
    Ignored,
}

/// Probe colours (RGB) a profile must leave unchanged, within one level, to
/// count as sRGB: greys, primaries, secondaries and mid-tones.
const PROBES: [[u8; 3]; 12] = [
    [0, 0, 0],
    [64, 64, 64],
    [128, 128, 128],
    [255, 255, 255],
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [0, 255, 255],
    [200, 100, 50],
    [50, 160, 90],
    [40, 60, 200],
    [230, 220, 120],
];

/// Converts the 8-bit RGB or RGBA pixels of `image` from the colour space
/// described by the ICC profile `icc` to sRGB, in place, one row at a
/// time (no second image buffer). Alpha is kept as it is.
pub(super) fn to_srgb(image: &mut DynamicImage, icc: &[u8]) -> IccOutcome {
    let Ok(profile) = ColorProfile::new_from_slice(icc) else {
        return IccOutcome::Ignored;
    };
    if profile.color_space != DataColorSpace::Rgb {
        return IccOutcome::Ignored;
    }
    let srgb = ColorProfile::new_srgb();
    let options = TransformOptions::default();
    let Ok(probe) = profile.create_transform_8bit(Layout::Rgb, &srgb, Layout::Rgb, options) else {
        return IccOutcome::Ignored;
    };
    let input: Vec<u8> = PROBES.iter().flatten().copied().collect();
    let mut output = vec![0u8; input.len()];
    if probe.transform(&input, &mut output).is_err() {
        return IccOutcome::Ignored;
    }
    if input.iter().zip(&output).all(|(a, b)| a.abs_diff(*b) <= 1) {
        return IccOutcome::AlreadySrgb;
    }
    let (layout, width, buffer): (Layout, u32, &mut [u8]) = match image {
        DynamicImage::ImageRgb8(buffer) => (Layout::Rgb, buffer.width(), buffer),
        DynamicImage::ImageRgba8(buffer) => (Layout::Rgba, buffer.width(), buffer),
        _ => return IccOutcome::Ignored,
    };
    let transform = match layout {
        Layout::Rgb => probe,
        _ => match profile.create_transform_8bit(layout, &srgb, layout, options) {
            Ok(transform) => transform,
            Err(_) => return IccOutcome::Ignored,
        },
    };
    let row_len = width as usize * if layout == Layout::Rgb { 3 } else { 4 };
    if row_len == 0 {
        return IccOutcome::Converted;
    }
    let mut row = vec![0u8; row_len];
    for pixels in buffer.chunks_exact_mut(row_len) {
        // Only a length mismatch fails, and every row has the same length:
        // the first row fails or none does.
        if transform.transform(pixels, &mut row).is_err() {
            return IccOutcome::Ignored;
        }
        pixels.copy_from_slice(&row);
    }
    IccOutcome::Converted
}
