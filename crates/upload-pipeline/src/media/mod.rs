//! Media processors: what the worker does with a clean upload of an
//! allowed type, one processor per media type.
//!
//! The worker ([`crate::UploadProcessor`]) reads each upload once, checks
//! its sniffed type against the policy, scans it, quarantines or tags it;
//! in between it hands the bytes of a clean, allowed upload to the first
//! [`MediaProcessor`] that [handles](MediaProcessor::handles) its sniffed
//! type. The processor owns its limits, the variants it renders and what
//! it adds to the manifest ([`Processed`]); the worker writes the variants
//! create-only under [`variant_key`](crate::manifest::variant_key) and the
//! manifest last, whatever the processor. A type no processor handles is
//! scanned and kept, with no variants.
//!
//! - [`ImageProcessor`]: images through an [`ImageCodec`] under
//!   [`DecodeLimits`] (always present; the worker's own).
//! - `PdfProcessor` (feature `pdf`): the first page of a PDF rendered by
//!   Debian's poppler-utils as a poster, and the page count.
//! - `VideoProcessor` (feature `video`): a poster frame of an MP4, MOV or
//!   WebM by ffmpeg, and its duration, dimensions and codecs.
//!
//! Add or replace processors with
//! [`WorkerConfig::with_processor`](crate::WorkerConfig::with_processor).

mod image;
#[cfg(feature = "pdf")]
mod pdf;
#[cfg(any(feature = "pdf", feature = "video"))]
mod tool;
#[cfg(feature = "video")]
mod video;

use bytes::Bytes;
use std::sync::Arc;

pub use self::image::ImageProcessor;
#[cfg(feature = "pdf")]
pub use self::pdf::{PdfLimits, PdfProcessor};
#[cfg(feature = "video")]
pub use self::video::{VideoLimits, VideoProcessor};

use crate::codec::{DecodeLimits, EncodedVariant, ImageCodec, VariantSpec};
use crate::error::Result;
use crate::manifest::{ImageInfo, MediaInfo};

/// What a processor is given: one clean upload of an allowed type.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MediaInput {
    /// The whole original, as read (and scanned) by the worker.
    pub body: Bytes,
    /// Its type sniffed from magic bytes, lowercase (`image/jpeg`,
    /// `application/pdf`, `video/mp4`, ...).
    pub content_type: String,
    /// The variants asked for (the upload route's, or the worker's); empty
    /// for none: the processor then still checks the upload and may fill
    /// in the manifest, but renders nothing.
    pub variants: Arc<[VariantSpec]>,
}

impl MediaInput {
    /// An input of `body`, sniffed as `content_type`, for `variants`.
    pub fn new(
        body: Bytes,
        content_type: impl Into<String>,
        variants: impl Into<Arc<[VariantSpec]>>,
    ) -> Self {
        Self {
            body,
            content_type: content_type.into(),
            variants: variants.into(),
        }
    }
}

/// What a processor made of an upload.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Processed {
    /// Each rendered variant with the spec it was rendered for (its key is
    /// [`variant_key`](crate::manifest::variant_key) of that spec), in
    /// the order they are written and listed in the manifest.
    pub variants: Vec<(VariantSpec, EncodedVariant)>,
    /// An image's upright size and placeholder
    /// ([`Manifest::image`](crate::Manifest::image)).
    pub image: Option<ImageInfo>,
    /// What other media add to the manifest
    /// ([`Manifest::media`](crate::Manifest::media)): a video's duration
    /// and codecs, a document's page count.
    pub media: Option<MediaInfo>,
}

/// Processes the clean uploads of one media type: checks them under its
/// own limits, renders its variants and says what goes into the manifest.
///
/// Synchronous and possibly slow (decoding, child processes): the worker
/// calls [`MediaProcessor::process`] from `tokio::task::spawn_blocking`,
/// after the scan and before the upload is tagged CLEAN, so an upload its
/// processor refuses is rejected and never tagged. Implementations must
/// not panic on any input and must return within a bounded time.
pub trait MediaProcessor: Send + Sync + std::fmt::Debug {
    /// A short name for logs and spans, e.g. `image`, `pdf`, `video`.
    fn name(&self) -> &'static str;

    /// Whether this processor handles uploads whose sniffed type is
    /// `content_type` (lowercase, e.g. `image/jpeg`).
    fn handles(&self, content_type: &str) -> bool;

    /// Processes one clean upload.
    ///
    /// # Errors
    /// - A refusal of the upload itself, which the worker records as a
    ///   [`Rejected`](crate::Outcome::Rejected) outcome with the error's
    ///   message as its reason (see [`Error::is_rejection`](crate::Error::is_rejection)):
    ///   [`Error::MediaRejected`](crate::Error::MediaRejected) (encrypted,
    ///   broken, over a limit, timed out),
    ///   [`Error::MediaUnsupported`](crate::Error::MediaUnsupported) (a tool
    ///   it needs is not installed), and the image errors
    ///   ([`Error::UnsupportedImage`](crate::Error::UnsupportedImage),
    ///   [`Error::ImageTooLarge`](crate::Error::ImageTooLarge),
    ///   [`Error::CorruptImage`](crate::Error::CorruptImage));
    /// - any other error fails the record, which is delivered again.
    fn process(&self, input: MediaInput) -> Result<Processed>;
}

