//! The image codec: decode an upload under limits, apply its EXIF
//! orientation, and render resized variants without metadata.
//!
//! [`ImageCodec`] is the seam the worker uses (synchronously, from
//! `spawn_blocking`, through an `Arc<dyn ImageCodec>`); [`StandardCodec`]
//! is the implementation built on the `image` crate (JPEG, PNG, GIF and
//! WebP decoders), `fast_image_resize` (Lanczos3) and libwebp (lossy WebP).
//!
//! ```
//! use upload_pipeline::{DecodeLimits, ImageCodec, StandardCodec, VariantSpec};
//!
//! # fn main() -> upload_pipeline::Result<()> {
//! // A 300x200 PNG, made in memory.
//! let mut png = Vec::new();
//! image::DynamicImage::new_rgb8(300, 200)
//!     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
//!     .unwrap();
//!
//! let codec = StandardCodec::default();
//! let decoded = codec.decode(&png, &DecodeLimits::default())?;
//! let thumb = codec.render(&decoded, &VariantSpec::thumb())?;
//! assert_eq!((thumb.width, thumb.height), (256, 171));
//! assert_eq!(thumb.content_type, "image/webp");
//! # Ok(())
//! # }
//! ```

mod jpeg;
mod limits;
mod standard;

pub use limits::DecodeLimits;
pub use standard::{StandardCodec, WEBP_LOSSLESS_TABLES};

use crate::error::{Error, Result};

/// Largest accepted [`VariantSpec`] width or height, in pixels.
const MAX_VARIANT_SIDE: u32 = 16_384;
/// Longest accepted [`VariantSpec::name`], in bytes.
const MAX_VARIANT_NAME: usize = 64;

/// The encoding of a rendered variant.
///
/// Every format is written from raw pixels, so the output carries no
/// metadata at all: no EXIF, XMP, ICC profile, GPS position or text chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputFormat {
    /// Lossy WebP (libwebp), with an alpha channel when the source has one.
    ///
    /// WebP cannot hold more than 16 383 pixels per side: a variant is
    /// fitted within that as well as within its spec.
    WebP {
        /// libwebp quality factor, `0.0..=100.0` (higher is better and
        /// larger); 75–85 suits photos.
        quality: f32,
    },
    /// Baseline JPEG. Any alpha channel is composited over white.
    Jpeg {
        /// JPEG quality, `1..=100`.
        quality: u8,
    },
    /// Lossless PNG, 8 bits per channel, RGB or RGBA.
    Png,
}

impl OutputFormat {
    /// The `Content-Type` of this format: `image/webp`, `image/jpeg` or
    /// `image/png`.
    pub fn content_type(&self) -> &'static str {
        match self {
            OutputFormat::WebP { .. } => "image/webp",
            OutputFormat::Jpeg { .. } => "image/jpeg",
            OutputFormat::Png => "image/png",
        }
    }

    /// The usual file extension of this format, without the dot: `webp`,
    /// `jpg` or `png`.
    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::WebP { .. } => "webp",
            OutputFormat::Jpeg { .. } => "jpg",
            OutputFormat::Png => "png",
        }
    }

    /// Checks the quality parameter; the reason when it is out of range.
    fn check(&self) -> std::result::Result<(), String> {
        match *self {
            OutputFormat::WebP { quality } if !(0.0..=100.0).contains(&quality) => Err(format!(
                "WebP quality must be within 0..=100, got {quality}"
            )),
            OutputFormat::Jpeg { quality } if !(1..=100).contains(&quality) => Err(format!(
                "JPEG quality must be within 1..=100, got {quality}"
            )),
            _ => Ok(()),
        }
    }
}

/// One variant to render: a name, a bounding box and an output format.
///
/// The image is scaled down to fit within `max_width` × `max_height`
/// keeping its aspect ratio (never enlarged; each side rounded to the
/// nearest pixel and at least 1 pixel).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VariantSpec {
    /// The variant name, used in object keys: 1 to 64 characters of
    /// `[a-z0-9_-]`.
    pub name: String,
    /// Largest width of the variant, in pixels, `1..=16384`.
    pub max_width: u32,
    /// Largest height of the variant, in pixels, `1..=16384`.
    pub max_height: u32,
    /// The output encoding.
    pub format: OutputFormat,
}

