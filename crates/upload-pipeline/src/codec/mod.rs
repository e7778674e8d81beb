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

mod attention;
mod color;
#[cfg(feature = "heif")]
mod heif;
mod jpeg;
#[cfg(feature = "jxl")]
mod jxl;
mod limits;
mod placeholder;
mod standard;

pub use limits::DecodeLimits;
pub use placeholder::Placeholder;
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
    /// AVIF (AV1 still image, 8-bit 4:4:4) encoded by rav1e through
    /// `ravif`, with an alpha channel when the source has one.
    ///
    /// Needs this crate's `avif` feature; without it rendering fails with
    /// [`Error::EncodeFailed`] naming the feature.
    Avif {
        /// Quality, `1..=100` (higher is better and larger); 50–70 suits
        /// photos (AVIF at 60 looks about like JPEG at 85).
        quality: u8,
        /// rav1e speed preset, `1..=10`: 10 is the fastest and largest; the
        /// default [`OutputFormat::AVIF_DEFAULT_SPEED`] is fast.
        speed: u8,
    },
}

impl OutputFormat {
    /// The default [`OutputFormat::Avif`] speed: 8 of rav1e's `1..=10`
    /// (about 0.1 s for a 1024-pixel photo on one core).
    pub const AVIF_DEFAULT_SPEED: u8 = 8;

    /// The `Content-Type` of this format: `image/webp`, `image/jpeg`,
    /// `image/png` or `image/avif`.
    pub fn content_type(&self) -> &'static str {
        match self {
            OutputFormat::WebP { .. } => "image/webp",
            OutputFormat::Jpeg { .. } => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Avif { .. } => "image/avif",
        }
    }

    /// The usual file extension of this format, without the dot: `webp`,
    /// `jpg`, `png` or `avif`.
    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::WebP { .. } => "webp",
            OutputFormat::Jpeg { .. } => "jpg",
            OutputFormat::Png => "png",
            OutputFormat::Avif { .. } => "avif",
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
            OutputFormat::Avif { quality, .. } if !(1..=100).contains(&quality) => Err(format!(
                "AVIF quality must be within 1..=100, got {quality}"
            )),
            OutputFormat::Avif { speed, .. } if !(1..=10).contains(&speed) => {
                Err(format!("AVIF speed must be within 1..=10, got {speed}"))
            }
            _ => Ok(()),
        }
    }
}

/// How a variant fills its `width` × `height` box (the names of CSS
/// `object-fit`, libvips and imgproxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Scaled to fit within the box, aspect ratio kept, never enlarged:
    /// one side equals the box (or both are the source's when it is
    /// smaller), each side rounded to the nearest pixel, at least 1.
    #[default]
    Contain,
    /// Scaled to cover the box, aspect ratio kept, then cropped around
    /// the centre to exactly `width` × `height`. Never enlarged: a source
    /// smaller than the box gives the largest centred crop of the box's
    /// aspect ratio, at the source's scale.
    Cover,
    /// Stretched to exactly `width` × `height`, each axis scaled on its
    /// own (the aspect ratio is not kept; this may enlarge).
    Fill,
}

impl Fit {
    /// The name used by [`VariantSpec::parse`]: `contain`, `cover` or
    /// `fill`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Fill => "fill",
        }
    }
}

/// Which part of the image a [`Fit::Cover`] crop keeps (libvips's
/// `interesting`, imgproxy's `gravity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gravity {
    /// The centre of the image.
    #[default]
    Centre,
    /// The window with the most detail, saturated colour and skin tones,
    /// like libvips's `interesting=attention`: edges of luma (what is in
    /// focus), saturation and skin, measured on a copy of at most 128
    /// pixels a side, then the crop slid along its free axis to the
    /// position holding the most. Stays centred unless another position
    /// scores at least 5% more.
    Attention,
}

