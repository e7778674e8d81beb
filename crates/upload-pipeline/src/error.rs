//! The error type of `upload-pipeline`.

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the pipeline, named from the caller's
/// point of view.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not in an image format the codec decodes (or not an
    /// image at all): HEIC, AVIF, JXL, PSD, ... without a decoder.
    #[error("unsupported image format: {format}")]
    UnsupportedImage {
        /// The format, as recognised from magic bytes, or `unknown`.
        format: String,
    },
    /// The image header declares more than the decode limits allow; refused
    /// before any pixel buffer is allocated (decompression-bomb guard).
    #[error("image of {width}x{height} exceeds the decode limits: {limit}")]
    ImageTooLarge {
        /// Declared width in pixels.
        width: u32,
        /// Declared height in pixels.
        height: u32,
        /// Which limit was hit, with its value.
        limit: String,
    },
    /// The image is truncated or corrupt.
    #[error("corrupt or truncated image: {reason}")]
    CorruptImage {
        /// The decoder's message.
        reason: String,
    },
    /// Encoding a variant failed.
    #[error("encoding variant {variant} failed: {reason}")]
    EncodeFailed {
        /// The variant name.
        variant: String,
        /// The encoder's message.
        reason: String,
    },
    /// A variant spec that cannot be rendered (zero size, bad quality, bad
    /// name).
    #[error("invalid variant spec {name:?}: {reason}")]
    InvalidVariantSpec {
        /// The variant name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}