impl VariantSpec {
    /// A validated spec.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidVariantSpec`] when `name` is empty, longer than 64
    /// bytes or has a character outside `[a-z0-9_-]`, when `max_width` or
    /// `max_height` is outside `1..=16384`, or when the format's quality is
    /// out of range (WebP `0.0..=100.0`, not NaN; JPEG `1..=100`).
    pub fn new(name: &str, max_width: u32, max_height: u32, format: OutputFormat) -> Result<Self> {
        let spec = Self {
            name: name.to_owned(),
            max_width,
            max_height,
            format,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// `thumb`: fits within 256 × 256, lossy WebP at quality 80.
    pub fn thumb() -> Self {
        Self {
            name: "thumb".to_owned(),
            max_width: 256,
            max_height: 256,
            format: OutputFormat::WebP { quality: 80.0 },
        }
    }

    /// `medium`: fits within 1024 × 1024, lossy WebP at quality 80.
    pub fn medium() -> Self {
        Self {
            name: "medium".to_owned(),
            max_width: 1024,
            max_height: 1024,
            format: OutputFormat::WebP { quality: 80.0 },
        }
    }

    /// The default variants: `[thumb(), medium()]`.
    pub fn defaults() -> Vec<Self> {
        vec![Self::thumb(), Self::medium()]
    }

    /// Parses `NAME=WIDTHxHEIGHT[:FORMAT[:QUALITY]]`, the form of a
    /// command-line flag: `thumb=256x256` (WebP quality 80),
    /// `card=1200x630:jpeg:85`, `icon=64x64:png`. Formats: `webp` (quality
    /// `0..=100`, default 80), `jpeg` or `jpg` (quality `1..=100`, default
    /// 85), `png`.
    ///
    /// ```
    /// use upload_pipeline::{OutputFormat, VariantSpec};
    /// let v = VariantSpec::parse("card=1200x630:jpeg:85").unwrap();
    /// assert_eq!((v.name.as_str(), v.max_width, v.max_height), ("card", 1200, 630));
    /// assert_eq!(v.format, OutputFormat::Jpeg { quality: 85 });
    /// assert!(VariantSpec::parse("thumb=0x10").is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidVariantSpec`] for another shape, an unknown format,
    /// or a value [`VariantSpec::new`] refuses.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidVariantSpec {
            name: text.chars().take(80).collect(),
            reason: format!("{reason}; expected NAME=WIDTHxHEIGHT[:webp|jpeg|png[:QUALITY]]"),
        };
        let (name, rest) = text.split_once('=').ok_or_else(|| invalid("no '='"))?;
        let mut parts = rest.split(':');
        let (w, h) = parts
            .next()
            .and_then(|wh| wh.split_once('x'))
            .ok_or_else(|| invalid("no WIDTHxHEIGHT"))?;
        let side = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| invalid("width and height are whole pixels"))
        };
        let (w, h) = (side(w)?, side(h)?);
        let format = parts.next().unwrap_or("webp");
        let quality = parts.next();
        if parts.next().is_some() {
            return Err(invalid("too many ':' parts"));
        }
        let format = match (format, quality) {
            ("webp", q) => OutputFormat::WebP {
                quality: q
                    .map_or(Ok(80.0), str::parse)
                    .map_err(|_| invalid("WebP quality is a number"))?,
            },
            ("jpeg" | "jpg", q) => OutputFormat::Jpeg {
                quality: q
                    .map_or(Ok(85), str::parse)
                    .map_err(|_| invalid("JPEG quality is 1..=100"))?,
            },
            ("png", None) => OutputFormat::Png,
            ("png", Some(_)) => return Err(invalid("PNG takes no quality")),
            _ => return Err(invalid("unknown format")),
        };
        Self::new(name, w, h, format)
    }

    /// Checks the rules of [`VariantSpec::new`] again (the fields are
    /// public, so a spec may have been changed since it was built).
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Error::InvalidVariantSpec {
            name: self.name.clone(),
            reason,
        };
        if self.name.is_empty() || self.name.len() > MAX_VARIANT_NAME {
            return Err(invalid(format!(
                "name must be 1 to {MAX_VARIANT_NAME} characters, got {}",
                self.name.len()
            )));
        }
        if let Some(c) = self
            .name
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
        {
            return Err(invalid(format!(
                "name may only hold [a-z0-9_-], found {c:?}"
            )));
        }
        for (what, value) in [
            ("max_width", self.max_width),
            ("max_height", self.max_height),
        ] {
            if !(1..=MAX_VARIANT_SIDE).contains(&value) {
                return Err(invalid(format!(
                    "{what} must be within 1..={MAX_VARIANT_SIDE}, got {value}"
                )));
            }
        }
        self.format.check().map_err(invalid)
    }
}