impl Gravity {
    /// The top-left corner, in pixels of `image`, of the `crop_width` ×
    /// `crop_height` window this gravity keeps (what a [`Fit::Cover`]
    /// variant renders, before scaling). The window is clamped into the
    /// image; `(0, 0)` when it is the whole image.
    pub fn crop_origin(
        self,
        image: &image::DynamicImage,
        crop_width: f64,
        crop_height: f64,
    ) -> (f64, f64) {
        let crop_width = crop_width.clamp(0.0, f64::from(image.width()));
        let crop_height = crop_height.clamp(0.0, f64::from(image.height()));
        match self {
            Gravity::Centre => (
                (f64::from(image.width()) - crop_width) / 2.0,
                (f64::from(image.height()) - crop_height) / 2.0,
            ),
            Gravity::Attention => attention::window(image, crop_width, crop_height),
        }
    }
}

/// One variant to render: a name, a box (`width` × `height`), how the
/// image fits it ([`Fit`]) and an output format.
///
/// With the default [`Fit::Contain`] the image is scaled down to fit
/// within the box keeping its aspect ratio (never enlarged; each side
/// rounded to the nearest pixel and at least 1 pixel).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VariantSpec {
    /// The variant name, used in object keys: 1 to 64 characters of
    /// `[a-z0-9_-]`.
    pub name: String,
    /// Width of the box, in pixels, `1..=16384`.
    pub width: u32,
    /// Height of the box, in pixels, `1..=16384`.
    pub height: u32,
    /// How the image fills the box; default [`Fit::Contain`].
    pub fit: Fit,
    /// Where a [`Fit::Cover`] crop goes; default [`Gravity::Centre`].
    /// Ignored by the other fits.
    pub gravity: Gravity,
    /// The output encoding.
    pub format: OutputFormat,
}

impl VariantSpec {
    /// A validated spec.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidVariantSpec`] when `name` is empty, longer than 64
    /// bytes or has a character outside `[a-z0-9_-]`, when `width` or
    /// `height` is outside `1..=16384`, or when the format's parameters
    /// are out of range (WebP quality `0.0..=100.0`, not NaN; JPEG and AVIF
    /// quality `1..=100`; AVIF speed `1..=10`).
    ///
    /// The spec fits with [`Fit::Contain`]; see [`VariantSpec::with_fit`].
    pub fn new(name: &str, width: u32, height: u32, format: OutputFormat) -> Result<Self> {
        let spec = Self {
            name: name.to_owned(),
            width,
            height,
            fit: Fit::Contain,
            gravity: Gravity::Centre,
            format,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// This spec with `fit` instead of its current [`Fit`].
    pub fn with_fit(mut self, fit: Fit) -> Self {
        self.fit = fit;
        self
    }

    /// This spec with `gravity` for its [`Fit::Cover`] crop.
    pub fn with_gravity(mut self, gravity: Gravity) -> Self {
        self.gravity = gravity;
        self
    }

    /// Eight hex digits that change whenever the rendering of this spec
    /// does (box, fit, format and its parameters; not the name): a stable
    /// FNV-1a hash of its canonical form, e.g. `256x256:contain:webp:80`.
    /// Part of the variant's key, so that a changed spec never reuses the
    /// key of bytes rendered the old way.
    ///
    /// ```
    /// use upload_pipeline::{Fit, VariantSpec};
    /// let thumb = VariantSpec::thumb();
    /// assert_eq!(thumb.fingerprint().len(), 8);
    /// assert_ne!(thumb.fingerprint(), thumb.clone().with_fit(Fit::Cover).fingerprint());
    /// ```
    pub fn fingerprint(&self) -> String {
        let format = match self.format {
            OutputFormat::WebP { quality } => format!("webp:{quality}"),
            OutputFormat::Jpeg { quality } => format!("jpeg:{quality}"),
            OutputFormat::Png => "png".to_owned(),
            OutputFormat::Avif { quality, speed } => format!("avif:{quality}:{speed}"),
        };
        // `cover-attention`; centre crops keep the name they always had,
        // so their keys do not change.
        let attention = self.fit == Fit::Cover && self.gravity == Gravity::Attention;
        let canonical = format!(
            "{}x{}:{}{}:{format}",
            self.width,
            self.height,
            self.fit.as_str(),
            if attention { "-attention" } else { "" }
        );
        let hash = canonical.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff))
    }

