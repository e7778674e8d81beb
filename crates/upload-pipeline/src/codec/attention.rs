//! Where a [`Gravity::Attention`](super::Gravity::Attention) crop goes:
//! the window of the crop's size that holds the most "interesting"
//! pixels, in the spirit of libvips's `interesting=attention`.
//!
//! The image is box-averaged to at most [`ANALYSIS_SIDE`] pixels a side.
//! Each analysis pixel scores
//! - its edge strength: the absolute Laplacian of luma (detail in focus;
//!   a blurred background scores little),
//! - plus its saturation above a threshold (coloured subjects against
//!   grey or pale surroundings),
//! - plus a bonus for skin tones (faces and people),
//!
//! less the median score (what texture, bokeh or a warm colour give
//! everywhere: only what stands out counts), and the crop window, which
//! spans the whole image on one axis (a cover crop), slides along the
//! other to the position with the largest sum
//! (prefix sums: linear in the analysis size). The centre is kept unless
//! another position scores clearly more, so a flat image or a centred
//! subject crops as [`Gravity::Centre`](super::Gravity::Centre) does.

use image::DynamicImage;

/// The longest side of the analysis image, in pixels.
pub(super) const ANALYSIS_SIDE: u32 = 128;

/// How much more than the centred window another window must score to
/// be chosen (5%).
const CENTRE_MARGIN: f64 = 1.05;

/// The top-left corner, in pixels of `image`, of the `crop_width` ×
/// `crop_height` window to keep. The window must fit in the image; when
/// it equals the image on both axes the answer is `(0, 0)`.
pub(super) fn window(image: &DynamicImage, crop_width: f64, crop_height: f64) -> (f64, f64) {
    let (width, height) = (image.width(), image.height());
    let centre = (
        (f64::from(width) - crop_width) / 2.0,
        (f64::from(height) - crop_height) / 2.0,
    );
    if width == 0 || height == 0 {
        return centre;
    }
    let step = width.max(height).div_ceil(ANALYSIS_SIDE).max(1);
    let (aw, ah) = (width.div_ceil(step), height.div_ceil(step));
    let scores = score_map(image, step, aw, ah);
    // The free axis: along x when the crop is narrower than the image.
    let horizontal = f64::from(width) - crop_width >= f64::from(height) - crop_height;
    let (len, free, window_px) = if horizontal {
        (aw, f64::from(width) - crop_width, crop_width)
    } else {
        (ah, f64::from(height) - crop_height, crop_height)
    };
    if free < 1.0 {
        return centre;
    }
    // Column (or row) totals, then a sliding window of the crop's size.
    let mut line = vec![0.0f64; len as usize];
    for y in 0..ah {
        for x in 0..aw {
            let s = f64::from(scores[(y * aw + x) as usize]);
            line[if horizontal { x } else { y } as usize] += s;
        }
    }
    let mut prefix = Vec::with_capacity(line.len() + 1);
    prefix.push(0.0);
    for v in &line {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    let win = ((window_px / f64::from(step)).round() as usize).clamp(1, line.len());
    let sum_at = |start: usize| prefix[start + win] - prefix[start];
    let positions = line.len() - win;
    let centre_start = positions / 2;
    let centre_sum = sum_at(centre_start);
    let (mut best, mut best_sum) = (centre_start, centre_sum);
    for start in 0..=positions {
        let s = sum_at(start);
        let closer = start.abs_diff(centre_start) < best.abs_diff(centre_start);
        if s > best_sum || (s == best_sum && closer) {
            best = start;
            best_sum = s;
        }
    }
    if best_sum <= centre_sum * CENTRE_MARGIN {
        return centre;
    }
    let offset = (best as f64 * f64::from(step)).clamp(0.0, free);
    if horizontal {
        (offset, centre.1)
    } else {
        (centre.0, offset)
    }
}

/// The score of each `step` × `step` block of `image`, `aw` × `ah` of
/// them, row by row.
fn score_map(image: &DynamicImage, step: u32, aw: u32, ah: u32) -> Vec<f32> {
    let rgb = averages(image, step, aw, ah);
    let luma: Vec<f32> = rgb
        .iter()
        .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
        .collect();
    let at = |x: u32, y: u32| luma[(y * aw + x) as usize];
    let mut out = Vec::with_capacity(rgb.len());
    for y in 0..ah {
        for x in 0..aw {
            let centre = at(x, y);
            let (mut sum, mut n) = (0.0, 0.0);
            for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                let (nx, ny) = (i64::from(x) + dx, i64::from(y) + dy);
                if nx >= 0 && ny >= 0 && nx < i64::from(aw) && ny < i64::from(ah) {
                    sum += at(nx as u32, ny as u32);
                    n += 1.0;
                }
            }
            let edge = if n > 0.0 {
                (centre - sum / n).abs()
            } else {
                0.0
            };
            let [r, g, b] = rgb[(y * aw + x) as usize];
            let max = r.max(g).max(b);
            let min = r.min(g).min(b);
            let saturation = if max > 0.0 { (max - min) / max } else { 0.0 };
            // Saturated colour adds up to about a strong edge's score.
            let colour = (saturation - 0.4).max(0.0) * 10.0;
            // Skin: red over green over blue in the ratios of human skin
            // in most lighting, not too dark (libvips uses the same cue).
            let skin = r > 60.0
                && g > 30.0
                && b > 15.0
                && r > g
                && g > b
                && (r - g) > 12.0
                && (r - b) / r > 0.15
                && (r - b) / r < 0.65;
            out.push(edge + colour + if skin { 8.0 } else { 0.0 });
        }
    }
    // Only what stands out counts: the median score (what a background
    // of texture, bokeh or warm colour gives everywhere) is taken off.
    let mut sorted = out.clone();
    let mid = sorted.len() / 2;
    let median = *sorted.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1;
    for s in &mut out {
        *s = (*s - median).max(0.0);
    }
    out
}