/// A decoded image with EXIF orientation already applied.
///
/// [`StandardCodec`] always yields 8-bit RGB (`DynamicImage::ImageRgb8`)
/// or, when the source has an alpha channel, 8-bit RGBA
/// (`DynamicImage::ImageRgba8`); other codecs may yield any
/// [`image::DynamicImage`], and [`ImageCodec::render`] must accept any.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// The pixels, upright (orientation applied).
    pub image: image::DynamicImage,
    /// The format the bytes were in.
    pub source_format: image::ImageFormat,
    /// The EXIF orientation (`1..=8`) that was applied to the pixels; `1`
    /// when the source had none.
    pub orientation: u8,
}

impl DecodedImage {
    /// Width in pixels, after orientation.
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    /// Height in pixels, after orientation.
    pub fn height(&self) -> u32 {
        self.image.height()
    }

    /// Whether the pixels have an alpha channel (by colour type: an RGBA
    /// image that happens to be fully opaque still counts).
    pub fn has_alpha(&self) -> bool {
        self.image.color().has_alpha()
    }
}

/// One rendered variant, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedVariant {
    /// The [`VariantSpec::name`] it was rendered for.
    pub name: String,
    /// The encoded file (no metadata).
    pub bytes: bytes::Bytes,
    /// Its `Content-Type`, from [`OutputFormat::content_type`].
    pub content_type: &'static str,
    /// Its extension without the dot, from [`OutputFormat::extension`].
    pub extension: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Decodes uploads and renders variants. CPU-bound and synchronous: call it