    /// The scale (output pixels per source pixel, at most 1 for
    /// [`Fit::Contain`] and [`Fit::Cover`]) at which this variant samples a
    /// `width` × `height` image, on the axis that needs the most detail:
    /// what shrink-on-load must keep.
    pub(crate) fn sample_scale(&self, width: u32, height: u32) -> f64 {
        let sx = f64::from(self.width) / f64::from(width.max(1));
        let sy = f64::from(self.height) / f64::from(height.max(1));
        match self.fit {
            Fit::Contain => sx.min(sy).min(1.0),
            Fit::Cover => sx.max(sy).min(1.0),
            Fit::Fill => sx.max(sy),
        }
    }

    /// `thumb`: fits within 256 × 256, lossy WebP at quality 80.
    pub fn thumb() -> Self {
        Self {
            name: "thumb".to_owned(),
            width: 256,
            height: 256,
            fit: Fit::Contain,
            gravity: Gravity::Centre,
            format: OutputFormat::WebP { quality: 80.0 },
        }
    }

    /// `medium`: fits within 1024 × 1024, lossy WebP at quality 80.
    pub fn medium() -> Self {
        Self {
            name: "medium".to_owned(),
            width: 1024,
            height: 1024,
            fit: Fit::Contain,
            gravity: Gravity::Centre,
            format: OutputFormat::WebP { quality: 80.0 },
        }
    }

    /// The default variants: `[thumb(), medium()]`.
    pub fn defaults() -> Vec<Self> {
        vec![Self::thumb(), Self::medium()]
    }

    /// Parses `NAME=WIDTHxHEIGHT[:FIT][:FORMAT[:QUALITY[:SPEED]]]`, the
    /// form of a command-line flag: `thumb=256x256` (contain, WebP quality
    /// 80), `card=1200x630:cover:jpeg:85`, `icon=64x64:png`,
    /// `hero=1600x900:avif:60:6`. Fits: `contain` (default), `cover`
    /// (centre crop), `cover-attention` (cover with [`Gravity::Attention`]),
    /// `fill`. Formats: `webp` (quality `0..=100`, default 80), `jpeg` or
    /// `jpg` (quality `1..=100`, default 85), `png`, `avif` (quality
    /// `1..=100`, default 60; speed `1..=10`, default
    /// [`OutputFormat::AVIF_DEFAULT_SPEED`]).
    ///
    /// ```
    /// use upload_pipeline::{Fit, OutputFormat, VariantSpec};
    /// let v = VariantSpec::parse("card=1200x630:cover:jpeg:85").unwrap();
    /// assert_eq!((v.name.as_str(), v.width, v.height), ("card", 1200, 630));
    /// assert_eq!((v.fit, v.format), (Fit::Cover, OutputFormat::Jpeg { quality: 85 }));
    /// assert!(VariantSpec::parse("thumb=0x10").is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidVariantSpec`] for another shape, an unknown format,
    /// or a value [`VariantSpec::new`] refuses.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidVariantSpec {
            name: text.chars().take(80).collect(),
            reason: format!(
                "{reason}; expected NAME=WIDTHxHEIGHT[:contain|cover|cover-attention|fill][:webp|jpeg|png|avif[:QUALITY[:SPEED]]]"
            ),
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
        let mut format = parts.next();
        let fit = match format {
            Some("contain") => Some(Fit::Contain),
            Some("cover") => Some(Fit::Cover),
            Some("cover-attention") => Some(Fit::Cover),
            Some("fill") => Some(Fit::Fill),
            _ => None,
        };
        let gravity = if format == Some("cover-attention") {
            Gravity::Attention
        } else {
            Gravity::Centre
        };
        if fit.is_some() {
            format = parts.next();
        }
        let format = format.unwrap_or("webp");
        let quality = parts.next();
        let speed = parts.next();
        if parts.next().is_some() || (speed.is_some() && format != "avif") {
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
            ("avif", q) => OutputFormat::Avif {
                quality: q
                    .map_or(Ok(60), str::parse)
                    .map_err(|_| invalid("AVIF quality is 1..=100"))?,
                speed: speed
                    .map_or(Ok(OutputFormat::AVIF_DEFAULT_SPEED), str::parse)
                    .map_err(|_| invalid("AVIF speed is 1..=10"))?,
            },
            ("png", None) => OutputFormat::Png,
            ("png", Some(_)) => return Err(invalid("PNG takes no quality")),
            _ => return Err(invalid("unknown format")),
        };
        Ok(Self::new(name, w, h, format)?
            .with_fit(fit.unwrap_or_default())
            .with_gravity(gravity))
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
        for (what, value) in [("width", self.width), ("height", self.height)] {
            if !(1..=MAX_VARIANT_SIDE).contains(&value) {
                return Err(invalid(format!(
                    "{what} must be within 1..={MAX_VARIANT_SIDE}, got {value}"
                )));
            }
        }
        self.format.check().map_err(invalid)
    }
}