/// Mean RGB of each `step` × `step` block (the last row and column of
/// blocks may be smaller). Alpha is ignored. One pass over the pixels,
/// row by row, summing each block's run of a row at once.
fn averages(image: &DynamicImage, step: u32, aw: u32, ah: u32) -> Vec<[f32; 3]> {
    let converted;
    let (raw, channels): (&[u8], usize) = match image {
        DynamicImage::ImageRgb8(img) => (img.as_raw(), 3),
        DynamicImage::ImageRgba8(img) => (img.as_raw(), 4),
        other => {
            converted = other.to_rgb8();
            (converted.as_raw(), 3)
        }
    };
    let (width, step) = (image.width() as usize, step as usize);
    let mut sums = vec![[0u32; 3]; (aw * ah) as usize];
    let mut counts = vec![0u32; (aw * ah) as usize];
    for (y, row) in raw.chunks_exact(width * channels).enumerate() {
        let base = (y / step) * aw as usize;
        for (bx, run) in row.chunks(step * channels).enumerate() {
            let (mut r, mut g, mut b) = (0u32, 0u32, 0u32);
            for p in run.chunks_exact(channels) {
                r += u32::from(p[0]);
                g += u32::from(p[1]);
                b += u32::from(p[2]);
            }
            let s = &mut sums[base + bx];
            s[0] += r;
            s[1] += g;
            s[2] += b;
            counts[base + bx] += (run.len() / channels) as u32;
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(s, &n)| {
            let n = n.max(1) as f32;
            [s[0] as f32 / n, s[1] as f32 / n, s[2] as f32 / n]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A flat grey image with a detailed, coloured square at `(sx, sy)`.
    fn scene(w: u32, h: u32, sx: u32, sy: u32, side: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            if (sx..sx + side).contains(&x) && (sy..sy + side).contains(&y) {
                if (x / 4 + y / 4) % 2 == 0 {
                    Rgb([220, 40, 30])
                } else {
                    Rgb([30, 160, 40])
                }
            } else {
                Rgb([120, 120, 120])
            }
        }))
    }

    #[test]
    fn finds_the_subject_on_either_axis() {
        // A 400x200 image, subject at x 300..340: a 100x200 window holds it.
        let (left, top) = window(&scene(400, 200, 300, 80, 40), 100.0, 200.0);
        assert_eq!(top, 0.0);
        assert!((240.0..=300.0).contains(&left), "{left}");
        // Portrait: subject near the top.
        let (left, top) = window(&scene(200, 400, 80, 20, 40), 200.0, 120.0);
        assert_eq!(left, 0.0);
        assert!((0.0..=20.0).contains(&top), "{top}");
    }

    #[test]
    fn flat_or_centred_images_keep_the_centre() {
        let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 100, Rgb([9, 9, 9])));
        assert_eq!(window(&flat, 100.0, 100.0), (100.0, 0.0));
        let centred = scene(300, 100, 130, 30, 40);
        assert_eq!(window(&centred, 100.0, 100.0), (100.0, 0.0));
        // The whole image: nothing to choose.
        assert_eq!(window(&centred, 300.0, 100.0), (0.0, 0.0));
    }

    #[test]
    fn the_window_always_fits() {
        for sx in [0, 10, 150, 360] {
            let (left, _) = window(&scene(401, 150, sx, 50, 40), 133.7, 150.0);
            assert!((0.0..=401.0 - 133.7).contains(&left), "{sx}: {left}");
        }
    }
}