/// from `tokio::task::spawn_blocking` (it is `Send + Sync`, so an
/// `Arc<dyn ImageCodec>` can be shared between tasks).
///
/// Implementations must never panic on any input; the conformance suite
/// `testkit::codec::run_all` (feature `testkit`) checks the contract.
pub trait ImageCodec: Send + Sync + std::fmt::Debug {
    /// Decodes `bytes` under `limits` and applies the EXIF orientation.
    /// Animated images (GIF, WebP) yield their first frame as a still.
    ///
    /// # Errors
    ///
    /// - [`Error::ImageTooLarge`] when the input or the dimensions declared
    ///   by its header exceed `limits`, before pixels are allocated;
    /// - [`Error::UnsupportedImage`] when the bytes are not an image the
    ///   codec decodes (HEIC, AVIF, PDF, text, empty input, ...), naming
    ///   the format recognised from magic bytes or `unknown`;
    /// - [`Error::CorruptImage`] when the image is truncated or corrupt.
    fn decode(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage>;

    /// Renders `image` as the variant `spec`: scaled to fit within
    /// `spec.max_width` × `spec.max_height` (aspect ratio kept, never
    /// enlarged) and encoded as `spec.format` without metadata.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidVariantSpec`] when `spec` breaks the rules of
    ///   [`VariantSpec::new`];
    /// - [`Error::EncodeFailed`] when the image is empty (0 pixels) or the
    ///   encoder fails.
    fn render(&self, image: &DecodedImage, spec: &VariantSpec) -> Result<EncodedVariant>;
}

/// The size of an image of `width` × `height` fitted within `max_width` ×
/// `max_height`: aspect ratio kept, rounded to the nearest pixel, at least
/// 1 pixel per side, never larger than the source.
pub(crate) fn fit_within(width: u32, height: u32, max_width: u32, max_height: u32) -> (u32, u32) {
    let (w, h) = (u64::from(width), u64::from(height));
    let (mw, mh) = (u64::from(max_width.max(1)), u64::from(max_height.max(1)));
    if w == 0 || h == 0 {
        return (width, height);
    }
    if w <= mw && h <= mh {
        return (width, height);
    }
    // Which side binds: w / mw >= h / mh  <=>  w * mh >= h * mw.
    let (fw, fh) = if w * mh >= h * mw {
        (mw, (2 * h * mw + w) / (2 * w))
    } else {
        ((2 * w * mh + h) / (2 * h), mh)
    };
    // Results are at most the u32 maxima above, so the casts are lossless.
    (fw.clamp(1, mw) as u32, fh.clamp(1, mh) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_within_rounds_and_never_enlarges() {
        assert_eq!(fit_within(3840, 2160, 256, 256), (256, 144));
        assert_eq!(fit_within(1600, 2560, 256, 256), (160, 256));
        assert_eq!(fit_within(128, 128, 1024, 1024), (128, 128));
        assert_eq!(fit_within(300, 200, 256, 256), (256, 171)); // 170.67
        assert_eq!(fit_within(1000, 10, 256, 256), (256, 3)); // 2.56
        assert_eq!(fit_within(100_000, 1, 256, 256), (256, 1)); // 0.00256
        assert_eq!(fit_within(1, 100_000, 256, 256), (1, 256));
        assert_eq!(fit_within(512, 512, 256, 100), (100, 100));
        assert_eq!(fit_within(200, 100, 200, 100), (200, 100));
        assert_eq!(fit_within(201, 100, 200, 100), (200, 100)); // 99.5 -> 100
        assert_eq!(
            fit_within(u32::MAX, u32::MAX, 16_384, 16_384),
            (16_384, 16_384)
        );
    }

    #[test]
    fn variant_spec_validation() {
        let webp = OutputFormat::WebP { quality: 80.0 };
        assert!(VariantSpec::new("thumb", 256, 256, webp).is_ok());
        assert!(VariantSpec::new("a-b_9", 1, 16_384, OutputFormat::Png).is_ok());
        assert!(VariantSpec::new(&"x".repeat(64), 1, 1, webp).is_ok());
        let bad = [
            VariantSpec::new("", 256, 256, webp),
            VariantSpec::new(&"x".repeat(65), 256, 256, webp),
            VariantSpec::new("Thumb", 256, 256, webp),
            VariantSpec::new("thumb/..", 256, 256, webp),
            VariantSpec::new("thumb", 0, 256, webp),
            VariantSpec::new("thumb", 256, 16_385, webp),
            VariantSpec::new("thumb", 256, 256, OutputFormat::WebP { quality: -1.0 }),
            VariantSpec::new("thumb", 256, 256, OutputFormat::WebP { quality: 100.5 }),
            VariantSpec::new("thumb", 256, 256, OutputFormat::WebP { quality: f32::NAN }),
            VariantSpec::new("thumb", 256, 256, OutputFormat::Jpeg { quality: 0 }),
            VariantSpec::new("thumb", 256, 256, OutputFormat::Jpeg { quality: 101 }),
        ];
        for result in bad {
            assert!(
                matches!(result, Err(Error::InvalidVariantSpec { .. })),
                "{result:?}"
            );
        }
        assert_eq!(
            VariantSpec::defaults(),
            vec![VariantSpec::thumb(), VariantSpec::medium()]
        );
        for spec in VariantSpec::defaults() {
            spec.validate().unwrap();
        }
    }

    #[test]
    fn output_format_names() {
        let webp = OutputFormat::WebP { quality: 1.0 };
        let jpeg = OutputFormat::Jpeg { quality: 1 };
        assert_eq!(
            (webp.content_type(), webp.extension()),
            ("image/webp", "webp")
        );
        assert_eq!(
            (jpeg.content_type(), jpeg.extension()),
            ("image/jpeg", "jpg")
        );
        let png = OutputFormat::Png;
        assert_eq!((png.content_type(), png.extension()), ("image/png", "png"));
    }

    #[test]
    fn decode_limits_builders() {
        let limits = DecodeLimits::default()
            .with_max_width(1)
            .with_max_height(2)
            .with_max_pixels(3)
            .with_max_alloc(4)
            .with_max_input_bytes(5);
        assert_eq!(
            (limits.max_width, limits.max_height, limits.max_pixels),
            (1, 2, 3)
        );
        assert_eq!((limits.max_alloc, limits.max_input_bytes), (4, 5));
        let d = DecodeLimits::default();
        assert_eq!((d.max_width, d.max_height), (16_384, 16_384));
        assert_eq!(d.max_pixels, 40_000_000);
        assert_eq!(d.max_alloc, 512 << 20);
        assert_eq!(d.max_input_bytes, 64 << 20);
    }
}