/// A decoded image with EXIF orientation already applied, possibly at a
/// reduced scale (shrink-on-load, see [`ImageCodec::decode_for`]).
///
/// [`StandardCodec`] always yields 8-bit RGB (`DynamicImage::ImageRgb8`)
/// or, when the source has an alpha channel, 8-bit RGBA
/// (`DynamicImage::ImageRgba8`); other codecs may yield any
/// [`image::DynamicImage`], and [`ImageCodec::render`] must accept any.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// The pixels, upright (orientation applied).
    pub image: image::DynamicImage,
    /// The MIME type of the format the bytes were in (`image/jpeg`,
    /// `image/heic`, ...).
    pub source_type: &'static str,
    /// The EXIF orientation (`1..=8`) that was applied to the pixels; `1`
    /// when the source had none.
    pub orientation: u8,
    /// Width × height of the source at full scale, in pixels, after
    /// orientation: larger than the pixels' when the decoder shrank on
    /// load.
    pub source_size: (u32, u32),
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

    /// Like [`ImageCodec::decode`], for rendering `variants` only: a codec
    /// may then decode at a reduced scale (JPEG DCT scaling at 1/2, 1/4 or
    /// 1/8) as long as the pixels keep at least twice the detail the most
    /// demanding variant samples, so that the final Lanczos3 resize still
    /// has real pixels to work from. The default decodes at full scale.
    ///
    /// # Errors
    ///
    /// As [`ImageCodec::decode`].
    fn decode_for(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
        variants: &[VariantSpec],
    ) -> Result<DecodedImage> {
        let _ = variants;
        self.decode(bytes, limits)
    }

    /// Renders `image` as the variant `spec`: scaled into its `width` ×
    /// `height` box as its [`Fit`] says (aspect ratio kept and never
    /// enlarged unless the fit is [`Fit::Fill`]) and encoded as
    /// `spec.format` without metadata.
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
            .with_max_input_bytes(5)
            .with_max_frames(6);
        assert_eq!(limits.max_frames, 6);
        assert_eq!(
            (limits.max_width, limits.max_height, limits.max_pixels),
            (1, 2, 3)
        );
        assert_eq!((limits.max_alloc, limits.max_input_bytes), (4, 5));
        let d = DecodeLimits::default();
        assert_eq!((d.max_width, d.max_height), (u32::MAX, u32::MAX));
        assert_eq!(d.max_pixels, 40_000_000);
        assert_eq!(d.max_alloc, 512 << 20);
        assert_eq!(d.max_input_bytes, 64 << 20);
        assert_eq!(d.max_frames, 10_000);
    }
}