/// Why a processor refused an upload ([`Error::MediaRejected`](crate::Error::MediaRejected)).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaRejection {
    /// A ZIP archive is hidden inside an image (a polyglot): never tagged
    /// CLEAN, since a scanner may not unpack it to its limits.
    #[error("a ZIP archive is hidden in the image")]
    HiddenArchive,
    /// The document is encrypted (a user or owner password): not
    /// previewed.
    #[error("the document is encrypted")]
    Encrypted,
    /// Broken, truncated or not what its type says: the tool's own words.
    #[error("broken or truncated file: {detail}")]
    Corrupt {
        /// What the tool reported (its first lines of error output, or
        /// what was missing from its answer).
        detail: String,
    },
    /// Larger than the processor accepts.
    #[error("{bytes} bytes is more than the {max} bytes allowed")]
    TooLarge {
        /// The upload's size in bytes.
        bytes: u64,
        /// The processor's maximum in bytes.
        max: u64,
    },
    /// A document with more pages than allowed.
    #[error("{pages} pages is more than the {max} allowed")]
    TooManyPages {
        /// Its page count.
        pages: u64,
        /// The maximum.
        max: u64,
    },
    /// A page larger than allowed, in PDF points (1/72 inch).
    #[error("a page of {width_pt} x {height_pt} pt is larger than {max_pt} pt a side")]
    PageTooLarge {
        /// Width in points.
        width_pt: f64,
        /// Height in points.
        height_pt: f64,
        /// The largest side allowed, in points.
        max_pt: f64,
    },
    /// A video longer than allowed.
    #[error("a duration of {duration_ms} ms is longer than the {max_ms} ms allowed")]
    TooLong {
        /// Its duration in milliseconds.
        duration_ms: u64,
        /// The maximum in milliseconds.
        max_ms: u64,
    },
    /// A video whose frames are larger than allowed.
    #[error("a resolution of {width}x{height} is above the {max_side} px a side allowed")]
    ResolutionTooHigh {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// The largest side allowed, in pixels.
        max_side: u32,
    },
    /// A container with more streams than allowed.
    #[error("{streams} streams is more than the {max} allowed")]
    TooManyStreams {
        /// Its stream count.
        streams: u64,
        /// The maximum.
        max: u64,
    },
    /// A video file without a video stream (audio only, or nothing).
    #[error("no video stream")]
    NoVideoStream,
    /// A tool did not finish within its time limit and was killed.
    #[error("{tool} did not finish within {limit_ms} ms and was killed")]
    TimedOut {
        /// The tool, e.g. `pdftoppm`.
        tool: &'static str,
        /// The wall-clock limit in milliseconds.
        limit_ms: u64,
    },
    /// A tool wrote more output than allowed and was stopped.
    #[error("{tool} wrote more than {max} bytes and was stopped")]
    OutputTooLarge {
        /// The tool.
        tool: &'static str,
        /// The most bytes of output accepted.
        max: usize,
    },
}

/// The built-in processors for a worker: the image processor of `codec`
/// under `limits`, after the processors of `extra`, which are asked first.
pub(crate) fn registry(
    extra: &[Arc<dyn MediaProcessor>],
    codec: Arc<dyn ImageCodec>,
    limits: DecodeLimits,
) -> Arc<[Arc<dyn MediaProcessor>]> {
    let mut all = extra.to_vec();
    all.push(Arc::new(ImageProcessor::new(codec, limits)));
    all.into()
}

/// A poster a tool rendered (a PDF's first page, a video frame) as PNG
/// bytes: decoded under `limits` (a poster that does not decode is the
/// upload's fault: `rejected` with [`MediaRejection::Corrupt`] naming
/// `what`), then rendered into each of `specs` by [`render_all`]. Returns
/// the poster's upright size, the variants and the placeholder.
pub(crate) fn render_poster(
    codec: &dyn ImageCodec,
    png: &[u8],
    limits: &DecodeLimits,
    specs: &[VariantSpec],
    what: &str,
    rejected: impl FnOnce(MediaRejection) -> crate::Error,
) -> Result<((u32, u32), Rendered, Option<crate::codec::Placeholder>)> {
    let poster = codec.decode(png, limits).map_err(|e| {
        rejected(MediaRejection::Corrupt {
            detail: format!("{what}: {e}"),
        })
    })?;
    let (variants, placeholder) = render_all(codec, &poster, specs)?;
    Ok((poster.source_size, variants, placeholder))
}

/// Variants with the specs they were rendered for.
pub(crate) type Rendered = Vec<(VariantSpec, EncodedVariant)>;

/// Renders each of `specs` from `image` with `codec`, observing the encode
/// stage; with the placeholder of `image` (an extra: `None` when it fails).
pub(crate) fn render_all(
    codec: &dyn ImageCodec,
    image: &crate::codec::DecodedImage,
    specs: &[VariantSpec],
) -> Result<(Rendered, Option<crate::codec::Placeholder>)> {
    let variants = specs
        .iter()
        .map(|s| {
            let encode_started = std::time::Instant::now();
            let v = tracing::info_span!("encode", variant = %s.name)
                .in_scope(|| codec.render(image, s))?;
            crate::metrics::observe(crate::metrics::Stage::Encode, encode_started);
            Ok((s.clone(), v))
        })
        .collect::<Result<_>>()?;
    // The placeholder is an extra: an image it fails on still gets its
    // variants.
    let placeholder = crate::codec::Placeholder::from_image(image)
        .inspect_err(|e| tracing::warn!(error = %e, "no placeholder"))
        .ok();
    Ok((variants, placeholder))
}
